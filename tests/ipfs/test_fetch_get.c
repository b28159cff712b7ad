/*
 * get --from's direct path (ia_fetch_get): every block verified, then its
 * bytes written straight to their place in the output, which appears under
 * its name only once complete; leaves kept in the store as references into
 * the output (raw leaves, and CIDv0's dag-pb leaves with their framing), so
 * that cat and a gateway serve them and a changed output is reported.
 *
 * Cases: CIDv0 and CIDv1 files byte for byte, what the store holds and
 * serves, a changed output file, a corrupt block refused and fetched from
 * another peer, a directory (nested, empty files, duplicate files, empty
 * folders), a HAMT-sharded directory, a file whose subtrees repeat (fetched
 * once, copied), resume from blocks already stored, no store at all, and
 * failures that leave nothing behind. Peers are the responders of
 * fetch_peers.h.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <ftw.h>
#include <sqlite3.h>

#include "fetch_peers.h"
#include "ipfs/ipfs_internal.h"
#include "test_cli.h"

/* A file of n bytes at path (write_file's generator), added with opts. */
static ia_cid add_file(ia_blockstore *bs, const char *dir, const char *name, size_t n,
                       const ia_add_options *o) {
    char path[8400];
    write_file(dir, name, n, 7);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    ia_cid root = {0};
    CHECK_OK(ia_add_path(bs, path, o, NULL, NULL, &root));
    return root;
}

static bool same_files(const char *a, const char *b) {
    char cmd[17000];
    snprintf(cmd, sizeof cmd, "diff -r '%s' '%s' >/dev/null 2>&1", a, b);
    return system(cmd) == 0;
}

/* Entries of dir whose name starts with prefix (temporary outputs left behind). */
static int count_prefixed(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    if (d)
        closedir(d);
    return n;
}

static int n_files_under;
static int count_file(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)p, (void)sb, (void)ftw;
    n_files_under += flag == FTW_F;
    return 0;
}

/* Regular files under path (block files of a store). */
static int files_under(const char *path) {
    n_files_under = 0;
    nftw(path, count_file, 16, FTW_PHYS);
    return n_files_under;
}

typedef struct sink {
    FILE *f;
} sink;

static ia_status to_file(void *ctx, const void *d, size_t n) {
    sink *s = ctx;
    return fwrite(d, 1, n, s->f) == n ? IA_OK : IA_EIO;
}

/* cat of root from bs into path. */
static ia_status cat_to(ia_blockstore *bs, const ia_cid *root, const char *path) {
    sink s = {fopen(path, "wb")};
    ia_status st = ia_unixfs_cat(bs, root, 0, UINT64_MAX, to_file, &s);
    fclose(s.f);
    return st;
}

static uint64_t n_refs(ia_blockstore *bs) {
    ia_repo_stats stats;
    CHECK_OK(ia_repo_stat(bs, &stats));
    return stats.num_objects;
}

/* A file (CIDv0 with dag-pb leaves, or CIDv1 raw leaves) from one CAR peer:
 * the output equals the input, nothing temporary is left, leaves are
 * references (few block files), cat and a responder over the store serve
 * the bytes, and an output changed afterwards is reported, never served. */
