/*
 * BERT encoders as GGUF, against llama.cpp both ways (fixtures made by
 * tools/make_bert_gguf_fixtures.py in tests/fixtures/bert_gguf/):
 *   - tiny-bert converted by llama.cpp's convert_hf_to_gguf.py loads here
 *     and embeds like the safetensors directory it came from (1e-5), and
 *     like sentence-transformers (expected.json, 1e-4);
 *   - our converter writes that file again: every tensor byte for byte and
 *     every llama.cpp metadata key with the same value (general.name and
 *     general.size_label aside, which come from the model card);
 *   - our file, run by llama.cpp (libllama, recorded in
 *     llamacpp-embeddings.json): its tokenizer's ids are ours and its
 *     pooled embeddings ours within 2e-3 (llama.cpp's GELU is the tanh
 *     approximation, the checkpoint's the erf form);
 *   - with the real all-MiniLM-L6-v2 (IA_DEFAULT_MODEL; skipped without):
 *     a GGUF written with a recipe, or with a per-tensor mix covering all
 *     ten ggml weight types, embeds bit for bit like the directory with the
 *     same types applied at load; our q4_k_m file embeds as llama.cpp
 *     embedded it (recorded by the fixture tool), cosine >= 0.999;
 *   - bad input: a GGUF of another architecture, a causal BERT, a matrix
 *     whose blocks do not fit its rows.
 */
#include <jansson.h>
#include <math.h>
#include <unistd.h>

#include "ia/formats.h"
#include "ia/quant.h"
#include "ia/runtime.h"
#include "test.h"

#define DIR "tests/fixtures/bert_gguf/"
#define TINY "tests/fixtures/models/tiny-bert"

static json_t *load_json(const char *rel) {
    json_error_t err;
    json_t *j = json_load_file(test_source_path(rel), 0, &err);
    if (!j)
        fprintf(stderr, "  cannot read %s: %s\n", rel, err.text);
    return j;
}

/* The texts of a JSON array as a C array (borrowed strings). */
static const char **texts_of(json_t *arr, size_t *n) {
    *n = json_array_size(arr);
    const char **t = calloc(*n ? *n : 1, sizeof *t);
    for (size_t i = 0; i < *n; i++)
        t[i] = json_string_value(json_array_get(arr, i));
    return t;
}

static double max_diff(const float *a, const float *b, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= worst))
            worst = d;
    }
    return worst;
}

/* Embeds texts with `path`; out gets n * dim floats (malloc'd). */
static bool embed(const char *path, const ia_embedder_options *o, const char **texts, size_t n,
                  float **out, size_t *dim) {
    ia_embedder *e = NULL;
    *out = NULL;
    CHECK_OK(ia_embedder_load(path, o, &e));
    if (!e)
        return false;
    *dim = ia_embedder_dim(e);
    *out = malloc(n * *dim * sizeof(float));
    ia_status st = ia_embedder_embed(e, texts, NULL, n, *out);
    CHECK_OK(st);
    ia_embedder_free(e);
    return st == IA_OK;
}

TEST(llamacpp_file_embeds_like_safetensors) {
    json_t *exp = load_json(TINY "/expected.json");
    if (!exp)
        return;
    size_t n, dim = 0, dim2 = 0;
    const char **texts = texts_of(json_object_get(exp, "texts"), &n);
    ia_embedder_options o = ia_embedder_options_default();
    o.n_threads = 1;
    ia_embedder *dir = NULL;
    CHECK_OK(ia_embedder_load(test_source_path(TINY), &o, &dir));
    if (!dir)
        goto done;
    /* the directory's max_seq_length (GGUF keeps only the context length) */
    o.max_length = ia_embedder_max_length(dir);
    ia_embedder_free(dir);
    float *a = NULL, *b = NULL;
    if (embed(test_source_path(TINY), &o, texts, n, &a, &dim) &&
        embed(test_source_path(DIR "tiny-bert-llamacpp-f32.gguf"), &o, texts, n, &b, &dim2)) {
        CHECK_EQ_INT(dim, dim2);
        double d = max_diff(a, b, n * dim);
        CHECK_MSG(d <= 1e-5, "GGUF vs safetensors: max diff %g", d);
        json_t *want = json_object_get(exp, "sentence_embedding");
        double worst = 0;
        for (size_t i = 0; i < n; i++)
            for (size_t c = 0; c < dim; c++) {
                double e = fabs(b[i * dim + c] -
                                json_real_value(json_array_get(json_array_get(want, i), c)));
                worst = e > worst ? e : worst;
            }
        CHECK_MSG(worst <= 1e-4, "GGUF vs sentence-transformers: max diff %g", worst);
    }
    free(a);
    free(b);
done:
    free(texts);
    json_decref(exp);
}

