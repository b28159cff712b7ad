/*
 * The exporter: reads UnixFS DAGs back out of the blockstore (cat, ls, get)
 * and resolves CID/paths through directories.
 *
 * A file is a raw leaf, or a dag-pb node whose UnixFS Data says File (or
 * Raw) and holds some bytes inline followed by children, one per link, whose
 * sizes the node lists in `blocksizes`. cat walks that tree depth first and
 * skips whole subtrees outside the requested byte range using those sizes,
 * so reading a range of a 10 GB model touches only the blocks it overlaps,
 * and memory is one block per level of the tree. A child whose real size
 * differs from what its parent claims is an error, never silently wrong
 * output.
 *
 * Directories are plain (links named after the entries) or HAMT-sharded
 * (hamt.c builds them): each shard's link names start with the slot in
 * upper-case hex; a name that is only the slot is a child shard, a longer
 * one is an entry. Lookups hash the name with murmur3-x64-64 and follow the
 * slots; listings walk every shard in link order. get writes trees to disk
 * and refuses entry names that could escape the target folder.
 */
#include "ia/ipfs.h"
#include "ipfs/ipfs_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_MAX_DEPTH 64
#define HAMT_MAX_FANOUT 4096

/* A block decoded as far as UnixFS: raw leaves have type IA_UNIXFS_RAW and
 * no pb node. */
typedef struct node {
    ia_cid cid;
    uint8_t *block;
    size_t len;
    bool is_raw; /* raw codec leaf */
    ia_pb_node pb;
    ia_unixfs fs;
    char text[IA_CID_MAX_STRING];
} node;

static void node_free(node *n) {
    if (!n->is_raw && n->block) {
        ia_pb_node_free(&n->pb);
        ia_unixfs_free(&n->fs);
    }
    free(n->block);
    n->block = NULL;
}

static ia_status node_load(ia_blockstore *bs, const ia_cid *cid, node *n) {
    memset(n, 0, sizeof *n);
    n->cid = *cid;
    if (ia_cid_format(cid, IA_BASE32, n->text, sizeof n->text))
        snprintf(n->text, sizeof n->text, "<CID>");
    ia_status st = ia_blockstore_get(bs, cid, &n->block, &n->len);
    if (st)
        return st;
    if (cid->codec == IA_CODEC_RAW) {
        n->is_raw = true;
        n->fs.type = IA_UNIXFS_RAW;
        n->fs.data = n->block;
        n->fs.data_len = n->len;
        return IA_OK;
    }
    if (cid->codec != IA_CODEC_DAG_PB) {
        const char *name = ia_codec_name(cid->codec);
        st = ia_error_set(IA_EUNSUPPORTED, "%s: codec %s is not UnixFS (dag-pb or raw)", n->text,
                          name ? name : "unknown");
        goto fail;
    }
    if ((st = ia_dagpb_decode(n->block, n->len, &n->pb)))
        goto fail_prefix;
    if (!n->pb.has_data) {
        ia_pb_node_free(&n->pb);
        st = ia_error_set(IA_EPARSE, "%s: dag-pb node has no UnixFS Data", n->text);
        goto fail;
    }
    if ((st = ia_unixfs_decode(n->pb.data, n->pb.data_len, &n->fs))) {
        ia_pb_node_free(&n->pb);
        goto fail_prefix;
    }
    return IA_OK;
fail_prefix:
    ia_error_prefix("%s", n->text);
fail:
    free(n->block);
    n->block = NULL;
    return st;
}

static const char *type_name(ia_unixfs_type t) {
    static const char *names[] = {"raw", "directory", "file", "metadata", "symlink", "HAMT shard"};
    return (unsigned)t < 6 ? names[t] : "unknown";
}

/* File bytes under a loaded file node: inline data plus children. */
static ia_status file_size(const node *n, uint64_t *out) {
    if (n->is_raw || n->fs.type == IA_UNIXFS_RAW) {
        *out = n->fs.data_len;
        return IA_OK;
    }
    uint64_t total = n->fs.data_len;
    for (size_t i = 0; i < n->fs.n_blocksizes; i++)
        if (__builtin_add_overflow(total, n->fs.blocksizes[i], &total))
            return ia_error_set(IA_EPARSE, "%s: blocksizes overflow", n->text);
    *out = total;
    return IA_OK;
}

