/*
 * CAR files (content-addressed archives), version 1, and the inner CARv1 of
 * a CARv2, as Kubo's `dag export` / `dag import` read and write them.
 *
 * A CARv1 is a varint-prefixed dag-cbor header {roots: [CID...], version: 1}
 * followed by sections: varint length, binary CID, block bytes. A CARv2
 * starts with an 11-byte pragma (a CARv1-style header saying version 2),
 * then a 40-byte header (16 bytes of characteristics, then the inner CARv1's
 * data offset and size and the index offset, little-endian uint64): we read
 * the inner CARv1 and ignore the index.
 *
 * The CBOR needed here is small (a map of text keys, arrays, tag 42 over a
 * byte string for CIDs, unsigned integers), so it is written and read by
 * hand: every length is checked against the bytes left, nesting is bounded,
 * and dag-cbor's forbidden indefinite lengths are refused. The same reader
 * finds the links of dag-cbor blocks for walks (ia_block_links).
 *
 * Import reads from memory (files are mapped), verifies every block against
 * its CID before storing it, and names the file, the byte offset and the
 * problem on error. Export walks each root depth first and writes each block
 * once, through a write callback so the gateway can stream it later.
 */
#include "ia/ipfs.h"
#include "ipfs/ipfs_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CBOR_MAX_DEPTH 64
#define CAR_HEADER_MAX ((uint64_t)1 << 20)
#define CARV2_PRAGMA_LEN 11
#define CARV2_HEADER_LEN 40

static const uint8_t carv2_pragma[CARV2_PRAGMA_LEN] = {0x0a, 0xa1, 0x67, 0x76, 0x65, 0x72,
                                                       0x73, 0x69, 0x6f, 0x6e, 0x02};

/* ---- CBOR reading -------------------------------------------------------------- */

typedef struct cbor {
    const uint8_t *p;
    size_t len, pos;
    const char *what; /* for messages: "file.car" or "block <cid>" */
    uint64_t base;    /* offset of p[0] in the file, for messages */
} cbor;

static ia_status cbor_err(const cbor *c, const char *why) {
    return ia_error_set(IA_EPARSE, "%s: offset %llu: %s", c->what,
                        (unsigned long long)(c->base + c->pos), why);
}

/* Reads an item's head: major type, argument and the additional-info bits. */
static ia_status cbor_head(cbor *c, int *major, uint64_t *arg) {
    *major = -1;
    *arg = 0;
    if (c->pos >= c->len)
        return cbor_err(c, "CBOR ends in the middle of an item");
    uint8_t b = c->p[c->pos];
    int info = b & 31;
    *major = b >> 5;
    size_t extra = info < 24 ? 0 : info == 24 ? 1 : info == 25 ? 2 : info == 26 ? 4 : 8;
    if (info >= 28)
        return cbor_err(c, info == 31 ? "indefinite-length CBOR is not allowed in dag-cbor"
                                      : "reserved CBOR additional information");
    if (extra > c->len - c->pos - 1)
        return cbor_err(c, "CBOR ends in the middle of an item head");
    uint64_t v = info < 24 ? (uint64_t)info : 0;
    for (size_t i = 0; i < extra; i++)
        v = (v << 8) | c->p[c->pos + 1 + i];
    c->pos += 1 + extra;
    *arg = v;
    return IA_OK;
}

typedef struct cid_vec {
    ia_cid *v;
    size_t n, cap;
} cid_vec;

static ia_status cid_vec_push(cid_vec *vec, const ia_cid *cid) {
    if (vec->n == vec->cap) {
        size_t cap = vec->cap ? vec->cap * 2 : 8;
        ia_cid *v = ia_realloc_array(vec->v, cap, sizeof *v);
        if (!v)
            return IA_ENOMEM;
        vec->v = v;
        vec->cap = cap;
    }
    vec->v[vec->n++] = *cid;
    return IA_OK;
}

/* The CID in a tag-42 item's byte string (a 0x00 multibase prefix, then the
 * binary CID filling the rest). */
