/*
 * Tests for the GGUF reader, writer and config view.
 *
 * Reference files: the .gguf files in tests/fixtures/gguf/ were written by the gguf
 * package (gguf-py, the llama.cpp project's own writer) with
 * tools/make_gguf_fixtures.py, and expected.json records what they hold;
 * the first tests read them and compare every key, value, dim, offset and
 * tensor byte with it. The writer is checked by round trips (our file read
 * back by our reader) and by copying the gguf-py fixture, which must give
 * the same bytes. Crafted bad files, one per validation rule, are built
 * byte by byte below and must fail with the right status and a message
 * naming the file, the key or tensor and the problem.
 *
 * IA_GGUF_KEEP=path keeps the writer's copy of all_types.gguf at path, for
 * `python tools/make_gguf_fixtures.py --check path` (gguf-py reading our
 * file). IA_GGUF_CORPUS=dir writes every crafted file there (the fuzzer's
 * seed corpus, fuzz/corpus/gguf/, was made this way).
 */
#define _GNU_SOURCE
#include "test.h"
#include "test_fs.h"

#include "ia/formats.h"

#include <jansson.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- scratch files ------------------------------------------------------------ */

static uint8_t *read_file(const char *path, size_t *len) {
    char *text = NULL;
    if (ia_file_read_all(path, 64u << 20, &text, len) != IA_OK) {
        fprintf(stderr, "cannot read %s: %s\n", path, ia_error_message());
        return NULL;
    }
    return (uint8_t *)text;
}

/* ---- expected.json comparison ---------------------------------------------------- */

static json_t *load_expected(const char *file) {
    json_t *root = NULL;
    if (ia_json_load_file(test_source_path("tests/fixtures/gguf/expected.json"), 1u << 24, &root) !=
        IA_OK) {
        fprintf(stderr, "expected.json: %s\n", ia_error_message());
        return NULL;
    }
    json_t *entry = json_object_get(json_object_get(root, "files"), file);
    json_incref(entry);
    json_decref(root);
    return entry;
}

/* Compares one integer (JSON integer, or a string for u64 past int64). */
static void check_int(const ia_gguf_value *v, const json_t *want, const char *where) {
    if (json_is_string(want)) {
        uint64_t got = 0;
        CHECK_OK(ia_gguf_value_u64(v, &got));
        CHECK_MSG(got == strtoull(json_string_value(want), NULL, 10), "%s: got %llu", where,
                  (unsigned long long)got);
        return;
    }
    int64_t got = 0;
    CHECK_OK(ia_gguf_value_i64(v, &got));
    CHECK_MSG(got == json_integer_value(want), "%s: got %lld want %lld", where, (long long)got,
              (long long)json_integer_value(want));
}

/* v against {"type", "elem_type"?, "value"}. */
static void check_value(const ia_gguf_value *v, const json_t *want, const char *where) {
    const char *type = json_string_value(json_object_get(want, "type"));
    const json_t *val = json_object_get(want, "value");
    CHECK_MSG(v && type && strcmp(ia_gguf_type_name(ia_gguf_value_type(v)), type) == 0,
              "%s: type %s, want %s", where, v ? ia_gguf_type_name(ia_gguf_value_type(v)) : "-",
              type);
    if (!v || !type)
        return;
    ia_gguf_type t = ia_gguf_value_type(v);
    if (t == IA_GGUF_ARRAY) {
        const char *et = json_string_value(json_object_get(want, "elem_type"));
        ia_gguf_type e = ia_gguf_array_type(v);
        CHECK_MSG(et && strcmp(ia_gguf_type_name(e), et) == 0, "%s: elem type %s, want %s", where,
                  ia_gguf_type_name(e), et);
        CHECK_EQ_INT(ia_gguf_array_count(v), json_array_size(val));
        for (size_t i = 0; i < json_array_size(val) && i < ia_gguf_array_count(v); i++) {
            const json_t *w = json_array_get(val, i);
            char sub[256];
            snprintf(sub, sizeof sub, "%s[%zu]", where, i);
            if (e == IA_GGUF_ARRAY) {
                check_value(ia_gguf_array_at(v, i), w, sub);
            } else if (e == IA_GGUF_STRING) {
                const char *s = NULL;
                size_t len = 0;
                CHECK_OK(ia_gguf_array_string(v, i, &s, &len));
                CHECK_MSG(s && len == json_string_length(w) &&
                              memcmp(s, json_string_value(w), len) == 0,
                          "%s: got '%s'", sub, s ? s : "(null)");
            } else if (e == IA_GGUF_FLOAT32 || e == IA_GGUF_FLOAT64) {
                double d = 0;
                CHECK_OK(ia_gguf_array_float(v, i, &d));
                CHECK_MSG(d == json_number_value(w), "%s: got %.17g", sub, d);
            } else {
                int64_t n = 0;
                CHECK_OK(ia_gguf_array_int(v, i, &n));
                long long want_n = json_is_boolean(w) ? json_is_true(w) : json_integer_value(w);
                CHECK_MSG(n == want_n, "%s: got %lld want %lld", sub, (long long)n, want_n);
            }
        }
        return;
    }
    if (t == IA_GGUF_STRING) {
        const char *s = NULL;
        size_t len = 0;
        CHECK_OK(ia_gguf_value_string(v, &s, &len));
        CHECK_MSG(s && len == json_string_length(val) &&
                      memcmp(s, json_string_value(val), len) == 0,
                  "%s: got '%s'", where, s ? s : "(null)");
    } else if (t == IA_GGUF_FLOAT32 || t == IA_GGUF_FLOAT64) {
        double d = 0;
        CHECK_OK(ia_gguf_value_f64(v, &d));
        CHECK_MSG(d == json_number_value(val), "%s: got %.17g", where, d);
    } else if (t == IA_GGUF_BOOL) {
        bool b = false;
        CHECK_OK(ia_gguf_value_bool(v, &b));
        CHECK_MSG(b == json_is_true(val), "%s: got %d", where, b);
    } else {
        check_int(v, val, where);
    }
}

