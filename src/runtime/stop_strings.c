/*
 * Stop strings, matched on decoded text rather than on tokens: a stop string
 * may span several tokens, and a token may hold a stop string plus more. The
 * matcher keeps the completion's text and releases it as soon as no stop
 * string could still start inside it, so streaming never shows a stop string
 * or a piece of one, and the text after a stop is never shown at all.
 *
 * Why searching from the release point is enough: the held-back suffix is
 * always the longest one that is a prefix of some stop string, so a stop
 * string cannot start inside text already released.
 */
#include <stdlib.h>
#include <string.h>

#include "runtime/generate_internal.h"

void stop_matcher_init(stop_matcher *m, const char *const *stop, size_t n_stop) {
    memset(m, 0, sizeof *m);
    m->stop = stop;
    m->n_stop = n_stop;
    for (size_t i = 0; i < n_stop; i++) {
        size_t l = stop[i] ? strlen(stop[i]) : 0;
        if (l > m->max_len)
            m->max_len = l;
    }
}

void stop_matcher_free(stop_matcher *m) {
    free(m->buf);
    memset(m, 0, sizeof *m);
}

/* The earliest occurrence of any stop string in buf[from..len), or SIZE_MAX. */
static size_t find_stop(const stop_matcher *m, size_t from) {
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < m->n_stop; i++) {
        const char *s = m->stop[i];
        size_t sl = s ? strlen(s) : 0;
        if (sl == 0 || m->len - from < sl)
            continue;
        for (size_t p = from; p + sl <= m->len && p < best; p++)
            if (memcmp(m->buf + p, s, sl) == 0) {
                best = p;
                break;
            }
    }
    return best;
}

/* Bytes at the end of buf that are a proper prefix of some stop string. */
static size_t held_back(const stop_matcher *m) {
    size_t avail = m->len - m->emitted;
    size_t h = m->max_len ? m->max_len - 1 : 0;
    if (h > avail)
        h = avail;
    for (; h > 0; h--) {
        const char *tail = m->buf + m->len - h;
        for (size_t i = 0; i < m->n_stop; i++)
            if (m->stop[i] && strlen(m->stop[i]) > h && memcmp(m->stop[i], tail, h) == 0)
                return h;
    }
    return 0;
}

ia_status stop_matcher_push(stop_matcher *m, const char *piece, size_t len, const char **emit,
                            size_t *emit_len) {
    *emit = NULL;
    *emit_len = 0;
    if (m->stopped)
        return IA_OK;
    if (m->len + len + 1 > m->cap) {
        size_t cap = m->cap ? m->cap : 256;
        while (cap < m->len + len + 1)
            cap *= 2;
        char *p = realloc(m->buf, cap);
        if (!p)
            return ia_error_set(IA_ENOMEM, "stop strings: out of memory for %zu bytes", cap);
        m->buf = p;
        m->cap = cap;
    }
    memcpy(m->buf + m->len, piece, len);
    m->len += len;
    m->buf[m->len] = '\0';
    size_t start = m->emitted, end;
    size_t at = find_stop(m, m->emitted);
    if (at != SIZE_MAX) {
        end = at;
        m->stopped = true;
        m->len = at; /* the stop string and what follows are gone */
        m->buf[m->len] = '\0';
    } else {
        end = m->len - held_back(m);
    }
    m->emitted = end;
    *emit = m->buf + start;
    *emit_len = end - start;
    return IA_OK;
}

void stop_matcher_flush(stop_matcher *m, const char **emit, size_t *emit_len) {
    *emit = m->buf ? m->buf + m->emitted : "";
    *emit_len = m->len - m->emitted;
    m->emitted = m->len;
}
