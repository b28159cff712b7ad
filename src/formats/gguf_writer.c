/*
 * GGUF writer: builds a version 3 file from KVs and tensors added one at a
 * time, then writes it in one go.
 *
 * KVs are encoded as they are added (key, type tag, value) into one growing
 * buffer, so the write is a copy; tensors are remembered by reference and
 * their data is read only when the file is written. The layout is the one
 * the reader checks and llama.cpp expects: header, KVs in the order added,
 * tensor infos, zero padding to the alignment, then each tensor's data at an
 * aligned offset (padded after, so the next one is aligned too). The
 * alignment is 32 unless a "general.alignment" UINT32 was added.
 *
 * The file appears atomically: it is written to a temporary file in the
 * same folder, synced and renamed over the target, so a reader never sees
 * half a model and a failed write leaves nothing behind.
 */
#include "formats/gguf_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct gw_tensor {
    char *name;
    uint32_t n_dims;
    uint64_t dims[4];
    uint32_t type;
    const void *data;
    uint64_t n_bytes;
} gw_tensor;

struct ia_gguf_writer {
    uint8_t *kv; /* encoded KVs */
    size_t kv_len, kv_cap;
    char **keys; /* for duplicate checks */
    size_t n_keys, keys_cap;
    gw_tensor *tensors;
    size_t n_tensors, tensors_cap;
    uint32_t alignment;
};

ia_status ia_gguf_writer_create(ia_gguf_writer **out) {
    if (!out)
        return ia_error_set(IA_EINVAL, "ia_gguf_writer_create: NULL out");
    *out = ia_calloc(1, sizeof **out);
    if (!*out)
        return IA_ENOMEM;
    (*out)->alignment = IA_GGUF_DEFAULT_ALIGNMENT;
    return IA_OK;
}

void ia_gguf_writer_free(ia_gguf_writer *w) {
    if (!w)
        return;
    for (size_t i = 0; i < w->n_keys; i++)
        free(w->keys[i]);
    for (size_t i = 0; i < w->n_tensors; i++)
        free(w->tensors[i].name);
    free(w->keys);
    free(w->tensors);
    free(w->kv);
    free(w);
}

/* Grows *buf (of *cap elements of `size`) to hold `need` elements. */
static ia_status grow(void **buf, size_t *cap, size_t need, size_t size) {
    if (need <= *cap)
        return IA_OK;
    size_t n = *cap ? *cap : 16;
    while (n < need) {
        if (!ia_size_mul(n, 2, &n))
            return ia_error_set(IA_ENOMEM, "GGUF writer: buffer size overflows");
    }
    void *p = ia_realloc_array(*buf, n, size);
    if (!p)
        return IA_ENOMEM;
    *buf = p;
    *cap = n;
    return IA_OK;
}

static ia_status put(ia_gguf_writer *w, const void *bytes, size_t n) {
    size_t need;
    if (!ia_size_add(w->kv_len, n, &need))
        return ia_error_set(IA_ENOMEM, "GGUF writer: metadata size overflows");
    ia_status st = grow((void **)&w->kv, &w->kv_cap, need, 1);
    if (st != IA_OK)
        return st;
    if (n)
        memcpy(w->kv + w->kv_len, bytes, n);
    w->kv_len = need;
    return IA_OK;
}

static ia_status put_le(ia_gguf_writer *w, uint64_t v, size_t n) {
    uint8_t b[8];
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    return put(w, b, n);
}

static ia_status put_string(ia_gguf_writer *w, const char *s, size_t len) {
    ia_status st = put_le(w, len, 8);
    return st ? st : put(w, s, len);
}

/* Checks the key and starts a KV (key and type tag); on a later failure the
 * caller rolls kv_len back to *mark. */
