/*
 * The multi-peer fetch client (ia_fetch_dag, `get --from`) against local
 * trustless gateways: three peers of which one dies mid-transfer and one
 * serves a corrupted block, resume (only missing blocks are requested), a
 * DAG of a few hundred blocks (a 20 MB file in 64 KiB chunks inside a
 * directory), a block no peer has, malformed URLs, oversized answers, a
 * slow peer, a peer that was never there, and the CLI end to end.
 *
 * The peers are this test binary re-executed as a minimal trustless
 * responder (libmicrohttpd: GET /ipfs/{cid}?format=raw answers the block
 * from a repo with Content-Type application/vnd.ipld.raw) with a fault mode:
 * "die N" sends half of its N+1th answer and exits, "corrupt N" flips a byte
 * of its Nth answer, "slow MS" waits before each answer, "oversize" answers
 * 2 MiB + 1 bytes. Those responders answer only format=raw (HTTP 400 for
 * a CAR), so the fetch falls back to single blocks with them. "car-ok",
 * "car-corrupt" and "car-die" also serve `?format=car&dag-scope=all`
 * (ia_car_export); the latter two spoil every CAR answer (the last byte,
 * inside the last block, flipped; half the CAR, then exit) and answer single
 * blocks correctly. Every request is logged (one CID per line) so tests can
 * count what was asked. When the real `ipfs-accelerate gateway` is built,
 * one more case runs three of them as peers.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <ftw.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ia/ipfs.h"
#include "test.h"
#include "test_cli.h"
#include "test_fs.h"

#include "fetch_peers.h"

/* ---- library cases ------------------------------------------------------------------------ */

TEST(three_peers_one_dies_one_corrupts) {
    char *dir = temp_dir(), repo[4200], dst[4200];
    ia_blockstore *src = NULL, *bs = NULL;
    ia_cid root = make_source(dir, 20 * 1000 * 1000, &src);
    size_t n_blocks;
    free(dag_blocks(src, &root, &n_blocks));
    CHECK_MSG(n_blocks > 300, "%zu blocks", n_blocks);
    snprintf(repo, sizeof repo, "%s/src", dir);
    peer_proc p[3] = {start_responder(dir, repo, "ok", 0), start_responder(dir, repo, "die", 15),
                      start_responder(dir, repo, "corrupt", 5)};
    CHECK(p[0].pid > 0 && p[1].pid > 0 && p[2].pid > 0);
    const char *urls[3] = {p[0].url, p[1].url, p[2].url};
    snprintf(dst, sizeof dst, "%s/dst", dir);
    CHECK_OK(ia_blockstore_open(dst, &bs));
    ia_fetch_options o = test_options();
    ia_fetch_report r;
    CHECK_OK(ia_fetch_dag(bs, &root, urls, 3, &o, &r));
    CHECK_EQ_INT(r.blocks, n_blocks);
    CHECK_EQ_INT(r.blocks_fetched, n_blocks);
    CHECK_EQ_INT(r.peers[0].blocks + r.peers[1].blocks + r.peers[2].blocks, n_blocks);
    CHECK(r.retries >= 2);
    CHECK(!r.peers[0].dropped);
    CHECK_MSG(r.peers[1].dropped && r.peers[1].why && strstr(r.peers[1].why, "stopped responding"),
              "%s", r.peers[1].why ? r.peers[1].why : "(not dropped)");
    CHECK_MSG(r.peers[2].dropped && r.peers[2].why &&
                  strstr(r.peers[2].why, "served a block that does not match b"),
              "%s", r.peers[2].why ? r.peers[2].why : "(not dropped)");
    CHECK_EQ_INT(r.peers[2].corrupt, 1);
    CHECK(report_has_note(&r, p[2].url, "served a block that does not match b"));
    CHECK(report_has_note(&r, p[1].url, "stopped responding"));
    if (test_failed_checks)
        print_notes(&r);
    check_same_as_source(bs, &root, dir, "out");
    ia_fetch_report_free(&r);
    for (int i = 0; i < 3; i++)
        stop_peer(&p[i]);
    ia_blockstore_close(bs);
    ia_blockstore_close(src);
    rm_rf(dir);
    free(dir);
}

/* ---- CAR streams ---------------------------------------------------------------------------- */

