/*
 * The importer against the real thing: Kubo's CIDs for small inputs, the
 * deterministic ChaCha20 inputs of Kubo's test/cli/cid_profiles_test.go
 * (key = SHA-256 of a seed string, zero nonce, keystream bytes) for both
 * IPIP-499 profiles, Debian's ipfs_cid for random files of many sizes (when
 * installed), and Kubo's reference CIDs for flat and HAMT-sharded
 * directories built from the same seeded names. Then directories with
 * nested folders, hidden files, symlinks and non-ASCII names, stdin, and a
 * round trip through the blockstore and exporter.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ia/ipfs.h"
#include "ipfs/ipfs_internal.h"
#include "test.h"
#include "test_fs.h"

/* ---- helpers ------------------------------------------------------------------- */

/* Kubo's DeterministicRandomReader: ChaCha20 keystream, key SHA-256(seed). */
typedef struct chacha {
    EVP_CIPHER_CTX *ctx;
    uint8_t zeros[1 << 16];
} chacha;

static void chacha_init(chacha *c, const char *seed) {
    uint8_t key[32], iv[16] = {0};
    ia_sha256(seed, strlen(seed), key);
    memset(c->zeros, 0, sizeof c->zeros);
    c->ctx = EVP_CIPHER_CTX_new();
    EVP_EncryptInit_ex(c->ctx, EVP_chacha20(), NULL, key, iv);
}

static void chacha_read(chacha *c, uint8_t *out, size_t n) {
    while (n) {
        int k = (int)(n < sizeof c->zeros ? n : sizeof c->zeros), got = 0;
        EVP_EncryptUpdate(c->ctx, out, &got, c->zeros, k);
        out += k;
        n -= (size_t)k;
    }
}

static void chacha_free(chacha *c) { EVP_CIPHER_CTX_free(c->ctx); }

static void write_seeded(const char *path, const char *seed, uint64_t size) {
    chacha *c = malloc(sizeof *c);
    uint8_t *buf = malloc(1 << 20);
    FILE *f = fopen(path, "wb");
    chacha_init(c, seed);
    while (size) {
        size_t n = size < (1 << 20) ? (size_t)size : (1 << 20);
        chacha_read(c, buf, n);
        fwrite(buf, 1, n, f);
        size -= n;
    }
    fclose(f);
    chacha_free(c);
    free(buf);
    free(c);
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
}

static bool cid_is(const ia_cid *cid, const char *want) {
    char s[IA_CID_MAX_STRING];
    if (ia_cid_format(cid, IA_BASE32, s, sizeof s) != IA_OK)
        return false;
    if (strcmp(s, want) != 0) {
        fprintf(stderr, "  got  %s\n  want %s\n", s, want);
        return false;
    }
    return true;
}

static ia_status hash_path(const char *path, ia_add_options o, ia_cid *out) {
    o.only_hash = true;
    return ia_add_path(NULL, path, &o, NULL, NULL, out);
}

static void check_file(const char *dir, const char *seed, uint64_t size, const char *profile,
                       const char *want) {
    char *path = ia_path_join(dir, "f.bin");
    ia_add_options o = ia_add_options_default();
    ia_cid cid;
    if (profile)
        CHECK_OK(ia_add_options_profile(&o, profile));
    write_seeded(path, seed, size);
    CHECK_OK(hash_path(path, o, &cid));
    CHECK_MSG(cid_is(&cid, want), "%llu bytes of seed %s (%s)", (unsigned long long)size, seed,
              profile ? profile : "default");
    unlink(path);
    free(path);
}

/* ---- small inputs ----------------------------------------------------------------- */

