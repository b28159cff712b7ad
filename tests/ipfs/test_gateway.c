/*
 * The trustless gateway over real HTTP: a gateway started in-process on
 * 127.0.0.1 port 0 and libcurl as the client. Raw blocks (headers, HEAD,
 * Accept negotiation, the bafkqaaa probe, If-None-Match), CAR streams of a
 * multi-block file and of a directory read back with ia_car_import_buffer
 * into an empty repo, dag-scope block/entity/all, entity-bytes ranges, paths
 * through plain and HAMT-sharded directories, the error statuses (400, 404,
 * 405, 406, 501), concurrent clients, request parsing on its own, and the
 * CLI (`gateway --listen 127.0.0.1:0`) as a subprocess stopped by SIGTERM.
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ia/ipfs.h"
#include "test.h"
#include "test_fs.h"

/* ---- fixture: one repo with a file, a directory and a HAMT directory --------------------- */

typedef struct fixture {
    char dir[256], repo[512], url[64];
    ia_blockstore *bs;
    ia_gateway *gw;
    ia_cid file; /* 300000 bytes, 1 KiB chunks, raw leaves (CIDv1) */
    uint8_t *file_bytes;
    size_t file_len;
    ia_cid tree;  /* top/{a.txt, sub/{b.bin}, shard/{f0..f39}} */
    ia_cid shard; /* top/shard: a HAMT */
    bool ok;
} fixture;

static fixture fx;

static void write_bytes(const char *path, const uint8_t *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(p, 1, n, f);
        fclose(f);
    }
}

typedef struct found {
    const char *name;
    ia_cid cid;
} found;

static void remember(void *ctx, const char *path, const ia_cid *cid, uint64_t size) {
    found *f = ctx;
    if (strcmp(path, f->name) == 0)
        f->cid = *cid;
}

