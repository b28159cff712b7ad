/*
 * libFuzzer target for the GGUF reader: opens the input as a whole file
 * image and, when it is accepted, walks everything the handle offers: every
 * key and value through every getter (nested arrays recursively), every
 * tensor's first and last data byte, lookups by key and by name, the config
 * view, and a copy through the writer's add_value. A view reaching outside
 * the input is caught by ASan; an accepted tensor or key that its own name
 * does not find is a lookup bug and aborts the run.
 */
#include "ia/formats.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

static void walk_value(const ia_gguf_value *v) {
    uint32_t u32;
    uint64_t u64;
    int64_t i64;
    float f;
    double d;
    bool b;
    const char *s;
    size_t len;
    if (ia_gguf_value_u32(v, &u32) == IA_OK)
        sink += u32;
    if (ia_gguf_value_u64(v, &u64) == IA_OK)
        sink += u64;
    if (ia_gguf_value_i64(v, &i64) == IA_OK)
        sink += (uint64_t)i64;
    if (ia_gguf_value_f32(v, &f) == IA_OK)
        sink += f == f;
    if (ia_gguf_value_f64(v, &d) == IA_OK)
        sink += d == d;
    if (ia_gguf_value_bool(v, &b) == IA_OK)
        sink += b;
    if (ia_gguf_value_string(v, &s, &len) == IA_OK && len)
        sink += (uint8_t)s[len - 1] + (uint8_t)s[len];
    uint64_t n = ia_gguf_array_count(v);
    if (ia_gguf_array_type(v) == IA_GGUF_TYPE_COUNT)
        return;
    for (uint64_t i = 0; i < n; i++) {
        if (ia_gguf_array_int(v, i, &i64) == IA_OK)
            sink += (uint64_t)i64;
        if (ia_gguf_array_float(v, i, &d) == IA_OK)
            sink += d == d;
        if (ia_gguf_array_string(v, i, &s, &len) == IA_OK)
            sink += len + (uint8_t)s[len];
        const ia_gguf_value *e = ia_gguf_array_at(v, i);
        if (e)
            walk_value(e);
    }
    const uint8_t *raw = ia_gguf_array_data(v);
    if (raw && n)
        sink += raw[0];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ia_gguf *g = NULL;
    if (ia_gguf_open_memory(data, size, "fuzz.gguf", &g) != IA_OK)
        return 0;
    ia_gguf_writer *w = NULL;
    if (ia_gguf_writer_create(&w) != IA_OK)
        abort();
    for (size_t i = 0; i < ia_gguf_kv_count(g); i++) {
        const char *key = ia_gguf_kv_key(g, i);
        const ia_gguf_value *v = ia_gguf_kv_value(g, i);
        if (ia_gguf_find(g, key) != v)
            abort();
        walk_value(v);
        /* A value the reader accepted must copy (a duplicate key cannot
         * happen: the reader rejects those). */
        if (ia_gguf_writer_add_value(w, key, v) != IA_OK && strcmp(key, "general.alignment") != 0)
            abort();
    }
    for (size_t i = 0; i < ia_gguf_tensor_count(g); i++) {
        const ia_gguf_tensor *t = ia_gguf_tensor_at(g, i);
        if (ia_gguf_tensor_find(g, t->name) != t)
            abort();
        if (t->n_bytes) {
            const uint8_t *p = t->data;
            sink += p[0] + p[t->n_bytes - 1];
        }
        ia_tensor view;
        if (ia_gguf_tensor_view(g, t, &view) == IA_OK)
            sink += (uint64_t)ia_tensor_numel(&view);
        if (ia_gguf_writer_add_tensor(w, t->name, t->n_dims, t->dims, t->type, t->data,
                                      t->n_bytes) != IA_OK)
            abort();
    }
    json_t *cfg = NULL;
    if (ia_gguf_config_json(g, &cfg) == IA_OK)
        json_decref(cfg);
    ia_gguf_writer_free(w);
    ia_gguf_close(g);
    return 0;
}
