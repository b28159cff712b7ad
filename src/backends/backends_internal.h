/*
 * Private pieces of the backends module shared by the HTTP transport
 * (http.c), the provider adapters (provider_*.c), the client (client.c) and
 * the tests and fuzz targets: one HTTP request/response model over libcurl,
 * the classification of an HTTP result into a resilience outcome, and the
 * table of provider adapters.
 */
#ifndef IA_BACKENDS_INTERNAL_H
#define IA_BACKENDS_INTERNAL_H

#include <time.h>

#include "ia/backends.h"
#include "resilience.h"
#include "stream.h"

/* ---- HTTP transport (http.c) ------------------------------------------------------- */

/* Why a transfer did not produce a complete HTTP response. */
typedef enum ia_http_fail {
    IA_HTTP_FAIL_NONE = 0,
    IA_HTTP_FAIL_CONNECT,            /* refused, unresolvable */
    IA_HTTP_FAIL_CONNECT_TIMEOUT,    /* no connection within connect_ms */
    IA_HTTP_FAIL_FIRST_BYTE_TIMEOUT, /* connected, no response head within first_byte_ms */
    IA_HTTP_FAIL_STALL,              /* the body stopped arriving */
    IA_HTTP_FAIL_TOTAL_TIMEOUT,      /* the whole call outlived total_ms */
    IA_HTTP_FAIL_RESET,              /* connection reset or body cut short */
    IA_HTTP_FAIL_TOO_BIG,            /* body past max_body */
    IA_HTTP_FAIL_ABORTED,            /* the sink stopped the transfer */
    IA_HTTP_FAIL_OTHER,
} ia_http_fail;

const char *ia_http_fail_str(ia_http_fail f);

/* Receives the body of a 2xx response as it arrives (streaming). Any status
 * but IA_OK stops the transfer (IA_HTTP_FAIL_ABORTED, sink_status keeps it). */
typedef ia_status (*ia_http_sink_fn)(void *ctx, const char *data, size_t n);

typedef struct ia_http_request {
    const char *method; /* "GET" or "POST" */
    const char *url;
    const char *const *headers; /* "Name: value" lines */
    size_t n_headers;
    const char *body; /* POST body or NULL */
    size_t body_len;
    long connect_ms, first_byte_ms, total_ms; /* 0: no limit of that kind */
    size_t max_body;                          /* 0: 64 MiB */
    ia_http_sink_fn sink;                     /* NULL: keep the body */
    void *sink_ctx;
} ia_http_request;

typedef struct ia_http_response {
    long status; /* 0 when no response head arrived */
    char *body;  /* kept body, NUL-terminated (non-2xx bodies always kept, up to 64 KiB) */
    size_t body_len;
    size_t bytes_received;
    long retry_after_ms; /* from Retry-After (seconds or HTTP-date) or retry-after-ms; -1 */
    int should_retry;    /* x-should-retry: 1 true, 0 false, -1 absent */
    ia_http_fail fail;
    ia_status sink_status;
    char error[256]; /* transport failure in words ("" when fail is NONE) */
    double latency_ms;
    double first_byte_ms; /* -1 when none */
} ia_http_response;

/* Performs one request. Returns IA_OK when a complete response arrived
 * (whatever its status) and IA_EIO otherwise, with resp->fail and
 * resp->error saying why; the caller frees resp with ia_http_response_free
 * in both cases. */
ia_status ia_http_perform(const ia_http_request *req, ia_http_response *resp);
void ia_http_response_free(ia_http_response *resp);

/* Retry-After's value in ms: delta-seconds or an HTTP-date relative to
 * `now`; -1 when unparseable. */
long ia_http_parse_retry_after(const char *value, time_t now);

/* ---- outcome classification --------------------------------------------------------- */

/* Classifies a finished HTTP exchange (status, x-should-retry, transport
 * failure, the error body for spend-limit wording). */
ia_call_class ia_api_classify(const ia_http_response *resp);

/* The provider's error text from an error body ("error": {"message": ...},
 * "error": "...", "detail", "message"), or the body's start; written to buf. */
void ia_api_error_text(const char *body, size_t len, char *buf, size_t n);

/* ---- provider adapters (provider_*.c) ------------------------------------------------- */

/* How a streamed body is framed. */
typedef enum ia_api_stream_kind {
    IA_API_STREAM_NONE = 0,
    IA_API_STREAM_SSE,
    IA_API_STREAM_NDJSON,
} ia_api_stream_kind;

/* One HTTP call an adapter built; owned strings, freed by ia_api_http_call_free. */
#define IA_API_MAX_HEADERS 8
typedef struct ia_api_http_call {
    const char *method;
    char *url;
    char *headers[IA_API_MAX_HEADERS];
    size_t n_headers;
    char *body;
    size_t body_len;
    ia_api_stream_kind stream; /* NONE unless the request streams */
} ia_api_http_call;

