/*
 * bench_kernels: micro-benchmark of the CPU backend's hot ops.
 *
 * For every variant this CPU runs, prints the GFLOP/s of linear on the
 * all-MiniLM-L6-v2 shapes (QKV 1152x384, output 384x384, FFN up 1536x384 and
 * down 384x1536) at m = 4096 and m = 16 tokens, f32 and bf16 weights, on 1
 * and 2 threads, then the time of attention over 32 sequences x 128 tokens x
 * 12 heads x 32. Each number is the median of several timed runs after a
 * warm-up. Compare against peak: cores x FMA pipes x lanes x 2 x clock
 * (Zen 3 AVX2: 2 x 8 x 2 = 32 flop per cycle per core).
 *
 * The "chain" lines run the linear ops of a whole all-MiniLM-L6-v2 forward
 * (6 layers, each matrix its own copy: 42.5 MB of f32 weights, more than the
 * L3, so they stream from memory as for one short sentence) at m = 4, 8, 12
 * and 16 tokens: ms per pass, GFLOP/s and weight GB/s.
 *
 * Rates are medians; "best" is the fastest run, the better guide on a machine
 * shared with other work. Next to wall-clock rates the 1-thread lines show
 * the rate per second of CPU time the process got ("cpu"), which is what the
 * kernel achieves when it is not descheduled.
 *
 * Usage: bench_kernels [variant [chain]]   (generic, avx2 or avx512; default all;
 *        chain: only the chain lines)
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ia/kernels.h"

static double median(double *v, int n) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v[n / 2];
}

static void fill(float *x, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Seconds per call (wall, and process CPU time in *cpu_sec), median of `reps` batches sized to take
 * about 50 ms. */
static double time_linear(const ia_backend *b, const ia_packed_weight *w, const float *bias,
                          const float *x, size_t k, float *y, size_t n, size_t m,
                          ia_threadpool *pool, double *cpu_sec, double *best_sec) {
    b->linear(w, bias, IA_ACT_NONE, x, k, y, n, m, pool);
    double t0 = ia_time_now();
    b->linear(w, bias, IA_ACT_NONE, x, k, y, n, m, pool);
    double one = ia_time_now() - t0;
    int iters = one > 0.05 ? 1 : (int)(0.05 / (one + 1e-9)) + 1;
    double samples[7], cpu[7];
    for (int r = 0; r < 7; r++) {
        t0 = ia_time_now();
        double c0 = cpu_now();
        for (int i = 0; i < iters; i++)
            b->linear(w, bias, IA_ACT_NONE, x, k, y, n, m, pool);
        samples[r] = (ia_time_now() - t0) / iters;
        cpu[r] = (cpu_now() - c0) / iters;
    }
    *cpu_sec = median(cpu, 7);
    double best = samples[0];
    for (int r = 1; r < 7; r++)
        best = samples[r] < best ? samples[r] : best;
    *best_sec = best;
    return median(samples, 7);
}

static void bench_linear(const ia_backend *b, ia_threadpool *pools[2]) {
    static const size_t shapes[][2] = {{1152, 384}, {384, 384}, {1536, 384}, {384, 1536}};
    static const size_t ms[] = {4096, 16};
    static const ia_dtype computes[] = {IA_DTYPE_F32, IA_DTYPE_BF16};
    size_t max_m = 4096, max_k = 1536, max_n = 1536;
    float *x = malloc(max_m * max_k * sizeof *x), *y = malloc(max_m * max_n * sizeof *y);
    float *wdata = malloc(max_n * max_k * sizeof *wdata), *bias = malloc(max_n * sizeof *bias);
    fill(x, max_m * max_k, 1);
    fill(wdata, max_n * max_k, 2);
    fill(bias, max_n, 3);
    for (size_t c = 0; c < 2; c++) {
        for (size_t s = 0; s < 4; s++) {
            size_t n = shapes[s][0], k = shapes[s][1];
            ia_tensor t = {.name = "w",
                           .dtype = IA_DTYPE_F32,
                           .ndim = 2,
                           .shape = {(int64_t)n, (int64_t)k},
                           .data = wdata};
            const ia_tensor *parts[1] = {&t};
            ia_packed_weight *w = NULL;
            if (b->weight_pack(parts, 1, computes[c], &w) != IA_OK) {
                fprintf(stderr, "%s: weight_pack: %s\n", b->name, ia_error_message());
                continue;
            }
            for (size_t mi = 0; mi < 2; mi++) {
                size_t m = ms[mi];
                printf("%-11s linear %-4s n=%4zu k=%4zu m=%4zu", b->name,
                       ia_dtype_name(computes[c]), n, k, m);
                for (int th = 0; th < 2; th++) {
                    double cpu, best;
                    double sec = time_linear(b, w, bias, x, k, y, n, m, pools[th], &cpu, &best);
                    double flop = 2.0 * (double)m * (double)n * (double)k;
                    printf("  %dT %6.1f GFLOP/s (best %5.1f) %8.1f us", th + 1, flop / sec * 1e-9,
                           flop / best * 1e-9, sec * 1e6);
                    if (th == 0)
                        printf(" cpu %5.1f", flop / cpu * 1e-9);
                }
                printf("\n");
            }
            b->weight_free(w);
        }
    }
    free(x);
    free(y);
    free(wdata);
    free(bias);
}

/* The linear ops of a MiniLM forward in order (QKV, output, FFN up with
 * GELU, FFN down), 6 layers of distinct weights, at a few latency-sized m. */
