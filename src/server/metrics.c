/*
 * The server's counters and histograms, and /metrics in the Prometheus text
 * exposition format (version 0.0.4): requests by route and status code,
 * request latency per route, time to first token, queue wait, embedding
 * batch sizes (sequences and tokens), sequences per generation step, tokens
 * in and out, queue depth and
 * model state per model, streams in flight, and the process pool's counters.
 * One mutex guards everything here; updates are a few additions under it.
 * GET /stats (dashboard.c) reads the same counters through
 * srv_metrics_snapshot and srv_hist_quantile.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_internal.h"

static const double time_buckets[SRV_HIST_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                      0.25,  0.5,    1,     2.5,  5,     10,   30};
static const double size_buckets[SRV_HIST_BUCKETS] = {1,   2,   4,   8,    16,   32,   64,
                                                      128, 256, 512, 1024, 2048, 4096, 8192};

void srv_metrics_init(srv_metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void srv_metrics_destroy(srv_metrics *m) { pthread_mutex_destroy(&m->mu); }

static void hist_add(srv_hist *h, const double *bounds, double v) {
    int b = 0;
    while (b < SRV_HIST_BUCKETS && v > bounds[b])
        b++;
    h->counts[b]++;
    h->sum += v;
    h->n++;
}

void srv_metrics_request(srv_metrics *m, int route, int code, double seconds) {
    if (route < 0 || route >= SRV_MAX_ROUTES)
        return;
    int cls = code / 100;
    if (cls < 1 || cls > 5)
        cls = 5;
    pthread_mutex_lock(&m->mu);
    srv_route_stats *r = &m->routes[route];
    for (int i = 0; i < 8; i++) {
        if (r->code_of[cls][i] == code || r->code_of[cls][i] == 0 || i == 7) {
            if (r->code_of[cls][i] == 0)
                r->code_of[cls][i] = code;
            r->codes[cls][i]++;
            break;
        }
    }
    hist_add(&r->latency, time_buckets, seconds);
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_ttft(srv_metrics *m, double seconds) {
    pthread_mutex_lock(&m->mu);
    hist_add(&m->ttft, time_buckets, seconds);
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_wait(srv_metrics *m, double seconds) {
    pthread_mutex_lock(&m->mu);
    hist_add(&m->queue_wait, time_buckets, seconds);
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_batch(srv_metrics *m, size_t seqs, size_t tokens) {
    pthread_mutex_lock(&m->mu);
    hist_add(&m->batch_seqs, size_buckets, (double)seqs);
    hist_add(&m->batch_tokens, size_buckets, (double)tokens);
    m->batches++;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_gen_batch(srv_metrics *m, size_t seqs) {
    pthread_mutex_lock(&m->mu);
    hist_add(&m->gen_batch, size_buckets, (double)seqs);
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_tokens(srv_metrics *m, size_t in, size_t out) {
    pthread_mutex_lock(&m->mu);
    m->tokens_in += in;
    m->tokens_out += out;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_count(srv_metrics *m, uint64_t *counter) {
    pthread_mutex_lock(&m->mu);
    (*counter)++;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_snapshot(srv_metrics *m, srv_metrics *out) {
    pthread_mutex_lock(&m->mu);
    memcpy(out, m, sizeof *out);
    pthread_mutex_unlock(&m->mu);
}

double srv_hist_quantile(const srv_hist *h, bool time, double q) {
    const double *bounds = time ? time_buckets : size_buckets;
    if (h->n == 0)
        return 0;
    double rank = q * (double)h->n;
    uint64_t cum = 0;
    for (int b = 0; b < SRV_HIST_BUCKETS; b++) {
        if (h->counts[b] && (double)(cum + h->counts[b]) >= rank) {
            /* sizes are at least 1: the first size bucket holds only 1s */
            double lo = b ? bounds[b - 1] : time ? 0 : bounds[0], hi = bounds[b];
            return lo + (hi - lo) * ((rank - (double)cum) / (double)h->counts[b]);
        }
        cum += h->counts[b];
    }
    /* in the +Inf bucket: the largest finite bound, as Prometheus answers */
    return bounds[SRV_HIST_BUCKETS - 1];
}

