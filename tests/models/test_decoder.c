/*
 * The generic causal decoder against transformers on tiny random-weight
 * models, one per architecture row (tests/fixtures/decoder_logits, made by
 * tools/make_decoder_logits.py; tests/fixtures/decoders too when present):
 * every position's logits of every prompt within 1e-4 max abs for each CPU
 * variant; prefill at once, token by token and in uneven chunks give the
 * same logits (the KV cache); greedy continuations match; an f16 KV cache
 * and bf16 weights stay close; a GGUF copy written here the llama.cpp way
 * (its tensor names, LLaMA's Q/K rows permuted, GPT-2's Conv1D transposed,
 * llama3 scaling as rope_freqs.weight) and the converter's model.gguf of
 * each shared fixture give bit-identical logits to their safetensors; and
 * the errors a user can cause say what went wrong.
 */
#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ia/formats.h"
#include "ia/models.h"
#include "test.h"

#define TOL 1e-4

static const char *const fixtures[] = {"tiny-llama",   "tiny-llama3", "tiny-llama-linear",
                                       "tiny-mistral", "tiny-qwen2",  "tiny-gpt2"};
#define N_FIXTURES (sizeof fixtures / sizeof fixtures[0])
static const char *const variants[] = {"generic", "avx2", "avx512"};

typedef struct expected {
    json_t *root;
    size_t n_prompts;
} expected;

static const char *fixture_dir(const char *name) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s", test_source_path("tests/fixtures/decoder_logits/"));
    strncat(buf, name, sizeof buf - strlen(buf) - 1);
    return buf;
}

static bool load_expected(const char *dir, expected *e) {
    char path[4096];
    snprintf(path, sizeof path, "%s/expected.json", dir);
    json_error_t err;
    e->root = json_load_file(path, 0, &err);
    if (!e->root) {
        fprintf(stderr, "  cannot read %s: %s\n", path, err.text);
        return false;
    }
    e->n_prompts = json_array_size(json_object_get(e->root, "prompts"));
    return true;
}

static size_t prompt(const expected *e, size_t p, int32_t *ids) {
    json_t *row = json_array_get(json_object_get(e->root, "prompts"), p);
    for (size_t i = 0; i < json_array_size(row); i++)
        ids[i] = (int32_t)json_integer_value(json_array_get(row, i));
    return json_array_size(row);
}

/* Max abs difference of logits rows [0, n) against the expected rows. */
static double diff_expected(const expected *e, size_t p, size_t first, const float *logits,
                            size_t n, size_t vocab) {
    json_t *rows = json_array_get(json_object_get(e->root, "logits"), p);
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *row = json_array_get(rows, first + i);
        if (json_array_size(row) != vocab)
            return INFINITY;
        for (size_t v = 0; v < vocab; v++)
            worst = fmax(worst,
                         fabs(logits[i * vocab + v] - json_number_value(json_array_get(row, v))));
    }
    return worst;
}

/* All logits of prompt p in one prefill call. */
static double run_prefill(const ia_decoder *dec, const expected *e, size_t p, ia_dtype kv_type,
                          ia_threadpool *pool, float *out) {
    int32_t ids[256];
    size_t n = prompt(e, p, ids), vocab = (size_t)ia_decoder_get_config(dec)->vocab_size;
    ia_kv_cache *kv = NULL;
    CHECK_OK(ia_kv_cache_create(dec, 0, kv_type, &kv));
    if (!kv)
        return INFINITY;
    CHECK_OK(ia_decoder_forward(dec, kv, ids, n, true, out, pool));
    CHECK_EQ_INT(ia_kv_cache_length(kv), n);
    ia_kv_cache_free(kv);
    return diff_expected(e, p, 0, out, n, vocab);
}

static double check_model(const ia_decoder *dec, const expected *e, ia_dtype kv_type,
                          ia_threadpool *pool) {
    size_t vocab = (size_t)ia_decoder_get_config(dec)->vocab_size;
    float *out = malloc(256 * vocab * sizeof *out);
    double worst = 0;
    for (size_t p = 0; p < e->n_prompts; p++)
        worst = fmax(worst, run_prefill(dec, e, p, kv_type, pool, out));
    free(out);
    return worst;
}

/* ---- transformers' logits, every variant -------------------------------------------- */

TEST(logits_match_transformers_every_variant) {
    ia_threadpool *pool = ia_threadpool_create(3);
    for (size_t f = 0; f < N_FIXTURES; f++) {
        expected e;
        if (!load_expected(fixture_dir(fixtures[f]), &e)) {
            CHECK(false);
            continue;
        }
        for (size_t v = 0; v < 3; v++) {
            const ia_backend *be = ia_backend_cpu_variant(variants[v]);
            if (!be) {
                fprintf(stderr, "  %s: variant %s skipped (CPU lacks it)\n", fixtures[f],
                        variants[v]);
                continue;
            }
            ia_decoder *dec = NULL;
            CHECK_OK(ia_decoder_load(fixture_dir(fixtures[f]), be, IA_DTYPE_F32, &dec));
            if (!dec)
                continue;
            double worst = check_model(dec, &e, IA_DTYPE_F32, pool);
            fprintf(stderr, "  %-18s %-8s f32 max |diff| %.3g\n", fixtures[f], variants[v], worst);
            CHECK_MSG(worst <= TOL, "%s on %s: %g", fixtures[f], variants[v], worst);
            ia_decoder_free(dec);
        }
        json_decref(e.root);
    }
    ia_threadpool_destroy(pool);
}

