/*
 * The importer: files and directories to UnixFS DAGs, as `ipfs add` builds
 * them, so the root CID matches Kubo's byte for byte.
 *
 * Files. The input is cut into fixed-size chunks (256 KiB by default) and
 * laid out as boxo's balanced builder does: every leaf at the same depth,
 * nodes filled left to right with at most max_links children, a node
 * closed only when another child arrives for it. That shape can be built
 * while streaming, one open node per level: adding a link to a full level
 * first closes that level into the one above. At the end the open nodes are
 * closed bottom-up; a file of one chunk is its leaf. So memory is two read
 * buffers plus max_links links per level, whatever the file size.
 *
 * Leaves are hashed in parallel: a batch of chunks (16 MiB) is one thread
 * pool job, and one task of that job reads the next batch into the second
 * buffer (or, for a regular file, maps the next 16 MiB window of it, so the
 * page cache is hashed in place without a copy), so reading overlaps
 * hashing. Leaves are raw blocks, or (CIDv0's
 * default) dag-pb nodes wrapping UnixFS File data; those are hashed as
 * prefix + chunk + suffix without copying the chunk. Blocks are written
 * (unless only_hash) on the calling thread, in order.
 *
 * Directories. Entries are sorted by name (byte order, as dag-pb encoding
 * sorts links); a directory whose estimated size exceeds the threshold
 * becomes a HAMT (hamt.c). Names starting with '.' are skipped unless
 * `hidden`, symlinks become UnixFS Symlink nodes, other special files are
 * an error. Directory lines are reported after the files, children before
 * parents, as Kubo prints them.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ipfs/ipfs_internal.h"

#define BATCH_BYTES (16u << 20)
#define CHUNK_SIZE_LIMIT (1u << 20) /* boxo's ChunkSizeLimit */
#define MAX_LEVELS 64
#define MAX_DIR_DEPTH 1024
#define KUBO_HAMT_THRESHOLD (256u * 1024)

ia_add_options ia_add_options_default(void) {
    ia_add_options o = {0};
    o.cid_version = 0;
    o.raw_leaves = -1;
    o.chunk_size = 262144;
    o.max_links = 174;
    o.pin = true;
    o.hamt_estimation = IA_HAMT_ESTIMATE_LINKS;
    return o;
}

ia_status ia_add_options_profile(ia_add_options *o, const char *profile) {
    if (strcmp(profile, "unixfs-v0-2015") == 0 || strcmp(profile, "legacy-cid-v0") == 0) {
        o->cid_version = 0;
        o->raw_leaves = 0;
        o->chunk_size = 262144;
        o->max_links = 174;
        o->hamt_threshold = KUBO_HAMT_THRESHOLD;
        o->hamt_estimation = IA_HAMT_ESTIMATE_LINKS;
        return IA_OK;
    }
    if (strcmp(profile, "unixfs-v1-2025") == 0) {
        o->cid_version = 1;
        o->raw_leaves = 1;
        o->chunk_size = 1048576;
        o->max_links = 1024;
        o->hamt_threshold = KUBO_HAMT_THRESHOLD;
        o->hamt_estimation = IA_HAMT_ESTIMATE_BLOCK;
        return IA_OK;
    }
    return ia_error_set(IA_EINVAL, "unknown profile '%s' (unixfs-v0-2015 or unixfs-v1-2025)",
                        profile);
}

/* One link of an open file node. */
typedef struct link_ent {
    ia_cid cid;
    uint64_t tsize; /* cumulative DAG size */
    uint64_t fsize; /* file bytes below */
} link_ent;

typedef struct dir_line {
    char *path;
    ia_cid cid;
    uint64_t size;
} dir_line;

