/*
 * Every provider adapter round-trips against the fake provider over real
 * HTTP on loopback (libcurl to libmicrohttpd): the fake checks the request's
 * field names and headers for that wire format (a wrong request gets 400,
 * which fails the call), the answers are parsed into text, finish reasons,
 * token counts, embeddings and ranks. Streams (SSE and NDJSON) must reach
 * the delta callback piece by piece while the fake is still sending (it
 * pauses FAKE_STREAM_GAP_MS between pieces). Groq's unsupported parameters
 * are refused without a request. `api check` probes answer for each.
 */
#define _GNU_SOURCE
#include "test.h"

#include "api_fixture.h"

static const char *const ALL =
    "endpoints:\n"
    "  - {name: openai, provider: openai, base_url: '@URL@/v1', models: [gpt-test, gpt-other],\n"
    "     api_key_env: IA_TEST_FAKE_KEY}\n"
    "  - {name: groq, provider: groq, base_url: '@URL@/openai/v1', model: llama-groq,\n"
    "     api_key_env: IA_TEST_FAKE_KEY}\n"
    "  - {name: vllm, provider: vllm, base_url: '@URL@/v1/', model: qwen}\n"
    "  - {name: anthropic, provider: anthropic, base_url: '@URL@', model: claude-test,\n"
    "     api_key_env: IA_TEST_FAKE_KEY}\n"
    "  - {name: gemini, provider: gemini, base_url: '@URL@/v1beta', models: [gemini-test, "
    "embed-test],\n"
    "     api_key_env: IA_TEST_FAKE_KEY}\n"
    "  - {name: ollama, provider: ollama, base_url: '@URL@', model: llama3}\n"
    "  - {name: tgi, provider: tgi, base_url: '@URL@'}\n"
    "  - {name: tei, provider: tei, base_url: '@URL@'}\n"
    "  - {name: ovms, provider: ovms, base_url: '@URL@', model: ov-model}\n"
    "  - {name: opea, provider: opea, base_url: '@URL@'}\n";

static api_env E;

static ia_api_client *client(void) {
    if (!E.client) {
        ia_status st = api_env_open(ALL, &E);
        if (st != IA_OK) {
            fprintf(stderr, "config: %s\n", ia_error_message());
            exit(1);
        }
    }
    fake_provider_reset(api_fake());
    return E.client;
}

static void last(char *path, size_t np, char *body, size_t nb) {
    fake_provider_last_path(api_fake(), path, np);
    fake_provider_last_body(api_fake(), body, nb);
}

static void check_chat(const char *ep, ia_api_op op, const char *want_path,
                       const char *want_in_body, const char *want_finish, long tin, long tout,
                       bool keyed) {
    const char *texts[] = {"hello there world"};
    ia_api_request rq = api_req(op, texts, 1);
    rq.max_tokens = 16;
    if (op == IA_API_CHAT && strcmp(ep, "opea") != 0 && strcmp(ep, "tgi") != 0)
        rq.system = "be brief";
    ia_api_result res;
    ia_api_client *c = client();
    ia_status st = ia_api_call(c, ep, &rq, &res);
    CHECK_MSG(st == IA_OK, "%s %s: %s", ep, ia_api_op_name(op), ia_error_message());
    if (st != IA_OK)
        return;
    CHECK_MSG(res.text && strcmp(res.text, "echo: hello there world") == 0, "%s text %s", ep,
              res.text ? res.text : "(null)");
    if (want_finish)
        CHECK_MSG(res.finish_reason && strcmp(res.finish_reason, want_finish) == 0, "%s finish %s",
                  ep, res.finish_reason ? res.finish_reason : "(null)");
    if (tin >= 0)
        CHECK_EQ_INT(res.tokens_in, tin);
    if (tout >= 0)
        CHECK_EQ_INT(res.tokens_out, tout);
    CHECK_EQ_INT(res.http_status, 200);
    CHECK_EQ_INT(res.attempts, 1);
    CHECK(strcmp(res.served_by, ep) == 0);
    char path[512], body[4096], key[128];
    last(path, sizeof path, body, sizeof body);
    CHECK_MSG(strcmp(path, want_path) == 0, "%s path %s", ep, path);
    CHECK_MSG(strstr(body, want_in_body) != NULL, "%s body %s lacks %s", ep, body, want_in_body);
    fake_provider_key_of(api_fake(), 0, key, sizeof key);
    CHECK_MSG(strcmp(key, keyed ? FIXTURE_KEY : "") == 0, "%s key '%s'", ep, key);
    ia_api_result_free(&res);
}

