/*
 * HF decoder directory (or BERT encoder directory, see "BERT encoders"
 * below) -> GGUF, with llama.cpp's names and conventions, so the file loads
 * in llama.cpp and in our own GGUF path alike.
 *
 * What llama.cpp's convert_hf_to_gguf.py does, and so we do:
 *   - general.architecture is "llama" for llama and mistral checkpoints,
 *     "qwen2" and "gpt2" for theirs; hyper-parameters go under "<arch>.".
 *   - Tensors get llama.cpp names (token_embd, blk.N.attn_q, ...).
 *   - LLaMA-family Q and K projections are permuted back from HF's
 *     rotate-half RoPE layout to Meta's interleaved pairs: within each head,
 *     row (j * hd/2 + i) moves to row (2i + j). K uses the KV head count.
 *     Qwen2 is not permuted (llama.cpp runs it with NEOX-style RoPE).
 *   - GPT-2's Conv1D weights ([in, out]) are transposed to [out, in], and
 *     the tied embedding is written again as output.weight.
 *   - Llama-3 RoPE scaling becomes a rope_freqs.weight tensor of per-
 *     frequency divisors, computed as llama.cpp computes them.
 *   - tokenizer.ggml.* comes from tokenizer.json: the model ("gpt2" for
 *     byte-level BPE, "llama" for SentencePiece-style BPE with byte
 *     fallback), the pre-tokenizer name recognised from its regex, every
 *     token with its type, the merges, special ids, add_bos and the chat
 *     template.
 * Matrices take the requested type (f32, f16, bf16); 1-D tensors (norms,
 * biases) stay f32 as llama.cpp keeps them.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ia/formats.h"
#include "ia/runtime.h"

#define JSON_MAX_BYTES (64u << 20)

enum { GGML_F32 = 0, GGML_F16 = 1, GGML_BF16 = 30 };
/* general.file_type: llama_ftype ALL_F32, MOSTLY_F16, MOSTLY_BF16 */
enum { FTYPE_F32 = 0, FTYPE_F16 = 1, FTYPE_BF16 = 32 };

