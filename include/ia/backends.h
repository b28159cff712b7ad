/*
 * backends: remote inference providers behind one client.
 *
 * A YAML file declares endpoints (provider, base URL, models, API keys by
 * environment variable or 0600 file, limits, retries, breaker, timeouts,
 * fallbacks); ia_api_client turns it into HTTP calls over libcurl, one
 * request model for every provider: chat, complete, embed and rerank, with
 * streaming deltas through a callback. Every call goes through the shared
 * resilience layer (queue, retries, breaker, key selection, statistics).
 *
 * Secrets: keys are read once when the client is created and live only in
 * the client; they never appear in logs, error messages or statistics (key
 * statistics name the environment variable or the key's position).
 */
#ifndef IA_BACKENDS_H
#define IA_BACKENDS_H

#include "ia/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- endpoints configuration --------------------------------------------------- */

typedef enum ia_api_provider {
    IA_API_PROVIDER_OPENAI = 0,
    IA_API_PROVIDER_GROQ,
    IA_API_PROVIDER_VLLM,
    IA_API_PROVIDER_ANTHROPIC,
    IA_API_PROVIDER_GEMINI,
    IA_API_PROVIDER_OLLAMA,
    IA_API_PROVIDER_TGI,
    IA_API_PROVIDER_TEI,
    IA_API_PROVIDER_OVMS,
    IA_API_PROVIDER_OPEA,
    IA_API_PROVIDER_COUNT
} ia_api_provider;

/* "openai", "groq", ...; NULL for an out-of-range value. */
const char *ia_api_provider_name(ia_api_provider p);
ia_status ia_api_provider_parse(const char *name, ia_api_provider *out);

typedef enum ia_api_key_selection {
    IA_API_KEYS_ROUND_ROBIN = 0,
    IA_API_KEYS_LEAST_LOADED,
    IA_API_KEYS_PINNED,
} ia_api_key_selection;

typedef enum ia_api_priority {
    IA_API_PRIORITY_HIGH = 0,
    IA_API_PRIORITY_NORMAL,
    IA_API_PRIORITY_LOW,
} ia_api_priority;

/* Which of a provider's APIs carries the text (only OVMS has two). */
typedef enum ia_api_wire {
    IA_API_WIRE_DEFAULT = 0, /* the provider's usual one (OVMS: OpenAI-compatible /v3) */
    IA_API_WIRE_KSERVE,      /* KServe v2 inference: POST /v2/models/{m}/infer with tensors */
} ia_api_wire;

#define IA_API_MAX_KEYS 16
#define IA_API_MAX_MODELS 32
#define IA_API_MAX_FALLBACKS 8

/* One endpoint as declared. Strings are owned by the ia_api_config. The key
 * sources are names (environment variables, a file path), never secrets. */
typedef struct ia_api_endpoint_config {
    const char *name;
    ia_api_provider provider;
    const char *base_url; /* without a trailing '/' */
    const char *models[IA_API_MAX_MODELS];
    size_t n_models; /* models[0] is the default */
    const char *key_envs[IA_API_MAX_KEYS];
    size_t n_key_envs;
    const char *key_file; /* or NULL */
    ia_api_key_selection key_selection;
    long key_cooldown_ms;
    ia_api_priority priority; /* default priority of calls to this endpoint */
    int max_concurrency;
    int queue_capacity;
    int retry_max_attempts;
    long retry_base_ms, retry_max_ms;
    int breaker_window;          /* calls in the sliding window */
    long breaker_window_ms;      /* and their age limit (0: none) */
    int breaker_min_calls;       /* calls before the rate is judged */
    double breaker_failure_rate; /* 0..1 */
    long breaker_open_ms;
    int breaker_half_open_probes;
    long breaker_slow_ms; /* 0: off */
    long connect_ms, first_byte_ms, total_ms;
    long max_body_bytes;
    int batch_max_items; /* embeddings: 0 or 1 = no batching */
    long batch_max_wait_ms;
    const char *fallbacks[IA_API_MAX_FALLBACKS];
    size_t n_fallbacks;
    ia_api_wire api;           /* `api: kserve` (ovms) */
    const char *kserve_input;  /* KServe input tensor name; NULL: "text" */
    const char *kserve_output; /* output tensor name; NULL: the first output */
    int line;                  /* where it was declared, for messages */
} ia_api_endpoint_config;

typedef struct ia_api_config ia_api_config;

/* Parses an endpoints YAML document (see docs/PROVIDERS.md). `what` names it
 * in errors (the path). Errors say file:line:column and the endpoint: unknown
 * provider or field, bad URL, missing or duplicate name, unknown fallback.
 * Keys are not read here. The caller owns *out (ia_api_config_free). */
ia_status ia_api_config_parse(const char *text, size_t len, const char *what, ia_api_config **out);
ia_status ia_api_config_load(const char *path, ia_api_config **out);
void ia_api_config_free(ia_api_config *cfg);
size_t ia_api_config_count(const ia_api_config *cfg);
const ia_api_endpoint_config *ia_api_config_endpoint(const ia_api_config *cfg, size_t i);
const ia_api_endpoint_config *ia_api_config_find(const ia_api_config *cfg, const char *name);
/* The `what` the config was parsed as (its path). */
const char *ia_api_config_source(const ia_api_config *cfg);
/* The default path: $IA_ENDPOINTS, else
 * ${XDG_CONFIG_HOME:-~/.config}/ipfs-accelerate/endpoints.yaml (malloc'd). */
char *ia_api_config_default_path(void);

