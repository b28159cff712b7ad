/*
 * Tests for the CPU backend's ops other than linear (layer norm, attention,
 * activations, softmax, embedding gather, pooling, L2 normalisation), every
 * variant this CPU can run, against double-precision references written here.
 */
#include "ia/kernels.h"
#include "kernels_test_util.h"
#include "test.h"

/* ---- layer norm ---------------------------------------------------------------------- */

static void ref_layer_norm(const float *x, const float *res, const float *g, const float *bt,
                           double eps, size_t cols, double *out) {
    double mean = 0, var = 0;
    for (size_t c = 0; c < cols; c++)
        mean += (double)x[c] + (res ? res[c] : 0.0);
    mean /= (double)cols;
    for (size_t c = 0; c < cols; c++) {
        double d = (double)x[c] + (res ? res[c] : 0.0) - mean;
        var += d * d;
    }
    var /= (double)cols;
    for (size_t c = 0; c < cols; c++)
        out[c] = ((double)x[c] + (res ? res[c] : 0.0) - mean) / sqrt(var + eps) * g[c] + bt[c];
}

/* mode 0: separate out; 1: out aliases x; 2: out aliases residual. */
static void norm_case(const ia_backend *b, size_t rows, size_t cols, bool residual, int mode,
                      float offset, ia_threadpool *pool) {
    size_t ld = cols + 2;
    float *x = malloc(rows * ld * sizeof *x), *r = malloc(rows * ld * sizeof *r);
    float *o = malloc(rows * ld * sizeof *o), *g = malloc(cols * sizeof *g);
    float *bt = malloc(cols * sizeof *bt);
    double *want = malloc(rows * cols * sizeof *want);
    rng_fill(x, rows * ld, offset - 2.0f, offset + 2.0f);
    rng_fill(r, rows * ld, -1.0f, 1.0f);
    rng_fill(g, cols, 0.5f, 1.5f);
    rng_fill(bt, cols, -0.5f, 0.5f);
    for (size_t i = 0; i < rows; i++)
        ref_layer_norm(x + i * ld, residual ? r + i * ld : NULL, g, bt, 1e-12, cols,
                       want + i * cols);
    float *out = mode == 1 ? x : mode == 2 ? r : o;
    b->layer_norm(x, ld, residual ? r : NULL, ld, g, bt, 1e-12f, rows, cols, out, ld, pool);
    double worst = 0;
    for (size_t i = 0; i < rows; i++)
        for (size_t c = 0; c < cols; c++)
            worst = fmax(worst, fabs(out[i * ld + c] - want[i * cols + c]));
    CHECK_MSG(worst < 2e-5, "%s layer_norm rows=%zu cols=%zu residual=%d mode=%d: error %g",
              b->name, rows, cols, residual, mode, worst);
    free(x);
    free(r);
    free(o);
    free(g);
    free(bt);
    free(want);
}

static void layer_norm_cases(const ia_backend *b) {
    rng_seed(1);
    ia_threadpool *pool = ia_threadpool_create(3);
    for (int mode = 0; mode < 3; mode++) {
        norm_case(b, 37, 384, true, mode, 0.0f, pool);
        norm_case(b, 5, 37, true, mode, 0.0f, NULL);
    }
    norm_case(b, 20, 384, false, 0, 0.0f, pool);
    norm_case(b, 3, 13, false, 1, 0.0f, NULL);
    /* a large common offset: one-pass variance would cancel catastrophically */
    norm_case(b, 9, 384, false, 0, 300.0f, pool);
    ia_threadpool_destroy(pool);
}
TEST_EACH_VARIANT(layer_norm_matches_reference, layer_norm_cases)

/* ---- attention ----------------------------------------------------------------------- */

