/*
 * The SSE and NDJSON parsers (src/backends/stream.c) against the WHATWG
 * EventSource rules stream.h promises: every line ending (LF, CR, CRLF, and
 * a CRLF split over two feeds), multi-line data, comments, event names, id
 * and retry, a BOM, the same events whatever the split of the input into
 * feeds (every split point, and one byte at a time), the size bound, and
 * truncation at the end.
 */
#include "backends/stream.h"

#include <stdlib.h>
#include <string.h>

#include "test.h"

typedef struct rec {
    char log[8192];
    int n;
    int stop_after; /* return an error after this many events (0: never) */
} rec;

static ia_status on_event(void *ctx, const ia_sse_event *ev) {
    rec *r = ctx;
    size_t len = strlen(r->log);
    snprintf(r->log + len, sizeof r->log - len, "[%s|%s|%s|%ld]", ev->event, ev->data, ev->id,
             ev->retry_ms);
    r->n++;
    if (r->stop_after && r->n >= r->stop_after)
        return ia_error_set(IA_EINVAL, "stop");
    return IA_OK;
}

static ia_status on_line(void *ctx, const char *line, size_t n) {
    rec *r = ctx;
    size_t len = strlen(r->log);
    snprintf(r->log + len, sizeof r->log - len, "[%.*s]", (int)n, line);
    r->n++;
    return IA_OK;
}

/* Feeds `in` in pieces of `step` bytes (0: all at once) and returns the log. */
static rec sse_run(const char *in, size_t len, size_t step, size_t max, ia_status *st_out,
                   bool *truncated) {
    rec r = {0};
    ia_sse_parser *p;
    ia_status st = ia_sse_parser_create(max, on_event, &r, &p);
    size_t i = 0;
    while (st == IA_OK && i < len) {
        size_t k = step && step < len - i ? step : len - i;
        st = ia_sse_parser_feed(p, in + i, k);
        i += k;
    }
    if (st == IA_OK)
        st = ia_sse_parser_finish(p, truncated);
    ia_sse_parser_destroy(p);
    if (st_out)
        *st_out = st;
    return r;
}

TEST(sse_basic_fields) {
    const char *in = ": comment\n"
                     "data: hello\n\n"
                     "event: delta\ndata:no space\ndata:  two spaces\nid: 7\n\n"
                     "retry: 1500\ndata\n\n"
                     "data: x\nretry: 12a\nfoo: bar\n\n";
    ia_status st;
    rec r = sse_run(in, strlen(in), 0, 1024, &st, NULL);
    CHECK_OK(st);
    CHECK_MSG(strcmp(r.log, "[message|hello||-1][delta|no space\n two spaces|7|-1][message||7|1500]"
                            "[message|x|7|-1]") == 0,
              "log %s", r.log);
}

TEST(sse_line_endings_and_splits) {
    const char *in = "\xEF\xBB\xBF"
                     "data: a\r\n\r\ndata: b\rdata: c\r\rdata: d\n\nevent: e\r\ndata: f\r\n\r\n";
    const char *want = "[message|a||-1][message|b\nc||-1][message|d||-1][e|f||-1]";
    size_t len = strlen(in);
    for (size_t step = 0; step <= len; step++) {
        ia_status st;
        rec r = sse_run(in, len, step, 1024, &st, NULL);
        CHECK_OK(st);
        CHECK_MSG(strcmp(r.log, want) == 0, "step %zu: %s", step, r.log);
    }
    /* Every two-piece split, so that a CRLF is cut in every place. */
    for (size_t cut = 0; cut <= len; cut++) {
        rec r = {0};
        ia_sse_parser *p;
        CHECK_OK(ia_sse_parser_create(1024, on_event, &r, &p));
        CHECK_OK(ia_sse_parser_feed(p, in, cut));
        CHECK_OK(ia_sse_parser_feed(p, in + cut, len - cut));
        CHECK_OK(ia_sse_parser_finish(p, NULL));
        ia_sse_parser_destroy(p);
        CHECK_MSG(strcmp(r.log, want) == 0, "cut %zu: %s", cut, r.log);
    }
}

