/*
 * The IPFS Trustless Gateway: an HTTP server (libmicrohttpd) that hands out
 * verifiable data from the local blockstore, as the Trustless Gateway spec
 * (specs.ipfs.tech/http-gateways/trustless-gateway) describes it.
 *
 * A request is GET or HEAD /ipfs/{cid}[/path] with a response type chosen by
 * ?format= (raw | car), which wins over the Accept header
 * (application/vnd.ipld.raw, application/vnd.ipld.car with version=1,
 * order=dfs|unk, dups=y|n). A raw response is one block, read and verified
 * against its CID. A CAR response is a CARv1 whose header names the request's
 * root CID; its sections are the blocks needed to walk the path (directory
 * blocks and HAMT shards), then what dag-scope asks for at the path's end:
 * `block` the terminal block, `entity` a whole UnixFS file (or, with
 * entity-bytes=from:to, only the blocks that cover that byte range), a
 * directory's own block(s), `all` the whole DAG below. Blocks come out depth
 * first in link order (order=dfs), duplicates once unless dups=y; identity
 * blocks never (the spec forbids them).
 *
 * Everything that can fail before the first byte (bad CID, bad parameter,
 * missing root, a path that does not resolve) is an HTTP error with a
 * plain-text reason; once a CAR stream has started, a missing or corrupt
 * block cuts the stream (the client sees an incomplete CAR, as the spec
 * prescribes). The stream is pulled: libmicrohttpd asks for up to
 * `stream_buffer` bytes at a time and the walker (car_stream below) produces
 * the next sections on demand, holding one block plus one frame of child
 * links per DAG level, so memory stays bounded whatever the DAG's size.
 *
 * Serving costs the CPU the client needs to verify what it gets (both often
 * share a machine), so bytes are copied as little as the store allows: a
 * block file is read straight into libmicrohttpd's buffer (no block buffer
 * of our own), and on the gateway's own server (a thread per connection)
 * a leaf of 64 KiB or more is not read at all: sendfile() passes its pages
 * from the page cache to the socket, between two of libmicrohttpd's buffers.
 * A raw block goes out as a file response. --nocopy references and
 * hash-on-read stores still come through memory, verified.
 *
 * Request parsing (ia_gateway_parse_request) knows nothing of HTTP servers,
 * so it can be fuzzed and reused; ia_gateway_handle answers one MHD
 * connection, so the serving module's own server can mount /ipfs/ on it.
 * Threads: one per connection; they share the blockstore, whose SQLite handle
 * is in serialised mode and whose file reads keep no state.
 */
#include "ia/ipfs.h"
#include "ipfs/ipfs_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>

#define CACHE_IMMUTABLE "public, max-age=29030400, immutable"
#define CT_RAW "application/vnd.ipld.raw"
#define CT_CAR "application/vnd.ipld.car"
#define WALK_MAX_DEPTH 4096 /* DAG levels a CAR walk follows */
#define PATH_MAX_SEGMENTS 256
#define DIRECT_MIN (64 << 10)               /* smallest block file sent to the socket directly */
#define DIRECT_RUN_MAX ((uint64_t)64 << 20) /* bytes sent directly per callback, at most */
#define DIRECT_RUN_NS 500000000LL           /* and time: libmicrohttpd's idle timer runs between */
#define SECTION_HEAD_MAX (IA_VARINT_MAX_BYTES + IA_CID_MAX_BYTES)

struct ia_gateway {
    ia_blockstore *bs;
    ia_gateway_options opts;
    struct MHD_Daemon *daemon;
    uint16_t port;
    bool direct; /* own daemon, a thread per connection: CAR leaves may be
                    sent to the socket directly (see car_read) */
};

ia_gateway_options ia_gateway_options_default(void) {
    ia_gateway_options o = {false, 256, 120, 1 << 20};
    return o;
}

/* ---- request parsing ------------------------------------------------------------------- */

static int fail_with(char *why, size_t cap, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_with(char *why, size_t cap, int status, const char *fmt, ...) {
    if (why && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, cap, fmt, ap);
        va_end(ap);
    }
    return status;
}

/* Parses a decimal int64 (optionally negative) of exactly [s, s+n). */
static bool parse_i64(const char *s, size_t n, int64_t *out) {
    bool neg = n > 0 && s[0] == '-';
    size_t i = neg;
    if (i >= n || n - i > 19)
        return false;
    uint64_t v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        return false;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return true;
}

/* entity-bytes=from:to with from an integer, to an integer or '*'. */
static int parse_entity_bytes(const char *s, ia_gw_request *r, char *why, size_t cap) {
    const char *colon = strchr(s, ':');
    if (!colon || !parse_i64(s, (size_t)(colon - s), &r->range_from))
        return fail_with(why, cap, 400,
                         "entity-bytes '%s': expected FROM:TO (integers, TO may be "
                         "'*', negative counts from the end)",
                         s);
    const char *to = colon + 1;
    if (strcmp(to, "*") == 0) {
        r->range_to_end = true;
    } else if (!parse_i64(to, strlen(to), &r->range_to)) {
        return fail_with(why, cap, 400, "entity-bytes '%s': TO must be an integer or '*'", s);
    } else if (r->range_from >= 0 && r->range_to >= 0 && r->range_to < r->range_from) {
        return fail_with(why, cap, 400, "entity-bytes '%s': TO is before FROM", s);
    } else if (r->range_from < 0 && r->range_to < 0 && r->range_to < r->range_from) {
        return fail_with(why, cap, 400, "entity-bytes '%s': TO is before FROM", s);
    }
    r->has_range = true;
    return 200;
}

/* One media range of an Accept header: its type and parameters, and how
 * well we can serve it (0: not at all). */
typedef struct accept_choice {
    ia_gw_format format;
    bool deserialized; /* a generic type: */
    bool dups, dups_given;
    double q;
} accept_choice;

static bool token_eq(const char *s, size_t n, const char *lit) {
    return strlen(lit) == n && strncasecmp(s, lit, n) == 0;
}

