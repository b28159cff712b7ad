/*
 * The embedder: tokenizer + encoder + pooling, as sentence-transformers
 * composes them, driven from the model directory's own files, or from what
 * a BERT GGUF file records (tokenizer.ggml.*, bert.pooling_type). GGUF has
 * no place for sentence-transformers' Normalize module, so a GGUF model is
 * L2-normalised unless the caller says otherwise, as llama.cpp's embedding
 * tools do by default (--embd-normalize 2); MiniLM's directory asks for
 * the same through its modules.json.
 *
 * Throughput comes from three choices. Inputs are tokenised in parallel.
 * They are then sorted by token count and cut into batches by a token budget,
 * so similar lengths run together. And batches are packed without padding:
 * every kernel, attention included, sees exactly the real tokens. Results are
 * written to each input's own row, so the order of batches never shows.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "ia/formats.h"
#include "ia/quant.h"
#include "ia/runtime.h"

#define DEFAULT_BATCH_TOKENS 8192
#define CONFIG_MAX_BYTES (1u << 20)

struct ia_embedder {
    ia_tokenizer *tokenizer; /* NULL with skip_tokenizer */
    ia_encoder *encoder;
    const ia_backend *backend;
    ia_threadpool *pool;
    ia_arena *arena;
    ia_pooling pooling;
    bool normalize;
    size_t max_length;
    size_t batch_tokens;
    size_t batch_size;
    size_t dim;
    size_t bytes; /* ia_embedder_bytes: estimated at load */
};

ia_embedder_options ia_embedder_options_default(void) {
    return (ia_embedder_options){.dtype = IA_DTYPE_F32, .normalize = -1};
}

/* ---- sentence-transformers configuration ------------------------------------ */

static ia_status read_pooling_config(const char *dir, const char *module_path, ia_pooling *out) {
    char *sub = ia_path_join(dir, module_path);
    char *path = sub ? ia_path_join(sub, "config.json") : NULL;
    free(sub);
    if (!path)
        return IA_ENOMEM;
    ia_config *cfg = NULL;
    ia_status st = ia_config_load(path, &cfg);
    if (st != IA_OK)
        goto done;
    static const struct {
        const char *key, *mode_name;
        ia_pooling mode;
    } modes[] = {
        {"pooling_mode_mean_tokens", "mean", IA_POOL_MEAN},
        {"pooling_mode_cls_token", "cls", IA_POOL_CLS},
        {"pooling_mode_max_tokens", "max", IA_POOL_MAX},
        {"pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len_tokens", IA_POOL_MEAN_SQRT_LEN},
        {"pooling_mode_lasttoken", "lasttoken", IA_POOL_LAST},
    };
    int chosen = 0;
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        bool on = false;
        if ((st = ia_config_bool(cfg, modes[i].key, false, &on)))
            goto done;
        if (on) {
            *out = modes[i].mode;
            chosen++;
        }
    }
    const char *mode = NULL;
    if ((st = ia_config_string(cfg, "pooling_mode", false, &mode)))
        goto done;
    for (size_t i = 0; mode && !chosen && i < sizeof modes / sizeof modes[0]; i++) {
        if (strcmp(mode, modes[i].mode_name) == 0) {
            *out = modes[i].mode;
            chosen = 1;
        }
    }
    if (chosen == 0)
        st = ia_error_set(IA_EUNSUPPORTED, "%s: no pooling mode is switched on", path);
    else if (chosen > 1)
        st = ia_error_set(IA_EUNSUPPORTED,
                          "%s: several pooling modes at once (concatenated "
                          "pooling) are not supported",
                          path);
done:
    ia_config_free(cfg);
    free(path);
    return st;
}

/* Reads modules.json: the Pooling module's settings and whether a Normalize
 * module follows. Without modules.json: mean pooling, no normalisation (what
 * sentence-transformers does for a plain HF model). */