typedef struct importer {
    ia_blockstore *bs;
    int cid_version;
    bool raw_leaves;
    size_t chunk, max_links, hamt_threshold;
    int hamt_estimation;
    bool only_hash, nocopy, hidden;
    ia_add_progress_fn progress;
    void *progress_ctx;

    ia_threadpool *pool;
    int n_threads;
    EVP_MD *sha256;
    EVP_MD_CTX **md; /* one per thread */

    uint8_t *buf[2];
    size_t batch; /* bytes per batch, a multiple of chunk */
    /* A regular file is mapped one batch-sized window at a time instead of
     * read into buf: map[slot] is that window (NULL when none). */
    bool mapped;
    uint8_t *map[2];
    size_t map_len[2];
    uint64_t map_size, map_pos; /* the file's size when opened; the next window */
    ia_cid *leaf_cid;
    uint64_t *leaf_tsize;

    link_ent *levels[MAX_LEVELS];
    size_t level_n[MAX_LEVELS];
    ia_pb_link *links; /* scratch: max_links */
    uint64_t *blocksizes;
    ia_pbw node, data;

    const char *what;     /* the file being read, for messages */
    const char *abs_path; /* --nocopy: the file's absolute path */

    dir_line *dirs;
    size_t n_dirs, cap_dirs;
} importer;

/* ---- blocks ------------------------------------------------------------------- */

static ia_status put_block(importer *imp, const ia_cid *cid, const uint8_t *data, size_t len) {
    if (imp->only_hash)
        return IA_OK;
    return ia_blockstore_put(imp->bs, cid, data, len);
}

static ia_status sink_block(void *ctx, const ia_cid *cid, const uint8_t *data, size_t len) {
    return put_block(ctx, cid, data, len);
}

/* ---- leaves ---------------------------------------------------------------------- */

/* The bytes around a chunk of n bytes in a dag-pb leaf:
 * PBNode{Data: UnixFS{Type: File, Data: chunk, filesize: n}}. */
static size_t leaf_prefix(size_t n, uint8_t *p) {
    size_t inner = 2 + 1 + ia_varint_len(n) + n + 1 + ia_varint_len(n);
    size_t k = 0;
    p[k++] = 0x0a;
    k += ia_varint_encode(inner, p + k);
    p[k++] = 0x08;
    p[k++] = IA_UNIXFS_FILE;
    p[k++] = 0x12;
    k += ia_varint_encode(n, p + k);
    return k;
}

static size_t leaf_suffix(size_t n, uint8_t *p) {
    p[0] = 0x18;
    return 1 + ia_varint_encode(n, p + 1);
}

typedef struct batch_job {
    importer *imp;
    const uint8_t *data;
    size_t len, n_chunks;
    /* the read task (task 0 when read_fd >= 0) */
    int read_fd;
    int read_slot;
    size_t read_got;
    int read_errno;
    bool hash_failed;
} batch_job;

