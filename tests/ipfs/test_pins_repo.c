/*
 * Pins and repo maintenance: gc keeps recursively and directly pinned DAGs
 * and drops the rest; pin listing (direct, recursive, indirect); recursive
 * pins need the whole DAG; repo stat; gc waits for, then refuses, a repo
 * another process is writing to; --nocopy files added through the importer
 * and a source file changed afterwards.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ia/ipfs.h"
#include "test.h"
#include "test_cli.h"
#include "test_fs.h"

/* Writes n pseudo-random bytes (seeded) to dir/name; returns the path (static). */
static const char *write_file(const char *dir, const char *name, size_t n, unsigned seed) {
    static char path[8400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        fputc((int)(x >> 24), f);
    }
    fclose(f);
    return path;
}

static ia_add_options small_chunks(void) {
    ia_add_options o = ia_add_options_default();
    o.chunk_size = 1024;
    o.max_links = 4;
    o.pin = false;
    return o;
}

static ia_status count_cb(void *ctx, const ia_cid *cid) {
    (*(int *)ctx)++;
    return IA_OK;
}

static int count_blocks(ia_blockstore *bs) {
    int n = 0;
    CHECK_OK(ia_blockstore_foreach(bs, count_cb, &n));
    return n;
}

typedef struct dag_count {
    int n;
} dag_count;

static ia_status count_visit(void *ctx, const ia_cid *cid, const uint8_t *d, size_t len) {
    ((dag_count *)ctx)->n++;
    return IA_OK;
}

static int dag_blocks(ia_blockstore *bs, const ia_cid *root) {
    dag_count c = {0};
    CHECK_OK(ia_dag_walk(bs, root, false, count_visit, &c));
    return c.n;
}

typedef struct pin_rows {
    int n[4];
    ia_pin_type order[64];
    int total;
} pin_rows;

static ia_status collect_pin(void *ctx, const ia_cid *cid, ia_pin_type type) {
    pin_rows *r = ctx;
    r->n[type]++;
    if (r->total < 64)
        r->order[r->total] = type;
    r->total++;
    return IA_OK;
}

TEST(gc_keeps_pinned_dags_and_drops_the_rest) {
    char *dir = temp_dir();
    char repo[4200];
    snprintf(repo, sizeof repo, "%s/repo", dir);
    ia_blockstore *bs = NULL;
    CHECK_OK(ia_blockstore_open(repo, &bs));
    ia_add_options o = small_chunks();
    ia_cid a, b, c;
    CHECK_OK(ia_add_path(bs, write_file(dir, "a.bin", 10000, 1), &o, NULL, NULL, &a));
    CHECK_OK(ia_add_path(bs, write_file(dir, "b.bin", 7000, 2), &o, NULL, NULL, &b));
    ia_cid_of_block(1, IA_CODEC_RAW, "direct", 6, &c);
    CHECK_OK(ia_blockstore_put(bs, &c, "direct", 6));
    int na = dag_blocks(bs, &a), nb = dag_blocks(bs, &b);
    CHECK(na > 10 && nb > 7);
    CHECK_EQ_INT(count_blocks(bs), na + nb + 1);

    CHECK_OK(ia_pin_add(bs, &a, IA_PIN_RECURSIVE));
    CHECK_OK(ia_pin_add(bs, &c, IA_PIN_DIRECT));
    ia_pin_type t;
    CHECK_OK(ia_pin_get(bs, &a, &t));
    CHECK_EQ_INT(t, IA_PIN_RECURSIVE);
    CHECK_ERR(ia_pin_get(bs, &b, &t), IA_ENOTFOUND, "is not pinned");

    pin_rows rows = {0};
    CHECK_OK(ia_pin_list(bs, IA_PIN_ALL, collect_pin, &rows));
    CHECK_EQ_INT(rows.n[IA_PIN_DIRECT], 1);
    CHECK_EQ_INT(rows.n[IA_PIN_RECURSIVE], 1);
    CHECK_EQ_INT(rows.n[IA_PIN_INDIRECT], na - 1);
    CHECK(rows.order[0] == IA_PIN_DIRECT && rows.order[1] == IA_PIN_RECURSIVE);
    pin_rows only = {0};
    CHECK_OK(ia_pin_list(bs, IA_PIN_RECURSIVE, collect_pin, &only));
    CHECK_EQ_INT(only.total, 1);

    uint64_t removed = 0;
    CHECK_OK(ia_repo_gc(bs, NULL, NULL, &removed));
    CHECK_EQ_INT(removed, nb);
    CHECK_EQ_INT(count_blocks(bs), na + 1);
    CHECK(!ia_blockstore_has(bs, &b));
    CHECK(ia_blockstore_has(bs, &c));
    CHECK_EQ_INT(dag_blocks(bs, &a), na); /* still complete */

    ia_repo_stats stats;
    CHECK_OK(ia_repo_stat(bs, &stats));
    CHECK_EQ_INT(stats.num_objects, na + 1);
    CHECK(stats.repo_size > 10000);

    CHECK_OK(ia_pin_remove(bs, &a));
    CHECK_ERR(ia_pin_remove(bs, &a), IA_ENOTFOUND, "is not pinned");
    CHECK_OK(ia_repo_gc(bs, NULL, NULL, &removed));
    CHECK_EQ_INT(removed, na);
    CHECK_EQ_INT(count_blocks(bs), 1);
    ia_blockstore_close(bs);
    rm_rf(dir);
    free(dir);
}

