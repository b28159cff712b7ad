/*
 * The gateway's copy-free streaming paths, byte for byte against
 * ia_car_export: CAR responses whose block files are read straight into
 * libmicrohttpd's buffer or sent to the socket by sendfile (leaves of 64 KiB
 * and more), over HTTP/1.1 (chunked) and HTTP/1.0 (to the close); a stream
 * buffer smaller than a block (the in-memory fallback); dups=y over
 * identical leaves; --nocopy leaves (verified, in memory) and a --nocopy
 * source changed after the add, whose stream must be cut, never carry wrong
 * bytes; raw responses from a block file and from a reference; and a client
 * that hangs up mid-sendfile (the process must not die of SIGPIPE and the
 * gateway must go on serving).
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ia/ipfs.h"
#include "test.h"
#include "test_fs.h"

typedef struct fixture {
    char *dir;
    char repo[512], url[64], nocopy_path[600];
    ia_blockstore *bs;
    ia_gateway *gw;
    ia_cid v0;     /* 1.6 MiB, 256 KiB dag-pb leaves (CIDv0), 4 links a node */
    ia_cid v1;     /* 700000 bytes, 100000-byte raw leaves (CIDv1) */
    ia_cid big;    /* 1.1 MiB, 512 KiB dag-pb leaves: larger than the stream buffer */
    ia_cid zeros;  /* 1 MiB of zeros, 256 KiB leaves: four identical leaves */
    ia_cid nocopy; /* 800000 bytes added with --nocopy (raw leaves of 256 KiB) */
    bool ok;
} fixture;

static fixture fx;

static bool add_file(const char *name, size_t len, unsigned seed, int cid_version, size_t chunk,
                     bool nocopy, ia_cid *out) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", fx.dir, name);
    uint8_t *bytes = calloc(1, len);
    if (!bytes)
        return false;
    if (seed)
        test_fill(bytes, len, seed);
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(bytes, 1, len, f) == len;
    if (f)
        fclose(f);
    free(bytes);
    ia_add_options o = ia_add_options_default();
    o.cid_version = cid_version;
    o.chunk_size = chunk;
    o.max_links = 4; /* several levels */
    o.nocopy = nocopy;
    o.pin = false;
    CHECK_OK(ia_add_path(fx.bs, path, &o, NULL, NULL, out));
    if (nocopy)
        snprintf(fx.nocopy_path, sizeof fx.nocopy_path, "%s", path);
    return ok;
}

static fixture *setup(void) {
    if (fx.ok)
        return &fx;
    if (!(fx.dir = temp_dir()))
        return NULL;
    snprintf(fx.repo, sizeof fx.repo, "%s/repo", fx.dir);
    CHECK_OK(ia_blockstore_open(fx.repo, &fx.bs));
    if (!fx.bs || !add_file("v0.bin", (1 << 20) + 600000, 1, 0, 262144, false, &fx.v0) ||
        !add_file("v1.bin", 700000, 2, 1, 100000, false, &fx.v1) ||
        !add_file("big.bin", (1 << 20) + 100000, 3, 0, 524288, false, &fx.big) ||
        !add_file("zeros.bin", 1 << 20, 0, 0, 262144, false, &fx.zeros) ||
        !add_file("nocopy.bin", 800000, 4, 1, 262144, true, &fx.nocopy))
        return NULL;
    /* A stream buffer smaller than big.bin's leaves: those take the
     * in-memory path whenever they are not sent directly. */
    ia_gateway_options opts = ia_gateway_options_default();
    opts.stream_buffer = 300 << 10;
    opts.timeout_s = 20;
    CHECK_OK(ia_gateway_start(fx.bs, "127.0.0.1:0", &opts, &fx.gw));
    if (!fx.gw)
        return NULL;
    snprintf(fx.url, sizeof fx.url, "http://127.0.0.1:%u", (unsigned)ia_gateway_port(fx.gw));
    fx.ok = true;
    return &fx;
}

/* ---- HTTP client and expected bytes ------------------------------------------------------ */

typedef struct buf {
    uint8_t *p;
    size_t len, cap;
    size_t abort_after; /* 0: never; else hang up once this many bytes came */
} buf;

static size_t buf_add(buf *b, const void *p, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = (b->len + n) * 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q)
            return 0;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return n;
}

static size_t on_body(char *p, size_t size, size_t n, void *ctx) {
    buf *b = ctx;
    if (b->abort_after && b->len >= b->abort_after)
        return 0; /* curl hangs up */
    return buf_add(b, p, size * n);
}

static ia_status collect(void *ctx, const void *data, size_t len) {
    return buf_add(ctx, data, len) == len ? IA_OK : IA_ENOMEM;
}

