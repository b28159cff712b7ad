/*
 * plan.c: what running a model here would take, without loading it.
 *
 * The estimate follows this engine's real buffers rather than a rule of
 * thumb, so that it can be checked against measured peak RSS:
 *   - weights: linear (2-D, non-embedding) tensors are packed to the compute
 *     type at load and the file pages dropped; embedding tables stay mapped in
 *     the file's type; 1-D tensors (biases, norms) are kept as f32; an
 *     encoder's pooler head is never read, so never resident;
 *   - activations: the encoder runs length-sorted batches of at most
 *     batch_tokens tokens (8192 by default) and holds, per token, the hidden
 *     state, Q/K/V, the attention context, one temporary and the FFN
 *     intermediate, all f32;
 *   - decoders (planned before their engine lands): KV cache at f16 for
 *     batch × seq, prefill activations, and logits for the batch;
 *   - overhead: the process itself (code, libraries, allocator) as measured
 *     for the CLI, plus the tokenizer's tables.
 * Sizes come from the safetensors headers (or GGUF tensor infos) when the
 * files are there, and from config.json's hyper-parameters otherwise.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "ia/formats.h"
#include "ia/runtime.h"

/* The CLI's resident size before it loads a model (binary, libc, libcurl,
 * OpenSSL, jansson, allocator arenas, thread stacks): `ipfs-accelerate
 * version` peaks at 8.6 MiB on Debian 12 x86-64, and an embed of a tiny
 * model at about 9 MiB beyond its weights and scratch. */
#define PLAN_PROCESS_BYTES (9ull * 1024 * 1024)
/* Tokenizer tables per vocabulary entry (hash slot, string, id arrays). */
#define PLAN_TOKENIZER_BYTES_PER_TOKEN 32ull
/* The embedder's default batch_tokens (runtime/embedder.c). */
#define PLAN_BATCH_TOKENS 8192ull

/* Bytes per element of a compute type, from ggml's type table (formats/):
 * its block bytes over its block elements; the q4_k_m and q4_k_s recipes
 * are priced as q4_k. The plain float types and the ggml block formats
 * this project targets (Q4_0..Q8_0, Q2_K..Q6_K) are accepted. */
static bool weight_type(const char *name, double *bytes_per_elem) {
    if (strcasecmp(name, "q4_k_m") == 0 || strcasecmp(name, "q4_k_s") == 0)
        name = "q4_k";
    for (uint32_t id = 0; id <= IA_GGML_BF16; id++) {
        const ia_ggml_type_info *t = ia_ggml_type_get_info(id);
        bool wanted =
            id <= IA_GGML_Q8_0 || (id >= IA_GGML_Q2_K && id <= IA_GGML_Q6_K) || id == IA_GGML_BF16;
        if (t && wanted && strcasecmp(t->name, name) == 0) {
            *bytes_per_elem = (double)t->block_bytes / t->block_elems;
            return true;
        }
    }
    return false;
}

/* ---- config ------------------------------------------------------------------------ */

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

static bool is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

ia_status ia_model_config_load(const char *model, json_t **out) {
    *out = NULL;
    if (has_suffix(model, ".gguf")) {
        ia_gguf *g;
        ia_status st = ia_gguf_open(model, &g);
        if (st != IA_OK)
            return st;
        st = ia_gguf_config_json(g, out);
        ia_gguf_close(g);
        return st;
    }
    if (!is_dir(model))
        return ia_json_load_file(model, 16u << 20, out);
    char *path = ia_path_join(model, "config.json");
    if (!path)
        return ia_error_set(IA_ENOMEM, "out of memory");
    ia_status st = ia_json_load_file(path, 16u << 20, out);
    free(path);
    return st;
}

/* The first of `keys` present in cfg: *out its value, *key its name. A
 * present key that is not a positive integer, or is past `limit`, is an
 * error naming it: the planner would otherwise compute nonsense. */
static ia_status config_u64(const json_t *cfg, const char *const *keys, uint64_t limit,
                            uint64_t *out) {
    *out = 0;
    for (size_t i = 0; keys[i]; i++) {
        json_t *v = json_object_get(cfg, keys[i]);
        if (!v || json_is_null(v))
            continue;
        if (!json_is_integer(v) || json_integer_value(v) <= 0)
            return ia_error_set(IA_ERANGE, "config key '%s' must be a positive integer", keys[i]);
        if ((uint64_t)json_integer_value(v) > limit)
            return ia_error_set(IA_ERANGE, "config key '%s' is %lld, beyond any real model (%llu)",
                                keys[i], (long long)json_integer_value(v),
                                (unsigned long long)limit);
        *out = (uint64_t)json_integer_value(v);
        return IA_OK;
    }
    return IA_OK;
}