TEST(openai_format_chat_and_complete) {
    check_chat("openai", IA_API_CHAT, "/v1/chat/completions",
               "\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\"",
               "stop", 7, 3, true);
    check_chat("openai", IA_API_COMPLETE, "/v1/completions", "\"prompt\":\"hello there world\"",
               "length", 5, 3, true);
    check_chat("groq", IA_API_CHAT, "/openai/v1/chat/completions", "\"model\":\"llama-groq\"",
               "stop", 7, 3, true);
    check_chat("vllm", IA_API_CHAT, "/v1/chat/completions", "\"model\":\"qwen\"", "stop", 7, 3,
               false);
    check_chat("ovms", IA_API_CHAT, "/v3/chat/completions", "\"model\":\"ov-model\"", "stop", 7, 3,
               false);
    check_chat("opea", IA_API_CHAT, "/v1/chatqna", "\"messages\":\"hello there world\"", "stop", 7,
               3, false);
}

TEST(other_wire_formats_chat) {
    check_chat("anthropic", IA_API_CHAT, "/v1/messages", "\"max_tokens\":16", "end_turn", 9, 3,
               true);
    check_chat("anthropic", IA_API_COMPLETE, "/v1/messages", "\"messages\":[{\"role\":\"user\"",
               NULL, 9, 3, true);
    check_chat("gemini", IA_API_CHAT, "/v1beta/models/gemini-test:generateContent",
               "\"systemInstruction\":{\"parts\":[{\"text\":\"be brief\"}]}", "STOP", 6, 3, true);
    check_chat("ollama", IA_API_CHAT, "/api/chat", "\"stream\":false", "stop", 8, 3, false);
    check_chat("ollama", IA_API_COMPLETE, "/api/generate", "\"options\":{\"num_predict\":16}",
               "stop", 8, 3, false);
    check_chat("tgi", IA_API_COMPLETE, "/generate", "\"max_new_tokens\":16", "length", -1, 3,
               false);
    check_chat("tgi", IA_API_CHAT, "/v1/chat/completions", "\"messages\"", "stop", 7, 3, false);
}

TEST(model_choice) {
    const char *texts[] = {"x"};
    ia_api_request rq = api_req(IA_API_CHAT, texts, 1);
    rq.model = "gpt-other";
    ia_api_result res;
    CHECK_OK(ia_api_call(client(), "openai", &rq, &res));
    ia_api_result_free(&res);
    char path[512], body[4096];
    last(path, sizeof path, body, sizeof body);
    CHECK(strstr(body, "\"model\":\"gpt-other\"") != NULL);
    rq.model = "embed-test";
    CHECK_OK(ia_api_call(client(), "gemini", &rq, &res));
    ia_api_result_free(&res);
    last(path, sizeof path, body, sizeof body);
    CHECK_MSG(strcmp(path, "/v1beta/models/embed-test:generateContent") == 0, "path %s", path);
}

