/*
 * Continuous batching: many requests generating at once on one generator,
 * each a sequence in one of its slots (a KV cache and the tokens it holds).
 *
 * A sequence starts by being tokenised and checked (ia_gen_seq_start), which
 * runs nothing. Each ia_generator_step then does two things. Every sequence
 * that is decoding has a sampled token not yet run: those tokens go through
 * the decoder together, one row per sequence, in one
 * ia_decoder_forward_batch, so the weights are read once for the whole batch
 * (decode is bound by that read, so n sequences cost little more than one).
 * Every sequence still prefilling runs its next prompt chunk on its own, so a
 * long prompt joining delays the others by one chunk a step rather than by
 * the whole prompt. Whichever way a sequence got its logits, it then takes
 * one token: its own sampler (parameters, seed and RNG) draws it, the
 * detokenizer turns it into text, the stop-string matcher releases what can
 * no longer be part of a stop string to the request's on_text, and the
 * sequence finishes on EOS, a stop string, max_tokens, a full context or a
 * callback that returns false. ia_gen_seq_end hands the result over and
 * frees the slot, done or not, so a client that went away costs at most the
 * step in flight.
 *
 * Nothing a sequence computes depends on its neighbours: the batch step
 * gives each row the logits of its token run alone (the kernels' products
 * must not depend on the row count; tests/models/test_decoder_batch.c), and
 * the sampler, detokenizer and stop matcher are per sequence. So a seeded
 * request gives the same text alone or batched (tests/server/
 * test_generate_batch.c checks it over HTTP).
 */
#include <stdlib.h>
#include <string.h>

#include "runtime/generate_internal.h"

typedef enum seq_state { SEQ_PREFILL, SEQ_DECODE, SEQ_DONE } seq_state;

struct ia_gen_seq {
    ia_generator *g;
    gen_slot *slot;
    ia_generate_request req; /* the caller's, copied; what it points to is borrowed */
    ia_generate_result res;
    int32_t *history; /* prompt, then completion: the repetition penalty's window */
    size_t n_prompt, n_history;
    size_t fed;     /* prompt tokens in the cache */
    size_t max_new; /* completion tokens allowed */
    int32_t next;   /* the sampled token the next step runs */
    ia_sampler *sampler;
    ia_detokenizer *detok;
    stop_matcher stops;
    seq_state state;
    ia_status status; /* a failure's status and message */
    char *error;
    double t_decode; /* when decoding began */
};

/* ---- finishing ------------------------------------------------------------------------ */

static void seq_fail(ia_gen_seq *s, ia_status st) {
    s->status = st;
    free(s->error);
    s->error = ia_strdup(ia_error_message());
    s->state = SEQ_DONE;
}

/* Streams a piece of decoded text through the stop matcher and the callback;
 * clears *go_on when generation must end (a stop string, or the callback). */
static ia_status stream_text(ia_gen_seq *s, const char *piece, size_t len, bool *go_on) {
    const char *emit;
    size_t emit_len;
    ia_status st = stop_matcher_push(&s->stops, piece, len, &emit, &emit_len);
    if (st != IA_OK)
        return st;
    if (emit_len && s->req.on_text && !s->req.on_text(s->req.ctx, emit, emit_len)) {
        s->res.finish = IA_FINISH_CANCELLED;
        *go_on = false;
    }
    if (s->stops.stopped) {
        if (s->res.finish != IA_FINISH_CANCELLED)
            s->res.finish = IA_FINISH_STOP;
        *go_on = false;
    }
    return IA_OK;
}

/* The end: what the detokenizer and the stop matcher still hold goes out
 * (unless the sequence was cancelled or stopped), and the text is kept. */
static ia_status finish_text(ia_gen_seq *s) {
    ia_generate_result *res = &s->res;
    if (res->finish == IA_FINISH_LENGTH || res->finish == IA_FINISH_EOS) {
        const char *piece;
        size_t plen;
        bool go_on = true;
        ia_status st = ia_detokenizer_flush(s->detok, &piece, &plen);
        if (st == IA_OK && plen)
            st = stream_text(s, piece, plen, &go_on);
        if (st != IA_OK)
            return st;
        if (!s->stops.stopped && res->finish != IA_FINISH_CANCELLED) {
            const char *emit;
            size_t emit_len;
            stop_matcher_flush(&s->stops, &emit, &emit_len);
            if (emit_len && s->req.on_text && !s->req.on_text(s->req.ctx, emit, emit_len))
                res->finish = IA_FINISH_CANCELLED;
        }
    }
    size_t n = stop_matcher_text_len(&s->stops);
    res->text = ia_malloc(n + 1);
    if (!res->text)
        return ia_error_set(IA_ENOMEM, "generate: out of memory for the text");
    if (n)
        memcpy(res->text, s->stops.buf, n);
    res->text[n] = '\0';
    res->text_len = n;
    return IA_OK;
}

