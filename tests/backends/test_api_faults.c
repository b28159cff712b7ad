/*
 * Fault classes end with the right outcome, through the whole stack (client,
 * resilience layer, libcurl, the fake provider on loopback): a 5xx or 529
 * is retried and then served; 429 waits out Retry-After (seconds, HTTP-date)
 * or retry-after-ms, or moves at once to another key; 401, spend limits and
 * x-should-retry: false are not retried; a slow first byte times out and is
 * retried; a connection reset mid-body is retried, one mid-stream (after
 * deltas reached the caller) is reported; a stream without its end marker is
 * reported as truncated; malformed JSON is an error naming the endpoint; a
 * huge body stops at the endpoint's bound; an endless stream stops at the
 * total timeout; fallbacks serve when an endpoint keeps failing; concurrent
 * embedding requests are batched; statistics never show a key.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <unistd.h>

#include "test.h"

#include "api_fixture.h"

static const char *const CFG =
    "endpoints:\n"
    "  - name: main\n"
    "    provider: openai\n"
    "    base_url: '@URL@/v1'\n"
    "    model: m\n"
    "    api_key_env: IA_TEST_FAKE_KEY\n"
    "    retry: {max_attempts: 3, base_ms: 1, max_ms: 10}\n"
    "    breaker: {window: 100, min_calls: 100}\n"
    "    timeouts: {connect_ms: 1000, first_byte_ms: 300, total_ms: 8000}\n"
    "    max_body_bytes: 65536\n"
    "  - name: claude\n"
    "    provider: anthropic\n"
    "    base_url: '@URL@'\n"
    "    model: claude-test\n"
    "    api_key_env: IA_TEST_FAKE_KEY\n"
    "    retry: {max_attempts: 3, base_ms: 1, max_ms: 10}\n"
    "  - {name: llama, provider: ollama, base_url: '@URL@', model: llama3}\n"
    "  - name: short\n"
    "    provider: vllm\n"
    "    base_url: '@URL@/v1'\n"
    "    model: m\n"
    "    timeouts: {total_ms: 600}\n"
    "  - name: primary\n"
    "    provider: vllm\n"
    "    base_url: '@URL@/v1'\n"
    "    model: m\n"
    "    retry: {max_attempts: 2, base_ms: 1, max_ms: 5}\n"
    "    fallbacks: [backup]\n"
    "  - {name: backup, provider: ollama, base_url: '@URL@', model: llama3}\n"
    "  - name: two-keys\n"
    "    provider: openai\n"
    "    base_url: '@URL@/v1'\n"
    "    model: m\n"
    "    api_key_envs: [IA_TEST_KEY_A, IA_TEST_KEY_B]\n"
    "    retry: {max_attempts: 3, base_ms: 1, max_ms: 10}\n"
    "  - name: fragile\n"
    "    provider: vllm\n"
    "    base_url: '@URL@/v1'\n"
    "    model: m\n"
    "    retry: {max_attempts: 1}\n"
    "    breaker: {window: 4, min_calls: 4, failure_rate: 0.5, open_ms: 400, half_open_probes: 1}\n"
    "    fallbacks: [backup]\n"
    "  - name: busy\n"
    "    provider: openai\n"
    "    base_url: '@URL@/v1'\n"
    "    model: m\n"
    "    api_key_envs: [IA_TEST_KEY_A, IA_TEST_KEY_B]\n"
    "    key_selection: least_loaded\n"
    "    max_concurrency: 4\n"
    "    retry: {max_attempts: 4, base_ms: 1, max_ms: 5}\n"
    "    breaker: {window: 100, min_calls: 100}\n"
    "  - name: tei-batch\n"
    "    provider: tei\n"
    "    base_url: '@URL@'\n"
    "    batch: {max_items: 4, max_wait_ms: 300}\n";

static api_env E;

static ia_api_client *client(void) {
    if (!E.client) {
        setenv("IA_TEST_KEY_A", "sk-key-aaaa", 1);
        setenv("IA_TEST_KEY_B", "sk-key-bbbb", 1);
        if (api_env_open(CFG, &E) != IA_OK) {
            fprintf(stderr, "config: %s\n", ia_error_message());
            exit(1);
        }
    }
    fake_provider_reset(api_fake());
    fake_provider_set_key(api_fake(), "");
    return E.client;
}

static const char *const HELLO[] = {"hello world"};

static ia_status chat(const char *ep, bool stream, ia_api_result *res, double *ms) {
    ia_api_request rq = api_req(IA_API_CHAT, HELLO, 1);
    rq.stream = stream;
    double t0 = ia_time_now();
    ia_status st = ia_api_call(E.client, ep, &rq, res);
    if (ms)
        *ms = (ia_time_now() - t0) * 1000.0;
    return st;
}

/* Queues faults after client() reset the fake. */
static void fault(fake_fault_kind k, long arg) { fake_provider_fault(api_fake(), k, arg); }

