/*
 * Incremental parsers for the two streaming wire formats remote providers
 * use: Server-Sent Events (OpenAI, Anthropic, Gemini ?alt=sse, TGI, vLLM,
 * Groq) and newline-delimited JSON (Ollama). Bytes arrive in whatever pieces
 * libcurl hands over; a parser buffers at most one event or line and calls
 * back once per complete one. Both are bounded: an event or line longer than
 * the limit given at creation fails with IA_ERANGE instead of growing memory.
 *
 * SSE follows the WHATWG EventSource rules: lines end in LF, CR or CRLF
 * (a CRLF split across two feeds counts once); "field: value" with one
 * optional space after the colon; "data" lines of one event are joined with
 * '\n'; a blank line dispatches the event (only when it has data); lines
 * starting with ':' are comments; "event" names it ("message" when absent);
 * "id" and "retry" are kept for the callback; unknown fields are ignored; a
 * leading UTF-8 BOM is skipped.
 */
#ifndef IA_BACKENDS_STREAM_H
#define IA_BACKENDS_STREAM_H

#include "ia/base.h"

/* One dispatched SSE event. Pointers are valid during the callback only;
 * data is NUL-terminated (data_len excludes the NUL). retry_ms is -1 unless
 * the event carried a valid "retry" field. */
typedef struct ia_sse_event {
    const char *event; /* "message" when the stream gave no event name */
    const char *data;
    size_t data_len;
    const char *id; /* last event id seen on the stream, "" when none */
    long retry_ms;
} ia_sse_event;

/* Return IA_OK to go on; any other status stops the parser, and feed()
 * returns that status. */
typedef ia_status (*ia_sse_event_fn)(void *ctx, const ia_sse_event *ev);
typedef ia_status (*ia_ndjson_line_fn)(void *ctx, const char *line, size_t len);

typedef struct ia_sse_parser ia_sse_parser;
typedef struct ia_ndjson_parser ia_ndjson_parser;

/* A parser that buffers at most max_event_bytes of one event. Owned by the
 * caller; free with ia_sse_parser_destroy. */
ia_status ia_sse_parser_create(size_t max_event_bytes, ia_sse_event_fn fn, void *ctx,
                               ia_sse_parser **out);
/* Parses n more bytes; IA_ERANGE when an event outgrows the limit, or the
 * callback's status. After a failure the parser refuses further input. */
ia_status ia_sse_parser_feed(ia_sse_parser *p, const char *buf, size_t n);
/* End of stream: a final event not closed by a blank line is discarded, as
 * EventSource does; *truncated (may be NULL) says whether one was. */
ia_status ia_sse_parser_finish(ia_sse_parser *p, bool *truncated);
void ia_sse_parser_destroy(ia_sse_parser *p);

/* NDJSON: one callback per non-empty line (a trailing '\r' dropped); lines
 * longer than max_line_bytes fail with IA_ERANGE. */
ia_status ia_ndjson_parser_create(size_t max_line_bytes, ia_ndjson_line_fn fn, void *ctx,
                                  ia_ndjson_parser **out);
ia_status ia_ndjson_parser_feed(ia_ndjson_parser *p, const char *buf, size_t n);
/* End of stream: a last line without '\n' is delivered. */
ia_status ia_ndjson_parser_finish(ia_ndjson_parser *p);
void ia_ndjson_parser_destroy(ia_ndjson_parser *p);

#endif /* IA_BACKENDS_STREAM_H */
