/*
 * The generic causal decoder: GPT-2 and the LLaMA family (llama, mistral,
 * qwen2), from a HF directory (config.json + model.safetensors) or a GGUF
 * file written the llama.cpp way.
 *
 * Loading reads the hyper-parameters through the architecture row
 * (decoder_arch.c) from config.json keys or from "<arch>.*" GGUF metadata,
 * finds every tensor under the source's names, checks each shape and packs
 * the matrices for the backend: Q, K and V become one weight (a layer starts
 * with one matrix multiply), LLaMA's gate and up projections another, and
 * GPT-2's Conv1D matrices ([in, out] in HF files) are transposed on the way.
 * Norm weights and biases become f32 arrays owned here; the embedding tables
 * stay in the mapped file and are gathered row by row.
 *
 * RoPE: HF checkpoints rotate halves of each head (NEOX pairing); llama.cpp's
 * converter (and ours) permutes LLaMA's Q and K rows so that adjacent pairs
 * rotate. The loader undoes that permutation (the row says which GGUF files
 * carry it), so every source runs the same NEOX rotation on the same rows and
 * a GGUF gives the logits of its safetensors bit for bit. Inverse
 * frequencies are computed once at load with the checkpoint's scaling
 * (linear; llama3, which GGUF carries as the rope_freqs.weight tensor of
 * per-frequency divisors, so the HF path applies llama3 through the same
 * divisors: ia_rope_llama3_divisors).
 *
 * A block is pre-norm:
 *   qkv = norm(x) Wqkv (+ b); rope(q, k); append k, v to the cache
 *   x += attention(q, cache) Wo (+ b)
 *   x += mlp(norm(x))     SwiGLU: (silu(h Wg) * h Wu) Wd;  GPT-2: gelu(h W1 + b) W2 + b
 * RMSNorm folds the residual add into the norm that follows it. A forward
 * call works on the new tokens only; its scratch lives in the KV cache
 * object and grows only when a call brings more tokens than any before, so
 * decoding one token at a time allocates nothing.
 *
 * A batch step (ia_decoder_forward_batch, the server's continuous batching)
 * decodes one token for each of n sequences: the rows of all sequences go
 * through every matrix multiply together (decode is bound by reading the
 * weights, so n sequences cost little more than one), while RoPE, the cache
 * append and attention run per row against that sequence's own cache and
 * position. The step borrows the first cache's scratch.
 */
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ia/formats.h"
#include "ia/quant.h"
#include "models_internal.h"

/* Row-stacked weights (Q, K, V; gate, up) run as one matrix when they share
 * a type; a quantised file may give them different ones (llama.cpp's _M
 * mixes keep V at more bits than Q and K), and then each group of equal
 * types is packed and run on its own, writing its columns of the output. */
#define DEC_MAX_PARTS 3
typedef struct dec_linear {
    ia_packed_weight *w[DEC_MAX_PARTS];
    size_t rows[DEC_MAX_PARTS]; /* output columns of each group */
    int n;
} dec_linear;

typedef struct decoder_layer {
    dec_linear qkv, up; /* up: [gate; up] for SwiGLU */
    ia_packed_weight *attn_out, *down;
    float *qkv_bias, *attn_out_bias, *up_bias, *down_bias;
    float *attn_norm_w, *attn_norm_b, *ffn_norm_w, *ffn_norm_b;
    size_t window; /* sliding window of this layer, 0 for none */
} decoder_layer;

struct ia_decoder {
    ia_decoder_config config;
    char *model_type;
    const decoder_arch *arch;
    const ia_backend *backend;
    ia_safetensors *st;
    ia_gguf *gguf;
    ia_tensor embed, positions; /* views into the mapping */
    float *final_norm_w, *final_norm_b;
    ia_packed_weight *lm_head;
    float *inv_freq; /* head_dim / 2 RoPE inverse frequencies, NULL for learned positions */
    ia_rope_mode rope_mode;
    ia_activation act; /* of the GELU-family MLP */
    decoder_layer *layers;
    size_t q_dim, kv_dim, ffn_dim; /* heads * head_dim, kv_heads * head_dim, MLP width */
};

/* ---- hyper-parameters ------------------------------------------------------------ */

typedef struct loader {
    ia_decoder *dec;
    const char *path; /* the weights file, for messages */
    const decoder_tensor_names *names;
    ia_config *cfg;        /* HF source */
    const char *gguf_arch; /* GGUF source: the "<arch>." key prefix */
} loader;

/* An integer GGUF key; per-layer arrays (head_count_kv in some files) give
 * their first element, which is every layer's value in a uniform model. */
static ia_status gguf_int(const ia_gguf *g, const char *key, bool required, int64_t *out) {
    const ia_gguf_value *v = ia_gguf_find(g, key);
    if (v && ia_gguf_value_type(v) == IA_GGUF_ARRAY && ia_gguf_array_count(v) > 0)
        return ia_gguf_array_int(v, 0, out);
    return ia_gguf_get_i64(g, key, required, out);
}

/* "<arch>.suffix" into buf. */
static const char *gguf_key(const loader *ld, const char *suffix, char *buf, size_t cap) {
    snprintf(buf, cap, "%s.%s", ld->gguf_arch, suffix);
    return buf;
}

/* The integer hyper-parameters, each with its config.json key (in the row's
 * keys) and GGUF suffix. Not required: left at the default set before. */
static const struct int_field {
    size_t cfg, key;
    const char *gguf;
    bool required;
} int_fields[] = {
    {offsetof(ia_decoder_config, hidden_size), offsetof(decoder_config_keys, hidden),
     "embedding_length", true},
    {offsetof(ia_decoder_config, num_layers), offsetof(decoder_config_keys, layers), "block_count",
     true},
    {offsetof(ia_decoder_config, num_heads), offsetof(decoder_config_keys, heads),
     "attention.head_count", true},
    {offsetof(ia_decoder_config, num_kv_heads), offsetof(decoder_config_keys, kv_heads),
     "attention.head_count_kv", false},
    {offsetof(ia_decoder_config, intermediate_size), offsetof(decoder_config_keys, intermediate),
     "feed_forward_length", false},
    {offsetof(ia_decoder_config, max_positions), offsetof(decoder_config_keys, max_positions),
     "context_length", true},
};

static ia_status read_ints(const loader *ld) {
    ia_decoder_config *c = &ld->dec->config;
    char key[160];
    for (size_t i = 0; i < sizeof int_fields / sizeof int_fields[0]; i++) {
        const struct int_field *f = &int_fields[i];
        int64_t *dst = (int64_t *)((char *)c + f->cfg);
        ia_status st;
        if (ld->cfg) {
            const char *k = *(const char *const *)((const char *)&ld->dec->arch->keys + f->key);
            st = k ? ia_config_int(ld->cfg, k, f->required, dst) : IA_OK;
        } else {
            st = gguf_int(ld->dec->gguf, gguf_key(ld, f->gguf, key, sizeof key), f->required, dst);
        }
        if (st != IA_OK)
            return st;
    }
    return IA_OK;
}