/* A metadata value as text, for comparing two files' keys. */
static void value_str(const ia_gguf_value *v, char *buf, size_t cap) {
    int64_t i;
    double f;
    bool b;
    const char *s;
    size_t len;
    switch (ia_gguf_value_type(v)) {
    case IA_GGUF_STRING:
        ia_gguf_value_string(v, &s, &len);
        snprintf(buf, cap, "'%.*s'", (int)len, s);
        break;
    case IA_GGUF_BOOL:
        ia_gguf_value_bool(v, &b);
        snprintf(buf, cap, "%s", b ? "true" : "false");
        break;
    case IA_GGUF_FLOAT32:
    case IA_GGUF_FLOAT64:
        ia_gguf_value_f64(v, &f);
        snprintf(buf, cap, "%.9g", f);
        break;
    case IA_GGUF_ARRAY: {
        uint64_t count = ia_gguf_array_count(v);
        size_t off = (size_t)snprintf(buf, cap, "%llu:", (unsigned long long)count);
        for (uint64_t k = 0; k < count && off + 1 < cap; k++) {
            if (ia_gguf_array_string(v, k, &s, &len) == IA_OK)
                off += (size_t)snprintf(buf + off, cap - off, "%.*s|", (int)len, s);
            else if (ia_gguf_array_int(v, k, &i) == IA_OK)
                off += (size_t)snprintf(buf + off, cap - off, "%lld,", (long long)i);
        }
        break;
    }
    default:
        ia_gguf_value_i64(v, &i);
        snprintf(buf, cap, "%s %lld", ia_gguf_type_name(ia_gguf_value_type(v)), (long long)i);
        break;
    }
}

TEST(our_converter_writes_llamacpp_file) {
    char out[] = "/tmp/ia-test-bert-gguf-XXXXXX";
    int fd = mkstemp(out);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    close(fd);
    ia_convert_options co = {.type = IA_DTYPE_F32};
    CHECK_OK(ia_convert_to_gguf(test_source_path(TINY), out, &co));
    ia_gguf *ours = NULL, *theirs = NULL;
    CHECK_OK(ia_gguf_open(out, &ours));
    CHECK_OK(ia_gguf_open(test_source_path(DIR "tiny-bert-llamacpp-f32.gguf"), &theirs));
    if (!ours || !theirs)
        goto done;
    static char a[1 << 16], b[1 << 16];
    size_t compared = 0;
    for (size_t i = 0; i < ia_gguf_kv_count(theirs); i++) {
        const char *key = ia_gguf_kv_key(theirs, i);
        if (strcmp(key, "general.name") == 0 || strcmp(key, "general.size_label") == 0)
            continue;
        const ia_gguf_value *mine = ia_gguf_find(ours, key);
        CHECK_MSG(mine != NULL, "key %s is missing from our file", key);
        if (!mine)
            continue;
        CHECK_MSG(ia_gguf_value_type(mine) == ia_gguf_value_type(ia_gguf_kv_value(theirs, i)),
                  "key %s: type %s, llama.cpp's %s", key,
                  ia_gguf_type_name(ia_gguf_value_type(mine)),
                  ia_gguf_type_name(ia_gguf_value_type(ia_gguf_kv_value(theirs, i))));
        value_str(mine, a, sizeof a);
        value_str(ia_gguf_kv_value(theirs, i), b, sizeof b);
        CHECK_MSG(strcmp(a, b) == 0, "key %s: %.80s, llama.cpp's %.80s", key, a, b);
        compared++;
    }
    CHECK(compared >= 25);
    CHECK_EQ_INT(ia_gguf_tensor_count(ours), ia_gguf_tensor_count(theirs));
    for (size_t i = 0; i < ia_gguf_tensor_count(theirs); i++) {
        const ia_gguf_tensor *t = ia_gguf_tensor_at(theirs, i);
        const ia_gguf_tensor *m = ia_gguf_tensor_find(ours, t->name);
        CHECK_MSG(m && m->type == t->type && m->n_bytes == t->n_bytes && m->n_dims == t->n_dims &&
                      memcmp(m->data, t->data, t->n_bytes) == 0,
                  "tensor %s differs from llama.cpp's", t->name);
    }
done:
    ia_gguf_close(ours);
    ia_gguf_close(theirs);
    unlink(out);
}

