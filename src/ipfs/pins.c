/*
 * Pins, DAG walks and repo maintenance.
 *
 * A pin says "keep this": direct pins keep one block, recursive pins keep a
 * whole DAG. They live in the repo database (table pins, keyed by multihash
 * like the blocks, with the CID as given for listing). Walks follow links by
 * codec (ia_block_links, in car.c beside the CBOR reader) and visit each
 * block once; raw leaves have no links, so a walk that only needs the shape
 * of a DAG checks that they are present without reading them, which keeps
 * pinning a multi-gigabyte model cheap.
 *
 * gc marks everything reachable from the pins, then removes the rest and any
 * temporary files left by killed writers. It takes the repo's exclusive lock
 * first, so a block that another process has put but not yet pinned is never
 * swept. verify re-reads every block (the read path re-hashes) and reports
 * the bad ones without stopping.
 */
#include "ia/ipfs.h"
#include "ipfs/ipfs_internal.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#define WALK_MAX_DEPTH 4096

/* ---- multihash set ------------------------------------------------------------ */

typedef struct mh_slot {
    uint64_t hash;
    uint8_t *key; /* NULL: empty */
    size_t len;
} mh_slot;

struct ia_mh_set {
    mh_slot *slots;
    size_t cap, count;
};

static uint64_t fnv1a(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

ia_mh_set *ia_mh_set_create(void) {
    ia_mh_set *set = ia_calloc(1, sizeof *set);
    if (set && !(set->slots = ia_calloc(set->cap = 64, sizeof *set->slots))) {
        free(set);
        return NULL;
    }
    return set;
}

void ia_mh_set_destroy(ia_mh_set *set) {
    if (!set)
        return;
    for (size_t i = 0; i < set->cap; i++)
        free(set->slots[i].key);
    free(set->slots);
    free(set);
}

static mh_slot *find_slot(mh_slot *slots, size_t cap, uint64_t h, const uint8_t *key, size_t len) {
    for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1)) {
        mh_slot *s = &slots[i];
        if (!s->key || (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0))
            return s;
    }
}

static bool grow(ia_mh_set *set) {
    size_t cap = set->cap * 2;
    mh_slot *slots = ia_calloc(cap, sizeof *slots);
    if (!slots)
        return false;
    for (size_t i = 0; i < set->cap; i++)
        if (set->slots[i].key)
            *find_slot(slots, cap, set->slots[i].hash, set->slots[i].key, set->slots[i].len) =
                set->slots[i];
    free(set->slots);
    set->slots = slots;
    set->cap = cap;
    return true;
}

int ia_mh_set_add(ia_mh_set *set, const ia_cid *cid) {
    uint8_t mh[IA_CID_MAX_BYTES];
    size_t len = ia_bs_multihash(cid, mh);
    uint64_t h = fnv1a(mh, len);
    if ((set->count + 1) * 4 > set->cap * 3 && !grow(set))
        return -1;
    mh_slot *s = find_slot(set->slots, set->cap, h, mh, len);
    if (s->key)
        return 0;
    if (!(s->key = ia_malloc(len)))
        return -1;
    memcpy(s->key, mh, len);
    s->len = len;
    s->hash = h;
    set->count++;
    return 1;
}

bool ia_mh_set_has(const ia_mh_set *set, const ia_cid *cid) {
    uint8_t mh[IA_CID_MAX_BYTES];
    size_t len = ia_bs_multihash(cid, mh);
    return find_slot(set->slots, set->cap, fnv1a(mh, len), mh, len)->key != NULL;
}

size_t ia_mh_set_count(const ia_mh_set *set) { return set->count; }

/* ---- walks -------------------------------------------------------------------------- */

typedef struct walk {
    ia_blockstore *bs;
    ia_mh_set *seen;
    bool skip_missing;
    ia_dag_visit_fn fn; /* NULL: shape only (raw leaves are not read) */
    void *ctx;
} walk;