/* ---- the KV cache: token by token, in chunks, greedy ---------------------------------- */

static void decode_case(const char *name, const ia_backend *be, ia_threadpool *pool) {
    expected e;
    ia_decoder *dec = NULL;
    if (!load_expected(fixture_dir(name), &e)) {
        CHECK(false);
        return;
    }
    CHECK_OK(ia_decoder_load(fixture_dir(name), be, IA_DTYPE_F32, &dec));
    if (!dec) {
        json_decref(e.root);
        return;
    }
    size_t vocab = (size_t)ia_decoder_get_config(dec)->vocab_size;
    float *out = malloc(64 * vocab * sizeof *out);
    int32_t ids[256];
    ia_kv_cache *kv = NULL;
    CHECK_OK(ia_kv_cache_create(dec, 0, IA_DTYPE_F32, &kv));
    double worst_step = 0, worst_chunk = 0;
    for (size_t p = 0; p < e.n_prompts && kv; p++) {
        size_t n = prompt(&e, p, ids);
        /* one token per call: each call returns the last (only) row */
        ia_kv_cache_reset(kv);
        for (size_t i = 0; i < n; i++) {
            CHECK_OK(ia_decoder_forward(dec, kv, ids + i, 1, false, out, pool));
            worst_step = fmax(worst_step, diff_expected(&e, p, i, out, 1, vocab));
        }
        /* uneven chunks 3, 1, 5, rest: rows of every chunk */
        ia_kv_cache_reset(kv);
        size_t chunks[] = {3, 1, 5, 256};
        for (size_t c = 0, at = 0; at < n; c++) {
            size_t len = chunks[c] < n - at ? chunks[c] : n - at;
            CHECK_OK(ia_decoder_forward(dec, kv, ids + at, len, true, out, pool));
            worst_chunk = fmax(worst_chunk, diff_expected(&e, p, at, out, len, vocab));
            at += len;
        }
        CHECK_EQ_INT(ia_kv_cache_length(kv), n);
        /* greedy continuation from the cache */
        json_t *want = json_array_get(json_object_get(e.root, "greedy"), p);
        int32_t tok = -1;
        ia_kv_cache_reset(kv);
        CHECK_OK(ia_decoder_forward(dec, kv, ids, n, false, out, pool));
        for (size_t g = 0; g < json_array_size(want); g++) {
            tok = 0;
            for (size_t v = 1; v < vocab; v++)
                if (out[v] > out[tok])
                    tok = (int32_t)v;
            CHECK_MSG(tok == json_integer_value(json_array_get(want, g)),
                      "%s prompt %zu greedy token %zu: %d, transformers %lld", name, p, g, tok,
                      (long long)json_integer_value(json_array_get(want, g)));
            if (tok != json_integer_value(json_array_get(want, g)))
                break;
            CHECK_OK(ia_decoder_forward(dec, kv, &tok, 1, false, out, pool));
        }
    }
    fprintf(stderr, "  %-18s %-11s step-by-step %.3g, chunks %.3g\n", name, be->name, worst_step,
            worst_chunk);
    CHECK_MSG(worst_step <= TOL, "%s token by token: %g", name, worst_step);
    CHECK_MSG(worst_chunk <= TOL, "%s in chunks: %g", name, worst_chunk);
    ia_kv_cache_free(kv);
    free(out);
    ia_decoder_free(dec);
    json_decref(e.root);
}

TEST(decode_step_by_step_matches_prefill) {
    ia_threadpool *pool = ia_threadpool_create(2);
    for (size_t v = 0; v < 2; v++) {
        const ia_backend *be = ia_backend_cpu_variant(variants[v]);
        if (!be)
            continue;
        for (size_t f = 0; f < N_FIXTURES; f++)
            decode_case(fixtures[f], be, pool);
    }
    ia_threadpool_destroy(pool);
}

/* ---- reduced precision ------------------------------------------------------------------ */

