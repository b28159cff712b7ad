/*
 * The resilience layer without any network: a scripted call function plays
 * the provider (each attempt's outcome comes from a script), and a fake
 * clock whose sleep advances time makes backoff, Retry-After and key
 * cooldowns instant and exact. Covered here: configuration errors, retries
 * (exponential backoff, full jitter from a seeded RNG, Retry-After caps,
 * x-should-retry, fatal never retried), the whole-call deadline, key
 * selection (round-robin, least-loaded, pinned, 429 cooldowns, every key
 * cooling), fallbacks, the priority queue (order, FIFO, fail-fast when
 * full, deadline while queued) with real threads, statistics (JSON,
 * Prometheus, percentiles) and the embedding batcher. The circuit breaker
 * has its own file (test_resilience_breaker.c); 64-thread stress runs in
 * test_resilience_stress.c.
 */
#define _GNU_SOURCE
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "backends/resilience.h"
#include "test.h"

/* ---- fake clock ------------------------------------------------------------------------ */

typedef struct fake_clock {
    double t;
    double sleeps[64];
    int n_sleeps;
} fake_clock;

static double fc_now(void *ctx) { return ((fake_clock *)ctx)->t; }
static void fc_sleep(void *ctx, double ms) {
    fake_clock *c = ctx;
    if (c->n_sleeps < 64)
        c->sleeps[c->n_sleeps++] = ms;
    c->t += ms;
}

static ia_resilience *make_fake(fake_clock *c, uint64_t seed) {
    memset(c, 0, sizeof *c);
    c->t = 1000;
    ia_resilience_options o = {
        .seed = seed, .now_ms = fc_now, .sleep_ms = fc_sleep, .clock_ctx = c};
    ia_resilience *r = NULL;
    CHECK_OK(ia_resilience_create(&o, &r));
    return r;
}

static ia_endpoint_config base_cfg(const char *name) {
    ia_endpoint_config c;
    ia_resilience_endpoint_defaults(&c);
    c.name = name;
    c.retry.base_backoff_ms = 100;
    c.retry.max_backoff_ms = 1000;
    c.retry.full_jitter = false;
    c.breaker.disabled = true;
    return c;
}

/* ---- scripted call ------------------------------------------------------------------------ */

typedef struct step {
    ia_call_class cls;
    int http;
    long retry_after_ms;
    int should_retry; /* 0 in a literal means "absent"; use SR_FALSE / SR_TRUE */
    double takes_ms;  /* advances the fake clock */
} step;
#define SR_FALSE 100
#define SR_TRUE 101

typedef struct script {
    fake_clock *clock;
    step steps[32];
    int n, next;
    /* what the attempts saw */
    int keys[64];
    char endpoints[64][32];
    int attempt_no[64];
    int timeouts[64], connect_timeouts[64], first_byte_timeouts[64];
    void *users[64];
    bool probes[64];
    int calls;
} script;

static void scripted(void *ctx, const ia_call_attempt *a, ia_call_outcome *o) {
    script *s = ctx;
    int i = s->calls++;
    if (i < 64) {
        s->keys[i] = a->key_index;
        snprintf(s->endpoints[i], sizeof s->endpoints[i], "%s", a->endpoint);
        s->attempt_no[i] = a->attempt;
        s->timeouts[i] = a->timeout_ms;
        s->connect_timeouts[i] = a->connect_timeout_ms;
        s->first_byte_timeouts[i] = a->first_byte_timeout_ms;
        s->users[i] = a->endpoint_user;
        s->probes[i] = a->probe;
    }
    step st = s->next < s->n ? s->steps[s->next++] : (step){.cls = IA_CALL_OK, .http = 200};
    if (s->clock)
        s->clock->t += st.takes_ms;
    o->cls = st.cls;
    o->http_status = st.http;
    if (st.retry_after_ms)
        o->retry_after_ms = st.retry_after_ms;
    if (st.should_retry == SR_FALSE)
        o->should_retry = 0;
    if (st.should_retry == SR_TRUE)
        o->should_retry = 1;
    o->tokens_in = st.cls == IA_CALL_OK ? 7 : 0;
    o->tokens_out = st.cls == IA_CALL_OK ? 3 : 0;
    snprintf(o->message, sizeof o->message, "step %d", i);
}

#define OK_STEP \
    { IA_CALL_OK, 200, 0, 0, 0 }
#define E503 \
    { IA_CALL_RETRYABLE, 503, 0, 0, 0 }

/* ---- configuration --------------------------------------------------------------------------- */

