/*
 * The circuit breaker of the resilience layer, on a fake clock: opening at
 * the failure-rate threshold once the window holds min_calls, staying shut
 * below it, the count- and time-bounded sliding window, slow calls counted
 * as failures, 429/fatal not counted, the open duration, the limit on
 * half-open probes (a probe's call function submits again from inside and
 * must be refused), a successful probe closing and a failed one reopening.
 * Then the scenario from the issue: an endpoint that starts failing opens
 * its breaker within the window, its traffic moves to the fallback without
 * touching it, and once it recovers a half-open probe closes the breaker
 * and traffic comes back.
 */
#define _GNU_SOURCE
#include "backends/resilience.h"
#include "test.h"

typedef struct fake_clock {
    double t;
} fake_clock;

static double fc_now(void *ctx) { return ((fake_clock *)ctx)->t; }
static void fc_sleep(void *ctx, double ms) { ((fake_clock *)ctx)->t += ms; }

static fake_clock clk;

static ia_resilience *make(void) {
    clk.t = 10000;
    ia_resilience_options o = {
        .seed = 7, .now_ms = fc_now, .sleep_ms = fc_sleep, .clock_ctx = &clk};
    ia_resilience *r = NULL;
    CHECK_OK(ia_resilience_create(&o, &r));
    return r;
}

static ia_endpoint_config breaker_cfg(const char *name) {
    ia_endpoint_config c;
    ia_resilience_endpoint_defaults(&c);
    c.name = name;
    c.retry.max_attempts = 1; /* one attempt per request: one window entry each */
    c.breaker = (ia_breaker_policy){.window_calls = 10,
                                    .window_ms = 0,
                                    .min_calls = 5,
                                    .failure_rate = 0.5,
                                    .open_ms = 30000,
                                    .half_open_probes = 1,
                                    .slow_call_ms = 0};
    return c;
}

/* A provider whose behaviour the test sets between calls. */
typedef struct provider {
    ia_call_class cls;
    int http;
    double takes_ms;
    int calls;
    int probes;
    /* when set, a probe submits this request from inside the call */
    ia_resilience *nested_r;
    const char *nested_ep;
    ia_call_end nested_end;
    ia_status nested_st;
} provider;

static void provider_call(void *ctx, const ia_call_attempt *a, ia_call_outcome *o) {
    provider *p = ctx;
    p->calls++;
    p->probes += a->probe;
    clk.t += p->takes_ms;
    if (a->probe && p->nested_r) {
        provider inner = {.cls = IA_CALL_OK};
        ia_call_result res;
        p->nested_st = ia_resilience_submit(p->nested_r, p->nested_ep, IA_PRIORITY_HIGH,
                                            provider_call, &inner, -1, &res);
        p->nested_end = res.end;
    }
    o->cls = p->cls;
    o->http_status = p->http;
}

static ia_call_end call(ia_resilience *r, const char *ep, provider *p) {
    ia_call_result res;
    ia_resilience_submit(r, ep, IA_PRIORITY_NORMAL, provider_call, p, -1, &res);
    return res.end;
}

TEST(opens_at_threshold_after_min_calls) {
    ia_resilience *r = make();
    ia_endpoint_config cfg = breaker_cfg("a");
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    provider p = {.cls = IA_CALL_RETRYABLE, .http = 503};
    for (int i = 0; i < 4; i++)
        CHECK_EQ_INT(call(r, "a", &p), IA_END_EXHAUSTED);
    CHECK_EQ_INT(ia_resilience_breaker_state(r, "a"), IA_BREAKER_CLOSED); /* 4 < min_calls */
    CHECK_EQ_INT(call(r, "a", &p), IA_END_EXHAUSTED);
    CHECK_EQ_INT(ia_resilience_breaker_state(r, "a"), IA_BREAKER_OPEN);
    /* Open: refused at once, the provider is not called. */
    ia_call_result res;
    CHECK_ERR(ia_resilience_submit(r, "a", IA_PRIORITY_NORMAL, provider_call, &p, -1, &res), IA_EIO,
              "endpoint 'a': circuit breaker open");
    CHECK_EQ_INT(res.end, IA_END_BREAKER_OPEN);
    CHECK_EQ_INT(res.attempts, 0);
    CHECK_EQ_INT(p.calls, 5);
    ia_endpoint_stats st;
    CHECK_OK(ia_resilience_endpoint_stats(r, "a", &st));
    CHECK_EQ_INT(st.breaker_trips, 1);
    CHECK_EQ_INT(st.rejected_breaker_open, 1);
    CHECK_EQ_INT(st.by_end[IA_END_BREAKER_OPEN], 1);
    ia_resilience_destroy(r);
}

