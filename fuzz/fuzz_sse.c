/*
 * libFuzzer target for the SSE parser (src/backends/stream.c). The first
 * byte picks the event size bound (1..256 bytes) and the feed size (1..16
 * bytes, or everything at once); the rest is the stream. Checks: every
 * dispatched event has a NUL-terminated data of data_len bytes within the
 * bound; the same input fed in one piece gives the same events (a digest of
 * them) and the same outcome as fed in small pieces.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/backends/stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct digest {
    uint64_t h;
    size_t n, max;
} digest;

static void mix(digest *d, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        d->h = (d->h ^ (uint8_t)s[i]) * 1099511628211ull;
    d->h = (d->h ^ 0xff) * 1099511628211ull;
}

static ia_status on_event(void *ctx, const ia_sse_event *ev) {
    digest *d = ctx;
    if (ev->data[ev->data_len] != 0 || ev->data_len > d->max || !ev->event || !ev->id)
        abort();
    mix(d, ev->event, strlen(ev->event));
    mix(d, ev->data, ev->data_len);
    mix(d, ev->id, strlen(ev->id));
    d->h ^= (uint64_t)ev->retry_ms;
    d->n++;
    return IA_OK;
}

static ia_status run(const char *s, size_t n, size_t step, size_t max, digest *d, bool *trunc) {
    ia_sse_parser *p;
    d->h = 14695981039346656037ull;
    d->n = 0;
    d->max = max;
    ia_status st = ia_sse_parser_create(max, on_event, d, &p);
    if (st != IA_OK)
        return st;
    for (size_t i = 0; st == IA_OK && i < n;) {
        size_t k = step && step < n - i ? step : n - i;
        st = ia_sse_parser_feed(p, s + i, k);
        i += k;
    }
    if (st == IA_OK)
        st = ia_sse_parser_finish(p, trunc);
    ia_sse_parser_destroy(p);
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 65536)
        return 0;
    size_t max = 1 + (data[0] & 0xff);
    size_t step = 1 + (data[0] >> 4);
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    digest a, b;
    bool ta = false, tb = false;
    ia_status sa = run(s, n, 0, max, &a, &ta);
    ia_status sb = run(s, n, step, max, &b, &tb);
    if (sa != sb)
        abort();
    if (sa == IA_OK && (a.h != b.h || a.n != b.n || ta != tb))
        abort();
    return 0;
}