TEST(config_errors_name_endpoint_and_field) {
    fake_clock c;
    ia_resilience *r = make_fake(&c, 1);
    ia_endpoint_config cfg = base_cfg("gpt");
    cfg.max_concurrency = 0;
    CHECK_ERR(ia_resilience_add_endpoint(r, &cfg), IA_EINVAL, "'gpt': max_concurrency 0");
    cfg = base_cfg("gpt");
    cfg.retry.max_backoff_ms = 10;
    CHECK_ERR(ia_resilience_add_endpoint(r, &cfg), IA_EINVAL, "'gpt': backoff base 100 ms");
    cfg = base_cfg("gpt");
    cfg.breaker.failure_rate = 1.5;
    CHECK_ERR(ia_resilience_add_endpoint(r, &cfg), IA_EINVAL, "failure_rate 1.5");
    const char *keys[] = {"K1", "K2"};
    cfg = base_cfg("gpt");
    cfg.key_ids = keys;
    cfg.n_keys = 2;
    cfg.key_policy = IA_KEYS_PINNED;
    cfg.pinned_key = 2;
    CHECK_ERR(ia_resilience_add_endpoint(r, &cfg), IA_EINVAL, "pinned key 2 is not one of its 2");
    cfg = base_cfg(NULL);
    CHECK_ERR(ia_resilience_add_endpoint(r, &cfg), IA_EINVAL, "a name is required");

    cfg = base_cfg("gpt");
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    CHECK_ERR(ia_resilience_add_endpoint(r, &cfg), IA_EINVAL, "'gpt' is configured twice");
    const char *fb_self[] = {"gpt"}, *fb_none[] = {"nope"};
    CHECK_ERR(ia_resilience_set_fallbacks(r, "gpt", fb_self, 1), IA_EINVAL, "endpoint itself");
    CHECK_ERR(ia_resilience_set_fallbacks(r, "gpt", fb_none, 1), IA_EINVAL,
              "fallback 'nope' is not configured");
    script s = {.clock = &c};
    ia_call_result res;
    CHECK_ERR(ia_resilience_submit(r, "nope", IA_PRIORITY_NORMAL, scripted, &s, -1, &res),
              IA_ENOTFOUND, "endpoint 'nope' is not configured");
    CHECK_EQ_INT(s.calls, 0);

    ia_priority p;
    CHECK_OK(ia_priority_parse("low", &p));
    CHECK_EQ_INT(p, IA_PRIORITY_LOW);
    CHECK_ERR(ia_priority_parse("urgent", &p), IA_EINVAL, "'urgent'");
    ia_key_policy kp;
    CHECK_OK(ia_key_policy_parse("least_loaded", &kp));
    CHECK_EQ_INT(kp, IA_KEYS_LEAST_LOADED);
    CHECK(strcmp(ia_call_end_name(IA_END_BREAKER_OPEN), "breaker_open") == 0);
    ia_resilience_destroy(r);
}

/* ---- retries ----------------------------------------------------------------------------------
 */

TEST(success_first_try) {
    fake_clock c;
    ia_resilience *r = make_fake(&c, 1);
    ia_endpoint_config cfg = base_cfg("a");
    int user_obj;
    cfg.user = &user_obj;
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    script s = {.clock = &c, .steps = {{IA_CALL_OK, 200, 0, 0, 12}}, .n = 1};
    ia_call_result res;
    CHECK_OK(ia_resilience_submit(r, "a", IA_PRIORITY_NORMAL, scripted, &s, 5000, &res));
    CHECK_EQ_INT(res.end, IA_END_OK);
    CHECK_EQ_INT(res.attempts, 1);
    CHECK_EQ_INT(res.key_index, -1);
    CHECK(strcmp(res.served_by, "a") == 0);
    CHECK_NEAR(res.outcome.latency_ms, 12, 1e-9);
    CHECK_EQ_INT(res.outcome.tokens_in, 7);
    CHECK(s.users[0] == &user_obj);
    CHECK_EQ_INT(s.timeouts[0], 5000);
    CHECK_EQ_INT(s.connect_timeouts[0], cfg.timeouts.connect_ms);
    CHECK_EQ_INT(s.first_byte_timeouts[0], cfg.timeouts.first_byte_ms);
    CHECK_EQ_INT(s.keys[0], -1);
    ia_endpoint_stats st;
    CHECK_OK(ia_resilience_endpoint_stats(r, "a", &st));
    CHECK_EQ_INT(st.requests, 1);
    CHECK_EQ_INT(st.attempts, 1);
    CHECK_EQ_INT(st.by_class[IA_CALL_OK], 1);
    CHECK_EQ_INT(st.by_end[IA_END_OK], 1);
    CHECK_EQ_INT(st.tokens_in, 7);
    CHECK_EQ_INT(st.tokens_out, 3);
    CHECK_EQ_INT(st.in_flight, 0);
    ia_resilience_destroy(r);
}

TEST(exponential_backoff_then_success) {
    fake_clock c;
    ia_resilience *r = make_fake(&c, 1);
    ia_endpoint_config cfg = base_cfg("a");
    cfg.retry.max_attempts = 5;
    cfg.retry.max_backoff_ms = 300; /* 100, 200, then capped at 300 */
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    script s = {.clock = &c, .steps = {E503, E503, E503, E503, OK_STEP}, .n = 5};
    ia_call_result res;
    CHECK_OK(ia_resilience_submit(r, "a", IA_PRIORITY_NORMAL, scripted, &s, -1, &res));
    CHECK_EQ_INT(res.attempts, 5);
    CHECK_EQ_INT(c.n_sleeps, 4);
    CHECK_NEAR(c.sleeps[0], 100, 1e-9);
    CHECK_NEAR(c.sleeps[1], 200, 1e-9);
    CHECK_NEAR(c.sleeps[2], 300, 1e-9);
    CHECK_NEAR(c.sleeps[3], 300, 1e-9);
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(s.attempt_no[i], i + 1);
    ia_endpoint_stats st;
    CHECK_OK(ia_resilience_endpoint_stats(r, "a", &st));
    CHECK_EQ_INT(st.retries, 4);
    CHECK_EQ_INT(st.by_class[IA_CALL_RETRYABLE], 4);
    ia_resilience_destroy(r);
}