TEST(f16_cache_and_bf16_weights_stay_close) {
    const ia_backend *be = ia_backend_cpu();
    for (size_t f = 0; f < N_FIXTURES; f++) {
        expected e;
        ia_decoder *dec = NULL, *dec16 = NULL;
        if (!load_expected(fixture_dir(fixtures[f]), &e))
            continue;
        CHECK_OK(ia_decoder_load(fixture_dir(fixtures[f]), be, IA_DTYPE_F32, &dec));
        CHECK_OK(ia_decoder_load(fixture_dir(fixtures[f]), be, IA_DTYPE_BF16, &dec16));
        if (dec && dec16) {
            double kv16 = check_model(dec, &e, IA_DTYPE_F16, NULL);
            double bf16 = check_model(dec16, &e, IA_DTYPE_F32, NULL);
            fprintf(stderr, "  %-18s f16 KV cache %.3g, bf16 weights %.3g\n", fixtures[f], kv16,
                    bf16);
            CHECK_MSG(kv16 <= 5e-3, "%s f16 cache: %g", fixtures[f], kv16);
            CHECK_MSG(bf16 <= 0.15, "%s bf16 weights: %g", fixtures[f], bf16);
        }
        ia_decoder_free(dec);
        ia_decoder_free(dec16);
        json_decref(e.root);
    }
}

/* f16 weights (2 bytes a weight in memory, widened in registers): the f32
 * fixtures' weights rounded to f16 (relative error <= 2^-11, 8x finer than
 * bf16), logits within 0.02 of transformers' f32 ones, on every variant (the
 * AVX2 decode runs through its GEMV kernel, generic through the tiles). */
TEST(f16_weights_stay_close) {
    for (size_t v = 0; v < 2; v++) {
        const ia_backend *be = ia_backend_cpu_variant(variants[v]);
        if (!be)
            continue;
        for (size_t f = 0; f < N_FIXTURES; f++) {
            expected e;
            ia_decoder *dec = NULL;
            if (!load_expected(fixture_dir(fixtures[f]), &e))
                continue;
            CHECK_OK(ia_decoder_load(fixture_dir(fixtures[f]), be, IA_DTYPE_F16, &dec));
            if (dec) {
                double d = check_model(dec, &e, IA_DTYPE_F32, NULL);
                fprintf(stderr, "  %-18s %-11s f16 weights %.3g\n", fixtures[f], be->name, d);
                CHECK_MSG(d <= 0.02, "%s f16 weights: %g", fixtures[f], d);
            }
            ia_decoder_free(dec);
            json_decref(e.root);
        }
    }
}

/* ---- GGUF, written the llama.cpp way ----------------------------------------------------- */

typedef struct gguf_build {
    ia_gguf_writer *w;
    void *bufs[512];
    int n_bufs;
} gguf_build;

static void *keep(gguf_build *b, size_t bytes) {
    void *p = calloc(1, bytes ? bytes : 1);
    b->bufs[b->n_bufs++] = p;
    return p;
}

/* Adds rows x cols f32 (cols 0: a vector of rows) under name. */
static void add_f32(gguf_build *b, const char *name, const float *data, int64_t rows,
                    int64_t cols) {
    uint64_t dims[2] = {(uint64_t)(cols ? cols : rows), (uint64_t)rows};
    uint64_t n = (uint64_t)rows * (uint64_t)(cols ? cols : 1);
    CHECK_OK(ia_gguf_writer_add_tensor(b->w, name, cols ? 2 : 1, dims, IA_GGML_F32, data, n * 4));
}

/* llama.cpp's permutation of Q/K rows: per head, the two halves interleave
 * so that adjacent-pair rotation equals HF's rotate_half. */
static float *permute_rows(gguf_build *b, const float *src, int64_t rows, int64_t cols,
                           int64_t heads) {
    float *dst = keep(b, (size_t)(rows * (cols ? cols : 1)) * sizeof(float));
    int64_t hd = rows / heads, half = hd / 2, c = cols ? cols : 1;
    for (int64_t h = 0; h < heads; h++)
        for (int64_t i = 0; i < 2; i++)
            for (int64_t j = 0; j < half; j++)
                memcpy(dst + (h * hd + 2 * j + i) * c, src + (h * hd + i * half + j) * c,
                       (size_t)c * sizeof(float));
    return dst;
}

static const struct {
    const char *hf, *gguf;
} llama_map[] =
    {
        {"model.embed_tokens.weight", "token_embd.weight"},
        {"model.norm", "output_norm"},
        {"lm_head.weight", "output.weight"},
        {"input_layernorm", "attn_norm"},
        {"self_attn.q_proj", "attn_q"},
        {"self_attn.k_proj", "attn_k"},
        {"self_attn.v_proj", "attn_v"},
        {"self_attn.o_proj", "attn_output"},
        {"post_attention_layernorm", "ffn_norm"},
        {"mlp.gate_proj", "ffn_gate"},
        {"mlp.up_proj", "ffn_up"},
        {"mlp.down_proj", "ffn_down"},
},
  gpt2_map[] = {
      {"transformer.wte.weight", "token_embd.weight"},
      {"transformer.wpe.weight", "position_embd.weight"},
      {"transformer.ln_f", "output_norm"},
      {"ln_1", "attn_norm"},
      {"attn.c_attn", "attn_qkv"},
      {"attn.c_proj", "attn_output"},
      {"ln_2", "ffn_norm"},
      {"mlp.c_fc", "ffn_up"},
      {"mlp.c_proj", "ffn_down"},
};