/* A fetch from CAR-capable peers: returns the source root; the DAG's blocks
 * in *blocks (caller frees). The 20 MB file is one ~20 MB subtree, so it
 * comes as one CAR stream; the small pieces come block by block. */
static ia_cid car_source(const char *dir, ia_blockstore **src, ia_cid **blocks, size_t *n) {
    ia_cid root = make_source(dir, 20 * 1000 * 1000, src);
    *blocks = dag_blocks(*src, &root, n);
    return root;
}

TEST(car_stream_fetch_and_resume) {
    char *dir = temp_dir(), repo[4200], dst[4200];
    ia_blockstore *src = NULL, *bs = NULL;
    size_t n_blocks;
    ia_cid *blocks, root = car_source(dir, &src, &blocks, &n_blocks);
    snprintf(repo, sizeof repo, "%s/src", dir);
    snprintf(dst, sizeof dst, "%s/dst", dir);
    peer_proc p = start_responder(dir, repo, "car-ok", 0);
    CHECK(p.pid > 0);
    const char *urls[1] = {p.url};
    CHECK_OK(ia_blockstore_open(dst, &bs));
    ia_fetch_options o = test_options();
    ia_fetch_report r;
    CHECK_OK(ia_fetch_dag(bs, &root, urls, 1, &o, &r));
    CHECK_EQ_INT(r.blocks_fetched, n_blocks);
    CHECK_EQ_INT(r.peers[0].blocks, n_blocks);
    CHECK_EQ_INT(r.n_notes, 0);
    /* Hundreds of blocks, a handful of requests: the file came as one CAR. */
    CHECK_MSG(log_lines(p.log) < 20, "%d requests for %zu blocks", log_lines(p.log), n_blocks);
    ia_fetch_report_free(&r);
    check_same_as_source(bs, &root, dir, "out1");

    /* Resume: remove every 7th block (the file's root among them); only
     * those are fetched again, and present ones are not stored again. */
    size_t removed = 0;
    for (size_t i = 1; i < n_blocks; i += 7, removed++)
        CHECK_OK(ia_blockstore_remove(bs, &blocks[i]));
    CHECK_OK(ia_fetch_dag(bs, &root, urls, 1, &o, &r));
    CHECK_EQ_INT(r.blocks, n_blocks);
    CHECK_EQ_INT(r.blocks_fetched, removed);
    CHECK_EQ_INT(r.blocks_present, n_blocks - removed);
    ia_fetch_report_free(&r);
    check_same_as_source(bs, &root, dir, "out2");
    stop_peer(&p);
    free(blocks);
    ia_blockstore_close(bs);
    ia_blockstore_close(src);
    rm_rf(dir);
    free(dir);
}

/* The first task (the root directory) goes to peer 0, which is then the
 * measured one, so the file's CAR stream goes to the unmeasured peer 1. */
TEST(car_stream_with_a_corrupt_block) {
    char *dir = temp_dir(), repo[4200], dst[4200];
    ia_blockstore *src = NULL, *bs = NULL;
    size_t n_blocks;
    ia_cid *blocks, root = car_source(dir, &src, &blocks, &n_blocks);
    snprintf(repo, sizeof repo, "%s/src", dir);
    snprintf(dst, sizeof dst, "%s/dst", dir);
    peer_proc p[2] = {start_responder(dir, repo, "car-ok", 0),
                      start_responder(dir, repo, "car-corrupt", 0)};
    CHECK(p[0].pid > 0 && p[1].pid > 0);
    const char *urls[2] = {p[0].url, p[1].url};
    CHECK_OK(ia_blockstore_open(dst, &bs));
    ia_fetch_options o = test_options();
    ia_fetch_report r;
    CHECK_OK(ia_fetch_dag(bs, &root, urls, 2, &o, &r));
    CHECK_EQ_INT(r.blocks_fetched, n_blocks);
    CHECK_EQ_INT(r.peers[0].blocks + r.peers[1].blocks, n_blocks);
    CHECK_MSG(r.peers[1].dropped && r.peers[1].why &&
                  strstr(r.peers[1].why, "served a block that does not match b"),
              "%s", r.peers[1].why ? r.peers[1].why : "(not dropped)");
    CHECK_EQ_INT(r.peers[1].corrupt, 1);
    /* The blocks verified before the bad one were kept, not fetched again. */
    CHECK_MSG(r.peers[1].blocks > 100, "%llu", (unsigned long long)r.peers[1].blocks);
    CHECK(!r.peers[0].dropped);
    if (test_failed_checks)
        print_notes(&r);
    ia_fetch_report_free(&r);
    check_same_as_source(bs, &root, dir, "out");
    for (int i = 0; i < 2; i++)
        stop_peer(&p[i]);
    free(blocks);
    ia_blockstore_close(bs);
    ia_blockstore_close(src);
    rm_rf(dir);
    free(dir);
}