/* ---- rendering ---------------------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...) {
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

static void put_hist(sbuf *b, const char *name, const char *labels, const srv_hist *h,
                     const double *bounds) {
    uint64_t cum = 0;
    const char *sep = labels[0] ? "," : "";
    for (int i = 0; i < SRV_HIST_BUCKETS; i++) {
        cum += h->counts[i];
        put(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, bounds[i],
            (unsigned long long)cum);
    }
    cum += h->counts[SRV_HIST_BUCKETS];
    put(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)cum);
    put(b, "%s_sum%s%s%s %.9g\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "", h->sum);
    put(b, "%s_count%s%s%s %llu\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
        (unsigned long long)h->n);
}

char *srv_metrics_render(ia_server *srv, size_t *len) {
    sbuf b = {malloc(16384), 0, 16384, false};
    if (!b.p)
        return NULL;
    b.p[0] = 0;
    srv_metrics *m = &srv->metrics;
    /* copy under the lock, format outside it */
    srv_metrics snap;
    pthread_mutex_lock(&m->mu);
    memcpy(&snap, m, sizeof snap);
    pthread_mutex_unlock(&m->mu);
    size_t nr = srv_route_count();

    put(&b, "# HELP ia_http_requests_total HTTP requests answered, by route and status code.\n"
            "# TYPE ia_http_requests_total counter\n");
    for (size_t r = 0; r < nr && r < SRV_MAX_ROUTES; r++)
        for (int c = 1; c <= 5; c++)
            for (int i = 0; i < 8 && snap.routes[r].code_of[c][i]; i++)
                put(&b, "ia_http_requests_total{route=\"%s\",code=\"%d\"} %llu\n",
                    srv_route_name((int)r), snap.routes[r].code_of[c][i],
                    (unsigned long long)snap.routes[r].codes[c][i]);
    put(&b, "# HELP ia_http_errors_total HTTP requests answered with a 4xx or 5xx status.\n"
            "# TYPE ia_http_errors_total counter\n");
    for (size_t r = 0; r < nr && r < SRV_MAX_ROUTES; r++) {
        uint64_t e = 0;
        for (int c = 4; c <= 5; c++)
            for (int i = 0; i < 8; i++)
                e += snap.routes[r].codes[c][i];
        put(&b, "ia_http_errors_total{route=\"%s\"} %llu\n", srv_route_name((int)r),
            (unsigned long long)e);
    }
    put(&b, "# HELP ia_http_request_duration_seconds Time from the request's headers to the end "
            "of its response.\n# TYPE ia_http_request_duration_seconds histogram\n");
    for (size_t r = 0; r < nr && r < SRV_MAX_ROUTES; r++) {
        if (!snap.routes[r].latency.n)
            continue;
        char labels[96];
        snprintf(labels, sizeof labels, "route=\"%s\"", srv_route_name((int)r));
        put_hist(&b, "ia_http_request_duration_seconds", labels, &snap.routes[r].latency,
                 time_buckets);
    }
    put(&b, "# HELP ia_time_to_first_token_seconds From queueing to the first generated text.\n"
            "# TYPE ia_time_to_first_token_seconds histogram\n");
    put_hist(&b, "ia_time_to_first_token_seconds", "", &snap.ttft, time_buckets);
    put(&b, "# HELP ia_queue_wait_seconds Time a request waited in its model's queue.\n"
            "# TYPE ia_queue_wait_seconds histogram\n");
    put_hist(&b, "ia_queue_wait_seconds", "", &snap.queue_wait, time_buckets);
    put(&b, "# HELP ia_batch_sequences Sequences per embedding batch.\n"
            "# TYPE ia_batch_sequences histogram\n");
    put_hist(&b, "ia_batch_sequences", "", &snap.batch_seqs, size_buckets);
    put(&b, "# HELP ia_batch_tokens Tokens per embedding batch.\n"
            "# TYPE ia_batch_tokens histogram\n");
    put_hist(&b, "ia_batch_tokens", "", &snap.batch_tokens, size_buckets);
    put(&b, "# HELP ia_generation_batch_sequences Sequences per batched generation step.\n"
            "# TYPE ia_generation_batch_sequences histogram\n");
    put_hist(&b, "ia_generation_batch_sequences", "", &snap.gen_batch, size_buckets);
    put(&b,
        "# HELP ia_tokens_in_total Prompt and input tokens processed.\n"
        "# TYPE ia_tokens_in_total counter\nia_tokens_in_total %llu\n"
        "# HELP ia_tokens_out_total Tokens generated.\n"
        "# TYPE ia_tokens_out_total counter\nia_tokens_out_total %llu\n"
        "# HELP ia_requests_rejected_total Requests refused with 429 because a queue was full.\n"
        "# TYPE ia_requests_rejected_total counter\nia_requests_rejected_total %llu\n"
        "# HELP ia_requests_cancelled_total Requests whose client went away.\n"
        "# TYPE ia_requests_cancelled_total counter\nia_requests_cancelled_total %llu\n"
        "# HELP ia_requests_timed_out_total Requests that passed their deadline.\n"
        "# TYPE ia_requests_timed_out_total counter\nia_requests_timed_out_total %llu\n"
        "# HELP ia_streams_active Streamed responses in flight.\n"
        "# TYPE ia_streams_active gauge\nia_streams_active %u\n",
        (unsigned long long)snap.tokens_in, (unsigned long long)snap.tokens_out,
        (unsigned long long)snap.rejected_full, (unsigned long long)snap.cancelled,
        (unsigned long long)snap.timeouts, atomic_load(&srv->streams));
    put(&b, "# HELP ia_queue_depth Requests waiting in a model's queue.\n"
            "# TYPE ia_queue_depth gauge\n");
    for (size_t i = 0; i < srv->n_models; i++) {
        srv_model *md = &srv->models[i];
        size_t depth = 0;
        if (md->sync_init) {
            pthread_mutex_lock(&md->mu);
            depth = md->depth;
            pthread_mutex_unlock(&md->mu);
        }
        put(&b, "ia_queue_depth{model=\"%s\"} %zu\n", md->id, depth);
    }
    put(&b, "# HELP ia_model_ready 1 when the model is loaded and serving.\n"
            "# TYPE ia_model_ready gauge\n");
    for (size_t i = 0; i < srv->n_models; i++)
        put(&b, "ia_model_ready{model=\"%s\"} %d\n", srv->models[i].id,
            atomic_load(&srv->models[i].state) == SRV_READY);
    ia_pool *pool = NULL;
    if (ia_pool_global(&pool) == IA_OK && pool) {
        ia_pool_stats ps;
        ia_pool_stats_get(pool, &ps);
        put(&b,
            "# HELP ia_pool_bytes Bytes of models resident in the process pool.\n"
            "# TYPE ia_pool_bytes gauge\nia_pool_bytes %llu\n"
            "# HELP ia_pool_budget_bytes The pool's memory budget.\n"
            "# TYPE ia_pool_budget_bytes gauge\nia_pool_budget_bytes %llu\n"
            "# HELP ia_pool_loaded Models resident in the pool.\n"
            "# TYPE ia_pool_loaded gauge\nia_pool_loaded %zu\n"
            "# HELP ia_pool_hits_total Pool acquires served without a load.\n"
            "# TYPE ia_pool_hits_total counter\nia_pool_hits_total %llu\n"
            "# HELP ia_pool_misses_total Pool acquires that loaded a model.\n"
            "# TYPE ia_pool_misses_total counter\nia_pool_misses_total %llu\n"
            "# HELP ia_pool_evictions_total Models evicted from the pool.\n"
            "# TYPE ia_pool_evictions_total counter\nia_pool_evictions_total %llu\n",
            (unsigned long long)ps.bytes, (unsigned long long)ps.budget, ps.loaded,
            (unsigned long long)ps.hits, (unsigned long long)ps.misses,
            (unsigned long long)ps.evictions);
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