static int hex_digit(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

/* Everything expected.json says about a file, against an open handle. */
static void check_against_expected(const ia_gguf *g, const json_t *exp) {
    CHECK_EQ_INT(ia_gguf_version(g), json_integer_value(json_object_get(exp, "version")));
    CHECK_EQ_INT(ia_gguf_alignment(g), json_integer_value(json_object_get(exp, "alignment")));
    CHECK_EQ_INT(ia_gguf_data_offset(g), json_integer_value(json_object_get(exp, "data_offset")));
    const json_t *kvs = json_object_get(exp, "kv");
    CHECK_EQ_INT(ia_gguf_kv_count(g), json_array_size(kvs));
    for (size_t i = 0; i < json_array_size(kvs) && i < ia_gguf_kv_count(g); i++) {
        const json_t *kv = json_array_get(kvs, i);
        const char *key = json_string_value(json_object_get(kv, "key"));
        CHECK_MSG(strcmp(ia_gguf_kv_key(g, i), key) == 0, "kv %zu is '%s', want '%s'", i,
                  ia_gguf_kv_key(g, i), key);
        CHECK(ia_gguf_find(g, key) == ia_gguf_kv_value(g, i));
        CHECK(strcmp(ia_gguf_value_key(ia_gguf_kv_value(g, i)), key) == 0);
        check_value(ia_gguf_kv_value(g, i), kv, key);
    }
    const json_t *ts = json_object_get(exp, "tensors");
    CHECK_EQ_INT(ia_gguf_tensor_count(g), json_array_size(ts));
    for (size_t i = 0; i < json_array_size(ts) && i < ia_gguf_tensor_count(g); i++) {
        const json_t *w = json_array_get(ts, i);
        const ia_gguf_tensor *t = ia_gguf_tensor_at(g, i);
        const char *name = json_string_value(json_object_get(w, "name"));
        CHECK_MSG(strcmp(t->name, name) == 0, "tensor %zu is '%s', want '%s'", i, t->name, name);
        CHECK(ia_gguf_tensor_find(g, name) == t);
        CHECK_EQ_INT(t->type, json_integer_value(json_object_get(w, "type_id")));
        CHECK(strcmp(ia_ggml_type_get_info(t->type)->name,
                     json_string_value(json_object_get(w, "type"))) == 0);
        const json_t *dims = json_object_get(w, "dims");
        CHECK_EQ_INT(t->n_dims, json_array_size(dims));
        for (size_t d = 0; d < json_array_size(dims) && d < 4; d++)
            CHECK_EQ_INT(t->dims[d], json_integer_value(json_array_get(dims, d)));
        CHECK_EQ_INT(t->offset, json_integer_value(json_object_get(w, "offset")));
        CHECK_EQ_INT(t->n_bytes, json_integer_value(json_object_get(w, "n_bytes")));
        const char *hex = json_string_value(json_object_get(w, "hex"));
        CHECK_EQ_INT(strlen(hex), 2 * t->n_bytes);
        const uint8_t *b = t->data;
        size_t bad = 0;
        for (size_t k = 0; k < t->n_bytes && 2 * k + 1 < strlen(hex); k++)
            bad += b[k] != (uint8_t)(hex_digit(hex[2 * k]) * 16 + hex_digit(hex[2 * k + 1]));
        CHECK_MSG(bad == 0, "tensor '%s': %zu bytes differ from expected.json", name, bad);
    }
}

/* ---- reference files ------------------------------------------------------------ */

TEST(reads_gguf_py_all_types) {
    json_t *exp = load_expected("all_types.gguf");
    ia_gguf *g = NULL;
    const char *path = test_source_path("tests/fixtures/gguf/all_types.gguf");
    CHECK_OK(ia_gguf_open(path, &g));
    CHECK(exp != NULL);
    if (g && exp) {
        CHECK(strcmp(ia_gguf_path(g), path) == 0);
        check_against_expected(g, exp);
    }
    ia_gguf_close(g);
    json_decref(exp);
}

TEST(reads_gguf_py_llama_tiny) {
    json_t *exp = load_expected("llama_tiny.gguf");
    ia_gguf *g = NULL;
    CHECK_OK(ia_gguf_open(test_source_path("tests/fixtures/gguf/llama_tiny.gguf"), &g));
    if (g && exp) {
        check_against_expected(g, exp);
        CHECK_EQ_INT(ia_gguf_alignment(g), 64);
        CHECK_EQ_INT(ia_gguf_data_offset(g) % 64, 0);
    }
    ia_gguf_close(g);
    json_decref(exp);
}

TEST(config_json_from_llama_metadata) {
    ia_gguf *g = NULL;
    json_t *cfg = NULL;
    CHECK_OK(ia_gguf_open(test_source_path("tests/fixtures/gguf/llama_tiny.gguf"), &g));
    if (!g)
        return;
    CHECK_OK(ia_gguf_config_json(g, &cfg));
    if (cfg) {
        CHECK(strcmp(json_string_value(json_object_get(cfg, "model_type")), "llama") == 0);
        static const struct {
            const char *field;
            long long value;
        } want[] = {
            {"hidden_size", 64},        {"num_hidden_layers", 2},
            {"num_attention_heads", 4}, {"num_key_value_heads", 2},
            {"intermediate_size", 172}, {"max_position_embeddings", 2048},
            {"vocab_size", 8},          {"gguf_file_type", 1},
        };
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
            CHECK_MSG(json_integer_value(json_object_get(cfg, want[i].field)) == want[i].value,
                      "%s", want[i].field);
        CHECK(json_object_get(cfg, "architectures") == NULL);
        CHECK_EQ_INT(json_object_size(cfg), 9);
    }
    json_decref(cfg);

    /* The one tensor as a row-major view: ggml dims [64, 8] -> shape [8, 64]. */
    const ia_gguf_tensor *t = ia_gguf_tensor_find(g, "token_embd.weight");
    ia_tensor view;
    CHECK(t != NULL);
    if (t) {
        CHECK_OK(ia_gguf_tensor_view(g, t, &view));
        CHECK(view.dtype == IA_DTYPE_F32 && view.ndim == 2);
        CHECK(view.shape[0] == 8 && view.shape[1] == 64);
        float x;
        memcpy(&x, (const float *)view.data + 3 * 64 + 5, sizeof x);
        CHECK_NEAR(x, (3 * 64 + 5) / 64.0, 0);
    }
    ia_gguf_close(g);
}

TEST(config_json_needs_architecture_and_maps_names) {
    char buf[64];
    CHECK(strcmp(ia_gguf_arch_to_model_type("command-r", buf, sizeof buf), "cohere") == 0);
    CHECK(strcmp(ia_gguf_arch_to_model_type("nomic-bert", buf, sizeof buf), "nomic_bert") == 0);
    CHECK(strcmp(ia_gguf_arch_to_model_type("qwen2", buf, sizeof buf), "qwen2") == 0);
    CHECK(strcmp(ia_gguf_arch_to_model_type("phi2", buf, sizeof buf), "phi") == 0);
    CHECK(strcmp(ia_gguf_arch_to_model_type("gemma2", buf, sizeof buf), "gemma2") == 0);

    ia_gguf_writer *w = NULL;
    CHECK_OK(ia_gguf_writer_create(&w));
    CHECK_OK(ia_gguf_writer_add_u32(w, "general.file_type", 7));
    const char *path = scratch_path("noarch.gguf");
    CHECK_OK(ia_gguf_writer_write(w, path));
    ia_gguf_writer_free(w);
    ia_gguf *g = NULL;
    json_t *cfg = NULL;
    CHECK_OK(ia_gguf_open(path, &g));
    CHECK_ERR(ia_gguf_config_json(g, &cfg), IA_ENOTFOUND, "'general.architecture' is missing");
    CHECK(cfg == NULL);
    ia_gguf_close(g);

    /* A wrong-typed hyper-parameter is an error naming it; vocab_size falls
     * back to <arch>.vocab_size without tokens. */
    CHECK_OK(ia_gguf_writer_create(&w));
    CHECK_OK(ia_gguf_writer_add_string(w, "general.architecture", "command-r", 9));
    CHECK_OK(ia_gguf_writer_add_u64(w, "command-r.vocab_size", 256000));
    CHECK_OK(ia_gguf_writer_add_string(w, "command-r.block_count", "40", 2));
    CHECK_OK(ia_gguf_writer_write(w, path));
    ia_gguf_writer_free(w);
    CHECK_OK(ia_gguf_open(path, &g));
    CHECK_ERR(ia_gguf_config_json(g, &cfg), IA_EPARSE,
              "key 'command-r.block_count' has type STRING; expected an integer");
    ia_gguf_close(g);
}

/* ---- getters -------------------------------------------------------------------- */

TEST(typed_getters_coerce_when_the_value_fits) {
    ia_gguf *g = NULL;
    CHECK_OK(ia_gguf_open(test_source_path("tests/fixtures/gguf/all_types.gguf"), &g));
    if (!g)
        return;
    uint32_t u32 = 0;
    uint64_t u64 = 0;
    int64_t i64 = 0;
    float f = 0;
    double d = 0;
    bool b = false;
    const char *s = NULL;
    size_t len = 0;
    CHECK_OK(ia_gguf_get_u32(g, "test.u8", true, &u32));
    CHECK_EQ_INT(u32, 200);
    CHECK_OK(ia_gguf_get_u32(g, "test.small_u64", true, &u32));
    CHECK_EQ_INT(u32, 7);
    CHECK_OK(ia_gguf_get_i64(g, "test.i8", true, &i64));
    CHECK_EQ_INT(i64, -100);
    CHECK_OK(ia_gguf_get_u64(g, "test.u32", true, &u64));
    CHECK(u64 == 4000000000u);
    CHECK_OK(ia_gguf_get_u64(g, "test.u64", true, &u64));
    CHECK(u64 == 18000000000000000000ull);
    CHECK_ERR(ia_gguf_get_u32(g, "test.i8", true, &u32), IA_ERANGE,
              "key 'test.i8' is -100, which does not fit in an unsigned 32-bit integer");
    CHECK_ERR(ia_gguf_get_u32(g, "test.u64", true, &u32), IA_ERANGE, "18000000000000000000");
    CHECK_ERR(ia_gguf_get_i64(g, "test.u64", true, &i64), IA_ERANGE, "signed 64-bit");
    CHECK_ERR(ia_gguf_get_u64(g, "test.i64", true, &u64), IA_ERANGE, "-9000000000000000000");
    CHECK_OK(ia_gguf_get_f32(g, "test.f32", true, &f));
    CHECK(f == 3.25f);
    CHECK_OK(ia_gguf_get_f64(g, "test.f64", true, &d));
    CHECK(d == 2.718281828459045);
    CHECK_OK(ia_gguf_get_f64(g, "test.i16", true, &d)); /* integers read as numbers */
    CHECK(d == -32000);
    CHECK_OK(ia_gguf_get_bool(g, "test.bool_true", true, &b));
    CHECK(b);
    CHECK_OK(ia_gguf_get_string(g, "test.empty_string", true, &s, &len));
    CHECK(s && *s == '\0' && len == 0);
    CHECK_ERR(ia_gguf_get_u32(g, "test.string", true, &u32), IA_EPARSE,
              "all_types.gguf: key 'test.string' has type STRING; expected an integer");
    CHECK_ERR(ia_gguf_get_bool(g, "test.u8", true, &b), IA_EPARSE, "expected a BOOL");
    CHECK_ERR(ia_gguf_get_string(g, "test.u8", true, &s, NULL), IA_EPARSE, "expected a STRING");
    CHECK_ERR(ia_gguf_get_f32(g, "test.arr_f32", true, &f), IA_EPARSE, "type ARRAY");
    CHECK_ERR(ia_gguf_get_u32(g, "no.such.key", true, &u32), IA_ENOTFOUND,
              "all_types.gguf: required key 'no.such.key' is missing");
    u32 = 99;
    CHECK_OK(ia_gguf_get_u32(g, "no.such.key", false, &u32));
    CHECK_EQ_INT(u32, 99);
    CHECK(ia_gguf_find(g, "no.such.key") == NULL);
    ia_gguf_close(g);
}

TEST(array_access) {
    ia_gguf *g = NULL;
    CHECK_OK(ia_gguf_open(test_source_path("tests/fixtures/gguf/all_types.gguf"), &g));
    if (!g)
        return;
    const ia_gguf_value *a = ia_gguf_find(g, "test.arr_i16");
    int64_t n = 0;
    double d = 0;
    const char *s = NULL;
    CHECK(ia_gguf_array_type(a) == IA_GGUF_INT16 && ia_gguf_array_count(a) == 3);
    CHECK_OK(ia_gguf_array_int(a, 0, &n));
    CHECK_EQ_INT(n, -3);
    CHECK_OK(ia_gguf_array_float(a, 2, &d)); /* integers read as numbers */
    CHECK(d == 3);
    CHECK_ERR(ia_gguf_array_int(a, 3, &n), IA_ERANGE,
              "key 'test.arr_i16' has 3 elements, no element 3");
    CHECK_ERR(ia_gguf_array_string(a, 0, &s, NULL), IA_EPARSE,
              "key 'test.arr_i16' is an array of INT16; expected strings");
    int16_t raw[3];
    CHECK(ia_gguf_array_data(a) != NULL);
    if (ia_gguf_array_data(a)) {
        memcpy(raw, ia_gguf_array_data(a), sizeof raw);
        CHECK(raw[0] == -3 && raw[1] == 0 && raw[2] == 3);
    }
    CHECK_ERR(ia_gguf_array_int(ia_gguf_find(g, "test.arr_f32"), 0, &n), IA_EPARSE,
              "expected integers");
    CHECK_ERR(ia_gguf_array_int(ia_gguf_find(g, "test.u8"), 0, &n), IA_EPARSE,
              "has type UINT8; expected an ARRAY");
    const ia_gguf_value *nested = ia_gguf_find(g, "test.nested");
    CHECK(ia_gguf_array_type(nested) == IA_GGUF_ARRAY);
    CHECK(ia_gguf_array_data(nested) == NULL);
    const ia_gguf_value *inner = ia_gguf_array_at(nested, 2);
    CHECK(ia_gguf_array_count(inner) == 3);
    CHECK_OK(ia_gguf_array_int(inner, 2, &n));
    CHECK_EQ_INT(n, 6);
    CHECK(ia_gguf_array_at(nested, 3) == NULL);
    CHECK(ia_gguf_array_at(a, 0) == NULL);
    CHECK(ia_gguf_array_type(ia_gguf_find(g, "test.u8")) == IA_GGUF_TYPE_COUNT);
    ia_gguf_close(g);
}

TEST(tensor_dtypes_and_views) {
    ia_gguf *g = NULL;
    CHECK_OK(ia_gguf_open(test_source_path("tests/fixtures/gguf/all_types.gguf"), &g));
    if (!g)
        return;
    ia_dtype dt;
    ia_tensor view;
    CHECK_OK(ia_gguf_tensor_dtype(g, ia_gguf_tensor_find(g, "weight.f16"), &dt));
    CHECK(dt == IA_DTYPE_F16);
    CHECK_OK(ia_gguf_tensor_dtype(g, ia_gguf_tensor_find(g, "ids.i32"), &dt));
    CHECK(dt == IA_DTYPE_I32);
    const ia_gguf_tensor *q = ia_gguf_tensor_find(g, "weight.q8_0");
    CHECK_OK(ia_gguf_tensor_dtype(g, q, &dt));
    CHECK(dt == IA_DTYPE_Q8_0);
    CHECK_OK(ia_gguf_tensor_view(g, q, &view));
    CHECK(view.dtype == IA_DTYPE_Q8_0 && view.ndim == 2 && view.shape[0] == 2 &&
          view.shape[1] == 64);
    ia_gguf_tensor iq = *q; /* a type that is read but not computed */
    iq.type = IA_GGML_IQ2_XXS;
    CHECK_ERR(ia_gguf_tensor_dtype(g, &iq, &dt), IA_EUNSUPPORTED,
              "all_types.gguf: tensor 'weight.q8_0' has ggml type IQ2_XXS, which is read and "
              "size-checked but not computable");
    CHECK(q && q->n_bytes == 2 * 2 * 34); /* 2 rows of 64 = 4 blocks of 34 bytes */

    const ia_gguf_tensor *b = ia_gguf_tensor_find(g, "weight.bf16");
    CHECK_OK(ia_gguf_tensor_view(g, b, &view));
    float got[4], want[4] = {1.0f, -3.0f, 0.15625f, 256.0f};
    CHECK_OK(ia_convert_to_f32(view.dtype, view.data, got, 4));
    for (int i = 0; i < 4; i++)
        CHECK_NEAR(got[i], want[i], 0);
    const ia_gguf_tensor *f = ia_gguf_tensor_find(g, "weight.f32");
    CHECK_OK(ia_gguf_tensor_view(g, f, &view));
    CHECK(view.ndim == 2 && view.shape[0] == 2 && view.shape[1] == 3);
    CHECK_OK(ia_convert_to_f32(view.dtype, view.data, got, 4));
    CHECK(got[2] == 3.25f && got[3] == 0.0f);
    for (size_t i = 0; i < ia_gguf_tensor_count(g); i++)
        CHECK_EQ_INT((ia_gguf_data_offset(g) + ia_gguf_tensor_at(g, i)->offset) % 32, 0);
    CHECK(ia_gguf_tensor_at(g, ia_gguf_tensor_count(g)) == NULL);
    CHECK(ia_gguf_tensor_find(g, "nope") == NULL);
    ia_gguf_close(g);
}

/* Every ggml type id known today, with block size and bytes, written out
 * independently of src/formats/gguf.c from ggml-common.h's block structs. */
TEST(ggml_type_table) {
    static const struct {
        uint32_t id;
        const char *name;
        uint32_t blk, bytes;
    } want[] = {
        {0, "F32", 1, 4},
        {1, "F16", 1, 2},
        {2, "Q4_0", 32, 2 + 16},
        {3, "Q4_1", 32, 4 + 16},
        {6, "Q5_0", 32, 2 + 4 + 16},
        {7, "Q5_1", 32, 4 + 4 + 16},
        {8, "Q8_0", 32, 2 + 32},
        {9, "Q8_1", 32, 4 + 32},
        {10, "Q2_K", 256, 16 + 64 + 4},
        {11, "Q3_K", 256, 32 + 64 + 12 + 2},
        {12, "Q4_K", 256, 4 + 12 + 128},
        {13, "Q5_K", 256, 4 + 12 + 32 + 128},
        {14, "Q6_K", 256, 128 + 64 + 16 + 2},
        {15, "Q8_K", 256, 4 + 256 + 32},
        {16, "IQ2_XXS", 256, 2 + 64},
        {17, "IQ2_XS", 256, 2 + 64 + 8},
        {18, "IQ3_XXS", 256, 2 + 96},
        {19, "IQ1_S", 256, 2 + 32 + 16},
        {20, "IQ4_NL", 32, 2 + 16},
        {21, "IQ3_S", 256, 2 + 64 + 32 + 8 + 4},
        {22, "IQ2_S", 256, 2 + 64 + 16},
        {23, "IQ4_XS", 256, 2 + 2 + 4 + 128},
        {24, "I8", 1, 1},
        {25, "I16", 1, 2},
        {26, "I32", 1, 4},
        {27, "I64", 1, 8},
        {28, "F64", 1, 8},
        {29, "IQ1_M", 256, 32 + 16 + 8},
        {30, "BF16", 1, 2},
        {34, "TQ1_0", 256, 48 + 4 + 2},
        {35, "TQ2_0", 256, 64 + 2},
        {39, "MXFP4", 32, 1 + 16},
        {40, "NVFP4", 64, 4 + 32},
        {41, "Q1_0", 128, 2 + 16},
    };
    size_t known = 0;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const ia_ggml_type_info *ti = ia_ggml_type_get_info(want[i].id);
        CHECK_MSG(ti && strcmp(ti->name, want[i].name) == 0 && ti->block_elems == want[i].blk &&
                      ti->block_bytes == want[i].bytes,
                  "type %u (%s)", want[i].id, want[i].name);
        if (ti)
            CHECK(ti->quantized == (want[i].blk > 1));
    }
    for (uint32_t id = 0; id < 300; id++)
        known += ia_ggml_type_get_info(id) != NULL;
    CHECK_EQ_INT(known, sizeof want / sizeof want[0]);
    CHECK(ia_ggml_type_get_info(4) == NULL && ia_ggml_type_get_info(31) == NULL &&
          ia_ggml_type_get_info(36) == NULL && ia_ggml_type_get_info(42) == NULL);
    uint64_t bytes = 0;
    CHECK_OK(ia_ggml_type_bytes(IA_GGML_Q4_K, 512, &bytes));
    CHECK_EQ_INT(bytes, 288);
    CHECK_ERR(ia_ggml_type_bytes(IA_GGML_Q4_K, 100, &bytes), IA_ERANGE, "not a whole number");
    CHECK_ERR(ia_ggml_type_bytes(5, 1, &bytes), IA_EPARSE, "unknown ggml type id 5");
    CHECK_ERR(ia_ggml_type_bytes(IA_GGML_F64, UINT64_MAX, &bytes), IA_ENOMEM, "overflow");
    CHECK(strcmp(ia_gguf_type_name(IA_GGUF_FLOAT64), "FLOAT64") == 0);
    CHECK(strcmp(ia_gguf_type_name(IA_GGUF_TYPE_COUNT), "unknown") == 0);
}