TEST(stays_closed_below_threshold) {
    ia_resilience *r = make();
    ia_endpoint_config cfg = breaker_cfg("a");
    cfg.breaker.failure_rate = 0.6;
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    provider ok = {.cls = IA_CALL_OK}, bad = {.cls = IA_CALL_RETRYABLE, .http = 500};
    /* Alternating: 50 % failures in every window, under 60 %. */
    for (int i = 0; i < 40; i++)
        call(r, "a", i % 2 ? &bad : &ok);
    CHECK_EQ_INT(ia_resilience_breaker_state(r, "a"), IA_BREAKER_CLOSED);
    /* 429 and fatal outcomes are not the endpoint's failures. */
    provider limited = {.cls = IA_CALL_RATE_LIMITED, .http = 429},
             fatal = {.cls = IA_CALL_FATAL, .http = 400};
    cfg = breaker_cfg("b");
    cfg.key_cooldown_ms = 0;
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    for (int i = 0; i < 20; i++)
        call(r, "b", i % 2 ? &limited : &fatal);
    CHECK_EQ_INT(ia_resilience_breaker_state(r, "b"), IA_BREAKER_CLOSED);
    ia_resilience_destroy(r);
}

TEST(count_window_forgets_old_failures) {
    ia_resilience *r = make();
    ia_endpoint_config cfg = breaker_cfg("a");
    cfg.breaker.window_calls = 10;
    cfg.breaker.min_calls = 10;
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    provider ok = {.cls = IA_CALL_OK}, bad = {.cls = IA_CALL_RETRYABLE, .http = 500};
    for (int i = 0; i < 4; i++) /* 4 failures, then 10 successes push them out */
        call(r, "a", &bad);
    for (int i = 0; i < 10; i++)
        call(r, "a", &ok);
    for (int i = 0; i < 4; i++) /* 4 of the last 10: under 50 % */
        call(r, "a", &bad);
    CHECK_EQ_INT(ia_resilience_breaker_state(r, "a"), IA_BREAKER_CLOSED);
    call(r, "a", &bad); /* 5 of the last 10 */
    CHECK_EQ_INT(ia_resilience_breaker_state(r, "a"), IA_BREAKER_OPEN);
    ia_resilience_destroy(r);
}

TEST(time_window_forgets_old_failures) {
    ia_resilience *r = make();
    ia_endpoint_config cfg = breaker_cfg("a");
    cfg.breaker.window_ms = 10000;
    cfg.breaker.min_calls = 4;
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    provider ok = {.cls = IA_CALL_OK}, bad = {.cls = IA_CALL_RETRYABLE, .http = 500};
    for (int i = 0; i < 3; i++)
        call(r, "a", &bad);
    clk.t += 10001; /* those three age out */
    call(r, "a", &bad);
    call(r, "a", &ok);
    call(r, "a", &ok);
    call(r, "a", &ok); /* 1 of 4 within the window */
    CHECK_EQ_INT(ia_resilience_breaker_state(r, "a"), IA_BREAKER_CLOSED);
    call(r, "a", &bad);
    call(r, "a", &bad); /* 3 of 6 */
    CHECK_EQ_INT(ia_resilience_breaker_state(r, "a"), IA_BREAKER_OPEN);
    ia_resilience_destroy(r);
}

TEST(slow_successes_count_as_failures) {
    ia_resilience *r = make();
    ia_endpoint_config cfg = breaker_cfg("a");
    cfg.breaker.slow_call_ms = 2000;
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    provider slow = {.cls = IA_CALL_OK, .takes_ms = 2500},
             fast = {.cls = IA_CALL_OK, .takes_ms = 10};
    for (int i = 0; i < 10; i++)
        CHECK_EQ_INT(call(r, "a", &fast), IA_END_OK);
    CHECK_EQ_INT(ia_resilience_breaker_state(r, "a"), IA_BREAKER_CLOSED);
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(call(r, "a", &slow), IA_END_OK); /* served, but slow */
    CHECK_EQ_INT(ia_resilience_breaker_state(r, "a"), IA_BREAKER_OPEN);
    ia_resilience_destroy(r);
}

static void trip(ia_resilience *r, const char *ep) {
    provider bad = {.cls = IA_CALL_RETRYABLE, .http = 503};
    for (int i = 0; i < 5; i++)
        call(r, ep, &bad);
    CHECK_EQ_INT(ia_resilience_breaker_state(r, ep), IA_BREAKER_OPEN);
}

