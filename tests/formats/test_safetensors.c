/*
 * Tests for the safetensors reader. Each test writes real files with a small
 * writer (below) into a temporary directory and reads them back: good files
 * in every supported dtype, and one crafted bad file per validation rule,
 * checking both the status and that the message names the file and the
 * tensor or field at fault. The last tests open the real default model when
 * it is on this machine (IA_DEFAULT_MODEL, or the fetch script's cache).
 */
#define _GNU_SOURCE
#include "test.h"
#include "test_fs.h"

#include "ia/formats.h"

#include <stdint.h>
#include <unistd.h>

/* ---- a small safetensors writer ------------------------------------------------ */

static void put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static const char *write_bytes(const char *name, const void *bytes, size_t n) {
    const char *path = scratch_path(name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(bytes, 1, n, f) != n) {
        perror(path);
        exit(1);
    }
    fclose(f);
    return path;
}

/* Writes [header_len][header][data]; header_len is strlen(header) unless
 * `len_override` is nonzero (to craft lying lengths). */
static const char *write_raw_st(const char *name, uint64_t len_override, const char *header,
                                const void *data, size_t data_len) {
    size_t hlen = strlen(header);
    size_t total = 8 + hlen + data_len;
    uint8_t *buf = malloc(total);
    put_le64(buf, len_override ? len_override : hlen);
    memcpy(buf + 8, header, hlen);
    if (data_len)
        memcpy(buf + 8 + hlen, data, data_len);
    const char *path = write_bytes(name, buf, total);
    free(buf);
    return path;
}

/* A tensor to write: the writer lays them out back to back, in this order. */
typedef struct wt {
    const char *name, *dtype;
    int ndim;
    int64_t shape[6];
    const void *data;
    size_t nbytes;
} wt;

/* Builds a header for `ts` (plus `extra_json`, e.g. a "__metadata__" entry,
 * when not NULL) and writes a complete file. */
static const char *write_st(const char *name, const wt *ts, size_t n, const char *extra_json) {
    char header[65536];
    size_t used = 0, offset = 0;
    used += (size_t)snprintf(header + used, sizeof header - used, "{");
    if (extra_json)
        used +=
            (size_t)snprintf(header + used, sizeof header - used, "%s%s", extra_json, n ? "," : "");
    for (size_t i = 0; i < n; i++) {
        used += (size_t)snprintf(header + used, sizeof header - used,
                                 "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", i ? "," : "", ts[i].name,
                                 ts[i].dtype);
        for (int d = 0; d < ts[i].ndim; d++)
            used += (size_t)snprintf(header + used, sizeof header - used, "%s%lld", d ? "," : "",
                                     (long long)ts[i].shape[d]);
        used += (size_t)snprintf(header + used, sizeof header - used,
                                 "],\"data_offsets\":[%zu,%zu]}", offset, offset + ts[i].nbytes);
        offset += ts[i].nbytes;
    }
    snprintf(header + used, sizeof header - used, "}");
    uint8_t *data = malloc(offset ? offset : 1);
    offset = 0;
    for (size_t i = 0; i < n; i++) {
        if (ts[i].nbytes)
            memcpy(data + offset, ts[i].data, ts[i].nbytes);
        offset += ts[i].nbytes;
    }
    const char *path = write_raw_st(name, 0, header, data, offset);
    free(data);
    return path;
}

/* Writes `header` with `data_len` zero bytes of data and expects open to fail
 * with `want` and a message containing "<file>: " + needle. */
static void expect_bad(const char *file, const char *header, size_t data_len, ia_status want,
                       const char *needle) {
    uint8_t zeros[256] = {0};
    const char *path = write_raw_st(file, 0, header, zeros, data_len);
    char full[512];
    snprintf(full, sizeof full, "%s: %s", file, needle);
    ia_safetensors *st = (ia_safetensors *)0x1;
    CHECK_ERR(ia_safetensors_open(path, &st), want, full);
    CHECK(st == NULL);
}

/* ---- good files --------------------------------------------------------------- */

