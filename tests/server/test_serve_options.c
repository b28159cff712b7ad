/*
 * server/serve_options: `serve --dtype`, `--kv-cache` and `--context` load
 * every model as the one-shot commands do, over the real CLI and HTTP.
 *
 * - tiny BERT served with --dtype q8_0 answers, bit for bit, the embedding
 *   `embed --dtype q8_0` prints for the same text (and not the f32 one), and
 *   says so: "dtype" in /v1/models, TEI /info's model_dtype, Ollama's
 *   quantization_level; a `quantize` mix (q4_k_m) likewise, under its name;
 * - a decoder whose heads hold 32 values (the quant_interop GGUF: an int8 KV
 *   cache needs whole blocks) served with --kv-cache q8_0 --context 128
 *   beside tiny BERT gives the greedy completion of `generate --kv-cache q8_0
 *   --context 128` (which differs from the f32 cache's), lists kv_cache and
 *   context in /v1/models, while the encoder keeps f32 (it has no KV cache);
 * - bad values and options no served model can take are usage errors (exit
 *   status 2, one line on stderr naming the flag or the model), with the
 *   messages of the commands whose parsers serve shares.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "server_util.h"
#include "test_cli.h"

#define BERT "tests/fixtures/models/tiny-bert"
#define DECODER "tests/fixtures/quant_interop/model-f16.gguf"

static const char text[] = "content addressed models load the same";
static const char prompt[] = "once upon a time";

/* ---- answers ---------------------------------------------------------------------------- */

/* `embed --dtype DTYPE` of the text (its one row). */
static float *cli_embedding(const char *dtype, size_t *dim) {
    *dim = 0;
    run_result r = RUN("embed", "--model", test_source_path(BERT), "--dtype", dtype, "--threads",
                       "1", "--format", "jsonl", text);
    EXPECT(r, 0);
    json_t *j = r.status == 0 ? json_loads(r.out, 0, NULL) : NULL;
    CHECK_MSG(json_is_array(j), "embed --dtype %s printed %.200s", dtype, r.out);
    float *v = json_floats(j, dim);
    json_decref(j);
    run_free(&r);
    return v;
}

static bool same_bits(const float *a, size_t na, const float *b, size_t nb) {
    return a && b && na == nb && na > 0 && memcmp(a, b, na * sizeof *a) == 0;
}

/* `generate --kv-cache KV --context 128`'s greedy text (malloc'd). */
static char *cli_completion(const char *kv) {
    run_result r = RUN("generate", "--model", test_source_path(DECODER), "--kv-cache", kv,
                       "--context", "128", "--prompt", prompt, "--temperature", "0", "--max-tokens",
                       "12", "--threads", "1", "--json");
    EXPECT(r, 0);
    json_t *j = r.status == 0 ? json_loads(r.out, 0, NULL) : NULL;
    const char *t = json_string_value(json_object_get(j, "text"));
    CHECK_MSG(t != NULL, "generate --kv-cache %s printed %.200s", kv, r.out);
    char *out = strdup(t ? t : "(none)");
    json_decref(j);
    run_free(&r);
    return out;
}

/* The server's greedy /v1/completions text for the prompt (malloc'd). */
static char *served_completion(uint16_t port, const char *model) {
    json_t *b = json_pack("{s:s, s:s, s:i, s:f}", "model", model, "prompt", prompt, "max_tokens",
                          12, "temperature", 0.0);
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    http_resp r = http_post(port, "/v1/completions", body);
    free(body);
    CHECK_MSG(r.status == 200, "completion: %ld %s", r.status, r.body ? r.body : "");
    json_t *j = r.status == 200 ? http_json(&r) : NULL;
    const char *t = json_string_value(
        json_object_get(json_array_get(json_object_get(j, "choices"), 0), "text"));
    char *out = strdup(t ? t : "(none)");
    json_decref(j);
    http_free(&r);
    return out;
}

/* A GET's JSON body (caller decrefs). */
static json_t *get_json(uint16_t port, const char *path) {
    http_resp r = http_get(port, path);
    CHECK_MSG(r.status == 200, "GET %s: %ld %s", path, r.status, r.body ? r.body : "");
    json_t *j = r.status == 200 ? http_json(&r) : NULL;
    http_free(&r);
    return j;
}

/* A string field of the /v1/models entry with this id ("" when absent). */
static const char *model_field(json_t *models, const char *id, const char *field) {
    json_t *data = json_object_get(models, "data"), *e;
    size_t i;
    json_array_foreach(data, i, e) {
        const char *eid = json_string_value(json_object_get(e, "id"));
        if (eid && strcmp(eid, id) == 0) {
            const char *v = json_string_value(json_object_get(e, field));
            return v ? v : "";
        }
    }
    return "";
}