static void read_full(int fd, uint8_t *buf, size_t cap, size_t *got, int *err) {
    size_t n = 0;
    *err = 0;
    while (n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            *err = errno;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    *got = n;
}

/* Fills slot with the next batch of the input: a read into buf[slot], or a
 * window of the mapped file. MAP_POPULATE maps the page cache's pages (reading
 * them in first if needed) without copying a byte, so the hash threads read
 * the file in place. Like any mapping of a file, a file truncated by someone
 * else while it is being added ends the process with SIGBUS; the engine maps
 * model files the same way. */
static void fill(importer *imp, int fd, int slot, size_t *got, int *err) {
    if (!imp->mapped) {
        read_full(fd, imp->buf[slot], imp->batch, got, err);
        return;
    }
    *got = 0;
    *err = 0;
    uint64_t left = imp->map_size - imp->map_pos;
    size_t len = left < imp->batch ? (size_t)left : imp->batch;
    if (len == 0)
        return;
    void *p = mmap(NULL, len, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, (off_t)imp->map_pos);
    if (p == MAP_FAILED) {
        *err = errno;
        return;
    }
    imp->map[slot] = p;
    imp->map_len[slot] = len;
    imp->map_pos += len;
    *got = len;
}

static void unmap_slot(importer *imp, int slot) {
    if (imp->map[slot])
        munmap(imp->map[slot], imp->map_len[slot]);
    imp->map[slot] = NULL;
}

static void hash_leaf(importer *imp, const uint8_t *data, size_t n, int thread, ia_cid *cid,
                      uint64_t *tsize, bool *failed) {
    memset(cid, 0, sizeof *cid);
    cid->mh_code = IA_MH_SHA2_256;
    cid->digest_len = 32;
    if (imp->raw_leaves) {
        cid->version = 1;
        cid->codec = IA_CODEC_RAW;
        ia_sha256(data, n, cid->digest);
        *tsize = n;
        return;
    }
    uint8_t pre[32], suf[16];
    size_t np = leaf_prefix(n, pre), ns = leaf_suffix(n, suf);
    EVP_MD_CTX *md = imp->md[thread];
    unsigned int dl = 0;
    cid->version = (uint8_t)imp->cid_version;
    cid->codec = IA_CODEC_DAG_PB;
    if (!EVP_DigestInit_ex(md, imp->sha256, NULL) || !EVP_DigestUpdate(md, pre, np) ||
        !EVP_DigestUpdate(md, data, n) || !EVP_DigestUpdate(md, suf, ns) ||
        !EVP_DigestFinal_ex(md, cid->digest, &dl))
        *failed = true;
    *tsize = np + n + ns;
}

static void batch_task(void *ctx, size_t task, int thread) {
    batch_job *b = ctx;
    if (b->read_fd >= 0) {
        if (task == 0) {
            fill(b->imp, b->read_fd, b->read_slot, &b->read_got, &b->read_errno);
            return;
        }
        task--;
    }
    importer *imp = b->imp;
    size_t off = task * imp->chunk;
    size_t n = b->len - off < imp->chunk ? b->len - off : imp->chunk;
    bool failed = false;
    hash_leaf(imp, b->data + off, n, thread, &imp->leaf_cid[task], &imp->leaf_tsize[task], &failed);
    if (failed)
        b->hash_failed = true; /* benign race: only ever set to true */
}

static ia_status store_leaf(importer *imp, const ia_cid *cid, const uint8_t *data, size_t n,
                            uint64_t offset) {
    if (imp->only_hash)
        return IA_OK;
    if (imp->nocopy)
        return ia_blockstore_put_ref(imp->bs, cid, imp->abs_path, offset, n);
    if (imp->raw_leaves)
        return put_block(imp, cid, data, n);
    uint8_t pre[32], suf[16];
    size_t np = leaf_prefix(n, pre), ns = leaf_suffix(n, suf);
    ia_pbw_reset(&imp->data);
    ia_pbw_bytes(&imp->data, pre, np);
    ia_pbw_bytes(&imp->data, data, n);
    ia_pbw_bytes(&imp->data, suf, ns);
    ia_status st = ia_pbw_status(&imp->data);
    return st ? st : put_block(imp, cid, imp->data.data, imp->data.len);
}

/* ---- the balanced tree ------------------------------------------------------------ */

static ia_status close_level(importer *imp, int lvl, link_ent *out) {
    link_ent *e = imp->levels[lvl];
    size_t n = imp->level_n[lvl];
    uint64_t fsize = 0, tsum = 0;
    for (size_t i = 0; i < n; i++) {
        ia_pb_link *l = &imp->links[i];
        memset(l, 0, sizeof *l);
        l->cid = e[i].cid;
        l->name = "";
        l->has_name = true;
        l->tsize = e[i].tsize;
        l->has_tsize = true;
        imp->blocksizes[i] = e[i].fsize;
        fsize += e[i].fsize;
        tsum += e[i].tsize;
    }
    ia_unixfs u = {.type = IA_UNIXFS_FILE,
                   .filesize = fsize,
                   .has_filesize = true,
                   .blocksizes = imp->blocksizes,
                   .n_blocksizes = n};
    ia_status st;
    ia_pbw_reset(&imp->data);
    if ((st = ia_unixfs_encode_into(&u, &imp->data)))
        return st;
    ia_pb_node node = {.links = imp->links,
                       .n_links = n,
                       .data = imp->data.data,
                       .data_len = imp->data.len,
                       .has_data = true};
    ia_pbw_reset(&imp->node);
    if ((st = ia_dagpb_encode_into(&node, &imp->node)))
        return st;
    ia_cid_of_block(imp->cid_version, IA_CODEC_DAG_PB, imp->node.data, imp->node.len, &out->cid);
    out->tsize = tsum + imp->node.len;
    out->fsize = fsize;
    imp->level_n[lvl] = 0;
    return put_block(imp, &out->cid, imp->node.data, imp->node.len);
}

static ia_status push_link(importer *imp, int lvl, const link_ent *ent) {
    if (lvl >= MAX_LEVELS)
        return ia_error_set(IA_ERANGE, "%s: file DAG deeper than %d levels", imp->what, MAX_LEVELS);
    if (!imp->levels[lvl] &&
        !(imp->levels[lvl] = ia_malloc_array(imp->max_links, sizeof(link_ent))))
        return IA_ENOMEM;
    if (imp->level_n[lvl] == imp->max_links) {
        link_ent up;
        ia_status st = close_level(imp, lvl, &up);
        if (st || (st = push_link(imp, lvl + 1, &up)))
            return st;
    }
    imp->levels[lvl][imp->level_n[lvl]++] = *ent;
    return IA_OK;
}

static int top_level(const importer *imp) {
    int top = -1;
    for (int i = 0; i < MAX_LEVELS; i++)
        if (imp->level_n[i])
            top = i;
    return top;
}

static ia_status finish_tree(importer *imp, link_ent *root) {
    ia_status st;
    int top = top_level(imp);
    if (top == 0 && imp->level_n[0] == 1) { /* one chunk: the leaf is the file */
        *root = imp->levels[0][0];
        imp->level_n[0] = 0;
        return IA_OK;
    }
    for (int i = 0; i < top; i++) {
        link_ent up;
        if ((st = close_level(imp, i, &up)) || (st = push_link(imp, i + 1, &up)))
            return st;
        top = top_level(imp);
    }
    return close_level(imp, top, root);
}

/* The file of no bytes: a leaf with no data (raw, or File with filesize 0). */
static ia_status empty_file(importer *imp, link_ent *out) {
    static const uint8_t empty_pb[] = {0x0a, 0x04, 0x08, IA_UNIXFS_FILE, 0x18, 0x00};
    out->fsize = 0;
    if (imp->raw_leaves) {
        ia_cid_of_block(1, IA_CODEC_RAW, "", 0, &out->cid);
        out->tsize = 0;
        return put_block(imp, &out->cid, (const uint8_t *)"", 0);
    }
    ia_cid_of_block(imp->cid_version, IA_CODEC_DAG_PB, empty_pb, sizeof empty_pb, &out->cid);
    out->tsize = sizeof empty_pb;
    return put_block(imp, &out->cid, empty_pb, sizeof empty_pb);
}

static ia_status add_stream(importer *imp, int fd, link_ent *out) {
    ia_status st = IA_OK;
    int cur = 0, err = 0;
    size_t filled;
    uint64_t offset = 0;
    bool any = false;
    memset(imp->level_n, 0, sizeof imp->level_n);
    /* Map regular files read from their start (mmap needs a page-aligned
     * offset); pipes and the rest are read. */
    struct stat sb;
    imp->mapped =
        fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0 && lseek(fd, 0, SEEK_CUR) == 0;
    imp->map_size = imp->mapped ? (uint64_t)sb.st_size : 0;
    imp->map_pos = 0;
    fill(imp, fd, cur, &filled, &err);
    for (;;) {
        if (err) {
            st = ia_error_set(IA_EIO, "%s: read failed at byte %llu: %s", imp->what,
                              (unsigned long long)(offset + filled), strerror(err));
            goto done;
        }
        if (filled == 0)
            break;
        any = true;
        bool more = imp->mapped ? imp->map_pos < imp->map_size : filled == imp->batch;
        batch_job b = {.imp = imp,
                       .data = imp->mapped ? imp->map[cur] : imp->buf[cur],
                       .len = filled,
                       .n_chunks = (filled + imp->chunk - 1) / imp->chunk,
                       .read_fd = more ? fd : -1,
                       .read_slot = !cur};
        ia_threadpool_run(imp->pool, b.n_chunks + (more ? 1 : 0), batch_task, &b);
        if (b.hash_failed) {
            st = ia_error_set(IA_EINTERNAL, "%s: OpenSSL SHA-256 failed", imp->what);
            goto done;
        }
        for (size_t i = 0; i < b.n_chunks; i++) {
            size_t off = i * imp->chunk;
            size_t n = filled - off < imp->chunk ? filled - off : imp->chunk;
            link_ent e = {.cid = imp->leaf_cid[i], .tsize = imp->leaf_tsize[i], .fsize = n};
            if ((st = store_leaf(imp, &e.cid, b.data + off, n, offset + off)) ||
                (st = push_link(imp, 0, &e)))
                goto done;
        }
        unmap_slot(imp, cur);
        offset += filled;
        if (!more)
            break;
        filled = b.read_got;
        err = b.read_errno;
        cur = !cur;
    }
    st = any ? finish_tree(imp, out) : empty_file(imp, out);
done:
    unmap_slot(imp, 0);
    unmap_slot(imp, 1);
    imp->mapped = false;
    return st;
}

/* ---- set-up ------------------------------------------------------------------------ */

static void importer_free(importer *imp) {
    for (int i = 0; i < MAX_LEVELS; i++)
        free(imp->levels[i]);
    for (int i = 0; imp->md && i < imp->n_threads; i++)
        EVP_MD_CTX_free(imp->md[i]);
    free(imp->md);
    EVP_MD_free(imp->sha256);
    ia_threadpool_destroy(imp->pool);
    free(imp->buf[0]);
    free(imp->buf[1]);
    free(imp->leaf_cid);
    free(imp->leaf_tsize);
    free(imp->links);
    free(imp->blocksizes);
    ia_pbw_free(&imp->node);
    ia_pbw_free(&imp->data);
    for (size_t i = 0; i < imp->n_dirs; i++)
        free(imp->dirs[i].path);
    free(imp->dirs);
}

static ia_status importer_init(importer *imp, ia_blockstore *bs, const ia_add_options *o) {
    memset(imp, 0, sizeof *imp);
    if (o->cid_version != 0 && o->cid_version != 1)
        return ia_error_set(IA_EINVAL, "CID version %d does not exist (0 or 1)", o->cid_version);
    imp->bs = bs;
    imp->cid_version = o->cid_version;
    imp->raw_leaves = o->raw_leaves < 0 ? o->cid_version == 1 : o->raw_leaves != 0;
    imp->chunk = o->chunk_size ? o->chunk_size : 262144;
    imp->max_links = o->max_links ? o->max_links : 174;
    imp->hamt_threshold = o->hamt_threshold ? o->hamt_threshold : KUBO_HAMT_THRESHOLD;
    imp->hamt_estimation = o->hamt_estimation;
    imp->only_hash = o->only_hash;
    imp->nocopy = o->nocopy;
    imp->hidden = o->hidden;
    if (imp->chunk > CHUNK_SIZE_LIMIT)
        return ia_error_set(IA_EINVAL, "chunk size %zu exceeds the maximum of %u bytes", imp->chunk,
                            CHUNK_SIZE_LIMIT);
    if (imp->max_links < 2 || imp->max_links > 65536)
        return ia_error_set(IA_EINVAL, "max links %zu is outside 2..65536", imp->max_links);
    if (!imp->only_hash && !bs)
        return ia_error_set(IA_EINVAL, "adding without --only-hash needs a blockstore");
    if (imp->nocopy && !imp->raw_leaves)
        return ia_error_set(IA_EINVAL, "--nocopy needs raw leaves (the blockstore points at "
                                       "file bytes, which dag-pb leaves are not)");
    imp->n_threads = o->threads > 0 ? o->threads : ia_cpu_physical_cores();
    if (imp->n_threads > 256)
        imp->n_threads = 256;
    ia_status st = IA_ENOMEM;
    if (imp->n_threads > 1 && !(imp->pool = ia_threadpool_create(imp->n_threads)))
        goto fail;
    if (!(imp->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL))) {
        st = ia_error_set(IA_EINTERNAL, "OpenSSL has no SHA256");
        goto fail;
    }
    if (!(imp->md = ia_calloc((size_t)imp->n_threads, sizeof *imp->md)))
        goto fail;
    for (int i = 0; i < imp->n_threads; i++)
        if (!(imp->md[i] = EVP_MD_CTX_new()))
            goto fail;
    imp->batch = BATCH_BYTES / imp->chunk * imp->chunk;
    if (imp->batch < imp->chunk)
        imp->batch = imp->chunk;
    size_t per_batch = imp->batch / imp->chunk;
    if (!(imp->buf[0] = ia_malloc(imp->batch)) || !(imp->buf[1] = ia_malloc(imp->batch)) ||
        !(imp->leaf_cid = ia_malloc_array(per_batch, sizeof *imp->leaf_cid)) ||
        !(imp->leaf_tsize = ia_malloc_array(per_batch, sizeof *imp->leaf_tsize)) ||
        !(imp->links = ia_malloc_array(imp->max_links, sizeof *imp->links)) ||
        !(imp->blocksizes = ia_malloc_array(imp->max_links, sizeof *imp->blocksizes)))
        goto fail;
    return IA_OK;
fail:
    importer_free(imp);
    return st == IA_ENOMEM ? ia_error_set(IA_ENOMEM, "out of memory setting up the importer") : st;
}