ia_status ia_unixfs_stat(ia_blockstore *bs, const ia_cid *cid, ia_unixfs_info *out) {
    node n;
    memset(out, 0, sizeof *out);
    ia_status st = node_load(bs, cid, &n);
    if (st)
        return st;
    out->type = n.fs.type;
    if (n.fs.type == IA_UNIXFS_FILE || n.fs.type == IA_UNIXFS_RAW)
        st = file_size(&n, &out->size);
    else if (n.fs.type == IA_UNIXFS_SYMLINK)
        out->size = n.fs.data_len;
    node_free(&n);
    return st;
}

/* ---- cat --------------------------------------------------------------------------- */

typedef struct cat_ctx {
    ia_blockstore *bs;
    uint64_t lo, hi; /* wanted file bytes [lo, hi) */
    ia_write_fn write;
    void *ctx;
} cat_ctx;

/* Writes the part of bytes [start, start + len) that overlaps [lo, hi). */
static ia_status emit(cat_ctx *c, uint64_t start, const uint8_t *p, size_t len) {
    uint64_t end = start + len;
    if (end <= c->lo || start >= c->hi || len == 0)
        return IA_OK;
    uint64_t a = start < c->lo ? c->lo : start, b = end > c->hi ? c->hi : end;
    return b > a ? c->write(c->ctx, p + (a - start), (size_t)(b - a)) : IA_OK;
}

/* Streams the node covering file bytes [start, start + expect); expect is
 * what the parent says (UINT64_MAX at the root). */
static ia_status cat_node(cat_ctx *c, const ia_cid *cid, uint64_t start, uint64_t expect,
                          int depth) {
    node n;
    uint64_t size = 0, pos;
    ia_status st = node_load(c->bs, cid, &n);
    if (st)
        return st;
    if (n.fs.type != IA_UNIXFS_FILE && n.fs.type != IA_UNIXFS_RAW) {
        st = depth == 0
                 ? ia_error_set(IA_EINVAL, "%s is a %s, not a file", n.text, type_name(n.fs.type))
                 : ia_error_set(IA_EPARSE, "%s: a %s inside a file's DAG", n.text,
                                type_name(n.fs.type));
        goto done;
    }
    if ((st = file_size(&n, &size)))
        goto done;
    if (expect != UINT64_MAX && size != expect) {
        st = ia_error_set(IA_EPARSE, "%s: holds %llu bytes but its parent says %llu", n.text,
                          (unsigned long long)size, (unsigned long long)expect);
        goto done;
    }
    if (!n.is_raw && n.fs.n_blocksizes != n.pb.n_links) {
        st = ia_error_set(IA_EPARSE, "%s: %zu links but %zu blocksizes", n.text, n.pb.n_links,
                          n.fs.n_blocksizes);
        goto done;
    }
    if (depth > FILE_MAX_DEPTH) {
        st = ia_error_set(IA_ERANGE, "%s: file DAG deeper than %d levels", n.text, FILE_MAX_DEPTH);
        goto done;
    }
    if ((st = emit(c, start, n.fs.data, n.fs.data_len)))
        goto done;
    pos = start + n.fs.data_len;
    for (size_t i = 0; !n.is_raw && i < n.pb.n_links && pos < c->hi; i++) {
        uint64_t sz = n.fs.blocksizes[i];
        if (pos + sz > c->lo && (st = cat_node(c, &n.pb.links[i].cid, pos, sz, depth + 1)))
            goto done;
        pos += sz;
    }
done:
    node_free(&n);
    return st;
}

ia_status ia_unixfs_cat(ia_blockstore *bs, const ia_cid *cid, uint64_t offset, uint64_t length,
                        ia_write_fn write, void *ctx) {
    cat_ctx c = {bs, offset, 0, write, ctx};
    if (__builtin_add_overflow(offset, length, &c.hi))
        c.hi = UINT64_MAX;
    return cat_node(&c, cid, 0, UINT64_MAX, 0);
}

