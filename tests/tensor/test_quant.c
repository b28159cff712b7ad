/*
 * Tests for tensor/quant.c against ggml itself: the fixtures in
 * tests/fixtures/quant/ (tools/make_quant_fixtures.py) hold an input, the
 * blocks llama.cpp's reference quantiser made of it and llama.cpp's
 * dequantisation of those blocks, per type.
 *   - dequantising ggml's blocks gives ggml's floats bit for bit (all ten);
 *   - quantising gives ggml's bytes for Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 (the
 *     contract) and, on this input, for Q2_K .. Q6_K too;
 *   - the k-quant encoders' RMSE is within 2% of ggml's on the same input
 *     (the contract's bound; measured equal);
 *   - validation, the name and ggml-id mappings, and the error paths.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ia/quant.h"
#include "test.h"

static const ia_dtype all_types[] = {IA_DTYPE_Q4_0, IA_DTYPE_Q4_1, IA_DTYPE_Q5_0, IA_DTYPE_Q5_1,
                                     IA_DTYPE_Q8_0, IA_DTYPE_Q2_K, IA_DTYPE_Q3_K, IA_DTYPE_Q4_K,
                                     IA_DTYPE_Q5_K, IA_DTYPE_Q6_K};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

/* Reads a whole fixture file; NULL (and a failed check) when missing. */
static void *read_fixture(const char *name, size_t *len) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/fixtures/quant/%s", name);
    FILE *f = fopen(test_source_path(rel), "rb");
    CHECK_MSG(f != NULL, "cannot open %s", rel);
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(n > 0 ? (size_t)n : 1);
    *len = fread(buf, 1, (size_t)n, f);
    fclose(f);
    CHECK_EQ_INT(*len, n);
    return buf;
}

typedef struct fixture {
    float *input;
    size_t rows, cols;
    json_t *manifest;
} fixture;

static bool fixture_load(fixture *fx) {
    size_t len = 0;
    fx->input = read_fixture("input.f32", &len);
    json_error_t jerr;
    fx->manifest = json_load_file(test_source_path("tests/fixtures/quant/manifest.json"), 0, &jerr);
    CHECK(fx->manifest != NULL);
    if (!fx->input || !fx->manifest)
        return false;
    fx->rows = (size_t)json_integer_value(json_object_get(fx->manifest, "rows"));
    fx->cols = (size_t)json_integer_value(json_object_get(fx->manifest, "cols"));
    CHECK_EQ_INT(fx->rows * fx->cols * sizeof(float), len);
    return fx->rows * fx->cols * sizeof(float) == len;
}

static void fixture_free(fixture *fx) {
    free(fx->input);
    json_decref(fx->manifest);
}

static double rmse(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return sqrt(s / (double)n);
}

