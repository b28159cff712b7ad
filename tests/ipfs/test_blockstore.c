/*
 * The blockstore: put/get/has/size/remove, refusal of bytes that do not
 * match their CID, identity CIDs, leftover temporary files (ignored, then
 * cleaned by gc), a block corrupted on disk (trusted by a plain get, refused
 * with hash-on-read, reported by verify), batched puts (invisible until
 * commit, removed by abort or close), two processes putting at once, --nocopy
 * references and a source file that changes under them (refused even without
 * hash-on-read), the schema-version check, the upgrade of a schema-1 repo,
 * and references that wrap a dag-pb leaf's bytes (get --from's).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <ftw.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ia/ipfs.h"
#include "ipfs/ipfs_internal.h"
#include "test.h"
#include "test_fs.h"

static ia_blockstore *open_repo(const char *dir) {
    ia_blockstore *bs = NULL;
    CHECK_OK(ia_blockstore_open(dir, &bs));
    return bs;
}

/* The path of a block's file, found by listing the shard folders. */
static bool block_file(const char *dir, char *out, size_t cap) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "find %s/blocks -name '*.data' | head -n 1", dir);
    FILE *p = popen(cmd, "r");
    bool ok = p && fgets(out, (int)cap, p) != NULL;
    if (p)
        pclose(p);
    if (ok)
        out[strcspn(out, "\n")] = '\0';
    return ok;
}

static ia_status count_cb(void *ctx, const ia_cid *cid) {
    (*(int *)ctx)++;
    return IA_OK;
}

TEST(put_get_has_size_remove) {
    char *dir = temp_dir();
    ia_blockstore *bs = open_repo(dir);
    const char data[] = "hello blockstore";
    ia_cid cid, v0;
    ia_cid_of_block(1, IA_CODEC_RAW, data, sizeof data - 1, &cid);
    ia_cid_of_block(0, IA_CODEC_DAG_PB, data, sizeof data - 1, &v0);
    CHECK(!ia_blockstore_has(bs, &cid));
    CHECK_ERR(ia_blockstore_get(bs, &cid, &(uint8_t *){NULL}, &(size_t){0}), IA_ENOTFOUND,
              "is not in the repo");
    CHECK_OK(ia_blockstore_put(bs, &cid, data, sizeof data - 1));
    CHECK_OK(ia_blockstore_put(bs, &cid, data, sizeof data - 1)); /* idempotent */
    CHECK(ia_blockstore_has(bs, &cid));
    CHECK(ia_blockstore_has(bs, &v0)); /* keyed by multihash, like Kubo */
    uint64_t size = 0;
    CHECK_OK(ia_blockstore_size(bs, &cid, &size));
    CHECK_EQ_INT(size, sizeof data - 1);
    uint8_t *got = NULL;
    size_t len = 0;
    CHECK_OK(ia_blockstore_get(bs, &cid, &got, &len));
    CHECK(len == sizeof data - 1 && memcmp(got, data, len) == 0);
    free(got);
    int n = 0;
    CHECK_OK(ia_blockstore_foreach(bs, count_cb, &n));
    CHECK_EQ_INT(n, 1);
    /* Survives a reopen. */
    ia_blockstore_close(bs);
    bs = open_repo(dir);
    CHECK(ia_blockstore_has(bs, &cid));
    CHECK_OK(ia_blockstore_remove(bs, &cid));
    CHECK(!ia_blockstore_has(bs, &cid));
    CHECK_ERR(ia_blockstore_remove(bs, &cid), IA_ENOTFOUND, "is not in the repo");
    ia_blockstore_close(bs);
    rm_rf(dir);
    free(dir);
}