static ia_status walk_node(walk *w, const ia_cid *cid, int depth) {
    char text[IA_CID_MAX_STRING];
    int added = ia_mh_set_add(w->seen, cid);
    if (added <= 0)
        return added < 0 ? IA_ENOMEM : IA_OK;
    if (depth > WALK_MAX_DEPTH) {
        ia_cid_format(cid, IA_BASE32, text, sizeof text);
        return ia_error_set(IA_ERANGE, "block %s: the DAG is deeper than %d levels", text,
                            WALK_MAX_DEPTH);
    }
    bool leaf = cid->codec == IA_CODEC_RAW || cid->mh_code == IA_MH_IDENTITY;
    /* A dag-pb leaf kept as a reference (get --from of a CIDv0 file) is
     * known to have no links: not read (and re-hashed) for the shape. */
    if (!leaf && !w->fn && cid->codec == IA_CODEC_DAG_PB)
        leaf = ia_bs_ref_is_leaf(w->bs, cid);
    if (leaf && !w->fn) {
        if (ia_blockstore_has(w->bs, cid) || w->skip_missing)
            return IA_OK;
        ia_cid_format(cid, IA_BASE32, text, sizeof text);
        return ia_error_set(IA_ENOTFOUND, "block %s is not in the repo %s", text,
                            ia_blockstore_dir(w->bs));
    }
    uint8_t *data = NULL;
    size_t len = 0;
    ia_cid *links = NULL;
    size_t n_links = 0;
    ia_status st = ia_blockstore_get(w->bs, cid, &data, &len);
    if (st == IA_ENOTFOUND && w->skip_missing) {
        ia_error_clear();
        return IA_OK;
    }
    if (st || (w->fn && (st = w->fn(w->ctx, cid, data, len))))
        goto done;
    if ((st = ia_block_links(cid, data, len, &links, &n_links)))
        goto done;
    free(data); /* links are copies: free the block before going down */
    data = NULL;
    for (size_t i = 0; i < n_links && st == IA_OK; i++)
        st = walk_node(w, &links[i], depth + 1);
done:
    free(data);
    free(links);
    return st;
}

ia_status ia_dag_walk(ia_blockstore *bs, const ia_cid *root, bool skip_missing, ia_dag_visit_fn fn,
                      void *ctx) {
    walk w = {bs, ia_mh_set_create(), skip_missing, fn, ctx};
    if (!w.seen)
        return IA_ENOMEM;
    ia_status st = walk_node(&w, root, 0);
    ia_mh_set_destroy(w.seen);
    return st;
}

/* ---- pins ------------------------------------------------------------------------------- */

const char *ia_pin_type_name(ia_pin_type type) {
    switch (type) {
    case IA_PIN_DIRECT:
        return "direct";
    case IA_PIN_RECURSIVE:
        return "recursive";
    case IA_PIN_INDIRECT:
        return "indirect";
    default:
        return "all";
    }
}

static ia_status db_error(ia_blockstore *bs, const char *what) {
    return ia_error_set(IA_EIO, "%s/repo.sqlite: %s: %s", ia_blockstore_dir(bs), what,
                        sqlite3_errmsg(ia_bs_db(bs)));
}

ia_status ia_pin_add(ia_blockstore *bs, const ia_cid *cid, ia_pin_type type) {
    char text[IA_CID_MAX_STRING];
    ia_cid_format(cid, IA_BASE32, text, sizeof text);
    if (type != IA_PIN_DIRECT && type != IA_PIN_RECURSIVE)
        return ia_error_set(IA_EINVAL, "pin %s: the type must be direct or recursive", text);
    ia_status st;
    if (type == IA_PIN_RECURSIVE) {
        if ((st = ia_dag_walk(bs, cid, false, NULL, NULL))) {
            ia_error_prefix("cannot pin %s recursively", text);
            return st;
        }
    } else if (!ia_blockstore_has(bs, cid)) {
        return ia_error_set(IA_ENOTFOUND, "cannot pin %s: the block is not in the repo %s", text,
                            ia_blockstore_dir(bs));
    }
    if ((st = ia_bs_lock_writer(bs)))
        return st;
    uint8_t bin[IA_CID_MAX_BYTES], mh[IA_CID_MAX_BYTES];
    size_t bin_len = ia_cid_encode(cid, bin), mh_len = ia_bs_multihash(cid, mh);
    sqlite3 *db = ia_bs_db(bs);
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO pins(cid, mh, type) VALUES (?, ?, ?)", -1,
                           &q, NULL) != SQLITE_OK)
        return db_error(bs, "cannot record a pin");
    sqlite3_bind_blob(q, 1, bin, (int)bin_len, SQLITE_STATIC);
    sqlite3_bind_blob(q, 2, mh, (int)mh_len, SQLITE_STATIC);
    sqlite3_bind_int(q, 3, (int)type);
    st = sqlite3_step(q) == SQLITE_DONE ? IA_OK : db_error(bs, "cannot record a pin");
    sqlite3_finalize(q);
    return st;
}