/* ---- files, symlinks, directories --------------------------------------------------- */

static ia_status add_file(importer *imp, const char *path, link_ent *out) {
    char *abs = NULL;
    ia_status st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ia_error_set(errno == ENOENT ? IA_ENOTFOUND : IA_EIO, "%s: cannot open: %s", path,
                            strerror(errno));
#ifdef POSIX_FADV_SEQUENTIAL
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
    if (imp->nocopy && !(abs = realpath(path, NULL))) {
        st =
            ia_error_set(IA_EIO, "%s: cannot resolve its absolute path: %s", path, strerror(errno));
        goto done;
    }
    imp->what = path;
    imp->abs_path = abs;
    st = add_stream(imp, fd, out);
done:
    imp->abs_path = NULL;
    free(abs);
    close(fd);
    return st;
}

static ia_status add_symlink(importer *imp, const char *path, link_ent *out) {
    char target[PATH_MAX + 1];
    ssize_t n = readlink(path, target, sizeof target);
    if (n < 0)
        return ia_error_set(IA_EIO, "%s: cannot read symlink: %s", path, strerror(errno));
    if ((size_t)n >= sizeof target)
        return ia_error_set(IA_ERANGE, "%s: symlink target longer than %d bytes", path, PATH_MAX);
    ia_unixfs u = {.type = IA_UNIXFS_SYMLINK,
                   .data = (const uint8_t *)target,
                   .data_len = (size_t)n,
                   .has_data = true};
    ia_status st;
    ia_pbw_reset(&imp->data);
    if ((st = ia_unixfs_encode_into(&u, &imp->data)))
        return st;
    ia_pb_node node = {.data = imp->data.data, .data_len = imp->data.len, .has_data = true};
    ia_pbw_reset(&imp->node);
    if ((st = ia_dagpb_encode_into(&node, &imp->node)))
        return st;
    ia_cid_of_block(imp->cid_version, IA_CODEC_DAG_PB, imp->node.data, imp->node.len, &out->cid);
    out->tsize = imp->node.len;
    out->fsize = 0;
    return put_block(imp, &out->cid, imp->node.data, imp->node.len);
}

