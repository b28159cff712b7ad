/*
 * The generic transformer encoder (BERT family).
 *
 * Weights come from one of two sources. A model directory: config.json read
 * through the architecture row, every tensor found in model.safetensors by
 * the row's names (trying the usual checkpoint prefixes and the old
 * gamma/beta LayerNorm names). Or a BERT GGUF file as llama.cpp's converter
 * writes it: bert.* hyper-parameters and llama.cpp's tensor names
 * (token_embd, position_embd, token_types, token_embd_norm, blk.N.attn_q /
 * attn_k / attn_v / attn_output / attn_output_norm / ffn_up / ffn_down /
 * layer_output_norm), matrices in any ggml type. Either way each shape is
 * checked and the matrices are packed for the backend: Q, K and V become
 * one [3h, h] weight when they share a type (one matrix multiply starts the
 * layer), or consecutive runs of one type each when a recipe gave them
 * different types. Small vectors (biases, norms) become f32 arrays owned
 * here; the embedding tables stay in the mapped file (or, quantised at load
 * by a recipe, in a buffer owned here) and are gathered row by row.
 *
 * A layer is post-norm, as in BERT:
 *   qkv = x Wqkv + b;  c = attention(q, k, v);  x = LN(c Wo + b + x)
 *   x = LN(act(x Wi + b) Wout + b + x)
 * with all sequences of a batch packed one after another.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ia/formats.h"
#include "ia/quant.h"
#include "models_internal.h"

/* Q, K and V packed as up to three row-stacked weights (one per run of a
 * single type). */
typedef struct qkv_weight {
    ia_packed_weight *w[3];
    size_t rows[3];
    int n;
} qkv_weight;

typedef struct encoder_layer {
    qkv_weight qkv;
    ia_packed_weight *attn_out, *ffn_in, *ffn_out;
    float *qkv_bias, *attn_out_bias, *ffn_in_bias, *ffn_out_bias;
    float *attn_norm_w, *attn_norm_b, *ffn_norm_w, *ffn_norm_b;
} encoder_layer;

struct ia_encoder {
    ia_encoder_config config;
    char *model_type;
    const encoder_arch *arch;
    const encoder_tensor_names *names; /* the source's names: the row's or GGUF's */
    const ia_backend *backend;
    ia_safetensors *weights; /* one of weights and gguf is open */
    ia_gguf *gguf;
    ia_tensor word_embeddings, position_embeddings, token_type_embeddings; /* views */
    bool has_token_types;
    void *word_embeddings_owned; /* the table quantised at load, or NULL */
    float *emb_norm_w, *emb_norm_b;
    float *relative_bias; /* [buckets, heads] f32, or NULL */
    encoder_layer *layers;
};

/* llama.cpp's names for BERT (LLM_ARCH_BERT in its llama-arch.cpp). They
 * also name every tensor for per-tensor types whatever the source. */
static const encoder_tensor_names gguf_names = {
    .word_embeddings = "token_embd.weight",
    .position_embeddings = "position_embd.weight",
    .token_type_embeddings = "token_types.weight",
    .embeddings_norm = "token_embd_norm",
    .q = "blk.%d.attn_q",
    .k = "blk.%d.attn_k",
    .v = "blk.%d.attn_v",
    .attn_out = "blk.%d.attn_output",
    .attn_norm = "blk.%d.attn_output_norm",
    .ffn_in = "blk.%d.ffn_up",
    .ffn_out = "blk.%d.ffn_down",
    .ffn_norm = "blk.%d.layer_output_norm",
    .relative_bias = NULL,
};

#define NAME_OF(names, field) (*(const char *const *)((const char *)(names) + (field)))
#define F(field) offsetof(encoder_tensor_names, field)

/* ---- loading ---------------------------------------------------------------- */

typedef struct loader {
    ia_encoder *enc;
    const char *path; /* the weights file, for messages */
    ia_encoder_options opts;
} loader;

/* Finds a tensor by name: in a GGUF exactly, in safetensors trying each
 * checkpoint prefix. *found false when absent. */
static ia_status find_tensor(const loader *ld, const char *name, ia_tensor *out, bool *found) {
    *found = false;
    if (ld->enc->gguf) {
        const ia_gguf_tensor *gt = ia_gguf_tensor_find(ld->enc->gguf, name);
        if (!gt)
            return IA_OK;
        *found = true;
        return ia_gguf_tensor_view(ld->enc->gguf, gt, out);
    }
    char full[512];
    for (int i = 0; encoder_name_prefixes[i]; i++) {
        snprintf(full, sizeof full, "%s%s", encoder_name_prefixes[i], name);
        const ia_tensor *t = ia_safetensors_find(ld->enc->weights, full);
        if (t) {
            *out = *t;
            *found = true;
            return IA_OK;
        }
    }
    return IA_OK;
}

