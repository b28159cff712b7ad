/*
 * The generic encoder against transformers and sentence-transformers on tiny
 * random-weight models, one per architecture row (tests/fixtures/models,
 * made by tools/make_model_fixtures.py): last hidden states one text at a
 * time and packed into one batch, sentence embeddings from ids and (for
 * WordPiece tokenizers) from text, a token-type pair, f16/bf16 storage, and
 * every CPU kernel variant this machine can run. Tolerance: 1e-4 max abs.
 */
#include <jansson.h>

#include "ia/runtime.h"
#include "test.h"

#define TOL 1e-4

static const char *const fixtures[] = {
    "tiny-bert",        "tiny-bert-f16",   "tiny-bert-bf16", "tiny-roberta",
    "tiny-xlm-roberta", "tiny-distilbert", "tiny-mpnet",
};
static const char *const variants[] = {"generic", "avx2", "avx512"};

typedef struct fixture {
    json_t *root;
    size_t n;
    int32_t *ids, *types, *starts; /* all texts packed */
    const char **texts;
} fixture;

static bool load_fixture(const char *dir, fixture *f) {
    char path[4096];
    snprintf(path, sizeof path, "%s/expected.json", dir);
    json_error_t err;
    f->root = json_load_file(path, 0, &err);
    if (!f->root) {
        fprintf(stderr, "  cannot read %s: %s\n", path, err.text);
        return false;
    }
    json_t *ids = json_object_get(f->root, "input_ids");
    json_t *types = json_object_get(f->root, "token_type_ids");
    json_t *texts = json_object_get(f->root, "texts");
    f->n = json_array_size(ids);
    size_t total = 0;
    for (size_t i = 0; i < f->n; i++)
        total += json_array_size(json_array_get(ids, i));
    f->ids = malloc(total * sizeof(int32_t));
    f->types = malloc(total * sizeof(int32_t));
    f->starts = malloc((f->n + 1) * sizeof(int32_t));
    f->texts = malloc(f->n * sizeof(char *));
    f->starts[0] = 0;
    for (size_t i = 0; i < f->n; i++) {
        json_t *row = json_array_get(ids, i), *trow = json_array_get(types, i);
        size_t len = json_array_size(row);
        for (size_t t = 0; t < len; t++) {
            f->ids[f->starts[i] + t] = (int32_t)json_integer_value(json_array_get(row, t));
            f->types[f->starts[i] + t] =
                trow ? (int32_t)json_integer_value(json_array_get(trow, t)) : 0;
        }
        f->starts[i + 1] = f->starts[i] + (int32_t)len;
        f->texts[i] = json_string_value(json_array_get(texts, i));
    }
    return true;
}

static void free_fixture(fixture *f) {
    json_decref(f->root);
    free(f->ids);
    free(f->types);
    free(f->starts);
    free(f->texts);
}

/* Largest |got - want| over a JSON matrix (rows of floats). */
static double max_diff_rows(const float *got, size_t dim, json_t *rows) {
    double worst = 0;
    for (size_t r = 0; r < json_array_size(rows); r++) {
        json_t *row = json_array_get(rows, r);
        for (size_t c = 0; c < dim; c++) {
            double d = fabs(got[r * dim + c] - json_real_value(json_array_get(row, c)));
            if (!(d <= worst))
                worst = d;
        }
    }
    return worst;
}