TEST(quant_geometry_matches_ggml) {
    static const struct {
        ia_dtype t;
        uint32_t elems, bytes;
        int ggml;
    } want[] = {
        {IA_DTYPE_Q4_0, 32, 18, 2},    {IA_DTYPE_Q4_1, 32, 20, 3},    {IA_DTYPE_Q5_0, 32, 22, 6},
        {IA_DTYPE_Q5_1, 32, 24, 7},    {IA_DTYPE_Q8_0, 32, 34, 8},    {IA_DTYPE_Q2_K, 256, 84, 10},
        {IA_DTYPE_Q3_K, 256, 110, 11}, {IA_DTYPE_Q4_K, 256, 144, 12}, {IA_DTYPE_Q5_K, 256, 176, 13},
        {IA_DTYPE_Q6_K, 256, 210, 14}, {IA_DTYPE_Q8_K, 256, 292, 15}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const ia_dtype_info *info = ia_dtype_get_info(want[i].t);
        CHECK(info != NULL);
        if (!info)
            continue;
        CHECK_EQ_INT(info->block_elems, want[i].elems);
        CHECK_EQ_INT(info->block_bytes, want[i].bytes);
        CHECK(ia_dtype_is_quantized(want[i].t));
        CHECK_EQ_INT(ia_dtype_to_ggml(want[i].t), want[i].ggml);
        ia_dtype back = IA_DTYPE_COUNT;
        CHECK_OK(ia_dtype_from_ggml((uint32_t)want[i].ggml, &back));
        CHECK_EQ_INT(back, want[i].t);
        /* names parse back, in either case */
        char upper[16];
        snprintf(upper, sizeof upper, "%s", info->name);
        for (char *p = upper; *p; p++)
            if (*p >= 'a' && *p <= 'z')
                *p = (char)(*p - 32);
        CHECK_OK(ia_dtype_parse(upper, &back));
        CHECK_EQ_INT(back, want[i].t);
    }
    size_t n;
    CHECK_OK(ia_dtype_bytes(IA_DTYPE_Q4_K, 512, &n));
    CHECK_EQ_INT(n, 288);
    CHECK_ERR(ia_dtype_bytes(IA_DTYPE_Q4_K, 100, &n), IA_ERANGE, "blocks of 256");
    CHECK(!ia_dtype_is_quantized(IA_DTYPE_F16));
    CHECK_EQ_INT(ia_dtype_to_ggml(IA_DTYPE_I8), -1);
    ia_dtype t;
    CHECK_OK(ia_dtype_parse("bf16", &t));
    CHECK_EQ_INT(t, IA_DTYPE_BF16);
    CHECK_ERR(ia_dtype_parse("q4_k_m", &t), IA_EINVAL, "q4_k_m");
    CHECK_ERR(ia_dtype_from_ggml(16, &t), IA_EUNSUPPORTED, "IQ2_XXS");
    CHECK_ERR(ia_dtype_from_ggml(999, &t), IA_EUNSUPPORTED, "999");
}

TEST(quant_dequantize_matches_ggml_bitwise) {
    fixture fx;
    if (!fixture_load(&fx)) {
        fixture_free(&fx);
        return;
    }
    size_t n = fx.rows * fx.cols;
    float *out = malloc(n * sizeof *out);
    for (size_t i = 0; i < N_TYPES; i++) {
        const char *name = ia_dtype_name(all_types[i]);
        char file[64];
        size_t blen = 0, flen = 0;
        snprintf(file, sizeof file, "%s.blocks", name);
        uint8_t *blocks = read_fixture(file, &blen);
        snprintf(file, sizeof file, "%s.f32", name);
        float *want = read_fixture(file, &flen);
        if (blocks && want) {
            size_t bytes;
            CHECK_OK(ia_dtype_bytes(all_types[i], n, &bytes));
            CHECK_EQ_INT(blen, bytes);
            CHECK_OK(ia_quant_validate(all_types[i], blocks, n, NULL));
            CHECK_OK(ia_dequantize_row(all_types[i], blocks, out, n));
            size_t diff = 0;
            for (size_t k = 0; k < n; k++)
                diff += memcmp(&out[k], &want[k], sizeof(float)) != 0;
            CHECK_MSG(diff == 0, "%s: %zu of %zu values differ from ggml", name, diff, n);
        }
        free(blocks);
        free(want);
    }
    free(out);
    fixture_free(&fx);
}

/* The contract promises ggml's bytes for the five simple types; the k-quant
 * encoders follow ggml's reference search step for step and give its bytes
 * on this input too (checked, so that a change to their arithmetic shows). */
TEST(quant_matches_ggml_bytes) {
    fixture fx;
    if (!fixture_load(&fx)) {
        fixture_free(&fx);
        return;
    }
    size_t n = fx.rows * fx.cols;
    for (size_t i = 0; i < N_TYPES; i++) {
        const char *name = ia_dtype_name(all_types[i]);
        char file[64];
        size_t blen = 0, bytes;
        snprintf(file, sizeof file, "%s.blocks", name);
        uint8_t *want = read_fixture(file, &blen);
        CHECK_OK(ia_dtype_bytes(all_types[i], n, &bytes));
        uint8_t *got = calloc(1, bytes);
        CHECK_OK(ia_quantize_row(all_types[i], fx.input, got, n));
        if (want && blen == bytes) {
            size_t diff = 0;
            for (size_t k = 0; k < bytes; k++)
                diff += got[k] != want[k];
            CHECK_MSG(diff == 0, "%s: %zu of %zu bytes differ from ggml", name, diff, bytes);
        }
        free(got);
        free(want);
    }
    fixture_free(&fx);
}

