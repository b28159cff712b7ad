/*
 * dag-pb: the protobuf block format under UnixFS.
 *
 *   message PBLink { optional bytes Hash = 1; optional string Name = 2;
 *                    optional uint64 Tsize = 3; }
 *   message PBNode { repeated PBLink Links = 2; optional bytes Data = 1; }
 *
 * The encoder writes what Kubo (go-codec-dagpb) writes: every link first,
 * each as Hash, Name, Tsize in that order, then Data; a field is written
 * when the caller marks it present (Kubo marks Name and Tsize present on
 * every link, even an empty name). The decoder is strict in the way the
 * dag-pb spec asks: Links before Data, at most one Data, fields of a link
 * in order and not repeated, a Hash on every link that is exactly one CID,
 * and no unknown fields. Names and Data borrow from the decoded buffer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipfs/ipfs_internal.h"

static ia_status read_len(const uint8_t *buf, size_t end, size_t *pos, size_t *out,
                          const char *what) {
    uint64_t v;
    ia_status st = ia_pb_read_varint(buf, end, pos, &v, what);
    if (st)
        return st;
    if (v > end - *pos)
        return ia_error_set(IA_EPARSE,
                            "%s: length %llu at byte %zu runs past the end of its block (%zu)",
                            what, (unsigned long long)v, *pos, end);
    *out = (size_t)v;
    return IA_OK;
}

/* Decodes one PBLink occupying buf[start, end). */
static ia_status decode_link(const uint8_t *buf, size_t start, size_t end, size_t index,
                             ia_pb_link *l) {
    char what[48];
    snprintf(what, sizeof what, "dag-pb link %zu", index);
    memset(l, 0, sizeof *l);
    size_t pos = start;
    uint32_t last_field = 0;
    bool has_hash = false;
    ia_status st;
    while (pos < end) {
        uint64_t key;
        if ((st = ia_pb_read_varint(buf, end, &pos, &key, what)))
            return st;
        uint32_t field = (uint32_t)(key >> 3), wire = (uint32_t)(key & 7);
        if (key >> 3 > 3 || field == 0)
            return ia_error_set(IA_EPARSE,
                                "%s: unknown field %llu (PBLink has Hash=1, Name=2, "
                                "Tsize=3)",
                                what, (unsigned long long)(key >> 3));
        if (field <= last_field)
            return ia_error_set(IA_EPARSE,
                                "%s: field %u %s (fields must be Hash, Name, Tsize "
                                "in order, each at most once)",
                                what, field, field == last_field ? "repeated" : "out of order");
        last_field = field;
        if (field == 3) {
            if (wire != 0)
                return ia_error_set(IA_EPARSE, "%s: Tsize has wire type %u, not varint", what,
                                    wire);
            if ((st = ia_pb_read_varint(buf, end, &pos, &l->tsize, what)))
                return st;
            if (l->tsize > (uint64_t)INT64_MAX)
                return ia_error_set(IA_EPARSE, "%s: Tsize %llu is larger than 2^63-1", what,
                                    (unsigned long long)l->tsize);
            l->has_tsize = true;
            continue;
        }
        if (wire != 2)
            return ia_error_set(IA_EPARSE, "%s: %s has wire type %u, not bytes", what,
                                field == 1 ? "Hash" : "Name", wire);
        size_t n;
        if ((st = read_len(buf, end, &pos, &n, what)))
            return st;
        if (field == 1) {
            size_t used;
            if ((st = ia_cid_decode(buf + pos, n, &l->cid, &used))) {
                ia_error_prefix("%s: Hash", what);
                return st;
            }
            if (used != n)
                return ia_error_set(IA_EPARSE, "%s: Hash holds %zu bytes after its CID", what,
                                    n - used);
            has_hash = true;
        } else {
            l->name = (const char *)buf + pos;
            l->name_len = n;
            l->has_name = true;
        }
        pos += n;
    }
    if (!has_hash)
        return ia_error_set(IA_EPARSE, "%s: no Hash (every link needs a CID)", what);
    return IA_OK;
}

