/*
 * The generation routes over real HTTP against the tiny decoder fixtures
 * (tests/fixtures/decoders): /v1/completions equal to ia_generator_generate
 * run directly, streamed chat text equal to non-streamed chat text for greedy
 * and for a seeded sample, SSE framing (every event a JSON chunk, the role
 * first, a usage chunk with stream_options.include_usage, `data: [DONE]`
 * last), stop strings, Ollama /api/generate and /api/chat as NDJSON with
 * Ollama's timing fields, a prompt longer than the context (400), and a
 * client that hangs up mid-stream: the server cancels, stays healthy and
 * answers the next request.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "ia/runtime.h"
#include "server_util.h"

#define GPT2 "tests/fixtures/decoders/gpt2"
#define QWEN "tests/fixtures/decoders/qwen2"

static ia_server *srv;
static uint16_t port;

static bool setup(void) {
    if (srv)
        return true;
    static char q[600], g[600];
    snprintf(q, sizeof q, "%s", test_source_path(QWEN));
    snprintf(g, sizeof g, "%s", test_source_path(GPT2));
    const char *models[] = {q, g};
    srv = start_server(models, 2, NULL);
    port = ia_server_port(srv);
    return srv != NULL;
}

/* ---- SSE and NDJSON ----------------------------------------------------------------------------
 */

typedef struct stream_text {
    char text[8192];
    int chunks;
    bool done_seen, role_first, framing_ok, usage_seen;
    char finish[32];
    long usage_completion;
} stream_text;

/* Reads an SSE body: events separated by a blank line, each "data: JSON";
 * the last "data: [DONE]". */
static stream_text parse_sse(const char *body, bool chat) {
    stream_text s;
    memset(&s, 0, sizeof s);
    s.framing_ok = true;
    const char *p = body;
    int n = 0;
    while (p && *p) {
        const char *end = strstr(p, "\n\n");
        if (!end || strncmp(p, "data: ", 6) != 0) {
            s.framing_ok = false;
            break;
        }
        const char *data = p + 6;
        size_t len = (size_t)(end - data);
        if (len == 6 && strncmp(data, "[DONE]", 6) == 0) {
            s.done_seen = true;
            s.framing_ok &= end[2] == 0; /* nothing after [DONE] */
            break;
        }
        json_t *j = json_loadb(data, len, 0, NULL);
        if (!j) {
            s.framing_ok = false;
            break;
        }
        json_t *choices = json_object_get(j, "choices");
        json_t *c0 = json_array_get(choices, 0);
        if (json_object_get(j, "usage") && json_array_size(choices) == 0) {
            s.usage_seen = true;
            s.usage_completion = (long)json_integer_value(
                json_object_get(json_object_get(j, "usage"), "completion_tokens"));
        } else if (c0) {
            const char *piece =
                chat ? json_string_value(json_object_get(json_object_get(c0, "delta"), "content"))
                     : json_string_value(json_object_get(c0, "text"));
            if (n == 0 && chat)
                s.role_first = json_object_get(json_object_get(c0, "delta"), "role") != NULL;
            if (piece)
                strncat(s.text, piece, sizeof s.text - strlen(s.text) - 1);
            const char *fin = json_string_value(json_object_get(c0, "finish_reason"));
            if (fin)
                snprintf(s.finish, sizeof s.finish, "%s", fin);
        }
        json_decref(j);
        n++;
        p = end + 2;
    }
    s.chunks = n;
    return s;
}

/* NDJSON: every line a JSON object; the text pieces joined; the last done. */
static stream_text parse_ndjson(const char *body, bool chat, json_t **last) {
    stream_text s;
    memset(&s, 0, sizeof s);
    s.framing_ok = true;
    *last = NULL;
    for (const char *p = body; p && *p;) {
        const char *eol = strchr(p, '\n');
        if (!eol) {
            s.framing_ok = false;
            break;
        }
        json_t *j = json_loadb(p, (size_t)(eol - p), 0, NULL);
        if (!j) {
            s.framing_ok = false;
            break;
        }
        const char *piece =
            chat ? json_string_value(json_object_get(json_object_get(j, "message"), "content"))
                 : json_string_value(json_object_get(j, "response"));
        if (piece)
            strncat(s.text, piece, sizeof s.text - strlen(s.text) - 1);
        s.chunks++;
        json_decref(*last);
        *last = j;
        p = eol + 1;
    }
    s.done_seen = *last && json_is_true(json_object_get(*last, "done"));
    return s;
}