/* ---- directories ------------------------------------------------------------------------ */

/* Called per entry; name is borrowed, NUL-terminated. Return IA_OK to go on. */
typedef ia_status (*entry_fn)(void *ctx, const char *name, const ia_cid *cid);

static ia_status hamt_params(const node *n, int *bits, size_t *pad) {
    uint64_t f = n->fs.fanout;
    if (!n->fs.has_hash_type || n->fs.hash_type != IA_HAMT_MURMUR3)
        return ia_error_set(IA_EUNSUPPORTED, "%s: HAMT hash type 0x%llx is not murmur3 (0x22)",
                            n->text, (unsigned long long)n->fs.hash_type);
    if (!n->fs.has_fanout || f < 2 || f > HAMT_MAX_FANOUT || (f & (f - 1)))
        return ia_error_set(IA_EPARSE, "%s: HAMT fanout %llu is not a power of two up to %d",
                            n->text, (unsigned long long)f, HAMT_MAX_FANOUT);
    *bits = __builtin_ctzll(f);
    *pad = 0;
    for (uint64_t v = f - 1; v; v >>= 4)
        (*pad)++;
    return IA_OK;
}

static ia_status dir_walk(ia_blockstore *bs, node *n, int depth, entry_fn fn, void *ctx) {
    ia_status st = IA_OK;
    char *name = NULL;
    int bits = 8;
    size_t pad = 0;
    bool hamt = n->fs.type == IA_UNIXFS_HAMT_SHARD;
    if (n->fs.type != IA_UNIXFS_DIRECTORY && !hamt)
        return ia_error_set(IA_EINVAL, "%s is a %s, not a directory", n->text,
                            type_name(n->fs.type));
    if (hamt && (st = hamt_params(n, &bits, &pad)))
        return st;
    if (depth > 64 / (hamt ? bits : 64) + 1)
        return ia_error_set(IA_EPARSE, "%s: HAMT deeper than its 64-bit hash allows", n->text);
    for (size_t i = 0; i < n->pb.n_links && st == IA_OK; i++) {
        const ia_pb_link *l = &n->pb.links[i];
        if (hamt && l->name_len < pad) {
            st = ia_error_set(IA_EPARSE, "%s: HAMT link %zu has a name shorter than its slot",
                              n->text, i);
            break;
        }
        if (hamt && l->name_len == pad) {
            node child;
            if ((st = node_load(bs, &l->cid, &child)))
                break;
            if (child.fs.type != IA_UNIXFS_HAMT_SHARD)
                st = ia_error_set(IA_EPARSE, "%s: HAMT slot link leads to a %s", n->text,
                                  type_name(child.fs.type));
            else
                st = dir_walk(bs, &child, depth + 1, fn, ctx);
            node_free(&child);
            continue;
        }
        size_t skip = hamt ? pad : 0;
        if (!(name = ia_strndup(l->name ? l->name + skip : "", l->name_len - skip))) {
            st = IA_ENOMEM;
            break;
        }
        st = fn(ctx, name, &l->cid);
        free(name);
        name = NULL;
    }
    return st;
}

/* Slot index `depth` of a name's hash: `bits` bits from the top. */
static unsigned hash_slot(const uint8_t h[8], int depth, int bits) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | h[i];
    int shift = 64 - (depth + 1) * bits;
    return (unsigned)((v >> shift) & ((1ull << bits) - 1));
}