/* The GGUF name of field + layer + suffix, whatever the source. */
static void gguf_name(size_t field, int layer, const char *suffix, char *buf, size_t cap) {
    int n = snprintf(buf, cap, NAME_OF(&gguf_names, field), layer);
    if (n >= 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, "%s", suffix);
}

/* Looks up the source's name for `field` (with %d = layer) + suffix and
 * checks its shape. A suffix of ".weight"/".bias" also tries
 * ".gamma"/".beta" (old LayerNorm names). cols == 0 means a vector of
 * `rows` elements; vectors must be f32, f16 or bf16, matrices may also be
 * quantised (GGUF). */
static ia_status get_tensor(const loader *ld, size_t field, int layer, const char *suffix,
                            int64_t rows, int64_t cols, ia_tensor *t) {
    char name[512], alt[512];
    int n = snprintf(name, sizeof name, NAME_OF(ld->enc->names, field), layer);
    snprintf(name + n, sizeof name - (size_t)n, "%s", suffix);
    bool found;
    ia_status st = find_tensor(ld, name, t, &found);
    if (st == IA_OK && !found && (strcmp(suffix, ".weight") == 0 || strcmp(suffix, ".bias") == 0)) {
        snprintf(alt, sizeof alt, "%.*s%s", n, name, suffix[1] == 'w' ? ".gamma" : ".beta");
        st = find_tensor(ld, alt, t, &found);
    }
    if (st != IA_OK)
        return st;
    if (!found)
        return ia_error_set(IA_ENOTFOUND, "%s: tensor '%s' is missing", ld->path, name);
    const char *src = ld->enc->gguf ? "the GGUF metadata implies" : "config.json implies";
    int want_dims = cols ? 2 : 1;
    bool ok = t->ndim == want_dims && t->shape[0] == rows && (!cols || t->shape[1] == cols);
    if (!ok) {
        char got[96];
        ia_tensor_shape_str(t, got, sizeof got);
        if (cols)
            return ia_error_set(IA_EPARSE, "%s: tensor '%s' has shape %s, %s [%lld, %lld]",
                                ld->path, name, got, src, (long long)rows, (long long)cols);
        return ia_error_set(IA_EPARSE, "%s: tensor '%s' has shape %s, %s [%lld]", ld->path, name,
                            got, src, (long long)rows);
    }
    if (!ia_dtype_get_info(t->dtype)->is_float || (!cols && ia_dtype_is_quantized(t->dtype)))
        return ia_error_set(IA_EUNSUPPORTED, "%s: tensor '%s' has dtype %s; %s", ld->path, name,
                            ia_dtype_name(t->dtype),
                            cols ? "matrices must be f32, f16, bf16 or a ggml quantised type"
                                 : "vectors must be f32, f16 or bf16");
    if (ia_dtype_is_quantized(t->dtype)) {
        size_t bad;
        if (t->shape[1] % ia_dtype_get_info(t->dtype)->block_elems)
            return ia_error_set(IA_EPARSE, "%s: tensor '%s': rows of %lld cannot hold %s blocks",
                                ld->path, name, (long long)t->shape[1], ia_dtype_name(t->dtype));
        if (ia_quant_validate(t->dtype, t->data, (size_t)ia_tensor_numel(t), &bad) != IA_OK) {
            ia_error_prefix("%s: tensor '%s'", ld->path, name);
            return IA_EPARSE;
        }
    }
    return IA_OK;
}

static ia_status load_vector(const loader *ld, size_t field, int layer, const char *suffix,
                             int64_t n, float **out) {
    ia_tensor t;
    ia_status st = get_tensor(ld, field, layer, suffix, n, 0, &t);
    if (st != IA_OK)
        return st;
    *out = ia_malloc_array((size_t)n, sizeof(float));
    if (!*out)
        return IA_ENOMEM;
    return ia_convert_to_f32(t.dtype, t.data, *out, (size_t)n);
}

/* The type a matrix is packed in: a quantised file tensor keeps its blocks
 * (quantising again would only lose); float ones take the per-tensor type
 * when there is one, else the compute type, fitted to the row length. */
static ia_dtype pack_type(const loader *ld, const ia_tensor *t, size_t field, int layer) {
    if (ia_dtype_is_quantized(t->dtype))
        return t->dtype;
    ia_dtype want = ld->opts.compute;
    if (ld->opts.weight_type) {
        char name[256];
        gguf_name(field, layer, ".weight", name, sizeof name);
        ia_dtype d = ld->opts.weight_type(ld->opts.weight_type_ctx, name,
                                          (int)ld->enc->config.num_layers, t->shape[1]);
        if (d != IA_DTYPE_COUNT)
            want = d;
    }
    return ia_quant_fit(want, t->shape[1]);
}

