/*
 * The ovms provider over KServe v2 inference (`api: kserve`): requests are
 * one BYTES tensor with the configured input name, answers are read from the
 * output tensor (FP32 rows for embeddings, a BYTES string for text), against
 * the fake provider's /v2/models/{m}/infer over loopback HTTP; the parser's
 * edge cases directly (nested data, 1-D shapes, shape/data mismatch, wrong
 * datatype, missing output); the YAML keys (`api`, `kserve`) and their
 * errors; an OVMS endpoint without `api` still speaks /v3.
 */
#define _GNU_SOURCE
#include <jansson.h>

#include "test.h"

#include "api_fixture.h"

static const char *const CFG = "endpoints:\n"
                               "  - name: kserve\n"
                               "    provider: ovms\n"
                               "    base_url: '@URL@'\n"
                               "    api: kserve\n"
                               "    models: [bge-embed, textgen]\n"
                               "    retry: {max_attempts: 1}\n"
                               "  - name: custom\n"
                               "    provider: ovms\n"
                               "    base_url: '@URL@'\n"
                               "    api: kserve\n"
                               "    model: embed-query\n"
                               "    kserve: {input: query, output: embeddings}\n"
                               "    retry: {max_attempts: 1}\n"
                               "  - name: wrong-output\n"
                               "    provider: ovms\n"
                               "    base_url: '@URL@'\n"
                               "    api: kserve\n"
                               "    model: bge-embed\n"
                               "    kserve: {output: pooled}\n"
                               "    retry: {max_attempts: 1}\n"
                               "  - {name: v3, provider: ovms, base_url: '@URL@', model: m}\n";

static json_t *last_body(void) {
    char body[8192];
    fake_provider_last_body(api_fake(), body, sizeof body);
    return json_loads(body, 0, NULL);
}

TEST(kserve_embeddings) {
    api_env e;
    CHECK_OK(api_env_open(CFG, &e));
    if (!e.client)
        return;
    const char *texts[] = {"hello", "A", "xyz"};
    ia_api_request q = api_req(IA_API_EMBED, texts, 3);
    ia_api_result r;
    CHECK_OK(ia_api_call(e.client, "kserve", &q, &r));
    CHECK_EQ_INT(r.n_embeddings, 3);
    CHECK_EQ_INT(r.dim, 4);
    for (size_t i = 0; i < r.n_embeddings && r.dim == 4; i++) {
        CHECK_NEAR(r.embeddings[i * 4], (double)strlen(texts[i]), 0);
        CHECK_NEAR(r.embeddings[i * 4 + 1], (double)(unsigned char)texts[i][0], 0);
        CHECK_NEAR(r.embeddings[i * 4 + 2], 0.5, 0);
    }
    ia_api_result_free(&r);
    char path[256];
    fake_provider_last_path(api_fake(), path, sizeof path);
    CHECK(strcmp(path, "/v2/models/bge-embed/infer") == 0);
    json_t *b = last_body();
    json_t *in0 = json_array_get(json_object_get(b, "inputs"), 0);
    CHECK(strcmp(json_string_value(json_object_get(in0, "name")), "text") == 0);
    CHECK(strcmp(json_string_value(json_object_get(in0, "datatype")), "BYTES") == 0);
    CHECK_EQ_INT(json_integer_value(json_array_get(json_object_get(in0, "shape"), 0)), 3);
    CHECK(json_object_get(b, "outputs") == NULL);
    json_decref(b);

    /* the named input and output tensors */
    CHECK_OK(ia_api_call(e.client, "custom", &q, &r));
    CHECK_EQ_INT(r.n_embeddings, 3);
    ia_api_result_free(&r);
    b = last_body();
    in0 = json_array_get(json_object_get(b, "inputs"), 0);
    CHECK(strcmp(json_string_value(json_object_get(in0, "name")), "query") == 0);
    CHECK(strcmp(json_string_value(
                     json_object_get(json_array_get(json_object_get(b, "outputs"), 0), "name")),
                 "embeddings") == 0);
    json_decref(b);

    /* an output the servable lacks: its 400, not retried, naming the endpoint */
    int before = fake_provider_requests(api_fake());
    CHECK_ERR(ia_api_call(e.client, "wrong-output", &q, &r), IA_EIO, "Invalid output name");
    CHECK(strstr(ia_error_message(), "wrong-output") != NULL);
    CHECK_EQ_INT(r.failure, IA_API_FAIL_REFUSED);
    CHECK_EQ_INT(r.http_status, 400);
    CHECK_EQ_INT(fake_provider_requests(api_fake()) - before, 1);
    ia_api_result_free(&r);
    api_env_close(&e);
}