static ia_status read_modules(const char *dir, ia_embedder *emb) {
    emb->pooling = IA_POOL_MEAN;
    emb->normalize = false;
    char *path = ia_path_join(dir, "modules.json");
    if (!path)
        return IA_ENOMEM;
    json_t *root = NULL;
    ia_status st = IA_OK;
    if (!ia_file_exists(path))
        goto done;
    if ((st = ia_json_load_file(path, CONFIG_MAX_BYTES, &root)))
        goto done;
    if (!json_is_array(root)) {
        st = ia_error_set(IA_EPARSE, "%s: expected a JSON array of modules", path);
        goto done;
    }
    size_t i;
    json_t *module;
    json_array_foreach(root, i, module) {
        const char *type = json_string_value(json_object_get(module, "type"));
        const char *mpath = json_string_value(json_object_get(module, "path"));
        if (!type) {
            st = ia_error_set(IA_EPARSE, "%s: module %zu has no string 'type'", path, i);
            goto done;
        }
        const char *dot = strrchr(type, '.');
        const char *cls = dot ? dot + 1 : type;
        if (strcmp(cls, "Pooling") == 0) {
            if (!mpath) {
                st =
                    ia_error_set(IA_EPARSE, "%s: Pooling module %zu has no string 'path'", path, i);
                goto done;
            }
            if ((st = read_pooling_config(dir, mpath, &emb->pooling)))
                goto done;
        } else if (strcmp(cls, "Normalize") == 0) {
            emb->normalize = true;
        } else if (strcmp(cls, "Transformer") != 0) {
            st = ia_error_set(IA_EUNSUPPORTED,
                              "%s: module type '%s' is not supported "
                              "(Transformer, Pooling and Normalize are)",
                              path, type);
            goto done;
        }
    }
done:
    json_decref(root);
    free(path);
    return st;
}

/* max_seq_length from sentence_bert_config.json, else the tokenizer's
 * model_max_length, capped by the positions the encoder has. */
static ia_status read_max_length(const char *dir, size_t model_max, size_t *out) {
    static const struct {
        const char *file, *key;
    } sources[] = {{"sentence_bert_config.json", "max_seq_length"},
                   {"tokenizer_config.json", "model_max_length"}};
    *out = model_max;
    for (size_t i = 0; i < sizeof sources / sizeof sources[0]; i++) {
        char *path = ia_path_join(dir, sources[i].file);
        if (!path)
            return IA_ENOMEM;
        ia_config *cfg = NULL;
        ia_status st = IA_OK;
        int64_t value = 0;
        bool found = false;
        if (ia_file_exists(path)) {
            st = ia_config_load(path, &cfg);
            if (st == IA_OK && ia_config_has(cfg, sources[i].key)) {
                double v = 0;
                st = ia_config_float(cfg, sources[i].key, true, &v);
                value = v > 0 && v < 1e9 ? (int64_t)v : 0;
                found = st == IA_OK && value > 0;
            }
        }
        ia_config_free(cfg);
        free(path);
        if (st != IA_OK)
            return st;
        if (found) {
            if ((size_t)value < model_max)
                *out = (size_t)value;
            return IA_OK;
        }
    }
    return IA_OK;
}

/* ---- size estimate (for the resource pool) ------------------------------------ */

/* The model's bytes as the planner counts them (runtime/plan.c): weights at
 * the compute type plus the scratch of the largest batch, without the
 * process's own overhead, which the pool does not share out. */
static ia_status planned_bytes(const char *dir, ia_dtype dtype, size_t batch_tokens, size_t *out) {
    ia_plan_request req = {.model = dir,
                           .batch = batch_tokens,
                           .seq = 1,
                           .batch_tokens = batch_tokens,
                           .dtype = ia_dtype_name(dtype),
                           .memory_only = true};
    ia_model_plan plan;
    ia_status st = ia_model_plan_make(&req, &plan);
    *out = st == IA_OK ? (size_t)(plan.weights_bytes + plan.activation_bytes) : 0;
    return st;
}

/* The weights and scratch of a GGUF encoder: the file's tensor bytes (a
 * quantised file stays quantised in memory) plus, as the planner counts
 * activations, the f32 rows of the largest batch. */