static bool has_positive(const json_t *cfg, const char *const *keys) {
    for (size_t i = 0; keys[i]; i++) {
        json_t *v = json_object_get(cfg, keys[i]);
        if (json_is_integer(v) && json_integer_value(v) > 0)
            return true;
    }
    return false;
}

/* Multimodal and wrapper configs keep the language model's numbers in a
 * sub-config; the planner sizes that part (vision towers are smaller). */
static const json_t *text_config(const json_t *cfg) {
    static const char *const nested[] = {"text_config", "llm_config", "language_config", "decoder",
                                         NULL};
    static const char *const hidden_keys[] = {"hidden_size", "n_embd", "d_model", "dim", NULL};
    if (has_positive(cfg, hidden_keys))
        return cfg;
    for (size_t i = 0; nested[i]; i++) {
        const json_t *sub = json_object_get(cfg, nested[i]);
        if (json_is_object(sub) && has_positive(sub, hidden_keys))
            return sub;
    }
    return cfg;
}

static ia_status shape_from_config(const json_t *root, ia_model_shape *s) {
    static const char *const hidden[] = {"hidden_size", "n_embd",    "d_model",
                                         "dim",         "embed_dim", NULL};
    static const char *const layers[] = {"num_hidden_layers", "n_layer",        "num_layers",
                                         "n_layers",          "encoder_layers", NULL};
    static const char *const heads[] = {"num_attention_heads",     "n_head", "num_heads", "n_heads",
                                        "encoder_attention_heads", NULL};
    static const char *const kv_heads[] = {"num_key_value_heads", "num_kv_heads", "n_head_kv",
                                           NULL};
    static const char *const inter[] = {"intermediate_size", "n_inner",         "ffn_dim", "d_ff",
                                        "hidden_dim",        "encoder_ffn_dim", NULL};
    static const char *const vocab[] = {"vocab_size", "n_vocab", NULL};
    static const char *const positions[] = {
        "max_position_embeddings", "n_positions", "n_ctx", "max_seq_len", "seq_length", NULL};
    static const char *const types[] = {"type_vocab_size", NULL};
    const struct {
        uint64_t *field;
        const char *const *keys;
        uint64_t limit;
    } fields[] = {
        {&s->hidden, hidden, 1u << 17},       {&s->layers, layers, 1u << 12},
        {&s->heads, heads, 1u << 12},         {&s->kv_heads, kv_heads, 1u << 12},
        {&s->intermediate, inter, 1u << 20},  {&s->vocab, vocab, 1u << 24},
        {&s->positions, positions, 1u << 24}, {&s->type_vocab, types, 1u << 16},
    };
    const json_t *cfg = text_config(root);
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        ia_status st = config_u64(cfg, fields[i].keys, fields[i].limit, fields[i].field);
        if (st != IA_OK)
            return st;
    }
    if (!s->kv_heads)
        s->kv_heads = json_is_true(json_object_get(cfg, "multi_query")) ? 1 : s->heads;
    if (s->heads && s->kv_heads > s->heads)
        return ia_error_set(IA_ERANGE, "config: %llu key/value heads but %llu attention heads",
                            (unsigned long long)s->kv_heads, (unsigned long long)s->heads);
    if (!s->intermediate)
        s->intermediate = 4 * s->hidden;
    return IA_OK;
}

/* ---- weights --------------------------------------------------------------------- */

typedef struct weight_sizes {
    uint64_t params;
    uint64_t linear_elems; /* 2-D tensors the engine packs to the compute type */
    uint64_t table_bytes;  /* embedding tables, kept in the file's type */
    uint64_t vector_elems; /* 1-D tensors kept as f32 */
} weight_sizes;

static bool is_table(const char *name) {
    return strstr(name, "embeddings.") || strstr(name, "embed_tokens") || strstr(name, "wte.") ||
           strstr(name, "wpe.") || strstr(name, "token_embd") || strstr(name, "position_embd");
}

static ia_status add_safetensors(const char *path, bool encoder, weight_sizes *w) {
    ia_safetensors *st;
    ia_status status = ia_safetensors_open(path, &st);
    if (status != IA_OK)
        return status;
    for (size_t i = 0; i < ia_safetensors_count(st); i++) {
        const ia_tensor *t = ia_safetensors_at(st, i);
        uint64_t n = (uint64_t)ia_tensor_numel(t);
        size_t bytes = 0;
        ia_dtype_bytes(t->dtype, n, &bytes);
        w->params += n;
        if (encoder && strncmp(t->name, "pooler.", 7) == 0)
            continue; /* sentence-transformers pooling never reads the pooler head */
        if (t->ndim >= 2 && is_table(t->name))
            w->table_bytes += bytes;
        else if (t->ndim >= 2)
            w->linear_elems += n;
        else
            w->vector_elems += n;
    }
    ia_safetensors_close(st);
    return IA_OK;
}

