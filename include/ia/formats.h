/*
 * formats: model files.
 *
 * safetensors: an 8-byte little-endian header length, a JSON header mapping
 * tensor names to {dtype, shape, data_offsets}, then the data. The reader
 * maps the file and validates everything before handing out views: header
 * size bound, known dtype, shape product times element size equal to the
 * byte range, ranges inside the data area, no two tensors overlapping.
 *
 * config: a HF config.json (or any JSON object of settings) with typed
 * getters whose errors name the file and the field.
 */
#ifndef IA_FORMATS_H
#define IA_FORMATS_H

#include "ia/base.h"
#include "ia/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The largest safetensors JSON header we accept (the format's own bound). */
#define IA_SAFETENSORS_MAX_HEADER (100u * 1024u * 1024u)

typedef struct ia_safetensors ia_safetensors;

/* Maps and validates a file. The handle owns the mapping; tensors' data
 * point into it and stay valid until ia_safetensors_close. */
ia_status ia_safetensors_open(const char *path, ia_safetensors **out);

/* Validates a safetensors image already in memory (borrowed: it must outlive
 * the handle). `what` names it in errors. Used by open and by the fuzzer. */
ia_status ia_safetensors_parse(const uint8_t *data, size_t size, const char *what,
                               ia_safetensors **out);

void ia_safetensors_close(ia_safetensors *st);

size_t ia_safetensors_count(const ia_safetensors *st);
/* i-th tensor in header order (the "__metadata__" entry is not a tensor). */
const ia_tensor *ia_safetensors_at(const ia_safetensors *st, size_t i);
/* NULL when absent (no error message is set). */
const ia_tensor *ia_safetensors_find(const ia_safetensors *st, const char *name);
/* Value of a "__metadata__" string entry, or NULL. */
const char *ia_safetensors_metadata(const ia_safetensors *st, const char *key);
/* Drops the file's resident pages (see ia_file_drop_pages); views stay
 * valid and fault pages back in when touched. No effect on parsed images. */
void ia_safetensors_drop_pages(const ia_safetensors *st);
/* The path or `what` it was opened with. */
const char *ia_safetensors_path(const ia_safetensors *st);

/* ---- config.json -------------------------------------------------------- */

typedef struct ia_config ia_config;

ia_status ia_config_load(const char *path, ia_config **out);
/* From memory; `what` names it in errors. */
ia_status ia_config_parse(const char *text, size_t len, const char *what, ia_config **out);
void ia_config_free(ia_config *cfg);
const char *ia_config_path(const ia_config *cfg);

bool ia_config_has(const ia_config *cfg, const char *key);
/* Each getter: IA_ENOTFOUND with a message when the key is missing and
 * `required`; otherwise leaves *out (the default) untouched when missing.
 * IA_EPARSE when present with the wrong JSON type; IA_ERANGE when an integer
 * does not fit. Messages read "config.json: field 'hidden_size' ...". */
ia_status ia_config_int(const ia_config *cfg, const char *key, bool required, int64_t *out);
ia_status ia_config_float(const ia_config *cfg, const char *key, bool required, double *out);
ia_status ia_config_bool(const ia_config *cfg, const char *key, bool required, bool *out);
/* *out is borrowed from the config (valid until ia_config_free). */
ia_status ia_config_string(const ia_config *cfg, const char *key, bool required, const char **out);
/* The i-th string of an array field (e.g. "architectures"), borrowed. */
ia_status ia_config_string_at(const ia_config *cfg, const char *key, size_t i, const char **out);
/* The underlying jansson object (borrowed), for structured fields. */
struct json_t *ia_config_json(const ia_config *cfg);

