/*
 * What quantisation costs, measured rather than claimed (`quantize --eval`).
 *
 * Language models: the original and the quantised decoder read the same
 * text in windows of `window` tokens (the KV cache reset between windows);
 * at every position but a window's first the next token is scored by both:
 * perplexity of each (exp of the mean negative log-likelihood), the mean
 * and largest KL divergence of the quantised next-token distribution from
 * the original's, and how often both put the same token on top. This is
 * the measure llama.cpp's perplexity tool reports as "KL divergence" and
 * "same top p".
 *
 * Embedding models: both embed the same sentences; per sentence the cosine
 * of the two embeddings (mean, minimum), and how well the quantised model
 * keeps the order of pairwise similarities: Spearman's rank correlation
 * between the two models' cosine similarities over all pairs of the first
 * IA_EVAL_MAX_PAIRS_SENTENCES sentences.
 */
#define _GNU_SOURCE /* qsort_r */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ia/formats.h"
#include "ia/models.h"
#include "ia/quant.h"
#include "ia/runtime.h"

#define IA_EVAL_MAX_PAIRS_SENTENCES 300

/* ---- language models -------------------------------------------------------------- */

static ia_status load_tokenizer(const char *model, ia_tokenizer **out) {
    struct stat sb;
    if (stat(model, &sb) == 0 && S_ISDIR(sb.st_mode))
        return ia_tokenizer_load_dir(model, out);
    ia_gguf *g = NULL;
    ia_status st = ia_gguf_open(model, &g);
    if (st == IA_OK)
        st = ia_tokenizer_from_gguf(g, out);
    ia_gguf_close(g);
    return st;
}

/* log-softmax of n logits into out; returns the argmax. */
static size_t log_softmax(const float *x, size_t n, double *out) {
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    double z = 0;
    for (size_t i = 0; i < n; i++)
        z += exp((double)x[i] - x[best]);
    double lz = log(z) + x[best];
    for (size_t i = 0; i < n; i++)
        out[i] = (double)x[i] - lz;
    return best;
}

typedef struct lm_side {
    ia_decoder *dec;
    ia_kv_cache *kv;
    float *logits;
} lm_side;

static void lm_side_free(lm_side *s) {
    ia_kv_cache_free(s->kv);
    ia_decoder_free(s->dec);
    free(s->logits);
}

static ia_status lm_side_load(const char *path, ia_dtype dtype, size_t window, lm_side *s) {
    ia_status st = ia_decoder_load(path, ia_backend_cpu(), dtype, &s->dec);
    if (st != IA_OK)
        return st;
    const ia_decoder_config *c = ia_decoder_get_config(s->dec);
    if ((st = ia_kv_cache_create(s->dec, window, IA_DTYPE_F32, &s->kv)))
        return st;
    if (!(s->logits = ia_malloc_array(window * (size_t)c->vocab_size, sizeof(float))))
        return ia_error_set(IA_ENOMEM, "eval: out of memory for %zu positions' logits", window);
    return IA_OK;
}