static void trim(const char **s, size_t *n) {
    while (*n && (**s == ' ' || **s == '\t'))
        (*s)++, (*n)--;
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

/* Reads one media range [s, s+n): false when it is one we cannot serve. */
static bool accept_range(const char *s, size_t n, accept_choice *c) {
    memset(c, 0, sizeof *c);
    c->q = 1.0;
    size_t tlen = 0;
    while (tlen < n && s[tlen] != ';')
        tlen++;
    const char *type = s;
    size_t type_len = tlen;
    trim(&type, &type_len);
    if (token_eq(type, type_len, CT_RAW))
        c->format = IA_GW_FORMAT_RAW;
    else if (token_eq(type, type_len, CT_CAR))
        c->format = IA_GW_FORMAT_CAR;
    else if (token_eq(type, type_len, "application/octet-stream") ||
             token_eq(type, type_len, "*/*") || token_eq(type, type_len, "application/*"))
        c->deserialized = true;
    else
        return false;
    const char *p = s + tlen;
    size_t left = n - tlen;
    while (left > 0) { /* ";name=value" */
        p++, left--;
        size_t plen = 0;
        while (plen < left && p[plen] != ';')
            plen++;
        const char *kv = p;
        size_t kvlen = plen;
        trim(&kv, &kvlen);
        const char *eq = memchr(kv, '=', kvlen);
        if (eq) {
            const char *k = kv, *v = eq + 1;
            size_t klen = (size_t)(eq - kv), vlen = kvlen - klen - 1;
            trim(&k, &klen);
            trim(&v, &vlen);
            if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"')
                v++, vlen -= 2;
            if (token_eq(k, klen, "q")) {
                char num[16];
                if (vlen == 0 || vlen >= sizeof num)
                    return false;
                memcpy(num, v, vlen);
                num[vlen] = 0;
                char *end;
                c->q = strtod(num, &end);
                if (*end || !(c->q >= 0 && c->q <= 1))
                    return false;
            } else if (c->format == IA_GW_FORMAT_CAR && token_eq(k, klen, "version")) {
                if (!token_eq(v, vlen, "1"))
                    return false; /* CARv2 is not served */
            } else if (c->format == IA_GW_FORMAT_CAR && token_eq(k, klen, "order")) {
                if (!token_eq(v, vlen, "dfs") && !token_eq(v, vlen, "unk"))
                    return false;
            } else if (c->format == IA_GW_FORMAT_CAR && token_eq(k, klen, "dups")) {
                if (!token_eq(v, vlen, "y") && !token_eq(v, vlen, "n"))
                    return false;
                c->dups = token_eq(v, vlen, "y");
                c->dups_given = true;
            }
        }
        p += plen;
        left -= plen;
    }
    return c->q > 0;
}

/* The best media range we can serve (highest q, first on ties); false when none. */
static bool accept_best(const char *accept, accept_choice *best) {
    bool found = false;
    const char *p = accept;
    while (*p) {
        size_t n = strcspn(p, ",");
        accept_choice c;
        if (accept_range(p, n, &c) && (!found || c.q > best->q)) {
            *best = c;
            found = true;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return found;
}

static int parse_car_params(const ia_gw_inputs *in, ia_gw_request *r, char *why, size_t cap) {
    if (in->car_version && strcmp(in->car_version, "1") != 0)
        return fail_with(why, cap, 406, "car-version=%s: only CARv1 is served", in->car_version);
    if (in->car_order && strcmp(in->car_order, "dfs") != 0 && strcmp(in->car_order, "unk") != 0)
        return fail_with(why, cap, 406, "car-order=%s: only dfs (or unk) is served", in->car_order);
    if (in->car_dups) {
        if (strcmp(in->car_dups, "y") != 0 && strcmp(in->car_dups, "n") != 0)
            return fail_with(why, cap, 400, "car-dups=%s: expected y or n", in->car_dups);
        r->dups = in->car_dups[0] == 'y';
    }
    if (in->dag_scope) {
        static const char *names[] = {"all", "entity", "block"};
        size_t i = 0;
        while (i < 3 && strcmp(in->dag_scope, names[i]) != 0)
            i++;
        if (i == 3)
            return fail_with(why, cap, 400, "dag-scope=%s: expected block, entity or all",
                             in->dag_scope);
        r->scope = (ia_gw_scope)i;
    }
    if (in->entity_bytes) {
        int st = parse_entity_bytes(in->entity_bytes, r, why, cap);
        if (st != 200)
            return st;
        if (!in->dag_scope)
            r->scope = IA_GW_SCOPE_ENTITY; /* entity-bytes implies entity */
    }
    return 200;
}

int ia_gateway_parse_request(const char *url, const ia_gw_inputs *in, ia_gw_request *out, char *why,
                             size_t cap) {
    memset(out, 0, sizeof *out);
    if (why && cap)
        why[0] = 0;
    if (strncmp(url, "/ipns/", 6) == 0 || strcmp(url, "/ipns") == 0)
        return fail_with(why, cap, 501, "/ipns/ names are not resolved by this gateway");
    if (strncmp(url, "/ipfs/", 6) != 0)
        return fail_with(why, cap, 404, "%s: only /ipfs/{cid}[/path] is served", url);
    const char *c = url + 6;
    size_t n = strcspn(c, "/");
    char text[IA_CID_MAX_STRING];
    if (n == 0)
        return fail_with(why, cap, 400, "missing CID after /ipfs/");
    if (n >= sizeof text)
        return fail_with(why, cap, 400, "'%.40s...' is too long to be a CID", c);
    memcpy(text, c, n);
    text[n] = 0;
    if (ia_cid_parse(text, &out->cid) != IA_OK)
        return fail_with(why, cap, 400, "'%s' is not a valid CID: %s", text, ia_error_message());
    out->path = c + n;
    const char *p = out->path;
    while (*p == '/')
        p++;
    bool has_path = *p != 0;

    accept_choice best = {0};
    bool have_accept = in->accept && *in->accept && accept_best(in->accept, &best);
    if (in->format) {
        if (strcmp(in->format, "raw") == 0)
            out->format = IA_GW_FORMAT_RAW;
        else if (strcmp(in->format, "car") == 0)
            out->format = IA_GW_FORMAT_CAR;
        else if (!strcmp(in->format, "tar") || !strcmp(in->format, "dag-json") ||
                 !strcmp(in->format, "dag-cbor") || !strcmp(in->format, "json") ||
                 !strcmp(in->format, "cbor") || !strcmp(in->format, "ipns-record"))
            return fail_with(why, cap, 406,
                             "format=%s is not served by this trustless gateway (raw or car)",
                             in->format);
        else
            return fail_with(why, cap, 400, "format=%s: expected raw or car", in->format);
        if (have_accept && best.format == out->format && best.dups_given)
            out->dups = best.dups;
    } else if (in->accept && *in->accept) {
        if (!have_accept)
            return fail_with(why, cap, 406,
                             "Accept '%.200s' names no type this gateway serves (%s, "
                             "%s; version=1)",
                             in->accept, CT_RAW, CT_CAR);
        out->format = best.format;
        out->format_from_accept = best.format != IA_GW_FORMAT_NONE;
        out->dups = best.dups;
    }
    if (out->format == IA_GW_FORMAT_CAR) {
        int st = parse_car_params(in, out, why, cap);
        if (st != 200)
            return st;
    } else if (out->format == IA_GW_FORMAT_RAW && has_path) {
        return fail_with(why, cap, 400,
                         "raw block requests take no path (/ipfs/{cid} only); ask for "
                         "format=car to walk '%s'",
                         out->path);
    }
    return 200;
}

/* ---- path resolution (recording the blocks it reads) --------------------------------------- */

/* A block decoded as far as the gateway needs. */
typedef struct gw_node {
    ia_cid cid;
    uint8_t *data;
    size_t len;
    bool pb_ok, fs_ok; /* pb / fs decoded */
    ia_pb_node pb;
    ia_unixfs fs;
} gw_node;

static void node_clear(gw_node *n) {
    if (n->pb_ok)
        ia_pb_node_free(&n->pb);
    if (n->fs_ok)
        ia_unixfs_free(&n->fs);
    free(n->data);
    memset(n, 0, sizeof *n);
}

/* Decodes n->data (n->cid's block) as dag-pb + UnixFS when it is dag-pb,
 * in place (the decoded parts point into n->data). A dag-pb block without
 * valid UnixFS data keeps fs_ok false. */
static ia_status node_decode(gw_node *n) {
    if (n->cid.codec != IA_CODEC_DAG_PB)
        return IA_OK;
    ia_status st = ia_dagpb_decode(n->data, n->len, &n->pb);
    if (st)
        return st;
    n->pb_ok = true;
    if (n->pb.has_data && ia_unixfs_decode(n->pb.data, n->pb.data_len, &n->fs) == IA_OK)
        n->fs_ok = true;
    return IA_OK;
}

/* Reads a (verified) block and decodes it (node_decode). */
static ia_status node_read(ia_blockstore *bs, const ia_cid *cid, gw_node *n) {
    memset(n, 0, sizeof *n);
    n->cid = *cid;
    ia_status st = ia_blockstore_get(bs, cid, &n->data, &n->len);
    if (st)
        return st;
    if ((st = node_decode(n)))
        node_clear(n);
    return st;
}

static bool node_is(const gw_node *n, ia_unixfs_type t) { return n->fs_ok && n->fs.type == t; }

/* Hex digits of a HAMT slot name for a fanout (256: 2). */
static size_t hamt_pad(const gw_node *n, int *bits) {
    uint64_t f = n->fs.has_fanout ? n->fs.fanout : 0;
    if (f < 2 || f > 4096 || (f & (f - 1)) || !n->fs.has_hash_type ||
        n->fs.hash_type != IA_HAMT_MURMUR3)
        return 0;
    *bits = __builtin_ctzll(f);
    size_t pad = 0;
    for (uint64_t v = f - 1; v; v >>= 4)
        pad++;
    return pad;
}

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* A growable list of CIDs. */
typedef struct cid_list {
    ia_cid *v;
    size_t n, cap;
} cid_list;

static ia_status cid_list_push(cid_list *l, const ia_cid *c) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        ia_cid *v = ia_realloc_array(l->v, cap, sizeof *v);
        if (!v)
            return IA_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *c;
    return IA_OK;
}

/* Looks `name` up in directory `dir` (plain or HAMT), appending to `blocks`
 * the HAMT shards below dir that it reads. IA_ENOTFOUND when absent. */
static ia_status dir_find(ia_blockstore *bs, const gw_node *dir, const char *name, size_t nlen,
                          cid_list *blocks, ia_cid *out) {
    if (node_is(dir, IA_UNIXFS_DIRECTORY)) {
        for (size_t i = 0; i < dir->pb.n_links; i++) {
            const ia_pb_link *l = &dir->pb.links[i];
            if (l->name_len == nlen && memcmp(l->name, name, nlen) == 0) {
                *out = l->cid;
                return IA_OK;
            }
        }
        return IA_ENOTFOUND;
    }
    if (!node_is(dir, IA_UNIXFS_HAMT_SHARD))
        return IA_ENOTFOUND; /* not a directory: nothing below it */
    uint8_t h[8];
    ia_murmur3_x64_64(name, nlen, h);
    uint64_t hv = 0;
    for (int i = 0; i < 8; i++)
        hv = (hv << 8) | h[i];
    gw_node cur = *dir, child;
    bool own = false;
    ia_status st = IA_ENOTFOUND;
    for (int depth = 0;; depth++) {
        int bits = 0;
        size_t pad = hamt_pad(&cur, &bits);
        if (!pad || (depth + 1) * bits > 64) {
            st = ia_error_set(IA_EPARSE, "a HAMT shard has a bad fanout, hash or depth");
            break;
        }
        unsigned slot = (unsigned)((hv >> (64 - (depth + 1) * bits)) & ((1ull << bits) - 1));
        const ia_pb_link *next = NULL;
        st = IA_ENOTFOUND;
        for (size_t i = 0; i < cur.pb.n_links; i++) {
            const ia_pb_link *l = &cur.pb.links[i];
            unsigned v = 0;
            size_t k = 0;
            for (; k < pad && k < l->name_len && hexval(l->name[k]) >= 0; k++)
                v = v * 16 + (unsigned)hexval(l->name[k]);
            if (k < pad || v != slot)
                continue;
            if (l->name_len == pad)
                next = l;
            else if (l->name_len - pad == nlen && memcmp(l->name + pad, name, nlen) == 0) {
                *out = l->cid;
                st = IA_OK;
            }
            break;
        }
        if (!next)
            break;
        ia_cid next_cid = next->cid;
        if ((st = node_read(bs, &next_cid, &child)) || (st = cid_list_push(blocks, &next_cid))) {
            if (st == IA_OK)
                node_clear(&child);
            break;
        }
        if (own)
            node_clear(&cur);
        cur = child;
        own = true;
        if (!node_is(&cur, IA_UNIXFS_HAMT_SHARD)) {
            st = ia_error_set(IA_EPARSE, "a HAMT slot link leads to something not a shard");
            break;
        }
    }
    if (own)
        node_clear(&cur);
    return st;
}

/* What resolving a request path found. */
typedef struct resolved {
    cid_list blocks; /* blocks read to walk the path, in order (not the terminal) */
    cid_list roots;  /* logical roots: the CID, then one per path segment */
    ia_cid terminal;
} resolved;

static void resolved_free(resolved *r) {
    free(r->blocks.v);
    free(r->roots.v);
    memset(r, 0, sizeof *r);
}

/* Walks path ("" or "/a/b") from root. Returns 200, 404 (missing block or
 * entry, with why), 412 (root absent with only_if_cached) or 500. */
static int resolve_path(ia_blockstore *bs, const ia_cid *root, const char *path, resolved *r,
                        char *why, size_t cap) {
    memset(r, 0, sizeof *r);
    char text[IA_CID_MAX_STRING];
    r->terminal = *root;
    if (cid_list_push(&r->roots, root))
        return fail_with(why, cap, 500, "out of memory");
    const char *p = path;
    int segments = 0;
    while (*p) {
        while (*p == '/')
            p++;
        size_t len = strcspn(p, "/");
        if (len == 0)
            break;
        if (++segments > PATH_MAX_SEGMENTS)
            return fail_with(why, cap, 400, "path has more than %d segments", PATH_MAX_SEGMENTS);
        gw_node dir;
        ia_status st = node_read(bs, &r->terminal, &dir);
        ia_cid_format(&r->terminal, IA_BASE32, text, sizeof text);
        if (st == IA_ENOTFOUND)
            return fail_with(why, cap, 404, "block %s is not in this gateway's store", text);
        if (st)
            return fail_with(why, cap, st == IA_ENOMEM ? 500 : 404, "block %s: %s", text,
                             ia_error_message());
        ia_cid child;
        st = cid_list_push(&r->blocks, &r->terminal);
        if (st == IA_OK)
            st = dir_find(bs, &dir, p, len, &r->blocks, &child);
        bool is_dir = node_is(&dir, IA_UNIXFS_DIRECTORY) || node_is(&dir, IA_UNIXFS_HAMT_SHARD);
        node_clear(&dir);
        if (st == IA_ENOTFOUND)
            return fail_with(why, cap, 404, "%.*s: %s", (int)(p + len - path), path,
                             is_dir ? "no such entry" : "not a directory");
        if (st)
            return fail_with(why, cap, st == IA_ENOMEM ? 500 : 404, "%.*s: %s",
                             (int)(p + len - path), path, ia_error_message());
        r->terminal = child;
        if (cid_list_push(&r->roots, &child))
            return fail_with(why, cap, 500, "out of memory");
        p += len;
    }
    return 200;
}

/* ---- CAR streaming ------------------------------------------------------------------------ */

/* How a frame's children are chosen. */
typedef enum walk_mode { WALK_ALL, WALK_FILE, WALK_HAMT } walk_mode;

typedef struct walk_frame {
    ia_cid *kids;
    uint64_t *starts; /* WALK_FILE: file offset of each kid */
    size_t n, i;
    walk_mode mode;
} walk_frame;

/* A block the walk chose, opened but not yet sent. */
typedef struct pick {
    ia_cid cid;
    walk_mode mode;
    uint64_t start; /* WALK_FILE: the block's first byte in the file */
    bool is_path, is_terminal;
    ia_bs_block blk;
} pick;

typedef struct car_stream {
    ia_blockstore *bs;
    /* output waiting to be copied: a small head (CAR header or a section's
     * length + CID), then the block it belongs to (bytes from body_pos on) */
    uint8_t *head;
    size_t head_len, head_pos, head_cap;
    ia_bs_block body;
    uint64_t body_pos;
    /* a block file that did not fit in the rest of the last buffer: it
     * opens the next one */
    pick held;
    bool has_held;
    /* direct sending (sock >= 0): a leaf whose section head ended the last
     * buffer, its bytes to go to the socket when the next one is asked for */
    int sock;
    bool chunked; /* the response is in HTTP chunks (an HTTP/1.1 request) */
    int timeout_ms;
    ia_bs_block direct;
    bool has_direct;
    bool client_gone; /* the socket said EPIPE or ECONNRESET */
    /* what to walk */
    cid_list path_blocks;
    size_t path_i;
    ia_cid terminal;
    ia_gw_scope scope;
    uint64_t lo, hi; /* WALK_FILE: wanted bytes [lo, hi) */
    bool terminal_done;
    walk_frame *stack;
    size_t depth, stack_cap;
    ia_mh_set *seen; /* NULL with dups=y */
    uint64_t n_blocks;
    bool finished;
    char label[IA_CID_MAX_STRING];
} car_stream;

static void frame_free(walk_frame *f) {
    free(f->kids);
    free(f->starts);
}

static void car_stream_free(void *cls) {
    car_stream *s = cls;
    if (!s)
        return;
    for (size_t i = 0; i < s->depth; i++)
        frame_free(&s->stack[i]);
    free(s->stack);
    free(s->head);
    ia_bs_block_close(&s->body);
    if (s->has_held)
        ia_bs_block_close(&s->held.blk);
    if (s->has_direct)
        ia_bs_block_close(&s->direct);
    free(s->path_blocks.v);
    ia_mh_set_destroy(s->seen);
    free(s);
}

static ia_status push_frame(car_stream *s, walk_frame *f) {
    if (f->n == 0) {
        frame_free(f);
        return IA_OK;
    }
    if (s->depth >= WALK_MAX_DEPTH) {
        frame_free(f);
        return ia_error_set(IA_ERANGE, "DAG deeper than %d levels", WALK_MAX_DEPTH);
    }
    if (s->depth == s->stack_cap) {
        size_t cap = s->stack_cap ? s->stack_cap * 2 : 16;
        walk_frame *v = ia_realloc_array(s->stack, cap, sizeof *v);
        if (!v) {
            frame_free(f);
            return IA_ENOMEM;
        }
        s->stack = v;
        s->stack_cap = cap;
    }
    s->stack[s->depth++] = *f;
    return IA_OK;
}

/* The children of a file node whose bytes start at `start` that overlap [lo, hi). */
static ia_status file_kids(car_stream *s, const gw_node *n, uint64_t start, walk_frame *f) {
    if (!n->fs_ok || (n->fs.type != IA_UNIXFS_FILE && n->fs.type != IA_UNIXFS_RAW))
        return ia_error_set(IA_EPARSE, "a non-file node inside a file's DAG");
    if (n->fs.n_blocksizes != n->pb.n_links)
        return ia_error_set(IA_EPARSE, "a file node has %zu links but %zu blocksizes",
                            n->pb.n_links, n->fs.n_blocksizes);
    if (n->pb.n_links == 0)
        return IA_OK;
    f->kids = ia_malloc_array(n->pb.n_links, sizeof *f->kids);
    f->starts = ia_malloc_array(n->pb.n_links, sizeof *f->starts);
    if (!f->kids || !f->starts)
        return IA_ENOMEM;
    uint64_t pos = start + n->fs.data_len;
    for (size_t i = 0; i < n->pb.n_links && pos < s->hi; i++) {
        uint64_t sz = n->fs.blocksizes[i];
        if (pos + sz > s->lo && sz > 0) {
            f->kids[f->n] = n->pb.links[i].cid;
            f->starts[f->n++] = pos;
        }
        pos += sz;
    }
    return IA_OK;
}

/* Chooses what follows block n: none, every link, a file's range, or a
 * HAMT's shards. */
static ia_status expand(car_stream *s, const gw_node *n, walk_mode mode, uint64_t start,
                        bool is_terminal) {
    walk_frame f = {0};
    ia_status st = IA_OK;
    if (is_terminal) {
        if (s->scope == IA_GW_SCOPE_BLOCK)
            return IA_OK;
        if (s->scope == IA_GW_SCOPE_ALL) {
            mode = WALK_ALL;
        } else if (node_is(n, IA_UNIXFS_FILE) || node_is(n, IA_UNIXFS_RAW)) {
            mode = WALK_FILE;
        } else if (node_is(n, IA_UNIXFS_HAMT_SHARD)) {
            mode = WALK_HAMT;
        } else {
            return IA_OK; /* plain directory, symlink, raw leaf, non-UnixFS: the block */
        }
    }
    f.mode = mode;
    if (mode == WALK_ALL && n->pb_ok) { /* dag-pb, decoded already */
        if (n->pb.n_links && !(f.kids = ia_malloc_array(n->pb.n_links, sizeof *f.kids)))
            return IA_ENOMEM;
        for (size_t i = 0; i < n->pb.n_links; i++)
            f.kids[f.n++] = n->pb.links[i].cid;
    } else if (mode == WALK_ALL) {
        st = ia_block_links(&n->cid, n->data, n->len, &f.kids, &f.n);
    } else if (mode == WALK_FILE) {
        if (n->cid.codec == IA_CODEC_RAW)
            return IA_OK;
        st = file_kids(s, n, start, &f);
    } else { /* WALK_HAMT: child shards only */
        int bits;
        size_t pad = n->fs_ok && n->fs.type == IA_UNIXFS_HAMT_SHARD ? hamt_pad(n, &bits) : 0;
        if (!pad)
            return ia_error_set(IA_EPARSE, "a HAMT link leads to something not a shard");
        if (n->pb.n_links && !(f.kids = ia_malloc_array(n->pb.n_links, sizeof *f.kids)))
            return IA_ENOMEM;
        for (size_t i = 0; i < n->pb.n_links; i++)
            if (n->pb.links[i].name_len == pad)
                f.kids[f.n++] = n->pb.links[i].cid;
    }
    if (st) {
        frame_free(&f);
        return st;
    }
    return push_frame(s, &f);
}

/* A section's head (varint length of CID + block, then the CID) into out
 * (IA_VARINT_MAX_BYTES + IA_CID_MAX_BYTES); returns its length. */
static size_t section_head(const ia_cid *cid, uint64_t block_len, uint8_t *out) {
    uint8_t bin[IA_CID_MAX_BYTES];
    size_t cid_len = ia_cid_encode(cid, bin);
    size_t n = ia_varint_encode((uint64_t)cid_len + block_len, out);
    memcpy(out + n, bin, cid_len);
    return n + cid_len;
}

/* Chooses the next block of the walk and opens it into *p, or sets
 * finished. Blocks come from the store: files are trusted as the store
 * trusts them, references and hash-on-read blocks verified. */
static ia_status pick_next(car_stream *s, pick *p) {
    for (;;) {
        memset(p, 0, sizeof *p);
        p->blk.fd = -1;
        p->mode = WALK_ALL;
        if (s->path_i < s->path_blocks.n) {
            p->cid = s->path_blocks.v[s->path_i++];
            p->is_path = true;
        } else if (!s->terminal_done) {
            p->cid = s->terminal;
            s->terminal_done = true;
            p->is_terminal = true;
        } else {
            while (s->depth > 0 && s->stack[s->depth - 1].i == s->stack[s->depth - 1].n)
                frame_free(&s->stack[--s->depth]);
            if (s->depth == 0) {
                s->finished = true;
                return IA_OK;
            }
            walk_frame *f = &s->stack[s->depth - 1];
            p->cid = f->kids[f->i];
            p->mode = f->mode;
            p->start = f->starts ? f->starts[f->i] : 0;
            f->i++;
        }
        if (s->seen) {
            int added = ia_mh_set_add(s->seen, &p->cid);
            if (added < 0)
                return IA_ENOMEM;
            if (added == 0 && !p->is_terminal)
                continue; /* sent already, and so was everything below it */
        }
        return ia_bs_block_open(s->bs, &p->cid, &p->blk);
    }
}

/* Decodes the picked block's bytes (data, where they now lie) and queues
 * what follows it in the walk. */
static ia_status visit(car_stream *s, const pick *p, uint8_t *data, size_t len) {
    gw_node n = {.cid = p->cid, .data = data, .len = len};
    ia_status st = node_decode(&n);
    if (st == IA_OK && !p->is_path)
        st = expand(s, &n, p->mode, p->start, p->is_terminal);
    n.data = NULL; /* borrowed */
    node_clear(&n);
    return st;
}

/* Writes the picked block file's whole section into dst (which has room)
 * and walks on from its bytes there: the block's only copy in user space. */
static ia_status place(car_stream *s, pick *p, uint8_t *dst, size_t *used) {
    size_t h = section_head(&p->cid, p->blk.size, dst), len = (size_t)p->blk.size;
    ia_status st = ia_bs_block_pread(&p->blk, 0, dst + h, len);
    if (st == IA_OK)
        st = visit(s, p, dst + h, len);
    ia_bs_block_close(&p->blk);
    if (st)
        return st;
    s->n_blocks++;
    *used = h + len;
    return IA_OK;
}

/* Queues the picked block as head + body for car_read to copy out: blocks
 * in memory (references, identity) and files too large for one buffer. */
static ia_status stage(car_stream *s, pick *p) {
    ia_status st = ia_bs_block_load(&p->blk);
    if (st == IA_OK)
        st = visit(s, p, p->blk.data, (size_t)p->blk.size);
    if (st || p->cid.mh_code == IA_MH_IDENTITY) { /* never sent (the spec), but walked */
        ia_bs_block_close(&p->blk);
        return st;
    }
    s->head_len = section_head(&p->cid, p->blk.size, s->head);
    s->head_pos = 0;
    ia_bs_block_close(&s->body);
    s->body = p->blk;
    s->body_pos = 0;
    p->blk = (ia_bs_block){.fd = -1};
    s->n_blocks++;
    return IA_OK;
}

/* ---- direct sending: leaves from the page cache to the socket ----------------------------- */

/* Whether the picked block may skip user space: a block file of a leaf, seen
 * from its first bytes. A raw block has no links; a dag-pb block whose
 * first field is Data running to its very end has none either (dag-pb puts
 * Links before Data), which is all a dag-scope=all walk reads from it. The
 * terminal and path blocks, file walks of dag-pb (they read UnixFS
 * blocksizes) and HAMT walks keep decoding the block. */
static bool direct_ok(const car_stream *s, const pick *p) {
    if (s->sock < 0 || p->blk.fd < 0 || p->blk.size < DIRECT_MIN || p->is_path || p->is_terminal)
        return false;
    if (p->cid.codec == IA_CODEC_RAW)
        return p->mode == WALK_ALL || p->mode == WALK_FILE;
    if (p->cid.codec != IA_CODEC_DAG_PB || p->mode != WALK_ALL)
        return false;
    uint8_t pre[1 + IA_VARINT_MAX_BYTES];
    size_t pos = 1;
    uint64_t data_len;
    if (ia_bs_block_pread(&p->blk, 0, pre, sizeof pre) != IA_OK || pre[0] != 0x0a)
        return false;
    if (ia_pb_read_varint(pre, sizeof pre, &pos, &data_len, "dag-pb node") != IA_OK) {
        ia_error_clear();
        return false;
    }
    return data_len == p->blk.size - pos;
}

/* Waits until the socket takes more bytes; IA_EIO after timeout_ms. */
static ia_status sock_wait(const car_stream *s) {
    struct pollfd pfd = {.fd = s->sock, .events = POLLOUT};
    for (;;) {
        int rc = poll(&pfd, 1, s->timeout_ms);
        if (rc > 0)
            return IA_OK;
        if (rc == 0)
            return ia_error_set(IA_EIO, "the client took nothing for %d s", s->timeout_ms / 1000);
        if (errno != EINTR)
            return ia_error_set(IA_EIO, "poll on the client's socket: %s", strerror(errno));
    }
}

/* A failed write: a client that hung up is no news worth a warning. */
static ia_status sock_error(car_stream *s) {
    s->client_gone = errno == EPIPE || errno == ECONNRESET;
    return ia_error_set(IA_EIO, "sending to the client: %s", strerror(errno));
}

static ia_status sock_send(car_stream *s, const char *p, size_t n) {
    while (n > 0) {
        ssize_t k = send(s->sock, p, n, MSG_NOSIGNAL | MSG_MORE);
        if (k > 0) {
            p += k, n -= (size_t)k;
        } else if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ia_status st = sock_wait(s);
            if (st)
                return st;
        } else if (k < 0 && errno != EINTR) {
            return sock_error(s);
        }
    }
    return IA_OK;
}

static ia_status sock_sendfile(car_stream *s, int fd, uint64_t size) {
    off_t off = 0;
    while ((uint64_t)off < size) {
        ssize_t k = sendfile(s->sock, fd, &off, (size_t)(size - (uint64_t)off));
        if (k == 0)
            return ia_error_set(IA_EIO, "a block file shrank while being sent");
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ia_status st = sock_wait(s);
            if (st)
                return st;
        } else if (k < 0 && errno != EINTR) {
            return sock_error(s);
        }
    }
    return IA_OK;
}

