/*
 * The resilience layer's mechanism: endpoints, their queues, breakers and
 * keys, and the attempt loop of ia_resilience_submit. The contract is in
 * resilience.h; statistics export is in resilience_stats.c and batching in
 * resilience_batch.c.
 *
 * A request walks its endpoint chain (the endpoint, then its fallbacks). On
 * each endpoint, each attempt goes: breaker admission (an open breaker
 * rejects without queueing; half-open hands out a bounded number of probe
 * tickets) -> a slot from the endpoint's queue (a full queue rejects, a wait
 * is bounded by the deadline) -> a key (when every key cools down the slot
 * and ticket are given back while the thread sleeps until one is free) ->
 * the callback, with no lock held -> accounting, breaker verdict, and the
 * decision: done, retry after a backoff (slot released meanwhile), or move
 * on to the next endpoint. Retries skip the queue's capacity check (the
 * request was already accepted) but still wait their turn for a slot.
 *
 * Queue waiters sleep on their own condition variable, so a released slot
 * wakes exactly the waiter it was granted to: highest priority first, FIFO
 * within a priority. A slot is granted under the endpoint's lock by
 * incrementing in_flight on the waiter's behalf, so a waiter that times out
 * at the same moment either finds itself granted (and uses the slot) or
 * removes itself from the queue; it can never leak a slot.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/resilience_internal.h"

#define DEFAULT_SEED 0x9e3779b97f4a7c15ull
#define MAX_WINDOW_CALLS 4096

/* ---- names --------------------------------------------------------------------- */

static const char *const class_names[IA_CALL_CLASS_COUNT] = {"ok", "retryable", "rate_limited",
                                                             "fatal", "cancelled"};
static const char *const end_names[IA_END_COUNT] = {
    "ok", "fatal", "cancelled", "exhausted", "deadline", "queue_full", "breaker_open"};
static const char *const breaker_names[] = {"closed", "open", "half_open"};
static const char *const priority_names[IA_PRIORITY_COUNT] = {"high", "normal", "low"};
static const char *const key_policy_names[] = {"round_robin", "least_loaded", "pinned"};

const char *ia_call_class_name(ia_call_class c) {
    return (unsigned)c < IA_CALL_CLASS_COUNT ? class_names[c] : "unknown";
}
const char *ia_call_end_name(ia_call_end e) {
    return (unsigned)e < IA_END_COUNT ? end_names[e] : "unknown";
}
const char *ia_breaker_state_name(ia_breaker_state s) {
    return (unsigned)s <= IA_BREAKER_HALF_OPEN ? breaker_names[s] : "unknown";
}
const char *ia_priority_name(ia_priority p) {
    return (unsigned)p < IA_PRIORITY_COUNT ? priority_names[p] : "unknown";
}
const char *ia_key_policy_name(ia_key_policy p) {
    return (unsigned)p <= IA_KEYS_PINNED ? key_policy_names[p] : "unknown";
}

ia_status ia_priority_parse(const char *s, ia_priority *out) {
    for (int i = 0; i < IA_PRIORITY_COUNT; i++)
        if (s && strcmp(s, priority_names[i]) == 0) {
            *out = (ia_priority)i;
            return IA_OK;
        }
    return ia_error_set(IA_EINVAL, "priority '%s': expected high, normal or low", s ? s : "");
}

ia_status ia_key_policy_parse(const char *s, ia_key_policy *out) {
    for (int i = 0; i <= IA_KEYS_PINNED; i++)
        if (s && strcmp(s, key_policy_names[i]) == 0) {
            *out = (ia_key_policy)i;
            return IA_OK;
        }
    return ia_error_set(
        IA_EINVAL, "key selection '%s': expected round_robin, least_loaded or pinned", s ? s : "");
}

/* ---- clock and RNG -------------------------------------------------------------- */

