/*
 * Model sources: the --model argument of every command, a path on disk or a
 * CID in the local IPFS store, turned into a path the loaders take (the
 * contract is in include/ia/runtime.h under "model sources").
 *
 * A CID is planned first: the DAG is walked once (directory listings, the
 * inner nodes of each file's tree, and one reference look-up per leaf) into
 * a list of entries, parents before children. A file whose leaves are all
 * --nocopy references into one file, in order from offset 0 and covering
 * that file's recorded size, is marked "in place": its leaves are re-hashed
 * against their CIDs straight from a mapping of that file, each at the
 * offset the DAG's order gives it (so a leaf that repeats, whose single
 * reference names one of its places, is checked at every place), spread
 * over a thread pool, and the cache entry holds a symlink to the file, so
 * the loader maps the user's own file and the store costs no second copy.
 * Every other file is exported from the store's blocks with hash-on-read on.
 *
 * The cache entry, ${XDG_CACHE_HOME:-~/.cache}/ipfs-accelerate/cid/<CIDv1>/
 * (one per DAG, whichever CID version names it), is checked against the
 * plan on every call (directories, symlinks to the right files, copies of
 * the right size) and rebuilt under a temporary name renamed into place when
 * it differs, so an entry is whole or absent and concurrent processes agree.
 * In-place files are verified on every call, cached or not: the file is the
 * user's and may have changed since it was added; a file changed between
 * the verification and the loader's mapping is the one window left open.
 */
#define _XOPEN_SOURCE 700 /* nftw, kill, readlink, symlink */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ia/ipfs.h"
#include "ia/runtime.h"

#define PATH_CAP 4352 /* a cache path: root, key, relative path inside the model */

typedef enum entry_kind {
    ENTRY_DIR,      /* a directory to create */
    ENTRY_IN_PLACE, /* a file whose bytes are one referenced file: a symlink to it */
    ENTRY_COPY,     /* a file (or symlink) exported from the store's blocks */
} entry_kind;

typedef struct plan_entry {
    char *rel; /* path inside the cache entry ("" for its root); owned */
    ia_cid cid;
    entry_kind kind;
    bool is_file;  /* ENTRY_COPY of a regular file (its size is checked) */
    uint64_t size; /* file size */
    char *source;  /* ENTRY_IN_PLACE: the referenced file (absolute); owned */
    uint64_t file_size;
    int64_t mtime_ns; /* of the source when it was added */
} plan_entry;

/* One leaf of an in-place file: its bytes are prefix + file[at, at + len) + suffix. */
typedef struct leaf {
    ia_cid cid;
    uint64_t at, len;
    uint8_t prefix[IA_BLOCKSTORE_REF_WRAP_MAX], suffix[IA_BLOCKSTORE_REF_WRAP_MAX];
    uint8_t n_prefix, n_suffix;
    bool bad; /* set by the verification task */
} leaf;

typedef struct leaf_list {
    leaf *v;
    size_t n, cap;
} leaf_list;

typedef struct plan {
    plan_entry *v;
    size_t n, cap;
    const char *arg; /* for messages */
} plan;

/* ---- small file-system helpers -------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

/* Removes a file or a directory tree (symlinks themselves, never their targets). */
static void rm_tree(const char *path) { nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static bool exists(const char *path) {
    struct stat sb;
    return lstat(path, &sb) == 0;
}

static ia_status mkdirs(char *path) {
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p)
            continue;
        char c = *p;
        *p = 0;
        int rc = mkdir(path, 0755);
        *p = c;
        if (rc != 0 && errno != EEXIST)
            return ia_error_set(IA_EIO, "cannot create the cache directory %s: %s", path,
                                strerror(errno));
        if (!c)
            return IA_OK;
    }
}