/* A HF config field that may be an integer or a list of them (eos_token_id). */
static int64_t json_first_int(json_t *v, int64_t dflt) {
    if (json_is_array(v))
        v = json_array_get(v, 0);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

/* RoPE scaling: "default"/"none", "linear" (factor) or "llama3". */
typedef struct rope_scaling {
    char type[32];
    double factor, low_freq_factor, high_freq_factor, original_max;
} rope_scaling;

static double json_num(json_t *obj, const char *key, double dflt) {
    json_t *v = json_object_get(obj, key);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

/* HF names: rope_theta and rope_scaling (transformers 4), or both inside
 * rope_parameters (transformers 5). */
static void hf_rope(const ia_config *cfg, double *theta, rope_scaling *rs) {
    json_t *root = ia_config_json(cfg);
    json_t *params = json_object_get(root, "rope_parameters");
    json_t *scaling = json_object_get(root, "rope_scaling");
    *theta = json_num(root, "rope_theta", json_num(params, "rope_theta", 10000.0));
    json_t *obj = json_is_object(scaling) ? scaling : params;
    const char *type = json_string_value(json_object_get(obj, "rope_type"));
    if (!type)
        type = json_string_value(json_object_get(obj, "type"));
    snprintf(rs->type, sizeof rs->type, "%s", type ? type : "default");
    rs->factor = json_num(obj, "factor", 1.0);
    rs->low_freq_factor = json_num(obj, "low_freq_factor", 1.0);
    rs->high_freq_factor = json_num(obj, "high_freq_factor", 4.0);
    rs->original_max = json_num(obj, "original_max_position_embeddings", 8192.0);
}

static ia_status gguf_rope(const loader *ld, double *theta, rope_scaling *rs) {
    const ia_gguf *g = ld->dec->gguf;
    char key[160];
    const char *type = "none";
    ia_status st;
    *theta = 10000.0;
    rs->factor = 1.0;
    if ((st = ia_gguf_get_f64(g, gguf_key(ld, "rope.freq_base", key, sizeof key), false, theta)) ||
        (st = ia_gguf_get_string(g, gguf_key(ld, "rope.scaling.type", key, sizeof key), false,
                                 &type, NULL)) ||
        (st = ia_gguf_get_f64(g, gguf_key(ld, "rope.scaling.factor", key, sizeof key), false,
                              &rs->factor)))
        return st;
    snprintf(rs->type, sizeof rs->type, "%s", type);
    return IA_OK;
}

/* The sliding window of each layer. HF: sliding_window (null: none), for
 * rows that say so only with use_sliding_window, and only on layers that
 * layer_types marks "sliding_attention" when the config lists them. GGUF:
 * <arch>.attention.sliding_window on every layer. */
static ia_status read_windows(const loader *ld) {
    ia_decoder *dec = ld->dec;
    int64_t window = 0;
    ia_status st;
    json_t *types = NULL;
    if (ld->cfg) {
        bool use = !dec->arch->window_needs_flag;
        if ((st = ia_config_int(ld->cfg, "sliding_window", false, &window)) ||
            (st = ia_config_bool(ld->cfg, "use_sliding_window", false, &use)))
            return st;
        if (!use)
            window = 0;
        types = json_object_get(ia_config_json(ld->cfg), "layer_types");
        if (types && json_array_size(types) != (size_t)dec->config.num_layers)
            types = NULL;
    } else {
        char key[160];
        if ((st = gguf_int(dec->gguf, gguf_key(ld, "attention.sliding_window", key, sizeof key),
                           false, &window)))
            return st;
    }
    if (window < 0)
        return ia_error_set(IA_ERANGE, "%s: sliding window %lld is negative", ld->path,
                            (long long)window);
    dec->config.sliding_window = window;
    for (int64_t i = 0; i < dec->config.num_layers; i++) {
        const char *t = types ? json_string_value(json_array_get(types, (size_t)i)) : NULL;
        dec->layers[i].window = !t || strcmp(t, "sliding_attention") == 0 ? (size_t)window : 0;
    }
    return IA_OK;
}

/* The MLP's activation: what config.json names (HF names; SwiGLU blocks
 * take only silu), else the row's. */
static ia_status read_activation(const loader *ld) {
    static const struct {
        const char *name;
        ia_activation act;
    } acts[] = {{"gelu_new", IA_ACT_GELU_TANH},  {"gelu_pytorch_tanh", IA_ACT_GELU_TANH},
                {"gelu_fast", IA_ACT_GELU_TANH}, {"gelu", IA_ACT_GELU_ERF},
                {"relu", IA_ACT_RELU},           {"silu", IA_ACT_SILU}};
    ia_decoder *dec = ld->dec;
    const decoder_arch *a = dec->arch;
    dec->act = a->mlp == DEC_MLP_SWIGLU ? IA_ACT_SILU : a->act;
    if (!ld->cfg)
        return IA_OK;
    const char *key = a->mlp == DEC_MLP_SWIGLU ? "hidden_act" : "activation_function";
    const char *name = NULL;
    ia_status st = ia_config_string(ld->cfg, key, false, &name);
    if (st != IA_OK || !name)
        return st;
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        if (strcmp(acts[i].name, name) == 0 &&
            (a->mlp == DEC_MLP_GELU || acts[i].act == IA_ACT_SILU)) {
            dec->act = acts[i].act;
            return IA_OK;
        }
    return ia_error_set(IA_EUNSUPPORTED, "%s: field '%s' is '%s', which %s blocks do not use",
                        ia_config_path(ld->cfg), key, name, a->model_type);
}

static ia_status check_positive(const loader *ld, const char *what, int64_t v, int64_t max) {
    if (v >= 1 && v <= max)
        return IA_OK;
    return ia_error_set(IA_ERANGE, "%s: %s is %lld; it must be between 1 and %lld",
                        ld->cfg ? ia_config_path(ld->cfg) : ld->path, what, (long long)v,
                        (long long)max);
}

static ia_status read_config(loader *ld) {
    ia_decoder *dec = ld->dec;
    ia_decoder_config *c = &dec->config;
    const char *where = ld->cfg ? ia_config_path(ld->cfg) : ld->path;
    ia_status st;
    c->num_kv_heads = 0;
    c->intermediate_size = 0;
    c->head_dim = 0;
    c->norm_eps = 1e-5;
    c->bos_token_id = c->eos_token_id = -1;
    if ((st = read_ints(ld)))
        return st;
    char key[160];
    if (ld->cfg) {
        json_t *root = ia_config_json(ld->cfg);
        if ((st = ia_config_int(ld->cfg, "vocab_size", true, &c->vocab_size)) ||
            (st = ia_config_int(ld->cfg, "head_dim", false, &c->head_dim)) ||
            (st = ia_config_float(ld->cfg, dec->arch->keys.eps, false, &c->norm_eps)) ||
            (st = read_activation(ld)))
            return st;
        c->bos_token_id = json_first_int(json_object_get(root, "bos_token_id"), -1);
        c->eos_token_id = json_first_int(json_object_get(root, "eos_token_id"), -1);
    } else {
        const char *eps_key = dec->arch->norm == DEC_NORM_RMS ? "attention.layer_norm_rms_epsilon"
                                                              : "attention.layer_norm_epsilon";
        const ia_gguf *g = dec->gguf;
        c->vocab_size = dec->embed.shape[0];
        if ((st = gguf_int(g, gguf_key(ld, "attention.key_length", key, sizeof key), false,
                           &c->head_dim)) ||
            (st =
                 ia_gguf_get_f64(g, gguf_key(ld, eps_key, key, sizeof key), false, &c->norm_eps)) ||
            (st = ia_gguf_get_i64(g, "tokenizer.ggml.bos_token_id", false, &c->bos_token_id)) ||
            (st = ia_gguf_get_i64(g, "tokenizer.ggml.eos_token_id", false, &c->eos_token_id)))
            return st;
    }
    if (!ld->cfg)
        read_activation(ld); /* the row's: GGUF has no activation key */
    if (!c->num_kv_heads)
        c->num_kv_heads = c->num_heads;
    if (!c->intermediate_size && dec->arch->mlp == DEC_MLP_GELU)
        c->intermediate_size = 4 * c->hidden_size; /* GPT-2's n_inner: null */
    const int64_t big = 1 << 24;
    if ((st = check_positive(ld, "the vocabulary size", c->vocab_size, INT32_MAX)) ||
        (st = check_positive(ld, "the hidden size", c->hidden_size, big)) ||
        (st = check_positive(ld, "the layer count", c->num_layers, 4096)) ||
        (st = check_positive(ld, "the head count", c->num_heads, 4096)) ||
        (st = check_positive(ld, "the key/value head count", c->num_kv_heads, c->num_heads)) ||
        (st = check_positive(ld, "the MLP width", c->intermediate_size, big)) ||
        (st = check_positive(ld, "the context length", c->max_positions, big)))
        return st;
    if (!c->head_dim) {
        if (c->hidden_size % c->num_heads)
            return ia_error_set(IA_EPARSE, "%s: hidden size %lld is not a multiple of %lld heads",
                                where, (long long)c->hidden_size, (long long)c->num_heads);
        c->head_dim = c->hidden_size / c->num_heads;
    }
    if (c->num_heads % c->num_kv_heads)
        return ia_error_set(IA_EPARSE, "%s: %lld attention heads do not split into %lld KV groups",
                            where, (long long)c->num_heads, (long long)c->num_kv_heads);
    if ((st = check_positive(ld, "the head size", c->head_dim, IA_MAX_HEAD_DIM)))
        return st;
    if (!dec->arch->learned_positions && c->head_dim % 2)
        return ia_error_set(IA_EUNSUPPORTED, "%s: RoPE needs an even head size, not %lld", where,
                            (long long)c->head_dim);
    dec->q_dim = (size_t)(c->num_heads * c->head_dim);
    dec->kv_dim = (size_t)(c->num_kv_heads * c->head_dim);
    dec->ffn_dim = (size_t)c->intermediate_size;
    return IA_OK;
}

/* ---- tensors ------------------------------------------------------------------------ */

/* Looks a tensor up by its full name; *found false when absent. */
static ia_status find_tensor(const loader *ld, const char *name, ia_tensor *out, bool *found) {
    *found = false;
    if (ld->dec->st) {
        const ia_tensor *t = ia_safetensors_find(ld->dec->st, name);
        if (t) {
            *out = *t;
            *found = true;
        }
        return IA_OK;
    }
    const ia_gguf_tensor *gt = ia_gguf_tensor_find(ld->dec->gguf, name);
    if (!gt)
        return IA_OK;
    *found = true;
    return ia_gguf_tensor_view(ld->dec->gguf, gt, out); /* quantized types: a clear error */
}

/* pattern (%d = layer) + suffix, checked against [rows, cols] (a vector of
 * rows when cols is 0; [cols, rows] when transposed). Missing: IA_ENOTFOUND,
 * unless optional, then *found is false. */
static ia_status get_tensor_opt(const loader *ld, const char *pattern, int layer,
                                const char *suffix, int64_t rows, int64_t cols, bool transposed,
                                ia_tensor *out, bool *found) {
    char name[512];
    int n = snprintf(name, sizeof name, pattern, layer);
    snprintf(name + n, sizeof name - (size_t)n, "%s", suffix);
    ia_status st = find_tensor(ld, name, out, found);
    if (st != IA_OK || !*found)
        return st;
    int64_t r = transposed ? cols : rows, c = transposed ? rows : cols;
    bool ok = out->ndim == (cols ? 2 : 1) && out->shape[0] == r && (!cols || out->shape[1] == c);
    if (!ok) {
        char got[96];
        ia_tensor_shape_str(out, got, sizeof got);
        if (cols)
            return ia_error_set(IA_EPARSE,
                                "%s: tensor '%s' has shape %s; the model's hyper-parameters "
                                "imply [%lld, %lld]",
                                ld->path, name, got, (long long)r, (long long)c);
        return ia_error_set(IA_EPARSE,
                            "%s: tensor '%s' has shape %s; the model's hyper-parameters imply "
                            "[%lld]",
                            ld->path, name, got, (long long)r);
    }
    if (!ia_dtype_get_info(out->dtype)->is_float || (!cols && ia_dtype_is_quantized(out->dtype)))
        return ia_error_set(IA_EUNSUPPORTED, "%s: tensor '%s' has dtype %s; %s", ld->path, name,
                            ia_dtype_name(out->dtype),
                            cols ? "matrices must be f32, f16, bf16 or a ggml quantised type"
                                 : "vectors must be f32, f16 or bf16");
    return IA_OK;
}

static ia_status get_tensor(const loader *ld, const char *pattern, int layer, const char *suffix,
                            int64_t rows, int64_t cols, bool transposed, ia_tensor *out) {
    bool found;
    ia_status st = get_tensor_opt(ld, pattern, layer, suffix, rows, cols, transposed, out, &found);
    if (st == IA_OK && !found) {
        char name[512];
        int n = snprintf(name, sizeof name, pattern, layer);
        snprintf(name + n, sizeof name - (size_t)n, "%s", suffix);
        st = ia_error_set(IA_ENOTFOUND, "%s: tensor '%s' is missing", ld->path, name);
    }
    return st;
}

/* Appends vector pattern+suffix (n floats) at dst as f32. */
static ia_status load_into(const loader *ld, const char *pattern, int layer, const char *suffix,
                           int64_t n, float *dst) {
    ia_tensor t;
    ia_status st = get_tensor(ld, pattern, layer, suffix, n, 0, false, &t);
    return st ? st : ia_convert_to_f32(t.dtype, t.data, dst, (size_t)n);
}

static ia_status load_vector(const loader *ld, const char *pattern, int layer, const char *suffix,
                             int64_t n, float **out) {
    if (!(*out = ia_malloc_array((size_t)n, sizeof(float))))
        return IA_ENOMEM;
    return load_into(ld, pattern, layer, suffix, n, *out);
}

/* The type a weight is packed in: a quantised file tensor keeps its own
 * blocks (quantising again would only lose); float ones take the compute
 * type, which may itself be a quantised type (quantised at load). */
static ia_dtype pack_type(const ia_tensor *t, ia_dtype compute) {
    return ia_dtype_is_quantized(t->dtype) ? t->dtype : compute;
}

/* Packs one weight; transposed ([in, out], GPT-2's Conv1D) float parts are
 * turned into [out, in] f32 copies first (load time only). */
static ia_status pack_parts(const loader *ld, ia_dtype compute, ia_tensor *parts, int n_parts,
                            bool transposed, ia_packed_weight **out) {
    const ia_tensor *ptrs[DEC_MAX_PARTS] = {0};
    float *copies[DEC_MAX_PARTS] = {0};
    ia_status st = IA_OK;
    for (int p = 0; p < n_parts && st == IA_OK; p++) {
        ptrs[p] = &parts[p];
        if (!transposed)
            continue;
        size_t in = (size_t)parts[p].shape[0], outs = (size_t)parts[p].shape[1], n = in * outs;
        float *tmp = ia_malloc_array(n, sizeof(float));
        copies[p] = ia_malloc_array(n, sizeof(float));
        st =
            tmp && copies[p] ? ia_convert_to_f32(parts[p].dtype, parts[p].data, tmp, n) : IA_ENOMEM;
        for (size_t i = 0; st == IA_OK && i < in; i++)
            for (size_t o = 0; o < outs; o++)
                copies[p][o * in + i] = tmp[i * outs + o];
        free(tmp);
        parts[p].dtype = IA_DTYPE_F32;
        parts[p].shape[0] = (int64_t)outs;
        parts[p].shape[1] = (int64_t)in;
        parts[p].data = copies[p];
    }
    for (int p = 0; p < n_parts && st == IA_OK; p++) {
        size_t bad;
        if (ia_dtype_is_quantized(parts[p].dtype) &&
            ia_quant_validate(parts[p].dtype, parts[p].data, (size_t)ia_tensor_numel(&parts[p]),
                              &bad) != IA_OK) {
            ia_error_prefix("%s: tensor '%s'", ld->path, parts[p].name);
            st = IA_EPARSE;
        }
    }
    if (st == IA_OK) {
        st = ld->dec->backend->weight_pack(ptrs, n_parts, pack_type(&parts[0], compute), out);
        if (st != IA_OK)
            ia_error_prefix("%s: tensor '%s'", ld->path, parts[0].name);
    }
    /* The packed copy is what runs: let the file's pages go now, so the
     * load's peak is the packed model plus one tensor, not both whole. */
    for (int p = 0; st == IA_OK && p < n_parts && ld->dec->gguf; p++) {
        size_t bytes;
        if (!copies[p] &&
            ia_dtype_bytes(parts[p].dtype, (uint64_t)ia_tensor_numel(&parts[p]), &bytes) == IA_OK)
            ia_gguf_drop_range(ld->dec->gguf, parts[p].data, bytes);
    }
    for (int p = 0; p < n_parts; p++)
        free(copies[p]);
    return st;
}

/* Row-stacked parts as one dec_linear: runs of parts with the same packed
 * type become one packed weight each. */
static ia_status pack_stacked(const loader *ld, ia_dtype compute, ia_tensor *parts, int n_parts,
                              dec_linear *out) {
    ia_status st = IA_OK;
    for (int p = 0; p < n_parts && st == IA_OK;) {
        int q = p + 1;
        while (q < n_parts && pack_type(&parts[q], compute) == pack_type(&parts[p], compute))
            q++;
        size_t rows = 0;
        for (int r = p; r < q; r++)
            rows += (size_t)parts[r].shape[0];
        st = pack_parts(ld, compute, parts + p, q - p, false, &out->w[out->n]);
        if (st == IA_OK)
            out->rows[out->n++] = rows;
        p = q;
    }
    return st;
}

static void dec_linear_free(const ia_backend *be, dec_linear *l) {
    for (int i = 0; i < l->n; i++)
        be->weight_free(l->w[i]);
    l->n = 0;
}

/* y[:, cols of group g] = x W_g^T (+ the bias's matching slice). */
static void run_stacked(const ia_backend *be, const dec_linear *l, const float *bias,
                        ia_activation act, const float *x, size_t ldx, float *y, size_t ldy,
                        size_t m, ia_threadpool *pool) {
    size_t off = 0;
    for (int i = 0; i < l->n; i++) {
        be->linear(l->w[i], bias ? bias + off : NULL, act, x, ldx, y + off, ldy, m, pool);
        off += l->rows[i];
    }
}

/* A linear layer: weight [n_out, n_in] and, when has_bias, its bias. */
static ia_status load_linear(const loader *ld, ia_dtype compute, const char *pattern, int layer,
                             int64_t n_out, int64_t n_in, bool has_bias, ia_packed_weight **w,
                             float **bias) {
    bool tr = ld->dec->st && ld->dec->arch->conv1d;
    ia_tensor t;
    ia_status st = get_tensor(ld, pattern, layer, ".weight", n_out, n_in, tr, &t);
    if (st == IA_OK)
        st = pack_parts(ld, compute, &t, 1, tr, w);
    if (st == IA_OK && has_bias)
        st = load_vector(ld, pattern, layer, ".bias", n_out, bias);
    return st;
}

/* Undoes llama.cpp's Q/K permutation on `heads` heads of hd rows of
 * row_bytes each: within a head, stored row (2i + j) goes back to HF's row
 * (j * hd/2 + i). dst and src must not overlap. */
static void unpermute_rows(const void *src, void *dst, int64_t heads, int64_t hd,
                           size_t row_bytes) {
    int64_t half = hd / 2;
    for (int64_t h = 0; h < heads; h++)
        for (int64_t j = 0; j < 2; j++)
            for (int64_t i = 0; i < half; i++)
                memcpy((char *)dst + (size_t)(h * hd + j * half + i) * row_bytes,
                       (const char *)src + (size_t)(h * hd + 2 * i + j) * row_bytes, row_bytes);
}

/* A GGUF Q or K weight back in HF row order, as a copy in the file's dtype
 * (whole rows move, so any plain or block type keeps its exact bits); the
 * caller frees *copy once the weight is packed. */
static ia_status unpermute_weight(const loader *ld, ia_tensor *t, int64_t heads, void **copy) {
    int64_t hd = ld->dec->config.head_dim;
    size_t row_bytes;
    ia_status st = ia_dtype_bytes(t->dtype, (uint64_t)t->shape[1], &row_bytes);
    if (st != IA_OK)
        return st;
    if (!(*copy = ia_malloc_array((size_t)t->shape[0], row_bytes ? row_bytes : 1)))
        return IA_ENOMEM;
    unpermute_rows(t->data, *copy, heads, hd, row_bytes);
    t->data = *copy;
    return IA_OK;
}

/* Q, K and V (separate or fused) as one packed weight and, with biases, one
 * f32 bias vector in the same order. GGUF Q/K rows that llama.cpp permuted
 * (the row's gguf_permuted_qk) are put back in HF order first. */
static ia_status load_qkv(const loader *ld, ia_dtype compute, int i, decoder_layer *l) {
    const ia_decoder *dec = ld->dec;
    const decoder_tensor_names *nm = ld->names;
    int64_t h = dec->config.hidden_size, qd = (int64_t)dec->q_dim, kvd = (int64_t)dec->kv_dim;
    if (dec->arch->fused_qkv) {
        l->qkv.rows[0] = (size_t)(qd + 2 * kvd);
        l->qkv.n = 1;
        return load_linear(ld, compute, nm->qkv, i, qd + 2 * kvd, h, dec->arch->qkv_bias,
                           &l->qkv.w[0], &l->qkv_bias);
    }
    bool permuted = dec->gguf && dec->arch->gguf_permuted_qk;
    const char *names[3] = {nm->q, nm->k, nm->v};
    int64_t rows[3] = {qd, kvd, kvd};
    int64_t heads[2] = {dec->config.num_heads, dec->config.num_kv_heads};
    ia_tensor parts[3];
    void *copies[2] = {0};
    float *tmp = NULL;
    ia_status st = IA_OK;
    for (int p = 0; p < 3 && st == IA_OK; p++)
        st = get_tensor(ld, names[p], i, ".weight", rows[p], h, false, &parts[p]);
    for (int p = 0; p < 2 && st == IA_OK && permuted; p++)
        st = unpermute_weight(ld, &parts[p], heads[p], &copies[p]);
    if (st == IA_OK)
        st = pack_stacked(ld, compute, parts, 3, &l->qkv);
    if (st == IA_OK && dec->arch->qkv_bias) {
        l->qkv_bias = ia_malloc_array((size_t)(qd + 2 * kvd), sizeof(float));
        tmp = permuted ? ia_malloc_array((size_t)qd, sizeof(float)) : NULL;
        st = l->qkv_bias && (tmp || !permuted) ? IA_OK : IA_ENOMEM;
        for (int p = 0, off = 0; p < 3 && st == IA_OK; off += (int)rows[p], p++) {
            float *dst = l->qkv_bias + off;
            st = load_into(ld, names[p], i, ".bias", rows[p], p < 2 && permuted ? tmp : dst);
            if (st == IA_OK && p < 2 && permuted)
                unpermute_rows(tmp, dst, heads[p], dec->config.head_dim, sizeof(float));
        }
    }
    free(copies[0]);
    free(copies[1]);
    free(tmp);
    return st;
}

/* A norm's weight, and its bias for LayerNorm. */
static ia_status load_norm(const loader *ld, const char *pattern, int layer, float **w, float **b) {
    int64_t h = ld->dec->config.hidden_size;
    ia_status st = load_vector(ld, pattern, layer, ".weight", h, w);
    if (st == IA_OK && ld->dec->arch->norm == DEC_NORM_LAYER)
        st = load_vector(ld, pattern, layer, ".bias", h, b);
    return st;
}

static ia_status load_mlp(const loader *ld, ia_dtype compute, int i, decoder_layer *l) {
    const ia_decoder *dec = ld->dec;
    const decoder_tensor_names *nm = ld->names;
    int64_t h = dec->config.hidden_size, f = (int64_t)dec->ffn_dim;
    bool bias = dec->arch->mlp_bias;
    ia_status st;
    if (dec->arch->mlp == DEC_MLP_SWIGLU) {
        ia_tensor parts[2];
        if ((st = get_tensor(ld, nm->gate, i, ".weight", f, h, false, &parts[0])) ||
            (st = get_tensor(ld, nm->up, i, ".weight", f, h, false, &parts[1])) ||
            (st = pack_stacked(ld, compute, parts, 2, &l->up)))
            return st;
    } else {
        l->up.rows[0] = (size_t)f;
        l->up.n = 1;
        if ((st = load_linear(ld, compute, nm->up, i, f, h, bias, &l->up.w[0], &l->up_bias)))
            return st;
    }
    return load_linear(ld, compute, nm->down, i, h, f, bias, &l->down, &l->down_bias);
}

static ia_status load_layer(const loader *ld, ia_dtype compute, int i) {
    const ia_decoder *dec = ld->dec;
    decoder_layer *l = &dec->layers[i];
    const decoder_tensor_names *nm = ld->names;
    ia_status st;
    if ((st = load_norm(ld, nm->attn_norm, i, &l->attn_norm_w, &l->attn_norm_b)) ||
        (st = load_qkv(ld, compute, i, l)) ||
        (st =
             load_linear(ld, compute, nm->attn_out, i, dec->config.hidden_size, (int64_t)dec->q_dim,
                         dec->arch->out_bias, &l->attn_out, &l->attn_out_bias)) ||
        (st = load_norm(ld, nm->ffn_norm, i, &l->ffn_norm_w, &l->ffn_norm_b)) ||
        (st = load_mlp(ld, compute, i, l)))
        return st;
    return IA_OK;
}

/* The output head: lm_head / output.weight, or the embeddings when tied
 * (HF: tie_word_embeddings; GGUF: no output.weight, llama.cpp's habit). */
static ia_status load_head(const loader *ld, ia_dtype compute) {
    ia_decoder *dec = ld->dec;
    const ia_decoder_config *c = &dec->config;
    bool tied = dec->arch->tied_default, found = false;
    ia_tensor head;
    ia_status st;
    if (ld->cfg && (st = ia_config_bool(ld->cfg, "tie_word_embeddings", false, &tied)))
        return st;
    if (!tied || !ld->cfg) {
        st = get_tensor_opt(ld, ld->names->lm_head, 0, "", c->vocab_size, c->hidden_size, false,
                            &head, &found);
        if (st != IA_OK)
            return st;
        if (!found && ld->cfg)
            return ia_error_set(IA_ENOTFOUND,
                                "%s: tensor '%s' is missing and config.json does not tie the "
                                "output head to the embeddings",
                                ld->path, ld->names->lm_head);
    }
    if (!found)
        head = dec->embed;
    return pack_parts(ld, compute, &head, 1, false, &dec->lm_head);
}

void ia_rope_llama3_divisors(double theta, int64_t head_dim, double factor, double low_freq_factor,
                             double high_freq_factor, double original_max, float *out) {
    double lo_wl = original_max / low_freq_factor, hi_wl = original_max / high_freq_factor;
    for (int64_t i = 0; i < head_dim / 2; i++) {
        double freq = 1.0 / pow(theta, (double)(2 * i) / (double)head_dim);
        double wl = 2 * M_PI / freq;
        if (wl < hi_wl) {
            out[i] = 1.0f;
        } else if (wl > lo_wl) {
            out[i] = (float)factor;
        } else {
            double smooth =
                (original_max / wl - low_freq_factor) / (high_freq_factor - low_freq_factor);
            out[i] = (float)(1.0 / ((1 - smooth) / factor + smooth));
        }
    }
}

/* Divides the inverse frequencies by per-frequency divisors, in float32 as
 * for a GGUF's rope_freqs.weight. */
static void divide_frequencies(float *inv_freq, const float *div, int half) {
    for (int i = 0; i < half; i++)
        inv_freq[i] /= div[i];
}

/* RoPE inverse frequencies as HF computes them (float32: base^(2i/d), then
 * the reciprocal), with the checkpoint's scaling applied. llama3 goes
 * through the divisors a GGUF stores in rope_freqs.weight, so a converted
 * file gives the same frequencies bit for bit. */
static ia_status rope_frequencies(const loader *ld) {
    ia_decoder *dec = ld->dec;
    int half = (int)dec->config.head_dim / 2;
    double theta;
    rope_scaling rs = {0};
    ia_status st = ld->cfg ? (hf_rope(ld->cfg, &theta, &rs), IA_OK) : gguf_rope(ld, &theta, &rs);
    if (st != IA_OK)
        return st;
    dec->config.rope_theta = theta;
    if (!(dec->inv_freq = ia_malloc_array((size_t)half, sizeof(float))))
        return IA_ENOMEM;
    for (int i = 0; i < half; i++)
        dec->inv_freq[i] = 1.0f / powf((float)theta, (float)(2 * i) / (float)dec->config.head_dim);
    bool plain = !strcmp(rs.type, "default") || !strcmp(rs.type, "none");
    if (!strcmp(rs.type, "linear")) {
        for (int i = 0; i < half; i++)
            dec->inv_freq[i] = (float)(dec->inv_freq[i] / rs.factor);
    } else if (!strcmp(rs.type, "llama3")) {
        /* Meta's recipe (long wavelengths slowed by factor, short ones kept,
         * a smooth blend between the two cut-offs) as llama.cpp's divisors. */
        float *div = ia_malloc_array((size_t)half, sizeof(float));
        if (!div)
            return IA_ENOMEM;
        ia_rope_llama3_divisors(theta, dec->config.head_dim, rs.factor, rs.low_freq_factor,
                                rs.high_freq_factor, rs.original_max, div);
        divide_frequencies(dec->inv_freq, div, half);
        free(div);
    } else if (!plain) {
        return ia_error_set(IA_EUNSUPPORTED,
                            "%s: RoPE scaling '%s' is not supported (default, linear, llama3)",
                            ld->cfg ? ia_config_path(ld->cfg) : ld->path, rs.type);
    }
    if (ld->cfg)
        return IA_OK;
    /* GGUF carries llama3 (and similar) scaling as per-frequency divisors. */
    ia_tensor ff;
    bool found;
    if ((st = get_tensor_opt(ld, "rope_freqs.weight", 0, "", half, 0, false, &ff, &found)) ||
        !found)
        return st;
    float *div = ia_malloc_array((size_t)half, sizeof(float));
    st = div ? ia_convert_to_f32(ff.dtype, ff.data, div, (size_t)half) : IA_ENOMEM;
    if (st == IA_OK)
        divide_frequencies(dec->inv_freq, div, half);
    free(div);
    return st;
}

static ia_status load_weights(loader *ld, ia_dtype compute) {
    ia_decoder *dec = ld->dec;
    const ia_decoder_config *c = &dec->config;
    ia_status st;
    if ((st = get_tensor(ld, ld->names->embed, 0, "", c->vocab_size, c->hidden_size, false,
                         &dec->embed)))
        return st;
    if (dec->arch->learned_positions &&
        (st = get_tensor(ld, ld->names->positions, 0, "", c->max_positions, c->hidden_size, false,
                         &dec->positions)))
        return st;
    if ((st = load_norm(ld, ld->names->final_norm, 0, &dec->final_norm_w, &dec->final_norm_b)) ||
        (st = load_head(ld, compute)))
        return st;
    if (!dec->arch->learned_positions && (st = rope_frequencies(ld)))
        return st;
    for (int i = 0; i < c->num_layers; i++)
        if ((st = load_layer(ld, compute, i)))
            return st;
    return IA_OK;
}

/* Opens the source: a directory is a HF checkpoint, anything else a GGUF. */
static ia_status open_source(ia_decoder *dec, const char *path, loader *ld, char **weights_path) {
    struct stat sb;
    ia_status st;
    if (stat(path, &sb) != 0)
        return ia_error_set(IA_ENOTFOUND, "%s: no such model directory or GGUF file", path);
    if (S_ISDIR(sb.st_mode)) {
        char *config_path = ia_path_join(path, "config.json");
        *weights_path = ia_path_join(path, "model.safetensors");
        st = config_path && *weights_path ? ia_config_load(config_path, &ld->cfg) : IA_ENOMEM;
        free(config_path);
        const char *model_type = NULL;
        if (st == IA_OK && !(st = ia_config_string(ld->cfg, "model_type", true, &model_type)) &&
            !(dec->arch = decoder_arch_find(model_type)))
            st = ia_error_set(IA_EUNSUPPORTED,
                              "%s: model_type '%s' is not a decoder this build runs (%s)",
                              ia_config_path(ld->cfg), model_type, decoder_arch_list());
        if (st == IA_OK)
            st = ia_safetensors_open(*weights_path, &dec->st);
        ld->path = *weights_path;
        ld->names = dec->arch ? &dec->arch->hf : NULL;
        if (st == IA_OK && !(dec->model_type = ia_strdup(model_type)))
            st = IA_ENOMEM;
        return st;
    }
    if ((st = ia_gguf_open(path, &dec->gguf)))
        return st;
    ld->path = ia_gguf_path(dec->gguf);
    ld->names = &decoder_gguf_names;
    if ((st = ia_gguf_get_string(dec->gguf, "general.architecture", true, &ld->gguf_arch, NULL)))
        return st;
    if (!(dec->arch = decoder_arch_find_gguf(ld->gguf_arch)))
        return ia_error_set(IA_EUNSUPPORTED,
                            "%s: general.architecture '%s' is not a decoder this build runs "
                            "(llama, qwen2, gpt2)",
                            ld->path, ld->gguf_arch);
    if (!(dec->model_type = ia_strdup(dec->arch->model_type)))
        return IA_ENOMEM;
    /* the vocabulary size comes from the embedding table's rows */
    bool found;
    if ((st = find_tensor(ld, decoder_gguf_names.embed, &dec->embed, &found)))
        return st;
    if (!found || dec->embed.ndim != 2)
        return ia_error_set(IA_ENOTFOUND, "%s: tensor '%s' is missing or not a matrix", ld->path,
                            decoder_gguf_names.embed);
    return IA_OK;
}

ia_status ia_decoder_load(const char *path, const ia_backend *backend, ia_dtype compute,
                          ia_decoder **out) {
    *out = NULL;
    char *weights_path = NULL;
    loader ld = {0};
    ia_decoder *dec = ia_calloc(1, sizeof *dec);
    ia_status st = IA_ENOMEM;
    if (!dec)
        goto fail;
    dec->backend = backend;
    ld.dec = dec;
    if ((st = open_source(dec, path, &ld, &weights_path)))
        goto fail;
    dec->config.model_type = dec->model_type;
    dec->rope_mode = IA_ROPE_NEOX; /* GGUF Q/K rows are put back in HF order */
    if ((st = read_config(&ld)))
        goto fail;
    if (!(dec->layers = ia_calloc((size_t)dec->config.num_layers, sizeof *dec->layers))) {
        st = IA_ENOMEM;
        goto fail;
    }
    if ((st = read_windows(&ld)) || (st = load_weights(&ld, compute)))
        goto fail;
    /* The matrices now live packed; only embedding rows are read from the
     * file from here on. */
    if (dec->st)
        ia_safetensors_drop_pages(dec->st);
    if (dec->gguf)
        ia_gguf_drop_pages(dec->gguf);
    ia_config_free(ld.cfg);
    free(weights_path);
    *out = dec;
    return IA_OK;
fail:
    ia_config_free(ld.cfg);
    free(weights_path);
    ia_decoder_free(dec);
    return st;
}

void ia_decoder_free(ia_decoder *dec) {
    if (!dec)
        return;
    for (int64_t i = 0; dec->layers && i < dec->config.num_layers; i++) {
        decoder_layer *l = &dec->layers[i];
        ia_packed_weight *w[] = {l->attn_out, l->down};
        for (int k = 0; k < 2; k++)
            if (w[k])
                dec->backend->weight_free(w[k]);
        dec_linear_free(dec->backend, &l->qkv);
        dec_linear_free(dec->backend, &l->up);
        float *v[] = {l->qkv_bias,    l->attn_out_bias, l->up_bias,    l->down_bias,
                      l->attn_norm_w, l->attn_norm_b,   l->ffn_norm_w, l->ffn_norm_b};
        for (int k = 0; k < 8; k++)
            free(v[k]);
    }
    free(dec->layers);
    if (dec->lm_head)
        dec->backend->weight_free(dec->lm_head);
    free(dec->final_norm_w);
    free(dec->final_norm_b);
    free(dec->inv_freq);
    ia_safetensors_close(dec->st);
    ia_gguf_close(dec->gguf);
    free(dec->model_type);
    free(dec);
}

const ia_decoder_config *ia_decoder_get_config(const ia_decoder *dec) { return &dec->config; }

/* ---- KV cache -------------------------------------------------------------------------- */

struct ia_kv_cache {
    const ia_decoder *dec;
    size_t max_tokens, length;
    size_t row_bytes; /* one token's keys (or values) of one layer */
    ia_dtype dtype;
    void *k, *v; /* [layers][max_tokens][kv_dim] */
    /* forward scratch for up to `cap` tokens */
    size_t cap;
    float *scratch;
    float *x, *xn, *qkv, *ctx, *tmp, *ffn;
    int32_t *pos;
};

ia_status ia_kv_cache_create(const ia_decoder *dec, size_t max_tokens, ia_dtype kv_dtype,
                             ia_kv_cache **out) {
    *out = NULL;
    size_t ctx = (size_t)dec->config.max_positions;
    if (kv_dtype != IA_DTYPE_F32 && kv_dtype != IA_DTYPE_F16 && kv_dtype != IA_DTYPE_Q8_0)
        return ia_error_set(IA_EUNSUPPORTED,
                            "KV cache: type %s is not supported (f32, f16 or q8_0)",
                            ia_dtype_name(kv_dtype));
    if (kv_dtype == IA_DTYPE_Q8_0 && dec->config.head_dim % 32)
        return ia_error_set(IA_EUNSUPPORTED,
                            "KV cache: q8_0 needs heads of a multiple of 32 values; this "
                            "model's have %lld",
                            (long long)dec->config.head_dim);
    if (max_tokens == 0)
        max_tokens = ctx;
    if (max_tokens > ctx)
        return ia_error_set(IA_ERANGE, "KV cache of %zu tokens: the model's context is %zu tokens",
                            max_tokens, ctx);
    ia_kv_cache *kv = ia_calloc(1, sizeof *kv);
    if (!kv)
        return IA_ENOMEM;
    kv->dec = dec;
    kv->max_tokens = max_tokens;
    kv->dtype = kv_dtype;
    size_t bytes;
    if (ia_dtype_bytes(kv_dtype, dec->kv_dim, &kv->row_bytes) != IA_OK ||
        !ia_size_mul((size_t)dec->config.num_layers, max_tokens, &bytes) ||
        !ia_size_mul(bytes, kv->row_bytes, &bytes)) {
        ia_kv_cache_free(kv);
        return ia_error_set(IA_ENOMEM, "KV cache of %zu tokens overflows memory sizes", max_tokens);
    }
    kv->k = ia_malloc_aligned(bytes ? bytes : 64, 64);
    kv->v = ia_malloc_aligned(bytes ? bytes : 64, 64);
    if (!kv->k || !kv->v) {
        ia_kv_cache_free(kv);
        return IA_ENOMEM;
    }
    *out = kv;
    return IA_OK;
}

void ia_kv_cache_free(ia_kv_cache *kv) {
    if (!kv)
        return;
    ia_free_aligned(kv->k);
    ia_free_aligned(kv->v);
    ia_free_aligned(kv->scratch);
    free(kv->pos);
    free(kv);
}

size_t ia_kv_cache_length(const ia_kv_cache *kv) { return kv->length; }

void ia_kv_cache_reset(ia_kv_cache *kv) { kv->length = 0; }

/* Makes the scratch hold n tokens; a no-op once a call of n tokens has run. */
static ia_status reserve_scratch(ia_kv_cache *kv, size_t n) {
    if (n <= kv->cap)
        return IA_OK;
    const ia_decoder *dec = kv->dec;
    size_t h = (size_t)dec->config.hidden_size;
    size_t ffn_w = dec->arch->mlp == DEC_MLP_SWIGLU ? 2 * dec->ffn_dim : dec->ffn_dim;
    /* widths of x, xn, qkv, ctx, tmp, ffn, each rounded to 16 floats */
    size_t widths[6] = {h, h, dec->q_dim + 2 * dec->kv_dim, dec->q_dim, h, ffn_w};
    size_t per_token = 0, bytes;
    for (int i = 0; i < 6; i++)
        per_token += (widths[i] + 15) & ~(size_t)15;
    if (!ia_size_mul(per_token, n, &bytes) || !ia_size_mul(bytes, sizeof(float), &bytes))
        return ia_error_set(IA_ENOMEM, "forward scratch for %zu tokens overflows", n);
    float *s = ia_malloc_aligned(bytes, 64);
    int32_t *pos = ia_malloc_array(n, sizeof(int32_t));
    if (!s || !pos) {
        ia_free_aligned(s);
        free(pos);
        return IA_ENOMEM;
    }
    ia_free_aligned(kv->scratch);
    free(kv->pos);
    kv->scratch = s;
    kv->pos = pos;
    kv->cap = n;
    float **dst[6] = {&kv->x, &kv->xn, &kv->qkv, &kv->ctx, &kv->tmp, &kv->ffn};
    for (int i = 0; i < 6; i++) {
        *dst[i] = s;
        s += ((widths[i] + 15) & ~(size_t)15) * n;
    }
    return IA_OK;
}

/* ---- forward -------------------------------------------------------------------------- */

/* x += delta (when given), then out = norm(x): the pre-norm step. RMSNorm
 * does the add inside the kernel. */
static void add_norm(const ia_decoder *dec, float *x, const float *delta, const float *w,
                     const float *b, size_t rows, float *out, ia_threadpool *pool) {
    const ia_backend *be = dec->backend;
    size_t h = (size_t)dec->config.hidden_size;
    float eps = (float)dec->config.norm_eps;
    if (dec->arch->norm == DEC_NORM_RMS) {
        if (delta)
            be->rms_norm(delta, h, x, h, w, eps, rows, h, out, h, pool);
        else
            be->rms_norm(x, h, NULL, 0, w, eps, rows, h, out, h, pool);
        return;
    }
    if (delta)
        for (size_t i = 0; i < rows * h; i++)
            x[i] += delta[i];
    be->layer_norm(x, h, NULL, 0, w, b, eps, rows, h, out, h, pool);
}

/* Copies the keys and values of new tokens [t0, t1) (in qkv rows) into layer
 * l's cache. */
static void append_rows(ia_kv_cache *kv, int l, const float *qkv, size_t ld, size_t t0, size_t t1) {
    const ia_decoder *dec = kv->dec;
    size_t kvd = dec->kv_dim, base = ((size_t)l * kv->max_tokens + kv->length) * kvd;
    for (size_t t = t0; t < t1; t++) {
        const float *k = qkv + t * ld + dec->q_dim, *v = k + kvd;
        size_t off = base + t * kvd;
        if (kv->dtype == IA_DTYPE_Q8_0) { /* heads are whole blocks: checked at creation */
            size_t row = ((size_t)l * kv->max_tokens + kv->length + t) * kv->row_bytes;
            ia_quantize_row(IA_DTYPE_Q8_0, k, (char *)kv->k + row, kvd);
            ia_quantize_row(IA_DTYPE_Q8_0, v, (char *)kv->v + row, kvd);
        } else if (kv->dtype == IA_DTYPE_F32) {
            memcpy((float *)kv->k + off, k, kvd * sizeof(float));
            memcpy((float *)kv->v + off, v, kvd * sizeof(float));
        } else {
            uint16_t *kd = (uint16_t *)kv->k + off, *vd = (uint16_t *)kv->v + off;
            for (size_t d = 0; d < kvd; d++) {
                kd[d] = ia_f32_to_f16(k[d]);
                vd[d] = ia_f32_to_f16(v[d]);
            }
        }
    }
}

typedef struct append_job {
    ia_kv_cache *kv;
    int layer;
    const float *qkv;
    size_t ld, n;
} append_job;

#define APPEND_ROWS 32 /* tokens per task: a prefill's conversions split across the pool */

static void append_task(void *ctx, size_t task, int thread) {
    const append_job *j = ctx;
    size_t t0 = task * APPEND_ROWS, t1 = t0 + APPEND_ROWS < j->n ? t0 + APPEND_ROWS : j->n;
    append_rows(j->kv, j->layer, j->qkv, j->ld, t0, t1);
    (void)thread;
}

/* Copies the new tokens' keys and values into layer l's cache; a decode
 * step (one task) runs on the calling thread. */
static void append_kv(ia_kv_cache *kv, int l, const float *qkv, size_t ld, size_t n,
                      ia_threadpool *pool) {
    append_job job = {kv, l, qkv, ld, n};
    ia_threadpool_run(pool, (n + APPEND_ROWS - 1) / APPEND_ROWS, append_task, &job);
}

/* The attention of layer li for n new tokens of one sequence whose queries,
 * keys and values are in kv->qkv: RoPE at the cache's positions, the keys
 * and values appended, the context written to kv->ctx. */
static void attend_one(const ia_decoder *dec, ia_kv_cache *kv, int li, size_t n,
                       ia_threadpool *pool) {
    const ia_backend *be = dec->backend;
    const ia_decoder_config *c = &dec->config;
    size_t qkv_w = dec->q_dim + 2 * dec->kv_dim;
    int hd = (int)c->head_dim;
    if (dec->inv_freq) {
        be->rope(kv->qkv, qkv_w, n, (int)c->num_heads, hd, kv->length, dec->inv_freq,
                 dec->rope_mode);
        be->rope(kv->qkv + dec->q_dim, qkv_w, n, (int)c->num_kv_heads, hd, kv->length,
                 dec->inv_freq, dec->rope_mode);
    }
    append_kv(kv, li, kv->qkv, qkv_w, n, pool);
    size_t layer_off = (size_t)li * kv->max_tokens * kv->row_bytes;
    ia_kv_attention_args att = {
        .q = kv->qkv,
        .ld_q = qkv_w,
        .k = (const char *)kv->k + layer_off,
        .v = (const char *)kv->v + layer_off,
        .ld_kv = dec->kv_dim,
        .kv_dtype = kv->dtype,
        .out = kv->ctx,
        .ld_out = dec->q_dim,
        .n_q = n,
        .pos0 = kv->length,
        .n_heads = (int)c->num_heads,
        .n_kv_heads = (int)c->num_kv_heads,
        .head_dim = hd,
        .window = dec->layers[li].window,
        .scale = 1.0f / sqrtf((float)hd),
    };
    be->kv_attention(&att, pool);
}

/* The rest of layer li on n rows of the scratch in s: the attention output
 * projection, the residual into the MLP's norm, and the MLP (its output is
 * left in s->tmp for the next norm to add). */
static void layer_out_mlp(const ia_decoder *dec, ia_kv_cache *s, int li, size_t n,
                          ia_threadpool *pool) {
    const ia_backend *be = dec->backend;
    const decoder_layer *l = &dec->layers[li];
    size_t h = (size_t)dec->config.hidden_size, f = dec->ffn_dim;
    be->linear(l->attn_out, l->attn_out_bias, IA_ACT_NONE, s->ctx, dec->q_dim, s->tmp, h, n, pool);
    add_norm(dec, s->x, s->tmp, l->ffn_norm_w, l->ffn_norm_b, n, s->xn, pool);
    if (dec->arch->mlp == DEC_MLP_SWIGLU) {
        run_stacked(be, &l->up, NULL, IA_ACT_NONE, s->xn, h, s->ffn, 2 * f, n, pool);
        be->swiglu(s->ffn, 2 * f, s->ffn + f, 2 * f, n, f, s->ffn, 2 * f);
        be->linear(l->down, l->down_bias, IA_ACT_NONE, s->ffn, 2 * f, s->tmp, h, n, pool);
    } else {
        run_stacked(be, &l->up, l->up_bias, dec->act, s->xn, h, s->ffn, f, n, pool);
        be->linear(l->down, l->down_bias, IA_ACT_NONE, s->ffn, f, s->tmp, h, n, pool);
    }
}

static void run_layer(const ia_decoder *dec, ia_kv_cache *kv, int li, size_t n,
                      ia_threadpool *pool) {
    const decoder_layer *l = &dec->layers[li];
    size_t h = (size_t)dec->config.hidden_size, qkv_w = dec->q_dim + 2 * dec->kv_dim;
    run_stacked(dec->backend, &l->qkv, l->qkv_bias, IA_ACT_NONE, kv->xn, h, kv->qkv, qkv_w, n,
                pool);
    attend_one(dec, kv, li, n, pool);
    layer_out_mlp(dec, kv, li, n, pool);
}

static ia_status check_tokens(const ia_decoder *dec, const ia_kv_cache *kv, const int32_t *tokens,
                              size_t n) {
    if (n == 0)
        return ia_error_set(IA_EINVAL, "decoder forward: no tokens");
    if (kv->dec != dec)
        return ia_error_set(IA_EINVAL, "decoder forward: the KV cache belongs to another model");
    if (n > kv->max_tokens - kv->length)
        return ia_error_set(IA_ERANGE,
                            "decoder forward: %zu new tokens after %zu exceed the context of %zu "
                            "tokens",
                            n, kv->length, kv->max_tokens);
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= dec->config.vocab_size)
            return ia_error_set(IA_ERANGE,
                                "decoder forward: token id %d at index %zu is outside the "
                                "vocabulary of %lld",
                                tokens[i], i, (long long)dec->config.vocab_size);
    return IA_OK;
}

void models_embedding_gather(const ia_backend *be, const ia_tensor *table, const int32_t *ids,
                             size_t n, bool accumulate, float *out, size_t h, float *tmp) {
    if (!ia_dtype_is_quantized(table->dtype)) {
        be->embedding_gather(table, ids, n, accumulate, out, h);
        return;
    }
    size_t row_bytes = 0;
    ia_dtype_bytes(table->dtype, h, &row_bytes); /* whole blocks: checked at load */
    for (size_t i = 0; i < n; i++) {
        const char *row = (const char *)table->data + (size_t)ids[i] * row_bytes;
        float *dst = accumulate ? tmp : out + i * h;
        ia_dequantize_row(table->dtype, row, dst, h);
        for (size_t j = 0; accumulate && j < h; j++)
            out[i * h + j] += tmp[j];
    }
}

ia_status ia_decoder_forward(const ia_decoder *dec, ia_kv_cache *kv, const int32_t *tokens,
                             size_t n, bool all_logits, float *logits, ia_threadpool *pool) {
    const ia_backend *be = dec->backend;
    size_t h = (size_t)dec->config.hidden_size;
    ia_status st = check_tokens(dec, kv, tokens, n);
    if (st == IA_OK)
        st = reserve_scratch(kv, n);
    if (st != IA_OK)
        return st;
    models_embedding_gather(be, &dec->embed, tokens, n, false, kv->x, h, kv->tmp);
    if (dec->arch->learned_positions) {
        for (size_t i = 0; i < n; i++)
            kv->pos[i] = (int32_t)(kv->length + i);
        models_embedding_gather(be, &dec->positions, kv->pos, n, true, kv->x, h, kv->tmp);
    }
    const decoder_layer *first = &dec->layers[0];
    add_norm(dec, kv->x, NULL, first->attn_norm_w, first->attn_norm_b, n, kv->xn, pool);
    for (int i = 0; i < dec->config.num_layers; i++) {
        run_layer(dec, kv, i, n, pool);
        /* the MLP's output joins the stream in the next layer's first norm */
        bool last = i + 1 == dec->config.num_layers;
        if (!last)
            add_norm(dec, kv->x, kv->tmp, dec->layers[i + 1].attn_norm_w,
                     dec->layers[i + 1].attn_norm_b, n, kv->xn, pool);
    }
    kv->length += n;
    /* The final norm and the head run on the rows whose logits are wanted. */
    size_t r0 = all_logits ? 0 : n - 1, rows = n - r0;
    add_norm(dec, kv->x + r0 * h, kv->tmp + r0 * h, dec->final_norm_w, dec->final_norm_b, rows,
             kv->xn + r0 * h, pool);
    be->linear(dec->lm_head, NULL, IA_ACT_NONE, kv->xn + r0 * h, h, logits,
               (size_t)dec->config.vocab_size, rows, pool);
    return IA_OK;
}

/* ---- one decode step for many sequences ------------------------------------------------ */

/* Attention of one new token per sequence, each against its own cache: one
 * task per (sequence, KV head), each a kv_attention call on that head's
 * group of query heads (the same per-head arithmetic as a call with every
 * head, so a sequence gets the bits it gets alone). */
typedef struct batch_attention {
    const ia_decoder *dec;
    ia_kv_cache *const *kv;
    const ia_kv_cache *s; /* the scratch: queries in s->qkv, contexts to s->ctx */
    int layer;
} batch_attention;

static void batch_attention_task(void *ctx, size_t task, int thread) {
    const batch_attention *b = ctx;
    const ia_decoder *dec = b->dec;
    const ia_decoder_config *c = &dec->config;
    size_t n_kv = (size_t)c->num_kv_heads, seq = task / n_kv, g = task % n_kv;
    size_t hd = (size_t)c->head_dim, group = (size_t)(c->num_heads / c->num_kv_heads);
    size_t qkv_w = dec->q_dim + 2 * dec->kv_dim;
    const ia_kv_cache *kv = b->kv[seq];
    size_t layer_off = (size_t)b->layer * kv->max_tokens * kv->row_bytes, head_off = 0;
    ia_dtype_bytes(kv->dtype, g * hd, &head_off); /* whole blocks: checked at creation */
    ia_kv_attention_args att = {
        .q = b->s->qkv + seq * qkv_w + g * group * hd,
        .ld_q = qkv_w,
        .k = (const char *)kv->k + layer_off + head_off,
        .v = (const char *)kv->v + layer_off + head_off,
        .ld_kv = dec->kv_dim,
        .kv_dtype = kv->dtype,
        .out = b->s->ctx + seq * dec->q_dim + g * group * hd,
        .ld_out = dec->q_dim,
        .n_q = 1,
        .pos0 = kv->length,
        .n_heads = (int)group,
        .n_kv_heads = 1,
        .head_dim = (int)hd,
        .window = dec->layers[b->layer].window,
        .scale = 1.0f / sqrtf((float)hd),
    };
    dec->backend->kv_attention(&att, NULL);
    (void)thread;
}

static ia_status check_batch(const ia_decoder *dec, ia_kv_cache *const *kv, const int32_t *tokens,
                             size_t n) {
    if (n == 0)
        return ia_error_set(IA_EINVAL, "decoder batch step: no sequences");
    for (size_t i = 0; i < n; i++) {
        ia_status st = check_tokens(dec, kv[i], tokens + i, 1);
        if (st != IA_OK) {
            ia_error_prefix("sequence %zu of %zu", i, n);
            return st;
        }
        for (size_t j = 0; j < i; j++)
            if (kv[j] == kv[i])
                return ia_error_set(IA_EINVAL,
                                    "decoder batch step: sequences %zu and %zu share one KV cache",
                                    j, i);
    }
    return IA_OK;
}

ia_status ia_decoder_forward_batch(const ia_decoder *dec, ia_kv_cache *const *kv,
                                   const int32_t *tokens, size_t n, float *logits,
                                   ia_threadpool *pool) {
    ia_status st = check_batch(dec, kv, tokens, n);
    if (st != IA_OK)
        return st;
    if (n == 1) /* the single-sequence path: the same operations */
        return ia_decoder_forward(dec, kv[0], tokens, 1, false, logits, pool);
    ia_kv_cache *s = kv[0]; /* its scratch serves the whole batch */
    if ((st = reserve_scratch(s, n)) != IA_OK)
        return st;
    const ia_backend *be = dec->backend;
    const ia_decoder_config *c = &dec->config;
    size_t h = (size_t)c->hidden_size, qkv_w = dec->q_dim + 2 * dec->kv_dim;
    int hd = (int)c->head_dim;
    models_embedding_gather(be, &dec->embed, tokens, n, false, s->x, h, s->tmp);
    if (dec->arch->learned_positions) {
        for (size_t i = 0; i < n; i++)
            s->pos[i] = (int32_t)kv[i]->length;
        models_embedding_gather(be, &dec->positions, s->pos, n, true, s->x, h, s->tmp);
    }
    add_norm(dec, s->x, NULL, dec->layers[0].attn_norm_w, dec->layers[0].attn_norm_b, n, s->xn,
             pool);
    for (int li = 0; li < c->num_layers; li++) {
        const decoder_layer *l = &dec->layers[li];
        /* the weights are read once for all sequences */
        run_stacked(be, &l->qkv, l->qkv_bias, IA_ACT_NONE, s->xn, h, s->qkv, qkv_w, n, pool);
        for (size_t i = 0; i < n; i++) { /* each row at its own position */
            float *row = s->qkv + i * qkv_w;
            if (dec->inv_freq) {
                be->rope(row, qkv_w, 1, (int)c->num_heads, hd, kv[i]->length, dec->inv_freq,
                         dec->rope_mode);
                be->rope(row + dec->q_dim, qkv_w, 1, (int)c->num_kv_heads, hd, kv[i]->length,
                         dec->inv_freq, dec->rope_mode);
            }
            append_rows(kv[i], li, row, qkv_w, 0, 1);
        }
        batch_attention job = {dec, kv, s, li};
        ia_threadpool_run(pool, n * (size_t)c->num_kv_heads, batch_attention_task, &job);
        layer_out_mlp(dec, s, li, n, pool);
        if (li + 1 < c->num_layers)
            add_norm(dec, s->x, s->tmp, dec->layers[li + 1].attn_norm_w,
                     dec->layers[li + 1].attn_norm_b, n, s->xn, pool);
    }
    for (size_t i = 0; i < n; i++)
        kv[i]->length++;
    add_norm(dec, s->x, s->tmp, dec->final_norm_w, dec->final_norm_b, n, s->xn, pool);
    be->linear(dec->lm_head, NULL, IA_ACT_NONE, s->xn, h, logits, (size_t)c->vocab_size, n, pool);
    return IA_OK;
}