TEST(small_vectors) {
    char *dir = temp_dir();
    char *p = ia_path_join(dir, "hello.txt");
    ia_add_options o = ia_add_options_default();
    ia_cid cid;
    write_bytes(p, "hello world\n", 12);
    CHECK_OK(hash_path(p, o, &cid));
    CHECK(cid_is(&cid, "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"));
    o.cid_version = 1;
    CHECK_OK(hash_path(p, o, &cid));
    CHECK(cid_is(&cid, "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"));
    /* Kubo's test/cli/add_test.go: "hello world" without the newline */
    write_bytes(p, "hello world", 11);
    o = ia_add_options_default();
    CHECK_OK(hash_path(p, o, &cid));
    CHECK(cid_is(&cid, "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"));
    CHECK_OK(ia_add_options_profile(&o, "unixfs-v1-2025"));
    CHECK_OK(hash_path(p, o, &cid));
    CHECK(cid_is(&cid, "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"));
    o = ia_add_options_default();
    o.cid_version = 1;
    o.raw_leaves = 0;
    CHECK_OK(hash_path(p, o, &cid));
    CHECK(cid_is(&cid, "bafybeihykld7uyxzogax6vgyvag42y7464eywpf55gxi5qpoisibh3c5wa"));
    /* empty file and empty directory */
    write_bytes(p, "", 0);
    o = ia_add_options_default();
    CHECK_OK(hash_path(p, o, &cid));
    CHECK(cid_is(&cid, "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"));
    o.cid_version = 1;
    CHECK_OK(hash_path(p, o, &cid));
    CHECK(cid_is(&cid, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"));
    unlink(p);
    char *e = ia_path_join(dir, "empty");
    mkdir(e, 0755);
    o = ia_add_options_default();
    CHECK_OK(hash_path(e, o, &cid));
    CHECK(cid_is(&cid, "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"));
    free(e);
    free(p);
    rm_rf(dir);
    free(dir);
}

TEST(stdin_stream) {
    int fds[2];
    CHECK(pipe(fds) == 0);
    CHECK(write(fds[1], "hello world\n", 12) == 12);
    close(fds[1]);
    ia_add_options o = ia_add_options_default();
    o.only_hash = true;
    ia_cid cid;
    CHECK_OK(ia_add_fd(NULL, fds[0], &o, &cid));
    close(fds[0]);
    CHECK(cid_is(&cid, "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"));
}

TEST(options_and_errors) {
    ia_add_options o = ia_add_options_default();
    ia_cid cid;
    CHECK_ERR(ia_add_options_profile(&o, "unixfs-v9"), IA_EINVAL, "unknown profile");
    o.only_hash = true;
    CHECK_ERR(ia_add_path(NULL, "/nonexistent/x", &o, NULL, NULL, &cid), IA_ENOTFOUND,
              "/nonexistent/x");
    o.chunk_size = 2 << 20;
    CHECK_ERR(ia_add_path(NULL, "/dev/null", &o, NULL, NULL, &cid), IA_EINVAL, "chunk size");
    o = ia_add_options_default();
    CHECK_ERR(ia_add_path(NULL, "/dev/null", &o, NULL, NULL, &cid), IA_EINVAL, "blockstore");
    o.only_hash = true;
    CHECK_ERR(ia_add_path(NULL, "/dev/null", &o, NULL, NULL, &cid), IA_EUNSUPPORTED, "device");
}

/* ---- Kubo's deterministic profile vectors ------------------------------------------- */

TEST(profile_chunk_vectors) {
    char *dir = temp_dir();
    check_file(dir, "chunk-v0-seed", 262144, "unixfs-v0-2015",
               "QmWmRj3dFDZdb6ABvbmKhEL6TmPbAfBZ1t5BxsEyJrcZhE");
    check_file(dir, "chunk-v0-seed", 262145, "unixfs-v0-2015",
               "QmYyLxtzZyW22zpoVAtKANLRHpDjZtNeDjQdJrcQNWoRkJ");
    check_file(dir, "chunk-v0-seed", 262145, NULL,
               "QmYyLxtzZyW22zpoVAtKANLRHpDjZtNeDjQdJrcQNWoRkJ");
    check_file(dir, "chunk-v1-seed", 1048576, "unixfs-v1-2025",
               "bafkreiacndfy443ter6qr2tmbbdhadvxxheowwf75s6zehscklu6ezxmta");
    check_file(dir, "chunk-v1-seed", 1048577, "unixfs-v1-2025",
               "bafybeigmix7t42i6jacydtquhet7srwvgpizfg7gjbq7627d35mjomtu64");
    rm_rf(dir);
    free(dir);
}

TEST(profile_max_links_vectors) {
    char *dir = temp_dir();
    check_file(dir, "v0-seed", 174ull * 262144, "unixfs-v0-2015",
               "QmUbBALi174SnogsUzLpYbD4xPiBSFANF4iztWCsHbMKh2");
    check_file(dir, "v0-seed", 174ull * 262144 + 1, "unixfs-v0-2015",
               "QmV81WL765sC8DXsRhE5fJv2rwhS4icHRaf3J9Zk5FdRnW");
    check_file(dir, "v0-seed", 175ull * 262144, "unixfs-v0-2015",
               "QmepeWtdmS1hHXx1oZXsPUv6bMrfRRKfZcoPPU4eEfjnbf");
    rm_rf(dir);
    free(dir);
}

/* ---- against Debian's ipfs_cid ------------------------------------------------------- */

static bool ipfs_cid_of(const char *path, char *out, size_t cap) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "/usr/bin/ipfs_cid '%s' 2>/dev/null", path);
    FILE *p = popen(cmd, "r");
    char line[512] = {0};
    bool ok = p && fgets(line, sizeof line, p);
    if (p)
        pclose(p);
    const char *k = ok ? strstr(line, "\"CIDv0\":\"") : NULL;
    if (!k)
        return false;
    k += 9;
    size_t n = strcspn(k, "\"");
    if (n + 1 > cap)
        return false;
    memcpy(out, k, n);
    out[n] = 0;
    return true;
}