static void check_embed(const char *ep, const char *want_path) {
    const char *texts[] = {"abc", "hello world", "z"};
    ia_api_request rq = api_req(IA_API_EMBED, texts, 3);
    ia_api_result res;
    ia_status st = ia_api_call(client(), ep, &rq, &res);
    CHECK_MSG(st == IA_OK, "%s embed: %s", ep, ia_error_message());
    if (st != IA_OK)
        return;
    CHECK_EQ_INT(res.n_embeddings, 3);
    CHECK_EQ_INT(res.dim, 4);
    for (size_t i = 0; i < 3 && res.dim == 4; i++) {
        CHECK_NEAR(res.embeddings[i * 4 + 0], (double)strlen(texts[i]), 0);
        CHECK_NEAR(res.embeddings[i * 4 + 1], (double)(unsigned char)texts[i][0], 0);
        CHECK_NEAR(res.embeddings[i * 4 + 2], 0.5, 0);
    }
    char path[512], body[4096];
    last(path, sizeof path, body, sizeof body);
    CHECK_MSG(strcmp(path, want_path) == 0, "%s path %s", ep, path);
    ia_api_result_free(&res);
}

TEST(embeddings) {
    check_embed("openai", "/v1/embeddings");
    check_embed("vllm", "/v1/embeddings");
    check_embed("ovms", "/v3/embeddings");
    check_embed("ollama", "/api/embed");
    check_embed("tei", "/embed");
    check_embed("gemini", "/v1beta/models/gemini-test:batchEmbedContents");
}

static void check_rerank(const char *ep, const char *want_path) {
    const char *texts[] = {"a much longer document", "abcd", "ab", "abcdefghij"};
    ia_api_request rq = api_req(IA_API_RERANK, texts, 4);
    rq.query = "abcde";
    ia_api_result res;
    ia_status st = ia_api_call(client(), ep, &rq, &res);
    CHECK_MSG(st == IA_OK, "%s rerank: %s", ep, ia_error_message());
    if (st != IA_OK)
        return;
    /* score 1/(1+|len - 5|): abcd (1), ab (3), abcdefghij (5), the long one (17). */
    CHECK_EQ_INT(res.n_ranks, 4);
    size_t want[] = {1, 2, 3, 0};
    for (size_t i = 0; i < 4 && res.n_ranks == 4; i++)
        CHECK_EQ_INT(res.ranks[i].index, want[i]);
    if (res.n_ranks == 4)
        CHECK_NEAR(res.ranks[0].score, 0.5, 1e-9);
    char path[512], body[4096];
    last(path, sizeof path, body, sizeof body);
    CHECK_MSG(strcmp(path, want_path) == 0, "%s path %s", ep, path);
    ia_api_result_free(&res);
}

TEST(rerank) {
    check_rerank("tei", "/rerank");
    check_rerank("vllm", "/v1/rerank");
    check_rerank("ovms", "/v3/rerank");
    const char *texts[] = {"a"};
    ia_api_request rq = api_req(IA_API_RERANK, texts, 1);
    rq.query = "q";
    ia_api_result res;
    CHECK_ERR(ia_api_call(client(), "openai", &rq, &res), IA_EIO, "openai has no rerank API");
    CHECK_EQ_INT(fake_provider_requests(api_fake()), 0);
}

/* ---- streaming --------------------------------------------------------------------------- */

typedef struct deltas {
    char text[1024];
    double at[64];
    int n;
} deltas;

static bool on_delta(void *ctx, const char *t, size_t len) {
    deltas *d = ctx;
    size_t have = strlen(d->text);
    snprintf(d->text + have, sizeof d->text - have, "%.*s", (int)len, t);
    if (d->n < 64)
        d->at[d->n] = ia_time_now();
    d->n++;
    return true;
}

