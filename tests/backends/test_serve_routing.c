/*
 * `serve --endpoints`: the server as a gateway to remote models, end to end
 * over loopback HTTP. A second instance of our own server (tiny-bert and
 * qwen2, key sk-upstream) is the remote "openai" endpoint `upstream`; the
 * fake provider is the Anthropic endpoints `claude` (falling back to
 * upstream), `solo` (no fallback), `haiku` (for the Python client) and
 * `narrow` (one slot, no queue). The
 * gateway under test has one local model (local-bert) and the endpoints
 * YAML, and its own key sk-gw.
 *
 * Checked: /v1/models lists local and remote models (owned_by the endpoint);
 * chat, streamed chat (SSE ending [DONE]) and embeddings through the gateway
 * equal what the upstream server answers directly; a conversation reaches
 * Anthropic as turns plus a system field; a 429 with Retry-After is waited
 * out and retried; 503s open claude's breaker while the fallback serves
 * (X-Served-By), after which claude is not called at all; without a
 * fallback the errors are 502 (retries used up) and 503 (breaker open)
 * naming the endpoint and never a key; a full remote queue is a fast 429;
 * an error event mid-stream ends the SSE with an error chunk and [DONE]; a
 * spend limit stays a 429 without retries; a client hanging up mid-stream
 * stops the remote stream;
 * /metrics carries the endpoints' statistics. The real `openai` Python
 * client (IA_TEST_PYTHON, see tests/server/test_clients.c) drives chat,
 * streamed chat and embeddings through the gateway.
 */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ia/backends.h"
#include "server/server_util.h"

#include "api_fixture.h"

static ia_server *upstream, *gateway;
static char yaml_path[64];

static const char *const YAML =
    "endpoints:\n"
    "  - name: upstream\n"
    "    provider: openai\n"
    "    base_url: 'http://127.0.0.1:%u/v1'\n"
    "    models: [qwen2, tiny-bert]\n"
    "    api_key_env: IA_TEST_UPSTREAM_KEY\n"
    "    retry: {max_attempts: 2, base_ms: 1, max_ms: 5}\n"
    "  - name: claude\n"
    "    provider: anthropic\n"
    "    base_url: '%s'\n"
    "    model: claude-test\n"
    "    api_key_env: IA_TEST_FAKE_KEY\n"
    "    retry: {max_attempts: 2, base_ms: 1, max_ms: 5}\n"
    "    breaker: {window: 4, min_calls: 4, failure_rate: 1.0, open_ms: 600000}\n"
    "    fallbacks: [upstream]\n"
    "  - name: solo\n"
    "    provider: anthropic\n"
    "    base_url: '%s'\n"
    "    model: claude-solo\n"
    "    api_key_env: IA_TEST_FAKE_KEY\n"
    "    retry: {max_attempts: 2, base_ms: 1, max_ms: 5}\n"
    "    breaker: {window: 2, min_calls: 2, failure_rate: 0.5, open_ms: 600000}\n"
    "  - name: haiku\n"
    "    provider: anthropic\n"
    "    base_url: '%s'\n"
    "    model: claude-py\n"
    "    api_key_env: IA_TEST_FAKE_KEY\n"
    "  - name: narrow\n"
    "    provider: anthropic\n"
    "    base_url: '%s'\n"
    "    model: claude-narrow\n"
    "    api_key_env: IA_TEST_FAKE_KEY\n"
    "    max_concurrency: 1\n"
    "    queue: 0\n";

static void stop_all(void) {
    ia_server_stop(gateway);
    ia_server_stop(upstream);
    gateway = upstream = NULL;
    if (yaml_path[0])
        unlink(yaml_path);
    if (fixture_fake)
        fake_provider_stop(fixture_fake);
    fixture_fake = NULL;
}