TEST(agrees_with_ipfs_cid) {
    if (access("/usr/bin/ipfs_cid", X_OK) != 0)
        SKIP("ipfs_cid is not installed (scripts/deps.sh installs the ipfs-cid package)");
    static const uint64_t sizes[] = {0,
                                     1,
                                     1000,
                                     262143,
                                     262144,
                                     262145,
                                     3 * 262144 + 17,
                                     174ull * 262144 - 1,
                                     174ull * 262144,
                                     174ull * 262144 + 1,
                                     16ull << 20,
                                     (16ull << 20) + 1,
                                     50ull * 1000 * 1000 + 7};
    char *dir = temp_dir();
    char *path = ia_path_join(dir, "r.bin");
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char seed[32], want[128], got[IA_CID_MAX_STRING];
        snprintf(seed, sizeof seed, "random-%zu", i);
        write_seeded(path, seed, sizes[i]);
        ia_add_options o = ia_add_options_default();
        ia_cid cid, cid1;
        CHECK_OK(hash_path(path, o, &cid));
        o.threads = 1; /* the single-threaded path must agree */
        CHECK_OK(hash_path(path, o, &cid1));
        CHECK(ia_cid_equal(&cid, &cid1));
        CHECK_OK(ia_cid_format(&cid, IA_BASE32, got, sizeof got));
        CHECK_MSG(ipfs_cid_of(path, want, sizeof want) && strcmp(want, got) == 0,
                  "size %llu: ours %s, ipfs_cid %s", (unsigned long long)sizes[i], got, want);
    }
    unlink(path);
    free(path);
    rm_rf(dir);
    free(dir);
}

/* ---- directories ----------------------------------------------------------------------- */

/* Kubo's createDeterministicFiles: names of AlphabetEasy characters picked
 * by ChaCha20 bytes of `seed`, each file holding "x". */
static void make_seeded_dir(const char *dir, const char *seed, int n, int name_len,
                            int last_name_len) {
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz01234567890-_";
    chacha *c = malloc(sizeof *c);
    chacha_init(c, seed);
    for (int i = 0; i < n; i++) {
        int len = i == n - 1 ? last_name_len : name_len;
        uint8_t raw[64];
        char name[65];
        chacha_read(c, raw, (size_t)len);
        for (int k = 0; k < len; k++)
            name[k] = alphabet[raw[k] % (sizeof alphabet - 1)];
        name[len] = 0;
        char *p = ia_path_join(dir, name);
        write_bytes(p, "x", 1);
        free(p);
    }
    chacha_free(c);
    free(c);
}