/* The GGUF name of a HF tensor ("" when it has none). */
static void gguf_name(const char *hf, bool gpt2, char *out, size_t cap) {
    int layer = -1, used = 0;
    const char *rest = hf;
    if (sscanf(hf, gpt2 ? "transformer.h.%d.%n" : "model.layers.%d.%n", &layer, &used) == 1 &&
        used > 0)
        rest = hf + used;
    else
        layer = -1;
    size_t n = gpt2 ? sizeof gpt2_map / sizeof gpt2_map[0] : sizeof llama_map / sizeof llama_map[0];
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        const char *from = gpt2 ? gpt2_map[i].hf : llama_map[i].hf;
        const char *to = gpt2 ? gpt2_map[i].gguf : llama_map[i].gguf;
        size_t len = strlen(from);
        bool global = !strncmp(from, "transformer.", 12) || !strncmp(from, "model.", 6) ||
                      !strncmp(from, "lm_head", 7);
        if (strncmp(rest, from, len) != 0 || (layer >= 0) == global)
            continue;
        if (layer >= 0)
            snprintf(out, cap, "blk.%d.%s%s", layer, to, rest + len);
        else
            snprintf(out, cap, "%s%s", to, rest + len);
        return;
    }
}

/* Writes dir's checkpoint as a GGUF at path. drop: a GGUF tensor name to
 * leave out; bad_shape: one to write with a row missing. */
static bool write_gguf(const char *dir, const char *path, const char *drop, const char *bad_shape) {
    ia_decoder *dec = NULL;
    ia_safetensors *st = NULL;
    char p[4096];
    CHECK_OK(ia_decoder_load(dir, ia_backend_cpu(), IA_DTYPE_F32, &dec));
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    CHECK_OK(ia_safetensors_open(p, &st));
    snprintf(p, sizeof p, "%s/config.json", dir);
    json_error_t jerr;
    json_t *cfg = json_load_file(p, 0, &jerr);
    if (!dec || !st || !cfg) {
        ia_decoder_free(dec);
        ia_safetensors_close(st);
        json_decref(cfg);
        return false;
    }
    const ia_decoder_config *c = ia_decoder_get_config(dec);
    bool gpt2 = strcmp(c->model_type, "gpt2") == 0, qwen = strcmp(c->model_type, "qwen2") == 0;
    const char *arch = gpt2 ? "gpt2" : qwen ? "qwen2" : "llama";
    gguf_build b = {0};
    CHECK_OK(ia_gguf_writer_create(&b.w));
    char key[256];
#define KEY(s) (snprintf(key, sizeof key, "%s.%s", arch, s), key)
    CHECK_OK(ia_gguf_writer_add_string(b.w, "general.architecture", arch, strlen(arch)));
    CHECK_OK(ia_gguf_writer_add_u32(b.w, KEY("context_length"), (uint32_t)c->max_positions));
    CHECK_OK(ia_gguf_writer_add_u32(b.w, KEY("embedding_length"), (uint32_t)c->hidden_size));
    CHECK_OK(ia_gguf_writer_add_u32(b.w, KEY("block_count"), (uint32_t)c->num_layers));
    CHECK_OK(
        ia_gguf_writer_add_u32(b.w, KEY("feed_forward_length"), (uint32_t)c->intermediate_size));
    CHECK_OK(ia_gguf_writer_add_u32(b.w, KEY("attention.head_count"), (uint32_t)c->num_heads));
    CHECK_OK(
        ia_gguf_writer_add_u32(b.w, KEY("attention.head_count_kv"), (uint32_t)c->num_kv_heads));
    if (gpt2) {
        CHECK_OK(
            ia_gguf_writer_add_f32(b.w, KEY("attention.layer_norm_epsilon"), (float)c->norm_eps));
    } else {
        CHECK_OK(ia_gguf_writer_add_f32(b.w, KEY("attention.layer_norm_rms_epsilon"),
                                        (float)c->norm_eps));
        CHECK_OK(ia_gguf_writer_add_f32(b.w, KEY("rope.freq_base"), (float)c->rope_theta));
        CHECK_OK(ia_gguf_writer_add_u32(b.w, KEY("attention.key_length"), (uint32_t)c->head_dim));
        CHECK_OK(ia_gguf_writer_add_u32(b.w, KEY("attention.value_length"), (uint32_t)c->head_dim));
    }
    if (c->sliding_window)
        CHECK_OK(ia_gguf_writer_add_u32(b.w, KEY("attention.sliding_window"),
                                        (uint32_t)c->sliding_window));
    json_t *rp = json_object_get(cfg, "rope_parameters");
    const char *rtype = json_string_value(json_object_get(rp, "rope_type"));
    double factor = json_number_value(json_object_get(rp, "factor"));
    if (rtype && strcmp(rtype, "linear") == 0) {
        CHECK_OK(ia_gguf_writer_add_string(b.w, KEY("rope.scaling.type"), "linear", 6));
        CHECK_OK(ia_gguf_writer_add_f32(b.w, KEY("rope.scaling.factor"), (float)factor));
    } else if (rtype && strcmp(rtype, "llama3") == 0) {
        /* llama.cpp's converter: per-frequency divisors in rope_freqs.weight */
        double lo = json_number_value(json_object_get(rp, "low_freq_factor"));
        double hi = json_number_value(json_object_get(rp, "high_freq_factor"));
        double old = json_number_value(json_object_get(rp, "original_max_position_embeddings"));
        int64_t half = c->head_dim / 2;
        float *ff = keep(&b, (size_t)half * sizeof(float));
        for (int64_t i = 0; i < half; i++) {
            double freq = 1.0 / pow(c->rope_theta, (double)(2 * i) / (double)c->head_dim);
            double wl = 2 * M_PI / freq;
            if (wl < old / hi)
                ff[i] = 1.0f;
            else if (wl > old / lo)
                ff[i] = (float)factor;
            else {
                double s = (old / wl - lo) / (hi - lo);
                ff[i] = (float)(1.0 / ((1 - s) / factor + s));
            }
        }
        add_f32(&b, "rope_freqs.weight", ff, half, 0);
    }
#undef KEY
    for (size_t i = 0; i < ia_safetensors_count(st); i++) {
        const ia_tensor *t = ia_safetensors_at(st, i);
        char name[256];
        gguf_name(t->name, gpt2, name, sizeof name);
        if (!name[0] || (drop && strcmp(name, drop) == 0))
            continue;
        int64_t rows = t->shape[0], cols = t->ndim == 2 ? t->shape[1] : 0;
        const float *data = t->data;
        if (gpt2 && cols && strncmp(name, "blk.", 4) == 0) {
            /* Conv1D [in, out] -> [out, in], as llama.cpp's GPT-2 converter does */
            float *tr = keep(&b, (size_t)(rows * cols) * sizeof(float));
            for (int64_t r = 0; r < rows; r++)
                for (int64_t k = 0; k < cols; k++)
                    tr[k * rows + r] = data[r * cols + k];
            int64_t tmp = rows;
            rows = cols;
            cols = tmp;
            data = tr;
        }
        if (!gpt2 && !qwen && strstr(name, "attn_q."))
            data = permute_rows(&b, data, rows, cols, c->num_heads);
        if (!gpt2 && !qwen && strstr(name, "attn_k."))
            data = permute_rows(&b, data, rows, cols, c->num_kv_heads);
        if (bad_shape && strcmp(name, bad_shape) == 0)
            rows--;
        add_f32(&b, name, data, rows, cols);
        if (gpt2 && strcmp(name, "token_embd.weight") == 0 && !drop)
            add_f32(&b, "output.weight", data, rows, cols); /* llama.cpp writes the tied head */
    }
    CHECK_OK(ia_gguf_writer_write(b.w, path));
    ia_gguf_writer_free(b.w);
    for (int i = 0; i < b.n_bufs; i++)
        free(b.bufs[i]);
    json_decref(cfg);
    ia_safetensors_close(st);
    ia_decoder_free(dec);
    return true;
}