/* Both servers, started once per process. */
static bool setup(void) {
    if (gateway)
        return true;
    if (upstream)
        return false; /* an earlier setup failed */
    const char *up_models[] = {test_source_path("tests/fixtures/models/tiny-bert"),
                               test_source_path("tests/fixtures/decoders/qwen2")};
    const char *up_keys[] = {"sk-upstream"};
    ia_server_options o = ia_server_options_default();
    o.api_keys = up_keys;
    o.n_api_keys = 1;
    upstream = start_server(up_models, 2, &o);
    if (!upstream)
        return false;
    atexit(stop_all);
    setenv("IA_TEST_UPSTREAM_KEY", "sk-upstream", 1);
    const char *fake = fake_provider_url(api_fake());
    snprintf(yaml_path, sizeof yaml_path, "/tmp/ia_serve_routing_XXXXXX");
    int fd = mkstemp(yaml_path);
    CHECK(fd >= 0);
    if (fd < 0)
        return false;
    FILE *f = fdopen(fd, "w");
    fprintf(f, YAML, (unsigned)ia_server_port(upstream), fake, fake, fake, fake);
    fclose(f);
    char local[4096];
    snprintf(local, sizeof local, "local-bert=%s",
             test_source_path("tests/fixtures/models/tiny-bert"));
    const char *gw_models[] = {local};
    const char *gw_keys[] = {"sk-gw"};
    ia_server_options g = ia_server_options_default();
    g.api_keys = gw_keys;
    g.n_api_keys = 1;
    g.endpoints = yaml_path;
    gateway = start_server(gw_models, 1, &g);
    return gateway != NULL;
}

#define GW_KEY "Authorization: Bearer sk-gw"
#define UP_KEY "Authorization: Bearer sk-upstream"

static http_resp gw_post(const char *path, const char *body, const char *extra) {
    return http_do(ia_server_port(gateway), NULL, path, body, GW_KEY, extra);
}