static ia_status pack(const loader *ld, const ia_tensor *const *parts, int n, ia_dtype type,
                      ia_packed_weight **w) {
    ia_status st = ld->enc->backend->weight_pack(parts, n, type, w);
    if (st != IA_OK)
        ia_error_prefix("%s: tensor '%s'", ld->path, parts[0]->name ? parts[0]->name : "?");
    /* The packed copy is what runs: let the file's pages go. */
    for (int p = 0; st == IA_OK && p < n && ld->enc->gguf; p++) {
        size_t bytes;
        if (ia_dtype_bytes(parts[p]->dtype, (uint64_t)ia_tensor_numel(parts[p]), &bytes) == IA_OK)
            ia_gguf_drop_range(ld->enc->gguf, parts[p]->data, bytes);
    }
    return st;
}

static ia_status load_linear(const loader *ld, size_t field, int layer, int64_t n_out, int64_t n_in,
                             ia_packed_weight **w, float **bias) {
    ia_tensor t;
    const ia_tensor *pt = &t;
    ia_status st = get_tensor(ld, field, layer, ".weight", n_out, n_in, &t);
    if (st == IA_OK)
        st = pack(ld, &pt, 1, pack_type(ld, &t, field, layer), w);
    if (st == IA_OK)
        st = load_vector(ld, field, layer, ".bias", n_out, bias);
    return st;
}

/* Q, K and V: runs of one packed type become one weight each. */
static ia_status load_qkv(const loader *ld, int i, encoder_layer *layer) {
    int64_t h = ld->enc->config.hidden_size;
    static const size_t fields[3] = {F(q), F(k), F(v)};
    ia_tensor parts[3];
    ia_dtype types[3];
    ia_status st = IA_OK;
    for (int p = 0; p < 3 && st == IA_OK; p++) {
        st = get_tensor(ld, fields[p], i, ".weight", h, h, &parts[p]);
        if (st == IA_OK)
            types[p] = pack_type(ld, &parts[p], fields[p], i);
    }
    for (int p = 0; p < 3 && st == IA_OK;) {
        int q = p + 1;
        while (q < 3 && types[q] == types[p] && parts[q].dtype == parts[p].dtype)
            q++;
        const ia_tensor *ptrs[3];
        for (int r = p; r < q; r++)
            ptrs[r - p] = &parts[r];
        qkv_weight *w = &layer->qkv;
        st = pack(ld, ptrs, q - p, types[p], &w->w[w->n]);
        if (st == IA_OK)
            w->rows[w->n++] = (size_t)((q - p) * h);
        p = q;
    }
    if (st == IA_OK) {
        layer->qkv_bias = ia_malloc_array((size_t)(3 * h), sizeof(float));
        st = layer->qkv_bias ? IA_OK : IA_ENOMEM;
    }
    for (int p = 0; p < 3 && st == IA_OK; p++) {
        ia_tensor b;
        st = get_tensor(ld, fields[p], i, ".bias", h, 0, &b);
        if (st == IA_OK)
            st = ia_convert_to_f32(b.dtype, b.data, layer->qkv_bias + p * h, (size_t)h);
    }
    return st;
}

static ia_status load_layer(const loader *ld, int i, encoder_layer *layer) {
    int64_t h = ld->enc->config.hidden_size, inter = ld->enc->config.intermediate_size;
    ia_status st = load_qkv(ld, i, layer);
    if (st == IA_OK)
        st = load_linear(ld, F(attn_out), i, h, h, &layer->attn_out, &layer->attn_out_bias);
    if (st == IA_OK)
        st = load_vector(ld, F(attn_norm), i, ".weight", h, &layer->attn_norm_w);
    if (st == IA_OK)
        st = load_vector(ld, F(attn_norm), i, ".bias", h, &layer->attn_norm_b);
    if (st == IA_OK)
        st = load_linear(ld, F(ffn_in), i, inter, h, &layer->ffn_in, &layer->ffn_in_bias);
    if (st == IA_OK)
        st = load_linear(ld, F(ffn_out), i, h, inter, &layer->ffn_out, &layer->ffn_out_bias);
    if (st == IA_OK)
        st = load_vector(ld, F(ffn_norm), i, ".weight", h, &layer->ffn_norm_w);
    if (st == IA_OK)
        st = load_vector(ld, F(ffn_norm), i, ".bias", h, &layer->ffn_norm_b);
    return st;
}

