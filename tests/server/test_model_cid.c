/*
 * server/model_cid: `serve --model CID` for models in the local store.
 *
 * The tiny BERT directory and the tiny LLaMA GGUF are added to a temporary
 * repo with the library's importer (ia_add_path); the CLI then serves them
 * by CID (the directory's CID under its own id, the file's as NAME=CID) with
 * XDG_CACHE_HOME in the scratch directory. Embeddings must equal, bit for
 * bit, those of a server started on the fixture paths, and a greedy
 * completion the same text. The export lands in the cache keyed by CIDv1
 * with nothing temporary left over; a second start reuses it (same inode);
 * a truncated cache entry is exported again (and a dead export's temporary
 * directory removed); a CID missing from the store
 * stops the server with an error that says so.
 *
 * A model directory added by reference (the CLI's `add -r -Q --nocopy`, as
 * `make run` adds the default model, served as NAME=CID as scripts/demo.sh
 * does) answers the same embeddings while its cache entry holds symlinks to
 * the original files (no copy of the weights); after the weights change in
 * place (same size and modification time) serve refuses to start, naming
 * the file.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ia/ipfs.h"
#include "server_util.h"
#include "test_cli.h"
#include "test_fs.h"

#define BERT "tests/fixtures/models/tiny-bert"
#define LLAMA_GGUF "tests/fixtures/decoders/llama/model.gguf"

static const char embed_input[] = "content addressed models load the same";

/* A greedy completion's text (malloc'd). */
static char *completion(uint16_t port, const char *model) {
    json_t *b = json_pack("{s:s, s:s, s:i, s:f}", "model", model, "prompt", "once upon a time",
                          "max_tokens", 8, "temperature", 0.0);
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    http_resp r = http_post(port, "/v1/completions", body);
    free(body);
    CHECK_MSG(r.status == 200, "completion for %s: %ld %s", model, r.status, r.body ? r.body : "");
    json_t *j = r.status == 200 ? json_loadb(r.body, r.len, 0, NULL) : NULL;
    const char *t = json_string_value(
        json_object_get(json_array_get(json_object_get(j, "choices"), 0), "text"));
    char *out = strdup(t ? t : "(none)");
    json_decref(j);
    http_free(&r);
    return out;
}

static void cid_v1_text(const ia_cid *cid, char *buf) {
    ia_cid v1;
    CHECK_OK(ia_cid_convert(cid, 1, &v1));
    CHECK_OK(ia_cid_format(&v1, IA_BASE32, buf, IA_CID_MAX_STRING));
}

static bool has_temporaries(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    bool found = false;
    while (d && (e = readdir(d)))
        found |= strstr(e->d_name, ".tmp-") != NULL;
    if (d)
        closedir(d);
    return found;
}