/* Runs a statement keyed by cid's multihash. A SELECT puts its first
 * column in *out (0 when no row); a DELETE puts the rows it removed. */
static ia_status by_mh(ia_blockstore *bs, const char *sql, const ia_cid *cid, int *out) {
    uint8_t mh[IA_CID_MAX_BYTES];
    size_t mh_len = ia_bs_multihash(cid, mh);
    sqlite3 *db = ia_bs_db(bs);
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
        return db_error(bs, "cannot read pins");
    sqlite3_bind_blob(q, 1, mh, (int)mh_len, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    ia_status st = IA_OK;
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int(q, 0);
    else if (rc == SQLITE_DONE)
        *out = strncmp(sql, "SELECT", 6) == 0 ? 0 : sqlite3_changes(db);
    else
        st = db_error(bs, "cannot update pins");
    sqlite3_finalize(q);
    return st;
}

ia_status ia_pin_remove(ia_blockstore *bs, const ia_cid *cid) {
    ia_status st;
    int changed = 0;
    if ((st = ia_bs_lock_writer(bs)) ||
        (st = by_mh(bs, "DELETE FROM pins WHERE mh = ?", cid, &changed)))
        return st;
    if (!changed) {
        char text[IA_CID_MAX_STRING];
        ia_cid_format(cid, IA_BASE32, text, sizeof text);
        return ia_error_set(IA_ENOTFOUND, "%s is not pinned", text);
    }
    return IA_OK;
}

ia_status ia_pin_get(ia_blockstore *bs, const ia_cid *cid, ia_pin_type *type) {
    int t = 0;
    ia_status st = by_mh(bs, "SELECT type FROM pins WHERE mh = ?", cid, &t);
    if (st)
        return st;
    if (t != IA_PIN_DIRECT && t != IA_PIN_RECURSIVE) {
        char text[IA_CID_MAX_STRING];
        ia_cid_format(cid, IA_BASE32, text, sizeof text);
        return ia_error_set(IA_ENOTFOUND, "%s is not pinned", text);
    }
    *type = (ia_pin_type)t;
    return IA_OK;
}

/* The pins of one stored type, in the order they were made. */
static ia_status read_pins(ia_blockstore *bs, ia_pin_type type, ia_cid **out, size_t *n) {
    *out = NULL;
    *n = 0;
    sqlite3 *db = ia_bs_db(bs);
    sqlite3_stmt *q = NULL;
    ia_status st = IA_OK;
    size_t cap = 0;
    if (sqlite3_prepare_v2(db, "SELECT cid FROM pins WHERE type = ? ORDER BY rowid", -1, &q,
                           NULL) != SQLITE_OK)
        return db_error(bs, "cannot list pins");
    sqlite3_bind_int(q, 1, (int)type);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const uint8_t *bin = sqlite3_column_blob(q, 0);
        int len = sqlite3_column_bytes(q, 0);
        ia_cid cid;
        size_t used;
        if (!bin || ia_cid_decode(bin, (size_t)len, &cid, &used) != IA_OK) {
            ia_log(IA_LOG_WARN, "%s/repo.sqlite: skipping an unreadable pin",
                   ia_blockstore_dir(bs));
            continue;
        }
        if (*n == cap) {
            ia_cid *grown = ia_realloc_array(*out, cap = cap ? cap * 2 : 16, sizeof **out);
            if (!grown) {
                st = IA_ENOMEM;
                break;
            }
            *out = grown;
        }
        (*out)[(*n)++] = cid;
    }
    if (st == IA_OK && rc != SQLITE_DONE)
        st = db_error(bs, "cannot list pins");
    sqlite3_finalize(q);
    if (st) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return st;
}