/* The content of an OpenAI chat answer (a static copy; "" when absent). */
static const char *chat_content(const http_resp *r) {
    static char out[4096];
    out[0] = 0;
    json_t *j = r->body ? json_loadb(r->body, r->len, 0, NULL) : NULL;
    const char *c = json_string_value(json_object_get(
        json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message"), "content"));
    snprintf(out, sizeof out, "%s", c ? c : "");
    json_decref(j);
    return out;
}

/* The SSE body's deltas joined; *done says whether it ended with [DONE]. */
static char *sse_text(const http_resp *r, bool *done) {
    size_t cap = r->len + 1, n = 0;
    char *out = calloc(cap, 1);
    *done = false;
    for (const char *p = r->body; p && (p = strstr(p, "data: ")); p += 6) {
        const char *eol = strstr(p, "\n\n");
        size_t len = eol ? (size_t)(eol - p - 6) : strlen(p + 6);
        if (len == 6 && strncmp(p + 6, "[DONE]", 6) == 0) {
            *done = true;
            continue;
        }
        json_t *j = json_loadb(p + 6, len, 0, NULL);
        json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
        const char *t = json_string_value(json_object_get(json_object_get(c0, "delta"), "content"));
        if (t && n + strlen(t) < cap)
            n = (size_t)(stpcpy(out + n, t) - out);
        json_decref(j);
    }
    return out;
}

TEST(models_lists_local_and_remote) {
    if (!setup())
        return;
    http_resp r = http_do(ia_server_port(gateway), NULL, "/v1/models", NULL, GW_KEY, NULL);
    CHECK_EQ_INT(r.status, 200);
    json_t *j = http_json(&r);
    json_t *data = json_object_get(j, "data"), *m;
    size_t i;
    char seen[512] = "";
    json_array_foreach(data, i, m) {
        char one[160];
        snprintf(one, sizeof one, "%s@%s ", json_string_value(json_object_get(m, "id")),
                 json_string_value(json_object_get(m, "owned_by")));
        strncat(seen, one, sizeof seen - strlen(seen) - 1);
    }
    CHECK_MSG(strcmp(seen, "local-bert@ipfs-accelerate qwen2@upstream tiny-bert@upstream "
                           "claude-test@claude claude-solo@solo claude-py@haiku "
                           "claude-narrow@narrow ") == 0,
              "models: %s", seen);
    json_decref(j);
    http_free(&r);
    /* the gateway's own key still guards the routes */
    r = http_post(ia_server_port(gateway), "/v1/chat/completions",
                  "{\"model\":\"qwen2\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    CHECK_EQ_INT(r.status, 401);
    http_free(&r);
}

static const char CHAT_QWEN[] =
    "{\"model\":\"qwen2\",\"max_tokens\":12,\"temperature\":0,\"messages\":["
    "{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"Hello\"}]}";
static const char CHAT_QWEN_STREAM[] =
    "{\"model\":\"qwen2\",\"max_tokens\":12,\"temperature\":0,\"stream\":true,\"messages\":["
    "{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"Hello\"}]}";

TEST(chat_through_gateway_equals_upstream) {
    if (!setup())
        return;
    http_resp direct =
        http_do(ia_server_port(upstream), NULL, "/v1/chat/completions", CHAT_QWEN, UP_KEY, NULL);
    CHECK_EQ_INT(direct.status, 200);
    char want[4096];
    snprintf(want, sizeof want, "%s", chat_content(&direct));
    CHECK(want[0] != 0);
    http_resp r = gw_post("/v1/chat/completions", CHAT_QWEN, "X-Priority: high");
    CHECK_EQ_INT(r.status, 200);
    CHECK_MSG(strcmp(chat_content(&r), want) == 0, "gateway '%s' vs upstream '%s'",
              chat_content(&r), want);
    CHECK(strcmp(http_header(&r, "X-Served-By"), "upstream") == 0);
    json_t *j = http_json(&r);
    CHECK(strcmp(json_string_value(json_object_get(j, "model")), "qwen2") == 0);
    CHECK(json_integer_value(json_object_get(json_object_get(j, "usage"), "completion_tokens")) >
          0);
    json_decref(j);
    http_free(&r);

    /* streamed: the same text as SSE chunks ending with [DONE] */
    r = gw_post("/v1/chat/completions", CHAT_QWEN_STREAM, NULL);
    CHECK_EQ_INT(r.status, 200);
    CHECK(strncmp(http_header(&r, "Content-Type"), "text/event-stream", 17) == 0);
    bool done;
    char *text = sse_text(&r, &done);
    CHECK(done);
    CHECK_MSG(strcmp(text, want) == 0, "streamed '%s' vs '%s'", text, want);
    free(text);
    http_free(&r);
    http_free(&direct);

    /* completions too */
    r = gw_post("/v1/completions",
                "{\"model\":\"upstream/qwen2\",\"prompt\":\"One two\",\"max_tokens\":4,"
                "\"temperature\":0}",
                NULL);
    CHECK_EQ_INT(r.status, 200);
    j = http_json(&r);
    CHECK(json_string_value(
              json_object_get(json_array_get(json_object_get(j, "choices"), 0), "text")) != NULL);
    json_decref(j);
    http_free(&r);
}

/* stop, seed and top_p reach the remote endpoint: a seeded sampled chat and a
 * greedy chat cut by a stop string through the gateway equal the upstream's
 * direct answers to the same bodies (an unforwarded seed gives another draw,
 * an unforwarded stop the whole text). */
TEST(sampling_parameters_are_forwarded) {
    if (!setup())
        return;
    static const char SEEDED[] =
        "{\"model\":\"qwen2\",\"max_tokens\":12,\"temperature\":1.0,\"top_p\":0.9,\"seed\":42,"
        "\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}";
    http_resp direct =
        http_do(ia_server_port(upstream), NULL, "/v1/chat/completions", SEEDED, UP_KEY, NULL);
    CHECK_EQ_INT(direct.status, 200);
    char want[4096]; /* chat_content's buffer is static: copy */
    snprintf(want, sizeof want, "%s", chat_content(&direct));
    http_resp r = gw_post("/v1/chat/completions", SEEDED, NULL);
    CHECK_EQ_INT(r.status, 200);
    CHECK_MSG(strcmp(chat_content(&r), want) == 0, "gateway '%s' vs upstream '%s'",
              chat_content(&r), want);
    http_free(&r);
    http_free(&direct);

    /* greedy without a stop, then with a stop string taken from inside that text */
    direct =
        http_do(ia_server_port(upstream), NULL, "/v1/chat/completions", CHAT_QWEN, UP_KEY, NULL);
    CHECK_EQ_INT(direct.status, 200);
    char whole[4096];
    snprintf(whole, sizeof whole, "%s", chat_content(&direct));
    http_free(&direct);
    size_t n = strlen(whole);
    CHECK_MSG(n >= 3, "greedy answer '%s' too short to cut", whole);
    if (n < 3)
        return;
    json_t *body = json_pack("{s:s, s:i, s:f, s:[{s:s, s:s}, {s:s, s:s}], s:[s#]}", "model",
                             "qwen2", "max_tokens", 12, "temperature", 0.0, "messages", "role",
                             "system", "content", "Be brief.", "role", "user", "content", "Hello",
                             "stop", whole + n / 2, (size_t)(n - n / 2 < 2 ? n - n / 2 : 2));
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    direct = http_do(ia_server_port(upstream), NULL, "/v1/chat/completions", text, UP_KEY, NULL);
    CHECK_EQ_INT(direct.status, 200);
    snprintf(want, sizeof want, "%s", chat_content(&direct));
    CHECK_MSG(strlen(want) < n, "the stop string did not cut '%s'", whole);
    r = gw_post("/v1/chat/completions", text, NULL);
    CHECK_EQ_INT(r.status, 200);
    CHECK_MSG(strcmp(chat_content(&r), want) == 0, "gateway '%s' vs upstream '%s' (stop)",
              chat_content(&r), want);
    http_free(&r);
    http_free(&direct);
    free(text);
}

/* The adapters that speak an API our server serves, against our server
 * itself (issue 9: "tested against this project's own server"): OpenAI,
 * vLLM and Groq (OpenAI wire format), Ollama (/api/chat, /api/embed, NDJSON
 * streams) and TEI (/embed). Greedy chat, plain and streamed, gives every
 * adapter the text the upstream answers directly; embeddings from every
 * adapter equal the direct /v1/embeddings vectors (after L2 normalisation:
 * Ollama and TEI normalise). */
static const char *const ADAPTERS_YAML =
    "endpoints:\n"
    "  - {name: o, provider: openai, base_url: 'http://127.0.0.1:%u/v1', models: [qwen2, "
    "tiny-bert], api_key_env: IA_TEST_UPSTREAM_KEY}\n"
    "  - {name: v, provider: vllm, base_url: 'http://127.0.0.1:%u/v1', models: [qwen2, tiny-bert], "
    "api_key_env: IA_TEST_UPSTREAM_KEY}\n"
    "  - {name: g, provider: groq, base_url: 'http://127.0.0.1:%u/v1', model: qwen2, "
    "api_key_env: IA_TEST_UPSTREAM_KEY}\n"
    "  - {name: l, provider: ollama, base_url: 'http://127.0.0.1:%u', models: [qwen2, tiny-bert], "
    "api_key_env: IA_TEST_UPSTREAM_KEY}\n"
    "  - {name: t, provider: tei, base_url: 'http://127.0.0.1:%u', model: tiny-bert, "
    "api_key_env: IA_TEST_UPSTREAM_KEY}\n";

static bool collect_delta(void *ctx, const char *text, size_t len) {
    char *buf = ctx;
    size_t n = strlen(buf);
    if (n + len < 4096) {
        memcpy(buf + n, text, len);
        buf[n + len] = 0;
    }
    return true;
}

static void l2_normalise(float *v, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)v[i] * v[i];
    s = sqrt(s);
    for (size_t i = 0; s > 0 && i < n; i++)
        v[i] = (float)(v[i] / s);
}

TEST(adapters_against_our_server) {
    if (!setup())
        return;
    unsigned port = (unsigned)ia_server_port(upstream);
    char yaml[2048];
    snprintf(yaml, sizeof yaml, ADAPTERS_YAML, port, port, port, port, port);
    ia_api_config *cfg = NULL;
    ia_api_client *c = NULL;
    CHECK_OK(ia_api_config_parse(yaml, strlen(yaml), "adapters", &cfg));
    CHECK_OK(ia_api_client_create(cfg, &c));
    if (!c) {
        ia_api_config_free(cfg);
        return;
    }
    http_resp direct = http_do(port, NULL, "/v1/chat/completions", CHAT_QWEN, UP_KEY, NULL);
    CHECK_EQ_INT(direct.status, 200);
    char want[4096];
    snprintf(want, sizeof want, "%s", chat_content(&direct));
    http_free(&direct);
    CHECK(want[0] != 0);

    const char *texts[] = {"Hello"};
    const char *chat_eps[] = {"o", "v", "g", "l"};
    for (size_t e = 0; e < 4; e++)
        for (int stream = 0; stream < 2; stream++) {
            char got[4096] = "";
            ia_api_request q = {.op = IA_API_CHAT,
                                .model = "qwen2",
                                .system = "Be brief.",
                                .texts = texts,
                                .n_texts = 1,
                                .max_tokens = 12,
                                .temperature = 0,
                                .stream = stream != 0};
            if (stream) {
                q.on_delta = collect_delta;
                q.delta_ctx = got;
            }
            ia_api_result res = {0};
            ia_status st = ia_api_call(c, chat_eps[e], &q, &res);
            CHECK_MSG(st == IA_OK, "%s%s: %s", chat_eps[e], stream ? " (stream)" : "",
                      ia_error_message());
            CHECK_MSG(res.text && strcmp(res.text, want) == 0, "%s%s: '%s' vs direct '%s'",
                      chat_eps[e], stream ? " (stream)" : "", res.text ? res.text : "(none)", want);
            if (stream)
                CHECK_MSG(strcmp(got, want) == 0, "%s deltas '%s' vs '%s'", chat_eps[e], got, want);
            ia_api_result_free(&res);
        }

    static const char EMB[] = "{\"model\":\"tiny-bert\",\"input\":[\"a b\",\"hello world\"]}";
    direct = http_do(port, NULL, "/v1/embeddings", EMB, UP_KEY, NULL);
    CHECK_EQ_INT(direct.status, 200);
    json_t *j = http_json(&direct);
    json_t *data = json_object_get(j, "data");
    size_t dim = json_array_size(json_object_get(json_array_get(data, 0), "embedding"));
    CHECK(json_array_size(data) == 2 && dim > 0);
    float *ref = calloc(2 * (dim ? dim : 1), sizeof *ref);
    for (size_t i = 0; i < 2 && dim; i++) {
        json_t *row = json_object_get(json_array_get(data, i), "embedding");
        for (size_t k = 0; k < dim; k++)
            ref[i * dim + k] = (float)json_number_value(json_array_get(row, k));
        l2_normalise(ref + i * dim, dim);
    }
    json_decref(j);
    http_free(&direct);
    const char *in[] = {"a b", "hello world"};
    const char *emb_eps[] = {"o", "v", "l", "t"};
    for (size_t e = 0; e < 4 && dim; e++) {
        ia_api_request q = {
            .op = IA_API_EMBED, .model = "tiny-bert", .texts = in, .n_texts = 2, .temperature = -1};
        ia_api_result res = {0};
        ia_status st = ia_api_call(c, emb_eps[e], &q, &res);
        CHECK_MSG(st == IA_OK, "%s embed: %s", emb_eps[e], ia_error_message());
        CHECK_MSG(res.n_embeddings == 2 && res.dim == dim, "%s: %zu x %zu", emb_eps[e],
                  res.n_embeddings, res.dim);
        if (st == IA_OK && res.n_embeddings == 2 && res.dim == dim) {
            float worst = 0;
            for (size_t i = 0; i < 2; i++) {
                l2_normalise(res.embeddings + i * dim, dim);
                for (size_t k = 0; k < dim; k++) {
                    float d = fabsf(res.embeddings[i * dim + k] - ref[i * dim + k]);
                    worst = d > worst ? d : worst;
                }
            }
            CHECK_MSG(worst < 1e-6f, "%s: embeddings differ from the direct ones by %g", emb_eps[e],
                      (double)worst);
        }
        ia_api_result_free(&res);
    }
    free(ref);
    ia_api_client_destroy(c);
    ia_api_config_free(cfg);
}

TEST(embeddings_through_gateway_equal_upstream) {
    if (!setup())
        return;
    static const char body[] =
        "{\"model\":\"tiny-bert\",\"input\":[\"hello world, this is a test\",\"x\"],"
        "\"encoding_format\":\"float\"}";
    http_resp direct =
        http_do(ia_server_port(upstream), NULL, "/v1/embeddings", body, UP_KEY, NULL);
    http_resp r = gw_post("/v1/embeddings", body, NULL);
    CHECK_EQ_INT(direct.status, 200);
    CHECK_EQ_INT(r.status, 200);
    json_t *a = http_json(&direct), *b = http_json(&r);
    json_t *da = json_object_get(a, "data"), *db = json_object_get(b, "data");
    CHECK_EQ_INT(json_array_size(db), 2);
    for (size_t i = 0; i < json_array_size(da) && i < json_array_size(db); i++) {
        json_t *va = json_object_get(json_array_get(da, i), "embedding");
        json_t *vb = json_object_get(json_array_get(db, i), "embedding");
        CHECK_EQ_INT(json_array_size(vb), json_array_size(va));
        size_t bad = 0;
        for (size_t k = 0; k < json_array_size(va); k++)
            bad += (float)json_real_value(json_array_get(va, k)) !=
                   (float)json_real_value(json_array_get(vb, k));
        CHECK_MSG(bad == 0, "row %zu: %zu values differ", i, bad);
    }
    json_decref(a);
    json_decref(b);
    http_free(&direct);
    http_free(&r);
    /* token-id inputs cannot be forwarded: a 400 naming the endpoint */
    r = gw_post("/v1/embeddings", "{\"model\":\"tiny-bert\",\"input\":[[101,102]]}", NULL);
    CHECK_EQ_INT(r.status, 400);
    CHECK(strstr(http_error_message(&r), "upstream") != NULL);
    http_free(&r);
}

TEST(anthropic_conversation_and_stream) {
    if (!setup())
        return;
    fake_provider_reset(api_fake());
    http_resp r = gw_post("/v1/chat/completions",
                          "{\"model\":\"claude-test\",\"messages\":["
                          "{\"role\":\"system\",\"content\":\"Be terse.\"},"
                          "{\"role\":\"user\",\"content\":\"first\"},"
                          "{\"role\":\"assistant\",\"content\":\"ok\"},"
                          "{\"role\":\"user\",\"content\":\"hello there\"}]}",
                          NULL);
    CHECK_EQ_INT(r.status, 200);
    CHECK_MSG(strcmp(chat_content(&r), "echo: hello there") == 0, "%s", chat_content(&r));
    CHECK(strcmp(http_header(&r, "X-Served-By"), "claude") == 0);
    json_t *ans = http_json(&r); /* Anthropic's end_turn in OpenAI's words */
    const char *fin = json_string_value(
        json_object_get(json_array_get(json_object_get(ans, "choices"), 0), "finish_reason"));
    CHECK_MSG(fin && strcmp(fin, "stop") == 0, "finish_reason %s", fin ? fin : "(none)");
    json_decref(ans);
    http_free(&r);
    char body[4096];
    fake_provider_last_body(api_fake(), body, sizeof body);
    json_t *j = json_loads(body, 0, NULL);
    CHECK(strcmp(json_string_value(json_object_get(j, "system")) ?: "", "Be terse.") == 0);
    CHECK_EQ_INT(json_array_size(json_object_get(j, "messages")), 3);
    json_decref(j);

    r = gw_post("/v1/chat/completions",
                "{\"model\":\"claude-test\",\"stream\":true,\"messages\":["
                "{\"role\":\"user\",\"content\":\"one two three\"}]}",
                NULL);
    CHECK_EQ_INT(r.status, 200);
    bool done;
    char *text = sse_text(&r, &done);
    CHECK(done);
    CHECK_MSG(strcmp(text, "echo: one two three") == 0, "%s", text);
    free(text);
    http_free(&r);
}

TEST(retry_after_429_is_waited_out) {
    if (!setup())
        return;
    fake_provider_reset(api_fake());
    fake_provider_fault(api_fake(), FAKE_RETRY_AFTER, 1);
    double t0 = ia_time_now();
    http_resp r = gw_post("/v1/chat/completions",
                          "{\"model\":\"claude-test\",\"messages\":[{\"role\":\"user\","
                          "\"content\":\"again\"}]}",
                          NULL);
    double dt = ia_time_now() - t0;
    CHECK_EQ_INT(r.status, 200);
    CHECK_MSG(strcmp(chat_content(&r), "echo: again") == 0, "%s", chat_content(&r));
    CHECK(strcmp(http_header(&r, "X-Served-By"), "claude") == 0);
    CHECK_EQ_INT(fake_provider_requests(api_fake()), 2);
    CHECK_MSG(dt >= 0.9, "answered after %.3f s; Retry-After said 1 s", dt);
    http_free(&r);
}

TEST(breaker_opens_and_fallback_serves) {
    if (!setup())
        return;
    fake_provider_reset(api_fake());
    static const char body[] =
        "{\"model\":\"claude-test\",\"max_tokens\":4,\"temperature\":0,\"messages\":[{\"role\":"
        "\"user\",\"content\":\"Hello\"}]}";
    /* two requests, two 503s each: claude's window fills with 4 failures */
    for (int i = 0; i < 2; i++) {
        fake_provider_fault(api_fake(), FAKE_STATUS, 503);
        fake_provider_fault(api_fake(), FAKE_STATUS, 503);
        http_resp r = gw_post("/v1/chat/completions", body, NULL);
        CHECK_EQ_INT(r.status, 200);
        CHECK_MSG(strcmp(http_header(&r, "X-Served-By"), "upstream") == 0, "served by '%s'",
                  http_header(&r, "X-Served-By"));
        CHECK(chat_content(&r)[0] != 0);
        http_free(&r);
    }
    CHECK_EQ_INT(fake_provider_requests(api_fake()), 4);
    /* open: the fallback serves without claude being called */
    http_resp r = gw_post("/v1/chat/completions", body, NULL);
    CHECK_EQ_INT(r.status, 200);
    CHECK(strcmp(http_header(&r, "X-Served-By"), "upstream") == 0);
    CHECK_EQ_INT(fake_provider_requests(api_fake()), 4);
    http_free(&r);
    const char *needles[] = {"ia_api_breaker_state{endpoint=\"claude\"} 1",
                             "ia_api_fallback_out_total{endpoint=\"claude\"} 3", NULL};
    http_resp m = metrics_when(ia_server_port(gateway), needles);
    CHECK_MSG(m.body && strstr(m.body, needles[0]) && strstr(m.body, needles[1]),
              "metrics lack the breaker or fallback counts");
    http_free(&m);
}

TEST(errors_without_fallback) {
    if (!setup())
        return;
    fake_provider_reset(api_fake());
    static const char body[] =
        "{\"model\":\"claude-solo\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
    fake_provider_fault(api_fake(), FAKE_STATUS, 503);
    fake_provider_fault(api_fake(), FAKE_STATUS, 503);
    http_resp r = gw_post("/v1/chat/completions", body, NULL);
    CHECK_EQ_INT(r.status, 502);
    const char *msg = http_error_message(&r);
    CHECK_MSG(strstr(msg, "solo") != NULL, "message: %s", msg);
    CHECK(strstr(r.body, FIXTURE_KEY) == NULL);
    json_t *j = http_json(&r);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(j, "error"), "code")) ?: "",
                 "bad_gateway") == 0);
    json_decref(j);
    http_free(&r);
    /* two failures in a window of two: open, refused at once */
    r = gw_post("/v1/chat/completions", body, NULL);
    CHECK_EQ_INT(r.status, 503);
    CHECK_MSG(strstr(http_error_message(&r), "solo") != NULL, "message: %s",
              http_error_message(&r));
    CHECK(strstr(r.body, FIXTURE_KEY) == NULL);
    CHECK_EQ_INT(fake_provider_requests(api_fake()), 2);
    http_free(&r);
    /* streamed requests get the same status before any chunk */
    r = gw_post("/v1/chat/completions",
                "{\"model\":\"claude-solo\",\"stream\":true,\"messages\":[{\"role\":\"user\","
                "\"content\":\"x\"}]}",
                NULL);
    CHECK_EQ_INT(r.status, 503);
    http_free(&r);
    /* an unknown model is the gateway's 404 */
    r = gw_post("/v1/chat/completions",
                "{\"model\":\"nope\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", NULL);
    CHECK_EQ_INT(r.status, 404);
    http_free(&r);
}

