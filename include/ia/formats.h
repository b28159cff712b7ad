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

#ifdef __cplusplus
}
#endif

#endif /* IA_FORMATS_H */