/* ---- writer --------------------------------------------------------------------- */

TEST(writer_round_trip) {
    ia_gguf_writer *w = NULL;
    CHECK_OK(ia_gguf_writer_create(&w));
    if (!w)
        return;
    CHECK_OK(ia_gguf_writer_add_string(w, "general.architecture", "llama", 5));
    CHECK_OK(ia_gguf_writer_add_u32(w, "general.alignment", 64));
    CHECK_OK(ia_gguf_writer_add_u8(w, "k.u8", 250));
    CHECK_OK(ia_gguf_writer_add_i8(w, "k.i8", -5));
    CHECK_OK(ia_gguf_writer_add_u16(w, "k.u16", 60000));
    CHECK_OK(ia_gguf_writer_add_i16(w, "k.i16", -30000));
    CHECK_OK(ia_gguf_writer_add_i32(w, "k.i32", -123456));
    CHECK_OK(ia_gguf_writer_add_u64(w, "k.u64", UINT64_MAX));
    CHECK_OK(ia_gguf_writer_add_i64(w, "k.i64", INT64_MIN));
    CHECK_OK(ia_gguf_writer_add_f32(w, "k.f32", -0.125f));
    CHECK_OK(ia_gguf_writer_add_f64(w, "k.f64", 1e300));
    CHECK_OK(ia_gguf_writer_add_bool(w, "k.bool", true));
    CHECK_OK(ia_gguf_writer_add_string(w, "k.nul", "a\0b", 3));
    const float fa[3] = {1.5f, -2.25f, 1e-8f};
    const bool ba[2] = {false, true};
    const int64_t ia[2] = {INT64_MIN, 42};
    const uint16_t ua[1] = {65535};
    const char *const sa[3] = {"alpha", "", "\xce\xb2"};
    CHECK_OK(ia_gguf_writer_add_array(w, "k.af32", IA_GGUF_FLOAT32, fa, 3));
    CHECK_OK(ia_gguf_writer_add_array(w, "k.abool", IA_GGUF_BOOL, ba, 2));
    CHECK_OK(ia_gguf_writer_add_array(w, "k.ai64", IA_GGUF_INT64, ia, 2));
    CHECK_OK(ia_gguf_writer_add_array(w, "k.au16", IA_GGUF_UINT16, ua, 1));
    CHECK_OK(ia_gguf_writer_add_array(w, "k.empty", IA_GGUF_INT32, NULL, 0));
    CHECK_OK(ia_gguf_writer_add_string_array(w, "k.astr", sa, 3));

    float t32[6] = {1, 2, 3, 4, 5, 6};
    uint16_t t16[5];
    for (int i = 0; i < 5; i++)
        t16[i] = ia_f32_to_f16((float)i - 2.0f);
    uint8_t q8[34 * 2];
    for (size_t i = 0; i < sizeof q8; i++)
        q8[i] = (uint8_t)(i * 7);
    const uint64_t d32[2] = {3, 2}, d16[1] = {5}, dq[2] = {32, 2}, dscalar[1] = {1};
    CHECK_OK(ia_gguf_writer_add_tensor(w, "t.f32", 2, d32, IA_GGML_F32, t32, sizeof t32));
    CHECK_OK(ia_gguf_writer_add_tensor(w, "t.f16", 1, d16, IA_GGML_F16, t16, sizeof t16));
    CHECK_OK(ia_gguf_writer_add_tensor(w, "t.q8", 2, dq, IA_GGML_Q8_0, q8, sizeof q8));
    CHECK_OK(ia_gguf_writer_add_tensor(w, "t.scalar", 0, dscalar, IA_GGML_F32, t32, 4));
    const char *path = scratch_path("round.gguf");
    CHECK_OK(ia_gguf_writer_write(w, path));
    ia_gguf_writer_free(w);

    ia_gguf *g = NULL;
    CHECK_OK(ia_gguf_open(path, &g));
    if (!g)
        return;
    CHECK_EQ_INT(ia_gguf_version(g), 3);
    CHECK_EQ_INT(ia_gguf_alignment(g), 64);
    CHECK_EQ_INT(ia_gguf_kv_count(g), 19);
    CHECK(strcmp(ia_gguf_kv_key(g, 0), "general.architecture") == 0);
    CHECK(strcmp(ia_gguf_kv_key(g, 18), "k.astr") == 0);
    uint64_t u64 = 0;
    int64_t i64 = 0;
    float f = 0;
    double d = 0;
    uint32_t u32 = 0;
    bool b = false;
    const char *s = NULL;
    size_t len = 0;
    CHECK_OK(ia_gguf_get_u32(g, "k.u8", true, &u32));
    CHECK_EQ_INT(u32, 250);
    CHECK_OK(ia_gguf_get_i64(g, "k.i8", true, &i64));
    CHECK_EQ_INT(i64, -5);
    CHECK_OK(ia_gguf_get_u32(g, "k.u16", true, &u32));
    CHECK_EQ_INT(u32, 60000);
    CHECK_OK(ia_gguf_get_i64(g, "k.i16", true, &i64));
    CHECK_EQ_INT(i64, -30000);
    CHECK_OK(ia_gguf_get_i64(g, "k.i32", true, &i64));
    CHECK_EQ_INT(i64, -123456);
    CHECK_OK(ia_gguf_get_u64(g, "k.u64", true, &u64));
    CHECK(u64 == UINT64_MAX);
    CHECK_OK(ia_gguf_get_i64(g, "k.i64", true, &i64));
    CHECK(i64 == INT64_MIN);
    CHECK_OK(ia_gguf_get_f32(g, "k.f32", true, &f));
    CHECK(f == -0.125f);
    CHECK_OK(ia_gguf_get_f64(g, "k.f64", true, &d));
    CHECK(d == 1e300);
    CHECK_OK(ia_gguf_get_bool(g, "k.bool", true, &b));
    CHECK(b);
    CHECK_OK(ia_gguf_get_string(g, "k.nul", true, &s, &len));
    CHECK(len == 3 && s && memcmp(s, "a\0b", 4) == 0);
    const ia_gguf_value *v = ia_gguf_find(g, "k.af32");
    for (int i = 0; i < 3; i++) {
        CHECK_OK(ia_gguf_array_float(v, (uint64_t)i, &d));
        CHECK(d == (double)fa[i]);
    }
    v = ia_gguf_find(g, "k.abool");
    CHECK(ia_gguf_array_type(v) == IA_GGUF_BOOL);
    CHECK_OK(ia_gguf_array_int(v, 1, &i64));
    CHECK_EQ_INT(i64, 1);
    CHECK_OK(ia_gguf_array_int(ia_gguf_find(g, "k.ai64"), 0, &i64));
    CHECK(i64 == INT64_MIN);
    CHECK_OK(ia_gguf_array_int(ia_gguf_find(g, "k.au16"), 0, &i64));
    CHECK_EQ_INT(i64, 65535);
    CHECK(ia_gguf_array_count(ia_gguf_find(g, "k.empty")) == 0);
    CHECK(ia_gguf_array_type(ia_gguf_find(g, "k.empty")) == IA_GGUF_INT32);
    v = ia_gguf_find(g, "k.astr");
    for (int i = 0; i < 3; i++) {
        CHECK_OK(ia_gguf_array_string(v, (uint64_t)i, &s, &len));
        CHECK(s && strcmp(s, sa[i]) == 0 && len == strlen(sa[i]));
    }
    CHECK_EQ_INT(ia_gguf_tensor_count(g), 4);
    const ia_gguf_tensor *t = ia_gguf_tensor_find(g, "t.f32");
    CHECK(t && t->n_dims == 2 && t->dims[0] == 3 && t->dims[1] == 2 && t->offset == 0);
    CHECK(t && memcmp(t->data, t32, sizeof t32) == 0);
    t = ia_gguf_tensor_find(g, "t.f16");
    CHECK(t && t->offset == 64 && t->n_bytes == 10 && memcmp(t->data, t16, sizeof t16) == 0);
    t = ia_gguf_tensor_find(g, "t.q8");
    CHECK(t && t->offset == 128 && t->type == IA_GGML_Q8_0 && memcmp(t->data, q8, sizeof q8) == 0);
    t = ia_gguf_tensor_find(g, "t.scalar");
    CHECK(t && t->n_dims == 0 && t->n_bytes == 4 && t->offset == 256);
    for (size_t i = 0; i < ia_gguf_tensor_count(g); i++)
        CHECK_EQ_INT((ia_gguf_data_offset(g) + ia_gguf_tensor_at(g, i)->offset) % 64, 0);
    ia_gguf_close(g);
}