static ia_status cbor_cid(cbor *c, ia_cid *out) {
    int major;
    uint64_t n;
    ia_status st = cbor_head(c, &major, &n);
    if (st)
        return st;
    if (major != 2)
        return cbor_err(c, "tag 42 (CID) must hold a byte string");
    if (n > c->len - c->pos)
        return cbor_err(c, "CID byte string runs past the end");
    if (n < 2 || c->p[c->pos] != 0x00)
        return cbor_err(c, "tag 42 (CID) bytes must start with the 0x00 prefix");
    size_t used;
    if ((st = ia_cid_decode(c->p + c->pos + 1, (size_t)n - 1, out, &used)) ||
        used != (size_t)n - 1) {
        char why[512];
        snprintf(why, sizeof why, "bad CID in tag 42: %s",
                 st ? ia_error_message() : "bytes left after the CID");
        return cbor_err(c, why);
    }
    c->pos += (size_t)n;
    return IA_OK;
}

/* Skips one item, collecting tag-42 CIDs into links when it is not NULL. */
static ia_status cbor_skip(cbor *c, int depth, cid_vec *links) {
    if (depth > CBOR_MAX_DEPTH)
        return cbor_err(c, "CBOR nested too deeply");
    int major;
    uint64_t arg;
    ia_status st = cbor_head(c, &major, &arg);
    if (st)
        return st;
    switch (major) {
    case 0: /* unsigned, negative */
    case 1:
        return IA_OK;
    case 2: /* bytes, text */
    case 3:
        if (arg > c->len - c->pos)
            return cbor_err(c, "CBOR string runs past the end");
        c->pos += (size_t)arg;
        return IA_OK;
    case 4: /* array, map: each item takes at least one byte, so a hostile
               count fails at the end of the input */
    case 5:
        for (uint64_t i = 0; i < arg; i++) {
            if ((st = cbor_skip(c, depth + 1, links)))
                return st;
            if (major == 5 && (st = cbor_skip(c, depth + 1, links)))
                return st;
        }
        return IA_OK;
    case 6:
        if (arg == 42) {
            ia_cid cid;
            if ((st = cbor_cid(c, &cid)))
                return st;
            return links ? cid_vec_push(links, &cid) : IA_OK;
        }
        return cbor_skip(c, depth + 1, links);
    default: /* simple values and floats: the head was the whole item */
        return IA_OK;
    }
}

/* ---- links of a block ------------------------------------------------------------------- */

ia_status ia_block_links(const ia_cid *cid, const uint8_t *data, size_t len, ia_cid **links,
                         size_t *n_links) {
    *links = NULL;
    *n_links = 0;
    char text[IA_CID_MAX_STRING], what[IA_CID_MAX_STRING + 16];
    if (cid->codec == IA_CODEC_RAW)
        return IA_OK;
    if (ia_cid_format(cid, IA_BASE32, text, sizeof text))
        snprintf(text, sizeof text, "<CID>");
    snprintf(what, sizeof what, "block %s", text);
    if (cid->codec == IA_CODEC_DAG_PB) {
        ia_pb_node node;
        ia_status st = ia_dagpb_decode(data, len, &node);
        if (st) {
            ia_error_prefix("%s", what);
            return st;
        }
        if (node.n_links && !(*links = ia_malloc_array(node.n_links, sizeof **links))) {
            ia_pb_node_free(&node);
            return IA_ENOMEM;
        }
        for (size_t i = 0; i < node.n_links; i++)
            (*links)[i] = node.links[i].cid;
        *n_links = node.n_links;
        ia_pb_node_free(&node);
        return IA_OK;
    }
    if (cid->codec == IA_CODEC_DAG_CBOR) {
        cbor c = {data, len, 0, what, 0};
        cid_vec vec = {0};
        ia_status st = cbor_skip(&c, 0, &vec);
        if (st == IA_OK && c.pos != len)
            st = cbor_err(&c, "bytes after the dag-cbor item");
        if (st) {
            free(vec.v);
            return st;
        }
        *links = vec.v;
        *n_links = vec.n;
        return IA_OK;
    }
    const char *name = ia_codec_name(cid->codec);
    return ia_error_set(IA_EUNSUPPORTED, "%s: cannot follow links in codec %s (0x%llx)", what,
                        name ? name : "unknown", (unsigned long long)cid->codec);
}

/* ---- import ------------------------------------------------------------------------------- */

