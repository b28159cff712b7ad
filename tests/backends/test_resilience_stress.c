/*
 * 64 caller threads through the resilience layer at once, against a fake
 * provider that at random succeeds, fails retryably, answers 429 with a
 * Retry-After, or is slow. Endpoint "a" (three keys, 8 slots, a short queue
 * so that some admissions fail fast, a breaker that trips) falls back to
 * "b"; a few more threads push embedding items through a batcher on "emb".
 *
 * What must hold: every accepted request returns exactly once with exactly
 * one outcome (a per-request-id counter, so a lost or duplicated completion
 * shows), every attempt the provider saw belongs to a request that counted
 * it, and the statistics add up: requests and results per endpoint sum to
 * the submits, attempts to the outcomes by class and to the per-key
 * attempts, tokens to what the provider reported; nothing is left in
 * flight or queued.
 *
 * The same file builds as backends/resilience_tsan under ThreadSanitizer
 * from base/ and the resilience files only (see the end of
 * tests/CMakeLists.txt).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "backends/resilience.h"
#include "test.h"

#define N_THREADS 64
#define PER_THREAD 40
#define N_REQ (N_THREADS * PER_THREAD)
#define N_EMB_THREADS 8
#define EMB_PER_THREAD 25

typedef struct req {
    int id;
    uint64_t rng;
    atomic_int returned; /* submit returned for this request */
    atomic_int attempts; /* provider calls made for it */
    atomic_int oks;      /* provider calls that answered ok */
    atomic_ullong tok_in, tok_out;
} req;

static req reqs[N_REQ];
static atomic_ullong total_calls, total_tok_in, total_tok_out;
static atomic_int accepted, rejected, ends[IA_END_COUNT];
static atomic_int result_attempts_sum;
static ia_resilience *R;