/* ${XDG_CACHE_HOME:-~/.cache}/ipfs-accelerate/cid, created (malloc'd). */
static ia_status cache_root(char **out) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char buf[4096];
    int n = xdg && *xdg ? snprintf(buf, sizeof buf, "%s/ipfs-accelerate/cid", xdg)
                        : snprintf(buf, sizeof buf, "%s/.cache/ipfs-accelerate/cid",
                                   home && *home ? home : "/tmp");
    if (n < 0 || (size_t)n >= sizeof buf)
        return ia_error_set(IA_EINVAL, "the cache directory's path is too long");
    ia_status st = mkdirs(buf);
    if (st == IA_OK && !(*out = ia_strdup(buf)))
        st = IA_ENOMEM;
    return st;
}

/* Removes "<key>.tmp-PID" leftovers of builds whose process is gone (killed
 * mid-export); live ones belong to a process exporting right now. */
static void rm_stale_builds(const char *root, const char *key) {
    DIR *d = opendir(root);
    struct dirent *e;
    size_t klen = strlen(key);
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, key, klen) != 0 || strncmp(e->d_name + klen, ".tmp-", 5) != 0)
            continue;
        char *end = NULL;
        long pid = strtol(e->d_name + klen + 5, &end, 10);
        if (pid <= 0 || *end || (kill((pid_t)pid, 0) != 0 && errno == ESRCH)) {
            char *path = ia_path_join(root, e->d_name);
            if (path)
                rm_tree(path);
            free(path);
        }
    }
    if (d)
        closedir(d);
}

/* ---- recognising a CID --------------------------------------------------------------- */

bool ia_model_source_is_cid(const char *arg) {
    if (!arg || exists(arg))
        return false;
    if (strncmp(arg, "/ipfs/", 6) == 0)
        arg += 6;
    size_t n = strcspn(arg, "/");
    char first[IA_CID_MAX_STRING];
    if (n == 0 || n >= sizeof first)
        return false;
    memcpy(first, arg, n);
    first[n] = 0;
    ia_cid cid;
    return ia_cid_parse(first, &cid) == IA_OK;
}

/* ---- the plan ---------------------------------------------------------------------------- */

static void plan_free(plan *p) {
    for (size_t i = 0; i < p->n; i++) {
        free(p->v[i].rel);
        free(p->v[i].source);
    }
    free(p->v);
    memset(p, 0, sizeof *p);
}

static plan_entry *plan_push(plan *p, const char *rel, const ia_cid *cid, entry_kind kind) {
    if (!ia_array_reserve(&p->v, &p->cap, p->n + 1, sizeof *p->v, 16))
        return NULL;
    plan_entry *e = &p->v[p->n];
    memset(e, 0, sizeof *e);
    if (!(e->rel = ia_strdup(rel)))
        return NULL;
    if (cid)
        e->cid = *cid;
    e->kind = kind;
    p->n++;
    return e;
}

static ia_status leaf_push(leaf_list *l, const ia_cid *cid, const ia_blockstore_ref *ref,
                           uint64_t at) {
    if (!ia_array_reserve(&l->v, &l->cap, l->n + 1, sizeof *l->v, 64))
        return IA_ENOMEM;
    leaf *f = &l->v[l->n++];
    f->cid = *cid;
    f->at = at;
    f->len = ref->length;
    f->n_prefix = (uint8_t)ref->n_prefix;
    f->n_suffix = (uint8_t)ref->n_suffix;
    memcpy(f->prefix, ref->prefix, ref->n_prefix);
    memcpy(f->suffix, ref->suffix, ref->n_suffix);
    f->bad = false;
    return IA_OK;
}

/* Where one file's leaves live while they are being collected. */
typedef struct ref_walk {
    ia_blockstore *bs;
    leaf_list *leaves;
    ia_blockstore_ref ref; /* scratch for each look-up */
    char source[IA_BLOCKSTORE_REF_PATH_MAX];
    uint64_t file_size;
    int64_t mtime_ns;
    uint64_t at;   /* bytes of the file covered so far */
    bool in_place; /* false once a leaf is not a reference into `source` */
} ref_walk;