/* Full jitter: each wait is uniform in [0, cap]; the same seed gives the same waits. */
static void jitter_waits(uint64_t seed, double out[8]) {
    fake_clock c;
    ia_resilience *r = make_fake(&c, seed);
    ia_endpoint_config cfg = base_cfg("a");
    cfg.retry.full_jitter = true;
    cfg.retry.max_attempts = 9;
    cfg.retry.max_backoff_ms = 100000;
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    script s = {.clock = &c, .n = 9};
    for (int i = 0; i < 8; i++)
        s.steps[i] = (step)E503;
    s.steps[8] = (step)OK_STEP;
    ia_call_result res;
    CHECK_OK(ia_resilience_submit(r, "a", IA_PRIORITY_NORMAL, scripted, &s, -1, &res));
    CHECK_EQ_INT(c.n_sleeps, 8);
    for (int i = 0; i < 8; i++)
        out[i] = c.sleeps[i];
    ia_resilience_destroy(r);
}

TEST(full_jitter_seeded) {
    double a[8], b[8], d[8];
    jitter_waits(42, a);
    jitter_waits(42, b);
    jitter_waits(43, d);
    int same_ab = 0, same_ad = 0;
    double total = 0, total_cap = 0;
    for (int i = 0; i < 8; i++) {
        double cap = 100.0 * (1 << i);
        CHECK(a[i] >= 0 && a[i] <= cap);
        same_ab += a[i] == b[i];
        same_ad += a[i] == d[i];
        total += a[i];
        total_cap += cap;
    }
    CHECK_EQ_INT(same_ab, 8);
    CHECK(same_ad < 8);
    /* Not all at the cap (that would be no jitter) nor all near zero. */
    CHECK(total < 0.95 * total_cap && total > 0.05 * total_cap);
}

TEST(retry_after_honoured_and_capped) {
    fake_clock c;
    ia_resilience *r = make_fake(&c, 1);
    ia_endpoint_config cfg = base_cfg("a");
    cfg.retry.max_attempts = 3;
    cfg.retry.max_retry_after_ms = 5000;
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    script s = {.clock = &c,
                .steps = {{IA_CALL_RETRYABLE, 503, 2500, 0, 0},
                          {IA_CALL_RETRYABLE, 503, 99000, 0, 0},
                          OK_STEP},
                .n = 3};
    ia_call_result res;
    CHECK_OK(ia_resilience_submit(r, "a", IA_PRIORITY_NORMAL, scripted, &s, -1, &res));
    CHECK_EQ_INT(c.n_sleeps, 2);
    CHECK_NEAR(c.sleeps[0], 2500, 1e-9); /* more than the 100 ms backoff */
    CHECK_NEAR(c.sleeps[1], 5000, 1e-9); /* capped */
    ia_resilience_destroy(r);
}

TEST(fatal_never_retried_nor_fallen_back) {
    fake_clock c;
    ia_resilience *r = make_fake(&c, 1);
    ia_endpoint_config cfg = base_cfg("a");
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    cfg.name = "b";
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    const char *fb[] = {"b"};
    CHECK_OK(ia_resilience_set_fallbacks(r, "a", fb, 1));
    script s = {.clock = &c, .steps = {{IA_CALL_FATAL, 401, 0, 0, 0}}, .n = 1};
    ia_call_result res;
    CHECK_ERR(ia_resilience_submit(r, "a", IA_PRIORITY_NORMAL, scripted, &s, -1, &res), IA_EIO,
              "endpoint 'a': fatal (HTTP 401: step 0)");
    CHECK_EQ_INT(res.end, IA_END_FATAL);
    CHECK_EQ_INT(res.attempts, 1);
    CHECK_EQ_INT(s.calls, 1);
    CHECK_EQ_INT(res.outcome.http_status, 401);
    CHECK_EQ_INT(c.n_sleeps, 0);
    ia_resilience_destroy(r);
}

TEST(exhausted_and_should_retry_false) {
    fake_clock c;
    ia_resilience *r = make_fake(&c, 1);
    ia_endpoint_config cfg = base_cfg("a");
    cfg.retry.max_attempts = 3;
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    script s = {.clock = &c, .steps = {E503, E503, E503, OK_STEP}, .n = 4};
    ia_call_result res;
    CHECK_ERR(ia_resilience_submit(r, "a", IA_PRIORITY_NORMAL, scripted, &s, -1, &res), IA_EIO,
              "endpoint 'a': 3 attempts failed, last retryable (HTTP 503: step 2)");
    CHECK_EQ_INT(res.end, IA_END_EXHAUSTED);
    CHECK_EQ_INT(s.calls, 3);

    script s2 = {.clock = &c, .steps = {{IA_CALL_RETRYABLE, 500, 0, SR_FALSE, 0}}, .n = 1};
    CHECK_ERR(ia_resilience_submit(r, "a", IA_PRIORITY_NORMAL, scripted, &s2, -1, &res), IA_EIO,
              "server said not to retry");
    CHECK_EQ_INT(s2.calls, 1);
    CHECK_EQ_INT(res.end, IA_END_EXHAUSTED);
    ia_endpoint_stats st;
    CHECK_OK(ia_resilience_endpoint_stats(r, "a", &st));
    CHECK_EQ_INT(st.by_end[IA_END_EXHAUSTED], 2);
    CHECK_EQ_INT(st.requests, 2);
    ia_resilience_destroy(r);
}