/* Copying gguf-py's file through our writer (add_value for every KV, nested
 * arrays included) must give back the very same bytes. */
TEST(writer_copy_of_gguf_py_file_is_identical) {
    const char *src = test_source_path("tests/fixtures/gguf/all_types.gguf");
    ia_gguf *g = NULL;
    ia_gguf_writer *w = NULL;
    CHECK_OK(ia_gguf_open(src, &g));
    CHECK_OK(ia_gguf_writer_create(&w));
    if (!g || !w)
        goto done;
    for (size_t i = 0; i < ia_gguf_kv_count(g); i++)
        CHECK_OK(ia_gguf_writer_add_value(w, ia_gguf_kv_key(g, i), ia_gguf_kv_value(g, i)));
    for (size_t i = 0; i < ia_gguf_tensor_count(g); i++) {
        const ia_gguf_tensor *t = ia_gguf_tensor_at(g, i);
        CHECK_OK(ia_gguf_writer_add_tensor(w, t->name, t->n_dims, t->dims, t->type, t->data,
                                           t->n_bytes));
    }
    const char *keep = getenv("IA_GGUF_KEEP");
    const char *out = keep && *keep ? keep : scratch_path("copy.gguf");
    CHECK_OK(ia_gguf_writer_write(w, out));
    size_t n_src = 0, n_out = 0;
    uint8_t *a = read_file(src, &n_src), *b = read_file(out, &n_out);
    CHECK(a && b && n_src == n_out && memcmp(a, b, n_src) == 0);
    if (a && b && (n_src != n_out || memcmp(a, b, n_src) != 0)) {
        size_t k = 0;
        while (k < n_src && k < n_out && a[k] == b[k])
            k++;
        fprintf(stderr, "  copy differs from %s at byte %zu (sizes %zu, %zu)\n", src, k, n_src,
                n_out);
    }
    free(a);
    free(b);
    ia_gguf *copy = NULL;
    json_t *exp = load_expected("all_types.gguf");
    CHECK_OK(ia_gguf_open(out, &copy));
    if (copy && exp)
        check_against_expected(copy, exp);
    ia_gguf_close(copy);
    json_decref(exp);
done:
    ia_gguf_writer_free(w);
    ia_gguf_close(g);
}

