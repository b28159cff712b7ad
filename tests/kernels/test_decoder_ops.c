/*
 * Tests for the CPU backend's decoder ops (RMSNorm with the residual add,
 * RoPE in both pairings, SwiGLU, attention against a KV cache), every
 * variant this CPU can run, against double-precision references written
 * here. Shapes cover the vector paths (head_dim a multiple of 8 and 16) and
 * the generic fallbacks (odd widths), GQA, sliding windows, f16 caches and
 * queries that start deep in the cache.
 */
#include "ia/kernels.h"
#include "kernels_test_util.h"
#include "test.h"

/* ---- RMSNorm ----------------------------------------------------------------------------- */

static void rms_case(const ia_backend *b, size_t rows, size_t cols, bool residual, bool alias,
                     ia_threadpool *pool) {
    size_t ld = cols + 3;
    float *x = malloc(rows * ld * sizeof *x), *r = malloc(rows * ld * sizeof *r);
    float *r0 = malloc(rows * ld * sizeof *r0), *o = malloc(rows * ld * sizeof *o);
    float *g = malloc(cols * sizeof *g);
    double *want = malloc(rows * cols * sizeof *want), *sum = malloc(cols * sizeof *sum);
    rng_fill(x, rows * ld, -2.0f, 2.0f);
    rng_fill(r, rows * ld, -1.0f, 1.0f);
    rng_fill(g, cols, 0.5f, 1.5f);
    memcpy(r0, r, rows * ld * sizeof *r);
    for (size_t i = 0; i < rows; i++) {
        double sq = 0;
        for (size_t c = 0; c < cols; c++) {
            sum[c] = (double)x[i * ld + c] + (residual ? r[i * ld + c] : 0.0);
            sq += sum[c] * sum[c];
        }
        for (size_t c = 0; c < cols; c++)
            want[i * cols + c] = sum[c] / sqrt(sq / (double)cols + 1e-6) * g[c];
    }
    float *out = alias ? x : o;
    b->rms_norm(x, ld, residual ? r : NULL, ld, g, 1e-6f, rows, cols, out, ld, pool);
    double worst = 0, worst_res = 0;
    for (size_t i = 0; i < rows; i++)
        for (size_t c = 0; c < cols; c++) {
            worst = fmax(worst, fabs(out[i * ld + c] - want[i * cols + c]));
            if (residual && !alias) /* the stream keeps x + residual */
                worst_res = fmax(worst_res, fabs(r[i * ld + c] - x[i * ld + c] - r0[i * ld + c]));
        }
    CHECK_MSG(worst < 2e-5, "%s rms_norm rows=%zu cols=%zu residual=%d alias=%d: error %g", b->name,
              rows, cols, residual, alias, worst);
    CHECK_MSG(worst_res < 1e-6, "%s rms_norm residual stream: error %g", b->name, worst_res);
    free(x);
    free(r);
    free(r0);
    free(o);
    free(g);
    free(want);
    free(sum);
}

static void rms_cases(const ia_backend *b) {
    rng_seed(11);
    ia_threadpool *pool = ia_threadpool_create(3);
    rms_case(b, 37, 64, true, false, pool);
    rms_case(b, 37, 64, false, true, pool);
    rms_case(b, 5, 37, true, false, NULL);
    rms_case(b, 3, 13, false, false, NULL);
    rms_case(b, 1, 4096, true, false, pool);
    ia_threadpool_destroy(pool);
}
TEST_EACH_VARIANT(rms_norm_matches_reference, rms_cases)

/* ---- RoPE ------------------------------------------------------------------------------- */

static void rope_case(const ia_backend *b, size_t rows, int heads, int hd, size_t pos0,
                      ia_rope_mode mode) {
    size_t ld = (size_t)(heads * hd) + 5;
    int half = hd / 2;
    float *x = malloc(rows * ld * sizeof *x), *inv = malloc((size_t)half * sizeof *inv);
    double *want = malloc(rows * ld * sizeof *want);
    rng_fill(x, rows * ld, -1.0f, 1.0f);
    for (int i = 0; i < half; i++)
        inv[i] = 1.0f / powf(10000.0f, (float)(2 * i) / (float)hd);
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < ld; c++)
            want[r * ld + c] = x[r * ld + c];
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < half; i++) {
                size_t a = r * ld + (size_t)(h * hd) + (mode == IA_ROPE_NEOX ? (size_t)i : 2u * i);
                size_t o = a + (mode == IA_ROPE_NEOX ? (size_t)half : 1u);
                double ang = (double)((float)(pos0 + r) * inv[i]);
                want[a] = x[a] * cos(ang) - x[o] * sin(ang);
                want[o] = x[o] * cos(ang) + x[a] * sin(ang);
            }
    }
    b->rope(x, ld, rows, heads, hd, pos0, inv, mode);
    double worst = 0;
    for (size_t i = 0; i < rows * ld; i++)
        worst = fmax(worst, fabs(x[i] - want[i]));
    CHECK_MSG(worst < 1e-5, "%s rope rows=%zu heads=%d hd=%d pos0=%zu mode=%d: error %g", b->name,
              rows, heads, hd, pos0, (int)mode, worst);
    free(x);
    free(inv);
    free(want);
}

