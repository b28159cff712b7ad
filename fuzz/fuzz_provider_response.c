/*
 * libFuzzer target for every provider adapter's response parsers: what a
 * remote server sends is untrusted. The first byte picks the provider
 * (mod 10), the second the operation (mod 4) and whether the body is parsed
 * whole or streamed through the SSE / NDJSON parser into the adapter's
 * event handler. Checks on success: chat/complete have text; embeddings
 * are n x dim with a buffer; ranks are sorted best first; a stream's text
 * is the concatenation of its deltas.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/backends/backends_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct feed {
    const ia_api_adapter *ad;
    ia_api_stream_state *s;
} feed;

static ia_status on_event(void *ctx, const ia_sse_event *ev) {
    feed *f = ctx;
    return f->ad->stream_event(f->s, ev->event, ev->data, ev->data_len);
}

static ia_status on_line(void *ctx, const char *line, size_t n) {
    feed *f = ctx;
    return f->ad->stream_event(f->s, NULL, line, n);
}

static bool count_delta(void *ctx, const char *t, size_t n) {
    size_t *total = ctx;
    *total += n;
    return true;
}

static void check_result(ia_api_op op, const ia_api_result *r) {
    if ((op == IA_API_CHAT || op == IA_API_COMPLETE) && !r->text)
        abort();
    if (op == IA_API_EMBED && (r->n_embeddings == 0 || r->dim == 0 || !r->embeddings))
        abort();
    for (size_t i = 1; i < r->n_ranks; i++)
        if (r->ranks[i - 1].score < r->ranks[i].score)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2 || size > 1 << 20)
        return 0;
    const ia_api_adapter *ad =
        ia_api_adapter_get((ia_api_provider)(data[0] % IA_API_PROVIDER_COUNT));
    ia_api_op op = (ia_api_op)(data[1] % 4);
    bool stream =
        (data[1] & 0x80) && ad->stream_event && (op == IA_API_CHAT || op == IA_API_COMPLETE);
    const char *body = (const char *)data + 2;
    size_t n = size - 2;
    ia_api_result res = {.tokens_in = -1, .tokens_out = -1};
    if (!stream) {
        if (ad->parse(op, body, n, &res) == IA_OK)
            check_result(op, &res);
        ia_api_result_free(&res);
        return 0;
    }
    size_t total = 0;
    ia_api_stream_state s = {.res = &res, .on_delta = count_delta, .delta_ctx = &total};
    feed f = {ad, &s};
    ia_status st;
    bool ndjson = ad->provider == IA_API_PROVIDER_OLLAMA;
    if (ndjson) {
        ia_ndjson_parser *p;
        st = ia_ndjson_parser_create(1 << 16, on_line, &f, &p);
        if (st == IA_OK) {
            st = ia_ndjson_parser_feed(p, body, n);
            if (st == IA_OK)
                st = ia_ndjson_parser_finish(p);
            ia_ndjson_parser_destroy(p);
        }
    } else {
        ia_sse_parser *p;
        st = ia_sse_parser_create(1 << 16, on_event, &f, &p);
        if (st == IA_OK) {
            st = ia_sse_parser_feed(p, body, n);
            if (st == IA_OK)
                st = ia_sse_parser_finish(p, NULL);
            ia_sse_parser_destroy(p);
        }
    }
    if (s.text_len != total || (s.text && strlen(s.text) > s.text_len))
        abort();
    (void)st;
    free(s.text);
    ia_api_result_free(&res);
    return 0;
}
