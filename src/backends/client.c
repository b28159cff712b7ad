/*
 * ia_api_client: the endpoints config joined to the resilience layer and
 * the HTTP transport. Creating a client reads every endpoint's keys (from
 * the environment or a 0600 file) and registers the endpoints, their keys
 * (by id: the variable name or "FILE#n") and fallbacks with one
 * ia_resilience handle.
 *
 * A call is one ia_resilience_submit whose callback (attempt()) performs a
 * single HTTP exchange with the key the layer picked: the endpoint's adapter
 * builds the request, http.c carries it (streamed bodies go through the SSE
 * or NDJSON parser into the adapter's event handler), and the result is
 * classified for the layer: ok; retryable (5xx, 529, 408, timeouts, resets,
 * a stream cut short before anything reached the caller); rate-limited (429,
 * with Retry-After / retry-after-ms); fatal (other 4xx, spend limits,
 * malformed answers, a stream cut short after deltas were already handed to
 * the caller, since a retry would repeat them); cancelled (the caller's
 * delta callback said stop). Embedding requests on endpoints with batching
 * go through an ia_batcher that combines concurrent requests.
 *
 * Keys live in this file only. Messages quote the provider's error text,
 * which never contains our key.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/backends_internal.h"

#define MAX_STREAM_EVENT ((size_t)4 << 20)

typedef struct api_endpoint {
    const ia_api_endpoint_config *cfg;
    const ia_api_adapter *ad;
    char *keys[IA_API_MAX_KEYS];
    char *key_ids[IA_API_MAX_KEYS];
    size_t n_keys;
    ia_batcher *batcher; /* embeddings, when batch_max_items > 1 */
} api_endpoint;

struct ia_api_client {
    const ia_api_config *cfg;
    api_endpoint *eps;
    size_t n;
    ia_resilience *res;
};

/* ---- keys --------------------------------------------------------------------------- */

static void wipe_free(char *s) {
    if (!s)
        return;
    volatile char *p = s;
    while (*p)
        *p++ = 0;
    free(s);
}

