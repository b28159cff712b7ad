/*
 * Statistics of the resilience layer: the latency histogram, consistent
 * snapshots of an endpoint's counters (taken under its lock, formatted
 * outside it), and their two exports: a JSON document for `api stats --json`
 * and the Prometheus text format for a /metrics page.
 *
 * Latencies go into a log-spaced histogram rather than a sample reservoir:
 * constant memory, no RNG, exact counts, and quantiles within one bucket
 * (2^(1/8), about 9 %) of the truth, which is as much as a p99 of network
 * calls deserves. Labels carry endpoint names and key ids only; secrets
 * never reach this layer.
 */
#define _GNU_SOURCE
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/resilience_internal.h"

/* ---- histogram -------------------------------------------------------------------- */

void res_hist_add(res_hist *h, double ms) {
    if (!(ms >= 0))
        ms = 0;
    int b = 0;
    if (ms >= HIST_MIN_MS) {
        b = 1 + (int)floor(8.0 * log2(ms / HIST_MIN_MS));
        if (b >= HIST_BUCKETS)
            b = HIST_BUCKETS - 1;
        if (b < 1)
            b = 1;
    }
    h->counts[b]++;
    h->n++;
    h->sum += ms;
    if (ms > h->max)
        h->max = ms;
}

/* The value reported for bucket b: its geometric middle, capped by the max seen. */
static double bucket_value(const res_hist *h, int b) {
    if (b == 0)
        return 0;
    double lo = HIST_MIN_MS * exp2((b - 1) / 8.0), hi = HIST_MIN_MS * exp2(b / 8.0);
    double v = sqrt(lo * hi);
    return v > h->max ? h->max : v;
}

static double quantile(const res_hist *h, double q) {
    if (!h->n)
        return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)h->n);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (int b = 0; b < HIST_BUCKETS; b++) {
        seen += h->counts[b];
        if (seen >= rank)
            return bucket_value(h, b);
    }
    return h->max;
}

void res_hist_summary(const res_hist *h, ia_latency_summary *out) {
    out->count = h->n;
    out->mean_ms = h->n ? h->sum / (double)h->n : 0;
    out->p50_ms = quantile(h, 0.50);
    out->p90_ms = quantile(h, 0.90);
    out->p99_ms = quantile(h, 0.99);
    out->max_ms = h->max;
}

/* ---- snapshots ----------------------------------------------------------------------- */

void res_snapshot(ia_resilience *r, res_endpoint *ep, ia_endpoint_stats *out, ia_key_stats *keys) {
    double now = res_now(r);
    pthread_mutex_lock(&ep->lock);
    *out = ep->st;
    out->breaker_state = ep->state;
    /* An open breaker whose time is up reads as half-open: the next call probes. */
    if (ep->state == IA_BREAKER_OPEN && now >= ep->open_until)
        out->breaker_state = IA_BREAKER_HALF_OPEN;
    out->in_flight = ep->in_flight;
    out->queued = ep->queued;
    res_hist_summary(&ep->latency, &out->latency);
    res_hist_summary(&ep->queue_wait, &out->queue_wait);
    for (size_t i = 0; keys && i < ep->n_keys; i++) {
        const res_key *k = &ep->keys[i];
        ia_key_stats *o = &keys[i];
        o->id = k->id;
        o->attempts = k->attempts;
        memcpy(o->by_class, k->by_class, sizeof o->by_class);
        o->cooldowns = k->cooldowns;
        o->in_flight = k->in_flight;
        o->cooling = k->cool_until > now;
        o->tokens_in = k->tokens_in;
        o->tokens_out = k->tokens_out;
    }
    pthread_mutex_unlock(&ep->lock);
}

ia_status ia_resilience_endpoint_stats(ia_resilience *r, const char *endpoint,
                                       ia_endpoint_stats *out) {
    memset(out, 0, sizeof *out);
    res_endpoint *ep = res_find(r, endpoint);
    if (!ep)
        return IA_ENOTFOUND;
    res_snapshot(r, ep, out, NULL);
    return IA_OK;
}