static size_t discard(char *p, size_t size, size_t n, void *ctx) {
    (void)p;
    (void)ctx;
    return size * n;
}

TEST(stream_faults) {
    if (!setup())
        return;
    fake_provider_reset(api_fake());
    static const char body[] = "{\"model\":\"claude-py\",\"stream\":true,\"messages\":[{\"role\":"
                               "\"user\",\"content\":\"a b c\"}]}";
    /* an error event after the first delta: the stream ends with an error chunk, then [DONE] */
    fake_provider_fault(api_fake(), FAKE_STREAM_ERROR, 0);
    http_resp r = gw_post("/v1/chat/completions", body, NULL);
    CHECK_EQ_INT(r.status, 200);
    bool done;
    char *text = sse_text(&r, &done);
    CHECK(done);
    CHECK_MSG(text[0] && strcmp(text, "echo: a b c") != 0, "deltas '%s'", text);
    CHECK_MSG(r.body && strstr(r.body, "data: {\"error\""), "%s", r.body ? r.body : "");
    free(text);
    http_free(&r);
    /* a spend limit is not retried and stays a 429 */
    fake_provider_reset(api_fake());
    fake_provider_fault(api_fake(), FAKE_SPEND_LIMIT, 0);
    r = gw_post("/v1/chat/completions",
                "{\"model\":\"claude-py\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                NULL);
    CHECK_EQ_INT(r.status, 429);
    CHECK_EQ_INT(fake_provider_requests(api_fake()), 1);
    http_free(&r);
    /* a client that hangs up mid-stream stops the remote (endless) stream */
    fake_provider_fault(api_fake(), FAKE_ENDLESS, 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/chat/completions",
             (unsigned)ia_server_port(gateway));
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, GW_KEY);
    h = curl_slist_append(h, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 800L);
    CURLcode rc = curl_easy_perform(c);
    CHECK_EQ_INT(rc, CURLE_OPERATION_TIMEDOUT);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    int active = 1;
    for (int i = 0; i < 300 && (active = fake_provider_active(api_fake())) > 0; i++)
        usleep(10000);
    CHECK_MSG(active == 0, "the remote stream is still open after the client left");
}

