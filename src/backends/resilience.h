/*
 * The resilience layer every remote-provider adapter goes through, written
 * once: a bounded priority queue with a concurrency limit per endpoint,
 * retries with exponential backoff and full jitter, a circuit breaker per
 * endpoint, several API keys per endpoint (round-robin, least-loaded or
 * pinned, with a cooldown after 429), fallbacks to other endpoints, a
 * whole-call deadline, request batching for embedding endpoints, and
 * statistics per endpoint and key as JSON and Prometheus text.
 *
 * It knows nothing about HTTP or any provider. A caller hands it a *call*: a
 * callback that performs one attempt against a named endpoint with the key
 * the layer chose and reports how the attempt went (ok, retryable,
 * rate-limited, fatal, cancelled). The adapter classifies HTTP statuses and
 * parses Retry-After / retry-after-ms / x-should-retry; the layer decides
 * whether, when, where and with which key to try again.
 *
 * Calls are synchronous: ia_resilience_submit blocks the calling thread and
 * runs every attempt's callback on that thread. Any number of threads may
 * submit at once. Endpoints and keys are known by their names and key ids
 * (for example the environment variable holding the secret): secrets never
 * reach this layer, so they cannot appear in its errors or statistics.
 *
 * Time comes from a clock the creator may inject (milliseconds, monotonic),
 * together with the sleep used for backoff and key cooldowns, so that tests
 * can run minutes of breaker and cooldown time in a few milliseconds.
 *
 * Locking: each endpoint has one mutex guarding its queue, breaker, keys and
 * counters; the handle's mutex guards the endpoint table and the RNG.
 * Callbacks run with no lock held.
 */
#ifndef IA_BACKENDS_RESILIENCE_H
#define IA_BACKENDS_RESILIENCE_H

#include "ia/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- policies and endpoint configuration --------------------------------- */

typedef enum ia_priority {
    IA_PRIORITY_HIGH = 0,
    IA_PRIORITY_NORMAL,
    IA_PRIORITY_LOW,
    IA_PRIORITY_COUNT
} ia_priority;

typedef enum ia_key_policy {
    IA_KEYS_ROUND_ROBIN = 0, /* next key in turn, skipping keys cooling down */
    IA_KEYS_LEAST_LOADED,    /* fewest attempts in flight; ties taken in turn */
    IA_KEYS_PINNED,          /* always pinned_key; waits out its cooldown */
} ia_key_policy;

/* Retries. Attempt n (n >= 2) waits backoff(n) before it starts:
 * cap = min(max_backoff_ms, base_backoff_ms * 2^(n-2)); with full_jitter a
 * uniform draw from [0, cap], else cap. When the failed attempt carried
 * retry_after_ms, the wait is max(backoff, min(retry_after_ms,
 * max_retry_after_ms)). A 429 on one key retries at once on another key that
 * is not cooling down. */
typedef struct ia_retry_policy {
    int max_attempts;       /* per endpoint, the first attempt included; >= 1 */
    int base_backoff_ms;    /* >= 0 */
    int max_backoff_ms;     /* >= base_backoff_ms */
    bool full_jitter;       /* AWS "full jitter"; off gives plain exponential backoff */
    int max_retry_after_ms; /* a server's Retry-After is honoured up to this */
} ia_retry_policy;

/* Circuit breaker. The sliding window holds the outcomes of the last
 * window_calls attempts, of which those older than window_ms (0: no age
 * limit) are dropped. Failures are retryable outcomes and any attempt but a
 * cancelled one that took longer than slow_call_ms (0: off); successes are
 * ok outcomes within that time; rate-limited, fatal and cancelled attempts
 * are not the endpoint's fault and do not enter the window.
 * Closed -> open when the window holds at least min_calls and failures /
 * calls >= failure_rate. Open rejects at once for open_ms, then half-open
 * admits at most half_open_probes attempts: a successful probe closes the
 * breaker (and empties the window), a failed one opens it again. */
typedef struct ia_breaker_policy {
    int window_calls;     /* 1..4096 */
    int window_ms;        /* 0: count-based only */
    int min_calls;        /* >= 1 */
    double failure_rate;  /* in (0, 1] */
    int open_ms;          /* >= 0 */
    int half_open_probes; /* >= 1 */
    int slow_call_ms;     /* 0: off */
    bool disabled;        /* never opens */
} ia_breaker_policy;

/* Passed through to each attempt (the layer cannot interrupt a callback):
 * the adapter applies connect and first-byte timeouts itself and bounds the
 * whole attempt by ia_call_attempt.timeout_ms. total_ms is the default
 * whole-call deadline of a submit, queue wait and retries included. */
