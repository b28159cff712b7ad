/*
 * Tests for the CPU backend's weight packing and linear op, every variant
 * this CPU can run, against a double-precision reference written here:
 * odd shapes (edges in m, n and k), fused multi-part weights, f32/f16/bf16
 * sources, f32, f16 and bf16 compute, every activation, 1-3 threads; and
 * the decode GEMV kernels (m = 1..4) against the generic variant's tiled
 * path on the same packed values; and that every row of y has the same bits
 * whatever the number of rows multiplied with it and the thread count.
 */
#include "ia/kernels.h"
#include "kernels_test_util.h"
#include "test.h"

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

typedef struct lin_case {
    size_t m, n, k;
    int n_parts;
    ia_dtype src, compute;
    ia_activation act;
    bool bias;
} lin_case;

/* Source weights in dtype src: stores raw values and the f32 values they
 * represent (what the kernel must multiply by, before bf16 compute rounding). */
static void make_weights(ia_dtype src, size_t count, void *raw, float *val) {
    for (size_t i = 0; i < count; i++) {
        float f = rng_uniform(-1.0f, 1.0f);
        if (src == IA_DTYPE_F32) {
            ((float *)raw)[i] = f;
            val[i] = f;
        } else if (src == IA_DTYPE_F16) {
            uint16_t h = ia_f32_to_f16(f);
            ((uint16_t *)raw)[i] = h;
            val[i] = ia_f16_to_f32(h);
        } else {
            uint16_t h = ia_f32_to_bf16(f);
            ((uint16_t *)raw)[i] = h;
            val[i] = ia_bf16_to_f32(h);
        }
    }
}

static void run_case(const ia_backend *b, const lin_case *c, ia_threadpool *pool) {
    size_t m = c->m, n = c->n, k = c->k, ldx = k + 3, ldy = n + 5;
    size_t esz = c->src == IA_DTYPE_F32 ? 4 : 2;
    void *raw = malloc(n * k * esz);
    float *wv = malloc(n * k * sizeof *wv);
    float *x = malloc(m * ldx * sizeof *x);
    float *y = malloc(m * ldy * sizeof *y);
    float *bias = malloc(n * sizeof *bias);
    make_weights(c->src, n * k, raw, wv);
    rng_fill(x, m * ldx, -1.0f, 1.0f);
    rng_fill(bias, n, -0.5f, 0.5f);
    for (size_t i = 0; i < m * ldy; i++)
        y[i] = 12345.0f; /* the gap between rows must survive */
    if (c->compute == IA_DTYPE_BF16)
        for (size_t i = 0; i < n * k; i++)
            wv[i] = ia_bf16_to_f32(ia_f32_to_bf16(wv[i]));
    if (c->compute == IA_DTYPE_F16) /* f16 weights, f32 x: products stay exact */
        for (size_t i = 0; i < n * k; i++)
            wv[i] = ia_f16_to_f32(ia_f32_to_f16(wv[i]));

    /* Split the n rows over n_parts tensors, as QKV fusion does. */
    ia_tensor parts[3];
    const ia_tensor *pp[3];
    size_t row = 0;
    for (int p = 0; p < c->n_parts; p++) {
        size_t rows = p == c->n_parts - 1 ? n - row : n / (size_t)c->n_parts;
        parts[p] = (ia_tensor){.name = "w",
                               .dtype = c->src,
                               .ndim = 2,
                               .shape = {(int64_t)rows, (int64_t)k},
                               .data = (const char *)raw + row * k * esz};
        pp[p] = &parts[p];
        row += rows;
    }
    ia_packed_weight *w = NULL;
    CHECK_OK(b->weight_pack(pp, c->n_parts, c->compute, &w));
    if (!w)
        goto done;
    size_t wn, wk;
    b->weight_shape(w, &wn, &wk);
    CHECK_EQ_INT(wn, n);
    CHECK_EQ_INT(wk, k);
    b->linear(w, c->bias ? bias : NULL, c->act, x, ldx, y, ldy, m, pool);

    int bad = 0;
    for (size_t i = 0; i < m && bad < 5; i++) {
        for (size_t j = 0; j < n && bad < 5; j++) {
            double s = c->bias ? bias[j] : 0.0, sabs = fabs(s);
            for (size_t kk = 0; kk < k; kk++) {
                double t = (double)x[i * ldx + kk] * wv[j * k + kk];
                s += t;
                sabs += fabs(t);
            }
            double want = ref_act(c->act, s);
            /* f32: summation-order error; bf16: x may be rounded to bf16 too
             * (vdpbf16ps), 2^-8 relative per product. Plus the activation's
             * approximation error. */
            double tol =
                (c->compute == IA_DTYPE_BF16 ? 8e-3 : 1e-5) * sabs + 2e-6 + 2e-7 * fabs(want);
            double got = y[i * ldy + j];
            if (!(fabs(got - want) <= tol)) {
                bad++;
                CHECK_MSG(0, "%s m=%zu n=%zu k=%zu act=%d compute=%s: y[%zu,%zu] = %.8g, want %.8g",
                          b->name, m, n, k, c->act, ia_dtype_name(c->compute), i, j, got, want);
            }
        }
        for (size_t j = n; j < ldy; j++)
            if (y[i * ldy + j] != 12345.0f && bad++ < 5)
                CHECK_MSG(0, "%s wrote past column %zu of row %zu", b->name, n, i);
    }
    b->weight_free(w);
done:
    free(raw);
    free(wv);
    free(x);
    free(y);
    free(bias);
}