/* Sends leaves to the socket ourselves: s->direct's bytes (its section head
 * ended libmicrohttpd's last buffer), then every following leaf of the walk
 * that direct_ok allows, head and bytes, for up to DIRECT_RUN_MAX bytes or
 * DIRECT_RUN_NS (libmicrohttpd counts a connection idle from its own
 * last send, so a slow client must see it often enough); each
 * leaf is one HTTP chunk of its own when the response is chunked. The first
 * block the walk gives that is not such a leaf stays in s->held for
 * car_read. libmicrohttpd asks for the next buffer only once it has sent
 * everything before it, so the bytes land in order; sendfile hands the page
 * cache's pages to the socket, so no copy is made here, and per leaf there
 * is one small send and one sendfile. SIGPIPE (a client gone) is blocked in
 * this thread meanwhile and taken back if it was raised. */
static ia_status send_direct(car_stream *s) {
    char pre[2 + 24 + SECTION_HEAD_MAX];
    int n = s->chunked ? snprintf(pre, sizeof pre, "%" PRIx64 "\r\n", s->direct.size) : 0;
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ia_status st = sock_send(s, pre, (size_t)n);
    if (st == IA_OK)
        st = sock_sendfile(s, s->direct.fd, s->direct.size);
    uint64_t sent = s->direct.size;
    ia_bs_block_close(&s->direct);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (st == IA_OK && sent < DIRECT_RUN_MAX) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - t0.tv_sec) * 1000000000LL + (now.tv_nsec - t0.tv_nsec) > DIRECT_RUN_NS)
            break;
        if (!s->has_held) {
            if ((st = pick_next(s, &s->held)) || s->finished) {
                ia_bs_block_close(&s->held.blk);
                break;
            }
            s->has_held = true;
        }
        pick *p = &s->held;
        if (!direct_ok(s, p))
            break;
        uint8_t head[SECTION_HEAD_MAX];
        size_t h = section_head(&p->cid, p->blk.size, head);
        n = s->chunked ? snprintf(pre, sizeof pre, "\r\n%" PRIx64 "\r\n", (uint64_t)h + p->blk.size)
                       : 0;
        memcpy(pre + n, head, h);
        st = sock_send(s, pre, (size_t)n + h);
        if (st == IA_OK)
            st = sock_sendfile(s, p->blk.fd, p->blk.size);
        sent += p->blk.size;
        ia_bs_block_close(&p->blk);
        s->has_held = false;
        s->n_blocks++;
    }
    if (st == IA_OK && s->chunked)
        st = sock_send(s, "\r\n", 2);
    if (st && !was_pending) {
        struct timespec zero = {0, 0};
        sigpending(&pending);
        if (sigismember(&pending, SIGPIPE))
            sigtimedwait(&pipe_set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return st;
}

/* Fills libmicrohttpd's buffer with the next sections. A block file whose
 * section fits in the room left is read straight into it; one that does not
 * ends this buffer early and starts the next, so that each block is read
 * once, into the buffer that is sent. With direct sending, a leaf's section
 * head ends the buffer and its bytes (and the leaves after it) go to the
 * socket at the next call, before that call's buffer. */
static ssize_t car_read(void *cls, uint64_t pos, char *buf, size_t max) {
    car_stream *s = cls;
    uint8_t *dst = (uint8_t *)buf;
    size_t out = 0;
    ia_status st = IA_OK;
    if (s->has_direct) {
        s->has_direct = false;
        st = send_direct(s);
    }
    while (st == IA_OK && out < max) {
        if (s->head_pos < s->head_len) {
            size_t k = s->head_len - s->head_pos;
            k = k < max - out ? k : max - out;
            memcpy(dst + out, s->head + s->head_pos, k);
            s->head_pos += k, out += k;
            continue;
        }
        if (s->body_pos < s->body.size) {
            uint64_t left = s->body.size - s->body_pos;
            size_t k = left < max - out ? (size_t)left : max - out;
            if ((st = ia_bs_block_pread(&s->body, s->body_pos, dst + out, k)))
                break;
            s->body_pos += k, out += k;
            if (s->body_pos == s->body.size)
                ia_bs_block_close(&s->body);
            continue;
        }
        if (s->finished)
            break;
        if (!s->has_held) {
            if ((st = pick_next(s, &s->held)) || s->finished) {
                ia_bs_block_close(&s->held.blk);
                break;
            }
            s->has_held = true;
        }
        pick *p = &s->held;
        if (direct_ok(s, p) && SECTION_HEAD_MAX <= max - out) {
            out += section_head(&p->cid, p->blk.size, dst + out);
            s->direct = p->blk;
            s->has_direct = true;
            s->has_held = false;
            s->n_blocks++;
            break;
        }
        if (p->blk.fd >= 0) {
            uint64_t need = SECTION_HEAD_MAX + p->blk.size;
            if (need <= max - out) {
                size_t used = 0;
                s->has_held = false;
                if ((st = place(s, p, dst + out, &used)))
                    break;
                out += used;
                continue;
            }
            if (out > 0)
                break; /* the next buffer starts with it */
        }
        s->has_held = false;
        if ((st = stage(s, p)))
            break;
    }
    if (st) {
        ia_log(s->client_gone ? IA_LOG_DEBUG : IA_LOG_WARN,
               "gateway: CAR stream for %s cut after %llu blocks: %s", s->label,
               (unsigned long long)s->n_blocks, ia_error_message());
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (out == 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    return (ssize_t)out;
}

/* The CAR header {roots: [root], version: 1} as dag-cbor, with its varint length. */
static size_t car_header(const ia_cid *root, uint8_t *out) {
    uint8_t bin[IA_CID_MAX_BYTES], body[IA_CID_MAX_BYTES + 32];
    size_t len = ia_cid_encode(root, bin), n = 0;
    body[n++] = 0xa2; /* map(2) */
    body[n++] = 0x65; /* text(5) */
    memcpy(body + n, "roots", 5), n += 5;
    body[n++] = 0x81;                   /* array(1) */
    body[n++] = 0xd8, body[n++] = 0x2a; /* tag(42) */
    size_t blen = len + 1;              /* bytes(0x00 + CID) */
    if (blen < 24) {
        body[n++] = (uint8_t)(0x40 | blen);
    } else if (blen < 256) {
        body[n++] = 0x58, body[n++] = (uint8_t)blen;
    } else {
        body[n++] = 0x59, body[n++] = (uint8_t)(blen >> 8), body[n++] = (uint8_t)blen;
    }
    body[n++] = 0x00;
    memcpy(body + n, bin, len), n += len;
    body[n++] = 0x67; /* text(7) */
    memcpy(body + n, "version", 7), n += 7;
    body[n++] = 0x01;
    size_t h = ia_varint_encode(n, out);
    memcpy(out + h, body, n);
    return h + n;
}

/* ---- responses ---------------------------------------------------------------------------- */

static const char *reason_phrase(int status) {
    switch (status) {
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 412:
        return "Precondition Failed";
    case 501:
        return "Not Implemented";
    default:
        return status >= 500 ? "Internal Server Error" : "Error";
    }
}

static void log_request(const char *method, const char *url, int status, const char *what) {
    ia_log(IA_LOG_DEBUG, "gateway: %s %s -> %d %s", method, url, status, what);
}

static int send_error(struct MHD_Connection *conn, const char *method, const char *url, int status,
                      const char *why) {
    char body[1200];
    int n = snprintf(body, sizeof body, "%d %s: %s\n", status, reason_phrase(status), why);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof body)
        n = (int)sizeof body - 1;
    struct MHD_Response *r =
        MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (status == 405)
        MHD_add_response_header(r, "Allow", "GET, HEAD");
    log_request(method, url, status, why);
    int ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

/* FNV-1a over a string, for CAR Etags. */
static uint64_t fnv1a(uint64_t h, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    return h;
}

static bool etag_matches(struct MHD_Connection *conn, const char *etag) {
    const char *inm = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "If-None-Match");
    if (!inm)
        return false;
    if (strcmp(inm, "*") == 0)
        return true;
    size_t n = strlen(etag);
    for (const char *p = strstr(inm, etag); p; p = strstr(p + 1, etag)) {
        char after = p[n];
        if (after == 0 || after == ',' || after == ' ')
            return true;
    }
    return false;
}

/* Percent-encodes a path for Content-Location (keeps '/' and unreserved). */
static void url_escape(const char *in, char *out, size_t cap) {
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < cap; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~/", *p)) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%', out[o++] = hex[*p >> 4], out[o++] = hex[*p & 15];
        }
    }
    out[o] = 0;
}