static const char LLAMA3_REGEX[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char QWEN2_REGEX[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* ---- the architecture table ----------------------------------------------------------- */

typedef enum { XF_NONE = 0, XF_PERMUTE_Q, XF_PERMUTE_K, XF_TRANSPOSE } xform;

typedef struct name_row {
    const char *hf, *gguf; /* without .weight/.bias; %d is the layer */
    xform weight_xf;
} name_row;

typedef struct conv_arch {
    const char *model_type, *gguf_arch;
    bool gpt2_keys;
    const name_row *names;
} conv_arch;

#define LLAMA_ROWS(QX, KX)                                                                 \
    {"model.embed_tokens", "token_embd", XF_NONE}, {"model.norm", "output_norm", XF_NONE}, \
        {"lm_head", "output", XF_NONE},                                                    \
        {"model.layers.%d.input_layernorm", "blk.%d.attn_norm", XF_NONE},                  \
        {"model.layers.%d.self_attn.q_proj", "blk.%d.attn_q", QX},                         \
        {"model.layers.%d.self_attn.k_proj", "blk.%d.attn_k", KX},                         \
        {"model.layers.%d.self_attn.v_proj", "blk.%d.attn_v", XF_NONE},                    \
        {"model.layers.%d.self_attn.o_proj", "blk.%d.attn_output", XF_NONE},               \
        {"model.layers.%d.post_attention_layernorm", "blk.%d.ffn_norm", XF_NONE},          \
        {"model.layers.%d.mlp.gate_proj", "blk.%d.ffn_gate", XF_NONE},                     \
        {"model.layers.%d.mlp.up_proj", "blk.%d.ffn_up", XF_NONE},                         \
        {"model.layers.%d.mlp.down_proj", "blk.%d.ffn_down", XF_NONE}, {                   \
        NULL, NULL, XF_NONE                                                                \
    }

static const name_row llama_names[] = {LLAMA_ROWS(XF_PERMUTE_Q, XF_PERMUTE_K)};
static const name_row qwen2_names[] = {LLAMA_ROWS(XF_NONE, XF_NONE)};
static const name_row gpt2_names[] = {
    {"transformer.wte", "token_embd", XF_NONE},
    {"transformer.wpe", "position_embd", XF_NONE},
    {"transformer.ln_f", "output_norm", XF_NONE},
    {"lm_head", "output", XF_NONE},
    {"transformer.h.%d.ln_1", "blk.%d.attn_norm", XF_NONE},
    {"transformer.h.%d.attn.c_attn", "blk.%d.attn_qkv", XF_TRANSPOSE},
    {"transformer.h.%d.attn.c_proj", "blk.%d.attn_output", XF_TRANSPOSE},
    {"transformer.h.%d.ln_2", "blk.%d.ffn_norm", XF_NONE},
    {"transformer.h.%d.mlp.c_fc", "blk.%d.ffn_up", XF_TRANSPOSE},
    {"transformer.h.%d.mlp.c_proj", "blk.%d.ffn_down", XF_TRANSPOSE},
    {NULL, NULL, XF_NONE},
};

static const conv_arch conv_archs[] = {
    {"llama", "llama", false, llama_names}, {"mistral", "llama", false, llama_names},
    {"qwen2", "qwen2", false, qwen2_names}, {"gpt2", "gpt2", true, gpt2_names},
    {"bert", "bert", false, NULL}, /* its own path: bert_* below */
};

/* ---- state ------------------------------------------------------------------------------ */

typedef struct converter {
    const char *dir;
    json_t *cfg, *tok, *tok_cfg;
    const conv_arch *arch;
    ia_safetensors *st;
    ia_gguf_writer *w;
    uint32_t type; /* ggml type for matrices */
    int64_t n_layers, n_heads, n_kv_heads, hidden, head_dim;
    void **bufs; /* tensor data we made, freed after the write */
    size_t n_bufs, cap_bufs;
    char **strs; /* token strings we made */
    size_t n_strs;
} converter;

static void *keep_buf(converter *c, size_t bytes) {
    if (c->n_bufs == c->cap_bufs) {
        size_t cap = c->cap_bufs ? c->cap_bufs * 2 : 64;
        void **b = ia_realloc_array(c->bufs, cap, sizeof *b);
        if (!b)
            return NULL;
        c->bufs = b;
        c->cap_bufs = cap;
    }
    void *p = ia_malloc(bytes ? bytes : 1);
    if (p)
        c->bufs[c->n_bufs++] = p;
    return p;
}

static int64_t cfg_int(json_t *cfg, const char *key, int64_t dflt) {
    json_t *v = json_object_get(cfg, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

static double cfg_num(json_t *obj, const char *key, double dflt) {
    json_t *v = json_object_get(obj, key);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

/* ---- tensors ------------------------------------------------------------------------------ */

/* Writes one tensor: f32 rows of a [rows, cols] (or 1-D) tensor, transformed,
 * converted to the file's type (1-D stays f32). */
static ia_status add_tensor(converter *c, const char *gguf_name, const ia_tensor *t, xform xf) {
    int64_t n = ia_tensor_numel(t);
    int64_t rows = t->ndim == 2 ? t->shape[0] : 1, cols = t->ndim == 2 ? t->shape[1] : n;
    if (t->ndim < 1 || t->ndim > 2 || n <= 0)
        return ia_error_set(IA_EUNSUPPORTED, "%s: tensor '%s' has %d dimensions; expected 1 or 2",
                            c->dir, t->name, t->ndim);
    float *src = ia_malloc_array((size_t)n, sizeof *src), *dst = NULL;
    ia_status st = src ? ia_convert_to_f32(t->dtype, t->data, src, (size_t)n) : IA_ENOMEM;
    if (st != IA_OK)
        goto done;
    dst = ia_malloc_array((size_t)n, sizeof *dst);
    if (!dst) {
        st = IA_ENOMEM;
        goto done;
    }
    if (xf == XF_TRANSPOSE && t->ndim == 2) {
        for (int64_t r = 0; r < rows; r++)
            for (int64_t k = 0; k < cols; k++)
                dst[k * rows + r] = src[r * cols + k];
        int64_t tmp = rows;
        rows = cols;
        cols = tmp;
    } else if (xf == XF_PERMUTE_Q || xf == XF_PERMUTE_K) {
        int64_t heads = xf == XF_PERMUTE_Q ? c->n_heads : c->n_kv_heads;
        int64_t hd = rows / heads;
        if (heads <= 0 || rows % heads || hd % 2) {
            st = ia_error_set(IA_EPARSE,
                              "%s: tensor '%s' has %lld rows, not %lld heads of even size", c->dir,
                              t->name, (long long)rows, (long long)heads);
            goto done;
        }
        for (int64_t h = 0; h < heads; h++)
            for (int64_t j = 0; j < 2; j++)
                for (int64_t i = 0; i < hd / 2; i++)
                    memcpy(dst + (h * hd + 2 * i + j) * cols,
                           src + (h * hd + j * (hd / 2) + i) * cols, (size_t)cols * sizeof *dst);
    } else {
        memcpy(dst, src, (size_t)n * sizeof *dst);
    }
    uint32_t type = t->ndim == 1 ? GGML_F32 : c->type;
    size_t esize = type == GGML_F32 ? 4 : 2;
    void *data = keep_buf(c, (size_t)n * esize);
    if (!data) {
        st = IA_ENOMEM;
        goto done;
    }
    if (type == GGML_F32) {
        memcpy(data, dst, (size_t)n * 4);
    } else {
        uint16_t *h = data;
        for (int64_t i = 0; i < n; i++)
            h[i] = type == GGML_F16 ? ia_f32_to_f16(dst[i]) : ia_f32_to_bf16(dst[i]);
    }
    uint64_t dims[2] = {(uint64_t)cols, (uint64_t)rows};
    st = ia_gguf_writer_add_tensor(c->w, gguf_name, t->ndim == 2 ? 2 : 1, dims, type, data,
                                   (uint64_t)n * esize);
done:
    if (st == IA_ENOMEM && !*ia_error_message())
        ia_error_set(IA_ENOMEM, "%s: out of memory converting '%s'", c->dir, t->name);
    free(src);
    free(dst);
    return st;
}

static bool skipped_tensor(const char *name) {
    static const char *const ends[] = {".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
        size_t e = strlen(ends[i]);
        if (n >= e && strcmp(name + n - e, ends[i]) == 0)
            return true;
    }
    return false;
}

static ia_status convert_tensors(converter *c) {
    size_t total = ia_safetensors_count(c->st), used = 0;
    for (size_t i = 0; i < total; i++)
        used += skipped_tensor(ia_safetensors_at(c->st, i)->name);
    const ia_tensor *embed = NULL;
    bool have_output = false;
    for (const name_row *r = c->arch->names; r->hf; r++) {
        bool per_layer = strstr(r->hf, "%d") != NULL;
        for (int64_t l = 0; l < (per_layer ? c->n_layers : 1); l++) {
            for (int s = 0; s < 2; s++) {
                const char *suffix = s == 0 ? "weight" : "bias";
                char hf[256], gg[256], base[200];
                snprintf(base, sizeof base, r->hf, (int)l);
                snprintf(hf, sizeof hf, "%s.%s", base, suffix);
                snprintf(base, sizeof base, r->gguf, (int)l);
                snprintf(gg, sizeof gg, "%s.%s", base, suffix);
                const ia_tensor *t = ia_safetensors_find(c->st, hf);
                if (!t)
                    continue;
                used++;
                if (strcmp(gg, "token_embd.weight") == 0)
                    embed = t;
                if (strcmp(gg, "output.weight") == 0)
                    have_output = true;
                ia_status st = add_tensor(c, gg, t, s == 0 ? r->weight_xf : XF_NONE);
                if (st != IA_OK)
                    return st;
            }
        }
    }
    if (used != total) {
        for (size_t i = 0; i < total; i++) {
            const char *name = ia_safetensors_at(c->st, i)->name;
            bool known = skipped_tensor(name);
            for (const name_row *r = c->arch->names; r->hf && !known; r++) {
                const char *pct = strstr(r->hf, "%d");
                size_t pre = pct ? (size_t)(pct - r->hf) : strlen(r->hf);
                known = strncmp(name, r->hf, pre) == 0;
            }
            if (!known)
                return ia_error_set(IA_EUNSUPPORTED,
                                    "%s: tensor '%s' has no llama.cpp name for %s models", c->dir,
                                    name, c->arch->model_type);
        }
    }
    if (!embed)
        return ia_error_set(IA_ENOTFOUND, "%s: no token embedding tensor", c->dir);
    /* GPT-2's head is its embedding; llama.cpp's converter writes it twice. */
    if (!have_output && strcmp(c->arch->gguf_arch, "gpt2") == 0)
        return add_tensor(c, "output.weight", embed, XF_NONE);
    return IA_OK;
}

/* llama.cpp's rope_freqs.weight for Llama-3 scaling: per-frequency divisors. */
static ia_status add_rope_freqs(converter *c, json_t *rs, double theta) {
    double factor = cfg_num(rs, "factor", 8.0), lo = cfg_num(rs, "low_freq_factor", 1.0),
           hi = cfg_num(rs, "high_freq_factor", 4.0),
           old = cfg_num(rs, "original_max_position_embeddings", 8192.0);
    int64_t half = c->head_dim / 2;
    float *f = keep_buf(c, (size_t)half * sizeof *f);
    if (!f)
        return ia_error_set(IA_ENOMEM, "out of memory");
    ia_rope_llama3_divisors(theta, c->head_dim, factor, lo, hi, old, f);
    uint64_t dims[1] = {(uint64_t)half};
    return ia_gguf_writer_add_tensor(c->w, "rope_freqs.weight", 1, dims, GGML_F32, f,
                                     (uint64_t)half * 4);
}

/* ---- hyper-parameters ------------------------------------------------------------------------ */

static ia_status add_hparams(converter *c) {
    json_t *cfg = c->cfg;
    const char *a = c->arch->gguf_arch;
    char key[128];
    ia_status st = IA_OK;
#define KEY(s) (snprintf(key, sizeof key, "%s.%s", a, s), key)
    if (c->arch->gpt2_keys) {
        c->hidden = cfg_int(cfg, "n_embd", 0);
        c->n_layers = cfg_int(cfg, "n_layer", 0);
        c->n_heads = c->n_kv_heads = cfg_int(cfg, "n_head", 0);
    } else {
        c->hidden = cfg_int(cfg, "hidden_size", 0);
        c->n_layers = cfg_int(cfg, "num_hidden_layers", 0);
        c->n_heads = cfg_int(cfg, "num_attention_heads", 0);
        c->n_kv_heads = cfg_int(cfg, "num_key_value_heads", c->n_heads);
    }
    if (c->hidden <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0)
        return ia_error_set(IA_EPARSE,
                            "%s/config.json: missing or invalid hidden size, layer or "
                            "head count",
                            c->dir);
    c->head_dim = cfg_int(cfg, "head_dim", c->hidden / c->n_heads);
    int64_t ctx = c->arch->gpt2_keys ? cfg_int(cfg, "n_positions", 1024)
                                     : cfg_int(cfg, "max_position_embeddings", 2048);
    int64_t ffn = c->arch->gpt2_keys ? cfg_int(cfg, "n_inner", 4 * c->hidden)
                                     : cfg_int(cfg, "intermediate_size", 0);
    if ((st = ia_gguf_writer_add_u32(c->w, KEY("context_length"), (uint32_t)ctx)) ||
        (st = ia_gguf_writer_add_u32(c->w, KEY("embedding_length"), (uint32_t)c->hidden)) ||
        (st = ia_gguf_writer_add_u32(c->w, KEY("block_count"), (uint32_t)c->n_layers)) ||
        (st = ia_gguf_writer_add_u32(c->w, KEY("feed_forward_length"), (uint32_t)ffn)) ||
        (st = ia_gguf_writer_add_u32(c->w, KEY("attention.head_count"), (uint32_t)c->n_heads)))
        return st;
    if (c->arch->gpt2_keys)
        return ia_gguf_writer_add_f32(c->w, KEY("attention.layer_norm_epsilon"),
                                      (float)cfg_num(cfg, "layer_norm_epsilon", 1e-5));
    if ((st = ia_gguf_writer_add_u32(c->w, KEY("attention.head_count_kv"),
                                     (uint32_t)c->n_kv_heads)) ||
        (st = ia_gguf_writer_add_f32(c->w, KEY("attention.layer_norm_rms_epsilon"),
                                     (float)cfg_num(cfg, "rms_norm_eps", 1e-6))) ||
        (st = ia_gguf_writer_add_u32(c->w, KEY("rope.dimension_count"), (uint32_t)c->head_dim)))
        return st;
    if (c->head_dim * c->n_heads != c->hidden &&
        ((st = ia_gguf_writer_add_u32(c->w, KEY("attention.key_length"), (uint32_t)c->head_dim)) ||
         (st = ia_gguf_writer_add_u32(c->w, KEY("attention.value_length"), (uint32_t)c->head_dim))))
        return st;
    /* RoPE: transformers 5's rope_parameters, or the older rope_theta + rope_scaling. */
    json_t *rp = json_object_get(cfg, "rope_parameters");
    json_t *rs = json_is_object(rp) ? rp : json_object_get(cfg, "rope_scaling");
    double theta = cfg_num(json_is_object(rp) ? rp : cfg, "rope_theta", 10000.0);
    if ((st = ia_gguf_writer_add_f32(c->w, KEY("rope.freq_base"), (float)theta)))
        return st;
    const char *rtype =
        json_is_object(rs) ? json_string_value(json_object_get(rs, "rope_type")) : NULL;
    if (!rtype && json_is_object(rs))
        rtype = json_string_value(json_object_get(rs, "type"));
    if (rtype && strcmp(rtype, "llama3") == 0) {
        if ((st = add_rope_freqs(c, rs, theta)))
            return st;
    } else if (rtype && strcmp(rtype, "linear") == 0) {
        if ((st = ia_gguf_writer_add_string(c->w, KEY("rope.scaling.type"), "linear", 6)) ||
            (st = ia_gguf_writer_add_f32(c->w, KEY("rope.scaling.factor"),
                                         (float)cfg_num(rs, "factor", 1.0))))
            return st;
    } else if (rtype && strcmp(rtype, "default") != 0) {
        return ia_error_set(IA_EUNSUPPORTED,
                            "%s/config.json: RoPE scaling '%s' is not supported "
                            "(default, linear, llama3)",
                            c->dir, rtype);
    }
    /* Sliding window: Mistral always; Qwen2 only with use_sliding_window. */
    json_t *sw = json_object_get(cfg, "sliding_window");
    json_t *use = json_object_get(cfg, "use_sliding_window");
    if (json_is_integer(sw) && json_integer_value(sw) > 0 && (!use || json_is_true(use)))
        st = ia_gguf_writer_add_u32(c->w, KEY("attention.sliding_window"),
                                    (uint32_t)json_integer_value(sw));
    return st;
#undef KEY
}

/* ---- tokenizer ---------------------------------------------------------------------------------
 */

/* A tokenizer_config.json special token: "text" or {"content": "text"}. */
static const char *special_token(json_t *tc, const char *key) {
    json_t *v = json_object_get(tc, key);
    if (json_is_object(v))
        v = json_object_get(v, "content");
    return json_string_value(v);
}

static bool json_has_type(json_t *node, const char *type) {
    if (!node)
        return false;
    const char *t = json_string_value(json_object_get(node, "type"));
    if (t && strcmp(t, type) == 0)
        return true;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(node, "pretokenizers"), i,
                       e) if (json_has_type(e, type)) return true;
    json_array_foreach(json_object_get(node, "decoders"), i,
                       e) if (json_has_type(e, type)) return true;
    json_array_foreach(json_object_get(node, "normalizers"), i,
                       e) if (json_has_type(e, type)) return true;
    return false;
}

/* The regex of the first Split pre-tokenizer, or NULL. */
static const char *split_regex(json_t *pre) {
    if (!pre)
        return NULL;
    const char *t = json_string_value(json_object_get(pre, "type"));
    if (t && strcmp(t, "Split") == 0)
        return json_string_value(json_object_get(json_object_get(pre, "pattern"), "Regex"));
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(pre, "pretokenizers"), i, e) {
        const char *r = split_regex(e);
        if (r)
            return r;
    }
    return NULL;
}

/* Whether encode adds a special token first: the TemplateProcessing single
 * template starts with a SpecialToken. */
static bool template_adds_bos(json_t *pp) {
    if (!pp)
        return false;
    const char *t = json_string_value(json_object_get(pp, "type"));
    if (t && strcmp(t, "TemplateProcessing") == 0)
        return json_object_get(json_array_get(json_object_get(pp, "single"), 0), "SpecialToken");
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(pp, "processors"), i,
                       e) if (template_adds_bos(e)) return true;
    return false;
}

static int32_t token_id(json_t *vocab, json_t *added, const char *s) {
    if (!s)
        return -1;
    json_t *v = json_object_get(vocab, s);
    if (json_is_integer(v))
        return (int32_t)json_integer_value(v);
    size_t i;
    json_t *e;
    json_array_foreach(added, i, e) {
        const char *content = json_string_value(json_object_get(e, "content"));
        if (content && strcmp(content, s) == 0)
            return (int32_t)json_integer_value(json_object_get(e, "id"));
    }
    return -1;
}

static ia_status add_tokenizer(converter *c) {
    json_t *model = json_object_get(c->tok, "model");
    const char *mtype = json_string_value(json_object_get(model, "type"));
    if (!mtype || strcmp(mtype, "BPE") != 0)
        return ia_error_set(IA_EUNSUPPORTED,
                            "%s/tokenizer.json: model type %s; GGUF conversion handles BPE", c->dir,
                            mtype ? mtype : "(none)");
    json_t *vocab = json_object_get(model, "vocab"),
           *added = json_object_get(c->tok, "added_tokens");
    bool spm = json_is_true(json_object_get(model, "byte_fallback")) ||
               json_has_type(json_object_get(c->tok, "decoder"), "ByteFallback");
    const char *pre = "default";
    if (!spm) {
        const char *re = split_regex(json_object_get(c->tok, "pre_tokenizer"));
        if (re && strcmp(re, LLAMA3_REGEX) == 0)
            pre = "llama-bpe";
        else if (re && strcmp(re, QWEN2_REGEX) == 0)
            pre = "qwen2";
        else if (!re)
            pre = "gpt-2";
        else
            return ia_error_set(IA_EUNSUPPORTED,
                                "%s/tokenizer.json: the pre-tokenizer regex is not one llama.cpp "
                                "names (gpt-2, llama-bpe, qwen2)",
                                c->dir);
    }
    /* Every id from the vocabulary and the added tokens, in id order. */
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach(vocab, k, v) if (json_integer_value(v) + 1 > (json_int_t)n) n =
        (size_t)json_integer_value(v) + 1;
    size_t i;
    json_t *e;
    json_array_foreach(added, i, e) {
        json_int_t id = json_integer_value(json_object_get(e, "id"));
        if (id + 1 > (json_int_t)n)
            n = (size_t)id + 1;
    }
    ia_status st = IA_OK;
    const char **tokens = ia_calloc(n ? n : 1, sizeof *tokens);
    int32_t *types = ia_calloc(n ? n : 1, sizeof *types);
    float *scores = ia_calloc(n ? n : 1, sizeof *scores);
    char **pads = ia_calloc(n ? n : 1, sizeof *pads);
    const char **merges = NULL;
    char **merge_strs = NULL;
    size_t n_merges = 0;
    if (!tokens || !types || !scores || !pads)
        goto nomem;
    json_object_foreach(vocab, k, v) {
        size_t id = (size_t)json_integer_value(v);
        tokens[id] = k;
        unsigned hex;
        types[id] = spm && strlen(k) == 6 && sscanf(k, "<0x%2X>", &hex) == 1 ? 6 : 1;
        scores[id] = -(float)id;
    }
    json_array_foreach(added, i, e) {
        size_t id = (size_t)json_integer_value(json_object_get(e, "id"));
        tokens[id] = json_string_value(json_object_get(e, "content"));
        types[id] = json_is_true(json_object_get(e, "special")) ? 3 : 4;
        scores[id] = 0;
    }
    for (i = 0; i < n; i++)
        if (!tokens[i]) { /* a hole in the ids: llama.cpp pads with [PADn], unused */
            char buf[32];
            snprintf(buf, sizeof buf, "[PAD%zu]", i);
            if (!(pads[i] = ia_strdup(buf)))
                goto nomem;
            tokens[i] = pads[i];
            types[i] = 5;
        }
    json_t *jm = json_object_get(model, "merges");
    n_merges = json_array_size(jm);
    merges = ia_calloc(n_merges ? n_merges : 1, sizeof *merges);
    merge_strs = ia_calloc(n_merges ? n_merges : 1, sizeof *merge_strs);
    if (!merges || !merge_strs)
        goto nomem;
    json_array_foreach(jm, i, e) {
        if (json_is_string(e)) {
            merges[i] = json_string_value(e);
        } else {
            const char *l = json_string_value(json_array_get(e, 0)),
                       *r = json_string_value(json_array_get(e, 1));
            if (!l || !r) {
                st = ia_error_set(IA_EPARSE, "%s/tokenizer.json: merge %zu is not a pair", c->dir,
                                  i);
                goto done;
            }
            size_t len = strlen(l) + strlen(r) + 2;
            if (!(merge_strs[i] = ia_malloc(len)))
                goto nomem;
            snprintf(merge_strs[i], len, "%s %s", l, r);
            merges[i] = merge_strs[i];
        }
    }
    const char *bos_s = special_token(c->tok_cfg, "bos_token"),
               *eos_s = special_token(c->tok_cfg, "eos_token");
    int32_t bos = token_id(vocab, added, bos_s), eos = token_id(vocab, added, eos_s);
    if (bos < 0)
        bos = (int32_t)cfg_int(c->cfg, "bos_token_id", -1);
    if (eos < 0)
        eos = (int32_t)cfg_int(c->cfg, "eos_token_id", -1);
    json_t *ab = json_object_get(c->tok_cfg, "add_bos_token");
    bool add_bos =
        ab ? json_is_true(ab) : template_adds_bos(json_object_get(c->tok, "post_processor"));
    const char *tmodel = spm ? "llama" : "gpt2";
    if ((st = ia_gguf_writer_add_string(c->w, "tokenizer.ggml.model", tmodel, strlen(tmodel))) ||
        (st = ia_gguf_writer_add_string(c->w, "tokenizer.ggml.pre", pre, strlen(pre))) ||
        (st = ia_gguf_writer_add_string_array(c->w, "tokenizer.ggml.tokens", tokens, n)) ||
        (spm && (st = ia_gguf_writer_add_array(c->w, "tokenizer.ggml.scores", IA_GGUF_FLOAT32,
                                               scores, n))) ||
        (st = ia_gguf_writer_add_array(c->w, "tokenizer.ggml.token_type", IA_GGUF_INT32, types,
                                       n)) ||
        (st = ia_gguf_writer_add_string_array(c->w, "tokenizer.ggml.merges", merges, n_merges)))
        goto done;
    if (bos >= 0 &&
        (st = ia_gguf_writer_add_u32(c->w, "tokenizer.ggml.bos_token_id", (uint32_t)bos)))
        goto done;
    if (eos >= 0 &&
        (st = ia_gguf_writer_add_u32(c->w, "tokenizer.ggml.eos_token_id", (uint32_t)eos)))
        goto done;
    const char *unk_s = json_string_value(json_object_get(model, "unk_token"));
    int32_t unk = token_id(vocab, added, unk_s);
    if (unk >= 0 &&
        (st = ia_gguf_writer_add_u32(c->w, "tokenizer.ggml.unknown_token_id", (uint32_t)unk)))
        goto done;
    if ((st = ia_gguf_writer_add_bool(c->w, "tokenizer.ggml.add_bos_token", add_bos)) ||
        (st = ia_gguf_writer_add_bool(c->w, "tokenizer.ggml.add_eos_token", false)))
        goto done;
    const char *tmpl = json_string_value(json_object_get(c->tok_cfg, "chat_template"));
    if (tmpl)
        st = ia_gguf_writer_add_string(c->w, "tokenizer.chat_template", tmpl, strlen(tmpl));
    goto done;
nomem:
    st = ia_error_set(IA_ENOMEM, "%s: out of memory converting the tokenizer", c->dir);
done:
    /* The writer copies metadata; the token strings may go now. */
    for (i = 0; pads && i < n; i++)
        free(pads[i]);
    for (i = 0; merge_strs && i < n_merges; i++)
        free(merge_strs[i]);
    free(pads);
    free(merge_strs);
    free(merges);
    free(tokens);
    free(types);
    free(scores);
    return st;
}

static ia_status load_json(const char *dir, const char *name, bool required, json_t **out);

/* ---- BERT encoders ------------------------------------------------------------------------------
 *
 * llama.cpp's BertModel conversion (convert_hf_to_gguf.py, conversion/bert.py
 * and gguf-py's SpecialVocab), which we match key for key:
 *   - bert.context_length, embedding_length, feed_forward_length,
 *     attention.head_count, attention.layer_norm_epsilon (f32), block_count,
 *     attention.causal = false, pooling_type from the sentence-transformers
 *     Pooling module (1 mean, 2 cls, 3 last; absent without one), and
 *     tokenizer.ggml.token_type_count = type_vocab_size.
 *   - tokenizer.ggml.model "bert" with a "phantom space" vocabulary: every
 *     id below vocab_size, holes as [PADn] (type unused); a token that is
 *     not a control token gets U+2581 in front, unless it is a "##"
 *     continuation, which loses the "##". Added special tokens are control
 *     (3), other added tokens user-defined (4), the rest normal (1).
 *   - special ids: bos = cls_token, eos = sep_token (tokenizer_config.json),
 *     unk, seperator (sic, llama.cpp's key), padding, mask; add_bos_token and
 *     add_eos_token true and add_sep_token false for the [CLS] $A [SEP]
 *     template; normalizer.lowercase / strip_accents as the BertNormalizer
 *     says them (absent when the tokenizer.json leaves them null).
 *   - tokenizer.ggml.pre: llama.cpp names it by hashing how the tokenizer
 *     splits a test text (MiniLM's vocabulary hashes as "jina-v2-en"); its
 *     WPM tokenizer never reads it, and we write "default".
 *   - tensors in the checkpoint's order under llama.cpp's names, the
 *     "bert." prefix and gamma/beta names normalised, the pooler, the MLM
 *     head and position_ids dropped; vectors, position_embd and token_types
 *     stay f32, the other matrices take the requested type.
 */

static const name_row bert_names[] = {
    {"embeddings.word_embeddings", "token_embd", XF_NONE},
    {"embeddings.position_embeddings", "position_embd", XF_NONE},
    {"embeddings.token_type_embeddings", "token_types", XF_NONE},
    {"embeddings.LayerNorm", "token_embd_norm", XF_NONE},
    {"encoder.layer.%d.attention.self.query", "blk.%d.attn_q", XF_NONE},
    {"encoder.layer.%d.attention.self.key", "blk.%d.attn_k", XF_NONE},
    {"encoder.layer.%d.attention.self.value", "blk.%d.attn_v", XF_NONE},
    {"encoder.layer.%d.attention.output.dense", "blk.%d.attn_output", XF_NONE},
    {"encoder.layer.%d.attention.output.LayerNorm", "blk.%d.attn_output_norm", XF_NONE},
    {"encoder.layer.%d.intermediate.dense", "blk.%d.ffn_up", XF_NONE},
    {"encoder.layer.%d.output.dense", "blk.%d.ffn_down", XF_NONE},
    {"encoder.layer.%d.output.LayerNorm", "blk.%d.layer_output_norm", XF_NONE},
    {NULL, NULL, XF_NONE},
};

/* The llama.cpp name of an HF BERT tensor into gg; false when it has none. */
static bool bert_gguf_name(const char *hf, char *gg, size_t cap) {
    char base[256];
    if (strncmp(hf, "bert.", 5) == 0)
        hf += 5;
    const char *dot = strrchr(hf, '.');
    if (!dot || (size_t)(dot - hf) >= sizeof base)
        return false;
    memcpy(base, hf, (size_t)(dot - hf));
    base[dot - hf] = '\0';
    const char *suffix = dot + 1;
    if (strcmp(suffix, "gamma") == 0)
        suffix = "weight";
    else if (strcmp(suffix, "beta") == 0)
        suffix = "bias";
    for (const name_row *r = bert_names; r->hf; r++) {
        int layer = -1, used = 0;
        const char *pct = strstr(r->hf, "%d");
        if (!pct) {
            if (strcmp(base, r->hf) != 0)
                continue;
        } else {
            size_t pre = (size_t)(pct - r->hf);
            if (strncmp(base, r->hf, pre) != 0 || sscanf(base + pre, "%d%n", &layer, &used) != 1 ||
                layer < 0 || strcmp(base + pre + used, pct + 2) != 0)
                continue;
        }
        char name[200];
        snprintf(name, sizeof name, r->gguf, layer);
        snprintf(gg, cap, "%s.%s", name, suffix);
        return true;
    }
    return false;
}

static bool bert_dropped(const char *hf) {
    if (strncmp(hf, "bert.", 5) == 0)
        hf += 5;
    return strcmp(hf, "embeddings.position_ids") == 0 || strncmp(hf, "pooler.", 7) == 0 ||
           strncmp(hf, "cls.", 4) == 0;
}

static ia_status bert_tensors(converter *c) {
    uint32_t matrix_type = c->type;
    ia_status st = IA_OK;
    for (size_t i = 0; i < ia_safetensors_count(c->st) && st == IA_OK; i++) {
        const ia_tensor *t = ia_safetensors_at(c->st, i);
        char gg[256];
        if (bert_dropped(t->name))
            continue;
        if (!bert_gguf_name(t->name, gg, sizeof gg))
            return ia_error_set(IA_EUNSUPPORTED, "%s: tensor '%s' has no llama.cpp name for bert",
                                c->dir, t->name);
        bool keep_f32 =
            strncmp(gg, "position_embd.", 14) == 0 || strncmp(gg, "token_types.", 12) == 0;
        c->type = keep_f32 ? GGML_F32 : matrix_type;
        st = add_tensor(c, gg, t, XF_NONE);
    }
    c->type = matrix_type;
    return st;
}

/* bert.pooling_type from modules.json's Pooling module, as llama.cpp's
 * _try_set_pooling_type reads it; 0 when there is none. */
static ia_status bert_pooling(const converter *c, uint32_t *out) {
    json_t *modules = NULL, *pool = NULL;
    *out = 0;
    ia_status st = load_json(c->dir, "modules.json", false, &modules);
    size_t i;
    json_t *m;
    const char *path = NULL;
    json_array_foreach(modules, i, m) {
        const char *type = json_string_value(json_object_get(m, "type"));
        size_t n = type ? strlen(type) : 0;
        if (!path && n >= 7 && strcmp(type + n - 7, "Pooling") == 0)
            path = json_string_value(json_object_get(m, "path"));
    }
    if (st == IA_OK && path) {
        char *sub = ia_path_join(c->dir, path);
        st = sub ? load_json(sub, "config.json", true, &pool) : IA_ENOMEM;
        free(sub);
        static const struct {
            const char *key, *mode;
            uint32_t type;
        } modes[] = {{"pooling_mode_mean_tokens", "mean", 1},
                     {"pooling_mode_cls_token", "cls", 2},
                     {"pooling_mode_lasttoken", "lasttoken", 3}};
        const char *mode =
            st == IA_OK ? json_string_value(json_object_get(pool, "pooling_mode")) : NULL;
        for (size_t k = 0; st == IA_OK && !*out && k < sizeof modes / sizeof modes[0]; k++)
            if (json_is_true(json_object_get(pool, modes[k].key)))
                *out = modes[k].type;
        for (size_t k = 0; st == IA_OK && !*out && mode && k < sizeof modes / sizeof modes[0]; k++)
            if (strcmp(mode, modes[k].mode) == 0)
                *out = modes[k].type;
        if (st == IA_OK && !*out)
            st = ia_error_set(IA_EUNSUPPORTED,
                              "%s/%s/config.json: only mean, cls and last-token pooling can be "
                              "written to GGUF",
                              c->dir, path);
    }
    json_decref(modules);
    json_decref(pool);
    return st;
}

static ia_status bert_hparams(converter *c) {
    json_t *cfg = c->cfg;
    c->hidden = cfg_int(cfg, "hidden_size", 0);
    c->n_layers = cfg_int(cfg, "num_hidden_layers", 0);
    c->n_heads = cfg_int(cfg, "num_attention_heads", 0);
    int64_t ffn = cfg_int(cfg, "intermediate_size", 0);
    if (c->hidden <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || ffn <= 0)
        return ia_error_set(IA_EPARSE,
                            "%s/config.json: missing or invalid hidden size, layer or head count "
                            "or intermediate size",
                            c->dir);
    uint32_t pooling;
    ia_status st = bert_pooling(c, &pooling);
    if (st != IA_OK ||
        (st = ia_gguf_writer_add_u32(c->w, "bert.block_count", (uint32_t)c->n_layers)) ||
        (st = ia_gguf_writer_add_u32(c->w, "bert.context_length",
                                     (uint32_t)cfg_int(cfg, "max_position_embeddings", 512))) ||
        (st = ia_gguf_writer_add_u32(c->w, "bert.embedding_length", (uint32_t)c->hidden)) ||
        (st = ia_gguf_writer_add_u32(c->w, "bert.feed_forward_length", (uint32_t)ffn)) ||
        (st = ia_gguf_writer_add_u32(c->w, "bert.attention.head_count", (uint32_t)c->n_heads)) ||
        (st = ia_gguf_writer_add_f32(c->w, "bert.attention.layer_norm_epsilon",
                                     (float)cfg_num(cfg, "layer_norm_eps", 1e-12))) ||
        (st = ia_gguf_writer_add_bool(c->w, "bert.attention.causal", false)))
        return st;
    if (pooling && (st = ia_gguf_writer_add_u32(c->w, "bert.pooling_type", pooling)))
        return st;
    return ia_gguf_writer_add_u32(c->w, "tokenizer.ggml.token_type_count",
                                  (uint32_t)cfg_int(cfg, "type_vocab_size", 1));
}

/* One id's token and type, phantom-space form (see above). */
static ia_status bert_token(converter *c, json_t *vocab, json_t *added, size_t id,
                            const char **tokens, int32_t *types, char **owned) {
    const char *tok = NULL;
    int32_t type = 1;
    size_t i;
    json_t *e;
    json_array_foreach(added, i, e) {
        if ((size_t)json_integer_value(json_object_get(e, "id")) == id) {
            tok = json_string_value(json_object_get(e, "content"));
            type = json_is_true(json_object_get(e, "special")) ? 3 : 4;
        }
    }
    (void)vocab;
    char buf[64];
    if (!tok) {
        tok = tokens[id];
        if (!tok) {
            snprintf(buf, sizeof buf, "[PAD%zu]", id);
            tok = buf;
            type = 5;
        }
    }
    size_t len = strlen(tok);
    if (type == 3) {
        owned[id] = ia_strdup(tok);
    } else if (strncmp(tok, "##", 2) == 0) {
        owned[id] = ia_strdup(tok + 2);
    } else if ((owned[id] = ia_malloc(len + 4))) {
        memcpy(owned[id], "\xe2\x96\x81", 3);
        memcpy(owned[id] + 3, tok, len + 1);
    }
    if (!owned[id])
        return ia_error_set(IA_ENOMEM, "%s: out of memory converting the vocabulary", c->dir);
    tokens[id] = owned[id];
    types[id] = type;
    return IA_OK;
}

static ia_status bert_tokenizer(converter *c) {
    json_t *model = json_object_get(c->tok, "model");
    const char *mtype = json_string_value(json_object_get(model, "type"));
    if (!mtype || strcmp(mtype, "WordPiece") != 0)
        return ia_error_set(IA_EUNSUPPORTED,
                            "%s/tokenizer.json: model type %s; a bert GGUF holds a WordPiece "
                            "vocabulary",
                            c->dir, mtype ? mtype : "(none)");
    json_t *vocab = json_object_get(model, "vocab"),
           *added = json_object_get(c->tok, "added_tokens");
    size_t n = (size_t)cfg_int(c->cfg, "vocab_size", 0);
    const char *k;
    json_t *v;
    json_object_foreach(vocab, k, v) if (json_integer_value(v) + 1 > (json_int_t)n) n =
        (size_t)json_integer_value(v) + 1;
    const char **tokens = ia_calloc(n ? n : 1, sizeof *tokens);
    int32_t *types = ia_calloc(n ? n : 1, sizeof *types);
    char **owned = ia_calloc(n ? n : 1, sizeof *owned);
    ia_status st = tokens && types && owned ? IA_OK : IA_ENOMEM;
    if (st == IA_OK) {
        json_object_foreach(vocab, k, v) {
            json_int_t id = json_integer_value(v);
            if (id >= 0 && (size_t)id < n)
                tokens[id] = k;
        }
    }
    for (size_t i = 0; i < n && st == IA_OK; i++)
        st = bert_token(c, vocab, added, i, tokens, types, owned);
    if (st == IA_OK &&
        ((st = ia_gguf_writer_add_string(c->w, "tokenizer.ggml.model", "bert", 4)) ||
         (st = ia_gguf_writer_add_string(c->w, "tokenizer.ggml.pre", "default", 7)) ||
         (st = ia_gguf_writer_add_string_array(c->w, "tokenizer.ggml.tokens", tokens, n)) ||
         (st = ia_gguf_writer_add_array(c->w, "tokenizer.ggml.token_type", IA_GGUF_INT32, types,
                                        n))))
        goto done;
    /* gguf-py's SpecialVocab: bos falls back to cls_token, eos to sep_token. */
    json_t *added_all = added;
    static const struct {
        const char *key, *cfg1, *cfg2;
    } ids[] = {{"tokenizer.ggml.bos_token_id", "bos_token", "cls_token"},
               {"tokenizer.ggml.eos_token_id", "eos_token", "sep_token"},
               {"tokenizer.ggml.unknown_token_id", "unk_token", NULL},
               {"tokenizer.ggml.seperator_token_id", "sep_token", NULL},
               {"tokenizer.ggml.padding_token_id", "pad_token", NULL},
               {"tokenizer.ggml.mask_token_id", "mask_token", NULL}};
    for (size_t i = 0; st == IA_OK && i < sizeof ids / sizeof ids[0]; i++) {
        const char *s = special_token(c->tok_cfg, ids[i].cfg1);
        if (!s && ids[i].cfg2)
            s = special_token(c->tok_cfg, ids[i].cfg2);
        int32_t id = token_id(vocab, added_all, s);
        if (id >= 0 && (size_t)id < n)
            st = ia_gguf_writer_add_u32(c->w, ids[i].key, (uint32_t)id);
    }
    if (st == IA_OK &&
        ((st = ia_gguf_writer_add_bool(c->w, "tokenizer.ggml.add_bos_token", true)) ||
         (st = ia_gguf_writer_add_bool(c->w, "tokenizer.ggml.add_eos_token", true)) ||
         (st = ia_gguf_writer_add_bool(c->w, "tokenizer.ggml.add_sep_token", false))))
        goto done;
    json_t *norm = json_object_get(c->tok, "normalizer");
    const char *nt = json_string_value(json_object_get(norm, "type"));
    if (st == IA_OK && nt && strcmp(nt, "BertNormalizer") == 0) {
        json_t *lc = json_object_get(norm, "lowercase"),
               *sa = json_object_get(norm, "strip_accents");
        if (json_is_boolean(lc))
            st = ia_gguf_writer_add_bool(c->w, "tokenizer.ggml.normalizer.lowercase",
                                         json_is_true(lc));
        if (st == IA_OK && json_is_boolean(sa))
            st = ia_gguf_writer_add_bool(c->w, "tokenizer.ggml.normalizer.strip_accents",
                                         json_is_true(sa));
    }
done:
    for (size_t i = 0; owned && i < n; i++)
        free(owned[i]);
    free(owned);
    free(tokens);
    free(types);
    if (st == IA_ENOMEM && !*ia_error_message())
        ia_error_set(IA_ENOMEM, "%s: out of memory converting the vocabulary", c->dir);
    return st;
}

/* ---- the whole file -------------------------------------------------------------------------- */

static ia_status load_json(const char *dir, const char *name, bool required, json_t **out) {
    char *path = ia_path_join(dir, name);
    if (!path)
        return ia_error_set(IA_ENOMEM, "out of memory");
    ia_status st = IA_OK;
    *out = NULL;
    if (ia_file_exists(path))
        st = ia_json_load_file(path, JSON_MAX_BYTES, out);
    else if (required)
        st = ia_error_set(IA_ENOTFOUND, "%s: not found", path);
    else
        *out = json_object();
    free(path);
    return st;
}

ia_status ia_convert_to_gguf(const char *dir, const char *out_path,
                             const ia_convert_options *opts) {
    converter c = {.dir = dir};
    ia_dtype type = opts ? opts->type : IA_DTYPE_F32;
    ia_status st;
    char *st_path = NULL;
    c.type = type == IA_DTYPE_F16 ? GGML_F16 : type == IA_DTYPE_BF16 ? GGML_BF16 : GGML_F32;
    if (type != IA_DTYPE_F32 && type != IA_DTYPE_F16 && type != IA_DTYPE_BF16) {
        st = ia_error_set(IA_EINVAL, "convert: type %s is not f32, f16 or bf16",
                          ia_dtype_name(type));
        goto done;
    }
    if ((st = load_json(dir, "config.json", true, &c.cfg)) ||
        (st = load_json(dir, "tokenizer.json", true, &c.tok)) ||
        (st = load_json(dir, "tokenizer_config.json", false, &c.tok_cfg)))
        goto done;
    const char *mt = json_string_value(json_object_get(c.cfg, "model_type"));
    for (size_t i = 0; mt && i < sizeof conv_archs / sizeof conv_archs[0]; i++)
        if (strcmp(conv_archs[i].model_type, mt) == 0)
            c.arch = &conv_archs[i];
    if (!c.arch) {
        st = ia_error_set(IA_EUNSUPPORTED,
                          "%s/config.json: model_type '%s' cannot be converted (gpt2, llama, "
                          "mistral, qwen2, bert)",
                          dir, mt ? mt : "(none)");
        goto done;
    }
    bool bert = strcmp(c.arch->model_type, "bert") == 0;
    st_path = ia_path_join(dir, "model.safetensors");
    if (!st_path) {
        st = ia_error_set(IA_ENOMEM, "out of memory");
        goto done;
    }
    if (!ia_file_exists(st_path)) {
        st = ia_error_set(IA_ENOTFOUND, "%s: not found (sharded checkpoints are not supported yet)",
                          st_path);
        goto done;
    }
    if ((st = ia_safetensors_open(st_path, &c.st)) || (st = ia_gguf_writer_create(&c.w)))
        goto done;
    const char *base = strrchr(dir, '/');
    base = base && base[1] ? base + 1 : dir;
    uint32_t ftype = c.type == GGML_F16 ? FTYPE_F16 : c.type == GGML_BF16 ? FTYPE_BF16 : FTYPE_F32;
    if (bert) {
        if ((st = ia_gguf_writer_add_string(c.w, "general.architecture", "bert", 4)) ||
            (st = ia_gguf_writer_add_string(c.w, "general.type", "model", 5)) ||
            (st = ia_gguf_writer_add_string(c.w, "general.name", base, strlen(base))) ||
            (st = bert_hparams(&c)) ||
            (st = ia_gguf_writer_add_u32(c.w, "general.file_type", ftype)) ||
            (st = ia_gguf_writer_add_u32(c.w, "general.quantization_version", 2)) ||
            (st = bert_tokenizer(&c)) || (st = bert_tensors(&c)))
            goto done;
        st = ia_gguf_writer_write(c.w, out_path);
        goto done;
    }
    if ((st = ia_gguf_writer_add_string(c.w, "general.architecture", c.arch->gguf_arch,
                                        strlen(c.arch->gguf_arch))) ||
        (st = ia_gguf_writer_add_string(c.w, "general.name", base, strlen(base))) ||
        (st = ia_gguf_writer_add_u32(c.w, "general.file_type", ftype)) || (st = add_hparams(&c)))
        goto done;
    char key[128];
    snprintf(key, sizeof key, "%s.vocab_size", c.arch->gguf_arch);
    if ((st = ia_gguf_writer_add_u32(c.w, key, (uint32_t)cfg_int(c.cfg, "vocab_size", 0))) ||
        (st = add_tokenizer(&c)) || (st = convert_tensors(&c)))
        goto done;
    st = ia_gguf_writer_write(c.w, out_path);
done:
    for (size_t i = 0; i < c.n_bufs; i++)
        free(c.bufs[i]);
    free(c.bufs);
    ia_gguf_writer_free(c.w);
    if (c.st)
        ia_safetensors_close(c.st);
    json_decref(c.cfg);
    json_decref(c.tok);
    json_decref(c.tok_cfg);
    free(st_path);
    return st;
}
