/*
 * UnixFS: the protobuf in a dag-pb node's Data that says what the node is.
 *
 *   message Data { required DataType Type = 1; optional bytes Data = 2;
 *                  optional uint64 filesize = 3; repeated uint64 blocksizes = 4;
 *                  optional uint64 hashType = 5; optional uint64 fanout = 6;
 *                  optional uint32 mode = 7; optional UnixTime mtime = 8; }
 *
 * The encoder writes fields in number order with blocksizes unpacked, as
 * Kubo's gogo-protobuf code does. The decoder accepts what protobuf allows
 * (any field order, packed or unpacked blocksizes, unknown fields skipped)
 * but checks every length against the buffer, requires Type, and rejects
 * HAMT parameters no implementation writes. mode and mtime are skipped.
 */
#include <stdlib.h>
#include <string.h>

#include "ipfs/ipfs_internal.h"

#define WHAT "UnixFS data"

/* Counts blocksizes (either encoding) so the array is allocated once. */
static ia_status count_blocksizes(const uint8_t *buf, size_t len, size_t *count) {
    size_t pos = 0, n = 0;
    ia_status st;
    while (pos < len) {
        uint64_t key, v;
        size_t at = pos;
        if ((st = ia_pb_read_varint(buf, len, &pos, &key, WHAT)))
            return st;
        uint32_t field = (uint32_t)(key >> 3), wire = (uint32_t)(key & 7);
        if (field == 0)
            return ia_error_set(IA_EPARSE, WHAT ": field number 0 at byte %zu", at);
        if (field == 4 && wire == 0) {
            n++;
        } else if (field == 4 && wire == 2) {
            size_t end;
            if ((st = ia_pb_read_varint(buf, len, &pos, &v, WHAT)))
                return st;
            if (v > len - pos)
                return ia_error_set(IA_EPARSE, WHAT ": packed blocksizes run past the end");
            end = pos + (size_t)v;
            while (pos < end) {
                if ((st = ia_pb_read_varint(buf, end, &pos, &v, WHAT " blocksizes")))
                    return st;
                n++;
            }
            continue;
        }
        if ((st = ia_pb_skip_field(buf, len, &pos, wire, WHAT)))
            return st;
    }
    *count = n;
    return IA_OK;
}

static ia_status expect_wire(uint32_t field, uint32_t wire, uint32_t want, size_t at) {
    if (wire == want)
        return IA_OK;
    return ia_error_set(IA_EPARSE, WHAT ": field %u at byte %zu has wire type %u, expected %u",
                        field, at, wire, want);
}

ia_status ia_unixfs_decode(const uint8_t *buf, size_t len, ia_unixfs *out) {
    memset(out, 0, sizeof *out);
    size_t n_bs = 0, pos = 0;
    bool has_type = false;
    ia_status st;
    if ((st = count_blocksizes(buf, len, &n_bs)))
        return st;
    if (n_bs && !(out->blocksizes = ia_malloc_array(n_bs, sizeof *out->blocksizes)))
        return IA_ENOMEM;
    while (pos < len) {
        uint64_t key, v;
        size_t at = pos;
        if ((st = ia_pb_read_varint(buf, len, &pos, &key, WHAT)))
            goto fail;
        uint32_t field = (uint32_t)(key >> 3), wire = (uint32_t)(key & 7);
        switch (field) {
        case 1:
            if ((st = expect_wire(field, wire, 0, at)) ||
                (st = ia_pb_read_varint(buf, len, &pos, &v, WHAT)))
                goto fail;
            if (v > IA_UNIXFS_HAMT_SHARD) {
                st = ia_error_set(IA_EPARSE, WHAT ": unknown Type %llu (0..5 exist)",
                                  (unsigned long long)v);
                goto fail;
            }
            out->type = (ia_unixfs_type)v;
            has_type = true;
            break;
        case 2:
            if ((st = expect_wire(field, wire, 2, at)) ||
                (st = ia_pb_read_varint(buf, len, &pos, &v, WHAT)))
                goto fail;
            if (v > len - pos) {
                st = ia_error_set(IA_EPARSE, WHAT ": Data of %llu bytes runs past the end (%zu)",
                                  (unsigned long long)v, len);
                goto fail;
            }
            out->data = buf + pos;
            out->data_len = (size_t)v;
            out->has_data = true;
            pos += (size_t)v;
            break;
        case 3:
        case 5:
        case 6:
            if ((st = expect_wire(field, wire, 0, at)) ||
                (st = ia_pb_read_varint(buf, len, &pos, &v, WHAT)))
                goto fail;
            if (field == 3) {
                out->filesize = v;
                out->has_filesize = true;
            } else if (field == 5) {
                out->hash_type = v;
                out->has_hash_type = true;
            } else {
                out->fanout = v;
                out->has_fanout = true;
            }
            break;
        case 4:
            if (wire == 0) {
                ia_pb_read_varint(buf, len, &pos, &out->blocksizes[out->n_blocksizes++], WHAT);
            } else if (wire != 2) {
                st = expect_wire(field, wire, 0, at);
                goto fail;
            } else {
                /* packed; validated by count_blocksizes */
                ia_pb_read_varint(buf, len, &pos, &v, WHAT);
                size_t end = pos + (size_t)v;
                while (pos < end)
                    ia_pb_read_varint(buf, end, &pos, &out->blocksizes[out->n_blocksizes++], WHAT);
            }
            break;
        default:
            if ((st = ia_pb_skip_field(buf, len, &pos, wire, WHAT)))
                goto fail;
        }
    }
    if (!has_type) {
        st = ia_error_set(IA_EPARSE, WHAT ": no Type field (it is required)");
        goto fail;
    }
    if (out->type == IA_UNIXFS_HAMT_SHARD && out->has_fanout &&
        (out->fanout < 2 || out->fanout > 65536 || (out->fanout & (out->fanout - 1)))) {
        st = ia_error_set(IA_EPARSE, WHAT ": HAMT fanout %llu is not a power of two in 2..65536",
                          (unsigned long long)out->fanout);
        goto fail;
    }
    return IA_OK;
fail:
    ia_unixfs_free(out);
    return st;
}

void ia_unixfs_free(ia_unixfs *u) {
    if (!u)
        return;
    free(u->blocksizes);
    u->blocksizes = NULL;
    u->n_blocksizes = 0;
}

ia_status ia_unixfs_encode_into(const ia_unixfs *u, ia_pbw *w) {
    ia_pbw_field_varint(w, 1, (uint64_t)u->type);
    if (u->has_data)
        ia_pbw_field_bytes(w, 2, u->data, u->data_len);
    if (u->has_filesize)
        ia_pbw_field_varint(w, 3, u->filesize);
    for (size_t i = 0; i < u->n_blocksizes; i++)
        ia_pbw_field_varint(w, 4, u->blocksizes[i]);
    if (u->has_hash_type)
        ia_pbw_field_varint(w, 5, u->hash_type);
    if (u->has_fanout)
        ia_pbw_field_varint(w, 6, u->fanout);
    return ia_pbw_status(w);
}

ia_status ia_unixfs_encode(const ia_unixfs *u, uint8_t **out, size_t *out_len) {
    ia_pbw w = {0};
    ia_status st = ia_unixfs_encode_into(u, &w);
    if (st) {
        ia_pbw_free(&w);
        return st;
    }
    *out = w.data;
    *out_len = w.len;
    return IA_OK;
}