TEST(put_refuses_mismatch_and_keeps_identity_inline) {
    char *dir = temp_dir();
    ia_blockstore *bs = open_repo(dir);
    ia_cid cid;
    ia_cid_of_block(1, IA_CODEC_RAW, "abc", 3, &cid);
    CHECK_ERR(ia_blockstore_put(bs, &cid, "abd", 3), IA_EPARSE, "does not match its CID");
    CHECK(!ia_blockstore_has(bs, &cid));
    ia_cid id = {.version = 1, .codec = IA_CODEC_RAW, .mh_code = IA_MH_IDENTITY, .digest_len = 3};
    memcpy(id.digest, "xyz", 3);
    CHECK_OK(ia_blockstore_put(bs, &id, "xyz", 3));
    uint8_t *got = NULL;
    size_t len = 0;
    CHECK_OK(ia_blockstore_get(bs, &id, &got, &len));
    CHECK(len == 3 && memcmp(got, "xyz", 3) == 0);
    free(got);
    ia_blockstore_close(bs);
    rm_rf(dir);
    free(dir);
}

TEST(leftover_temp_file_ignored_then_cleaned) {
    char *dir = temp_dir();
    ia_blockstore *bs = open_repo(dir);
    ia_cid cid;
    ia_cid_of_block(1, IA_CODEC_RAW, "kept", 4, &cid);
    CHECK_OK(ia_blockstore_put(bs, &cid, "kept", 4));
    CHECK_OK(ia_pin_add(bs, &cid, IA_PIN_DIRECT));
    /* What a writer killed between write and rename leaves behind. */
    char path[4096], shard[4096];
    CHECK(block_file(dir, path, sizeof path));
    snprintf(shard, sizeof shard, "%s", path);
    *strrchr(shard, '/') = '\0';
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s/.put-AbC123", shard);
    FILE *f = fopen(tmp, "wb");
    fputs("half a blo", f);
    fclose(f);
    int n = 0;
    CHECK_OK(ia_blockstore_foreach(bs, count_cb, &n));
    CHECK_EQ_INT(n, 1);
    uint64_t removed = 99;
    CHECK_OK(ia_repo_gc(bs, NULL, NULL, &removed));
    CHECK_EQ_INT(removed, 0);
    CHECK(access(tmp, F_OK) != 0);
    CHECK(ia_blockstore_has(bs, &cid));
    ia_blockstore_close(bs);
    rm_rf(dir);
    free(dir);
}

TEST(corrupt_block_detected_by_get_and_verify) {
    char *dir = temp_dir();
    ia_blockstore *bs = open_repo(dir);
    ia_cid cid, good;
    ia_cid_of_block(1, IA_CODEC_RAW, "precious bytes", 14, &cid);
    CHECK_OK(ia_blockstore_put(bs, &cid, "precious bytes", 14));
    char path[4096];
    CHECK(block_file(dir, path, sizeof path));
    ia_cid_of_block(1, IA_CODEC_RAW, "fine", 4, &good);
    CHECK_OK(ia_blockstore_put(bs, &good, "fine", 4));
    chmod(path, 0644);
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (f) {
        fputc('P', f); /* flip one byte, same size */
        fclose(f);
    }
    uint8_t *got = NULL;
    size_t len = 0;
    /* By default reads trust the store (as Kubo's do): the rotten bytes come
     * back; with hash-on-read they are refused. */
    CHECK(!ia_blockstore_hash_on_read(bs));
    CHECK_OK(ia_blockstore_get(bs, &cid, &got, &len));
    CHECK(len == 14 && memcmp(got, "Precious bytes", 14) == 0);
    free(got);
    got = NULL;
    ia_blockstore_set_hash_on_read(bs, true);
    CHECK_ERR(ia_blockstore_get(bs, &cid, &got, &len), IA_EIO, "is corrupt on disk");
    CHECK(got == NULL);
    ia_blockstore_set_hash_on_read(bs, false);
    /* verify always hashes, and leaves the setting as it found it */
    uint64_t checked = 0, bad = 0;
    CHECK_OK(ia_repo_verify(bs, NULL, NULL, &checked, &bad));
    CHECK_EQ_INT(checked, 2);
    CHECK_EQ_INT(bad, 1);
    CHECK(!ia_blockstore_hash_on_read(bs));
    /* A put of the right bytes does not repair a same-size rotten copy, but
     * remove + put does. */
    CHECK_OK(ia_blockstore_remove(bs, &cid));
    CHECK_OK(ia_blockstore_put(bs, &cid, "precious bytes", 14));
    CHECK_OK(ia_blockstore_get(bs, &cid, &got, &len));
    free(got);
    ia_blockstore_close(bs);
    rm_rf(dir);
    free(dir);
}