ia_status ia_resilience_key_stats(ia_resilience *r, const char *endpoint, size_t key,
                                  ia_key_stats *out) {
    memset(out, 0, sizeof *out);
    res_endpoint *ep = res_find(r, endpoint);
    if (!ep)
        return IA_ENOTFOUND;
    if (ep->keyless || key >= ep->n_keys)
        return ia_error_set(IA_ENOTFOUND, "endpoint '%s' has no key %zu (it has %zu)", endpoint,
                            key, ep->keyless ? (size_t)0 : ep->n_keys);
    ia_key_stats *all = ia_calloc(ep->n_keys, sizeof *all);
    if (!all)
        return IA_ENOMEM;
    ia_endpoint_stats st;
    res_snapshot(r, ep, &st, all);
    *out = all[key];
    free(all);
    return IA_OK;
}

ia_breaker_state ia_resilience_breaker_state(ia_resilience *r, const char *endpoint) {
    ia_endpoint_stats st;
    if (ia_resilience_endpoint_stats(r, endpoint, &st) != IA_OK)
        return IA_BREAKER_CLOSED;
    return st.breaker_state;
}

/* Every endpoint's snapshot, in registration order. */
typedef struct snap {
    res_endpoint *ep;
    ia_endpoint_stats st;
    ia_key_stats *keys; /* ep->n_keys; only the first st.n_keys are real keys */
} snap;

static void snaps_free(snap *s, size_t n) {
    for (size_t i = 0; s && i < n; i++)
        free(s[i].keys);
    free(s);
}

static ia_status snaps_take(ia_resilience *r, snap **out, size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    pthread_mutex_lock(&r->lock);
    size_t n = r->n_eps;
    snap *s = n ? ia_calloc(n, sizeof *s) : NULL;
    for (size_t i = 0; s && i < n; i++)
        s[i].ep = r->eps[i];
    pthread_mutex_unlock(&r->lock);
    if (n && !s)
        return IA_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!(s[i].keys = ia_calloc(s[i].ep->n_keys, sizeof *s[i].keys))) {
            snaps_free(s, n);
            return IA_ENOMEM;
        }
        res_snapshot(r, s[i].ep, &s[i].st, s[i].keys);
    }
    *out = s;
    *n_out = n;
    return IA_OK;
}

/* ---- JSON -------------------------------------------------------------------------------- */

static json_t *latency_json(const ia_latency_summary *l) {
    return json_pack("{s:I, s:f, s:f, s:f, s:f, s:f}", "count", (json_int_t)l->count, "mean",
                     l->mean_ms, "p50", l->p50_ms, "p90", l->p90_ms, "p99", l->p99_ms, "max",
                     l->max_ms);
}

static json_t *counts_json(const uint64_t *counts, int n, const char *(*name)(int)) {
    json_t *o = json_object();
    for (int i = 0; o && i < n; i++)
        json_object_set_new(o, name(i), json_integer((json_int_t)counts[i]));
    return o;
}

static const char *class_name_i(int i) { return ia_call_class_name((ia_call_class)i); }
static const char *end_name_i(int i) { return ia_call_end_name((ia_call_end)i); }

static json_t *endpoint_json(const snap *s) {
    const ia_endpoint_stats *st = &s->st;
    json_t *keys = json_array();
    for (size_t k = 0; keys && k < st->n_keys; k++) {
        const ia_key_stats *ks = &s->keys[k];
        json_array_append_new(
            keys, json_pack("{s:s, s:I, s:o, s:I, s:i, s:b, s:I, s:I}", "id", ks->id, "attempts",
                            (json_int_t)ks->attempts, "outcomes",
                            counts_json(ks->by_class, IA_CALL_CLASS_COUNT, class_name_i),
                            "cooldowns", (json_int_t)ks->cooldowns, "in_flight", ks->in_flight,
                            "cooling", ks->cooling, "tokens_in", (json_int_t)ks->tokens_in,
                            "tokens_out", (json_int_t)ks->tokens_out));
    }
    return json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:{s:I, s:I}, s:{s:s, s:I}, s:i, s:i, s:o, "
        "s:o, s:I, s:I, s:s, s:o}",
        "name", s->ep->name, "requests", (json_int_t)st->requests, "attempts",
        (json_int_t)st->attempts, "retries", (json_int_t)st->retries, "fallback_in",
        (json_int_t)st->fallback_in, "fallback_out", (json_int_t)st->fallback_out, "outcomes",
        counts_json(st->by_class, IA_CALL_CLASS_COUNT, class_name_i), "results",
        counts_json(st->by_end, IA_END_COUNT, end_name_i), "rejected", "queue_full",
        (json_int_t)st->rejected_queue_full, "breaker_open", (json_int_t)st->rejected_breaker_open,
        "breaker", "state", ia_breaker_state_name(st->breaker_state), "trips",
        (json_int_t)st->breaker_trips, "in_flight", st->in_flight, "queued", st->queued,
        "latency_ms", latency_json(&st->latency), "queue_wait_ms", latency_json(&st->queue_wait),
        "tokens_in", (json_int_t)st->tokens_in, "tokens_out", (json_int_t)st->tokens_out,
        "key_policy", ia_key_policy_name(s->ep->cfg.key_policy), "keys", keys);
}