TEST(quant_kquant_rmse) {
    fixture fx;
    if (!fixture_load(&fx)) {
        fixture_free(&fx);
        return;
    }
    size_t n = fx.rows * fx.cols;
    float *back = malloc(n * sizeof *back);
    json_t *types = json_object_get(fx.manifest, "types");
    for (size_t i = 0; i < N_TYPES; i++) {
        const char *name = ia_dtype_name(all_types[i]);
        double ggml = json_real_value(json_object_get(json_object_get(types, name), "ggml_rmse"));
        CHECK(ggml > 0);
        size_t bytes;
        CHECK_OK(ia_dtype_bytes(all_types[i], n, &bytes));
        uint8_t *q = calloc(1, bytes);
        CHECK_OK(ia_quantize_row(all_types[i], fx.input, q, n));
        CHECK_OK(ia_quant_validate(all_types[i], q, n, NULL));
        CHECK_OK(ia_dequantize_row(all_types[i], q, back, n));
        double ours = rmse(fx.input, back, n);
        CHECK_MSG(ours <= ggml * 1.02, "%s: rmse %.6g vs ggml's %.6g", name, ours, ggml);
        free(q);
    }
    free(back);
    fixture_free(&fx);
}

/* Zeros, constants, one outlier and tiny values: finite output, zeros stay
 * zero, error bounded by the block's range. */
TEST(quant_edge_inputs) {
    float x[512], y[512];
    uint8_t q[2048];
    for (size_t t = 0; t < N_TYPES + 1; t++) {
        ia_dtype type = t < N_TYPES ? all_types[t] : IA_DTYPE_Q8_K;
        for (int c = 0; c < 4; c++) {
            for (int i = 0; i < 512; i++)
                x[i] = c == 0   ? 0.0f
                       : c == 1 ? 0.25f
                       : c == 2 ? (i == 77 ? 1000.0f : 0.001f * (float)(i % 7))
                                : 1e-20f * (float)(i % 5);
            CHECK_OK(ia_quantize_row(type, x, q, 512));
            CHECK_OK(ia_quant_validate(type, q, 512, NULL));
            CHECK_OK(ia_dequantize_row(type, q, y, 512));
            double worst = 0;
            for (int i = 0; i < 512; i++) {
                CHECK(isfinite(y[i]));
                worst = fmax(worst, fabs((double)y[i] - x[i]));
            }
            double bound = c == 0 ? 0 : c == 1 ? 0.25 : c == 2 ? 1000.0 / 3 : 1e-19;
            CHECK_MSG(worst <= bound, "%s case %d: error %g", ia_dtype_name(type), c, worst);
        }
    }
}

TEST(quant_q8_k_sums) {
    float x[256];
    uint8_t q[292];
    for (int i = 0; i < 256; i++)
        x[i] = sinf((float)i * 0.37f) * (float)(1 + i % 3);
    CHECK_OK(ia_quantize_row(IA_DTYPE_Q8_K, x, q, 256));
    for (int j = 0; j < 16; j++) {
        int sum = 0;
        for (int l = 0; l < 16; l++)
            sum += (int8_t)q[4 + 16 * j + l];
        CHECK_EQ_INT((int16_t)(q[260 + 2 * j] | (q[261 + 2 * j] << 8)), sum);
    }
    float y[256];
    CHECK_OK(ia_dequantize_row(IA_DTYPE_Q8_K, q, y, 256));
    for (int i = 0; i < 256; i++)
        CHECK_NEAR(y[i], x[i], 3.0 / 127 * 0.51 + 1e-6);
}