TEST(half_open_limits_probes_then_closes) {
    ia_resilience *r = make();
    ia_endpoint_config cfg = breaker_cfg("a");
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    trip(r, "a");
    provider ok = {.cls = IA_CALL_OK};
    clk.t += 29999;
    CHECK_EQ_INT(call(r, "a", &ok), IA_END_BREAKER_OPEN); /* not yet */
    CHECK_EQ_INT(ok.calls, 0);
    clk.t += 1;
    CHECK_EQ_INT(ia_resilience_breaker_state(r, "a"), IA_BREAKER_HALF_OPEN);
    /* The probe's call submits again while the probe is in flight: refused. */
    provider probe = {.cls = IA_CALL_OK, .nested_r = r, .nested_ep = "a"};
    CHECK_EQ_INT(call(r, "a", &probe), IA_END_OK);
    CHECK_EQ_INT(probe.probes, 1);
    CHECK_EQ_INT(probe.nested_end, IA_END_BREAKER_OPEN);
    CHECK_EQ_INT(probe.nested_st, IA_EIO);
    CHECK_EQ_INT(ia_resilience_breaker_state(r, "a"), IA_BREAKER_CLOSED);
    /* Closed with an empty window: four failures are not enough again. */
    provider bad = {.cls = IA_CALL_RETRYABLE, .http = 503};
    for (int i = 0; i < 4; i++)
        call(r, "a", &bad);
    CHECK_EQ_INT(ia_resilience_breaker_state(r, "a"), IA_BREAKER_CLOSED);
    ia_resilience_destroy(r);
}

TEST(two_probes_allowed_when_configured) {
    ia_resilience *r = make();
    ia_endpoint_config cfg = breaker_cfg("a");
    cfg.breaker.half_open_probes = 2;
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    trip(r, "a");
    clk.t += 30000;
    /* The outer probe's nested submit is the second probe and is let through. */
    provider probe = {.cls = IA_CALL_OK, .nested_r = r, .nested_ep = "a"};
    CHECK_EQ_INT(call(r, "a", &probe), IA_END_OK);
    CHECK_EQ_INT(probe.nested_end, IA_END_OK);
    ia_resilience_destroy(r);
}

TEST(failed_probe_reopens) {
    ia_resilience *r = make();
    ia_endpoint_config cfg = breaker_cfg("a");
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    trip(r, "a");
    clk.t += 30000;
    provider bad = {.cls = IA_CALL_RETRYABLE, .http = 503};
    CHECK_EQ_INT(call(r, "a", &bad), IA_END_EXHAUSTED);
    CHECK_EQ_INT(bad.probes, 1);
    CHECK_EQ_INT(ia_resilience_breaker_state(r, "a"), IA_BREAKER_OPEN);
    provider ok = {.cls = IA_CALL_OK};
    clk.t += 29999; /* a full open duration again, counted from the failed probe */
    CHECK_EQ_INT(call(r, "a", &ok), IA_END_BREAKER_OPEN);
    clk.t += 1;
    CHECK_EQ_INT(call(r, "a", &ok), IA_END_OK);
    CHECK_EQ_INT(ia_resilience_breaker_state(r, "a"), IA_BREAKER_CLOSED);
    ia_endpoint_stats st;
    CHECK_OK(ia_resilience_endpoint_stats(r, "a", &st));
    CHECK_EQ_INT(st.breaker_trips, 2);
    ia_resilience_destroy(r);
}

/* Retries inside one request feed the window too: a request that keeps
 * failing can trip the breaker and then stops hammering. */
TEST(breaker_opening_mid_request_stops_retries) {
    ia_resilience *r = make();
    ia_endpoint_config cfg = breaker_cfg("a");
    cfg.retry.max_attempts = 10;
    cfg.retry.base_backoff_ms = 10;
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    provider bad = {.cls = IA_CALL_RETRYABLE, .http = 502};
    ia_call_result res;
    ia_resilience_submit(r, "a", IA_PRIORITY_NORMAL, provider_call, &bad, -1, &res);
    CHECK_EQ_INT(bad.calls, 5);
    CHECK_EQ_INT(res.end, IA_END_BREAKER_OPEN);
    ia_resilience_destroy(r);
}

/* The scenario's two providers behind one call function that picks by the
 * attempt's endpoint, as an adapter does with endpoint_user. */
typedef struct world {
    provider primary, backup;
} world;

