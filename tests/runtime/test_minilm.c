/*
 * Real weights: all-MiniLM-L6-v2 (fetched by scripts/fetch-default-model.sh,
 * passed in IA_DEFAULT_MODEL by `make test`) against sentence-transformers'
 * own embeddings of tests/fixtures/minilm/sentences.txt (made by
 * tools/make_minilm_reference.py). Every sentence: cosine >= 0.99999 in f32,
 * >= 0.999 in bf16. Under the sanitizers (IA_TEST_SANITIZED) every fourth
 * sentence is checked, to keep the instrumented run short.
 */
#include <stdio.h>

#include "ia/runtime.h"
#include "test.h"

typedef struct corpus {
    char *buf;
    const char **lines;
    size_t n;
    float *ref;
} corpus;

static const char *model_dir(void) {
    static char path[4096];
    const char *env = getenv("IA_DEFAULT_MODEL");
    if (env && *env)
        return env;
    const char *cache = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (cache && *cache)
        snprintf(path, sizeof path, "%s/ipfs-accelerate/models/all-MiniLM-L6-v2", cache);
    else
        snprintf(path, sizeof path, "%s/.cache/ipfs-accelerate/models/all-MiniLM-L6-v2",
                 home ? home : "");
    return path;
}

static bool load_corpus(corpus *c, size_t dim, size_t stride) {
    size_t len;
    if (ia_file_read_all(test_source_path("tests/fixtures/minilm/sentences.txt"), 64 << 20, &c->buf,
                         &len) != IA_OK)
        return false;
    size_t cap = 1;
    for (size_t i = 0; i < len; i++)
        cap += c->buf[i] == '\n';
    c->lines = malloc(cap * sizeof *c->lines);
    size_t total = 0;
    const char **all = malloc(cap * sizeof *all);
    for (char *p = c->buf; *p;) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        all[total++] = p;
        p = nl ? nl + 1 : p + strlen(p);
    }
    float *ref_all = NULL;
    size_t ref_len;
    char *raw;
    if (ia_file_read_all(test_source_path("tests/fixtures/minilm/reference.f32"), 64 << 20, &raw,
                         &ref_len) != IA_OK ||
        ref_len != total * dim * sizeof(float)) {
        fprintf(stderr, "  reference.f32 does not hold %zu x %zu floats\n", total, dim);
        free(all);
        return false;
    }
    ref_all = (float *)raw;
    c->ref = malloc(total * dim * sizeof(float));
    c->n = 0;
    for (size_t i = 0; i < total; i += stride) {
        c->lines[c->n] = all[i];
        memcpy(c->ref + c->n * dim, ref_all + i * dim, dim * sizeof(float));
        c->n++;
    }
    free(raw);
    free(all);
    return true;
}

static void check_dtype(ia_dtype dtype, double min_cos) {
    const char *dir = model_dir();
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s/model.safetensors", dir);
    if (!ia_file_exists(cfg))
        SKIP("all-MiniLM-L6-v2 not found at %s (scripts/fetch-default-model.sh fetches it)", dir);
    ia_embedder_options opts = ia_embedder_options_default();
    opts.dtype = dtype;
    opts.n_threads = 2;
    ia_embedder *emb;
    CHECK_OK(ia_embedder_load(dir, &opts, &emb));
    if (!emb)
        return;
    size_t dim = ia_embedder_dim(emb);
    CHECK_EQ_INT(dim, 384);
    CHECK_EQ_INT(ia_embedder_max_length(emb), 256);
    corpus c = {0};
    const char *sanitized = getenv("IA_TEST_SANITIZED");
    CHECK(load_corpus(&c, dim, sanitized && *sanitized ? 4 : 1));
    CHECK(c.n >= (sanitized && *sanitized ? 250u : 1000u));
    float *out = malloc(c.n * dim * sizeof(float));
    CHECK_OK(ia_embedder_embed(emb, c.lines, NULL, c.n, out));
    double worst = 2, sum = 0;
    size_t worst_i = 0;
    for (size_t i = 0; i < c.n; i++) {
        double dot = 0, na = 0, nb = 0;
        for (size_t k = 0; k < dim; k++) {
            dot += (double)out[i * dim + k] * c.ref[i * dim + k];
            na += (double)out[i * dim + k] * out[i * dim + k];
            nb += (double)c.ref[i * dim + k] * c.ref[i * dim + k];
        }
        double cos = dot / sqrt(na * nb);
        sum += cos;
        if (!(cos >= worst)) {
            worst = cos;
            worst_i = i;
        }
    }
    printf("  %s: %zu sentences, min cosine %.7f (sentence %zu), mean %.7f\n", ia_dtype_name(dtype),
           c.n, worst, worst_i, sum / (double)c.n);
    CHECK_MSG(worst >= min_cos, "%s min cosine %.7f < %g at sentence %zu: %s", ia_dtype_name(dtype),
              worst, min_cos, worst_i, c.lines[worst_i]);
    free(out);
    free(c.buf);
    free(c.lines);
    free(c.ref);
    ia_embedder_free(emb);
}

TEST(minilm_f32_matches_sentence_transformers) { check_dtype(IA_DTYPE_F32, 0.99999); }
TEST(minilm_bf16_matches_sentence_transformers) { check_dtype(IA_DTYPE_BF16, 0.999); }