TEST(roundtrip_all_dtypes) {
    float f32[6] = {1.5f, -2.0f, 3.25f, 0.0f, 1e-3f, -7.0f};
    uint16_t f16[3], bf16[4];
    float f16_src[3] = {0.5f, -1.25f, 65504.0f}, bf16_src[4] = {1.0f, -3.0f, 0.15625f, 256.0f};
    for (int i = 0; i < 3; i++)
        f16[i] = ia_f32_to_f16(f16_src[i]);
    for (int i = 0; i < 4; i++)
        bf16[i] = ia_f32_to_bf16(bf16_src[i]);
    int64_t i64[2] = {-5, 1LL << 40};
    int32_t i32[1] = {42};
    int8_t i8[2] = {-128, 127};
    wt ts[] = {
        {"layer.0.weight", "F32", 2, {2, 3}, f32, sizeof f32},
        {"half", "F16", 1, {3}, f16, sizeof f16},
        {"brain", "BF16", 2, {2, 2}, bf16, sizeof bf16},
        {"position_ids", "I64", 2, {1, 2}, i64, sizeof i64},
        {"i32", "I32", 1, {1}, i32, sizeof i32},
        {"i8", "I8", 1, {2}, i8, sizeof i8},
    };
    const char *path = write_st("good.safetensors", ts, 6,
                                "\"__metadata__\":{\"format\":\"pt\",\"note\":\"hello\"}");
    ia_safetensors *st = NULL;
    CHECK_OK(ia_safetensors_open(path, &st));
    if (!st)
        return;
    CHECK_EQ_INT(ia_safetensors_count(st), 6);
    CHECK(strcmp(ia_safetensors_path(st), path) == 0);
    static const ia_dtype want[] = {IA_DTYPE_F32, IA_DTYPE_F16, IA_DTYPE_BF16,
                                    IA_DTYPE_I64, IA_DTYPE_I32, IA_DTYPE_I8};
    for (size_t i = 0; i < 6; i++) {
        const ia_tensor *t = ia_safetensors_at(st, i);
        CHECK(t && strcmp(t->name, ts[i].name) == 0); /* header order */
        CHECK(t && t->dtype == want[i]);
        CHECK(t && t->ndim == ts[i].ndim);
        CHECK(t && ia_safetensors_find(st, ts[i].name) == t);
        CHECK(t && memcmp(t->data, ts[i].data, ts[i].nbytes) == 0);
    }
    CHECK(ia_safetensors_at(st, 6) == NULL);

    const ia_tensor *w = ia_safetensors_find(st, "layer.0.weight");
    CHECK(w && w->shape[0] == 2 && w->shape[1] == 3 && ia_tensor_numel(w) == 6);
    float got[6];
    if (w) {
        CHECK_OK(ia_convert_to_f32(w->dtype, w->data, got, 6));
        for (int i = 0; i < 6; i++)
            CHECK_NEAR(got[i], f32[i], 0);
    }
    const ia_tensor *h = ia_safetensors_find(st, "half");
    if (h) {
        CHECK_OK(ia_convert_to_f32(h->dtype, h->data, got, 3));
        for (int i = 0; i < 3; i++)
            CHECK_NEAR(got[i], f16_src[i], 0);
    }
    const ia_tensor *b = ia_safetensors_find(st, "brain");
    if (b) {
        CHECK_OK(ia_convert_to_f32(b->dtype, b->data, got, 4));
        for (int i = 0; i < 4; i++)
            CHECK_NEAR(got[i], bf16_src[i], 0);
    }
    const ia_tensor *p = ia_safetensors_find(st, "position_ids");
    if (p) {
        int64_t v[2];
        memcpy(v, p->data, sizeof v);
        CHECK(v[0] == -5 && v[1] == (1LL << 40));
    }
    CHECK(ia_safetensors_find(st, "missing") == NULL);
    CHECK(ia_safetensors_find(st, "") == NULL);
    CHECK(strcmp(ia_safetensors_metadata(st, "format"), "pt") == 0);
    CHECK(strcmp(ia_safetensors_metadata(st, "note"), "hello") == 0);
    CHECK(ia_safetensors_metadata(st, "absent") == NULL);
    CHECK(ia_safetensors_find(st, "__metadata__") == NULL);
    ia_safetensors_close(st);
}