/* ==== GGUF (ggml's model format) =========================================== */
/*
 * A GGUF file is a little-endian header ("GGUF", version 2 or 3, tensor and
 * key-value counts), typed key-value metadata, tensor infos, then a data
 * section aligned to general.alignment (default 32). The reader maps the
 * file and validates everything before handing out a handle (docs/FORMATS.md
 * lists the rules); values and tensor data are then read without further
 * checks. Dims are in ggml order: dims[0] is the innermost (contiguous)
 * dimension, the reverse of ia_tensor's shape.
 */

/* Metadata value types, with the file's ids. */
typedef enum ia_gguf_type {
    IA_GGUF_UINT8 = 0,
    IA_GGUF_INT8 = 1,
    IA_GGUF_UINT16 = 2,
    IA_GGUF_INT16 = 3,
    IA_GGUF_UINT32 = 4,
    IA_GGUF_INT32 = 5,
    IA_GGUF_FLOAT32 = 6,
    IA_GGUF_BOOL = 7,
    IA_GGUF_STRING = 8,
    IA_GGUF_ARRAY = 9,
    IA_GGUF_UINT64 = 10,
    IA_GGUF_INT64 = 11,
    IA_GGUF_FLOAT64 = 12,
    IA_GGUF_TYPE_COUNT
} ia_gguf_type;

/* "UINT8", "STRING", ... ("unknown" outside the enum). */
const char *ia_gguf_type_name(ia_gguf_type type);

/* ggml tensor type ids known today (gaps are ids ggml retired). */
typedef enum ia_ggml_type {
    IA_GGML_F32 = 0,
    IA_GGML_F16 = 1,
    IA_GGML_Q4_0 = 2,
    IA_GGML_Q4_1 = 3,
    IA_GGML_Q5_0 = 6,
    IA_GGML_Q5_1 = 7,
    IA_GGML_Q8_0 = 8,
    IA_GGML_Q8_1 = 9,
    IA_GGML_Q2_K = 10,
    IA_GGML_Q3_K = 11,
    IA_GGML_Q4_K = 12,
    IA_GGML_Q5_K = 13,
    IA_GGML_Q6_K = 14,
    IA_GGML_Q8_K = 15,
    IA_GGML_IQ2_XXS = 16,
    IA_GGML_IQ2_XS = 17,
    IA_GGML_IQ3_XXS = 18,
    IA_GGML_IQ1_S = 19,
    IA_GGML_IQ4_NL = 20,
    IA_GGML_IQ3_S = 21,
    IA_GGML_IQ2_S = 22,
    IA_GGML_IQ4_XS = 23,
    IA_GGML_I8 = 24,
    IA_GGML_I16 = 25,
    IA_GGML_I32 = 26,
    IA_GGML_I64 = 27,
    IA_GGML_F64 = 28,
    IA_GGML_IQ1_M = 29,
    IA_GGML_BF16 = 30,
    IA_GGML_TQ1_0 = 34,
    IA_GGML_TQ2_0 = 35,
    IA_GGML_MXFP4 = 39,
    IA_GGML_NVFP4 = 40,
    IA_GGML_Q1_0 = 41,
} ia_ggml_type;

typedef struct ia_ggml_type_info {
    uint32_t id;
    const char *name;     /* "Q8_0", as ggml spells it */
    uint32_t block_elems; /* elements per block: 1 for plain types */
    uint32_t block_bytes; /* bytes per block */
    bool quantized;       /* a block format (not plain numbers) */
} ia_ggml_type_info;

/* The table entry for a ggml type id; NULL for an id ggml does not define. */
const ia_ggml_type_info *ia_ggml_type_get_info(uint32_t id);
/* Bytes of n_elems elements of `id` into *out: IA_EPARSE for an unknown id,
 * IA_ERANGE when n_elems is not a whole number of blocks, IA_ENOMEM on
 * overflow. No message names a file: callers prefix one. */
ia_status ia_ggml_type_bytes(uint32_t id, uint64_t n_elems, uint64_t *out);

/* Limits (docs/FORMATS.md): array nesting depth (a top-level array is 1)
 * and the longest key the spec allows. */
