/*
 * The model server's private pieces, shared by its files:
 *   server.c     the daemon, routing, auth, limits, error JSON, /health
 *   scheduler.c  one thread per model: load, priority queue, batching, run
 *   embed.c      OpenAI / TEI / Ollama embedding routes, /v1/models, /api/tags
 *   generate.c   completions, chat, Ollama generate/chat; SSE and NDJSON streams
 *   metrics.c    counters and histograms, /metrics in Prometheus text
 *   dashboard.c  GET / (the live dashboard page) and GET /stats (its JSON)
 *   request.c    JSON request parsing (no HTTP; the fuzz target's entry)
 */
#ifndef IA_SERVER_INTERNAL_H
#define IA_SERVER_INTERNAL_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

#include "ia/runtime.h"
#include "ia/server.h"

typedef enum srv_kind { SRV_EMBEDDER, SRV_GENERATOR } srv_kind;
typedef enum srv_state { SRV_LOADING, SRV_READY, SRV_FAILED } srv_state;
typedef enum srv_prio { SRV_PRIO_HIGH = 0, SRV_PRIO_NORMAL, SRV_PRIO_LOW, SRV_PRIO_COUNT } srv_prio;

/* ---- jobs: one queued request, shared by its connection thread and the
 * model's scheduler thread (two references; the last unref frees it). All
 * mutable fields below `mu` are guarded by it. ---- */

typedef enum srv_job_kind { SRV_JOB_EMBED, SRV_JOB_GENERATE } srv_job_kind;

/* Streamed text on its way from a producer (a model's thread, a remote
 * call) to the connection that sends it: the producer appends under its
 * lock, the reader swaps the whole buffer for its own spare one. data is
 * NUL-terminated once anything was added. */
typedef struct srv_buf {
    char *data;
    size_t len, cap;
} srv_buf;

/* Appends n bytes; false (b unchanged) when memory runs out. */
bool srv_buf_add(srv_buf *b, const char *p, size_t n);

/* With mu held: waits on cv until pending holds text or *done, then moves
 * pending's text into *taken (pending keeps taken's old storage, emptied)
 * and returns *done as read in the same critical section: once it is true
 * no more text can follow. */
bool srv_buf_take_locked(srv_buf *pending, srv_buf *taken, pthread_mutex_t *mu, pthread_cond_t *cv,
                         const bool *done);

/* Copies up to max bytes of b from *off into dst for MHD's content reader
 * and empties b once all of it went out; returns the count (0: nothing). */
size_t srv_buf_drain(srv_buf *b, size_t *off, char *dst, size_t max);

/* Appends v (stolen; NULL fails) as an SSE event ("data: V\n\n") or, when
 * !sse, an NDJSON line. False when out of memory. */
bool srv_buf_add_json(srv_buf *b, json_t *v, bool sse);

/* OpenAI streaming chunks of a completion (chat: chat.completion.chunk with
 * a delta, else text_completion): one with text (role adds the assistant
 * role to a chat delta), or the closing one when finish != NULL; and the
 * include_usage chunk (choices empty, usage stolen). */
json_t *srv_openai_chunk(const char *id, const char *model, json_int_t created, bool chat,
                         const char *text, size_t len, const char *finish, bool role);
json_t *srv_openai_usage_chunk(const char *id, const char *model, json_int_t created, bool chat,
                               json_t *usage);

typedef struct srv_job {
    srv_job_kind kind;
    srv_prio prio;
    atomic_int refs;
    atomic_bool cancelled; /* the client went away, or the server stops */
    double t_enqueue, deadline;
    struct srv_job *next; /* queue link (scheduler's lock) */

    /* embed: sequences of token ids, written to out[n_seq * dim] */
    int32_t *ids, *seq_start; /* seq_start[n_seq + 1] */
    size_t n_seq, n_tokens;
    float *out;

    /* generate */
    char *prompt;
    bool raw;
    size_t max_tokens;
    ia_sampling sampling;
    char *stop[IA_SERVER_MAX_STOP];
    size_t n_stop;
    int32_t extra_eos;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    ia_status status;
    int http_status; /* for errors: 500, 504, 503 */
    char error[512];
    srv_buf pending; /* streamed text not yet taken by the reader */
    ia_generate_result result;
    double t_start, t_first, t_done;
} srv_job;