TEST(writer_rejects_bad_input) {
    ia_gguf_writer *w = NULL;
    CHECK_OK(ia_gguf_writer_create(&w));
    if (!w)
        return;
    uint8_t data[64] = {0};
    const uint64_t d2[2] = {4, 2}, dz[1] = {0}, d16[1] = {16}, d5[5] = {1, 1, 1, 1, 1};
    CHECK_OK(ia_gguf_writer_add_u32(w, "a", 1));
    CHECK_ERR(ia_gguf_writer_add_i32(w, "a", 2), IA_EINVAL, "key 'a' was already added");
    CHECK_ERR(ia_gguf_writer_add_u8(w, "", 2), IA_EINVAL, "keys need 1..65535");
    CHECK_ERR(ia_gguf_writer_add_u32(w, "general.alignment", 48), IA_EINVAL,
              "general.alignment 48 is not a power of two");
    CHECK_ERR(ia_gguf_writer_add_array(w, "arr", IA_GGUF_STRING, data, 1), IA_EINVAL,
              "not a scalar");
    CHECK_OK(ia_gguf_writer_add_tensor(w, "t", 2, d2, IA_GGML_F32, data, 32));
    CHECK_ERR(ia_gguf_writer_add_tensor(w, "t", 2, d2, IA_GGML_F32, data, 32), IA_EINVAL,
              "tensor 't' was already added");
    CHECK_ERR(ia_gguf_writer_add_tensor(w, "u", 2, d2, IA_GGML_F32, data, 31), IA_EINVAL,
              "tensor 'u': 8 elements of F32 take 32 bytes, given 31");
    CHECK_ERR(ia_gguf_writer_add_tensor(w, "u", 1, dz, IA_GGML_F32, data, 0), IA_EINVAL,
              "dimension 0 (0) is zero");
    CHECK_ERR(ia_gguf_writer_add_tensor(w, "u", 1, d16, IA_GGML_Q8_0, data, 17), IA_EINVAL,
              "rows of 16 elements are not whole Q8_0 blocks of 32");
    CHECK_ERR(ia_gguf_writer_add_tensor(w, "u", 1, d16, 4, data, 16), IA_EINVAL,
              "tensor 'u' has unknown ggml type id 4");
    CHECK_ERR(ia_gguf_writer_add_tensor(w, "u", 5, d5, IA_GGML_F32, data, 4), IA_EINVAL,
              "5 dimensions");
    /* Failed adds leave nothing behind: the file has one key and one tensor. */
    const char *path = scratch_path("after_errors.gguf");
    CHECK_OK(ia_gguf_writer_write(w, path));
    ia_gguf *g = NULL;
    CHECK_OK(ia_gguf_open(path, &g));
    CHECK(g && ia_gguf_kv_count(g) == 1 && ia_gguf_tensor_count(g) == 1);
    ia_gguf_close(g);
    /* A write into a missing folder fails naming the path and leaves no file. */
    CHECK_ERR(ia_gguf_writer_write(w, scratch_path("no/such/dir/x.gguf")), IA_EIO,
              "no/such/dir/x.gguf: cannot create a temporary file");
    ia_gguf_writer_free(w);
}