static const lin_case cases[] = {
    {1, 37, 19, 1, IA_DTYPE_F32, IA_DTYPE_F32, IA_ACT_NONE, false},
    {5, 16, 16, 1, IA_DTYPE_F32, IA_DTYPE_F32, IA_ACT_NONE, true},
    {7, 33, 64, 3, IA_DTYPE_F32, IA_DTYPE_F32, IA_ACT_GELU_ERF, true},
    {13, 48, 31, 1, IA_DTYPE_F16, IA_DTYPE_F32, IA_ACT_RELU, true},
    {29, 70, 45, 2, IA_DTYPE_BF16, IA_DTYPE_F32, IA_ACT_SILU, true},
    {64, 96, 40, 1, IA_DTYPE_F32, IA_DTYPE_F32, IA_ACT_GELU_TANH, false},
    /* several row tiles, k-blocks (k > 384) and an odd k */
    {151, 100, 701, 1, IA_DTYPE_F32, IA_DTYPE_F32, IA_ACT_GELU_ERF, true},
    {1, 37, 19, 1, IA_DTYPE_F32, IA_DTYPE_BF16, IA_ACT_NONE, true},
    {6, 40, 33, 3, IA_DTYPE_BF16, IA_DTYPE_BF16, IA_ACT_GELU_ERF, true},
    {50, 65, 17, 1, IA_DTYPE_F16, IA_DTYPE_BF16, IA_ACT_RELU, false},
    {151, 100, 701, 1, IA_DTYPE_F32, IA_DTYPE_BF16, IA_ACT_GELU_ERF, true},
    /* f16 compute from every source, GEMV sizes (m <= 4) and the GEMM */
    {1, 37, 19, 1, IA_DTYPE_F16, IA_DTYPE_F16, IA_ACT_NONE, true},
    {2, 16, 16, 1, IA_DTYPE_F32, IA_DTYPE_F16, IA_ACT_SILU, false},
    {3, 40, 33, 3, IA_DTYPE_BF16, IA_DTYPE_F16, IA_ACT_GELU_ERF, true},
    {4, 100, 701, 1, IA_DTYPE_F16, IA_DTYPE_F16, IA_ACT_NONE, true},
    {50, 65, 17, 1, IA_DTYPE_F16, IA_DTYPE_F16, IA_ACT_RELU, false},
    {151, 100, 701, 1, IA_DTYPE_F32, IA_DTYPE_F16, IA_ACT_GELU_TANH, true},
    /* latency tiles (4 < m <= 4 mr): each panel walked through several
     * k-blocks (the C tile carried between them) with a prefetch of the next
     * block; a partial last panel, an odd k, f32 and bf16 */
    {11, 75, 700, 1, IA_DTYPE_F32, IA_DTYPE_F32, IA_ACT_GELU_ERF, true},
    {17, 40, 389, 1, IA_DTYPE_F32, IA_DTYPE_BF16, IA_ACT_NONE, true},
    {24, 50, 1000, 2, IA_DTYPE_F16, IA_DTYPE_F16, IA_ACT_SILU, false},
    /* GEMV: odd k, a partial last panel, several panels per thread */
    {1, 333, 257, 1, IA_DTYPE_F32, IA_DTYPE_F32, IA_ACT_NONE, true},
    {3, 333, 257, 2, IA_DTYPE_F16, IA_DTYPE_BF16, IA_ACT_GELU_TANH, true},
    {4, 1, 5, 1, IA_DTYPE_F32, IA_DTYPE_F32, IA_ACT_RELU, true},
};