/* ---- calls ----------------------------------------------------------------------- */

typedef enum ia_api_op {
    IA_API_CHAT = 0,
    IA_API_COMPLETE,
    IA_API_EMBED,
    IA_API_RERANK,
} ia_api_op;

const char *ia_api_op_name(ia_api_op op);

/* Streaming: called with each text delta as it arrives; return false to stop
 * the stream (the call then ends with IA_EINVAL "stopped by the caller"). */
typedef bool (*ia_api_delta_fn)(void *ctx, const char *text, size_t len);

/* One turn of a conversation (borrowed strings); role is "system", "user"
 * or "assistant". */
typedef struct ia_api_message {
    const char *role, *content;
} ia_api_message;

/* A request. Texts are borrowed. Chat sends texts[0] as the user message
 * (after `system` when set), or, when n_messages > 0, the whole conversation
 * in messages (providers with a messages API: OpenAI-format, Anthropic,
 * Gemini, Ollama; the others get texts[0], which the caller then sets to the
 * last user turn); complete sends texts[0] as the prompt; embed embeds every
 * text; rerank scores every text against `query`. */
typedef struct ia_api_request {
    ia_api_op op;
    const char *model; /* NULL: the endpoint's first model */
    const char *system;
    const char *const *texts;
    size_t n_texts;
    const ia_api_message *messages; /* chat: the conversation, or NULL */
    size_t n_messages;
    const char *query;       /* rerank */
    int max_tokens;          /* 0: provider default (Anthropic needs one: 1024 then) */
    double temperature;      /* < 0: provider default */
    double top_p;            /* <= 0: provider default */
    const char *const *stop; /* stop strings (chat, complete), n_stop of them */
    size_t n_stop;
    bool has_seed; /* send seed (providers that take one) */
    uint64_t seed;
    int n;                       /* choices; 0 or 1: one */
    bool logprobs;               /* OpenAI-style options that some providers refuse */
    const char *logit_bias_json; /* {"token id": bias, ...} or NULL */
    bool stream;
    ia_api_delta_fn on_delta;
    void *delta_ctx;
    ia_api_priority priority;
    bool use_default_priority; /* take the endpoint's configured priority */
    long deadline_ms;          /* 0: the endpoint's total timeout governs */
} ia_api_request;

typedef struct ia_api_rank {
    size_t index;
    double score;
} ia_api_rank;

/* Why a call failed, for callers that map failures to their own answers
 * (the server's HTTP statuses). */
typedef enum ia_api_failure {
    IA_API_FAIL_NONE = 0,
    IA_API_FAIL_REFUSED,      /* not retryable: the provider's 4xx, an unsupported parameter,
                               * a malformed answer */
    IA_API_FAIL_EXHAUSTED,    /* retries (and fallbacks) used up on 5xx / 429 / timeouts */
    IA_API_FAIL_DEADLINE,     /* the whole-call deadline passed */
    IA_API_FAIL_QUEUE_FULL,   /* the endpoint's queue was full: refused at once */
    IA_API_FAIL_BREAKER_OPEN, /* the circuit breaker was open (and no fallback served) */
    IA_API_FAIL_CANCELLED,    /* the delta callback said stop */
} ia_api_failure;

/* A result; owned by the caller, free with ia_api_result_free. When
 * ia_api_call fails only failure, http_status (the last attempt's, 0 when
 * none answered), attempts and served_by are set. */
typedef struct ia_api_result {
    char *text; /* chat / complete: the whole text, streamed or not */
    char *finish_reason;
    float *embeddings; /* n_embeddings rows of dim floats */
    size_t n_embeddings, dim;
    ia_api_rank *ranks; /* rerank: best first */
    size_t n_ranks;
    long tokens_in, tokens_out; /* -1 when the provider did not say */
    int http_status;
    int attempts;
    char served_by[128]; /* the endpoint that answered (a fallback maybe) */
    ia_api_failure failure;
} ia_api_result;

void ia_api_result_free(ia_api_result *r);

typedef struct ia_api_client ia_api_client;

/* A client over a parsed config (borrowed: keep it alive until the client is
 * destroyed). Reads every endpoint's keys: a missing environment variable
 * (for a provider that needs a key) or a key file readable by others is an
 * error naming the endpoint and the variable or path, never the value. */
ia_status ia_api_client_create(const ia_api_config *cfg, ia_api_client **out);
void ia_api_client_destroy(ia_api_client *c);

/* One call to the named endpoint (retries, breaker and fallbacks included).
 * Errors name the endpoint and say why (HTTP status and the provider's
 * message, timeout kind, malformed response). */
ia_status ia_api_call(ia_api_client *c, const char *endpoint, const ia_api_request *req,
                      ia_api_result *out);

/* Statistics of calls made through this client as a JSON document
 * (malloc'd; caller frees), and as Prometheus text. */
ia_status ia_api_stats_json(ia_api_client *c, char **out);
ia_status ia_api_stats_prometheus(ia_api_client *c, char **out);

/* Probes one endpoint with a cheap request (GET /v1/models, /api/tags,
 * /info, ...): ok, HTTP status (0 when no answer) and latency. *message gets
 * a short reason on failure ("" when ok). */
typedef struct ia_api_probe {
    bool ok;
    int http_status;
    double latency_ms;
    char message[256];
} ia_api_probe;
ia_status ia_api_check(ia_api_client *c, const char *endpoint, ia_api_probe *out);

#ifdef __cplusplus
}
#endif

#endif /* IA_BACKENDS_H */