TEST(empty_and_scalar_tensors) {
    float one = 4.0f;
    wt ts[] = {
        {"empty", "F32", 1, {0}, NULL, 0},
        {"empty2d", "F16", 2, {0, 7}, NULL, 0},
        {"scalar", "F32", 0, {0}, &one, sizeof one},
        {"empty_at_end", "I64", 1, {0}, NULL, 0},
    };
    const char *path = write_st("edge.safetensors", ts, 4, NULL);
    ia_safetensors *st = NULL;
    CHECK_OK(ia_safetensors_open(path, &st));
    if (!st)
        return;
    const ia_tensor *e = ia_safetensors_find(st, "empty");
    CHECK(e && e->ndim == 1 && e->shape[0] == 0 && ia_tensor_numel(e) == 0);
    const ia_tensor *s = ia_safetensors_find(st, "scalar");
    CHECK(s && s->ndim == 0 && ia_tensor_numel(s) == 1);
    if (s) {
        float v;
        memcpy(&v, s->data, sizeof v);
        CHECK(v == 4.0f);
    }
    ia_safetensors_close(st);
}

TEST(no_tensors_and_metadata_only) {
    ia_safetensors *st = NULL;
    CHECK_OK(ia_safetensors_open(write_raw_st("nothing.safetensors", 0, "{}", NULL, 0), &st));
    CHECK(st && ia_safetensors_count(st) == 0 && ia_safetensors_find(st, "x") == NULL);
    ia_safetensors_close(st);
    st = NULL;
    CHECK_OK(ia_safetensors_open(
        write_raw_st("metaonly.safetensors", 0, "{\"__metadata__\":{}}  ", NULL, 0), &st));
    CHECK(st && ia_safetensors_count(st) == 0 && ia_safetensors_metadata(st, "x") == NULL);
    ia_safetensors_close(st);
}

TEST(unaligned_offsets_are_accepted) {
    /* A 13-byte header leaves the F32 data at file offset 21: not 4-aligned. */
    const char *header = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1,9]},"
                         "\"b\":{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[0,1]}}";
    uint8_t data[9] = {7};
    float v[2] = {3.5f, -1.0f};
    memcpy(data + 1, v, sizeof v);
    ia_safetensors *st = NULL;
    CHECK_OK(ia_safetensors_open(write_raw_st("unaligned.safetensors", 0, header, data, 9), &st));
    const ia_tensor *a = st ? ia_safetensors_find(st, "a") : NULL;
    if (a) {
        float got[2];
        memcpy(got, a->data, sizeof got);
        CHECK(got[0] == 3.5f && got[1] == -1.0f);
    }
    CHECK(st && ia_safetensors_at(st, 0) == a); /* header order, not offset order */
    ia_safetensors_close(st);
}

TEST(holes_between_tensors_are_accepted) {
    const char *header = "{\"a\":{\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":[4,6]}}";
    uint8_t data[8] = {0};
    ia_safetensors *st = NULL;
    CHECK_OK(ia_safetensors_open(write_raw_st("holes.safetensors", 0, header, data, 8), &st));
    ia_safetensors_close(st);
}

TEST(unknown_entry_fields_are_ignored) {
    /* The reference reader ignores extra fields; so do we. */
    const char *header =
        "{\"a\":{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[0,1],\"extra\":[{}]}}";
    ia_safetensors *st = NULL;
    CHECK_OK(ia_safetensors_open(write_raw_st("extra.safetensors", 0, header, "x", 1), &st));
    CHECK(st && ia_safetensors_count(st) == 1);
    ia_safetensors_close(st);
}