static ia_status begin_kv(ia_gguf_writer *w, const char *key, ia_gguf_type type, size_t *mark) {
    if (!w || !key)
        return ia_error_set(IA_EINVAL, "GGUF writer: NULL writer or key");
    size_t len = strlen(key);
    if (len == 0 || len > IA_GGUF_MAX_KEY)
        return ia_error_set(IA_EINVAL, "GGUF writer: key '%.64s' has %zu bytes; keys need 1..%u",
                            key, len, IA_GGUF_MAX_KEY);
    for (size_t i = 0; i < w->n_keys; i++)
        if (strcmp(w->keys[i], key) == 0)
            return ia_error_set(IA_EINVAL, "GGUF writer: key '%s' was already added", key);
    *mark = w->kv_len;
    ia_status st;
    if ((st = put_string(w, key, len)) || (st = put_le(w, (uint32_t)type, 4)))
        w->kv_len = *mark;
    return st;
}

/* Records the key once its value is encoded. */
static ia_status end_kv(ia_gguf_writer *w, const char *key, size_t mark, ia_status st) {
    char *copy = NULL;
    if (st == IA_OK &&
        (st = grow((void **)&w->keys, &w->keys_cap, w->n_keys + 1, sizeof *w->keys)) == IA_OK) {
        if (!(copy = ia_strdup(key)))
            st = IA_ENOMEM;
    }
    if (st != IA_OK) {
        w->kv_len = mark;
        return st;
    }
    w->keys[w->n_keys++] = copy;
    return IA_OK;
}

static ia_status add_scalar(ia_gguf_writer *w, const char *key, ia_gguf_type type, uint64_t bits) {
    size_t mark;
    ia_status st = begin_kv(w, key, type, &mark);
    if (st != IA_OK)
        return st;
    return end_kv(w, key, mark, put_le(w, bits, gguf_scalar_size(type)));
}

ia_status ia_gguf_writer_add_u8(ia_gguf_writer *w, const char *key, uint8_t v) {
    return add_scalar(w, key, IA_GGUF_UINT8, v);
}
ia_status ia_gguf_writer_add_i8(ia_gguf_writer *w, const char *key, int8_t v) {
    return add_scalar(w, key, IA_GGUF_INT8, (uint8_t)v);
}
ia_status ia_gguf_writer_add_u16(ia_gguf_writer *w, const char *key, uint16_t v) {
    return add_scalar(w, key, IA_GGUF_UINT16, v);
}
ia_status ia_gguf_writer_add_i16(ia_gguf_writer *w, const char *key, int16_t v) {
    return add_scalar(w, key, IA_GGUF_INT16, (uint16_t)v);
}
ia_status ia_gguf_writer_add_u32(ia_gguf_writer *w, const char *key, uint32_t v) {
    bool is_align = key && strcmp(key, "general.alignment") == 0;
    if (is_align && (v == 0 || (v & (v - 1)) != 0))
        return ia_error_set(IA_EINVAL, "GGUF writer: general.alignment %u is not a power of two",
                            v);
    ia_status st = add_scalar(w, key, IA_GGUF_UINT32, v);
    if (st == IA_OK && is_align)
        w->alignment = v;
    return st;
}
ia_status ia_gguf_writer_add_i32(ia_gguf_writer *w, const char *key, int32_t v) {
    return add_scalar(w, key, IA_GGUF_INT32, (uint32_t)v);
}
ia_status ia_gguf_writer_add_u64(ia_gguf_writer *w, const char *key, uint64_t v) {
    return add_scalar(w, key, IA_GGUF_UINT64, v);
}
ia_status ia_gguf_writer_add_i64(ia_gguf_writer *w, const char *key, int64_t v) {
    return add_scalar(w, key, IA_GGUF_INT64, (uint64_t)v);
}
ia_status ia_gguf_writer_add_f32(ia_gguf_writer *w, const char *key, float v) {
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    return add_scalar(w, key, IA_GGUF_FLOAT32, bits);
}
ia_status ia_gguf_writer_add_f64(ia_gguf_writer *w, const char *key, double v) {
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    return add_scalar(w, key, IA_GGUF_FLOAT64, bits);
}
ia_status ia_gguf_writer_add_bool(ia_gguf_writer *w, const char *key, bool v) {
    return add_scalar(w, key, IA_GGUF_BOOL, v ? 1 : 0);
}