TEST(server_errors_are_retried_then_served) {
    static const long statuses[] = {500, 502, 503};
    for (size_t i = 0; i < 3; i++) {
        ia_api_result res;
        client();
        fault(FAKE_STATUS, statuses[i]);
        CHECK_OK(chat("main", false, &res, NULL));
        CHECK_EQ_INT(res.attempts, 2);
        CHECK_EQ_INT(fake_provider_requests(api_fake()), 2);
        CHECK(res.text && strcmp(res.text, "echo: hello world") == 0);
        ia_api_result_free(&res);
    }
    /* Anthropic's 529 overloaded, twice, then served on the third attempt. */
    ia_api_result res;
    client();
    fault(FAKE_STATUS, 529);
    fault(FAKE_STATUS, 529);
    CHECK_OK(chat("claude", false, &res, NULL));
    CHECK_EQ_INT(res.attempts, 3);
    ia_api_result_free(&res);
    /* Three failures use up the attempts: the error says what happened. */
    client();
    for (int i = 0; i < 3; i++)
        fault(FAKE_STATUS, 503);
    CHECK_ERR(chat("main", false, &res, NULL), IA_EIO, "endpoint 'main'");
    CHECK(strstr(ia_error_message(), "503") && strstr(ia_error_message(), "injected failure"));
    CHECK_EQ_INT(fake_provider_requests(api_fake()), 3);
}

TEST(rate_limits_honour_retry_after) {
    ia_api_result res;
    double ms;
    client();
    fault(FAKE_RETRY_AFTER, 1);
    CHECK_OK(chat("main", false, &res, &ms));
    CHECK_EQ_INT(res.attempts, 2);
    CHECK_MSG(ms >= 950 && ms < 3000, "Retry-After: 1 took %.0f ms", ms);
    ia_api_result_free(&res);

    client();
    fault(FAKE_RETRY_AFTER_MS, 300);
    CHECK_OK(chat("main", false, &res, &ms));
    CHECK_MSG(ms >= 290 && ms < 2000, "retry-after-ms: 300 took %.0f ms", ms);
    ia_api_result_free(&res);

    client();
    fault(FAKE_RETRY_AFTER_DATE, 2);
    CHECK_OK(chat("main", false, &res, &ms));
    CHECK_MSG(ms >= 900 && ms < 4000, "Retry-After as an HTTP-date 2 s ahead took %.0f ms", ms);
    ia_api_result_free(&res);

    /* With two keys the retry goes at once to the other key. */
    client();
    fault(FAKE_RETRY_AFTER, 30);
    CHECK_OK(chat("two-keys", false, &res, &ms));
    CHECK_MSG(ms < 1000, "took %.0f ms", ms);
    char k0[64], k1[64];
    fake_provider_key_of(api_fake(), 0, k0, sizeof k0);
    fake_provider_key_of(api_fake(), 1, k1, sizeof k1);
    CHECK_MSG(strcmp(k0, k1) != 0 && strncmp(k0, "sk-key-", 7) == 0 &&
                  strncmp(k1, "sk-key-", 7) == 0,
              "keys %s then %s", k0, k1);
    ia_api_result_free(&res);
}