static const char *tmp_path(const char *name) {
    static char buf[2][4096];
    static int slot;
    char *out = buf[slot++ % 2];
    snprintf(out, sizeof buf[0], "/tmp/ia_test_decoder_%d_%s", (int)getpid(), name);
    return out;
}

/* Prompts for an exactness check: up to 8 of up to 256 ids. */
typedef struct prompt_set {
    size_t n, len[8];
    int32_t ids[8][256];
} prompt_set;

/* Runs a and b (same vocabulary) on every prompt: all positions' logits in
 * one prefill, then 8 greedy steps of one token (the decode path). Returns
 * how many logits differ in any bit; *worst gets the largest |difference|. */
static size_t logits_differ(const ia_decoder *a, const ia_decoder *b, const prompt_set *ps,
                            ia_threadpool *pool, double *worst) {
    size_t vocab = (size_t)ia_decoder_get_config(a)->vocab_size, differ = 0;
    float *x = malloc(256 * vocab * sizeof *x), *y = malloc(256 * vocab * sizeof *y);
    ia_kv_cache *ka = NULL, *kb = NULL;
    CHECK_OK(ia_kv_cache_create(a, 0, IA_DTYPE_F32, &ka));
    CHECK_OK(ia_kv_cache_create(b, 0, IA_DTYPE_F32, &kb));
    *worst = 0;
    for (size_t p = 0; ka && kb && p < ps->n; p++) {
        ia_kv_cache_reset(ka);
        ia_kv_cache_reset(kb);
        size_t rows = ps->len[p];
        CHECK_OK(ia_decoder_forward(a, ka, ps->ids[p], rows, true, x, pool));
        CHECK_OK(ia_decoder_forward(b, kb, ps->ids[p], rows, true, y, pool));
        for (int step = 0;; step++) {
            for (size_t i = 0; i < rows * vocab; i++) {
                differ += memcmp(&x[i], &y[i], sizeof x[i]) != 0;
                *worst = fmax(*worst, fabs((double)x[i] - y[i]));
            }
            if (step == 8)
                break;
            const float *last = x + (rows - 1) * vocab;
            int32_t tok = 0;
            for (size_t v = 1; v < vocab; v++)
                if (last[v] > last[tok])
                    tok = (int32_t)v;
            if (ia_kv_cache_length(ka) + 1 > (size_t)ia_decoder_get_config(a)->max_positions)
                break;
            CHECK_OK(ia_decoder_forward(a, ka, &tok, 1, false, x, pool));
            CHECK_OK(ia_decoder_forward(b, kb, &tok, 1, false, y, pool));
            rows = 1;
        }
    }
    ia_kv_cache_free(ka);
    ia_kv_cache_free(kb);
    free(x);
    free(y);
    return differ;
}