srv_job *srv_job_new(srv_job_kind kind);
void srv_job_unref(srv_job *job);
/* Marks the job finished (status, message) and wakes its waiters. */
void srv_job_finish(srv_job *job, ia_status st, int http_status, const char *msg);

/* ---- models ---- */

typedef struct srv_model {
    struct ia_server *srv;
    char *id, *path;
    srv_kind kind;
    _Atomic srv_state state;
    char error[512];
    uint64_t bytes, created;
    atomic_uint streams; /* this model's streamed responses in flight (--max-streams) */

    ia_pool_handle *handle; /* embedders come from the pool */
    ia_embedder *emb;
    ia_generator *gen;
    const ia_tokenizer *tok;
    const ia_chat_template *tmpl;
    int32_t end_id;
    size_t dim, max_length, context;
    char dtype[32]; /* the weights' type in memory as loaded ("f32", "q8_0", "q4_k_m") */

    pthread_t thread;
    bool thread_started;
    bool sync_init;     /* mu and cv initialised (destroyed by ia_server_stop) */
    pthread_mutex_t mu; /* guards the queue, depth and stop */
    pthread_cond_t cv;
    srv_job *head[SRV_PRIO_COUNT], *tail[SRV_PRIO_COUNT];
    size_t depth;
    bool stop;
} srv_model;

/* ---- metrics ---- */

#define SRV_HIST_BUCKETS 14
typedef struct srv_hist {
    uint64_t counts[SRV_HIST_BUCKETS + 1]; /* the last one is +Inf */
    double sum;
    uint64_t n;
} srv_hist;

typedef struct srv_route_stats {
    uint64_t codes[6][8]; /* [code / 100][0..7]: per distinct code, see metrics.c */
    int code_of[6][8];
    srv_hist latency;
} srv_route_stats;

#define SRV_MAX_ROUTES 24

typedef struct srv_metrics {
    pthread_mutex_t mu;
    srv_route_stats routes[SRV_MAX_ROUTES];
    srv_hist ttft, batch_seqs, batch_tokens, queue_wait;
    srv_hist gen_batch; /* sequences per generation step */
    uint64_t tokens_in, tokens_out, batches, rejected_full, cancelled, timeouts;
} srv_metrics;

void srv_metrics_init(srv_metrics *m);
void srv_metrics_destroy(srv_metrics *m);
void srv_metrics_request(srv_metrics *m, int route, int code, double seconds);
void srv_metrics_ttft(srv_metrics *m, double seconds);
void srv_metrics_batch(srv_metrics *m, size_t seqs, size_t tokens);
void srv_metrics_gen_batch(srv_metrics *m, size_t seqs);
void srv_metrics_tokens(srv_metrics *m, size_t in, size_t out);
void srv_metrics_wait(srv_metrics *m, double seconds);
void srv_metrics_count(srv_metrics *m, uint64_t *counter);
/* The Prometheus text (malloc'd). */
char *srv_metrics_render(struct ia_server *srv, size_t *len);
/* A consistent copy of every counter (taken under the lock), for /stats. */
void srv_metrics_snapshot(srv_metrics *m, srv_metrics *out);
/* The q-quantile (0..1) of a histogram, interpolated inside its bucket as
 * Prometheus' histogram_quantile does; time: the time buckets (seconds), else
 * the size buckets. 0 when the histogram is empty. */
double srv_hist_quantile(const srv_hist *h, bool time, double q);

/* ---- the server ---- */

struct ia_server {
    ia_server_options opts;
    char **keys;
    size_t n_keys;
    srv_model *models;
    size_t n_models;
    struct MHD_Daemon *daemon;
    uint16_t port;
    double started;       /* ia_time_now (monotonic) */
    int64_t started_unix; /* wall clock, for "created" fields */
    atomic_uint streams;  /* streamed responses in flight */
    atomic_bool stopping;
    pthread_mutex_t ready_mu; /* with ready_cv: model state changes */
    pthread_cond_t ready_cv;
    srv_metrics metrics;
    struct srv_remote *remote; /* --endpoints: remote models (remote.c); NULL when none */
};

/* What a route handler gets: the request as read, and where to answer. */
typedef struct srv_req {
    ia_server *srv;
    struct MHD_Connection *conn;
    const char *url, *method;
    const char *body;
    size_t body_len;
    int route;
    ia_api_dialect dialect;
    srv_prio prio;
    double t0;
    int status; /* the answer's HTTP status, for metrics */
} srv_req;