TEST(fatal_answers_are_not_retried) {
    ia_api_result res;
    client();
    fake_provider_set_key(api_fake(), "the-right-key");
    CHECK_ERR(chat("main", false, &res, NULL), IA_EIO, "Incorrect API key provided");
    CHECK(strstr(ia_error_message(), "401") != NULL);
    CHECK(strstr(ia_error_message(), FIXTURE_KEY) == NULL);
    CHECK_EQ_INT(fake_provider_requests(api_fake()), 1);

    client();
    fault(FAKE_SPEND_LIMIT, 0);
    CHECK_ERR(chat("main", false, &res, NULL), IA_EIO, "exceeded your current quota");
    CHECK_EQ_INT(fake_provider_requests(api_fake()), 1);

    client();
    fault(FAKE_NO_RETRY, 0);
    CHECK_ERR(chat("main", false, &res, NULL), IA_EIO, "do not retry this");
    CHECK_EQ_INT(fake_provider_requests(api_fake()), 1);

    client();
    fault(FAKE_STATUS, 404);
    CHECK_ERR(chat("main", false, &res, NULL), IA_EIO, "404");
    CHECK_EQ_INT(fake_provider_requests(api_fake()), 1);
}

TEST(slow_first_byte_times_out_and_retries) {
    ia_api_result res;
    double ms;
    client();
    fault(FAKE_SLOW, 1500);
    CHECK_OK(chat("main", false, &res, &ms));
    CHECK_EQ_INT(res.attempts, 2);
    CHECK_MSG(ms >= 280 && ms < 1400, "took %.0f ms", ms);
    ia_api_result_free(&res);
    /* A per-request deadline shorter than the wait fails on time. */
    client();
    fault(FAKE_SLOW, 1500);
    fault(FAKE_SLOW, 1500);
    fault(FAKE_SLOW, 1500);
    ia_api_request rq = api_req(IA_API_CHAT, HELLO, 1);
    rq.deadline_ms = 200;
    double t0 = ia_time_now();
    CHECK(ia_api_call(E.client, "main", &rq, &res) != IA_OK);
    ms = (ia_time_now() - t0) * 1000.0;
    CHECK_MSG(ms < 800, "a 200 ms deadline took %.0f ms", ms);
}

TEST(resets_and_truncation) {
    ia_api_result res;
    /* Reset mid-body of a plain answer: retried. */
    client();
    fault(FAKE_RESET, 10);
    CHECK_OK(chat("main", false, &res, NULL));
    CHECK_EQ_INT(res.attempts, 2);
    ia_api_result_free(&res);
    /* Reset mid-stream after a delta: reported, not repeated. */
    client();
    fault(FAKE_RESET, 150);
    CHECK_ERR(chat("main", true, &res, NULL), IA_EIO, "stream broken after");
    CHECK_EQ_INT(fake_provider_requests(api_fake()), 1);
    /* Streams that end without their end marker. */
    client();
    fault(FAKE_TRUNCATE, 0);
    CHECK_ERR(chat("main", true, &res, NULL), IA_EIO, "truncated stream");
    client();
    fault(FAKE_TRUNCATE, 0);
    CHECK_ERR(chat("llama", true, &res, NULL), IA_EIO, "truncated stream");
    client();
    fault(FAKE_TRUNCATE, 0);
    CHECK_ERR(chat("claude", true, &res, NULL), IA_EIO, "truncated stream");
    /* The provider's error event in the middle of a stream. */
    client();
    fault(FAKE_STREAM_ERROR, 0);
    CHECK_ERR(chat("claude", true, &res, NULL), IA_EIO, "overloaded_error");
    client();
    fault(FAKE_STREAM_ERROR, 0);
    CHECK_ERR(chat("llama", true, &res, NULL), IA_EIO, "model runner crashed");
}