static ia_status parse_activation(const ia_config *cfg, const char *key, ia_activation *out) {
    static const struct {
        const char *name;
        ia_activation act;
    } acts[] = {{"gelu", IA_ACT_GELU_ERF},
                {"gelu_new", IA_ACT_GELU_TANH},
                {"gelu_pytorch_tanh", IA_ACT_GELU_TANH},
                {"gelu_fast", IA_ACT_GELU_TANH},
                {"relu", IA_ACT_RELU},
                {"silu", IA_ACT_SILU},
                {"swish", IA_ACT_SILU}};
    const char *name = "gelu";
    ia_status st = ia_config_string(cfg, key, false, &name);
    if (st != IA_OK)
        return st;
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
        if (strcmp(acts[i].name, name) == 0) {
            *out = acts[i].act;
            return IA_OK;
        }
    }
    return ia_error_set(IA_EUNSUPPORTED,
                        "%s: field '%s' is '%s'; supported: gelu, gelu_new, "
                        "gelu_pytorch_tanh, gelu_fast, relu, silu",
                        ia_config_path(cfg), key, name);
}

static ia_status positive_field(const ia_config *cfg, const char *key, bool required,
                                int64_t *value) {
    ia_status st = ia_config_int(cfg, key, required, value);
    if (st == IA_OK && (*value <= 0 || *value > (1 << 24)))
        st = ia_error_set(IA_ERANGE, "%s: field '%s' is %lld; it must be between 1 and %d",
                          ia_config_path(cfg), key, (long long)*value, 1 << 24);
    return st;
}

static ia_status read_config(ia_encoder *enc, const ia_config *cfg) {
    ia_encoder_config *c = &enc->config;
    const encoder_arch *a = enc->arch;
    ia_status st;
    c->type_vocab_size = a->has_token_types ? 2 : 0;
    c->max_position_embeddings = 512;
    c->layer_norm_eps = a->keys.layer_norm_eps ? 1e-12 : a->fixed_eps;
    if ((st = positive_field(cfg, "vocab_size", true, &c->vocab_size)) ||
        (st = positive_field(cfg, a->keys.hidden, true, &c->hidden_size)) ||
        (st = positive_field(cfg, a->keys.layers, true, &c->num_layers)) ||
        (st = positive_field(cfg, a->keys.heads, true, &c->num_heads)) ||
        (st = positive_field(cfg, a->keys.intermediate, true, &c->intermediate_size)) ||
        (st = positive_field(cfg, "max_position_embeddings", false, &c->max_position_embeddings)) ||
        (st = parse_activation(cfg, a->keys.activation, &c->activation)))
        return st;
    if (a->has_token_types &&
        (st = ia_config_int(cfg, "type_vocab_size", false, &c->type_vocab_size)))
        return st;
    if (a->keys.layer_norm_eps &&
        (st = ia_config_float(cfg, a->keys.layer_norm_eps, false, &c->layer_norm_eps)))
        return st;
    if (c->hidden_size % c->num_heads)
        return ia_error_set(IA_EPARSE, "%s: hidden size %lld is not a multiple of %lld heads",
                            ia_config_path(cfg), (long long)c->hidden_size,
                            (long long)c->num_heads);
    c->position_from_padding = a->position_from_padding;
    c->padding_idx = a->fixed_padding_idx >= 0 ? a->fixed_padding_idx : 0;
    if (a->position_from_padding && a->fixed_padding_idx < 0 &&
        (st = ia_config_int(cfg, "pad_token_id", false, &c->padding_idx)))
        return st;
    c->max_tokens = c->max_position_embeddings;
    if (a->position_from_padding)
        c->max_tokens -= c->padding_idx + 1;
    if (c->max_tokens < 1)
        return ia_error_set(
            IA_ERANGE,
            "%s: max_position_embeddings %lld leaves no positions after padding_idx %lld",
            ia_config_path(cfg), (long long)c->max_position_embeddings, (long long)c->padding_idx);
    if (a->relative_bias) {
        c->relative_buckets = 32;
        if ((st = positive_field(cfg, "relative_attention_num_buckets", false,
                                 &c->relative_buckets)))
            return st;
    }
    return IA_OK;
}

/* bert.* hyper-parameters of a GGUF file, as llama.cpp reads them
 * (llm_load_hparams for LLM_ARCH_BERT); the vocabulary and token type
 * counts come from the tables' rows. */