typedef struct ia_timeouts {
    int connect_ms;    /* 0: none */
    int first_byte_ms; /* 0: none */
    int total_ms;      /* 0: none */
} ia_timeouts;

/* Embedding batching (ia_batcher): a batch closes at max_items or max_wait_ms
 * after its first item, whichever comes first. */
typedef struct ia_batch_policy {
    int max_items;   /* >= 1; 1 turns batching off */
    int max_wait_ms; /* >= 0 */
} ia_batch_policy;

/* One endpoint. Strings and arrays are copied by ia_resilience_add_endpoint;
 * the caller keeps ownership of its own. Start from
 * ia_resilience_endpoint_defaults and change what differs. */
typedef struct ia_endpoint_config {
    const char *name;    /* unique within the handle; used in errors and stats */
    int max_concurrency; /* attempts in flight at once, >= 1 */
    int queue_capacity;  /* requests waiting for a slot, >= 0; more fail fast */
    ia_retry_policy retry;
    ia_breaker_policy breaker;
    /* Keys by id (an environment variable name, "key-2", ...; never the
     * secret). n_keys == 0: the endpoint needs no key (attempts get key_index
     * -1) and a 429 cools down the whole endpoint instead. */
    const char *const *key_ids;
    size_t n_keys;
    ia_key_policy key_policy;
    int pinned_key;      /* index into key_ids for IA_KEYS_PINNED */
    int key_cooldown_ms; /* after a 429 without retry_after_ms */
    ia_timeouts timeouts;
    ia_batch_policy batch;
    void *user; /* handed to every attempt (the adapter's endpoint object); not owned */
} ia_endpoint_config;

/* Fills *cfg with the defaults (name NULL, no keys): concurrency 8, queue
 * 256, 3 attempts with 500 ms base and 30 s max backoff, full jitter,
 * Retry-After honoured up to 60 s; breaker over the last 20 calls within
 * 60 s, at least 10 calls, 50 % failures, open 30 s, 1 probe, no slow-call
 * limit; round-robin keys, 60 s cooldown; timeouts 10 s connect, 60 s first
 * byte, 10 min total; batches of 32 items or 10 ms. */
void ia_resilience_endpoint_defaults(ia_endpoint_config *cfg);

/* ---- attempts and their outcomes ------------------------------------------ */

typedef enum ia_call_class {
    IA_CALL_OK = 0,       /* served */
    IA_CALL_RETRYABLE,    /* 5xx, 529, timeout, connection reset, truncated stream */
    IA_CALL_RATE_LIMITED, /* 429: cools the key down, then retries */
    IA_CALL_FATAL,        /* 400/401/403/404, spend limit, bad request: never retried */
    IA_CALL_CANCELLED,    /* the caller gave up: never retried, no fallback */
    IA_CALL_CLASS_COUNT
} ia_call_class;

/* What one attempt learns from the layer. Valid during the callback only. */
typedef struct ia_call_attempt {
    const char *endpoint; /* the endpoint this attempt goes to (a fallback's name on a fallback) */
    void *endpoint_user;  /* that endpoint's config.user */
    int attempt;          /* 1-based, per endpoint */
    int attempt_total;    /* 1-based, across endpoints */
    int key_index;        /* index into that endpoint's key_ids; -1 when it has none */
    const char *key_id;   /* "" when it has none */
    bool probe;           /* a half-open breaker probe */
    int connect_timeout_ms;
    int first_byte_timeout_ms;
    int timeout_ms; /* the whole attempt: time left to the deadline (0: unbounded) */
} ia_call_attempt;

/* What the callback reports. The layer zeroes it and sets retry_after_ms and
 * should_retry to -1 before each attempt. */
typedef struct ia_call_outcome {
    ia_call_class cls;
    int http_status;     /* 0 when there was no HTTP response */
    long retry_after_ms; /* -1: none; from Retry-After (seconds or HTTP-date) or retry-after-ms */
    int should_retry;    /* x-should-retry: -1 absent, 0 false (stop retrying), 1 true.
                          * The class decides retries: an adapter that honours
                          * "true" on, say, a 409 reports IA_CALL_RETRYABLE. */
    double latency_ms;   /* set by the layer from its clock */
    uint64_t tokens_in, tokens_out;
    char message[192]; /* short, human, never containing a secret */
} ia_call_outcome;

/* Performs one attempt and fills *out. Runs on the submitting thread with no
 * lock held; must bound itself by attempt->timeout_ms. It may submit again
 * (a nested request needs a free slot of its own). */
typedef void (*ia_call_fn)(void *ctx, const ia_call_attempt *attempt, ia_call_outcome *out);