typedef struct indirect_ctx {
    ia_mh_set *roots;
    ia_mh_set *listed;
    ia_pin_fn fn;
    void *ctx;
} indirect_ctx;

static ia_status list_indirect(void *ctx, const ia_cid *cid, const uint8_t *data, size_t len) {
    indirect_ctx *ic = ctx;
    if (ia_mh_set_has(ic->roots, cid))
        return IA_OK;
    int added = ia_mh_set_add(ic->listed, cid);
    if (added < 0)
        return IA_ENOMEM;
    return added ? ic->fn(ic->ctx, cid, IA_PIN_INDIRECT) : IA_OK;
}

ia_status ia_pin_list(ia_blockstore *bs, ia_pin_type type, ia_pin_fn fn, void *ctx) {
    ia_cid *direct = NULL, *rec = NULL;
    size_t n_direct = 0, n_rec = 0;
    indirect_ctx ic = {NULL, NULL, fn, ctx};
    ia_status st;
    if ((st = read_pins(bs, IA_PIN_DIRECT, &direct, &n_direct)) ||
        (st = read_pins(bs, IA_PIN_RECURSIVE, &rec, &n_rec)))
        goto done;
    for (size_t i = 0; i < n_direct && !st && (type == IA_PIN_ALL || type == IA_PIN_DIRECT); i++)
        st = fn(ctx, &direct[i], IA_PIN_DIRECT);
    for (size_t i = 0; i < n_rec && !st && (type == IA_PIN_ALL || type == IA_PIN_RECURSIVE); i++)
        st = fn(ctx, &rec[i], IA_PIN_RECURSIVE);
    if (st || (type != IA_PIN_ALL && type != IA_PIN_INDIRECT))
        goto done;
    if (!(ic.roots = ia_mh_set_create()) || !(ic.listed = ia_mh_set_create())) {
        st = IA_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < n_direct + n_rec; i++)
        if (ia_mh_set_add(ic.roots, i < n_direct ? &direct[i] : &rec[i - n_direct]) < 0) {
            st = IA_ENOMEM;
            goto done;
        }
    for (size_t i = 0; i < n_rec && !st; i++)
        st = ia_dag_walk(bs, &rec[i], true, list_indirect, &ic);
done:
    ia_mh_set_destroy(ic.roots);
    ia_mh_set_destroy(ic.listed);
    free(direct);
    free(rec);
    return st;
}

/* ---- gc, verify, stat ----------------------------------------------------------------- */

typedef struct cid_list {
    ia_cid *v;
    size_t n, cap;
    const ia_mh_set *keep; /* collect only CIDs not in keep (NULL: all) */
} cid_list;

static ia_status collect(void *ctx, const ia_cid *cid) {
    cid_list *l = ctx;
    if (l->keep && ia_mh_set_has(l->keep, cid))
        return IA_OK;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        ia_cid *v = ia_realloc_array(l->v, cap, sizeof *v);
        if (!v)
            return IA_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *cid;
    return IA_OK;
}

/* Marks every block reachable from a pin. Missing blocks below a pin are
 * skipped (nothing to keep); a corrupt interior block stops gc, since its
 * children cannot be found and would be swept. */
