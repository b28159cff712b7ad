/*
 * A fake remote provider for the backends tests: one libmicrohttpd server
 * on 127.0.0.1 (port chosen by the kernel) that speaks the wire formats the
 * adapters use, checks that requests carry the real field names and
 * headers (answering 400 with what is missing otherwise), and injects faults
 * queued by the test.
 *
 * Paths (prefix the base URL as the adapters' configs do):
 *   OpenAI format  /v1/..., /openai/v1/... (Groq), /v3/... (OVMS):
 *                  chat/completions, completions, embeddings, rerank, GET models
 *   Anthropic      /v1/messages (x-api-key, anthropic-version), GET /v1/models
 *   Gemini         /v1beta/models/M:generateContent, :streamGenerateContent?alt=sse,
 *                  :batchEmbedContents (x-goog-api-key), GET /v1beta/models
 *   Ollama         /api/chat, /api/generate, /api/embed (NDJSON streams), GET /api/tags
 *   TGI            /generate, /generate_stream, GET /info (shared with TEI)
 *   TEI            /embed, /rerank
 *   OVMS           GET /v2/health/ready; KServe v2 POST /v2/models/M/infer (one BYTES
 *                  input "text", or "query" for a model named *query*; M named *embed*
 *                  answers FP32 "embeddings" [N, 4], any other BYTES "text_output")
 *   OPEA           /v1/chatqna, GET /v1/health_check
 * Chat and complete answer "echo: " + the user's text; streams send it word
 * by word, FAKE_STREAM_GAP_MS apart. Embeddings of text t are [strlen(t),
 * first byte, 0.5, 1]; rerank scores are 1 / (1 + |len(text) - len(query)|).
 * When a key is set (fake_provider_set_key), a request without it gets 401.
 */
#ifndef IA_TEST_FAKE_PROVIDER_H
#define IA_TEST_FAKE_PROVIDER_H

#include <stddef.h>

#define FAKE_STREAM_GAP_MS 30

typedef struct fake_provider fake_provider;

/* Faults apply to the next request each (queued in order). */
typedef enum fake_fault_kind {
    FAKE_STATUS,           /* answer arg (429, 500, 502, 503, 529, 401, ...) with an error body */
    FAKE_RETRY_AFTER,      /* 429 with Retry-After: arg seconds */
    FAKE_RETRY_AFTER_MS,   /* 429 with retry-after-ms: arg */
    FAKE_RETRY_AFTER_DATE, /* 429 with Retry-After as an HTTP-date arg seconds ahead */
    FAKE_SPEND_LIMIT,      /* 429 insufficient_quota */
    FAKE_NO_RETRY,         /* 503 with x-should-retry: false */
    FAKE_SLOW,             /* wait arg ms before the response head */
    FAKE_RESET,            /* send arg bytes of a chunked body, then drop the connection */
    FAKE_TRUNCATE,         /* a stream that ends cleanly without its end marker */
    FAKE_MALFORMED,        /* 200 with a body that is not JSON */
    FAKE_ENDLESS,          /* a stream that never ends */
    FAKE_HUGE,             /* 200 with a JSON body of arg bytes */
    FAKE_STREAM_ERROR,     /* a stream that sends one delta, then the provider's error event
                              (Anthropic overloaded_error, OpenAI/Ollama/TGI error object) */
} fake_fault_kind;

fake_provider *fake_provider_start(void);
void fake_provider_stop(fake_provider *f);
/* "http://127.0.0.1:PORT" */
const char *fake_provider_url(const fake_provider *f);
void fake_provider_set_key(fake_provider *f, const char *key);
void fake_provider_fault(fake_provider *f, fake_fault_kind kind, long arg);
/* The same, for the next request to `path` only (e.g. "/api/chat"). */
void fake_provider_fault_on(fake_provider *f, const char *path, fake_fault_kind kind, long arg);
/* Drops queued faults and counters. */
void fake_provider_reset(fake_provider *f);
/* Requests seen (all paths). */
int fake_provider_requests(fake_provider *f);
/* The key (bearer token, x-api-key or x-goog-api-key) request i carried, "" when none. */
void fake_provider_key_of(fake_provider *f, int i, char *buf, size_t n);
/* The body and path of the last request (copied into buf). */
void fake_provider_last_body(fake_provider *f, char *buf, size_t n);
void fake_provider_last_path(fake_provider *f, char *buf, size_t n);
/* Requests whose connection is still being answered (an endless stream ends when the client hangs
 * up). */
int fake_provider_active(fake_provider *f);

#endif /* IA_TEST_FAKE_PROVIDER_H */