static ia_status read_gguf_config(ia_encoder *enc, const char *path) {
    ia_encoder_config *c = &enc->config;
    const ia_gguf *g = enc->gguf;
    static const struct {
        const char *key;
        size_t offset;
        bool required;
    } ints[] = {
        {"bert.embedding_length", offsetof(ia_encoder_config, hidden_size), true},
        {"bert.block_count", offsetof(ia_encoder_config, num_layers), true},
        {"bert.attention.head_count", offsetof(ia_encoder_config, num_heads), true},
        {"bert.feed_forward_length", offsetof(ia_encoder_config, intermediate_size), true},
        {"bert.context_length", offsetof(ia_encoder_config, max_position_embeddings), false},
    };
    ia_status st;
    c->max_position_embeddings = 512;
    c->layer_norm_eps = 1e-12;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int64_t *v = (int64_t *)((char *)c + ints[i].offset);
        if ((st = ia_gguf_get_i64(g, ints[i].key, ints[i].required, v)))
            return st;
        if (*v <= 0 || *v > (1 << 24))
            return ia_error_set(IA_ERANGE, "%s: %s is %lld; it must be between 1 and %d", path,
                                ints[i].key, (long long)*v, 1 << 24);
    }
    if ((st = ia_gguf_get_f64(g, "bert.attention.layer_norm_epsilon", false, &c->layer_norm_eps)))
        return st;
    bool causal = false;
    if ((st = ia_gguf_get_bool(g, "bert.attention.causal", false, &causal)))
        return st;
    if (causal)
        return ia_error_set(IA_EUNSUPPORTED,
                            "%s: bert.attention.causal is true; this encoder runs bidirectional "
                            "attention only",
                            path);
    if (c->hidden_size % c->num_heads)
        return ia_error_set(IA_EPARSE, "%s: hidden size %lld is not a multiple of %lld heads", path,
                            (long long)c->hidden_size, (long long)c->num_heads);
    /* llama.cpp's BERT graph uses GELU; HF BERT checkpoints' "gelu" is the
     * erf form, and GGUF does not record which, so the checkpoint's is kept. */
    c->activation = IA_ACT_GELU_ERF;
    c->max_tokens = c->max_position_embeddings;
    int64_t pooling = 0;
    if ((st = ia_gguf_get_i64(g, "bert.pooling_type", false, &pooling)))
        return st;
    /* llama_pooling_type: 0 none, 1 mean, 2 cls, 3 last, 4 rank */
    static const ia_pooling modes[] = {IA_POOL_MEAN, IA_POOL_MEAN, IA_POOL_CLS, IA_POOL_LAST};
    if (pooling < 0 || pooling > 3)
        return ia_error_set(IA_EUNSUPPORTED,
                            "%s: bert.pooling_type is %lld; supported: 0 (none), 1 (mean), "
                            "2 (cls), 3 (last)",
                            path, (long long)pooling);
    c->has_pooling = pooling != 0;
    c->pooling = modes[pooling];
    const ia_gguf_tensor *we = ia_gguf_tensor_find(g, gguf_names.word_embeddings);
    const ia_gguf_tensor *tt = ia_gguf_tensor_find(g, gguf_names.token_type_embeddings);
    if (!we || we->n_dims != 2)
        return ia_error_set(IA_ENOTFOUND, "%s: no 2-D tensor '%s'", path,
                            gguf_names.word_embeddings);
    c->vocab_size = (int64_t)we->dims[1];
    c->type_vocab_size = tt && tt->n_dims == 2 ? (int64_t)tt->dims[1] : 0;
    return IA_OK;
}

/* The token embedding table quantised at load, when the per-tensor type
 * asks for it (what a GGUF written with the same recipe holds). */
static ia_status quantize_table(const loader *ld, ia_tensor *t) {
    ia_encoder *enc = ld->enc;
    if (!ld->opts.weight_type || ia_dtype_is_quantized(t->dtype))
        return IA_OK;
    ia_dtype want = ld->opts.weight_type(ld->opts.weight_type_ctx, gguf_names.word_embeddings,
                                         (int)enc->config.num_layers, t->shape[1]);
    want = want == IA_DTYPE_COUNT ? IA_DTYPE_COUNT : ia_quant_fit(want, t->shape[1]);
    if (want == IA_DTYPE_COUNT || !ia_dtype_is_quantized(want))
        return IA_OK;
    size_t rows = (size_t)t->shape[0], cols = (size_t)t->shape[1], bytes;
    ia_status st = ia_dtype_bytes(want, (uint64_t)rows * cols, &bytes);
    if (st != IA_OK)
        return st;
    float *f = ia_malloc_array(rows * cols, sizeof *f);
    enc->word_embeddings_owned = ia_malloc(bytes ? bytes : 1);
    st = f && enc->word_embeddings_owned ? ia_convert_to_f32(t->dtype, t->data, f, rows * cols)
                                         : IA_ENOMEM;
    if (st == IA_OK)
        st = ia_quantize_rows(want, f, enc->word_embeddings_owned, rows, cols, NULL);
    free(f);
    if (st == IA_OK) {
        t->dtype = want;
        t->data = enc->word_embeddings_owned;
    }
    return st;
}