/* A key goes into an HTTP header: control characters would split it. */
static bool key_ok(const char *k) {
    for (const unsigned char *p = (const unsigned char *)k; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

static ia_status read_key_file(const ia_api_config *cfg, api_endpoint *ep) {
    const ia_api_endpoint_config *c = ep->cfg;
    const char *src = ia_api_config_source(cfg);
    int fd = open(c->key_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ia_error_set(IA_EIO, "%s:%d: endpoint '%s': cannot open api_key_file %s: %s", src,
                            c->line, c->name, c->key_file, strerror(errno));
    struct stat sb;
    char buf[8192];
    ssize_t n = -1;
    ia_status st = IA_OK;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = ia_error_set(IA_EIO, "%s:%d: endpoint '%s': api_key_file %s is not a regular file",
                          src, c->line, c->name, c->key_file);
    } else if (sb.st_mode & 077) {
        st = ia_error_set(IA_EINVAL,
                          "%s:%d: endpoint '%s': api_key_file %s has mode %03o; it must not be "
                          "readable by group or others (chmod 600 it)",
                          src, c->line, c->name, c->key_file, (unsigned)(sb.st_mode & 0777));
    } else if ((n = read(fd, buf, sizeof buf - 1)) < 0) {
        st = ia_error_set(IA_EIO, "%s:%d: endpoint '%s': cannot read api_key_file %s: %s", src,
                          c->line, c->name, c->key_file, strerror(errno));
    }
    close(fd);
    if (st != IA_OK)
        return st;
    buf[n] = 0;
    /* One key per non-empty line; surrounding blanks dropped. */
    char *save = NULL;
    for (char *line = strtok_r(buf, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
        while (*line == ' ' || *line == '\t')
            line++;
        size_t len = strlen(line);
        while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
            line[--len] = 0;
        if (len == 0)
            continue;
        if (!key_ok(line)) {
            st = ia_error_set(
                IA_EINVAL,
                "%s:%d: endpoint '%s': key %zu in api_key_file %s has a control character", src,
                c->line, c->name, ep->n_keys + 1, c->key_file);
            break;
        }
        if (ep->n_keys == IA_API_MAX_KEYS) {
            st = ia_error_set(IA_EINVAL,
                              "%s:%d: endpoint '%s': api_key_file %s has more than %d keys", src,
                              c->line, c->name, c->key_file, IA_API_MAX_KEYS);
            break;
        }
        char id[64];
        snprintf(id, sizeof id, "key_file#%zu", ep->n_keys + 1);
        ep->keys[ep->n_keys] = ia_strdup(line);
        ep->key_ids[ep->n_keys] = ia_strdup(id);
        if (!ep->keys[ep->n_keys] || !ep->key_ids[ep->n_keys]) {
            st = IA_ENOMEM;
            break;
        }
        ep->n_keys++;
    }
    memset(buf, 0, sizeof buf);
    if (st == IA_OK && ep->n_keys == 0)
        st = ia_error_set(IA_EINVAL, "%s:%d: endpoint '%s': api_key_file %s holds no key", src,
                          c->line, c->name, c->key_file);
    return st;
}

static ia_status read_keys(const ia_api_config *cfg, api_endpoint *ep) {
    const ia_api_endpoint_config *c = ep->cfg;
    const char *src = ia_api_config_source(cfg);
    if (c->key_file)
        return read_key_file(cfg, ep);
    for (size_t i = 0; i < c->n_key_envs; i++) {
        const char *v = getenv(c->key_envs[i]);
        if (!v || !*v)
            return ia_error_set(IA_EINVAL,
                                "%s:%d: endpoint '%s': environment variable %s (its API key) is "
                                "not set",
                                src, c->line, c->name, c->key_envs[i]);
        if (!key_ok(v))
            return ia_error_set(IA_EINVAL,
                                "%s:%d: endpoint '%s': environment variable %s holds a control "
                                "character (a newline?); it cannot be sent in a header",
                                src, c->line, c->name, c->key_envs[i]);
        ep->keys[i] = ia_strdup(v);
        ep->key_ids[i] = ia_strdup(c->key_envs[i]);
        if (!ep->keys[i] || !ep->key_ids[i])
            return IA_ENOMEM;
        ep->n_keys = i + 1;
    }
    if (ep->n_keys == 0 && ep->ad->needs_key)
        return ia_error_set(IA_EINVAL,
                            "%s:%d: endpoint '%s': provider %s needs an API key: give api_key_env, "
                            "api_key_envs or api_key_file",
                            src, c->line, c->name, ia_api_provider_name(c->provider));
    return IA_OK;
}

/* ---- one attempt -------------------------------------------------------------------- */

typedef struct call_ctx {
    ia_api_client *client;
    const ia_api_request *req;
    ia_api_result result; /* the successful attempt's */
    int http_status;      /* of the last attempt */
} call_ctx;

typedef struct sink_ctx {
    const ia_api_adapter *ad;
    ia_api_stream_state *state;
    ia_sse_parser *sse;
    ia_ndjson_parser *nd;
} sink_ctx;

static ia_status on_sse(void *ctx, const ia_sse_event *ev) {
    sink_ctx *s = ctx;
    return s->ad->stream_event(s->state, ev->event, ev->data, ev->data_len);
}

static ia_status on_line(void *ctx, const char *line, size_t len) {
    sink_ctx *s = ctx;
    return s->ad->stream_event(s->state, NULL, line, len);
}

static ia_status on_bytes(void *ctx, const char *data, size_t n) {
    sink_ctx *s = ctx;
    return s->sse ? ia_sse_parser_feed(s->sse, data, n) : ia_ndjson_parser_feed(s->nd, data, n);
}

/* The model to ask a (possibly fallback) endpoint for: the request's when
 * this endpoint lists it (or lists none), else the endpoint's default. */
static const char *pick_model(const ia_api_endpoint_config *c, const ia_api_request *req) {
    if (req->model) {
        if (c->n_models == 0)
            return req->model;
        for (size_t i = 0; i < c->n_models; i++)
            if (strcmp(c->models[i], req->model) == 0)
                return req->model;
    }
    return c->n_models ? c->models[0] : "";
}

/* o->message = prefix + detail, cut to fit. */
static void set_msg(ia_call_outcome *o, const char *prefix, const char *detail) {
    size_t n = 0, cap = sizeof o->message - 1;
    for (const char *p = prefix; *p && n < cap; p++)
        o->message[n++] = *p;
    for (const char *p = detail; *p && n < cap; p++)
        o->message[n++] = *p;
    o->message[n] = 0;
}

/* A streamed 2xx body ended: was it complete, an in-stream error, or cut? */
static void stream_outcome(const ia_api_stream_state *ss, ia_status parse_st, bool truncated,
                           ia_call_outcome *o) {
    if (ss->stopped) {
        o->cls = IA_CALL_CANCELLED;
        set_msg(o, "", "stopped by the caller");
    } else if (ss->error_status) {
        int es = ss->error_status;
        o->cls = es == 429                                     ? IA_CALL_RATE_LIMITED
                 : (es >= 500 || es == 408) && ss->deltas == 0 ? IA_CALL_RETRYABLE
                                                               : IA_CALL_FATAL;
        o->http_status = es;
        set_msg(o, "error event in the stream: ", ss->error);
    } else if (parse_st != IA_OK) {
        o->cls = IA_CALL_FATAL;
        set_msg(o, "malformed stream from the provider: ", ia_error_message());
    } else if (!ss->done) {
        o->cls = ss->deltas == 0 ? IA_CALL_RETRYABLE : IA_CALL_FATAL;
        snprintf(o->message, sizeof o->message,
                 "truncated stream: it ended without its end marker%s after %zu deltas",
                 truncated ? " and mid-event" : "", ss->deltas);
    } else {
        o->cls = IA_CALL_OK;
    }
}

static void attempt(void *vctx, const ia_call_attempt *a, ia_call_outcome *o) {
    call_ctx *cc = vctx;
    api_endpoint *ep = a->endpoint_user;
    const ia_api_request *req = cc->req;
    const ia_api_endpoint_config *c = ep->cfg;
    ia_api_http_call hc = {0};
    ia_http_response resp = {0};
    ia_api_result res = {.tokens_in = -1, .tokens_out = -1};
    ia_api_stream_state ss = {.res = &res, .on_delta = req->on_delta, .delta_ctx = req->delta_ctx};
    sink_ctx sk = {.ad = ep->ad, .state = &ss};
    const char *key =
        a->key_index >= 0 && (size_t)a->key_index < ep->n_keys ? ep->keys[a->key_index] : NULL;

    ia_error_clear();
    ia_status st = ep->ad->build(c, req, pick_model(c, req), key, &hc);
    if (st != IA_OK) {
        o->cls = IA_CALL_FATAL;
        set_msg(o, "", ia_error_message());
        goto done;
    }
    ia_http_request hr = {
        .method = hc.method,
        .url = hc.url,
        .headers = (const char *const *)hc.headers,
        .n_headers = hc.n_headers,
        .body = hc.body,
        .body_len = hc.body_len,
        .connect_ms = a->connect_timeout_ms,
        .first_byte_ms = a->first_byte_timeout_ms,
        .total_ms = a->timeout_ms,
        .max_body = (size_t)c->max_body_bytes,
    };
    if (hc.stream == IA_API_STREAM_SSE)
        st = ia_sse_parser_create(MAX_STREAM_EVENT, on_sse, &sk, &sk.sse);
    else if (hc.stream == IA_API_STREAM_NDJSON)
        st = ia_ndjson_parser_create(MAX_STREAM_EVENT, on_line, &sk, &sk.nd);
    if (st != IA_OK) {
        o->cls = IA_CALL_FATAL;
        set_msg(o, "", ia_error_message());
        goto done;
    }
    if (hc.stream != IA_API_STREAM_NONE) {
        hr.sink = on_bytes;
        hr.sink_ctx = &sk;
    }
    st = ia_http_perform(&hr, &resp);
    o->http_status = (int)resp.status;
    cc->http_status = (int)resp.status;
    o->retry_after_ms = resp.retry_after_ms;
    o->should_retry = resp.should_retry;
    if (resp.fail == IA_HTTP_FAIL_ABORTED && resp.sink_status != IA_OK) {
        /* The parser or the adapter stopped the stream. */
        stream_outcome(&ss, ss.stopped || ss.error_status ? IA_OK : resp.sink_status, false, o);
        goto done;
    }
    if (st != IA_OK) {
        o->cls = ia_api_classify(&resp);
        if (hc.stream != IA_API_STREAM_NONE && ss.deltas > 0 && o->cls == IA_CALL_RETRYABLE) {
            o->cls = IA_CALL_FATAL; /* the caller already saw part of it */
            char prefix[64];
            snprintf(prefix, sizeof prefix, "stream broken after %zu deltas: ", ss.deltas);
            set_msg(o, prefix, resp.error);
        } else {
            set_msg(o, "", resp.error);
        }
        goto done;
    }
    o->cls = ia_api_classify(&resp);
    if (o->cls != IA_CALL_OK) {
        char text[160];
        ia_api_error_text(resp.body, resp.body_len, text, sizeof text);
        set_msg(o, "", text[0] ? text : "(no error text)");
        goto done;
    }
    if (hc.stream != IA_API_STREAM_NONE) {
        bool truncated = false;
        ia_status fst =
            sk.sse ? ia_sse_parser_finish(sk.sse, &truncated) : ia_ndjson_parser_finish(sk.nd);
        stream_outcome(&ss, fst, truncated, o);
        if (o->cls == IA_CALL_OK) {
            free(res.text);
            res.text = ss.text ? ss.text : ia_strdup("");
            ss.text = NULL;
            if (!res.text) {
                o->cls = IA_CALL_FATAL;
                set_msg(o, "", "out of memory");
            }
        }
    } else {
        st = ep->ad->parse_for ? ep->ad->parse_for(c, req->op, resp.body, resp.body_len, &res)
                               : ep->ad->parse(req->op, resp.body, resp.body_len, &res);
        if (st == IA_OK && req->op == IA_API_EMBED && res.n_embeddings != req->n_texts) {
            char d[96];
            snprintf(d, sizeof d, "%zu embeddings for %zu texts", res.n_embeddings, req->n_texts);
            st = ia_error_set(IA_EPARSE, "the provider answered %s", d);
        }
        if (st == IA_OK && req->op == IA_API_RERANK)
            for (size_t i = 0; i < res.n_ranks && st == IA_OK; i++)
                if (res.ranks[i].index >= req->n_texts)
                    st = ia_error_set(IA_EPARSE, "rerank index %zu is past the %zu texts",
                                      res.ranks[i].index, req->n_texts);
        if (st != IA_OK) {
            o->cls = IA_CALL_FATAL;
            set_msg(o, "malformed response: ", ia_error_message());
        }
    }
    if (o->cls == IA_CALL_OK) {
        o->tokens_in = res.tokens_in > 0 ? (uint64_t)res.tokens_in : 0;
        o->tokens_out = res.tokens_out > 0 ? (uint64_t)res.tokens_out : 0;
        res.http_status = (int)resp.status;
        ia_api_result_free(&cc->result);
        cc->result = res;
        memset(&res, 0, sizeof res);
    }
done:
    ia_sse_parser_destroy(sk.sse);
    ia_ndjson_parser_destroy(sk.nd);
    free(ss.text);
    ia_api_result_free(&res);
    ia_http_response_free(&resp);
    ia_api_http_call_free(&hc);
}

/* ---- batching of embeddings ----------------------------------------------------------- */

typedef struct batch_item {
    const ia_api_request *req;
    ia_api_result result;
} batch_item;

typedef struct batch {
    ia_api_request req;
    const char **texts;
    call_ctx cc;
} batch;

static ia_status batch_combine(void *ctx, void *const *items, size_t n, void **out) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += ((batch_item *)items[i])->req->n_texts;
    batch *b = ia_calloc(1, sizeof *b);
    if (!b)
        return IA_ENOMEM;
    b->texts = ia_malloc_array(total ? total : 1, sizeof *b->texts);
    if (!b->texts) {
        free(b);
        return IA_ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const ia_api_request *r = ((batch_item *)items[i])->req;
        for (size_t j = 0; j < r->n_texts; j++)
            b->texts[k++] = r->texts[j];
    }
    b->req = *((batch_item *)items[0])->req;
    b->req.texts = b->texts;
    b->req.n_texts = total;
    b->cc.client = ctx;
    b->cc.req = &b->req;
    *out = b;
    return IA_OK;
}

static void batch_call(void *ctx, const ia_call_attempt *a, ia_call_outcome *o) {
    batch *b = ctx;
    attempt(&b->cc, a, o);
}

static ia_status batch_split(void *ctx, void *vb, void *const *items, size_t n) {
    batch *b = vb;
    const ia_api_result *r = &b->cc.result;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        batch_item *it = items[i];
        size_t k = it->req->n_texts;
        float *v = ia_malloc_array(k ? k : 1, r->dim * sizeof(float));
        if (!v)
            return IA_ENOMEM;
        memcpy(v, r->embeddings + at * r->dim, k * r->dim * sizeof(float));
        it->result.embeddings = v;
        it->result.n_embeddings = k;
        it->result.dim = r->dim;
        it->result.http_status = r->http_status;
        it->result.tokens_in = -1;
        it->result.tokens_out = -1;
        at += k;
    }
    return IA_OK;
}

static void batch_release(void *ctx, void *vb) {
    batch *b = vb;
    ia_api_result_free(&b->cc.result);
    free(b->texts);
    free(b);
}

/* ---- the client ---------------------------------------------------------------------- */

static ia_key_policy key_policy(ia_api_key_selection s) {
    return s == IA_API_KEYS_LEAST_LOADED ? IA_KEYS_LEAST_LOADED
           : s == IA_API_KEYS_PINNED     ? IA_KEYS_PINNED
                                         : IA_KEYS_ROUND_ROBIN;
}

static ia_status register_endpoint(ia_api_client *c, api_endpoint *ep) {
    const ia_api_endpoint_config *e = ep->cfg;
    ia_endpoint_config rc;
    ia_resilience_endpoint_defaults(&rc);
    rc.name = e->name;
    rc.max_concurrency = e->max_concurrency;
    rc.queue_capacity = e->queue_capacity;
    rc.retry.max_attempts = e->retry_max_attempts;
    rc.retry.base_backoff_ms = (int)e->retry_base_ms;
    rc.retry.max_backoff_ms = (int)e->retry_max_ms;
    rc.breaker.window_calls = e->breaker_window;
    rc.breaker.window_ms = (int)e->breaker_window_ms;
    rc.breaker.min_calls = e->breaker_min_calls;
    rc.breaker.failure_rate = e->breaker_failure_rate;
    rc.breaker.open_ms = (int)e->breaker_open_ms;
    rc.breaker.half_open_probes = e->breaker_half_open_probes;
    rc.breaker.slow_call_ms = (int)e->breaker_slow_ms;
    rc.key_ids = (const char *const *)ep->key_ids;
    rc.n_keys = ep->n_keys;
    rc.key_policy = key_policy(e->key_selection);
    rc.pinned_key = 0;
    rc.key_cooldown_ms = (int)e->key_cooldown_ms;
    rc.timeouts.connect_ms = (int)e->connect_ms;
    rc.timeouts.first_byte_ms = (int)e->first_byte_ms;
    rc.timeouts.total_ms = (int)e->total_ms;
    rc.batch.max_items = e->batch_max_items > 0 ? e->batch_max_items : 1;
    rc.batch.max_wait_ms = (int)e->batch_max_wait_ms;
    rc.user = ep;
    ia_status st = ia_resilience_add_endpoint(c->res, &rc);
    if (st == IA_OK && rc.batch.max_items > 1) {
        ia_batch_ops ops = {batch_combine, batch_call, batch_split, batch_release};
        st = ia_batcher_create(c->res, e->name, &ops, c, &ep->batcher);
    }
    return st;
}

ia_status ia_api_client_create(const ia_api_config *cfg, ia_api_client **out) {
    *out = NULL;
    ia_api_client *c = ia_calloc(1, sizeof *c);
    if (!c)
        return IA_ENOMEM;
    c->cfg = cfg;
    c->n = ia_api_config_count(cfg);
    c->eps = ia_calloc(c->n ? c->n : 1, sizeof *c->eps);
    ia_status st = c->eps ? ia_resilience_create(NULL, &c->res) : IA_ENOMEM;
    for (size_t i = 0; st == IA_OK && i < c->n; i++) {
        api_endpoint *ep = &c->eps[i];
        ep->cfg = ia_api_config_endpoint(cfg, i);
        ep->ad = ia_api_adapter_get(ep->cfg->provider);
        if (!ep->ad)
            st = ia_error_set(IA_EUNSUPPORTED, "endpoint '%s': no adapter for provider %s",
                              ep->cfg->name, ia_api_provider_name(ep->cfg->provider));
        if (st == IA_OK)
            st = read_keys(cfg, ep);
        if (st == IA_OK)
            st = register_endpoint(c, ep);
    }
    for (size_t i = 0; st == IA_OK && i < c->n; i++) {
        const ia_api_endpoint_config *e = c->eps[i].cfg;
        if (e->n_fallbacks)
            st = ia_resilience_set_fallbacks(c->res, e->name, e->fallbacks, e->n_fallbacks);
    }
    if (st != IA_OK) {
        ia_api_client_destroy(c);
        return st;
    }
    *out = c;
    return IA_OK;
}

void ia_api_client_destroy(ia_api_client *c) {
    if (!c)
        return;
    for (size_t i = 0; c->eps && i < c->n; i++) {
        ia_batcher_destroy(c->eps[i].batcher);
        for (size_t k = 0; k < c->eps[i].n_keys; k++) {
            wipe_free(c->eps[i].keys[k]);
            free(c->eps[i].key_ids[k]);
        }
    }
    ia_resilience_destroy(c->res);
    free(c->eps);
    free(c);
}

static api_endpoint *find(ia_api_client *c, const char *name) {
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->eps[i].cfg->name, name) == 0)
            return &c->eps[i];
    return NULL;
}