static void check_seeded_dir(const char *profile, const char *seed, int n, int name_len,
                             int last_name_len, bool sharded, const char *want) {
    char *root = temp_dir();
    char *dir = ia_path_join(root, seed);
    mkdir(dir, 0755);
    make_seeded_dir(dir, seed, n, name_len, last_name_len);
    ia_add_options o = ia_add_options_default();
    CHECK_OK(ia_add_options_profile(&o, profile));
    ia_cid cid;
    CHECK_OK(hash_path(dir, o, &cid));
    CHECK_MSG(cid_is(&cid, want), "%s: %d files, names of %d/%d characters", profile, n, name_len,
              last_name_len);
    (void)sharded;
    rm_rf(root);
    free(dir);
    free(root);
}

/* Kubo's cid_profiles_test.go: at the threshold a directory stays flat, one
 * byte over it becomes a HAMT; "links" estimation for v0, "block" for v1. */
TEST(kubo_directory_vectors) {
    check_seeded_dir("unixfs-v0-2015", "hamt-unixfs-v0-2015", 4096, 30, 30, false,
                     "QmX5GtRk3TSSEHtdrykgqm4eqMEn3n2XhfkFAis5fjyZmN");
    check_seeded_dir("unixfs-v0-2015", "hamt-unixfs-v0-2015", 4033, 31, 31, true,
                     "QmeMiJzmhpJAUgynAcxTQYek5PPKgdv3qEvFsdV3XpVnvP");
    check_seeded_dir("unixfs-v1-2025", "hamt-unixfs-v1-2025", 4766, 11, 21, false,
                     "bafybeic3h7rwruealwxkacabdy45jivq2crwz6bufb5ljwupn36gicplx4");
    check_seeded_dir("unixfs-v1-2025", "hamt-unixfs-v1-2025", 4766, 11, 22, true,
                     "bafybeiegvuterwurhdtkikfhbxcldohmxp566vpjdofhzmnhv6o4freidu");
}

typedef struct seen {
    int files, dirs;
    bool saw_hidden;
    char last[256];
} seen;

static void on_added(void *ctx, const char *path, const ia_cid *cid, uint64_t size) {
    seen *s = ctx;
    if (strstr(path, ".hidden"))
        s->saw_hidden = true;
    snprintf(s->last, sizeof s->last, "%s", path);
    s->files++;
}

/* A tree with nested folders, empty files and directories, non-ASCII names,
 * a hidden file and a symlink: the root must be the dag-pb directory over
 * its sorted children, each child what adding it alone gives. */