ia_status ia_quant_eval_lm(const char *base, ia_dtype base_dtype, const char *quant,
                           ia_dtype quant_dtype, const char *text, size_t len,
                           const ia_quant_eval_options *opts, ia_quant_eval_lm_result *r) {
    memset(r, 0, sizeof *r);
    lm_side a = {0}, b = {0};
    ia_tokenizer *tok = NULL;
    ia_encoding enc = {0};
    ia_threadpool *pool = NULL;
    double *la = NULL, *lb = NULL;
    ia_status st;
    size_t window = opts && opts->window ? opts->window : 512;
    if ((st = load_tokenizer(base, &tok)))
        goto done;
    ia_encode_options eo = ia_encode_options_default();
    if ((st = ia_tokenizer_encode(tok, text, len, NULL, 0, &eo, &enc)))
        goto done;
    size_t n_ids = enc.len;
    if (opts && opts->max_tokens && n_ids > opts->max_tokens)
        n_ids = opts->max_tokens;
    if (n_ids < 2) {
        st = ia_error_set(IA_EINVAL, "eval: the text gives %zu tokens; at least 2 are needed",
                          n_ids);
        goto done;
    }
    if ((st = lm_side_load(base, base_dtype, window, &a)))
        goto done;
    size_t ctx = (size_t)ia_decoder_get_config(a.dec)->max_positions;
    if (window > ctx) {
        st = ia_error_set(IA_ERANGE, "eval: window of %zu tokens exceeds the context of %zu",
                          window, ctx);
        goto done;
    }
    if ((st = lm_side_load(quant, quant_dtype, window, &b)))
        goto done;
    size_t vocab = (size_t)ia_decoder_get_config(a.dec)->vocab_size;
    if ((size_t)ia_decoder_get_config(b.dec)->vocab_size != vocab) {
        st = ia_error_set(IA_EINVAL, "eval: %s has %lld tokens in its vocabulary, %s %zu", quant,
                          (long long)ia_decoder_get_config(b.dec)->vocab_size, base, vocab);
        goto done;
    }
    pool = ia_threadpool_create(opts && opts->n_threads > 0 ? opts->n_threads
                                                            : ia_cpu_physical_cores());
    la = ia_malloc_array(vocab, sizeof *la);
    lb = ia_malloc_array(vocab, sizeof *lb);
    if (!pool || !la || !lb) {
        st = ia_error_set(IA_ENOMEM, "eval: out of memory");
        goto done;
    }
    double nll_a = 0, nll_b = 0;
    for (size_t w0 = 0; w0 + 1 < n_ids; w0 += window) {
        size_t n = n_ids - w0 < window ? n_ids - w0 : window;
        if (n < 2)
            break;
        const int32_t *ids = enc.ids + w0;
        ia_kv_cache_reset(a.kv);
        ia_kv_cache_reset(b.kv);
        if ((st = ia_decoder_forward(a.dec, a.kv, ids, n, true, a.logits, pool)) ||
            (st = ia_decoder_forward(b.dec, b.kv, ids, n, true, b.logits, pool)))
            goto done;
        for (size_t p = 0; p + 1 < n; p++) {
            size_t ta = log_softmax(a.logits + p * vocab, vocab, la);
            size_t tb = log_softmax(b.logits + p * vocab, vocab, lb);
            double kl = 0;
            for (size_t v = 0; v < vocab; v++)
                kl += exp(la[v]) * (la[v] - lb[v]);
            kl = kl > 0 ? kl : 0; /* rounding can leave a tiny negative */
            nll_a -= la[ids[p + 1]];
            nll_b -= lb[ids[p + 1]];
            r->kl_mean += kl;
            r->kl_max = kl > r->kl_max ? kl : r->kl_max;
            r->same_top += ta == tb;
            r->n_scored++;
        }
    }
    r->ppl_base = exp(nll_a / (double)r->n_scored);
    r->ppl_quant = exp(nll_b / (double)r->n_scored);
    r->kl_mean /= (double)r->n_scored;
    r->same_top /= (double)r->n_scored;
done:
    free(la);
    free(lb);
    if (pool)
        ia_threadpool_destroy(pool);
    lm_side_free(&a);
    lm_side_free(&b);
    ia_encoding_free(&enc);
    ia_tokenizer_free(tok);
    return st;
}

/* ---- embedding models -------------------------------------------------------------- */

static int cmp_index(const void *x, const void *y, void *ctx) {
    const double *v = ctx;
    double a = v[*(const size_t *)x], b = v[*(const size_t *)y];
    return a < b ? -1 : a > b;
}

/* Ranks of v (average ranks for ties) into rank. */
static ia_status ranks(const double *v, size_t n, double *rank) {
    size_t *idx = ia_malloc_array(n, sizeof *idx);
    if (!idx)
        return IA_ENOMEM;
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    qsort_r(idx, n, sizeof *idx, cmp_index, (void *)v);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && v[idx[j + 1]] == v[idx[i]])
            j++;
        for (size_t k = i; k <= j; k++)
            rank[idx[k]] = (double)(i + j) / 2.0 + 1.0;
        i = j + 1;
    }
    free(idx);
    return IA_OK;
}

static double pearson(const double *x, const double *y, size_t n) {
    double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < n; i++) {
        mx += x[i] / (double)n;
        my += y[i] / (double)n;
    }
    for (size_t i = 0; i < n; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
    }
    return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : 0.0;
}

static double cosine(const float *a, const float *b, size_t d) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < d; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0.0;
}

