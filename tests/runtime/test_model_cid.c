/*
 * runtime/model_cid: loading a model by CID from the local store
 * (ia_model_source_resolve, and `embed --model CID` through the real CLI).
 *
 * The tiny BERT fixture is copied to a scratch directory and added to
 * temporary repos the ways users add models: by reference (--nocopy, raw
 * leaves, CIDv0 as `make run` does) and by copy, with small chunks and few
 * links per node so that each file is a multi-level tree of many leaves. A
 * CID added by reference must resolve to a cache entry whose files are
 * symlinks to the originals (same inode, no copy of the weights under the
 * cache), one added by copy to exported regular files; `embed` by CID must
 * print exactly what `embed` by path prints. A file changed after it was
 * added (even with its size and modification time put back) is an error
 * naming it, before and after its cache entry exists, and `embed` then
 * prints nothing. Also: a CID that is not in the store, an argument that is
 * neither a path nor a CID, a CID/sub/path and /ipfs/CID/sub/path, GGUF file
 * CIDs by reference and by copy, a non-GGUF file CID, a stale cache entry
 * rebuilt, a GGUF whose leaves repeat (one reference for several places in
 * the file), and a directory added by copy whose weights were then added by
 * reference (one symlink, the rest exported).
 */
#define _GNU_SOURCE
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "ia/ipfs.h"
#include "ia/runtime.h"
#include "test.h"
#include "test_cli.h"
#include "test_fs.h"

#define BERT "tests/fixtures/models/tiny-bert"
#define BERT_GGUF "tests/fixtures/bert_gguf/tiny-bert-ours-f32.gguf"

static const char sentence[] = "content addressed models load the same";

/* Copies the fixture tree `rel` to `dst` (which must not exist). */
static bool copy_fixture(const char *rel, const char *dst) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", test_source_path(rel), dst);
    return system(cmd) == 0;
}

/* Adds path to the repo at repo_dir (by reference with nocopy) with raw
 * leaves, 4 KiB chunks and 4 links per node. text gets the root CID. */
static bool add(const char *repo_dir, const char *path, bool nocopy, int version,
                char text[IA_CID_MAX_STRING]) {
    ia_blockstore *bs = NULL;
    ia_cid root;
    ia_add_options o = ia_add_options_default();
    o.cid_version = version;
    o.nocopy = nocopy;
    o.raw_leaves = 1;
    o.chunk_size = 4096;
    o.max_links = 4;
    ia_status st = ia_blockstore_open(repo_dir, &bs);
    if (st == IA_OK)
        st = ia_add_path(bs, path, &o, NULL, NULL, &root);
    if (st == IA_OK)
        st = ia_cid_format(&root, version ? IA_BASE32 : IA_BASE58BTC, text, IA_CID_MAX_STRING);
    ia_blockstore_close(bs);
    CHECK_OK(st);
    return st == IA_OK;
}

/* stdout of `embed --model M [--repo R] sentence`, which must succeed. */
static char *embed_out(const char *model, const char *repo) {
    run_result r = repo ? RUN("embed", "--model", model, "--repo", repo, sentence)
                        : RUN("embed", "--model", model, sentence);
    EXPECT(r, 0);
    free(r.err);
    return r.out;
}

/* true when the entry at dir/name is a symlink resolving to the same inode as orig. */
static bool is_link_to(const char *dir, const char *name, const char *orig) {
    char *p = ia_path_join(dir, name);
    char real_p[PATH_MAX], real_o[PATH_MAX];
    struct stat l, a, b;
    bool ok = p && lstat(p, &l) == 0 && S_ISLNK(l.st_mode) && stat(p, &a) == 0 &&
              stat(orig, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev &&
              realpath(p, real_p) && realpath(orig, real_o) && strcmp(real_p, real_o) == 0;
    free(p);
    return ok;
}

static bool is_regular(const char *dir, const char *name, off_t size) {
    char *p = ia_path_join(dir, name);
    struct stat l;
    bool ok = p && lstat(p, &l) == 0 && S_ISREG(l.st_mode) && l.st_size == size;
    free(p);
    return ok;
}

static off_t file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? sb.st_size : -1;
}