/* The GGUF copy runs the same rows through the same kernels as its
 * safetensors (LLaMA's Q/K permutation undone at load, llama3 scaling
 * through the same divisors), so the logits are equal bit for bit, on every
 * CPU variant; and within TOL of transformers. */
TEST(gguf_copy_gives_the_same_logits) {
    ia_threadpool *pool = ia_threadpool_create(2);
    for (size_t f = 0; f < N_FIXTURES; f++) {
        const char *dir = fixture_dir(fixtures[f]);
        const char *path = tmp_path("copy.gguf");
        expected e;
        if (!load_expected(dir, &e)) {
            CHECK(false);
            continue;
        }
        if (!write_gguf(dir, path, NULL, NULL)) {
            json_decref(e.root);
            continue;
        }
        prompt_set ps = {.n = e.n_prompts < 8 ? e.n_prompts : 8};
        for (size_t p = 0; p < ps.n; p++)
            ps.len[p] = prompt(&e, p, ps.ids[p]);
        for (size_t v = 0; v < 3; v++) {
            const ia_backend *be = ia_backend_cpu_variant(variants[v]);
            if (!be)
                continue;
            ia_decoder *hf = NULL, *gg = NULL;
            CHECK_OK(ia_decoder_load(dir, be, IA_DTYPE_F32, &hf));
            CHECK_OK(ia_decoder_load(path, be, IA_DTYPE_F32, &gg));
            if (hf && gg) {
                const ia_decoder_config *a = ia_decoder_get_config(hf),
                                        *b = ia_decoder_get_config(gg);
                CHECK_EQ_INT(a->vocab_size, b->vocab_size);
                CHECK_EQ_INT(a->num_kv_heads, b->num_kv_heads);
                CHECK_EQ_INT(a->sliding_window, b->sliding_window);
                double worst, vs_ref = 0;
                size_t differ = logits_differ(hf, gg, &ps, pool, &worst);
                size_t vocab = (size_t)a->vocab_size;
                float *y = malloc(256 * vocab * sizeof *y);
                for (size_t p = 0; p < e.n_prompts; p++)
                    vs_ref = fmax(vs_ref, run_prefill(gg, &e, p, IA_DTYPE_F32, pool, y));
                free(y);
                fprintf(stderr,
                        "  %-18s %-8s GGUF vs safetensors: %zu logits differ (max %.3g), vs "
                        "transformers %.3g\n",
                        fixtures[f], variants[v], differ, worst, vs_ref);
                CHECK_MSG(differ == 0, "%s on %s: GGUF vs safetensors: %zu logits differ, max %g",
                          fixtures[f], variants[v], differ, worst);
                CHECK_MSG(vs_ref <= TOL, "%s GGUF vs transformers: %g", fixtures[f], vs_ref);
            }
            ia_decoder_free(hf);
            ia_decoder_free(gg);
        }
        json_decref(e.root);
        unlink(path);
    }
    ia_threadpool_destroy(pool);
}

/* ---- errors ------------------------------------------------------------------------------- */