static uint64_t xorshift(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void sleep_us(long us) {
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

/* Calls inside the provider right now, per endpoint, and the most seen: the
 * concurrency limit must hold. */
static atomic_int inside[2], most_inside[2];

static void enter(int e) {
    int now = atomic_fetch_add(&inside[e], 1) + 1, m = atomic_load(&most_inside[e]);
    while (now > m && !atomic_compare_exchange_weak(&most_inside[e], &m, now)) {
    }
}

static void fake_provider_body(req *q, const ia_call_attempt *a, ia_call_outcome *o);

static void fake_provider(void *ctx, const ia_call_attempt *a, ia_call_outcome *o) {
    int e = strcmp(a->endpoint, "a") == 0 ? 0 : 1;
    enter(e);
    fake_provider_body(ctx, a, o);
    atomic_fetch_sub(&inside[e], 1);
}

static void fake_provider_body(req *q, const ia_call_attempt *a, ia_call_outcome *o) {
    atomic_fetch_add(&q->attempts, 1);
    atomic_fetch_add(&total_calls, 1);
    unsigned roll = (unsigned)(xorshift(&q->rng) % 100);
    if (roll < 55) {
        o->cls = IA_CALL_OK;
        o->http_status = 200;
    } else if (roll < 75) {
        o->cls = IA_CALL_RETRYABLE;
        o->http_status = roll < 65 ? 503 : 529;
    } else if (roll < 85) {
        o->cls = IA_CALL_RATE_LIMITED;
        o->http_status = 429;
        o->retry_after_ms = 1 + (long)(roll % 3);
    } else if (roll < 97) {
        sleep_us(2000); /* slow, past the breaker's slow-call limit */
        o->cls = IA_CALL_OK;
        o->http_status = 200;
    } else {
        o->cls = IA_CALL_FATAL;
        o->http_status = 400;
    }
    if (o->cls == IA_CALL_OK) {
        atomic_fetch_add(&q->oks, 1);
        o->tokens_in = 10 + (uint64_t)(roll % 7);
        o->tokens_out = 1 + (uint64_t)(roll % 5);
        atomic_fetch_add(&q->tok_in, o->tokens_in);
        atomic_fetch_add(&q->tok_out, o->tokens_out);
        atomic_fetch_add(&total_tok_in, o->tokens_in);
        atomic_fetch_add(&total_tok_out, o->tokens_out);
    }
    snprintf(o->message, sizeof o->message, "request %d attempt %d on %s key %s", q->id, a->attempt,
             a->endpoint, a->key_id);
}

static void *caller(void *arg) {
    int t = (int)(intptr_t)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        req *q = &reqs[t * PER_THREAD + i];
        ia_call_result res;
        ia_priority prio = (ia_priority)(q->id % IA_PRIORITY_COUNT);
        ia_status st = ia_resilience_submit(R, "a", prio, fake_provider, q, 10000, &res);
        atomic_fetch_add(&q->returned, 1);
        atomic_fetch_add(&result_attempts_sum, res.attempts);
        atomic_fetch_add(&ends[res.end], 1);
        if (res.end == IA_END_QUEUE_FULL && res.attempts == 0)
            atomic_fetch_add(&rejected, 1);
        else
            atomic_fetch_add(&accepted, 1);
        /* exactly one outcome, and it agrees with the status */
        if ((st == IA_OK) != (res.end == IA_END_OK))
            atomic_fetch_add(&q->returned, 100);
        if (res.end == IA_END_OK && res.outcome.cls != IA_CALL_OK)
            atomic_fetch_add(&q->returned, 100);
        if (res.attempts != atomic_load(&q->attempts))
            atomic_fetch_add(&q->returned, 1000);
    }
    return NULL;
}

/* ---- the batcher under load ---------------------------------------------------------------- */

typedef struct emb_item {
    int value, result;
    atomic_int outcomes;
} emb_item;

static emb_item emb_items[N_EMB_THREADS * EMB_PER_THREAD];
static ia_batcher *B;
static atomic_int emb_combined_items;

typedef struct emb_batch {
    int n;
    int in[64], out[64];
} emb_batch;

static ia_status emb_combine(void *ctx, void *const *items, size_t n, void **batch) {
    emb_batch *b = calloc(1, sizeof *b);
    if (!b || n > 64) {
        free(b);
        return ia_error_set(IA_ENOMEM, "test batch");
    }
    b->n = (int)n;
    for (size_t i = 0; i < n; i++)
        b->in[i] = ((emb_item *)items[i])->value;
    atomic_fetch_add(&emb_combined_items, (int)n);
    *batch = b;
    return IA_OK;
}

static void emb_call(void *ctx, const ia_call_attempt *a, ia_call_outcome *o) {
    emb_batch *b = ctx;
    for (int i = 0; i < b->n; i++)
        b->out[i] = b->in[i] * 3;
    if (a->attempt == 1 && b->in[0] % 5 == 0) { /* some batches need a retry */
        o->cls = IA_CALL_RETRYABLE;
        o->http_status = 502;
        return;
    }
    o->cls = IA_CALL_OK;
}

static ia_status emb_split(void *ctx, void *batch, void *const *items, size_t n) {
    emb_batch *b = batch;
    for (size_t i = 0; i < n; i++)
        ((emb_item *)items[i])->result = b->out[i];
    return IA_OK;
}

static void emb_release(void *ctx, void *batch) { free(batch); }

static void *emb_caller(void *arg) {
    int t = (int)(intptr_t)arg;
    for (int i = 0; i < EMB_PER_THREAD; i++) {
        emb_item *it = &emb_items[t * EMB_PER_THREAD + i];
        ia_call_result res;
        ia_status st = ia_batcher_submit(B, it, IA_PRIORITY_NORMAL, 10000, &res);
        if (st == IA_OK)
            atomic_fetch_add(&it->outcomes, 1);
        else
            atomic_fetch_add(&it->outcomes, 100);
    }
    return NULL;
}

TEST(sixty_four_callers_exactly_one_outcome_each) {
    ia_log_set_level(IA_LOG_ERROR); /* 50-odd breaker trips would each log a warning */
    ia_resilience_options opts = {.seed = 12345};
    CHECK_OK(ia_resilience_create(&opts, &R));
    static const char *keys[] = {"KEY_1", "KEY_2", "KEY_3"};
    ia_endpoint_config cfg;
    ia_resilience_endpoint_defaults(&cfg);
    cfg.name = "a";
    cfg.max_concurrency = 8;
    cfg.queue_capacity = 40;
    cfg.retry = (ia_retry_policy){.max_attempts = 3,
                                  .base_backoff_ms = 1,
                                  .max_backoff_ms = 4,
                                  .full_jitter = true,
                                  .max_retry_after_ms = 3};
    cfg.breaker = (ia_breaker_policy){.window_calls = 50,
                                      .window_ms = 200,
                                      .min_calls = 20,
                                      .failure_rate = 0.3,
                                      .open_ms = 5,
                                      .half_open_probes = 2,
                                      .slow_call_ms = 1};
    cfg.key_ids = keys;
    cfg.n_keys = 3;
    cfg.key_policy = IA_KEYS_LEAST_LOADED;
    cfg.key_cooldown_ms = 2;
    CHECK_OK(ia_resilience_add_endpoint(R, &cfg));
    cfg.name = "b";
    cfg.key_ids = NULL;
    cfg.n_keys = 0;
    cfg.max_concurrency = 16;
    cfg.queue_capacity = 1000;
    cfg.breaker.disabled = true;
    CHECK_OK(ia_resilience_add_endpoint(R, &cfg));
    const char *fb[] = {"b"};
    CHECK_OK(ia_resilience_set_fallbacks(R, "a", fb, 1));
    cfg.name = "emb";
    cfg.max_concurrency = 2;
    cfg.batch = (ia_batch_policy){.max_items = 8, .max_wait_ms = 2};
    CHECK_OK(ia_resilience_add_endpoint(R, &cfg));
    ia_batch_ops ops = {emb_combine, emb_call, emb_split, emb_release};
    CHECK_OK(ia_batcher_create(R, "emb", &ops, NULL, &B));

    for (int i = 0; i < N_REQ; i++) {
        reqs[i].id = i;
        reqs[i].rng = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
    }
    for (int i = 0; i < N_EMB_THREADS * EMB_PER_THREAD; i++)
        emb_items[i].value = i;

    pthread_t t[N_THREADS], et[N_EMB_THREADS];
    for (int i = 0; i < N_THREADS; i++)
        CHECK_EQ_INT(pthread_create(&t[i], NULL, caller, (void *)(intptr_t)i), 0);
    for (int i = 0; i < N_EMB_THREADS; i++)
        CHECK_EQ_INT(pthread_create(&et[i], NULL, emb_caller, (void *)(intptr_t)i), 0);
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < N_EMB_THREADS; i++)
        pthread_join(et[i], NULL);

    /* exactly one return per request, consistent with its own attempts */
    int bad = 0;
    long attempts = 0, oks = 0;
    for (int i = 0; i < N_REQ; i++) {
        bad += atomic_load(&reqs[i].returned) != 1;
        attempts += atomic_load(&reqs[i].attempts);
        oks += atomic_load(&reqs[i].oks);
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(attempts, (long)atomic_load(&total_calls));
    CHECK_EQ_INT(atomic_load(&result_attempts_sum), attempts);
    CHECK_EQ_INT(atomic_load(&accepted) + atomic_load(&rejected), N_REQ);
    CHECK_EQ_INT(atomic_load(&ends[IA_END_OK]), oks); /* one ok ends a request */

    /* the statistics add up */
    ia_endpoint_stats a, b;
    CHECK_OK(ia_resilience_endpoint_stats(R, "a", &a));
    CHECK_OK(ia_resilience_endpoint_stats(R, "b", &b));
    CHECK_EQ_INT(a.requests + b.requests, N_REQ);
    uint64_t by_end = 0, by_class = 0;
    for (int e = 0; e < IA_END_COUNT; e++) {
        by_end += a.by_end[e] + b.by_end[e];
        CHECK_EQ_INT(a.by_end[e] + b.by_end[e], atomic_load(&ends[e]));
    }
    CHECK_EQ_INT(by_end, N_REQ);
    for (int c = 0; c < IA_CALL_CLASS_COUNT; c++)
        by_class += a.by_class[c] + b.by_class[c];
    CHECK_EQ_INT(a.attempts + b.attempts, attempts);
    CHECK_EQ_INT(by_class, attempts);
    CHECK_EQ_INT(a.by_class[IA_CALL_OK] + b.by_class[IA_CALL_OK], oks);
    CHECK_EQ_INT(a.tokens_in + b.tokens_in, atomic_load(&total_tok_in));
    CHECK_EQ_INT(a.tokens_out + b.tokens_out, atomic_load(&total_tok_out));
    CHECK_EQ_INT(a.fallback_out, b.fallback_in);
    uint64_t key_attempts = 0, key_tokens = 0;
    for (size_t k = 0; k < 3; k++) {
        ia_key_stats ks;
        CHECK_OK(ia_resilience_key_stats(R, "a", k, &ks));
        key_attempts += ks.attempts;
        key_tokens += ks.tokens_in;
        CHECK_EQ_INT(ks.in_flight, 0);
        CHECK(ks.attempts > 0); /* least-loaded used every key */
    }
    CHECK_EQ_INT(key_attempts, a.attempts);
    CHECK_EQ_INT(key_tokens, a.tokens_in);
    CHECK_EQ_INT(a.in_flight + a.queued + b.in_flight + b.queued, 0);
    CHECK_EQ_INT(a.latency.count, a.attempts);
    CHECK(atomic_load(&most_inside[0]) <= 8 && atomic_load(&most_inside[1]) <= 16);
    CHECK(atomic_load(&most_inside[0]) >= 2); /* and calls did overlap */
    /* The mix does exercise every path. */
    CHECK(a.by_class[IA_CALL_RATE_LIMITED] > 0 && a.by_class[IA_CALL_RETRYABLE] > 0);
    CHECK(a.retries > 0 && b.fallback_in > 0 && a.breaker_trips > 0);
    CHECK(atomic_load(&ends[IA_END_FATAL]) > 0);
    fprintf(
        stderr,
        "  %d requests: ends ok %d fatal %d exhausted %d deadline %d queue_full %d "
        "breaker_open %d; attempts %ld, breaker trips %llu, fallbacks %llu, most in flight %d/%d\n",
        N_REQ, atomic_load(&ends[0]), atomic_load(&ends[1]), atomic_load(&ends[3]),
        atomic_load(&ends[4]), atomic_load(&ends[5]), atomic_load(&ends[6]), attempts,
        (unsigned long long)a.breaker_trips, (unsigned long long)a.fallback_out,
        atomic_load(&most_inside[0]), atomic_load(&most_inside[1]));

    /* the batcher: every item one outcome, its own result */
    int emb_bad = 0;
    for (int i = 0; i < N_EMB_THREADS * EMB_PER_THREAD; i++)
        emb_bad += atomic_load(&emb_items[i].outcomes) != 1 ||
                   emb_items[i].result != emb_items[i].value * 3;
    CHECK_EQ_INT(emb_bad, 0);
    CHECK_EQ_INT(atomic_load(&emb_combined_items), N_EMB_THREADS * EMB_PER_THREAD);
    ia_endpoint_stats e;
    CHECK_OK(ia_resilience_endpoint_stats(R, "emb", &e));
    CHECK(e.requests < (uint64_t)(N_EMB_THREADS * EMB_PER_THREAD)); /* batches formed */
    CHECK_EQ_INT(e.by_end[IA_END_OK], e.requests);

    /* the exports run on the final state (and under TSan, against nothing racing) */
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(ia_resilience_stats_prometheus(R, &text, &len));
    CHECK(text && strstr(text, "ia_api_key_attempts_total{endpoint=\"a\",key=\"KEY_2\"}"));
    free(text);
    ia_batcher_destroy(B);
    ia_resilience_destroy(R);
}