static ia_status check_request(const char *name, const ia_api_request *req) {
    if (req->n_texts == 0 || !req->texts)
        return ia_error_set(IA_EINVAL, "endpoint '%s': %s needs at least one text", name,
                            ia_api_op_name(req->op));
    for (size_t i = 0; i < req->n_texts; i++)
        if (!req->texts[i])
            return ia_error_set(IA_EINVAL, "endpoint '%s': text %zu is missing", name, i);
    if (req->op == IA_API_RERANK && !req->query)
        return ia_error_set(IA_EINVAL, "endpoint '%s': rerank needs a query", name);
    if (req->stream && req->op != IA_API_CHAT && req->op != IA_API_COMPLETE)
        return ia_error_set(IA_EINVAL, "endpoint '%s': only chat and complete stream", name);
    return IA_OK;
}

static ia_api_failure failure_of(ia_call_end end) {
    switch (end) {
    case IA_END_OK:
        return IA_API_FAIL_NONE;
    case IA_END_CANCELLED:
        return IA_API_FAIL_CANCELLED;
    case IA_END_EXHAUSTED:
        return IA_API_FAIL_EXHAUSTED;
    case IA_END_DEADLINE:
        return IA_API_FAIL_DEADLINE;
    case IA_END_QUEUE_FULL:
        return IA_API_FAIL_QUEUE_FULL;
    case IA_END_BREAKER_OPEN:
        return IA_API_FAIL_BREAKER_OPEN;
    default:
        return IA_API_FAIL_REFUSED;
    }
}