static ia_status gguf_bytes(const char *path, size_t batch_tokens, size_t *out) {
    ia_gguf *g = NULL;
    int64_t hidden = 0, inter = 0;
    ia_status st = ia_gguf_open(path, &g);
    if (st == IA_OK && (st = ia_gguf_get_i64(g, "bert.embedding_length", true, &hidden)) == IA_OK)
        st = ia_gguf_get_i64(g, "bert.feed_forward_length", true, &inter);
    uint64_t total = 0;
    for (size_t i = 0; st == IA_OK && i < ia_gguf_tensor_count(g); i++)
        total += ia_gguf_tensor_at(g, i)->n_bytes;
    ia_gguf_close(g);
    if (st == IA_OK && (hidden <= 0 || inter <= 0 || hidden > (1 << 24) || inter > (1 << 24)))
        st = ia_error_set(IA_ERANGE,
                          "%s: bert.embedding_length or feed_forward_length is out "
                          "of range",
                          path);
    size_t per_token = (size_t)(6 * hidden + inter) * sizeof(float);
    *out = st == IA_OK ? (size_t)total + batch_tokens * per_token : 0;
    return st;
}

size_t ia_embedder_bytes(const ia_embedder *emb) { return emb->bytes; }

ia_status ia_embedder_estimate_bytes(const char *dir, const ia_embedder_options *opts_in,
                                     size_t *out) {
    ia_embedder_options opts = opts_in ? *opts_in : ia_embedder_options_default();
    size_t batch = opts.batch_tokens ? opts.batch_tokens : DEFAULT_BATCH_TOKENS;
    if (ia_encoder_path_is_gguf(dir))
        return gguf_bytes(dir, batch, out);
    return planned_bytes(dir, opts.dtype, batch, out);
}

/* ---- loading ------------------------------------------------------------------- */

/* A GGUF's tokenizer (tokenizer.ggml.*), opened just for it. */
static ia_status gguf_tokenizer(const char *path, ia_tokenizer **out) {
    ia_gguf *g = NULL;
    ia_status st = ia_gguf_open(path, &g);
    if (st == IA_OK)
        st = ia_tokenizer_from_gguf(g, out);
    ia_gguf_close(g);
    return st;
}

ia_status ia_embedder_load(const char *dir, const ia_embedder_options *opts_in, ia_embedder **out) {
    ia_embedder_options opts = opts_in ? *opts_in : ia_embedder_options_default();
    *out = NULL;
    ia_embedder *emb = ia_calloc(1, sizeof *emb);
    if (!emb)
        return IA_ENOMEM;
    ia_status st;
    emb->backend = opts.backend ? opts.backend : ia_backend_cpu();
    if (opts.dtype != IA_DTYPE_F32 && opts.dtype != IA_DTYPE_BF16 &&
        (!ia_dtype_is_quantized(opts.dtype) || opts.dtype == IA_DTYPE_Q8_K)) {
        st = ia_error_set(IA_EINVAL,
                          "compute type %s is not available for embeddings (f32, bf16 or a "
                          "weight quantisation type: q8_0, q4_0, ..., q6_k)",
                          ia_dtype_name(opts.dtype));
        goto fail;
    }
    bool gguf = ia_encoder_path_is_gguf(dir);
    if (!opts.skip_tokenizer && (st = gguf ? gguf_tokenizer(dir, &emb->tokenizer)
                                           : ia_tokenizer_load_dir(dir, &emb->tokenizer)))
        goto fail;
    ia_encoder_options eo = {.backend = emb->backend,
                             .compute = opts.dtype,
                             .weight_type = opts.weight_type,
                             .weight_type_ctx = opts.weight_type_ctx};
    if ((st = ia_encoder_load_ex(dir, &eo, &emb->encoder)))
        goto fail;
    const ia_encoder_config *cfg = ia_encoder_get_config(emb->encoder);
    if (gguf) {
        emb->pooling = cfg->has_pooling ? cfg->pooling : IA_POOL_MEAN;
        emb->normalize = true;
        emb->max_length = (size_t)cfg->max_tokens;
    } else if ((st = read_modules(dir, emb)) ||
               (st = read_max_length(dir, (size_t)cfg->max_tokens, &emb->max_length))) {
        goto fail;
    }
    if (opts.max_length)
        emb->max_length =
            opts.max_length < (size_t)cfg->max_tokens ? opts.max_length : (size_t)cfg->max_tokens;
    if (opts.normalize >= 0)
        emb->normalize = opts.normalize != 0;
    emb->dim = (size_t)cfg->hidden_size;
    emb->batch_tokens = opts.batch_tokens ? opts.batch_tokens : DEFAULT_BATCH_TOKENS;
    emb->batch_size = opts.batch_size ? opts.batch_size : SIZE_MAX;
    if (emb->batch_tokens < emb->max_length)
        emb->batch_tokens = emb->max_length;
    int threads = opts.n_threads > 0 ? opts.n_threads : ia_cpu_physical_cores();
    emb->pool = ia_threadpool_create(threads);
    emb->arena = ia_arena_create(1 << 20);
    if (!emb->pool || !emb->arena) {
        st = IA_ENOMEM;
        goto fail;
    }
    if ((st = gguf ? gguf_bytes(dir, emb->batch_tokens, &emb->bytes)
                   : planned_bytes(dir, opts.dtype, emb->batch_tokens, &emb->bytes)))
        goto fail;
    *out = emb;
    return IA_OK;
fail:
    ia_embedder_free(emb);
    return st;
}