static void seq_complete(ia_gen_seq *s) {
    if (s->t_decode > 0)
        s->res.decode_ms = (ia_time_now() - s->t_decode) * 1000.0;
    ia_status st = finish_text(s);
    if (st != IA_OK)
        seq_fail(s, st);
    s->state = SEQ_DONE;
}

/* ---- one token -------------------------------------------------------------------------- */

/* Takes the next token from the logits of the last token run: samples it,
 * streams its text, and either finishes the sequence or leaves the token for
 * the next step to run. */
static void take_token(ia_gen_seq *s, const float *logits) {
    ia_generator *g = s->g;
    ia_generate_result *res = &s->res;
    int32_t tok = ia_sampler_sample(s->sampler, logits, s->history, s->n_history);
    res->tokens[res->n_tokens++] = tok;
    s->history[s->n_history++] = tok;
    bool is_eos = (!s->req.ignore_eos && tok == g->eos_id) ||
                  (s->req.extra_eos >= 0 && tok == s->req.extra_eos);
    if (is_eos) {
        res->finish = IA_FINISH_EOS;
        seq_complete(s);
        return;
    }
    const char *piece;
    size_t plen;
    bool go_on = true;
    ia_status st = ia_detokenizer_push(s->detok, tok, &piece, &plen);
    if (st == IA_OK)
        st = stream_text(s, piece, plen, &go_on);
    if (st != IA_OK) {
        seq_fail(s, st);
        return;
    }
    /* max_tokens reached, or no room left for this token's keys */
    if (!go_on || res->n_tokens == s->max_new || s->slot->n_cached >= g->context) {
        seq_complete(s);
        return;
    }
    s->next = tok;
}

/* Runs the next prompt chunk of a prefilling sequence; the last one's
 * logits give the first token. */
static void prefill_chunk(ia_gen_seq *s) {
    ia_generator *g = s->g;
    gen_slot *slot = s->slot;
    size_t left = s->n_prompt - s->fed, m = left < g->prefill_chunk ? left : g->prefill_chunk;
    double t0 = ia_time_now();
    ia_status st =
        ia_decoder_forward(g->dec, slot->kv, s->history + s->fed, m, false, g->logits, g->pool);
    s->res.prefill_ms += (ia_time_now() - t0) * 1000.0;
    if (st != IA_OK) {
        /* The cache may hold part of the chunk: forget it all. */
        ia_kv_cache_reset(slot->kv);
        slot->n_cached = 0;
        seq_fail(s, st);
        return;
    }
    memcpy(slot->cached + slot->n_cached, s->history + s->fed, m * sizeof *slot->cached);
    slot->n_cached += m;
    s->fed += m;
    if (s->fed < s->n_prompt)
        return;
    s->state = SEQ_DECODE;
    s->t_decode = ia_time_now();
    take_token(s, g->logits);
}

ia_status ia_generator_step(ia_generator *g, size_t *n_decoded) {
    size_t n = 0;
    for (size_t i = 0; i < g->n_slots; i++) {
        ia_gen_seq *s = g->slots[i].seq;
        if (!s || s->state != SEQ_DECODE)
            continue;
        g->step_kv[n] = g->slots[i].kv;
        g->step_tok[n] = s->next;
        g->step_seq[n++] = s;
    }
    if (n_decoded)
        *n_decoded = n;
    if (n) {
        ia_status st =
            ia_decoder_forward_batch(g->dec, g->step_kv, g->step_tok, n, g->logits, g->pool);
        for (size_t r = 0; r < n; r++) {
            ia_gen_seq *s = g->step_seq[r];
            if (st != IA_OK) { /* checked before any cache changed */
                seq_fail(s, st);
                continue;
            }
            s->slot->cached[s->slot->n_cached++] = s->next;
            take_token(s, g->logits + r * g->vocab);
        }
    }
    for (size_t i = 0; i < g->n_slots; i++) {
        ia_gen_seq *s = g->slots[i].seq;
        if (s && s->state == SEQ_PREFILL)
            prefill_chunk(s);
    }
    return IA_OK;
}

/* ---- starting and ending ------------------------------------------------------------------ */

/* A free slot: with reuse_cache the one whose cached tokens are the longest
 * strict prefix of the prompt (at least one token must run to give logits),
 * else one that has a cache already. *keep gets the tokens reused. */