TEST(recursive_pin_needs_the_whole_dag) {
    char *dir = temp_dir();
    char repo[4200];
    snprintf(repo, sizeof repo, "%s/repo", dir);
    ia_blockstore *bs = NULL;
    CHECK_OK(ia_blockstore_open(repo, &bs));
    ia_add_options o = small_chunks();
    ia_cid a;
    CHECK_OK(ia_add_path(bs, write_file(dir, "a.bin", 5000, 3), &o, NULL, NULL, &a));
    /* Drop one leaf: the DAG is incomplete. */
    uint8_t *root = NULL;
    size_t len = 0;
    ia_pb_node node;
    CHECK_OK(ia_blockstore_get(bs, &a, &root, &len));
    CHECK_OK(ia_dagpb_decode(root, len, &node));
    CHECK(node.n_links > 1);
    ia_cid leaf = node.links[node.n_links - 1].cid;
    ia_pb_node_free(&node);
    free(root);
    CHECK_OK(ia_blockstore_remove(bs, &leaf));
    CHECK_ERR(ia_pin_add(bs, &a, IA_PIN_RECURSIVE), IA_ENOTFOUND, "cannot pin");
    CHECK_OK(ia_pin_add(bs, &a, IA_PIN_DIRECT)); /* the root block alone is there */
    ia_cid missing;
    ia_cid_of_block(1, IA_CODEC_RAW, "nope", 4, &missing);
    CHECK_ERR(ia_pin_add(bs, &missing, IA_PIN_DIRECT), IA_ENOTFOUND, "not in the repo");
    CHECK_ERR(ia_pin_add(bs, &a, IA_PIN_INDIRECT), IA_EINVAL, "direct or recursive");
    ia_blockstore_close(bs);
    rm_rf(dir);
    free(dir);
}

TEST(gc_refuses_while_another_process_writes) {
    char *dir = temp_dir();
    int to_parent[2], to_child[2];
    CHECK(pipe(to_parent) == 0 && pipe(to_child) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        ia_blockstore *bs = NULL;
        ia_cid cid;
        ia_cid_of_block(1, IA_CODEC_RAW, "in flight", 9, &cid);
        if (ia_blockstore_open(dir, &bs) != IA_OK || ia_blockstore_put(bs, &cid, "in flight", 9))
            _exit(1);
        char ch = 'r';
        if (write(to_parent[1], &ch, 1) != 1 || read(to_child[0], &ch, 1) != 1)
            _exit(1);
        ia_blockstore_close(bs);
        _exit(0);
    }
    char ch;
    CHECK(read(to_parent[0], &ch, 1) == 1);
    ia_blockstore *bs = NULL;
    CHECK_OK(ia_blockstore_open(dir, &bs));
    double t0 = ia_time_now();
    CHECK_ERR(ia_repo_gc(bs, NULL, NULL, NULL), IA_EIO, "another process is writing");
    CHECK(ia_time_now() - t0 >= 4.0); /* it waited for the writer first */
    ia_cid cid;
    ia_cid_of_block(1, IA_CODEC_RAW, "in flight", 9, &cid);
    CHECK(ia_blockstore_has(bs, &cid));
    CHECK(write(to_child[1], "x", 1) == 1);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    uint64_t removed = 0;
    CHECK_OK(ia_repo_gc(bs, NULL, NULL, &removed)); /* the writer is gone */
    CHECK_EQ_INT(removed, 1);
    ia_blockstore_close(bs);
    rm_rf(dir);
    free(dir);
}