static ia_status load_embeddings(loader *ld) {
    ia_encoder *enc = ld->enc;
    const ia_encoder_config *c = &enc->config;
    ia_status st = get_tensor(ld, F(word_embeddings), 0, "", c->vocab_size, c->hidden_size,
                              &enc->word_embeddings);
    if (st == IA_OK)
        st = quantize_table(ld, &enc->word_embeddings);
    if (st == IA_OK)
        st = get_tensor(ld, F(position_embeddings), 0, "", c->max_position_embeddings,
                        c->hidden_size, &enc->position_embeddings);
    if (st == IA_OK && c->type_vocab_size > 0) {
        st = get_tensor(ld, F(token_type_embeddings), 0, "", c->type_vocab_size, c->hidden_size,
                        &enc->token_type_embeddings);
        enc->has_token_types = true;
    }
    if (st == IA_OK)
        st = load_vector(ld, F(embeddings_norm), 0, ".weight", c->hidden_size, &enc->emb_norm_w);
    if (st == IA_OK)
        st = load_vector(ld, F(embeddings_norm), 0, ".bias", c->hidden_size, &enc->emb_norm_b);
    if (st == IA_OK && enc->names->relative_bias) {
        ia_tensor t;
        st = get_tensor(ld, F(relative_bias), 0, "", c->relative_buckets, c->num_heads, &t);
        if (st == IA_OK) {
            enc->relative_bias = ia_malloc_array((size_t)ia_tensor_numel(&t), sizeof(float));
            st = enc->relative_bias ? ia_convert_to_f32(t.dtype, t.data, enc->relative_bias,
                                                        (size_t)ia_tensor_numel(&t))
                                    : IA_ENOMEM;
        }
    }
    return st;
}

bool ia_encoder_path_is_gguf(const char *path) {
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    bool gguf = f && fread(magic, 1, 4, f) == 4 && memcmp(magic, "GGUF", 4) == 0;
    if (f)
        fclose(f);
    return gguf;
}

/* A directory: config.json through the architecture row, model.safetensors. */
static ia_status open_dir(ia_encoder *enc, const char *dir, char **weights_path) {
    ia_config *cfg = NULL;
    char *config_path = ia_path_join(dir, "config.json");
    ia_status st = IA_ENOMEM;
    *weights_path = ia_path_join(dir, "model.safetensors");
    if (!config_path || !*weights_path)
        goto done;
    if ((st = ia_config_load(config_path, &cfg)))
        goto done;
    const char *model_type;
    if ((st = ia_config_string(cfg, "model_type", true, &model_type)))
        goto done;
    enc->arch = encoder_arch_find(model_type);
    if (!enc->arch) {
        st = ia_error_set(IA_EUNSUPPORTED,
                          "%s: model_type '%s' is not an encoder this build runs "
                          "(bert, roberta, xlm-roberta, distilbert, mpnet)",
                          config_path, model_type);
        goto done;
    }
    enc->names = &enc->arch->names;
    if (!(enc->model_type = ia_strdup(model_type))) {
        st = IA_ENOMEM;
        goto done;
    }
    if ((st = read_config(enc, cfg)))
        goto done;
    st = ia_safetensors_open(*weights_path, &enc->weights);
done:
    ia_config_free(cfg);
    free(config_path);
    return st;
}

/* A GGUF file: general.architecture must be "bert". */
static ia_status open_gguf(ia_encoder *enc, const char *path) {
    ia_status st = ia_gguf_open(path, &enc->gguf);
    const char *arch = NULL;
    if (st == IA_OK)
        st = ia_gguf_get_string(enc->gguf, "general.architecture", true, &arch, NULL);
    if (st != IA_OK)
        return st;
    if (strcmp(arch, "bert") != 0)
        return ia_error_set(IA_EUNSUPPORTED,
                            "%s: general.architecture is '%s'; GGUF encoders this build runs "
                            "are 'bert'",
                            path, arch);
    enc->arch = encoder_arch_find("bert");
    enc->names = &gguf_names;
    if (!enc->arch || !(enc->model_type = ia_strdup("bert")))
        return IA_ENOMEM;
    enc->config.from_gguf = true;
    return read_gguf_config(enc, path);
}

ia_status ia_encoder_load_ex(const char *path, const ia_encoder_options *opts, ia_encoder **out) {
    *out = NULL;
    char *weights_path = NULL;
    ia_encoder *enc = ia_calloc(1, sizeof *enc);
    ia_status st = IA_ENOMEM;
    if (!enc)
        goto fail;
    loader ld = {enc, path, *opts};
    enc->backend = opts->backend ? opts->backend : ia_backend_cpu();
    if (ia_encoder_path_is_gguf(path)) {
        st = open_gguf(enc, path);
    } else {
        st = open_dir(enc, path, &weights_path);
        ld.path = weights_path;
    }
    if (st != IA_OK)
        goto fail;
    enc->config.model_type = enc->model_type;
    if ((st = load_embeddings(&ld)))
        goto fail;
    enc->layers = ia_calloc((size_t)enc->config.num_layers, sizeof *enc->layers);
    if (!enc->layers) {
        st = IA_ENOMEM;
        goto fail;
    }
    for (int i = 0; i < enc->config.num_layers; i++)
        if ((st = load_layer(&ld, i, &enc->layers[i])))
            goto fail;
    /* The matrices now live packed; only embedding rows are read from the
     * file from here on, and they fault back in as tokens use them. */
    if (enc->weights)
        ia_safetensors_drop_pages(enc->weights);
    free(weights_path);
    *out = enc;
    return IA_OK;
fail:
    free(weights_path);
    ia_encoder_free(enc);
    return st;
}