static fixture *setup(void) {
    if (fx.ok)
        return &fx;
    char tmpl[] = "/tmp/ia_gw_test_XXXXXX";
    if (!mkdtemp(tmpl))
        return NULL;
    snprintf(fx.dir, sizeof fx.dir, "%s", tmpl);
    snprintf(fx.repo, sizeof fx.repo, "%s/repo", fx.dir);
    CHECK_OK(ia_blockstore_open(fx.repo, &fx.bs));
    char path[1024];
    fx.file_len = 300000;
    fx.file_bytes = malloc(fx.file_len);
    test_fill(fx.file_bytes, fx.file_len, 1);
    snprintf(path, sizeof path, "%s/file.bin", fx.dir);
    write_bytes(path, fx.file_bytes, fx.file_len);
    ia_add_options o = ia_add_options_default();
    o.cid_version = 1;
    o.chunk_size = 1024;
    o.max_links = 8; /* several levels */
    o.pin = false;
    CHECK_OK(ia_add_path(fx.bs, path, &o, NULL, NULL, &fx.file));

    snprintf(path, sizeof path, "%s/top", fx.dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/top/a.txt", fx.dir);
    write_bytes(path, (const uint8_t *)"hello gateway\n", 14);
    snprintf(path, sizeof path, "%s/top/sub", fx.dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/top/sub/b.bin", fx.dir);
    write_bytes(path, fx.file_bytes, 5000);
    snprintf(path, sizeof path, "%s/top/shard", fx.dir);
    mkdir(path, 0755);
    for (int i = 0; i < 40; i++) {
        char name[1100], text[32];
        snprintf(name, sizeof name, "%s/top/shard/f%d", fx.dir, i);
        int n = snprintf(text, sizeof text, "file %d\n", i);
        write_bytes(name, (const uint8_t *)text, (size_t)n);
    }
    ia_add_options d = ia_add_options_default();
    d.chunk_size = 1024;
    d.pin = false;
    d.hamt_threshold = 200; /* shard/ becomes a HAMT, top/ stays plain */
    snprintf(path, sizeof path, "%s/top", fx.dir);
    found sh = {"top/shard", {0}};
    CHECK_OK(ia_add_path(fx.bs, path, &d, remember, &sh, &fx.tree));
    fx.shard = sh.cid;
    ia_unixfs_info info;
    CHECK_OK(ia_unixfs_stat(fx.bs, &fx.shard, &info));
    CHECK_EQ_INT(info.type, IA_UNIXFS_HAMT_SHARD);
    CHECK_OK(ia_unixfs_stat(fx.bs, &fx.tree, &info));
    CHECK_EQ_INT(info.type, IA_UNIXFS_DIRECTORY);

    CHECK_OK(ia_gateway_start(fx.bs, "127.0.0.1:0", NULL, &fx.gw));
    if (!fx.gw)
        return NULL;
    CHECK(ia_gateway_port(fx.gw) > 0);
    snprintf(fx.url, sizeof fx.url, "http://127.0.0.1:%u", (unsigned)ia_gateway_port(fx.gw));
    fx.ok = true;
    return &fx;
}

/* ---- HTTP client --------------------------------------------------------------------------- */

typedef struct response {
    long status;
    char *body;
    size_t len, cap;
    char headers[8192];
    size_t hlen;
} response;

static size_t on_body(char *p, size_t size, size_t n, void *ctx) {
    response *r = ctx;
    size_t k = size * n;
    if (r->len + k + 1 > r->cap) {
        size_t cap = (r->len + k + 1) * 2;
        char *b = realloc(r->body, cap);
        if (!b)
            return 0;
        r->body = b;
        r->cap = cap;
    }
    memcpy(r->body + r->len, p, k);
    r->len += k;
    r->body[r->len] = 0;
    return k;
}

static size_t on_header(char *p, size_t size, size_t n, void *ctx) {
    response *r = ctx;
    size_t k = size * n;
    if (r->hlen + k < sizeof r->headers) {
        memcpy(r->headers + r->hlen, p, k);
        r->hlen += k;
        r->headers[r->hlen] = 0;
    }
    return k;
}

/* GET (or `method`) fx.url + path, with Accept `accept` (NULL: none at all)
 * and an optional extra header line. */
static response http(const char *method, const char *path, const char *accept, const char *extra) {
    response r = {0};
    char url[4096], hdr[512];
    snprintf(url, sizeof url, "%s%s", fx.url, path);
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    snprintf(hdr, sizeof hdr, "Accept:%s%s", accept ? " " : "", accept ? accept : "");
    h = curl_slist_append(h, hdr);
    if (extra)
        h = curl_slist_append(h, extra);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "GET") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    CURLcode rc = curl_easy_perform(c);
    CHECK_MSG(rc == CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return r;
}

static void response_free(response *r) { free(r->body); }

/* The value of header `name` (case-insensitive) in buf, or "" (static). */
static const char *header(const response *r, const char *name) {
    static char val[2048];
    val[0] = 0;
    size_t n = strlen(name);
    for (const char *p = r->headers; *p;) {
        const char *e = strstr(p, "\r\n");
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len > n && strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            snprintf(val, sizeof val, "%.*s", (int)(p + len - v), v);
        }
        p += len + (e ? 2 : 0);
        if (!e)
            break;
    }
    return val;
}

static void cid_text(const ia_cid *cid, char *buf) { ia_cid_format(cid, IA_BASE32, buf, 256); }

/* Imports a CAR body into a fresh repo; returns it (caller closes and removes). */
static ia_blockstore *import_car(const response *r, ia_car_info *info, char *repo_out) {
    static int n;
    snprintf(repo_out, 600, "%s/import%d", fx.dir, n++);
    ia_blockstore *bs = NULL;
    CHECK_OK(ia_blockstore_open(repo_out, &bs));
    memset(info, 0, sizeof *info);
    if (bs)
        CHECK_OK(ia_car_import_buffer(bs, (const uint8_t *)r->body, r->len, "response", info));
    return bs;
}

typedef struct collect {
    uint8_t *buf;
    size_t len, cap;
} collect;

static ia_status collect_write(void *ctx, const void *data, size_t len) {
    collect *c = ctx;
    if (c->len + len > c->cap) {
        c->cap = (c->len + len) * 2;
        c->buf = realloc(c->buf, c->cap);
    }
    memcpy(c->buf + c->len, data, len);
    c->len += len;
    return IA_OK;
}

static ia_status count_block(void *ctx, const ia_cid *cid, const uint8_t *d, size_t len) {
    (*(int *)ctx)++;
    return IA_OK;
}

static int dag_count(ia_blockstore *bs, const ia_cid *root) {
    int n = 0;
    CHECK_OK(ia_dag_walk(bs, root, false, count_block, &n));
    return n;
}

/* ---- raw blocks ------------------------------------------------------------------------------ */

TEST(raw_block_headers_head_and_negotiation) {
    if (!setup())
        SKIP("fixture failed");
    char cid[256], path[512], want[512];
    cid_text(&fx.file, cid);
    uint8_t *block = NULL;
    size_t blen = 0;
    CHECK_OK(ia_blockstore_get(fx.bs, &fx.file, &block, &blen));

    snprintf(path, sizeof path, "/ipfs/%s?format=raw", cid);
    response r = http("GET", path, NULL, NULL);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_INT(r.len, blen);
    CHECK(r.len == blen && memcmp(r.body, block, blen) == 0);
    CHECK_MSG(strcmp(header(&r, "Content-Type"), "application/vnd.ipld.raw") == 0, "%s", r.headers);
    snprintf(want, sizeof want, "\"%s.raw\"", cid);
    CHECK_MSG(strcmp(header(&r, "Etag"), want) == 0, "%s", header(&r, "Etag"));
    snprintf(want, sizeof want, "%zu", blen);
    CHECK(strcmp(header(&r, "Content-Length"), want) == 0);
    snprintf(want, sizeof want, "attachment; filename=\"%s.bin\"", cid);
    CHECK(strcmp(header(&r, "Content-Disposition"), want) == 0);
    CHECK(strcmp(header(&r, "X-Content-Type-Options"), "nosniff") == 0);
    CHECK(strstr(header(&r, "Cache-Control"), "immutable") != NULL);
    CHECK(strcmp(header(&r, "X-Ipfs-Roots"), cid) == 0);
    CHECK(strcmp(header(&r, "Content-Location"), "") == 0);
    response_free(&r);

    r = http("HEAD", path, NULL, NULL);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_INT(r.len, 0);
    snprintf(want, sizeof want, "%zu", blen);
    CHECK_MSG(strcmp(header(&r, "Content-Length"), want) == 0, "%s", r.headers);
    response_free(&r);

    /* Accept alone; Content-Location names the ?format URL */
    snprintf(path, sizeof path, "/ipfs/%s", cid);
    r = http("GET", path, "text/html;q=0.9, application/vnd.ipld.raw", NULL);
    CHECK_EQ_INT(r.status, 200);
    CHECK(r.len == blen && memcmp(r.body, block, blen) == 0);
    snprintf(want, sizeof want, "/ipfs/%s?format=raw", cid);
    CHECK_MSG(strcmp(header(&r, "Content-Location"), want) == 0, "%s", r.headers);
    snprintf(want, sizeof want, "\"%s.raw\"", cid);
    response_free(&r);

    /* If-None-Match with the Etag: 304, no body */
    char inm[600];
    snprintf(inm, sizeof inm, "If-None-Match: %s", want);
    snprintf(path, sizeof path, "/ipfs/%s?format=raw", cid);
    r = http("GET", path, NULL, inm);
    CHECK_EQ_INT(r.status, 304);
    CHECK_EQ_INT(r.len, 0);
    response_free(&r);
    free(block);
}

TEST(probe_bafkqaaa) {
    if (!setup())
        SKIP("fixture failed");
    response r = http("GET", "/ipfs/bafkqaaa?format=raw", NULL, NULL);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_INT(r.len, 0);
    response_free(&r);
    r = http("HEAD", "/ipfs/bafkqaaa", "application/vnd.ipld.raw", NULL);
    CHECK_EQ_INT(r.status, 200);
    response_free(&r);
    r = http("GET", "/ipfs/bafkqaaa?format=car", NULL, NULL);
    CHECK_EQ_INT(r.status, 200);
    ia_car_info info = {0};
    CHECK_OK(ia_car_import_buffer(NULL, (const uint8_t *)r.body, r.len, "probe", &info));
    CHECK_EQ_INT(info.n_roots, 1);
    CHECK_EQ_INT(info.n_blocks, 0); /* identity blocks are never sent */
    ia_cid empty;
    CHECK_OK(ia_cid_parse("bafkqaaa", &empty));
    CHECK(info.n_roots == 1 && ia_cid_equal(&info.roots[0], &empty));
    ia_car_info_free(&info);
    response_free(&r);
}

/* ---- CAR ------------------------------------------------------------------------------------- */

TEST(car_of_multi_block_file_round_trips) {
    if (!setup())
        SKIP("fixture failed");
    char cid[256], path[512], repo[600];
    cid_text(&fx.file, cid);
    snprintf(path, sizeof path, "/ipfs/%s?format=car", cid);
    response r = http("GET", path, NULL, NULL);
    CHECK_EQ_INT(r.status, 200);
    CHECK_MSG(strcmp(header(&r, "Content-Type"),
                     "application/vnd.ipld.car; version=1; order=dfs; dups=n") == 0,
              "%s", r.headers);
    CHECK(strncmp(header(&r, "Etag"), "\"", 1) == 0 && strstr(header(&r, "Etag"), ".car"));
    CHECK(strstr(header(&r, "Content-Disposition"), ".car\"") != NULL);
    ia_car_info info;
    ia_blockstore *bs = import_car(&r, &info, repo);
    CHECK(info.n_roots == 1 && ia_cid_equal(&info.roots[0], &fx.file));
    CHECK_EQ_INT(info.n_blocks, dag_count(fx.bs, &fx.file));
    collect c = {0};
    CHECK_OK(ia_unixfs_cat(bs, &fx.file, 0, UINT64_MAX, collect_write, &c));
    CHECK(c.len == fx.file_len && memcmp(c.buf, fx.file_bytes, fx.file_len) == 0);
    free(c.buf);
    ia_car_info_free(&info);
    ia_blockstore_close(bs);

    /* The same bytes again: CAR responses are deterministic (dfs) */
    response r2 = http("GET", path, "application/vnd.ipld.car", NULL);
    CHECK(r2.len == r.len && memcmp(r2.body, r.body, r.len) == 0);
    response_free(&r2);
    /* Accept with version=2 only: not acceptable */
    snprintf(path, sizeof path, "/ipfs/%s", cid);
    r2 = http("GET", path, "application/vnd.ipld.car; version=2", NULL);
    CHECK_EQ_INT(r2.status, 406);
    response_free(&r2);
    /* Accept with dups=y: said so in Content-Type */
    r2 = http("GET", path, "application/vnd.ipld.car; version=1; order=dfs; dups=y", NULL);
    CHECK_EQ_INT(r2.status, 200);
    CHECK(strstr(header(&r2, "Content-Type"), "dups=y") != NULL);
    CHECK(strstr(header(&r2, "Content-Location"), "?format=car") != NULL);
    CHECK(r2.len >= r.len);
    response_free(&r2);
    response_free(&r);
}

TEST(car_of_directory_and_paths) {
    if (!setup())
        SKIP("fixture failed");
    char cid[256], path[700], repo[600];
    cid_text(&fx.tree, cid);
    snprintf(path, sizeof path, "/ipfs/%s?format=car", cid);
    response r = http("GET", path, NULL, NULL);
    CHECK_EQ_INT(r.status, 200);
    ia_car_info info;
    ia_blockstore *bs = import_car(&r, &info, repo);
    CHECK_EQ_INT(info.n_blocks, dag_count(fx.bs, &fx.tree));
    collect c = {0};
    snprintf(path, sizeof path, "%s/sub/b.bin", cid);
    ia_cid leaf;
    CHECK_OK(ia_unixfs_resolve(bs, path, &leaf));
    CHECK_OK(ia_unixfs_cat(bs, &leaf, 0, UINT64_MAX, collect_write, &c));
    CHECK(c.len == 5000 && memcmp(c.buf, fx.file_bytes, 5000) == 0);
    c.len = 0;
    snprintf(path, sizeof path, "%s/shard/f17", cid);
    CHECK_OK(ia_unixfs_resolve(bs, path, &leaf));
    CHECK_OK(ia_unixfs_cat(bs, &leaf, 0, UINT64_MAX, collect_write, &c));
    CHECK(c.len == 8 && memcmp(c.buf, "file 17\n", 8) == 0);
    ia_car_info_free(&info);
    ia_blockstore_close(bs);
    response_free(&r);

    /* A path through the plain directory and the HAMT: only the blocks to
     * walk it, then the file; the new repo resolves the same path. */
    snprintf(path, sizeof path, "/ipfs/%s/shard/f23?format=car", cid);
    r = http("GET", path, NULL, NULL);
    CHECK_EQ_INT(r.status, 200);
    CHECK_MSG(strchr(header(&r, "X-Ipfs-Roots"), ',') != NULL, "%s", r.headers);
    bs = import_car(&r, &info, repo);
    CHECK(info.n_roots == 1 && ia_cid_equal(&info.roots[0], &fx.tree));
    CHECK(info.n_blocks >= 3 && (int)info.n_blocks < dag_count(fx.bs, &fx.tree));
    snprintf(path, sizeof path, "%s/shard/f23", cid);
    c.len = 0;
    CHECK_OK(ia_unixfs_resolve(bs, path, &leaf));
    CHECK_OK(ia_unixfs_cat(bs, &leaf, 0, UINT64_MAX, collect_write, &c));
    CHECK(c.len == 8 && memcmp(c.buf, "file 23\n", 8) == 0);
    snprintf(path, sizeof path, "%s/shard/f22", cid);
    ia_status st = ia_unixfs_resolve(bs, path, &leaf);
    if (st == IA_OK) /* f22 may share the shard, but its own block is not there */
        CHECK(!ia_blockstore_has(bs, &leaf) || leaf.mh_code == IA_MH_IDENTITY);
    ia_car_info_free(&info);
    ia_blockstore_close(bs);
    response_free(&r);
    free(c.buf);
}

/* Blocks in a CAR response of path (a URL). */
static int car_blocks(const char *path, long *status) {
    response r = http("GET", path, NULL, NULL);
    *status = r.status;
    ia_car_info info = {0};
    int n = -1;
    if (r.status == 200 &&
        ia_car_import_buffer(NULL, (const uint8_t *)r.body, r.len, "response", &info) == IA_OK)
        n = (int)info.n_blocks;
    ia_car_info_free(&info);
    response_free(&r);
    return n;
}

TEST(dag_scope_block_entity_all) {
    if (!setup())
        SKIP("fixture failed");
    char cid[256], fcid[256], path[700];
    long st;
    cid_text(&fx.tree, cid);
    cid_text(&fx.file, fcid);
    snprintf(path, sizeof path, "/ipfs/%s?format=car&dag-scope=block", cid);
    CHECK_EQ_INT(car_blocks(path, &st), 1);
    snprintf(path, sizeof path, "/ipfs/%s/sub?format=car&dag-scope=block", cid);
    CHECK_EQ_INT(car_blocks(path, &st), 2); /* top, then sub */
    snprintf(path, sizeof path, "/ipfs/%s?format=car&dag-scope=entity", cid);
    CHECK_EQ_INT(car_blocks(path, &st), 1); /* a plain directory: its block */
    /* a HAMT directory: its shards, none of the entries */
    int shards = 0, all = dag_count(fx.bs, &fx.shard);
    snprintf(path, sizeof path, "/ipfs/%s/shard?format=car&dag-scope=entity", cid);
    shards = car_blocks(path, &st);
    CHECK_MSG(shards == 1 + all - 40, "shards %d, all %d", shards, all); /* top + shards */
    snprintf(path, sizeof path, "/ipfs/%s/shard?format=car&dag-scope=all", cid);
    CHECK_EQ_INT(car_blocks(path, &st), all + 1);
    snprintf(path, sizeof path, "/ipfs/%s?format=car&dag-scope=entity", fcid);
    CHECK_EQ_INT(car_blocks(path, &st), dag_count(fx.bs, &fx.file));
    snprintf(path, sizeof path, "/ipfs/%s?format=car&dag-scope=block", fcid);
    CHECK_EQ_INT(car_blocks(path, &st), 1);
    /* Etags differ by scope */
    snprintf(path, sizeof path, "/ipfs/%s?format=car&dag-scope=block", fcid);
    response a = http("HEAD", path, NULL, NULL);
    snprintf(path, sizeof path, "/ipfs/%s?format=car&dag-scope=all", fcid);
    response b = http("HEAD", path, NULL, NULL);
    CHECK_EQ_INT(a.status, 200);
    char ea[512];
    snprintf(ea, sizeof ea, "%s", header(&a, "Etag"));
    CHECK(ea[0] && strcmp(ea, header(&b, "Etag")) != 0);
    response_free(&a);
    response_free(&b);
}

/* Fetches entity-bytes=spec of the file; checks that exactly bytes
 * [lo, hi) can be read from what came back. Returns the block count. */
static int check_range(const char *spec, uint64_t lo, uint64_t hi) {
    char cid[256], path[700], repo[600];
    cid_text(&fx.file, cid);
    snprintf(path, sizeof path, "/ipfs/%s?format=car&entity-bytes=%s", cid, spec);
    response r = http("GET", path, NULL, NULL);
    CHECK_MSG(r.status == 200, "%s: %ld %s", spec, r.status, r.body ? r.body : "");
    ia_car_info info;
    ia_blockstore *bs = import_car(&r, &info, repo);
    collect c = {0};
    CHECK_OK(ia_unixfs_cat(bs, &fx.file, lo, hi - lo, collect_write, &c));
    CHECK_MSG(c.len == hi - lo && memcmp(c.buf, fx.file_bytes + lo, hi - lo) == 0, "%s", spec);
    /* a byte well outside the range is not there */
    uint64_t out = lo > 4096 ? 0 : (hi + 4096 < fx.file_len ? fx.file_len - 1 : UINT64_MAX);
    if (out != UINT64_MAX) {
        c.len = 0;
        CHECK_MSG(ia_unixfs_cat(bs, &fx.file, out, 1, collect_write, &c) != IA_OK,
                  "%s: byte %llu came too", spec, (unsigned long long)out);
    }
    int n = (int)info.n_blocks;
    free(c.buf);
    ia_car_info_free(&info);
    ia_blockstore_close(bs);
    response_free(&r);
    return n;
}

TEST(entity_bytes_ranges) {
    if (!setup())
        SKIP("fixture failed");
    int total = dag_count(fx.bs, &fx.file);
    int n = check_range("0:0", 0, 1);
    CHECK_MSG(n > 1 && n < 10, "%d", n);
    n = check_range("1000:2999", 1000, 3000);
    CHECK_MSG(n < 15, "%d", n);
    n = check_range("-1024:*", fx.file_len - 1024, fx.file_len);
    CHECK_MSG(n < 10, "%d", n);
    n = check_range("150000:-100000", 150000, fx.file_len - 100000 + 1);
    CHECK(n < total);
    CHECK_EQ_INT(check_range("0:*", 0, fx.file_len), total);
    check_range("299000:999999999", 299000, fx.file_len); /* clipped at the end */

    char cid[256], path[700], tcid[256];
    long st;
    cid_text(&fx.file, cid);
    snprintf(path, sizeof path, "/ipfs/%s?format=car&entity-bytes=400000:500000", cid);
    CHECK_EQ_INT(car_blocks(path, &st), -1);
    CHECK_EQ_INT(st, 400); /* wholly past the end */
    snprintf(path, sizeof path, "/ipfs/%s?format=car&entity-bytes=10:5", cid);
    car_blocks(path, &st);
    CHECK_EQ_INT(st, 400);
    snprintf(path, sizeof path, "/ipfs/%s?format=car&entity-bytes=abc", cid);
    car_blocks(path, &st);
    CHECK_EQ_INT(st, 400);
    snprintf(path, sizeof path, "/ipfs/%s?format=car&entity-bytes=-10:-20", cid);
    car_blocks(path, &st);
    CHECK_EQ_INT(st, 400); /* TO before FROM */
    /* resolves to zero length (TO before FROM once the size is known): the root block only */
    snprintf(path, sizeof path, "/ipfs/%s?format=car&entity-bytes=-10:5", cid);
    CHECK_EQ_INT(car_blocks(path, &st), 1);
    CHECK_EQ_INT(st, 200);
    /* on a directory the range is ignored: entity scope */
    cid_text(&fx.tree, tcid);
    snprintf(path, sizeof path, "/ipfs/%s?format=car&entity-bytes=0:10", tcid);
    CHECK_EQ_INT(car_blocks(path, &st), 1);
}

/* ---- errors -----------------------------------------------------------------------------------
 */

TEST(error_statuses) {
    if (!setup())
        SKIP("fixture failed");
    char cid[256], path[700];
    cid_text(&fx.tree, cid);
    ia_cid absent;
    ia_cid_of_block(1, IA_CODEC_RAW, "not stored", 10, &absent);
    char acid[256];
    cid_text(&absent, acid);
    struct {
        const char *method, *fmt, *accept;
        const char *arg;
        long status;
        const char *needle;
    } cases[] = {
        {"GET", "/ipfs/%s?format=raw", NULL, acid, 404, "not in"},
        {"HEAD", "/ipfs/%s?format=raw", NULL, acid, 404, ""},
        {"GET", "/ipfs/%s?format=car", NULL, acid, 404, "root block"},
        {"GET", "/ipfs/%s/nope?format=car", NULL, cid, 404, "no such entry"},
        {"GET", "/ipfs/%s/a.txt/deeper?format=car", NULL, cid, 404, "not a directory"},
        {"GET", "/ipfs/%s?format=raw", NULL, "bafyNOTACID", 400, "not a valid CID"},
        {"GET", "/ipfs/%s/a.txt?format=raw", NULL, cid, 400, "no path"},
        {"GET", "/ipfs/%s?format=car&dag-scope=most", NULL, cid, 400, "dag-scope"},
        {"GET", "/ipfs/%s?format=zip", NULL, cid, 400, "format=zip"},
        {"GET", "/ipfs/%s?format=tar", NULL, cid, 406, "not served"},
        {"GET", "/ipfs/%s", "text/html", cid, 406, "Accept"},
        {"GET", "/ipfs/%s", NULL, cid, 400, "trustless"},
        {"GET", "/ipfs/%s?format=car&car-version=2", NULL, cid, 406, "CARv1"},
        {"POST", "/ipfs/%s?format=raw", NULL, cid, 405, "GET and HEAD"},
        {"DELETE", "/ipfs/%s", NULL, cid, 405, ""},
        {"GET", "/ipns/%s", NULL, "example.com", 501, "ipns"},
        {"GET", "/%s", NULL, "favicon.ico", 404, "only /ipfs/"},
        {"GET", "/ipfs/%s", NULL, "", 400, "missing CID"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(path, sizeof path, cases[i].fmt, cases[i].arg);
        response r = http(cases[i].method, path, cases[i].accept, NULL);
        CHECK_MSG(r.status == cases[i].status, "%s %s: %ld, wanted %ld (%s)", cases[i].method, path,
                  r.status, cases[i].status, r.body ? r.body : "");
        if (strcmp(cases[i].method, "HEAD") != 0)
            CHECK_MSG(r.body && strstr(r.body, cases[i].needle), "%s %s: body '%s'",
                      cases[i].method, path, r.body ? r.body : "");
        response_free(&r);
    }
    snprintf(path, sizeof path, "/ipfs/%s?format=raw", acid);
    response r = http("GET", path, NULL, "Cache-Control: only-if-cached");
    CHECK_EQ_INT(r.status, 412);
    response_free(&r);
}

/* ---- concurrency -------------------------------------------------------------------------------
 */

typedef struct client_job {
    const char *path;
    const char *want;
    size_t want_len;
    int ok;
} client_job;

static void *client_thread(void *arg) {
    client_job *j = arg;
    char url[1024];
    snprintf(url, sizeof url, "%s%s", fx.url, j->path);
    CURL *c = curl_easy_init();
    for (int i = 0; i < 5; i++) {
        response r = {0};
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
        if (curl_easy_perform(c) == CURLE_OK && r.len == j->want_len &&
            memcmp(r.body, j->want, r.len) == 0)
            j->ok++;
        free(r.body);
    }
    curl_easy_cleanup(c);
    return NULL;
}

TEST(concurrent_clients) {
    if (!setup())
        SKIP("fixture failed");
    char cid[256], path[700];
    cid_text(&fx.file, cid);
    snprintf(path, sizeof path, "/ipfs/%s?format=car", cid);
    response ref = http("GET", path, NULL, NULL);
    CHECK_EQ_INT(ref.status, 200);
    enum { N = 8 };
    pthread_t t[N];
    client_job jobs[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (client_job){path, ref.body, ref.len, 0};
        pthread_create(&t[i], NULL, client_thread, &jobs[i]);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ_INT(jobs[i].ok, 5);
    }
    response_free(&ref);
}

/* ---- parsing on its own ------------------------------------------------------------------------
 */

TEST(parse_request_accept_and_params) {
    ia_gw_request q;
    char why[256];
    ia_gw_inputs in = {0};
    in.accept = "application/vnd.ipld.raw;q=0.5, application/vnd.ipld.car;version=1;dups=y";
    CHECK_EQ_INT(ia_gateway_parse_request("/ipfs/bafkqaaa", &in, &q, why, sizeof why), 200);
    CHECK_EQ_INT(q.format, IA_GW_FORMAT_CAR);
    CHECK(q.dups && q.format_from_accept);
    in.format = "raw"; /* format wins over Accept */
    CHECK_EQ_INT(ia_gateway_parse_request("/ipfs/bafkqaaa", &in, &q, why, sizeof why), 200);
    CHECK_EQ_INT(q.format, IA_GW_FORMAT_RAW);
    CHECK(!q.format_from_accept);
    in = (ia_gw_inputs){0};
    in.format = "car";
    in.entity_bytes = "-100:*";
    CHECK_EQ_INT(ia_gateway_parse_request("/ipfs/bafkqaaa/a/b", &in, &q, why, sizeof why), 200);
    CHECK_EQ_INT(q.scope, IA_GW_SCOPE_ENTITY);
    CHECK(q.has_range && q.range_from == -100 && q.range_to_end);
    CHECK(strcmp(q.path, "/a/b") == 0);
    in.entity_bytes = "1:99999999999999999999";
    CHECK_EQ_INT(ia_gateway_parse_request("/ipfs/bafkqaaa", &in, &q, why, sizeof why), 400);
    in.entity_bytes = NULL;
    in.accept = "application/vnd.ipld.car;q=0";
    in.format = NULL;
    CHECK_EQ_INT(ia_gateway_parse_request("/ipfs/bafkqaaa", &in, &q, why, sizeof why), 406);
    CHECK(strstr(why, "Accept") != NULL);
}

/* ---- the CLI -----------------------------------------------------------------------------------
 */

TEST(cli_gateway_subprocess) {
    const char *cli = getenv("IA_CLI");
    if (!cli || access(cli, X_OK) != 0)
        SKIP("IA_CLI is not set");
    if (!setup())
        SKIP("fixture failed");
    /* A second handle on the repo: the CLI opens it in its own process. */
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2);
        execl(cli, cli, "gateway", "--listen", "127.0.0.1:0", "--repo", fx.repo, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char line[256] = {0};
    size_t n = 0;
    while (n + 1 < sizeof line) { /* the first line */
        ssize_t k = read(fds[0], line + n, 1);
        if (k <= 0 || line[n] == '\n')
            break;
        n++;
    }
    line[n] = 0;
    unsigned port = 0;
    CHECK_MSG(sscanf(line, "gateway listening on http://127.0.0.1:%u", &port) == 1, "'%s'", line);
    if (port) {
        char saved[64], cid[256], path[512];
        snprintf(saved, sizeof saved, "%s", fx.url);
        snprintf(fx.url, sizeof fx.url, "http://127.0.0.1:%u", port);
        cid_text(&fx.tree, cid);
        snprintf(path, sizeof path, "/ipfs/%s/a.txt?format=car&dag-scope=entity", cid);
        response r = http("GET", path, NULL, NULL);
        CHECK_EQ_INT(r.status, 200);
        ia_car_info info = {0};
        CHECK_OK(ia_car_import_buffer(NULL, (const uint8_t *)r.body, r.len, "cli", &info));
        CHECK_EQ_INT(info.n_blocks, 2);
        ia_car_info_free(&info);
        response_free(&r);
        snprintf(fx.url, sizeof fx.url, "%s", saved);
    }
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    close(fds[0]);
}

/* Runs last (registration order): stops the server and removes the fixture. */
TEST(zz_teardown) {
    if (!fx.ok)
        return;
    ia_gateway_stop(fx.gw);
    ia_blockstore_close(fx.bs);
    free(fx.file_bytes);
    rm_rf(fx.dir);
    memset(&fx, 0, sizeof fx);
}