TEST(deadline_stops_retries_and_bounds_attempts) {
    fake_clock c;
    ia_resilience *r = make_fake(&c, 1);
    ia_endpoint_config cfg = base_cfg("a");
    cfg.retry.max_attempts = 10;
    cfg.retry.base_backoff_ms = 400;
    cfg.retry.max_backoff_ms = 400;
    cfg.timeouts.total_ms = 1000;
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    /* Each attempt takes 100 ms and waits 400: attempts at 0, 500; the third would start at 1000.
     */
    script s = {.clock = &c, .n = 10};
    for (int i = 0; i < 10; i++)
        s.steps[i] = (step){IA_CALL_RETRYABLE, 502, 0, 0, 100};
    ia_call_result res;
    CHECK_ERR(ia_resilience_submit(r, "a", IA_PRIORITY_NORMAL, scripted, &s, 0, &res), IA_EIO,
              "deadline before retry 3");
    CHECK_EQ_INT(res.end, IA_END_DEADLINE);
    CHECK_EQ_INT(s.calls, 2);
    CHECK_EQ_INT(s.timeouts[0], 1000);
    CHECK_EQ_INT(s.timeouts[1], 500);
    ia_resilience_destroy(r);
}

/* ---- keys
 * ------------------------------------------------------------------------------------------ */

static const char *three_keys[] = {"KEY_A", "KEY_B", "KEY_C"};

TEST(round_robin_and_pinned_keys) {
    fake_clock c;
    ia_resilience *r = make_fake(&c, 1);
    ia_endpoint_config cfg = base_cfg("rr");
    cfg.key_ids = three_keys;
    cfg.n_keys = 3;
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    cfg.name = "pin";
    cfg.key_policy = IA_KEYS_PINNED;
    cfg.pinned_key = 1;
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    script s = {.clock = &c};
    ia_call_result res;
    for (int i = 0; i < 6; i++)
        CHECK_OK(ia_resilience_submit(r, "rr", IA_PRIORITY_NORMAL, scripted, &s, -1, &res));
    for (int i = 0; i < 6; i++)
        CHECK_EQ_INT(s.keys[i], i % 3);
    script p = {.clock = &c};
    for (int i = 0; i < 4; i++)
        CHECK_OK(ia_resilience_submit(r, "pin", IA_PRIORITY_NORMAL, scripted, &p, -1, &res));
    for (int i = 0; i < 4; i++)
        CHECK_EQ_INT(p.keys[i], 1);
    ia_key_stats ks;
    CHECK_OK(ia_resilience_key_stats(r, "rr", 2, &ks));
    CHECK(strcmp(ks.id, "KEY_C") == 0);
    CHECK_EQ_INT(ks.attempts, 2);
    CHECK_EQ_INT(ks.tokens_in, 14);
    CHECK_ERR(ia_resilience_key_stats(r, "rr", 3, &ks), IA_ENOTFOUND, "has no key 3");
    ia_resilience_destroy(r);
}

TEST(rate_limited_key_cools_down_and_is_skipped) {
    fake_clock c;
    ia_resilience *r = make_fake(&c, 1);
    ia_endpoint_config cfg = base_cfg("a");
    cfg.key_ids = three_keys;
    cfg.n_keys = 2;
    cfg.key_cooldown_ms = 60000;
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    /* key 0 gets 429 with Retry-After 5 s: the retry goes at once to key 1. */
    script s = {.clock = &c, .steps = {{IA_CALL_RATE_LIMITED, 429, 5000, 0, 0}}, .n = 1};
    ia_call_result res;
    CHECK_OK(ia_resilience_submit(r, "a", IA_PRIORITY_NORMAL, scripted, &s, -1, &res));
    CHECK_EQ_INT(s.calls, 2);
    CHECK_EQ_INT(s.keys[0], 0);
    CHECK_EQ_INT(s.keys[1], 1);
    CHECK_EQ_INT(c.n_sleeps, 0);
    CHECK_EQ_INT(res.key_index, 1);
    /* While key 0 cools down every call uses key 1. */
    script s2 = {.clock = &c};
    for (int i = 0; i < 3; i++)
        CHECK_OK(ia_resilience_submit(r, "a", IA_PRIORITY_NORMAL, scripted, &s2, -1, &res));
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(s2.keys[i], 1);
    ia_key_stats ks;
    CHECK_OK(ia_resilience_key_stats(r, "a", 0, &ks));
    CHECK(ks.cooling);
    CHECK_EQ_INT(ks.cooldowns, 1);
    CHECK_EQ_INT(ks.by_class[IA_CALL_RATE_LIMITED], 1);
    c.t += 5001;
    script s3 = {.clock = &c};
    for (int i = 0; i < 2; i++)
        CHECK_OK(ia_resilience_submit(r, "a", IA_PRIORITY_NORMAL, scripted, &s3, -1, &res));
    CHECK(s3.keys[0] != s3.keys[1]); /* key 0 is back in the rotation */
    CHECK_OK(ia_resilience_key_stats(r, "a", 0, &ks));
    CHECK(!ks.cooling);
    ia_resilience_destroy(r);
}

TEST(all_keys_cooling_waits_or_hits_deadline) {
    fake_clock c;
    ia_resilience *r = make_fake(&c, 1);
    ia_endpoint_config cfg = base_cfg("one");
    cfg.key_ids = three_keys;
    cfg.n_keys = 1;
    cfg.key_cooldown_ms = 3000;
    cfg.retry.base_backoff_ms = 0;
    cfg.retry.max_backoff_ms = 0;
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    /* A 429 without Retry-After: the only key cools for the configured 3 s. */
    script s = {.clock = &c, .steps = {{IA_CALL_RATE_LIMITED, 429, 0, 0, 0}}, .n = 1};
    ia_call_result res;
    double t0 = c.t;
    CHECK_OK(ia_resilience_submit(r, "one", IA_PRIORITY_NORMAL, scripted, &s, -1, &res));
    CHECK_EQ_INT(s.calls, 2);
    CHECK_NEAR(c.t - t0, 3000, 1e-6);
    /* The same with a 1 s deadline: fails without a second attempt. */
    script s2 = {.clock = &c, .steps = {{IA_CALL_RATE_LIMITED, 429, 0, 0, 0}}, .n = 1};
    CHECK_ERR(ia_resilience_submit(r, "one", IA_PRIORITY_NORMAL, scripted, &s2, 1000, &res), IA_EIO,
              "every key cooling down");
    CHECK_EQ_INT(s2.calls, 1);
    CHECK_EQ_INT(res.end, IA_END_DEADLINE);
    ia_resilience_destroy(r);
}

