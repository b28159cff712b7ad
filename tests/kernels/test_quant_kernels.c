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
 *     linear on the dequantised weights, m = 1, 3, 5, 17, 64, 65 (decode
 *     kernels, and tiles of 64 activation rows with a partial one), with bias and
 *     activation. The difference is the activations' 8-bit quantisation:
 *     bounded by 5e-3 of sum |w x| per output (measured: 1.0e-3 for the
 *     32-element types, 2.5e-3 for the k-quants, whose Q8_K activations
 *     have one scale per 256 values, on inputs whose scale varies per 32);
 *   - each vector variant's activation quantisers (Q8_K, the 32-element
 *     blocks and their int16 form for the Q8_0 tiles) byte-identical to the
 *     scalar ones, NaN / inf / zero blocks included;
 *   - Q8_0's interleaved tiles (quant_gemm.c): exact against the reference,
 *     bit-identical across variants, and independent of m (a row gives the
 *     same bits alone and in a batch);
 *   - packing errors name the tensor.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* A variant's activation quantisers against the scalar ones, byte for
 * byte: random values of several magnitudes, and blocks holding NaN, inf,
 * all zeros, -0, subnormals and exact halves (round to even). */
static void check_act_quant(const cpu_quant_kernels *qk, const char *variant) {
    enum { K = 2048 };
    static float x[K];
    static uint8_t a_ref[K / 256 * 292], a_var[K / 256 * 292];
    static cpu_qa32 q_ref[K / 32], q_var[K / 32];
    CHECK(qk->quantize_q8k != NULL && qk->quantize_qa32 != NULL);
    if (!qk->quantize_q8k || !qk->quantize_qa32)
        return;
    rng_seed(11);
    for (int round = 0; round < 4; round++) {
        fill_varied(x, K);
        if (round > 0)
            for (size_t i = 0; i < K; i += 97)
                x[i] *= (float)(round * 40);
        if (round == 2) {
            x[5] = NAN;
            x[300] = INFINITY;
            x[301] = -INFINITY;
            for (int i = 512; i < 544; i++)
                x[i] = 0.0f;
            for (int i = 768; i < 1024; i++)
                x[i] = 0.0f;
            x[600] = -0.0f;
            x[700] = 1e-40f;
            for (int i = 1024; i < 1280; i++) /* levels hit exact .5 */
                x[i] = (float)(i % 9 - 4) * 0.5f + (i == 1024 ? 127.0f : 0.0f);
        }
        if (round == 3)
            for (int i = 1280; i < 1536; i++) /* one block of NaN */
                x[i] = NAN;
        cpu_quantize_q8k(x, a_ref, K);
        qk->quantize_q8k(x, a_var, K);
        cpu_quantize_qa32(x, q_ref, K);
        qk->quantize_qa32(x, q_var, K);
        for (size_t b = 0; b < K / 256; b++)
            CHECK_MSG(memcmp(a_ref + b * 292, a_var + b * 292, 292) == 0,
                      "%s q8_k round %d block %zu differs", variant, round, b);
        for (size_t b = 0; b < K / 32; b++)
            CHECK_MSG(memcmp(&q_ref[b], &q_var[b], sizeof q_ref[b]) == 0,
                      "%s qa32 round %d block %zu differs", variant, round, b);
        /* Q8_0 tiles' rows: the same levels widened, the same scales */
        if (qk->quantize_q8_0_i16) {
            static int16_t q16[K];
            static float d16[K / 32];
            qk->quantize_q8_0_i16(x, q16, d16, K);
            for (size_t b = 0; b < K / 32; b++) {
                bool same = memcmp(&d16[b], &q_ref[b].d, sizeof d16[b]) == 0;
                for (int j = 0; j < 32; j++)
                    same = same && q16[32 * b + (size_t)j] == q_ref[b].qs[j];
                CHECK_MSG(same, "%s q8_0 int16 rows round %d block %zu differ", variant, round, b);
            }
        }
    }
}