ia_status ia_api_call(ia_api_client *c, const char *endpoint, const ia_api_request *req,
                      ia_api_result *out) {
    memset(out, 0, sizeof *out);
    api_endpoint *ep = find(c, endpoint);
    if (!ep)
        return ia_error_set(IA_ENOTFOUND, "endpoint '%s' is not configured", endpoint);
    ia_status st = check_request(endpoint, req);
    if (st != IA_OK) {
        out->failure = IA_API_FAIL_REFUSED;
        return st;
    }
    ia_priority prio = (ia_priority)(req->use_default_priority ? ep->cfg->priority : req->priority);
    if ((unsigned)prio >= IA_PRIORITY_COUNT)
        prio = IA_PRIORITY_NORMAL;
    int timeout = req->deadline_ms > 0 ? (int)req->deadline_ms : 0;
    ia_call_result cr;
    memset(&cr, 0, sizeof cr);
    cr.end = IA_END_FATAL; /* combine/split failures leave cr as it was */
    if (ep->batcher && req->op == IA_API_EMBED) {
        batch_item item = {.req = req};
        st = ia_batcher_submit(ep->batcher, &item, prio, timeout, &cr);
        if (st != IA_OK)
            ia_api_result_free(&item.result);
        else
            *out = item.result;
    } else {
        call_ctx cc = {.client = c, .req = req};
        st = ia_resilience_submit(c->res, endpoint, prio, attempt, &cc, timeout, &cr);
        if (st != IA_OK)
            ia_api_result_free(&cc.result);
        else
            *out = cc.result;
    }
    if (st != IA_OK) {
        out->failure = failure_of(cr.end);
        out->http_status = cr.outcome.http_status;
    }
    out->attempts = cr.attempts;
    snprintf(out->served_by, sizeof out->served_by, "%s", cr.served_by ? cr.served_by : endpoint);
    return st;
}