/* Sums every *.safetensors in dir (sharded checkpoints too). Sets *found. */
static ia_status weights_from_dir(const char *dir, bool encoder, weight_sizes *w, bool *found) {
    *found = false;
    DIR *d = opendir(dir);
    if (!d)
        return IA_OK;
    ia_status st = IA_OK;
    struct dirent *e;
    while (st == IA_OK && (e = readdir(d)) != NULL) {
        if (!has_suffix(e->d_name, ".safetensors"))
            continue;
        char *path = ia_path_join(dir, e->d_name);
        if (!path) {
            st = ia_error_set(IA_ENOMEM, "out of memory");
            break;
        }
        st = add_safetensors(path, encoder, w);
        free(path);
        *found = true;
    }
    closedir(d);
    return st;
}

static ia_status weights_from_gguf(const char *path, weight_sizes *w) {
    ia_gguf *g;
    ia_status st = ia_gguf_open(path, &g);
    if (st != IA_OK)
        return st;
    for (size_t i = 0; i < ia_gguf_tensor_count(g); i++) {
        const ia_gguf_tensor *t = ia_gguf_tensor_at(g, i);
        uint64_t n = 1;
        for (uint32_t d = 0; d < t->n_dims; d++)
            n *= t->dims[d];
        w->params += n;
        if (t->n_dims >= 2 && is_table(t->name))
            w->table_bytes += t->n_bytes;
        else if (t->n_dims >= 2)
            w->linear_elems += n;
        else
            w->vector_elems += n;
    }
    ia_gguf_close(g);
    return IA_OK;
}

/* From hyper-parameters alone: the transformer's matrices per layer, and the
 * tables. Gated MLPs (SiLU decoders) have three FFN matrices, others two. */
static void weights_from_shape(const json_t *cfg, const ia_model_shape *s, ia_model_family family,
                               weight_sizes *w) {
    uint64_t H = s->hidden, I = s->intermediate, L = s->layers;
    uint64_t head_dim = s->heads ? H / s->heads : H;
    uint64_t kv = s->kv_heads * head_dim;
    const char *act = json_string_value(json_object_get(text_config(cfg), "hidden_act"));
    bool gated = family == IA_FAMILY_TEXT_DECODER && act && strcmp(act, "silu") == 0;
    uint64_t attn = H * H + 2 * H * kv + H * H;
    uint64_t mlp = (gated ? 3 : 2) * H * I;
    uint64_t layers = family == IA_FAMILY_ENCODER_DECODER ? 2 * L : L;
    w->linear_elems = layers * (attn + mlp);
    w->vector_elems = layers * (4 * H + I + 2 * kv);
    uint64_t tables = s->vocab * H + (family == IA_FAMILY_TEXT_DECODER ? 0 : s->positions * H) +
                      s->type_vocab * H;
    bool tied = !json_is_false(json_object_get(cfg, "tie_word_embeddings"));
    if (family == IA_FAMILY_TEXT_DECODER && !tied)
        w->linear_elems += s->vocab * H; /* the separate output head */
    w->params = w->linear_elems + w->vector_elems + tables;
    w->table_bytes = tables; /* elements here: the caller prices them at the compute type */
}

/* ---- the plan ---------------------------------------------------------------------- */

/* Workload sizes multiply quickly (batch x seq x hidden x layers): they are
 * computed in double and saturate rather than wrap. */
static uint64_t to_bytes(double v) { return v < 1.8e19 ? (uint64_t)v : UINT64_MAX; }

static uint64_t activations(const ia_model_plan *p, uint64_t batch_tokens) {
    const ia_model_shape *s = &p->shape;
    double H = (double)s->hidden, I = (double)s->intermediate;
    double tokens = (double)p->batch * (double)p->seq;
    if (p->cls.family == IA_FAMILY_TEXT_DECODER) {
        /* prefill of the whole batch, then logits for each sequence */
        return to_bytes(tokens * (6 * H + 2 * I) * 4 + (double)p->batch * (double)s->vocab * 4);
    }
    double per_batch = tokens < (double)batch_tokens ? tokens : (double)batch_tokens;
    if (per_batch < (double)p->seq)
        per_batch = (double)p->seq;
    /* hidden + qkv + context + temporary + FFN, f32, and ids/types/positions */
    double bytes = per_batch * ((H + 3 * H + H + H + I) * 4 + 3 * 4);
    return to_bytes(bytes + (double)p->batch * H * 4); /* pooled rows */
}

