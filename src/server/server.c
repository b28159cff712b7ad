/*
 * The model server's HTTP side: a libmicrohttpd daemon (one thread per
 * connection), the route table, request bodies read up to a limit, optional
 * Bearer keys, errors in each API's own JSON shape, /health and /metrics.
 *
 * A request's life: MHD calls access_handler first with the headers (a
 * Content-Length over the body limit is answered 413 there and then), then
 * with body chunks, which are kept up to the limit (a chunked body that grows
 * past it is drained and answered 413), then once more with nothing left to
 * read: that call authenticates, parses X-Priority and runs the route's
 * handler. The handler parses and validates the JSON, tokenises, queues a job
 * to the model's scheduler thread (scheduler.c) and either waits for it or
 * answers with a stream that the job feeds (generate.c). When MHD is done
 * with the connection (the response sent, or the client gone) the completion
 * callback records the route, status and duration for /metrics.
 *
 * Nothing here logs request bodies or keys; the access log (debug level)
 * has method, path, status and duration only.
 */
#define _GNU_SOURCE /* POLLRDHUP */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "ia/ipfs.h"
#include "server/server_internal.h"

ia_server_options ia_server_options_default(void) {
    ia_server_options o;
    memset(&o, 0, sizeof o);
    o.host = "127.0.0.1";
    return o;
}

static void fill_defaults(ia_server_options *o) {
    if (!o->host)
        o->host = "127.0.0.1";
    if (!o->max_queue)
        o->max_queue = 256;
    if (!o->max_batch_tokens)
        o->max_batch_tokens = 8192;
    if (!o->batch_wait_us)
        o->batch_wait_us = 2000;
    if (!o->max_streams)
        o->max_streams = 64;
    if (!o->max_body_bytes)
        o->max_body_bytes = 4u << 20;
    if (!o->max_inputs)
        o->max_inputs = 2048;
    if (!o->max_tokens)
        o->max_tokens = 4096;
    if (!o->timeout_ms)
        o->timeout_ms = 600000;
    if (!o->max_connections)
        o->max_connections = 512;
}

/* ---- API keys ---------------------------------------------------------------------------- */

void ia_server_keys_free(char **keys, size_t n) {
    for (size_t i = 0; keys && i < n; i++) {
        /* keys are secrets: wipe them before the memory goes back */
        volatile char *p = keys[i];
        while (*p)
            *p++ = 0;
        free(keys[i]);
    }
    free(keys);
}

ia_status ia_server_keys_load(const char *path, char ***keys, size_t *n) {
    *keys = NULL;
    *n = 0;
    ia_text_lines tl = {0};
    ia_status st = ia_text_lines_read(path, 1 << 20, &tl);
    if (st)
        return st;
    char **v = ia_calloc(tl.n ? tl.n : 1, sizeof *v);
    size_t k = 0;
    if (!v) {
        ia_text_lines_free(&tl);
        return IA_ENOMEM;
    }
    for (size_t i = 0; i < tl.n; i++) {
        const char *s = tl.lines[i];
        size_t len = strlen(s);
        while (len && isspace((unsigned char)*s))
            s++, len--;
        while (len && isspace((unsigned char)s[len - 1]))
            len--;
        if (len == 0 || s[0] == '#')
            continue;
        if (!(v[k] = ia_strndup(s, len))) {
            ia_server_keys_free(v, k);
            ia_text_lines_free(&tl);
            return IA_ENOMEM;
        }
        k++;
    }
    ia_text_lines_free(&tl);
    if (k == 0) {
        free(v);
        return ia_error_set(IA_EINVAL, "%s: no API key in the file (one per line)", path);
    }
    *keys = v;
    *n = k;
    return IA_OK;
}

/* Compares the presented key with every configured one, touching every byte
 * of each whatever matches, so the time taken says nothing about the keys. */
