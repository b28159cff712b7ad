/*
 * Tests for the quantised-weight kernels of the CPU backend:
 *   - every variant's dot products (generic C, AVX2, AVX-512 VNNI; a variant
 *     this CPU lacks is a SKIP) against a scalar double-precision reference
 *     on the same quantised operands: dequantise the weight blocks with
 *     quant.c, the activation blocks by their scale, and sum in double.
 *     The integer part is exact, so the tolerance is float rounding only:
 *     1e-5 of sum |w a|;
 *   - linear with every weight type, through weight_pack from f32 and from
 *     already-quantised (two-part) tensors, against the same backend's f32
 *     linear on the dequantised weights, m = 1, 3, 17, 64, with bias and
 *     activation. The difference is the activations' 8-bit quantisation:
 *     bounded by 5e-3 of sum |w x| per output (measured: 1.0e-3 for the
 *     32-element types, 2.5e-3 for the k-quants, whose Q8_K activations
 *     have one scale per 256 values, on inputs whose scale varies per 32);
 *   - packing errors name the tensor.
 */
#include <math.h>
#include <stdlib.h>

#include "ia/kernels.h"
#include "ia/quant.h"
#include "kernels/cpu/cpu_internal.h"
#include "kernels_test_util.h"
#include "test.h"

static const ia_dtype wtypes[] = {IA_DTYPE_Q8_0, IA_DTYPE_Q4_0, IA_DTYPE_Q4_1, IA_DTYPE_Q5_0,
                                  IA_DTYPE_Q5_1, IA_DTYPE_Q2_K, IA_DTYPE_Q3_K, IA_DTYPE_Q4_K,
                                  IA_DTYPE_Q5_K, IA_DTYPE_Q6_K};
#define N_WTYPES (sizeof wtypes / sizeof wtypes[0])

static bool is_k(ia_dtype t) { return ia_dtype_get_info(t)->block_elems == 256; }

/* Random values with a per-32 scale that varies, so blocks differ. */
static void fill_varied(float *x, size_t n) {
    for (size_t i = 0; i < n; i += 32) {
        float s = rng_uniform(0.05f, 2.0f);
        float off = rng_uniform(-0.3f, 0.3f) * s;
        for (size_t j = i; j < i + 32 && j < n; j++)
            x[j] = s * rng_uniform(-1.0f, 1.0f) + off;
    }
}

/* The values quantised activations represent. */
static void act_values(bool k_quant, const void *a, size_t k, float *out) {
    if (k_quant) {
        CHECK_OK(ia_dequantize_row(IA_DTYPE_Q8_K, a, out, k));
        return;
    }
    const cpu_qa32 *b = a;
    for (size_t i = 0; i < k; i++)
        out[i] = b[i / 32].d * (float)b[i / 32].qs[i % 32];
}

static void check_dots(const cpu_quant_kernels *qk, const char *variant) {
    enum { K = 1024, M = 4 };
    static float wf[K], wd[K], xf[M][K], xd[M][K];
    static uint8_t wq[K / 32 * 34 + K / 256 * 292], aq[M][K / 256 * 292 + K / 32 * 40];
    rng_seed(42);
    for (size_t t = 0; t < N_WTYPES; t++) {
        ia_dtype type = wtypes[t];
        bool kq = is_k(type);
        fill_varied(wf, K);
        CHECK_OK(ia_quantize_row(type, wf, wq, K));
        CHECK_OK(ia_dequantize_row(type, wq, wd, K));
        size_t a_stride = sizeof aq[0];
        for (int r = 0; r < M; r++) {
            fill_varied(xf[r], K);
            if (kq)
                cpu_quantize_q8k(xf[r], aq[r], K);
            else
                cpu_quantize_qa32(xf[r], (cpu_qa32 *)aq[r], K);
            act_values(kq, aq[r], K, xd[r]);
        }
        cpu_qdot_fn dot = qk->dot[type];
        CHECK(dot != NULL);
        if (!dot)
            continue;
        for (int m = 1; m <= M; m++) {
            float out[M];
            dot(K / ia_dtype_get_info(type)->block_elems, wq, aq, a_stride, m, out);
            for (int r = 0; r < m; r++) {
                double ref = 0, mag = 0;
                for (size_t i = 0; i < K; i++) {
                    ref += (double)wd[i] * xd[r][i];
                    mag += fabs((double)wd[i] * xd[r][i]);
                }
                CHECK_MSG(fabs(out[r] - ref) <= 1e-5 * mag + 1e-6,
                          "%s %s m=%d row %d: %.9g vs %.9g (|w a| %.6g)", variant,
                          ia_dtype_name(type), m, r, (double)out[r], ref, mag);
            }
        }
    }
}