/* Least-loaded needs calls in flight at once: threads that block in the call. */
typedef struct hold {
    pthread_mutex_t m;
    pthread_cond_t cv;
    int inside, release;
    int order[16];
    int n_order;
    atomic_int keys_used[3];
} hold;

typedef struct hold_arg {
    hold *h;
    ia_resilience *r;
    const char *ep;
    ia_priority prio;
    int tag;
    ia_status st;
    ia_call_result res;
} hold_arg;

static void holding_call(void *ctx, const ia_call_attempt *a, ia_call_outcome *o) {
    hold_arg *ha = ctx;
    hold *h = ha->h;
    if (a->key_index >= 0)
        atomic_fetch_add(&h->keys_used[a->key_index], 1);
    pthread_mutex_lock(&h->m);
    h->order[h->n_order++] = ha->tag;
    h->inside++;
    pthread_cond_broadcast(&h->cv);
    while (!h->release)
        pthread_cond_wait(&h->cv, &h->m);
    h->inside--;
    pthread_mutex_unlock(&h->m);
    o->cls = IA_CALL_OK;
}

static void *hold_thread(void *p) {
    hold_arg *ha = p;
    ha->st = ia_resilience_submit(ha->r, ha->ep, ha->prio, holding_call, ha, -1, &ha->res);
    return NULL;
}

static void hold_wait_inside(hold *h, int n) {
    pthread_mutex_lock(&h->m);
    while (h->inside < n)
        pthread_cond_wait(&h->cv, &h->m);
    pthread_mutex_unlock(&h->m);
}

static void hold_release(hold *h) {
    pthread_mutex_lock(&h->m);
    h->release = 1;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->m);
}

static void wait_queued(ia_resilience *r, const char *ep, int n) {
    ia_endpoint_stats st;
    for (int i = 0; i < 5000; i++) {
        ia_resilience_endpoint_stats(r, ep, &st);
        if (st.queued >= n)
            return;
        usleep(1000);
    }
    CHECK_MSG(false, "%d requests never queued on %s", n, ep);
}

static void quick_call(void *ctx, const ia_call_attempt *a, ia_call_outcome *o) {
    int *keys = ctx;
    keys[keys[0]++ + 1] = a->key_index;
    o->cls = IA_CALL_OK;
}

TEST(least_loaded_spreads_concurrent_calls) {
    ia_resilience *r = NULL;
    CHECK_OK(ia_resilience_create(NULL, &r));
    ia_endpoint_config cfg = base_cfg("ll");
    cfg.key_ids = three_keys;
    cfg.n_keys = 3;
    cfg.key_policy = IA_KEYS_LEAST_LOADED;
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    hold h = {.m = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    hold_arg args[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        args[i] = (hold_arg){.h = &h, .r = r, .ep = "ll", .prio = IA_PRIORITY_NORMAL, .tag = i};
        pthread_create(&t[i], NULL, hold_thread, &args[i]);
        hold_wait_inside(&h, i + 1); /* one at a time, so each sees the others' loads */
    }
    CHECK_EQ_INT(atomic_load(&h.keys_used[0]), 1);
    CHECK_EQ_INT(atomic_load(&h.keys_used[1]), 1);
    /* Keys 0 and 1 are busy: every quick call goes to key 2 (round-robin would not). */
    int keys[8] = {0};
    ia_call_result res;
    for (int i = 0; i < 3; i++)
        CHECK_OK(ia_resilience_submit(r, "ll", IA_PRIORITY_NORMAL, quick_call, keys, -1, &res));
    CHECK_EQ_INT(keys[0], 3);
    for (int i = 1; i <= 3; i++)
        CHECK_EQ_INT(keys[i], 2);
    ia_key_stats ks;
    CHECK_OK(ia_resilience_key_stats(r, "ll", 1, &ks));
    CHECK_EQ_INT(ks.in_flight, 1);
    hold_release(&h);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        CHECK_OK(args[i].st);
    }
    ia_resilience_destroy(r);
}

/* ---- queue
 * -------------------------------------------------------------------------------------------- */