TEST(llamacpp_runs_our_file) {
    json_t *rec = load_json(DIR "llamacpp-embeddings.json");
    if (!rec)
        return;
    size_t n, dim = 0;
    const char **texts = texts_of(json_object_get(rec, "texts"), &n);
    json_t *lc = json_object_get(json_object_get(rec, "files"), "tiny-bert-ours-f32.gguf");
    const char *path = test_source_path(DIR "tiny-bert-ours-f32.gguf");
    ia_gguf *g = NULL;
    ia_tokenizer *tok = NULL;
    CHECK_OK(ia_gguf_open(path, &g));
    if (g)
        CHECK_OK(ia_tokenizer_from_gguf(g, &tok));
    ia_gguf_close(g);
    for (size_t i = 0; tok && i < n; i++) {
        ia_encoding e;
        ia_encode_options eo = ia_encode_options_default();
        CHECK_OK(ia_tokenizer_encode(tok, texts[i], strlen(texts[i]), NULL, 0, &eo, &e));
        json_t *want = json_array_get(json_object_get(lc, "ids"), i);
        bool same = e.len == json_array_size(want);
        for (size_t k = 0; same && k < e.len; k++)
            same = e.ids[k] == json_integer_value(json_array_get(want, k));
        CHECK_MSG(same, "text %zu: our ids differ from llama.cpp's", i);
        ia_encoding_free(&e);
    }
    ia_tokenizer_free(tok);
    ia_embedder_options o = ia_embedder_options_default();
    o.n_threads = 1;
    o.normalize = 0; /* llama_get_embeddings_seq is pooled, not normalised */
    float *got = NULL;
    if (embed(path, &o, texts, n, &got, &dim)) {
        double worst = 0;
        json_t *want = json_object_get(lc, "embeddings");
        for (size_t i = 0; i < n; i++)
            for (size_t c = 0; c < dim; c++) {
                double e = fabs(got[i * dim + c] -
                                json_real_value(json_array_get(json_array_get(want, i), c)));
                worst = e > worst ? e : worst;
            }
        fprintf(stderr, "  ours vs llama.cpp on our file: max diff %.3g\n", worst);
        CHECK_MSG(worst <= 2e-3, "llama.cpp's embeddings of our file: max diff %g", worst);
    }
    free(got);
    free(texts);
    json_decref(rec);
}

/* A pair through the GGUF vocabulary: [CLS] A [SEP] B [SEP], types 0 then 1,
 * as the directory's tokenizer.json gives it. */
