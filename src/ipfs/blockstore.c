/*
 * The on-disk blockstore: one file per block, laid out like Kubo's flatfs
 * (blocks/<shard>/<KEY>.data, KEY the multihash in upper-case unpadded
 * base32, shard its next-to-last two characters), so a block is keyed by its
 * multihash whatever the CID's codec or version.
 *
 * A block is written to a temporary file in its shard folder, fsynced, renamed
 * over its final name and the folder fsynced: a reader sees the whole block or
 * nothing, a killed writer leaves only a ".put-*" file (ignored here, removed
 * by gc and verify), and concurrent puts of one block are harmless.
 *
 * Bulk writers (add, car import, fetch) open a batch: each put writes its
 * temporary file without fsync and queues it; a commit (every BATCH_MAX_BYTES
 * or BATCH_MAX_BLOCKS, and at the end) syncs the file system once (syncfs),
 * renames the queued files into place and syncs again. The guarantee is the
 * same as block by block (a block's final name only ever holds its whole,
 * synced bytes) at two syncs per batch instead of two per block; each
 * temporary file's writeback is started as soon as it is written
 * (sync_file_range), so the disk works while the caller goes on. syncfs
 * also flushes other writers' dirty data on the same file system, which is
 * the price of one sync per batch.
 *
 * Reads trust the store by default, as Kubo does (Datastore.HashOnRead is
 * false there): a block's bytes were verified before they were written and
 * `repo verify` re-hashes everything. ia_blockstore_set_hash_on_read turns
 * re-hashing on for every read (cat --verify); a block that rotted on disk
 * is then reported, never returned. --nocopy references are always
 * re-hashed, since the file they point into is not ours to trust.
 *
 * --nocopy references (a block that is bytes [offset, offset+len) of a file
 * outside the repo) live in SQLite (repo.sqlite, WAL mode) beside the pins,
 * with the source's size and mtime when recorded: a changed source is an
 * error on read. A reference may also carry a few bytes to put before and
 * after the range: a dag-pb leaf (CIDv0's UnixFS File wrapping) is its
 * protobuf framing around one contiguous range of the file, so `get --from`
 * keeps such leaves as references into the file it wrote too. The fetch
 * records its references as pending (file_size -1) while the output is being
 * written, and finishes them (size and mtime) once it is complete under its
 * final name; pending references count as absent. pins.c shares the
 * database through ipfs_internal.h.
 *
 * Processes coordinate with flock on repo.lock: a handle takes a shared lock
 * once it first writes (puts, references, pins) and keeps it; gc converts it
 * to an exclusive lock so that it never removes a block another process has
 * just added but not yet pinned.
 */
#define _GNU_SOURCE /* syncfs, sync_file_range */
#include "ia/ipfs.h"
#include "ipfs/ipfs_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SCHEMA_VERSION 2
#define BLOCK_MAX_BYTES ((size_t)1 << 30) /* sanity bound on one block file */
#define KEY_MAX 256
#define BATCH_MAX_BYTES ((uint64_t)256 << 20) /* queued bytes before a commit */
#define BATCH_MAX_BLOCKS 4096

/* A block written to its temporary name, waiting for the batch's commit. */
typedef struct pending_block {
    char *tmp, *file; /* malloc'd paths */
} pending_block;

struct ia_blockstore {
    char *dir;
    char *blocks_dir;
    sqlite3 *db;
    sqlite3_stmt *ref_q;      /* ref_lookup's statement, prepared once */
    pthread_mutex_t ref_lock; /* ... used by one thread at a time */
    int lock_fd;
    int lock_held; /* 0, LOCK_SH or LOCK_EX */
    bool hash_on_read;
    int batch_depth;          /* > 0 while a batch is open (batches nest) */
    size_t batch_max_blocks;  /* commit when this many blocks are queued */
    uint64_t batch_max_bytes; /* or this many bytes */
    pending_block *pending;
    size_t n_pending, cap_pending;
    uint64_t pending_bytes;
};

/* ---- keys and paths --------------------------------------------------------- */

/* The multihash bytes of a CID: varint code, varint length, digest. */
size_t ia_bs_multihash(const ia_cid *cid, uint8_t *buf) {
    size_t n = ia_varint_encode(cid->mh_code, buf);
    n += ia_varint_encode(cid->digest_len, buf + n);
    memcpy(buf + n, cid->digest, cid->digest_len);
    return n + cid->digest_len;
}

static void base32_upper(const uint8_t *data, size_t len, char *out) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | data[i];
        bits += 8;
        while (bits >= 5) {
            out[o++] = alphabet[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0)
        out[o++] = alphabet[(acc << (5 - bits)) & 31];
    out[o] = '\0';
}

/* Decodes an upper-case unpadded base32 key; false when it is not one. */
static bool base32_upper_decode(const char *s, size_t slen, uint8_t *out, size_t cap,
                                size_t *out_len) {
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < slen; i++) {
        char c = s[i];
        uint32_t v;
        if (c >= 'A' && c <= 'Z')
            v = (uint32_t)(c - 'A');
        else if (c >= '2' && c <= '7')
            v = (uint32_t)(c - '2' + 26);
        else
            return false;
        acc = (acc << 5) | v;
        bits += 5;
        if (bits >= 8) {
            if (o >= cap)
                return false;
            out[o++] = (uint8_t)(acc >> (bits - 8));
            bits -= 8;
        }
    }
    *out_len = o;
    return true;
}

static void block_key(const ia_cid *cid, char key[KEY_MAX]) {
    uint8_t mh[IA_CID_MAX_BYTES];
    size_t n = ia_bs_multihash(cid, mh);
    base32_upper(mh, n, key);
}

/* A key's shard folder: its next-to-last two characters, as Kubo's flatfs. */
static void block_shard(const char *key, char shard[3]) {
    size_t klen = strlen(key);
    shard[0] = klen >= 3 ? key[klen - 3] : '_';
    shard[1] = klen >= 3 ? key[klen - 2] : '_';
    shard[2] = '\0';
}

/* blocks/<shard>/<KEY>.data and its folder (malloc'd). */
static ia_status block_paths(const ia_blockstore *bs, const ia_cid *cid, char **file,
                             char **shard_dir) {
    char key[KEY_MAX], shard[3];
    block_key(cid, key);
    block_shard(key, shard);
    size_t klen = strlen(key);
    size_t need = strlen(bs->blocks_dir) + klen + 16;
    char *f = ia_malloc(need), *d = ia_malloc(need);
    if (!f || !d) {
        free(f);
        free(d);
        return IA_ENOMEM;
    }
    snprintf(d, need, "%s/%s", bs->blocks_dir, shard);
    snprintf(f, need, "%s/%s.data", d, key);
    *file = f;
    if (shard_dir)
        *shard_dir = d;
    else
        free(d);
    return IA_OK;
}