static int cmp_entry(const void *a, const void *b) {
    const ia_dir_entry *x = a, *y = b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    return c ? c : (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

static size_t cid_bytes(const ia_cid *cid) {
    uint8_t b[IA_CID_MAX_BYTES];
    return ia_cid_encode(cid, b);
}

/* Size of the flat directory block, or the legacy name + CID estimate. */
static uint64_t dir_estimate(const importer *imp, const ia_dir_entry *e, size_t n) {
    uint64_t total = imp->hamt_estimation == IA_HAMT_ESTIMATE_BLOCK ? 4 : 0;
    for (size_t i = 0; i < n; i++) {
        size_t cl = cid_bytes(&e[i].cid);
        if (imp->hamt_estimation != IA_HAMT_ESTIMATE_BLOCK) {
            total += e[i].name_len + cl;
            continue;
        }
        size_t inner = 1 + ia_varint_len(cl) + cl + 1 + ia_varint_len(e[i].name_len) +
                       e[i].name_len + 1 + ia_varint_len(e[i].tsize);
        total += 1 + ia_varint_len(inner) + inner;
    }
    return total;
}

/* Builds the directory node over sorted entries. */
static ia_status build_dir(importer *imp, ia_dir_entry *e, size_t n, link_ent *out) {
    static const uint8_t dir_data[] = {0x08, IA_UNIXFS_DIRECTORY};
    ia_status st;
    out->fsize = 0;
    if (dir_estimate(imp, e, n) > imp->hamt_threshold)
        return ia_hamt_build(e, n, imp->cid_version, sink_block, imp, &out->cid, &out->tsize);
    ia_pb_link *links = n ? ia_calloc(n, sizeof *links) : NULL;
    if (n && !links)
        return IA_ENOMEM;
    uint64_t tsum = 0;
    for (size_t i = 0; i < n; i++) {
        links[i].cid = e[i].cid;
        links[i].name = e[i].name;
        links[i].name_len = e[i].name_len;
        links[i].has_name = true;
        links[i].tsize = e[i].tsize;
        links[i].has_tsize = true;
        tsum += e[i].tsize;
    }
    ia_pb_node node = {.links = links,
                       .n_links = n,
                       .data = dir_data,
                       .data_len = sizeof dir_data,
                       .has_data = true};
    ia_pbw_reset(&imp->node);
    st = ia_dagpb_encode_into(&node, &imp->node);
    free(links);
    if (st)
        return st;
    ia_cid_of_block(imp->cid_version, IA_CODEC_DAG_PB, imp->node.data, imp->node.len, &out->cid);
    out->tsize = tsum + imp->node.len;
    return put_block(imp, &out->cid, imp->node.data, imp->node.len);
}

static ia_status note_dir(importer *imp, const char *rel, const link_ent *e) {
    if (!imp->progress)
        return IA_OK;
    if (imp->n_dirs == imp->cap_dirs) {
        size_t cap = imp->cap_dirs ? imp->cap_dirs * 2 : 16;
        dir_line *d = ia_realloc_array(imp->dirs, cap, sizeof *d);
        if (!d)
            return IA_ENOMEM;
        imp->dirs = d;
        imp->cap_dirs = cap;
    }
    dir_line *d = &imp->dirs[imp->n_dirs];
    if (!(d->path = ia_strdup(rel)))
        return IA_ENOMEM;
    d->cid = e->cid;
    d->size = e->tsize;
    imp->n_dirs++;
    return IA_OK;
}

static ia_status add_node(importer *imp, const char *path, const char *rel, int depth,
                          link_ent *out);

static void free_entries(ia_dir_entry *e, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(e[i].name);
    free(e);
}

static ia_status add_dir(importer *imp, const char *path, const char *rel, int depth,
                         link_ent *out) {
    ia_dir_entry *e = NULL;
    size_t n = 0, cap = 0;
    char *child = NULL, *child_rel = NULL;
    ia_status st = IA_OK;
    if (depth > MAX_DIR_DEPTH)
        return ia_error_set(IA_ERANGE, "%s: directories nested deeper than %d levels", path,
                            MAX_DIR_DEPTH);
    DIR *d = opendir(path);
    if (!d)
        return ia_error_set(IA_EIO, "%s: cannot open directory: %s", path, strerror(errno));
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d))) {
        const char *name = de->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || (name[0] == '.' && !imp->hidden))
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 32;
            ia_dir_entry *ne = ia_realloc_array(e, nc, sizeof *ne);
            if (!ne) {
                st = IA_ENOMEM;
                goto done;
            }
            e = ne;
            cap = nc;
        }
        memset(&e[n], 0, sizeof e[n]);
        if (!(e[n].name = ia_strdup(name))) {
            st = IA_ENOMEM;
            goto done;
        }
        e[n].name_len = strlen(name);
        n++;
    }
    if (errno) {
        st = ia_error_set(IA_EIO, "%s: cannot read directory: %s", path, strerror(errno));
        goto done;
    }
    closedir(d);
    d = NULL;
    if (n)
        qsort(e, n, sizeof *e, cmp_entry);
    for (size_t i = 0; i < n; i++) {
        link_ent ce;
        if (!(child = ia_path_join(path, e[i].name)) ||
            !(child_rel = ia_path_join(rel, e[i].name))) {
            st = IA_ENOMEM;
            goto done;
        }
        if ((st = add_node(imp, child, child_rel, depth + 1, &ce)))
            goto done;
        e[i].cid = ce.cid;
        e[i].tsize = ce.tsize;
        free(child);
        free(child_rel);
        child = child_rel = NULL;
    }
    if ((st = build_dir(imp, e, n, out)))
        ia_error_prefix("%s", path);
    else
        st = note_dir(imp, rel, out);