void ia_embedder_free(ia_embedder *emb) {
    if (!emb)
        return;
    ia_threadpool_destroy(emb->pool);
    ia_arena_destroy(emb->arena);
    ia_encoder_free(emb->encoder);
    ia_tokenizer_free(emb->tokenizer);
    free(emb);
}

size_t ia_embedder_dim(const ia_embedder *emb) { return emb->dim; }
size_t ia_embedder_max_length(const ia_embedder *emb) { return emb->max_length; }
const ia_tokenizer *ia_embedder_tokenizer(const ia_embedder *emb) { return emb->tokenizer; }
const ia_encoder *ia_embedder_encoder(const ia_embedder *emb) { return emb->encoder; }
ia_pooling ia_embedder_pooling(const ia_embedder *emb) { return emb->pooling; }
bool ia_embedder_normalizes(const ia_embedder *emb) { return emb->normalize; }

/* ---- running ---------------------------------------------------------------- */

/* One sequence to embed: where its ids are and which output row it fills. */
typedef struct seq_ref {
    const int32_t *ids, *type_ids;
    int32_t len;
    size_t row;
} seq_ref;

static int by_length(const void *a, const void *b) {
    const seq_ref *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

/* Runs sorted sequences through the encoder in token-budgeted batches. */
static ia_status run_sorted(ia_embedder *emb, seq_ref *seqs, size_t n, float *out) {
    const ia_backend *be = emb->backend;
    size_t dim = emb->dim;
    ia_status st = IA_OK;
    for (size_t first = 0; first < n && st == IA_OK;) {
        size_t last = first, tokens = 0;
        while (last < n && last - first < emb->batch_size &&
               (last == first || tokens + (size_t)seqs[last].len <= emb->batch_tokens))
            tokens += (size_t)seqs[last++].len;
        size_t nb = last - first;
        ia_arena_reset(emb->arena);
        int32_t *ids = ia_arena_alloc(emb->arena, tokens * sizeof(int32_t), 64);
        int32_t *types = ia_arena_alloc(emb->arena, tokens * sizeof(int32_t), 64);
        int32_t *starts = ia_arena_alloc(emb->arena, (nb + 1) * sizeof(int32_t), 64);
        float *hidden = ia_arena_alloc(emb->arena, tokens * dim * sizeof(float), 64);
        float *pooled = ia_arena_alloc(emb->arena, nb * dim * sizeof(float), 64);
        if (!ids || !types || !starts || !hidden || !pooled)
            return IA_ENOMEM;
        bool any_types = false;
        starts[0] = 0;
        for (size_t i = 0; i < nb; i++) {
            const seq_ref *s = &seqs[first + i];
            memcpy(ids + starts[i], s->ids, (size_t)s->len * sizeof(int32_t));
            if (s->type_ids) {
                memcpy(types + starts[i], s->type_ids, (size_t)s->len * sizeof(int32_t));
                any_types = true;
            } else {
                memset(types + starts[i], 0, (size_t)s->len * sizeof(int32_t));
            }
            starts[i + 1] = starts[i] + s->len;
        }
        st = ia_encoder_forward(emb->encoder, ids, any_types ? types : NULL, starts, nb, hidden,
                                emb->arena, emb->pool);
        if (st != IA_OK) {
            ia_error_prefix("input %zu", seqs[first].row);
            break;
        }
        be->pool(emb->pooling, hidden, dim, dim, starts, nb, pooled, dim);
        if (emb->normalize)
            be->l2_normalize(pooled, dim, nb, dim);
        for (size_t i = 0; i < nb; i++)
            memcpy(out + seqs[first + i].row * dim, pooled + i * dim, dim * sizeof(float));
        first = last;
    }
    return st;
}

ia_status ia_embedder_embed_ids(ia_embedder *emb, const int32_t *ids, const int32_t *type_ids,
                                const int32_t *seq_start, size_t n, float *out) {
    seq_ref *seqs = ia_malloc_array(n ? n : 1, sizeof *seqs);
    if (!seqs)
        return IA_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        seqs[i] = (seq_ref){ids + seq_start[i], type_ids ? type_ids + seq_start[i] : NULL,
                            seq_start[i + 1] - seq_start[i], i};
        if (seqs[i].len <= 0 || (size_t)seqs[i].len > emb->max_length) {
            ia_status st =
                ia_error_set(IA_ERANGE, "input %zu has %d tokens; this model takes 1 to %zu", i,
                             seqs[i].len, emb->max_length);
            free(seqs);
            return st;
        }
    }
    qsort(seqs, n, sizeof *seqs, by_length);
    ia_status st = run_sorted(emb, seqs, n, out);
    free(seqs);
    return st;
}