static void bench_chain(const ia_backend *b, ia_threadpool *pools[2]) {
    enum { LAYERS = 6, H = 384, I = 1536, MAX_M = 16 };
    static const size_t shapes[4][2] = {{3 * H, H}, {H, H}, {I, H}, {H, I}};
    static const size_t ms[] = {4, 8, 12, 16};
    ia_packed_weight *w[LAYERS][4] = {{NULL}};
    float *wdata = malloc((size_t)I * H * sizeof *wdata), *bias = malloc(I * sizeof *bias);
    float *x = malloc((size_t)MAX_M * I * sizeof *x), *y = malloc((size_t)MAX_M * I * sizeof *y);
    double flop1 = 0, bytes = 0;
    fill(wdata, (size_t)I * H, 5);
    fill(bias, I, 6);
    fill(x, (size_t)MAX_M * I, 7);
    for (int l = 0; l < LAYERS; l++)
        for (int s = 0; s < 4; s++) {
            ia_tensor t = {.name = "w",
                           .dtype = IA_DTYPE_F32,
                           .ndim = 2,
                           .shape = {(int64_t)shapes[s][0], (int64_t)shapes[s][1]},
                           .data = wdata};
            const ia_tensor *parts[1] = {&t};
            if (b->weight_pack(parts, 1, IA_DTYPE_F32, &w[l][s]) != IA_OK) {
                fprintf(stderr, "%s: weight_pack: %s\n", b->name, ia_error_message());
                goto done;
            }
            flop1 += 2.0 * (double)shapes[s][0] * (double)shapes[s][1];
            bytes += 4.0 * (double)shapes[s][0] * (double)shapes[s][1];
        }
    for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
        size_t m = ms[mi];
        printf("%-11s chain f32 6 layers m=%2zu", b->name, m);
        for (int th = 0; th < 2; th++) {
            double samples[15];
            for (int r = -2; r < 15; r++) {
                double t0 = ia_time_now();
                for (int l = 0; l < LAYERS; l++)
                    for (int s = 0; s < 4; s++)
                        b->linear(w[l][s], bias, s == 2 ? IA_ACT_GELU_ERF : IA_ACT_NONE, x,
                                  shapes[s][1], y, shapes[s][0], m, pools[th]);
                if (r >= 0)
                    samples[r] = ia_time_now() - t0;
            }
            double sec = median(samples, 15), best = samples[0];
            for (int r = 1; r < 15; r++)
                best = samples[r] < best ? samples[r] : best;
            printf("  %dT %6.3f ms (best %6.3f) %5.1f GFLOP/s %5.1f GB/s", th + 1, sec * 1e3,
                   best * 1e3, flop1 * (double)m / sec * 1e-9, bytes / sec * 1e-9);
        }
        printf("\n");
    }
done:
    for (int l = 0; l < LAYERS; l++)
        for (int s = 0; s < 4; s++)
            if (w[l][s])
                b->weight_free(w[l][s]);
    free(wdata);
    free(bias);
    free(x);
    free(y);
}

static void bench_attention(const ia_backend *b, ia_threadpool *pools[2]) {
    enum { SEQS = 32, LEN = 128, HEADS = 12, HD = 32 };
    size_t tokens = SEQS * LEN, width = HEADS * HD, ld = 3 * width;
    float *qkv = malloc(tokens * ld * sizeof *qkv), *out = malloc(tokens * width * sizeof *out);
    int32_t starts[SEQS + 1];
    for (int s = 0; s <= SEQS; s++)
        starts[s] = s * LEN;
    fill(qkv, tokens * ld, 4);
    ia_attention_args a = {.q = qkv,
                           .k = qkv + width,
                           .v = qkv + 2 * width,
                           .ld_q = ld,
                           .ld_k = ld,
                           .ld_v = ld,
                           .out = out,
                           .ld_out = width,
                           .seq_start = starts,
                           .n_seqs = SEQS,
                           .n_heads = HEADS,
                           .head_dim = HD,
                           .scale = 0.17677669f,
                           .causal = false};
    double flops = 4.0 * SEQS * HEADS * (double)LEN * LEN * HD;
    printf("%-11s attention 32 seqs x 128 tokens x 12 heads x 32", b->name);
    for (int th = 0; th < 2; th++) {
        b->attention(&a, pools[th]);
        double samples[7];
        for (int r = 0; r < 7; r++) {
            double t0 = ia_time_now();
            b->attention(&a, pools[th]);
            samples[r] = ia_time_now() - t0;
        }
        double sec = median(samples, 7);
        printf("  %dT %7.2f ms (%5.1f GFLOP/s)", th + 1, sec * 1e3, flops / sec * 1e-9);
    }
    printf("\n");
    free(qkv);
    free(out);
}

int main(int argc, char **argv) {
    static const char *const variants[] = {"generic", "avx2", "avx512"};
    ia_threadpool *pools[2] = {NULL, ia_threadpool_create(2)};
    for (size_t v = 0; v < 3; v++) {
        if (argc > 1 && strcmp(argv[1], variants[v]) != 0)
            continue;
        const ia_backend *b = ia_backend_cpu_variant(variants[v]);
        if (!b) {
            printf("%-11s not supported on this CPU\n", variants[v]);
            continue;
        }
        bool chain_only = argc > 2 && strcmp(argv[2], "chain") == 0;
        if (!chain_only) {
            bench_linear(b, pools);
            bench_attention(b, pools);
        }
        bench_chain(b, pools);
    }
    ia_threadpool_destroy(pools[1]);
    return 0;
}