done:
    if (d)
        closedir(d);
    free(child);
    free(child_rel);
    free_entries(e, n);
    return st;
}

static ia_status add_node(importer *imp, const char *path, const char *rel, int depth,
                          link_ent *out) {
    struct stat sb;
    ia_status st;
    if (lstat(path, &sb) != 0)
        return ia_error_set(errno == ENOENT ? IA_ENOTFOUND : IA_EIO, "%s: %s", path,
                            strerror(errno));
    if (S_ISDIR(sb.st_mode))
        return add_dir(imp, path, rel, depth, out);
    if (S_ISREG(sb.st_mode))
        st = add_file(imp, path, out);
    else if (S_ISLNK(sb.st_mode))
        st = add_symlink(imp, path, out);
    else
        return ia_error_set(IA_EUNSUPPORTED,
                            "%s: is a %s; add handles regular files, directories and symlinks",
                            path,
                            S_ISFIFO(sb.st_mode)   ? "FIFO"
                            : S_ISSOCK(sb.st_mode) ? "socket"
                                                   : "device");
    if (st == IA_OK && imp->progress)
        imp->progress(imp->progress_ctx, rel, &out->cid, out->tsize);
    return st;
}

static const char *base_name(const char *path, char *buf, size_t cap) {
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--;
    size_t start = len;
    while (start > 0 && path[start - 1] != '/')
        start--;
    size_t n = len - start;
    if (n == 0 || n >= cap) /* "/" or absurdly long: keep the path as given */
        return path;
    memcpy(buf, path + start, n);
    buf[n] = 0;
    return buf;
}