static void add_common(struct MHD_Response *r, const char *cid_text, const char *url,
                       const resolved *res) {
    MHD_add_response_header(r, "Cache-Control", CACHE_IMMUTABLE);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Vary", "Accept");
    char esc[4096];
    url_escape(url, esc, sizeof esc);
    MHD_add_response_header(r, "X-Ipfs-Path", esc);
    if (res && res->roots.n) {
        size_t cap = res->roots.n * (IA_CID_MAX_STRING + 1) + 1, o = 0;
        char *roots = malloc(cap);
        for (size_t i = 0; roots && i < res->roots.n; i++) {
            char t[IA_CID_MAX_STRING];
            if (ia_cid_format(&res->roots.v[i], IA_BASE32, t, sizeof t))
                continue;
            o += (size_t)snprintf(roots + o, cap - o, "%s%s", o ? "," : "", t);
        }
        if (roots)
            MHD_add_response_header(r, "X-Ipfs-Roots", roots);
        free(roots);
    } else {
        MHD_add_response_header(r, "X-Ipfs-Roots", cid_text);
    }
}

/* Content-Location for a format negotiated by Accept: the same URL with ?format. */
static void add_content_location(struct MHD_Response *r, const char *url, const char *format,
                                 const ia_gw_inputs *in) {
    char esc[4096], loc[4600];
    url_escape(url, esc, sizeof esc);
    int n = snprintf(loc, sizeof loc, "%s?format=%s", esc, format);
    if (in->dag_scope && n > 0 && (size_t)n < sizeof loc)
        n += snprintf(loc + n, sizeof loc - (size_t)n, "&dag-scope=%s", in->dag_scope);
    if (in->entity_bytes && n > 0 && (size_t)n < sizeof loc)
        snprintf(loc + n, sizeof loc - (size_t)n, "&entity-bytes=%s", in->entity_bytes);
    MHD_add_response_header(r, "Content-Location", loc);
}