/* Flips one byte of path at offset, keeping its size and modification time. */
static bool corrupt_keeping_mtime(const char *path, long offset) {
    struct stat sb;
    FILE *f = fopen(path, "r+b");
    if (!f || stat(path, &sb) != 0) {
        if (f)
            fclose(f);
        return false;
    }
    int c = fseek(f, offset, SEEK_SET) == 0 ? fgetc(f) : EOF;
    bool ok = c != EOF && fseek(f, offset, SEEK_SET) == 0 && fputc(c ^ 0x5a, f) != EOF;
    ok = fclose(f) == 0 && ok;
    struct timespec times[2] = {sb.st_atim, sb.st_mtim};
    return ok && utimensat(AT_FDCWD, path, times, 0) == 0;
}

static void use_scratch_cache(void) { setenv("XDG_CACHE_HOME", scratch_path("cache"), 1); }

TEST(nocopy_directory_loads_in_place) {
    if (!getenv("IA_CLI"))
        SKIP("IA_CLI is not set");
    use_scratch_cache();
    const char *model = scratch_path("by-ref"), *repo = scratch_path("repo-ref");
    char cid[IA_CID_MAX_STRING], orig[4096];
    if (!copy_fixture(BERT, model) || !add(repo, model, true, 0, cid))
        return;
    snprintf(orig, sizeof orig, "%s/model.safetensors", model);
    CHECK(file_size(orig) > 32 * 4096); /* many leaves, several tree levels */

    char *path = NULL;
    ia_model_source_info info;
    CHECK_OK(ia_model_source_resolve(cid, repo, &path, &info));
    if (!path)
        return;
    CHECK(info.from_store && info.exported);
    CHECK_EQ_INT(info.files_in_place, 10);
    CHECK_EQ_INT(info.files_copied, 0);
    CHECK(info.bytes_verified >= (uint64_t)file_size(orig));
    CHECK_MSG(is_link_to(path, "model.safetensors", orig), "%s/model.safetensors", path);
    CHECK(is_link_to(path, "1_Pooling/config.json", scratch_path("by-ref/1_Pooling/config.json")));

    /* bit-identical embeddings by CID and by path */
    char *by_path = embed_out(model, NULL), *by_cid = embed_out(cid, repo);
    CHECK_MSG(by_path[0] == '[' && strcmp(by_path, by_cid) == 0, "by path %.60s, by CID %.60s",
              by_path, by_cid);
    free(by_path);
    free(by_cid);

    /* no copy of the weights anywhere under the cache */
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "test -z \"$(find '%s' -type f -name model.safetensors)\"",
             scratch_path("cache"));
    CHECK(system(cmd) == 0);

    /* a second resolve reuses the entry (and verifies again) */
    char *again = NULL;
    CHECK_OK(ia_model_source_resolve(cid, repo, &again, &info));
    CHECK(again && strcmp(again, path) == 0 && !info.exported && info.files_in_place == 10);
    free(again);

    /* a stale entry (a regular file where the link belongs) is rebuilt */
    char *link = ia_path_join(path, "model.safetensors");
    CHECK(link && unlink(link) == 0);
    FILE *f = link ? fopen(link, "wb") : NULL;
    if (f)
        fclose(f);
    CHECK_OK(ia_model_source_resolve(cid, repo, &again, &info));
    CHECK(info.exported && is_link_to(path, "model.safetensors", orig));
    free(again);
    free(link);
    free(path);
}

TEST(copied_directory_is_exported) {
    if (!getenv("IA_CLI"))
        SKIP("IA_CLI is not set");
    use_scratch_cache();
    const char *model = scratch_path("by-copy"), *repo = scratch_path("repo-copy");
    char cid[IA_CID_MAX_STRING], orig[4096];
    if (!copy_fixture(BERT, model) || !add(repo, model, false, 1, cid))
        return;
    snprintf(orig, sizeof orig, "%s/model.safetensors", model);
    char *path = NULL;
    ia_model_source_info info;
    CHECK_OK(ia_model_source_resolve(cid, repo, &path, &info));
    if (!path)
        return;
    CHECK_EQ_INT(info.files_in_place, 0);
    CHECK_EQ_INT(info.files_copied, 10);
    CHECK(is_regular(path, "model.safetensors", file_size(orig)));
    char *by_path = embed_out(model, NULL), *by_cid = embed_out(cid, repo);
    CHECK(by_path[0] == '[' && strcmp(by_path, by_cid) == 0);
    free(by_path);
    free(by_cid);
    free(path);
}