/* GETs fx.url + path; *rc is curl's result, the status is returned. */
static long get(const char *path, bool http10, buf *body, CURLcode *rc) {
    char url[1024];
    snprintf(url, sizeof url, "%s%s", fx.url, path);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    if (http10)
        curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_0);
    *rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

static buf expected_car(const ia_cid *root) {
    buf b = {0};
    CHECK_OK(ia_car_export(fx.bs, root, 1, collect, &b, NULL));
    return b;
}

/* The CAR of root over both HTTP versions, equal to ia_car_export's. */
static void check_car_equal(const ia_cid *root, const char *what) {
    char cid[256], path[512];
    ia_cid_format(root, IA_BASE32, cid, sizeof cid);
    snprintf(path, sizeof path, "/ipfs/%s?format=car&dag-scope=all", cid);
    buf want = expected_car(root);
    for (int v = 0; v < 2; v++) {
        buf got = {0};
        CURLcode rc;
        long status = get(path, v == 1, &got, &rc);
        CHECK_MSG(rc == CURLE_OK && status == 200, "%s HTTP/1.%d: curl %d status %ld", what,
                  v ? 0 : 1, (int)rc, status);
        CHECK_MSG(got.len == want.len && memcmp(got.p, want.p, want.len) == 0,
                  "%s HTTP/1.%d: %zu bytes, export has %zu", what, v ? 0 : 1, got.len, want.len);
        free(got.p);
    }
    free(want.p);
}

/* ---- CAR streams ------------------------------------------------------------------------- */

TEST(car_streams_equal_car_export) {
    if (!setup())
        SKIP("fixture failed");
    check_car_equal(&fx.v0, "CIDv0, 256 KiB dag-pb leaves");
    check_car_equal(&fx.v1, "CIDv1, raw leaves");
    check_car_equal(&fx.big, "leaves larger than the stream buffer");
    check_car_equal(&fx.zeros, "identical leaves");
    check_car_equal(&fx.nocopy, "--nocopy leaves");
}

/* dag-scope=entity walks files by their blocksizes: dag-pb leaves are then
 * decoded (in the buffer, or in memory when larger than it). */
TEST(entity_scope_and_ranges_match_all_scope) {
    if (!setup())
        SKIP("fixture failed");
    const ia_cid *roots[] = {&fx.v0, &fx.big, &fx.v1};
    for (int i = 0; i < 3; i++) {
        char cid[256], path[512];
        ia_cid_format(roots[i], IA_BASE32, cid, sizeof cid);
        buf want = expected_car(roots[i]), got = {0};
        CURLcode rc;
        snprintf(path, sizeof path, "/ipfs/%s?format=car&dag-scope=entity", cid);
        CHECK_EQ_INT(get(path, false, &got, &rc), 200);
        CHECK_MSG(rc == CURLE_OK && got.len == want.len && memcmp(got.p, want.p, want.len) == 0,
                  "root %d: %zu bytes, export has %zu", i, got.len, want.len);
        free(got.p);
        /* a range inside the second leaf: header, the nodes above it, that leaf */
        got = (buf){0};
        snprintf(path, sizeof path, "/ipfs/%s?format=car&entity-bytes=600000:600001", cid);
        CHECK_EQ_INT(get(path, false, &got, &rc), 200);
        CHECK(rc == CURLE_OK && got.len > 100000 && got.len < want.len);
        free(got.p);
        free(want.p);
    }
}

TEST(dups_y_repeats_identical_leaves) {
    if (!setup())
        SKIP("fixture failed");
    char cid[256], path[512];
    ia_cid_format(&fx.zeros, IA_BASE32, cid, sizeof cid);
    snprintf(path, sizeof path, "/ipfs/%s?format=car&dag-scope=all&car-dups=y", cid);
    buf want = expected_car(&fx.zeros), got = {0};
    CURLcode rc;
    CHECK_EQ_INT(get(path, false, &got, &rc), 200);
    CHECK(rc == CURLE_OK);
    /* dups=n: header, root, the leaf's section S; dups=y: S three more times */
    CHECK_MSG(got.len > want.len && (got.len - want.len) % 3 == 0, "dups=y %zu bytes, dups=n %zu",
              got.len, want.len);
    size_t s = (got.len - want.len) / 3;
    CHECK(s > 262144 && s < want.len && memcmp(got.p, want.p, want.len) == 0);
    for (int j = 0; j < 3 && s < want.len && got.len == want.len + 3 * s; j++)
        CHECK(memcmp(got.p + want.len + (size_t)j * s, want.p + want.len - s, s) == 0);
    free(got.p);
    free(want.p);
}

/* A --nocopy source changed after the add: a stream never carries bytes
 * that are not the DAG's; it is cut at the changed leaf or before it. */