static ssize_t never_read(void *cls, uint64_t pos, char *buf, size_t max) {
    return MHD_CONTENT_READER_END_WITH_ERROR; /* HEAD: MHD sends no body */
}

static int queue(struct MHD_Connection *conn, struct MHD_Response *r, int status,
                 const char *method, const char *url, const char *what) {
    log_request(method, url, status, what);
    int ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static int serve_raw(ia_gateway *gw, struct MHD_Connection *conn, const char *method,
                     const char *url, const ia_gw_request *req, const ia_gw_inputs *in,
                     bool only_if_cached) {
    char text[IA_CID_MAX_STRING], etag[IA_CID_MAX_STRING + 16], disp[IA_CID_MAX_STRING + 48];
    ia_cid_format(&req->cid, IA_BASE32, text, sizeof text);
    bool head = strcmp(method, "HEAD") == 0;
    ia_bs_block blk = {.fd = -1};
    uint64_t size = 0;
    /* A block file goes out as a file response (libmicrohttpd reads it, or
     * sendfile()s it, itself); references come verified, in memory. */
    ia_status st = head ? ia_blockstore_size(gw->bs, &req->cid, &size)
                        : ia_bs_block_open(gw->bs, &req->cid, &blk);
    if (st == IA_OK && blk.fd >= 0 && blk.size == 0)
        st = ia_bs_block_load(&blk);
    if (st == IA_ENOTFOUND)
        return send_error(conn, method, url, only_if_cached ? 412 : 404, ia_error_message());
    if (st)
        return send_error(conn, method, url, 500, ia_error_message());
    snprintf(etag, sizeof etag, "\"%s.raw\"", text);
    struct MHD_Response *r;
    int status = 200;
    if (etag_matches(conn, etag)) {
        ia_bs_block_close(&blk);
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        status = 304;
    } else if (head) {
        r = MHD_create_response_from_callback(size, 4096, never_read, NULL, NULL);
    } else if (blk.fd >= 0) {
        r = MHD_create_response_from_fd(blk.size, blk.fd); /* owns fd */
        if (r)
            blk.fd = -1;
        ia_bs_block_close(&blk);
    } else {
        r = MHD_create_response_from_buffer((size_t)blk.size, blk.data, MHD_RESPMEM_MUST_FREE);
        if (r)
            blk.data = NULL;
        ia_bs_block_close(&blk);
    }
    if (!r)
        return MHD_NO;
    snprintf(disp, sizeof disp, "attachment; filename=\"%s.bin\"", text);
    MHD_add_response_header(r, "Content-Type", CT_RAW);
    MHD_add_response_header(r, "Content-Disposition", disp);
    MHD_add_response_header(r, "Etag", etag);
    add_common(r, text, url, NULL);
    if (req->format_from_accept)
        add_content_location(r, url, "raw", in);
    return queue(conn, r, status, method, url, "raw");
}

/* Turns entity-bytes into [lo, hi) over a file of `size` bytes. Returns 200,
 * 400 when the range lies wholly past the end, or 0 for "zero-length: the
 * terminal block only". */
static int resolve_range(const ia_gw_request *req, uint64_t size, uint64_t *lo, uint64_t *hi,
                         char *why, size_t cap) {
    int64_t from = req->range_from, to = req->range_to;
    uint64_t a, b; /* [a, b) */
    if (from >= 0)
        a = (uint64_t)from;
    else
        a = (uint64_t)(-from) >= size ? 0 : size - (uint64_t)(-from);
    if (req->range_to_end)
        b = size;
    else if (to >= 0)
        b = (uint64_t)to >= size ? size : (uint64_t)to + 1;
    else
        b = (uint64_t)(-to) > size ? 0 : size - (uint64_t)(-to) + 1;
    if (from >= 0 && size > 0 && a >= size)
        return fail_with(why, cap, 400,
                         "entity-bytes: byte %lld is past the end of a %llu-byte "
                         "file",
                         (long long)from, (unsigned long long)size);
    if (b <= a)
        return 0;
    *lo = a;
    *hi = b;
    return 200;
}

static int serve_car(ia_gateway *gw, struct MHD_Connection *conn, const char *method,
                     const char *url, const ia_gw_request *req, const ia_gw_inputs *in,
                     bool only_if_cached, const char *version) {
    char why[1024], text[IA_CID_MAX_STRING], etag[IA_CID_MAX_STRING + 48];
    char disp[IA_CID_MAX_STRING + 48];
    ia_cid_format(&req->cid, IA_BASE32, text, sizeof text);
    bool head = strcmp(method, "HEAD") == 0;
    if (!ia_blockstore_has(gw->bs, &req->cid))
        return send_error(conn, method, url, only_if_cached ? 412 : 404,
                          "the root block is not in this gateway's store");
    resolved res;
    int status = resolve_path(gw->bs, &req->cid, req->path, &res, why, sizeof why);
    if (status != 200) {
        resolved_free(&res);
        return send_error(conn, method, url, status, why);
    }
    car_stream *s = NULL;
    struct MHD_Response *r = NULL;
    ia_gw_scope scope = req->scope;
    uint64_t lo = 0, hi = UINT64_MAX;
    if (!ia_blockstore_has(gw->bs, &res.terminal)) {
        resolved_free(&res);
        return send_error(conn, method, url, 404, "the path's last block is not in this store");
    }
    if (req->has_range && scope == IA_GW_SCOPE_ENTITY) {
        ia_unixfs_info info;
        if (ia_unixfs_stat(gw->bs, &res.terminal, &info) == IA_OK &&
            (info.type == IA_UNIXFS_FILE || info.type == IA_UNIXFS_RAW)) {
            int rs = resolve_range(req, info.size, &lo, &hi, why, sizeof why);
            if (rs == 400) {
                resolved_free(&res);
                return send_error(conn, method, url, 400, why);
            }
            if (rs == 0)
                scope = IA_GW_SCOPE_BLOCK;
        } /* not a byte array: entity-bytes is ignored */
    }
    /* Etag: the root CID, then a hash of everything that shapes the body. */
    char shape[1400];
    int sn = snprintf(shape, sizeof shape, "%s|%d|%" PRIu64 "-%" PRIu64 "|%d", req->path,
                      (int)scope, lo, hi, (int)req->dups);
    uint64_t h = fnv1a(0xcbf29ce484222325ull, shape, sn > 0 ? (size_t)sn : 0);
    snprintf(etag, sizeof etag, "\"%s.car.%016" PRIx64 "\"", text, h);
    if (etag_matches(conn, etag)) {
        status = 304;
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    } else if (head) {
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, never_read, NULL, NULL);
    } else {
        if (!(s = ia_calloc(1, sizeof *s)))
            goto oom;
        s->bs = gw->bs;
        s->body.fd = -1;
        s->sock = -1;
        /* Direct sending needs to know the framing libmicrohttpd uses:
         * chunks for HTTP/1.1, none (the end is the close) for 1.0. */
        bool v11 = version && strcmp(version, MHD_HTTP_VERSION_1_1) == 0;
        if (gw->direct && (v11 || (version && strcmp(version, MHD_HTTP_VERSION_1_0) == 0))) {
            const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
            s->sock = ci ? ci->connect_fd : -1;
            s->chunked = v11;
            s->timeout_ms = (int)gw->opts.timeout_s * 1000;
        }
        s->path_blocks = res.blocks;
        res.blocks = (cid_list){0};
        s->terminal = res.terminal;
        s->scope = scope;
        s->lo = lo;
        s->hi = hi;
        snprintf(s->label, sizeof s->label, "%s", text);
        s->head_cap = IA_VARINT_MAX_BYTES + IA_CID_MAX_BYTES + 64;
        if (!(s->head = ia_malloc(s->head_cap)) || (!req->dups && !(s->seen = ia_mh_set_create())))
            goto oom;
        s->head_len = car_header(&req->cid, s->head);
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, gw->opts.stream_buffer, car_read, s,
                                              car_stream_free);
        if (!r)
            goto oom;
    }
    if (!r)
        goto oom;
    snprintf(disp, sizeof disp, "attachment; filename=\"%s.car\"", text);
    MHD_add_response_header(r, "Content-Type",
                            req->dups ? CT_CAR "; version=1; order=dfs; dups=y"
                                      : CT_CAR "; version=1; order=dfs; dups=n");
    MHD_add_response_header(r, "Content-Disposition", disp);
    MHD_add_response_header(r, "Etag", etag);
    MHD_add_response_header(r, "Accept-Ranges", "none");
    add_common(r, text, url, &res);
    if (req->format_from_accept)
        add_content_location(r, url, "car", in);
    resolved_free(&res);
    return queue(conn, r, status, method, url, "car");