ia_status ia_api_stats_json(ia_api_client *c, char **out) {
    json_t *j = NULL;
    *out = NULL;
    ia_status st = ia_resilience_stats_json(c->res, &j);
    if (st != IA_OK)
        return st;
    *out = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    return *out ? IA_OK : ia_error_set(IA_ENOMEM, "out of memory writing statistics");
}

ia_status ia_api_stats_prometheus(ia_api_client *c, char **out) {
    size_t len;
    return ia_resilience_stats_prometheus(c->res, out, &len);
}

ia_status ia_api_check(ia_api_client *c, const char *endpoint, ia_api_probe *out) {
    memset(out, 0, sizeof *out);
    api_endpoint *ep = find(c, endpoint);
    if (!ep)
        return ia_error_set(IA_ENOTFOUND, "endpoint '%s' is not configured", endpoint);
    ia_api_http_call hc = {.method = "GET"};
    ia_http_response resp = {0};
    ia_status st = IA_OK;
    hc.url = ia_api_url(ep->cfg, "%s", ep->ad->probe_path);
    if (!hc.url)
        return IA_ENOMEM;
    const char *key = ep->n_keys ? ep->keys[0] : NULL;
    if (ep->cfg->provider == IA_API_PROVIDER_ANTHROPIC) {
        st = ia_api_http_call_header(&hc, "anthropic-version: 2023-06-01");
        if (st == IA_OK && key)
            st = ia_api_http_call_header(&hc, "x-api-key: %s", key);
    } else if (ep->cfg->provider == IA_API_PROVIDER_GEMINI) {
        if (key)
            st = ia_api_http_call_header(&hc, "x-goog-api-key: %s", key);
    } else if (key) {
        st = ia_api_http_call_header(&hc, "Authorization: Bearer %s", key);
    }
    if (st != IA_OK)
        goto done;
    ia_http_request hr = {
        .method = "GET",
        .url = hc.url,
        .headers = (const char *const *)hc.headers,
        .n_headers = hc.n_headers,
        .connect_ms = ep->cfg->connect_ms,
        .first_byte_ms = ep->cfg->first_byte_ms,
        .total_ms = ep->cfg->connect_ms + ep->cfg->first_byte_ms > 0
                        ? ep->cfg->connect_ms + ep->cfg->first_byte_ms
                        : 30000,
        .max_body = (size_t)1 << 20,
    };
    ia_status hst = ia_http_perform(&hr, &resp);
    out->latency_ms = resp.latency_ms;
    out->http_status = (int)resp.status;
    if (hst != IA_OK) {
        snprintf(out->message, sizeof out->message, "%s", resp.error);
    } else if (resp.status < 200 || resp.status >= 300) {
        char text[160];
        ia_api_error_text(resp.body, resp.body_len, text, sizeof text);
        snprintf(out->message, sizeof out->message, "HTTP %ld%s%s", resp.status,
                 text[0] ? ": " : "", text);
    } else {
        out->ok = true;
    }
done:
    ia_http_response_free(&resp);
    ia_api_http_call_free(&hc);
    return st;
}