static ia_status car_err(const char *what, uint64_t off, ia_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static ia_status car_err(const char *what, uint64_t off, ia_status st, const char *fmt, ...) {
    char why[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return ia_error_set(st, "%s: offset %llu: %s", what, (unsigned long long)off, why);
}

/* Parses the varint-prefixed header at data[0..]; *version, roots; *used is
 * the header's length with its prefix. */
static ia_status read_header(const uint8_t *data, size_t len, const char *what, uint64_t base,
                             uint64_t *version, cid_vec *roots, size_t *used) {
    uint64_t hlen;
    size_t vlen;
    if (len == 0)
        return car_err(what, base, IA_EPARSE, "empty file: no CAR header");
    if (ia_varint_decode(data, len, &hlen, &vlen) != IA_OK)
        return car_err(what, base, IA_EPARSE, "bad header length varint: %s", ia_error_message());
    if (hlen == 0 || hlen > CAR_HEADER_MAX || hlen > len - vlen)
        return car_err(what, base, IA_EPARSE,
                       "header length %llu is impossible (%zu bytes follow, limit %llu)",
                       (unsigned long long)hlen, len - vlen, (unsigned long long)CAR_HEADER_MAX);
    cbor c = {data + vlen, (size_t)hlen, 0, what, base + vlen};
    int major;
    uint64_t n;
    ia_status st = cbor_head(&c, &major, &n);
    if (st)
        return st;
    if (major != 5)
        return cbor_err(&c, "the CAR header is not a CBOR map");
    bool has_version = false, has_roots = false;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t klen;
        if ((st = cbor_head(&c, &major, &klen)))
            return st;
        if (major != 3 || klen > c.len - c.pos)
            return cbor_err(&c, "CAR header keys must be text strings");
        const char *key = (const char *)c.p + c.pos;
        c.pos += (size_t)klen;
        if (klen == 7 && memcmp(key, "version", 7) == 0) {
            if ((st = cbor_head(&c, &major, version)))
                return st;
            if (major != 0)
                return cbor_err(&c, "CAR header version must be an unsigned integer");
            has_version = true;
        } else if (klen == 5 && memcmp(key, "roots", 5) == 0) {
            uint64_t count;
            if ((st = cbor_head(&c, &major, &count)))
                return st;
            if (major != 4)
                return cbor_err(&c, "CAR header roots must be an array");
            for (uint64_t r = 0; r < count; r++) {
                uint64_t tag;
                ia_cid cid;
                if ((st = cbor_head(&c, &major, &tag)))
                    return st;
                if (major != 6 || tag != 42)
                    return cbor_err(&c, "CAR header roots must be CIDs (CBOR tag 42)");
                if ((st = cbor_cid(&c, &cid)) || (st = cid_vec_push(roots, &cid)))
                    return st;
            }
            has_roots = true;
        } else if ((st = cbor_skip(&c, 1, NULL))) {
            return st;
        }
    }
    if (c.pos != c.len)
        return cbor_err(&c, "bytes after the CAR header map");
    if (!has_version)
        return car_err(what, base, IA_EPARSE, "the CAR header has no version");
    if (*version == 1 && !has_roots)
        return car_err(what, base, IA_EPARSE, "the CARv1 header has no roots");
    *used = vlen + (size_t)hlen;
    return IA_OK;
}

static uint64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Reads the sections of a CARv1 body: data[0..len) is at file offset base. */
static ia_status read_sections(ia_blockstore *bs, const uint8_t *data, size_t len, const char *what,
                               uint64_t base, uint64_t *n_blocks) {
    size_t pos = 0;
    while (pos < len) {
        uint64_t off = base + pos, slen;
        size_t vlen, cid_len;
        ia_cid cid;
        ia_status st;
        if (ia_varint_decode(data + pos, len - pos, &slen, &vlen) != IA_OK)
            return car_err(what, off, IA_EPARSE, "bad section length varint: %s",
                           ia_error_message());
        if (slen == 0)
            return car_err(what, off, IA_EPARSE, "empty section (length 0)");
        if (slen > len - pos - vlen)
            return car_err(what, off, IA_EPARSE,
                           "section claims %llu bytes but only %zu remain (truncated file?)",
                           (unsigned long long)slen, len - pos - vlen);
        const uint8_t *sec = data + pos + vlen;
        if ((st = ia_cid_decode(sec, (size_t)slen, &cid, &cid_len)))
            return car_err(what, off + vlen, st, "bad CID: %s", ia_error_message());
        const uint8_t *block = sec + cid_len;
        size_t block_len = (size_t)slen - cid_len;
        if ((st = ia_cid_verify(&cid, block, block_len)))
            return car_err(what, off, IA_EPARSE, "block does not match its CID: %s",
                           ia_error_message());
        if (bs && (st = ia_blockstore_put(bs, &cid, block, block_len))) {
            ia_error_prefix("%s: offset %llu", what, (unsigned long long)off);
            return st;
        }
        (*n_blocks)++;
        pos += vlen + (size_t)slen;
    }
    return IA_OK;
}

ia_status ia_car_import_buffer(ia_blockstore *bs, const uint8_t *data, size_t len, const char *what,
                               ia_car_info *info) {
    memset(info, 0, sizeof *info);
    cid_vec roots = {0};
    uint64_t version = 0, base = 0;
    size_t used;
    ia_status st = read_header(data, len, what, 0, &version, &roots, &used);
    if (st)
        goto fail;
    if (version == 2) {
        if (used != CARV2_PRAGMA_LEN || memcmp(data, carv2_pragma, CARV2_PRAGMA_LEN) != 0) {
            st = car_err(what, 0, IA_EPARSE, "CARv2 pragma is not the canonical 11 bytes");
            goto fail;
        }
        if (len - used < CARV2_HEADER_LEN) {
            st = car_err(what, used, IA_EPARSE, "CARv2 header is truncated (%zu of 40 bytes)",
                         len - used);
            goto fail;
        }
        uint64_t off = le64(data + used + 16), size = le64(data + used + 24);
        if (off < used + CARV2_HEADER_LEN || off > len || size > len - off) {
            st = car_err(what, used + 16, IA_EPARSE,
                         "CARv2 data [%llu, +%llu) lies outside the %zu-byte file",
                         (unsigned long long)off, (unsigned long long)size, len);
            goto fail;
        }
        free(roots.v);
        roots = (cid_vec){0};
        data += off;
        len = (size_t)size;
        base = off;
        if ((st = read_header(data, len, what, base, &version, &roots, &used)))
            goto fail;
        if (version != 1) {
            st = car_err(what, base, IA_EUNSUPPORTED,
                         "the CARv2's inner CAR has version %llu, not 1",
                         (unsigned long long)version);
            goto fail;
        }
        info->version = 2;
    } else if (version != 1) {
        st = car_err(what, 0, IA_EUNSUPPORTED, "CAR version %llu is not supported (only 1 and 2)",
                     (unsigned long long)version);
        goto fail;
    } else {
        info->version = 1;
    }
    if (bs) /* one synced batch; blocks read before a bad section stay, as before */
        ia_blockstore_batch_begin(bs);
    st = read_sections(bs, data + used, len - used, what, base + used, &info->n_blocks);
    if (bs) {
        ia_status cst = ia_blockstore_batch_commit(bs);
        st = st ? st : cst;
    }
    if (st)
        goto fail;
    info->roots = roots.v;
    info->n_roots = roots.n;
    return IA_OK;
fail:
    free(roots.v);
    info->n_blocks = 0;
    info->version = 0;
    return st;
}

ia_status ia_car_import_file(ia_blockstore *bs, const char *path, ia_car_info *info) {
    memset(info, 0, sizeof *info);
    ia_mapped_file mf;
    ia_status st = ia_file_map(path, &mf);
    if (st)
        return st;
    st = ia_car_import_buffer(bs, mf.data, mf.size, path, info);
    ia_file_unmap(&mf);
    return st;
}

void ia_car_info_free(ia_car_info *info) {
    if (!info)
        return;
    free(info->roots);
    memset(info, 0, sizeof *info);
}

/* ---- export ---------------------------------------------------------------------------- */

static size_t cbor_put_head(uint8_t *buf, int major, uint64_t v) {
    uint8_t m = (uint8_t)(major << 5);
    if (v < 24) {
        buf[0] = m | (uint8_t)v;
        return 1;
    }
    int bytes = v <= 0xff ? 1 : v <= 0xffff ? 2 : v <= 0xffffffffu ? 4 : 8;
    buf[0] = m | (uint8_t)(bytes == 1 ? 24 : bytes == 2 ? 25 : bytes == 4 ? 26 : 27);
    for (int i = 0; i < bytes; i++)
        buf[1 + i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    return 1 + (size_t)bytes;
}

typedef struct export_ctx {
    ia_write_fn write;
    void *ctx;
    ia_mh_set *written;
    uint64_t n_blocks;
} export_ctx;

static ia_status write_section(void *ctx, const ia_cid *cid, const uint8_t *data, size_t len) {
    export_ctx *e = ctx;
    int added = ia_mh_set_add(e->written, cid);
    if (added <= 0)
        return added < 0 ? IA_ENOMEM : IA_OK;
    uint8_t head[IA_VARINT_MAX_BYTES + IA_CID_MAX_BYTES];
    uint8_t bin[IA_CID_MAX_BYTES];
    size_t cid_len = ia_cid_encode(cid, bin);
    size_t n = ia_varint_encode((uint64_t)cid_len + len, head);
    memcpy(head + n, bin, cid_len);
    ia_status st = e->write(e->ctx, head, n + cid_len);
    if (st == IA_OK && len)
        st = e->write(e->ctx, data, len);
    e->n_blocks += st == IA_OK;
    return st;
}

ia_status ia_car_export(ia_blockstore *bs, const ia_cid *roots, size_t n_roots, ia_write_fn write,
                        void *ctx, uint64_t *n_blocks) {
    if (n_blocks)
        *n_blocks = 0;
    /* {"roots": [42(h'00' cid)...], "version": 1}: dag-cbor orders keys by
     * length, so roots comes first, as go-car writes it. */
    size_t cap = 32 + n_roots * (IA_CID_MAX_BYTES + 16);
    uint8_t *hdr = ia_malloc(cap + IA_VARINT_MAX_BYTES);
    if (!hdr)
        return IA_ENOMEM;
    uint8_t *p = hdr + IA_VARINT_MAX_BYTES;
    size_t n = 0;
    n += cbor_put_head(p + n, 5, 2);
    n += cbor_put_head(p + n, 3, 5);
    memcpy(p + n, "roots", 5), n += 5;
    n += cbor_put_head(p + n, 4, n_roots);
    for (size_t i = 0; i < n_roots; i++) {
        uint8_t bin[IA_CID_MAX_BYTES];
        size_t len = ia_cid_encode(&roots[i], bin);
        n += cbor_put_head(p + n, 6, 42);
        n += cbor_put_head(p + n, 2, len + 1);
        p[n++] = 0x00;
        memcpy(p + n, bin, len), n += len;
    }
    n += cbor_put_head(p + n, 3, 7);
    memcpy(p + n, "version", 7), n += 7;
    n += cbor_put_head(p + n, 0, 1);
    uint8_t prefix[IA_VARINT_MAX_BYTES];
    size_t plen = ia_varint_encode(n, prefix);
    memcpy(p - plen, prefix, plen);
    export_ctx e = {write, ctx, NULL, 0};
    ia_status st = write(ctx, p - plen, plen + n);
    free(hdr);
    if (st)
        return st;
    if (!(e.written = ia_mh_set_create()))
        return IA_ENOMEM;
    for (size_t i = 0; i < n_roots && st == IA_OK; i++)
        st = ia_dag_walk(bs, &roots[i], false, write_section, &e);
    ia_mh_set_destroy(e.written);
    if (n_blocks)
        *n_blocks = e.n_blocks;
    return st;
}

/* ---- streaming framing ------------------------------------------------------------ */

ia_status ia_car_stream_item(const uint8_t *p, size_t len, bool header_done, size_t max_item,
                             const uint8_t **item, size_t *item_len, size_t *used) {
    *item = NULL;
    *item_len = 0;
    *used = 0;
    size_t i = 0;
    while (i < len && i < IA_VARINT_MAX_BYTES && (p[i] & 0x80))
        i++;
    if (i == len && i < IA_VARINT_MAX_BYTES)
        return IA_OK; /* the length prefix is not complete yet */
    uint64_t n;
    size_t vlen;
    if (ia_varint_decode(p, len, &n, &vlen) != IA_OK)
        return ia_error_set(IA_EPARSE, "bad length prefix");
    const char *what = header_done ? "section" : "header";
    if (n == 0 || n > max_item)
        return ia_error_set(IA_EPARSE, "CAR %s of %llu bytes (limit %zu)", what,
                            (unsigned long long)n, max_item);
    if (n > len - vlen)
        return IA_OK; /* wait for the rest */
    if (!header_done && (p[vlen] >> 5) != 5)
        return ia_error_set(IA_EPARSE, "the answer is not a CARv1 stream (its header is not a "
                                       "CBOR map)");
    *item = p + vlen;
    *item_len = (size_t)n;
    *used = vlen + (size_t)n;
    return IA_OK;
}
