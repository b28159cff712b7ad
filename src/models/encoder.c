/*
 * The generic transformer encoder (BERT family).
 *
 * Loading reads config.json through the architecture row, finds every tensor
 * in model.safetensors by the row's names (trying the usual checkpoint
 * prefixes and the old gamma/beta LayerNorm names), checks each shape, and
 * packs the matrices for the backend: Q, K and V become one [3h, h] weight so
 * that a layer starts with a single matrix multiply. Small vectors (biases,
 * norms) are converted to f32 arrays owned here; the embedding tables stay in
 * the mapped file and are gathered row by row.
 *
 * A layer is post-norm, as in BERT:
 *   qkv = x Wqkv + b;  c = attention(q, k, v);  x = LN(c Wo + b + x)
 *   x = LN(act(x Wi + b) Wout + b + x)
 * with all sequences of a batch packed one after another.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ia/formats.h"
#include "ia/quant.h"
#include "models_internal.h"

typedef struct encoder_layer {
    ia_packed_weight *qkv, *attn_out, *ffn_in, *ffn_out;
    float *qkv_bias, *attn_out_bias, *ffn_in_bias, *ffn_out_bias;
    float *attn_norm_w, *attn_norm_b, *ffn_norm_w, *ffn_norm_b;
} encoder_layer;

struct ia_encoder {
    ia_encoder_config config;
    char *model_type;
    const encoder_arch *arch;
    const ia_backend *backend;
    ia_safetensors *weights;
    const ia_tensor *word_embeddings, *position_embeddings, *token_type_embeddings;
    float *emb_norm_w, *emb_norm_b;
    float *relative_bias; /* [buckets, heads] f32, or NULL */
    encoder_layer *layers;
};

/* ---- loading ---------------------------------------------------------------- */

typedef struct loader {
    ia_encoder *enc;
    const char *path; /* model.safetensors, for messages */
} loader;

/* Finds a tensor by name trying each checkpoint prefix. */
static const ia_tensor *find_prefixed(const loader *ld, const char *name) {
    char full[512];
    for (int i = 0; encoder_name_prefixes[i]; i++) {
        snprintf(full, sizeof full, "%s%s", encoder_name_prefixes[i], name);
        const ia_tensor *t = ia_safetensors_find(ld->enc->weights, full);
        if (t)
            return t;
    }
    return NULL;
}

/* Looks up pattern (with %d = layer) + suffix and checks its shape. A suffix
 * of ".weight"/".bias" also tries ".gamma"/".beta" (old LayerNorm names).
 * cols == 0 means a vector of `rows` elements. */
static ia_status get_tensor(const loader *ld, const char *pattern, int layer, const char *suffix,
                            int64_t rows, int64_t cols, const ia_tensor **out) {
    char name[512], alt[512];
    int n = snprintf(name, sizeof name, pattern, layer);
    snprintf(name + n, sizeof name - (size_t)n, "%s", suffix);
    const ia_tensor *t = find_prefixed(ld, name);
    if (!t && (strcmp(suffix, ".weight") == 0 || strcmp(suffix, ".bias") == 0)) {
        snprintf(alt, sizeof alt, "%.*s%s", n, name, suffix[1] == 'w' ? ".gamma" : ".beta");
        t = find_prefixed(ld, alt);
    }
    if (!t)
        return ia_error_set(IA_ENOTFOUND, "%s: tensor '%s' is missing", ld->path, name);
    int want_dims = cols ? 2 : 1;
    bool ok = t->ndim == want_dims && t->shape[0] == rows && (!cols || t->shape[1] == cols);
    if (!ok) {
        char got[96];
        ia_tensor_shape_str(t, got, sizeof got);
        if (cols)
            return ia_error_set(IA_EPARSE,
                                "%s: tensor '%s' has shape %s, config.json implies [%lld, %lld]",
                                ld->path, t->name, got, (long long)rows, (long long)cols);
        return ia_error_set(IA_EPARSE, "%s: tensor '%s' has shape %s, config.json implies [%lld]",
                            ld->path, t->name, got, (long long)rows);
    }
    if (!ia_dtype_get_info(t->dtype)->is_float)
        return ia_error_set(IA_EUNSUPPORTED,
                            "%s: tensor '%s' has dtype %s; weights must be f32, f16 or bf16",
                            ld->path, t->name, ia_dtype_name(t->dtype));
    *out = t;
    return IA_OK;
}

/* Converts a float tensor to a new f32 array appended at dst + offset. */
static ia_status vector_to_f32(const ia_tensor *t, float *dst) {
    return ia_convert_to_f32(t->dtype, t->data, dst, (size_t)ia_tensor_numel(t));
}