TEST(car_stream_peer_killed_mid_stream) {
    char *dir = temp_dir(), repo[4200], dst[4200];
    ia_blockstore *src = NULL, *bs = NULL;
    size_t n_blocks;
    ia_cid *blocks, root = car_source(dir, &src, &blocks, &n_blocks);
    snprintf(repo, sizeof repo, "%s/src", dir);
    snprintf(dst, sizeof dst, "%s/dst", dir);
    peer_proc p[2] = {start_responder(dir, repo, "car-ok", 0),
                      start_responder(dir, repo, "car-die", 0)};
    CHECK(p[0].pid > 0 && p[1].pid > 0);
    const char *urls[2] = {p[0].url, p[1].url};
    CHECK_OK(ia_blockstore_open(dst, &bs));
    ia_fetch_options o = test_options();
    ia_fetch_report r;
    CHECK_OK(ia_fetch_dag(bs, &root, urls, 2, &o, &r));
    CHECK_EQ_INT(r.blocks_fetched, n_blocks);
    CHECK_EQ_INT(r.peers[0].blocks + r.peers[1].blocks, n_blocks);
    /* Half a stream arrived before the peer died: those blocks are kept. */
    CHECK_MSG(r.peers[1].blocks > 50 && r.peers[1].blocks < n_blocks, "%llu of %zu",
              (unsigned long long)r.peers[1].blocks, n_blocks);
    CHECK(r.peers[1].failures >= 1);
    CHECK(report_has_note(&r, p[1].url, NULL));
    CHECK(r.retries >= 1);
    if (test_failed_checks)
        print_notes(&r);
    ia_fetch_report_free(&r);
    check_same_as_source(bs, &root, dir, "out");
    for (int i = 0; i < 2; i++)
        stop_peer(&p[i]);
    free(blocks);
    ia_blockstore_close(bs);
    ia_blockstore_close(src);
    rm_rf(dir);
    free(dir);
}

TEST(resume_requests_only_missing_blocks) {
    char *dir = temp_dir(), repo[4200], dst[4200];
    ia_blockstore *src = NULL, *bs = NULL;
    ia_cid root = make_source(dir, 2 * 1000 * 1000, &src);
    size_t n_blocks;
    ia_cid *blocks = dag_blocks(src, &root, &n_blocks);
    snprintf(repo, sizeof repo, "%s/src", dir);
    snprintf(dst, sizeof dst, "%s/dst", dir);
    peer_proc p[2] = {start_responder(dir, repo, "ok", 0), start_responder(dir, repo, "ok", 0)};
    const char *urls[2] = {p[0].url, p[1].url};
    CHECK_OK(ia_blockstore_open(dst, &bs));
    ia_fetch_options o = test_options();
    ia_fetch_report r;
    CHECK_OK(ia_fetch_dag(bs, &root, urls, 2, &o, &r));
    CHECK_EQ_INT(r.blocks_fetched, n_blocks);
    CHECK_EQ_INT(log_lines(p[0].log) + log_lines(p[1].log), n_blocks);
    ia_fetch_report_free(&r);

    /* Remove every 7th block (the root's first child among them), fetch again. */
    size_t removed = 0;
    for (size_t i = 1; i < n_blocks; i += 7, removed++)
        CHECK_OK(ia_blockstore_remove(bs, &blocks[i]));
    truncate(p[0].log, 0);
    truncate(p[1].log, 0);
    CHECK_OK(ia_fetch_dag(bs, &root, urls, 2, &o, &r));
    CHECK_EQ_INT(r.blocks, n_blocks);
    CHECK_EQ_INT(r.blocks_fetched, removed);
    CHECK_EQ_INT(r.blocks_present, n_blocks - removed);
    CHECK_EQ_INT(log_lines(p[0].log) + log_lines(p[1].log), removed);
    ia_fetch_report_free(&r);

    /* Nothing missing: nothing asked. */
    truncate(p[0].log, 0);
    truncate(p[1].log, 0);
    CHECK_OK(ia_fetch_dag(bs, &root, urls, 2, &o, &r));
    CHECK_EQ_INT(r.blocks_fetched, 0);
    CHECK_EQ_INT(log_lines(p[0].log) + log_lines(p[1].log), 0);
    ia_fetch_report_free(&r);
    check_same_as_source(bs, &root, dir, "out");
    for (int i = 0; i < 2; i++)
        stop_peer(&p[i]);
    free(blocks);
    ia_blockstore_close(bs);
    ia_blockstore_close(src);
    rm_rf(dir);
    free(dir);
}