static void check_stream(const char *ep, ia_api_op op, const char *want_path,
                         const char *want_finish) {
    const char *texts[] = {"one two three four"};
    ia_api_request rq = api_req(op, texts, 1);
    deltas d = {0};
    rq.stream = true;
    rq.on_delta = on_delta;
    rq.delta_ctx = &d;
    ia_api_result res;
    double t0 = ia_time_now();
    ia_status st = ia_api_call(client(), ep, &rq, &res);
    double t1 = ia_time_now();
    CHECK_MSG(st == IA_OK, "%s stream: %s", ep, ia_error_message());
    if (st != IA_OK)
        return;
    const char *want = "echo: one two three four";
    CHECK_MSG(strcmp(d.text, want) == 0, "%s deltas '%s'", ep, d.text);
    CHECK_MSG(res.text && strcmp(res.text, want) == 0, "%s text '%s'", ep,
              res.text ? res.text : "");
    /* Five words, five deltas, the first well before the end. */
    CHECK_MSG(d.n == 5, "%s: %d deltas", ep, d.n);
    if (d.n >= 2) {
        double spread = (d.at[d.n - 1] - d.at[0]) * 1000.0;
        CHECK_MSG(spread >= 3 * FAKE_STREAM_GAP_MS, "%s: deltas spread over %.1f ms", ep, spread);
        CHECK_MSG((t1 - d.at[0]) * 1000.0 >= 3 * FAKE_STREAM_GAP_MS,
                  "%s: first delta %.1f ms before the end", ep, (t1 - d.at[0]) * 1000.0);
    }
    (void)t0;
    if (want_finish)
        CHECK_MSG(res.finish_reason && strcmp(res.finish_reason, want_finish) == 0, "%s finish %s",
                  ep, res.finish_reason ? res.finish_reason : "(null)");
    char path[512], body[4096];
    last(path, sizeof path, body, sizeof body);
    CHECK_MSG(strcmp(path, want_path) == 0, "%s path %s", ep, path);
    ia_api_result_free(&res);
}

TEST(streams_arrive_incrementally) {
    check_stream("openai", IA_API_CHAT, "/v1/chat/completions", "stop");
    check_stream("openai", IA_API_COMPLETE, "/v1/completions", "stop");
    check_stream("vllm", IA_API_CHAT, "/v1/chat/completions", "stop");
    check_stream("anthropic", IA_API_CHAT, "/v1/messages", "end_turn");
    check_stream("gemini", IA_API_CHAT, "/v1beta/models/gemini-test:streamGenerateContent", "STOP");
    check_stream("ollama", IA_API_CHAT, "/api/chat", "stop");
    check_stream("ollama", IA_API_COMPLETE, "/api/generate", "stop");
    check_stream("tgi", IA_API_COMPLETE, "/generate_stream", "eos_token");
    check_stream("tgi", IA_API_CHAT, "/v1/chat/completions", "stop");
    check_stream("opea", IA_API_CHAT, "/v1/chatqna", "stop");
    check_stream("ovms", IA_API_CHAT, "/v3/chat/completions", "stop");
}

TEST(stream_token_counts) {
    const char *texts[] = {"a b c"};
    ia_api_request rq = api_req(IA_API_CHAT, texts, 1);
    rq.stream = true;
    ia_api_result res;
    CHECK_OK(ia_api_call(client(), "anthropic", &rq, &res));
    CHECK_EQ_INT(res.tokens_in, 9);
    CHECK_EQ_INT(res.tokens_out, 4);
    ia_api_result_free(&res);
    CHECK_OK(ia_api_call(client(), "openai", &rq, &res));
    CHECK_EQ_INT(res.tokens_in, 7);
    CHECK_EQ_INT(res.tokens_out, 4);
    char path[512], body[4096];
    last(path, sizeof path, body, sizeof body);
    CHECK(strstr(body, "\"stream_options\":{\"include_usage\":true}") != NULL);
    ia_api_result_free(&res);
}

static bool stop_at_two(void *ctx, const char *t, size_t len) {
    int *n = ctx;
    return ++*n < 2;
}

TEST(caller_stops_a_stream) {
    const char *texts[] = {"one two three four"};
    ia_api_request rq = api_req(IA_API_CHAT, texts, 1);
    int n = 0;
    rq.stream = true;
    rq.on_delta = stop_at_two;
    rq.delta_ctx = &n;
    ia_api_result res;
    CHECK_ERR(ia_api_call(client(), "openai", &rq, &res), IA_EIO, "endpoint 'openai': cancelled");
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(fake_provider_requests(api_fake()), 1);
}