TEST(writer_replaces_files_atomically) {
    const char *path = scratch_path("replace.gguf");
    FILE *f = fopen(path, "wb");
    CHECK(f && fputs("old contents", f) >= 0);
    if (f)
        fclose(f);
    ia_gguf_writer *w = NULL;
    CHECK_OK(ia_gguf_writer_create(&w));
    CHECK_OK(ia_gguf_writer_add_string(w, "general.architecture", "bert", 4));
    CHECK_OK(ia_gguf_writer_write(w, path));
    ia_gguf_writer_free(w);
    ia_gguf *g = NULL;
    CHECK_OK(ia_gguf_open(path, &g));
    ia_gguf_close(g);
    /* Only the target is left in the folder: no temporary files. */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q tmp-", scratch_dir());
    CHECK(system(cmd) != 0);
}

/* ---- crafted bad files ------------------------------------------------------------ */

typedef struct buf {
    uint8_t b[4096];
    size_t n;
} buf;

static void put_bytes(buf *b, const void *p, size_t n) {
    if (b->n + n > sizeof b->b) {
        fprintf(stderr, "test buffer overflow\n");
        exit(1);
    }
    memcpy(b->b + b->n, p, n);
    b->n += n;
}
static void put_le(buf *b, uint64_t v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)(v >> (8 * i));
        put_bytes(b, &c, 1);
    }
}
static void put_u32(buf *b, uint32_t v) { put_le(b, v, 4); }
static void put_u64(buf *b, uint64_t v) { put_le(b, v, 8); }
static void put_str(buf *b, const char *s) {
    put_u64(b, strlen(s));
    put_bytes(b, s, strlen(s));
}
static void header(buf *b, uint64_t n_tensors, uint64_t n_kv) {
    b->n = 0;
    put_bytes(b, "GGUF", 4);
    put_u32(b, 3);
    put_u64(b, n_tensors);
    put_u64(b, n_kv);
}
static void kv_u32(buf *b, const char *key, uint32_t v) {
    put_str(b, key);
    put_u32(b, IA_GGUF_UINT32);
    put_u32(b, v);
}
static void tensor_info(buf *b, const char *name, uint32_t n_dims, const uint64_t *dims,
                        uint32_t type, uint64_t offset) {
    put_str(b, name);
    put_u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++)
        put_u64(b, dims[i]);
    put_u32(b, type);
    put_u64(b, offset);
}
/* Pads to the next multiple of 32 and appends n data bytes. */
static void data(buf *b, size_t n) {
    while (b->n % 32)
        put_le(b, 0, 1);
    for (size_t i = 0; i < n; i++)
        put_le(b, (uint8_t)i, 1);
}

static int corpus_seq;