static void file_case(int cid_version) {
    char *dir = temp_dir(), src_repo[4200], dst[4200], out[4200], in[4200], back[4200];
    ia_blockstore *src = NULL, *bs = NULL;
    snprintf(src_repo, sizeof src_repo, "%s/src", dir);
    snprintf(dst, sizeof dst, "%s/dst", dir);
    snprintf(out, sizeof out, "%s/out.bin", dir);
    snprintf(in, sizeof in, "%s/in.bin", dir);
    snprintf(back, sizeof back, "%s/back.bin", dir);
    CHECK_OK(ia_blockstore_open(src_repo, &src));
    ia_add_options o = ia_add_options_default();
    o.cid_version = cid_version;
    o.chunk_size = 16384; /* 184 leaves: a subtree of 174 (2.8 MB) comes as a CAR */
    o.threads = 1;
    ia_cid root = add_file(src, dir, "in.bin", 3 * 1000 * 1000 + 17, &o);
    size_t n_blocks;
    free(dag_blocks(src, &root, &n_blocks));
    peer_proc p = start_responder(dir, src_repo, "car-ok", 0);
    CHECK(p.pid > 0);
    const char *urls[1] = {p.url};
    CHECK_OK(ia_blockstore_open(dst, &bs));
    ia_fetch_options fo = test_options();
    ia_fetch_report r;
    CHECK_OK(ia_fetch_get(bs, &root, out, urls, 1, &fo, &r));
    CHECK_EQ_INT(r.blocks_fetched, n_blocks);
    CHECK_EQ_INT(r.n_notes, 0);
    ia_fetch_report_free(&r);
    CHECK_MSG(same_files(in, out), "output differs from the input (CIDv%d)", cid_version);
    CHECK_EQ_INT(count_prefixed(dir, "out.bin.get-"), 0);
    /* 184 leaves under 3 nodes: only the nodes are block files. */
    char blocks[4300];
    snprintf(blocks, sizeof blocks, "%s/blocks", dst);
    CHECK_MSG(files_under(blocks) == 3, "%d block files for %zu blocks", files_under(blocks),
              n_blocks);
    CHECK_EQ_INT(n_refs(bs), n_blocks);
    CHECK_OK(cat_to(bs, &root, back));
    CHECK(same_files(in, back));
    ia_unixfs_info info;
    CHECK_OK(ia_unixfs_stat(bs, &root, &info));
    CHECK_EQ_INT(info.size, 3 * 1000 * 1000 + 17);
    uint64_t checked = 0, bad = 0;
    CHECK_OK(ia_repo_verify(bs, NULL, NULL, &checked, &bad));
    CHECK_EQ_INT(checked, n_blocks);
    CHECK_EQ_INT(bad, 0);

    /* The store's references serve a CAR to another fetch (a responder over dst). */
    peer_proc p2 = start_responder(dir, dst, "car-ok", 0);
    const char *urls2[1] = {p2.url};
    char out2[4300];
    snprintf(out2, sizeof out2, "%s/out2.bin", dir);
    CHECK_OK(ia_fetch_get(NULL, &root, out2, urls2, 1, &fo, &r));
    ia_fetch_report_free(&r);
    CHECK(same_files(in, out2));
    stop_peer(&p2);

    /* A changed output: reported on read, never served. */
    int fd = open(out, O_WRONLY);
    CHECK(pwrite(fd, "X", 1, 100000) == 1);
    close(fd);
    struct timespec later[2] = {{0, UTIME_OMIT}, {time(NULL) + 5, 0}};
    utimensat(AT_FDCWD, out, later, 0); /* a coarse clock must still see a change */
    CHECK_ERR(cat_to(bs, &root, back), IA_EIO, "changed since it was added");
    CHECK_OK(ia_repo_verify(bs, NULL, NULL, &checked, &bad));
    CHECK(bad > 0);
    stop_peer(&p);
    ia_blockstore_close(bs);
    ia_blockstore_close(src);
    rm_rf(dir);
    free(dir);
}

TEST(file_cidv0_dagpb_leaves) { file_case(0); }

TEST(file_cidv1_raw_leaves) { file_case(1); }

/* A corrupt CAR stream and a corrupt single block: both refused, the peer
 * dropped, the blocks fetched from the good peer, the output right. */
TEST(corrupt_blocks_are_refused_and_fetched_elsewhere) {
    char *dir = temp_dir(), src_repo[4200], dst[4200], out[4200], in[4200];
    ia_blockstore *src = NULL, *bs = NULL;
    snprintf(src_repo, sizeof src_repo, "%s/src", dir);
    snprintf(dst, sizeof dst, "%s/dst", dir);
    snprintf(in, sizeof in, "%s/in.bin", dir);
    CHECK_OK(ia_blockstore_open(src_repo, &src));
    ia_add_options o = ia_add_options_default();
    o.chunk_size = 16384;
    o.threads = 1;
    ia_cid root = add_file(src, dir, "in.bin", 5 * 1000 * 1000, &o); /* 2 CAR subtrees */
    const char *modes[2] = {"car-corrupt", "corrupt"};
    CHECK_OK(ia_blockstore_open(dst, &bs));
    for (int m = 0; m < 2; m++) {
        peer_proc p[2] = {start_responder(dir, src_repo, "ok", 0),
                          start_responder(dir, src_repo, modes[m], 2)};
        const char *urls[2] = {p[0].url, p[1].url};
        snprintf(out, sizeof out, "%s/out%d.bin", dir, m);
        ia_fetch_options fo = test_options();
        ia_fetch_report r;
        /* A fresh store each time: nothing comes from the first round. */
        ia_blockstore *use = m == 0 ? bs : NULL;
        CHECK_OK(ia_fetch_get(use, &root, out, urls, 2, &fo, &r));
        CHECK_MSG(r.peers[1].dropped && r.peers[1].why &&
                      strstr(r.peers[1].why, "served a block that does not match"),
                  "%s: %s", modes[m], r.peers[1].why ? r.peers[1].why : "(not dropped)");
        /* At least the first: the bad peer's two streams each end in a
         * corrupt block, and leaves verified on the second thread may
         * have come in from both before the first verdict dropped it. */
        CHECK(r.peers[1].corrupt >= 1 && r.peers[1].corrupt <= 2);
        CHECK(!r.peers[0].dropped);
        if (test_failed_checks)
            print_notes(&r);
        ia_fetch_report_free(&r);
        CHECK_MSG(same_files(in, out), "%s: output differs", modes[m]);
        for (int i = 0; i < 2; i++)
            stop_peer(&p[i]);
    }
    ia_blockstore_close(bs);
    ia_blockstore_close(src);
    rm_rf(dir);
    free(dir);
}