TEST(serve_models_by_cid) {
    if (!getenv("IA_CLI"))
        SKIP("IA_CLI is not set");
    char repo[4096], cache[4096], cid_dir[4200];
    snprintf(repo, sizeof repo, "%s", scratch_path("repo"));
    snprintf(cache, sizeof cache, "%s", scratch_path("cache"));
    snprintf(cid_dir, sizeof cid_dir, "%s/ipfs-accelerate/cid", cache);
    setenv("XDG_CACHE_HOME", cache, 1);

    /* the store: the model directory and the GGUF file */
    ia_blockstore *bs = NULL;
    ia_cid dir_cid, file_cid, missing;
    CHECK_OK(ia_blockstore_open(repo, &bs));
    if (!bs)
        return;
    ia_add_options ao = ia_add_options_default();
    CHECK_OK(ia_add_path(bs, test_source_path(BERT), &ao, NULL, NULL, &dir_cid));
    CHECK_OK(ia_add_path(bs, test_source_path(LLAMA_GGUF), &ao, NULL, NULL, &file_cid));
    ia_blockstore_close(bs);
    static const char absent[] = "a block that was never added";
    ia_cid_of_block(1, IA_CODEC_RAW, absent, sizeof absent - 1, &missing);
    char dir_text[IA_CID_MAX_STRING], file_text[IA_CID_MAX_STRING], missing_text[IA_CID_MAX_STRING];
    CHECK_OK(ia_cid_format(&dir_cid, IA_BASE58BTC, dir_text, sizeof dir_text));
    CHECK_OK(ia_cid_format(&file_cid, IA_BASE58BTC, file_text, sizeof file_text));
    CHECK_OK(ia_cid_format(&missing, IA_BASE32, missing_text, sizeof missing_text));

    /* the reference: the same models served from their paths */
    const char *paths[] = {test_source_path(BERT), test_source_path(LLAMA_GGUF)};
    ia_server *ref = start_server(paths, 2, NULL);
    if (!ref)
        return;
    size_t dim_ref = 0;
    float *vec_ref = http_embedding(ia_server_port(ref), "tiny-bert", embed_input, &dim_ref);
    char *text_ref = completion(ia_server_port(ref), "model");
    ia_server_stop(ref);

    char named[IA_CID_MAX_STRING + 8];
    snprintf(named, sizeof named, "mini=%s", file_text);
    const char *args[] = {"--port",  "0",      "--threads", "1",   "--repo", repo,
                          "--model", dir_text, "--model",   named, NULL};
    served s;
    if (serve_start(&s, args)) {
        http_resp m = http_get(s.port, "/v1/models");
        json_t *j = http_json(&m);
        json_t *data = json_object_get(j, "data");
        CHECK_EQ_INT(json_array_size(data), 2);
        const char *id0 = json_string_value(json_object_get(json_array_get(data, 0), "id"));
        const char *id1 = json_string_value(json_object_get(json_array_get(data, 1), "id"));
        CHECK_MSG(id0 && strcmp(id0, dir_text) == 0, "first id %s", id0 ? id0 : "(none)");
        CHECK_MSG(id1 && strcmp(id1, "mini") == 0, "second id %s", id1 ? id1 : "(none)");
        json_decref(j);
        http_free(&m);
        size_t dim = 0;
        float *vec = http_embedding(s.port, dir_text, embed_input, &dim);
        CHECK(vec && vec_ref && dim == dim_ref && memcmp(vec, vec_ref, dim * sizeof(float)) == 0);
        free(vec);
        char *text = completion(s.port, "mini");
        CHECK_MSG(strcmp(text, text_ref) == 0, "by CID '%s', by path '%s'", text, text_ref);
        free(text);
        serve_stop(&s);
    }

    /* the cache: keyed by CIDv1, whole, nothing temporary left */
    char key[IA_CID_MAX_STRING], cfg[8192], gguf[8192];
    cid_v1_text(&dir_cid, key);
    snprintf(cfg, sizeof cfg, "%s/%s/config.json", cid_dir, key);
    cid_v1_text(&file_cid, key);
    snprintf(gguf, sizeof gguf, "%s/%s/model.gguf", cid_dir, key);
    struct stat a, b, g, src;
    CHECK_MSG(stat(cfg, &a) == 0, "%s missing", cfg);
    CHECK_MSG(stat(gguf, &g) == 0, "%s missing", gguf);
    CHECK(stat(test_source_path(LLAMA_GGUF), &src) == 0 && g.st_size == src.st_size);
    CHECK(!has_temporaries(cid_dir));

    /* a second start reuses the export; a cut-short file is exported again,
     * and a killed export's leftover (no such process) is cleared */
    CHECK(truncate(gguf, 100) == 0);
    char stale[8192];
    snprintf(stale, sizeof stale, "%s/%s.tmp-999999999", cid_dir, key);
    CHECK(mkdir(stale, 0755) == 0);
    if (serve_start(&s, args)) {
        char *text = completion(s.port, "mini");
        CHECK_MSG(strcmp(text, text_ref) == 0, "after re-export '%s', by path '%s'", text,
                  text_ref);
        free(text);
        serve_stop(&s);
    }
    CHECK(stat(cfg, &b) == 0 && b.st_ino == a.st_ino && b.st_mtime == a.st_mtime);
    CHECK(stat(gguf, &g) == 0 && g.st_size == src.st_size);
    CHECK(!has_temporaries(cid_dir));

    /* a CID the store does not have */
    run_result r = RUN("serve", "--port", "0", "--repo", repo, "--model", missing_text);
    CHECK_MSG(r.status == 1 && strstr(r.err, "not in the local store") &&
                  strstr(r.err, missing_text),
              "exit %d, stderr: %s", r.status, r.err);
    run_free(&r);
    free(vec_ref);
    free(text_ref);
    unsetenv("XDG_CACHE_HOME");
}