/* Opens b as "bad.gguf" and expects `want` with a message containing
 * "bad.gguf: " followed (anywhere later) by needle. */
static void expect_bad_at(int line, const buf *b, ia_status want, const char *needle) {
    const char *dir = getenv("IA_GGUF_CORPUS");
    if (dir && *dir) {
        char path[512];
        snprintf(path, sizeof path, "%s/bad_%02d_line%d", dir, corpus_seq++, line);
        FILE *f = fopen(path, "wb");
        if (f) {
            fwrite(b->b, 1, b->n, f);
            fclose(f);
        }
    }
    ia_gguf *g = (ia_gguf *)0x1;
    ia_error_clear();
    ia_status st = ia_gguf_open_memory(b->b, b->n, "bad.gguf", &g);
    const char *msg = ia_error_message();
    if (st != want || strncmp(msg, "bad.gguf: ", 10) != 0 || !strstr(msg, needle) || g != NULL) {
        fprintf(stderr, "  line %d: got %s \"%s\", wanted %s with \"%s\"\n", line,
                ia_status_str(st), msg, ia_status_str(want), needle);
        test_failed_checks++;
    }
    if (st == IA_OK)
        ia_gguf_close(g);
}
#define expect_bad(b, want, needle) expect_bad_at(__LINE__, b, want, needle)

TEST(bad_header) {
    buf b = {.n = 0};
    expect_bad(&b, IA_EPARSE, "not a GGUF file: it starts with nothing");
    put_bytes(&b, "GGML\x03\0\0\0", 8);
    expect_bad(&b, IA_EPARSE, "not a GGUF file: it starts with 0x47474d4c");
    b.n = 0;
    put_bytes(&b, "GGUF\x03\0", 6);
    expect_bad(&b, IA_EPARSE, "header: the version needs 4 bytes at byte 4 but only 2 are left");
    b.n = 0;
    put_bytes(&b, "GGUF", 4);
    put_u32(&b, 1);
    put_u32(&b, 0);
    put_u32(&b, 0);
    expect_bad(&b, IA_EUNSUPPORTED, "GGUF version 1 (32-bit counts");
    header(&b, 0, 0);
    b.b[4] = 4;
    expect_bad(&b, IA_EUNSUPPORTED, "GGUF version 4 is not supported");
    header(&b, 0, 0);
    memcpy(b.b + 4, "\0\0\0\x03", 4); /* version 3 written big-endian */
    expect_bad(&b, IA_EUNSUPPORTED, "big-endian GGUF file (version 3 byte-swapped)");
    header(&b, 0, 0);
    b.n -= 3;
    expect_bad(&b, IA_EPARSE, "the KV count needs 8 bytes");
    header(&b, 0, 1000);
    expect_bad(&b, IA_EPARSE, "header claims 1000 KVs but only 0 bytes follow");
    header(&b, UINT64_MAX, 0);
    expect_bad(&b, IA_EPARSE, "header claims 18446744073709551615 tensors");
}

TEST(bad_keys) {
    buf b;
    header(&b, 0, 1);
    put_u64(&b, 1000); /* key length past the end */
    put_bytes(&b, "abcdefghijklm", 13);
    expect_bad(&b, IA_EPARSE, "key 0: the key needs 1000 bytes at byte 32 but only 13 are left");
    header(&b, 0, 1);
    kv_u32(&b, "", 5);
    expect_bad(&b, IA_EPARSE, "key 0 has an empty name");
    header(&b, 0, 1);
    put_u64(&b, 3);
    put_bytes(&b, "a\0b", 3);
    put_u32(&b, IA_GGUF_UINT32);
    put_u32(&b, 1);
    expect_bad(&b, IA_EPARSE, "key 0: name 'a' contains a NUL byte");
    header(&b, 0, 1);
    put_str(&b, "x.y");
    put_u32(&b, 13);
    put_u32(&b, 0);
    expect_bad(&b, IA_EPARSE, "key 'x.y' has unknown value type 13");
    header(&b, 0, 2);
    kv_u32(&b, "dup.key", 1);
    kv_u32(&b, "dup.key", 2);
    expect_bad(&b, IA_EPARSE, "key 'dup.key' appears more than once");
    header(&b, 0, 1);
    put_str(&b, "trunc");
    put_u32(&b, IA_GGUF_UINT64);
    put_u32(&b, 0);
    expect_bad(&b, IA_EPARSE, "key 'trunc': UINT64 needs 8 bytes");
}

TEST(bad_values) {
    buf b;
    header(&b, 0, 1);
    put_str(&b, "s");
    put_u32(&b, IA_GGUF_STRING);
    put_u64(&b, UINT64_MAX / 2);
    put_bytes(&b, "abcd", 4);
    expect_bad(&b, IA_EPARSE, "key 's': a string value needs 9223372036854775807 bytes");
    header(&b, 0, 1);
    put_str(&b, "b");
    put_u32(&b, IA_GGUF_BOOL);
    put_le(&b, 2, 1);
    expect_bad(&b, IA_EPARSE, "key 'b': BOOL value 2 at byte 37 is neither 0 nor 1");
    header(&b, 0, 1);
    put_str(&b, "arr");
    put_u32(&b, IA_GGUF_ARRAY);
    put_u32(&b, IA_GGUF_UINT32);
    put_u64(&b, UINT64_MAX / 2); /* count x 4 overflows */
    put_u32(&b, 0);
    expect_bad(&b, IA_EPARSE, "key 'arr': array of 9223372036854775807 UINT32 values needs more");
    header(&b, 0, 1);
    put_str(&b, "arr");
    put_u32(&b, IA_GGUF_ARRAY);
    put_u32(&b, IA_GGUF_STRING);
    put_u64(&b, 3);
    put_str(&b, "one");
    put_u64(&b, 0);
    expect_bad(&b, IA_EPARSE, "key 'arr': array of 3 STRING values needs at least 8 bytes each");
    header(&b, 0, 1);
    put_str(&b, "arr");
    put_u32(&b, IA_GGUF_ARRAY);
    put_u32(&b, IA_GGUF_ARRAY);
    put_u64(&b, 1000000);
    expect_bad(&b, IA_EPARSE, "array of 1000000 ARRAY values needs at least 12 bytes each");
    header(&b, 0, 1);
    put_str(&b, "arr");
    put_u32(&b, IA_GGUF_ARRAY);
    put_u32(&b, 77);
    put_u64(&b, 0);
    expect_bad(&b, IA_EPARSE, "key 'arr': unknown array element type 77");
    header(&b, 0, 1);
    put_str(&b, "arr");
    put_u32(&b, IA_GGUF_ARRAY);
    put_u32(&b, IA_GGUF_BOOL);
    put_u64(&b, 2);
    put_le(&b, 1, 1);
    put_le(&b, 9, 1);
    expect_bad(&b, IA_EPARSE, "key 'arr': BOOL value 9");

    /* Nesting: IA_GGUF_MAX_DEPTH levels are fine, one more is not. */
    for (int depth = IA_GGUF_MAX_DEPTH; depth <= IA_GGUF_MAX_DEPTH + 1; depth++) {
        header(&b, 0, 1);
        put_str(&b, "deep");
        put_u32(&b, IA_GGUF_ARRAY);
        for (int i = 1; i < depth; i++) {
            put_u32(&b, IA_GGUF_ARRAY);
            put_u64(&b, 1);
        }
        put_u32(&b, IA_GGUF_UINT8);
        put_u64(&b, 1);
        put_le(&b, 42, 1);
        if (depth == IA_GGUF_MAX_DEPTH) {
            ia_gguf *g = NULL;
            CHECK_OK(ia_gguf_open_memory(b.b, b.n, "deep.gguf", &g));
            const ia_gguf_value *v = ia_gguf_find(g, "deep");
            for (int i = 1; i < depth; i++)
                v = ia_gguf_array_at(v, 0);
            int64_t x = 0;
            CHECK_OK(ia_gguf_array_int(v, 0, &x));
            CHECK_EQ_INT(x, 42);
            ia_gguf_close(g);
        } else {
            expect_bad(&b, IA_EPARSE, "key 'deep': arrays nested more than 8 deep");
        }
    }
}

