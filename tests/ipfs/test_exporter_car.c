/*
 * The exporter and CAR files: cat of whole files and byte ranges over deep
 * file trees (raw and dag-pb leaves), path resolution through plain and
 * HAMT-sharded directories, ls, get to disk, a CAR round trip into an empty
 * repo (same blocks, same cat output, DAG order), a CARv2 wrapping the same
 * CARv1, dag-cbor links, and hostile CARs (every truncation, wrong version,
 * absurd lengths, a block that does not match its CID, a bad CID).
 */
#define _GNU_SOURCE
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ia/ipfs.h"
#include "test.h"
#include "test_fs.h"

static void fill(uint8_t *p, size_t n, unsigned seed) {
    uint32_t x = seed * 2654435761u + 7;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        p[i] = (uint8_t)(x >> 24);
    }
}

static void write_bytes(const char *path, const uint8_t *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (n)
        fwrite(p, 1, n, f);
    fclose(f);
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

/* A repo in a temp dir holding one file of n bytes; the fixture of most cases. */
typedef struct fixture {
    char *dir;
    char repo[4200], file[4200];
    ia_blockstore *bs;
    uint8_t *bytes;
    size_t n;
    ia_cid root;
} fixture;

static void fixture_open_chunked(fixture *f, size_t n, int cid_version, int raw_leaves,
                                 size_t chunk);

static void fixture_open(fixture *f, size_t n, int cid_version, int raw_leaves) {
    fixture_open_chunked(f, n, cid_version, raw_leaves, 1000);
}

static void fixture_open_chunked(fixture *f, size_t n, int cid_version, int raw_leaves,
                                 size_t chunk) {
    memset(f, 0, sizeof *f);
    f->dir = temp_dir();
    snprintf(f->repo, sizeof f->repo, "%s/repo", f->dir);
    snprintf(f->file, sizeof f->file, "%s/data.bin", f->dir);
    f->n = n;
    f->bytes = malloc(n ? n : 1);
    fill(f->bytes, n, (unsigned)n);
    write_bytes(f->file, f->bytes, n);
    CHECK_OK(ia_blockstore_open(f->repo, &f->bs));
    ia_add_options o = ia_add_options_default();
    o.chunk_size = chunk; /* 4 links per node: a tree several levels deep */
    o.max_links = 4;
    o.cid_version = cid_version;
    o.raw_leaves = raw_leaves;
    o.pin = false;
    CHECK_OK(ia_add_path(f->bs, f->file, &o, NULL, NULL, &f->root));
}

static void fixture_close(fixture *f) {
    ia_blockstore_close(f->bs);
    rm_rf(f->dir);
    free(f->dir);
    free(f->bytes);
}

static void check_range(fixture *f, uint64_t off, uint64_t len) {
    buf_sink b = {0};
    CHECK_OK(ia_unixfs_cat(f->bs, &f->root, off, len, to_buf, &b));
    size_t want_off = off > f->n ? f->n : (size_t)off;
    size_t want = f->n - want_off;
    if (len < want)
        want = (size_t)len;
    CHECK_MSG(b.len == want && (want == 0 || memcmp(b.data, f->bytes + want_off, want) == 0),
              "range [%llu, +%llu): got %zu bytes, want %zu", (unsigned long long)off,
              (unsigned long long)len, b.len, want);
    free(b.data);
}

TEST(cat_whole_files_and_ranges) {
    static const int variants[][2] = {{0, 0}, {1, 1}, {1, 0}};
    for (size_t v = 0; v < 3; v++) {
        fixture f;
        fixture_open(&f, 23456, variants[v][0], variants[v][1]);
        ia_unixfs_info info;
        CHECK_OK(ia_unixfs_stat(f.bs, &f.root, &info));
        CHECK_EQ_INT(info.type, IA_UNIXFS_FILE);
        CHECK_EQ_INT(info.size, 23456);
        check_range(&f, 0, UINT64_MAX);
        static const uint64_t cuts[][2] = {
            {0, 1},     {0, 1000},   {999, 2},   {1000, 1000}, {3999, 4002}, {12345, 0},
            {5, 23451}, {23455, 10}, {23456, 5}, {99999, 5},   {16000, 1},   {7777, 8888},
        };
        for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
            check_range(&f, cuts[i][0], cuts[i][1]);
        fixture_close(&f);
    }
}

TEST(cat_small_and_empty_files) {
    size_t sizes[] = {0, 1, 999, 1000, 1001};
    for (size_t i = 0; i < 5; i++) {
        fixture f;
        fixture_open(&f, sizes[i], 1, 1);
        check_range(&f, 0, UINT64_MAX);
        check_range(&f, 1, 3);
        fixture_close(&f);
    }
}

TEST(cat_detects_a_corrupt_block) {
    fixture f;
    fixture_open(&f, 5000, 1, 1);
    /* Rot every block file on disk; cat must fail, not print wrong bytes. */
    char cmd[4400];
    snprintf(cmd, sizeof cmd,
             "find %s/blocks -name '*.data' -exec chmod u+w {} + -exec sh -c "
             "'printf X | dd of=\"$1\" bs=1 seek=3 conv=notrunc 2>/dev/null' _ {} \\;",
             f.repo);
    CHECK(system(cmd) == 0);
    buf_sink b = {0};
    ia_blockstore_set_hash_on_read(f.bs, true); /* cat --verify */
    CHECK_ERR(ia_unixfs_cat(f.bs, &f.root, 0, UINT64_MAX, to_buf, &b), IA_EIO, "corrupt");
    free(b.data);
    fixture_close(&f);
}

/* A file of many blocks over several tree levels: whole, long ranges, and a
 * corrupt block in the middle stops the output with an error, never wrong
 * bytes. */
TEST(cat_long_ranges_and_a_corrupt_middle_block) {
    fixture f;
    fixture_open_chunked(&f, 5u << 20, 1, 1, 32768); /* 160 leaves, 4 levels */
    check_range(&f, 0, UINT64_MAX);
    check_range(&f, 12345, 4u << 20);
    check_range(&f, (5u << 20) - (4u << 20) - 1, UINT64_MAX);
    /* rot one block in the middle of the file */
    char cmd[4600];
    snprintf(cmd, sizeof cmd,
             "f=$(find %s/blocks -name '*.data' | sort | sed -n 80p) && chmod u+w \"$f\" && "
             "printf X | dd of=\"$f\" bs=1 seek=3 conv=notrunc 2>/dev/null",
             f.repo);
    CHECK(system(cmd) == 0);
    buf_sink b = {0};
    ia_blockstore_set_hash_on_read(f.bs, true); /* cat --verify */
    CHECK_ERR(ia_unixfs_cat(f.bs, &f.root, 0, UINT64_MAX, to_buf, &b), IA_EIO, "corrupt");
    CHECK(b.len < f.n); /* cut short: nothing from the bad block on */
    free(b.data);
    fixture_close(&f);
}

/* A directory tree: top/{a.txt, sub/{b.bin}, many/{f000..f059}} */
static void make_tree(const char *top) {
    char path[4300];
    mkdir(top, 0755);
    snprintf(path, sizeof path, "%s/a.txt", top);
    write_bytes(path, (const uint8_t *)"alpha\n", 6);
    snprintf(path, sizeof path, "%s/sub", top);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/sub/b.bin", top);
    uint8_t big[5000];
    fill(big, sizeof big, 9);
    write_bytes(path, big, sizeof big);
    snprintf(path, sizeof path, "%s/many", top);
    mkdir(path, 0755);
    for (int i = 0; i < 60; i++) {
        char text[32];
        snprintf(path, sizeof path, "%s/many/f%03d", top, i);
        int n = snprintf(text, sizeof text, "file %d\n", i);
        write_bytes(path, (const uint8_t *)text, (size_t)n);
    }
}

typedef struct ls_seen {
    int n, dirs;
    uint64_t bytes;
} ls_seen;

static ia_status on_entry(void *ctx, const ia_ls_entry *e) {
    ls_seen *s = ctx;
    s->n++;
    s->dirs += e->type == IA_UNIXFS_DIRECTORY || e->type == IA_UNIXFS_HAMT_SHARD;
    s->bytes += e->size;
    return IA_OK;
}

static void check_cat(ia_blockstore *bs, const char *path, const char *want) {
    ia_cid cid;
    buf_sink b = {0};
    CHECK_OK(ia_unixfs_resolve(bs, path, &cid));
    CHECK_OK(ia_unixfs_cat(bs, &cid, 0, UINT64_MAX, to_buf, &b));
    CHECK_MSG(b.len == strlen(want) && memcmp(b.data, want, b.len) == 0, "%s", path);
    free(b.data);
}

static void tree_checks(ia_blockstore *bs, const ia_cid *root, bool hamt) {
    char rs[IA_CID_MAX_STRING], path[512];
    CHECK_OK(ia_cid_format(root, IA_BASE32, rs, sizeof rs));
    snprintf(path, sizeof path, "%s/a.txt", rs);
    check_cat(bs, path, "alpha\n");
    snprintf(path, sizeof path, "/ipfs/%s/many/f042", rs);
    check_cat(bs, path, "file 42\n");
    for (int i = 0; i < 60; i += 7) {
        char want[32];
        snprintf(path, sizeof path, "%s/many/f%03d", rs, i);
        snprintf(want, sizeof want, "file %d\n", i);
        check_cat(bs, path, want);
    }
    ia_cid cid;
    snprintf(path, sizeof path, "%s/many/f060", rs);
    CHECK_ERR(ia_unixfs_resolve(bs, path, &cid), IA_ENOTFOUND, "no entry 'f060'");
    snprintf(path, sizeof path, "%s/a.txt/x", rs);
    CHECK_ERR(ia_unixfs_resolve(bs, path, &cid), IA_EINVAL, "not a directory");
    snprintf(path, sizeof path, "%s/many", rs);
    CHECK_OK(ia_unixfs_resolve(bs, path, &cid));
    ia_unixfs_info info;
    CHECK_OK(ia_unixfs_stat(bs, &cid, &info));
    CHECK_EQ_INT(info.type, hamt ? IA_UNIXFS_HAMT_SHARD : IA_UNIXFS_DIRECTORY);
    ls_seen seen = {0};
    CHECK_OK(ia_unixfs_ls(bs, &cid, on_entry, &seen));
    CHECK_EQ_INT(seen.n, 60);
    CHECK_EQ_INT(seen.dirs, 0);
    ls_seen top = {0};
    CHECK_OK(ia_unixfs_ls(bs, root, on_entry, &top));
    CHECK_EQ_INT(top.n, 3);
    CHECK_EQ_INT(top.dirs, 2);
    CHECK_EQ_INT(top.bytes, 6);
    buf_sink b = {0};
    CHECK_ERR(ia_unixfs_cat(bs, root, 0, UINT64_MAX, to_buf, &b), IA_EINVAL, "not a file");
    free(b.data);
}

static ia_status add_tree(const char *dir, ia_blockstore *bs, bool hamt, ia_cid *root) {
    char top[4200];
    snprintf(top, sizeof top, "%s/top", dir);
    make_tree(top);
    ia_add_options o = ia_add_options_default();
    o.cid_version = 1;
    o.pin = false;
    if (hamt)
        o.hamt_threshold = 200; /* "many" (60 entries) shards, the others do not */
    return ia_add_path(bs, top, &o, NULL, NULL, root);
}

TEST(resolve_ls_plain_and_hamt_directories) {
    for (int hamt = 0; hamt < 2; hamt++) {
        char *dir = temp_dir();
        char repo[4200];
        snprintf(repo, sizeof repo, "%s/repo", dir);
        ia_blockstore *bs = NULL;
        ia_cid root;
        CHECK_OK(ia_blockstore_open(repo, &bs));
        CHECK_OK(add_tree(dir, bs, hamt, &root));
        tree_checks(bs, &root, hamt);
        ia_blockstore_close(bs);
        rm_rf(dir);
        free(dir);
    }
}

TEST(get_writes_the_tree) {
    char *dir = temp_dir();
    char repo[4200], out[4200], cmd[9000];
    snprintf(repo, sizeof repo, "%s/repo", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    ia_blockstore *bs = NULL;
    ia_cid root;
    CHECK_OK(ia_blockstore_open(repo, &bs));
    CHECK_OK(add_tree(dir, bs, true, &root));
    CHECK_OK(ia_unixfs_get(bs, &root, out));
    snprintf(cmd, sizeof cmd, "diff -r %s/top %s >/dev/null", dir, out);
    CHECK(system(cmd) == 0);
    CHECK_ERR(ia_unixfs_get(bs, &root, out), IA_EINVAL, "already exists");
    ia_blockstore_close(bs);
    rm_rf(dir);
    free(dir);
}

typedef struct cid_vec {
    ia_cid v[512];
    int n;
} cid_vec;

static ia_status collect(void *ctx, const ia_cid *cid) {
    cid_vec *c = ctx;
    if (c->n < 512)
        c->v[c->n++] = *cid;
    return IA_OK;
}

static int cmp_cid(const void *a, const void *b) { return memcmp(a, b, sizeof(ia_cid)); }

static ia_status visit_order(void *ctx, const ia_cid *cid, const uint8_t *d, size_t len) {
    return collect(ctx, cid);
}

TEST(car_round_trip_into_an_empty_repo) {
    fixture f;
    fixture_open(&f, 23456, 0, 0);
    buf_sink car = {0};
    uint64_t n_blocks = 0;
    CHECK_OK(ia_car_export(f.bs, &f.root, 1, to_buf, &car, &n_blocks));
    cid_vec src = {0};
    CHECK_OK(ia_blockstore_foreach(f.bs, collect, &src));
    CHECK_EQ_INT(n_blocks, src.n);

    char repo2[4300];
    snprintf(repo2, sizeof repo2, "%s/repo2", f.dir);
    ia_blockstore *bs2 = NULL;
    CHECK_OK(ia_blockstore_open(repo2, &bs2));
    ia_car_info info;
    CHECK_OK(ia_car_import_buffer(bs2, car.data, car.len, "mem.car", &info));
    CHECK_EQ_INT(info.version, 1);
    CHECK_EQ_INT(info.n_roots, 1);
    CHECK(info.n_roots == 1 && ia_cid_equal(&info.roots[0], &f.root));
    CHECK_EQ_INT(info.n_blocks, n_blocks);
    ia_car_info_free(&info);

    cid_vec dst = {0};
    CHECK_OK(ia_blockstore_foreach(bs2, collect, &dst));
    CHECK_EQ_INT(dst.n, src.n);
    qsort(src.v, (size_t)src.n, sizeof(ia_cid), cmp_cid);
    qsort(dst.v, (size_t)dst.n, sizeof(ia_cid), cmp_cid);
    CHECK(src.n == dst.n && memcmp(src.v, dst.v, (size_t)src.n * sizeof(ia_cid)) == 0);
    buf_sink a = {0}, b = {0};
    CHECK_OK(ia_unixfs_cat(f.bs, &f.root, 0, UINT64_MAX, to_buf, &a));
    CHECK_OK(ia_unixfs_cat(bs2, &f.root, 0, UINT64_MAX, to_buf, &b));
    CHECK(a.len == b.len && a.len == 23456 && memcmp(a.data, b.data, a.len) == 0);

    /* DAG order: the sections come in ia_dag_walk order, root first. */
    cid_vec order = {0};
    CHECK_OK(ia_dag_walk(f.bs, &f.root, false, visit_order, &order));
    size_t hlen = car.data[0]; /* the header is < 128 bytes: a 1-byte varint */
    size_t pos = 1 + hlen;
    for (int i = 0; i < order.n && pos < car.len; i++) {
        uint64_t slen;
        size_t used, cid_len;
        ia_cid c;
        CHECK_OK(ia_varint_decode(car.data + pos, car.len - pos, &slen, &used));
        CHECK_OK(ia_cid_decode(car.data + pos + used, (size_t)slen, &c, &cid_len));
        CHECK_MSG(ia_cid_equal(&c, &order.v[i]), "section %d out of DAG order", i);
        pos += used + (size_t)slen;
    }
    CHECK_EQ_INT(pos, car.len);
    free(a.data);
    free(b.data);
    b = (buf_sink){0};

    /* The same CARv1 inside a CARv2 (pragma, 40-byte header, padding, data). */
    size_t off = 11 + 40 + 5;
    uint8_t *v2 = calloc(1, off + car.len + 16);
    static const uint8_t pragma[11] = {0x0a, 0xa1, 0x67, 0x76, 0x65, 0x72,
                                       0x73, 0x69, 0x6f, 0x6e, 0x02};
    memcpy(v2, pragma, 11);
    for (int i = 0; i < 8; i++) {
        v2[11 + 16 + i] = (uint8_t)((uint64_t)off >> (8 * i));
        v2[11 + 24 + i] = (uint8_t)((uint64_t)car.len >> (8 * i));
    }
    memcpy(v2 + off, car.data, car.len);
    char v2path[4300];
    snprintf(v2path, sizeof v2path, "%s/v2.car", f.dir);
    write_bytes(v2path, v2, off + car.len + 16); /* trailing bytes: an index we ignore */
    char repo3[4300];
    snprintf(repo3, sizeof repo3, "%s/repo3", f.dir);
    ia_blockstore *bs3 = NULL;
    CHECK_OK(ia_blockstore_open(repo3, &bs3));
    CHECK_OK(ia_car_import_file(bs3, v2path, &info));
    CHECK_EQ_INT(info.version, 2);
    CHECK_EQ_INT(info.n_blocks, n_blocks);
    CHECK(info.n_roots == 1 && ia_cid_equal(&info.roots[0], &f.root));
    ia_car_info_free(&info);
    CHECK_OK(ia_unixfs_cat(bs3, &f.root, 0, UINT64_MAX, to_buf, &b));
    CHECK_EQ_INT(b.len, 23456);
    /* A data offset past the end is refused. */
    v2[11 + 16] = 0xff;
    v2[11 + 17] = 0xff;
    CHECK_ERR(ia_car_import_buffer(NULL, v2, off + car.len, "v2.car", &info), IA_EPARSE,
              "lies outside");
    free(v2);
    free(b.data);
    ia_blockstore_close(bs2);
    ia_blockstore_close(bs3);
    free(car.data);
    fixture_close(&f);
}

/* A tiny CAR built by hand: header {roots: [cid], version: V}, then blocks. */
static size_t tiny_car(uint8_t *out, uint64_t version, const char *block, bool corrupt) {
    ia_cid cid;
    ia_cid_of_block(1, IA_CODEC_RAW, block, strlen(block), &cid);
    uint8_t bin[IA_CID_MAX_BYTES];
    size_t cl = ia_cid_encode(&cid, bin), n = 0;
    uint8_t hdr[256];
    size_t h = 0;
    hdr[h++] = 0xa2;
    hdr[h++] = 0x65;
    memcpy(hdr + h, "roots", 5), h += 5;
    hdr[h++] = 0x81;
    hdr[h++] = 0xd8;
    hdr[h++] = 0x2a;
    hdr[h++] = 0x58;
    hdr[h++] = (uint8_t)(cl + 1);
    hdr[h++] = 0;
    memcpy(hdr + h, bin, cl), h += cl;
    hdr[h++] = 0x67;
    memcpy(hdr + h, "version", 7), h += 7;
    hdr[h++] = (uint8_t)version;
    out[n++] = (uint8_t)h;
    memcpy(out + n, hdr, h), n += h;
    size_t bl = strlen(block);
    out[n++] = (uint8_t)(cl + bl);
    memcpy(out + n, bin, cl), n += cl;
    memcpy(out + n, block, bl), n += bl;
    if (corrupt)
        out[n - 1] ^= 1;
    return n;
}

TEST(hostile_cars_give_clear_errors) {
    uint8_t car[512];
    ia_car_info info;
    size_t n = tiny_car(car, 1, "hello car", false);
    CHECK_OK(ia_car_import_buffer(NULL, car, n, "t.car", &info));
    CHECK_EQ_INT(info.n_blocks, 1);
    ia_car_info_free(&info);
    /* Every truncation fails cleanly (or, at a section boundary, succeeds). */
    for (size_t cut = 0; cut < n; cut++) {
        ia_status st = ia_car_import_buffer(NULL, car, cut, "t.car", &info);
        CHECK_MSG(st == IA_EPARSE || (st == IA_OK && info.n_blocks == 0), "cut %zu: %s", cut,
                  ia_error_message());
        if (st == IA_OK)
            ia_car_info_free(&info);
        else
            CHECK_MSG(strstr(ia_error_message(), "t.car: offset ") != NULL, "%s",
                      ia_error_message());
    }
    n = tiny_car(car, 3, "hello car", false);
    CHECK_ERR(ia_car_import_buffer(NULL, car, n, "t.car", &info), IA_EUNSUPPORTED, "CAR version 3");
    n = tiny_car(car, 1, "hello car", true);
    CHECK_ERR(ia_car_import_buffer(NULL, car, n, "t.car", &info), IA_EPARSE,
              "does not match its CID");
    /* Absurd section length: a 9-byte varint claiming ~2^62 bytes. */
    n = tiny_car(car, 1, "hello car", false);
    size_t hdr_end = 1 + car[0];
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f};
    memcpy(car + hdr_end, huge, sizeof huge);
    char want[64];
    snprintf(want, sizeof want, "t.car: offset %zu: section claims", hdr_end);
    CHECK_ERR(ia_car_import_buffer(NULL, car, hdr_end + sizeof huge + 4, "t.car", &info), IA_EPARSE,
              want);
    /* A bad CID in a section. */
    n = tiny_car(car, 1, "hello car", false);
    car[hdr_end + 1] = 0x05; /* CID version 5 */
    CHECK_ERR(ia_car_import_buffer(NULL, car, n, "t.car", &info), IA_EPARSE, "bad CID");
    /* Absurd header length, and a header that is not a map. */
    static const uint8_t big_header[] = {0xff, 0xff, 0xff, 0x7f, 0xa0};
    CHECK_ERR(ia_car_import_buffer(NULL, big_header, sizeof big_header, "t.car", &info), IA_EPARSE,
              "header length");
    static const uint8_t not_map[] = {0x01, 0x80};
    CHECK_ERR(ia_car_import_buffer(NULL, not_map, sizeof not_map, "t.car", &info), IA_EPARSE,
              "not a CBOR map");
    static const uint8_t indefinite[] = {0x02, 0xbf, 0xff};
    CHECK_ERR(ia_car_import_buffer(NULL, indefinite, sizeof indefinite, "t.car", &info), IA_EPARSE,
              "indefinite");
    CHECK_ERR(ia_car_import_file(NULL, "/nonexistent/x.car", &info), IA_ENOTFOUND,
              "/nonexistent/x.car");
}

TEST(dag_cbor_links) {
    ia_cid a, cbor_cid;
    ia_cid_of_block(1, IA_CODEC_RAW, "leaf", 4, &a);
    uint8_t bin[IA_CID_MAX_BYTES], blk[256];
    size_t cl = ia_cid_encode(&a, bin), n = 0;
    /* {"a": [1, 42(h'00'+cid)], "b": -3} */
    blk[n++] = 0xa2;
    blk[n++] = 0x61;
    blk[n++] = 'a';
    blk[n++] = 0x82;
    blk[n++] = 0x01;
    blk[n++] = 0xd8;
    blk[n++] = 0x2a;
    blk[n++] = 0x58;
    blk[n++] = (uint8_t)(cl + 1);
    blk[n++] = 0;
    memcpy(blk + n, bin, cl), n += cl;
    blk[n++] = 0x61;
    blk[n++] = 'b';
    blk[n++] = 0x22;
    ia_cid_of_block(1, IA_CODEC_DAG_CBOR, blk, n, &cbor_cid);
    ia_cid *links = NULL;
    size_t n_links = 0;
    CHECK_OK(ia_block_links(&cbor_cid, blk, n, &links, &n_links));
    CHECK(n_links == 1 && ia_cid_equal(&links[0], &a));
    free(links);
    CHECK_ERR(ia_block_links(&cbor_cid, blk, n - 1, &links, &n_links), IA_EPARSE, "CBOR ends");
    /* A dag-cbor DAG survives gc under a recursive pin. */
    char *dir = temp_dir();
    ia_blockstore *bs = NULL;
    CHECK_OK(ia_blockstore_open(dir, &bs));
    CHECK_OK(ia_blockstore_put(bs, &a, "leaf", 4));
    CHECK_OK(ia_blockstore_put(bs, &cbor_cid, blk, n));
    CHECK_OK(ia_pin_add(bs, &cbor_cid, IA_PIN_RECURSIVE));
    uint64_t removed = 9;
    CHECK_OK(ia_repo_gc(bs, NULL, NULL, &removed));
    CHECK_EQ_INT(removed, 0);
    CHECK(ia_blockstore_has(bs, &a));
    ia_blockstore_close(bs);
    rm_rf(dir);
    free(dir);
}