/* NEOX on rows equals ADJACENT on the same rows permuted the llama.cpp way. */
static void rope_permuted_case(const ia_backend *b, int hd) {
    int half = hd / 2;
    float x[256], y[256], inv[128] = {0};
    rng_fill(x, (size_t)hd, -1.0f, 1.0f);
    for (int i = 0; i < half; i++) {
        inv[i] = 1.0f / powf(500000.0f, (float)(2 * i) / (float)hd);
        y[2 * i] = x[i];
        y[2 * i + 1] = x[i + half];
    }
    b->rope(x, (size_t)hd, 1, 1, hd, 37, inv, IA_ROPE_NEOX);
    b->rope(y, (size_t)hd, 1, 1, hd, 37, inv, IA_ROPE_ADJACENT);
    double worst = 0;
    for (int i = 0; i < half; i++)
        worst = fmax(worst, fmax(fabs(x[i] - y[2 * i]), fabs(x[i + half] - y[2 * i + 1])));
    CHECK_MSG(worst < 1e-6, "%s rope NEOX vs permuted ADJACENT hd=%d: %g", b->name, hd, worst);
}

static void rope_cases(const ia_backend *b) {
    rng_seed(12);
    for (int m = 0; m < 2; m++) {
        rope_case(b, 7, 3, 16, 0, (ia_rope_mode)m);
        rope_case(b, 4, 2, 12, 100, (ia_rope_mode)m);
        rope_case(b, 3, 4, 128, 4000, (ia_rope_mode)m);
        rope_case(b, 2, 1, 2, 9, (ia_rope_mode)m);
    }
    rope_permuted_case(b, 16);
    rope_permuted_case(b, 128);
    rope_permuted_case(b, 24);
}
TEST_EACH_VARIANT(rope_matches_reference, rope_cases)

/* ---- SwiGLU ------------------------------------------------------------------------------ */

static void swiglu_cases(const ia_backend *b) {
    rng_seed(13);
    size_t sizes[] = {1, 7, 8, 37, 96};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t cols = sizes[s], rows = 3, ld = 2 * cols + 1;
        float *buf = malloc(rows * ld * sizeof *buf);
        double *want = malloc(rows * cols * sizeof *want);
        rng_fill(buf, rows * ld, -8.0f, 8.0f);
        for (size_t r = 0; r < rows; r++)
            for (size_t c = 0; c < cols; c++) {
                double g = buf[r * ld + c], u = buf[r * ld + cols + c];
                want[r * cols + c] = g / (1.0 + exp(-g)) * u;
            }
        /* out aliases gate, as the decoder calls it */
        b->swiglu(buf, ld, buf + cols, ld, rows, cols, buf, ld);
        double worst = 0;
        for (size_t r = 0; r < rows; r++)
            for (size_t c = 0; c < cols; c++)
                worst = fmax(worst, fabs(buf[r * ld + c] - want[r * cols + c]) /
                                        fmax(1.0, fabs(want[r * cols + c])));
        CHECK_MSG(worst < 2e-6, "%s swiglu cols=%zu: relative error %g", b->name, cols, worst);
        free(buf);
        free(want);
    }
}
TEST_EACH_VARIANT(swiglu_matches_reference, swiglu_cases)

/* ---- KV attention ------------------------------------------------------------------------ */