TEST(quant_validate_names_bad_block) {
    float x[1024];
    uint8_t q[1024 / 32 * 34];
    for (int i = 0; i < 1024; i++)
        x[i] = (float)(i % 17) - 8.0f;
    CHECK_OK(ia_quantize_row(IA_DTYPE_Q8_0, x, q, 1024));
    q[5 * 34 + 1] = 0x7c; /* block 5: d = +inf */
    q[5 * 34 + 0] = 0x00;
    size_t bad = 0;
    CHECK_ERR(ia_quant_validate(IA_DTYPE_Q8_0, q, 1024, &bad), IA_EPARSE, "block 5");
    CHECK_EQ_INT(bad, 5);
    uint8_t k[2 * 144];
    CHECK_OK(ia_quantize_row(IA_DTYPE_Q4_K, x, k, 512));
    k[144 + 3] = 0xfe; /* block 1: dmin = NaN */
    CHECK_ERR(ia_quant_validate(IA_DTYPE_Q4_K, k, 512, &bad), IA_EPARSE, "dmin");
    CHECK_EQ_INT(bad, 1);
    CHECK_ERR(ia_quant_validate(IA_DTYPE_Q4_K, k, 100, &bad), IA_ERANGE, "256");
    CHECK_OK(ia_quant_validate(IA_DTYPE_F16, k, 256, &bad)); /* no scales to check */
    CHECK_ERR(ia_quant_validate(IA_DTYPE_I32, k, 256, &bad), IA_EUNSUPPORTED, "i32");
}

TEST(quant_errors) {
    float x[64] = {0};
    uint8_t q[64];
    CHECK_ERR(ia_quantize_row(IA_DTYPE_Q8_0, x, q, 40), IA_ERANGE, "blocks of 32");
    x[9] = NAN;
    CHECK_ERR(ia_quantize_row(IA_DTYPE_Q8_0, x, q, 32), IA_EINVAL, "element 9");
    x[9] = INFINITY;
    CHECK_ERR(ia_quantize_row(IA_DTYPE_Q4_0, x, q, 32), IA_EINVAL, "element 9");
    float y[32];
    CHECK_ERR(ia_dequantize_row(IA_DTYPE_I32, q, y, 32), IA_EUNSUPPORTED, "i32");
    /* plain float types pass through the dequantiser */
    uint16_t h[2] = {0x3c00, 0xc000};
    CHECK_OK(ia_dequantize_row(IA_DTYPE_F16, h, y, 2));
    CHECK(y[0] == 1.0f && y[1] == -2.0f);
}

TEST(quant_rows_over_pool) {
    enum { ROWS = 13, COLS = 512 };
    float *x = malloc(ROWS * COLS * sizeof *x);
    for (int i = 0; i < ROWS * COLS; i++)
        x[i] = cosf((float)i * 0.011f) * (float)(1 + i % 5);
    ia_threadpool *pool = ia_threadpool_create(3);
    CHECK(pool != NULL);
    for (size_t t = 0; t < N_TYPES; t++) {
        size_t row_bytes;
        CHECK_OK(ia_dtype_bytes(all_types[t], COLS, &row_bytes));
        uint8_t *a = malloc(ROWS * row_bytes), *b = malloc(ROWS * row_bytes);
        CHECK_OK(ia_quantize_rows(all_types[t], x, a, ROWS, COLS, pool));
        for (int r = 0; r < ROWS; r++)
            CHECK_OK(ia_quantize_row(all_types[t], x + r * COLS, b + r * row_bytes, COLS));
        CHECK(memcmp(a, b, ROWS * row_bytes) == 0);
        free(a);
        free(b);
    }
    x[7 * COLS + 3] = NAN;
    uint8_t *q = malloc(ROWS * COLS / 32 * 34);
    CHECK_ERR(ia_quantize_rows(IA_DTYPE_Q8_0, x, q, ROWS, COLS, pool), IA_EINVAL, "row 7");
    free(q);
    ia_threadpool_destroy(pool);
    free(x);
}