TEST(gguf_wordpiece_pair_matches_tokenizer_json) {
    ia_gguf *g = NULL;
    ia_tokenizer *a = NULL, *b = NULL;
    CHECK_OK(ia_gguf_open(test_source_path(DIR "tiny-bert-llamacpp-f32.gguf"), &g));
    if (g)
        CHECK_OK(ia_tokenizer_from_gguf(g, &a));
    ia_gguf_close(g);
    CHECK_OK(ia_tokenizer_load_dir(test_source_path(TINY), &b));
    if (!a || !b)
        goto done;
    static const char *const pairs[][2] = {{"Hello there, world!", "ÉTÉ naïve café"},
                                           {"unaffable x", "[SEP] [CLS] embedded"}};
    for (size_t p = 0; p < 2; p++) {
        ia_encoding ea, eb;
        ia_encode_options eo = ia_encode_options_default();
        CHECK_OK(ia_tokenizer_encode(a, pairs[p][0], strlen(pairs[p][0]), pairs[p][1],
                                     strlen(pairs[p][1]), &eo, &ea));
        CHECK_OK(ia_tokenizer_encode(b, pairs[p][0], strlen(pairs[p][0]), pairs[p][1],
                                     strlen(pairs[p][1]), &eo, &eb));
        bool same = ea.len == eb.len && ea.len > 4;
        for (size_t k = 0; same && k < ea.len; k++)
            same = ea.ids[k] == eb.ids[k] && ea.type_ids[k] == eb.type_ids[k];
        CHECK_MSG(same, "pair %zu differs from tokenizer.json's", p);
        ia_encoding_free(&ea);
        ia_encoding_free(&eb);
    }
    CHECK(strcmp(ia_tokenizer_id_to_token(a, 2), "[CLS]") == 0);
done:
    ia_tokenizer_free(a);
    ia_tokenizer_free(b);
}

/* ---- the real MiniLM: written GGUF == applied at load, bit for bit ---------------- */

/* Per-tensor types covering all ten weight types (MiniLM rows are 384 or
 * 1536 long: K types only fit ffn_down). */
static ia_dtype mix_type(void *ctx, const char *name, int n_layers, int64_t row_len) {
    (void)ctx;
    (void)n_layers;
    (void)row_len;
    static const struct {
        const char *name;
        ia_dtype t;
    } mix[] = {
        {"blk.0.ffn_down.weight", IA_DTYPE_Q2_K}, {"blk.1.ffn_down.weight", IA_DTYPE_Q3_K},
        {"blk.2.ffn_down.weight", IA_DTYPE_Q4_K}, {"blk.3.ffn_down.weight", IA_DTYPE_Q5_K},
        {"blk.4.ffn_down.weight", IA_DTYPE_Q6_K}, {"blk.0.attn_q.weight", IA_DTYPE_Q4_0},
        {"blk.1.attn_q.weight", IA_DTYPE_Q4_1},   {"blk.2.attn_q.weight", IA_DTYPE_Q5_0},
        {"blk.3.attn_q.weight", IA_DTYPE_Q5_1},   {"token_embd.weight", IA_DTYPE_Q8_0},
    };
    for (size_t i = 0; i < sizeof mix / sizeof mix[0]; i++)
        if (strcmp(mix[i].name, name) == 0)
            return mix[i].t;
    return IA_DTYPE_F32;
}

static const char *const mix_overrides[] = {
    "blk.0.ffn_down.weight=q2_k",
    "blk.1.ffn_down.weight=q3_k",
    "blk.2.ffn_down.weight=q4_k",
    "blk.3.ffn_down.weight=q5_k",
    "blk.4.ffn_down.weight=q6_k",
    "blk.0.attn_q.weight=q4_0",
    "blk.1.attn_q.weight=q4_1",
    "blk.2.attn_q.weight=q5_0",
    "blk.3.attn_q.weight=q5_1",
    "token_embd.weight=q8_0",
    "*=f32",
};

/* Our q4_k_m MiniLM file as llama.cpp ran it (llamacpp-embeddings.json,
 * "minilm-q4_k_m-ours"): same ids, and pooled embeddings at cosine >= 0.999
 * (llama.cpp quantises activations to Q8_K in its dot products and uses
 * the tanh GELU; the weights are the same bytes). */