static void choose_device(const ia_plan_request *req, ia_model_plan *p) {
    ia_hw_info *owned = NULL;
    const ia_hw_info *hw = req->hw;
    if (!hw) {
        ia_hw_options o = ia_hw_options_default();
        if (ia_hw_detect(&o, &owned) != IA_OK) {
            snprintf(p->device_error, sizeof p->device_error, "%s", ia_error_message());
            return;
        }
        hw = owned;
    }
    ia_device_request dr = {
        .bytes_needed = p->total_bytes,
        .family = p->cls.family,
        .implemented = p->cls.backends,
        .want = req->device,
    };
    ia_status st = ia_device_choose(hw, &dr, p->devices, sizeof p->devices / sizeof p->devices[0],
                                    &p->n_devices, &p->chosen);
    if (!p->cls.backends[0]) /* the root cause, rather than one device's symptom */
        snprintf(p->device_error, sizeof p->device_error,
                 "model type '%s' (%s) is not supported by this engine yet",
                 p->cls.model_type[0] ? p->cls.model_type : "?",
                 ia_model_family_name(p->cls.family));
    else if (st != IA_OK)
        snprintf(p->device_error, sizeof p->device_error, "%s", ia_error_message());
    p->runnable = st == IA_OK;
    ia_hw_info_free(owned);
}

ia_status ia_model_plan_make(const ia_plan_request *req, ia_model_plan *out) {
    memset(out, 0, sizeof *out);
    json_t *cfg = NULL;
    ia_status st = ia_model_config_load(req->model, &cfg);
    if (st != IA_OK)
        return st;
    ia_model_plan *p = out;
    ia_classify_options co = {.use_registry = true};
    st = ia_model_classify(cfg, &co, &p->cls);
    if (st != IA_OK)
        goto done;
    if ((st = shape_from_config(cfg, &p->shape)) != IA_OK) {
        ia_error_prefix("%s", req->model);
        goto done;
    }
    if (!p->shape.hidden || !p->shape.layers) {
        st = ia_error_set(IA_EUNSUPPORTED,
                          "%s: the config gives no hidden size or layer count to plan from",
                          req->model);
        goto done;
    }
    snprintf(p->dtype, sizeof p->dtype, "%s", req->dtype && *req->dtype ? req->dtype : "f32");
    double elem_bytes;
    if (!weight_type(p->dtype, &elem_bytes)) {
        st = ia_error_set(IA_EINVAL,
                          "dtype '%s': expected f32, bf16, f16, q8_0, q4_0, q4_1, "
                          "q5_0, q5_1, q2_k, q3_k, q4_k, q5_k or q6_k",
                          p->dtype);
        goto done;
    }
    p->batch = req->batch ? req->batch : 1;
    uint64_t positions = p->shape.positions ? p->shape.positions : 512;
    p->seq = req->seq ? req->seq : 512;
    if (p->seq > positions) /* inputs are truncated to the model's positions */
        p->seq = positions;

    weight_sizes w = {0};
    bool encoder = p->cls.family == IA_FAMILY_TEXT_ENCODER;
    bool found = false;
    if (has_suffix(req->model, ".gguf")) {
        st = weights_from_gguf(req->model, &w);
        found = true;
    } else if (is_dir(req->model)) {
        st = weights_from_dir(req->model, encoder, &w, &found);
    }
    if (st != IA_OK)
        goto done;
    p->weights_from_files = found;
    if (!found) {
        weights_from_shape(cfg, &p->shape, p->cls.family, &w);
        w.table_bytes = (uint64_t)((double)w.table_bytes * elem_bytes);
    }
    p->params = w.params;
    p->weights_bytes =
        (uint64_t)((double)w.linear_elems * elem_bytes) + w.table_bytes + w.vector_elems * 4;

    if (p->cls.family == IA_FAMILY_TEXT_DECODER || p->cls.family == IA_FAMILY_MULTIMODAL) {
        uint64_t head_dim = p->shape.heads ? p->shape.hidden / p->shape.heads : 0;
        p->kv_cache_bytes = to_bytes(2.0 * (double)p->shape.layers * (double)p->shape.kv_heads *
                                     (double)head_dim * (double)p->batch * (double)p->seq * 2);
    }
    p->activation_bytes = activations(p, req->batch_tokens ? req->batch_tokens : PLAN_BATCH_TOKENS);
    p->overhead_bytes = PLAN_PROCESS_BYTES + p->shape.vocab * PLAN_TOKENIZER_BYTES_PER_TOKEN;
    p->total_bytes = to_bytes((double)p->weights_bytes + (double)p->kv_cache_bytes +
                              (double)p->activation_bytes + (double)p->overhead_bytes);
    if (!req->memory_only)
        choose_device(req, p);
done:
    json_decref(cfg);
    return st;
}