TEST(missing_block_names_cid_and_peers) {
    char *dir = temp_dir(), repo[4200], dst[4200], want[IA_CID_MAX_STRING];
    ia_blockstore *src = NULL, *bs = NULL;
    snprintf(repo, sizeof repo, "%s/src", dir);
    snprintf(dst, sizeof dst, "%s/dst", dir);
    CHECK_OK(ia_blockstore_open(repo, &src));
    CHECK_OK(ia_blockstore_open(dst, &bs));
    peer_proc p[2] = {start_responder(dir, repo, "ok", 0), start_responder(dir, repo, "ok", 0)};
    const char *urls[2] = {p[0].url, p[1].url};
    ia_cid nowhere;
    ia_cid_of_block(1, IA_CODEC_RAW, "nobody has this", 15, &nowhere);
    CHECK_OK(ia_cid_format(&nowhere, IA_BASE32, want, sizeof want));
    ia_fetch_options o = test_options();
    ia_fetch_report r;
    CHECK_ERR(ia_fetch_dag(bs, &nowhere, urls, 2, &o, &r), IA_ENOTFOUND, want);
    CHECK(strstr(ia_error_message(), p[0].url) && strstr(ia_error_message(), p[1].url));
    CHECK_EQ_INT(r.peers[0].not_found + r.peers[1].not_found, 2);
    CHECK(!r.peers[0].dropped && !r.peers[1].dropped);
    ia_fetch_report_free(&r);
    for (int i = 0; i < 2; i++)
        stop_peer(&p[i]);
    ia_blockstore_close(bs);
    ia_blockstore_close(src);
    rm_rf(dir);
    free(dir);
}

TEST(malformed_urls_are_refused) {
    char *dir = temp_dir(), dst[4200];
    ia_blockstore *bs = NULL;
    snprintf(dst, sizeof dst, "%s/dst", dir);
    CHECK_OK(ia_blockstore_open(dst, &bs));
    ia_cid c;
    ia_cid_of_block(1, IA_CODEC_RAW, "x", 1, &c);
    ia_fetch_report r;
    const char *bad[] = {"ftp://127.0.0.1:1", "not a url", "http://", "http://h:1/?q=1", ""};
    const char *why[] = {"not http or https", "not a URL", "not a URL", "no query", "not a URL"};
    for (int i = 0; i < 5; i++) {
        const char *one[1] = {bad[i]};
        CHECK_ERR(ia_fetch_dag(bs, &c, one, 1, NULL, &r), IA_EINVAL, why[i]);
        CHECK_EQ_INT(r.n_peers, 0);
        ia_fetch_report_free(&r);
    }
    const char *twice[2] = {"http://127.0.0.1:1/", "http://127.0.0.1:1"};
    CHECK_ERR(ia_fetch_dag(bs, &c, twice, 2, NULL, &r), IA_EINVAL, "listed twice");
    ia_fetch_report_free(&r);
    CHECK_ERR(ia_fetch_dag(bs, &c, twice, 0, NULL, &r), IA_EINVAL, "peers");
    ia_fetch_report_free(&r);
    ia_blockstore_close(bs);
    rm_rf(dir);
    free(dir);
}

/* A port nothing listens on (bound, then closed). */
static unsigned dead_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

