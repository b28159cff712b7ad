/*
 * bench_quant_gemv: linear on quantised weights, decode- and prefill-shaped.
 *
 * For every CPU variant this machine runs, packs one LLaMA-1B FFN matrix
 * (5632 outputs x 2048 inputs, and its transpose shape 2048 x 5632) as f16,
 * Q8_0, the K-quants Q6_K to Q2_K and Q5_0/Q5_1/Q4_0/Q4_1, and prints the median time of linear
 * with m = 1 and m = 4, the m = 1 rate in GB/s of weight bytes streamed (the packed size divided by
 * the time) - the figure that decides tokens per second, since a decode step reads every weight
 * once - and the m = 512 (prefill) rate in GFLOP/s (2 m n k / time). Calls cycle through copies of
 * the matrix that together exceed the last-level cache, so the weights come from memory as in a
 * real model. Each number is the median of 7 batches of about 50 ms after a warm-up.
 *
 * Usage: bench_quant_gemv [threads] [variant] [type]
 *   (default 2 threads, all variants, all types; type e.g. q2_k)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ia/kernels.h"
#include "ia/quant.h"

/* Weight copies per measurement: together at least LLC_BYTES, so that no
 * call finds its weights in a 32 MiB last-level cache. */
#define LLC_BYTES (96u << 20)
#define MAX_COPIES 32
#define PP_M 512 /* prefill rows */

static double median(double *v, int n) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v[n / 2];
}

/* Seconds per call, median of 7 batches of about 50 ms; call i uses weight
 * copy i % n_w, so that the copies together outgrow the last-level cache and
 * every call streams its weights from memory. */
static double time_linear(const ia_backend *b, ia_packed_weight **w, int n_w, const float *x,
                          size_t k, float *y, size_t n, size_t m, ia_threadpool *pool) {
    for (int c = 0; c < n_w; c++)
        b->linear(w[c], NULL, IA_ACT_NONE, x, k, y, n, m, pool);
    double t0 = ia_time_now();
    for (int c = 0; c < n_w; c++)
        b->linear(w[c], NULL, IA_ACT_NONE, x, k, y, n, m, pool);
    double one = (ia_time_now() - t0) / n_w;
    int iters = one > 0.05 ? 1 : (int)(0.05 / (one + 1e-9)) + 1;
    double samples[7];
    for (int r = 0; r < 7; r++) {
        t0 = ia_time_now();
        for (int i = 0; i < iters; i++)
            b->linear(w[i % n_w], NULL, IA_ACT_NONE, x, k, y, n, m, pool);
        samples[r] = (ia_time_now() - t0) / iters;
    }
    return median(samples, 7);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    const char *only = argc > 2 ? argv[2] : NULL;
    const char *only_type = argc > 3 ? argv[3] : NULL;
    static const char *const variants[] = {"generic", "avx2", "avx512"};
    static const ia_dtype types[] = {IA_DTYPE_F16,  IA_DTYPE_Q8_0, IA_DTYPE_Q6_K, IA_DTYPE_Q5_K,
                                     IA_DTYPE_Q4_K, IA_DTYPE_Q3_K, IA_DTYPE_Q2_K, IA_DTYPE_Q5_0,
                                     IA_DTYPE_Q5_1, IA_DTYPE_Q4_0, IA_DTYPE_Q4_1};
    static const size_t shapes[][2] = {{5632, 2048}, {2048, 5632}};
    ia_threadpool *pool = ia_threadpool_create(threads);
    size_t max = 5632 * 2048;
    float *w = malloc(max * sizeof *w), *x = malloc(PP_M * 5632 * sizeof *x);
    float *y = malloc(PP_M * 5632 * sizeof *y);
    if (!pool || !w || !x || !y)
        return 1;
    unsigned seed = 1;
    for (size_t i = 0; i < max; i++) {
        seed = seed * 1664525u + 1013904223u;
        w[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 0.1f;
    }
    for (size_t i = 0; i < PP_M * 5632; i++)
        x[i] = (float)((i * 37) % 101) / 101.0f - 0.5f;
    printf("%-12s %-6s %-11s %8s %9s %9s %9s %11s\n", "variant", "type", "n x k", "MiB", "m=1 us",
           "m=1 GB/s", "m=4 us", "m=512 GF/s");
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        if (only && strcmp(only, variants[v]) != 0)
            continue;
        const ia_backend *b = ia_backend_cpu_variant(variants[v]);
        if (!b)
            continue;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            size_t n = shapes[s][0], k = shapes[s][1];
            for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
                if (only_type && strcmp(only_type, ia_dtype_name(types[ti])) != 0)
                    continue;
                /* Quantised (or rounded) once; each copy is then a plain
                 * pack of those blocks: the path of a GGUF file's tensor. */
                size_t bytes;
                ia_dtype_bytes(types[ti], (uint64_t)n * k, &bytes);
                void *src = malloc(bytes);
                if (!src)
                    return 1;
                if (types[ti] == IA_DTYPE_F16) {
                    for (size_t i = 0; i < n * k; i++)
                        ((uint16_t *)src)[i] = ia_f32_to_f16(w[i]);
                } else if (ia_quantize_rows(types[ti], w, src, n, k, pool) != IA_OK) {
                    fprintf(stderr, "quantise %s: %s\n", ia_dtype_name(types[ti]),
                            ia_error_message());
                    free(src);
                    continue;
                }
                ia_tensor t = {.name = "w",
                               .dtype = types[ti],
                               .ndim = 2,
                               .shape = {(int64_t)n, (int64_t)k},
                               .data = src};
                const ia_tensor *parts[] = {&t};
                ia_packed_weight *pw[MAX_COPIES] = {NULL};
                int n_w = (int)((LLC_BYTES + bytes - 1) / bytes);
                n_w = n_w < 1 ? 1 : n_w > MAX_COPIES ? MAX_COPIES : n_w;
                bool ok = true;
                for (int c = 0; c < n_w && ok; c++)
                    ok = b->weight_pack(parts, 1, types[ti], &pw[c]) == IA_OK;
                free(src);
                if (ok) {
                    double t1 = time_linear(b, pw, n_w, x, k, y, n, 1, pool);
                    double t4 = time_linear(b, pw, n_w, x, k, y, n, 4, pool);
                    double tp = time_linear(b, pw, 1, x, k, y, n, PP_M, pool);
                    char shape[32];
                    snprintf(shape, sizeof shape, "%zux%zu", n, k);
                    printf("%-12s %-6s %-11s %8.2f %9.1f %9.2f %9.1f %11.1f\n", b->name,
                           ia_dtype_name(types[ti]), shape, (double)bytes / (1 << 20), t1 * 1e6,
                           (double)bytes / t1 / 1e9, t4 * 1e6, 2.0 * PP_M * n * k / tp / 1e9);
                } else {
                    fprintf(stderr, "pack %s: %s\n", ia_dtype_name(types[ti]), ia_error_message());
                }
                for (int c = 0; c < n_w; c++)
                    b->weight_free(pw[c]);
            }
        }
    }
    ia_threadpool_destroy(pool);
    free(w);
    free(x);
    free(y);
    return 0;
}
