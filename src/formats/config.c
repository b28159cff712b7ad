/*
 * config: a HF config.json (or any JSON object of settings) behind typed
 * getters.
 *
 * Model code reads hyper-parameters one field at a time and needs each to be
 * the right type; the getters do that checking once, here, with messages
 * that name the file and the field ("config.json: field 'hidden_size' must
 * be an integer, got string"), so a bad config is reported in terms of the
 * file the user can open and fix rather than as a crash or a silently wrong
 * default.
 *
 * Conventions worth knowing: a field whose value is JSON null counts as
 * missing (HF writes "pad_token_id": null to mean "none"), so ia_config_has
 * is false for it and an optional getter keeps its default. ia_config_int
 * accepts a real with an integral value (768.0), which some exporters write;
 * ia_config_float accepts integers (1 for 1.0). Integers beyond 64 bits are
 * rejected by the JSON layer when the file is parsed. Files are bounded by
 * CONFIG_MAX_BYTES: a config is a few kilobytes, and anything near the limit
 * is not a config.
 */
#include "ia/formats.h"

#include "formats/formats_internal.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_MAX_BYTES (16u * 1024u * 1024u)

struct ia_config {
    json_t *root; /* an object */
    char *what;
};

/* Takes ownership of root (on success and on failure). */
static ia_status config_wrap(json_t *root, const char *what, ia_config **out) {
    ia_status status;
    ia_config *cfg = NULL;
    if (!json_is_object(root)) {
        status = ia_error_set(IA_EPARSE, "%s: top level must be a JSON object of settings, got %s",
                              what, formats_json_type_word(root));
        goto fail;
    }
    cfg = ia_calloc(1, sizeof *cfg);
    if (!cfg || !(cfg->what = ia_strdup(what))) {
        status = IA_ENOMEM;
        goto fail;
    }
    cfg->root = root;
    *out = cfg;
    return IA_OK;
fail:
    free(cfg);
    json_decref(root);
    return status;
}

ia_status ia_config_parse(const char *text, size_t len, const char *what, ia_config **out) {
    json_t *root;
    if (!out || (!text && len))
        return ia_error_set(IA_EINVAL, "ia_config_parse: NULL text or out");
    *out = NULL;
    if (!what)
        what = "config";
    if (len > CONFIG_MAX_BYTES)
        return ia_error_set(IA_ERANGE,
                            "%s: %zu bytes is larger than the %u-byte limit for a config", what,
                            len, CONFIG_MAX_BYTES);
    ia_status status = ia_json_parse(text ? text : "", len, what, &root);
    if (status != IA_OK)
        return status;
    return config_wrap(root, what, out);
}

ia_status ia_config_load(const char *path, ia_config **out) {
    json_t *root;
    if (!path || !out)
        return ia_error_set(IA_EINVAL, "ia_config_load: NULL path or out");
    *out = NULL;
    ia_status status = ia_json_load_file(path, CONFIG_MAX_BYTES, &root);
    if (status != IA_OK)
        return status;
    return config_wrap(root, path, out);
}

void ia_config_free(ia_config *cfg) {
    if (!cfg)
        return;
    json_decref(cfg->root);
    free(cfg->what);
    free(cfg);
}

const char *ia_config_path(const ia_config *cfg) { return cfg ? cfg->what : NULL; }

struct json_t *ia_config_json(const ia_config *cfg) {
    return cfg ? cfg->root : NULL;
}

/* The value of key, NULL when absent or null. */
static json_t *config_get(const ia_config *cfg, const char *key) {
    json_t *v = cfg && key ? json_object_get(cfg->root, key) : NULL;
    return v && !json_is_null(v) ? v : NULL;
}

bool ia_config_has(const ia_config *cfg, const char *key) { return config_get(cfg, key) != NULL; }

/* Looks up key; *v is NULL when it is missing and not required (the caller
 * then keeps its default). */
static ia_status config_lookup(const ia_config *cfg, const char *key, bool required, json_t **v) {
    if (!cfg || !key)
        return ia_error_set(IA_EINVAL, "config getter: NULL config or key");
    *v = config_get(cfg, key);
    if (!*v && required)
        return ia_error_set(IA_ENOTFOUND, "%s: required field '%s' is %s", cfg->what, key,
                            json_object_get(cfg->root, key) ? "null" : "missing");
    return IA_OK;
}

static ia_status wrong_type(const ia_config *cfg, const char *key, const char *expect,
                            const json_t *v) {
    return ia_error_set(IA_EPARSE, "%s: field '%s' must be %s, got %s", cfg->what, key, expect,
                        formats_json_type_word(v));
}

ia_status ia_config_int(const ia_config *cfg, const char *key, bool required, int64_t *out) {
    json_t *v;
    ia_status status = config_lookup(cfg, key, required, &v);
    if (status != IA_OK || !v)
        return status;
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return IA_OK;
    }
    if (!json_is_real(v))
        return wrong_type(cfg, key, "an integer", v);
    double d = json_real_value(v);
    if (d != floor(d))
        return ia_error_set(IA_EPARSE, "%s: field '%s' must be an integer, got %g", cfg->what, key,
                            d);
    /* 2^63 is exact in a double; anything at or past it does not fit. */
    if (d >= 9223372036854775808.0 || d < -9223372036854775808.0)
        return ia_error_set(IA_ERANGE, "%s: field '%s' is %g, outside the 64-bit integer range",
                            cfg->what, key, d);
    *out = (int64_t)d;
    return IA_OK;
}

ia_status ia_config_float(const ia_config *cfg, const char *key, bool required, double *out) {
    json_t *v;
    ia_status status = config_lookup(cfg, key, required, &v);
    if (status != IA_OK || !v)
        return status;
    if (!json_is_number(v))
        return wrong_type(cfg, key, "a number", v);
    *out = json_number_value(v);
    return IA_OK;
}

ia_status ia_config_bool(const ia_config *cfg, const char *key, bool required, bool *out) {
    json_t *v;
    ia_status status = config_lookup(cfg, key, required, &v);
    if (status != IA_OK || !v)
        return status;
    if (!json_is_boolean(v))
        return wrong_type(cfg, key, "true or false", v);
    *out = json_is_true(v);
    return IA_OK;
}

ia_status ia_config_string(const ia_config *cfg, const char *key, bool required, const char **out) {
    json_t *v;
    ia_status status = config_lookup(cfg, key, required, &v);
    if (status != IA_OK || !v)
        return status;
    if (!json_is_string(v))
        return wrong_type(cfg, key, "a string", v);
    *out = json_string_value(v);
    return IA_OK;
}

ia_status ia_config_string_at(const ia_config *cfg, const char *key, size_t i, const char **out) {
    json_t *v;
    ia_status status = config_lookup(cfg, key, true, &v);
    if (status != IA_OK)
        return status;
    if (!json_is_array(v))
        return wrong_type(cfg, key, "an array of strings", v);
    if (i >= json_array_size(v))
        return ia_error_set(IA_ERANGE, "%s: field '%s' has %zu entries, no entry %zu", cfg->what,
                            key, json_array_size(v), i);
    json_t *s = json_array_get(v, i);
    if (!json_is_string(s))
        return ia_error_set(IA_EPARSE, "%s: field '%s' entry %zu must be a string, got %s",
                            cfg->what, key, i, formats_json_type_word(s));
    *out = json_string_value(s);
    return IA_OK;
}
