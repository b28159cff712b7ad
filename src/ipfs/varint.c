/*
 * Unsigned varints (LEB128) and the small protobuf wire layer built on them.
 *
 * Multiformats varints (CID versions, codecs, multihash codes and lengths)
 * must be minimal and at most 9 bytes; protobuf varints (dag-pb, UnixFS) may
 * take up to 10 bytes and are not required to be minimal, so the two readers
 * differ on purpose. The writer (ia_pbw) is the one buffer both codecs and
 * the importer encode into: it grows geometrically and is reused between
 * nodes, so steady-state encoding does not allocate.
 */
#include <stdlib.h>
#include <string.h>

#include "ipfs/ipfs_internal.h"

size_t ia_varint_encode(uint64_t v, uint8_t *buf) {
    size_t n = 0;
    while (v >= 0x80) {
        buf[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    buf[n++] = (uint8_t)v;
    return n;
}

size_t ia_varint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

ia_status ia_varint_decode(const uint8_t *buf, size_t len, uint64_t *out, size_t *used) {
    uint64_t v = 0;
    for (size_t i = 0; i < 9; i++) {
        if (i >= len)
            return ia_error_set(IA_EPARSE, "varint: truncated after %zu byte%s", i,
                                i == 1 ? "" : "s");
        uint8_t b = buf[i];
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            if (b == 0 && i > 0)
                return ia_error_set(
                    IA_EPARSE, "varint: not minimally encoded (%zu bytes, trailing zero)", i + 1);
            *out = v;
            *used = i + 1;
            return IA_OK;
        }
    }
    return ia_error_set(IA_EPARSE, "varint: longer than 9 bytes (the multiformats limit)");
}

/* ---- protobuf reading ------------------------------------------------------- */

ia_status ia_pb_read_varint(const uint8_t *buf, size_t len, size_t *pos, uint64_t *out,
                            const char *what) {
    uint64_t v = 0;
    size_t p = *pos;
    for (int i = 0; i < 10; i++, p++) {
        if (p >= len)
            return ia_error_set(IA_EPARSE, "%s: varint truncated at byte %zu of %zu", what, p, len);
        uint8_t b = buf[p];
        if (i == 9 && b > 1)
            return ia_error_set(IA_EPARSE, "%s: varint at byte %zu overflows 64 bits", what, *pos);
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = v;
            *pos = p + 1;
            return IA_OK;
        }
    }
    return ia_error_set(IA_EPARSE, "%s: varint at byte %zu is longer than 10 bytes", what, *pos);
}

ia_status ia_pb_skip_field(const uint8_t *buf, size_t len, size_t *pos, uint32_t wire,
                           const char *what) {
    uint64_t v;
    ia_status st;
    switch (wire) {
    case 0:
        return ia_pb_read_varint(buf, len, pos, &v, what);
    case 1:
    case 5: {
        size_t n = wire == 1 ? 8 : 4;
        if (len - *pos < n)
            return ia_error_set(IA_EPARSE, "%s: fixed-size field truncated at byte %zu", what,
                                *pos);
        *pos += n;
        return IA_OK;
    }
    case 2:
        if ((st = ia_pb_read_varint(buf, len, pos, &v, what)))
            return st;
        if (v > len - *pos)
            return ia_error_set(IA_EPARSE,
                                "%s: field of %llu bytes at byte %zu runs past the end (%zu)", what,
                                (unsigned long long)v, *pos, len);
        *pos += (size_t)v;
        return IA_OK;
    default:
        return ia_error_set(IA_EPARSE, "%s: unsupported protobuf wire type %u at byte %zu", what,
                            wire, *pos);
    }
}

/* ---- the writer ---------------------------------------------------------------- */

void ia_pbw_reset(ia_pbw *w) {
    w->len = 0;
    w->failed = false;
}

void ia_pbw_free(ia_pbw *w) {
    free(w->data);
    memset(w, 0, sizeof *w);
}

bool ia_pbw_reserve(ia_pbw *w, size_t extra) {
    if (w->failed)
        return false;
    size_t need;
    if (!ia_size_add(w->len, extra, &need)) {
        w->failed = true;
        return false;
    }
    if (need <= w->cap)
        return true;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *p = realloc(w->data, cap);
    if (!p) {
        w->failed = true;
        return false;
    }
    w->data = p;
    w->cap = cap;
    return true;
}

void ia_pbw_bytes(ia_pbw *w, const void *p, size_t n) {
    if (n && ia_pbw_reserve(w, n)) {
        memcpy(w->data + w->len, p, n);
        w->len += n;
    }
}

void ia_pbw_varint(ia_pbw *w, uint64_t v) {
    if (ia_pbw_reserve(w, IA_VARINT_MAX_BYTES))
        w->len += ia_varint_encode(v, w->data + w->len);
}

void ia_pbw_key(ia_pbw *w, uint32_t field, uint32_t wire) {
    ia_pbw_varint(w, ((uint64_t)field << 3) | wire);
}

void ia_pbw_field_bytes(ia_pbw *w, uint32_t field, const void *p, size_t n) {
    ia_pbw_key(w, field, 2);
    ia_pbw_varint(w, n);
    ia_pbw_bytes(w, p, n);
}

void ia_pbw_field_varint(ia_pbw *w, uint32_t field, uint64_t v) {
    ia_pbw_key(w, field, 0);
    ia_pbw_varint(w, v);
}

ia_status ia_pbw_status(const ia_pbw *w) {
    if (w->failed)
        return ia_error_set(IA_ENOMEM, "out of memory encoding a %zu-byte block", w->len);
    return IA_OK;
}