/* Dot products on blocks of random bytes (every scale, minimum, high bit and
 * level pattern, e.g. Q6_K scales of -128 and Q2_K's 15 x 3) against
 * activations mostly at +-127: the extremes of the integer paths (vpmaddubsw
 * saturation, the i16 sums), checked as check_dots does. */
static void check_dots_random(const cpu_quant_kernels *qk, const char *variant) {
    enum { K = 1024, M = 4 };
    static float wd[K], xf[M][K], xd[M][K];
    static uint8_t wq[K / 32 * 34 + K / 256 * 292], aq[M][K / 256 * 292 + K / 32 * 40];
    /* where each type keeps its f16 scale (and minimum, or -1) */
    static const struct {
        ia_dtype t;
        int d, m;
    } f16s[] = {{IA_DTYPE_Q8_0, 0, -1},   {IA_DTYPE_Q4_0, 0, -1}, {IA_DTYPE_Q4_1, 0, 2},
                {IA_DTYPE_Q5_0, 0, -1},   {IA_DTYPE_Q5_1, 0, 2},  {IA_DTYPE_Q2_K, 80, 82},
                {IA_DTYPE_Q3_K, 108, -1}, {IA_DTYPE_Q4_K, 0, 2},  {IA_DTYPE_Q5_K, 0, 2},
                {IA_DTYPE_Q6_K, 208, -1}};
    rng_seed(5);
    for (size_t t = 0; t < sizeof f16s / sizeof f16s[0]; t++) {
        ia_dtype type = f16s[t].t;
        const ia_dtype_info *info = ia_dtype_get_info(type);
        bool kq = is_k(type);
        size_t nb = K / info->block_elems;
        for (size_t i = 0; i < nb * info->block_bytes; i++)
            wq[i] = (uint8_t)(rng_uniform(0.0f, 256.0f));
        for (size_t b = 0; b < nb; b++) {
            uint8_t *blk = wq + b * info->block_bytes;
            uint16_t d = ia_f32_to_f16(rng_uniform(0.001f, 0.01f));
            memcpy(blk + f16s[t].d, &d, 2);
            if (f16s[t].m >= 0) {
                uint16_t mn = ia_f32_to_f16(rng_uniform(-0.01f, 0.01f));
                memcpy(blk + f16s[t].m, &mn, 2);
            }
        }
        CHECK_OK(ia_dequantize_row(type, wq, wd, K));
        for (int r = 0; r < M; r++) {
            for (size_t i = 0; i < K; i++) {
                float v = rng_uniform(-1.0f, 1.0f);
                xf[r][i] = fabsf(v) < 0.6f ? (v < 0 ? -1.0f : 1.0f) : v;
            }
            if (kq)
                cpu_quantize_q8k(xf[r], aq[r], K);
            else
                cpu_quantize_qa32(xf[r], (cpu_qa32 *)aq[r], K);
            act_values(kq, aq[r], K, xd[r]);
        }
        for (int m = 1; m <= M; m++) {
            float out[M];
            qk->dot[type](nb, wq, aq, sizeof aq[0], m, out);
            for (int r = 0; r < m; r++) {
                double ref = 0, mag = 0;
                for (size_t i = 0; i < K; i++) {
                    ref += (double)wd[i] * xd[r][i];
                    mag += fabs((double)wd[i] * xd[r][i]);
                }
                CHECK_MSG(fabs(out[r] - ref) <= 1e-5 * mag + 1e-6,
                          "%s %s random blocks m=%d row %d: %.9g vs %.9g (|w a| %.6g)", variant,
                          ia_dtype_name(type), m, r, (double)out[r], ref, mag);
            }
        }
    }
}

TEST(quant_dot_generic) {
    check_dots(&cpu_quant_generic, "generic");
    check_dots_random(&cpu_quant_generic, "generic");
}

TEST(quant_act_avx2) {
    if (!cpu_get_features()->avx2)
        SKIP("this CPU lacks AVX2+FMA");
    CHECK(cpu_quant_avx2.quantize_q8_0_i16 != NULL);
    check_act_quant(&cpu_quant_avx2, "avx2");
}