static gen_slot *pick_slot(ia_generator *g, const int32_t *ids, size_t n, bool reuse,
                           size_t *keep) {
    gen_slot *best = NULL;
    *keep = 0;
    for (size_t i = 0; i < g->n_slots; i++) {
        gen_slot *slot = &g->slots[i];
        if (slot->seq)
            continue;
        if (!best || (!best->kv && slot->kv))
            best = slot;
        if (reuse && slot->kv && slot->n_cached > *keep && slot->n_cached < n &&
            memcmp(slot->cached, ids, slot->n_cached * sizeof *ids) == 0) {
            best = slot;
            *keep = slot->n_cached;
        }
    }
    return best;
}

static void seq_free(ia_gen_seq *s) {
    ia_sampler_free(s->sampler);
    ia_detokenizer_free(s->detok);
    stop_matcher_free(&s->stops);
    free(s->history);
    free(s->error);
    ia_generate_result_free(&s->res);
    free(s);
}

ia_status gen_seq_start(ia_generator *g, const ia_generate_request *req, ia_gen_seq **out,
                        size_t *prompt_tokens) {
    *out = NULL;
    *prompt_tokens = 0;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    size_t plen = req->prompt_len == SIZE_MAX ? strlen(req->prompt) : req->prompt_len;
    ia_status st = ia_generator_tokenize(g, req->prompt, plen, req->raw_prompt, &ids, &n_ids);
    if (st != IA_OK)
        return st;
    *prompt_tokens = n_ids;
    ia_gen_seq *s = NULL;
    if (n_ids == 0) {
        st = ia_error_set(IA_EINVAL, "the prompt is empty (and the model adds no BOS token)");
        goto fail;
    }
    if (n_ids > g->context) {
        st = ia_error_set(IA_ERANGE, "the prompt is %zu tokens; the context holds %zu", n_ids,
                          g->context);
        goto fail;
    }
    size_t keep = 0;
    gen_slot *slot = pick_slot(g, ids, n_ids, req->reuse_cache, &keep);
    if (!slot) {
        st = ia_error_set(IA_ERANGE, "generate: all %zu sequence slots are in use", g->n_slots);
        goto fail;
    }
    if ((st = gen_slot_ready(g, slot)) != IA_OK)
        goto fail;
    size_t room = g->context - n_ids + 1; /* the last token needs no cache slot */
    if (!(s = ia_calloc(1, sizeof *s))) {
        st = IA_ENOMEM;
        goto fail;
    }
    s->g = g;
    s->req = *req;
    s->max_new = req->max_tokens && req->max_tokens < room ? req->max_tokens : room;
    s->res.tokens = ia_malloc_array(s->max_new, sizeof *s->res.tokens);
    s->history = ia_malloc_array(n_ids + s->max_new, sizeof *s->history);
    if (!s->res.tokens || !s->history) {
        st = ia_error_set(IA_ENOMEM, "generate: out of memory for %zu tokens", s->max_new);
        goto fail;
    }
    if ((st = ia_sampler_create(&req->sampling, g->vocab, &s->sampler)) != IA_OK ||
        (st = ia_detokenizer_create(g->tok, true, &s->detok)) != IA_OK)
        goto fail;
    stop_matcher_init(&s->stops, req->stop, req->n_stop);
    memcpy(s->history, ids, n_ids * sizeof *ids);
    s->n_prompt = s->n_history = n_ids;
    s->res.prompt_tokens = n_ids;
    s->res.cached_tokens = keep;
    s->res.finish = IA_FINISH_LENGTH;
    if (keep == 0) {
        ia_kv_cache_reset(slot->kv);
        slot->n_cached = 0;
    }
    s->fed = keep;
    s->state = SEQ_PREFILL;
    s->slot = slot;
    slot->seq = s;
    g->n_active++;
    free(ids);
    *out = s;
    return IA_OK;
fail:
    if (s)
        seq_free(s);
    free(ids);
    return st;
}

ia_status ia_gen_seq_start(ia_generator *g, const ia_generate_request *req, ia_gen_seq **out) {
    size_t prompt_tokens;
    return gen_seq_start(g, req, out, &prompt_tokens);
}

bool ia_gen_seq_done(const ia_gen_seq *s) { return s->state == SEQ_DONE; }

ia_status ia_gen_seq_end(ia_gen_seq *s, ia_generate_result *out) {
    if (s->state != SEQ_DONE) {
        s->res.finish = IA_FINISH_CANCELLED;
        seq_complete(s);
    }
    *out = s->res;
    memset(&s->res, 0, sizeof s->res);
    if (!out->text) {
        out->text = ia_strdup("");
        out->text_len = 0;
    }
    ia_status st = s->status;
    if (st != IA_OK)
        ia_error_set(st, "%s", s->error ? s->error : ia_status_str(st));
    s->slot->seq = NULL;
    s->g->n_active--;
    seq_free(s);
    return st;
}

size_t ia_generator_slots(const ia_generator *g) { return g->n_slots; }
size_t ia_generator_active(const ia_generator *g) { return g->n_active; }