ia_status ia_gguf_writer_add_string(ia_gguf_writer *w, const char *key, const char *s, size_t len) {
    size_t mark;
    if (!s && len)
        return ia_error_set(IA_EINVAL, "GGUF writer: key '%s': NULL string", key ? key : "");
    ia_status st = begin_kv(w, key, IA_GGUF_STRING, &mark);
    if (st != IA_OK)
        return st;
    return end_kv(w, key, mark, put_string(w, s, len));
}

/* The host value of element i of a C array of elem_type, as raw bits. */
static uint64_t host_bits(ia_gguf_type t, const void *elems, size_t i) {
    switch (t) {
    case IA_GGUF_UINT8:
        return ((const uint8_t *)elems)[i];
    case IA_GGUF_INT8:
        return (uint8_t)((const int8_t *)elems)[i];
    case IA_GGUF_UINT16:
        return ((const uint16_t *)elems)[i];
    case IA_GGUF_INT16:
        return (uint16_t)((const int16_t *)elems)[i];
    case IA_GGUF_UINT32:
        return ((const uint32_t *)elems)[i];
    case IA_GGUF_INT32:
        return (uint32_t)((const int32_t *)elems)[i];
    case IA_GGUF_UINT64:
        return ((const uint64_t *)elems)[i];
    case IA_GGUF_INT64:
        return (uint64_t)((const int64_t *)elems)[i];
    case IA_GGUF_BOOL:
        return ((const bool *)elems)[i] ? 1 : 0;
    case IA_GGUF_FLOAT32: {
        uint32_t b;
        memcpy(&b, (const float *)elems + i, sizeof b);
        return b;
    }
    case IA_GGUF_FLOAT64: {
        uint64_t b;
        memcpy(&b, (const double *)elems + i, sizeof b);
        return b;
    }
    default:
        return 0;
    }
}

ia_status ia_gguf_writer_add_array(ia_gguf_writer *w, const char *key, ia_gguf_type elem_type,
                                   const void *elems, size_t count) {
    size_t mark, n = gguf_scalar_size(elem_type);
    if (!n)
        return ia_error_set(IA_EINVAL,
                            "GGUF writer: key '%s': element type %s is not a scalar (use "
                            "ia_gguf_writer_add_string_array for strings)",
                            key ? key : "", ia_gguf_type_name(elem_type));
    if (!elems && count)
        return ia_error_set(IA_EINVAL, "GGUF writer: key '%s': NULL elements", key ? key : "");
    ia_status st = begin_kv(w, key, IA_GGUF_ARRAY, &mark);
    if (st != IA_OK)
        return st;
    if ((st = put_le(w, (uint32_t)elem_type, 4)) == IA_OK)
        st = put_le(w, count, 8);
    for (size_t i = 0; st == IA_OK && i < count; i++)
        st = put_le(w, host_bits(elem_type, elems, i), n);
    return end_kv(w, key, mark, st);
}

ia_status ia_gguf_writer_add_string_array(ia_gguf_writer *w, const char *key,
                                          const char *const *strs, size_t count) {
    size_t mark;
    if (!strs && count)
        return ia_error_set(IA_EINVAL, "GGUF writer: key '%s': NULL strings", key ? key : "");
    ia_status st = begin_kv(w, key, IA_GGUF_ARRAY, &mark);
    if (st != IA_OK)
        return st;
    if ((st = put_le(w, IA_GGUF_STRING, 4)) == IA_OK)
        st = put_le(w, count, 8);
    for (size_t i = 0; st == IA_OK && i < count; i++) {
        if (!strs[i])
            st = ia_error_set(IA_EINVAL, "GGUF writer: key '%s': string %zu is NULL", key, i);
        else
            st = put_string(w, strs[i], strlen(strs[i]));
    }
    return end_kv(w, key, mark, st);
}