/* Device kinds this build's engine implements; a future CUDA backend adds
 * "cuda" here when compiled in. */
static const char engine_kinds[] = "cpu";

ia_status ia_model_device_select(const char *model, const char *want, const char *dtype, char *out,
                                 size_t size) {
    ia_device_kind kind;
    int index;
    ia_status st = ia_device_parse(want, &kind, &index);
    if (st != IA_OK)
        return st;
    if ((kind == IA_DEVICE_KIND_COUNT || kind == IA_DEVICE_CPU) &&
        strcmp(engine_kinds, "cpu") == 0) {
        snprintf(out, size, "cpu");
        return IA_OK;
    }
    ia_plan_request req = {.model = model, .dtype = dtype, .device = want};
    ia_model_plan plan;
    if ((st = ia_model_plan_make(&req, &plan)) != IA_OK)
        return st;
    if (!plan.runnable)
        return ia_error_set(IA_EUNSUPPORTED, "%s", plan.device_error);
    for (size_t i = 0; i < plan.n_devices; i++)
        if (i != plan.chosen && plan.devices[i].rank >= 0 &&
            plan.devices[i].rank < plan.devices[plan.chosen].rank)
            ia_log(IA_LOG_INFO, "device %s passed over: %s", plan.devices[i].id,
                   plan.devices[i].reason);
    snprintf(out, size, "%s", plan.devices[plan.chosen].id);
    ia_log(IA_LOG_INFO, "device %s: %s", out, plan.devices[plan.chosen].reason);
    return IA_OK;
}

/* ---- JSON --------------------------------------------------------------------------- */

json_t *ia_model_plan_to_json(const ia_model_plan *p) {
    json_t *o = json_object();
    json_t *cls = json_object();
    json_object_set_new(cls, "model_type", json_string(p->cls.model_type));
    json_object_set_new(cls, "architecture", json_string(p->cls.architecture));
    json_object_set_new(cls, "family", json_string(ia_model_family_name(p->cls.family)));
    json_object_set_new(cls, "supported_on", json_string(p->cls.backends));
    json_object_set_new(o, "model", cls);

    const ia_model_shape *s = &p->shape;
    json_t *shape =
        json_pack("{sI sI sI sI sI sI sI}", "hidden_size", (json_int_t)s->hidden, "layers",
                  (json_int_t)s->layers, "heads", (json_int_t)s->heads, "kv_heads",
                  (json_int_t)s->kv_heads, "intermediate_size", (json_int_t)s->intermediate,
                  "vocab_size", (json_int_t)s->vocab, "max_positions", (json_int_t)s->positions);
    json_object_set_new(o, "shape", shape);
    json_object_set_new(o, "dtype", json_string(p->dtype));
    json_object_set_new(o, "batch", json_integer((json_int_t)p->batch));
    json_object_set_new(o, "seq", json_integer((json_int_t)p->seq));
    json_object_set_new(o, "params", json_integer((json_int_t)p->params));

    json_t *mem = json_object();
    json_object_set_new(mem, "weights", json_integer((json_int_t)p->weights_bytes));
    json_object_set_new(mem, "weights_from",
                        json_string(p->weights_from_files ? "files" : "config"));
    json_object_set_new(mem, "kv_cache", json_integer((json_int_t)p->kv_cache_bytes));
    json_object_set_new(mem, "activations", json_integer((json_int_t)p->activation_bytes));
    json_object_set_new(mem, "overhead", json_integer((json_int_t)p->overhead_bytes));
    json_object_set_new(mem, "total", json_integer((json_int_t)p->total_bytes));
    json_object_set_new(o, "memory_bytes", mem);

    json_t *devices = json_array();
    for (size_t i = 0; i < p->n_devices; i++) {
        const ia_device_candidate *c = &p->devices[i];
        json_array_append_new(devices,
                              json_pack("{ss ss sb si ss}", "id", c->id, "name", c->name, "usable",
                                        (int)c->usable, "rank", c->rank, "reason", c->reason));
    }
    json_object_set_new(o, "devices", devices);
    json_object_set_new(o, "device",
                        p->runnable && p->n_devices ? json_string(p->devices[p->chosen].id)
                                                    : json_null());
    if (p->device_error[0])
        json_object_set_new(o, "device_error", json_string(p->device_error));
    return o;
}