/* Adds the leaves under cid, in order, while they stay references into one
 * file; clears w->in_place (and returns IA_OK) at the first that is not. */
static ia_status collect_leaves(ref_walk *w, const ia_cid *cid, int depth) {
    ia_status st = ia_blockstore_ref_get(w->bs, cid, &w->ref);
    if (st == IA_OK) {
        if (!w->leaves->n && !w->source[0]) {
            memcpy(w->source, w->ref.path, sizeof w->source);
            w->file_size = w->ref.file_size;
            w->mtime_ns = w->ref.mtime_ns;
        }
        /* Only the bytes' position matters (they are re-hashed where the
         * file puts them), so a repeated leaf, whose one reference points at
         * its first or last occurrence, still counts. */
        if (strcmp(w->ref.path, w->source) != 0 || w->ref.file_size != w->file_size ||
            w->ref.mtime_ns != w->mtime_ns || (w->ref.offset != w->at && !w->leaves->n)) {
            w->in_place = false;
            return IA_OK;
        }
        st = leaf_push(w->leaves, cid, &w->ref, w->at);
        w->at += w->ref.length;
        return st;
    }
    if (st != IA_ENOTFOUND)
        return st;
    if (cid->codec != IA_CODEC_DAG_PB || depth > 64) {
        w->in_place = false; /* a raw leaf stored by copy */
        return IA_OK;
    }
    uint8_t *data = NULL;
    size_t len = 0;
    ia_pb_node node = {0};
    ia_unixfs fs = {0};
    bool have_node = false, have_fs = false;
    if ((st = ia_blockstore_get(w->bs, cid, &data, &len)) ||
        (st = ia_dagpb_decode(data, len, &node)))
        goto done;
    have_node = true;
    if (node.has_data) {
        if ((st = ia_unixfs_decode(node.data, node.data_len, &fs)))
            goto done;
        have_fs = true;
    }
    /* an inner node carries no bytes of its own; one that does (or a leaf
     * stored by copy) is exported instead */
    if (node.n_links == 0 || (have_fs && fs.has_data && fs.data_len)) {
        w->in_place = false;
        goto done;
    }
    for (size_t i = 0; i < node.n_links && w->in_place && st == IA_OK; i++)
        st = collect_leaves(w, &node.links[i].cid, depth + 1);
done:
    if (have_fs)
        ia_unixfs_free(&fs);
    if (have_node)
        ia_pb_node_free(&node);
    free(data);
    return st;
}

/* Marks e in place (with its leaves in *leaves) when its bytes are exactly
 * one referenced file; else leaves it a copy. */
static ia_status plan_file(ia_blockstore *bs, plan_entry *e, leaf_list *leaves) {
    ref_walk *w = ia_calloc(1, sizeof *w);
    if (!w)
        return IA_ENOMEM;
    w->bs = bs;
    w->leaves = leaves;
    w->in_place = true;
    leaves->n = 0;
    ia_status st = collect_leaves(w, &e->cid, 0);
    if (st == IA_OK && w->in_place && leaves->n && w->at == e->size && w->file_size == e->size) {
        if (!(e->source = ia_strdup(w->source))) {
            st = IA_ENOMEM;
        } else {
            e->kind = ENTRY_IN_PLACE;
            e->file_size = w->file_size;
            e->mtime_ns = w->mtime_ns;
        }
    }
    if (e->kind != ENTRY_IN_PLACE)
        leaves->n = 0;
    free(w);
    return st;
}

/* ---- verification in place ------------------------------------------------------------- */

typedef struct verify_job {
    const uint8_t *data;
    leaf *leaves;
} verify_job;

