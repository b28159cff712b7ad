/*
 * What the resilience layer's files share: the endpoint record (queue,
 * breaker, keys and counters under one mutex), the handle, the latency
 * histogram and the clock. Only resilience*.c include this; adapters use
 * resilience.h.
 */
#ifndef IA_BACKENDS_RESILIENCE_INTERNAL_H
#define IA_BACKENDS_RESILIENCE_INTERNAL_H

#include <pthread.h>

#include "backends/resilience.h"

/* Log-spaced latency histogram: bucket 0 holds values below HIST_MIN_MS,
 * bucket i >= 1 holds [HIST_MIN_MS * 2^((i-1)/8), HIST_MIN_MS * 2^(i/8)), the
 * last also everything above (about 40 minutes). */
#define HIST_BUCKETS 224
#define HIST_MIN_MS 0.01

typedef struct res_hist {
    uint64_t counts[HIST_BUCKETS];
    uint64_t n;
    double sum, max;
} res_hist;

void res_hist_add(res_hist *h, double ms);
void res_hist_summary(const res_hist *h, ia_latency_summary *out);

/* One waiter in an endpoint's queue; lives on the waiting thread's stack. */
typedef struct res_waiter {
    pthread_cond_t cond;
    bool granted;
    struct res_waiter *next;
} res_waiter;

typedef struct res_key {
    char *id;          /* "" for the anonymous key of a keyless endpoint */
    int in_flight;     /* guarded by the endpoint's lock, as is everything below */
    double cool_until; /* clock ms; the key is skipped before this */
    uint64_t attempts, by_class[IA_CALL_CLASS_COUNT], cooldowns, tokens_in, tokens_out;
} res_key;

typedef struct res_endpoint {
    char *name;
    ia_endpoint_config cfg; /* cfg.name and cfg.key_ids point into this record */
    struct res_endpoint **fallbacks;
    size_t n_fallbacks;

    pthread_mutex_t lock; /* guards everything below */

    /* queue: FIFO per priority */
    res_waiter *head[IA_PRIORITY_COUNT], *tail[IA_PRIORITY_COUNT];
    int queued, in_flight;

    /* breaker */
    ia_breaker_state state;
    double open_until;
    int probes_out;
    uint64_t generation; /* bumped on every state change; stale results are ignored */
    double *win_t;       /* ring of (time, failed) for the sliding window */
    bool *win_fail;
    int win_head, win_n, win_fails;

    /* keys: at least one (an anonymous one when the config has none) */
    res_key *keys;
    size_t n_keys;
    bool keyless;
    size_t next_key;

    /* counters (the struct's live fields are filled at snapshot time) */
    ia_endpoint_stats st;
    res_hist latency, queue_wait;
} res_endpoint;

struct ia_resilience {
    pthread_mutex_t lock; /* guards eps, n_eps, cap_eps and rng */
    res_endpoint **eps;
    size_t n_eps, cap_eps;
    uint64_t rng;
    ia_resilience_options opts;
};

/* The endpoint named `name`, or NULL with an IA_ENOTFOUND message. */
res_endpoint *res_find(ia_resilience *r, const char *name);
double res_now(ia_resilience *r);
/* A copy of ep's counters with the live fields filled in (takes ep->lock). */
void res_snapshot(ia_resilience *r, res_endpoint *ep, ia_endpoint_stats *out,
                  ia_key_stats *keys /* ep->n_keys entries, or NULL */);

#endif /* IA_BACKENDS_RESILIENCE_INTERNAL_H */
