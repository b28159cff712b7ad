/*
 * server: the model server behind `ipfs-accelerate serve`.
 *
 * One libmicrohttpd daemon answers the OpenAI (/v1/models, /v1/embeddings,
 * /v1/completions, /v1/chat/completions), Hugging Face TEI (/embed,
 * /tokenize, /info) and Ollama (/api/tags, /api/version, /api/embed,
 * /api/generate, /api/chat) dialects over the same loaded models, plus
 * /health, /metrics (Prometheus text), a live dashboard page at / and its
 * JSON at /stats. Each model has one scheduler
 * thread with a bounded priority queue: embedding requests are batched by a
 * token budget, generation requests are continuously batched (up to
 * --parallel sequences join and leave one shared decode step). A full queue
 * answers 429 with Retry-After at once.
 *
 * The server is a thin shell over runtime/: embedders come from the process
 * pool (ia_pool_acquire_embedder), generators from ia_generator_load, and the
 * model's family (hw/'s classifier) says which a path is.
 *
 * Threads: MHD runs one thread per connection; a request's JSON is parsed and
 * tokenised on its connection thread, then queued to the model's scheduler
 * thread, the only thread that touches the model. See src/server/.
 */
#ifndef IA_SERVER_H
#define IA_SERVER_H

#include "ia/base.h"
#include "ia/models.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ia_server_options {
    /* Models: "PATH" or "NAME=PATH" (a model directory or a .gguf file); the
     * id clients use is NAME, else the path's last component without .gguf.
     * Borrowed during ia_server_start only. */
    const char *const *models;
    size_t n_models;
    const char *host; /* NULL: "127.0.0.1" */
    uint16_t port;    /* 0: an ephemeral port (ia_server_port says which) */
    /* Bearer keys (copied). None: no authentication. /health, /metrics, the
     * dashboard (/) and /stats stay open either way. */
    const char *const *api_keys;
    size_t n_api_keys;
    size_t max_queue;         /* requests waiting per model; 0: 256 */
    size_t max_batch_tokens;  /* tokens per embedding batch; 0: 8192 */
    unsigned batch_wait_us;   /* how long a batch below budget waits for more; 0: 2000 */
    unsigned max_streams;     /* concurrent streamed responses per model (--max-streams);
                               * past it a new stream gets 429 + Retry-After; 0: 64 */
    unsigned parallel;        /* generation slots per model (--parallel): sequences that
                               * generate at once, continuously batched; 0: 4 */
    int threads;              /* compute threads per model; 0: physical cores */
    size_t max_body_bytes;    /* request body; 0: 4 MiB */
    size_t max_inputs;        /* texts per embedding request; 0: 2048 */
    size_t max_input_tokens;  /* tokens per input / prompt; 0: the model's limit */
    size_t max_tokens;        /* tokens one generation may ask for; 0: 4096 */
    unsigned timeout_ms;      /* per request, queueing included; 0: 600000 */
    unsigned max_connections; /* 0: 512 */
    /* An IPFS Trustless Gateway handler (ia_gateway_start with listen NULL;
     * borrowed: it must outlive the server) answering /ipfs/ and /ipns/
     * without keys. NULL: those paths are 404. */
    struct ia_gateway *gateway;
    /* Start returns once listening; models load on their scheduler threads
     * (/health answers 503 until all are ready). false: start returns after
     * every model loaded, or fails with the first load error. */
    bool load_async;
    /* An endpoints YAML (docs/PROVIDERS.md; borrowed during start only):
     * its endpoints' models are served on the /v1 routes next to the local ones,
     * routed through the remote providers' resilience layer
     * (src/server/remote.c). NULL: none. With it, no local model is needed. */
    const char *endpoints;
    /* How every local model is loaded (serve --dtype, --kv-cache, --context);
     * zero values are the defaults. Text encoders take dtype and weight_type
     * (ia_embedder_options' fields of those names), text decoders dtype,
     * kv_dtype and context (ia_generator_options'). /v1/models, /info and
     * /api/tags show the type in effect. */
    ia_dtype dtype;                        /* weights in memory; 0 (IA_DTYPE_F32): f32 */
    ia_encoder_weight_type_fn weight_type; /* encoders: per-tensor types (a mix); NULL: dtype */
    void *weight_type_ctx;
    const char *dtype_name; /* the type's name when weight_type is set ("q4_k_m"; copied);
                             * NULL: ia_dtype_name(dtype) */
    ia_dtype kv_dtype;      /* decoders' KV cache; 0 (IA_DTYPE_F32): f32 */
    size_t context;         /* decoders' context in tokens; 0: the model's */
} ia_server_options;