#define IA_GGUF_MAX_DEPTH 8
#define IA_GGUF_MAX_KEY 65535u
#define IA_GGUF_DEFAULT_ALIGNMENT 32u

typedef struct ia_gguf ia_gguf;
/* A metadata value, borrowed from its ia_gguf (valid until ia_gguf_close). */
typedef struct ia_gguf_value ia_gguf_value;

/* A tensor info, borrowed from its ia_gguf. dims[0] is the innermost. */
typedef struct ia_gguf_tensor {
    const char *name;
    uint32_t n_dims;  /* 0..4; 0 is a scalar (one element) */
    uint64_t dims[4]; /* ggml order; entries past n_dims are 1 */
    uint32_t type;    /* an ia_ggml_type id (known: checked on open) */
    uint64_t offset;  /* from the start of the data section */
    uint64_t n_bytes; /* from the type table: blocks x bytes per block */
    const void *data; /* into the mapping; n_bytes readable */
} ia_gguf_tensor;

/* Maps and validates a GGUF file. The handle owns the mapping; every pointer
 * it hands out stays valid until ia_gguf_close. On error *out is NULL and
 * the message names the file, the key or tensor, and the problem. */
ia_status ia_gguf_open(const char *path, ia_gguf **out);
/* The same over a borrowed image in memory (it must outlive the handle);
 * `what` names it in errors. Used by tests and the fuzzer. */
ia_status ia_gguf_open_memory(const uint8_t *data, size_t size, const char *what, ia_gguf **out);
void ia_gguf_close(ia_gguf *g);
/* Drops the file's resident pages (see ia_file_drop_pages): after a loader
 * has packed the weights, the mapping need not stay in memory. Every
 * pointer the handle gave out stays valid and faults its page back in when
 * read. No effect on images opened from memory. */
void ia_gguf_drop_pages(const ia_gguf *g);
/* The same for the whole pages inside [p, p + n) when that range lies in
 * the file's mapping (a tensor's data just packed elsewhere); a range
 * outside it (a heap copy) is left alone. */
void ia_gguf_drop_range(const ia_gguf *g, const void *p, size_t n);

const char *ia_gguf_path(const ia_gguf *g);
uint32_t ia_gguf_version(const ia_gguf *g);
uint32_t ia_gguf_alignment(const ia_gguf *g);
/* File offset of the data section. */
uint64_t ia_gguf_data_offset(const ia_gguf *g);

/* ---- metadata ---- */

size_t ia_gguf_kv_count(const ia_gguf *g);
/* The i-th key and value in file order; NULL past the end. */
const char *ia_gguf_kv_key(const ia_gguf *g, size_t i);
const ia_gguf_value *ia_gguf_kv_value(const ia_gguf *g, size_t i);
/* NULL when absent (no message is set). */
const ia_gguf_value *ia_gguf_find(const ia_gguf *g, const char *key);

ia_gguf_type ia_gguf_value_type(const ia_gguf_value *v);
/* The key this value (or the array holding it) belongs to. */
const char *ia_gguf_value_key(const ia_gguf_value *v);

/* Typed reads of a scalar value. Integer getters accept any integer type
 * whose value fits (IA_ERANGE otherwise); float getters accept FLOAT32,
 * FLOAT64 and integers; bool and string want exactly that type. A value of
 * another type is IA_EPARSE ("key 'x' is a STRING; expected an integer").
 * Strings are NUL-terminated copies owned by the handle; *len (may be NULL)
 * is the byte length, which may count embedded NULs. */
ia_status ia_gguf_value_u32(const ia_gguf_value *v, uint32_t *out);
ia_status ia_gguf_value_u64(const ia_gguf_value *v, uint64_t *out);
ia_status ia_gguf_value_i64(const ia_gguf_value *v, int64_t *out);
ia_status ia_gguf_value_f32(const ia_gguf_value *v, float *out);
ia_status ia_gguf_value_f64(const ia_gguf_value *v, double *out);
ia_status ia_gguf_value_bool(const ia_gguf_value *v, bool *out);
ia_status ia_gguf_value_string(const ia_gguf_value *v, const char **out, size_t *len);