static void verify_task(void *ctx, size_t i, int thread) {
    (void)thread;
    verify_job *j = ctx;
    leaf *f = &j->leaves[i];
    const uint8_t *bytes = j->data + f->at;
    if (f->n_prefix || f->n_suffix) { /* a dag-pb leaf: hash it with its framing */
        size_t n = (size_t)f->len + f->n_prefix + f->n_suffix;
        uint8_t *buf = ia_malloc(n);
        if (!buf) {
            f->bad = true;
            return;
        }
        memcpy(buf, f->prefix, f->n_prefix);
        memcpy(buf + f->n_prefix, bytes, (size_t)f->len);
        memcpy(buf + f->n_prefix + f->len, f->suffix, f->n_suffix);
        f->bad = ia_cid_verify(&f->cid, buf, n) != IA_OK;
        free(buf);
    } else {
        f->bad = ia_cid_verify(&f->cid, bytes, (size_t)f->len) != IA_OK;
    }
}

static int64_t mtime_ns(const struct stat *sb) {
    return (int64_t)sb->st_mtim.tv_sec * 1000000000 + sb->st_mtim.tv_nsec;
}

/* Re-hashes every leaf of an in-place file where the file holds it. */
static ia_status verify_in_place(const plan *p, const plan_entry *e, leaf_list *leaves,
                                 ia_threadpool **pool) {
    struct stat sb;
    ia_mapped_file mf = {0};
    ia_status st;
    if (stat(e->source, &sb) != 0)
        return ia_error_set(IA_EIO,
                            "model %s: %s, added to the store by reference, cannot be "
                            "opened: %s; add it again",
                            p->arg, e->source, strerror(errno));
    if ((uint64_t)sb.st_size != e->file_size || mtime_ns(&sb) != e->mtime_ns)
        return ia_error_set(IA_EIO,
                            "model %s: %s changed since it was added to the store by "
                            "reference (size or modification time differ); add it again",
                            p->arg, e->source);
    if ((st = ia_file_map(e->source, &mf)))
        return st;
    if (mf.size != e->file_size) {
        st = ia_error_set(IA_EIO,
                          "model %s: %s changed since it was added to the store by "
                          "reference (it is %zu bytes now); add it again",
                          p->arg, e->source, mf.size);
        goto fail;
    }
    if (!*pool && !(*pool = ia_threadpool_create(ia_cpu_physical_cores()))) {
        st = IA_ENOMEM;
        goto fail;
    }
    verify_job job = {mf.data, leaves->v};
    ia_threadpool_run(*pool, leaves->n, verify_task, &job);
    for (size_t i = 0; i < leaves->n; i++) {
        if (!leaves->v[i].bad)
            continue;
        char text[IA_CID_MAX_STRING];
        if (ia_cid_format(&leaves->v[i].cid, IA_BASE32, text, sizeof text))
            snprintf(text, sizeof text, "(unprintable)");
        st = ia_error_set(IA_EIO,
                          "model %s: %s changed since it was added to the store by "
                          "reference (bytes at offset %llu no longer hash to block %s); add it "
                          "again",
                          p->arg, e->source, (unsigned long long)leaves->v[i].at, text);
        goto fail;
    }
fail:
    ia_file_unmap(&mf);
    return st;
}

typedef struct head_buf {
    uint8_t b[4];
    size_t n;
} head_buf;

static ia_status take_head(void *ctx, const void *data, size_t len) {
    head_buf *h = ctx;
    size_t k = len < sizeof h->b - h->n ? len : sizeof h->b - h->n;
    memcpy(h->b + h->n, data, k);
    h->n += k;
    return IA_OK;
}

/* ---- walking the DAG into a plan -------------------------------------------------------- */

typedef struct ls_list {
    ia_ls_entry *v;
    char **names;
    size_t n, cap;
} ls_list;