/* A directory: nested folders, empty files, two identical files, two empty
 * folders (each fetched once, copied), through CAR streams and block by
 * block; then resume into a new output from what the store holds. */
TEST(directory_tree) {
    char *dir = temp_dir(), src_repo[4200], dst[4200], out[4200], top[4200], cmd[40000];
    ia_blockstore *src = NULL, *bs = NULL;
    ia_cid root = make_source(dir, 3 * 1000 * 1000, &src);
    snprintf(top, sizeof top, "%s/top", dir);
    snprintf(cmd, sizeof cmd,
             "cp %s/big.bin %s/sub/big-again.bin && mkdir %s/e1 %s/e2 %s/e3 && : > %s/e3/zero && "
             "cp %s/small.txt %s/small-again.txt",
             top, top, top, top, top, top, top, top);
    CHECK(system(cmd) == 0);
    ia_add_options o = ia_add_options_default();
    o.cid_version = 1;
    o.chunk_size = 65536;
    o.threads = 1;
    CHECK_OK(ia_add_path(src, top, &o, NULL, NULL, &root));
    snprintf(src_repo, sizeof src_repo, "%s/src", dir);
    snprintf(dst, sizeof dst, "%s/dst", dir);
    peer_proc p[2] = {start_responder(dir, src_repo, "car-ok", 0),
                      start_responder(dir, src_repo, "ok", 0)};
    CHECK_OK(ia_blockstore_open(dst, &bs));
    ia_fetch_options fo = test_options();
    ia_fetch_report r;
    for (int i = 0; i < 2; i++) {
        const char *urls[1] = {p[i].url};
        snprintf(out, sizeof out, "%s/out%d", dir, i);
        /* The first into the store, the second without one. */
        CHECK_OK(ia_fetch_get(i == 0 ? bs : NULL, &root, out, urls, 1, &fo, &r));
        ia_fetch_report_free(&r);
        CHECK_MSG(same_files(top, out), "%s differs from the source", out);
    }
    CHECK_EQ_INT(count_prefixed(dir, "out0.get-") + count_prefixed(dir, "out1.get-"), 0);
    snprintf(out, sizeof out, "%s/from-store", dir);
    CHECK_OK(ia_unixfs_get(bs, &root, out));
    CHECK(same_files(top, out));

    /* Resume: everything is in the store; nothing is asked for. */
    truncate(p[0].log, 0);
    snprintf(out, sizeof out, "%s/out2", dir);
    const char *urls[1] = {p[0].url};
    CHECK_OK(ia_fetch_get(bs, &root, out, urls, 1, &fo, &r));
    CHECK_EQ_INT(r.blocks_fetched, 0);
    CHECK_EQ_INT(log_lines(p[0].log), 0);
    ia_fetch_report_free(&r);
    CHECK(same_files(top, out));

    /* The first output is gone: its references are unusable, so those
     * leaves are fetched again (and the store refers to the new output). */
    snprintf(cmd, sizeof cmd, "rm -r %s/out0", dir);
    CHECK(system(cmd) == 0);
    snprintf(out, sizeof out, "%s/out3", dir);
    CHECK_OK(ia_fetch_get(bs, &root, out, urls, 1, &fo, &r));
    CHECK_MSG(r.blocks_fetched > 40, "%llu fetched", (unsigned long long)r.blocks_fetched);
    ia_fetch_report_free(&r);
    CHECK(same_files(top, out));
    snprintf(out, sizeof out, "%s/from-store2", dir);
    CHECK_OK(ia_unixfs_get(bs, &root, out));
    CHECK(same_files(top, out));
    for (int i = 0; i < 2; i++)
        stop_peer(&p[i]);
    ia_blockstore_close(bs);
    ia_blockstore_close(src);
    rm_rf(dir);
    free(dir);
}