/* Blocks of one add are written as one blockstore batch: synced together,
 * in place only when the add succeeded. */
static void batch_begin(importer *imp) {
    if (!imp->only_hash && imp->bs)
        ia_blockstore_batch_begin(imp->bs);
}

static ia_status batch_end(importer *imp, ia_status st) {
    if (imp->only_hash || !imp->bs)
        return st;
    if (st) {
        ia_blockstore_batch_abort(imp->bs);
        return st;
    }
    return ia_blockstore_batch_commit(imp->bs);
}

ia_status ia_add_path(ia_blockstore *bs, const char *path, const ia_add_options *opts,
                      ia_add_progress_fn progress, void *progress_ctx, ia_cid *root) {
    importer imp;
    ia_add_options def = ia_add_options_default();
    ia_status st = importer_init(&imp, bs, opts ? opts : &def);
    if (st)
        return st;
    imp.progress = progress;
    imp.progress_ctx = progress_ctx;
    char namebuf[NAME_MAX + 1];
    const char *rel = base_name(path, namebuf, sizeof namebuf);
    link_ent out;
    batch_begin(&imp);
    st = add_node(&imp, path, rel, 0, &out);
    if ((st = batch_end(&imp, st)) == IA_OK) {
        *root = out.cid;
        for (size_t i = 0; progress && i < imp.n_dirs; i++)
            progress(progress_ctx, imp.dirs[i].path, &imp.dirs[i].cid, imp.dirs[i].size);
    }
    importer_free(&imp);
    return st;
}

ia_status ia_add_fd(ia_blockstore *bs, int fd, const ia_add_options *opts, ia_cid *root) {
    importer imp;
    ia_add_options def = ia_add_options_default();
    ia_status st = importer_init(&imp, bs, opts ? opts : &def);
    if (st)
        return st;
    if (imp.nocopy && !imp.only_hash) {
        importer_free(&imp);
        return ia_error_set(IA_EINVAL, "--nocopy needs a file on disk, not a stream");
    }
    imp.what = "<stdin>";
    link_ent out;
    batch_begin(&imp);
    st = add_stream(&imp, fd, &out);
    if ((st = batch_end(&imp, st)) == IA_OK)
        *root = out.cid;
    importer_free(&imp);
    return st;
}