TEST(malformed_and_huge_answers) {
    ia_api_result res;
    client();
    fault(FAKE_MALFORMED, 0);
    CHECK_ERR(chat("main", false, &res, NULL), IA_EIO, "endpoint 'main'");
    CHECK_MSG(strstr(ia_error_message(), "malformed JSON from the provider"), "%s",
              ia_error_message());
    CHECK_EQ_INT(fake_provider_requests(api_fake()), 1);

    client();
    fault(FAKE_HUGE, 4 << 20);
    CHECK_ERR(chat("main", false, &res, NULL), IA_EIO, "passed the 65536-byte limit");
    CHECK_EQ_INT(fake_provider_requests(api_fake()), 1);
}

TEST(endless_stream_stops_at_total_timeout) {
    ia_api_result res;
    double ms;
    client();
    fault(FAKE_ENDLESS, 0);
    CHECK(chat("short", true, &res, &ms) != IA_OK);
    CHECK_MSG(ms >= 550 && ms < 1500, "took %.0f ms: %s", ms, ia_error_message());
    CHECK_MSG(strstr(ia_error_message(), "endpoint 'short'"), "%s", ia_error_message());
    /* The fake notices the hang-up and stops sending. */
    for (int i = 0; i < 100 && fake_provider_active(api_fake()) > 0; i++)
        usleep(10000);
    CHECK_EQ_INT(fake_provider_active(api_fake()), 0);
}

TEST(fallback_serves_when_the_endpoint_keeps_failing) {
    ia_api_result res;
    client();
    fake_provider_fault_on(api_fake(), "/v1/chat/completions", FAKE_STATUS, 500);
    fake_provider_fault_on(api_fake(), "/v1/chat/completions", FAKE_STATUS, 500);
    CHECK_OK(chat("primary", false, &res, NULL));
    CHECK_MSG(strcmp(res.served_by, "backup") == 0, "served by %s", res.served_by);
    CHECK_EQ_INT(res.attempts, 3);
    char path[256];
    fake_provider_last_path(api_fake(), path, sizeof path);
    CHECK(strcmp(path, "/api/chat") == 0);
    ia_api_result_free(&res);
}

TEST(breaker_opens_fallback_serves_probe_closes) {
    ia_api_result res;
    client();
    for (int i = 0; i < 4; i++)
        fake_provider_fault_on(api_fake(), "/v1/chat/completions", FAKE_STATUS, 500);
    /* Four failures, each answered by the fallback. */
    for (int i = 0; i < 4; i++) {
        CHECK_OK(chat("fragile", false, &res, NULL));
        CHECK_MSG(strcmp(res.served_by, "backup") == 0, "call %d served by %s", i, res.served_by);
        ia_api_result_free(&res);
    }
    CHECK_EQ_INT(fake_provider_requests(api_fake()), 8);
    /* Open: the next call goes straight to the fallback. */
    CHECK_OK(chat("fragile", false, &res, NULL));
    CHECK(strcmp(res.served_by, "backup") == 0);
    CHECK_EQ_INT(res.attempts, 1);
    CHECK_EQ_INT(fake_provider_requests(api_fake()), 9);
    char path[256];
    fake_provider_last_path(api_fake(), path, sizeof path);
    CHECK(strcmp(path, "/api/chat") == 0);
    ia_api_result_free(&res);
    char *json = NULL;
    CHECK_OK(ia_api_stats_json(E.client, &json));
    CHECK_MSG(json && strstr(json, "\"open\""), "%s", json ? json : "");
    free(json);
    /* After open_ms a probe reaches the recovered endpoint and closes the breaker. */
    usleep(450 * 1000);
    CHECK_OK(chat("fragile", false, &res, NULL));
    CHECK_MSG(strcmp(res.served_by, "fragile") == 0, "served by %s", res.served_by);
    ia_api_result_free(&res);
    CHECK_OK(chat("fragile", false, &res, NULL));
    CHECK(strcmp(res.served_by, "fragile") == 0);
    ia_api_result_free(&res);
}