void ia_api_http_call_free(ia_api_http_call *hc);
/* Adds a "Name: value" header (printf-style). */
ia_status ia_api_http_call_header(ia_api_http_call *hc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* What a streaming parse accumulates: the text so far, deltas handed to the
 * caller's callback, and whether the provider's end marker was seen. */
typedef struct ia_api_stream_state {
    ia_api_result *res;
    ia_api_delta_fn on_delta;
    void *delta_ctx;
    char *text;
    size_t text_len, text_cap;
    size_t deltas;    /* deltas delivered so far */
    bool done;        /* the end marker ([DONE], message_stop, "done": true, ...) */
    bool stopped;     /* the callback asked to stop */
    char error[256];  /* an error event inside the stream */
    int error_status; /* the HTTP-like status the error event implies (529, 500, ...) */
} ia_api_stream_state;

/* Appends a delta to the stream text and hands it to the callback. */
ia_status ia_api_stream_delta(ia_api_stream_state *s, const char *text, size_t len);

typedef struct ia_api_adapter {
    ia_api_provider provider;
    bool needs_key;
    const char *probe_path; /* GET relative to base_url, for `api check` */
    /* Builds the HTTP call for req (model already chosen, key may be NULL
     * when the provider needs none). Refuses what the provider does not
     * support (IA_EUNSUPPORTED, naming the parameter). */
    ia_status (*build)(const ia_api_endpoint_config *ep, const ia_api_request *req,
                       const char *model, const char *key, ia_api_http_call *out);
    /* Parses a whole (non-streamed) 2xx body into out. */
    ia_status (*parse)(ia_api_op op, const char *body, size_t len, ia_api_result *out);
    /* Optional: the same for a provider whose answer depends on the endpoint's
     * configuration (OVMS: /v3 or KServe v2); used instead of parse when set. */
    ia_status (*parse_for)(const ia_api_endpoint_config *ep, ia_api_op op, const char *body,
                           size_t len, ia_api_result *out);
    /* One streamed event (SSE: event name and data; NDJSON: event NULL). */
    ia_status (*stream_event)(ia_api_stream_state *s, const char *event, const char *data,
                              size_t len);
} ia_api_adapter;

/* The adapter for a provider, or NULL when none is compiled in. */
const ia_api_adapter *ia_api_adapter_get(ia_api_provider p);

extern const ia_api_adapter ia_api_adapter_openai, ia_api_adapter_groq, ia_api_adapter_vllm,
    ia_api_adapter_ollama, ia_api_adapter_tei, ia_api_adapter_anthropic, ia_api_adapter_gemini,
    ia_api_adapter_tgi, ia_api_adapter_ovms, ia_api_adapter_opea;

/* The OpenAI wire format (provider_openai.c), reused by OVMS and OPEA:
 * paths are base_url + prefix + "/chat/completions" etc.; rerank says
 * whether /rerank exists; stream_usage asks for usage in the last chunk. */
ia_status ia_openai_build(const ia_api_endpoint_config *ep, const ia_api_request *req,
                          const char *model, const char *key, const char *prefix, bool rerank,
                          bool stream_usage, ia_api_http_call *out);
ia_status ia_openai_parse(ia_api_op op, const char *body, size_t len, ia_api_result *out);
ia_status ia_openai_stream_event(ia_api_stream_state *s, const char *event, const char *data,
                                 size_t len);

/* KServe v2 inference answers (provider_ovms.c): reads the output tensor
 * named `output` (NULL: the first numeric one for embed, the first BYTES one
 * otherwise) into out: embed as shape[0] rows (one row for a 1-D shape),
 * chat/complete as the first string. Checks datatype, shape against data
 * (nested data flattened, at most 2^28 values) and every value. */
ia_status ia_kserve_parse(ia_api_op op, const char *output, const char *body, size_t len,
                          ia_api_result *out);

/* ---- helpers the adapters share (provider_common.c) ------------------------------------ */

struct json_t;
/* Parses a provider's JSON body: errors say "malformed JSON from the provider". */
ia_status ia_api_json_body(const char *body, size_t len, struct json_t **out);
/* Serialises a JSON object into hc->body (steals the reference). */
ia_status ia_api_json_set_body(ia_api_http_call *hc, struct json_t *obj);
/* Makes hc a POST of body (a JSON object, stolen) to hc->url (set by the
 * caller with ia_api_url; NULL is out of memory), sending key as the header
 * auth_prefix + key ("Authorization: Bearer ") when key is given. */
ia_status ia_api_post_json(ia_api_http_call *hc, struct json_t *body, const char *auth_prefix,
                           const char *key);
/* base_url + path (printf-style) into a malloc'd string. */
char *ia_api_url(const ia_api_endpoint_config *ep, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Copies a JSON array of numbers as one embedding row into out (checks dim). */
ia_status ia_api_take_embeddings(struct json_t *rows, const char *field, ia_api_result *out);
/* A JSON list of {"index", score_field} into out->ranks, best first; indices
 * must be below n_texts (when non-zero). */
ia_status ia_api_take_ranks(struct json_t *arr, const char *score_field, size_t n_texts,
                            ia_api_result *out);
ia_status ia_api_set_text(ia_api_result *out, const char *text);
/* A chat request's conversation as [{role, content}]: req->system first when
 * set and keep_system, then req->messages (system turns left out unless
 * keep_system) or, without messages, texts[0] as the one user turn. NULL is
 * out of memory. */
struct json_t *ia_api_chat_messages(const ia_api_request *req, bool keep_system);
/* n strings as a JSON array (stop sequences); NULL is out of memory. */
struct json_t *ia_api_string_array(const char *const *s, size_t n);
/* req->system and the conversation's system turns joined by blank lines
 * (malloc'd), for providers that take the system prompt apart; NULL when
 * there is none (or out of memory). */
char *ia_api_chat_system(const ia_api_request *req);

#endif /* IA_BACKENDS_INTERNAL_H */
