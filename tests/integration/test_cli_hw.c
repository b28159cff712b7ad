/*
 * End-to-end tests of `hw`, `models classify|list|plan` and `--device`,
 * running the real binary: output shapes users and scripts rely on, and one
 * clear error line (exit 1, or 2 for usage) for bad input.
 */
#include "test.h"

#include <jansson.h>

#include "test_cli.h"

static json_t *parse(const run_result *r) {
    json_error_t err;
    json_t *j = json_loads(r->out, 0, &err);
    CHECK_MSG(j != NULL, "not JSON (%s): %s", err.text, r->out);
    return j;
}

static const char *str_at(json_t *o, const char *key) {
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

TEST(hw_live_text_and_json) {
    run_result r = RUN("hw");
    EXPECT(r, 0);
    CHECK(strstr(r.out, "CPU ") && strstr(r.out, "Memory ") && strstr(r.out, "Probes"));
    CHECK(strstr(r.out, "nvidia") && strstr(r.out, "opencl"));
    run_free(&r);

    r = RUN("hw", "--json");
    EXPECT(r, 0);
    json_t *j = parse(&r);
    if (j) {
        json_t *cpu = json_object_get(j, "cpu");
        CHECK(json_integer_value(json_object_get(cpu, "logical_cores")) >= 1);
        CHECK(json_integer_value(json_object_get(json_object_get(j, "memory"), "total")) > 0);
        /* every probe says what it found or why not */
        json_t *probes = json_object_get(j, "probes"), *p;
        size_t i;
        CHECK(json_array_size(probes) >= 10);
        json_array_foreach(probes, i, p)
            CHECK_MSG(str_at(p, "message")[0], "probe %s: no message", str_at(p, "name"));
        json_decref(j);
    }
    run_free(&r);
}

TEST(hw_recorded_tree) {
    const char *root = test_source_path("tests/fixtures/hw/host-x86-numa");
    run_result r = RUN("hw", "--json", "--root", root);
    EXPECT(r, 0);
    json_t *j = parse(&r);
    if (j) {
        json_t *cpu = json_object_get(j, "cpu");
        CHECK_EQ_INT(json_integer_value(json_object_get(cpu, "sockets")), 2);
        CHECK_EQ_INT(json_array_size(json_object_get(j, "numa")), 2);
        /* a recorded tree never shows this machine's devices */
        CHECK_EQ_INT(json_array_size(json_object_get(j, "devices")), 0);
        json_t *probes = json_object_get(j, "probes"), *p;
        size_t i;
        json_array_foreach(probes, i, p) if (strcmp(str_at(p, "name"), "nvidia") == 0) CHECK_MSG(
            strstr(str_at(p, "message"), "recorded tree"), "nvidia: %s", str_at(p, "message"));
        json_decref(j);
    }
    run_free(&r);

    r = RUN("hw", "--bogus");
    EXPECT(r, 2);
    run_free(&r);
}

TEST(models_classify) {
    run_result r =
        RUN("models", "classify", test_source_path("tests/fixtures/models/tiny-bert"), "--json");
    EXPECT(r, 0);
    json_t *j = parse(&r);
    if (j) {
        CHECK(strcmp(str_at(j, "family"), "text-encoder") == 0);
        CHECK(strcmp(str_at(j, "model_type"), "bert") == 0);
        CHECK(strcmp(str_at(j, "supported_on"), "cpu") == 0);
        json_decref(j);
    }
    run_free(&r);

    r = RUN("models", "classify", test_source_path("tests/fixtures/gguf/llama_tiny.gguf"));
    EXPECT(r, 0);
    CHECK(strstr(r.out, "text-decoder") && strstr(r.out, "not by this engine yet"));
    run_free(&r);

    /* config.json given directly, inference without the registry */
    r = RUN("models", "classify", "--no-registry",
            test_source_path("tests/fixtures/models/tiny-distilbert/config.json"));
    EXPECT(r, 0);
    CHECK(strstr(r.out, "text-encoder"));
    run_free(&r);

    r = RUN("models", "classify", "/nonexistent/dir");
    EXPECT(r, 1);
    CHECK(strstr(r.err, "/nonexistent/dir") && !strchr(strchr(r.err, '\n') + 1, '\n'));
    run_free(&r);

    r = RUN("models", "classify");
    EXPECT(r, 2);
    run_free(&r);
}

TEST(models_list) {
    run_result r = RUN("models", "list", "--supported", "--json");
    EXPECT(r, 0);
    json_t *j = parse(&r);
    if (j) {
        CHECK_EQ_INT(json_array_size(j), 5);
        json_decref(j);
    }
    run_free(&r);

    r = RUN("models", "list", "--family", "audio");
    EXPECT(r, 0);
    CHECK(strstr(r.out, "whisper") && strstr(r.out, "wav2vec2") && !strstr(r.out, "\nbert "));
    run_free(&r);

    r = RUN("models", "list");
    EXPECT(r, 0);
    size_t lines = 0;
    for (const char *p = r.out; *p; p++)
        lines += *p == '\n';
    CHECK_MSG(lines > 300, "%zu rows", lines);
    run_free(&r);

    r = RUN("models", "list", "--family", "robots");
    EXPECT(r, 2);
    run_free(&r);
}

TEST(models_plan) {
    const char *tiny = test_source_path("tests/fixtures/models/tiny-bert");
    run_result r = RUN("models", "plan", "--model", tiny, "--batch", "8", "--seq", "32", "--json");
    EXPECT(r, 0);
    json_t *j = parse(&r);
    if (j) {
        CHECK(strcmp(str_at(j, "device"), "cpu") == 0);
        json_t *mem = json_object_get(j, "memory_bytes");
        json_int_t total = json_integer_value(json_object_get(mem, "total"));
        CHECK(total > 0);
        CHECK_EQ_INT(total, json_integer_value(json_object_get(mem, "weights")) +
                                json_integer_value(json_object_get(mem, "kv_cache")) +
                                json_integer_value(json_object_get(mem, "activations")) +
                                json_integer_value(json_object_get(mem, "overhead")));
        CHECK_EQ_INT(json_integer_value(json_object_get(j, "batch")), 8);
        json_decref(j);
    }
    run_free(&r);

    /* an unsupported model is a plan with the reason, not a failure */
    r = RUN("models", "plan", "--model", test_source_path("tests/fixtures/gguf/llama_tiny.gguf"));
    EXPECT(r, 0);
    CHECK(strstr(r.out, "kv cache") && strstr(r.out, "not supported by this engine yet"));
    run_free(&r);

    r = RUN("models", "plan", "--model", tiny, "--dtype", "q17");
    EXPECT(r, 1);
    CHECK(strstr(r.err, "dtype 'q17'"));
    run_free(&r);

    r = RUN("models", "plan");
    EXPECT(r, 2);
    run_free(&r);
}

TEST(embed_device) {
    const char *tiny = test_source_path("tests/fixtures/models/tiny-bert");
    run_result r = RUN("embed", "--model", tiny, "--device", "cpu", "hello");
    EXPECT(r, 0);
    run_free(&r);

    r = RUN("embed", "--model", tiny, "--device", "auto", "hello");
    EXPECT(r, 0);
    run_free(&r);

    r = RUN("embed", "--model", tiny, "--device", "gpu0", "hello");
    EXPECT(r, 2);
    CHECK(strstr(r.err, "device 'gpu0'"));
    run_free(&r);

    /* A device kind this build's engine lacks: refused with the reason (or,
     * on a machine without one, because there is none). */
    r = RUN("embed", "--model", tiny, "--device", "cuda:0", "hello");
    EXPECT(r, 1);
    CHECK_MSG(strstr(r.err, "no cuda backend") || strstr(r.err, "no such device"), "%s", r.err);
    run_free(&r);

    r = RUN("search", "--model", tiny, "--device", "cuda", "--query", "q", "a", "b");
    EXPECT(r, 1);
    run_free(&r);
}