TEST(bad_alignment) {
    buf b;
    header(&b, 0, 1);
    put_str(&b, "general.alignment");
    put_u32(&b, IA_GGUF_UINT64);
    put_u64(&b, 32);
    expect_bad(&b, IA_EPARSE, "key 'general.alignment' is a UINT64; expected UINT32");
    header(&b, 0, 1);
    kv_u32(&b, "general.alignment", 48);
    expect_bad(&b, IA_EPARSE, "key 'general.alignment' is 48; it must be a power of two");
    header(&b, 0, 1);
    kv_u32(&b, "general.alignment", 0);
    expect_bad(&b, IA_EPARSE, "key 'general.alignment' is 0");
}

TEST(bad_tensors) {
    buf b;
    const uint64_t d4[1] = {4}, d2x2[2] = {2, 2}, d5[5] = {1, 1, 1, 1, 1};
    header(&b, 1, 0);
    tensor_info(&b, "w", 5, d5, IA_GGML_F32, 0);
    data(&b, 4);
    expect_bad(&b, IA_EPARSE, "tensor 'w' has 5 dimensions; GGUF allows at most 4");
    const uint64_t dzero[2] = {4, 0};
    header(&b, 1, 0);
    tensor_info(&b, "w", 2, dzero, IA_GGML_F32, 0);
    expect_bad(&b, IA_EPARSE, "tensor 'w': dimension 1 is 0; it must be in 1..2^63-1");
    const uint64_t dhuge[3] = {1u << 31, 1u << 31, 1u << 31};
    header(&b, 1, 0);
    tensor_info(&b, "w", 3, dhuge, IA_GGML_F32, 0);
    expect_bad(&b, IA_ERANGE, "tensor 'w': the element count overflows 63 bits");
    const uint64_t dbytes[2] = {1ull << 31, 1ull << 31};
    header(&b, 1, 0);
    tensor_info(&b, "w", 2, dbytes, IA_GGML_F64, 0);
    expect_bad(&b, IA_ERANGE, "tensor 'w': 4611686018427387904 elements of F64 overflow");
    header(&b, 1, 0);
    tensor_info(&b, "blk.0.attn_q.weight", 1, d4, 4, 0);
    data(&b, 16);
    expect_bad(&b, IA_EPARSE, "tensor 'blk.0.attn_q.weight' has unknown ggml type id 4");
    header(&b, 1, 0);
    tensor_info(&b, "q", 1, d4, IA_GGML_Q8_0, 0);
    data(&b, 34);
    expect_bad(&b, IA_EPARSE,
               "tensor 'q' has type Q8_0 but its rows of 4 elements are not a whole number of "
               "32-element blocks");
    header(&b, 1, 0);
    tensor_info(&b, "w", 1, d4, IA_GGML_F32, 8);
    data(&b, 64);
    expect_bad(&b, IA_EPARSE,
               "tensor 'w' starts at data offset 8, not a multiple of the "
               "alignment 32");
    header(&b, 1, 0);
    tensor_info(&b, "w", 2, d2x2, IA_GGML_F32, 0);
    data(&b, 12);
    expect_bad(&b, IA_EPARSE,
               "tensor 'w' (16 bytes at data offset 0) ends past the data "
               "section, which has 12 bytes");
    header(&b, 1, 0);
    tensor_info(&b, "w", 1, d4, IA_GGML_F32, UINT64_MAX - 31);
    data(&b, 16);
    expect_bad(&b, IA_EPARSE,
               "tensor 'w' (16 bytes at data offset 18446744073709551584) ends "
               "past the data section");
    header(&b, 1, 0);
    tensor_info(&b, "w", 1, d4, IA_GGML_F32, 0);
    expect_bad(&b, IA_EPARSE, "which has 0 bytes (file truncated?)");
    const uint64_t d16[1] = {16};
    header(&b, 2, 0);
    tensor_info(&b, "a", 1, d16, IA_GGML_F32, 0);
    tensor_info(&b, "b", 1, d4, IA_GGML_F32, 32);
    data(&b, 64);
    expect_bad(&b, IA_EPARSE, "tensors 'a' (data bytes 0..64) and 'b' (data bytes 32..48) overlap");
    header(&b, 2, 0);
    tensor_info(&b, "same", 1, d4, IA_GGML_F32, 0);
    tensor_info(&b, "same", 1, d4, IA_GGML_F32, 32);
    data(&b, 64);
    expect_bad(&b, IA_EPARSE, "tensor name 'same' appears more than once");
    header(&b, 1, 0);
    tensor_info(&b, "", 1, d4, IA_GGML_F32, 0);
    data(&b, 16);
    expect_bad(&b, IA_EPARSE, "tensor 0 has an empty name");
    header(&b, 1, 0);
    put_u64(&b, 3);
    put_bytes(&b, "x\0y", 3);
    put_u32(&b, 1);
    put_u64(&b, 4);
    put_u32(&b, IA_GGML_F32);
    put_u64(&b, 0);
    data(&b, 16);
    expect_bad(&b, IA_EPARSE, "tensor 0: name 'x' contains a NUL byte");
    header(&b, 1, 0);
    tensor_info(&b, "w", 1, d4, IA_GGML_F32, 0);
    b.n -= 4; /* offset cut short */
    expect_bad(&b, IA_EPARSE, "tensor 'w': the data offset needs 8 bytes");

    /* The good version of the same file opens, and its tensor is where the
     * data section says. */
    header(&b, 1, 1);
    kv_u32(&b, "general.alignment", 32);
    tensor_info(&b, "w", 1, d4, IA_GGML_F32, 0);
    data(&b, 16);
    ia_gguf *g = NULL;
    CHECK_OK(ia_gguf_open_memory(b.b, b.n, "good.gguf", &g));
    CHECK(g && ia_gguf_tensor_at(g, 0)->data == b.b + ia_gguf_data_offset(g));
    ia_gguf_close(g);
}

/* Errors from a file on disk name its path. */
TEST(errors_name_the_path) {
    buf b;
    header(&b, 0, 1);
    kv_u32(&b, "general.alignment", 3);
    const char *path = scratch_path("bad_alignment.gguf");
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(b.b, 1, b.n, f) == b.n);
    if (f)
        fclose(f);
    ia_gguf *g = (ia_gguf *)0x1;
    char want[512];
    snprintf(want, sizeof want, "%s: key 'general.alignment' is 3", path);
    CHECK_ERR(ia_gguf_open(path, &g), IA_EPARSE, want);
    CHECK(g == NULL);
    CHECK_ERR(ia_gguf_open(scratch_path("missing.gguf"), &g), IA_ENOTFOUND,
              "missing.gguf: cannot open");
}