ia_status ia_encoder_load(const char *path, const ia_backend *backend, ia_dtype compute,
                          ia_encoder **out) {
    ia_encoder_options o = {.backend = backend, .compute = compute};
    return ia_encoder_load_ex(path, &o, out);
}

void ia_encoder_free(ia_encoder *enc) {
    if (!enc)
        return;
    for (int i = 0; enc->layers && i < enc->config.num_layers; i++) {
        encoder_layer *l = &enc->layers[i];
        ia_packed_weight *w[] = {l->qkv.w[0], l->qkv.w[1], l->qkv.w[2],
                                 l->attn_out, l->ffn_in,   l->ffn_out};
        for (size_t k = 0; k < sizeof w / sizeof w[0]; k++)
            if (w[k])
                enc->backend->weight_free(w[k]);
        float *v[] = {l->qkv_bias,    l->attn_out_bias, l->ffn_in_bias, l->ffn_out_bias,
                      l->attn_norm_w, l->attn_norm_b,   l->ffn_norm_w,  l->ffn_norm_b};
        for (int k = 0; k < 8; k++)
            free(v[k]);
    }
    free(enc->layers);
    free(enc->emb_norm_w);
    free(enc->emb_norm_b);
    free(enc->relative_bias);
    free(enc->word_embeddings_owned);
    if (enc->weights)
        ia_safetensors_close(enc->weights);
    if (enc->gguf)
        ia_gguf_close(enc->gguf);
    free(enc->model_type);
    free(enc);
}

const ia_encoder_config *ia_encoder_get_config(const ia_encoder *enc) { return &enc->config; }

/* ---- forward ------------------------------------------------------------------ */

/* MPNet's (T5-style, bidirectional) bucket of a key-query distance. */
static int relative_bucket(int distance, int num_buckets, int max_distance) {
    int n = -distance, ret = 0;
    num_buckets /= 2;
    if (n < 0)
        ret += num_buckets;
    n = abs(n);
    int max_exact = num_buckets / 2;
    if (n < max_exact)
        return ret + n;
    /* float32 arithmetic, truncation toward zero, as in the reference */
    float v = logf((float)n / (float)max_exact) / logf((float)max_distance / (float)max_exact) *
              (float)(num_buckets - max_exact);
    int large = max_exact + (int)v;
    if (large > num_buckets - 1)
        large = num_buckets - 1;
    return ret + large;
}

static void *arena_floats(ia_arena *arena, size_t rows, size_t cols) {
    size_t n;
    if (!ia_size_mul(rows, cols, &n) || !ia_size_mul(n, sizeof(float), &n))
        return NULL;
    return ia_arena_alloc(arena, n, 64);
}

/* Position ids as HF computes them: i, or for RoBERTa-style rows the running
 * count of non-padding tokens plus padding_idx (padding_idx itself for pads). */
static void position_ids(const ia_encoder_config *c, const int32_t *ids, const int32_t *seq_start,
                         size_t n_seqs, int32_t *pos) {
    for (size_t s = 0; s < n_seqs; s++) {
        int32_t count = 0;
        for (int32_t t = seq_start[s]; t < seq_start[s + 1]; t++) {
            if (!c->position_from_padding) {
                pos[t] = t - seq_start[s];
            } else if (ids[t] != c->padding_idx) {
                pos[t] = (int32_t)c->padding_idx + ++count;
            } else {
                pos[t] = (int32_t)c->padding_idx;
            }
        }
    }
}

static ia_status check_batch(const ia_encoder *enc, const int32_t *ids, const int32_t *type_ids,
                             const int32_t *seq_start, size_t n_seqs, int32_t *longest) {
    const ia_encoder_config *c = &enc->config;
    *longest = 0;
    if (seq_start[0] != 0)
        return ia_error_set(IA_EINVAL, "batch offsets must start at 0");
    for (size_t s = 0; s < n_seqs; s++) {
        int32_t len = seq_start[s + 1] - seq_start[s];
        if (len <= 0)
            return ia_error_set(IA_EINVAL, "sequence %zu of the batch is empty", s);
        if (len > c->max_tokens)
            return ia_error_set(IA_ERANGE,
                                "sequence %zu has %d tokens; the model takes at most %lld", s, len,
                                (long long)c->max_tokens);
        if (len > *longest)
            *longest = len;
    }
    for (int32_t t = 0; t < seq_start[n_seqs]; t++) {
        if (ids[t] < 0 || ids[t] >= c->vocab_size)
            return ia_error_set(IA_ERANGE,
                                "token id %d at position %d is outside the vocabulary of %lld",
                                ids[t], t, (long long)c->vocab_size);
        if (type_ids &&
            (type_ids[t] < 0 || type_ids[t] >= (c->type_vocab_size ? c->type_vocab_size : 1)))
            return ia_error_set(IA_ERANGE, "token type id %d at position %d is outside 0..%lld",
                                type_ids[t], t, (long long)c->type_vocab_size - 1);
    }
    return IA_OK;
}