TEST(bad_arguments) {
    ia_safetensors *st;
    CHECK_ERR(ia_safetensors_parse(NULL, 8, "x", &st), IA_EINVAL, "NULL");
    CHECK_ERR(ia_safetensors_parse((const uint8_t *)"", 0, "x", NULL), IA_EINVAL, "NULL");
    CHECK_ERR(ia_safetensors_open(NULL, &st), IA_EINVAL, "NULL");
    ia_safetensors_close(NULL);
    CHECK(ia_safetensors_count(NULL) == 0 && ia_safetensors_find(NULL, "x") == NULL);
}

TEST(many_tensors_lookup) {
    enum { N = 600 };
    static wt ts[N];
    static char names[N][48];
    static float vals[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "encoder.layer.%d.attention.weight", (i * 7919) % N);
        vals[i] = (float)i;
        ts[i] = (wt){names[i], "F32", 1, {1}, &vals[i], sizeof(float)};
    }
    ia_safetensors *st = NULL;
    CHECK_OK(ia_safetensors_open(write_st("many.safetensors", ts, N, NULL), &st));
    if (!st)
        return;
    CHECK_EQ_INT(ia_safetensors_count(st), N);
    for (int i = 0; i < N; i++) {
        const ia_tensor *t = ia_safetensors_find(st, names[i]);
        float v = -1;
        if (t)
            memcpy(&v, t->data, sizeof v);
        CHECK(t && v == (float)i);
    }
    ia_safetensors_close(st);
}

TEST(parse_from_memory) {
    const char *header = "{\"x\":{\"dtype\":\"I8\",\"shape\":[3],\"data_offsets\":[0,3]}}";
    size_t hlen = strlen(header);
    uint8_t buf[128];
    put_le64(buf, hlen);
    memcpy(buf + 8, header, hlen);
    memcpy(buf + 8 + hlen, "abc", 3);
    ia_safetensors *st = NULL;
    CHECK_OK(ia_safetensors_parse(buf, 8 + hlen + 3, "in-memory", &st));
    const ia_tensor *x = st ? ia_safetensors_find(st, "x") : NULL;
    CHECK(x && x->data == buf + 8 + hlen);
    CHECK(st && strcmp(ia_safetensors_path(st), "in-memory") == 0);
    ia_safetensors_close(st);
    CHECK_ERR(ia_safetensors_parse(buf, 8 + hlen + 2, "in-memory", &st), IA_EPARSE,
              "in-memory: tensor 'x' ends at byte 3 but the data area has 2 bytes");
}

/* ---- bad files: the file and its length prefix ------------------------------------- */

TEST(missing_file) {
    ia_safetensors *st;
    CHECK_ERR(ia_safetensors_open(scratch_path("does-not-exist.safetensors"), &st), IA_ENOTFOUND,
              "does-not-exist.safetensors");
}

TEST(truncated_and_empty_files) {
    ia_safetensors *st;
    CHECK_ERR(ia_safetensors_open(write_bytes("empty.safetensors", "", 0), &st), IA_EPARSE,
              "empty.safetensors: file has 0 bytes");
    CHECK_ERR(ia_safetensors_open(write_bytes("short.safetensors", "\x02\0\0\0", 4), &st),
              IA_EPARSE, "short.safetensors: file has 4 bytes");
}

TEST(header_length_past_end_of_file) {
    ia_safetensors *st;
    const char *path = write_raw_st("trunc.safetensors", 1000, "{}", NULL, 0);
    CHECK_ERR(ia_safetensors_open(path, &st), IA_EPARSE,
              "trunc.safetensors: header length is 1000 bytes but only 2 bytes follow");
}

TEST(header_length_huge) {
    ia_safetensors *st;
    const char *path = write_raw_st("huge.safetensors", UINT64_MAX - 3, "{}", NULL, 0);
    CHECK_ERR(ia_safetensors_open(path, &st), IA_ERANGE,
              "huge.safetensors: header length 18446744073709551612 exceeds");
    path = write_raw_st("huge2.safetensors", IA_SAFETENSORS_MAX_HEADER + 1ull, "{}", NULL, 0);
    CHECK_ERR(ia_safetensors_open(path, &st), IA_ERANGE, "huge2.safetensors: header length");
}