static int hex_value(char ch) {
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* Finds `name` in a loaded directory node (plain or HAMT): IA_ENOTFOUND when absent. */
static ia_status dir_lookup(ia_blockstore *bs, node *dir, const char *name, size_t name_len,
                            ia_cid *out) {
    if (dir->fs.type == IA_UNIXFS_DIRECTORY) {
        for (size_t i = 0; i < dir->pb.n_links; i++) {
            const ia_pb_link *l = &dir->pb.links[i];
            if (l->name_len == name_len && memcmp(l->name, name, name_len) == 0) {
                *out = l->cid;
                return IA_OK;
            }
        }
        return IA_ENOTFOUND;
    }
    if (dir->fs.type != IA_UNIXFS_HAMT_SHARD)
        return ia_error_set(IA_EINVAL, "%s is a %s, not a directory", dir->text,
                            type_name(dir->fs.type));
    uint8_t h[8];
    ia_murmur3_x64_64(name, name_len, h);
    node cur = *dir, child;
    bool own = false; /* cur is a loaded child we must free */
    ia_status st = IA_ENOTFOUND;
    for (int depth = 0;; depth++) {
        int bits;
        size_t pad;
        if ((st = hamt_params(&cur, &bits, &pad)))
            break;
        if ((depth + 1) * bits > 64) {
            st = ia_error_set(IA_EPARSE, "%s: HAMT deeper than its 64-bit hash allows", cur.text);
            break;
        }
        unsigned slot = hash_slot(h, depth, bits);
        const ia_pb_link *next = NULL;
        st = IA_ENOTFOUND;
        for (size_t i = 0; i < cur.pb.n_links; i++) {
            const ia_pb_link *l = &cur.pb.links[i];
            unsigned v = 0;
            size_t k = 0;
            for (; k < pad && k < l->name_len && hex_value(l->name[k]) >= 0; k++)
                v = v * 16 + (unsigned)hex_value(l->name[k]);
            if (k < pad || v != slot)
                continue;
            if (l->name_len == pad) {
                next = l;
            } else if (l->name_len - pad == name_len &&
                       memcmp(l->name + pad, name, name_len) == 0) {
                *out = l->cid;
                st = IA_OK;
            }
            break;
        }
        if (!next)
            break;
        ia_cid next_cid = next->cid;
        if ((st = node_load(bs, &next_cid, &child)))
            break;
        if (own)
            node_free(&cur);
        cur = child;
        own = true;
        if (cur.fs.type != IA_UNIXFS_HAMT_SHARD) {
            st = ia_error_set(IA_EPARSE, "%s: HAMT slot link leads to a %s", cur.text,
                              type_name(cur.fs.type));
            break;
        }
    }
    if (own)
        node_free(&cur);
    return st;
}

ia_status ia_unixfs_resolve(ia_blockstore *bs, const char *path, ia_cid *out) {
    if (strncmp(path, "/ipfs/", 6) == 0)
        path += 6;
    while (*path == '/')
        path++;
    size_t n = strcspn(path, "/");
    char first[IA_CID_MAX_STRING];
    if (n == 0 || n >= sizeof first)
        return ia_error_set(IA_EINVAL, "'%s': expected CID or CID/path", path);
    memcpy(first, path, n);
    first[n] = '\0';
    ia_status st = ia_cid_parse(first, out);
    if (st)
        return st;
    const char *p = path + n;
    while (*p) {
        while (*p == '/')
            p++;
        size_t len = strcspn(p, "/");
        if (len == 0)
            break;
        node dir;
        if ((st = node_load(bs, out, &dir)))
            return st;
        ia_cid child;
        st = dir_lookup(bs, &dir, p, len, &child);
        if (st == IA_ENOTFOUND)
            st = ia_error_set(IA_ENOTFOUND, "%.*s: no entry '%.*s' in directory %s",
                              (int)(p + len - path), path, (int)len, p, dir.text);
        node_free(&dir);
        if (st)
            return st;
        *out = child;
        p += len;
    }
    return IA_OK;
}

/* ---- ls --------------------------------------------------------------------------------- */

typedef struct ls_ctx {
    ia_blockstore *bs;
    ia_ls_fn fn;
    void *ctx;
} ls_ctx;

static ia_status ls_entry(void *ctx, const char *name, const ia_cid *cid) {
    ls_ctx *l = ctx;
    ia_ls_entry e = {name, *cid, IA_UNIXFS_RAW, 0};
    ia_unixfs_info info;
    ia_status st = ia_unixfs_stat(l->bs, cid, &info);
    if (st) {
        ia_error_prefix("entry '%s'", name);
        return st;
    }
    e.type = info.type;
    e.size = info.size;
    return l->fn(l->ctx, &e);
}

ia_status ia_unixfs_ls(ia_blockstore *bs, const ia_cid *dir, ia_ls_fn fn, void *ctx) {
    node n;
    ia_status st = node_load(bs, dir, &n);
    if (st)
        return st;
    ls_ctx l = {bs, fn, ctx};
    st = dir_walk(bs, &n, 0, ls_entry, &l);
    node_free(&n);
    return st;
}

/* ---- get ----------------------------------------------------------------------------- */

typedef struct get_ctx {
    ia_blockstore *bs;
    const char *dir; /* the folder entries go into */
} get_ctx;

static ia_status get_node(ia_blockstore *bs, const ia_cid *cid, const char *out_path);

typedef struct fd_sink {
    int fd;
    const char *path;
} fd_sink;

static ia_status write_fd(void *ctx, const void *data, size_t len) {
    const fd_sink *f = ctx;
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t n = write(f->fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return ia_error_set(IA_EIO, "%s: cannot write: %s", f->path,
                                n < 0 ? strerror(errno) : "no space left");
        p += n;
        len -= (size_t)n;
    }
    return IA_OK;
}

static ia_status get_file(ia_blockstore *bs, const ia_cid *cid, const char *out_path) {
    fd_sink f = {open(out_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644), out_path};
    if (f.fd < 0)
        return ia_error_set(IA_EIO, "%s: cannot create: %s", out_path, strerror(errno));
    ia_status st = ia_unixfs_cat(bs, cid, 0, UINT64_MAX, write_fd, &f);
    if (close(f.fd) != 0 && st == IA_OK)
        st = ia_error_set(IA_EIO, "%s: cannot close: %s", out_path, strerror(errno));
    if (st)
        unlink(out_path);
    return st;
}

static ia_status get_entry(void *ctx, const char *name, const ia_cid *cid) {
    const get_ctx *g = ctx;
    if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strchr(name, '/'))
        return ia_error_set(IA_EPARSE, "%s: refusing the entry name '%s' (not one path component)",
                            g->dir, name);
    char *path = ia_path_join(g->dir, name);
    if (!path)
        return IA_ENOMEM;
    ia_status st = get_node(g->bs, cid, path);
    free(path);
    return st;
}