static bool key_ok(const ia_server *srv, const char *given) {
    size_t glen = strlen(given);
    unsigned match = 0;
    for (size_t k = 0; k < srv->n_keys; k++) {
        const char *key = srv->keys[k];
        size_t klen = strlen(key);
        unsigned diff = (unsigned)(klen ^ glen);
        for (size_t i = 0; i < klen; i++)
            diff |= (unsigned char)key[i] ^ (unsigned char)(i < glen ? given[i] : 0);
        match |= diff == 0;
    }
    return match != 0;
}

/* ---- answers ------------------------------------------------------------------------------ */

static int queue_response(srv_req *r, int status, struct MHD_Response *resp) {
    if (!resp)
        return MHD_NO;
    if (status == 429)
        MHD_add_response_header(resp, "Retry-After", "1");
    if (status == 401)
        MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    r->status = status;
    int ret = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

int srv_send_text(srv_req *r, int status, const char *type, const char *text, size_t len) {
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
    if (resp)
        MHD_add_response_header(resp, "Content-Type", type);
    return queue_response(r, status, resp);
}

int srv_send_json(srv_req *r, int status, json_t *body) {
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return srv_send_text(r, 500, "text/plain", "out of memory\n", 14);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    return queue_response(r, status, resp);
}

static const char *openai_type(int status) {
    switch (status) {
    case 401:
        return "authentication_error";
    case 404:
        return "not_found_error";
    case 429:
        return "rate_limit_error";
    default:
        return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

static const char *tei_type(int status) {
    if (status == 429)
        return "Overloaded";
    if (status == 503)
        return "Unhealthy";
    return status >= 500 ? "Backend" : "Validation";
}

int srv_send_error(srv_req *r, int status, const char *param, const char *code, const char *fmt,
                   ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *body;
    switch (r->dialect) {
    case IA_API_TEI:
        body = json_pack("{s:s, s:s}", "error", msg, "error_type", tei_type(status));
        break;
    case IA_API_OLLAMA:
        body = json_pack("{s:s}", "error", msg);
        break;
    default:
        body = json_pack("{s:{s:s, s:s, s:o, s:o}}", "error", "message", msg, "type",
                         openai_type(status), "param",
                         param && *param ? json_string(param) : json_null(), "code",
                         code ? json_string(code) : json_null());
        break;
    }
    return srv_send_json(r, status, body);
}

/* ---- models --------------------------------------------------------------------------------- */

srv_model *srv_model_find(srv_req *r, const char *id, srv_kind kind, int *ret) {
    ia_server *srv = r->srv;
    const char *what = kind == SRV_EMBEDDER ? "an embedding" : "a text generation";
    for (size_t i = 0; i < srv->n_models; i++) {
        srv_model *m = &srv->models[i];
        if (id ? strcmp(m->id, id) != 0 : m->kind != kind)
            continue;
        if (m->kind != kind) {
            *ret = srv_send_error(r, 400, "model", "model_not_supported",
                                  "model '%s' is not %s model", m->id, what);
            return NULL;
        }
        srv_state s = atomic_load(&m->state);
        if (s != SRV_READY) {
            *ret = srv_send_error(r, 503, "model", NULL,
                                  s == SRV_LOADING ? "model '%s' is still loading"
                                                   : "model '%s' failed to load",
                                  m->id);
            return NULL;
        }
        return m;
    }
    if (!id)
        *ret = srv_send_error(r, 400, "model", "model_not_found",
                              "this server has no %s model; name one with 'model'",
                              strchr(what, ' ') + 1);
    else
        *ret = srv_send_error(r, 404, "model", "model_not_found",
                              "the model '%.200s' does not exist on this server (GET /v1/models "
                              "lists them)",
                              id);
    return NULL;
}

/* ---- stream slots ---------------------------------------------------------------- */

bool srv_stream_acquire(srv_req *r, srv_model *m, int *ret) {
    unsigned limit = r->srv->opts.max_streams;
    if (atomic_fetch_add(&m->streams, 1) >= limit) {
        atomic_fetch_sub(&m->streams, 1);
        srv_metrics_count(&r->srv->metrics, &r->srv->metrics.rejected_full);
        *ret = srv_send_error(r, 429, NULL, "rate_limit_exceeded",
                              "model '%s' has %u streamed responses in flight, its limit "
                              "(--max-streams); retry later",
                              m->id, limit);
        return false;
    }
    atomic_fetch_add(&r->srv->streams, 1);
    return true;
}

void srv_stream_release(srv_model *m) {
    atomic_fetch_sub(&m->streams, 1);
    atomic_fetch_sub(&m->srv->streams, 1);
}

/* ---- /health and /metrics -------------------------------------------------------- */

static const char *state_name(srv_state s) {
    return s == SRV_READY ? "ready" : s == SRV_LOADING ? "loading" : "failed";
}

static int handle_health(srv_req *r) {
    json_t *models = json_array();
    bool ready = true, failed = false;
    for (size_t i = 0; i < r->srv->n_models; i++) {
        srv_model *m = &r->srv->models[i];
        srv_state s = atomic_load(&m->state);
        ready &= s == SRV_READY;
        failed |= s == SRV_FAILED;
        json_t *o = json_pack("{s:s, s:s}", "id", m->id, "state", state_name(s));
        if (s == SRV_FAILED)
            json_object_set_new(o, "error", json_string(m->error));
        json_array_append_new(models, o);
    }
    json_t *body = json_pack("{s:s, s:o}", "status",
                             ready    ? "ok"
                             : failed ? "failed"
                                      : "loading",
                             "models", models);
    return srv_send_json(r, ready ? 200 : 503, body);
}

static int handle_metrics(srv_req *r) {
    size_t len = 0;
    char *text = srv_metrics_render(r->srv, &len);
    if (text && r->srv->remote)
        srv_remote_metrics(r->srv, &text, &len);
    if (!text)
        return srv_send_text(r, 500, "text/plain", "out of memory\n", 14);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    return queue_response(r, 200, resp);
}

/* ---- routing ------------------------------------------------------------------------------- */

typedef struct route_def {
    const char *method, *path, *name;
    srv_handler fn;
    ia_api_dialect dialect;
    bool open; /* no key needed */
    bool body; /* takes a JSON body */
} route_def;

static const route_def routes[] = {
    {"GET", "/health", "/health", handle_health, IA_API_OPENAI, true, false},
    {"GET", "/metrics", "/metrics", handle_metrics, IA_API_OPENAI, true, false},
    {"GET", "/", "/", srv_handle_dashboard, IA_API_OPENAI, true, false},
    {"GET", "/stats", "/stats", srv_handle_stats, IA_API_OPENAI, true, false},
    {"GET", "/v1/models", "/v1/models", srv_handle_models, IA_API_OPENAI, false, false},
    {"POST", "/v1/embeddings", "/v1/embeddings", srv_handle_embeddings, IA_API_OPENAI, false, true},
    {"POST", "/v1/completions", "/v1/completions", srv_handle_completions, IA_API_OPENAI, false,
     true},
    {"POST", "/v1/chat/completions", "/v1/chat/completions", srv_handle_chat, IA_API_OPENAI, false,
     true},
    {"POST", "/embed", "/embed", srv_handle_tei_embed, IA_API_TEI, false, true},
    {"POST", "/tokenize", "/tokenize", srv_handle_tei_tokenize, IA_API_TEI, false, true},
    {"GET", "/info", "/info", srv_handle_tei_info, IA_API_TEI, false, false},
    {"POST", "/api/embed", "/api/embed", srv_handle_ollama_embed, IA_API_OLLAMA, false, true},
    {"GET", "/api/tags", "/api/tags", srv_handle_tags, IA_API_OLLAMA, false, false},
    {"GET", "/api/version", "/api/version", srv_handle_version, IA_API_OLLAMA, false, false},
    {"POST", "/api/generate", "/api/generate", srv_handle_ollama_generate, IA_API_OLLAMA, false,
     true},
    {"POST", "/api/chat", "/api/chat", srv_handle_ollama_chat, IA_API_OLLAMA, false, true},
};
#define N_ROUTES (sizeof routes / sizeof routes[0])
#define ROUTE_OTHER ((int)N_ROUTES)       /* unknown paths and methods, for metrics */
#define ROUTE_GATEWAY ((int)N_ROUTES + 1) /* /ipfs/ and /ipns/ (the gateway's) */

const char *srv_route_name(int route) {
    return route < ROUTE_OTHER ? routes[route].name : route == ROUTE_GATEWAY ? "/ipfs" : "other";
}
size_t srv_route_count(void) { return N_ROUTES + 2; }

/* Per connection: the body read so far and what the metrics need. */
typedef struct conn_state {
    ia_server *srv;
    char *body;
    size_t len, cap;
    bool too_large;
    int route, status;
    double t0;
} conn_state;

static int find_route(const char *url, const char *method, bool *path_found) {
    *path_found = false;
    for (size_t i = 0; i < N_ROUTES; i++) {
        if (strcmp(routes[i].path, url) != 0)
            continue;
        *path_found = true;
        if (strcmp(routes[i].method, method) == 0 ||
            (strcmp(method, "HEAD") == 0 && strcmp(routes[i].method, "GET") == 0))
            return (int)i;
    }
    return ROUTE_OTHER;
}

static bool append_body(conn_state *cs, const char *data, size_t n, size_t max) {
    if (cs->too_large || n > max - cs->len) {
        cs->too_large = true;
        return false;
    }
    if (cs->len + n + 1 > cs->cap) {
        size_t cap = cs->cap ? cs->cap : 4096;
        while (cap < cs->len + n + 1)
            cap *= 2;
        char *b = realloc(cs->body, cap);
        if (!b) {
            cs->too_large = true;
            return false;
        }
        cs->body = b;
        cs->cap = cap;
    }
    memcpy(cs->body + cs->len, data, n);
    cs->len += n;
    cs->body[cs->len] = 0;
    return true;
}

static bool parse_priority(const char *h, srv_prio *out) {
    *out = SRV_PRIO_NORMAL;
    if (!h)
        return true;
    if (strcasecmp(h, "high") == 0)
        *out = SRV_PRIO_HIGH;
    else if (strcasecmp(h, "low") == 0)
        *out = SRV_PRIO_LOW;
    else if (strcasecmp(h, "normal") != 0)
        return false;
    return true;
}

static int dispatch(ia_server *srv, conn_state *cs, struct MHD_Connection *conn, const char *url,
                    const char *method) {
    bool path_found;
    int ri = find_route(url, method, &path_found);
    srv_req r = {srv,     conn, url,           method,          cs->body ? cs->body : "",
                 cs->len, ri,   IA_API_OPENAI, SRV_PRIO_NORMAL, cs->t0,
                 0};
    int ret;
    if (ri == ROUTE_OTHER && srv->opts.gateway &&
        (strncmp(url, "/ipfs/", 6) == 0 || strncmp(url, "/ipns/", 6) == 0)) {
        /* the gateway answers in its own words (plain text errors) */
        cs->route = ROUTE_GATEWAY;
        int gret = ia_gateway_handle(srv->opts.gateway, conn, url, method);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_HTTP_STATUS);
        cs->status = ci ? (int)ci->http_status : 0;
        return gret;
    }
    if (ri == ROUTE_OTHER) {
        if (strncmp(url, "/api/", 5) == 0)
            r.dialect = IA_API_OLLAMA;
        ret = path_found
                  ? srv_send_error(&r, 405, NULL, NULL, "%s is not served on %s", method, url)
                  : srv_send_error(&r, 404, NULL, NULL, "no route %s %.200s", method, url);
        goto done;
    }
    const route_def *rt = &routes[ri];
    r.dialect = rt->dialect;
    if (!rt->open && srv->n_keys) {
        const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
        const char *given = auth && strncasecmp(auth, "Bearer ", 7) == 0 ? auth + 7 : NULL;
        while (given && *given == ' ')
            given++;
        if (!given || !key_ok(srv, given)) {
            ret = srv_send_error(&r, 401, NULL, "invalid_api_key",
                                 auth ? "the API key is not valid"
                                      : "this server needs an API key: send 'Authorization: "
                                        "Bearer KEY'");
            goto done;
        }
    }
    if (cs->too_large) {
        ret = srv_send_error(&r, 413, NULL, "request_too_large",
                             "the request body is larger than this server's limit of %zu bytes",
                             srv->opts.max_body_bytes);
        goto done;
    }
    if (!parse_priority(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Priority"),
                        &r.prio)) {
        ret = srv_send_error(&r, 400, NULL, NULL, "X-Priority must be high, normal or low");
        goto done;
    }
    if (!srv->remote || !srv_remote_route(&r, &ret))
        ret = rt->fn(&r);
done:
    cs->route = ri;
    cs->status = r.status;
    return ret;
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_size,
                                      void **con_cls) {
    (void)version;
    ia_server *srv = cls;
    conn_state *cs = *con_cls;
    if (!cs) {
        if (!(cs = ia_calloc(1, sizeof *cs)))
            return MHD_NO;
        cs->srv = srv;
        cs->t0 = ia_time_now();
        cs->route = ROUTE_OTHER;
        *con_cls = cs;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > srv->opts.max_body_bytes) {
            /* answer now: MHD then closes the connection instead of reading the body */
            cs->too_large = true;
            return dispatch(srv, cs, conn, url, method) == MHD_YES ? MHD_YES : MHD_NO;
        }
        return MHD_YES;
    }
    if (*upload_size) {
        append_body(cs, upload_data, *upload_size, srv->opts.max_body_bytes);
        *upload_size = 0;
        return MHD_YES;
    }
    return dispatch(srv, cs, conn, url, method) == MHD_YES ? MHD_YES : MHD_NO;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    (void)conn;
    ia_server *srv = cls;
    conn_state *cs = *con_cls;
    if (!cs)
        return;
    double dt = ia_time_now() - cs->t0;
    /* 499 (nginx's "client closed request"): a response, usually a stream,
     * that the client did not wait for */
    bool ok = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK;
    int code = cs->status && (ok || cs->status >= 400) ? cs->status : ok ? 200 : 499;
    srv_metrics_request(&srv->metrics, cs->route, code, dt);
    ia_log(IA_LOG_DEBUG, "serve: %s %d %.1f ms", srv_route_name(cs->route), code, dt * 1e3);
    free(cs->body);
    free(cs);
    *con_cls = NULL;
}

bool srv_peer_closed(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return false;
    struct pollfd p = {ci->connect_fd, POLLIN | POLLRDHUP, 0};
    if (poll(&p, 1, 0) <= 0)
        return false;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR))
        return true;
    char c;
    /* readable: a hang-up reads as 0 bytes; pipelined data is left in place */
    return recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    if (ia_log_get_level() < IA_LOG_INFO)
        return;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = 0;
    ia_log(IA_LOG_INFO, "serve (libmicrohttpd): %s", msg);
}