TEST(oversized_slow_and_absent_peers) {
    char *dir = temp_dir(), repo[4200], dst[4200], dead[64];
    ia_blockstore *src = NULL, *bs = NULL;
    ia_cid root = make_source(dir, 3 * 1000 * 1000, &src);
    size_t n_blocks;
    free(dag_blocks(src, &root, &n_blocks));
    snprintf(repo, sizeof repo, "%s/src", dir);
    snprintf(dst, sizeof dst, "%s/dst", dir);
    snprintf(dead, sizeof dead, "http://127.0.0.1:%u", dead_port());
    peer_proc p[3] = {start_responder(dir, repo, "ok", 0), start_responder(dir, repo, "slow", 800),
                      start_responder(dir, repo, "oversize", 0)};
    const char *urls[4] = {p[0].url, p[1].url, p[2].url, dead};
    CHECK_OK(ia_blockstore_open(dst, &bs));
    ia_fetch_options o = test_options();
    ia_fetch_report r;
    CHECK_OK(ia_fetch_dag(bs, &root, urls, 4, &o, &r));
    CHECK_EQ_INT(r.blocks_fetched, n_blocks);
    CHECK_MSG(r.peers[0].blocks > 2 * r.peers[1].blocks, "fast %llu, slow %llu blocks",
              (unsigned long long)r.peers[0].blocks, (unsigned long long)r.peers[1].blocks);
    CHECK(!r.peers[1].dropped);
    CHECK_MSG(r.peers[2].dropped && strstr(r.peers[2].why, "block size limit"), "%s",
              r.peers[2].why ? r.peers[2].why : "(not dropped)");
    CHECK_EQ_INT(r.peers[2].blocks, 0);
    CHECK_MSG(r.peers[3].dropped && strstr(r.peers[3].why, "stopped responding"), "%s",
              r.peers[3].why ? r.peers[3].why : "(not dropped)");
    if (test_failed_checks)
        print_notes(&r);
    ia_fetch_report_free(&r);
    check_same_as_source(bs, &root, dir, "out");

    /* Only bad peers: an error naming the block, not a hang. */
    ia_blockstore *empty = NULL;
    char dst2[4300];
    snprintf(dst2, sizeof dst2, "%s/dst2", dir);
    CHECK_OK(ia_blockstore_open(dst2, &empty));
    const char *bad[2] = {p[2].url, dead};
    CHECK_ERR(ia_fetch_dag(empty, &root, bad, 2, &o, &r), IA_EIO, "every peer was dropped");
    ia_fetch_report_free(&r);
    ia_blockstore_close(empty);
    for (int i = 0; i < 3; i++)
        stop_peer(&p[i]);
    ia_blockstore_close(bs);
    ia_blockstore_close(src);
    rm_rf(dir);
    free(dir);
}

/* ---- the CLI end to end ($IA_CLI) -------------------------------------------------------------
 */

static bool cli_available(void) {
    const char *cli = getenv("IA_CLI");
    return cli && access(cli, X_OK) == 0;
}