TEST(hamt_sharded_directory) {
    char *dir = temp_dir(), src_repo[4200], out[4200], top[4200];
    ia_blockstore *src = NULL;
    snprintf(src_repo, sizeof src_repo, "%s/src", dir);
    snprintf(top, sizeof top, "%s/many", dir);
    mkdir(top, 0755);
    for (int i = 0; i < 300; i++) {
        char name[32];
        snprintf(name, sizeof name, "f%03d", i);
        write_file(top, name, (size_t)(i % 7) * 100, (unsigned)i);
    }
    CHECK_OK(ia_blockstore_open(src_repo, &src));
    ia_add_options o = ia_add_options_default();
    o.hamt_threshold = 1000;
    o.threads = 1;
    ia_cid root;
    CHECK_OK(ia_add_path(src, top, &o, NULL, NULL, &root));
    ia_unixfs_info info;
    CHECK_OK(ia_unixfs_stat(src, &root, &info));
    CHECK_EQ_INT(info.type, IA_UNIXFS_HAMT_SHARD);
    peer_proc p = start_responder(dir, src_repo, "ok", 0);
    const char *urls[1] = {p.url};
    snprintf(out, sizeof out, "%s/out", dir);
    ia_fetch_options fo = test_options();
    ia_fetch_report r;
    CHECK_OK(ia_fetch_get(NULL, &root, out, urls, 1, &fo, &r));
    ia_fetch_report_free(&r);
    CHECK(same_files(top, out));
    stop_peer(&p);
    ia_blockstore_close(src);
    rm_rf(dir);
    free(dir);
}

/* A file of zeros in 1 KiB chunks: one leaf repeated, and whole subtrees
 * repeated (each fetched once; copies fill the rest). */
TEST(repeated_subtrees) {
    char *dir = temp_dir(), src_repo[4200], dst[4200], out[4200], in[4200];
    ia_blockstore *src = NULL, *bs = NULL;
    snprintf(src_repo, sizeof src_repo, "%s/src", dir);
    snprintf(dst, sizeof dst, "%s/dst", dir);
    snprintf(in, sizeof in, "%s/zeros", dir);
    size_t size = 174 * 1024 * 3 + 5000;
    FILE *fz = fopen(in, "wb");
    for (size_t i = 0; i < size; i++)
        fputc(i >= 174 * 1024 * 3 ? 'x' : 0, fz);
    fclose(fz);
    CHECK_OK(ia_blockstore_open(src_repo, &src));
    ia_add_options o = ia_add_options_default();
    o.chunk_size = 1024;
    o.threads = 1;
    ia_cid root;
    CHECK_OK(ia_add_path(src, in, &o, NULL, NULL, &root));
    size_t n_blocks;
    free(dag_blocks(src, &root, &n_blocks));
    CHECK_MSG(n_blocks < 12, "%zu distinct blocks", n_blocks);
    for (int car = 0; car < 2; car++) {
        peer_proc p = start_responder(dir, src_repo, car ? "car-ok" : "ok", 0);
        const char *urls[1] = {p.url};
        snprintf(out, sizeof out, "%s/out%d", dir, car);
        char d2[4300];
        snprintf(d2, sizeof d2, "%s%d", dst, car);
        CHECK_OK(ia_blockstore_open(d2, &bs));
        ia_fetch_options fo = test_options();
        fo.max_block_size = 65536; /* subtrees past 64 KiB come as CAR streams */
        ia_fetch_report r;
        CHECK_OK(ia_fetch_get(bs, &root, out, urls, 1, &fo, &r));
        ia_fetch_report_free(&r);
        CHECK_MSG(same_files(in, out), "output %d differs", car);
        char back[4300];
        snprintf(back, sizeof back, "%s/back%d", dir, car);
        CHECK_OK(cat_to(bs, &root, back));
        CHECK(same_files(in, back));
        ia_blockstore_close(bs);
        stop_peer(&p);
    }
    ia_blockstore_close(src);
    rm_rf(dir);
    free(dir);
}

/* No peer has a block: an error naming it; no output, no temporary file, no
 * reference left pending; an existing output is refused up front. */