static double default_now_ms(void *ctx) {
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static void default_sleep_ms(void *ctx, double ms) {
    (void)ctx;
    if (!(ms > 0))
        return;
    struct timespec ts = {(time_t)(ms / 1e3), (long)(fmod(ms, 1e3) * 1e6)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

double res_now(ia_resilience *r) { return r->opts.now_ms(r->opts.clock_ctx); }

/* splitmix64: small, seedable, good enough for jitter. */
static uint64_t rng_next(ia_resilience *r) {
    pthread_mutex_lock(&r->lock);
    uint64_t z = (r->rng += 0x9e3779b97f4a7c15ull);
    pthread_mutex_unlock(&r->lock);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double rng_unit(ia_resilience *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

/* ---- handle and endpoints ---------------------------------------------------------- */

void ia_resilience_endpoint_defaults(ia_endpoint_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->max_concurrency = 8;
    cfg->queue_capacity = 256;
    cfg->retry = (ia_retry_policy){.max_attempts = 3,
                                   .base_backoff_ms = 500,
                                   .max_backoff_ms = 30000,
                                   .full_jitter = true,
                                   .max_retry_after_ms = 60000};
    cfg->breaker = (ia_breaker_policy){.window_calls = 20,
                                       .window_ms = 60000,
                                       .min_calls = 10,
                                       .failure_rate = 0.5,
                                       .open_ms = 30000,
                                       .half_open_probes = 1};
    cfg->key_policy = IA_KEYS_ROUND_ROBIN;
    cfg->key_cooldown_ms = 60000;
    cfg->timeouts = (ia_timeouts){.connect_ms = 10000, .first_byte_ms = 60000, .total_ms = 600000};
    cfg->batch = (ia_batch_policy){.max_items = 32, .max_wait_ms = 10};
}

ia_status ia_resilience_create(const ia_resilience_options *opts, ia_resilience **out) {
    *out = NULL;
    ia_resilience *r = ia_calloc(1, sizeof *r);
    if (!r)
        return IA_ENOMEM;
    if (opts)
        r->opts = *opts;
    if (!r->opts.now_ms)
        r->opts.now_ms = default_now_ms;
    if (!r->opts.sleep_ms)
        r->opts.sleep_ms = default_sleep_ms;
    r->rng = r->opts.seed ? r->opts.seed : DEFAULT_SEED;
    if (pthread_mutex_init(&r->lock, NULL) != 0) {
        free(r);
        return ia_error_set(IA_EINTERNAL, "resilience: cannot create a mutex");
    }
    *out = r;
    return IA_OK;
}

static void endpoint_free(res_endpoint *ep) {
    if (!ep)
        return;
    for (size_t i = 0; i < ep->n_keys; i++)
        free(ep->keys[i].id);
    free(ep->keys);
    free((void *)ep->cfg.key_ids);
    free(ep->win_t);
    free(ep->win_fail);
    free(ep->fallbacks);
    free(ep->name);
    pthread_mutex_destroy(&ep->lock);
    free(ep);
}

void ia_resilience_destroy(ia_resilience *r) {
    if (!r)
        return;
    for (size_t i = 0; i < r->n_eps; i++)
        endpoint_free(r->eps[i]);
    free(r->eps);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

res_endpoint *res_find(ia_resilience *r, const char *name) {
    res_endpoint *found = NULL;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; name && i < r->n_eps && !found; i++)
        if (strcmp(r->eps[i]->name, name) == 0)
            found = r->eps[i];
    pthread_mutex_unlock(&r->lock);
    if (!found)
        ia_error_set(IA_ENOTFOUND, "endpoint '%s' is not configured", name ? name : "");
    return found;
}

/* The message names the endpoint and the field, so a YAML error can be fixed. */
static ia_status validate(const ia_endpoint_config *c) {
    const char *n = c->name;
#define BAD(...) return ia_error_set(IA_EINVAL, __VA_ARGS__)
    if (!n || !*n)
        BAD("endpoint: a name is required");
    if (c->max_concurrency < 1)
        BAD("endpoint '%s': max_concurrency %d must be at least 1", n, c->max_concurrency);
    if (c->queue_capacity < 0)
        BAD("endpoint '%s': queue capacity %d is negative", n, c->queue_capacity);
    if (c->retry.max_attempts < 1)
        BAD("endpoint '%s': retry max_attempts %d must be at least 1", n, c->retry.max_attempts);
    if (c->retry.base_backoff_ms < 0 || c->retry.max_backoff_ms < c->retry.base_backoff_ms)
        BAD("endpoint '%s': backoff base %d ms / max %d ms: need 0 <= base <= max", n,
            c->retry.base_backoff_ms, c->retry.max_backoff_ms);
    if (c->retry.max_retry_after_ms < 0)
        BAD("endpoint '%s': max_retry_after_ms %d is negative", n, c->retry.max_retry_after_ms);
    const ia_breaker_policy *b = &c->breaker;
    if (b->window_calls < 1 || b->window_calls > MAX_WINDOW_CALLS)
        BAD("endpoint '%s': breaker window of %d calls: need 1..%d", n, b->window_calls,
            MAX_WINDOW_CALLS);
    if (b->window_ms < 0 || b->open_ms < 0 || b->slow_call_ms < 0)
        BAD("endpoint '%s': breaker durations must not be negative", n);
    if (b->min_calls < 1)
        BAD("endpoint '%s': breaker min_calls %d must be at least 1", n, b->min_calls);
    if (!(b->failure_rate > 0 && b->failure_rate <= 1))
        BAD("endpoint '%s': breaker failure_rate %g must be in (0, 1]", n, b->failure_rate);
    if (b->half_open_probes < 1)
        BAD("endpoint '%s': half_open_probes %d must be at least 1", n, b->half_open_probes);
    if ((unsigned)c->key_policy > IA_KEYS_PINNED)
        BAD("endpoint '%s': unknown key selection policy %d", n, (int)c->key_policy);
    if (c->n_keys && !c->key_ids)
        BAD("endpoint '%s': %zu keys but no key ids", n, c->n_keys);
    for (size_t i = 0; i < c->n_keys; i++)
        if (!c->key_ids[i] || !*c->key_ids[i])
            BAD("endpoint '%s': key %zu has no id", n, i);
    if (c->key_policy == IA_KEYS_PINNED && c->n_keys &&
        (c->pinned_key < 0 || (size_t)c->pinned_key >= c->n_keys))
        BAD("endpoint '%s': pinned key %d is not one of its %zu keys", n, c->pinned_key, c->n_keys);
    if (c->key_cooldown_ms < 0)
        BAD("endpoint '%s': key cooldown %d ms is negative", n, c->key_cooldown_ms);
    if (c->timeouts.connect_ms < 0 || c->timeouts.first_byte_ms < 0 || c->timeouts.total_ms < 0)
        BAD("endpoint '%s': timeouts must not be negative", n);
    if (c->batch.max_items < 1 || c->batch.max_wait_ms < 0)
        BAD("endpoint '%s': batch of %d items / %d ms: need at least 1 item and a wait >= 0", n,
            c->batch.max_items, c->batch.max_wait_ms);
#undef BAD
    return IA_OK;
}

static ia_status endpoint_new(const ia_endpoint_config *c, res_endpoint **out) {
    res_endpoint *ep = ia_calloc(1, sizeof *ep);
    if (!ep)
        return IA_ENOMEM;
    if (pthread_mutex_init(&ep->lock, NULL) != 0) {
        free(ep);
        return ia_error_set(IA_EINTERNAL, "endpoint '%s': cannot create a mutex", c->name);
    }
    ep->cfg = *c;
    ep->cfg.key_ids = NULL;
    ep->name = ia_strdup(c->name);
    ep->keyless = c->n_keys == 0;
    ep->n_keys = c->n_keys ? c->n_keys : 1;
    ep->keys = ia_calloc(ep->n_keys, sizeof *ep->keys);
    const char **ids = ia_calloc(ep->n_keys, sizeof *ids);
    ep->cfg.key_ids = ids;
    ep->win_t = ia_calloc((size_t)c->breaker.window_calls, sizeof *ep->win_t);
    ep->win_fail = ia_calloc((size_t)c->breaker.window_calls, sizeof *ep->win_fail);
    if (!ep->name || !ep->keys || !ids || !ep->win_t || !ep->win_fail)
        goto fail;
    ep->cfg.name = ep->name;
    for (size_t i = 0; i < ep->n_keys; i++) {
        ep->keys[i].id = ia_strdup(ep->keyless ? "" : c->key_ids[i]);
        if (!ep->keys[i].id)
            goto fail;
        ids[i] = ep->keys[i].id;
    }
    ep->st.n_keys = c->n_keys;
    *out = ep;
    return IA_OK;
fail:
    endpoint_free(ep);
    return IA_ENOMEM;
}

ia_status ia_resilience_add_endpoint(ia_resilience *r, const ia_endpoint_config *cfg) {
    ia_status st = validate(cfg);
    if (st != IA_OK)
        return st;
    res_endpoint *ep = NULL;
    if ((st = endpoint_new(cfg, &ep)) != IA_OK)
        return st;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->n_eps; i++)
        if (strcmp(r->eps[i]->name, cfg->name) == 0) {
            st = ia_error_set(IA_EINVAL, "endpoint '%s' is configured twice", cfg->name);
            goto fail;
        }
    if (r->n_eps == r->cap_eps) {
        size_t cap = r->cap_eps ? 2 * r->cap_eps : 8;
        res_endpoint **eps = ia_realloc_array(r->eps, cap, sizeof *eps);
        if (!eps) {
            st = IA_ENOMEM;
            goto fail;
        }
        r->eps = eps;
        r->cap_eps = cap;
    }
    r->eps[r->n_eps++] = ep;
    pthread_mutex_unlock(&r->lock);
    return IA_OK;
fail:
    pthread_mutex_unlock(&r->lock);
    endpoint_free(ep);
    return st;
}

ia_status ia_resilience_set_fallbacks(ia_resilience *r, const char *endpoint,
                                      const char *const *fallbacks, size_t n) {
    res_endpoint *ep = res_find(r, endpoint);
    if (!ep)
        return IA_ENOTFOUND;
    res_endpoint **list = n ? ia_calloc(n, sizeof *list) : NULL;
    if (n && !list)
        return IA_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        res_endpoint *fb = res_find(r, fallbacks[i]);
        if (!fb) {
            free(list);
            return ia_error_set(IA_EINVAL, "endpoint '%s': fallback '%s' is not configured",
                                endpoint, fallbacks[i] ? fallbacks[i] : "");
        }
        bool repeat = fb == ep;
        for (size_t j = 0; j < i; j++)
            repeat |= list[j] == fb;
        if (repeat) {
            free(list);
            return ia_error_set(IA_EINVAL, "endpoint '%s': fallback '%s' is %s", endpoint, fb->name,
                                fb == ep ? "the endpoint itself" : "listed twice");
        }
        list[i] = fb;
    }
    pthread_mutex_lock(&ep->lock);
    free(ep->fallbacks);
    ep->fallbacks = list;
    ep->n_fallbacks = n;
    pthread_mutex_unlock(&ep->lock);
    return IA_OK;
}

/* ---- queue -------------------------------------------------------------------------- */

static bool queue_empty(const res_endpoint *ep) {
    for (int p = 0; p < IA_PRIORITY_COUNT; p++)
        if (ep->head[p])
            return false;
    return true;
}

/* Hands free slots to waiters, highest priority first. Holds ep->lock. */
static void queue_grant(res_endpoint *ep) {
    for (int p = 0; p < IA_PRIORITY_COUNT && ep->in_flight < ep->cfg.max_concurrency; p++)
        while (ep->head[p] && ep->in_flight < ep->cfg.max_concurrency) {
            res_waiter *w = ep->head[p];
            ep->head[p] = w->next;
            if (!ep->head[p])
                ep->tail[p] = NULL;
            ep->queued--;
            ep->in_flight++;
            w->granted = true;
            pthread_cond_signal(&w->cond);
        }
}

static void queue_remove(res_endpoint *ep, int p, res_waiter *w) {
    res_waiter *prev = NULL;
    for (res_waiter *it = ep->head[p]; it; prev = it, it = it->next)
        if (it == w) {
            if (prev)
                prev->next = w->next;
            else
                ep->head[p] = w->next;
            if (ep->tail[p] == w)
                ep->tail[p] = prev;
            ep->queued--;
            return;
        }
}

typedef enum slot_result { SLOT_OK, SLOT_FULL, SLOT_DEADLINE } slot_result;

/* Waits for the wall-clock equivalent of `ms` (or forever when infinite). */
static void cond_wait_ms(pthread_cond_t *c, pthread_mutex_t *m, double ms) {
    if (isinf(ms)) {
        pthread_cond_wait(c, m);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double ns = (double)ts.tv_nsec + ms * 1e6;
    ts.tv_sec += (time_t)(ns / 1e9);
    ts.tv_nsec = (long)fmod(ns, 1e9);
    pthread_cond_timedwait(c, m, &ts);
}

/* Takes one of ep's slots, waiting in line when all are busy. `check_capacity`
 * is false for retries of an accepted request. *waited gets the wait. */
static slot_result slot_acquire(ia_resilience *r, res_endpoint *ep, ia_priority prio,
                                double deadline, bool check_capacity, double *waited) {
    double t0 = res_now(r);
    slot_result res = SLOT_OK;
    pthread_mutex_lock(&ep->lock);
    if (ep->in_flight < ep->cfg.max_concurrency && queue_empty(ep)) {
        ep->in_flight++;
        res_hist_add(&ep->queue_wait, 0);
        pthread_mutex_unlock(&ep->lock);
        *waited = 0;
        return SLOT_OK;
    }
    if (check_capacity && ep->queued >= ep->cfg.queue_capacity) {
        ep->st.rejected_queue_full++;
        pthread_mutex_unlock(&ep->lock);
        *waited = 0;
        return SLOT_FULL;
    }
    res_waiter w = {.granted = false, .next = NULL};
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w.cond, &attr);
    pthread_condattr_destroy(&attr);
    if (ep->tail[prio])
        ep->tail[prio]->next = &w;
    else
        ep->head[prio] = &w;
    ep->tail[prio] = &w;
    ep->queued++;
    while (!w.granted) {
        double left = deadline - res_now(r);
        if (left <= 0)
            break;
        cond_wait_ms(&w.cond, &ep->lock, left);
    }
    *waited = res_now(r) - t0;
    if (w.granted)
        res_hist_add(&ep->queue_wait, *waited);
    else {
        queue_remove(ep, prio, &w);
        res = SLOT_DEADLINE;
    }
    pthread_mutex_unlock(&ep->lock);
    pthread_cond_destroy(&w.cond);
    return res;
}

/* Holds ep->lock. */
static void slot_release_locked(res_endpoint *ep) {
    ep->in_flight--;
    queue_grant(ep);
}

/* ---- circuit breaker ------------------------------------------------------------------- */

typedef enum admit_result { ADMIT_YES, ADMIT_PROBE, ADMIT_NO } admit_result;

/* Holds ep->lock. */
static void window_clear(res_endpoint *ep) { ep->win_head = ep->win_n = ep->win_fails = 0; }

static void window_drop_oldest(res_endpoint *ep) {
    int cap = ep->cfg.breaker.window_calls;
    int oldest = (ep->win_head - ep->win_n + cap) % cap;
    ep->win_fails -= ep->win_fail[oldest];
    ep->win_n--;
}

static void window_expire(res_endpoint *ep, double now) {
    int cap = ep->cfg.breaker.window_calls;
    while (ep->cfg.breaker.window_ms > 0 && ep->win_n > 0 &&
           ep->win_t[(ep->win_head - ep->win_n + cap) % cap] < now - ep->cfg.breaker.window_ms)
        window_drop_oldest(ep);
}

static void breaker_open(res_endpoint *ep, double now) {
    ep->state = IA_BREAKER_OPEN;
    ep->open_until = now + ep->cfg.breaker.open_ms;
    ep->generation++;
    ep->st.breaker_trips++;
    window_clear(ep);
    ia_log(IA_LOG_WARN, "endpoint '%s': circuit breaker opened for %d ms", ep->name,
           ep->cfg.breaker.open_ms);
}

/* Holds ep->lock. *gen gets the generation the attempt runs under. */
static admit_result breaker_admit(res_endpoint *ep, double now, uint64_t *gen) {
    *gen = ep->generation;
    if (ep->cfg.breaker.disabled)
        return ADMIT_YES;
    if (ep->state == IA_BREAKER_OPEN) {
        if (now < ep->open_until)
            return ADMIT_NO;
        ep->state = IA_BREAKER_HALF_OPEN;
        ep->probes_out = 0;
        ep->generation++;
        *gen = ep->generation;
    }
    if (ep->state == IA_BREAKER_HALF_OPEN) {
        if (ep->probes_out >= ep->cfg.breaker.half_open_probes)
            return ADMIT_NO;
        ep->probes_out++;
        return ADMIT_PROBE;
    }
    return ADMIT_YES;
}

/* Gives back a probe ticket that never ran. Holds ep->lock. */
static void breaker_unadmit(res_endpoint *ep, admit_result a, uint64_t gen) {
    if (a == ADMIT_PROBE && gen == ep->generation)
        ep->probes_out--;
}

typedef enum verdict { VERDICT_SUCCESS, VERDICT_FAILURE, VERDICT_NEUTRAL } verdict;

/* Holds ep->lock. */
static void breaker_record(res_endpoint *ep, admit_result a, uint64_t gen, verdict v, double now) {
    if (ep->cfg.breaker.disabled || gen != ep->generation)
        return; /* admitted under an earlier state: its result says nothing now */
    if (a == ADMIT_PROBE) {
        ep->probes_out--;
        if (v == VERDICT_SUCCESS) {
            ep->state = IA_BREAKER_CLOSED;
            ep->generation++;
            window_clear(ep);
            ia_log(IA_LOG_INFO, "endpoint '%s': circuit breaker closed", ep->name);
        } else if (v == VERDICT_FAILURE) {
            breaker_open(ep, now);
        }
        return;
    }
    if (ep->state != IA_BREAKER_CLOSED || v == VERDICT_NEUTRAL)
        return;
    int cap = ep->cfg.breaker.window_calls;
    window_expire(ep, now);
    if (ep->win_n == cap)
        window_drop_oldest(ep);
    ep->win_t[ep->win_head] = now;
    ep->win_fail[ep->win_head] = v == VERDICT_FAILURE;
    ep->win_fails += v == VERDICT_FAILURE;
    ep->win_head = (ep->win_head + 1) % cap;
    ep->win_n++;
    if (ep->win_n >= ep->cfg.breaker.min_calls &&
        (double)ep->win_fails >= ep->cfg.breaker.failure_rate * (double)ep->win_n)
        breaker_open(ep, now);
}

/* ---- keys ------------------------------------------------------------------------------- */

/* Picks a key that is not cooling down, or returns -1 with *free_at set to
 * when the first one will be. Holds ep->lock. */
static int key_pick(res_endpoint *ep, double now, double *free_at) {
    size_t n = ep->n_keys;
    *free_at = INFINITY;
    if (ep->cfg.key_policy == IA_KEYS_PINNED && !ep->keyless) {
        res_key *k = &ep->keys[ep->cfg.pinned_key];
        if (k->cool_until > now) {
            *free_at = k->cool_until;
            return -1;
        }
        return ep->cfg.pinned_key;
    }
    int best = -1;
    for (size_t i = 0; i < n; i++) {
        size_t k = (ep->next_key + i) % n;
        if (ep->keys[k].cool_until > now) {
            if (ep->keys[k].cool_until < *free_at)
                *free_at = ep->keys[k].cool_until;
            continue;
        }
        if (ep->cfg.key_policy == IA_KEYS_ROUND_ROBIN) {
            best = (int)k;
            break;
        }
        if (best < 0 || ep->keys[k].in_flight < ep->keys[best].in_flight)
            best = (int)k;
    }
    if (best >= 0)
        ep->next_key = ((size_t)best + 1) % n;
    return best;
}

static bool any_key_free(const res_endpoint *ep, double now) {
    if (ep->cfg.key_policy == IA_KEYS_PINNED && !ep->keyless)
        return ep->keys[ep->cfg.pinned_key].cool_until <= now;
    for (size_t i = 0; i < ep->n_keys; i++)
        if (ep->keys[i].cool_until <= now)
            return true;
    return false;
}

/* ---- the attempt loop --------------------------------------------------------------------- */

/* What happened on one endpoint: an end (final unless it allows a fallback). */
typedef struct ep_run {
    ia_call_end end;
    bool next; /* the chain may go on to the next endpoint */
} ep_run;

typedef struct request {
    ia_resilience *r;
    ia_priority prio;
    ia_call_fn fn;
    void *ctx;
    double deadline;
    ia_call_result *res;
    char why[512]; /* accumulated reasons, one clause per endpoint */
} request;

static void why_add(request *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void why_add(request *q, const char *fmt, ...) {
    size_t len = strlen(q->why);
    if (len + 3 >= sizeof q->why)
        return;
    if (len)
        len += (size_t)snprintf(q->why + len, sizeof q->why - len, "; ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q->why + len, sizeof q->why - len, fmt, ap);
    va_end(ap);
}

static double backoff_ms(ia_resilience *r, const ia_retry_policy *p, int next_attempt,
                         const ia_call_outcome *o) {
    double cap = (double)p->base_backoff_ms * ldexp(1.0, next_attempt - 2);
    if (cap > p->max_backoff_ms)
        cap = p->max_backoff_ms;
    double wait = p->full_jitter ? cap * rng_unit(r) : cap;
    if (o->retry_after_ms >= 0) {
        double ra = (double)o->retry_after_ms;
        if (ra > p->max_retry_after_ms)
            ra = p->max_retry_after_ms;
        if (ra > wait)
            wait = ra;
    }
    return wait;
}

static const char *outcome_text(const ia_call_outcome *o, char buf[256]) {
    if (o->http_status)
        snprintf(buf, 256, "%s (HTTP %d%s%s)", ia_call_class_name(o->cls), o->http_status,
                 o->message[0] ? ": " : "", o->message);
    else
        snprintf(buf, 256, "%s%s%s", ia_call_class_name(o->cls), o->message[0] ? ": " : "",
                 o->message);
    return buf;
}

/* Accounts one finished attempt and applies its consequences. */
static void attempt_record(ia_resilience *r, res_endpoint *ep, int key, admit_result a,
                           uint64_t gen, const ia_call_outcome *o, int attempt, double now) {
    ia_call_class c = (unsigned)o->cls < IA_CALL_CLASS_COUNT ? o->cls : IA_CALL_FATAL;
    verdict v = VERDICT_NEUTRAL;
    if (c == IA_CALL_OK)
        v = VERDICT_SUCCESS;
    if (c == IA_CALL_RETRYABLE)
        v = VERDICT_FAILURE;
    if (ep->cfg.breaker.slow_call_ms > 0 && o->latency_ms >= ep->cfg.breaker.slow_call_ms &&
        c != IA_CALL_CANCELLED)
        v = VERDICT_FAILURE;
    pthread_mutex_lock(&ep->lock);
    res_key *k = &ep->keys[key];
    k->in_flight--;
    k->attempts++;
    k->by_class[c]++;
    k->tokens_in += o->tokens_in;
    k->tokens_out += o->tokens_out;
    ep->st.attempts++;
    ep->st.retries += attempt > 1;
    ep->st.by_class[c]++;
    ep->st.tokens_in += o->tokens_in;
    ep->st.tokens_out += o->tokens_out;
    res_hist_add(&ep->latency, o->latency_ms);
    if (c == IA_CALL_RATE_LIMITED) {
        double cool =
            o->retry_after_ms >= 0 ? (double)o->retry_after_ms : (double)ep->cfg.key_cooldown_ms;
        if (cool > ep->cfg.retry.max_retry_after_ms && o->retry_after_ms >= 0)
            cool = ep->cfg.retry.max_retry_after_ms;
        if (now + cool > k->cool_until)
            k->cool_until = now + cool;
        k->cooldowns++;
    }
    breaker_record(ep, a, gen, v, now);
    slot_release_locked(ep);
    pthread_mutex_unlock(&ep->lock);
    (void)r;
}

/* Attempts on one endpoint until an end. */
static ep_run run_endpoint(request *q, res_endpoint *ep) {
    ia_resilience *r = q->r;
    ia_call_result *res = q->res;
    int attempt = 0;
    bool accepted = false; /* past this endpoint's queue capacity check once */
    char buf[256];
    for (;;) {
        double now = res_now(r);
        if (now >= q->deadline) {
            why_add(q, "endpoint '%s': deadline passed after %d attempts", ep->name, attempt);
            return (ep_run){IA_END_DEADLINE, false};
        }
        uint64_t gen;
        pthread_mutex_lock(&ep->lock);
        admit_result a = breaker_admit(ep, now, &gen);
        if (a == ADMIT_NO)
            ep->st.rejected_breaker_open++;
        pthread_mutex_unlock(&ep->lock);
        if (a == ADMIT_NO) {
            why_add(q, "endpoint '%s': circuit breaker open", ep->name);
            return (ep_run){IA_END_BREAKER_OPEN, true};
        }
        double waited = 0;
        slot_result s = slot_acquire(r, ep, q->prio, q->deadline, !accepted, &waited);
        res->queue_wait_ms += waited;
        if (s != SLOT_OK) {
            pthread_mutex_lock(&ep->lock);
            breaker_unadmit(ep, a, gen);
            pthread_mutex_unlock(&ep->lock);
            if (s == SLOT_FULL) {
                why_add(q, "endpoint '%s': queue full (%d waiting)", ep->name,
                        ep->cfg.queue_capacity);
                return (ep_run){IA_END_QUEUE_FULL, true};
            }
            why_add(q, "endpoint '%s': deadline passed while queued", ep->name);
            return (ep_run){IA_END_DEADLINE, false};
        }
        accepted = true;
        now = res_now(r);
        double free_at;
        pthread_mutex_lock(&ep->lock);
        int key = key_pick(ep, now, &free_at);
        if (key < 0) {
            breaker_unadmit(ep, a, gen);
            slot_release_locked(ep);
        } else {
            ep->keys[key].in_flight++;
        }
        pthread_mutex_unlock(&ep->lock);
        if (key < 0) {
            if (free_at >= q->deadline) {
                why_add(q, "endpoint '%s': %s cooling down after 429 past the deadline", ep->name,
                        ep->keyless ? "endpoint" : "every key");
                return (ep_run){IA_END_DEADLINE, false};
            }
            r->opts.sleep_ms(r->opts.clock_ctx, free_at - now);
            continue;
        }

        attempt++;
        res->attempts++;
        ia_call_attempt at = {
            .endpoint = ep->name,
            .endpoint_user = ep->cfg.user,
            .attempt = attempt,
            .attempt_total = res->attempts,
            .key_index = ep->keyless ? -1 : key,
            .key_id = ep->keys[key].id,
            .probe = a == ADMIT_PROBE,
            .connect_timeout_ms = ep->cfg.timeouts.connect_ms,
            .first_byte_timeout_ms = ep->cfg.timeouts.first_byte_ms,
            .timeout_ms = 0,
        };
        if (!isinf(q->deadline)) {
            double left = ceil(q->deadline - now);
            at.timeout_ms = left < 1 ? 1 : left > 1e9 ? 1000000000 : (int)left;
        }
        ia_call_outcome *o = &res->outcome;
        memset(o, 0, sizeof *o);
        o->retry_after_ms = -1;
        o->should_retry = -1;
        double t0 = res_now(r);
        q->fn(q->ctx, &at, o);
        now = res_now(r);
        o->latency_ms = now - t0;
        o->message[sizeof o->message - 1] = '\0';
        if ((unsigned)o->cls >= IA_CALL_CLASS_COUNT)
            o->cls = IA_CALL_FATAL;
        res->key_index = at.key_index;
        attempt_record(r, ep, key, a, gen, o, attempt, now);

        switch (o->cls) {
        case IA_CALL_OK:
            return (ep_run){IA_END_OK, false};
        case IA_CALL_FATAL:
            why_add(q, "endpoint '%s': %s", ep->name, outcome_text(o, buf));
            return (ep_run){IA_END_FATAL, false};
        case IA_CALL_CANCELLED:
            why_add(q, "endpoint '%s': cancelled", ep->name);
            return (ep_run){IA_END_CANCELLED, false};
        default:
            break;
        }
        if (o->should_retry == 0 || attempt >= ep->cfg.retry.max_attempts) {
            why_add(q, "endpoint '%s': %d attempt%s failed, last %s%s", ep->name, attempt,
                    attempt == 1 ? "" : "s", outcome_text(o, buf),
                    o->should_retry == 0 ? " (server said not to retry)" : "");
            return (ep_run){IA_END_EXHAUSTED, true};
        }
        double wait = backoff_ms(r, &ep->cfg.retry, attempt + 1, o);
        if (o->cls == IA_CALL_RATE_LIMITED && !ep->keyless) {
            pthread_mutex_lock(&ep->lock);
            bool other = any_key_free(ep, now);
            pthread_mutex_unlock(&ep->lock);
            if (other)
                wait = 0; /* another key can go at once */
        }
        if (now + wait >= q->deadline) {
            why_add(q, "endpoint '%s': deadline before retry %d, last %s", ep->name, attempt + 1,
                    outcome_text(o, buf));
            return (ep_run){IA_END_DEADLINE, false};
        }
        if (wait > 0)
            r->opts.sleep_ms(r->opts.clock_ctx, wait);
    }
}

ia_status ia_resilience_submit(ia_resilience *r, const char *endpoint, ia_priority priority,
                               ia_call_fn fn, void *ctx, int timeout_ms, ia_call_result *res) {
    memset(res, 0, sizeof *res);
    res->key_index = -1;
    res->end = IA_END_FATAL;
    if ((unsigned)priority >= IA_PRIORITY_COUNT)
        return ia_error_set(IA_EINVAL, "endpoint '%s': bad priority %d", endpoint ? endpoint : "",
                            (int)priority);
    if (!fn)
        return ia_error_set(IA_EINVAL, "endpoint '%s': no call function", endpoint ? endpoint : "");
    res_endpoint *ep = res_find(r, endpoint);
    if (!ep)
        return IA_ENOTFOUND;
    double t0 = res_now(r);
    request q = {.r = r, .prio = priority, .fn = fn, .ctx = ctx, .res = res};
    if (timeout_ms == 0)
        timeout_ms = ep->cfg.timeouts.total_ms ? ep->cfg.timeouts.total_ms : -1;
    q.deadline = timeout_ms > 0 ? t0 + timeout_ms : INFINITY;

    /* The fallback list is read once: a concurrent set_fallbacks frees the old one. */
    pthread_mutex_lock(&ep->lock);
    ep->st.requests++;
    size_t n_chain = 1 + ep->n_fallbacks;
    res_endpoint *stack_chain[8], **chain = stack_chain;
    if (n_chain > 8 && !(chain = ia_malloc_array(n_chain, sizeof *chain))) {
        chain = stack_chain;
        n_chain = 1;
    }
    chain[0] = ep;
    for (size_t i = 1; i < n_chain; i++)
        chain[i] = ep->fallbacks[i - 1];
    pthread_mutex_unlock(&ep->lock);

    ep_run run = {IA_END_FATAL, false};
    res_endpoint *last = ep;
    for (size_t i = 0; i < n_chain; i++) {
        res_endpoint *cur = chain[i];
        if (i > 0) {
            pthread_mutex_lock(&last->lock);
            last->st.fallback_out++;
            pthread_mutex_unlock(&last->lock);
            pthread_mutex_lock(&cur->lock);
            cur->st.fallback_in++;
            pthread_mutex_unlock(&cur->lock);
            res->fallbacks++;
        }
        last = cur;
        run = run_endpoint(&q, cur);
        if (!run.next)
            break;
    }
    if (chain != stack_chain)
        free(chain);
    res->end = run.end;
    res->served_by = last->name;
    res->total_ms = res_now(r) - t0;
    pthread_mutex_lock(&last->lock);
    last->st.by_end[run.end]++;
    pthread_mutex_unlock(&last->lock);
    if (run.end == IA_END_OK)
        return IA_OK;
    return ia_error_set(run.end == IA_END_QUEUE_FULL ? IA_ERANGE : IA_EIO, "%s", q.why);
}