/* ---- start and stop -------------------------------------------------------------- */

static ia_status resolve(const char *host, uint16_t port, struct sockaddr_storage *ss) {
    char p[16];
    snprintf(p, sizeof p, "%u", (unsigned)port);
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    int rc = getaddrinfo(host, p, &hints, &ai);
    if (rc != 0 || !ai)
        return ia_error_set(IA_EINVAL, "serve: cannot resolve host '%s': %s", host,
                            gai_strerror(rc));
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    return IA_OK;
}

/* "NAME=PATH" or "PATH" -> id and path; the kind from the model's config. */
static ia_status model_init(ia_server *srv, srv_model *m, const char *spec) {
    m->srv = srv;
    m->end_id = -1;
    const char *eq = strchr(spec, '=');
    const char *path = eq ? eq + 1 : spec;
    if (eq && eq > spec) {
        m->id = ia_strndup(spec, (size_t)(eq - spec));
    } else {
        size_t n = strlen(path);
        while (n > 1 && path[n - 1] == '/')
            n--;
        const char *base = path + n;
        while (base > path && base[-1] != '/')
            base--;
        size_t blen = (size_t)(path + n - base);
        if (blen > 5 && strncmp(base + blen - 5, ".gguf", 5) == 0)
            blen -= 5;
        m->id = ia_strndup(base, blen);
    }
    m->path = ia_strdup(path);
    if (!m->id || !m->path)
        return IA_ENOMEM;
    if (!*m->id || !*m->path)
        return ia_error_set(IA_EINVAL, "--model '%s': expected PATH or NAME=PATH", spec);
    /* ids appear in JSON, URLs and metric labels: keep them plain */
    for (const char *c = m->id; *c; c++)
        if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20 || *c == ' ')
            return ia_error_set(IA_EINVAL,
                                "--model '%s': the model id '%s' has a space, quote, backslash or "
                                "control character; name it with NAME=PATH",
                                spec, m->id);
    json_t *cfg = NULL;
    ia_status st = ia_model_config_load(path, &cfg);
    if (st) {
        ia_error_prefix("--model %s", spec);
        return st;
    }
    ia_model_class cls;
    ia_classify_options co = {true};
    st = ia_model_classify(cfg, &co, &cls);
    json_decref(cfg);
    if (st)
        return st;
    if (cls.family == IA_FAMILY_TEXT_ENCODER)
        m->kind = SRV_EMBEDDER;
    else if (cls.family == IA_FAMILY_TEXT_DECODER)
        m->kind = SRV_GENERATOR;
    else
        return ia_error_set(IA_EUNSUPPORTED,
                            "--model %s: a %s model (%s); the server runs text encoders "
                            "(embeddings) and text decoders (generation)",
                            spec, ia_model_family_name(cls.family),
                            cls.model_type[0] ? cls.model_type : "no model_type");
    /* per-tensor types (a mix) are an encoder's alone (scheduler.c's load_model) */
    const ia_server_options *o = &srv->opts;
    bool mix = m->kind == SRV_EMBEDDER && o->weight_type && o->dtype_name;
    snprintf(m->dtype, sizeof m->dtype, "%s", mix ? o->dtype_name : ia_dtype_name(o->dtype));
    return IA_OK;
}