TEST(priority_queue_order_and_fail_fast) {
    ia_resilience *r = NULL;
    CHECK_OK(ia_resilience_create(NULL, &r));
    ia_endpoint_config cfg = base_cfg("q");
    cfg.max_concurrency = 1;
    cfg.queue_capacity = 4;
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    hold h = {.m = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    /* tag 0 holds the only slot; then low(1), normal(2), high(3), normal(4) queue up. */
    static const ia_priority prios[] = {IA_PRIORITY_NORMAL, IA_PRIORITY_LOW, IA_PRIORITY_NORMAL,
                                        IA_PRIORITY_HIGH, IA_PRIORITY_NORMAL};
    hold_arg args[5];
    pthread_t t[5];
    for (int i = 0; i < 5; i++) {
        args[i] = (hold_arg){.h = &h, .r = r, .ep = "q", .prio = prios[i], .tag = i};
        pthread_create(&t[i], NULL, hold_thread, &args[i]);
        if (i == 0)
            hold_wait_inside(&h, 1);
        else
            wait_queued(r, "q", i);
    }
    /* The queue holds 4: a fifth waiter fails fast, naming the endpoint. */
    hold_arg extra = {.h = &h, .r = r, .ep = "q", .prio = IA_PRIORITY_HIGH, .tag = 9};
    CHECK_ERR(ia_resilience_submit(r, "q", IA_PRIORITY_HIGH, holding_call, &extra, -1, &extra.res),
              IA_ERANGE, "endpoint 'q': queue full");
    CHECK_EQ_INT(extra.res.end, IA_END_QUEUE_FULL);
    ia_endpoint_stats st;
    CHECK_OK(ia_resilience_endpoint_stats(r, "q", &st));
    CHECK_EQ_INT(st.rejected_queue_full, 1);
    CHECK_EQ_INT(st.queued, 4);
    CHECK_EQ_INT(st.in_flight, 1);
    hold_release(&h);
    for (int i = 0; i < 5; i++) {
        pthread_join(t[i], NULL);
        CHECK_OK(args[i].st);
    }
    static const int want[] = {0, 3, 2, 4, 1}; /* high, then normals FIFO, then low */
    CHECK_EQ_INT(h.n_order, 5);
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(h.order[i], want[i]);
    CHECK_OK(ia_resilience_endpoint_stats(r, "q", &st));
    CHECK_EQ_INT(st.requests, 6);
    CHECK_EQ_INT(st.by_end[IA_END_OK] + st.by_end[IA_END_QUEUE_FULL], 6);
    CHECK_EQ_INT(st.queue_wait.count, 5);
    CHECK(st.queue_wait.max_ms > 0);
    ia_resilience_destroy(r);
}

TEST(queue_wait_counts_against_the_deadline) {
    ia_resilience *r = NULL;
    CHECK_OK(ia_resilience_create(NULL, &r));
    ia_endpoint_config cfg = base_cfg("q");
    cfg.max_concurrency = 1;
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    hold h = {.m = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    hold_arg a0 = {.h = &h, .r = r, .ep = "q", .prio = IA_PRIORITY_NORMAL};
    pthread_t t;
    pthread_create(&t, NULL, hold_thread, &a0);
    hold_wait_inside(&h, 1);
    hold_arg a1 = {.h = &h, .r = r, .ep = "q", .prio = IA_PRIORITY_HIGH, .tag = 1};
    double t0 = ia_time_now();
    CHECK_ERR(ia_resilience_submit(r, "q", IA_PRIORITY_HIGH, holding_call, &a1, 50, &a1.res),
              IA_EIO, "endpoint 'q': deadline passed while queued");
    double took = ia_time_now() - t0;
    CHECK(took >= 0.045 && took < 2.0);
    CHECK_EQ_INT(a1.res.end, IA_END_DEADLINE);
    CHECK(a1.res.queue_wait_ms >= 45);
    ia_endpoint_stats st;
    CHECK_OK(ia_resilience_endpoint_stats(r, "q", &st));
    CHECK_EQ_INT(st.queued, 0);
    hold_release(&h);
    pthread_join(t, NULL);
    CHECK_OK(a0.st);
    CHECK_OK(ia_resilience_endpoint_stats(r, "q", &st));
    CHECK_EQ_INT(st.in_flight, 0);
    ia_resilience_destroy(r);
}

/* ---- fallbacks
 * --------------------------------------------------------------------------------------------- */

TEST(fallback_after_retries_records_who_served) {
    fake_clock c;
    ia_resilience *r = make_fake(&c, 1);
    int ua, ub, uc;
    ia_endpoint_config cfg = base_cfg("primary");
    cfg.retry.max_attempts = 2;
    cfg.user = &ua;
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    cfg.name = "second";
    cfg.user = &ub;
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    cfg.name = "third";
    cfg.user = &uc;
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    const char *fb[] = {"second", "third"};
    CHECK_OK(ia_resilience_set_fallbacks(r, "primary", fb, 2));
    script s = {.clock = &c, .steps = {E503, E503, E503, E503, OK_STEP}, .n = 5};
    ia_call_result res;
    CHECK_OK(ia_resilience_submit(r, "primary", IA_PRIORITY_NORMAL, scripted, &s, -1, &res));
    CHECK(strcmp(res.served_by, "third") == 0);
    CHECK_EQ_INT(res.fallbacks, 2);
    CHECK_EQ_INT(res.attempts, 5);
    CHECK(strcmp(s.endpoints[0], "primary") == 0 && strcmp(s.endpoints[2], "second") == 0 &&
          strcmp(s.endpoints[4], "third") == 0);
    CHECK(s.users[0] == &ua && s.users[2] == &ub && s.users[4] == &uc);
    CHECK_EQ_INT(s.attempt_no[2], 1); /* attempt numbers restart per endpoint */
    ia_endpoint_stats p, q3;
    CHECK_OK(ia_resilience_endpoint_stats(r, "primary", &p));
    CHECK_OK(ia_resilience_endpoint_stats(r, "third", &q3));
    CHECK_EQ_INT(p.requests, 1);
    CHECK_EQ_INT(p.fallback_out, 1);
    CHECK_EQ_INT(p.by_end[IA_END_OK], 0);
    CHECK_EQ_INT(q3.fallback_in, 1);
    CHECK_EQ_INT(q3.requests, 0);
    CHECK_EQ_INT(q3.by_end[IA_END_OK], 1);

    /* Everything fails: the message tells each endpoint's story. */
    script f = {.clock = &c, .n = 6};
    for (int i = 0; i < 6; i++)
        f.steps[i] = (step)E503;
    CHECK_ERR(ia_resilience_submit(r, "primary", IA_PRIORITY_NORMAL, scripted, &f, -1, &res),
              IA_EIO, "endpoint 'primary': 2 attempts failed");
    CHECK(strstr(ia_error_message(), "endpoint 'third': 2 attempts failed"));
    CHECK_EQ_INT(res.end, IA_END_EXHAUSTED);
    ia_resilience_destroy(r);
}

/* ---- statistics
 * ------------------------------------------------------------------------------------------------
 */

TEST(latency_percentiles) {
    fake_clock c;
    ia_resilience *r = make_fake(&c, 1);
    ia_endpoint_config cfg = base_cfg("lat");
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    /* Latencies 1..1000 ms in a shuffled order. */
    for (int i = 0; i < 1000; i++) {
        int v = (i * 7919) % 1000 + 1;
        script s = {.clock = &c, .steps = {{IA_CALL_OK, 200, 0, 0, (double)v}}, .n = 1};
        ia_call_result res;
        CHECK_OK(ia_resilience_submit(r, "lat", IA_PRIORITY_NORMAL, scripted, &s, -1, &res));
    }
    ia_endpoint_stats st;
    CHECK_OK(ia_resilience_endpoint_stats(r, "lat", &st));
    CHECK_EQ_INT(st.latency.count, 1000);
    CHECK_NEAR(st.latency.p50_ms, 500, 500 * 0.09);
    CHECK_NEAR(st.latency.p90_ms, 900, 900 * 0.09);
    CHECK_NEAR(st.latency.p99_ms, 990, 990 * 0.09);
    CHECK_NEAR(st.latency.max_ms, 1000, 1e-9);
    CHECK_NEAR(st.latency.mean_ms, 500.5, 1e-6);
    ia_resilience_destroy(r);
}

TEST(stats_json_and_prometheus) {
    fake_clock c;
    ia_resilience *r = make_fake(&c, 1);
    ia_endpoint_config cfg = base_cfg("open\"ai");
    cfg.key_ids = three_keys;
    cfg.n_keys = 2;
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    script s = {.clock = &c,
                .steps = {{IA_CALL_RATE_LIMITED, 429, 10000, 0, 0}, {IA_CALL_OK, 200, 0, 0, 40}},
                .n = 2};
    ia_call_result res;
    CHECK_OK(ia_resilience_submit(r, "open\"ai", IA_PRIORITY_HIGH, scripted, &s, -1, &res));

    json_t *doc = NULL;
    CHECK_OK(ia_resilience_stats_json(r, &doc));
    json_t *ep = json_array_get(json_object_get(doc, "endpoints"), 0);
    CHECK(ep && strcmp(json_string_value(json_object_get(ep, "name")), "open\"ai") == 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(ep, "requests")), 1);
    CHECK_EQ_INT(json_integer_value(json_object_get(ep, "attempts")), 2);
    CHECK_EQ_INT(json_integer_value(json_object_get(ep, "retries")), 1);
    json_t *outc = json_object_get(ep, "outcomes");
    CHECK_EQ_INT(json_integer_value(json_object_get(outc, "rate_limited")), 1);
    CHECK_EQ_INT(json_integer_value(json_object_get(outc, "ok")), 1);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(ep, "results"), "ok")), 1);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(ep, "breaker"), "state")),
                 "closed") == 0);
    CHECK_NEAR(json_real_value(json_object_get(json_object_get(ep, "latency_ms"), "max")), 40,
               1e-9);
    json_t *keys = json_object_get(ep, "keys");
    CHECK_EQ_INT(json_array_size(keys), 2);
    json_t *k0 = json_array_get(keys, 0);
    CHECK(strcmp(json_string_value(json_object_get(k0, "id")), "KEY_A") == 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(k0, "cooldowns")), 1);
    CHECK(json_is_true(json_object_get(k0, "cooling")));
    CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(keys, 1), "tokens_out")), 3);
    json_decref(doc);

    char *text = NULL;
    size_t len = 0;
    CHECK_OK(ia_resilience_stats_prometheus(r, &text, &len));
    CHECK(text && strlen(text) == len);
    CHECK(strstr(text, "# TYPE ia_api_requests_total counter\n"));
    CHECK(strstr(text, "ia_api_requests_total{endpoint=\"open\\\"ai\"} 1\n"));
    CHECK(
        strstr(text, "ia_api_outcomes_total{endpoint=\"open\\\"ai\",class=\"rate_limited\"} 1\n"));
    CHECK(strstr(text, "ia_api_key_cooldowns_total{endpoint=\"open\\\"ai\",key=\"KEY_A\"} 1\n"));
    CHECK(strstr(text, "ia_api_key_attempts_total{endpoint=\"open\\\"ai\",key=\"KEY_B\"} 1\n"));
    CHECK(strstr(text, "ia_api_latency_ms_count{endpoint=\"open\\\"ai\"} 2\n"));
    CHECK(strstr(text, "ia_api_breaker_state{endpoint=\"open\\\"ai\"} 0\n"));
    /* Every sample line is a metric of ours. */
    int bad = 0;
    for (char *line = text; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        bad += line[0] != '#' && strncmp(line, "ia_api_", 7) != 0;
    CHECK_EQ_INT(bad, 0);
    free(text);
    ia_resilience_destroy(r);
}