ia_server_options ia_server_options_default(void);

typedef struct ia_server ia_server;

/* Starts the server: binds host:port, then loads the models. *out owned by
 * the caller (ia_server_stop). IA_EINVAL for bad options (two models with one
 * id, an unknown family), IA_EIO when the port cannot be bound, the load's
 * error when a model fails (load_async false). */
ia_status ia_server_start(const ia_server_options *opts, ia_server **out);

/* The bound port. */
uint16_t ia_server_port(const ia_server *srv);

/* Waits until every model is loaded (or one failed), up to timeout_ms
 * (negative: no limit). IA_OK when ready; a failed load's status and message;
 * IA_ERANGE when the time ran out first. */
ia_status ia_server_wait_ready(ia_server *srv, int timeout_ms);

/* Stops accepting, cancels queued and running requests, joins every thread,
 * releases the models and frees srv. NULL is a no-op. */
void ia_server_stop(ia_server *srv);

/* Reads API keys, one per line (blank lines and lines starting with '#'
 * skipped, surrounding spaces trimmed). *keys (n strings and the array) is
 * owned by the caller: ia_server_keys_free. IA_EINVAL when the file holds no
 * key. */
ia_status ia_server_keys_load(const char *path, char ***keys, size_t *n);
void ia_server_keys_free(char **keys, size_t n);

/* ---- request parsing (transport-neutral; also the fuzz target's entry) ---- */

/* Which API a route belongs to: it decides the request's fields and the
 * error JSON's shape. */
typedef enum ia_api_dialect {
    IA_API_OPENAI = 0, /* {"error":{"message","type","param","code"}} */
    IA_API_TEI,        /* {"error":"...","error_type":"Validation"} */
    IA_API_OLLAMA,     /* {"error":"..."} */
} ia_api_dialect;

/* A parsed embedding request. Texts point into the parsed JSON (owned here). */
typedef struct ia_embed_request {
    char *model; /* NULL when absent */
    const char **texts;
    size_t *lens;
    int32_t **ids; /* token-id inputs (OpenAI): ids[i] has n_ids[i] ids; NULL for text */
    size_t *n_ids;
    size_t n;
    bool base64;     /* OpenAI encoding_format "base64" */
    bool truncate;   /* cut long inputs (TEI truncate, Ollama truncate) instead of 400 */
    int normalize;   /* TEI normalize: -1 absent, 0, 1 */
    long dimensions; /* OpenAI dimensions; 0 absent */
    struct json_t *json;
} ia_embed_request;

/* A parsed generation request (completions, chat, Ollama generate/chat). */
#define IA_SERVER_MAX_STOP 8
typedef struct ia_gen_request {
    char *model;
    bool chat;    /* messages rather than a prompt */
    char *prompt; /* completions / generate */
    char *system; /* Ollama generate's "system" */
    bool raw;     /* Ollama generate: no template */
    struct ia_chat_msg_ref {
        const char *role, *content; /* borrowed from json, or owned text parts */
    } * messages;
    size_t n_messages;
    char **owned; /* joined content parts, freed with the request */
    size_t n_owned;
    bool stream, include_usage;
    long max_tokens; /* -1: absent */
    double temperature, top_p, min_p, repeat_penalty;
    long top_k;
    bool has_seed;
    uint64_t seed;
    char *stop[IA_SERVER_MAX_STOP];
    size_t n_stop;
    struct json_t *json;
} ia_gen_request;

/* Parses an embedding request body for a dialect's route. On error returns
 * the HTTP status (4xx) with a reason in why (and the offending parameter's
 * name in param, "" when none); 200 on success (free with
 * ia_embed_request_free). */
int ia_server_parse_embed(ia_api_dialect d, const char *body, size_t len, size_t max_inputs,
                          ia_embed_request *out, char *why, size_t cap, char *param,
                          size_t param_cap);
void ia_embed_request_free(ia_embed_request *r);

/* The same for generation: chat true for /v1/chat/completions and /api/chat. */
int ia_server_parse_generate(ia_api_dialect d, bool chat, const char *body, size_t len,
                             ia_gen_request *out, char *why, size_t cap, char *param,
                             size_t param_cap);
void ia_gen_request_free(ia_gen_request *r);

#ifdef __cplusplus
}
#endif

#endif /* IA_SERVER_H */