static void linear_cases(const ia_backend *b) {
    rng_seed(42);
    for (int threads = 1; threads <= 3; threads++) {
        ia_threadpool *pool = threads > 1 ? ia_threadpool_create(threads) : NULL;
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            run_case(b, &cases[i], pool);
        ia_threadpool_destroy(pool);
    }
}
TEST_EACH_VARIANT(linear_matches_reference, linear_cases)

/* The GEMV kernels (m = 1..4) against the generic variant's tiled micro-kernel
 * path: the same packed values, so only the summation order differs. Odd
 * k, partial last panels, biases, activations, 1-3 threads, each compute. */
static void gemv_vs_generic(const ia_backend *b) {
    const ia_backend *gen = ia_backend_cpu_variant("generic");
    static const size_t shapes[][2] = {{1, 1},   {15, 7},    {17, 31},
                                       {64, 64}, {333, 257}, {1000, 2049}};
    static const ia_dtype computes[] = {IA_DTYPE_F32, IA_DTYPE_F16, IA_DTYPE_BF16};
    rng_seed(99);
    for (int threads = 1; threads <= 3; threads++) {
        ia_threadpool *pool = threads > 1 ? ia_threadpool_create(threads) : NULL;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (size_t ci = 0; ci < 3; ci++)
                for (size_t m = 1; m <= 4; m++) {
                    size_t n = shapes[s][0], k = shapes[s][1], ldx = k + 1, ldy = n + 2;
                    float *wsrc = malloc(n * k * sizeof *wsrc), *x = malloc(m * ldx * sizeof *x);
                    float *y = malloc(m * ldy * sizeof *y), *yr = malloc(m * ldy * sizeof *yr);
                    float *bias = malloc(n * sizeof *bias);
                    rng_fill(wsrc, n * k, -1.0f, 1.0f);
                    rng_fill(x, m * ldx, -1.0f, 1.0f);
                    rng_fill(bias, n, -0.5f, 0.5f);
                    for (size_t i = 0; i < m * ldy; i++)
                        y[i] = yr[i] = 777.0f;
                    ia_tensor t = {.name = "w",
                                   .dtype = IA_DTYPE_F32,
                                   .ndim = 2,
                                   .shape = {(int64_t)n, (int64_t)k},
                                   .data = wsrc};
                    const ia_tensor *pp[1] = {&t};
                    ia_packed_weight *w = NULL, *wr = NULL;
                    CHECK_OK(b->weight_pack(pp, 1, computes[ci], &w));
                    CHECK_OK(gen->weight_pack(pp, 1, computes[ci], &wr));
                    ia_activation act = (m & 1) ? IA_ACT_NONE : IA_ACT_SILU;
                    const float *bs = (s & 1) ? bias : NULL;
                    if (w && wr) {
                        b->linear(w, bs, act, x, ldx, y, ldy, m, pool);
                        gen->linear(wr, bs, act, x, ldx, yr, ldy, m, NULL);
                    }
                    int bad = 0;
                    for (size_t i = 0; i < m * ldy && bad < 3; i++) {
                        /* |terms| <= 1, so their magnitudes sum to <= k;
                         * f32 sums in two orders differ by a few ulp of
                         * that. bf16 compute may round x to bf16 too
                         * (vdpbf16ps on AVX512_BF16): 2^-8 per term. */
                        double per = computes[ci] == IA_DTYPE_BF16 ? 8e-3 : 4e-7;
                        double tol = per * (double)k + 1e-6 * fabs(yr[i]);
                        if (!(fabs((double)y[i] - yr[i]) <= tol) && bad++ < 3)
                            CHECK_MSG(0,
                                      "%s gemv %s m=%zu n=%zu k=%zu threads=%d: [%zu] %.8g vs "
                                      "generic %.8g",
                                      b->name, ia_dtype_name(computes[ci]), m, n, k, threads, i,
                                      y[i], yr[i]);
                    }
                    if (w)
                        b->weight_free(w);
                    if (wr)
                        gen->weight_free(wr);
                    free(wsrc);
                    free(x);
                    free(y);
                    free(yr);
                    free(bias);
                }
        ia_threadpool_destroy(pool);
    }
}
TEST_EACH_VARIANT(gemv_matches_generic, gemv_vs_generic)