TEST(changed_original_is_an_error) {
    if (!getenv("IA_CLI"))
        SKIP("IA_CLI is not set");
    use_scratch_cache();
    const char *model = scratch_path("changed"), *repo = scratch_path("repo-changed");
    char cid[IA_CID_MAX_STRING], orig[4096];
    if (!copy_fixture(BERT, model) || !add(repo, model, true, 0, cid))
        return;
    snprintf(orig, sizeof orig, "%s/model.safetensors", model);
    char *path = NULL;
    CHECK_OK(ia_model_source_resolve(cid, repo, &path, NULL)); /* the entry exists now */
    free(path);

    /* the same size and modification time: only re-hashing can tell */
    CHECK(corrupt_keeping_mtime(orig, 100000));
    CHECK_ERR(ia_model_source_resolve(cid, repo, &path, NULL), IA_EIO, orig);
    CHECK(strstr(ia_error_message(), "changed since it was added"));
    CHECK(strstr(ia_error_message(), "offset 98304")); /* the 4 KiB leaf holding the byte */
    CHECK(path == NULL);
    run_result r = RUN("embed", "--model", cid, "--repo", repo, sentence);
    CHECK_MSG(r.status == 1 && r.out[0] == '\0' && strstr(r.err, orig) &&
                  strstr(r.err, "changed since it was added"),
              "exit %d, stdout %.40s, stderr %s", r.status, r.out, r.err);
    run_free(&r);

    /* a size change is caught before any hashing */
    FILE *f = fopen(orig, "ab");
    CHECK(f && fputc(0, f) != EOF);
    if (f)
        fclose(f);
    CHECK_ERR(ia_model_source_resolve(cid, repo, &path, NULL), IA_EIO,
              "changed since it was added");
}

TEST(errors_name_the_argument) {
    const char *repo = scratch_path("repo-empty");
    char text[IA_CID_MAX_STRING], *path = NULL;
    static const char absent[] = "never added";
    ia_cid missing;
    ia_cid_of_block(1, IA_CODEC_RAW, absent, sizeof absent - 1, &missing);
    CHECK_OK(ia_cid_format(&missing, IA_BASE32, text, sizeof text));
    CHECK_ERR(ia_model_source_resolve(text, repo, &path, NULL), IA_ENOTFOUND, text);
    CHECK(strstr(ia_error_message(), "not in the local store") && strstr(ia_error_message(), repo));
    CHECK_ERR(ia_model_source_resolve("no/such/model", repo, &path, NULL), IA_ENOTFOUND,
              "no/such/model: no such file or directory");
    CHECK(!ia_model_source_is_cid("no/such/model") && ia_model_source_is_cid(text));
    CHECK(path == NULL);
    if (getenv("IA_CLI")) {
        run_result r = RUN("embed", "--model", text, "--repo", repo, sentence);
        CHECK_MSG(r.status == 1 && strstr(r.err, text) && strstr(r.err, "not in the local store"),
                  "exit %d, stderr %s", r.status, r.err);
        run_free(&r);
    }
}