#define N_SHARED 64
#define N_OWN 32

static void make_block(int who, int i, char *buf, size_t cap, size_t *len) {
    *len = (size_t)snprintf(buf, cap, "block %d of %d, padded to vary its size %*s", i, who, i % 50,
                            "");
}

TEST(two_processes_put_concurrently) {
    char *dir = temp_dir();
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        if ((kids[k] = fork()) == 0) {
            ia_blockstore *bs = NULL;
            if (ia_blockstore_open(dir, &bs) != IA_OK) {
                fprintf(stderr, "  child %d: %s\n", k, ia_error_message());
                _exit(3);
            }
            int fails = 0;
            for (int i = 0; i < N_SHARED + N_OWN; i++) {
                char buf[256];
                size_t len;
                make_block(i < N_SHARED ? -1 : k, i, buf, sizeof buf, &len);
                ia_cid cid;
                ia_cid_of_block(1, IA_CODEC_RAW, buf, len, &cid);
                ia_status st = ia_blockstore_put(bs, &cid, buf, len);
                if (st == IA_OK && i % 8 == 0)
                    st = ia_pin_add(bs, &cid, IA_PIN_DIRECT);
                if (st != IA_OK)
                    fprintf(stderr, "  child %d: %s\n", k, ia_error_message());
                fails += st != IA_OK;
            }
            ia_blockstore_close(bs);
            _exit(fails ? 1 : 0);
        }
    }
    for (int k = 0; k < 2; k++) {
        int status = 0;
        waitpid(kids[k], &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    ia_blockstore *bs = open_repo(dir);
    int n = 0;
    CHECK_OK(ia_blockstore_foreach(bs, count_cb, &n));
    CHECK_EQ_INT(n, N_SHARED + 2 * N_OWN);
    uint64_t checked = 0, bad = 0;
    CHECK_OK(ia_repo_verify(bs, NULL, NULL, &checked, &bad));
    CHECK_EQ_INT(checked, N_SHARED + 2 * N_OWN);
    CHECK_EQ_INT(bad, 0);
    ia_blockstore_close(bs);
    rm_rf(dir);
    free(dir);
}

TEST(nocopy_reference_and_changed_source) {
    char *dir = temp_dir();
    ia_blockstore *bs = open_repo(dir);
    char src[4200];
    snprintf(src, sizeof src, "%s/model.bin", dir);
    FILE *f = fopen(src, "wb");
    const char content[] = "HEADER--the weights live here--TRAILER";
    fwrite(content, 1, sizeof content - 1, f);
    fclose(f);
    ia_cid cid;
    ia_cid_of_block(1, IA_CODEC_RAW, content + 8, 23, &cid);
    CHECK_OK(ia_blockstore_put_ref(bs, &cid, src, 8, 23));
    CHECK(ia_blockstore_has(bs, &cid));
    uint64_t size = 0;
    CHECK_OK(ia_blockstore_size(bs, &cid, &size));
    CHECK_EQ_INT(size, 23);
    uint8_t *got = NULL;
    size_t len = 0;
    CHECK_OK(ia_blockstore_get(bs, &cid, &got, &len));
    CHECK(len == 23 && memcmp(got, content + 8, 23) == 0);
    free(got);
    got = NULL;
    /* No copy in blocks/: the file is the storage. */
    char path[4096];
    CHECK(!block_file(dir, path, sizeof path));
    int n = 0;
    CHECK_OK(ia_blockstore_foreach(bs, count_cb, &n));
    CHECK_EQ_INT(n, 1);
    CHECK_ERR(ia_blockstore_put_ref(bs, &cid, src, 30, 100), IA_ERANGE, "past the end");

    /* Change the source in place, same size: the size/mtime check or the
     * hash catches it; never served. */
    sleep(0); /* mtime has ns resolution; also force it below */
    f = fopen(src, "r+b");
    fseek(f, 10, SEEK_SET);
    fputc('X', f);
    fclose(f);
    struct timespec times[2] = {{0, UTIME_OMIT}, {1000, 0}};
    utimensat(AT_FDCWD, src, times, 0);
    CHECK_ERR(ia_blockstore_get(bs, &cid, &got, &len), IA_EIO, "changed since it was added");
    CHECK(got == NULL);
    uint64_t checked = 0, bad = 0;
    CHECK_OK(ia_repo_verify(bs, NULL, NULL, &checked, &bad));
    CHECK_EQ_INT(bad, 1);

    /* Re-recorded against the changed file (same mtime/size as now), the hash
     * still refuses it. */
    CHECK_OK(ia_blockstore_put_ref(bs, &cid, src, 8, 23));
    CHECK_ERR(ia_blockstore_get(bs, &cid, &got, &len), IA_EIO, "no longer holds");
    CHECK_OK(ia_blockstore_remove(bs, &cid));
    CHECK(!ia_blockstore_has(bs, &cid));
    ia_blockstore_close(bs);
    rm_rf(dir);
    free(dir);
}

/* Temporary block files left in the shard folders. */
static int count_temp_files(const char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "find %s/blocks -name '.put-*' | wc -l", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p && fscanf(p, "%d", &n) != 1)
        n = -1;
    if (p)
        pclose(p);
    return n;
}

