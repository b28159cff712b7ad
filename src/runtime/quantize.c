/*
 * `quantize`: a model (GGUF, or an HF decoder or BERT directory converted
 * first) written as a GGUF file whose matrices use ggml's block-quantised
 * types. The same recipe can be applied to a BERT directory at load
 * (ia_quantize_recipe_weight_fn): the per-tensor types are the ones
 * choose_type gives the written file, and the blocks come from the same
 * quantiser, so the two agree bit for bit.
 *
 * A recipe names a base type and the tensors that deserve more bits, in the
 * manner of llama.cpp's mixes (the per-tensor choices llama-quantize makes
 * for Q4_K_M and friends, as its documentation and output describe them):
 *   - the output head (or the embeddings when they are tied to it) at Q6_K,
 *     Q8_0 for the Q8_0 recipe; token embeddings likewise, since a gather
 *     reads one row per token and more bits there cost no decode speed;
 *   - attention V and FFN down, the tensors quantisation hurts most, one or
 *     two steps up in the _M mixes, in the first and last eighth of the
 *     layers and every third layer between ("more bits" layers);
 *   - norms, biases and other vectors stay f32.
 * A K-quant needs rows that are a multiple of 256 elements; when a recipe's
 * choice does not fit a tensor it falls back to the legacy type of about
 * the same size (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, Q2_K/Q3_K ->
 * Q4_0) and to f16 when even 32 does not divide the row; the report counts
 * those. A type asked for by --override that does not fit is an error
 * naming the tensor, since the user asked for exactly that.
 *
 * Source tensors of any supported type (f32, f16, bf16 or quantised) are
 * dequantised to f32 and quantised again; a tensor whose chosen type equals
 * its current one is copied byte for byte. Metadata is copied as it is,
 * except general.file_type (the recipe's llama_ftype number) and
 * general.quantization_version (2, ggml's current block layout).
 */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ia/formats.h"
#include "ia/quant.h"
#include "ia/runtime.h"

/* ---- recipes ------------------------------------------------------------------------- */

typedef enum {
    MORE_NONE = 0,
    MORE_USE_MORE_BITS, /* first and last eighth of the layers, and every third between */
    MORE_FIRST_4,       /* layers 0..3 */
    MORE_FIRST_2,       /* layers 0..1 */
    MORE_FIRST_EIGHTH,  /* layers < n/8 */
    MORE_FIRST_16TH,    /* layers < n/16 */
    MORE_ALL,
} more_rule;

typedef struct recipe {
    const char *name;
    ia_dtype base;
    uint32_t ftype; /* llama_ftype in general.file_type */
    ia_dtype head;  /* output head and token embeddings (IA_DTYPE_COUNT: base) */
    /* attn_v and ffn_down: `hi` on the rule's layers, `lo` elsewhere
     * (IA_DTYPE_COUNT: base). */
    ia_dtype v_hi, v_lo;
    more_rule v_rule;
    ia_dtype down_hi, down_lo;
    more_rule down_rule;
    ia_dtype attn_out; /* attn_output and fused attn_qkv (IA_DTYPE_COUNT: base) */
} recipe;

#define BASE IA_DTYPE_COUNT