/* Row independence: row i of y = act(x W^T + bias) must have the same bits
 * whether x has that row alone, a few rows (the GEMV kernels), a latency
 * tile's worth (m <= 4 mr) or hundreds (the register-tiled GEMM), on any
 * number of threads: the server batches requests (and decode steps of
 * several sequences) and promises each the bits it gets alone. Every
 * product below is compared with memcmp to the whole product on one thread:
 * once more whole, and in chunks of rows that straddle every path's limits
 * (mr is 4 generic, 6 AVX2, 12 AVX-512; GEMV up to 4 rows). */
typedef struct rows_case {
    size_t m, n, k;
    ia_activation act;
    bool bias;
} rows_case;

static const rows_case rows_cases[] = {
    {600, 37, 45, IA_ACT_SILU, true},      /* many row tiles, a partial panel */
    {150, 70, 389, IA_ACT_GELU_ERF, true}, /* odd k over three k-blocks */
    {64, 33, 700, IA_ACT_NONE, false},     /* four k-blocks, no bias */
    {200, 1, 5, IA_ACT_RELU, true},        /* one column, tiny odd k */
    {96, 100, 64, IA_ACT_GELU_TANH, true}, /* several full panels */
};
static const size_t rows_chunks[] = {0 /* all rows */, 1, 2, 3, 4, 5, 7, 16, 24, 25, 48, 49};

/* Multiplies x in chunks of `chunk` rows (0: all at once) into y. */
static void linear_chunked(const ia_backend *b, const ia_packed_weight *w, const float *bias,
                           ia_activation act, const float *x, size_t ldx, float *y, size_t ldy,
                           size_t m, size_t chunk, ia_threadpool *pool) {
    if (!chunk)
        chunk = m;
    for (size_t r = 0; r < m; r += chunk)
        b->linear(w, bias, act, x + r * ldx, ldx, y + r * ldy, ldy, m - r < chunk ? m - r : chunk,
                  pool);
}

static void rows_independent(const ia_backend *b) {
    static const ia_dtype computes[] = {IA_DTYPE_F32, IA_DTYPE_F16, IA_DTYPE_BF16};
    ia_threadpool *pool2 = ia_threadpool_create(2);
    rng_seed(1234);
    for (size_t ci = 0; ci < sizeof computes / sizeof computes[0]; ci++)
        for (size_t s = 0; s < sizeof rows_cases / sizeof rows_cases[0]; s++) {
            const rows_case *c = &rows_cases[s];
            size_t m = c->m, n = c->n, k = c->k, ldx = k + 2, ldy = n + 3;
            float *wsrc = malloc(n * k * sizeof *wsrc), *x = malloc(m * ldx * sizeof *x);
            float *bias = malloc(n * sizeof *bias), *want = calloc(m * ldy, sizeof *want);
            float *got = calloc(m * ldy, sizeof *got);
            rng_fill(wsrc, n * k, -1.0f, 1.0f);
            rng_fill(x, m * ldx, -1.0f, 1.0f);
            rng_fill(bias, n, -0.5f, 0.5f);
            ia_tensor t = {.name = "w",
                           .dtype = IA_DTYPE_F32,
                           .ndim = 2,
                           .shape = {(int64_t)n, (int64_t)k},
                           .data = wsrc};
            const ia_tensor *pp[1] = {&t};
            ia_packed_weight *w = NULL;
            CHECK_OK(b->weight_pack(pp, 1, computes[ci], &w));
            const float *bs = c->bias ? bias : NULL;
            if (w)
                b->linear(w, bs, c->act, x, ldx, want, ldy, m, NULL);
            for (int threads = 1; w && threads <= 2; threads++)
                for (size_t h = 0; h < sizeof rows_chunks / sizeof rows_chunks[0]; h++) {
                    size_t chunk = rows_chunks[h];
                    memset(got, 0, m * ldy * sizeof *got);
                    linear_chunked(b, w, bs, c->act, x, ldx, got, ldy, m, chunk,
                                   threads > 1 ? pool2 : NULL);
                    for (size_t i = 0; i < m; i++) {
                        if (memcmp(got + i * ldy, want + i * ldy, n * sizeof *got) == 0)
                            continue;
                        size_t j = 0;
                        while (memcmp(&got[i * ldy + j], &want[i * ldy + j], sizeof *got) == 0)
                            j++;
                        CHECK_MSG(0,
                                  "%s %s m=%zu n=%zu k=%zu: row %zu in chunks of %zu rows on %d "
                                  "thread(s) differs at column %zu: %.9g, whole product %.9g",
                                  b->name, ia_dtype_name(computes[ci]), m, n, k, i,
                                  chunk ? chunk : m, threads, j, got[i * ldy + j],
                                  want[i * ldy + j]);
                        break; /* one report per product */
                    }
                }
            if (w)
                b->weight_free(w);
            free(wsrc);
            free(x);
            free(bias);
            free(want);
            free(got);
        }
    ia_threadpool_destroy(pool2);
}
TEST_EACH_VARIANT(linear_rows_bit_identical_for_any_m, rows_independent)