TEST(cli_get_from_three_peers) {
    if (!cli_available())
        SKIP("IA_CLI is not set");
    char *dir = temp_dir(), repo[4200], dst[4200], out[4200], from[256], cmd[9000], text[256];
    ia_blockstore *src = NULL;
    ia_cid root = make_source(dir, 4 * 1000 * 1000, &src);
    CHECK_OK(ia_cid_format(&root, IA_BASE32, text, sizeof text));
    snprintf(repo, sizeof repo, "%s/src", dir);
    snprintf(dst, sizeof dst, "%s/dst", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    peer_proc p[3] = {start_responder(dir, repo, "ok", 0), start_responder(dir, repo, "die", 4),
                      start_responder(dir, repo, "corrupt", 3)};
    snprintf(from, sizeof from, "%s,%s,%s", p[0].url, p[1].url, p[2].url);
    run_result r = RUN("get", text, "--from", from, "--repo", dst, "-o", out);
    EXPECT(r, 0);
    char want[512];
    snprintf(want, sizeof want, "peer %s served a block that does not match b", p[2].url);
    CHECK_MSG(strstr(r.err, want), "%s", r.err);
    snprintf(want, sizeof want, "peer %s stopped responding", p[1].url);
    CHECK_MSG(strstr(r.err, want) && strstr(r.err, "; dropped"), "%s", r.err);
    CHECK_MSG(strstr(r.err, "retries"), "%s", r.err);
    run_free(&r);
    snprintf(cmd, sizeof cmd, "diff -r %s/top %s >/dev/null", dir, out);
    CHECK(system(cmd) == 0);
    r = RUN("pin", "ls", "--repo", dst, "--type", "recursive");
    CHECK_MSG(strstr(r.out, text), "%s", r.out);
    run_free(&r);

    /* Again into the same store: nothing fetched; --pin=false. */
    r = RUN("get", text, "--from", p[0].url, "--repo", dst, "-o", out);
    EXPECT(r, 1); /* out exists */
    CHECK_MSG(strstr(r.err, "already exists"), "%s", r.err);
    run_free(&r);
    snprintf(out, sizeof out, "%s/out2", dir);
    r = RUN("get", text, "--from", p[0].url, "--repo", dst, "-o", out, "--pin=false");
    EXPECT(r, 0);
    CHECK_MSG(strstr(r.err, "0 fetched"), "%s", r.err);
    run_free(&r);

    r = RUN("get", text, "--from", "ftp://x", "--repo", dst);
    EXPECT(r, 2);
    CHECK_MSG(strstr(r.err, "not http or https"), "%s", r.err);
    run_free(&r);
    r = RUN("get", text, "--from", ",", "--repo", dst);
    EXPECT(r, 2);
    run_free(&r);
    r = RUN("get", "notacid", "--from", p[0].url, "--repo", dst);
    EXPECT(r, 2);
    CHECK_MSG(strstr(r.err, "is not a CID"), "%s", r.err);
    run_free(&r);
    for (int i = 0; i < 3; i++)
        stop_peer(&p[i]);
    ia_blockstore_close(src);
    rm_rf(dir);
    free(dir);
}

/* Starts `ipfs-accelerate gateway --listen 127.0.0.1:0 --repo repo`; reads its URL. */
static peer_proc start_gateway(const char *repo) {
    peer_proc p = {.pid = -1};
    int fds[2];
    if (pipe(fds) != 0)
        return p;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 2);
        execl(getenv("IA_CLI"), "ipfs-accelerate", "gateway", "--listen", "127.0.0.1:0", "--repo",
              repo, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char line[256];
    size_t n = 0;
    while (n < sizeof line - 1 && read(fds[0], line + n, 1) == 1 && line[n] != '\n')
        n++;
    line[n] = '\0';
    close(fds[0]);
    const char *url = strstr(line, "http://");
    if (url) {
        p.pid = pid;
        snprintf(p.url, sizeof p.url, "%s", url);
    } else {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    return p;
}

TEST(cli_get_from_real_gateways) {
    if (!cli_available())
        SKIP("IA_CLI is not set");
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "%s gateway --help >/dev/null 2>&1", getenv("IA_CLI"));
    if (system(cmd) != 0)
        SKIP("this build has no gateway command");
    char *dir = temp_dir(), repos[3][4200], dst[4200], out[4200], from[256], text[256];
    ia_blockstore *src = NULL;
    ia_cid root = make_source(dir, 6 * 1000 * 1000, &src);
    ia_blockstore_close(src);
    CHECK_OK(ia_cid_format(&root, IA_BASE32, text, sizeof text));
    /* Each gateway gets its own repo holding the same DAG. */
    peer_proc p[3];
    for (int i = 0; i < 3; i++) {
        snprintf(repos[i], sizeof repos[i], "%s/gw%d", dir, i);
        snprintf(cmd, sizeof cmd, "cp -r %s/src %s", dir, repos[i]);
        CHECK(system(cmd) == 0);
        p[i] = start_gateway(repos[i]);
        CHECK_MSG(p[i].pid > 0, "gateway %d did not start", i);
    }
    snprintf(dst, sizeof dst, "%s/dst", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    /* One gateway is gone before the fetch starts. */
    stop_peer(&p[1]);
    snprintf(from, sizeof from, "%s,%s,%s", p[0].url, p[1].url, p[2].url);
    run_result r = RUN("get", text, "--from", from, "--repo", dst, "-o", out);
    EXPECT(r, 0);
    char want[512];
    snprintf(want, sizeof want, "peer %s stopped responding", p[1].url);
    CHECK_MSG(strstr(r.err, want), "%s", r.err);
    run_free(&r);
    snprintf(cmd, sizeof cmd, "diff -r %s/top %s >/dev/null", dir, out);
    CHECK(system(cmd) == 0);
    for (int i = 0; i < 3; i++)
        stop_peer(&p[i]);
    rm_rf(dir);
    free(dir);
}