static const recipe recipes[] = {
    {"f32", IA_DTYPE_F32, 0, BASE, BASE, BASE, MORE_NONE, BASE, BASE, MORE_NONE, BASE},
    {"f16", IA_DTYPE_F16, 1, BASE, BASE, BASE, MORE_NONE, BASE, BASE, MORE_NONE, BASE},
    {"bf16", IA_DTYPE_BF16, 32, BASE, BASE, BASE, MORE_NONE, BASE, BASE, MORE_NONE, BASE},
    {"q8_0", IA_DTYPE_Q8_0, 7, IA_DTYPE_Q8_0, BASE, BASE, MORE_NONE, BASE, BASE, MORE_NONE, BASE},
    {"q4_0", IA_DTYPE_Q4_0, 2, IA_DTYPE_Q6_K, BASE, BASE, MORE_NONE, BASE, BASE, MORE_NONE, BASE},
    {"q4_1", IA_DTYPE_Q4_1, 3, IA_DTYPE_Q6_K, BASE, BASE, MORE_NONE, BASE, BASE, MORE_NONE, BASE},
    {"q5_0", IA_DTYPE_Q5_0, 8, IA_DTYPE_Q6_K, BASE, BASE, MORE_NONE, BASE, BASE, MORE_NONE, BASE},
    {"q5_1", IA_DTYPE_Q5_1, 9, IA_DTYPE_Q6_K, BASE, BASE, MORE_NONE, BASE, BASE, MORE_NONE, BASE},
    {"q2_k", IA_DTYPE_Q2_K, 10, IA_DTYPE_Q6_K, IA_DTYPE_Q4_K, IA_DTYPE_Q3_K, MORE_ALL,
     IA_DTYPE_Q3_K, IA_DTYPE_Q3_K, MORE_ALL, IA_DTYPE_Q3_K},
    {"q3_k_s", IA_DTYPE_Q3_K, 11, IA_DTYPE_Q6_K, BASE, BASE, MORE_NONE, BASE, BASE, MORE_NONE,
     BASE},
    {"q3_k_m", IA_DTYPE_Q3_K, 12, IA_DTYPE_Q6_K, IA_DTYPE_Q5_K, IA_DTYPE_Q4_K, MORE_FIRST_2,
     IA_DTYPE_Q5_K, IA_DTYPE_Q4_K, MORE_FIRST_16TH, IA_DTYPE_Q4_K},
    {"q3_k_l", IA_DTYPE_Q3_K, 13, IA_DTYPE_Q6_K, IA_DTYPE_Q5_K, IA_DTYPE_Q5_K, MORE_ALL,
     IA_DTYPE_Q5_K, IA_DTYPE_Q5_K, MORE_ALL, IA_DTYPE_Q5_K},
    {"q4_k_s", IA_DTYPE_Q4_K, 14, IA_DTYPE_Q6_K, IA_DTYPE_Q5_K, BASE, MORE_FIRST_4, IA_DTYPE_Q5_K,
     BASE, MORE_FIRST_EIGHTH, BASE},
    {"q4_k_m", IA_DTYPE_Q4_K, 15, IA_DTYPE_Q6_K, IA_DTYPE_Q6_K, BASE, MORE_USE_MORE_BITS,
     IA_DTYPE_Q6_K, BASE, MORE_USE_MORE_BITS, IA_DTYPE_Q5_K},
    {"q5_k_s", IA_DTYPE_Q5_K, 16, IA_DTYPE_Q6_K, BASE, BASE, MORE_NONE, BASE, BASE, MORE_NONE,
     BASE},
    {"q5_k_m", IA_DTYPE_Q5_K, 17, IA_DTYPE_Q6_K, IA_DTYPE_Q6_K, BASE, MORE_USE_MORE_BITS,
     IA_DTYPE_Q6_K, BASE, MORE_USE_MORE_BITS, BASE},
    {"q6_k", IA_DTYPE_Q6_K, 18, IA_DTYPE_Q6_K, BASE, BASE, MORE_NONE, BASE, BASE, MORE_NONE, BASE},
};

/* llama-quantize's aliases: a bare K type names its _M mix. */
static const struct {
    const char *alias, *name;
} recipe_aliases[] = {{"q3_k", "q3_k_m"}, {"q4_k", "q4_k_m"}, {"q5_k", "q5_k_m"}};