typedef struct tokenize_job {
    const ia_tokenizer *tok;
    const char *const *texts;
    const size_t *lens;
    ia_encoding *encodings;
    ia_status *status;
    ia_encode_options opts;
} tokenize_job;

#define TOKENIZE_CHUNK 16

static void tokenize_task(void *ctx, size_t task, int thread) {
    tokenize_job *job = ctx;
    (void)thread;
    for (size_t i = task * TOKENIZE_CHUNK; i < (task + 1) * TOKENIZE_CHUNK && job->texts[i]; i++) {
        size_t len = job->lens ? job->lens[i] : strlen(job->texts[i]);
        job->status[i] = ia_tokenizer_encode(job->tok, job->texts[i], len, NULL, 0, &job->opts,
                                             &job->encodings[i]);
    }
}

ia_status ia_embedder_embed(ia_embedder *emb, const char *const *texts, const size_t *lens,
                            size_t n, float *out) {
    if (!emb->tokenizer)
        return ia_error_set(IA_EINVAL, "this embedder was loaded without a tokenizer");
    if (n == 0)
        return IA_OK;
    ia_status st = IA_ENOMEM;
    /* a NULL-terminated copy of the text pointers bounds the chunked tasks */
    const char **list = ia_malloc_array(n + TOKENIZE_CHUNK, sizeof *list);
    ia_encoding *encs = ia_calloc(n, sizeof *encs);
    ia_status *status = ia_calloc(n, sizeof *status);
    seq_ref *seqs = ia_malloc_array(n, sizeof *seqs);
    if (!list || !encs || !status || !seqs)
        goto done;
    memcpy(list, texts, n * sizeof *list);
    for (size_t i = n; i < n + TOKENIZE_CHUNK; i++)
        list[i] = NULL;
    for (size_t i = 0; i < n; i++)
        if (!texts[i]) {
            st = ia_error_set(IA_EINVAL, "input %zu is NULL", i);
            goto done;
        }
    tokenize_job job = {emb->tokenizer, list, lens, encs, status, ia_encode_options_default()};
    job.opts.max_length = emb->max_length;
    ia_threadpool_run(emb->pool, (n + TOKENIZE_CHUNK - 1) / TOKENIZE_CHUNK, tokenize_task, &job);
    for (size_t i = 0; i < n; i++) {
        if (status[i] != IA_OK) {
            /* re-run on this thread: the message was left in the worker's */
            size_t len = lens ? lens[i] : strlen(texts[i]);
            ia_encoding tmp = {0};
            st = ia_tokenizer_encode(emb->tokenizer, texts[i], len, NULL, 0, &job.opts, &tmp);
            ia_encoding_free(&tmp);
            if (st == IA_OK)
                st = status[i];
            ia_error_prefix("input %zu", i);
            goto done;
        }
        seqs[i] = (seq_ref){encs[i].ids, encs[i].type_ids, (int32_t)encs[i].len, i};
    }
    qsort(seqs, n, sizeof *seqs, by_length);
    st = run_sorted(emb, seqs, n, out);
done:
    for (size_t i = 0; encs && i < n; i++)
        ia_encoding_free(&encs[i]);
    free(list);
    free(encs);
    free(status);
    free(seqs);
    return st;
}