static void check_fixture(const char *name, const char *variant) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", test_source_path("tests/fixtures/models/"));
    strncat(dir, name, sizeof dir - strlen(dir) - 1);
    fixture f;
    if (!load_fixture(dir, &f)) {
        CHECK(false);
        return;
    }
    ia_embedder_options opts = ia_embedder_options_default();
    opts.backend = ia_backend_cpu_variant(variant);
    opts.n_threads = 2;
    opts.skip_tokenizer = true;
    ia_embedder *emb = NULL;
    ia_status st = ia_embedder_load(dir, &opts, &emb);
    CHECK_MSG(st == IA_OK, "%s: %s", name, ia_error_message());
    if (st != IA_OK) {
        free_fixture(&f);
        return;
    }
    size_t dim = ia_embedder_dim(emb);
    const ia_encoder *enc = ia_embedder_encoder(emb);
    size_t total = (size_t)f.starts[f.n];
    float *hidden = malloc(total * dim * sizeof(float));
    ia_arena *arena = ia_arena_create(1 << 16);
    ia_threadpool *pool = ia_threadpool_create(2);
    json_t *want_hidden = json_object_get(f.root, "last_hidden_state");

    /* one text at a time */
    for (size_t i = 0; i < f.n; i++) {
        int32_t starts[2] = {0, f.starts[i + 1] - f.starts[i]};
        ia_arena_reset(arena);
        CHECK_OK(ia_encoder_forward(enc, f.ids + f.starts[i], f.types + f.starts[i], starts, 1,
                                    hidden, arena, pool));
        double d = max_diff_rows(hidden, dim, json_array_get(want_hidden, i));
        CHECK_MSG(d <= TOL, "%s/%s text %zu: hidden max diff %g", name, variant, i, d);
    }
    /* all texts packed into one batch */
    ia_arena_reset(arena);
    CHECK_OK(ia_encoder_forward(enc, f.ids, f.types, f.starts, f.n, hidden, arena, pool));
    for (size_t i = 0; i < f.n; i++) {
        double d =
            max_diff_rows(hidden + (size_t)f.starts[i] * dim, dim, json_array_get(want_hidden, i));
        CHECK_MSG(d <= TOL, "%s/%s packed text %zu: hidden max diff %g", name, variant, i, d);
    }
    /* sentence embeddings from ids */
    float *pooled = malloc(f.n * dim * sizeof(float));
    CHECK_OK(ia_embedder_embed_ids(emb, f.ids, f.types, f.starts, f.n, pooled));
    double d = max_diff_rows(pooled, dim, json_object_get(f.root, "sentence_embedding"));
    CHECK_MSG(d <= TOL, "%s/%s: sentence embedding max diff %g", name, variant, d);

    /* a pair with token types */
    json_t *pair = json_object_get(f.root, "pair");
    if (pair) {
        json_t *pids = json_object_get(pair, "input_ids"),
               *ptypes = json_object_get(pair, "token_type_ids");
        size_t len = json_array_size(pids);
        int32_t *ids = malloc(len * sizeof(int32_t)), *types = malloc(len * sizeof(int32_t));
        for (size_t t = 0; t < len; t++) {
            ids[t] = (int32_t)json_integer_value(json_array_get(pids, t));
            types[t] = (int32_t)json_integer_value(json_array_get(ptypes, t));
        }
        int32_t starts[2] = {0, (int32_t)len};
        ia_arena_reset(arena);
        CHECK_OK(ia_encoder_forward(enc, ids, types, starts, 1, hidden, arena, pool));
        d = max_diff_rows(hidden, dim, json_object_get(pair, "last_hidden_state"));
        CHECK_MSG(d <= TOL, "%s/%s pair: hidden max diff %g", name, variant, d);
        free(ids);
        free(types);
    }
    ia_embedder_free(emb);

    /* from text, where this build has the tokenizer type */
    opts.skip_tokenizer = false;
    st = ia_embedder_load(dir, &opts, &emb);
    if (st == IA_OK) {
        CHECK_OK(ia_embedder_embed(emb, f.texts, NULL, f.n, pooled));
        d = max_diff_rows(pooled, dim, json_object_get(f.root, "sentence_embedding"));
        CHECK_MSG(d <= TOL, "%s/%s: sentence embedding from text max diff %g", name, variant, d);
        ia_embedder_free(emb);
    } else {
        CHECK_MSG(st == IA_EUNSUPPORTED, "%s: %s", name, ia_error_message());
    }
    free(pooled);
    free(hidden);
    ia_arena_destroy(arena);
    ia_threadpool_destroy(pool);
    free_fixture(&f);
}

static void check_all(const char *variant) {
    if (!ia_cpu_has_variant(variant) || !ia_backend_cpu_variant(variant))
        SKIP("this CPU cannot run the %s kernels", variant);
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++)
        check_fixture(fixtures[i], variant);
}

TEST(fixtures_generic) { check_all(variants[0]); }
TEST(fixtures_avx2) { check_all(variants[1]); }
TEST(fixtures_avx512) { check_all(variants[2]); }

TEST(bf16_compute_stays_close) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", test_source_path("tests/fixtures/models/tiny-bert"));
    fixture f;
    CHECK(load_fixture(dir, &f));
    ia_embedder_options opts = ia_embedder_options_default();
    opts.dtype = IA_DTYPE_BF16;
    opts.skip_tokenizer = true;
    ia_embedder *emb;
    CHECK_OK(ia_embedder_load(dir, &opts, &emb));
    size_t dim = ia_embedder_dim(emb);
    float *pooled = malloc(f.n * dim * sizeof(float));
    CHECK_OK(ia_embedder_embed_ids(emb, f.ids, f.types, f.starts, f.n, pooled));
    json_t *want = json_object_get(f.root, "sentence_embedding");
    for (size_t i = 0; i < f.n; i++) {
        double dot = 0, na = 0, nb = 0;
        for (size_t c = 0; c < dim; c++) {
            double w = json_real_value(json_array_get(json_array_get(want, i), c));
            dot += w * pooled[i * dim + c];
            na += w * w;
            nb += (double)pooled[i * dim + c] * pooled[i * dim + c];
        }
        double cos = dot / sqrt(na * nb);
        CHECK_MSG(cos >= 0.999, "bf16 text %zu cosine %.6f", i, cos);
    }
    free(pooled);
    ia_embedder_free(emb);
    free_fixture(&f);
}

TEST(bad_model_directories) {
    ia_embedder *emb;
    ia_embedder_options opts = ia_embedder_options_default();
    CHECK_ERR(ia_embedder_load("/nonexistent/model", &opts, &emb), IA_ENOTFOUND,
              "/nonexistent/model");
    opts.skip_tokenizer = true;
    CHECK_ERR(ia_embedder_load("/nonexistent/model", &opts, &emb), IA_ENOTFOUND,
              "/nonexistent/model/config.json");
}

TEST(ids_are_checked) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", test_source_path("tests/fixtures/models/tiny-bert"));
    ia_embedder_options opts = ia_embedder_options_default();
    opts.skip_tokenizer = true;
    ia_embedder *emb;
    CHECK_OK(ia_embedder_load(dir, &opts, &emb));
    float out[64];
    int32_t ids[3] = {2, 999999, 3}, starts[2] = {0, 3};
    CHECK_ERR(ia_embedder_embed_ids(emb, ids, NULL, starts, 1, out), IA_ERANGE,
              "outside the vocabulary");
    int32_t many[100] = {0}, long_starts[2] = {0, 100};
    CHECK_ERR(ia_embedder_embed_ids(emb, many, NULL, long_starts, 1, out), IA_ERANGE, "tokens");
    ia_embedder_free(emb);
}