static void world_call(void *ctx, const ia_call_attempt *a, ia_call_outcome *o) {
    world *w = ctx;
    provider_call(strcmp(a->endpoint, "primary") == 0 ? &w->primary : &w->backup, a, o);
}

static const char *submit_served_by(ia_resilience *r, world *w) {
    ia_call_result res;
    ia_status st = ia_resilience_submit(r, "primary", IA_PRIORITY_NORMAL, world_call, w, -1, &res);
    CHECK_OK(st);
    return st == IA_OK ? res.served_by : "";
}

TEST(scenario_failing_endpoint_falls_back_and_recovers) {
    ia_resilience *r = make();
    ia_endpoint_config cfg = breaker_cfg("primary");
    cfg.retry.max_attempts = 2;
    cfg.retry.base_backoff_ms = 50;
    cfg.breaker.window_calls = 20;
    cfg.breaker.min_calls = 10;
    cfg.breaker.failure_rate = 0.5;
    cfg.breaker.open_ms = 20000;
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    cfg.name = "backup";
    CHECK_OK(ia_resilience_add_endpoint(r, &cfg));
    const char *fb[] = {"backup"};
    CHECK_OK(ia_resilience_set_fallbacks(r, "primary", fb, 1));

    world w = {.primary = {.cls = IA_CALL_OK}, .backup = {.cls = IA_CALL_OK}};
    for (int i = 0; i < 20; i++) /* healthy */
        CHECK(strcmp(submit_served_by(r, &w), "primary") == 0);
    CHECK_EQ_INT(w.backup.calls, 0);

    /* The primary dies. */
    w.primary.cls = IA_CALL_RETRYABLE;
    w.primary.http = 503;
    int primary_calls_before = w.primary.calls;
    int served_backup = 0, first_fallback = -1, opened_after = -1;
    for (int i = 0; i < 40; i++) {
        clk.t += 100; /* 100 ms between requests */
        if (strcmp(submit_served_by(r, &w), "backup") == 0) {
            served_backup++;
            if (first_fallback < 0)
                first_fallback = i;
        }
        if (opened_after < 0 && ia_resilience_breaker_state(r, "primary") == IA_BREAKER_OPEN)
            opened_after = i;
    }
    CHECK_EQ_INT(served_backup, 40); /* every request still served */
    CHECK_EQ_INT(first_fallback, 0);
    /* 20 healthy calls fill the window; each request adds 2 failures. The
     * rate reaches 50 % at 10 failures in 20, during the 5th request. */
    CHECK_EQ_INT(opened_after, 4);
    CHECK_EQ_INT(w.primary.calls - primary_calls_before, 10); /* none after it opened */
    ia_endpoint_stats ps, bs;
    CHECK_OK(ia_resilience_endpoint_stats(r, "primary", &ps));
    CHECK_OK(ia_resilience_endpoint_stats(r, "backup", &bs));
    CHECK_EQ_INT(ps.breaker_trips, 1);
    CHECK_EQ_INT(ps.rejected_breaker_open, 35);
    CHECK_EQ_INT(ps.fallback_out, 40);
    CHECK_EQ_INT(bs.fallback_in, 40);
    CHECK_EQ_INT(bs.by_end[IA_END_OK], 40);
    CHECK_EQ_INT(ps.requests, 60);

    /* Still down when the open time is up: the probe fails, it reopens. */
    clk.t += 20000;
    CHECK(strcmp(submit_served_by(r, &w), "backup") == 0);
    CHECK_EQ_INT(w.primary.probes, 1);
    CHECK_EQ_INT(ia_resilience_breaker_state(r, "primary"), IA_BREAKER_OPEN);

    /* It recovers; after the open duration one probe closes the breaker. */
    w.primary.cls = IA_CALL_OK;
    clk.t += 20000;
    CHECK(strcmp(submit_served_by(r, &w), "primary") == 0);
    CHECK_EQ_INT(w.primary.probes, 2);
    CHECK_EQ_INT(ia_resilience_breaker_state(r, "primary"), IA_BREAKER_CLOSED);
    int backup_calls = w.backup.calls;
    for (int i = 0; i < 5; i++)
        CHECK(strcmp(submit_served_by(r, &w), "primary") == 0);
    CHECK_EQ_INT(w.backup.calls, backup_calls);
    CHECK_OK(ia_resilience_endpoint_stats(r, "primary", &ps));
    CHECK_EQ_INT(ps.breaker_trips, 2);
    ia_resilience_destroy(r);
}