static ia_status ls_take(void *ctx, const ia_ls_entry *entry) {
    ls_list *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        ia_ls_entry *v = ia_realloc_array(l->v, cap, sizeof *v);
        if (!v)
            return IA_ENOMEM;
        l->v = v;
        char **names = ia_realloc_array(l->names, cap, sizeof *names);
        if (!names)
            return IA_ENOMEM;
        l->names = names;
        l->cap = cap;
    }
    if (!(l->names[l->n] = ia_strdup(entry->name)))
        return IA_ENOMEM;
    l->v[l->n] = *entry;
    l->v[l->n].name = l->names[l->n];
    l->n++;
    return IA_OK;
}

static void ls_free(ls_list *l) {
    for (size_t i = 0; i < l->n; i++)
        free(l->names[i]);
    free(l->names);
    free(l->v);
}

typedef struct walk_ctx {
    ia_blockstore *bs;
    plan *p;
    leaf_list leaves; /* scratch for one file */
    ia_threadpool *pool;
    ia_model_source_info *info;
} walk_ctx;

static bool is_dir_type(ia_unixfs_type t) {
    return t == IA_UNIXFS_DIRECTORY || t == IA_UNIXFS_HAMT_SHARD;
}

/* A node's UnixFS type and file size. A block held by reference is a leaf
 * whose file bytes are the referenced range: answered without reading it, so
 * a changed source is reported once, by the verification, in its words. */
static ia_status node_info(ia_blockstore *bs, const ia_cid *cid, ia_unixfs_info *out) {
    ia_blockstore_ref *ref = ia_malloc(sizeof *ref);
    if (!ref)
        return IA_ENOMEM;
    ia_status st = ia_blockstore_ref_get(bs, cid, ref);
    if (st == IA_OK) {
        out->type = cid->codec == IA_CODEC_RAW ? IA_UNIXFS_RAW : IA_UNIXFS_FILE;
        out->size = ref->length;
    } else if (st == IA_ENOTFOUND) {
        st = ia_unixfs_stat(bs, cid, out);
    }
    free(ref);
    return st;
}

/* The first bytes of a file must say GGUF. An in-place file is looked at
 * where it is (only to refuse early: its bytes are verified next). */
static ia_status check_gguf(walk_ctx *w, const plan_entry *e) {
    head_buf h = {{0}, 0};
    ia_status st = IA_OK;
    if (e->kind == ENTRY_IN_PLACE) {
        FILE *f = fopen(e->source, "rb");
        h.n = f ? fread(h.b, 1, sizeof h.b, f) : 0;
        if (f)
            fclose(f);
    } else {
        st = ia_unixfs_cat(w->bs, &e->cid, 0, 4, take_head, &h);
    }
    if (st == IA_OK && (h.n < 4 || memcmp(h.b, "GGUF", 4) != 0))
        st = ia_error_set(IA_EUNSUPPORTED,
                          "model %s: a file CID must be a GGUF file (a model directory is added "
                          "as a directory)",
                          w->p->arg);
    return st;
}

/* Plans the file at rel, checks that it is a GGUF file when asked, and
 * verifies it when it is in place. */
static ia_status walk_file(walk_ctx *w, const char *rel, const ia_cid *cid, uint64_t size,
                           bool gguf) {
    plan_entry *e = plan_push(w->p, rel, cid, ENTRY_COPY);
    if (!e)
        return IA_ENOMEM;
    e->is_file = true;
    e->size = size;
    ia_status st = plan_file(w->bs, e, &w->leaves);
    if (st == IA_OK && gguf)
        st = check_gguf(w, e);
    if (st || e->kind != ENTRY_IN_PLACE) {
        w->info->files_copied += st == IA_OK;
        return st;
    }
    double t0 = ia_time_now();
    if ((st = verify_in_place(w->p, e, &w->leaves, &w->pool)))
        return st;
    w->info->verify_seconds += ia_time_now() - t0;
    w->info->bytes_verified += e->size;
    w->info->files_in_place++;
    return IA_OK;
}