TEST(changed_nocopy_source_cuts_the_stream) {
    if (!setup())
        SKIP("fixture failed");
    char cid[256], path[512];
    ia_cid_format(&fx.nocopy, IA_BASE32, cid, sizeof cid);
    snprintf(path, sizeof path, "/ipfs/%s?format=car&dag-scope=all", cid);
    buf want = expected_car(&fx.nocopy);
    struct stat before;
    CHECK(stat(fx.nocopy_path, &before) == 0);
    /* same size, same mtime (put back), other bytes in the second leaf: only
     * the hash can tell */
    int fd = open(fx.nocopy_path, O_WRONLY);
    CHECK(fd >= 0);
    uint8_t junk[4096];
    test_fill(junk, sizeof junk, 99);
    CHECK(pwrite(fd, junk, sizeof junk, 300000) == (ssize_t)sizeof junk);
    struct timespec times[2] = {before.st_atim, before.st_mtim};
    CHECK(futimens(fd, times) == 0);
    close(fd);
    for (int round = 0; round < 2; round++) {
        for (int v = 0; v < 2; v++) {
            buf got = {0};
            CURLcode rc;
            get(path, v == 1, &got, &rc);
            /* HTTP/1.1 sees the cut (no last chunk); HTTP/1.0 ends at the
             * close either way, so only the bytes can show it there */
            CHECK_MSG(v == 1 || rc != CURLE_OK, "round %d: the chunked stream was not cut", round);
            CHECK_MSG(got.len < want.len && (got.len == 0 || memcmp(got.p, want.p, got.len) == 0),
                      "round %d HTTP/1.%d: %zu bytes, not a prefix of the %zu-byte CAR", round,
                      v ? 0 : 1, got.len, want.len);
            free(got.p);
        }
        /* second round: the modification time says so too */
        fd = open(fx.nocopy_path, O_WRONLY);
        CHECK(fd >= 0 && futimens(fd, NULL) == 0);
        close(fd);
    }
    free(want.p);
}

/* ---- raw blocks -------------------------------------------------------------------------- */

typedef struct leaves {
    ia_cid v[64];
    size_t n;
} leaves;

static ia_status take_leaf(void *ctx, const ia_cid *cid, const uint8_t *d, size_t len) {
    leaves *l = ctx;
    if (len >= 65536 && l->n < 64)
        l->v[l->n++] = *cid;
    return IA_OK;
}

TEST(raw_block_files_and_references) {
    if (!setup())
        SKIP("fixture failed");
    const ia_cid *roots[] = {&fx.v0, &fx.v1};
    for (int i = 0; i < 2; i++) {
        leaves l = {0};
        CHECK_OK(ia_dag_walk(fx.bs, roots[i], false, take_leaf, &l));
        CHECK(l.n >= 3);
        for (size_t k = 0; k < l.n; k++) {
            char cid[256], path[512];
            ia_cid_format(&l.v[k], IA_BASE32, cid, sizeof cid);
            snprintf(path, sizeof path, "/ipfs/%s?format=raw", cid);
            uint8_t *want = NULL;
            size_t want_len = 0;
            CHECK_OK(ia_blockstore_get(fx.bs, &l.v[k], &want, &want_len));
            buf got = {0};
            CURLcode rc;
            CHECK_EQ_INT(get(path, k % 2 == 1, &got, &rc), 200);
            CHECK(rc == CURLE_OK && got.len == want_len && memcmp(got.p, want, want_len) == 0);
            free(got.p);
            free(want);
        }
    }
}

/* ---- a client that hangs up ---------------------------------------------------------------- */

TEST(client_hanging_up_mid_stream) {
    if (!setup())
        SKIP("fixture failed");
    char cid[256], path[512];
    ia_cid_format(&fx.v0, IA_BASE32, cid, sizeof cid);
    snprintf(path, sizeof path, "/ipfs/%s?format=car&dag-scope=all", cid);
    for (int i = 0; i < 6; i++) {
        buf got = {.abort_after = 1000 + (size_t)i * 150000};
        CURLcode rc;
        get(path, i % 2 == 1, &got, &rc);
        CHECK(rc == CURLE_WRITE_ERROR);
        free(got.p);
    }
    usleep(200 * 1000); /* the gateway's threads meet the closed sockets */
    check_car_equal(&fx.v0, "after clients hung up");
}

/* Runs last (registration order): stops the server and removes the fixture. */
TEST(zz_teardown) {
    if (!fx.ok)
        return;
    ia_gateway_stop(fx.gw);
    ia_blockstore_close(fx.bs);
    rm_rf(fx.dir);
    free(fx.dir);
    memset(&fx, 0, sizeof fx);
}