typedef struct buf_sink {
    uint8_t *data;
    size_t len, cap;
} buf_sink;

static ia_status to_buf(void *ctx, const void *data, size_t len) {
    buf_sink *b = ctx;
    if (b->len + len > b->cap) {
        size_t cap = (b->len + len) * 2;
        uint8_t *p = realloc(b->data, cap);
        if (!p)
            return IA_ENOMEM;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return IA_OK;
}

TEST(nocopy_files_serve_from_the_source_until_it_changes) {
    char *dir = temp_dir();
    char repo[4200];
    snprintf(repo, sizeof repo, "%s/repo", dir);
    ia_blockstore *bs = NULL;
    CHECK_OK(ia_blockstore_open(repo, &bs));
    ia_add_options o = small_chunks();
    o.nocopy = true;
    o.cid_version = 1; /* raw leaves: leaves are references */
    o.raw_leaves = 1;
    char path[8400];
    snprintf(path, sizeof path, "%s", write_file(dir, "model.bin", 9000, 4));
    ia_cid root, again;
    CHECK_OK(ia_add_path(bs, path, &o, NULL, NULL, &root));
    /* Same CID as a normal add. */
    ia_add_options plain = small_chunks();
    plain.cid_version = 1;
    plain.raw_leaves = 1;
    plain.only_hash = true;
    CHECK_OK(ia_add_path(NULL, path, &plain, NULL, NULL, &again));
    CHECK(ia_cid_equal(&root, &again));
    buf_sink out = {0};
    CHECK_OK(ia_unixfs_cat(bs, &root, 0, UINT64_MAX, to_buf, &out));
    CHECK_EQ_INT(out.len, 9000);
    char *orig = NULL;
    size_t orig_len = 0;
    CHECK_OK(ia_file_read_all(path, 1 << 20, &orig, &orig_len));
    CHECK(out.len == orig_len && memcmp(out.data, orig, orig_len) == 0);
    CHECK_OK(ia_pin_add(bs, &root, IA_PIN_RECURSIVE));
    uint64_t removed = 9;
    CHECK_OK(ia_repo_gc(bs, NULL, NULL, &removed)); /* references are kept like blocks */
    CHECK_EQ_INT(removed, 0);
    uint64_t checked = 0, bad = 0;
    CHECK_OK(ia_repo_verify(bs, NULL, NULL, &checked, &bad));
    CHECK_EQ_INT(bad, 0);

    /* Rewrite the source with other bytes: never served. */
    write_file(dir, "model.bin", 9000, 5);
    out.len = 0;
    CHECK_ERR(ia_unixfs_cat(bs, &root, 0, UINT64_MAX, to_buf, &out), IA_EIO, "changed");
    CHECK_OK(ia_repo_verify(bs, NULL, NULL, &checked, &bad));
    CHECK(bad > 0);
    free(out.data);
    free(orig);
    ia_blockstore_close(bs);
    rm_rf(dir);
    free(dir);
}

/* ---- the CLI end to end ($IA_CLI) ------------------------------------------------- */

static bool cli_available(void) {
    const char *cli = getenv("IA_CLI");
    return cli && access(cli, X_OK) == 0;
}

/* The last whitespace-separated word of the last line of s, in buf. */
static const char *last_word(const char *s, char *buf, size_t cap) {
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
        n--;
    size_t start = n;
    while (start && s[start - 1] != ' ' && s[start - 1] != '\n')
        start--;
    snprintf(buf, cap, "%.*s", (int)(n - start), s + start);
    return buf;
}

TEST(cli_cat_get_ls_pin_repo_car_block) {
    if (!cli_available())
        SKIP("IA_CLI is not set");
    char *dir = temp_dir();
    char repo[4200], repo2[4200], top[4200], car[4200], out[4200], path[4400], cmd[9000];
    snprintf(repo, sizeof repo, "%s/repo", dir);
    snprintf(repo2, sizeof repo2, "%s/repo2", dir);
    snprintf(top, sizeof top, "%s/top", dir);
    snprintf(car, sizeof car, "%s/x.car", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    mkdir(top, 0755);
    write_file(top, "big.bin", 300000, 7);
    snprintf(path, sizeof path, "%s/small.txt", top);
    FILE *f = fopen(path, "w");
    fputs("small file\n", f);
    fclose(f);

    run_result r = RUN("add", "-r", "--repo", repo, top);
    EXPECT(r, 0);
    char root[256], sub[512], w1[64];
    const char *last = r.out; /* "added CID top", the last line */
    for (const char *p = r.out; *p; p++)
        if (*p == '\n' && p[1])
            last = p + 1;
    CHECK(sscanf(last, "%63s %255s", w1, root) == 2);
    run_free(&r);

    snprintf(sub, sizeof sub, "%s/small.txt", root);
    r = RUN("cat", "--repo", repo, sub);
    EXPECT(r, 0);
    CHECK_MSG(strcmp(r.out, "small file\n") == 0, "%s", r.out);
    run_free(&r);
    r = RUN("cat", "--repo", repo, "--offset", "6", "--length", "4", sub);
    CHECK_MSG(strcmp(r.out, "file") == 0, "%s", r.out);
    run_free(&r);

    r = RUN("ls", "--repo", repo, root);
    EXPECT(r, 0);
    CHECK_MSG(strstr(r.out, " 300000 big.bin\n") && strstr(r.out, " 11     small.txt\n"), "%s",
              r.out);
    run_free(&r);

    r = RUN("get", "--repo", repo, root, "-o", out);
    EXPECT(r, 0);
    run_free(&r);
    snprintf(cmd, sizeof cmd, "diff -r %s %s >/dev/null", top, out);
    CHECK(system(cmd) == 0);

    r = RUN("pin", "ls", "--repo", repo, "--type", "recursive");
    EXPECT(r, 0);
    run_free(&r);
    r = RUN("pin", "add", "--repo", repo, root);
    EXPECT(r, 0);
    char want[512];
    snprintf(want, sizeof want, "pinned %s recursively\n", root);
    CHECK_MSG(strcmp(r.out, want) == 0, "%s", r.out);
    run_free(&r);
    r = RUN("pin", "ls", "--repo", repo, "--type=recursive");
    snprintf(want, sizeof want, "%s recursive\n", root);
    CHECK_MSG(strcmp(r.out, want) == 0, "%s", r.out);
    run_free(&r);

    /* An unpinned block goes at gc; the pinned tree stays. */
    snprintf(path, sizeof path, "%s/loose.txt", dir);
    f = fopen(path, "w");
    fputs("loose", f);
    fclose(f);
    r = run_cli_input(path, (const char *[]){"block", "put", "--repo", repo, NULL});
    EXPECT(r, 0);
    char loose[256];
    last_word(r.out, loose, sizeof loose);
    CHECK(strncmp(loose, "bafk", 4) == 0);
    run_free(&r);
    r = RUN("block", "stat", "--repo", repo, loose);
    snprintf(want, sizeof want, "Key: %s\nSize: 5\n", loose);
    CHECK_MSG(strcmp(r.out, want) == 0, "%s", r.out);
    run_free(&r);
    r = RUN("block", "get", "--repo", repo, loose);
    CHECK(strcmp(r.out, "loose") == 0);
    run_free(&r);
    r = RUN("repo", "gc", "--repo", repo);
    EXPECT(r, 0);
    snprintf(want, sizeof want, "removed %s\n", loose);
    CHECK_MSG(strcmp(r.out, want) == 0, "%s", r.out);
    run_free(&r);
    r = RUN("block", "rm", "--repo", repo, root);
    EXPECT(r, 1);
    CHECK(strstr(r.err, "is pinned") != NULL);
    run_free(&r);

    r = RUN("repo", "stat", "--repo", repo);
    EXPECT(r, 0);
    CHECK(strncmp(r.out, "NumObjects: ", 12) == 0 && strstr(r.out, "\nRepoSize:   ") &&
          strstr(r.out, "\nRepoPath:   "));
    run_free(&r);
    r = RUN("repo", "verify", "--repo", repo);
    EXPECT(r, 0);
    CHECK(strcmp(r.out, "verify complete, all blocks validated.\n") == 0);
    run_free(&r);

    /* CAR round trip into an empty repo: same bytes out. */
    r = RUN("car", "export", "--repo", repo, root, "-o", car);
    EXPECT(r, 0);
    run_free(&r);
    r = RUN("car", "import", "--repo", repo2, car);
    EXPECT(r, 0);
    snprintf(want, sizeof want, "Pinned root %s success\n", root);
    CHECK_MSG(strstr(r.out, want) != NULL, "%s", r.out);
    run_free(&r);
    snprintf(sub, sizeof sub, "%s/big.bin", root);
    r = RUN("cat", "--repo", repo2, sub);
    char *orig = NULL;
    size_t orig_len = 0;
    snprintf(path, sizeof path, "%s/big.bin", top);
    CHECK_OK(ia_file_read_all(path, 1 << 20, &orig, &orig_len));
    CHECK(orig_len == 300000 && memcmp(r.out, orig, orig_len) == 0);
    free(orig);
    run_free(&r);

    /* Errors: a CID that is not there, a truncated CAR, usage. */
    r = RUN("cat", "--repo", repo2, "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy");
    EXPECT(r, 1);
    CHECK(strstr(r.err, "is not in the repo") != NULL);
    run_free(&r);
    snprintf(cmd, sizeof cmd, "head -c 100 %s > %s.cut", car, car);
    CHECK(system(cmd) == 0);
    snprintf(path, sizeof path, "%s.cut", car);
    r = RUN("car", "import", "--repo", repo2, path);
    EXPECT(r, 1);
    CHECK_MSG(strstr(r.err, "x.car.cut: offset ") != NULL, "%s", r.err);
    run_free(&r);
    r = RUN("pin", "frobnicate", "--repo", repo2);
    EXPECT(r, 2);
    run_free(&r);
    r = RUN("get", "--from", "http://127.0.0.1:1", "--repo", repo2, "not-a-cid");
    EXPECT(r, 2);
    run_free(&r);
    rm_rf(dir);
    free(dir);
}

/* cat trusts the store by default and re-hashes with --verify; a --nocopy
 * source changed behind the store's back (same size, mtime put back) is
 * refused either way, since references are always re-hashed. */
TEST(cli_cat_verify_and_changed_nocopy_source) {
    if (!cli_available())
        SKIP("IA_CLI is not set");
    char *dir = temp_dir();
    char repo[4200], cmd[48000], root[256], ref_root[256];
    snprintf(repo, sizeof repo, "%s/repo", dir);
    char big[8400], src[8400];
    snprintf(big, sizeof big, "%s", write_file(dir, "big.bin", 600000, 3));
    snprintf(src, sizeof src, "%s", write_file(dir, "model.bin", 600000, 4));

    run_result r = RUN("add", "-Q", "--repo", repo, big);
    EXPECT(r, 0);
    last_word(r.out, root, sizeof root);
    run_free(&r);
    /* rot the largest block file (a full 256 KiB leaf), same size */
    snprintf(cmd, sizeof cmd,
             "f=$(ls -S $(find %s/blocks -name '*.data') | head -n 1) && chmod u+w \"$f\" && "
             "printf X | dd of=\"$f\" bs=1 seek=1000 conv=notrunc 2>/dev/null",
             repo);
    CHECK(system(cmd) == 0);
    r = RUN("cat", "--repo", repo, root);
    EXPECT(r, 0); /* trusted, as Kubo trusts its datastore */
    run_free(&r);
    r = RUN("cat", "--verify", "--repo", repo, root);
    EXPECT(r, 1);
    CHECK_MSG(strstr(r.err, "is corrupt on disk") != NULL, "%s", r.err);
    run_free(&r);
    char out[4300];
    snprintf(out, sizeof out, "%s/out.bin", dir);
    r = RUN("get", "--verify", "--repo", repo, root, "-o", out);
    EXPECT(r, 1);
    CHECK_MSG(strstr(r.err, "is corrupt on disk") != NULL, "%s", r.err);
    run_free(&r);
    r = RUN("repo", "verify", "--repo", repo);
    CHECK(r.status != 0);
    run_free(&r);

    r = RUN("add", "-Q", "--nocopy", "--cid-version", "1", "--repo", repo, src);
    EXPECT(r, 0);
    last_word(r.out, ref_root, sizeof ref_root);
    run_free(&r);
    r = RUN("cat", "--repo", repo, ref_root);
    EXPECT(r, 0);
    run_free(&r);
    snprintf(cmd, sizeof cmd,
             "cp -p %s %s.saved && printf X | dd of=%s bs=1 seek=300000 conv=notrunc "
             "2>/dev/null && touch -r %s.saved %s",
             src, src, src, src, src);
    CHECK(system(cmd) == 0);
    r = RUN("cat", "--repo", repo, ref_root);
    EXPECT(r, 1);
    CHECK_MSG(strstr(r.err, "no longer holds") != NULL, "%s", r.err);
    run_free(&r);
    rm_rf(dir);
    free(dir);
}
