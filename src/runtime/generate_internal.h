/*
 * Pieces of text generation that the tests reach directly: the stop-string
 * matcher (stop_strings.c). Private to runtime/.
 */
#ifndef IA_GENERATE_INTERNAL_H
#define IA_GENERATE_INTERNAL_H

#include "ia/base.h"

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

#endif /* IA_GENERATE_INTERNAL_H */
