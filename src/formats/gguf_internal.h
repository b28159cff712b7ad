/*
 * gguf_internal: what the GGUF reader, writer and config view share, private
 * to src/formats/. The writer copies a value read from another file by its
 * encoded bytes (ia_gguf_writer_add_value), so the value node keeps the span
 * of the file it came from; the config view and the getters share the
 * little-endian loads and the per-type sizes.
 */
#ifndef IA_GGUF_INTERNAL_H
#define IA_GGUF_INTERNAL_H

#include "ia/formats.h"

#include <string.h>

/* One metadata value. Scalars and arrays of scalars point into the mapping;
 * strings are NUL-terminated copies in the handle's pool; arrays of strings
 * and of arrays have one child node per element. */
struct ia_gguf_value {
    const ia_gguf *owner;
    const char *key; /* the KV this value belongs to */
    ia_gguf_type type;
    ia_gguf_type elem_type; /* arrays; IA_GGUF_TYPE_COUNT otherwise */
    uint64_t count;         /* arrays: elements */
    const uint8_t *raw;     /* scalar bytes, or packed scalar elements */
    const char *str;        /* STRING: pool copy */
    uint64_t str_len;
    struct ia_gguf_value *elems; /* arrays of STRING or ARRAY */
    const uint8_t *span;         /* the encoded value (after its type tag) */
    uint64_t span_len;
};

/* Bytes of one scalar of `type`; 0 for STRING, ARRAY and unknown types. */
static inline size_t gguf_scalar_size(ia_gguf_type type) {
    static const unsigned char sizes[IA_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return (unsigned)type < IA_GGUF_TYPE_COUNT ? sizes[type] : 0;
}

static inline bool gguf_type_is_int(ia_gguf_type t) {
    return t == IA_GGUF_UINT8 || t == IA_GGUF_INT8 || t == IA_GGUF_UINT16 || t == IA_GGUF_INT16 ||
           t == IA_GGUF_UINT32 || t == IA_GGUF_INT32 || t == IA_GGUF_UINT64 || t == IA_GGUF_INT64;
}

static inline bool gguf_type_is_signed(ia_gguf_type t) {
    return t == IA_GGUF_INT8 || t == IA_GGUF_INT16 || t == IA_GGUF_INT32 || t == IA_GGUF_INT64;
}

static inline uint64_t gguf_load_le(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
}

/* An integer scalar at p as its magnitude and sign: signed types are sign-
 * extended into *s (and *is_signed set), unsigned ones land in *u. */
static inline void gguf_load_int(ia_gguf_type t, const uint8_t *p, int64_t *s, uint64_t *u,
                                 bool *is_signed) {
    size_t n = gguf_scalar_size(t);
    uint64_t raw = gguf_load_le(p, n);
    *is_signed = gguf_type_is_signed(t);
    if (*is_signed) {
        unsigned shift = (unsigned)(64 - 8 * n);
        *s = (int64_t)(raw << shift) >> shift; /* arithmetic shift: gcc and clang */
        *u = 0;
    } else {
        *u = raw;
        *s = 0;
    }
}

static inline double gguf_load_float(ia_gguf_type t, const uint8_t *p) {
    if (t == IA_GGUF_FLOAT32) {
        uint32_t bits = (uint32_t)gguf_load_le(p, 4);
        float f;
        memcpy(&f, &bits, sizeof f);
        return f;
    }
    uint64_t bits = gguf_load_le(p, 8);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

#endif /* IA_GGUF_INTERNAL_H */