static const recipe *recipe_find(const char *name) {
    char low[16];
    size_t n = strlen(name);
    if (n >= sizeof low)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        low[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
    for (size_t i = 0; i < sizeof recipe_aliases / sizeof recipe_aliases[0]; i++)
        if (strcmp(low, recipe_aliases[i].alias) == 0)
            return recipe_find(recipe_aliases[i].name);
    for (size_t i = 0; i < sizeof recipes / sizeof recipes[0]; i++)
        if (strcmp(low, recipes[i].name) == 0)
            return &recipes[i];
    return NULL;
}

const char *ia_quantize_recipe_names(void) {
    return "f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k_s, q3_k_m (q3_k), q3_k_l, "
           "q4_k_s, q4_k_m (q4_k), q5_k_s, q5_k_m (q5_k), q6_k";
}

ia_status ia_quantize_recipe_base(const char *name, ia_dtype *out) {
    const recipe *r = recipe_find(name);
    if (!r)
        return ia_error_set(IA_EINVAL, "unknown type '%s' (one of: %s)", name,
                            ia_quantize_recipe_names());
    *out = r->base;
    return IA_OK;
}

static bool rule_applies(more_rule rule, int layer, int n_layers) {
    switch (rule) {
    case MORE_NONE:
        return false;
    case MORE_ALL:
        return true;
    case MORE_USE_MORE_BITS:
        return layer < n_layers / 8 || layer >= 7 * n_layers / 8 || (layer - n_layers / 8) % 3 == 2;
    case MORE_FIRST_4:
        return layer < 4;
    case MORE_FIRST_2:
        return layer < 2;
    case MORE_FIRST_EIGHTH:
        return layer < n_layers / 8;
    case MORE_FIRST_16TH:
        return layer < n_layers / 16;
    }
    return false;
}

static bool name_has(const char *name, const char *part) { return strstr(name, part) != NULL; }

/* The recipe's type for one matrix (before shape fallbacks). BERT follows
 * llama-quant.cpp's llama_tensor_get_type_impl exactly for a model with
 * one attention V per layer and no grouped-query attention: Q4_K_M leaves
 * attn_output at the base type, and Q2_K gives attn_v Q3_K (Q4_K is for
 * n_gqa >= 4). The decoder rows keep the choices the committed decoder
 * fixtures were written with. */
static ia_dtype recipe_type(const recipe *r, const char *name, int layer, int n_layers,
                            bool is_head, bool bert) {
    ia_dtype t = r->base;
    if (is_head || strcmp(name, "token_embd.weight") == 0) {
        t = r->head;
    } else if (name_has(name, ".attn_v.")) {
        t = rule_applies(r->v_rule, layer, n_layers) ? r->v_hi : r->v_lo;
        if (bert && r->base == IA_DTYPE_Q2_K)
            t = IA_DTYPE_Q3_K;
    } else if (name_has(name, ".ffn_down.")) {
        t = rule_applies(r->down_rule, layer, n_layers) ? r->down_hi : r->down_lo;
    } else if (name_has(name, ".attn_output.") || name_has(name, ".attn_qkv.")) {
        t = bert && r->ftype == 15 ? BASE : r->attn_out;
    }
    return t == BASE ? r->base : t;
}

/* A BERT weight's type when the recipe is applied at load: what
 * choose_type gives the same tensor of a GGUF file (llama.cpp names; the
 * token embeddings are the tied output head; position and token type
 * tables are not quantised). */
static ia_dtype encoder_weight_type(void *ctx, const char *name, int n_layers, int64_t row_len) {
    const recipe *r = ctx;
    if (name_has(name, "position_embd") || name_has(name, "token_types"))
        return IA_DTYPE_F32;
    int layer = strncmp(name, "blk.", 4) == 0 ? atoi(name + 4) : -1;
    bool head = strcmp(name, "token_embd.weight") == 0;
    return ia_quant_fit(recipe_type(r, name, layer, n_layers, head, true), row_len);
}

ia_status ia_quantize_recipe_weight_fn(const char *name, ia_encoder_weight_type_fn *fn,
                                       void **ctx) {
    const recipe *r = recipe_find(name);
    if (!r)
        return ia_error_set(IA_EINVAL, "unknown type '%s' (one of: %s)", name,
                            ia_quantize_recipe_names());
    *fn = encoder_weight_type;
    *ctx = (void *)r;
    return IA_OK;
}

/* ---- one run ----------------------------------------------------------------------- */

typedef struct quantizer {
    const ia_quantize_options *opts;
    const recipe *recipe;
    ia_gguf *in;
    ia_gguf_writer *w;
    ia_threadpool *pool;
    int n_layers;
    bool has_output;
    bool bert; /* general.architecture "bert": llama.cpp's rules for it */
    void **bufs;
    size_t n_bufs;
    ia_quantize_report *rep;
} quantizer;

/* The type --override asks for a tensor (first matching glob), or
 * IA_DTYPE_COUNT when none matches. */
static ia_status override_type(const quantizer *q, const char *name, ia_dtype *out) {
    *out = IA_DTYPE_COUNT;
    for (size_t i = 0; i < q->opts->n_overrides; i++) {
        const char *spec = q->opts->overrides[i];
        const char *eq = strrchr(spec, '=');
        char glob[256];
        size_t glen = eq ? (size_t)(eq - spec) : 0;
        if (!eq || glen == 0 || glen >= sizeof glob || !eq[1])
            return ia_error_set(IA_EINVAL, "--override '%s': expected GLOB=TYPE", spec);
        memcpy(glob, spec, glen);
        glob[glen] = '\0';
        ia_dtype t;
        if (ia_dtype_parse(eq + 1, &t) != IA_OK || t == IA_DTYPE_Q8_K ||
            !ia_dtype_get_info(t)->is_float)
            return ia_error_set(IA_EINVAL,
                                "--override '%s': '%s' is not a weight type (f32, f16, bf16, "
                                "q8_0, q4_0, q4_1, q5_0, q5_1, q2_k ... q6_k)",
                                spec, eq + 1);
        if (fnmatch(glob, name, 0) == 0) {
            *out = t;
            return IA_OK;
        }
    }
    return IA_OK;
}

static int layer_of(const char *name) {
    int layer = -1;
    if (strncmp(name, "blk.", 4) == 0)
        layer = atoi(name + 4);
    return layer;
}

/* Chooses a tensor's type; *fell_back says a recipe choice did not fit. */
static ia_status choose_type(quantizer *q, const ia_gguf_tensor *t, ia_dtype *out,
                             bool *fell_back) {
    *fell_back = false;
    int64_t cols = (int64_t)t->dims[0];
    /* Vectors, 3-D and larger tensors, and the small position and token
     * type tables stay as they are (llama.cpp quantises the matrices). */
    if (t->n_dims != 2 || name_has(t->name, "position_embd") || name_has(t->name, "token_types")) {
        *out = IA_DTYPE_COUNT;
        return IA_OK;
    }
    ia_dtype forced;
    ia_status st = override_type(q, t->name, &forced);
    if (st != IA_OK)
        return st;
    if (forced != IA_DTYPE_COUNT) {
        if (cols % ia_dtype_get_info(forced)->block_elems)
            return ia_error_set(IA_EINVAL,
                                "tensor '%s': rows of %lld elements cannot take %s, whose blocks "
                                "hold %u",
                                t->name, (long long)cols, ia_dtype_name(forced),
                                ia_dtype_get_info(forced)->block_elems);
        *out = forced;
        return IA_OK;
    }
    bool is_head = strcmp(t->name, "output.weight") == 0 ||
                   (!q->has_output && strcmp(t->name, "token_embd.weight") == 0);
    if (is_head && q->opts->keep_output_f16) {
        *out = IA_DTYPE_F16;
        return IA_OK;
    }
    ia_dtype want =
        recipe_type(q->recipe, t->name, layer_of(t->name), q->n_layers, is_head, q->bert);
    *out = ia_quant_fit(want, cols);
    *fell_back = *out != want;
    return IA_OK;
}

static void *keep(quantizer *q, size_t bytes) {
    void **b = ia_realloc_array(q->bufs, q->n_bufs + 1, sizeof *b);
    if (!b)
        return NULL;
    q->bufs = b;
    void *p = ia_malloc(bytes ? bytes : 1);
    if (p)
        q->bufs[q->n_bufs++] = p;
    return p;
}

static ia_status add_tensor(quantizer *q, const ia_gguf_tensor *t, size_t index, size_t total) {
    ia_dtype src_type, dst_type = IA_DTYPE_COUNT;
    bool fell_back = false;
    ia_status st = ia_dtype_from_ggml(t->type, &src_type);
    if (st != IA_OK) {
        ia_error_prefix("%s: tensor '%s'", ia_gguf_path(q->in), t->name);
        return st;
    }
    if ((st = choose_type(q, t, &dst_type, &fell_back)))
        return st;
    if (dst_type == IA_DTYPE_COUNT)
        dst_type = src_type;
    if (q->opts->progress)
        q->opts->progress(q->opts->progress_ctx, index, total, t->name, dst_type);
    q->rep->bytes_in += t->n_bytes;
    uint64_t n = 1;
    for (uint32_t d = 0; d < t->n_dims; d++)
        n *= t->dims[d];
    if (dst_type == src_type) { /* as it is: its bytes were validated on open */
        q->rep->bytes_out += t->n_bytes;
        q->rep->n_by_type[dst_type]++;
        return ia_gguf_writer_add_tensor(q->w, t->name, t->n_dims, t->dims, t->type, t->data,
                                         t->n_bytes);
    }
    uint64_t rows = n / t->dims[0], cols = t->dims[0];
    size_t out_bytes;
    if ((st = ia_dtype_bytes(dst_type, n, &out_bytes))) {
        ia_error_prefix("tensor '%s'", t->name);
        return st;
    }
    float *f = ia_malloc_array((size_t)n, sizeof *f);
    void *dst = keep(q, out_bytes);
    if (!f || !dst) {
        free(f);
        return ia_error_set(IA_ENOMEM, "tensor '%s': out of memory (%zu bytes)", t->name,
                            out_bytes);
    }
    st = ia_dequantize_row(src_type, t->data, f, (size_t)n);
    if (st != IA_OK) {
        ia_error_prefix("%s: tensor '%s'", ia_gguf_path(q->in), t->name);
    } else if (dst_type == IA_DTYPE_F32) {
        memcpy(dst, f, out_bytes);
    } else if (dst_type == IA_DTYPE_F16 || dst_type == IA_DTYPE_BF16) {
        uint16_t *h = dst;
        for (uint64_t i = 0; i < n; i++)
            h[i] = dst_type == IA_DTYPE_F16 ? ia_f32_to_f16(f[i]) : ia_f32_to_bf16(f[i]);
    } else {
        st = ia_quantize_rows(dst_type, f, dst, (size_t)rows, (size_t)cols, q->pool);
        if (st != IA_OK)
            ia_error_prefix("tensor '%s'", t->name);
    }
    /* Each tensor's source pages are read once. */
    ia_gguf_drop_range(q->in, t->data, t->n_bytes);
    free(f);
    if (st != IA_OK)
        return st;
    q->rep->bytes_out += out_bytes;
    q->rep->n_by_type[dst_type]++;
    q->rep->n_fallbacks += fell_back;
    return ia_gguf_writer_add_tensor(q->w, t->name, t->n_dims, t->dims,
                                     (uint32_t)ia_dtype_to_ggml(dst_type), dst, out_bytes);
}

static ia_status copy_metadata(quantizer *q) {
    ia_status st = IA_OK;
    for (size_t i = 0; i < ia_gguf_kv_count(q->in) && st == IA_OK; i++) {
        const char *key = ia_gguf_kv_key(q->in, i);
        if (strcmp(key, "general.file_type") == 0 ||
            strcmp(key, "general.quantization_version") == 0)
            continue;
        st = ia_gguf_writer_add_value(q->w, key, ia_gguf_kv_value(q->in, i));
    }
    if (st == IA_OK)
        st = ia_gguf_writer_add_u32(q->w, "general.file_type", q->recipe->ftype);
    /* llama-quantize writes it whatever the type, as does the converter */
    if (st == IA_OK)
        st = ia_gguf_writer_add_u32(q->w, "general.quantization_version", 2);
    return st;
}

static ia_status quantize_gguf(quantizer *q, const char *in_path, const char *out_path) {
    ia_status st;
    if ((st = ia_gguf_open(in_path, &q->in)) || (st = ia_gguf_writer_create(&q->w)))
        return st;
    const char *arch = NULL;
    char key[160];
    int64_t n_layers = 0;
    if ((st = ia_gguf_get_string(q->in, "general.architecture", true, &arch, NULL)))
        return st;
    snprintf(key, sizeof key, "%s.block_count", arch);
    if ((st = ia_gguf_get_i64(q->in, key, false, &n_layers)))
        return st;
    q->n_layers = (int)n_layers;
    q->bert = strcmp(arch, "bert") == 0;
    q->has_output = ia_gguf_tensor_find(q->in, "output.weight") != NULL;
    if ((st = copy_metadata(q)))
        return st;
    size_t total = ia_gguf_tensor_count(q->in);
    for (size_t i = 0; i < total && st == IA_OK; i++)
        st = add_tensor(q, ia_gguf_tensor_at(q->in, i), i, total);
    if (st == IA_OK && q->opts->progress)
        q->opts->progress(q->opts->progress_ctx, total, total, NULL, IA_DTYPE_COUNT);
    if (st == IA_OK)
        st = ia_gguf_writer_write(q->w, out_path);
    return st;
}

/* An HF directory is converted to an f32 GGUF beside the output first (the
 * exact values, whatever the checkpoint's dtype), then quantised from it. */
static ia_status convert_first(const char *dir, const char *out_path, char **tmp) {
    size_t len = strlen(out_path) + 32;
    if (!(*tmp = ia_malloc(len)))
        return IA_ENOMEM;
    snprintf(*tmp, len, "%s.f32-%ld.tmp", out_path, (long)getpid());
    ia_convert_options copts = {.type = IA_DTYPE_F32};
    return ia_convert_to_gguf(dir, *tmp, &copts);
}

ia_status ia_quantize_model(const char *model, const char *out_path,
                            const ia_quantize_options *opts, ia_quantize_report *report) {
    quantizer q = {.opts = opts, .rep = report};
    char *tmp = NULL;
    ia_status st = IA_OK;
    memset(report, 0, sizeof *report);
    if (!(q.recipe = recipe_find(opts->type))) {
        st = ia_error_set(IA_EINVAL, "unknown type '%s' (one of: %s)", opts->type,
                          ia_quantize_recipe_names());
        goto done;
    }
    report->recipe = q.recipe->name;
    for (size_t i = 0; i < opts->n_overrides && st == IA_OK; i++) {
        ia_dtype ignored;
        st = override_type(
            &(quantizer){
                .opts = &(ia_quantize_options){.overrides = &opts->overrides[i], .n_overrides = 1}},
            "", &ignored);
    }
    if (st != IA_OK)
        goto done;
    q.pool = ia_threadpool_create(opts->n_threads > 0 ? opts->n_threads : ia_cpu_physical_cores());
    if (!q.pool) {
        st = ia_error_set(IA_ENOMEM, "cannot start worker threads");
        goto done;
    }
    struct stat sb;
    const char *src = model;
    if (stat(model, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        if ((st = convert_first(model, out_path, &tmp)))
            goto done;
        src = tmp;
    }
    st = quantize_gguf(&q, src, out_path);
done:
    if (q.in)
        ia_gguf_close(q.in);
    ia_gguf_writer_free(q.w);
    for (size_t i = 0; i < q.n_bufs; i++)
        free(q.bufs[i]);
    free(q.bufs);
    if (q.pool)
        ia_threadpool_destroy(q.pool);
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    return st;
}