TEST(batched_puts_commit_abort_close) {
    char *dir = temp_dir();
    ia_blockstore *bs = open_repo(dir);
    char text[3][32];
    ia_cid cid[3];
    for (int i = 0; i < 3; i++) {
        snprintf(text[i], sizeof text[i], "batched %d", i);
        ia_cid_of_block(1, IA_CODEC_RAW, text[i], strlen(text[i]), &cid[i]);
    }
    /* commit: nothing visible before, everything after, no temp files left */
    ia_blockstore_batch_begin(bs);
    ia_blockstore_batch_begin(bs); /* nested: only the outer commit writes */
    CHECK_OK(ia_blockstore_put(bs, &cid[0], text[0], strlen(text[0])));
    CHECK_OK(ia_blockstore_put(bs, &cid[1], text[1], strlen(text[1])));
    CHECK_ERR(ia_blockstore_put(bs, &cid[1], "wrong", 5), IA_EPARSE, "does not match");
    CHECK_OK(ia_blockstore_batch_commit(bs));
    CHECK(!ia_blockstore_has(bs, &cid[0]));
    CHECK_EQ_INT(count_temp_files(dir), 2);
    CHECK_OK(ia_blockstore_batch_commit(bs));
    CHECK(ia_blockstore_has(bs, &cid[0]) && ia_blockstore_has(bs, &cid[1]));
    CHECK_EQ_INT(count_temp_files(dir), 0);
    uint8_t *got = NULL;
    size_t len = 0;
    ia_blockstore_set_hash_on_read(bs, true);
    CHECK_OK(ia_blockstore_get(bs, &cid[1], &got, &len));
    CHECK(len == strlen(text[1]) && memcmp(got, text[1], len) == 0);
    free(got);
    /* abort: the block never appears, its temp file is gone */
    ia_blockstore_batch_begin(bs);
    CHECK_OK(ia_blockstore_put(bs, &cid[2], text[2], strlen(text[2])));
    CHECK_EQ_INT(count_temp_files(dir), 1);
    ia_blockstore_batch_abort(bs);
    CHECK(!ia_blockstore_has(bs, &cid[2]));
    CHECK_EQ_INT(count_temp_files(dir), 0);
    /* close with a batch open discards it too */
    ia_blockstore_batch_begin(bs);
    CHECK_OK(ia_blockstore_put(bs, &cid[2], text[2], strlen(text[2])));
    ia_blockstore_close(bs);
    bs = open_repo(dir);
    CHECK(!ia_blockstore_has(bs, &cid[2]));
    CHECK_EQ_INT(count_temp_files(dir), 0);
    /* many blocks: the automatic commits inside one batch (every 16 blocks
     * here) keep every block, and those already committed are visible */
    ia_bs_set_batch_limits(bs, 16, 0);
    ia_blockstore_batch_begin(bs);
    uint8_t block[64] = {0};
    ia_cid first, last;
    for (int i = 0; i < 40; i++) {
        memcpy(block, &i, sizeof i);
        ia_cid_of_block(1, IA_CODEC_RAW, block, sizeof block, &last);
        if (i == 0)
            first = last;
        CHECK_OK(ia_blockstore_put(bs, &last, block, sizeof block));
    }
    CHECK(ia_blockstore_has(bs, &first) && !ia_blockstore_has(bs, &last));
    CHECK_EQ_INT(count_temp_files(dir), 8);
    CHECK_OK(ia_blockstore_batch_commit(bs));
    int n = 0;
    CHECK_OK(ia_blockstore_foreach(bs, count_cb, &n));
    CHECK_EQ_INT(n, 42);
    CHECK(ia_blockstore_has(bs, &last));
    ia_blockstore_close(bs);
    rm_rf(dir);
    free(dir);
}