ia_status ia_gguf_writer_add_value(ia_gguf_writer *w, const char *key, const ia_gguf_value *v) {
    size_t mark;
    if (!v)
        return ia_error_set(IA_EINVAL, "GGUF writer: key '%s': NULL value", key ? key : "");
    if (key && strcmp(key, "general.alignment") == 0) {
        uint32_t a;
        if (v->type != IA_GGUF_UINT32)
            return ia_error_set(IA_EINVAL, "GGUF writer: general.alignment must be a UINT32");
        return ia_gguf_value_u32(v, &a) ? IA_EINVAL : ia_gguf_writer_add_u32(w, key, a);
    }
    ia_status st = begin_kv(w, key, v->type, &mark);
    if (st != IA_OK)
        return st;
    /* The reader validated these bytes; they encode the value exactly. */
    return end_kv(w, key, mark, put(w, v->span, (size_t)v->span_len));
}

ia_status ia_gguf_writer_add_tensor(ia_gguf_writer *w, const char *name, uint32_t n_dims,
                                    const uint64_t *dims, uint32_t type, const void *data,
                                    uint64_t n_bytes) {
    if (!w || !name || !*name || (!dims && n_dims))
        return ia_error_set(IA_EINVAL, "GGUF writer: NULL writer, empty name or NULL dims");
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return ia_error_set(IA_EINVAL, "GGUF writer: tensor '%s' was already added", name);
    if (n_dims > 4)
        return ia_error_set(IA_EINVAL, "GGUF writer: tensor '%s' has %u dimensions; at most 4",
                            name, n_dims);
    const ia_ggml_type_info *ti = ia_ggml_type_get_info(type);
    if (!ti)
        return ia_error_set(IA_EINVAL, "GGUF writer: tensor '%s' has unknown ggml type id %u", name,
                            type);
    gw_tensor t = {.n_dims = n_dims, .type = type, .data = data, .n_bytes = n_bytes};
    uint64_t numel = 1;
    for (uint32_t d = 0; d < 4; d++)
        t.dims[d] = d < n_dims ? dims[d] : 1;
    for (uint32_t d = 0; d < n_dims; d++)
        if (dims[d] == 0 || dims[d] > (uint64_t)INT64_MAX ||
            __builtin_mul_overflow(numel, dims[d], &numel) || numel > (uint64_t)INT64_MAX)
            return ia_error_set(IA_EINVAL,
                                "GGUF writer: tensor '%s': dimension %u (%llu) is zero or makes "
                                "the element count overflow",
                                name, d, (unsigned long long)dims[d]);
    uint64_t want;
    if (t.dims[0] % ti->block_elems != 0 || ia_ggml_type_bytes(type, numel, &want) != IA_OK)
        return ia_error_set(IA_EINVAL,
                            "GGUF writer: tensor '%s': rows of %llu elements are not whole %s "
                            "blocks of %u",
                            name, (unsigned long long)t.dims[0], ti->name, ti->block_elems);
    if (want != n_bytes || (!data && n_bytes))
        return ia_error_set(IA_EINVAL,
                            "GGUF writer: tensor '%s': %llu elements of %s take %llu bytes, "
                            "given %llu",
                            name, (unsigned long long)numel, ti->name, (unsigned long long)want,
                            (unsigned long long)n_bytes);
    ia_status st =
        grow((void **)&w->tensors, &w->tensors_cap, w->n_tensors + 1, sizeof *w->tensors);
    if (st != IA_OK)
        return st;
    if (!(t.name = ia_strdup(name)))
        return IA_ENOMEM;
    w->tensors[w->n_tensors++] = t;
    return IA_OK;
}

/* ---- writing ---------------------------------------------------------------- */