/* ---- cases ------------------------------------------------------------------------------------
 */

TEST(completion_equals_direct_generation) {
    if (!setup())
        return;
    const char *prompt = "The quick brown fox";
    ia_generator_options go = ia_generator_options_default();
    go.n_threads = 1;
    ia_generator *g = NULL;
    CHECK_OK(ia_generator_load(test_source_path(GPT2), &go, &g));
    if (!g)
        return;
    ia_generate_request req = ia_generate_request_default();
    req.prompt = prompt;
    req.max_tokens = 20;
    req.sampling.temperature = 0;
    ia_generate_result res = {0};
    CHECK_OK(ia_generator_generate(g, &req, &res));

    http_resp r = http_post(port, "/v1/completions",
                            "{\"model\":\"gpt2\",\"prompt\":\"The quick brown fox\","
                            "\"max_tokens\":20,\"temperature\":0}");
    CHECK_EQ_INT(r.status, 200);
    json_t *j = http_json(&r);
    json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
    const char *text = json_string_value(json_object_get(c0, "text"));
    CHECK_MSG(text && res.text && strcmp(text, res.text) == 0, "server '%s' vs direct '%s'",
              text ? text : "(null)", res.text ? res.text : "(null)");
    CHECK(strcmp(json_string_value(json_object_get(j, "object")), "text_completion") == 0);
    CHECK(strcmp(json_string_value(json_object_get(c0, "finish_reason")),
                 res.finish == IA_FINISH_LENGTH ? "length" : "stop") == 0);
    json_t *u = json_object_get(j, "usage");
    CHECK_EQ_INT(json_integer_value(json_object_get(u, "prompt_tokens")), res.prompt_tokens);
    CHECK_EQ_INT(json_integer_value(json_object_get(u, "completion_tokens")), res.n_tokens);
    json_decref(j);
    http_free(&r);

    /* streamed: the same text, SSE framing, usage chunk */
    r = http_post(port, "/v1/completions",
                  "{\"model\":\"gpt2\",\"prompt\":\"The quick brown fox\",\"max_tokens\":20,"
                  "\"temperature\":0,\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
    CHECK_EQ_INT(r.status, 200);
    CHECK(strstr(http_header(&r, "Content-Type"), "text/event-stream"));
    stream_text s = parse_sse(r.body ? r.body : "", false);
    CHECK(s.framing_ok && s.done_seen && s.usage_seen);
    CHECK_EQ_INT(s.usage_completion, res.n_tokens);
    CHECK_MSG(res.text && strcmp(s.text, res.text) == 0, "streamed '%s'", s.text);
    http_free(&r);

    /* a stop string cuts the text before it */
    if (res.text && strlen(res.text) > 6) {
        char stop[8];
        snprintf(stop, sizeof stop, "%.3s", res.text + 3);
        json_t *b = json_pack("{s:s, s:s, s:i, s:i, s:s}", "model", "gpt2", "prompt", prompt,
                              "max_tokens", 20, "temperature", 0, "stop", stop);
        char *body = json_dumps(b, 0);
        json_decref(b);
        r = http_post(port, "/v1/completions", body);
        free(body);
        j = http_json(&r);
        c0 = json_array_get(json_object_get(j, "choices"), 0);
        text = json_string_value(json_object_get(c0, "text"));
        CHECK(text && strstr(res.text, text) == res.text && !strstr(text, stop));
        CHECK(strcmp(json_string_value(json_object_get(c0, "finish_reason")), "stop") == 0);
        json_decref(j);
        http_free(&r);
    }
    ia_generate_result_free(&res);
    ia_generator_free(g);
}

static void chat_stream_vs_plain(const char *sampling) {
    char plain[1024], streamed[1024];
    snprintf(plain, sizeof plain,
             "{\"model\":\"qwen2\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
             "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hello there\"}]}],"
             "\"max_tokens\":24,%s}",
             sampling);
    snprintf(streamed, sizeof streamed, "%.*s,\"stream\":true}", (int)strlen(plain) - 1, plain);
    http_resp a = http_post(port, "/v1/chat/completions", plain);
    CHECK_EQ_INT(a.status, 200);
    json_t *j = http_json(&a);
    json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
    const char *text =
        json_string_value(json_object_get(json_object_get(c0, "message"), "content"));
    CHECK(strcmp(json_string_value(json_object_get(j, "object")), "chat.completion") == 0);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(c0, "message"), "role")),
                 "assistant") == 0);
    http_resp b = http_post(port, "/v1/chat/completions", streamed);
    CHECK_EQ_INT(b.status, 200);
    stream_text s = parse_sse(b.body ? b.body : "", true);
    CHECK(s.framing_ok && s.done_seen && s.role_first && !s.usage_seen);
    CHECK_MSG(text && strcmp(text, s.text) == 0, "plain '%s' vs streamed '%s' (%s)",
              text ? text : "(null)", s.text, sampling);
    CHECK(text && strlen(text) > 0);
    CHECK(strcmp(s.finish, json_string_value(json_object_get(c0, "finish_reason"))) == 0);
    json_decref(j);
    http_free(&a);
    http_free(&b);
}