/* Compares the original `dir` at f32 with `quant_path` loaded with eo_b. */
static ia_status eval_embed(const char *dir, const char *quant_path,
                            const ia_embedder_options *eo_b, const char *const *texts, size_t n,
                            const ia_quant_eval_options *opts, ia_quant_eval_embed_result *r) {
    memset(r, 0, sizeof *r);
    ia_embedder_options eo = ia_embedder_options_default();
    eo.n_threads = opts ? opts->n_threads : 0;
    ia_embedder *ea = NULL, *eb = NULL;
    float *va = NULL, *vb = NULL;
    double *sa = NULL, *sb = NULL, *ra = NULL, *rb = NULL;
    ia_status st;
    if (n == 0)
        return ia_error_set(IA_EINVAL, "eval: no sentences");
    if ((st = ia_embedder_load(dir, &eo, &ea)))
        goto done;
    ia_embedder_options eob = *eo_b;
    eob.n_threads = eo.n_threads;
    /* the original's normalisation, so a GGUF (normalised by default) and a
     * directory compare like for like; cosines do not see it anyway */
    eob.normalize = ia_embedder_normalizes(ea);
    /* and its truncation: a GGUF knows only the context length (512 for
     * MiniLM), the directory its max_seq_length (256) */
    eob.max_length = ia_embedder_max_length(ea);
    if ((st = ia_embedder_load(quant_path, &eob, &eb)))
        goto done;
    if (ia_embedder_dim(eb) != ia_embedder_dim(ea)) {
        st = ia_error_set(IA_EINVAL, "eval: %s embeds in %zu dimensions, %s in %zu", quant_path,
                          ia_embedder_dim(eb), dir, ia_embedder_dim(ea));
        goto done;
    }
    size_t d = ia_embedder_dim(ea);
    va = ia_malloc_array(n * d, sizeof *va);
    vb = ia_malloc_array(n * d, sizeof *vb);
    if (!va || !vb) {
        st = IA_ENOMEM;
        goto done;
    }
    if ((st = ia_embedder_embed(ea, texts, NULL, n, va)) ||
        (st = ia_embedder_embed(eb, texts, NULL, n, vb)))
        goto done;
    r->n = n;
    r->cos_min = 1.0;
    for (size_t i = 0; i < n; i++) {
        double c = cosine(va + i * d, vb + i * d, d);
        r->cos_mean += c / (double)n;
        r->cos_min = c < r->cos_min ? c : r->cos_min;
    }
    size_t m = n < IA_EVAL_MAX_PAIRS_SENTENCES ? n : IA_EVAL_MAX_PAIRS_SENTENCES;
    size_t pairs = m * (m - 1) / 2, k = 0;
    if (pairs >= 2) {
        sa = ia_malloc_array(pairs, sizeof *sa);
        sb = ia_malloc_array(pairs, sizeof *sb);
        ra = ia_malloc_array(pairs, sizeof *ra);
        rb = ia_malloc_array(pairs, sizeof *rb);
        if (!sa || !sb || !ra || !rb) {
            st = IA_ENOMEM;
            goto done;
        }
        for (size_t i = 0; i < m; i++)
            for (size_t j = i + 1; j < m; j++, k++) {
                sa[k] = cosine(va + i * d, va + j * d, d);
                sb[k] = cosine(vb + i * d, vb + j * d, d);
            }
        if ((st = ranks(sa, pairs, ra)) || (st = ranks(sb, pairs, rb)))
            goto done;
        r->spearman = pearson(ra, rb, pairs);
        r->n_pairs = pairs;
    }
done:
    if (st == IA_ENOMEM && !*ia_error_message())
        ia_error_set(IA_ENOMEM, "eval: out of memory for %zu sentences", n);
    free(va);
    free(vb);
    free(sa);
    free(sb);
    free(ra);
    free(rb);
    ia_embedder_free(ea);
    ia_embedder_free(eb);
    return st;
}

ia_status ia_quant_eval_embed(const char *dir, ia_dtype quant_dtype, const char *const *texts,
                              size_t n, const ia_quant_eval_options *opts,
                              ia_quant_eval_embed_result *r) {
    ia_embedder_options eo = ia_embedder_options_default();
    eo.dtype = quant_dtype;
    return eval_embed(dir, dir, &eo, texts, n, opts, r);
}

ia_status ia_quant_eval_embed_recipe(const char *dir, const char *quant, const char *recipe,
                                     const char *const *texts, size_t n,
                                     const ia_quant_eval_options *opts,
                                     ia_quant_eval_embed_result *r) {
    ia_embedder_options eo = ia_embedder_options_default();
    memset(r, 0, sizeof *r);
    if (!quant) {
        ia_status st = ia_quantize_recipe_weight_fn(recipe, &eo.weight_type, &eo.weight_type_ctx);
        if (st != IA_OK)
            return st;
    }
    return eval_embed(dir, quant ? quant : dir, &eo, texts, n, opts, r);
}