TEST(newer_schema_refused) {
    char *dir = temp_dir();
    ia_blockstore *bs = open_repo(dir);
    ia_blockstore_close(bs);
    char path[4200];
    snprintf(path, sizeof path, "%s/repo.sqlite", dir);
    sqlite3 *db = NULL;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, "PRAGMA user_version=7", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    bs = NULL;
    CHECK_ERR(ia_blockstore_open(dir, &bs), IA_EUNSUPPORTED, "schema version 7");
    CHECK(bs == NULL);
    rm_rf(dir);
    free(dir);
}

/* A repo of schema 1 (references without a dag-pb leaf's framing) is
 * upgraded in place: its references still read, and wrapped ones can be
 * added. Wrapped references must be leaves, and pending ones are absent. */
TEST(schema_1_upgraded_and_wrapped_references) {
    char *dir = temp_dir(), path[4200], src[4200];
    snprintf(path, sizeof path, "%s/repo.sqlite", dir);
    snprintf(src, sizeof src, "%s/data.bin", dir);
    FILE *f = fopen(src, "wb");
    const char content[] = "0123456789abcdefghij";
    fwrite(content, 1, 20, f);
    fclose(f);
    struct stat sb;
    CHECK(stat(src, &sb) == 0);
    ia_cid raw;
    ia_cid_of_block(1, IA_CODEC_RAW, content + 4, 8, &raw);
    uint8_t mh[IA_CID_MAX_BYTES];
    size_t mh_len = ia_bs_multihash(&raw, mh);
    sqlite3 *db = NULL;
    mkdir(dir, 0755);
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db,
                       "CREATE TABLE pins (cid BLOB NOT NULL, mh BLOB PRIMARY KEY, type INTEGER "
                       "NOT NULL); CREATE TABLE refs (mh BLOB PRIMARY KEY, path TEXT NOT NULL, "
                       "off INTEGER NOT NULL, len INTEGER NOT NULL, file_size INTEGER NOT NULL, "
                       "mtime_ns INTEGER NOT NULL); PRAGMA user_version=1",
                       NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_stmt *q = NULL;
    CHECK(sqlite3_prepare_v2(db, "INSERT INTO refs VALUES (?, ?, 4, 8, 20, ?)", -1, &q, NULL) ==
          SQLITE_OK);
    sqlite3_bind_blob(q, 1, mh, (int)mh_len, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, src, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, (sqlite3_int64)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec);
    CHECK(sqlite3_step(q) == SQLITE_DONE);
    sqlite3_finalize(q);
    sqlite3_close(db);

    ia_blockstore *bs = open_repo(dir);
    uint8_t *data = NULL;
    size_t len = 0;
    CHECK_OK(ia_blockstore_get(bs, &raw, &data, &len));
    CHECK(len == 8 && memcmp(data, "456789ab", 8) == 0);
    free(data);

    /* A dag-pb leaf: framing + bytes [10, 16) + framing, as get --from keeps it. */
    uint8_t block[32] = {0x0a, 0x0c, 0x08, 0x02, 0x12, 0x06};
    memcpy(block + 6, content + 10, 6);
    block[12] = 0x18;
    block[13] = 0x06;
    ia_cid pb;
    ia_cid_of_block(0, IA_CODEC_DAG_PB, block, 14, &pb);
    ia_bs_ref r = {.cid = pb, .path = src, .offset = 10, .len = 6, .n_prefix = 6, .n_suffix = 2};
    memcpy(r.prefix, block, 6);
    memcpy(r.suffix, block + 12, 2);
    CHECK_OK(ia_bs_put_refs_pending(bs, &r, 1));
    CHECK(!ia_blockstore_has(bs, &pb)); /* pending: not there yet */
    const char *paths[1] = {src};
    CHECK_OK(ia_bs_refs_finish(bs, paths, 1));
    CHECK(ia_blockstore_has(bs, &pb));
    CHECK(ia_bs_ref_is_leaf(bs, &pb));
    uint64_t size = 0;
    CHECK_OK(ia_blockstore_size(bs, &pb, &size));
    CHECK_EQ_INT(size, 14);
    CHECK_OK(ia_blockstore_get(bs, &pb, &data, &len));
    CHECK(len == 14 && memcmp(data, block, 14) == 0);
    free(data);
    ia_pb_node node;
    CHECK_OK(ia_dagpb_decode(block, 14, &node));
    CHECK_EQ_INT(node.n_links, 0);
    ia_pb_node_free(&node);

    /* Not leaves: a raw block with framing, a dag-pb block that does not start with Data. */
    ia_bs_ref bad = r;
    bad.prefix[0] = 0x12;
    CHECK_ERR(ia_bs_put_refs_pending(bs, &bad, 1), IA_EINVAL, "would not be a leaf");
    bad = r;
    bad.cid = raw;
    CHECK_ERR(ia_bs_put_refs_pending(bs, &bad, 1), IA_EINVAL, "would not be a leaf");
    /* Dropped pending references leave the valid ones alone. */
    CHECK_OK(ia_bs_refs_drop(bs, paths, 1));
    CHECK(ia_blockstore_has(bs, &pb));
    ia_blockstore_close(bs);
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL) == SQLITE_OK);
    CHECK(sqlite3_step(q) == SQLITE_ROW);
    CHECK_EQ_INT(sqlite3_column_int(q, 0), 2);
    sqlite3_finalize(q);
    sqlite3_close(db);
    rm_rf(dir);
    free(dir);
}

TEST(default_repo_path) {
    setenv("IPFS_ACCELERATE_HOME", "/x/y", 1);
    char *p = ia_repo_default_path();
    CHECK(p && strcmp(p, "/x/y") == 0);
    free(p);
    unsetenv("IPFS_ACCELERATE_HOME");
    setenv("HOME", "/home/u", 1);
    p = ia_repo_default_path();
    CHECK(p && strcmp(p, "/home/u/.local/share/ipfs-accelerate") == 0);
    free(p);
}