TEST(quant_dot_generic) { check_dots(&cpu_quant_generic, "generic"); }

TEST(quant_dot_avx2) {
    if (!cpu_get_features()->avx2)
        SKIP("this CPU lacks AVX2+FMA");
    check_dots(&cpu_quant_avx2, "avx2");
}

TEST(quant_dot_avx512_vnni) {
    if (!cpu_get_features()->avx512_vnni)
        SKIP("this CPU lacks AVX-512 VNNI");
    check_dots(&cpu_quant_avx512, "avx512-vnni");
}

/* linear on each weight type vs the f32 linear of the dequantised weights. */
static void check_linear(const ia_backend *b) {
    enum { N = 37, K = 512 };
    static const size_t ms[] = {1, 3, 17, 64};
    float *wf = malloc(N * K * sizeof *wf), *wd = malloc(N * K * sizeof *wd);
    float *x = malloc(64 * K * sizeof *x), bias[N];
    float *y = malloc(64 * N * sizeof *y), *yref = malloc(64 * N * sizeof *yref);
    uint8_t *wq = malloc(N * K / 32 * 34 + N * K / 256 * 292);
    ia_threadpool *pool = ia_threadpool_create(2);
    rng_seed(7);
    fill_varied(wf, N * K);
    fill_varied(x, 64 * K);
    rng_fill(bias, N, -1.0f, 1.0f);
    double worst = 0;
    for (size_t t = 0; t < N_WTYPES; t++) {
        ia_dtype type = wtypes[t];
        size_t row_bytes;
        CHECK_OK(ia_dtype_bytes(type, K, &row_bytes));
        CHECK_OK(ia_quantize_rows(type, wf, wq, N, K, pool));
        CHECK_OK(ia_dequantize_row(type, wq, wd, N * K));
        /* (a) from f32, one part; (b) already quantised, two parts */
        ia_tensor tf = {
            .name = "w.f32", .dtype = IA_DTYPE_F32, .ndim = 2, .shape = {N, K}, .data = wf};
        ia_tensor q0 = {.name = "w.q0", .dtype = type, .ndim = 2, .shape = {20, K}, .data = wq};
        ia_tensor q1 = {.name = "w.q1",
                        .dtype = type,
                        .ndim = 2,
                        .shape = {N - 20, K},
                        .data = wq + 20 * row_bytes};
        ia_tensor td = {
            .name = "w.deq", .dtype = IA_DTYPE_F32, .ndim = 2, .shape = {N, K}, .data = wd};
        const ia_tensor *pf[] = {&tf}, *pq[] = {&q0, &q1}, *pd[] = {&td};
        ia_packed_weight *wpf = NULL, *wpq = NULL, *wpd = NULL;
        CHECK_OK(b->weight_pack(pf, 1, type, &wpf));
        CHECK_OK(b->weight_pack(pq, 2, type, &wpq));
        CHECK_OK(b->weight_pack(pd, 1, IA_DTYPE_F32, &wpd));
        if (!wpf || !wpq || !wpd)
            goto next;
        size_t pn, pk;
        b->weight_shape(wpq, &pn, &pk);
        CHECK_EQ_INT(pn, N);
        CHECK_EQ_INT(pk, K);
        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
            size_t m = ms[mi];
            ia_activation act = mi % 2 ? IA_ACT_GELU_ERF : IA_ACT_NONE;
            const float *bs = mi >= 2 ? bias : NULL;
            for (int src = 0; src < 2; src++) {
                b->linear(src ? wpq : wpf, bs, act, x, K, y, N, m, mi == 0 ? NULL : pool);
                b->linear(wpd, bs, act, x, K, yref, N, m, NULL);
                for (size_t i = 0; i < m; i++)
                    for (size_t j = 0; j < N; j++) {
                        double mag = 0;
                        for (size_t kk = 0; kk < K; kk++)
                            mag += fabs((double)wd[j * K + kk] * x[i * K + kk]);
                        double err = fabs((double)y[i * N + j] - yref[i * N + j]);
                        worst = fmax(worst, err / mag);
                        CHECK_MSG(err <= 5e-3 * mag, "%s %s m=%zu (%d) [%zu,%zu]: %.7g vs %.7g",
                                  b->name, ia_dtype_name(type), m, src, i, j, (double)y[i * N + j],
                                  (double)yref[i * N + j]);
                    }
            }
        }
    next:
        b->weight_free(wpf);
        b->weight_free(wpq);
        b->weight_free(wpd);
    }
    fprintf(stderr, "  %s: worst |y - y_f32| / sum|w x| = %.3g\n", b->name, worst);
    ia_threadpool_destroy(pool);
    free(wf);
    free(wd);
    free(x);
    free(y);
    free(yref);
    free(wq);
}