oom:
    if (!r)
        car_stream_free(s);
    resolved_free(&res);
    return send_error(conn, method, url, 500, "out of memory");
}

/* ---- deserialized files (optional) ---------------------------------------------------------- */

typedef struct file_stream {
    ia_blockstore *bs;
    ia_cid cid;
    char *buf;
    size_t len, cap;
} file_stream;

static ia_status file_sink(void *ctx, const void *data, size_t len) {
    file_stream *f = ctx;
    size_t k = len < f->cap - f->len ? len : f->cap - f->len;
    memcpy(f->buf + f->len, data, k);
    f->len += k;
    return IA_OK;
}

/* Each read re-walks the file tree from its root to `pos`: a few small
 * interior blocks per call, cheap against the leaves it copies. */
static ssize_t file_read(void *cls, uint64_t pos, char *buf, size_t max) {
    file_stream *f = cls;
    f->buf = buf, f->len = 0, f->cap = max;
    if (ia_unixfs_cat(f->bs, &f->cid, pos, max, file_sink, f) != IA_OK) {
        ia_log(IA_LOG_WARN, "gateway: file stream cut: %s", ia_error_message());
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    return f->len ? (ssize_t)f->len : MHD_CONTENT_READER_END_OF_STREAM;
}

static int serve_file(ia_gateway *gw, struct MHD_Connection *conn, const char *method,
                      const char *url, const ia_gw_request *req) {
    char why[1024], text[IA_CID_MAX_STRING], etag[IA_CID_MAX_STRING + 4];
    resolved res;
    if (!ia_blockstore_has(gw->bs, &req->cid))
        return send_error(conn, method, url, 404, "the root block is not in this gateway's store");
    int status = resolve_path(gw->bs, &req->cid, req->path, &res, why, sizeof why);
    if (status != 200) {
        resolved_free(&res);
        return send_error(conn, method, url, status, why);
    }
    ia_unixfs_info info;
    ia_status st = ia_unixfs_stat(gw->bs, &res.terminal, &info);
    if (st || (info.type != IA_UNIXFS_FILE && info.type != IA_UNIXFS_RAW)) {
        resolved_free(&res);
        return send_error(conn, method, url, st == IA_ENOTFOUND ? 404 : 406,
                          st ? ia_error_message()
                             : "only UnixFS files are served deserialized; ask for ?format=car");
    }
    ia_cid_format(&res.terminal, IA_BASE32, text, sizeof text);
    snprintf(etag, sizeof etag, "\"%s\"", text);
    struct MHD_Response *r;
    file_stream *f = NULL;
    if (etag_matches(conn, etag)) {
        status = 304;
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    } else if (strcmp(method, "HEAD") == 0) {
        r = MHD_create_response_from_callback(info.size, 4096, never_read, NULL, NULL);
    } else {
        if (!(f = ia_calloc(1, sizeof *f))) {
            resolved_free(&res);
            return send_error(conn, method, url, 500, "out of memory");
        }
        f->bs = gw->bs;
        f->cid = res.terminal;
        r = MHD_create_response_from_callback(info.size, gw->opts.stream_buffer, file_read, f,
                                              free);
        if (!r)
            free(f);
    }
    if (!r) {
        resolved_free(&res);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/octet-stream");
    MHD_add_response_header(r, "Etag", etag);
    add_common(r, text, url, &res);
    resolved_free(&res);
    return queue(conn, r, status, method, url, "file");
}

/* ---- the handler and the daemon -------------------------------------------------------------- */

/* Answers one request; version is the request's HTTP version when the
 * connection is the gateway's own (direct sending allowed), else NULL. */
static int handle(ia_gateway *gw, struct MHD_Connection *conn, const char *url, const char *method,
                  const char *version) {
    char why[1024];
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return send_error(conn, method, url, 405, "only GET and HEAD are served");
    ia_gw_inputs in = {
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Accept"),
        MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "format"),
        MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "dag-scope"),
        MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "entity-bytes"),
        MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "car-version"),
        MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "car-order"),
        MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "car-dups"),
    };
    ia_gw_request req;
    int status = ia_gateway_parse_request(url, &in, &req, why, sizeof why);
    if (status != 200)
        return send_error(conn, method, url, status, why);
    const char *cc = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Cache-Control");
    bool only_if_cached = cc && strstr(cc, "only-if-cached");
    ia_error_clear();
    switch (req.format) {
    case IA_GW_FORMAT_RAW:
        return serve_raw(gw, conn, method, url, &req, &in, only_if_cached);
    case IA_GW_FORMAT_CAR:
        return serve_car(gw, conn, method, url, &req, &in, only_if_cached, version);
    default:
        break;
    }
    if (gw->opts.deserialized)
        return serve_file(gw, conn, method, url, &req);
    if (!in.accept || !*in.accept)
        return send_error(conn, method, url, 400,
                          "this is a trustless gateway: ask for ?format=raw or ?format=car "
                          "(or send Accept: " CT_RAW " or " CT_CAR ")");
    return send_error(conn, method, url, 406,
                      "deserialized responses are not served; ask for ?format=raw or "
                      "?format=car");
}

