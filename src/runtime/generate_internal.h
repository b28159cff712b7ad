/*
 * Pieces of text generation shared by its files and reached by the tests:
 * the stop-string matcher (stop_strings.c), and the generator itself, which
 * generate.c loads and generate_batch.c runs (slots, sequences, steps).
 * Private to runtime/.
 */
#ifndef IA_GENERATE_INTERNAL_H
#define IA_GENERATE_INTERNAL_H

#include "ia/base.h"
#include "ia/runtime.h"

/* Watches the completion's text for stop strings. Text goes in piece by
 * piece as the detokenizer makes it; what comes out is the text that can no
 * longer be part of a stop string: a suffix that could still grow into one is
 * held back until the next piece decides. When a stop string appears, the
 * text before it is released and nothing after (the stop string itself is
 * never emitted). */
typedef struct stop_matcher {
    const char *const *stop; /* borrowed */
    size_t n_stop;
    size_t max_len; /* longest stop string */
    char *buf;      /* the whole completion text so far */
    size_t len, cap;
    size_t emitted; /* bytes of buf released */
    bool stopped;
} stop_matcher;

/* Empty stop strings are ignored. */
void stop_matcher_init(stop_matcher *m, const char *const *stop, size_t n_stop);
void stop_matcher_free(stop_matcher *m);

/* Adds a piece; *emit and *emit_len get the newly released text (pointing into
 * the matcher, valid until the next call). Sets m->stopped when a stop
 * string completed. IA_ENOMEM on allocation failure. */
ia_status stop_matcher_push(stop_matcher *m, const char *piece, size_t len, const char **emit,
                            size_t *emit_len);

/* Releases whatever was held back (generation ended without a stop). */
void stop_matcher_flush(stop_matcher *m, const char **emit, size_t *emit_len);

/* The released text so far (the completion, stop string excluded). */
static inline size_t stop_matcher_text_len(const stop_matcher *m) { return m->emitted; }

/* ---- the generator (generate.c, generate_batch.c) ---- */

/* One sequence's place: a KV cache (made when first used) and the tokens
 * whose keys and values it holds, kept after the sequence ends so that a
 * later request with the same prefix can reuse them (reuse_cache). */
typedef struct gen_slot {
    ia_kv_cache *kv;
    int32_t *cached; /* context entries */
    size_t n_cached;
    ia_gen_seq *seq; /* the sequence using the slot, NULL when free */
} gen_slot;

struct ia_generator {
    ia_decoder *dec;
    ia_tokenizer *tok;
    ia_threadpool *pool;
    size_t context, prefill_chunk, vocab;
    ia_dtype kv_dtype;
    int32_t eos_id;
    char *template_text; /* raw chat template, NULL when none */
    ia_chat_template *chat;
    char *chat_error; /* why chat is NULL */
    gen_slot *slots;
    size_t n_slots, n_active;
    /* step scratch for n_slots sequences */
    float *logits; /* n_slots rows of vocab */
    ia_kv_cache **step_kv;
    int32_t *step_tok;
    ia_gen_seq **step_seq;
};

/* Makes slot i's KV cache if it has none yet. */
ia_status gen_slot_ready(ia_generator *g, gen_slot *slot);

/* ia_gen_seq_start, also giving the prompt's length in tokens once known
 * (for a result when the prompt does not fit). */
ia_status gen_seq_start(ia_generator *g, const ia_generate_request *req, ia_gen_seq **out,
                        size_t *prompt_tokens);

#endif /* IA_GENERATE_INTERNAL_H */