TEST(header_not_json_or_not_object) {
    expect_bad("badjson.safetensors", "{\"a\": {", 0, IA_EPARSE, "header: invalid JSON");
    expect_bad("array.safetensors", "[1, 2]", 0, IA_EPARSE,
               "header is a JSON array; expected an object");
    expect_bad("dup.safetensors",
               "{\"a\":{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[0,1]},"
               "\"a\":{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
               2, IA_EPARSE, "header: invalid JSON at line 1, column 56: duplicate object key");
    expect_bad("badutf8.safetensors", "{\"\xff\":1}", 0, IA_EPARSE, "header: invalid JSON");
    expect_bad("emptyheader.safetensors", "", 0, IA_EPARSE, "header: invalid JSON");
}

/* ---- bad files: entries ------------------------------------------------------------ */

#define ENTRY(body) "{\"w\":" body "}"

TEST(entry_not_object) {
    expect_bad("notobj.safetensors", ENTRY("[1,2]"), 0, IA_EPARSE,
               "tensor 'w' must be an object with dtype, shape and data_offsets, got array");
}

TEST(missing_fields) {
    expect_bad("nodtype.safetensors", ENTRY("{\"shape\":[1],\"data_offsets\":[0,4]}"), 4, IA_EPARSE,
               "tensor 'w' has no 'dtype' field");
    expect_bad("noshape.safetensors", ENTRY("{\"dtype\":\"F32\",\"data_offsets\":[0,4]}"), 4,
               IA_EPARSE, "tensor 'w' has no 'shape' field");
    expect_bad("nooffsets.safetensors", ENTRY("{\"dtype\":\"F32\",\"shape\":[1]}"), 4, IA_EPARSE,
               "tensor 'w' has no 'data_offsets' field");
}

TEST(wrong_field_types) {
    expect_bad("dtypeint.safetensors", ENTRY("{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}"),
               4, IA_EPARSE, "tensor 'w': field 'dtype' must be a string, got integer");
    expect_bad("shapeobj.safetensors",
               ENTRY("{\"dtype\":\"F32\",\"shape\":{},\"data_offsets\":[0,4]}"), 4, IA_EPARSE,
               "tensor 'w': field 'shape' must be an array, got object");
    expect_bad("offsstr.safetensors",
               ENTRY("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":\"0-4\"}"), 4, IA_EPARSE,
               "tensor 'w': field 'data_offsets' must be an array, got string");
    expect_bad("offs3.safetensors",
               ENTRY("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}"), 8, IA_EPARSE,
               "tensor 'w': data_offsets must be [begin, end], got 3 values");
    expect_bad("offsneg.safetensors",
               ENTRY("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}"), 4, IA_EPARSE,
               "tensor 'w': data_offsets[0] must be a non-negative integer, got -4");
    expect_bad("offsreal.safetensors",
               ENTRY("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.0]}"), 4, IA_EPARSE,
               "tensor 'w': data_offsets[1] must be a non-negative integer, got the real number 4");
    expect_bad("dtypenul.safetensors",
               ENTRY("{\"dtype\":\"F32\\u0000\",\"shape\":[1],\"data_offsets\":[0,4]}"), 4,
               IA_EPARSE, "tensor 'w' has unknown dtype 'F32'");
}