TEST_EACH_VARIANT(quant_linear, check_linear)

TEST(quant_pack_errors) {
    const ia_backend *b = ia_backend_cpu();
    float wf[3 * 96] = {0};
    ia_tensor t = {.name = "blk.0.ffn_down.weight",
                   .dtype = IA_DTYPE_F32,
                   .ndim = 2,
                   .shape = {3, 96},
                   .data = wf};
    const ia_tensor *p[] = {&t};
    ia_packed_weight *w = NULL;
    CHECK_ERR(b->weight_pack(p, 1, IA_DTYPE_Q4_K, &w), IA_ERANGE, "blk.0.ffn_down.weight");
    CHECK(w == NULL);
    CHECK_ERR(b->weight_pack(p, 1, IA_DTYPE_Q8_K, &w), IA_EUNSUPPORTED, "q8_k");
    /* a corrupted block in a quantised source names the tensor and the row */
    uint8_t q[3 * 3 * 34];
    CHECK_OK(ia_quantize_row(IA_DTYPE_Q8_0, wf, q, 3 * 96));
    q[2 * 102 + 34 + 1] = 0x7c; /* row 2, block 1: d = inf */
    q[2 * 102 + 34] = 0;
    ia_tensor tq = {.name = "blk.3.attn_q.weight",
                    .dtype = IA_DTYPE_Q8_0,
                    .ndim = 2,
                    .shape = {3, 96},
                    .data = q};
    const ia_tensor *pq[] = {&tq};
    CHECK_ERR(b->weight_pack(pq, 1, IA_DTYPE_Q8_0, &w), IA_EPARSE, "blk.3.attn_q.weight' (row 2)");
    /* a quantised source of another type cannot be repacked */
    CHECK_ERR(b->weight_pack(pq, 1, IA_DTYPE_Q4_0, &w), IA_EUNSUPPORTED, "q8_0");
    int32_t bad[3 * 96] = {0};
    ia_tensor ti = {.name = "idx", .dtype = IA_DTYPE_I32, .ndim = 2, .shape = {3, 96}, .data = bad};
    const ia_tensor *pi[] = {&ti};
    CHECK_ERR(b->weight_pack(pi, 1, IA_DTYPE_Q8_0, &w), IA_EUNSUPPORTED, "idx");
}