/* ---- batching
 * ---------------------------------------------------------------------------------------------------
 */

typedef struct emb_item {
    int value;
    int result;
    int batch_size;
} emb_item;

typedef struct emb_batch {
    int n;
    int in[64], out[64];
} emb_batch;

typedef struct emb_ctx {
    atomic_int combines, calls, releases;
    atomic_int fail; /* the call reports fatal */
    atomic_int max_seen;
} emb_ctx;

static ia_status emb_combine(void *ctx, void *const *items, size_t n, void **batch) {
    emb_ctx *e = ctx;
    emb_batch *b = calloc(1, sizeof *b);
    if (!b || n > 64)
        return ia_error_set(IA_ENOMEM, "test batch");
    b->n = (int)n;
    for (size_t i = 0; i < n; i++)
        b->in[i] = ((emb_item *)items[i])->value;
    atomic_fetch_add(&e->combines, 1);
    int m = atomic_load(&e->max_seen);
    while ((int)n > m && !atomic_compare_exchange_weak(&e->max_seen, &m, (int)n)) {
    }
    *batch = b;
    return IA_OK;
}

static emb_ctx *g_emb;

static void emb_call(void *ctx, const ia_call_attempt *a, ia_call_outcome *o) {
    emb_batch *b = ctx;
    atomic_fetch_add(&g_emb->calls, 1);
    if (atomic_load(&g_emb->fail)) {
        o->cls = IA_CALL_FATAL;
        o->http_status = 400;
        snprintf(o->message, sizeof o->message, "input too long");
        return;
    }
    for (int i = 0; i < b->n; i++)
        b->out[i] = b->in[i] * 2 + 1;
    o->cls = IA_CALL_OK;
    o->tokens_in = (uint64_t)b->n;
}