static ia_status mark(ia_blockstore *bs, ia_mh_set *keep) {
    ia_cid *direct = NULL, *rec = NULL;
    size_t n_direct = 0, n_rec = 0;
    ia_status st;
    if ((st = read_pins(bs, IA_PIN_DIRECT, &direct, &n_direct)) ||
        (st = read_pins(bs, IA_PIN_RECURSIVE, &rec, &n_rec)))
        goto done;
    for (size_t i = 0; i < n_direct && !st; i++)
        if (ia_mh_set_add(keep, &direct[i]) < 0)
            st = IA_ENOMEM;
    walk w = {bs, keep, true, NULL, NULL};
    for (size_t i = 0; i < n_rec && !st; i++)
        st = walk_node(&w, &rec[i], 0);
done:
    free(direct);
    free(rec);
    return st;
}

ia_status ia_repo_gc(ia_blockstore *bs, ia_cid_fn removed, void *ctx, uint64_t *n_removed) {
    if (n_removed)
        *n_removed = 0;
    ia_mh_set *keep = NULL;
    cid_list dead = {0};
    ia_status st = ia_bs_lock_exclusive(bs, "gc", true);
    if (st)
        return st;
    if (!(keep = ia_mh_set_create())) {
        st = IA_ENOMEM;
        goto done;
    }
    if ((st = mark(bs, keep))) {
        ia_error_prefix("gc stopped before removing anything");
        goto done;
    }
    dead.keep = keep;
    if ((st = ia_bs_foreach(bs, true, collect, &dead)))
        goto done;
    for (size_t i = 0; i < dead.n && !st; i++) {
        if ((st = ia_blockstore_remove(bs, &dead.v[i])) == IA_ENOTFOUND) {
            ia_error_clear(); /* a block with both a copy and a reference: already gone */
            st = IA_OK;
            continue;
        }
        if (st)
            break;
        if (n_removed)
            (*n_removed)++;
        if (removed)
            st = removed(ctx, &dead.v[i]);
    }
done:
    ia_bs_unlock_exclusive(bs);
    ia_mh_set_destroy(keep);
    free(dead.v);
    return st;
}

ia_status ia_repo_verify(ia_blockstore *bs, ia_repo_bad_fn bad, void *ctx, uint64_t *n_checked,
                         uint64_t *n_bad) {
    cid_list all = {0};
    ia_mh_set *seen = NULL;
    bool hashed = ia_blockstore_hash_on_read(bs);
    *n_checked = *n_bad = 0;
    ia_blockstore_set_hash_on_read(bs, true); /* verify is the one read that always re-hashes */
    /* Temporary files are only removable when no other process is writing. */
    bool exclusive = ia_bs_lock_exclusive(bs, "cleaning temporary files", false) == IA_OK;
    ia_error_clear();
    ia_status st = ia_bs_foreach(bs, exclusive, collect, &all);
    if (exclusive)
        ia_bs_unlock_exclusive(bs);
    if (st)
        goto done;
    if (!(seen = ia_mh_set_create())) {
        st = IA_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < all.n; i++) {
        int added = ia_mh_set_add(seen, &all.v[i]);
        if (added < 0) {
            st = IA_ENOMEM;
            goto done;
        }
        if (!added)
            continue; /* a copy and a reference of one block: the read checks the copy */
        uint8_t *data = NULL;
        size_t len;
        ia_status bst = ia_blockstore_get(bs, &all.v[i], &data, &len);
        free(data);
        (*n_checked)++;
        if (bst == IA_ENOMEM) {
            st = bst;
            goto done;
        }
        if (bst) {
            (*n_bad)++;
            if (bad)
                bad(ctx, &all.v[i], bst, ia_error_message());
        }
    }
done:
    ia_blockstore_set_hash_on_read(bs, hashed);
    ia_mh_set_destroy(seen);
    free(all.v);
    return st;
}

static ia_status count_one(void *ctx, const ia_cid *cid) {
    (*(uint64_t *)ctx)++;
    return IA_OK;
}

ia_status ia_repo_stat(ia_blockstore *bs, ia_repo_stats *out) {
    memset(out, 0, sizeof *out);
    ia_status st = ia_blockstore_foreach(bs, count_one, &out->num_objects);
    if (st)
        return st;
    out->repo_size = ia_bs_disk_usage(bs);
    return IA_OK;
}