/* How a submitted request ended (exactly one per submit of a known endpoint).
 * A non-fatal end on one endpoint moves on to its next fallback; the end
 * reported is the one on the last endpoint tried (served_by), and the error
 * message tells every endpoint's part. */
typedef enum ia_call_end {
    IA_END_OK = 0,       /* an attempt succeeded (on served_by) */
    IA_END_FATAL,        /* a fatal outcome; no retry, no fallback */
    IA_END_CANCELLED,    /* the callback reported cancelled */
    IA_END_EXHAUSTED,    /* retries used up (or x-should-retry: false) */
    IA_END_DEADLINE,     /* the deadline passed: queued, backing off or keys cooling */
    IA_END_QUEUE_FULL,   /* the queue was full: refused at once */
    IA_END_BREAKER_OPEN, /* the circuit breaker was open (or out of probes) */
    IA_END_COUNT
} ia_call_end;

typedef struct ia_call_result {
    ia_call_end end;
    ia_call_outcome outcome; /* the last attempt's (all zero, cls OK, when attempts == 0) */
    const char *served_by;   /* the endpoint where it ended; owned by the handle */
    int key_index;           /* of the last attempt; -1 when none */
    int attempts;            /* call_fn invocations, all endpoints */
    int fallbacks;           /* endpoints moved on to after the first */
    double queue_wait_ms;    /* summed over every slot acquisition */
    double total_ms;         /* submit to return */
} ia_call_result;

/* ---- the handle ------------------------------------------------------------------ */

typedef struct ia_resilience ia_resilience;

/* Injected time. now_ms: monotonic milliseconds. sleep_ms: waits that long
 * (backoff, key cooldowns); it should advance now_ms by as much. Queue waits
 * use condition variables and wait the remaining time as measured on now_ms. */
typedef double (*ia_clock_now_fn)(void *ctx);
typedef void (*ia_clock_sleep_fn)(void *ctx, double ms);

typedef struct ia_resilience_options {
    uint64_t seed;              /* jitter RNG; 0 picks a fixed default */
    ia_clock_now_fn now_ms;     /* NULL: CLOCK_MONOTONIC */
    ia_clock_sleep_fn sleep_ms; /* NULL: nanosleep */
    void *clock_ctx;
} ia_resilience_options;

/* opts may be NULL (defaults). The caller owns *out (ia_resilience_destroy). */
ia_status ia_resilience_create(const ia_resilience_options *opts, ia_resilience **out);
/* Frees the handle and everything it copied. No submit may be in progress. */
void ia_resilience_destroy(ia_resilience *r);

/* Registers an endpoint (copied). IA_EINVAL for a bad value (the message
 * names the endpoint and the field), or a name already registered. */
ia_status ia_resilience_add_endpoint(ia_resilience *r, const ia_endpoint_config *cfg);

/* Sets endpoint's ordered fallback list (replacing any earlier one). Every
 * name must be registered; the endpoint itself and repeats are refused. Not
 * transitive: a fallback's own fallbacks are not followed. */
ia_status ia_resilience_set_fallbacks(ia_resilience *r, const char *endpoint,
                                      const char *const *fallbacks, size_t n);

/* Runs one request: admission through the endpoint's breaker and queue, key
 * choice, attempts with retries, then each fallback in order while the
 * failure is non-fatal. timeout_ms bounds the whole request, queue wait
 * included: > 0 that many ms, 0 the endpoint's timeouts.total_ms, < 0 none.
 * Fills *res (never NULL) and returns IA_OK when it ended IA_END_OK;
 * IA_ENOTFOUND for an unknown endpoint (nothing counted); IA_ERANGE "queue
 * full" when it ended IA_END_QUEUE_FULL; IA_EIO otherwise. The message names
 * the endpoint(s) and why. */
ia_status ia_resilience_submit(ia_resilience *r, const char *endpoint, ia_priority priority,
                               ia_call_fn fn, void *ctx, int timeout_ms, ia_call_result *res);

/* ---- batching (embeddings) ----------------------------------------------------- */

/* Items submitted one by one are combined into one call: the first item of a
 * batch waits up to the endpoint's batch.max_wait_ms for more (or until
 * batch.max_items), then its thread runs combine, submits the combined call
 * through the layer (highest priority and earliest deadline among the
 * items), and on success split hands each item its part, in submission
 * order. Every item's submit returns the batch's result. */
typedef struct ia_batch_ops {
    /* Builds the combined request from items[0..n) (in order) into *batch. */
    ia_status (*combine)(void *ctx, void *const *items, size_t n, void **batch);
    /* One attempt of the combined request (ctx is the batch). */
    ia_call_fn call;
    /* After IA_END_OK: gives items[i] its result (into memory the item owns).
     * A failure fails every item of the batch. */
    ia_status (*split)(void *ctx, void *batch, void *const *items, size_t n);
    /* Frees what combine made; called once per combined batch. */
    void (*release)(void *ctx, void *batch);
} ia_batch_ops;