ia_status ia_server_start(const ia_server_options *opts, ia_server **out) {
    *out = NULL;
    if (!opts || (opts->n_models == 0 && !opts->endpoints))
        return ia_error_set(IA_EINVAL, "serve: no model given (--model PATH or --endpoints FILE)");
    ia_server *srv = ia_calloc(1, sizeof *srv);
    if (!srv)
        return IA_ENOMEM;
    srv->opts = *opts;
    fill_defaults(&srv->opts);
    srv->started = ia_time_now();
    srv->started_unix = (int64_t)time(NULL);
    srv_metrics_init(&srv->metrics);
    pthread_mutex_init(&srv->ready_mu, NULL);
    pthread_cond_init(&srv->ready_cv, NULL);
    ia_status st = IA_OK;
    if (opts->n_api_keys) {
        if (!(srv->keys = ia_calloc(opts->n_api_keys, sizeof *srv->keys))) {
            st = IA_ENOMEM;
            goto fail;
        }
        for (size_t i = 0; i < opts->n_api_keys; i++, srv->n_keys++)
            if (!opts->api_keys[i][0] || !(srv->keys[i] = ia_strdup(opts->api_keys[i]))) {
                st = opts->api_keys[i][0] ? IA_ENOMEM
                                          : ia_error_set(IA_EINVAL, "serve: an API key is empty");
                goto fail;
            }
    }
    srv->opts.api_keys = NULL;
    srv->opts.models = NULL;
    srv->opts.endpoints = NULL;
    if (opts->endpoints && (st = srv_remote_start(srv, opts->endpoints)))
        goto fail;
    if (!(srv->models = ia_calloc(opts->n_models ? opts->n_models : 1, sizeof *srv->models))) {
        st = IA_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < opts->n_models; i++) {
        srv->n_models++;
        if ((st = model_init(srv, &srv->models[i], opts->models[i])))
            goto fail;
        for (size_t j = 0; j < i; j++)
            if (strcmp(srv->models[j].id, srv->models[i].id) == 0) {
                st = ia_error_set(IA_EINVAL,
                                  "serve: two models are named '%s'; name one with NAME=PATH",
                                  srv->models[i].id);
                goto fail;
            }
    }
    srv->opts.dtype_name = NULL; /* borrowed: each model copied it */
    struct sockaddr_storage ss;
    if ((st = resolve(srv->opts.host, srv->opts.port, &ss)))
        goto fail;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_ERROR_LOG | MHD_USE_ITC;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* MHD closes a connection idle past its timeout, and it measures idleness
     * from the last socket I/O, so a request that worked for a long time in
     * its handler could be cut before its answer: keep the idle timeout past
     * the request timeout. */
    srv->daemon = MHD_start_daemon(
        flags, srv->opts.port, NULL, NULL, access_handler, srv, MHD_OPTION_NOTIFY_COMPLETED,
        completed, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 << 10),
        MHD_OPTION_CONNECTION_LIMIT, srv->opts.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)(srv->opts.timeout_ms / 1000 + 60), MHD_OPTION_END);
    if (!srv->daemon) {
        st = ia_error_set(IA_EIO, "serve: cannot listen on %s:%u (address in use?)", srv->opts.host,
                          (unsigned)srv->opts.port);
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : srv->opts.port;
    for (size_t i = 0; i < srv->n_models; i++)
        if ((st = srv_model_start(&srv->models[i])))
            goto fail;
    if (!srv->opts.load_async && (st = ia_server_wait_ready(srv, -1)))
        goto fail;
    *out = srv;
    return IA_OK;
fail:
    ia_server_stop(srv);
    return st;
}