TEST(kserve_text) {
    api_env e;
    CHECK_OK(api_env_open(CFG, &e));
    if (!e.client)
        return;
    const char *texts[] = {"hello there"};
    ia_api_request q = api_req(IA_API_CHAT, texts, 1);
    q.model = "textgen";
    q.max_tokens = 7;
    ia_api_result r;
    CHECK_OK(ia_api_call(e.client, "kserve", &q, &r));
    CHECK(r.text && strcmp(r.text, "echo: hello there") == 0);
    ia_api_result_free(&r);
    json_t *b = last_body();
    CHECK_EQ_INT(
        json_integer_value(json_object_get(json_object_get(b, "parameters"), "max_tokens")), 7);
    json_decref(b);
    q.op = IA_API_COMPLETE;
    CHECK_OK(ia_api_call(e.client, "kserve", &q, &r));
    CHECK(r.text && strcmp(r.text, "echo: hello there") == 0);
    ia_api_result_free(&r);

    /* what KServe cannot carry is refused before sending */
    int before = fake_provider_requests(api_fake());
    q.op = IA_API_CHAT;
    q.stream = true;
    CHECK_ERR(ia_api_call(e.client, "kserve", &q, &r), IA_EIO, "does not support streaming");
    ia_api_result_free(&r);
    q.stream = false;
    q.system = "be brief";
    CHECK_ERR(ia_api_call(e.client, "kserve", &q, &r), IA_EIO, "system prompt");
    ia_api_result_free(&r);
    CHECK_EQ_INT(fake_provider_requests(api_fake()), before);

    /* the same provider without `api` still speaks OpenAI's format under /v3 */
    q.system = NULL;
    CHECK_OK(ia_api_call(e.client, "v3", &q, &r));
    CHECK(r.text && strcmp(r.text, "echo: hello there") == 0);
    ia_api_result_free(&r);
    char path[256];
    fake_provider_last_path(api_fake(), path, sizeof path);
    CHECK(strcmp(path, "/v3/chat/completions") == 0);
    api_env_close(&e);
}

static ia_status parse(ia_api_op op, const char *output, const char *body, ia_api_result *r) {
    memset(r, 0, sizeof *r);
    ia_error_clear();
    return ia_kserve_parse(op, output, body, strlen(body), r);
}

