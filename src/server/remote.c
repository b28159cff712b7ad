/*
 * Remote models on the server's OpenAI routes: `serve --endpoints FILE`
 * makes every model of the endpoints YAML (docs/PROVIDERS.md) answerable on
 * /v1/chat/completions, /v1/completions and /v1/embeddings next to the local
 * models, a LiteLLM-style gateway over the remote providers' client
 * (include/ia/backends.h) and its resilience layer: the endpoint's priority
 * queue (X-Priority, else the endpoint's configured priority), retries with
 * backoff that honour Retry-After, the circuit breaker and the fallbacks.
 *
 * Which model is remote: a local model's id always wins; then the first
 * endpoint that lists the requested id, then "ENDPOINT/MODEL" (any model
 * name for that endpoint) and "ENDPOINT" alone (its default model).
 * /v1/models lists the local models and then each remote model once, with
 * owned_by the endpoint's name and "provider" its provider.
 *
 * A plain request runs ia_api_call on its connection thread. A streamed one
 * runs it on a worker thread that appends deltas to a buffer; the handler
 * waits for the first delta (or the end) before answering, so that a call
 * that fails before any text (queue full, breaker open, retries exhausted)
 * still gets a real HTTP status and error JSON; after that the text is
 * relayed as OpenAI chunks (SSE, ending `data: [DONE]`) by a libmicrohttpd
 * callback response, as generate.c does for local models. A client that
 * hangs up stops the remote stream (the delta callback returns false).
 * Remote streams count against the server's --parallel limit like local
 * ones.
 *
 * Failures map to OpenAI error JSON: a full endpoint queue is 429 (with
 * Retry-After), an open breaker 503, retries or fallbacks used up on 5xx or
 * transport errors 502 (on 429s: 429), the deadline 504, and the provider's
 * own 4xx (400, 404, 413, 422, and a 429 quota limit) is passed on; the
 * provider refusing our key (401/403) is a 502, since the client's request
 * is not at fault. Messages come from the client and name the endpoints,
 * never a key.
 *
 * Threads: the worker count is guarded by srv_remote.mu; srv_remote_stop
 * (after the daemon joined the connection threads) tells workers to stop and
 * waits for them before freeing the client.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ia/backends.h"
#include "server/server_internal.h"

typedef struct remote_model {
    char *id;
    const char *endpoint, *provider; /* owned by the config */
} remote_model;

struct srv_remote {
    ia_api_config *cfg;
    ia_api_client *client;
    remote_model *models;
    size_t n_models;
    pthread_mutex_t mu; /* guards workers */
    pthread_cond_t cv;
    int workers;
    atomic_bool stopping;
};

static atomic_uint_fast64_t remote_counter;

/* ---- start and stop -------------------------------------------------------------- */

static ia_status add_model(struct srv_remote *rm, const char *id,
                           const ia_api_endpoint_config *ep) {
    for (size_t i = 0; i < rm->n_models; i++)
        if (strcmp(rm->models[i].id, id) == 0)
            return IA_OK; /* the first endpoint that lists it serves it */
    remote_model *m = ia_realloc_array(rm->models, rm->n_models + 1, sizeof *m);
    if (!m)
        return IA_ENOMEM;
    rm->models = m;
    m += rm->n_models;
    if (!(m->id = ia_strdup(id)))
        return IA_ENOMEM;
    m->endpoint = ep->name;
    m->provider = ia_api_provider_name(ep->provider);
    rm->n_models++;
    return IA_OK;
}

ia_status srv_remote_start(ia_server *srv, const char *path) {
    struct srv_remote *rm = ia_calloc(1, sizeof *rm);
    if (!rm)
        return IA_ENOMEM;
    pthread_mutex_init(&rm->mu, NULL);
    pthread_cond_init(&rm->cv, NULL);
    srv->remote = rm;
    ia_status st = ia_api_config_load(path, &rm->cfg);
    if (st == IA_OK)
        st = ia_api_client_create(rm->cfg, &rm->client);
    for (size_t i = 0; st == IA_OK && i < ia_api_config_count(rm->cfg); i++) {
        const ia_api_endpoint_config *ep = ia_api_config_endpoint(rm->cfg, i);
        if (ep->n_models == 0)
            st = add_model(rm, ep->name, ep);
        for (size_t k = 0; st == IA_OK && k < ep->n_models; k++)
            st = add_model(rm, ep->models[k], ep);
    }
    if (st != IA_OK)
        ia_error_prefix("serve --endpoints %s", path);
    return st;
}