/* Many threads through one client, with failures sprinkled in: every call
 * ends once, served, with the right answer. */
typedef struct chat_job {
    int id, ok, wrong;
} chat_job;

static void *chat_many(void *arg) {
    chat_job *j = arg;
    for (int i = 0; i < 8; i++) {
        char text[64], want[80];
        snprintf(text, sizeof text, "thread %d call %d", j->id, i);
        snprintf(want, sizeof want, "echo: %s", text);
        const char *texts[] = {text};
        ia_api_request rq = api_req(IA_API_CHAT, texts, 1);
        rq.stream = (i % 2) == 1;
        ia_api_result res;
        if (ia_api_call(E.client, "busy", &rq, &res) == IA_OK) {
            if (res.text && strcmp(res.text, want) == 0)
                j->ok++;
            else
                j->wrong++;
            ia_api_result_free(&res);
        }
    }
    return NULL;
}

TEST(concurrent_callers_each_get_their_answer) {
    client();
    for (int i = 0; i < 12; i++)
        fault(i % 3 == 0 ? FAKE_RETRY_AFTER_MS : FAKE_STATUS, i % 3 == 0 ? 20 : 503);
    enum { N = 16 };
    chat_job jobs[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        jobs[i] = (chat_job){.id = i};
        pthread_create(&th[i], NULL, chat_many, &jobs[i]);
    }
    int ok = 0, wrong = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        ok += jobs[i].ok;
        wrong += jobs[i].wrong;
    }
    CHECK_EQ_INT(ok, N * 8);
    CHECK_EQ_INT(wrong, 0);
    CHECK_EQ_INT(fake_provider_requests(api_fake()), N * 8 + 12);
}

typedef struct embed_job {
    const char *text;
    ia_status st;
    ia_api_result res;
} embed_job;

static void *embed_one(void *arg) {
    embed_job *j = arg;
    ia_api_request rq = api_req(IA_API_EMBED, &j->text, 1);
    j->st = ia_api_call(E.client, "tei-batch", &rq, &j->res);
    return NULL;
}

TEST(concurrent_embeddings_are_batched) {
    client();
    embed_job jobs[4] = {{.text = "a"}, {.text = "bb"}, {.text = "ccc"}, {.text = "dddd"}};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, embed_one, &jobs[i]);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        CHECK_OK(jobs[i].st);
        CHECK_EQ_INT(jobs[i].res.n_embeddings, 1);
        if (jobs[i].res.n_embeddings == 1)
            CHECK_NEAR(jobs[i].res.embeddings[0], (double)strlen(jobs[i].text), 0);
        ia_api_result_free(&jobs[i].res);
    }
    CHECK_MSG(fake_provider_requests(api_fake()) < 4, "%d requests for 4 items",
              fake_provider_requests(api_fake()));
}

TEST(stats_count_and_hide_keys) {
    char *json = NULL, *prom = NULL;
    CHECK_OK(ia_api_stats_json(client(), &json));
    CHECK_OK(ia_api_stats_prometheus(E.client, &prom));
    if (json && prom) {
        CHECK(strstr(json, "\"main\"") != NULL);
        CHECK(strstr(json, "IA_TEST_FAKE_KEY") != NULL); /* keys by id */
        CHECK(strstr(json, FIXTURE_KEY) == NULL && strstr(json, "sk-key-") == NULL);
        CHECK(strstr(prom, "ia_api_") != NULL && strstr(prom, "endpoint=\"main\"") != NULL);
        CHECK(strstr(prom, FIXTURE_KEY) == NULL && strstr(prom, "sk-key-") == NULL);
    }
    free(json);
    free(prom);
}

TEST(zz_cleanup) {
    api_env_close(&E);
    fake_provider_stop(fixture_fake);
    fixture_fake = NULL;
}