static void kv_case(const ia_backend *b, int heads, int kv_heads, int hd, size_t pos0, size_t n_q,
                    size_t window, ia_dtype dt, ia_threadpool *pool) {
    size_t total = pos0 + n_q, ld_kv = (size_t)(kv_heads * hd) + 4;
    size_t ld_q = (size_t)(heads * hd) + 3, ld_out = (size_t)(heads * hd) + 1;
    float *q = malloc(n_q * ld_q * sizeof *q), *out = malloc(n_q * ld_out * sizeof *out);
    float *kf = malloc(total * ld_kv * sizeof *kf), *vf = malloc(total * ld_kv * sizeof *vf);
    uint16_t *kh = malloc(total * ld_kv * sizeof *kh), *vh = malloc(total * ld_kv * sizeof *vh);
    rng_fill(q, n_q * ld_q, -1.0f, 1.0f);
    rng_fill(kf, total * ld_kv, -1.0f, 1.0f);
    rng_fill(vf, total * ld_kv, -1.0f, 1.0f);
    if (dt == IA_DTYPE_F16)
        for (size_t i = 0; i < total * ld_kv; i++) {
            kh[i] = ia_f32_to_f16(kf[i]);
            vh[i] = ia_f32_to_f16(vf[i]);
            kf[i] = ia_f16_to_f32(kh[i]); /* the reference sees the stored values */
            vf[i] = ia_f16_to_f32(vh[i]);
        }
    float scale = 1.0f / sqrtf((float)hd);
    ia_kv_attention_args a = {
        .q = q,
        .ld_q = ld_q,
        .k = dt == IA_DTYPE_F16 ? (const void *)kh : kf,
        .v = dt == IA_DTYPE_F16 ? (const void *)vh : vf,
        .ld_kv = ld_kv,
        .kv_dtype = dt,
        .out = out,
        .ld_out = ld_out,
        .n_q = n_q,
        .pos0 = pos0,
        .n_heads = heads,
        .n_kv_heads = kv_heads,
        .head_dim = hd,
        .window = window,
        .scale = scale,
    };
    b->kv_attention(&a, pool);
    double worst = 0, *w = malloc(total * sizeof *w);
    for (size_t i = 0; i < n_q; i++)
        for (int h = 0; h < heads; h++) {
            size_t p = pos0 + i, lo = window && p + 1 > window ? p + 1 - window : 0;
            int g = h / (heads / kv_heads);
            double mx = -INFINITY, sum = 0;
            for (size_t j = lo; j <= p; j++) {
                double s = 0;
                for (int d = 0; d < hd; d++)
                    s += (double)q[i * ld_q + (size_t)(h * hd + d)] *
                         kf[j * ld_kv + (size_t)(g * hd + d)];
                w[j] = s * scale;
                mx = fmax(mx, w[j]);
            }
            for (size_t j = lo; j <= p; j++)
                sum += (w[j] = exp(w[j] - mx));
            for (int d = 0; d < hd; d++) {
                double o = 0;
                for (size_t j = lo; j <= p; j++)
                    o += w[j] * vf[j * ld_kv + (size_t)(g * hd + d)];
                worst = fmax(worst, fabs(o / sum - out[i * ld_out + (size_t)(h * hd + d)]));
            }
        }
    CHECK_MSG(worst < 2e-6,
              "%s kv_attention heads=%d/%d hd=%d pos0=%zu n_q=%zu window=%zu %s: error %g", b->name,
              heads, kv_heads, hd, pos0, n_q, window, ia_dtype_name(dt), worst);
    free(w);
    free(q);
    free(out);
    free(kf);
    free(vf);
    free(kh);
    free(vh);
}

static void kv_cases(const ia_backend *b) {
    rng_seed(14);
    ia_threadpool *pool = ia_threadpool_create(3);
    for (int t = 0; t < 2; t++) {
        ia_dtype dt = t ? IA_DTYPE_F16 : IA_DTYPE_F32;
        kv_case(b, 8, 2, 8, 0, 20, 0, dt, pool);   /* prefill, GQA 4 */
        kv_case(b, 8, 2, 8, 0, 20, 6, dt, pool);   /* sliding window */
        kv_case(b, 4, 4, 64, 150, 1, 0, dt, pool); /* decode deep in the cache (blocks of keys) */
        kv_case(b, 4, 1, 64, 150, 1, 32, dt, NULL);
        kv_case(b, 4, 2, 12, 7, 40, 0, dt, pool); /* generic fallback head size */
        kv_case(b, 2, 1, 128, 61, 3, 0, dt, pool);
        kv_case(b, 3, 3, 16, 0, 1, 0, dt, NULL); /* a single token */
        /* blocked prefill (blocks of 16 queries, 64 keys): several key
         * blocks, a partial last query block, a chunk deep in the cache,
         * windows that start mid-block, head sizes with a 64-wide part and
         * 8-wide rest, GQA */
        kv_case(b, 2, 2, 64, 0, 150, 0, dt, pool);
        kv_case(b, 4, 2, 32, 70, 37, 0, dt, pool);
        kv_case(b, 2, 1, 96, 13, 90, 21, dt, pool);
        kv_case(b, 2, 2, 128, 5, 20, 70, dt, NULL);
    }
    ia_threadpool_destroy(pool);
}
TEST_EACH_VARIANT(kv_attention_matches_reference, kv_cases)
