/*
 * libFuzzer target for the NDJSON line splitter (src/backends/stream.c).
 * The first byte picks the line bound (1..256) and the feed size; the rest
 * is the stream. Checks: lines are non-empty, hold no '\n' and fit the
 * bound (after one trailing '\r' is dropped); one-piece and piecewise feeding agree.
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

static ia_status on_line(void *ctx, const char *s, size_t n) {
    digest *d = ctx;
    if (n == 0 || n > d->max || memchr(s, '\n', n))
        abort();
    for (size_t i = 0; i < n; i++)
        d->h = (d->h ^ (uint8_t)s[i]) * 1099511628211ull;
    d->h = (d->h ^ 0x1ff) * 1099511628211ull;
    d->n++;
    return IA_OK;
}

static ia_status run(const char *s, size_t n, size_t step, size_t max, digest *d) {
    ia_ndjson_parser *p;
    d->h = 14695981039346656037ull;
    d->n = 0;
    d->max = max;
    ia_status st = ia_ndjson_parser_create(max, on_line, d, &p);
    if (st != IA_OK)
        return st;
    for (size_t i = 0; st == IA_OK && i < n;) {
        size_t k = step && step < n - i ? step : n - i;
        st = ia_ndjson_parser_feed(p, s + i, k);
        i += k;
    }
    if (st == IA_OK)
        st = ia_ndjson_parser_finish(p);
    ia_ndjson_parser_destroy(p);
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 65536)
        return 0;
    size_t max = 1 + data[0];
    size_t step = 1 + (data[0] >> 4);
    digest a, b;
    ia_status sa = run((const char *)data + 1, size - 1, 0, max, &a);
    ia_status sb = run((const char *)data + 1, size - 1, step, max, &b);
    if (sa != sb || (sa == IA_OK && (a.h != b.h || a.n != b.n)))
        abort();
    return 0;
}