TEST(chat_streamed_equals_plain) {
    if (!setup())
        return;
    chat_stream_vs_plain("\"temperature\":0");
    chat_stream_vs_plain("\"temperature\":0.9,\"top_p\":0.95,\"seed\":1234");
}

TEST(ollama_generate_and_chat_ndjson) {
    if (!setup())
        return;
    const char *plain = "{\"model\":\"qwen2\",\"prompt\":\"Hi\",\"stream\":false,"
                        "\"options\":{\"temperature\":0,\"num_predict\":12}}";
    http_resp a = http_post(port, "/api/generate", plain);
    CHECK_EQ_INT(a.status, 200);
    json_t *ja = http_json(&a);
    const char *text = json_string_value(json_object_get(ja, "response"));
    CHECK(json_is_true(json_object_get(ja, "done")));
    http_resp b = http_post(port, "/api/generate",
                            "{\"model\":\"qwen2\",\"prompt\":\"Hi\","
                            "\"options\":{\"temperature\":0,\"num_predict\":12}}");
    CHECK_EQ_INT(b.status, 200);
    CHECK(strstr(http_header(&b, "Content-Type"), "application/x-ndjson"));
    json_t *last = NULL;
    stream_text s = parse_ndjson(b.body ? b.body : "", false, &last);
    CHECK(s.framing_ok && s.done_seen && s.chunks >= 2);
    CHECK_MSG(text && strcmp(text, s.text) == 0, "plain '%s' vs streamed '%s'",
              text ? text : "(null)", s.text);
    const char *fields[] = {"total_duration",       "load_duration", "prompt_eval_count",
                            "prompt_eval_duration", "eval_count",    "eval_duration"};
    for (size_t i = 0; i < 6; i++) {
        CHECK_MSG(json_is_integer(json_object_get(last, fields[i])), "streamed: no %s", fields[i]);
        CHECK_MSG(json_is_integer(json_object_get(ja, fields[i])), "plain: no %s", fields[i]);
    }
    CHECK_EQ_INT(json_integer_value(json_object_get(last, "eval_count")), 12);
    CHECK(json_integer_value(json_object_get(last, "total_duration")) >=
          json_integer_value(json_object_get(last, "eval_duration")));
    CHECK(strcmp(json_string_value(json_object_get(last, "done_reason")), "length") == 0);
    json_decref(last);
    json_decref(ja);
    http_free(&a);
    http_free(&b);

    http_resp c = http_post(port, "/api/chat",
                            "{\"model\":\"qwen2\",\"messages\":[{\"role\":\"user\",\"content\":"
                            "\"Hello\"}],\"options\":{\"temperature\":0,\"num_predict\":10}}");
    CHECK_EQ_INT(c.status, 200);
    s = parse_ndjson(c.body ? c.body : "", true, &last);
    CHECK(s.framing_ok && s.done_seen && strlen(s.text) > 0);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(last, "message"), "role")),
                 "assistant") == 0);
    json_decref(last);
    http_free(&c);
    /* the same conversation through OpenAI's route gives the same text */
    http_resp d = http_post(port, "/v1/chat/completions",
                            "{\"model\":\"qwen2\",\"messages\":[{\"role\":\"user\",\"content\":"
                            "\"Hello\"}],\"temperature\":0,\"max_tokens\":10}");
    json_t *jd = http_json(&d);
    const char *t2 = json_string_value(json_object_get(
        json_object_get(json_array_get(json_object_get(jd, "choices"), 0), "message"), "content"));
    CHECK_MSG(t2 && strcmp(t2, s.text) == 0, "ollama '%s' vs openai '%s'", s.text, t2 ? t2 : "");
    json_decref(jd);
    http_free(&d);
}