/* Large-ish activations, so that GELU's erf and the exp inside SiLU/tanh see
 * their saturated ranges through the epilogue. */
static void linear_saturating_activations(const ia_backend *b) {
    rng_seed(7);
    const ia_activation acts[] = {IA_ACT_GELU_ERF, IA_ACT_GELU_TANH, IA_ACT_SILU};
    for (size_t a = 0; a < 3; a++) {
        lin_case c = {9, 24, 12, 1, IA_DTYPE_F32, IA_DTYPE_F32, acts[a], true};
        run_case(b, &c, NULL);
    }
}
TEST_EACH_VARIANT(linear_activations, linear_saturating_activations)

static void pack_errors(const ia_backend *b) {
    float data[6 * 4] = {0};
    ia_tensor a = {
        .name = "q.weight", .dtype = IA_DTYPE_F32, .ndim = 2, .shape = {6, 4}, .data = data};
    ia_tensor bad = {
        .name = "k.weight", .dtype = IA_DTYPE_F32, .ndim = 2, .shape = {2, 3}, .data = data};
    const ia_tensor *pp[2] = {&a, &bad};
    ia_packed_weight *w = (ia_packed_weight *)1;
    CHECK_ERR(b->weight_pack(pp, 2, IA_DTYPE_F32, &w), IA_EINVAL, "k.weight");
    CHECK(w == NULL);
    CHECK_ERR(b->weight_pack(pp, 1, IA_DTYPE_I8, &w), IA_EUNSUPPORTED, "i8");
    ia_tensor ints = a;
    ints.dtype = IA_DTYPE_I32;
    pp[0] = &ints;
    CHECK_ERR(b->weight_pack(pp, 1, IA_DTYPE_F32, &w), IA_EUNSUPPORTED, "q.weight");
    ia_tensor vec = a;
    vec.ndim = 1;
    pp[0] = &vec;
    CHECK_ERR(b->weight_pack(pp, 1, IA_DTYPE_F32, &w), IA_EINVAL, "2-D");
}
TEST_EACH_VARIANT(weight_pack_rejects_bad_input, pack_errors)

TEST(variant_selection_and_override) {
    const ia_backend *best = ia_backend_cpu();
    CHECK(best != NULL);
    CHECK(ia_cpu_has_variant("generic"));
    CHECK(!ia_cpu_has_variant("neon"));
    CHECK(ia_backend_cpu_variant("nonsense") == NULL);
    if (ia_cpu_has_variant("avx512"))
        CHECK(strcmp(best->name, "cpu-avx512") == 0);
    else if (ia_cpu_has_variant("avx2"))
        CHECK(strcmp(best->name, "cpu-avx2") == 0);
    setenv("IA_CPU_VARIANT", "generic", 1);
    CHECK(strcmp(ia_backend_cpu()->name, "cpu-generic") == 0);
    setenv("IA_CPU_VARIANT", "avx2", 1);
    CHECK(strcmp(ia_backend_cpu()->name, ia_cpu_has_variant("avx2") ? "cpu-avx2" : "cpu-generic") ==
          0);
    unsetenv("IA_CPU_VARIANT");
}