static void ref_attention(const ia_attention_args *a, double *want, size_t ldw) {
    int hd = a->head_dim;
    for (size_t s = 0; s < a->n_seqs; s++) {
        size_t t0 = (size_t)a->seq_start[s], t1 = (size_t)a->seq_start[s + 1];
        for (int h = 0; h < a->n_heads; h++) {
            size_t off = (size_t)h * (size_t)hd;
            for (size_t i = t0; i < t1; i++) {
                size_t end = a->causal ? i + 1 : t1;
                double sc[600], mx = -INFINITY, sum = 0;
                for (size_t j = t0; j < end; j++) {
                    double d = 0;
                    for (int e = 0; e < hd; e++)
                        d += (double)a->q[i * a->ld_q + off + e] * a->k[j * a->ld_k + off + e];
                    sc[j - t0] = d * a->scale;
                    if (a->rel_bias)
                        sc[j - t0] +=
                            a->rel_bias[(size_t)((ptrdiff_t)j - (ptrdiff_t)i + a->rel_bias_offset) *
                                            (size_t)a->n_heads +
                                        (size_t)h];
                    mx = fmax(mx, sc[j - t0]);
                }
                for (size_t j = t0; j < end; j++)
                    sum += (sc[j - t0] = exp(sc[j - t0] - mx));
                for (int e = 0; e < hd; e++) {
                    double o = 0;
                    for (size_t j = t0; j < end; j++)
                        o += sc[j - t0] * a->v[j * a->ld_v + off + e];
                    want[i * ldw + off + e] = o / sum;
                }
            }
        }
    }
}

static void attention_case_biased(const ia_backend *b, const int32_t *lens, size_t n_seqs,
                                  int heads, int hd, bool causal, bool bias, ia_threadpool *pool) {
    int32_t starts[16] = {0}, longest = 1;
    for (size_t s = 0; s < n_seqs; s++) {
        starts[s + 1] = starts[s] + lens[s];
        longest = lens[s] > longest ? lens[s] : longest;
    }
    /* a relative-position bias table over every distance (MPNet-style) */
    size_t span = 2 * (size_t)longest - 1;
    float *rel = malloc(span * (size_t)heads * sizeof *rel);
    rng_fill(rel, span * (size_t)heads, -3.0f, 3.0f);
    size_t tokens = (size_t)starts[n_seqs], width = (size_t)heads * (size_t)hd;
    /* q, k and v inside one fused QKV row, as the model lays them out */
    size_t ld = 3 * width + 1, ldo = width + 3;
    float *qkv = malloc(tokens * ld * sizeof *qkv), *out = malloc(tokens * ldo * sizeof *out);
    double *want = malloc(tokens * width * sizeof *want);
    rng_fill(qkv, tokens * ld, -2.0f, 2.0f);
    for (size_t i = 0; i < tokens * ldo; i++)
        out[i] = 777.0f;
    ia_attention_args a = {.q = qkv,
                           .k = qkv + width,
                           .v = qkv + 2 * width,
                           .ld_q = ld,
                           .ld_k = ld,
                           .ld_v = ld,
                           .out = out,
                           .ld_out = ldo,
                           .seq_start = starts,
                           .n_seqs = n_seqs,
                           .n_heads = heads,
                           .head_dim = hd,
                           .scale = 1.0f / sqrtf((float)hd),
                           .causal = causal,
                           .rel_bias = bias ? rel : NULL,
                           .rel_bias_offset = longest - 1};
    ref_attention(&a, want, width);
    b->attention(&a, pool);
    double worst = 0;
    for (size_t t = 0; t < tokens; t++) {
        for (size_t e = 0; e < width; e++)
            worst = fmax(worst, fabs(out[t * ldo + e] - want[t * width + e]));
        for (size_t e = width; e < ldo; e++)
            CHECK(out[t * ldo + e] == 777.0f);
    }
    CHECK_MSG(worst < 2e-5, "%s attention heads=%d hd=%d causal=%d bias=%d: error %g", b->name,
              heads, hd, causal, bias, worst);
    free(rel);
    free(qkv);
    free(out);
    free(want);
}

static void attention_case(const ia_backend *b, const int32_t *lens, size_t n_seqs, int heads,
                           int hd, bool causal, ia_threadpool *pool) {
    attention_case_biased(b, lens, n_seqs, heads, hd, causal, false, pool);
    attention_case_biased(b, lens, n_seqs, heads, hd, causal, true, pool);
}