TEST(prompt_longer_than_context) {
    if (!setup())
        return;
    char body[8192] = "{\"model\":\"gpt2\",\"prompt\":\"";
    for (int i = 0; i < 300; i++)
        strcat(body, "the ");
    strcat(body, "\"}");
    http_resp r = http_post(port, "/v1/completions", body);
    CHECK_EQ_INT(r.status, 400);
    json_t *j = http_json(&r);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                 "context_length_exceeded") == 0);
    json_decref(j);
    http_free(&r);
    /* an empty prompt for a model without BOS: nothing to start from */
    r = http_post(port, "/v1/completions", "{\"model\":\"gpt2\",\"prompt\":\"\"}");
    CHECK_EQ_INT(r.status, 400);
    CHECK(strstr(http_error_message(&r), "empty"));
    http_free(&r);
}

/* A client that reads the first bytes of a stream and hangs up. */
static size_t hang_up(char *p, size_t size, size_t n, void *ctx) {
    (void)p;
    int *calls = ctx;
    (*calls)++;
    return *calls > 1 ? 0 : size * n; /* returning less than given aborts the transfer */
}

TEST(client_disconnect_cancels) {
    if (!setup())
        return;
    for (int round = 0; round < 3; round++) {
        char url[128];
        snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/chat/completions", (unsigned)port);
        const char *body = "{\"model\":\"qwen2\",\"messages\":[{\"role\":\"user\",\"content\":"
                           "\"Tell a long story\"}],\"max_tokens\":200,\"temperature\":1,"
                           "\"stream\":true}";
        CURL *c = curl_easy_init();
        int calls = 0;
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, hang_up);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &calls);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
        CURLcode rc = curl_easy_perform(c);
        CHECK(rc == CURLE_WRITE_ERROR || rc == CURLE_OK);
        curl_easy_cleanup(c);
    }
    /* the server is healthy and the model free for the next request */
    http_resp h = http_get(port, "/health");
    CHECK_EQ_INT(h.status, 200);
    http_free(&h);
    http_resp r = http_post(port, "/v1/chat/completions",
                            "{\"model\":\"qwen2\",\"messages\":[{\"role\":\"user\",\"content\":"
                            "\"Hi\"}],\"max_tokens\":5,\"temperature\":0}");
    CHECK_EQ_INT(r.status, 200);
    http_free(&r);
    const char *needles[] = {"ia_streams_active 0", NULL};
    http_resp m = metrics_when(port, needles);
    const char *cancelled = m.body ? strstr(m.body, "\nia_requests_cancelled_total ") : NULL;
    /* 200 tokens take far longer than noticing the hang-up (the stream's
     * next write fails), so at least one of the three was cut short */
    CHECK_MSG(cancelled && atol(cancelled + strlen("\nia_requests_cancelled_total ")) >= 1,
              "no generation was cancelled");
    CHECK(m.body && strstr(m.body, "ia_streams_active 0"));
    CHECK(m.body && strstr(m.body, "ia_time_to_first_token_seconds_count"));
    http_free(&m);
}

TEST(seeded_sampling_repeats) {
    if (!setup())
        return;
    const char *body = "{\"model\":\"gpt2\",\"prompt\":\"Once\",\"max_tokens\":16,"
                       "\"temperature\":1.0,\"seed\":7}";
    http_resp a = http_post(port, "/v1/completions", body);
    http_resp b = http_post(port, "/v1/completions", body);
    json_t *ja = http_json(&a), *jb = http_json(&b);
    const char *ta = json_string_value(
        json_object_get(json_array_get(json_object_get(ja, "choices"), 0), "text"));
    const char *tb = json_string_value(
        json_object_get(json_array_get(json_object_get(jb, "choices"), 0), "text"));
    CHECK(ta && tb && strcmp(ta, tb) == 0);
    json_decref(ja);
    json_decref(jb);
    http_free(&a);
    http_free(&b);
}

TEST(zz_teardown) {
    ia_server_stop(srv);
    srv = NULL;
}