TEST(bad_shapes) {
    expect_bad("shapeneg.safetensors",
               ENTRY("{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,4]}"), 4, IA_EPARSE,
               "tensor 'w': shape[1] must be a non-negative integer, got -1");
    expect_bad("shapereal.safetensors",
               ENTRY("{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}"), 4, IA_EPARSE,
               "tensor 'w': shape[0] must be a non-negative integer, got the real number 1.5");
    expect_bad("shapestr.safetensors",
               ENTRY("{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}"), 4, IA_EPARSE,
               "tensor 'w': shape[0] must be a non-negative integer, got string");
    expect_bad("shapeoverflow.safetensors",
               ENTRY("{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
                     "\"data_offsets\":[0,4]}"),
               4, IA_ERANGE, "tensor 'w' has a shape whose element count overflows");
    expect_bad("bytesoverflow.safetensors",
               ENTRY("{\"dtype\":\"F32\",\"shape\":[4611686018427387904],"
                     "\"data_offsets\":[0,4]}"),
               4, IA_ERANGE, "tensor 'w': 4611686018427387904 elements of F32 overflow");
    expect_bad("fivedims.safetensors",
               ENTRY("{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}"), 4,
               IA_EUNSUPPORTED, "tensor 'w' has 5 dimensions; at most 4 are supported");
    /* A zero dim makes the tensor empty even when the other dims would overflow. */
    ia_safetensors *st = NULL;
    const char *path = write_raw_st(
        "zerodim.safetensors", 0,
        ENTRY("{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,0],\"data_offsets\":[0,0]}"),
        NULL, 0);
    CHECK_OK(ia_safetensors_open(path, &st));
    ia_safetensors_close(st);
}

TEST(dtypes_unknown_and_unsupported) {
    expect_bad("f33.safetensors", ENTRY("{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}"),
               4, IA_EPARSE, "tensor 'w' has unknown dtype 'F33'");
    expect_bad("lower.safetensors",
               ENTRY("{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}"), 4, IA_EPARSE,
               "tensor 'w' has unknown dtype 'f32'");
    static const char *const unsupported[][2] = {{"F64", "8"},     {"U8", "1"},  {"BOOL", "1"},
                                                 {"F8_E4M3", "1"}, {"U16", "2"}, {"F4", "1"}};
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        char header[256], needle[128];
        int shape = strcmp(unsupported[i][0], "F4") == 0 ? 2 : 1;
        snprintf(header, sizeof header,
                 "{\"w\":{\"dtype\":\"%s\",\"shape\":[%d],\"data_offsets\":[0,%s]}}",
                 unsupported[i][0], shape, unsupported[i][1]);
        snprintf(needle, sizeof needle, "tensor 'w' has dtype %s, which is not supported",
                 unsupported[i][0]);
        expect_bad("unsup.safetensors", header, 8, IA_EUNSUPPORTED, needle);
    }
    expect_bad("f4odd.safetensors",
               ENTRY("{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}"), 2, IA_EPARSE,
               "tensor 'w': 3 elements of F4 do not fill whole bytes");
    /* A structural error elsewhere wins over an unsupported dtype. */
    expect_bad("unsup_and_bad.safetensors",
               "{\"d\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]},"
               "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
               8, IA_EPARSE, "tensor 'w' ends at byte 12 but the data area has 8 bytes");
}

TEST(bad_ranges) {
    expect_bad("mismatch.safetensors",
               ENTRY("{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}"), 24, IA_EPARSE,
               "tensor 'w' has dtype F32 and 6 elements (24 bytes) but data_offsets [0, 20] "
               "span 20 bytes");
    expect_bad("pastend.safetensors",
               "{\"encoder.layer.0.attention.self.query.weight\":{\"dtype\":\"F32\",\"shape\":"
               "[2],\"data_offsets\":[4,12]}}",
               10, IA_EPARSE,
               "tensor 'encoder.layer.0.attention.self.query.weight' ends at byte 12 but the "
               "data area has 10 bytes");
    expect_bad("backwards.safetensors",
               ENTRY("{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}"), 8, IA_EPARSE,
               "tensor 'w': data_offsets [8, 4] end before they begin");
    expect_bad("hugeoffset.safetensors",
               ENTRY("{\"dtype\":\"I8\",\"shape\":[0],\"data_offsets\":[9223372036854775807,"
                     "9223372036854775807]}"),
               0, IA_EPARSE, "tensor 'w' ends at byte 9223372036854775807");
}