#define CHECK_STR(got, want) \
    CHECK_MSG(strcmp((got), (want)) == 0, "%s is '%s', wanted '%s'", #got, (got), (want))

/* ---- the cases -------------------------------------------------------------------------- */

TEST(dtype_q8_0_embeddings_equal_embed_cli) {
    if (!getenv("IA_CLI"))
        SKIP("IA_CLI is not set");
    size_t dq = 0, df = 0, ds = 0;
    float *want = cli_embedding("q8_0", &dq), *f32 = cli_embedding("f32", &df);
    CHECK_MSG(want && f32 && dq == df && !same_bits(want, dq, f32, df),
              "q8_0 and f32 embeddings must differ for the test to mean anything");
    const char *args[] = {"--port",  "0",    "--threads", "1", "--model", test_source_path(BERT),
                          "--dtype", "q8_0", NULL};
    served s;
    if (serve_start(&s, args)) {
        float *got = http_embedding(s.port, "tiny-bert", text, &ds);
        CHECK_MSG(same_bits(got, ds, want, dq), "served q8_0 embedding differs from embed's");
        CHECK(!same_bits(got, ds, f32, df));
        free(got);
        json_t *models = get_json(s.port, "/v1/models");
        CHECK_STR(model_field(models, "tiny-bert", "dtype"), "q8_0");
        json_decref(models);
        json_t *info = get_json(s.port, "/info");
        const char *md = json_string_value(json_object_get(info, "model_dtype"));
        CHECK_STR(md ? md : "(none)", "q8_0");
        json_decref(info);
        json_t *tags = get_json(s.port, "/api/tags");
        const char *level = json_string_value(json_object_get(
            json_object_get(json_array_get(json_object_get(tags, "models"), 0), "details"),
            "quantization_level"));
        CHECK_STR(level ? level : "(none)", "Q8_0");
        json_decref(tags);
    }
    serve_stop(&s);
    free(want);
    free(f32);
}

TEST(dtype_mix_and_float_names) {
    if (!getenv("IA_CLI"))
        SKIP("IA_CLI is not set");
    /* a `quantize` mix, under its own name, as `embed --dtype q4_k_m` loads it */
    size_t dw = 0, ds = 0;
    float *want = cli_embedding("q4_k_m", &dw);
    char named[4200];
    snprintf(named, sizeof named, "mini=%s", test_source_path(BERT));
    const char *args[] = {"--port", "0",       "--threads", "1", "--model",
                          named,    "--dtype", "q4_k_m",    NULL};
    served s;
    if (serve_start(&s, args)) {
        float *got = http_embedding(s.port, "mini", text, &ds);
        CHECK_MSG(same_bits(got, ds, want, dw), "served q4_k_m embedding differs from embed's");
        free(got);
        json_t *models = get_json(s.port, "/v1/models");
        CHECK_STR(model_field(models, "mini", "dtype"), "q4_k_m");
        json_decref(models);
        json_t *info = get_json(s.port, "/info");
        const char *md = json_string_value(json_object_get(info, "model_dtype"));
        CHECK_STR(md ? md : "(none)", "q4_k_m");
        json_decref(info);
    }
    serve_stop(&s);
    free(want);

    /* float types in TEI's spelling; fp32 is f32 */
    static const char *const dtypes[][2] = {{"bf16", "bfloat16"}, {"fp32", "float32"}};
    for (size_t i = 0; i < 2; i++) {
        const char *a2[] = {"--port",  "0",          "--threads",
                            "1",       "--model",    test_source_path(BERT),
                            "--dtype", dtypes[i][0], NULL};
        if (serve_start(&s, a2)) {
            json_t *info = get_json(s.port, "/info");
            const char *md = json_string_value(json_object_get(info, "model_dtype"));
            CHECK_STR(md ? md : "(none)", dtypes[i][1]);
            json_decref(info);
        }
        serve_stop(&s);
    }
}

TEST(kv_cache_q8_0_completion_equals_generate_cli) {
    if (!getenv("IA_CLI"))
        SKIP("IA_CLI is not set");
    char *want = cli_completion("q8_0"), *f32 = cli_completion("f32");
    CHECK_MSG(strcmp(want, f32) != 0, "q8_0 and f32 caches must differ here: '%s'", want);
    size_t de = 0, ds = 0;
    float *emb_f32 = cli_embedding("f32", &de);
    const char *args[] = {"--port",     "0",
                          "--threads",  "1",
                          "--model",    test_source_path(BERT),
                          "--model",    test_source_path(DECODER),
                          "--kv-cache", "q8_0",
                          "--context",  "128",
                          NULL};
    served s;
    if (serve_start(&s, args)) {
        char *got = served_completion(s.port, "model-f16");
        CHECK_MSG(strcmp(got, want) == 0, "served '%s', generate --kv-cache q8_0 '%s'", got, want);
        free(got);
        /* the encoder beside it has no KV cache: loaded as without the options */
        float *emb = http_embedding(s.port, "tiny-bert", text, &ds);
        CHECK_MSG(same_bits(emb, ds, emb_f32, de), "the encoder's embedding changed");
        free(emb);
        json_t *models = get_json(s.port, "/v1/models");
        CHECK_STR(model_field(models, "model-f16", "dtype"), "f32");
        CHECK_STR(model_field(models, "model-f16", "kv_cache"), "q8_0");
        CHECK_STR(model_field(models, "tiny-bert", "dtype"), "f32");
        CHECK_STR(model_field(models, "tiny-bert", "kv_cache"), "");
        json_t *data = json_object_get(models, "data"), *e;
        size_t i;
        json_int_t context = 0;
        json_array_foreach(data, i, e) {
            const char *id = json_string_value(json_object_get(e, "id"));
            if (id && strcmp(id, "model-f16") == 0)
                context = json_integer_value(json_object_get(e, "context"));
        }
        CHECK_EQ_INT(context, 128);
        json_decref(models);
    }
    serve_stop(&s);
    free(want);
    free(f32);
    free(emb_f32);
}

/* A serve that must fail at once with a usage error: status 2, one line on
 * stderr holding each needle, nothing served. */
static void expect_usage_error(const char *const *args, const char *n1, const char *n2) {
    run_result r = run_cli(args);
    size_t lines = 0;
    for (const char *p = r.err; *p; p++)
        lines += *p == '\n';
    CHECK_MSG(r.status == 2 && lines == 1 && strstr(r.err, n1) && (!n2 || strstr(r.err, n2)) &&
                  !strstr(r.out, "serving on"),
              "exit %d, stdout '%s', stderr '%s' (wanted '%s' and '%s')", r.status, r.out, r.err,
              n1, n2 ? n2 : "");
    run_free(&r);
}

/* stderr without "ipfs-accelerate CMD: " and the "(see ...)" tail. */
static char *message_of(const char *err) {
    const char *p = strstr(err, ": ");
    const char *end = strstr(err, " (see ");
    if (!p || !end || end < p)
        return strdup(err);
    return strndup(p + 2, (size_t)(end - p - 2));
}

TEST(bad_values_are_usage_errors) {
    if (!getenv("IA_CLI"))
        SKIP("IA_CLI is not set");
    const char *bert = test_source_path(BERT), *dec = test_source_path(DECODER);
    /* values no command takes */
    expect_usage_error(
        (const char *[]){"serve", "--port", "0", "--model", bert, "--dtype", "q9_9", NULL},
        "--dtype", "'q9_9'");
    expect_usage_error(
        (const char *[]){"serve", "--port", "0", "--model", dec, "--kv-cache", "q4_0", NULL},
        "--kv-cache", "'q4_0'");
    expect_usage_error(
        (const char *[]){"serve", "--port", "0", "--model", dec, "--context", "0", NULL},
        "--context", "'0'");
    /* a model whose one-shot command refuses the value: named */
    expect_usage_error(
        (const char *[]){"serve", "--port", "0", "--model", bert, "--dtype", "f16", NULL}, bert,
        "'f16'");
    expect_usage_error((const char *[]){"serve", "--port", "0", "--model", bert, "--model", dec,
                                        "--dtype", "q4_k_m", NULL},
                       dec, "'q4_k_m'");
    /* a decoder's option with no decoder to take it */
    expect_usage_error(
        (const char *[]){"serve", "--port", "0", "--model", bert, "--kv-cache", "q8_0", NULL},
        "--kv-cache", bert);

    /* the messages are the one-shot commands' own */
    run_result a = RUN("serve", "--model", dec, "--kv-cache", "q4_0");
    run_result b = RUN("generate", "--model", dec, "--prompt", "x", "--kv-cache", "q4_0");
    char *ma = message_of(a.err), *mb = message_of(b.err);
    CHECK_MSG(b.status == 2 && strcmp(ma, mb) == 0, "serve: '%s'; generate: '%s'", ma, mb);
    free(ma);
    free(mb);
    run_free(&a);
    run_free(&b);
    a = RUN("serve", "--model", bert, "--dtype", "f16");
    b = RUN("embed", "--model", bert, "--dtype", "f16", "x");
    mb = message_of(b.err);
    CHECK_MSG(b.status == 2 && strstr(a.err, mb), "serve: '%s'; embed: '%s'", a.err, mb);
    free(mb);
    run_free(&a);
    run_free(&b);
}