/* A directory's entries with their types and sizes: a plain directory's
 * links (children held by reference are not read), a HAMT shard's through
 * ia_unixfs_ls. */
static ia_status list_dir(walk_ctx *w, const ia_cid *cid, ls_list *l) {
    uint8_t *data = NULL;
    size_t len = 0;
    ia_pb_node node = {0};
    ia_unixfs fs = {0};
    bool have_node = false, have_fs = false;
    char name[1024];
    ia_status st;
    if ((st = ia_blockstore_get(w->bs, cid, &data, &len)) ||
        (st = ia_dagpb_decode(data, len, &node)))
        goto done;
    have_node = true;
    if (node.has_data && (st = ia_unixfs_decode(node.data, node.data_len, &fs)) == IA_OK)
        have_fs = true;
    if (st)
        goto done;
    if (!have_fs || fs.type != IA_UNIXFS_DIRECTORY) {
        st = ia_unixfs_ls(w->bs, cid, ls_take, l);
        goto done;
    }
    for (size_t i = 0; i < node.n_links && st == IA_OK; i++) {
        const ia_pb_link *k = &node.links[i];
        if (k->name_len >= sizeof name || memchr(k->name, 0, k->name_len)) {
            st = ia_error_set(IA_EPARSE, "model %s: a directory entry's name is not a file name",
                              w->p->arg);
            break;
        }
        memcpy(name, k->name, k->name_len);
        name[k->name_len] = 0;
        ia_ls_entry e = {name, k->cid, IA_UNIXFS_RAW, 0};
        ia_unixfs_info ui;
        if ((st = node_info(w->bs, &k->cid, &ui))) {
            ia_error_prefix("entry '%s'", name);
            break;
        }
        e.type = ui.type;
        e.size = ui.size;
        st = ls_take(l, &e);
    }
done:
    if (have_fs)
        ia_unixfs_free(&fs);
    if (have_node)
        ia_pb_node_free(&node);
    free(data);
    return st;
}

static ia_status walk_dir(walk_ctx *w, const char *rel, const ia_cid *cid, int depth) {
    ls_list l = {0};
    char child[PATH_CAP];
    ia_status st = IA_OK;
    if (depth > 32)
        return ia_error_set(IA_ERANGE, "model %s: directories nest more than 32 deep", w->p->arg);
    if (!plan_push(w->p, rel, cid, ENTRY_DIR))
        return IA_ENOMEM;
    if ((st = list_dir(w, cid, &l)))
        goto done;
    for (size_t i = 0; i < l.n && st == IA_OK; i++) {
        const ia_ls_entry *c = &l.v[i];
        if (!*c->name || strchr(c->name, '/') || strcmp(c->name, ".") == 0 ||
            strcmp(c->name, "..") == 0) {
            st = ia_error_set(IA_EPARSE, "model %s: directory entry '%s' is not a file name",
                              w->p->arg, c->name);
            break;
        }
        int n = snprintf(child, sizeof child, "%s%s%s", rel, *rel ? "/" : "", c->name);
        if (n < 0 || (size_t)n >= sizeof child) {
            st = ia_error_set(IA_ERANGE, "model %s: the path %s/%s is too long", w->p->arg, rel,
                              c->name);
            break;
        }
        if (is_dir_type(c->type))
            st = walk_dir(w, child, &c->cid, depth + 1);
        else if (c->type == IA_UNIXFS_FILE || c->type == IA_UNIXFS_RAW)
            st = walk_file(w, child, &c->cid, c->size, false);
        else /* symlinks and the rest: exported as the store has them */
            st = plan_push(w->p, child, &c->cid, ENTRY_COPY) ? IA_OK : IA_ENOMEM;
    }
done:
    ls_free(&l);
    return st;
}

/* ---- the cache entry --------------------------------------------------------------------- */