ia_status ia_encoder_forward(const ia_encoder *enc, const int32_t *ids, const int32_t *type_ids,
                             const int32_t *seq_start, size_t n_seqs, float *x, ia_arena *arena,
                             ia_threadpool *pool) {
    const ia_encoder_config *c = &enc->config;
    const ia_backend *be = enc->backend;
    int32_t longest;
    ia_status st = check_batch(enc, ids, type_ids, seq_start, n_seqs, &longest);
    if (st != IA_OK)
        return st;
    size_t T = (size_t)seq_start[n_seqs], H = (size_t)c->hidden_size;
    size_t I = (size_t)c->intermediate_size;
    int32_t *pos = ia_arena_alloc(arena, T * sizeof(int32_t), 64);
    float *qkv = arena_floats(arena, T, 3 * H);
    float *ctx = arena_floats(arena, T, H);
    float *tmp = arena_floats(arena, T, H);
    float *ffn = arena_floats(arena, T, I);
    if (!pos || !qkv || !ctx || !tmp || !ffn)
        return IA_ENOMEM;

    /* embeddings: word + position (+ token type), then LayerNorm */
    float *row = arena_floats(arena, 1, H);
    if (!row)
        return IA_ENOMEM;
    position_ids(c, ids, seq_start, n_seqs, pos);
    models_embedding_gather(be, &enc->word_embeddings, ids, T, false, x, H, row);
    models_embedding_gather(be, &enc->position_embeddings, pos, T, true, x, H, row);
    if (enc->has_token_types) {
        if (!type_ids) {
            memset(pos, 0, T * sizeof(int32_t)); /* positions are no longer needed */
            type_ids = pos;
        }
        models_embedding_gather(be, &enc->token_type_embeddings, type_ids, T, true, x, H, row);
    }
    be->layer_norm(x, H, NULL, 0, enc->emb_norm_w, enc->emb_norm_b, (float)c->layer_norm_eps, T, H,
                   x, H, pool);

    ia_attention_args att = {
        .q = qkv,
        .k = qkv + H,
        .v = qkv + 2 * H,
        .ld_q = 3 * H,
        .ld_k = 3 * H,
        .ld_v = 3 * H,
        .out = ctx,
        .ld_out = H,
        .seq_start = seq_start,
        .n_seqs = n_seqs,
        .n_heads = (int)c->num_heads,
        .head_dim = (int)(H / (size_t)c->num_heads),
        .scale = 1.0f / sqrtf((float)(H / (size_t)c->num_heads)),
    };
    if (enc->relative_bias) {
        /* expand the bucket table over every distance this batch has */
        int span = 2 * longest - 1, heads = (int)c->num_heads;
        float *bias = arena_floats(arena, (size_t)span, (size_t)heads);
        if (!bias)
            return IA_ENOMEM;
        for (int d = -(longest - 1); d < longest; d++) {
            int bucket = relative_bucket(d, 32, 128);
            if (bucket >= c->relative_buckets)
                bucket = (int)c->relative_buckets - 1;
            memcpy(bias + (size_t)(d + longest - 1) * heads,
                   enc->relative_bias + (size_t)bucket * heads, (size_t)heads * sizeof(float));
        }
        att.rel_bias = bias;
        att.rel_bias_offset = longest - 1;
    }

    float eps = (float)c->layer_norm_eps;
    for (int i = 0; i < c->num_layers; i++) {
        const encoder_layer *l = &enc->layers[i];
        for (int g = 0, off = 0; g < l->qkv.n; off += (int)l->qkv.rows[g++])
            be->linear(l->qkv.w[g], l->qkv_bias + off, IA_ACT_NONE, x, H, qkv + off, 3 * H, T,
                       pool);
        be->attention(&att, pool);
        be->linear(l->attn_out, l->attn_out_bias, IA_ACT_NONE, ctx, H, tmp, H, T, pool);
        be->layer_norm(tmp, H, x, H, l->attn_norm_w, l->attn_norm_b, eps, T, H, x, H, pool);
        be->linear(l->ffn_in, l->ffn_in_bias, c->activation, x, H, ffn, I, T, pool);
        be->linear(l->ffn_out, l->ffn_out_bias, IA_ACT_NONE, ffn, I, tmp, H, T, pool);
        be->layer_norm(tmp, H, x, H, l->ffn_norm_w, l->ffn_norm_b, eps, T, H, x, H, pool);
    }
    return IA_OK;
}