/* The same by key. A missing key is IA_ENOTFOUND with a message when
 * `required`; otherwise IA_OK with *out (the default) untouched. */
ia_status ia_gguf_get_u32(const ia_gguf *g, const char *key, bool required, uint32_t *out);
ia_status ia_gguf_get_u64(const ia_gguf *g, const char *key, bool required, uint64_t *out);
ia_status ia_gguf_get_i64(const ia_gguf *g, const char *key, bool required, int64_t *out);
ia_status ia_gguf_get_f32(const ia_gguf *g, const char *key, bool required, float *out);
ia_status ia_gguf_get_f64(const ia_gguf *g, const char *key, bool required, double *out);
ia_status ia_gguf_get_bool(const ia_gguf *g, const char *key, bool required, bool *out);
ia_status ia_gguf_get_string(const ia_gguf *g, const char *key, bool required, const char **out,
                             size_t *len);

/* Arrays. element type and count are IA_GGUF_TYPE_COUNT and 0 for a value
 * that is not an array. Element getters: IA_EPARSE when v is not an array
 * or its elements are of another kind, IA_ERANGE past the end (or, for
 * _int, a UINT64 above INT64_MAX). _int takes integer and BOOL elements,
 * _float float and integer ones. */
ia_gguf_type ia_gguf_array_type(const ia_gguf_value *v);
uint64_t ia_gguf_array_count(const ia_gguf_value *v);
ia_status ia_gguf_array_int(const ia_gguf_value *v, uint64_t i, int64_t *out);
ia_status ia_gguf_array_float(const ia_gguf_value *v, uint64_t i, double *out);
ia_status ia_gguf_array_string(const ia_gguf_value *v, uint64_t i, const char **out, size_t *len);
/* The i-th element of an array of arrays; NULL otherwise or past the end. */
const ia_gguf_value *ia_gguf_array_at(const ia_gguf_value *v, uint64_t i);
/* The packed little-endian elements of an array of scalars, in the mapping
 * (possibly unaligned: read with memcpy); NULL for other values. */
const void *ia_gguf_array_data(const ia_gguf_value *v);

/* ---- tensors ---- */

size_t ia_gguf_tensor_count(const ia_gguf *g);
/* In file order; NULL past the end. */
const ia_gguf_tensor *ia_gguf_tensor_at(const ia_gguf *g, size_t i);
/* NULL when absent (no message is set). */
const ia_gguf_tensor *ia_gguf_tensor_find(const ia_gguf *g, const char *name);
/* The ia_dtype of a tensor's ggml type: F32, F16, BF16, I8, I32, I64 and
 * the block-quantised types of quant.h (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K to
 * Q6_K, Q8_K) map one to one. Other types (the IQ and ternary families, F64,
 * I16) are IA_EUNSUPPORTED with a message naming the file, the tensor and its
 * type: they are read and size-checked but not computable. */
ia_status ia_gguf_tensor_dtype(const ia_gguf *g, const ia_gguf_tensor *t, ia_dtype *out);
/* An ia_tensor view of t (shape reversed into row-major order, data into the
 * mapping); the same errors as ia_gguf_tensor_dtype. */
ia_status ia_gguf_tensor_view(const ia_gguf *g, const ia_gguf_tensor *t, ia_tensor *out);

/* A config.json-like object from GGUF metadata, for the classifier and the
 * planner: model_type (general.architecture mapped to the HF name),
 * hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads,
 * intermediate_size, max_position_embeddings, vocab_size, gguf_file_type,
 * each present only when the file has it (docs/FORMATS.md). The caller owns
 * *out (json_decref). IA_ENOTFOUND without general.architecture; IA_EPARSE
 * or IA_ERANGE when a key has the wrong type. */