uint16_t ia_server_port(const ia_server *srv) { return srv ? srv->port : 0; }

ia_status ia_server_wait_ready(ia_server *srv, int timeout_ms) {
    double end = ia_time_now() + timeout_ms / 1000.0;
    pthread_mutex_lock(&srv->ready_mu);
    for (;;) {
        size_t ready = 0;
        for (size_t i = 0; i < srv->n_models; i++) {
            srv_model *m = &srv->models[i];
            srv_state s = atomic_load(&m->state);
            if (s == SRV_FAILED) {
                pthread_mutex_unlock(&srv->ready_mu);
                return ia_error_set(IA_EIO, "%s", m->error);
            }
            ready += s == SRV_READY;
        }
        if (ready == srv->n_models)
            break;
        if (timeout_ms >= 0 && ia_time_now() >= end) {
            pthread_mutex_unlock(&srv->ready_mu);
            return ia_error_set(IA_ERANGE, "serve: models still loading after %d ms", timeout_ms);
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L)
            ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&srv->ready_cv, &srv->ready_mu, &ts);
    }
    pthread_mutex_unlock(&srv->ready_mu);
    return IA_OK;
}

void ia_server_stop(ia_server *srv) {
    if (!srv)
        return;
    atomic_store(&srv->stopping, true);
    /* Schedulers first: they cancel what runs and fail what waits, which
     * lets the connection threads finish; then the daemon joins those. */
    for (size_t i = 0; i < srv->n_models; i++)
        srv_model_stop(&srv->models[i]);
    if (srv->daemon)
        MHD_stop_daemon(srv->daemon);
    srv_remote_stop(srv);
    for (size_t i = 0; i < srv->n_models; i++) {
        srv_model *m = &srv->models[i];
        if (m->handle)
            ia_pool_release(m->handle);
        ia_generator_free(m->gen);
        if (m->sync_init) {
            pthread_mutex_destroy(&m->mu);
            pthread_cond_destroy(&m->cv);
        }
        free(m->id);
        free(m->path);
    }
    free(srv->models);
    ia_server_keys_free(srv->keys, srv->n_keys);
    srv_metrics_destroy(&srv->metrics);
    pthread_mutex_destroy(&srv->ready_mu);
    pthread_cond_destroy(&srv->ready_cv);
    free(srv);
}