typedef struct ia_batcher ia_batcher;

/* A batcher for one registered endpoint; ops are copied, ctx is borrowed.
 * The caller owns *out (ia_batcher_destroy, after every submit returned). */
ia_status ia_batcher_create(ia_resilience *r, const char *endpoint, const ia_batch_ops *ops,
                            void *ctx, ia_batcher **out);
void ia_batcher_destroy(ia_batcher *b);
/* Adds one item and blocks until its batch ended; returns and fills *res as
 * ia_resilience_submit does for the batch (res->attempts etc. are the
 * batch's), or the status of combine/split when those failed. */
ia_status ia_batcher_submit(ia_batcher *b, void *item, ia_priority priority, int timeout_ms,
                            ia_call_result *res);

/* ---- statistics --------------------------------------------------------------------- */

typedef enum ia_breaker_state {
    IA_BREAKER_CLOSED = 0,
    IA_BREAKER_OPEN,
    IA_BREAKER_HALF_OPEN
} ia_breaker_state;

/* From a log-spaced histogram (buckets 2^(1/8) apart: values within 9 %). */
typedef struct ia_latency_summary {
    uint64_t count;
    double mean_ms, p50_ms, p90_ms, p99_ms, max_ms;
} ia_latency_summary;

typedef struct ia_key_stats {
    const char *id; /* owned by the handle */
    uint64_t attempts;
    uint64_t by_class[IA_CALL_CLASS_COUNT];
    uint64_t cooldowns; /* times it was cooled down after a 429 */
    int in_flight;
    bool cooling;
    uint64_t tokens_in, tokens_out;
} ia_key_stats;

/* Every count is since the handle was created. Sums that hold: requests over
 * all endpoints = sum of by_end over all endpoints = accepted submits;
 * attempts = sum of by_class = sum over keys of their attempts. */
typedef struct ia_endpoint_stats {
    uint64_t requests;     /* submits addressed to this endpoint first */
    uint64_t fallback_in;  /* requests that arrived as a fallback */
    uint64_t fallback_out; /* requests that left for a fallback */
    uint64_t attempts, retries;
    uint64_t by_class[IA_CALL_CLASS_COUNT]; /* attempt outcomes */
    uint64_t by_end[IA_END_COUNT];          /* requests that ended here */
    uint64_t rejected_queue_full, rejected_breaker_open;
    uint64_t breaker_trips; /* closed or half-open -> open */
    ia_breaker_state breaker_state;
    int in_flight, queued;
    ia_latency_summary latency;    /* per attempt */
    ia_latency_summary queue_wait; /* per slot acquisition */
    uint64_t tokens_in, tokens_out;
    size_t n_keys;
} ia_endpoint_stats;

ia_status ia_resilience_endpoint_stats(ia_resilience *r, const char *endpoint,
                                       ia_endpoint_stats *out);
ia_status ia_resilience_key_stats(ia_resilience *r, const char *endpoint, size_t key,
                                  ia_key_stats *out);
ia_breaker_state ia_resilience_breaker_state(ia_resilience *r, const char *endpoint);

/* {"endpoints": [{"name", "requests", ..., "breaker": {...}, "latency_ms": {...},
 * "keys": [{"id", ...}]}]}. The caller owns *out (json_decref). */
ia_status ia_resilience_stats_json(ia_resilience *r, struct json_t **out);
/* Prometheus text exposition (metric names ia_api_*, labels endpoint="..."
 * and key="<key id>"). The caller frees *out. */
ia_status ia_resilience_stats_prometheus(ia_resilience *r, char **out, size_t *len);

/* Stable lower-case names: "ok", "retryable", "rate_limited", "fatal",
 * "cancelled"; "ok", "fatal", ..., "breaker_open"; "closed", "open",
 * "half_open"; "high", "normal", "low". */
const char *ia_call_class_name(ia_call_class c);
const char *ia_call_end_name(ia_call_end e);
const char *ia_breaker_state_name(ia_breaker_state s);
const char *ia_priority_name(ia_priority p);
/* Parses "high", "normal", "low". */
ia_status ia_priority_parse(const char *s, ia_priority *out);
/* "round_robin", "least_loaded", "pinned" (and back). */
const char *ia_key_policy_name(ia_key_policy p);
ia_status ia_key_policy_parse(const char *s, ia_key_policy *out);

#ifdef __cplusplus
}
#endif

#endif /* IA_BACKENDS_RESILIENCE_H */