int ia_gateway_handle(ia_gateway *gw, struct MHD_Connection *conn, const char *url,
                      const char *method) {
    return handle(gw, conn, url, method, NULL);
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_size,
                                      void **con_cls) {
    /* Answering on the first call (headers only) makes MHD close the
     * connection afterwards; on the second it keeps it alive. */
    static int marker;
    if (*con_cls == NULL) {
        *con_cls = &marker;
        return MHD_YES;
    }
    ia_gateway *gw = cls;
    return handle(gw, conn, url, method, gw->direct ? version : NULL) == MHD_YES ? MHD_YES : MHD_NO;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    if (ia_log_get_level() < IA_LOG_INFO)
        return;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = 0;
    ia_log(IA_LOG_INFO, "gateway (libmicrohttpd): %s", msg);
}

/* Splits "HOST:PORT", "[V6]:PORT" or "PORT" and resolves it. */
static ia_status listen_addr(const char *listen, struct sockaddr_storage *ss, socklen_t *len) {
    char host[256] = "127.0.0.1", port[16];
    const char *colon = strrchr(listen, ':');
    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (!close || close[1] != ':' || (size_t)(close - listen - 1) >= sizeof host)
            return ia_error_set(IA_EINVAL, "--listen '%s': expected [ADDRESS]:PORT", listen);
        snprintf(host, sizeof host, "%.*s", (int)(close - listen - 1), listen + 1);
        colon = close + 1;
    } else if (colon) {
        if ((size_t)(colon - listen) >= sizeof host)
            return ia_error_set(IA_EINVAL, "--listen '%s': host name too long", listen);
        if (colon > listen)
            snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
    }
    const char *p = colon ? colon + 1 : listen;
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (!*p || *end || v < 0 || v > 65535 || errno)
        return ia_error_set(IA_EINVAL, "--listen '%s': port must be a number from 0 to 65535",
                            listen);
    snprintf(port, sizeof port, "%ld", v);
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0 || !ai)
        return ia_error_set(IA_EINVAL, "--listen '%s': cannot resolve '%s': %s", listen, host,
                            gai_strerror(rc));
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return IA_OK;
}

