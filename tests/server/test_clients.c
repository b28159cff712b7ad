/*
 * The server against the clients people use: tests/server/clients_check.py
 * drives an in-process server (tiny-bert and qwen2, API key sk-test) with the
 * real `openai` and `ollama` Python packages: model lists, embeddings (float
 * and the SDK's default base64) equal bit for bit to the C embedder's,
 * streamed chat equal to plain chat (greedy and seeded) with usage, Ollama
 * generate/chat streams and timings, and the errors the SDKs raise for an
 * unknown model and a wrong key. IA_TEST_PYTHON names a python3 with the
 * packages (scripts/test-python.sh makes one); without it, or when it cannot
 * import them, the case skips saying why.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ia/runtime.h"
#include "server_util.h"

/* Texts of more than 4 tokens together: see test_embed.c on the kernels'
 * matrix-vector path; in one batch these are the server's exact bits. */
static const char *texts[] = {"hello world, this is a test", "x", "The quick brown fox jumps"};

static bool write_reference(const char *path) {
    ia_embedder_options o = ia_embedder_options_default();
    o.n_threads = 1;
    ia_embedder *emb = NULL;
    CHECK_OK(ia_embedder_load(test_source_path("tests/fixtures/models/tiny-bert"), &o, &emb));
    if (!emb)
        return false;
    size_t dim = ia_embedder_dim(emb), n = sizeof texts / sizeof texts[0];
    float *v = malloc(n * dim * sizeof(float));
    CHECK_OK(ia_embedder_embed(emb, texts, NULL, n, v));
    json_t *vecs = json_array(), *ts = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *row = json_array();
        for (size_t k = 0; k < dim; k++)
            json_array_append_new(row, json_real((double)v[i * dim + k]));
        json_array_append_new(vecs, row);
        json_array_append_new(ts, json_string(texts[i]));
    }
    json_t *doc = json_pack("{s:o, s:o}", "texts", ts, "vectors", vecs);
    bool ok = json_dump_file(doc, path, JSON_COMPACT) == 0;
    json_decref(doc);
    free(v);
    ia_embedder_free(emb);
    return ok;
}

TEST(openai_and_ollama_python_clients) {
    const char *py = getenv("IA_TEST_PYTHON");
    if (!py || !*py)
        SKIP("IA_TEST_PYTHON is not set (make test sets it from scripts/test-python.sh)");
    char check[4096];
    snprintf(check, sizeof check, "%s -c 'import openai, ollama' >/dev/null 2>&1", py);
    if (system(check) != 0)
        SKIP("%s cannot import openai and ollama (scripts/test-python.sh installs them)", py);
    char ref[] = "/tmp/ia_serve_clients_XXXXXX";
    int fd = mkstemp(ref);
    CHECK(fd >= 0);
    close(fd);
    if (!write_reference(ref)) {
        unlink(ref);
        return;
    }
    const char *models[] = {test_source_path("tests/fixtures/models/tiny-bert"),
                            test_source_path("tests/fixtures/decoders/qwen2")};
    const char *keys[] = {"sk-test"};
    ia_server_options o = ia_server_options_default();
    o.api_keys = keys;
    o.n_api_keys = 1;
    ia_server *srv = start_server(models, 2, &o);
    if (!srv) {
        unlink(ref);
        return;
    }
    char port[16];
    snprintf(port, sizeof port, "%u", (unsigned)ia_server_port(srv));
    pid_t pid = fork();
    if (pid == 0) {
        execl(py, py, test_source_path("tests/server/clients_check.py"), port, ref, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    ia_server_stop(srv);
    unlink(ref);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
        SKIP("the client packages could not be imported");
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "clients_check.py exit status %d",
              WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}