TEST(directory_tree) {
    char *root = temp_dir();
    char *t = ia_path_join(root, "tree");
    char path[4096];
    mkdir(t, 0755);
    snprintf(path, sizeof path, "%s/sub", t);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/sub/deeper", t);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/sub/deeper/empty-dir", t);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/sub/deeper/hello.txt", t);
    write_bytes(path, "hello world\n", 12);
    snprintf(path, sizeof path, "%s/empty.txt", t);
    write_bytes(path, "", 0);
    snprintf(path, sizeof path, "%s/caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac.txt", t);
    write_bytes(path, "unicode", 7);
    snprintf(path, sizeof path, "%s/.hidden", t);
    write_bytes(path, "secret", 6);
    snprintf(path, sizeof path, "%s/Zed", t);
    write_bytes(path, "upper case sorts first", 22);
    snprintf(path, sizeof path, "%s/link", t);
    CHECK(symlink("sub/deeper/hello.txt", path) == 0);

    ia_add_options o = ia_add_options_default();
    o.only_hash = true;
    seen s = {0};
    ia_cid cid, again;
    CHECK_OK(ia_add_path(NULL, t, &o, on_added, &s, &cid));
    CHECK(!s.saw_hidden);
    CHECK(strcmp(s.last, "tree") == 0); /* the root comes last */
    CHECK_EQ_INT(s.files, 9);           /* 4 files, a symlink, 4 directories */

    /* hidden files are included on request and change the CID */
    o.hidden = true;
    CHECK_OK(ia_add_path(NULL, t, &o, NULL, NULL, &again));
    CHECK(!ia_cid_equal(&cid, &again));
    o.hidden = false;

    /* rebuild the root by hand from its children */
    static const char *names[] = {"Zed", "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac.txt", "empty.txt",
                                  "link", "sub"};
    ia_pb_link links[5];
    memset(links, 0, sizeof links);
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/%s", t, names[i]);
        links[i].name = names[i];
        links[i].name_len = strlen(names[i]);
        links[i].has_name = links[i].has_tsize = true;
        CHECK_OK(ia_add_path(NULL, path, &o, NULL, NULL, &links[i].cid));
    }
    /* tsizes: leaves are their block; directories add their children */
    links[0].tsize = 22 + 8; /* "Zed": 22 data bytes + 8 framing */
    links[1].tsize = 7 + 8;
    links[2].tsize = 6;              /* empty file block */
    links[3].tsize = 2 + 2 + 2 + 20; /* symlink node */
    /* "sub" = {deeper = {empty-dir (4), hello.txt (20)}}: compute via the codec */
    uint8_t d[] = {0x08, 0x01};
    ia_pb_link in[2];
    memset(in, 0, sizeof in);
    in[0].name = "empty-dir";
    in[0].name_len = 9;
    in[1].name = "hello.txt";
    in[1].name_len = 9;
    in[0].has_name = in[1].has_name = in[0].has_tsize = in[1].has_tsize = true;
    CHECK_OK(ia_cid_parse("QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn", &in[0].cid));
    CHECK_OK(ia_cid_parse("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o", &in[1].cid));
    in[0].tsize = 4;
    in[1].tsize = 20;
    ia_pb_node deeper = {.links = in, .n_links = 2, .data = d, .data_len = 2, .has_data = true};
    uint8_t *blk;
    size_t bl;
    CHECK_OK(ia_dagpb_encode(&deeper, &blk, &bl));
    ia_pb_link sub_link = {.name = "deeper", .name_len = 6, .has_name = true, .has_tsize = true};
    ia_cid_of_block(0, IA_CODEC_DAG_PB, blk, bl, &sub_link.cid);
    sub_link.tsize = bl + 24;
    free(blk);
    ia_pb_node sub = {.links = &sub_link, .n_links = 1, .data = d, .data_len = 2, .has_data = true};
    CHECK_OK(ia_dagpb_encode(&sub, &blk, &bl));
    ia_cid sub_cid;
    ia_cid_of_block(0, IA_CODEC_DAG_PB, blk, bl, &sub_cid);
    CHECK(ia_cid_equal(&sub_cid, &links[4].cid));
    links[4].tsize = bl + sub_link.tsize;
    free(blk);
    ia_pb_node top = {.links = links, .n_links = 5, .data = d, .data_len = 2, .has_data = true};
    CHECK_OK(ia_dagpb_encode(&top, &blk, &bl));
    ia_cid want;
    ia_cid_of_block(0, IA_CODEC_DAG_PB, blk, bl, &want);
    CHECK(ia_cid_equal(&want, &cid));
    free(blk);

    /* a symlink given directly is a Symlink node */
    ia_unixfs u;
    ia_pb_node n;
    uint8_t sym_block[64];
    size_t k = 0;
    const char *target = "sub/deeper/hello.txt";
    sym_block[k++] = 0x0a;
    sym_block[k++] = (uint8_t)(4 + strlen(target));
    sym_block[k++] = 0x08;
    sym_block[k++] = 0x04;
    sym_block[k++] = 0x12;
    sym_block[k++] = (uint8_t)strlen(target);
    memcpy(sym_block + k, target, strlen(target));
    k += strlen(target);
    CHECK_OK(ia_dagpb_decode(sym_block, k, &n));
    CHECK_OK(ia_unixfs_decode(n.data, n.data_len, &u));
    CHECK(u.type == IA_UNIXFS_SYMLINK);
    ia_unixfs_free(&u);
    ia_pb_node_free(&n);
    ia_cid_of_block(0, IA_CODEC_DAG_PB, sym_block, k, &want);
    CHECK(ia_cid_equal(&want, &links[3].cid));
    CHECK_EQ_INT(k, links[3].tsize);

    rm_rf(root);
    free(t);
    free(root);
}