TEST(errors_name_what_is_wrong) {
    const ia_backend *be = ia_backend_cpu();
    const char *llama = fixture_dir("tiny-llama");
    char dir_llama[4096];
    snprintf(dir_llama, sizeof dir_llama, "%s", llama);
    ia_decoder *dec = NULL;

    const char *path = tmp_path("missing.gguf");
    if (write_gguf(dir_llama, path, "blk.1.ffn_down.weight", NULL))
        CHECK_ERR(ia_decoder_load(path, be, IA_DTYPE_F32, &dec), IA_ENOTFOUND,
                  "tensor 'blk.1.ffn_down.weight' is missing");
    CHECK(dec == NULL);
    unlink(path);

    path = tmp_path("shape.gguf");
    if (write_gguf(dir_llama, path, NULL, "blk.0.attn_k.weight"))
        CHECK_ERR(ia_decoder_load(path, be, IA_DTYPE_F32, &dec), IA_EPARSE,
                  "tensor 'blk.0.attn_k.weight' has shape [31, 64]; the model's hyper-parameters "
                  "imply [32, 64]");
    unlink(path);

    /* a weight of a ggml type we read but do not compute: named with its type */
    path = tmp_path("iq2.gguf");
    {
        ia_gguf_writer *w = NULL;
        CHECK_OK(ia_gguf_writer_create(&w));
        CHECK_OK(ia_gguf_writer_add_string(w, "general.architecture", "llama", 5));
        uint64_t dims[2] = {256, 96};
        static uint8_t iq2[96 * 66];
        CHECK_OK(ia_gguf_writer_add_tensor(w, "token_embd.weight", 2, dims, IA_GGML_IQ2_XXS, iq2,
                                           sizeof iq2));
        CHECK_OK(ia_gguf_writer_write(w, path));
        ia_gguf_writer_free(w);
        CHECK_ERR(ia_decoder_load(path, be, IA_DTYPE_F32, &dec), IA_EUNSUPPORTED,
                  "tensor 'token_embd.weight' has ggml type IQ2_XXS");
        unlink(path);
    }

    /* an unknown model_type */
    const char *bad_dir = tmp_path("bert");
    char p[4096];
    CHECK(mkdir(bad_dir, 0700) == 0);
    snprintf(p, sizeof p, "%s/config.json", bad_dir);
    FILE *fp = fopen(p, "w");
    if (fp) {
        fputs("{\"model_type\": \"bert\", \"vocab_size\": 8}", fp);
        fclose(fp);
    }
    CHECK_ERR(ia_decoder_load(bad_dir, be, IA_DTYPE_F32, &dec), IA_EUNSUPPORTED,
              "model_type 'bert' is not a decoder this build runs (gpt2, llama, mistral, qwen2)");
    unlink(p);
    rmdir(bad_dir);
    CHECK_ERR(ia_decoder_load("/nonexistent/model", be, IA_DTYPE_F32, &dec), IA_ENOTFOUND,
              "no such model directory or GGUF file");

    /* context overflow, a cache larger than the context, bad ids */
    CHECK_OK(ia_decoder_load(dir_llama, be, IA_DTYPE_F32, &dec));
    if (dec) {
        ia_kv_cache *kv = NULL;
        float logits[96];
        int32_t ids[6] = {1, 2, 3, 4, 5, 6};
        CHECK_ERR(ia_kv_cache_create(dec, 65, IA_DTYPE_F32, &kv), IA_ERANGE,
                  "the model's context is 64 tokens");
        CHECK_ERR(ia_kv_cache_create(dec, 4, IA_DTYPE_BF16, &kv), IA_EUNSUPPORTED,
                  "f32, f16 or q8_0");
        CHECK_OK(ia_kv_cache_create(dec, 4, IA_DTYPE_F32, &kv));
        if (kv) {
            CHECK_OK(ia_decoder_forward(dec, kv, ids, 3, false, logits, NULL));
            CHECK_ERR(ia_decoder_forward(dec, kv, ids, 2, false, logits, NULL), IA_ERANGE,
                      "2 new tokens after 3 exceed the context of 4 tokens");
            CHECK_EQ_INT(ia_kv_cache_length(kv), 3);
            ia_kv_cache_reset(kv);
            ids[1] = 96;
            CHECK_ERR(ia_decoder_forward(dec, kv, ids, 2, false, logits, NULL), IA_ERANGE,
                      "token id 96 at index 1 is outside the vocabulary of 96");
            CHECK_ERR(ia_decoder_forward(dec, kv, ids, 0, false, logits, NULL), IA_EINVAL,
                      "no tokens");
            ia_kv_cache_free(kv);
        }
        ia_decoder_free(dec);
    }
}

/* ---- the shared fixtures of tools/make_decoder_fixtures.py ----------------------------- */

/* tests/fixtures/decoders/<name>: prompts with flat logits rows and 64-token
 * greedy continuations (EOS honoured: the list may end early with EOS). The
 * model.gguf beside them, when the converter has made it, must agree too. */