TEST(quant_act_avx512_vnni) {
    if (!cpu_get_features()->avx512_vnni)
        SKIP("this CPU lacks AVX-512 VNNI");
    check_act_quant(&cpu_quant_avx512, "avx512-vnni");
}

TEST(quant_dot_avx2) {
    if (!cpu_get_features()->avx2)
        SKIP("this CPU lacks AVX2+FMA");
    check_dots(&cpu_quant_avx2, "avx2");
    check_dots_random(&cpu_quant_avx2, "avx2");
}

TEST(quant_dot_avx512_vnni) {
    if (!cpu_get_features()->avx512_vnni)
        SKIP("this CPU lacks AVX-512 VNNI");
    check_dots(&cpu_quant_avx512, "avx512-vnni");
    check_dots_random(&cpu_quant_avx512, "avx512-vnni");
}

/* linear on each weight type vs the f32 linear of the dequantised weights. */
static void check_linear(const ia_backend *b) {
    enum { N = 37, K = 512 };
    static const size_t ms[] = {1, 3, 5, 17, 64, 65};
    float *wf = malloc(N * K * sizeof *wf), *wd = malloc(N * K * sizeof *wd);
    float *x = malloc(65 * K * sizeof *x), bias[N];
    float *y = malloc(65 * N * sizeof *y), *yref = malloc(65 * N * sizeof *yref);
    uint8_t *wq = malloc(N * K / 32 * 34 + N * K / 256 * 292);
    ia_threadpool *pool = ia_threadpool_create(2);
    rng_seed(7);
    fill_varied(wf, N * K);
    fill_varied(x, 65 * K);
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

/* Q8_0 (quant_gemm.c): random weight bytes (levels -128..127, every scale)
 * packed as already-quantised tensors, and activations mostly at +-1 so that
 * many quantise to +-127: the extremes of the int16 products. Checked three
 * ways: against the double reference of the same quantised operands
 * (1e-5 of sum |w a|); bit for bit against the generic variant (every
 * vector tile must compute the same fused sums); and m-independence - the
 * whole product of M rows, in one call with bias and GELU on a pool, gives
 * every row the bits of that row alone (m = 1) and of calls of m = 3 (the
 * decode path), so batching requests cannot change a response. N is not a
 * multiple of 16 (padded tile) and K has more than 64 blocks (the
 * quantiser's chunks). */
enum { Q8N = 45, Q8K = 70 * 32, Q8M = 70 };

static void q8_0_operands(uint8_t *wq, float *wd, float *x, float *bias) {
    rng_seed(99);
    size_t nb = (size_t)Q8N * Q8K / 32;
    for (size_t i = 0; i < nb * 34; i++)
        wq[i] = (uint8_t)rng_uniform(0.0f, 256.0f);
    for (size_t b = 0; b < nb; b++) {
        uint16_t d = ia_f32_to_f16(rng_uniform(0.0005f, 0.02f) * (b % 7 == 3 ? 50.0f : 1.0f));
        memcpy(wq + b * 34, &d, 2);
        if (b % 11 == 5) /* a block of the extreme level only */
            memset(wq + b * 34 + 2, 0x80, 32);
    }
    CHECK_OK(ia_dequantize_row(IA_DTYPE_Q8_0, wq, wd, (size_t)Q8N * Q8K));
    for (size_t i = 0; i < (size_t)Q8M * Q8K; i++) {
        float v = rng_uniform(-1.0f, 1.0f);
        x[i] = fabsf(v) < 0.6f ? (v < 0 ? -1.0f : 1.0f) : v * (i % 97 == 0 ? 30.0f : 1.0f);
    }
    rng_fill(bias, Q8N, -1.0f, 1.0f);
}

static ia_packed_weight *q8_0_pack(const ia_backend *b, const uint8_t *wq) {
    ia_tensor tq = {
        .name = "w.q8_0", .dtype = IA_DTYPE_Q8_0, .ndim = 2, .shape = {Q8N, Q8K}, .data = wq};
    const ia_tensor *pq[] = {&tq};
    ia_packed_weight *w = NULL;
    CHECK_OK(b->weight_pack(pq, 1, IA_DTYPE_Q8_0, &w));
    return w;
}

static void check_q8_0(const ia_backend *b) {
    const ia_backend *gen = ia_backend_cpu_variant("generic");
    uint8_t *wq = malloc((size_t)Q8N * Q8K / 32 * 34);
    float *wd = malloc((size_t)Q8N * Q8K * sizeof *wd), *x = malloc((size_t)Q8M * Q8K * sizeof *x);
    float *xd = malloc(Q8K * sizeof *xd), bias[Q8N];
    cpu_qa32 *aq = malloc(Q8K / 32 * sizeof *aq);
    float *y = malloc((size_t)Q8M * Q8N * sizeof *y), *y1 = malloc((size_t)Q8M * Q8N * sizeof *y1);
    ia_threadpool *pool = ia_threadpool_create(2);
    q8_0_operands(wq, wd, x, bias);
    ia_packed_weight *w = q8_0_pack(b, wq), *wg = q8_0_pack(gen, wq);
    if (!w || !wg)
        goto done;

    /* exact integer sums: the double reference of the quantised operands */
    b->linear(w, NULL, IA_ACT_NONE, x, Q8K, y, Q8N, Q8M, pool);
    for (size_t i = 0; i < Q8M; i++) {
        cpu_quantize_qa32(x + i * Q8K, aq, Q8K);
        act_values(false, aq, Q8K, xd);
        for (size_t j = 0; j < Q8N; j++) {
            double ref = 0, mag = 0;
            for (size_t kk = 0; kk < Q8K; kk++) {
                ref += (double)wd[j * Q8K + kk] * xd[kk];
                mag += fabs((double)wd[j * Q8K + kk] * xd[kk]);
            }
            CHECK_MSG(fabs(y[i * Q8N + j] - ref) <= 1e-5 * mag + 1e-6,
                      "%s q8_0 [%zu,%zu]: %.9g vs %.9g (|w a| %.6g)", b->name, i, j,
                      (double)y[i * Q8N + j], ref, mag);
        }
    }
    /* the same bits as the portable tile */
    gen->linear(wg, NULL, IA_ACT_NONE, x, Q8K, y1, Q8N, Q8M, NULL);
    CHECK_MSG(memcmp(y, y1, (size_t)Q8M * Q8N * sizeof *y) == 0,
              "%s q8_0 sums differ from the generic tile's", b->name);

    /* m-independence, with bias and activation */
    for (int with = 0; with < 2; with++) {
        const float *bs = with ? bias : NULL;
        ia_activation act = with ? IA_ACT_GELU_ERF : IA_ACT_NONE;
        b->linear(w, bs, act, x, Q8K, y, Q8N, Q8M, pool);
        for (size_t i = 0; i < Q8M; i++)
            b->linear(w, bs, act, x + i * Q8K, Q8K, y1 + i * Q8N, Q8N, 1, NULL);
        for (size_t i = 0; i < Q8M; i++)
            CHECK_MSG(memcmp(y + i * Q8N, y1 + i * Q8N, Q8N * sizeof *y) == 0,
                      "%s q8_0 row %zu of %d differs from the row alone (bias %d)", b->name, i, Q8M,
                      with);
        for (size_t i = 0; i < Q8M; i += 3) {
            size_t mm = Q8M - i < 3 ? Q8M - i : 3;
            b->linear(w, bs, act, x + i * Q8K, Q8K, y1 + i * Q8N, Q8N, mm, pool);
        }
        CHECK_MSG(memcmp(y, y1, (size_t)Q8M * Q8N * sizeof *y) == 0,
                  "%s q8_0 rows in calls of 3 differ from the whole product (bias %d)", b->name,
                  with);
    }
done:
    b->weight_free(w);
    gen->weight_free(wg);
    ia_threadpool_destroy(pool);
    free(wq);
    free(wd);
    free(x);
    free(xd);
    free(aq);
    free(y);
    free(y1);
}

TEST_EACH_VARIANT(quant_q8_0_gemm, check_q8_0)

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