ia_status ia_dagpb_decode(const uint8_t *buf, size_t len, ia_pb_node *out) {
    memset(out, 0, sizeof *out);
    size_t n_links = 0, pos = 0;
    ia_status st;
    /* Pass 1: structure and link count, so the link array is sized once. */
    bool has_data = false;
    while (pos < len) {
        uint64_t key;
        size_t at = pos, n;
        if ((st = ia_pb_read_varint(buf, len, &pos, &key, "dag-pb node")))
            return st;
        if (key != 0x0a && key != 0x12) {
            if ((key & 7) != 2 && (key >> 3 == 1 || key >> 3 == 2))
                return ia_error_set(IA_EPARSE,
                                    "dag-pb node: field %llu at byte %zu has wire "
                                    "type %u, not bytes",
                                    (unsigned long long)(key >> 3), at, (unsigned)(key & 7));
            return ia_error_set(IA_EPARSE,
                                "dag-pb node: unknown field %llu at byte %zu "
                                "(PBNode has Data=1 and Links=2)",
                                (unsigned long long)(key >> 3), at);
        }
        if (has_data)
            return ia_error_set(IA_EPARSE,
                                "dag-pb node: %s at byte %zu after Data (Links come "
                                "first and Data appears once)",
                                key == 0x0a ? "second Data" : "Links", at);
        if ((st = read_len(buf, len, &pos, &n, "dag-pb node")))
            return st;
        if (key == 0x0a) {
            has_data = true;
            out->data = buf + pos;
            out->data_len = n;
            out->has_data = true;
        } else {
            n_links++;
        }
        pos += n;
    }
    if (n_links && !(out->links = ia_malloc_array(n_links, sizeof *out->links)))
        return IA_ENOMEM;
    /* Pass 2: the links (offsets were validated above). */
    pos = 0;
    for (size_t i = 0; i < n_links; i++) {
        uint64_t key;
        size_t n;
        ia_pb_read_varint(buf, len, &pos, &key, "dag-pb node");
        read_len(buf, len, &pos, &n, "dag-pb node");
        if ((st = decode_link(buf, pos, pos + n, i, &out->links[i]))) {
            ia_pb_node_free(out);
            return st;
        }
        pos += n;
    }
    out->n_links = n_links;
    return IA_OK;
}

void ia_pb_node_free(ia_pb_node *node) {
    if (!node)
        return;
    free(node->links);
    node->links = NULL;
    node->n_links = 0;
}

ia_status ia_dagpb_encode_into(const ia_pb_node *node, ia_pbw *w) {
    uint8_t cidbuf[IA_CID_MAX_BYTES];
    for (size_t i = 0; i < node->n_links; i++) {
        const ia_pb_link *l = &node->links[i];
        size_t cl = ia_cid_encode(&l->cid, cidbuf);
        size_t inner = 1 + ia_varint_len(cl) + cl;
        if (l->has_name)
            inner += 1 + ia_varint_len(l->name_len) + l->name_len;
        if (l->has_tsize)
            inner += 1 + ia_varint_len(l->tsize);
        ia_pbw_key(w, 2, 2);
        ia_pbw_varint(w, inner);
        ia_pbw_field_bytes(w, 1, cidbuf, cl);
        if (l->has_name)
            ia_pbw_field_bytes(w, 2, l->name, l->name_len);
        if (l->has_tsize)
            ia_pbw_field_varint(w, 3, l->tsize);
    }
    if (node->has_data)
        ia_pbw_field_bytes(w, 1, node->data, node->data_len);
    return ia_pbw_status(w);
}

ia_status ia_dagpb_encode(const ia_pb_node *node, uint8_t **out, size_t *out_len) {
    ia_pbw w = {0};
    ia_status st = ia_dagpb_encode_into(node, &w);
    if (st) {
        ia_pbw_free(&w);
        return st;
    }
    if (!w.data && !(w.data = ia_malloc(1))) /* an empty node is a valid, empty block */
        return IA_ENOMEM;
    *out = w.data;
    *out_len = w.len;
    return IA_OK;
}