static void matches_llamacpp_q4_k_m(const char *path) {
    json_t *rec = load_json(DIR "llamacpp-embeddings.json");
    json_t *lc = json_object_get(json_object_get(rec, "files"), "minilm-q4_k_m-ours");
    size_t n, dim = 0;
    const char **texts = texts_of(json_object_get(rec, "texts"), &n);
    ia_embedder_options o = ia_embedder_options_default();
    o.n_threads = 2;
    o.normalize = 0;
    float *got = NULL;
    CHECK(lc != NULL);
    if (lc && embed(path, &o, texts, n, &got, &dim)) {
        for (size_t i = 0; i < n; i++) {
            json_t *want = json_array_get(json_object_get(lc, "embeddings"), i);
            double ab = 0, aa = 0, bb = 0;
            for (size_t c = 0; c < dim; c++) {
                double x = got[i * dim + c], y = json_real_value(json_array_get(want, c));
                ab += x * y;
                aa += x * x;
                bb += y * y;
            }
            double cos = ab / sqrt(aa * bb);
            CHECK_MSG(cos >= 0.999, "text %zu: cosine %.6f to llama.cpp's embedding", i, cos);
        }
    }
    free(got);
    free(texts);
    json_decref(rec);
}

/* Quantises the model to a temporary GGUF (recipe, or f32 + mix_overrides)
 * and checks its embeddings are the directory's with the same types at
 * load, bit for bit, and close to f32. */
static void written_equals_at_load(const char *model, const char *recipe, const char **texts,
                                   size_t n, const float *base) {
    char out[] = "/tmp/ia-test-bert-q-XXXXXX";
    int fd = mkstemp(out);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    close(fd);
    ia_quantize_options q = {.type = recipe ? recipe : "f32", .n_threads = 2};
    if (!recipe) {
        q.overrides = mix_overrides;
        q.n_overrides = sizeof mix_overrides / sizeof mix_overrides[0];
    }
    ia_quantize_report rep;
    CHECK_OK(ia_quantize_model(model, out, &q, &rep));
    if (recipe && strcmp(recipe, "q4_k_m") == 0)
        matches_llamacpp_q4_k_m(out);
    if (!recipe)
        for (int t = IA_DTYPE_Q4_0; t <= IA_DTYPE_Q6_K; t++)
            CHECK_MSG(rep.n_by_type[t] > 0, "no %s tensor written", ia_dtype_name((ia_dtype)t));
    ia_embedder_options o = ia_embedder_options_default();
    o.n_threads = 2;
    o.normalize = 1;
    /* one truncation for both: the directory says 256 (max_seq_length), a
     * GGUF only has the context length (512) */
    o.max_length = 256;
    float *file = NULL, *load = NULL;
    size_t d1 = 0, d2 = 0;
    bool ok = embed(out, &o, texts, n, &file, &d1);
    if (recipe)
        CHECK_OK(ia_quantize_recipe_weight_fn(recipe, &o.weight_type, &o.weight_type_ctx));
    else
        o.weight_type = mix_type;
    ok = ok && embed(model, &o, texts, n, &load, &d2);
    if (ok && base) {
        CHECK_MSG(memcmp(file, load, n * d1 * sizeof(float)) == 0,
                  "%s: the written GGUF and the recipe at load differ (max %g)",
                  recipe ? recipe : "mix", max_diff(file, load, n * d1));
        double cmin = 1;
        for (size_t i = 0; i < n; i++) {
            double dot = 0;
            for (size_t c = 0; c < d1; c++)
                dot += (double)file[i * d1 + c] * base[i * d1 + c];
            cmin = dot < cmin ? dot : cmin;
        }
        fprintf(stderr, "  %s: min cosine to f32 over %zu sentences %.5f\n",
                recipe ? recipe : "ten-type mix", n, cmin);
        CHECK(cmin > 0.9);
    }
    free(file);
    free(load);
    unlink(out);
}