/* A directory added by reference: mapped in place, refused once changed. */
TEST(serve_nocopy_model_by_cid) {
    if (!getenv("IA_CLI"))
        SKIP("IA_CLI is not set");
    const char *repo = scratch_path("repo"), *model = scratch_path("tiny-bert");
    setenv("XDG_CACHE_HOME", scratch_path("cache"), 1);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", test_source_path(BERT), model);
    CHECK(system(cmd) == 0);

    run_result a = RUN("add", "-r", "-Q", "--nocopy", "--repo", repo, model);
    EXPECT(a, 0);
    char cid[IA_CID_MAX_STRING] = "";
    sscanf(a.out, "%255s", cid);
    run_free(&a);
    ia_cid parsed;
    CHECK_OK(ia_cid_parse(cid, &parsed));

    const char *paths[] = {model};
    ia_server *ref = start_server(paths, 1, NULL);
    if (!ref)
        return;
    size_t dim_ref = 0;
    float *vec_ref = http_embedding(ia_server_port(ref), "tiny-bert", embed_input, &dim_ref);
    ia_server_stop(ref);

    char named[IA_CID_MAX_STRING + 16];
    snprintf(named, sizeof named, "tiny-bert=%s", cid);
    const char *args[] = {"--port", "0", "--threads", "1", "--repo", repo, "--model", named, NULL};
    served s;
    if (serve_start(&s, args)) {
        size_t dim = 0;
        float *vec = http_embedding(s.port, "tiny-bert", embed_input, &dim);
        CHECK(vec && vec_ref && dim == dim_ref && memcmp(vec, vec_ref, dim * sizeof(float)) == 0);
        free(vec);
        serve_stop(&s);
    }

    /* the weights the server mapped are the original file */
    ia_cid v1;
    char key[IA_CID_MAX_STRING], link[8192], orig[4096];
    CHECK_OK(ia_cid_convert(&parsed, 1, &v1));
    CHECK_OK(ia_cid_format(&v1, IA_BASE32, key, sizeof key));
    snprintf(link, sizeof link, "%s/ipfs-accelerate/cid/%s/model.safetensors",
             scratch_path("cache"), key);
    snprintf(orig, sizeof orig, "%s/model.safetensors", model);
    struct stat l, x, y;
    CHECK_MSG(lstat(link, &l) == 0 && S_ISLNK(l.st_mode), "%s is not a symlink", link);
    CHECK(stat(link, &x) == 0 && stat(orig, &y) == 0 && x.st_ino == y.st_ino);

    /* changed in place, size and time kept: serve refuses, naming the file */
    FILE *f = fopen(orig, "r+b");
    CHECK(f && fseek(f, 5000, SEEK_SET) == 0);
    if (f) {
        int c = fgetc(f);
        fseek(f, 5000, SEEK_SET);
        fputc(c ^ 0xff, f);
        fclose(f);
    }
    struct timespec times[2] = {y.st_atim, y.st_mtim};
    CHECK(utimensat(AT_FDCWD, orig, times, 0) == 0);
    run_result r = RUN("serve", "--port", "0", "--repo", repo, "--model", named);
    CHECK_MSG(r.status == 1 && strstr(r.err, "changed since it was added") &&
                  strstr(r.err, "model.safetensors") && !strstr(r.out, "serving on"),
              "exit %d, stdout %s, stderr: %s", r.status, r.out, r.err);
    run_free(&r);
    free(vec_ref);
    unsetenv("XDG_CACHE_HOME");
}
