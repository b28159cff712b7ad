/*
 * Sampling: from a vector of logits to the next token.
 *
 * The steps and their order are transformers' generate(): the repetition
 * penalty (a logits processor) comes first, then the warpers temperature,
 * top-k, top-p and min-p, and finally one draw from the softmax of the
 * survivors. Each filter keeps at least one token, as HF's do
 * (min_tokens_to_keep = 1). Temperature 0 means greedy: the argmax of the
 * penalised logits, with the lowest id winning a tie as torch.argmax does.
 *
 * Randomness is xoshiro256** (Blackman and Vigna) seeded through splitmix64,
 * so the same seed gives the same tokens on every platform; the draw uses
 * the top 24 bits of one output as a float in [0, 1).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ia/runtime.h"

struct ia_sampler {
    ia_sampling p;
    size_t vocab;
    ia_rng rng;
    float *scores;       /* penalised logits */
    uint8_t *seen;       /* tokens in the history (repetition penalty) */
    ia_token_prob *cand; /* scratch for ia_sampler_sample */
};

ia_sampling ia_sampling_default(void) {
    return (ia_sampling){.temperature = 1.0f, .top_p = 1.0f, .repeat_penalty = 1.0f};
}

/* ---- creation ---------------------------------------------------------------- */

static ia_status check_params(const ia_sampling *p, size_t vocab) {
    if (vocab == 0 || vocab > INT32_MAX)
        return ia_error_set(IA_EINVAL, "sampler: vocabulary size %zu is out of range", vocab);
    if (!(p->temperature >= 0.0f) || isinf(p->temperature))
        return ia_error_set(IA_EINVAL, "sampler: temperature %g must be a number >= 0",
                            (double)p->temperature);
    if (p->top_k < 0)
        return ia_error_set(IA_EINVAL, "sampler: top_k %d must be >= 0 (0 turns it off)", p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return ia_error_set(IA_EINVAL, "sampler: top_p %g must be in (0, 1] (1 turns it off)",
                            (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return ia_error_set(IA_EINVAL, "sampler: min_p %g must be in [0, 1] (0 turns it off)",
                            (double)p->min_p);
    if (!(p->repeat_penalty > 0.0f) || isinf(p->repeat_penalty))
        return ia_error_set(IA_EINVAL, "sampler: repeat penalty %g must be > 0 (1 turns it off)",
                            (double)p->repeat_penalty);
    return IA_OK;
}

ia_status ia_sampler_create(const ia_sampling *params, size_t vocab, ia_sampler **out) {
    *out = NULL;
    ia_sampling p = params ? *params : ia_sampling_default();
    ia_status st = check_params(&p, vocab);
    if (st != IA_OK)
        return st;
    ia_sampler *s = ia_calloc(1, sizeof *s);
    if (!s)
        return ia_error_set(IA_ENOMEM, "sampler: out of memory");
    s->p = p;
    s->vocab = vocab;
    ia_rng_seed(&s->rng, p.seed);
    s->scores = ia_malloc_array(vocab, sizeof *s->scores);
    s->seen = ia_calloc(vocab, 1);
    s->cand = ia_malloc_array(vocab, sizeof *s->cand);
    if (!s->scores || !s->seen || !s->cand) {
        ia_sampler_free(s);
        return ia_error_set(IA_ENOMEM, "sampler: out of memory for %zu-token scratch", vocab);
    }
    *out = s;
    return IA_OK;
}

void ia_sampler_free(ia_sampler *s) {
    if (!s)
        return;
    free(s->scores);
    free(s->seen);
    free(s->cand);
    free(s);
}

/* ---- the filters --------------------------------------------------------------- */

/* HF RepetitionPenaltyLogitsProcessor: every token that occurred once or
 * more is penalised once. */
static void apply_penalty(ia_sampler *s, const int32_t *history, size_t n) {
    float r = s->p.repeat_penalty;
    if (r == 1.0f || n == 0)
        return;
    for (size_t i = 0; i < n; i++) {
        int32_t id = history[i];
        if (id < 0 || (size_t)id >= s->vocab || s->seen[id])
            continue;
        s->seen[id] = 1;
        float v = s->scores[id];
        s->scores[id] = v > 0 ? v / r : v * r;
    }
    for (size_t i = 0; i < n; i++)
        if (history[i] >= 0 && (size_t)history[i] < s->vocab)
            s->seen[history[i]] = 0;
}

static int by_prob_desc(const void *a, const void *b) {
    const ia_token_prob *x = a, *y = b;
    if (x->prob != y->prob)
        return x->prob > y->prob ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Scales cand[0..n)'s probabilities to sum to one. */
static void renormalize(ia_token_prob *cand, size_t n) {
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += cand[i].prob;
    for (size_t i = 0; i < n; i++)
        cand[i].prob = (float)(cand[i].prob / sum);
}

/* Turns cand[0..n) (prob holding scaled logits, sorted descending) into
 * probabilities. */
static void softmax_sorted(ia_token_prob *cand, size_t n) {
    float max = cand[0].prob;
    for (size_t i = 0; i < n; i++)
        cand[i].prob = expf(cand[i].prob - max);
    renormalize(cand, n);
}

size_t ia_sampler_distribution(ia_sampler *s, const float *logits, const int32_t *history,
                               size_t n_history, ia_token_prob *out) {
    memcpy(s->scores, logits, s->vocab * sizeof *s->scores);
    apply_penalty(s, history, n_history);
    if (s->p.temperature == 0.0f) {
        size_t best = 0;
        for (size_t i = 1; i < s->vocab; i++)
            if (s->scores[i] > s->scores[best])
                best = i;
        out[0] = (ia_token_prob){(int32_t)best, 1.0f};
        return 1;
    }
    size_t n = 0;
    for (size_t i = 0; i < s->vocab; i++) {
        float v = s->scores[i] / s->p.temperature;
        if (v == -INFINITY || isnan(v))
            continue; /* masked out by the model */
        out[n++] = (ia_token_prob){(int32_t)i, v};
    }
    if (n == 0) { /* everything masked: fall back to the argmax of the raw logits */
        out[0] = (ia_token_prob){0, 1.0f};
        return 1;
    }
    qsort(out, n, sizeof *out, by_prob_desc);
    if (s->p.top_k > 0 && (size_t)s->p.top_k < n) {
        /* HF keeps every token tied with the k-th score. */
        size_t k = (size_t)s->p.top_k;
        while (k < n && out[k].prob == out[k - 1].prob)
            k++;
        n = k;
    }
    softmax_sorted(out, n);
    if (s->p.top_p < 1.0f) {
        /* HF removes tokens whose ascending cumulative mass is <= 1 - top_p:
         * a token stays while the mass ranked above it is below top_p. */
        double above = 0;
        size_t keep = 0;
        while (keep < n && (keep == 0 || above < s->p.top_p)) {
            above += out[keep].prob;
            keep++;
        }
        n = keep;
        renormalize(out, n);
    }
    if (s->p.min_p > 0.0f) {
        float floor_p = s->p.min_p * out[0].prob;
        size_t keep = 1;
        while (keep < n && out[keep].prob >= floor_p)
            keep++;
        if (keep < n) {
            n = keep;
            renormalize(out, n);
        }
    }
    return n;
}

int32_t ia_sampler_sample(ia_sampler *s, const float *logits, const int32_t *history,
                          size_t n_history) {
    size_t n = ia_sampler_distribution(s, logits, history, n_history, s->cand);
    if (s->p.temperature == 0.0f || n == 1)
        return s->cand[0].id;
    float u = ia_rng_uniform_f32(&s->rng), acc = 0.0f;
    for (size_t i = 0; i < n; i++) {
        acc += s->cand[i].prob;
        if (u < acc)
            return s->cand[i].id;
    }
    return s->cand[n - 1].id; /* rounding left u above the last partial sum */
}