TEST(failure_leaves_nothing) {
    char *dir = temp_dir(), src_repo[4200], dst[4200], out[4200];
    ia_blockstore *src = NULL, *bs = NULL;
    snprintf(src_repo, sizeof src_repo, "%s/src", dir);
    snprintf(dst, sizeof dst, "%s/dst", dir);
    snprintf(out, sizeof out, "%s/out.bin", dir);
    CHECK_OK(ia_blockstore_open(src_repo, &src));
    ia_add_options o = ia_add_options_default();
    o.cid_version = 1;
    o.chunk_size = 65536;
    o.threads = 1;
    ia_cid root = add_file(src, dir, "in.bin", 2 * 1000 * 1000, &o);
    size_t n_blocks;
    ia_cid *blocks = dag_blocks(src, &root, &n_blocks);
    char want[IA_CID_MAX_STRING];
    CHECK_OK(ia_cid_format(&blocks[n_blocks - 1], IA_BASE32, want, sizeof want));
    CHECK_OK(ia_blockstore_remove(src, &blocks[n_blocks - 1]));
    peer_proc p = start_responder(dir, src_repo, "ok", 0);
    const char *urls[1] = {p.url};
    CHECK_OK(ia_blockstore_open(dst, &bs));
    ia_fetch_options fo = test_options();
    ia_fetch_report r;
    CHECK_ERR(ia_fetch_get(bs, &root, out, urls, 1, &fo, &r), IA_ENOTFOUND, want);
    ia_fetch_report_free(&r);
    CHECK(access(out, F_OK) != 0);
    CHECK_EQ_INT(count_prefixed(dir, "out.bin.get-"), 0);
    sqlite3_stmt *q = NULL;
    CHECK(sqlite3_prepare_v2(ia_bs_db(bs), "SELECT count(*) FROM refs", -1, &q, NULL) == SQLITE_OK);
    CHECK(sqlite3_step(q) == SQLITE_ROW);
    CHECK_EQ_INT(sqlite3_column_int(q, 0), 0);
    sqlite3_finalize(q);
    write_file(dir, "out.bin", 1, 1);
    CHECK_ERR(ia_fetch_get(bs, &root, out, urls, 1, &fo, &r), IA_EINVAL, "already exists");
    ia_fetch_report_free(&r);
    stop_peer(&p);
    free(blocks);
    ia_blockstore_close(bs);
    ia_blockstore_close(src);
    rm_rf(dir);
    free(dir);
}

/* The CLI: get --from writes OUT (pinned, in the store as references), cat
 * serves it; --store=false leaves the store alone. */
TEST(cli_get_from_direct) {
    const char *cli = getenv("IA_CLI");
    if (!cli || access(cli, X_OK) != 0)
        SKIP("IA_CLI is not set");
    char *dir = temp_dir(), src_repo[4200], dst[4200], out[4200], in[4200], text[256];
    ia_blockstore *src = NULL;
    snprintf(src_repo, sizeof src_repo, "%s/src", dir);
    snprintf(dst, sizeof dst, "%s/dst", dir);
    snprintf(in, sizeof in, "%s/in.bin", dir);
    CHECK_OK(ia_blockstore_open(src_repo, &src));
    ia_add_options o = ia_add_options_default();
    o.chunk_size = 65536;
    o.threads = 1;
    ia_cid root = add_file(src, dir, "in.bin", 1000 * 1000, &o);
    CHECK_OK(ia_cid_format(&root, IA_BASE32, text, sizeof text));
    peer_proc p = start_responder(dir, src_repo, "car-ok", 0);
    snprintf(out, sizeof out, "%s/out.bin", dir);
    run_result r = RUN("get", text, "--from", p.url, "--repo", dst, "-o", out);
    EXPECT(r, 0);
    run_free(&r);
    CHECK(same_files(in, out));
    r = RUN("pin", "ls", "--repo", dst, "--type", "recursive");
    CHECK_MSG(strstr(r.out, text), "%s", r.out);
    run_free(&r);
    r = RUN("cat", text, "--repo", dst);
    EXPECT(r, 0);
    run_free(&r);
    snprintf(out, sizeof out, "%s/plain.bin", dir);
    char nostore[4300];
    snprintf(nostore, sizeof nostore, "%s/untouched", dir);
    r = RUN("get", text, "--from", p.url, "--store=false", "--repo", nostore, "-o", out);
    EXPECT(r, 0);
    run_free(&r);
    CHECK(same_files(in, out));
    CHECK(access(nostore, F_OK) != 0);
    r = RUN("get", text, "--from", p.url, "--store=maybe", "-o", out);
    EXPECT(r, 2);
    run_free(&r);
    stop_peer(&p);
    ia_blockstore_close(src);
    rm_rf(dir);
    free(dir);
}