static ia_status emb_split(void *ctx, void *batch, void *const *items, size_t n) {
    emb_batch *b = batch;
    for (size_t i = 0; i < n; i++) {
        ((emb_item *)items[i])->result = b->out[i];
        ((emb_item *)items[i])->batch_size = b->n;
    }
    return IA_OK;
}

static void emb_release(void *ctx, void *batch) {
    atomic_fetch_add(&((emb_ctx *)ctx)->releases, 1);
    free(batch);
}

typedef struct emb_arg {
    ia_batcher *b;
    emb_item item;
    ia_status st;
    ia_call_result res;
} emb_arg;

static void *emb_thread(void *p) {
    emb_arg *a = p;
    a->st = ia_batcher_submit(a->b, &a->item, IA_PRIORITY_NORMAL, -1, &a->res);
    return NULL;
}

static void run_batch_threads(ia_batcher *b, emb_arg *args, int n) {
    pthread_t t[64];
    for (int i = 0; i < n; i++) {
        args[i] = (emb_arg){.b = b, .item = {.value = 100 + i}};
        pthread_create(&t[i], NULL, emb_thread, &args[i]);
    }
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
}

TEST(batcher_combines_and_splits_in_order) {
    ia_resilience *r = NULL;
    CHECK_OK(ia_resilience_create(NULL, &r));
    ia_endpoint_config cfg = base_cfg("emb");
    cfg.batch.max_items = 4;
    cfg.batch.max_wait_ms = 200;
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    emb_ctx e = {0};
    g_emb = &e;
    ia_batch_ops ops = {emb_combine, emb_call, emb_split, emb_release};
    ia_batcher *b = NULL;
    CHECK_OK(ia_batcher_create(r, "emb", &ops, &e, &b));
    emb_arg args[10];
    double t0 = ia_time_now();
    run_batch_threads(b, args, 10);
    double took = ia_time_now() - t0;
    int total_in_batches = 0;
    for (int i = 0; i < 10; i++) {
        CHECK_OK(args[i].st);
        /* Each item got its own answer: the position mapping kept order. */
        CHECK_EQ_INT(args[i].item.result, (100 + i) * 2 + 1);
        CHECK(args[i].item.batch_size >= 1 && args[i].item.batch_size <= 4);
        total_in_batches += 1;
    }
    CHECK_EQ_INT(total_in_batches, 10);
    CHECK(atomic_load(&e.combines) >= 3); /* 10 items, at most 4 a batch */
    CHECK(atomic_load(&e.combines) < 10); /* and some were combined */
    CHECK_EQ_INT(atomic_load(&e.calls), atomic_load(&e.combines));
    CHECK_EQ_INT(atomic_load(&e.releases), atomic_load(&e.combines));
    CHECK(atomic_load(&e.max_seen) <= 4);
    CHECK(took < 5.0);
    ia_endpoint_stats st;
    CHECK_OK(ia_resilience_endpoint_stats(r, "emb", &st));
    CHECK_EQ_INT(st.requests, (uint64_t)atomic_load(&e.combines));
    CHECK_EQ_INT(st.tokens_in, 10);

    /* A lone item waits out max_wait_ms and goes alone. */
    emb_arg one;
    t0 = ia_time_now();
    run_batch_threads(b, &one, 1);
    took = ia_time_now() - t0;
    CHECK_OK(one.st);
    CHECK_EQ_INT(one.item.batch_size, 1);
    CHECK(took >= 0.19);

    /* A fatal answer fails every item of the batch, each exactly once. */
    atomic_store(&e.fail, 1);
    int before = atomic_load(&e.calls);
    emb_arg bad[4];
    run_batch_threads(b, bad, 4);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(bad[i].st, IA_EIO);
        CHECK_EQ_INT(bad[i].res.end, IA_END_FATAL);
        CHECK_EQ_INT(bad[i].item.result, 0);
    }
    CHECK(atomic_load(&e.calls) - before >= 1);
    ia_batcher_destroy(b);
    ia_resilience_destroy(r);
}