void srv_remote_stop(ia_server *srv) {
    struct srv_remote *rm = srv->remote;
    if (!rm)
        return;
    atomic_store(&rm->stopping, true);
    pthread_mutex_lock(&rm->mu);
    while (rm->workers > 0)
        pthread_cond_wait(&rm->cv, &rm->mu);
    pthread_mutex_unlock(&rm->mu);
    ia_api_client_destroy(rm->client);
    ia_api_config_free(rm->cfg);
    for (size_t i = 0; i < rm->n_models; i++)
        free(rm->models[i].id);
    free(rm->models);
    pthread_mutex_destroy(&rm->mu);
    pthread_cond_destroy(&rm->cv);
    free(rm);
    srv->remote = NULL;
}

/* ---- statistics -------------------------------------------------------------------- */

void srv_remote_metrics(ia_server *srv, char **text, size_t *len) {
    char *more = NULL;
    if (!srv->remote || ia_api_stats_prometheus(srv->remote->client, &more) != IA_OK || !more)
        return;
    size_t n = strlen(more);
    char *t = realloc(*text, *len + n + 1);
    if (t) {
        memcpy(t + *len, more, n + 1);
        *text = t;
        *len += n;
    }
    free(more);
}

json_t *srv_remote_stats_json(ia_server *srv) {
    char *s = NULL;
    if (!srv->remote || ia_api_stats_json(srv->remote->client, &s) != IA_OK)
        return NULL;
    json_t *j = json_loads(s, 0, NULL);
    free(s);
    return j;
}

/* ---- answers ------------------------------------------------------------------------ */