static ia_status load_vector(const loader *ld, const char *pattern, int layer, const char *suffix,
                             int64_t n, float **out) {
    const ia_tensor *t;
    ia_status st = get_tensor(ld, pattern, layer, suffix, n, 0, &t);
    if (st != IA_OK)
        return st;
    *out = ia_malloc_array((size_t)n, sizeof(float));
    if (!*out)
        return IA_ENOMEM;
    return vector_to_f32(t, *out);
}

static ia_status load_linear(const loader *ld, const char *pattern, int layer, int64_t n_out,
                             int64_t n_in, ia_dtype compute, ia_packed_weight **w, float **bias) {
    const ia_tensor *t;
    ia_status st = get_tensor(ld, pattern, layer, ".weight", n_out, n_in, &t);
    if (st == IA_OK)
        st = ld->enc->backend->weight_pack(&t, 1, ia_quant_fit(compute, n_in), w);
    if (st == IA_OK)
        st = load_vector(ld, pattern, layer, ".bias", n_out, bias);
    return st;
}

static ia_status load_layer(const loader *ld, int i, ia_dtype compute, encoder_layer *layer) {
    const ia_encoder *enc = ld->enc;
    const encoder_tensor_names *nm = &enc->arch->names;
    int64_t h = enc->config.hidden_size, inter = enc->config.intermediate_size;
    const ia_tensor *parts[3];
    const char *qkv_names[3] = {nm->q, nm->k, nm->v};
    ia_status st = IA_OK;
    for (int p = 0; p < 3 && st == IA_OK; p++)
        st = get_tensor(ld, qkv_names[p], i, ".weight", h, h, &parts[p]);
    if (st == IA_OK)
        st = enc->backend->weight_pack(parts, 3, ia_quant_fit(compute, h), &layer->qkv);
    if (st == IA_OK) {
        layer->qkv_bias = ia_malloc_array((size_t)(3 * h), sizeof(float));
        st = layer->qkv_bias ? IA_OK : IA_ENOMEM;
    }
    for (int p = 0; p < 3 && st == IA_OK; p++) {
        const ia_tensor *b;
        st = get_tensor(ld, qkv_names[p], i, ".bias", h, 0, &b);
        if (st == IA_OK)
            st = vector_to_f32(b, layer->qkv_bias + p * h);
    }
    if (st == IA_OK)
        st = load_linear(ld, nm->attn_out, i, h, h, compute, &layer->attn_out,
                         &layer->attn_out_bias);
    if (st == IA_OK)
        st = load_vector(ld, nm->attn_norm, i, ".weight", h, &layer->attn_norm_w);
    if (st == IA_OK)
        st = load_vector(ld, nm->attn_norm, i, ".bias", h, &layer->attn_norm_b);
    if (st == IA_OK)
        st = load_linear(ld, nm->ffn_in, i, inter, h, compute, &layer->ffn_in, &layer->ffn_in_bias);
    if (st == IA_OK)
        st = load_linear(ld, nm->ffn_out, i, h, inter, compute, &layer->ffn_out,
                         &layer->ffn_out_bias);
    if (st == IA_OK)
        st = load_vector(ld, nm->ffn_norm, i, ".weight", h, &layer->ffn_norm_w);
    if (st == IA_OK)
        st = load_vector(ld, nm->ffn_norm, i, ".bias", h, &layer->ffn_norm_b);
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

static ia_status load_embeddings(const loader *ld) {
    ia_encoder *enc = ld->enc;
    const ia_encoder_config *c = &enc->config;
    const encoder_tensor_names *nm = &enc->arch->names;
    ia_status st = get_tensor(ld, nm->word_embeddings, 0, "", c->vocab_size, c->hidden_size,
                              &enc->word_embeddings);
    if (st == IA_OK)
        st = get_tensor(ld, nm->position_embeddings, 0, "", c->max_position_embeddings,
                        c->hidden_size, &enc->position_embeddings);
    if (st == IA_OK && c->type_vocab_size > 0)
        st = get_tensor(ld, nm->token_type_embeddings, 0, "", c->type_vocab_size, c->hidden_size,
                        &enc->token_type_embeddings);
    if (st == IA_OK)
        st = load_vector(ld, nm->embeddings_norm, 0, ".weight", c->hidden_size, &enc->emb_norm_w);
    if (st == IA_OK)
        st = load_vector(ld, nm->embeddings_norm, 0, ".bias", c->hidden_size, &enc->emb_norm_b);
    if (st == IA_OK && nm->relative_bias) {
        const ia_tensor *t;
        st = get_tensor(ld, nm->relative_bias, 0, "", c->relative_buckets, c->num_heads, &t);
        if (st == IA_OK) {
            enc->relative_bias = ia_malloc_array((size_t)ia_tensor_numel(t), sizeof(float));
            st = enc->relative_bias ? vector_to_f32(t, enc->relative_bias) : IA_ENOMEM;
        }
    }
    return st;
}

ia_status ia_encoder_load(const char *dir, const ia_backend *backend, ia_dtype compute,
                          ia_encoder **out) {
    *out = NULL;
    ia_config *cfg = NULL;
    char *config_path = ia_path_join(dir, "config.json");
    char *weights_path = ia_path_join(dir, "model.safetensors");
    ia_encoder *enc = ia_calloc(1, sizeof *enc);
    ia_status st = IA_ENOMEM;
    if (!config_path || !weights_path || !enc)
        goto fail;
    enc->backend = backend;
    if ((st = ia_config_load(config_path, &cfg)))
        goto fail;
    const char *model_type;
    if ((st = ia_config_string(cfg, "model_type", true, &model_type)))
        goto fail;
    enc->arch = encoder_arch_find(model_type);
    if (!enc->arch) {
        st = ia_error_set(IA_EUNSUPPORTED,
                          "%s: model_type '%s' is not an encoder this build runs "
                          "(bert, roberta, xlm-roberta, distilbert, mpnet)",
                          config_path, model_type);
        goto fail;
    }
    if (!(enc->model_type = ia_strdup(model_type))) {
        st = IA_ENOMEM;
        goto fail;
    }
    enc->config.model_type = enc->model_type;
    if ((st = read_config(enc, cfg)))
        goto fail;
    if ((st = ia_safetensors_open(weights_path, &enc->weights)))
        goto fail;
    loader ld = {enc, weights_path};
    if ((st = load_embeddings(&ld)))
        goto fail;
    enc->layers = ia_calloc((size_t)enc->config.num_layers, sizeof *enc->layers);
    if (!enc->layers) {
        st = IA_ENOMEM;
        goto fail;
    }
    for (int i = 0; i < enc->config.num_layers; i++)
        if ((st = load_layer(&ld, i, compute, &enc->layers[i])))
            goto fail;
    /* The matrices now live packed; only embedding rows are read from the
     * file from here on, and they fault back in as tokens use them. */
    ia_safetensors_drop_pages(enc->weights);
    ia_config_free(cfg);
    free(config_path);
    free(weights_path);
    *out = enc;
    return IA_OK;
fail:
    ia_config_free(cfg);
    free(config_path);
    free(weights_path);
    ia_encoder_free(enc);
    return st;
}

void ia_encoder_free(ia_encoder *enc) {
    if (!enc)
        return;
    for (int i = 0; enc->layers && i < enc->config.num_layers; i++) {
        encoder_layer *l = &enc->layers[i];
        ia_packed_weight *w[] = {l->qkv, l->attn_out, l->ffn_in, l->ffn_out};
        for (int k = 0; k < 4; k++)
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
    ia_safetensors_close(enc->weights);
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
    position_ids(c, ids, seq_start, n_seqs, pos);
    be->embedding_gather(enc->word_embeddings, ids, T, false, x, H);
    be->embedding_gather(enc->position_embeddings, pos, T, true, x, H);
    if (enc->token_type_embeddings) {
        if (!type_ids) {
            memset(pos, 0, T * sizeof(int32_t)); /* positions are no longer needed */
            type_ids = pos;
        }
        be->embedding_gather(enc->token_type_embeddings, type_ids, T, true, x, H);
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
        be->linear(l->qkv, l->qkv_bias, IA_ACT_NONE, x, H, qkv, 3 * H, T, pool);
        be->attention(&att, pool);
        be->linear(l->attn_out, l->attn_out_bias, IA_ACT_NONE, ctx, H, tmp, H, T, pool);
        be->layer_norm(tmp, H, x, H, l->attn_norm_w, l->attn_norm_b, eps, T, H, x, H, pool);
        be->linear(l->ffn_in, l->ffn_in_bias, c->activation, x, H, ffn, I, T, pool);
        be->linear(l->ffn_out, l->ffn_out_bias, IA_ACT_NONE, ffn, I, tmp, H, T, pool);
        be->layer_norm(tmp, H, x, H, l->ffn_norm_w, l->ffn_norm_b, eps, T, H, x, H, pool);
    }
    return IA_OK;
}