/* ---- refusals before sending --------------------------------------------------------------- */

TEST(groq_refuses_unsupported_parameters_without_a_request) {
    const char *texts[] = {"hi"};
    ia_api_result res;
    ia_api_request rq = api_req(IA_API_CHAT, texts, 1);
    rq.logprobs = true;
    CHECK_ERR(ia_api_call(client(), "groq", &rq, &res), IA_EIO, "groq does not support logprobs");
    rq = api_req(IA_API_CHAT, texts, 1);
    rq.logit_bias_json = "{\"50256\": -100}";
    CHECK_ERR(ia_api_call(client(), "groq", &rq, &res), IA_EIO, "groq does not support logit_bias");
    rq = api_req(IA_API_CHAT, texts, 1);
    rq.n = 2;
    CHECK_ERR(ia_api_call(client(), "groq", &rq, &res), IA_EIO, "groq does not support n > 1");
    CHECK_EQ_INT(fake_provider_requests(api_fake()), 0);
    /* The same parameters go to OpenAI as its fields. */
    rq = api_req(IA_API_CHAT, texts, 1);
    rq.logprobs = true;
    rq.n = 2;
    rq.logit_bias_json = "{\"50256\": -100}";
    CHECK_OK(ia_api_call(client(), "openai", &rq, &res));
    ia_api_result_free(&res);
    char path[512], body[4096];
    last(path, sizeof path, body, sizeof body);
    CHECK_MSG(strstr(body, "\"n\":2") && strstr(body, "\"logprobs\":true") &&
                  strstr(body, "\"logit_bias\":{\"50256\":-100}"),
              "body %s", body);
}

TEST(unsupported_operations) {
    const char *texts[] = {"hi"};
    ia_api_result res;
    ia_api_request rq = api_req(IA_API_EMBED, texts, 1);
    CHECK_ERR(ia_api_call(client(), "anthropic", &rq, &res), IA_EIO, "anthropic has no embed API");
    rq = api_req(IA_API_CHAT, texts, 1);
    CHECK_ERR(ia_api_call(client(), "tei", &rq, &res), IA_EIO, "tei serves embed and rerank only");
    rq = api_req(IA_API_EMBED, texts, 1);
    rq.stream = true;
    CHECK_ERR(ia_api_call(client(), "openai", &rq, &res), IA_EINVAL,
              "only chat and complete stream");
    CHECK_ERR(ia_api_call(client(), "nope", &rq, &res), IA_ENOTFOUND,
              "endpoint 'nope' is not configured");
    CHECK_EQ_INT(fake_provider_requests(api_fake()), 0);
}

TEST(check_probes_every_endpoint) {
    ia_api_client *c = client();
    for (size_t i = 0; i < ia_api_config_count(E.cfg); i++) {
        const ia_api_endpoint_config *ep = ia_api_config_endpoint(E.cfg, i);
        ia_api_probe pr;
        CHECK_OK(ia_api_check(c, ep->name, &pr));
        CHECK_MSG(pr.ok && pr.http_status == 200, "%s: %d %s", ep->name, pr.http_status,
                  pr.message);
        CHECK(pr.latency_ms > 0);
    }
    /* A server that is not there. */
    api_env dead;
    CHECK_OK(api_env_open(
        "endpoints:\n  - {name: dead, provider: vllm, base_url: 'http://127.0.0.1:1/v1',"
        " model: m, timeouts: {connect_ms: 500}}\n",
        &dead));
    ia_api_probe pr;
    CHECK_OK(ia_api_check(dead.client, "dead", &pr));
    CHECK(!pr.ok);
    CHECK_EQ_INT(pr.http_status, 0);
    CHECK_MSG(strstr(pr.message, "could not connect") != NULL, "%s", pr.message);
    api_env_close(&dead);
}

TEST(zz_cleanup) {
    api_env_close(&E);
    fake_provider_stop(fixture_fake);
    fixture_fake = NULL;
}