TEST(kserve_parser_edges) {
    ia_api_result r;
    /* nested data, FP16, the numeric output chosen over a BYTES one */
    CHECK_OK(parse(IA_API_EMBED, NULL,
                   "{\"outputs\":[{\"name\":\"t\",\"shape\":[1],\"datatype\":\"BYTES\","
                   "\"data\":[\"x\"]},{\"name\":\"e\",\"shape\":[2,2],\"datatype\":\"FP16\","
                   "\"data\":[[0.5,1.5],[2.5,-1]]}]}",
                   &r));
    CHECK_EQ_INT(r.n_embeddings, 2);
    CHECK_EQ_INT(r.dim, 2);
    if (r.embeddings)
        CHECK_NEAR(r.embeddings[3], -1, 0);
    ia_api_result_free(&r);
    /* a 1-D output is one row */
    CHECK_OK(parse(IA_API_EMBED, NULL,
                   "{\"outputs\":[{\"name\":\"e\",\"shape\":[3],\"datatype\":\"FP32\","
                   "\"data\":[1,2,3]}]}",
                   &r));
    CHECK_EQ_INT(r.n_embeddings, 1);
    CHECK_EQ_INT(r.dim, 3);
    ia_api_result_free(&r);
    CHECK_ERR(parse(IA_API_EMBED, NULL,
                    "{\"outputs\":[{\"name\":\"e\",\"shape\":[2,3],\"datatype\":\"FP32\","
                    "\"data\":[1,2,3,4,5]}]}",
                    &r),
              IA_EPARSE, "has 5 values; its shape says 6");
    ia_api_result_free(&r);
    CHECK_ERR(parse(IA_API_EMBED, NULL,
                    "{\"outputs\":[{\"name\":\"e\",\"shape\":[1,2],\"datatype\":\"FP32\","
                    "\"data\":[1,2,3]}]}",
                    &r),
              IA_EPARSE, "more values than its shape");
    ia_api_result_free(&r);
    CHECK_ERR(parse(IA_API_EMBED, NULL,
                    "{\"outputs\":[{\"name\":\"e\",\"shape\":[65536,65536],\"datatype\":\"FP32\","
                    "\"data\":[1]}]}",
                    &r),
              IA_EPARSE, "too large");
    ia_api_result_free(&r);
    CHECK_ERR(parse(IA_API_CHAT, "text_output",
                    "{\"outputs\":[{\"name\":\"text_output\",\"shape\":[1],\"datatype\":\"FP32\","
                    "\"data\":[1]}]}",
                    &r),
              IA_EPARSE, "datatype is FP32");
    ia_api_result_free(&r);
    CHECK_ERR(parse(IA_API_CHAT, "answer",
                    "{\"outputs\":[{\"name\":\"text_output\",\"shape\":[1],\"datatype\":\"BYTES\","
                    "\"data\":[\"x\"]}]}",
                    &r),
              IA_EPARSE, "no output 'answer'");
    ia_api_result_free(&r);
    CHECK_ERR(parse(IA_API_CHAT, NULL, "{\"error\":\"Model not found\"}", &r), IA_EPARSE,
              "no outputs list");
    ia_api_result_free(&r);
    CHECK_ERR(parse(IA_API_EMBED, NULL,
                    "{\"outputs\":[{\"name\":\"e\",\"shape\":[1,2],\"datatype\":\"FP32\","
                    "\"data\":[1,\"x\"]}]}",
                    &r),
              IA_EPARSE, "value 1 of the KServe output is not a number");
    ia_api_result_free(&r);
}

static ia_status parse_cfg(const char *yaml) {
    ia_api_config *cfg = NULL;
    ia_status st = ia_api_config_parse(yaml, strlen(yaml), "k.yaml", &cfg);
    ia_api_config_free(cfg);
    return st;
}

TEST(kserve_config) {
    ia_api_config *cfg = NULL;
    const char *ok = "endpoints:\n"
                     "  - {name: a, provider: ovms, base_url: 'http://h:8000', model: m,\n"
                     "     api: kserve, kserve: {input: in, output: out}}\n"
                     "  - {name: b, provider: ovms, base_url: 'http://h:8000', model: m, api: "
                     "openai}\n";
    CHECK_OK(ia_api_config_parse(ok, strlen(ok), "k.yaml", &cfg));
    if (cfg) {
        const ia_api_endpoint_config *a = ia_api_config_find(cfg, "a");
        const ia_api_endpoint_config *b = ia_api_config_find(cfg, "b");
        CHECK_EQ_INT(a->api, IA_API_WIRE_KSERVE);
        CHECK(strcmp(a->kserve_input, "in") == 0 && strcmp(a->kserve_output, "out") == 0);
        CHECK_EQ_INT(b->api, IA_API_WIRE_DEFAULT);
        CHECK(b->kserve_input == NULL);
    }
    ia_api_config_free(cfg);
    CHECK_ERR(parse_cfg("endpoints:\n  - {name: a, provider: openai, base_url: 'http://h', model: "
                        "m, api: kserve}\n"),
              IA_EINVAL, "'api' is only for provider ovms");
    CHECK_ERR(parse_cfg("endpoints:\n  - {name: a, provider: ovms, base_url: 'http://h', model: "
                        "m, api: grpc}\n"),
              IA_EINVAL, "api must be openai");
    CHECK_ERR(parse_cfg("endpoints:\n  - {name: a, provider: ovms, base_url: 'http://h', model: "
                        "m, kserve: {inputs: x}}\n"),
              IA_EINVAL, "unknown field 'kserve.inputs'");
}