/* JSON with X-Served-By naming the endpoint that answered (a fallback maybe). */
static int send_served(srv_req *r, json_t *body, const char *served_by) {
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return srv_send_error(r, 500, NULL, NULL, "out of memory");
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    MHD_add_response_header(resp, "X-Served-By", served_by);
    r->status = 200;
    int ret = MHD_queue_response(r->conn, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* The HTTP status (and OpenAI error code) for a failed call. */
static int failure_status(const ia_api_result *res, ia_status st, const char **code) {
    int h = res->http_status;
    *code = NULL;
    switch (res->failure) {
    case IA_API_FAIL_QUEUE_FULL:
        *code = "rate_limit_exceeded";
        return 429;
    case IA_API_FAIL_BREAKER_OPEN:
        *code = "endpoint_unavailable";
        return 503;
    case IA_API_FAIL_DEADLINE:
        *code = "timeout";
        return 504;
    case IA_API_FAIL_EXHAUSTED:
        *code = h == 429 ? "rate_limit_exceeded" : "bad_gateway";
        return h == 429 ? 429 : 502;
    case IA_API_FAIL_CANCELLED:
        return 499;
    default:
        break;
    }
    if (h == 400 || h == 404 || h == 413 || h == 422)
        return h;
    if (h == 429) { /* a spend or quota limit: not retried, but the client's answer is 429 */
        *code = "insufficient_quota";
        return 429;
    }
    if (h == 0 && (st == IA_EUNSUPPORTED || st == IA_EINVAL))
        return 400; /* refused before sending: a parameter the provider lacks */
    *code = "bad_gateway";
    return 502;
}

static int send_failure(srv_req *r, const ia_api_result *res, ia_status st, const char *msg) {
    const char *code;
    int status = failure_status(res, st, &code);
    return srv_send_error(r, status, NULL, code, "%s", msg);
}

/* ---- which model --------------------------------------------------------------------- */

typedef struct route_target {
    const char *endpoint;
    const char *model; /* for the provider; NULL: the endpoint's default */
} route_target;

static bool local_model(const ia_server *srv, const char *id) {
    for (size_t i = 0; i < srv->n_models; i++)
        if (strcmp(srv->models[i].id, id) == 0)
            return true;
    return false;
}

static bool find_target(const struct srv_remote *rm, const char *id, route_target *t) {
    for (size_t i = 0; i < rm->n_models; i++)
        if (strcmp(rm->models[i].id, id) == 0) {
            t->endpoint = rm->models[i].endpoint;
            const ia_api_endpoint_config *ep = ia_api_config_find(rm->cfg, t->endpoint);
            t->model = ep && ep->n_models ? rm->models[i].id : NULL;
            return true;
        }
    const char *slash = strchr(id, '/');
    size_t n = slash ? (size_t)(slash - id) : strlen(id);
    for (size_t i = 0; i < ia_api_config_count(rm->cfg); i++) {
        const ia_api_endpoint_config *ep = ia_api_config_endpoint(rm->cfg, i);
        if (strlen(ep->name) == n && strncmp(ep->name, id, n) == 0) {
            t->endpoint = ep->name;
            t->model = slash && slash[1] ? slash + 1 : NULL;
            return true;
        }
    }
    return false;
}

static void set_priority(srv_req *r, ia_api_request *q) {
    if (MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-Priority")) {
        q->priority = r->prio == SRV_PRIO_HIGH  ? IA_API_PRIORITY_HIGH
                      : r->prio == SRV_PRIO_LOW ? IA_API_PRIORITY_LOW
                                                : IA_API_PRIORITY_NORMAL;
    } else {
        q->use_default_priority = true;
    }
    q->deadline_ms = (long)r->srv->opts.timeout_ms;
}

/* OpenAI's finish_reason for a provider's (Anthropic end_turn / max_tokens,
 * Gemini STOP / MAX_TOKENS / SAFETY, TGI eos_token / length, ...). */
static const char *openai_finish(const char *f) {
    static const struct {
        const char *from, *to;
    } map[] = {{"length", "length"},
               {"max_tokens", "length"},
               {"MAX_TOKENS", "length"},
               {"model_length", "length"},
               {"content_filter", "content_filter"},
               {"SAFETY", "content_filter"},
               {"RECITATION", "content_filter"},
               {"tool_calls", "tool_calls"},
               {"tool_use", "tool_calls"}};
    for (size_t i = 0; f && i < sizeof map / sizeof map[0]; i++)
        if (strcmp(f, map[i].from) == 0)
            return map[i].to;
    return "stop";
}

/* ---- /v1/models -------------------------------------------------------------------- */

static int handle_models(srv_req *r) {
    ia_server *srv = r->srv;
    json_t *data = json_array();
    json_int_t created = (json_int_t)srv->started_unix;
    for (size_t i = 0; i < srv->n_models; i++)
        json_array_append_new(data, srv_model_entry(&srv->models[i], created));
    for (size_t i = 0; i < srv->remote->n_models; i++) {
        const remote_model *m = &srv->remote->models[i];
        if (local_model(srv, m->id))
            continue;
        json_array_append_new(data, json_pack("{s:s, s:s, s:I, s:s, s:s}", "id", m->id, "object",
                                              "model", "created", created, "owned_by", m->endpoint,
                                              "provider", m->provider));
    }
    return srv_send_json(r, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

/* ---- /v1/embeddings ---------------------------------------------------------------- */

static char *base64_floats(const float *v, size_t dim) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = dim * sizeof(float);
    const unsigned char *p = (const unsigned char *)v; /* little-endian hosts, as embed.c */
    char *out = ia_malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        unsigned x = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        *o++ = tab[x >> 18 & 63];
        *o++ = tab[x >> 12 & 63];
        *o++ = i + 1 < n ? tab[x >> 6 & 63] : '=';
        *o++ = i + 2 < n ? tab[x & 63] : '=';
    }
    *o = 0;
    return out;
}

static json_t *embedding_json(const float *v, size_t dim, bool base64) {
    if (base64) {
        char *s = base64_floats(v, dim);
        json_t *j = s ? json_string(s) : NULL;
        free(s);
        return j;
    }
    json_t *a = json_array();
    for (size_t k = 0; a && k < dim; k++)
        json_array_append_new(a, json_real((double)v[k]));
    return a;
}

static int remote_embed(srv_req *r, const char *id, const route_target *t) {
    ia_embed_request q;
    char why[1024], param[64];
    int st = ia_server_parse_embed(IA_API_OPENAI, r->body, r->body_len, r->srv->opts.max_inputs, &q,
                                   why, sizeof why, param, sizeof param);
    if (st != 200)
        return srv_send_error(r, st, param, NULL, "%s", why);
    int ret;
    ia_api_result res;
    memset(&res, 0, sizeof res);
    if (q.ids || q.dimensions) {
        ret = srv_send_error(r, 400, q.ids ? "input" : "dimensions", NULL,
                             "model '%s' is served by the remote endpoint '%s', which takes text "
                             "inputs only (no token ids, no dimensions)",
                             id, t->endpoint);
        goto done;
    }
    ia_api_request ar = {
        .op = IA_API_EMBED, .model = t->model, .texts = q.texts, .n_texts = q.n, .temperature = -1};
    set_priority(r, &ar);
    ia_status cst = ia_api_call(r->srv->remote->client, t->endpoint, &ar, &res);
    if (cst != IA_OK) {
        ret = send_failure(r, &res, cst, ia_error_message());
        goto done;
    }
    json_t *data = json_array();
    for (size_t i = 0; i < res.n_embeddings; i++)
        json_array_append_new(
            data,
            json_pack("{s:s, s:I, s:o}", "object", "embedding", "index", (json_int_t)i, "embedding",
                      embedding_json(res.embeddings + i * res.dim, res.dim, q.base64)));
    json_int_t tin = res.tokens_in > 0 ? (json_int_t)res.tokens_in : 0;
    ret = send_served(r,
                      json_pack("{s:s, s:o, s:s, s:{s:I, s:I}}", "object", "list", "data", data,
                                "model", id, "usage", "prompt_tokens", tin, "total_tokens", tin),
                      res.served_by);
done:
    ia_api_result_free(&res);
    ia_embed_request_free(&q);
    return ret;
}

/* ---- chat and completions ----------------------------------------------------------- */

/* A generation call's request and everything it borrows from, owned together
 * so that a stream's worker thread can outlive the handler. */
typedef struct gen_call {
    ia_gen_request q;
    ia_api_message *msgs;
    const char *texts[1];
    ia_api_request req;
    char endpoint[128];
    char id[48];
    char model[256];        /* the id the client asked for, echoed back */
    char remote_model[256]; /* what the endpoint is asked for ("": its default) */
    json_int_t created;
    bool chat;
} gen_call;

static void gen_call_free(gen_call *g) {
    if (!g)
        return;
    ia_gen_request_free(&g->q);
    free(g->msgs);
    free(g);
}

/* Parses the request into g (answers a 400 itself and returns false). */
static bool gen_call_init(srv_req *r, gen_call *g, const char *id, const route_target *t, bool chat,
                          int *ret) {
    char why[1024], param[64];
    int st = ia_server_parse_generate(IA_API_OPENAI, chat, r->body, r->body_len, &g->q, why,
                                      sizeof why, param, sizeof param);
    if (st != 200) {
        *ret = srv_send_error(r, st, param, NULL, "%s", why);
        return false;
    }
    ia_gen_request *q = &g->q;
    g->chat = chat;
    snprintf(g->endpoint, sizeof g->endpoint, "%s", t->endpoint);
    snprintf(g->model, sizeof g->model, "%s", id);
    g->created = (json_int_t)time(NULL);
    uint64_t n = atomic_fetch_add(&remote_counter, 1) + 1;
    snprintf(g->id, sizeof g->id, "%s-r%" PRIx64 "%06" PRIx64, chat ? "chatcmpl" : "cmpl",
             (uint64_t)time(NULL), n);
    ia_api_request *a = &g->req;
    a->op = chat ? IA_API_CHAT : IA_API_COMPLETE;
    snprintf(g->remote_model, sizeof g->remote_model, "%s", t->model ? t->model : "");
    a->model = t->model ? g->remote_model : NULL;
    a->texts = g->texts;
    a->n_texts = 1;
    if (chat) {
        if (q->n_messages == 0) {
            *ret = srv_send_error(r, 400, "messages", NULL, "'messages' is empty");
            return false;
        }
        if (!(g->msgs = ia_calloc(q->n_messages, sizeof *g->msgs))) {
            *ret = srv_send_error(r, 500, NULL, NULL, "out of memory");
            return false;
        }
        g->texts[0] = "";
        for (size_t i = 0; i < q->n_messages; i++) {
            g->msgs[i] = (ia_api_message){q->messages[i].role, q->messages[i].content};
            if (strcmp(q->messages[i].role, "user") == 0)
                g->texts[0] = q->messages[i].content; /* the last user turn */
        }
        a->messages = g->msgs;
        a->n_messages = q->n_messages;
    } else {
        g->texts[0] = q->prompt ? q->prompt : "";
    }
    a->max_tokens = q->max_tokens > 0 && q->max_tokens < 1 << 30 ? (int)q->max_tokens : 0;
    /* forward a temperature only when the client gave one: the parser fills in a default */
    a->temperature = json_object_get(q->json, "temperature") ? q->temperature : -1;
    a->top_p = json_object_get(q->json, "top_p") ? q->top_p : 0;
    a->stop = (const char *const *)q->stop;
    a->n_stop = q->n_stop;
    a->has_seed = q->has_seed;
    a->seed = q->seed;
    a->stream = q->stream;
    set_priority(r, a);
    return true;
}

static json_t *usage_json(const ia_api_result *res) {
    if (res->tokens_in < 0 && res->tokens_out < 0)
        return NULL;
    json_int_t in = res->tokens_in > 0 ? res->tokens_in : 0;
    json_int_t out = res->tokens_out > 0 ? res->tokens_out : 0;
    return json_pack("{s:I, s:I, s:I}", "prompt_tokens", in, "completion_tokens", out,
                     "total_tokens", in + out);
}

static int answer_plain(srv_req *r, const gen_call *g, const ia_api_result *res) {
    const char *text = res->text ? res->text : "";
    const char *finish = openai_finish(res->finish_reason);
    json_t *choice =
        g->chat ? json_pack("{s:i, s:{s:s, s:s}, s:n, s:s}", "index", 0, "message", "role",
                            "assistant", "content", text, "logprobs", "finish_reason", finish)
                : json_pack("{s:s, s:i, s:n, s:s}", "text", text, "index", 0, "logprobs",
                            "finish_reason", finish);
    json_t *body = json_pack("{s:s, s:s, s:I, s:s, s:[o]}", "id", g->id, "object",
                             g->chat ? "chat.completion" : "text_completion", "created", g->created,
                             "model", g->model, "choices", choice);
    json_t *u = usage_json(res);
    if (body && u)
        json_object_set_new(body, "usage", u);
    else
        json_decref(u);
    return send_served(r, body, res->served_by);
}

/* ---- streaming ----------------------------------------------------------------------- */

typedef struct rstream {
    atomic_int refs; /* the worker's and the handler's (then the response's) */
    struct srv_remote *rm;
    ia_server *srv; /* counts the stream in srv->streams until stream_free */
    gen_call *g;
    bool include_usage;
    pthread_mutex_t mu; /* guards everything below, to `phase` */
    pthread_cond_t cv;
    srv_buf pending;
    bool started, done;
    ia_status st;
    ia_api_result res;
    char error[512];
    atomic_bool cancelled;
    /* the reader's own (the connection thread's) */
    int phase;   /* 0: opening chunk due, 1: text, 2: all sent */
    srv_buf out; /* formatted bytes not yet handed to MHD, from out_off */
    size_t out_off;
    srv_buf taken;
} rstream;

static void rstream_unref(rstream *s) {
    if (atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    ia_api_result_free(&s->res);
    gen_call_free(s->g);
    free(s->pending.data);
    free(s->out.data);
    free(s->taken.data);
    free(s);
}

static bool on_delta(void *ctx, const char *text, size_t len) {
    rstream *s = ctx;
    if (atomic_load(&s->cancelled) || atomic_load(&s->rm->stopping))
        return false;
    pthread_mutex_lock(&s->mu);
    bool ok = srv_buf_add(&s->pending, text, len);
    s->started = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return ok;
}

static void *stream_worker(void *arg) {
    rstream *s = arg;
    struct srv_remote *rm = s->rm;
    ia_api_result res;
    s->g->req.on_delta = on_delta;
    s->g->req.delta_ctx = s;
    ia_status st = ia_api_call(rm->client, s->g->endpoint, &s->g->req, &res);
    pthread_mutex_lock(&s->mu);
    s->st = st;
    s->res = res;
    if (st != IA_OK)
        snprintf(s->error, sizeof s->error, "%s", ia_error_message());
    s->done = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    rstream_unref(s);
    pthread_mutex_lock(&rm->mu);
    if (--rm->workers == 0)
        pthread_cond_broadcast(&rm->cv);
    pthread_mutex_unlock(&rm->mu);
    return NULL;
}

static json_t *chunk_json(const gen_call *g, const char *text, size_t len, const char *finish,
                          bool role) {
    return srv_openai_chunk(g->id, g->model, g->created, g->chat, text, len, finish, role);
}

static bool out_event(rstream *s, json_t *v) { return srv_buf_add_json(&s->out, v, true); }

/* The closing events; the worker has finished (s->done read under the lock). */
static bool out_closing(rstream *s) {
    const gen_call *g = s->g;
    if (s->st != IA_OK) {
        const char *code;
        int status = failure_status(&s->res, s->st, &code);
        json_t *err = json_pack("{s:{s:s, s:s, s:n, s:o}}", "error", "message", s->error, "type",
                                status >= 500 ? "server_error" : "invalid_request_error", "param",
                                "code", code ? json_string(code) : json_null());
        if (!out_event(s, err))
            return false;
    } else {
        const char *finish = openai_finish(s->res.finish_reason);
        if (!out_event(s, chunk_json(g, NULL, 0, finish, false)))
            return false;
        json_t *u = s->include_usage ? usage_json(&s->res) : NULL;
        if (u && !out_event(s, srv_openai_usage_chunk(g->id, g->model, g->created, g->chat, u)))
            return false;
    }
    return srv_buf_add(&s->out, "data: [DONE]\n\n", 14);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    rstream *s = cls;
    for (;;) {
        size_t n = srv_buf_drain(&s->out, &s->out_off, buf, max);
        if (n)
            return (ssize_t)n;
        if (s->phase == 2)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (s->phase == 0) {
            s->phase = 1;
            if (s->g->chat && !out_event(s, chunk_json(s->g, "", 0, NULL, true)))
                return MHD_CONTENT_READER_END_WITH_ERROR;
            continue;
        }
        pthread_mutex_lock(&s->mu);
        bool done = srv_buf_take_locked(&s->pending, &s->taken, &s->mu, &s->cv, &s->done);
        pthread_mutex_unlock(&s->mu);
        const char *text = s->taken.data;
        size_t len = s->taken.len;
        bool ok = true;
        if (len)
            ok = out_event(s, chunk_json(s->g, text, len, NULL, false));
        if (ok && done) {
            ok = out_closing(s);
            s->phase = 2;
        }
        if (!ok)
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
}

static void stream_free(void *cls) {
    rstream *s = cls;
    atomic_store(&s->cancelled, true); /* no-op when the call has ended */
    atomic_fetch_sub(&s->srv->streams, 1);
    rstream_unref(s);
}

/* Starts the call on a worker, waits for its first delta or its end, then
 * answers with the stream or the error. Takes g. */
static int remote_stream(srv_req *r, gen_call *g) {
    struct srv_remote *rm = r->srv->remote;
    if (atomic_fetch_add(&r->srv->streams, 1) >= r->srv->opts.max_streams) {
        atomic_fetch_sub(&r->srv->streams, 1);
        gen_call_free(g);
        return srv_send_error(r, 429, NULL, "rate_limit_exceeded",
                              "%u streams are in flight, this server's limit; retry later",
                              r->srv->opts.max_streams);
    }
    rstream *s = ia_calloc(1, sizeof *s);
    if (!s) {
        atomic_fetch_sub(&r->srv->streams, 1);
        gen_call_free(g);
        return srv_send_error(r, 500, NULL, NULL, "out of memory");
    }
    s->rm = rm;
    s->srv = r->srv;
    s->g = g;
    s->include_usage = g->q.include_usage;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    atomic_init(&s->refs, 2);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&rm->mu);
    rm->workers++;
    pthread_mutex_unlock(&rm->mu);
    pthread_t th;
    int rc = pthread_create(&th, &attr, stream_worker, s);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        pthread_mutex_lock(&rm->mu);
        rm->workers--;
        pthread_mutex_unlock(&rm->mu);
        atomic_store(&s->refs, 1);
        atomic_fetch_sub(&r->srv->streams, 1);
        rstream_unref(s);
        return srv_send_error(r, 503, NULL, NULL, "cannot start a thread for the stream");
    }
    pthread_mutex_lock(&s->mu);
    while (!s->started && !s->done) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L)
            ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        if (!s->started && !s->done && srv_peer_closed(r->conn))
            atomic_store(&s->cancelled, true); /* the next delta stops the call */
    }
    bool failed = !s->started && s->st != IA_OK;
    pthread_mutex_unlock(&s->mu);
    if (failed) {
        int ret = send_failure(r, &s->res, s->st, s->error);
        atomic_fetch_sub(&r->srv->streams, 1);
        rstream_unref(s);
        return ret;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, s, stream_free);
    if (!resp) {
        stream_free(s);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_add_response_header(resp, "X-Remote-Endpoint", g->endpoint);
    r->status = 200;
    int ret = MHD_queue_response(r->conn, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

static int remote_generate(srv_req *r, const char *id, const route_target *t, bool chat) {
    gen_call *g = ia_calloc(1, sizeof *g);
    if (!g)
        return srv_send_error(r, 500, NULL, NULL, "out of memory");
    int ret = MHD_NO;
    if (!gen_call_init(r, g, id, t, chat, &ret)) {
        gen_call_free(g);
        return ret;
    }
    if (g->req.stream)
        return remote_stream(r, g);
    ia_api_result res;
    ia_status st = ia_api_call(r->srv->remote->client, g->endpoint, &g->req, &res);
    ret = st == IA_OK ? answer_plain(r, g, &res) : send_failure(r, &res, st, ia_error_message());
    ia_api_result_free(&res);
    gen_call_free(g);
    return ret;
}

/* ---- the router ---------------------------------------------------------------------- */

bool srv_remote_route(srv_req *r, int *ret) {
    struct srv_remote *rm = r->srv->remote;
    if (!rm || strcmp(r->method, "POST") != 0) {
        if (rm && strcmp(r->url, "/v1/models") == 0) {
            *ret = handle_models(r);
            return true;
        }
        return false;
    }
    int kind = strcmp(r->url, "/v1/chat/completions") == 0 ? 1
               : strcmp(r->url, "/v1/completions") == 0    ? 2
               : strcmp(r->url, "/v1/embeddings") == 0     ? 3
                                                           : 0;
    if (!kind)
        return false;
    /* only the model decides; the local handler parses (and judges) the rest */
    json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
    const char *model = json_string_value(json_object_get(j, "model"));
    char id[256];
    bool has_id = model && strlen(model) < sizeof id;
    if (has_id)
        memcpy(id, model, strlen(model) + 1);
    json_decref(j);
    route_target t; /* points into rm or id */
    if (has_id && !local_model(r->srv, id) && find_target(rm, id, &t)) {
        *ret = kind == 3 ? remote_embed(r, id, &t) : remote_generate(r, id, &t, kind == 1);
        return true;
    }
    if (r->srv->n_models == 0) {
        /* a gateway without local models: say what it does serve */
        *ret = has_id ? srv_send_error(r, 404, "model", "model_not_found",
                                       "the model '%.200s' is not served here (GET /v1/models "
                                       "lists the remote models)",
                                       id)
                      : srv_send_error(r, 400, "model", "model_not_found", "'model' is required");
        return true;
    }
    return false;
}