typedef struct gw_out {
    FILE *f;
    const char *path; /* the temporary file, for messages */
    uint64_t pos;
    ia_status st;
} gw_out;

static void out_bytes(gw_out *o, const void *p, size_t n) {
    if (o->st != IA_OK || n == 0)
        return;
    if (fwrite(p, 1, n, o->f) != n)
        o->st = ia_error_set(IA_EIO, "%s: write failed: %s", o->path, strerror(errno));
    o->pos += n;
}

static void out_le(gw_out *o, uint64_t v, size_t n) {
    uint8_t b[8];
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    out_bytes(o, b, n);
}

static void out_pad(gw_out *o, uint32_t alignment) {
    static const uint8_t zeros[256];
    uint64_t pad = (alignment - o->pos % alignment) % alignment;
    while (pad > 0) {
        size_t n = pad < sizeof zeros ? (size_t)pad : sizeof zeros;
        out_bytes(o, zeros, n);
        pad -= n;
    }
}

static uint64_t align_up(uint64_t x, uint32_t a) { return (x + a - 1) / a * a; }

static void write_body(const ia_gguf_writer *w, gw_out *o) {
    out_bytes(o, "GGUF", 4);
    out_le(o, 3, 4);
    out_le(o, w->n_tensors, 8);
    out_le(o, w->n_keys, 8);
    out_bytes(o, w->kv, w->kv_len);
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const gw_tensor *t = &w->tensors[i];
        size_t len = strlen(t->name);
        out_le(o, len, 8);
        out_bytes(o, t->name, len);
        out_le(o, t->n_dims, 4);
        for (uint32_t d = 0; d < t->n_dims; d++)
            out_le(o, t->dims[d], 8);
        out_le(o, t->type, 4);
        out_le(o, offset, 8);
        offset = align_up(offset + t->n_bytes, w->alignment);
    }
    out_pad(o, w->alignment);
    for (size_t i = 0; i < w->n_tensors; i++) {
        out_bytes(o, w->tensors[i].data, (size_t)w->tensors[i].n_bytes);
        out_pad(o, w->alignment);
    }
}

ia_status ia_gguf_writer_write(const ia_gguf_writer *w, const char *path) {
    ia_status st;
    char *tmp = NULL;
    int fd = -1;
    gw_out o = {0};
    if (!w || !path)
        return ia_error_set(IA_EINVAL, "ia_gguf_writer_write: NULL writer or path");
    size_t n = strlen(path) + sizeof ".tmp-XXXXXX";
    if (!(tmp = ia_malloc(n)))
        return IA_ENOMEM;
    snprintf(tmp, n, "%s.tmp-XXXXXX", path);
    if ((fd = mkstemp(tmp)) < 0) {
        st = ia_error_set(IA_EIO, "%s: cannot create a temporary file beside it: %s", path,
                          strerror(errno));
        free(tmp);
        return st;
    }
    fchmod(fd, 0644);
    if (!(o.f = fdopen(fd, "wb"))) {
        st = ia_error_set(IA_EIO, "%s: fdopen failed: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1; /* the FILE owns it now */
    o.path = tmp;
    write_body(w, &o);
    if ((st = o.st))
        goto fail;
    if (fflush(o.f) != 0 || fsync(fileno(o.f)) != 0) {
        st = ia_error_set(IA_EIO, "%s: cannot flush to disk: %s", tmp, strerror(errno));
        goto fail;
    }
    FILE *f = o.f;
    o.f = NULL;
    if (fclose(f) != 0) {
        st = ia_error_set(IA_EIO, "%s: close failed: %s", tmp, strerror(errno));
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        st = ia_error_set(IA_EIO, "%s: cannot rename %s over it: %s", path, tmp, strerror(errno));
        goto fail;
    }
    free(tmp);
    return IA_OK;
fail:
    if (o.f)
        fclose(o.f);
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    free(tmp);
    return st;
}