ia_status ia_resilience_stats_json(ia_resilience *r, json_t **out) {
    *out = NULL;
    snap *s;
    size_t n;
    ia_status st = snaps_take(r, &s, &n);
    if (st != IA_OK)
        return st;
    json_t *eps = json_array();
    for (size_t i = 0; eps && i < n; i++) {
        json_t *e = endpoint_json(&s[i]);
        if (!e || json_array_append_new(eps, e) != 0) {
            json_decref(eps);
            eps = NULL;
        }
    }
    snaps_free(s, n);
    json_t *doc = eps ? json_pack("{s:o}", "endpoints", eps) : NULL;
    if (!doc)
        return ia_error_set(IA_ENOMEM, "resilience statistics: cannot build the JSON document");
    *out = doc;
    return IA_OK;
}

/* ---- Prometheus ---------------------------------------------------------------------------- */

/* A label value with \, " and newline escaped as the text format requires. */
static void put_label(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', f), fputc(*s, f);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

static void head(FILE *f, const char *name, const char *type, const char *help) {
    fprintf(f, "# HELP ia_api_%s %s\n# TYPE ia_api_%s %s\n", name, help, name, type);
}

/* ia_api_<name>{endpoint="E"[,key="K"][,extra]} value */
static void sample(FILE *f, const char *name, const char *ep, const char *key, const char *extra,
                   double v) {
    fprintf(f, "ia_api_%s{endpoint=\"", name);
    put_label(f, ep);
    if (key) {
        fputs("\",key=\"", f);
        put_label(f, key);
    }
    fprintf(f, "\"%s%s} %.17g\n", extra ? "," : "", extra ? extra : "", v);
}

static void summary(FILE *f, const char *name, const snap *s, size_t n, bool queue) {
    for (size_t i = 0; i < n; i++) {
        const ia_latency_summary *l = queue ? &s[i].st.queue_wait : &s[i].st.latency;
        sample(f, name, s[i].ep->name, NULL, "quantile=\"0.5\"", l->p50_ms);
        sample(f, name, s[i].ep->name, NULL, "quantile=\"0.9\"", l->p90_ms);
        sample(f, name, s[i].ep->name, NULL, "quantile=\"0.99\"", l->p99_ms);
        char nm[64];
        snprintf(nm, sizeof nm, "%s_sum", name);
        sample(f, nm, s[i].ep->name, NULL, NULL, l->mean_ms * (double)l->count);
        snprintf(nm, sizeof nm, "%s_count", name);
        sample(f, nm, s[i].ep->name, NULL, NULL, (double)l->count);
    }
}

/* One counter or gauge per endpoint, read through an offset into the stats. */
typedef struct ep_metric {
    const char *name, *type, *help;
    size_t offset;
    bool is_int; /* an int field, else uint64_t */
} ep_metric;

#define EPM(n, t, h, field, i) \
    { n, t, h, offsetof(ia_endpoint_stats, field), i }
static const ep_metric ep_metrics[] = {
    EPM("requests_total", "counter", "Requests addressed to the endpoint first.", requests, false),
    EPM("attempts_total", "counter", "Attempts (calls made) on the endpoint.", attempts, false),
    EPM("retries_total", "counter", "Attempts after the first on the endpoint.", retries, false),
    EPM("fallback_in_total", "counter", "Requests that arrived as a fallback.", fallback_in, false),
    EPM("fallback_out_total", "counter", "Requests that left for a fallback.", fallback_out, false),
    EPM("rejected_queue_full_total", "counter", "Admissions refused by a full queue.",
        rejected_queue_full, false),
    EPM("rejected_breaker_open_total", "counter", "Admissions refused by an open breaker.",
        rejected_breaker_open, false),
    EPM("breaker_trips_total", "counter", "Times the circuit breaker opened.", breaker_trips,
        false),
    EPM("tokens_in_total", "counter", "Prompt tokens reported by the provider.", tokens_in, false),
    EPM("tokens_out_total", "counter", "Completion tokens reported by the provider.", tokens_out,
        false),
    EPM("in_flight", "gauge", "Attempts in flight.", in_flight, true),
    EPM("queued", "gauge", "Requests waiting for a slot.", queued, true),
};

ia_status ia_resilience_stats_prometheus(ia_resilience *r, char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    snap *s;
    size_t n;
    ia_status st = snaps_take(r, &s, &n);
    if (st != IA_OK)
        return st;
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f) {
        snaps_free(s, n);
        return ia_error_set(IA_ENOMEM, "resilience statistics: cannot open a memory stream");
    }
    char extra[64];
    for (size_t m = 0; m < sizeof ep_metrics / sizeof ep_metrics[0]; m++) {
        const ep_metric *em = &ep_metrics[m];
        head(f, em->name, em->type, em->help);
        for (size_t i = 0; i < n; i++) {
            const char *p = (const char *)&s[i].st + em->offset;
            double v = em->is_int ? (double)*(const int *)p : (double)*(const uint64_t *)p;
            sample(f, em->name, s[i].ep->name, NULL, NULL, v);
        }
    }
    head(f, "outcomes_total", "counter", "Attempt outcomes by class.");
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < IA_CALL_CLASS_COUNT; c++) {
            snprintf(extra, sizeof extra, "class=\"%s\"", ia_call_class_name((ia_call_class)c));
            sample(f, "outcomes_total", s[i].ep->name, NULL, extra, (double)s[i].st.by_class[c]);
        }
    head(f, "results_total", "counter", "Requests by how they ended, on the endpoint they ended.");
    for (size_t i = 0; i < n; i++)
        for (int e = 0; e < IA_END_COUNT; e++) {
            snprintf(extra, sizeof extra, "result=\"%s\"", ia_call_end_name((ia_call_end)e));
            sample(f, "results_total", s[i].ep->name, NULL, extra, (double)s[i].st.by_end[e]);
        }
    head(f, "breaker_state", "gauge", "Circuit breaker: 0 closed, 1 open, 2 half-open.");
    for (size_t i = 0; i < n; i++)
        sample(f, "breaker_state", s[i].ep->name, NULL, NULL, (double)s[i].st.breaker_state);
    head(f, "latency_ms", "summary", "Attempt latency in milliseconds.");
    summary(f, "latency_ms", s, n, false);
    head(f, "queue_wait_ms", "summary", "Wait for a concurrency slot in milliseconds.");
    summary(f, "queue_wait_ms", s, n, true);

    head(f, "key_attempts_total", "counter", "Attempts per API key (by key id).");
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < s[i].st.n_keys; k++)
            sample(f, "key_attempts_total", s[i].ep->name, s[i].keys[k].id, NULL,
                   (double)s[i].keys[k].attempts);
    head(f, "key_outcomes_total", "counter", "Attempt outcomes per API key and class.");
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < s[i].st.n_keys; k++)
            for (int c = 0; c < IA_CALL_CLASS_COUNT; c++) {
                snprintf(extra, sizeof extra, "class=\"%s\"", ia_call_class_name((ia_call_class)c));
                sample(f, "key_outcomes_total", s[i].ep->name, s[i].keys[k].id, extra,
                       (double)s[i].keys[k].by_class[c]);
            }
    head(f, "key_cooldowns_total", "counter", "Cooldowns after 429 per API key.");
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < s[i].st.n_keys; k++)
            sample(f, "key_cooldowns_total", s[i].ep->name, s[i].keys[k].id, NULL,
                   (double)s[i].keys[k].cooldowns);
    head(f, "key_in_flight", "gauge", "Attempts in flight per API key.");
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < s[i].st.n_keys; k++)
            sample(f, "key_in_flight", s[i].ep->name, s[i].keys[k].id, NULL,
                   (double)s[i].keys[k].in_flight);
    head(f, "key_tokens_total", "counter", "Tokens per API key and direction.");
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < s[i].st.n_keys; k++) {
            sample(f, "key_tokens_total", s[i].ep->name, s[i].keys[k].id, "direction=\"in\"",
                   (double)s[i].keys[k].tokens_in);
            sample(f, "key_tokens_total", s[i].ep->name, s[i].keys[k].id, "direction=\"out\"",
                   (double)s[i].keys[k].tokens_out);
        }
    snaps_free(s, n);
    if (fclose(f) != 0 || !buf) {
        free(buf);
        return ia_error_set(IA_ENOMEM, "resilience statistics: cannot write the metrics text");
    }
    *out = buf;
    *len = size;
    return IA_OK;
}