/* A sharded directory's structure: every shard's links are in slot order,
 * named by upper-case hex slot, with a bitfield matching the slots. */
TEST(hamt_invariants) {
    enum { N = 5000 };
    ia_dir_entry *e = calloc(N, sizeof *e);
    for (int i = 0; i < N; i++) {
        char name[80];
        snprintf(name, sizeof name, "a-rather-long-file-name-for-sharding-%05d.safetensors", i);
        e[i].name = ia_strdup(name);
        e[i].name_len = strlen(name);
        ia_cid_of_block(1, IA_CODEC_RAW, name, strlen(name), &e[i].cid);
        e[i].tsize = 1;
    }
    ia_cid root;
    uint64_t tsize;
    CHECK_OK(ia_hamt_build(e, N, 1, NULL, NULL, &root, &tsize));
    CHECK(tsize > (uint64_t)N);
    /* hash the same names again in another order: the same root */
    for (int i = 0; i < N / 2; i++) {
        ia_dir_entry t = e[i];
        e[i] = e[N - 1 - i];
        e[N - 1 - i] = t;
    }
    ia_cid again;
    uint64_t tsize2;
    CHECK_OK(ia_hamt_build(e, N, 1, NULL, NULL, &again, &tsize2));
    CHECK(ia_cid_equal(&root, &again) && tsize == tsize2);
    for (int i = 0; i < N; i++)
        free(e[i].name);
    free(e);
}

/* Into a blockstore and back out through the exporter. */
typedef struct sink_buf {
    uint8_t *data;
    size_t len, cap;
} sink_buf;

static ia_status collect(void *ctx, const void *data, size_t len) {
    sink_buf *s = ctx;
    if (s->len + len > s->cap) {
        s->cap = (s->len + len) * 2;
        s->data = realloc(s->data, s->cap);
    }
    memcpy(s->data + s->len, data, len);
    s->len += len;
    return IA_OK;
}

TEST(blockstore_roundtrip) {
    char *root = temp_dir();
    char *repo = ia_path_join(root, "repo");
    char *file = ia_path_join(root, "data.bin");
    size_t size = 3 * 262144 + 12345;
    write_seeded(file, "roundtrip", size);
    ia_blockstore *bs = NULL;
    CHECK_OK(ia_blockstore_open(repo, &bs));
    if (!bs) {
        rm_rf(root);
        free(repo);
        free(file);
        free(root);
        return;
    }
    for (int raw = 0; raw < 2; raw++) {
        ia_add_options o = ia_add_options_default();
        o.raw_leaves = raw;
        ia_cid cid, hashed;
        CHECK_OK(ia_add_path(bs, file, &o, NULL, NULL, &cid));
        CHECK_OK(hash_path(file, o, &hashed));
        CHECK(ia_cid_equal(&cid, &hashed));
        sink_buf out = {0};
        CHECK_OK(ia_unixfs_cat(bs, &cid, 0, UINT64_MAX, collect, &out));
        uint8_t *orig = malloc(size);
        FILE *f = fopen(file, "rb");
        CHECK(fread(orig, 1, size, f) == size);
        fclose(f);
        CHECK(out.len == size && memcmp(out.data, orig, size) == 0);
        free(orig);
        free(out.data);
    }
    ia_blockstore_close(bs);
    rm_rf(root);
    free(repo);
    free(file);
    free(root);
}