TEST(sse_bom_only_at_start_and_partial_bom_is_content) {
    ia_status st;
    const char *pb = "\xEF\xBB"
                     "data: z\n\n";
    rec r = sse_run(pb, strlen(pb), 1, 1024, &st, NULL);
    CHECK_OK(st);
    /* "\xEF\xBBdata" is an unknown field: ignored, no event. */
    CHECK_EQ_INT(r.n, 0);
    const char *mid = "data: 1\n\n\xEF\xBB\xBF"
                      "data: 2\n\n";
    r = sse_run(mid, strlen(mid), 0, 1024, &st, NULL);
    CHECK_EQ_INT(r.n, 1);
}

TEST(sse_truncated_and_limits) {
    bool truncated = false;
    ia_status st;
    rec r = sse_run("data: one\n\ndata: two", 20, 3, 1024, &st, &truncated);
    CHECK_OK(st);
    CHECK_EQ_INT(r.n, 1);
    CHECK(truncated);
    r = sse_run("data: one\n\n", 11, 0, 1024, &st, &truncated);
    CHECK(!truncated);
    /* An event of 100 data bytes against a 64-byte bound fails whatever the split. */
    char big[256];
    snprintf(big, sizeof big, "data: %0100d\n\n", 0);
    for (size_t step = 0; step < 8; step++) {
        r = sse_run(big, strlen(big), step, 64, &st, NULL);
        CHECK_EQ_INT(st, IA_ERANGE);
        CHECK_EQ_INT(r.n, 0);
    }
    /* Many small data lines adding up past the bound fail too. */
    char many[2048] = "";
    for (int i = 0; i < 40; i++)
        strcat(many, "data: abcd\n");
    strcat(many, "\n");
    r = sse_run(many, strlen(many), 7, 64, &st, NULL);
    CHECK_EQ_INT(st, IA_ERANGE);
    /* A callback's error stops the parser and sticks. */
    rec rr = {.stop_after = 1};
    ia_sse_parser *p;
    CHECK_OK(ia_sse_parser_create(1024, on_event, &rr, &p));
    CHECK_EQ_INT(ia_sse_parser_feed(p, "data: a\n\ndata: b\n\n", 18), IA_EINVAL);
    CHECK_EQ_INT(rr.n, 1);
    CHECK(ia_sse_parser_feed(p, "data: c\n\n", 9) != IA_OK);
    ia_sse_parser_destroy(p);
}

TEST(ndjson_lines) {
    const char *in = "{\"a\":1}\n\n{\"b\":2}\r\n{\"c\":3}";
    size_t len = strlen(in);
    for (size_t step = 0; step <= len; step++) {
        rec r = {0};
        ia_ndjson_parser *p;
        CHECK_OK(ia_ndjson_parser_create(64, on_line, &r, &p));
        for (size_t i = 0; i < len;) {
            size_t k = step && step < len - i ? step : len - i;
            CHECK_OK(ia_ndjson_parser_feed(p, in + i, k));
            i += k;
        }
        CHECK_OK(ia_ndjson_parser_finish(p));
        ia_ndjson_parser_destroy(p);
        CHECK_MSG(strcmp(r.log, "[{\"a\":1}][{\"b\":2}][{\"c\":3}]") == 0, "step %zu: %s", step,
                  r.log);
    }
}

TEST(ndjson_limit) {
    rec r = {0};
    ia_ndjson_parser *p;
    CHECK_OK(ia_ndjson_parser_create(8, on_line, &r, &p));
    CHECK_OK(ia_ndjson_parser_feed(p, "12345678\n", 9));    /* exactly the limit */
    CHECK_OK(ia_ndjson_parser_feed(p, "12345678\r\n", 10)); /* the CR does not count */
    CHECK_EQ_INT(ia_ndjson_parser_feed(p, "12345", 5), IA_OK);
    CHECK_EQ_INT(ia_ndjson_parser_feed(p, "67890", 5), IA_ERANGE);
    CHECK_EQ_INT(r.n, 2);
    ia_ndjson_parser_destroy(p);
    r = (rec){0};
    CHECK_OK(ia_ndjson_parser_create(8, on_line, &r, &p));
    CHECK_EQ_INT(ia_ndjson_parser_feed(p, "123456789\n", 10), IA_ERANGE);
    ia_ndjson_parser_destroy(p);
}