static void *slow_call(void *arg) {
    http_resp *r = arg;
    *r = gw_post("/v1/chat/completions",
                 "{\"model\":\"claude-narrow\",\"messages\":[{\"role\":\"user\",\"content\":"
                 "\"slow\"}]}",
                 NULL);
    return NULL;
}

TEST(full_remote_queue_is_429) {
    if (!setup())
        return;
    fake_provider_reset(api_fake());
    fake_provider_fault(api_fake(), FAKE_SLOW, 1500);
    http_resp slow;
    pthread_t th;
    pthread_create(&th, NULL, slow_call, &slow);
    /* wait until the slow call holds narrow's only slot */
    for (int i = 0; i < 300 && fake_provider_requests(api_fake()) == 0; i++)
        usleep(10000);
    double t0 = ia_time_now();
    http_resp r = gw_post("/v1/chat/completions",
                          "{\"model\":\"claude-narrow\",\"messages\":[{\"role\":\"user\","
                          "\"content\":\"fast\"}]}",
                          NULL);
    double dt = ia_time_now() - t0;
    CHECK_EQ_INT(r.status, 429);
    CHECK(http_header(&r, "Retry-After")[0] != 0);
    CHECK_MSG(strstr(http_error_message(&r), "narrow") != NULL, "%s", http_error_message(&r));
    CHECK_MSG(dt < 1.0, "the refusal took %.3f s", dt);
    http_free(&r);
    pthread_join(th, NULL);
    CHECK_EQ_INT(slow.status, 200);
    http_free(&slow);
}