static void shared_fixture_case(const char *name, const char *file, ia_threadpool *pool) {
    char dir[2048], path[4096];
    snprintf(dir, sizeof dir, "%s%s", test_source_path("tests/fixtures/decoders/"), name);
    snprintf(path, sizeof path, "%s/expected.json", dir);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        fprintf(stderr, "  %s: no fixture (%s)\n", name, jerr.text);
        return;
    }
    if (file)
        snprintf(path, sizeof path, "%s/%s", dir, file);
    if (file && access(path, R_OK) != 0) {
        fprintf(stderr, "  %s: no %s yet\n", name, file);
        json_decref(root);
        return;
    }
    ia_decoder *dec = NULL;
    CHECK_OK(ia_decoder_load(file ? path : dir, ia_backend_cpu(), IA_DTYPE_F32, &dec));
    if (!dec) {
        json_decref(root);
        return;
    }
    size_t vocab = (size_t)ia_decoder_get_config(dec)->vocab_size;
    CHECK_EQ_INT(vocab, json_integer_value(json_object_get(root, "vocab_size")));
    json_t *prompts = json_object_get(root, "prompts");
    double worst = 0;
    ia_kv_cache *kv = NULL;
    CHECK_OK(ia_kv_cache_create(dec, 0, IA_DTYPE_F32, &kv));
    for (size_t p = 0; kv && p < json_array_size(prompts); p++) {
        json_t *pr = json_array_get(prompts, p), *jids = json_object_get(pr, "ids");
        json_t *jl = json_object_get(pr, "logits"), *greedy = json_object_get(pr, "greedy");
        size_t n = json_array_size(jids);
        int32_t *ids = malloc(n * sizeof *ids);
        float *out = malloc(n * vocab * sizeof *out);
        for (size_t i = 0; i < n; i++)
            ids[i] = (int32_t)json_integer_value(json_array_get(jids, i));
        ia_kv_cache_reset(kv);
        CHECK_OK(ia_decoder_forward(dec, kv, ids, n, true, out, pool));
        CHECK_EQ_INT(json_array_size(jl), n * vocab);
        for (size_t i = 0; i < n * vocab && i < json_array_size(jl); i++)
            worst = fmax(worst, fabs(out[i] - json_number_value(json_array_get(jl, i))));
        const float *last = out + (n - 1) * vocab;
        for (size_t g = 0; g < json_array_size(greedy); g++) {
            int32_t tok = 0;
            for (size_t v = 1; v < vocab; v++)
                if (last[v] > last[tok])
                    tok = (int32_t)v;
            long long want = json_integer_value(json_array_get(greedy, g));
            CHECK_MSG(tok == want, "%s %s prompt %zu greedy token %zu: %d, transformers %lld", name,
                      file ? file : "safetensors", p, g, tok, want);
            if (tok != want)
                break;
            CHECK_OK(ia_decoder_forward(dec, kv, &tok, 1, false, out, pool));
            last = out;
        }
        free(ids);
        free(out);
    }
    fprintf(stderr, "  decoders/%-8s %-12s max |diff| %.3g\n", name, file ? file : "safetensors",
            worst);
    CHECK_MSG(worst <= TOL, "decoders/%s: %g", name, worst);
    ia_kv_cache_free(kv);
    ia_decoder_free(dec);
    json_decref(root);
}

/* tests/fixtures/decoders/<name>/model.gguf (our converter's output) and
 * the directory it came from give bit-identical logits on every variant. */
TEST(shared_gguf_equals_safetensors_exactly) {
    static const char *const names[] = {"gpt2", "llama", "mistral", "qwen2"};
    ia_threadpool *pool = ia_threadpool_create(2);
    for (size_t i = 0; i < 4; i++) {
        char dir[2048], path[4096];
        snprintf(dir, sizeof dir, "%s%s", test_source_path("tests/fixtures/decoders/"), names[i]);
        snprintf(path, sizeof path, "%s/expected.json", dir);
        json_error_t jerr;
        json_t *root = json_load_file(path, 0, &jerr);
        snprintf(path, sizeof path, "%s/model.gguf", dir);
        if (!root || access(path, R_OK) != 0) {
            fprintf(stderr, "  decoders/%s: no fixture or model.gguf\n", names[i]);
            json_decref(root);
            continue;
        }
        prompt_set ps = {0};
        json_t *prompts = json_object_get(root, "prompts");
        for (size_t p = 0; p < json_array_size(prompts) && ps.n < 8; p++) {
            json_t *jids = json_object_get(json_array_get(prompts, p), "ids");
            if (json_array_size(jids) == 0 || json_array_size(jids) > 256)
                continue;
            for (size_t k = 0; k < json_array_size(jids); k++)
                ps.ids[ps.n][k] = (int32_t)json_integer_value(json_array_get(jids, k));
            ps.len[ps.n++] = json_array_size(jids);
        }
        CHECK(ps.n > 0);
        for (size_t v = 0; v < 3; v++) {
            const ia_backend *be = ia_backend_cpu_variant(variants[v]);
            if (!be)
                continue;
            ia_decoder *hf = NULL, *gg = NULL;
            CHECK_OK(ia_decoder_load(dir, be, IA_DTYPE_F32, &hf));
            CHECK_OK(ia_decoder_load(path, be, IA_DTYPE_F32, &gg));
            if (hf && gg) {
                double worst;
                size_t differ = logits_differ(hf, gg, &ps, pool, &worst);
                fprintf(stderr,
                        "  decoders/%-8s %-8s model.gguf vs safetensors: %zu differ (max %.3g)\n",
                        names[i], variants[v], differ, worst);
                CHECK_MSG(differ == 0, "decoders/%s on %s: %zu logits differ, max %g", names[i],
                          variants[v], differ, worst);
            }
            ia_decoder_free(hf);
            ia_decoder_free(gg);
        }
        json_decref(root);
    }
    ia_threadpool_destroy(pool);
}

TEST(shared_decoder_fixtures) {
    static const char *const names[] = {"gpt2", "llama", "mistral", "qwen2"};
    ia_threadpool *pool = ia_threadpool_create(2);
    for (size_t i = 0; i < 4; i++) {
        shared_fixture_case(names[i], NULL, pool);
        shared_fixture_case(names[i], "model.gguf", pool);
    }
    ia_threadpool_destroy(pool);
}