ia_status ia_gguf_config_json(const ia_gguf *g, struct json_t **out);
/* The HF model_type for a GGUF architecture name ("command-r" -> "cohere");
 * names without an entry come back with '-' turned into '_', in buf. */
const char *ia_gguf_arch_to_model_type(const char *arch, char *buf, size_t cap);

/* ---- writer ---- */

/* Builds a GGUF v3 file in memory (metadata) and writes it in one go: header,
 * KVs in the order added, tensor infos and data in the order added, each
 * tensor's data aligned to the alignment (32 unless general.alignment is
 * set). Tensor data is borrowed: it must stay valid until the write. */
typedef struct ia_gguf_writer ia_gguf_writer;

ia_status ia_gguf_writer_create(ia_gguf_writer **out);
void ia_gguf_writer_free(ia_gguf_writer *w);

/* Each add fails with IA_EINVAL on an empty key, a key longer than
 * IA_GGUF_MAX_KEY or one already added (the message names the key). */
ia_status ia_gguf_writer_add_u8(ia_gguf_writer *w, const char *key, uint8_t v);
ia_status ia_gguf_writer_add_i8(ia_gguf_writer *w, const char *key, int8_t v);
ia_status ia_gguf_writer_add_u16(ia_gguf_writer *w, const char *key, uint16_t v);
ia_status ia_gguf_writer_add_i16(ia_gguf_writer *w, const char *key, int16_t v);
/* "general.alignment" (a power of two) also sets the writer's alignment. */
ia_status ia_gguf_writer_add_u32(ia_gguf_writer *w, const char *key, uint32_t v);
ia_status ia_gguf_writer_add_i32(ia_gguf_writer *w, const char *key, int32_t v);
ia_status ia_gguf_writer_add_u64(ia_gguf_writer *w, const char *key, uint64_t v);
ia_status ia_gguf_writer_add_i64(ia_gguf_writer *w, const char *key, int64_t v);
ia_status ia_gguf_writer_add_f32(ia_gguf_writer *w, const char *key, float v);
ia_status ia_gguf_writer_add_f64(ia_gguf_writer *w, const char *key, double v);
ia_status ia_gguf_writer_add_bool(ia_gguf_writer *w, const char *key, bool v);
/* len bytes of s (which may hold NULs). */
ia_status ia_gguf_writer_add_string(ia_gguf_writer *w, const char *key, const char *s, size_t len);
/* An array of count scalars of elem_type, given as a C array of the matching
 * host type (uint8_t ... double; bool for IA_GGUF_BOOL). */
ia_status ia_gguf_writer_add_array(ia_gguf_writer *w, const char *key, ia_gguf_type elem_type,
                                   const void *elems, size_t count);
/* An array of count NUL-terminated strings. */
ia_status ia_gguf_writer_add_string_array(ia_gguf_writer *w, const char *key,
                                          const char *const *strs, size_t count);
/* A copy of a value read from another file (any type, nested arrays too). */
ia_status ia_gguf_writer_add_value(ia_gguf_writer *w, const char *key, const ia_gguf_value *v);
/* A tensor: dims in ggml order (dims[0] innermost), a known ggml type whose
 * block size divides dims[0], and n_bytes equal to the size the type table
 * gives. IA_EINVAL (naming the tensor) otherwise or on a duplicate name. */
ia_status ia_gguf_writer_add_tensor(ia_gguf_writer *w, const char *name, uint32_t n_dims,
                                    const uint64_t *dims, uint32_t type, const void *data,
                                    uint64_t n_bytes);
/* Writes the file atomically (a temporary file beside it, fsync, rename);
 * IA_EIO naming the path on failure, leaving no partial file. */
ia_status ia_gguf_writer_write(const ia_gguf_writer *w, const char *path);
/* ==== end of GGUF ========================================================= */

#ifdef __cplusplus
}
#endif

#endif /* IA_FORMATS_H */