/* Whether this libmicrohttpd is one whose send order direct sending was
 * checked against (0.9.7x). */
static bool mhd_direct_ok(void) {
    const char *v = MHD_get_version();
    return v && strncmp(v, "0.9.7", 5) == 0 && v[5] >= '0' && v[5] <= '9' && v[6] == '\0';
}

ia_status ia_gateway_start(ia_blockstore *bs, const char *listen, const ia_gateway_options *opts,
                           ia_gateway **out) {
    *out = NULL;
    ia_gateway *gw = ia_calloc(1, sizeof *gw);
    if (!gw)
        return IA_ENOMEM;
    gw->bs = bs;
    gw->opts = opts ? *opts : ia_gateway_options_default();
    ia_gateway_options d = ia_gateway_options_default();
    if (!gw->opts.max_connections)
        gw->opts.max_connections = d.max_connections;
    if (!gw->opts.timeout_s)
        gw->opts.timeout_s = d.timeout_s;
    if (!gw->opts.stream_buffer)
        gw->opts.stream_buffer = d.stream_buffer;
    if (!listen) {
        *out = gw;
        return IA_OK;
    }
    struct sockaddr_storage ss;
    socklen_t slen;
    ia_status st = listen_addr(listen, &ss, &slen);
    if (st) {
        free(gw);
        return st;
    }
    /* Connection threads share the store's SQLite handle. */
    /* ITC: a pipe that wakes the polling thread when the daemon stops. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC;
    if (sqlite3_threadsafe() == 1)
        flags |= MHD_USE_THREAD_PER_CONNECTION;
    /* Blocking in a callback stalls only its own connection's thread. Direct
     * sending relies on libmicrohttpd calling a content reader only once it
     * has sent everything before (read in 0.9.75's source, Debian 12's, and
     * tested byte for byte by ipfs/gateway_stream): other versions get the
     * copy-free read path alone. */
    gw->direct = (flags & MHD_USE_THREAD_PER_CONNECTION) != 0 && mhd_direct_ok();
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* The pool holds headers and the stream buffer MHD reads responses into. */
    size_t pool = gw->opts.stream_buffer + (64 << 10);
    gw->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, access_handler, gw, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool,
        MHD_OPTION_CONNECTION_LIMIT, gw->opts.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        gw->opts.timeout_s, MHD_OPTION_END);
    if (!gw->daemon) {
        free(gw);
        return ia_error_set(IA_EIO,
                            "gateway: cannot listen on %s (address in use, or not "
                            "this machine's?)",
                            listen);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(gw->daemon, MHD_DAEMON_INFO_BIND_PORT);
    gw->port = info ? info->port : 0;
    *out = gw;
    return IA_OK;
}

uint16_t ia_gateway_port(const ia_gateway *gw) { return gw ? gw->port : 0; }

void ia_gateway_stop(ia_gateway *gw) {
    if (!gw)
        return;
    if (gw->daemon)
        MHD_stop_daemon(gw->daemon);
    free(gw);
}