TEST(sub_paths_and_gguf_files) {
    if (!getenv("IA_CLI"))
        SKIP("IA_CLI is not set");
    use_scratch_cache();
    const char *tree = scratch_path("tree"), *repo = scratch_path("repo-tree");
    char cid[IA_CID_MAX_STRING], arg[IA_CID_MAX_STRING + 64], gguf[4096];
    CHECK(mkdir(tree, 0755) == 0);
    snprintf(gguf, sizeof gguf, "%s/bert.gguf", tree);
    if (!copy_fixture(BERT, scratch_path("tree/bert")) || !copy_fixture(BERT_GGUF, gguf) ||
        !add(repo, tree, true, 1, cid))
        return;
    char *path = NULL;
    ia_model_source_info info;

    /* /ipfs/CID/sub: the model directory inside, in place */
    snprintf(arg, sizeof arg, "/ipfs/%s/bert", cid);
    CHECK_OK(ia_model_source_resolve(arg, repo, &path, &info));
    CHECK(path && info.files_in_place == 10 &&
          is_link_to(path, "model.safetensors", scratch_path("tree/bert/model.safetensors")));
    free(path);
    char *by_path = embed_out(scratch_path("tree/bert"), NULL), *by_cid = embed_out(arg, repo);
    CHECK(by_path[0] == '[' && strcmp(by_path, by_cid) == 0);
    free(by_path);
    free(by_cid);

    /* CID/file.gguf: a GGUF file CID, in place, behind model.gguf */
    snprintf(arg, sizeof arg, "%s/bert.gguf", cid);
    CHECK_OK(ia_model_source_resolve(arg, repo, &path, &info));
    CHECK(path && info.files_in_place == 1 && strstr(path, "/model.gguf"));
    if (path) {
        char real_p[PATH_MAX], real_o[PATH_MAX];
        CHECK(realpath(path, real_p) && realpath(gguf, real_o) && strcmp(real_p, real_o) == 0);
    }
    free(path);
    by_path = embed_out(gguf, NULL), by_cid = embed_out(arg, repo);
    CHECK(by_path[0] == '[' && strcmp(by_path, by_cid) == 0);
    free(by_path);
    free(by_cid);

    /* a file CID that is not GGUF */
    snprintf(arg, sizeof arg, "%s/bert/config.json", cid);
    CHECK_ERR(ia_model_source_resolve(arg, repo, &path, NULL), IA_EUNSUPPORTED, "GGUF");

    /* the GGUF added by copy: exported as a regular file */
    char copy_cid[IA_CID_MAX_STRING];
    const char *repo2 = scratch_path("repo-gguf-copy");
    if (!add(repo2, gguf, false, 0, copy_cid))
        return;
    CHECK_OK(ia_model_source_resolve(copy_cid, repo2, &path, &info));
    CHECK(path && info.files_copied == 1 && info.files_in_place == 0);
    if (path) {
        struct stat l;
        CHECK(lstat(path, &l) == 0 && S_ISREG(l.st_mode) && l.st_size == file_size(gguf));
    }
    free(path);
}

TEST(repeated_leaves_still_load_in_place) {
    use_scratch_cache();
    /* "GGUF" then zeros: most 4 KiB leaves are one block with one reference */
    const char *file = scratch_path("zeros.gguf"), *repo = scratch_path("repo-zeros");
    FILE *f = fopen(file, "wb");
    CHECK(f != NULL);
    if (!f)
        return;
    fputs("GGUF", f);
    for (int i = 0; i < 64 * 1024; i++)
        fputc(0, f);
    fclose(f);
    char cid[IA_CID_MAX_STRING], *path = NULL;
    if (!add(repo, file, true, 1, cid))
        return;
    ia_model_source_info info;
    CHECK_OK(ia_model_source_resolve(cid, repo, &path, &info));
    CHECK(path && info.files_in_place == 1 && info.bytes_verified == 4 + 64 * 1024);
    free(path);
    /* a changed zero leaf (size and time kept) is caught where the file holds it */
    CHECK(corrupt_keeping_mtime(file, 40000));
    CHECK_ERR(ia_model_source_resolve(cid, repo, &path, NULL), IA_EIO, "offset 36864");
}

TEST(mixed_entry_links_and_copies) {
    if (!getenv("IA_CLI"))
        SKIP("IA_CLI is not set");
    use_scratch_cache();
    /* the directory by copy, then its weights alone by reference: the same
     * leaves, so the weights load in place and the rest is exported */
    const char *model = scratch_path("mixed"), *repo = scratch_path("repo-mixed");
    char cid[IA_CID_MAX_STRING], file_cid[IA_CID_MAX_STRING], orig[4096];
    if (!copy_fixture(BERT, model) || !add(repo, model, false, 1, cid))
        return;
    snprintf(orig, sizeof orig, "%s/model.safetensors", model);
    char *path = NULL;
    ia_model_source_info info;
    CHECK_OK(ia_model_source_resolve(cid, repo, &path, &info));
    CHECK(info.files_in_place == 0 && info.files_copied == 10);
    free(path);
    if (!add(repo, orig, true, 1, file_cid))
        return;
    CHECK_OK(ia_model_source_resolve(cid, repo, &path, &info));
    CHECK(path && info.exported && info.files_in_place == 1 && info.files_copied == 9);
    if (path) {
        CHECK(is_link_to(path, "model.safetensors", orig));
        CHECK(is_regular(path, "config.json", file_size(scratch_path("mixed/config.json"))));
    }
    char *by_path = embed_out(model, NULL), *by_cid = embed_out(cid, repo);
    CHECK(by_path[0] == '[' && strcmp(by_path, by_cid) == 0);
    free(by_path);
    free(by_cid);
    free(path);
}