TEST(overlapping_ranges) {
    expect_bad("overlap.safetensors",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               8, IA_EPARSE, "tensors 'a' (bytes 0..8) and 'b' (bytes 4..8) overlap");
    expect_bad("same.safetensors",
               "{\"a\":{\"dtype\":\"I8\",\"shape\":[4],\"data_offsets\":[0,4]},"
               "\"b\":{\"dtype\":\"I8\",\"shape\":[4],\"data_offsets\":[0,4]}}",
               4, IA_EPARSE, "tensors 'a' (bytes 0..4) and 'b' (bytes 0..4) overlap");
    /* A long tensor that swallows a later, shorter one further on. */
    expect_bad("nested.safetensors",
               "{\"big\":{\"dtype\":\"I8\",\"shape\":[16],\"data_offsets\":[0,16]},"
               "\"x\":{\"dtype\":\"I8\",\"shape\":[2],\"data_offsets\":[16,18]},"
               "\"y\":{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[10,11]}}",
               18, IA_EPARSE, "tensors 'big' (bytes 0..16) and 'y' (bytes 10..11) overlap");
    /* Empty tensors own no bytes, so they may sit anywhere. */
    ia_safetensors *st = NULL;
    uint8_t zeros[8] = {0};
    const char *path =
        write_raw_st("emptyinside.safetensors", 0,
                     "{\"a\":{\"dtype\":\"I8\",\"shape\":[8],\"data_offsets\":[0,8]},"
                     "\"e\":{\"dtype\":\"I8\",\"shape\":[0],\"data_offsets\":[3,3]}}",
                     zeros, 8);
    CHECK_OK(ia_safetensors_open(path, &st));
    ia_safetensors_close(st);
}

TEST(bad_metadata) {
    expect_bad("metaint.safetensors", "{\"__metadata__\":{\"format\":\"pt\",\"step\":5}}", 0,
               IA_EPARSE, "__metadata__ entry 'step' must be a string, got integer");
    expect_bad("metaobj.safetensors", "{\"__metadata__\":{\"nested\":{}}}", 0, IA_EPARSE,
               "__metadata__ entry 'nested' must be a string, got object");
    expect_bad("metaarr.safetensors", "{\"__metadata__\":[\"pt\"]}", 0, IA_EPARSE,
               "'__metadata__' must be an object of strings, got array");
    expect_bad("metanul.safetensors", "{\"__metadata__\":{\"k\":\"a\\u0000b\"}}", 0, IA_EPARSE,
               "__metadata__ entry 'k' contains a NUL character");
}

/* ---- the real model ------------------------------------------------------------------ */

static char *default_model_file(const char *name) {
    const char *dir = getenv("IA_DEFAULT_MODEL");
    char buf[4096];
    if (!dir || !*dir) {
        const char *home = getenv("HOME");
        if (!home)
            return NULL;
        snprintf(buf, sizeof buf, "%s/.cache/ipfs-accelerate/models/all-MiniLM-L6-v2", home);
        dir = buf;
    }
    char *path = ia_path_join(dir, name);
    if (path && !ia_file_exists(path)) {
        free(path);
        path = NULL;
    }
    return path;
}

TEST(real_model) {
    char *path = default_model_file("model.safetensors");
    if (!path)
        SKIP("no default model (set IA_DEFAULT_MODEL or run scripts/fetch-default-model.sh)");
    ia_safetensors *st = NULL;
    CHECK_OK(ia_safetensors_open(path, &st));
    free(path);
    if (!st)
        return;
    CHECK(ia_safetensors_count(st) > 100);
    const ia_tensor *t = ia_safetensors_find(st, "embeddings.word_embeddings.weight");
    CHECK(t && t->dtype == IA_DTYPE_F32 && t->ndim == 2);
    CHECK(t && t->shape[0] == 30522 && t->shape[1] == 384);
    /* Every tensor is findable by its own name. */
    for (size_t i = 0; i < ia_safetensors_count(st); i++) {
        const ia_tensor *u = ia_safetensors_at(st, i);
        CHECK(ia_safetensors_find(st, u->name) == u);
    }
    ia_safetensors_close(st);
}
