/*
 * Incremental SSE and NDJSON parsers (see stream.h for the rules).
 *
 * Both keep one growing line buffer bounded by the limit given at creation.
 * The SSE parser also keeps the event being assembled (its data lines joined
 * with '\n', its name, the stream's last id and retry); it dispatches on a
 * blank line. Line endings may be LF, CR or CRLF: after a CR the parser
 * remembers to swallow one LF that may arrive in the next feed, so a CRLF
 * split across two reads still counts as one line end.
 */
#include "backends/stream.h"

#include <stdlib.h>
#include <string.h>

/* A growable byte buffer that refuses to pass `limit`. */
typedef struct sbuf {
    char *data;
    size_t len, cap;
} sbuf;

static ia_status sbuf_append(sbuf *b, const char *s, size_t n, size_t limit, const char *what) {
    size_t need;
    if (!ia_size_add(b->len, n, &need) || need + 1 > limit + 1)
        return ia_error_set(IA_ERANGE, "%s longer than the %zu-byte limit", what, limit);
    if (need + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return ia_error_set(IA_ENOMEM, "out of memory buffering a %s", what);
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len = need;
    b->data[b->len] = 0;
    return IA_OK;
}

/* ---- SSE ------------------------------------------------------------------------ */

struct ia_sse_parser {
    size_t max;
    ia_sse_event_fn fn;
    void *ctx;
    sbuf line;  /* the current, unfinished line */
    sbuf data;  /* data lines of the event being assembled */
    sbuf event; /* its event name */
    sbuf id;    /* the last event id of the stream */
    long retry_ms;
    bool has_data;    /* a data field was seen (possibly empty) */
    bool pending;     /* any field of an undispatched event was seen */
    bool skip_lf;     /* the previous byte was a CR */
    bool bom_checked; /* the first bytes were checked for a BOM */
    size_t bom_seen;  /* BOM bytes matched so far */
    ia_status failed; /* sticky failure */
};

ia_status ia_sse_parser_create(size_t max_event_bytes, ia_sse_event_fn fn, void *ctx,
                               ia_sse_parser **out) {
    *out = NULL;
    ia_sse_parser *p = ia_calloc(1, sizeof *p);
    if (!p)
        return IA_ENOMEM;
    p->max = max_event_bytes;
    p->fn = fn;
    p->ctx = ctx;
    p->retry_ms = -1;
    *out = p;
    return IA_OK;
}

void ia_sse_parser_destroy(ia_sse_parser *p) {
    if (!p)
        return;
    free(p->line.data);
    free(p->data.data);
    free(p->event.data);
    free(p->id.data);
    free(p);
}

static ia_status sse_dispatch(ia_sse_parser *p) {
    ia_status st = IA_OK;
    if (p->has_data) {
        ia_sse_event ev = {
            .event = p->event.len ? p->event.data : "message",
            .data = p->data.data ? p->data.data : "",
            .data_len = p->data.len,
            .id = p->id.data ? p->id.data : "",
            .retry_ms = p->retry_ms,
        };
        st = p->fn(p->ctx, &ev);
    }
    p->data.len = 0;
    p->event.len = 0;
    if (p->data.data)
        p->data.data[0] = 0;
    if (p->event.data)
        p->event.data[0] = 0;
    p->has_data = false;
    p->pending = false;
    p->retry_ms = -1;
    return st;
}

static bool all_digits(const char *s, size_t n) {
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* One complete line (without its end). */
static ia_status sse_line(ia_sse_parser *p, const char *s, size_t n) {
    if (n == 0)
        return sse_dispatch(p);
    if (s[0] == ':')
        return IA_OK;
    const char *colon = memchr(s, ':', n);
    size_t flen = colon ? (size_t)(colon - s) : n;
    const char *val = colon ? colon + 1 : s + n;
    size_t vlen = colon ? n - flen - 1 : 0;
    if (vlen > 0 && val[0] == ' ') {
        val++;
        vlen--;
    }
    p->pending = true;
    if (flen == 4 && memcmp(s, "data", 4) == 0) {
        size_t total;
        if (!ia_size_add(p->data.len, vlen + (p->has_data ? 1 : 0), &total) || total > p->max)
            return ia_error_set(IA_ERANGE, "SSE event longer than the %zu-byte limit", p->max);
        if (p->has_data) {
            ia_status st = sbuf_append(&p->data, "\n", 1, p->max, "SSE event");
            if (st != IA_OK)
                return st;
        }
        p->has_data = true;
        return sbuf_append(&p->data, val, vlen, p->max, "SSE event");
    }
    if (flen == 5 && memcmp(s, "event", 5) == 0) {
        p->event.len = 0;
        return sbuf_append(&p->event, val, vlen, p->max, "SSE event name");
    }
    if (flen == 2 && memcmp(s, "id", 2) == 0) {
        if (memchr(val, 0, vlen))
            return IA_OK; /* WHATWG: an id containing NUL is ignored */
        p->id.len = 0;
        return sbuf_append(&p->id, val, vlen, p->max, "SSE event id");
    }
    if (flen == 5 && memcmp(s, "retry", 5) == 0) {
        if (all_digits(val, vlen) && vlen <= 9) {
            long v = 0;
            for (size_t i = 0; i < vlen; i++)
                v = v * 10 + (val[i] - '0');
            p->retry_ms = v;
        }
        return IA_OK;
    }
    return IA_OK;
}

ia_status ia_sse_parser_feed(ia_sse_parser *p, const char *buf, size_t n) {
    if (p->failed != IA_OK)
        return ia_error_set(p->failed, "SSE parser already failed");
    size_t i = 0;
    /* A UTF-8 BOM at the very start of the stream is skipped, even when it
     * arrives split over feeds. */
    static const unsigned char bom[3] = {0xEF, 0xBB, 0xBF};
    while (!p->bom_checked && i < n) {
        if ((unsigned char)buf[i] == bom[p->bom_seen]) {
            p->bom_seen++;
            i++;
            if (p->bom_seen == 3)
                p->bom_checked = true;
            continue;
        }
        p->bom_checked = true;
        if (p->bom_seen > 0) {
            /* A partial BOM followed by something else: those bytes were content. */
            ia_status st =
                sbuf_append(&p->line, (const char *)bom, p->bom_seen, p->max, "SSE line");
            if (st != IA_OK)
                return p->failed = st;
        }
    }
    while (i < n) {
        if (p->skip_lf) {
            p->skip_lf = false;
            if (buf[i] == '\n') {
                i++;
                continue;
            }
        }
        size_t j = i;
        while (j < n && buf[j] != '\n' && buf[j] != '\r')
            j++;
        ia_status st = IA_OK;
        if (j == n) {
            st = sbuf_append(&p->line, buf + i, j - i, p->max, "SSE line");
            if (st != IA_OK)
                return p->failed = st;
            break;
        }
        if (p->line.len > 0) {
            st = sbuf_append(&p->line, buf + i, j - i, p->max, "SSE line");
            if (st == IA_OK)
                st = sse_line(p, p->line.data, p->line.len);
            p->line.len = 0;
        } else {
            if (j - i > p->max)
                st = ia_error_set(IA_ERANGE, "SSE line longer than the %zu-byte limit", p->max);
            else
                st = sse_line(p, buf + i, j - i);
        }
        if (st != IA_OK)
            return p->failed = st;
        if (buf[j] == '\r')
            p->skip_lf = true;
        i = j + 1;
    }
    return IA_OK;
}

ia_status ia_sse_parser_finish(ia_sse_parser *p, bool *truncated) {
    if (truncated)
        *truncated = p->pending || p->line.len > 0;
    if (p->failed != IA_OK)
        return ia_error_set(p->failed, "SSE parser already failed");
    p->line.len = 0;
    p->data.len = 0;
    p->has_data = false;
    p->pending = false;
    return IA_OK;
}

/* ---- NDJSON ---------------------------------------------------------------------- */

struct ia_ndjson_parser {
    size_t max;
    ia_ndjson_line_fn fn;
    void *ctx;
    sbuf line;
    ia_status failed;
};

ia_status ia_ndjson_parser_create(size_t max_line_bytes, ia_ndjson_line_fn fn, void *ctx,
                                  ia_ndjson_parser **out) {
    *out = NULL;
    ia_ndjson_parser *p = ia_calloc(1, sizeof *p);
    if (!p)
        return IA_ENOMEM;
    p->max = max_line_bytes;
    p->fn = fn;
    p->ctx = ctx;
    *out = p;
    return IA_OK;
}

void ia_ndjson_parser_destroy(ia_ndjson_parser *p) {
    if (!p)
        return;
    free(p->line.data);
    free(p);
}

static ia_status ndjson_emit(ia_ndjson_parser *p, const char *s, size_t n) {
    if (n > 0 && s[n - 1] == '\r')
        n--;
    if (n == 0)
        return IA_OK;
    return p->fn(p->ctx, s, n);
}

ia_status ia_ndjson_parser_feed(ia_ndjson_parser *p, const char *buf, size_t n) {
    if (p->failed != IA_OK)
        return ia_error_set(p->failed, "NDJSON parser already failed");
    size_t i = 0;
    while (i < n) {
        const char *nl = memchr(buf + i, '\n', n - i);
        size_t j = nl ? (size_t)(nl - buf) : n;
        ia_status st;
        if (!nl) {
            st = sbuf_append(&p->line, buf + i, j - i, p->max + 1, "NDJSON line");
            if (st == IA_OK && p->line.len > p->max + 1)
                st = IA_ERANGE;
            if (st != IA_OK) {
                /* +1 leaves room for a trailing '\r' that will be dropped. */
                return p->failed = ia_error_set(
                           IA_ERANGE, "NDJSON line longer than the %zu-byte limit", p->max);
            }
            break;
        }
        if (p->line.len > 0) {
            st = sbuf_append(&p->line, buf + i, j - i, p->max + 1, "NDJSON line");
            size_t len = p->line.len;
            if (st == IA_OK && len > 0 && p->line.data[len - 1] == '\r')
                len--;
            if (st == IA_OK && len > p->max)
                st = ia_error_set(IA_ERANGE, "NDJSON line longer than the %zu-byte limit", p->max);
            if (st != IA_OK)
                st = ia_error_set(IA_ERANGE, "NDJSON line longer than the %zu-byte limit", p->max);
            else
                st = ndjson_emit(p, p->line.data, p->line.len);
            p->line.len = 0;
        } else {
            size_t len = j - i;
            if (len > 0 && buf[j - 1] == '\r')
                len--;
            if (len > p->max)
                st = ia_error_set(IA_ERANGE, "NDJSON line longer than the %zu-byte limit", p->max);
            else
                st = ndjson_emit(p, buf + i, j - i);
        }
        if (st != IA_OK)
            return p->failed = st;
        i = j + 1;
    }
    return IA_OK;
}

ia_status ia_ndjson_parser_finish(ia_ndjson_parser *p) {
    if (p->failed != IA_OK)
        return ia_error_set(p->failed, "NDJSON parser already failed");
    ia_status st = IA_OK;
    if (p->line.len > 0) {
        size_t len = p->line.len;
        if (p->line.data[len - 1] == '\r')
            len--;
        if (len > p->max)
            st = ia_error_set(IA_ERANGE, "NDJSON line longer than the %zu-byte limit", p->max);
        else
            st = ndjson_emit(p, p->line.data, p->line.len);
        p->line.len = 0;
    }
    if (st != IA_OK)
        p->failed = st;
    return st;
}