typedef int (*srv_handler)(srv_req *r);

/* Routes' handlers (embed.c, generate.c). Return MHD_YES / MHD_NO. */
int srv_handle_models(srv_req *r);
/* A local model's /v1/models entry (embed.c; also remote.c's list): id,
 * object, created, owned_by, and how it was loaded: dtype, and for decoders
 * kv_cache and context once loaded. */
json_t *srv_model_entry(const srv_model *m, json_int_t created);
int srv_handle_tags(srv_req *r);
int srv_handle_version(srv_req *r);
int srv_handle_embeddings(srv_req *r);
int srv_handle_tei_embed(srv_req *r);
int srv_handle_tei_tokenize(srv_req *r);
int srv_handle_tei_info(srv_req *r);
int srv_handle_ollama_embed(srv_req *r);
int srv_handle_completions(srv_req *r);
int srv_handle_chat(srv_req *r);
int srv_handle_ollama_generate(srv_req *r);
int srv_handle_ollama_chat(srv_req *r);
int srv_handle_dashboard(srv_req *r); /* dashboard.c */
int srv_handle_stats(srv_req *r);

/* Admits one more streamed response on model m (--max-streams, per model):
 * true when under the limit (the caller then owns one slot, given back with
 * srv_stream_release when the stream ends); false after answering 429 with
 * Retry-After itself (*ret set). server.c. */
bool srv_stream_acquire(srv_req *r, srv_model *m, int *ret);
void srv_stream_release(srv_model *m);

/* Route labels for metrics, in route-table order. */
const char *srv_route_name(int route);
size_t srv_route_count(void);

/* Answers helpers (server.c). They take ownership of nothing but the JSON. */
int srv_send_json(srv_req *r, int status, json_t *body); /* steals body */
int srv_send_text(srv_req *r, int status, const char *type, const char *text, size_t len);
/* An error in the route's dialect; type/code used by OpenAI's shape (NULL: by status). */
int srv_send_error(srv_req *r, int status, const char *param, const char *code, const char *fmt,
                   ...) __attribute__((format(printf, 5, 6)));

/* Finds a model by id and kind; NULL id: the first of that kind. On failure
 * answers the error itself and returns NULL (*ret set to the MHD result). */
srv_model *srv_model_find(srv_req *r, const char *id, srv_kind kind, int *ret);

/* Queues a job and waits for it (embed.c); answers 429, 504 or the job's
 * error itself and returns NULL (*ret set, the job released). On success
 * returns the finished job (the caller's reference). */
srv_job *srv_run_job(srv_req *r, srv_model *m, srv_job *job, int *ret);

/* Remote models (remote.c): the endpoints YAML's models on the /v1 routes.
 * srv_remote_start loads the file and creates the client; srv_remote_stop
 * frees them (after the daemon stopped). srv_remote_route answers r when it
 * is for a remote model (or is /v1/models, listing local and remote ones)
 * and returns true with *ret set; false leaves r to the local handler.
 * srv_remote_metrics appends the endpoints' Prometheus text to *text. */
ia_status srv_remote_start(struct ia_server *srv, const char *endpoints_path);
void srv_remote_stop(struct ia_server *srv);
bool srv_remote_route(srv_req *r, int *ret);
void srv_remote_metrics(struct ia_server *srv, char **text, size_t *len);
/* The endpoints' statistics as JSON ({"endpoints": [...]}; caller decrefs),
 * NULL when the server has no remote endpoints. */
json_t *srv_remote_stats_json(struct ia_server *srv);

/* Scheduler (scheduler.c). */
ia_status srv_model_start(srv_model *m);
void srv_model_stop(srv_model *m);
/* Queues a job (taking one reference for the scheduler). false when the
 * queue is full (the caller answers 429) or the server is stopping. */
bool srv_model_submit(srv_model *m, srv_job *job);
/* Waits for a job to finish while watching the client's socket; a client
 * that hangs up cancels it. false when the deadline passed first (the job
 * is cancelled and must not be read). */
bool srv_job_wait(srv_job *job, struct MHD_Connection *conn);
/* true when the client closed its side of the connection. */
bool srv_peer_closed(struct MHD_Connection *conn);

#endif /* IA_SERVER_INTERNAL_H */