static void attention_cases(const ia_backend *b) {
    rng_seed(3);
    const int32_t lens[] = {1, 5, 17, 33, 70, 4};
    const int32_t long_seq[] = {300};
    for (int threads = 1; threads <= 3; threads++) {
        ia_threadpool *pool = threads > 1 ? ia_threadpool_create(threads) : NULL;
        for (int causal = 0; causal < 2; causal++) {
            attention_case(b, lens, 6, 3, 32, causal, pool);
            attention_case(b, lens, 6, 2, 8, causal, pool);
            attention_case(b, lens, 6, 2, 24, causal, pool);
            attention_case(b, lens, 3, 2, 20, causal, pool); /* not a multiple of 8 */
        }
        ia_threadpool_destroy(pool);
    }
    attention_case(b, long_seq, 1, 2, 32, false, NULL);
    attention_case(b, long_seq, 1, 1, 64, true, NULL);
}
TEST_EACH_VARIANT(attention_matches_reference, attention_cases)

/* ---- activations and softmax ---------------------------------------------------------- */

static double ref_act(ia_activation act, double x) {
    switch (act) {
    case IA_ACT_GELU_ERF:
        return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case IA_ACT_GELU_TANH:
        return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case IA_ACT_RELU:
        return x > 0 ? x : 0;
    case IA_ACT_SILU:
        return x / (1.0 + exp(-x));
    case IA_ACT_NONE:
        break;
    }
    return x;
}