/* true when the entry at `final` is what the plan describes. */
static bool entry_matches(const plan *p, const char *final) {
    char path[PATH_CAP], target[PATH_MAX];
    for (size_t i = 0; i < p->n; i++) {
        const plan_entry *e = &p->v[i];
        struct stat sb;
        int n = snprintf(path, sizeof path, "%s%s%s", final, *e->rel ? "/" : "", e->rel);
        if (n < 0 || (size_t)n >= sizeof path || lstat(path, &sb) != 0)
            return false;
        switch (e->kind) {
        case ENTRY_DIR:
            if (!S_ISDIR(sb.st_mode))
                return false;
            break;
        case ENTRY_IN_PLACE: {
            ssize_t len = S_ISLNK(sb.st_mode) ? readlink(path, target, sizeof target - 1) : -1;
            if (len < 0)
                return false;
            target[len] = 0;
            if (strcmp(target, e->source) != 0)
                return false;
            break;
        }
        case ENTRY_COPY:
            if (e->is_file && (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size != e->size))
                return false;
            break;
        }
    }
    return true;
}

/* Builds the entry under tmp (which must not exist). */
static ia_status build_entry(ia_blockstore *bs, const plan *p, const char *tmp) {
    char path[PATH_CAP];
    ia_status st = IA_OK;
    bool was = ia_blockstore_hash_on_read(bs);
    /* the store trusts its blocks on read; an export that becomes a model
     * re-hashes every one */
    ia_blockstore_set_hash_on_read(bs, true);
    for (size_t i = 0; i < p->n && st == IA_OK; i++) {
        const plan_entry *e = &p->v[i];
        int n = snprintf(path, sizeof path, "%s%s%s", tmp, *e->rel ? "/" : "", e->rel);
        if (n < 0 || (size_t)n >= sizeof path)
            st = ia_error_set(IA_ERANGE, "the cache path %s/%s is too long", tmp, e->rel);
        else if (e->kind == ENTRY_DIR && mkdir(path, 0755) != 0)
            st = ia_error_set(IA_EIO, "cannot create %s: %s", path, strerror(errno));
        else if (e->kind == ENTRY_IN_PLACE && symlink(e->source, path) != 0)
            st = ia_error_set(IA_EIO, "cannot create the symlink %s: %s", path, strerror(errno));
        else if (e->kind == ENTRY_COPY)
            st = ia_unixfs_get(bs, &e->cid, path);
    }
    ia_blockstore_set_hash_on_read(bs, was);
    return st;
}

/* Makes `final` hold the plan: kept when it already does, else built under
 * final.tmp-PID and renamed into place. */
static ia_status entry_make(ia_blockstore *bs, const plan *p, const char *root, const char *key,
                            const char *final, bool *built) {
    *built = false;
    if (entry_matches(p, final))
        return IA_OK;
    if (exists(final))
        rm_tree(final); /* not what this CID holds: made by hand, cut short, or stale */
    rm_stale_builds(root, key);
    char tmp[PATH_CAP];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp-%ld", final, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp)
        return ia_error_set(IA_ERANGE, "the cache path %s is too long", final);
    rm_tree(tmp); /* a crashed start of this pid's predecessor */
    ia_log(IA_LOG_INFO, "model %s: making its cache entry %s", p->arg, final);
    ia_status st = build_entry(bs, p, tmp);
    if (st == IA_OK && rename(tmp, final) != 0) {
        /* another process built it first: theirs is as good as ours */
        if ((errno == EEXIST || errno == ENOTEMPTY) && entry_matches(p, final))
            rm_tree(tmp);
        else
            st = ia_error_set(IA_EIO, "cannot rename %s to %s: %s", tmp, final, strerror(errno));
    }
    if (st)
        rm_tree(tmp);
    else
        *built = true;
    return st;
}

/* ---- resolving ----------------------------------------------------------------------------- */