static void cid_text(const ia_cid *cid, char buf[IA_CID_MAX_STRING]) {
    if (ia_cid_format(cid, IA_BASE32, buf, IA_CID_MAX_STRING) != IA_OK)
        snprintf(buf, IA_CID_MAX_STRING, "<unprintable CID>");
}

/* ---- open and close ------------------------------------------------------------ */

char *ia_repo_default_path(void) {
    const char *home = getenv("IPFS_ACCELERATE_HOME");
    if (home && *home)
        return ia_strdup(home);
    char buf[PATH_MAX];
    home = getenv("HOME");
    snprintf(buf, sizeof buf, "%s/.local/share/ipfs-accelerate", home && *home ? home : ".");
    return ia_strdup(buf);
}

/* mkdir -p for the repo folder itself (its parents may not exist yet). */
static ia_status make_dirs(const char *path) {
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return ia_error_set(IA_EINVAL, "%s: path too long", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return ia_error_set(IA_EIO, "%s: cannot create folder: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return ia_error_set(IA_EIO, "%s: cannot create folder: %s", buf, strerror(errno));
    return IA_OK;
}

static ia_status db_exec(ia_blockstore *bs, const char *sql) {
    char *err = NULL;
    if (sqlite3_exec(bs->db, sql, NULL, NULL, &err) != SQLITE_OK) {
        ia_status st = ia_error_set(IA_EIO, "%s/repo.sqlite: %s (in \"%.40s\")", bs->dir,
                                    err ? err : sqlite3_errmsg(bs->db), sql);
        sqlite3_free(err);
        return st;
    }
    return IA_OK;
}

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS pins ("
    "  cid BLOB NOT NULL,"      /* the CID as given (binary), for listing */
    "  mh BLOB PRIMARY KEY,"    /* its multihash, the key */
    "  type INTEGER NOT NULL);" /* ia_pin_type */
    "CREATE TABLE IF NOT EXISTS refs ("
    "  mh BLOB PRIMARY KEY," /* multihash of the block */
    "  path TEXT NOT NULL,"  /* absolute path of the source file */
    "  off INTEGER NOT NULL,"
    "  len INTEGER NOT NULL,"
    "  file_size INTEGER NOT NULL," /* source size and mtime when recorded; */
    "  mtime_ns INTEGER NOT NULL,"  /* file_size -1: still being written */
    "  prefix BLOB,"                /* bytes before and after the range (a */
    "  suffix BLOB);"               /* dag-pb leaf's wrapping), NULL: none */
    "CREATE INDEX IF NOT EXISTS refs_path ON refs(path);";

/* Version 1 had refs without the wrapping of dag-pb leaves. */
static const char upgrade_v1_sql[] = "ALTER TABLE refs ADD COLUMN prefix BLOB;"
                                     "ALTER TABLE refs ADD COLUMN suffix BLOB;"
                                     "CREATE INDEX IF NOT EXISTS refs_path ON refs(path);";

/* Creates or checks the schema in one immediate transaction, so that two
 * processes opening a fresh repo at once do not race. */
static ia_status db_init(ia_blockstore *bs) {
    ia_status st;
    /* Switching a fresh database to WAL does not wait on the busy handler
     * when another process is doing the same: retry for a while. */
    for (int tries = 0;; tries++) {
        int rc = sqlite3_exec(bs->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            break;
        if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || tries >= 500)
            return ia_error_set(IA_EIO, "%s/repo.sqlite: cannot switch to WAL mode: %s", bs->dir,
                                sqlite3_errmsg(bs->db));
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if ((st = db_exec(bs, "PRAGMA synchronous=NORMAL")))
        return st;
    if ((st = db_exec(bs, "BEGIN IMMEDIATE")))
        return st;
    sqlite3_stmt *q = NULL;
    int version = -1;
    if (sqlite3_prepare_v2(bs->db, "PRAGMA user_version", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        version = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    if (version < 0) {
        st = ia_error_set(IA_EIO, "%s/repo.sqlite: cannot read the schema version: %s", bs->dir,
                          sqlite3_errmsg(bs->db));
        goto fail;
    }
    if (version > SCHEMA_VERSION) {
        st = ia_error_set(IA_EUNSUPPORTED,
                          "%s/repo.sqlite: schema version %d is newer than this build "
                          "understands (%d); upgrade ipfs-accelerate",
                          bs->dir, version, SCHEMA_VERSION);
        goto fail;
    }
    if (version == 1 && (st = db_exec(bs, upgrade_v1_sql)))
        goto fail;
    if (version < SCHEMA_VERSION) {
        if ((st = db_exec(bs, schema_sql)) || (st = db_exec(bs, "PRAGMA user_version=2")))
            goto fail;
    }
    return db_exec(bs, "COMMIT");
fail:
    sqlite3_exec(bs->db, "ROLLBACK", NULL, NULL, NULL);
    return st;
}

ia_status ia_blockstore_open(const char *dir, ia_blockstore **out) {
    *out = NULL;
    ia_status st;
    ia_blockstore *bs = ia_calloc(1, sizeof *bs);
    if (!bs)
        return IA_ENOMEM;
    bs->lock_fd = -1;
    pthread_mutex_init(&bs->ref_lock, NULL);
    bs->batch_max_blocks = BATCH_MAX_BLOCKS;
    bs->batch_max_bytes = BATCH_MAX_BYTES;
    if ((st = make_dirs(dir)))
        goto fail;
    char abs[PATH_MAX];
    if (!realpath(dir, abs)) {
        st = ia_error_set(IA_EIO, "%s: cannot resolve the repo path: %s", dir, strerror(errno));
        goto fail;
    }
    if (!(bs->dir = ia_strdup(abs)) || !(bs->blocks_dir = ia_path_join(abs, "blocks"))) {
        st = IA_ENOMEM;
        goto fail;
    }
    if (mkdir(bs->blocks_dir, 0755) != 0 && errno != EEXIST) {
        st = ia_error_set(IA_EIO, "%s: cannot create folder: %s", bs->blocks_dir, strerror(errno));
        goto fail;
    }
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/repo.lock", abs);
    if ((bs->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) {
        st = ia_error_set(IA_EIO, "%s: cannot open the repo lock: %s", path, strerror(errno));
        goto fail;
    }
    snprintf(path, sizeof path, "%s/repo.sqlite", abs);
    if (sqlite3_open_v2(path, &bs->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        st = ia_error_set(IA_EIO, "%s: cannot open: %s", path,
                          bs->db ? sqlite3_errmsg(bs->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(bs->db, 30000);
    if ((st = db_init(bs)))
        goto fail;
    *out = bs;
    return IA_OK;
fail:
    ia_blockstore_close(bs);
    return st;
}

static void batch_discard(ia_blockstore *bs);

void ia_blockstore_close(ia_blockstore *bs) {
    if (!bs)
        return;
    batch_discard(bs);
    free(bs->pending);
    sqlite3_finalize(bs->ref_q);
    pthread_mutex_destroy(&bs->ref_lock);
    if (bs->db)
        sqlite3_close(bs->db);
    if (bs->lock_fd >= 0)
        close(bs->lock_fd); /* releases the flock */
    free(bs->dir);
    free(bs->blocks_dir);
    free(bs);
}

const char *ia_blockstore_dir(const ia_blockstore *bs) { return bs->dir; }

void ia_blockstore_set_hash_on_read(ia_blockstore *bs, bool on) { bs->hash_on_read = on; }

bool ia_blockstore_hash_on_read(const ia_blockstore *bs) { return bs->hash_on_read; }

/* ---- internal: shared with pins.c ---------------------------------------------- */

sqlite3 *ia_bs_db(ia_blockstore *bs) { return bs->db; }

ia_status ia_bs_lock_writer(ia_blockstore *bs) {
    if (bs->lock_held)
        return IA_OK;
    while (flock(bs->lock_fd, LOCK_SH) != 0) {
        if (errno != EINTR)
            return ia_error_set(IA_EIO, "%s/repo.lock: cannot lock: %s", bs->dir, strerror(errno));
    }
    bs->lock_held = LOCK_SH;
    return IA_OK;
}

ia_status ia_bs_lock_exclusive(ia_blockstore *bs, const char *why, bool wait) {
    /* Another process may be between putting blocks and pinning them: wait a
     * little for it, then give up with a message rather than hang. */
    for (int tries = 0;; tries++) {
        if (flock(bs->lock_fd, LOCK_EX | LOCK_NB) == 0)
            break;
        if (errno != EWOULDBLOCK && errno != EINTR)
            return ia_error_set(IA_EIO, "%s/repo.lock: cannot lock: %s", bs->dir, strerror(errno));
        if (!wait || tries >= 50) {
            if (bs->lock_held == LOCK_SH)
                flock(bs->lock_fd, LOCK_SH);
            return ia_error_set(IA_EIO,
                                "%s: another process is writing to this repo; %s needs it to "
                                "itself (retry when it is done)",
                                bs->dir, why);
        }
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return IA_OK;
}

void ia_bs_unlock_exclusive(ia_blockstore *bs) {
    if (bs->lock_held == LOCK_SH)
        flock(bs->lock_fd, LOCK_SH);
    else
        flock(bs->lock_fd, LOCK_UN);
}

/* ---- put ------------------------------------------------------------------------ */

static ia_status fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ia_error_set(IA_EIO, "%s: cannot open folder to sync: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0)
        return ia_error_set(IA_EIO, "%s: cannot sync folder: %s", dir, strerror(e));
    return IA_OK;
}

static ia_status write_all(int fd, const uint8_t *data, size_t len, const char *path,
                           const char *what) {
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : ENOSPC;
            return ia_error_set(IA_EIO, "%s: cannot write %s: %s%s", path, what, strerror(e),
                                e == ENOSPC || e == EDQUOT ? " (the disk is full)" : "");
        }
        data += n;
        len -= (size_t)n;
    }
    return IA_OK;
}

/* ---- batches ---------------------------------------------------------------------- */

static ia_status batch_queue(ia_blockstore *bs, char *tmp, char *file, size_t len) {
    if (bs->n_pending == bs->cap_pending) {
        size_t cap = bs->cap_pending ? bs->cap_pending * 2 : 256;
        pending_block *p = ia_realloc_array(bs->pending, cap, sizeof *p);
        if (!p)
            return IA_ENOMEM;
        bs->pending = p;
        bs->cap_pending = cap;
    }
    bs->pending[bs->n_pending++] = (pending_block){tmp, file};
    bs->pending_bytes += len;
    return IA_OK;
}

/* Removes the queued temporary files: their blocks were never stored. */
static void batch_discard(ia_blockstore *bs) {
    for (size_t i = 0; i < bs->n_pending; i++) {
        unlink(bs->pending[i].tmp);
        free(bs->pending[i].tmp);
        free(bs->pending[i].file);
    }
    bs->n_pending = 0;
    bs->pending_bytes = 0;
}

/* One syncfs for everything under the blocks folder (the temporary files'
 * bytes before the renames, the folders' entries after). */
static ia_status sync_blocks_fs(ia_blockstore *bs, const char *what) {
    int fd = open(bs->blocks_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ia_error_set(IA_EIO, "%s: cannot open to sync: %s", bs->blocks_dir, strerror(errno));
    int rc = syncfs(fd);
    int e = errno;
    close(fd);
    if (rc != 0)
        return ia_error_set(IA_EIO, "%s: cannot sync %s: %s", bs->blocks_dir, what, strerror(e));
    return IA_OK;
}

/* Commits the queued blocks: sync, rename each into place, sync the
 * folders. On failure the blocks not yet renamed are discarded. */
static ia_status batch_flush(ia_blockstore *bs) {
    ia_status st = IA_OK;
    size_t i = 0;
    if (bs->n_pending == 0)
        return IA_OK;
    if ((st = sync_blocks_fs(bs, "new blocks")))
        goto done;
    for (; i < bs->n_pending; i++) {
        if (rename(bs->pending[i].tmp, bs->pending[i].file) != 0) {
            st = ia_error_set(IA_EIO, "%s: cannot rename to %s: %s", bs->pending[i].tmp,
                              bs->pending[i].file, strerror(errno));
            goto done;
        }
        free(bs->pending[i].tmp);
        free(bs->pending[i].file);
    }
    st = sync_blocks_fs(bs, "block folders");
done:
    /* entries before i were renamed and freed; discard the rest */
    memmove(bs->pending, bs->pending + i, (bs->n_pending - i) * sizeof *bs->pending);
    bs->n_pending -= i;
    batch_discard(bs);
    return st;
}

void ia_blockstore_batch_begin(ia_blockstore *bs) { bs->batch_depth++; }

void ia_bs_set_batch_limits(ia_blockstore *bs, size_t max_blocks, uint64_t max_bytes) {
    bs->batch_max_blocks = max_blocks ? max_blocks : BATCH_MAX_BLOCKS;
    bs->batch_max_bytes = max_bytes ? max_bytes : BATCH_MAX_BYTES;
}

ia_status ia_blockstore_batch_commit(ia_blockstore *bs) {
    if (bs->batch_depth > 0 && --bs->batch_depth > 0)
        return IA_OK; /* the outermost commit writes */
    return batch_flush(bs);
}

void ia_blockstore_batch_abort(ia_blockstore *bs) {
    if (bs->batch_depth > 0 && --bs->batch_depth > 0)
        return;
    batch_discard(bs);
}

ia_status ia_blockstore_put(ia_blockstore *bs, const ia_cid *cid, const void *data, size_t len) {
    ia_status st;
    char *file = NULL, *shard = NULL, *tmp = NULL;
    int fd = -1;
    char text[IA_CID_MAX_STRING];
    if ((st = ia_cid_verify(cid, data, len))) {
        ia_error_prefix("%s: refusing to store a block that does not match its CID", bs->dir);
        return st;
    }
    if (cid->mh_code == IA_MH_IDENTITY)
        return IA_OK; /* the CID holds the bytes */
    if ((st = ia_bs_lock_writer(bs)) || (st = block_paths(bs, cid, &file, &shard)))
        goto fail;
    struct stat sb;
    if (stat(file, &sb) == 0 && (uint64_t)sb.st_size == len)
        goto done; /* already there (a rotted copy of the right size is verify's job) */
    if (mkdir(shard, 0755) != 0 && errno != EEXIST) {
        st = ia_error_set(IA_EIO, "%s: cannot create folder: %s", shard, strerror(errno));
        goto fail;
    }
    if (!(tmp = ia_path_join(shard, ".put-XXXXXX"))) {
        st = IA_ENOMEM;
        goto fail;
    }
    if ((fd = mkstemp(tmp)) < 0) {
        cid_text(cid, text);
        st = ia_error_set(IA_EIO, "%s: cannot create a temporary file for block %s: %s", shard,
                          text, strerror(errno));
        free(tmp);
        tmp = NULL;
        goto fail;
    }
    fchmod(fd, 0444);
    if ((st = write_all(fd, data, len, tmp, "block")))
        goto fail;
    if (bs->batch_depth > 0) {
        /* Start writeback now, so that the commit's sync finds the bytes
         * mostly on disk and the disk works while we go on. */
        sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
        close(fd);
        fd = -1;
        if ((st = batch_queue(bs, tmp, file, len)))
            goto fail;
        tmp = file = NULL; /* the queue owns them now */
        free(shard);
        if (bs->n_pending >= bs->batch_max_blocks || bs->pending_bytes >= bs->batch_max_bytes)
            return batch_flush(bs);
        return IA_OK;
    }
    if (fsync(fd) != 0) {
        st = ia_error_set(IA_EIO, "%s: cannot sync: %s", tmp, strerror(errno));
        goto fail;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, file) != 0) {
        st = ia_error_set(IA_EIO, "%s: cannot rename to %s: %s", tmp, file, strerror(errno));
        goto fail;
    }
    free(tmp);
    tmp = NULL;
    if ((st = fsync_dir(shard)))
        goto fail;
done:
    free(file);
    free(shard);
    return IA_OK;
fail:
    if (fd >= 0)
        close(fd);
    if (tmp)
        unlink(tmp);
    free(tmp);
    free(file);
    free(shard);
    return st;
}

/* ---- references (--nocopy) ---------------------------------------------------- */

static int64_t mtime_ns(const struct stat *sb) {
    return (int64_t)sb->st_mtim.tv_sec * 1000000000 + sb->st_mtim.tv_nsec;
}

/* Binds and steps one INSERT of a reference row; file_size < 0 marks it
 * pending (its source is still being written). */
static ia_status ref_insert(ia_blockstore *bs, sqlite3_stmt *q, const ia_cid *cid, const char *path,
                            uint64_t offset, uint64_t len, int64_t file_size, int64_t mtime,
                            const uint8_t *prefix, size_t n_prefix, const uint8_t *suffix,
                            size_t n_suffix) {
    uint8_t mh[IA_CID_MAX_BYTES];
    size_t mh_len = ia_bs_multihash(cid, mh);
    sqlite3_reset(q);
    sqlite3_bind_blob(q, 1, mh, (int)mh_len, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, path, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 3, (sqlite3_int64)offset);
    sqlite3_bind_int64(q, 4, (sqlite3_int64)len);
    sqlite3_bind_int64(q, 5, (sqlite3_int64)file_size);
    sqlite3_bind_int64(q, 6, (sqlite3_int64)mtime);
    if (n_prefix)
        sqlite3_bind_blob(q, 7, prefix, (int)n_prefix, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(q, 7);
    if (n_suffix)
        sqlite3_bind_blob(q, 8, suffix, (int)n_suffix, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(q, 8);
    if (sqlite3_step(q) != SQLITE_DONE)
        return ia_error_set(IA_EIO, "%s/repo.sqlite: cannot record a reference to %s: %s", bs->dir,
                            path, sqlite3_errmsg(bs->db));
    return IA_OK;
}

static const char ref_insert_sql[] =
    "INSERT OR REPLACE INTO refs(mh, path, off, len, file_size, mtime_ns, prefix, suffix) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)";

ia_status ia_blockstore_put_ref(ia_blockstore *bs, const ia_cid *cid, const char *path,
                                uint64_t offset, uint64_t len) {
    ia_status st;
    char abs[PATH_MAX];
    struct stat sb;
    sqlite3_stmt *q = NULL;
    if (!realpath(path, abs) || stat(abs, &sb) != 0)
        return ia_error_set(IA_EIO, "%s: cannot reference: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return ia_error_set(IA_EINVAL, "%s: --nocopy needs a regular file", path);
    if (offset > (uint64_t)sb.st_size || len > (uint64_t)sb.st_size - offset)
        return ia_error_set(IA_ERANGE, "%s: reference [%llu, +%llu) is past the end (%lld bytes)",
                            path, (unsigned long long)offset, (unsigned long long)len,
                            (long long)sb.st_size);
    if (len > BLOCK_MAX_BYTES)
        return ia_error_set(IA_ERANGE, "%s: a %llu-byte block is too large", path,
                            (unsigned long long)len);
    if (cid->codec != IA_CODEC_RAW)
        return ia_error_set(IA_EINVAL, "%s: a reference holds a raw leaf, not a %s block", path,
                            ia_codec_name(cid->codec) ? ia_codec_name(cid->codec) : "other");
    if ((st = ia_bs_lock_writer(bs)))
        return st;
    if (sqlite3_prepare_v2(bs->db, ref_insert_sql, -1, &q, NULL) != SQLITE_OK) {
        st = ia_error_set(IA_EIO, "%s/repo.sqlite: cannot record a reference to %s: %s", bs->dir,
                          path, sqlite3_errmsg(bs->db));
    } else {
        st = ref_insert(bs, q, cid, abs, offset, len, (int64_t)sb.st_size, mtime_ns(&sb), NULL, 0,
                        NULL, 0);
    }
    sqlite3_finalize(q);
    return st;
}

ia_status ia_bs_put_refs_pending(ia_blockstore *bs, const ia_bs_ref *refs, size_t n) {
    ia_status st;
    sqlite3_stmt *q = NULL;
    if (n == 0)
        return IA_OK;
    if ((st = ia_bs_lock_writer(bs)) || (st = db_exec(bs, "BEGIN IMMEDIATE")))
        return st;
    if (sqlite3_prepare_v2(bs->db, ref_insert_sql, -1, &q, NULL) != SQLITE_OK) {
        st = ia_error_set(IA_EIO, "%s/repo.sqlite: %s", bs->dir, sqlite3_errmsg(bs->db));
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        const ia_bs_ref *r = &refs[i];
        if (r->n_prefix > IA_BS_WRAP_MAX || r->n_suffix > IA_BS_WRAP_MAX ||
            r->len + r->n_prefix + r->n_suffix > BLOCK_MAX_BYTES) {
            st = ia_error_set(IA_ERANGE, "%s: reference at offset %llu is too large", r->path,
                              (unsigned long long)r->offset);
            goto fail;
        }
        /* References hold leaves only (walks take them as such without
         * reading them): raw bytes, or a dag-pb node that starts with its
         * Data field, so it has no links (they would come first). */
        bool raw = r->cid.codec == IA_CODEC_RAW && !r->n_prefix && !r->n_suffix;
        bool pb_leaf = r->cid.codec == IA_CODEC_DAG_PB && r->n_prefix && r->prefix[0] == 0x0a;
        if (!raw && !pb_leaf) {
            st = ia_error_set(IA_EINVAL, "%s: a reference at offset %llu would not be a leaf",
                              r->path, (unsigned long long)r->offset);
            goto fail;
        }
        if ((st = ref_insert(bs, q, &r->cid, r->path, r->offset, r->len, -1, 0, r->prefix,
                             r->n_prefix, r->suffix, r->n_suffix)))
            goto fail;
    }
    sqlite3_finalize(q);
    return db_exec(bs, "COMMIT");
fail:
    sqlite3_finalize(q);
    sqlite3_exec(bs->db, "ROLLBACK", NULL, NULL, NULL);
    return st;
}

/* One statement over paths in one transaction: finish (stat each file and
 * record its size and mtime on its pending rows) or drop them. */
static ia_status refs_pending_apply(ia_blockstore *bs, const char *const *paths, size_t n,
                                    bool finish) {
    ia_status st;
    sqlite3_stmt *q = NULL;
    if (n == 0)
        return IA_OK;
    if ((st = ia_bs_lock_writer(bs)) || (st = db_exec(bs, "BEGIN IMMEDIATE")))
        return st;
    const char *sql =
        finish ? "UPDATE refs SET file_size = ?, mtime_ns = ? WHERE path = ? AND file_size < 0"
               : "DELETE FROM refs WHERE path = ? AND file_size < 0";
    if (sqlite3_prepare_v2(bs->db, sql, -1, &q, NULL) != SQLITE_OK)
        goto db_fail;
    for (size_t i = 0; i < n; i++) {
        struct stat sb;
        sqlite3_reset(q);
        if (finish) {
            if (stat(paths[i], &sb) != 0) {
                st = ia_error_set(IA_EIO, "%s: cannot reference: %s", paths[i], strerror(errno));
                goto fail;
            }
            sqlite3_bind_int64(q, 1, (sqlite3_int64)sb.st_size);
            sqlite3_bind_int64(q, 2, mtime_ns(&sb));
        }
        sqlite3_bind_text(q, finish ? 3 : 1, paths[i], -1, SQLITE_STATIC);
        if (sqlite3_step(q) != SQLITE_DONE)
            goto db_fail;
    }
    sqlite3_finalize(q);
    return db_exec(bs, "COMMIT");
db_fail:
    st = ia_error_set(IA_EIO, "%s/repo.sqlite: cannot update references: %s", bs->dir,
                      sqlite3_errmsg(bs->db));
fail:
    sqlite3_finalize(q);
    sqlite3_exec(bs->db, "ROLLBACK", NULL, NULL, NULL);
    return st;
}

ia_status ia_bs_refs_finish(ia_blockstore *bs, const char *const *paths, size_t n) {
    return refs_pending_apply(bs, paths, n, true);
}

ia_status ia_bs_refs_drop(ia_blockstore *bs, const char *const *paths, size_t n) {
    return refs_pending_apply(bs, paths, n, false);
}

typedef struct ref_row {
    char path[PATH_MAX];
    uint64_t off, len, file_size;
    int64_t mtime_ns;
    uint8_t prefix[IA_BS_WRAP_MAX], suffix[IA_BS_WRAP_MAX];
    size_t n_prefix, n_suffix;
} ref_row;

/* IA_ENOTFOUND when the block has no reference, or only a pending one (its
 * source is still being written, or the writer did not finish). */
static ia_status ref_lookup(ia_blockstore *bs, const uint8_t *mh, size_t mh_len, ref_row *row) {
    ia_status st = IA_ENOTFOUND;
    pthread_mutex_lock(&bs->ref_lock);
    if (!bs->ref_q &&
        sqlite3_prepare_v3(bs->db,
                           "SELECT path, off, len, file_size, mtime_ns, prefix, "
                           "suffix FROM refs WHERE mh = ? AND file_size >= 0",
                           -1, SQLITE_PREPARE_PERSISTENT, &bs->ref_q, NULL) != SQLITE_OK) {
        st = ia_error_set(IA_EIO, "%s/repo.sqlite: %s", bs->dir, sqlite3_errmsg(bs->db));
        pthread_mutex_unlock(&bs->ref_lock);
        return st;
    }
    sqlite3_stmt *q = bs->ref_q;
    sqlite3_bind_blob(q, 1, mh, (int)mh_len, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        const char *p = (const char *)sqlite3_column_text(q, 0);
        snprintf(row->path, sizeof row->path, "%s", p ? p : "");
        row->off = (uint64_t)sqlite3_column_int64(q, 1);
        row->len = (uint64_t)sqlite3_column_int64(q, 2);
        row->file_size = (uint64_t)sqlite3_column_int64(q, 3);
        row->mtime_ns = sqlite3_column_int64(q, 4);
        st = IA_OK;
        for (int c = 5; c <= 6; c++) {
            const void *b = sqlite3_column_blob(q, c);
            size_t n = (size_t)sqlite3_column_bytes(q, c);
            if (n > IA_BS_WRAP_MAX) {
                st = ia_error_set(IA_EPARSE, "%s/repo.sqlite: a reference's wrapping is %zu bytes",
                                  bs->dir, n);
                break;
            }
            memcpy(c == 5 ? row->prefix : row->suffix, b ? b : "", n);
            *(c == 5 ? &row->n_prefix : &row->n_suffix) = n;
        }
    } else if (rc != SQLITE_DONE) {
        st = ia_error_set(IA_EIO, "%s/repo.sqlite: %s", bs->dir, sqlite3_errmsg(bs->db));
    }
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    pthread_mutex_unlock(&bs->ref_lock);
    return st;
}

static ia_status ref_read(const ref_row *row, const char *cid_str, uint8_t **data, size_t *len) {
    ia_status st;
    struct stat sb;
    uint8_t *buf = NULL;
    int fd = open(row->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ia_error_set(IA_EIO, "block %s: its --nocopy source %s cannot be opened: %s",
                            cid_str, row->path, strerror(errno));
    if (fstat(fd, &sb) != 0 || (uint64_t)sb.st_size != row->file_size ||
        mtime_ns(&sb) != row->mtime_ns) {
        st = ia_error_set(IA_EIO,
                          "block %s: its --nocopy source %s changed since it was added "
                          "(size or modification time differ); add the file again",
                          cid_str, row->path);
        goto fail;
    }
    uint64_t total = row->len + row->n_prefix + row->n_suffix;
    if (row->len > BLOCK_MAX_BYTES || total > BLOCK_MAX_BYTES) {
        st = ia_error_set(IA_ERANGE, "block %s: reference of %llu bytes is too large", cid_str,
                          (unsigned long long)row->len);
        goto fail;
    }
    if (!(buf = ia_malloc(total ? (size_t)total : 1))) {
        st = IA_ENOMEM;
        goto fail;
    }
    memcpy(buf, row->prefix, row->n_prefix);
    uint8_t *body = buf + row->n_prefix;
    size_t got = 0;
    while (got < row->len) {
        ssize_t n = pread(fd, body + got, (size_t)row->len - got, (off_t)(row->off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            st = ia_error_set(IA_EIO, "block %s: cannot read its --nocopy source %s: %s", cid_str,
                              row->path, n < 0 ? strerror(errno) : "file is shorter");
            goto fail;
        }
        got += (size_t)n;
    }
    memcpy(body + row->len, row->suffix, row->n_suffix);
    close(fd);
    *data = buf;
    *len = (size_t)total;
    return IA_OK;
fail:
    close(fd);
    free(buf);
    return st;
}

bool ia_bs_ref_is_leaf(ia_blockstore *bs, const ia_cid *cid) {
    uint8_t mh[IA_CID_MAX_BYTES];
    ref_row row;
    return ref_lookup(bs, mh, ia_bs_multihash(cid, mh), &row) == IA_OK;
}

/* ---- get, has, size, remove ------------------------------------------------------ */

static ia_status read_block_file(const char *file, uint8_t **data, size_t *len) {
    ia_status st;
    uint8_t *buf = NULL;
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? IA_ENOTFOUND
                               : ia_error_set(IA_EIO, "%s: cannot open: %s", file, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = ia_error_set(IA_EIO, "%s: cannot stat: %s", file, strerror(errno));
        goto fail;
    }
    if ((uint64_t)sb.st_size > BLOCK_MAX_BYTES) {
        st = ia_error_set(IA_ERANGE, "%s: %lld bytes is too large for a block", file,
                          (long long)sb.st_size);
        goto fail;
    }
    size_t size = (size_t)sb.st_size, got = 0;
    if (!(buf = ia_malloc(size ? size : 1))) {
        st = IA_ENOMEM;
        goto fail;
    }
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            st = ia_error_set(IA_EIO, "%s: cannot read: %s", file,
                              n < 0 ? strerror(errno) : "file shrank while reading");
            goto fail;
        }
        got += (size_t)n;
    }
    close(fd);
    *data = buf;
    *len = size;
    return IA_OK;
fail:
    close(fd);
    free(buf);
    return st;
}

ia_status ia_blockstore_get(ia_blockstore *bs, const ia_cid *cid, uint8_t **data, size_t *len) {
    *data = NULL;
    *len = 0;
    char text[IA_CID_MAX_STRING];
    cid_text(cid, text);
    if (cid->mh_code == IA_MH_IDENTITY) {
        if (!(*data = ia_malloc(cid->digest_len ? cid->digest_len : 1)))
            return IA_ENOMEM;
        memcpy(*data, cid->digest, cid->digest_len);
        *len = cid->digest_len;
        return IA_OK;
    }
    char *file = NULL;
    uint8_t *buf = NULL;
    size_t n = 0;
    ia_status st = block_paths(bs, cid, &file, NULL);
    if (st)
        return st;
    st = read_block_file(file, &buf, &n);
    if (st == IA_ENOTFOUND) {
        uint8_t mh[IA_CID_MAX_BYTES];
        ref_row row;
        st = ref_lookup(bs, mh, ia_bs_multihash(cid, mh), &row);
        if (st == IA_ENOTFOUND) {
            st = ia_error_set(IA_ENOTFOUND, "block %s is not in the repo %s", text, bs->dir);
            goto fail;
        }
        if (st || (st = ref_read(&row, text, &buf, &n)))
            goto fail;
        if ((st = ia_cid_verify(cid, buf, n))) {
            st = ia_error_set(IA_EIO,
                              "block %s: its --nocopy source %s no longer holds the block's bytes "
                              "at offset %llu; add the file again",
                              text, row.path, (unsigned long long)row.off);
            goto fail;
        }
    } else if (st) {
        goto fail;
    } else if (bs->hash_on_read && (st = ia_cid_verify(cid, buf, n))) {
        st = ia_error_set(IA_EIO,
                          "block %s is corrupt on disk (%s does not hash to its CID); run "
                          "'repo verify' and re-add the data",
                          text, file);
        goto fail;
    }
    free(file);
    *data = buf;
    *len = n;
    return IA_OK;
fail:
    free(file);
    free(buf);
    return st;
}

bool ia_blockstore_has(ia_blockstore *bs, const ia_cid *cid) {
    uint64_t size;
    return ia_blockstore_size(bs, cid, &size) == IA_OK;
}

ia_status ia_blockstore_size(ia_blockstore *bs, const ia_cid *cid, uint64_t *size) {
    *size = 0;
    if (cid->mh_code == IA_MH_IDENTITY) {
        *size = cid->digest_len;
        return IA_OK;
    }
    char *file = NULL;
    ia_status st = block_paths(bs, cid, &file, NULL);
    if (st)
        return st;
    struct stat sb;
    int rc = stat(file, &sb);
    free(file);
    if (rc == 0) {
        *size = (uint64_t)sb.st_size;
        return IA_OK;
    }
    uint8_t mh[IA_CID_MAX_BYTES];
    ref_row row;
    if ((st = ref_lookup(bs, mh, ia_bs_multihash(cid, mh), &row)) == IA_OK) {
        *size = row.len + row.n_prefix + row.n_suffix;
        return IA_OK;
    }
    if (st == IA_ENOTFOUND) {
        char text[IA_CID_MAX_STRING];
        cid_text(cid, text);
        st = ia_error_set(IA_ENOTFOUND, "block %s is not in the repo %s", text, bs->dir);
    }
    return st;
}

ia_status ia_blockstore_remove(ia_blockstore *bs, const ia_cid *cid) {
    char text[IA_CID_MAX_STRING];
    cid_text(cid, text);
    if (cid->mh_code == IA_MH_IDENTITY)
        return IA_OK;
    char *file = NULL, *shard = NULL;
    ia_status st = block_paths(bs, cid, &file, &shard);
    if (st)
        return st;
    bool found = false;
    if (unlink(file) == 0) {
        found = true;
        fsync_dir(shard);
    } else if (errno != ENOENT) {
        st = ia_error_set(IA_EIO, "%s: cannot remove: %s", file, strerror(errno));
        goto done;
    }
    uint8_t mh[IA_CID_MAX_BYTES];
    size_t mh_len = ia_bs_multihash(cid, mh);
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(bs->db, "DELETE FROM refs WHERE mh = ?", -1, &q, NULL) != SQLITE_OK ||
        sqlite3_bind_blob(q, 1, mh, (int)mh_len, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_step(q) != SQLITE_DONE) {
        st = ia_error_set(IA_EIO, "%s/repo.sqlite: cannot remove the reference of %s: %s", bs->dir,
                          text, sqlite3_errmsg(bs->db));
        sqlite3_finalize(q);
        goto done;
    }
    sqlite3_finalize(q);
    found |= sqlite3_changes(bs->db) > 0;
    if (!found)
        st = ia_error_set(IA_ENOTFOUND, "block %s is not in the repo %s", text, bs->dir);
done:
    free(file);
    free(shard);
    return st;
}

/* ---- listing and temporary files ---------------------------------------------- */

static bool is_temp_name(const char *name) { return strncmp(name, ".put-", 5) == 0; }

/* A CIDv1 (raw) for a "<KEY>.data" name; false for anything else. */
static bool cid_from_name(const char *name, ia_cid *out) {
    size_t n = strlen(name);
    if (n <= 5 || strcmp(name + n - 5, ".data") != 0)
        return false;
    uint8_t mh[IA_CID_MAX_BYTES];
    size_t mh_len;
    if (!base32_upper_decode(name, n - 5, mh, sizeof mh, &mh_len))
        return false;
    return ia_bs_cid_from_multihash(mh, mh_len, out);
}

bool ia_bs_cid_from_multihash(const uint8_t *mh, size_t mh_len, ia_cid *out) {
    uint64_t code, dlen;
    size_t a, b;
    if (ia_varint_decode(mh, mh_len, &code, &a) != IA_OK ||
        ia_varint_decode(mh + a, mh_len - a, &dlen, &b) != IA_OK || dlen > IA_MH_MAX_DIGEST ||
        a + b + dlen != mh_len)
        return false;
    memset(out, 0, sizeof *out);
    out->version = 1;
    out->codec = IA_CODEC_RAW;
    out->mh_code = code;
    out->digest_len = (uint32_t)dlen;
    memcpy(out->digest, mh + a + b, dlen);
    return true;
}

/* Walks blocks/: fn per block, and removes temporary files when clean_temp
 * (the caller holds the exclusive lock, so no put is in flight). */
static ia_status walk_block_files(ia_blockstore *bs, bool clean_temp, ia_cid_fn fn, void *ctx) {
    ia_status st = IA_OK;
    DIR *top = opendir(bs->blocks_dir);
    if (!top)
        return ia_error_set(IA_EIO, "%s: cannot list: %s", bs->blocks_dir, strerror(errno));
    struct dirent *e;
    while (st == IA_OK && (e = readdir(top))) {
        if (e->d_name[0] == '.')
            continue;
        char *sub = ia_path_join(bs->blocks_dir, e->d_name);
        if (!sub) {
            st = IA_ENOMEM;
            break;
        }
        DIR *d = opendir(sub);
        struct dirent *f;
        while (d && st == IA_OK && (f = readdir(d))) {
            ia_cid cid;
            if (is_temp_name(f->d_name)) {
                if (clean_temp) {
                    char *p = ia_path_join(sub, f->d_name);
                    if (p && unlink(p) == 0)
                        ia_log(IA_LOG_INFO, "removed leftover temporary file %s", p);
                    free(p);
                }
            } else if (fn && cid_from_name(f->d_name, &cid)) {
                st = fn(ctx, &cid);
            }
        }
        if (d)
            closedir(d);
        free(sub);
    }
    closedir(top);
    return st;
}

static ia_status walk_refs(ia_blockstore *bs, ia_cid_fn fn, void *ctx) {
    sqlite3_stmt *q = NULL;
    ia_status st = IA_OK;
    if (sqlite3_prepare_v2(bs->db, "SELECT mh FROM refs WHERE file_size >= 0 ORDER BY rowid", -1,
                           &q, NULL) != SQLITE_OK)
        return ia_error_set(IA_EIO, "%s/repo.sqlite: %s", bs->dir, sqlite3_errmsg(bs->db));
    int rc;
    while (st == IA_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        ia_cid cid;
        const uint8_t *mh = sqlite3_column_blob(q, 0);
        int n = sqlite3_column_bytes(q, 0);
        if (mh && n > 0 && ia_bs_cid_from_multihash(mh, (size_t)n, &cid))
            st = fn(ctx, &cid);
    }
    if (st == IA_OK && rc != SQLITE_DONE)
        st = ia_error_set(IA_EIO, "%s/repo.sqlite: %s", bs->dir, sqlite3_errmsg(bs->db));
    sqlite3_finalize(q);
    return st;
}

ia_status ia_bs_foreach(ia_blockstore *bs, bool clean_temp, ia_cid_fn fn, void *ctx) {
    ia_status st = walk_block_files(bs, clean_temp, fn, ctx);
    return st ? st : walk_refs(bs, fn, ctx);
}

ia_status ia_blockstore_foreach(ia_blockstore *bs, ia_cid_fn fn, void *ctx) {
    return ia_bs_foreach(bs, false, fn, ctx);
}

/* Bytes on disk under the repo (block files, database, lock). */
static uint64_t du(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return 0;
    if (!S_ISDIR(sb.st_mode)) {
        return (uint64_t)sb.st_size;
    }
    uint64_t total = 0;
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *p = ia_path_join(path, e->d_name);
        if (p)
            total += du(p);
        free(p);
    }
    if (d)
        closedir(d);
    return total;
}

uint64_t ia_bs_disk_usage(ia_blockstore *bs) { return du(bs->dir); }

/* ---- references seen from outside (model loading by CID) -------------------------- */
/* runtime/model_source.c asks where a --nocopy leaf lives, to map a model
 * file in place instead of exporting a copy; it verifies the bytes itself. */

ia_status ia_blockstore_ref_get(ia_blockstore *bs, const ia_cid *cid, ia_blockstore_ref *out) {
    uint8_t mh[IA_CID_MAX_BYTES];
    ref_row row;
    ia_status st = ref_lookup(bs, mh, ia_bs_multihash(cid, mh), &row);
    if (st)
        return st;
    memset(out, 0, sizeof *out);
    snprintf(out->path, sizeof out->path, "%s", row.path);
    out->offset = row.off;
    out->length = row.len;
    out->file_size = row.file_size;
    out->mtime_ns = row.mtime_ns;
    memcpy(out->prefix, row.prefix, row.n_prefix);
    memcpy(out->suffix, row.suffix, row.n_suffix);
    out->n_prefix = row.n_prefix;
    out->n_suffix = row.n_suffix;
    return IA_OK;
}

/* ---- blocks opened for copy-free serving (gateway) -------------------------------- */
/* The gateway copies a block file straight into libmicrohttpd's send buffer
 * (one kernel copy, no malloc, no CID text) instead of ia_blockstore_get's
 * read into a fresh buffer. Only trusted block files are handed out as a
 * descriptor; everything that must be checked or built (references, identity
 * CIDs, any block with hash-on-read on) comes as verified bytes in memory,
 * exactly as ia_blockstore_get returns them. */

ia_status ia_bs_block_open(ia_blockstore *bs, const ia_cid *cid, ia_bs_block *out) {
    memset(out, 0, sizeof *out);
    out->fd = -1;
    if (cid->mh_code != IA_MH_IDENTITY && !bs->hash_on_read) {
        char key[KEY_MAX], shard[3], file[PATH_MAX];
        block_key(cid, key);
        block_shard(key, shard);
        int n = snprintf(file, sizeof file, "%s/%s/%s.data", bs->blocks_dir, shard, key);
        if (n < 0 || (size_t)n >= sizeof file)
            return ia_error_set(IA_ERANGE, "%s: block path too long", bs->blocks_dir);
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            struct stat sb;
            if (fstat(fd, &sb) != 0 || (uint64_t)sb.st_size > BLOCK_MAX_BYTES) {
                ia_status st =
                    ia_error_set(IA_EIO, "%s: cannot stat, or too large for a block", file);
                close(fd);
                return st;
            }
            out->fd = fd;
            out->size = (uint64_t)sb.st_size;
            return IA_OK;
        }
        if (errno != ENOENT)
            return ia_error_set(IA_EIO, "%s: cannot open: %s", file, strerror(errno));
    }
    size_t len = 0;
    ia_status st = ia_blockstore_get(bs, cid, &out->data, &len);
    out->size = len;
    return st;
}

ia_status ia_bs_block_pread(const ia_bs_block *b, uint64_t off, void *dst, size_t len) {
    if (b->fd < 0) {
        if (off > b->size || len > b->size - off)
            return ia_error_set(IA_ERANGE, "block read past its end");
        memcpy(dst, b->data + off, len);
        return IA_OK;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(b->fd, (uint8_t *)dst + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return ia_error_set(IA_EIO, "a block file shrank while being read: %s",
                                n < 0 ? strerror(errno) : "short read");
        got += (size_t)n;
    }
    return IA_OK;
}

ia_status ia_bs_block_load(ia_bs_block *b) {
    if (b->fd < 0)
        return IA_OK;
    uint8_t *buf = ia_malloc(b->size ? (size_t)b->size : 1);
    if (!buf)
        return IA_ENOMEM;
    ia_status st = ia_bs_block_pread(b, 0, buf, (size_t)b->size);
    if (st) {
        free(buf);
        return st;
    }
    close(b->fd);
    b->fd = -1;
    b->data = buf;
    return IA_OK;
}

void ia_bs_block_close(ia_bs_block *b) {
    if (b->fd >= 0)
        close(b->fd);
    free(b->data);
    b->fd = -1;
    b->data = NULL;
    b->size = 0;
}