static void activation_cases(const ia_backend *b) {
    enum { N = 4003 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    for (int i = 0; i < N; i++) /* a dense sweep of [-12, 12] plus extremes */
        x[i] = -12.0f + 24.0f * (float)i / (N - 1);
    x[0] = -100.0f;
    x[1] = 100.0f;
    x[2] = -1e-30f;
    x[3] = 0.0f;
    for (int act = IA_ACT_NONE; act <= IA_ACT_SILU; act++) {
        memcpy(y, x, N * sizeof *y);
        b->activate((ia_activation)act, y, N);
        double worst = 0;
        for (int i = 0; i < N; i++) {
            double want = ref_act((ia_activation)act, x[i]);
            double err = fabs(y[i] - want) / (1.0 + 0.25 * fabs(want));
            worst = fmax(worst, err);
        }
        CHECK_MSG(worst < 1.2e-6, "%s activation %d: error %g", b->name, act, worst);
    }
    free(x);
    free(y);
}
TEST_EACH_VARIANT(activations_match_reference, activation_cases)

static void softmax_cases(const ia_backend *b) {
    rng_seed(5);
    const size_t cols_list[] = {1, 7, 8, 37, 384};
    for (size_t ci = 0; ci < 5; ci++) {
        size_t cols = cols_list[ci], rows = 4, ld = cols + 1;
        float *x = malloc(rows * ld * sizeof *x), *orig = malloc(rows * ld * sizeof *orig);
        rng_fill(x, rows * ld, -20.0f, 20.0f);
        for (size_t c = 0; c < cols; c++)
            x[ld + c] += 90.0f; /* naive exp would overflow */
        x[2 * ld] = -INFINITY;  /* a masked entry */
        memcpy(orig, x, rows * ld * sizeof *x);
        if (cols == 1)
            x[2 * ld] = orig[2 * ld] = 3.0f;
        b->softmax(x, ld, rows, cols);
        for (size_t r = 0; r < rows; r++) {
            double mx = -INFINITY, sum = 0;
            for (size_t c = 0; c < cols; c++)
                mx = fmax(mx, orig[r * ld + c]);
            for (size_t c = 0; c < cols; c++)
                sum += exp(orig[r * ld + c] - mx);
            for (size_t c = 0; c < cols; c++) {
                double want = exp(orig[r * ld + c] - mx) / sum;
                CHECK_NEAR(x[r * ld + c], want, 1e-6 * want + 1e-9);
            }
            CHECK(x[r * ld + cols] == orig[r * ld + cols]);
        }
        free(x);
        free(orig);
    }
}
TEST_EACH_VARIANT(softmax_matches_reference, softmax_cases)

/* ---- gather, pool, L2 ------------------------------------------------------------------- */

static void gather_cases(const ia_backend *b) {
    rng_seed(9);
    enum { ROWS = 11, COLS = 19, N = 6 };
    float f32[ROWS * COLS];
    uint16_t f16[ROWS * COLS], b16[ROWS * COLS];
    rng_fill(f32, ROWS * COLS, -3.0f, 3.0f);
    for (int i = 0; i < ROWS * COLS; i++) {
        f16[i] = ia_f32_to_f16(f32[i]);
        b16[i] = ia_f32_to_bf16(f32[i]);
    }
    const int32_t ids[N] = {3, 0, 10, 3, 7, 1};
    const void *datas[3] = {f32, f16, b16};
    const ia_dtype types[3] = {IA_DTYPE_F32, IA_DTYPE_F16, IA_DTYPE_BF16};
    for (int t = 0; t < 3; t++) {
        ia_tensor table = {.dtype = types[t], .ndim = 2, .shape = {ROWS, COLS}, .data = datas[t]};
        float out[N * (COLS + 2)];
        for (int i = 0; i < N * (COLS + 2); i++)
            out[i] = 0.5f;
        for (int acc = 0; acc < 2; acc++) {
            b->embedding_gather(&table, ids, N, acc == 1, out, COLS + 2);
            for (int i = 0; i < N; i++)
                for (int c = 0; c < COLS; c++) {
                    size_t s = (size_t)ids[i] * COLS + (size_t)c;
                    float v = t == 0   ? f32[s]
                              : t == 1 ? ia_f16_to_f32(f16[s])
                                       : ia_bf16_to_f32(b16[s]);
                    CHECK(out[i * (COLS + 2) + c] == (acc ? v + v : v));
                }
            CHECK(out[COLS] == 0.5f);
        }
    }
}
TEST_EACH_VARIANT(embedding_gather_all_types, gather_cases)

static void pool_cases(const ia_backend *b) {
    rng_seed(11);
    enum { COLS = 21, LD = 23 };
    const int32_t starts[] = {0, 1, 6, 30};
    float x[30 * LD], out[3 * COLS];
    rng_fill(x, 30 * LD, -2.0f, 2.0f);
    for (int mode = IA_POOL_MEAN; mode <= IA_POOL_LAST; mode++) {
        b->pool((ia_pooling)mode, x, LD, COLS, starts, 3, out, COLS);
        for (int s = 0; s < 3; s++) {
            int t0 = starts[s], t1 = starts[s + 1], len = t1 - t0;
            for (int c = 0; c < COLS; c++) {
                double sum = 0, mx = -INFINITY;
                for (int t = t0; t < t1; t++) {
                    sum += x[t * LD + c];
                    mx = fmax(mx, x[t * LD + c]);
                }
                double want = mode == IA_POOL_MEAN            ? sum / len
                              : mode == IA_POOL_MEAN_SQRT_LEN ? sum / sqrt(len)
                              : mode == IA_POOL_MAX           ? mx
                              : mode == IA_POOL_CLS           ? x[t0 * LD + c]
                                                              : x[(t1 - 1) * LD + c];
                CHECK_NEAR(out[s * COLS + c], want, 1e-6);
            }
        }
    }
}
TEST_EACH_VARIANT(pool_all_modes, pool_cases)

static void l2_cases(const ia_backend *b) {
    rng_seed(13);
    enum { ROWS = 4, COLS = 385, LD = 390 };
    float *x = malloc(ROWS * LD * sizeof *x), *orig = malloc(ROWS * LD * sizeof *orig);
    rng_fill(x, ROWS * LD, -1.0f, 1.0f);
    for (int c = 0; c < COLS; c++)
        x[2 * LD + c] = 0.0f; /* a zero row stays zero */
    memcpy(orig, x, ROWS * LD * sizeof *x);
    b->l2_normalize(x, LD, ROWS, COLS);
    for (int r = 0; r < ROWS; r++) {
        double sq = 0;
        for (int c = 0; c < COLS; c++)
            sq += (double)orig[r * LD + c] * orig[r * LD + c];
        for (int c = 0; c < COLS; c++) {
            double want = sq > 0 ? orig[r * LD + c] / sqrt(sq) : 0.0;
            CHECK_NEAR(x[r * LD + c], want, 1e-6);
        }
        CHECK(x[r * LD + COLS] == orig[r * LD + COLS]);
    }
    free(x);
    free(orig);
}
TEST_EACH_VARIANT(l2_normalize_matches_reference, l2_cases)