TEST(openai_python_client_through_gateway) {
    if (!setup())
        return;
    const char *py = getenv("IA_TEST_PYTHON");
    if (!py || !*py)
        SKIP("IA_TEST_PYTHON is not set (make test sets it from scripts/test-python.sh)");
    char check[4096];
    snprintf(check, sizeof check, "%s -c 'import openai' >/dev/null 2>&1", py);
    if (system(check) != 0)
        SKIP("%s cannot import openai (scripts/test-python.sh installs it)", py);
    fake_provider_reset(api_fake());
    char gw[16], up[16];
    snprintf(gw, sizeof gw, "%u", (unsigned)ia_server_port(gateway));
    snprintf(up, sizeof up, "%u", (unsigned)ia_server_port(upstream));
    pid_t pid = fork();
    if (pid == 0) {
        execl(py, py, test_source_path("tests/backends/serve_routing_check.py"), gw, up,
              (char *)NULL);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
        SKIP("the openai package could not be imported");
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "serve_routing_check.py exit %d",
              WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

TEST(gateway_without_local_models) {
    if (!setup())
        return;
    ia_server_options o = ia_server_options_default();
    o.endpoints = yaml_path;
    ia_server *srv = NULL;
    CHECK_OK(ia_server_start(&o, &srv));
    if (!srv)
        return;
    http_resp r = http_get(ia_server_port(srv), "/v1/models");
    CHECK_EQ_INT(r.status, 200);
    CHECK(r.body && strstr(r.body, "\"claude-test\"") && !strstr(r.body, "local-bert"));
    http_free(&r);
    r = http_post(ia_server_port(srv), "/v1/embeddings",
                  "{\"model\":\"upstream\",\"input\":[\"x\"]}"); /* ENDPOINT: its default model */
    CHECK_EQ_INT(r.status, 400); /* qwen2, a generator, refuses embeddings upstream */
    CHECK_MSG(strstr(http_error_message(&r), "qwen2") != NULL, "%s", http_error_message(&r));
    http_free(&r);
    r = http_post(ia_server_port(srv), "/v1/embeddings",
                  "{\"model\":\"upstream/tiny-bert\",\"input\":[\"x\"]}");
    CHECK_EQ_INT(r.status, 200);
    http_free(&r);
    r = http_post(ia_server_port(srv), "/v1/embeddings", "{\"model\":\"nope\",\"input\":[\"x\"]}");
    CHECK_EQ_INT(r.status, 404);
    http_free(&r);
    r = http_get(ia_server_port(srv), "/health");
    CHECK_EQ_INT(r.status, 200);
    http_free(&r);
    ia_server_stop(srv);

    /* a file that cannot be read stops the start, naming it */
    o.endpoints = "/nonexistent/endpoints.yaml";
    srv = NULL;
    CHECK_ERR(ia_server_start(&o, &srv), IA_ENOTFOUND,
              "serve --endpoints /nonexistent/endpoints.yaml");
    CHECK(srv == NULL);
}