static ia_status get_node(ia_blockstore *bs, const ia_cid *cid, const char *out_path) {
    node n;
    ia_status st = node_load(bs, cid, &n);
    if (st)
        return st;
    switch (n.fs.type) {
    case IA_UNIXFS_FILE:
    case IA_UNIXFS_RAW:
        node_free(&n); /* cat reloads it: keeps one code path for files */
        return get_file(bs, cid, out_path);
    case IA_UNIXFS_DIRECTORY:
    case IA_UNIXFS_HAMT_SHARD: {
        if (mkdir(out_path, 0755) != 0) {
            st = ia_error_set(IA_EIO, "%s: cannot create folder: %s", out_path, strerror(errno));
            break;
        }
        get_ctx g = {bs, out_path};
        st = dir_walk(bs, &n, 0, get_entry, &g);
        break;
    }
    case IA_UNIXFS_SYMLINK: {
        char *target = ia_strndup((const char *)n.fs.data, n.fs.data_len);
        if (!target) {
            st = IA_ENOMEM;
            break;
        }
        if (symlink(target, out_path) != 0)
            st = ia_error_set(IA_EIO, "%s: cannot create symlink: %s", out_path, strerror(errno));
        free(target);
        break;
    }
    default:
        st = ia_error_set(IA_EUNSUPPORTED, "%s: cannot write a UnixFS %s to disk", n.text,
                          type_name(n.fs.type));
    }
    node_free(&n);
    return st;
}

ia_status ia_unixfs_get(ia_blockstore *bs, const ia_cid *cid, const char *out_path) {
    struct stat sb;
    if (lstat(out_path, &sb) == 0)
        return ia_error_set(IA_EINVAL, "%s: already exists; choose another output path", out_path);
    return get_node(bs, cid, out_path);
}