ia_status ia_model_source_resolve_in(ia_blockstore *bs, const char *arg, char **path,
                                     ia_model_source_info *info) {
    ia_model_source_info scratch;
    info = info ? info : &scratch;
    memset(info, 0, sizeof *info);
    info->from_store = true;
    *path = NULL;
    ia_cid cid, v1;
    ia_unixfs_info ui;
    char key[IA_CID_MAX_STRING], *root = NULL, *final = NULL;
    plan p = {.arg = arg};
    walk_ctx w = {.bs = bs, .p = &p, .info = info};
    ia_status st = ia_unixfs_resolve(bs, arg, &cid);
    if (st == IA_OK && !ia_blockstore_has(bs, &cid))
        st = ia_error_set(IA_ENOTFOUND, "no block %s", arg);
    if (st) {
        ia_error_prefix("model %s: not in the local store at %s (add it with `ipfs-accelerate "
                        "add`, or fetch it with `get --from`)",
                        arg, ia_blockstore_dir(bs));
        return st;
    }
    if ((st = node_info(bs, &cid, &ui)))
        goto fail;
    bool dir = is_dir_type(ui.type);
    if (dir)
        st = walk_dir(&w, "", &cid, 0);
    else if (ui.type != IA_UNIXFS_FILE && ui.type != IA_UNIXFS_RAW)
        st = ia_error_set(IA_EUNSUPPORTED, "model %s: neither a directory nor a file", arg);
    else if (!plan_push(&p, "", NULL, ENTRY_DIR))
        st = IA_ENOMEM;
    else
        st = walk_file(&w, "model.gguf", &cid, ui.size, true);
    if (st)
        goto fail;
    /* one cache entry per DAG, whichever CID version names it */
    if ((st = ia_cid_convert(&cid, 1, &v1)) ||
        (st = ia_cid_format(&v1, IA_BASE32, key, sizeof key)) || (st = cache_root(&root)))
        goto fail;
    if (!(final = ia_path_join(root, key))) {
        st = IA_ENOMEM;
        goto fail;
    }
    if ((st = entry_make(bs, &p, root, key, final, &info->exported)))
        goto fail;
    if (dir) {
        *path = final;
        final = NULL;
    } else if (!(*path = ia_path_join(final, "model.gguf"))) {
        st = IA_ENOMEM;
        goto fail;
    }
    if (info->files_in_place)
        ia_log(IA_LOG_INFO,
               "model %s: %zu file(s) mapped in place (%.1f MB re-hashed in %.3f s), %zu "
               "exported",
               arg, info->files_in_place, (double)info->bytes_verified / 1e6, info->verify_seconds,
               info->files_copied);
fail:
    if (st && !strstr(ia_error_message(), arg))
        ia_error_prefix("model %s", arg);
    ia_threadpool_destroy(w.pool);
    free(w.leaves.v);
    plan_free(&p);
    free(root);
    free(final);
    return st;
}

ia_status ia_model_source_resolve(const char *arg, const char *repo_dir, char **path,
                                  ia_model_source_info *info) {
    if (info)
        memset(info, 0, sizeof *info);
    *path = NULL;
    if (!arg || !*arg)
        return ia_error_set(IA_EINVAL, "no model given");
    if (exists(arg))
        return (*path = ia_strdup(arg)) ? IA_OK : IA_ENOMEM;
    if (!ia_model_source_is_cid(arg))
        return ia_error_set(IA_ENOTFOUND,
                            "%s: no such file or directory (and not the CID of a model in the "
                            "local store)",
                            arg);
    char *owned = NULL;
    ia_blockstore *bs = NULL;
    if (!repo_dir && !(repo_dir = owned = ia_repo_default_path()))
        return IA_ENOMEM;
    ia_status st = ia_blockstore_open(repo_dir, &bs);
    free(owned);
    if (st)
        return st;
    st = ia_model_source_resolve_in(bs, arg, path, info);
    ia_blockstore_close(bs);
    return st;
}