TEST(minilm_written_equals_at_load) {
    const char *model = getenv("IA_DEFAULT_MODEL");
    if (!model || !*model)
        SKIP("IA_DEFAULT_MODEL (all-MiniLM-L6-v2 directory) is not set");
    char *text = NULL;
    size_t len;
    CHECK_OK(ia_file_read_all(test_source_path("tests/fixtures/minilm/sentences.txt"), 1u << 24,
                              &text, &len));
    if (!text)
        return;
    const char *texts[12];
    size_t n = 0, dim = 0;
    for (char *p = text, *nl; n < 12 && p < text + len && (nl = strchr(p, '\n')); p = nl + 1) {
        *nl = '\0';
        if (*p)
            texts[n++] = p;
    }
    ia_embedder_options o = ia_embedder_options_default();
    o.n_threads = 2;
    o.normalize = 1;
    o.max_length = 256;
    float *base = NULL;
    if (embed(model, &o, texts, n, &base, &dim)) {
        written_equals_at_load(model, "q4_k_m", texts, n, base);
        written_equals_at_load(model, NULL, texts, n, base);
    }
    free(base);
    free(text);
}

/* ---- bad input --------------------------------------------------------------------- */

/* Copies the llama.cpp tiny-bert file with one key or tensor changed. */
static bool write_variant(const char *out, const char *drop_key, bool causal, bool bad_type) {
    ia_gguf *g = NULL;
    ia_gguf_writer *w = NULL;
    bool ok = ia_gguf_open(test_source_path(DIR "tiny-bert-llamacpp-f32.gguf"), &g) == IA_OK &&
              ia_gguf_writer_create(&w) == IA_OK;
    for (size_t i = 0; ok && i < ia_gguf_kv_count(g); i++) {
        const char *key = ia_gguf_kv_key(g, i);
        if (drop_key && strcmp(key, drop_key) == 0)
            continue;
        if (causal && strcmp(key, "bert.attention.causal") == 0)
            ok = ia_gguf_writer_add_bool(w, key, true) == IA_OK;
        else
            ok = ia_gguf_writer_add_value(w, key, ia_gguf_kv_value(g, i)) == IA_OK;
    }
    if (drop_key && strcmp(drop_key, "general.architecture") == 0)
        ok = ok && ia_gguf_writer_add_string(w, "general.architecture", "llama", 5) == IA_OK;
    static uint8_t q8[36 * 36];
    for (size_t i = 0; ok && i < ia_gguf_tensor_count(g); i++) {
        const ia_gguf_tensor *t = ia_gguf_tensor_at(g, i);
        if (bad_type && strcmp(t->name, "blk.0.attn_q.weight") == 0) {
            /* int8 is no weight type: the loader must name the tensor */
            ok =
                ia_gguf_writer_add_tensor(w, t->name, t->n_dims, t->dims, 24, q8, 36 * 36) == IA_OK;
            continue;
        }
        ok = ia_gguf_writer_add_tensor(w, t->name, t->n_dims, t->dims, t->type, t->data,
                                       t->n_bytes) == IA_OK;
    }
    ok = ok && ia_gguf_writer_write(w, out) == IA_OK;
    ia_gguf_writer_free(w);
    ia_gguf_close(g);
    return ok;
}

TEST(bad_gguf_encoders_are_clear_errors) {
    char out[] = "/tmp/ia-test-bert-bad-XXXXXX";
    int fd = mkstemp(out);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    close(fd);
    ia_encoder *enc = NULL;
    CHECK(write_variant(out, "general.architecture", false, false));
    CHECK_ERR(ia_encoder_load(out, NULL, IA_DTYPE_F32, &enc), IA_EUNSUPPORTED,
              "general.architecture is 'llama'");
    CHECK(write_variant(out, NULL, true, false));
    CHECK_ERR(ia_encoder_load(out, NULL, IA_DTYPE_F32, &enc), IA_EUNSUPPORTED,
              "bert.attention.causal");
    CHECK(write_variant(out, "bert.block_count", false, false));
    CHECK_ERR(ia_encoder_load(out, NULL, IA_DTYPE_F32, &enc), IA_ENOTFOUND, "bert.block_count");
    CHECK(write_variant(out, NULL, false, true));
    CHECK_ERR(ia_encoder_load(out, NULL, IA_DTYPE_F32, &enc), IA_EUNSUPPORTED,
              "blk.0.attn_q.weight");
    CHECK(enc == NULL);
    unlink(out);
}
