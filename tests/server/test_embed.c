/*
 * The embedding routes over real HTTP against the tiny BERT fixture and,
 * when IA_MODEL_CACHE has it, the real all-MiniLM-L6-v2: OpenAI
 * /v1/embeddings (one string, a list, token ids, base64, usage), TEI /embed,
 * /tokenize and /info, Ollama /api/embed, truncation and the too-long 400,
 * and batching that is invisible: many concurrent requests (dynamic batches
 * on the server) give bit for bit the vectors of ia_embedder_embed called one
 * text at a time.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "ia/runtime.h"
#include "ia/tokenize.h"
#include "server_util.h"

#define BERT "tests/fixtures/models/tiny-bert"

static const char *texts[] = {
    "The quick brown fox jumps over the lazy dog.",
    "Hello",
    "IPFS names blocks by CID; 12345 and 3.14",
    "What is the capital of France?",
    "Café crème, naïve résumé: déjà vu!",
    "a b c d e f g",
    "Tokyo and Moscow are large cities",
    "x",
};
#define N_TEXTS (sizeof texts / sizeof texts[0])

/* Reference vectors: ia_embedder_embed one text at a time. The kernels give
 * each row of a matrix product the same bits whatever the number of rows
 * (the matrix-vector routine for at most 4 rows included, see
 * src/kernels/cpu/gemm.c), so a request's bits never depend on its
 * batch-mates and the server does not pad tiny batches. For texts of 4
 * tokens or fewer the reference is still taken with a longer text beside
 * it (the solo result within 1e-6 of it); both have the same bits now, and
 * every text must equal that reference exactly. */
static float *reference(const char *dir, size_t *dim) {
    ia_embedder_options o = ia_embedder_options_default();
    o.n_threads = 1;
    ia_embedder *emb = NULL;
    CHECK_OK(ia_embedder_load(dir, &o, &emb));
    if (!emb)
        return NULL;
    *dim = ia_embedder_dim(emb);
    size_t d = *dim;
    float *ref = malloc(N_TEXTS * d * sizeof(float)), *pair = malloc(2 * d * sizeof(float));
    for (size_t i = 0; i < N_TEXTS; i++) {
        CHECK_OK(ia_embedder_embed(emb, &texts[i], NULL, 1, ref + i * d));
        ia_encoding enc = {0};
        CHECK_OK(ia_tokenizer_encode(ia_embedder_tokenizer(emb), texts[i], strlen(texts[i]), NULL,
                                     0, NULL, &enc));
        if (enc.len <= 4) {
            const char *two[2] = {texts[i], texts[0]};
            CHECK_OK(ia_embedder_embed(emb, two, NULL, 2, pair));
            for (size_t k = 0; k < d; k++)
                CHECK_NEAR(ref[i * d + k], pair[k], 1e-6);
            memcpy(ref + i * d, pair, d * sizeof(float));
        }
        ia_encoding_free(&enc);
    }
    free(pair);
    ia_embedder_free(emb);
    return ref;
}

static bool row_equals(json_t *arr, const float *want, size_t dim) {
    if (json_array_size(arr) != dim)
        return false;
    for (size_t k = 0; k < dim; k++) {
        float got = (float)json_real_value(json_array_get(arr, k));
        if (memcmp(&got, &want[k], sizeof got) != 0)
            return false;
    }
    return true;
}

static int b64val(char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decodes base64 into out (n bytes expected); false on a length mismatch. */
static bool b64_decode(const char *s, unsigned char *out, size_t n) {
    size_t len = strlen(s), k = 0;
    if (len % 4)
        return false;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        for (int j = 0; j < 4; j++)
            v[j] = s[i + j] == '=' ? 0 : b64val(s[i + j]);
        if (v[0] < 0 || v[1] < 0 || v[2] < 0 || v[3] < 0)
            return false;
        unsigned x = (unsigned)(v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3]);
        unsigned char b[3] = {(unsigned char)(x >> 16), (unsigned char)(x >> 8), (unsigned char)x};
        for (int j = 0; j < 3 && k < n; j++)
            if (s[i + 1 + j] != '=' || j == 0)
                out[k++] = b[j];
    }
    return k == n;
}

static char *embed_body(const char *model, size_t first, size_t n, bool base64) {
    json_t *in = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(in, json_string(texts[(first + i) % N_TEXTS]));
    json_t *b = json_pack("{s:s, s:o, s:s}", "model", model, "input", in, "encoding_format",
                          base64 ? "base64" : "float");
    char *s = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    return s;
}

TEST(openai_embeddings_shapes) {
    size_t dim = 0;
    float *ref = reference(test_source_path(BERT), &dim);
    const char *models[] = {test_source_path(BERT)};
    ia_server *srv = start_server(models, 1, NULL);
    if (!srv || !ref) {
        free(ref);
        ia_server_stop(srv);
        return;
    }
    uint16_t port = ia_server_port(srv);
    /* one string */
    char body[512];
    snprintf(body, sizeof body, "{\"model\":\"tiny-bert\",\"input\":\"%s\"}", texts[0]);
    http_resp r = http_post(port, "/v1/embeddings", body);
    CHECK_EQ_INT(r.status, 200);
    CHECK(strstr(http_header(&r, "Content-Type"), "application/json"));
    json_t *j = http_json(&r);
    CHECK(strcmp(json_string_value(json_object_get(j, "object")), "list") == 0);
    CHECK(strcmp(json_string_value(json_object_get(j, "model")), "tiny-bert") == 0);
    json_t *d0 = json_array_get(json_object_get(j, "data"), 0);
    CHECK(strcmp(json_string_value(json_object_get(d0, "object")), "embedding") == 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(d0, "index")), 0);
    CHECK(row_equals(json_object_get(d0, "embedding"), ref, dim));
    json_t *usage = json_object_get(j, "usage");
    CHECK_EQ_INT(json_integer_value(json_object_get(usage, "prompt_tokens")), 12);
    CHECK_EQ_INT(json_integer_value(json_object_get(usage, "total_tokens")), 12);
    json_decref(j);
    http_free(&r);

    /* a list, base64 */
    char *b = embed_body("tiny-bert", 0, N_TEXTS, true);
    r = http_post(port, "/v1/embeddings", b);
    free(b);
    CHECK_EQ_INT(r.status, 200);
    j = http_json(&r);
    json_t *data = json_object_get(j, "data");
    CHECK_EQ_INT(json_array_size(data), N_TEXTS);
    float *got = malloc(dim * sizeof(float));
    for (size_t i = 0; i < json_array_size(data); i++) {
        json_t *e = json_object_get(json_array_get(data, i), "embedding");
        CHECK(json_is_string(e) &&
              b64_decode(json_string_value(e), (unsigned char *)got, dim * sizeof(float)));
        CHECK_MSG(memcmp(got, ref + i * dim, dim * sizeof(float)) == 0, "base64 row %zu differs",
                  i);
        CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(data, i), "index")), i);
    }
    free(got);
    json_decref(j);
    http_free(&r);

    /* token ids, as the expected.json of the fixture has them for text 1 ("Hello") */
    r = http_post(port, "/v1/embeddings", "{\"model\":\"tiny-bert\",\"input\":[2,388,3]}");
    CHECK_EQ_INT(r.status, 200);
    j = http_json(&r);
    CHECK(row_equals(json_object_get(json_array_get(json_object_get(j, "data"), 0), "embedding"),
                     ref + 1 * dim, dim));
    json_decref(j);
    http_free(&r);
    r = http_post(port, "/v1/embeddings",
                  "{\"model\":\"tiny-bert\",\"input\":[[2,388,3],[2,388,3]]}");
    CHECK_EQ_INT(r.status, 200);
    j = http_json(&r);
    CHECK_EQ_INT(json_array_size(json_object_get(j, "data")), 2);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(j, "usage"), "prompt_tokens")),
                 6);
    json_decref(j);
    http_free(&r);

    /* too long: 400 naming the limit (tiny-bert takes 24 tokens) */
    char lng[2048] = "{\"model\":\"tiny-bert\",\"input\":\"";
    for (int i = 0; i < 60; i++)
        strcat(lng, "word ");
    strcat(lng, "\"}");
    r = http_post(port, "/v1/embeddings", lng);
    CHECK_EQ_INT(r.status, 400);
    CHECK(strstr(http_error_message(&r), "at most 24"));
    http_free(&r);
    free(ref);
    ia_server_stop(srv);
}

TEST(tei_and_ollama_routes) {
    size_t dim = 0;
    float *ref = reference(test_source_path(BERT), &dim);
    const char *models[] = {test_source_path(BERT)};
    ia_server *srv = start_server(models, 1, NULL);
    if (!srv || !ref) {
        free(ref);
        ia_server_stop(srv);
        return;
    }
    uint16_t port = ia_server_port(srv);
    char body[512];
    snprintf(body, sizeof body, "{\"inputs\":[\"%s\",\"%s\"]}", texts[2], texts[3]);
    http_resp r = http_post(port, "/embed", body);
    CHECK_EQ_INT(r.status, 200);
    json_t *j = http_json(&r);
    CHECK_EQ_INT(json_array_size(j), 2);
    /* the fixture normalises, so TEI's default normalize=true changes nothing */
    CHECK(row_equals(json_array_get(j, 0), ref + 2 * dim, dim));
    CHECK(row_equals(json_array_get(j, 1), ref + 3 * dim, dim));
    json_decref(j);
    http_free(&r);

    /* TEI truncate: a long input is cut to the model's length instead of a 400 */
    char lng[2048] = "{\"inputs\":\"";
    for (int i = 0; i < 60; i++)
        strcat(lng, "word ");
    strcat(lng, "\"");
    char with_trunc[2100];
    snprintf(with_trunc, sizeof with_trunc, "%s,\"truncate\":true}", lng);
    strcat(lng, "}");
    r = http_post(port, "/embed", lng);
    CHECK_EQ_INT(r.status, 400);
    http_free(&r);
    r = http_post(port, "/embed", with_trunc);
    CHECK_EQ_INT(r.status, 200);
    http_free(&r);

    r = http_post(port, "/tokenize", "{\"inputs\":\"hello world\"}");
    CHECK_EQ_INT(r.status, 200);
    j = http_json(&r);
    json_t *toks = json_array_get(j, 0);
    CHECK_EQ_INT(json_array_size(toks), 4);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(toks, 0), "id")), 2);
    CHECK(json_is_true(json_object_get(json_array_get(toks, 0), "special")));
    CHECK(json_is_false(json_object_get(json_array_get(toks, 1), "special")));
    CHECK(strcmp(json_string_value(json_object_get(json_array_get(toks, 1), "text")), "hello") ==
          0);
    CHECK(json_is_true(json_object_get(json_array_get(toks, 3), "special")));
    json_decref(j);
    http_free(&r);
    r = http_post(port, "/tokenize", "{\"inputs\":\"hello world\",\"add_special_tokens\":false}");
    j = http_json(&r);
    CHECK_EQ_INT(json_array_size(json_array_get(j, 0)), 2);
    json_decref(j);
    http_free(&r);

    r = http_get(port, "/info");
    CHECK_EQ_INT(r.status, 200);
    j = http_json(&r);
    CHECK(strcmp(json_string_value(json_object_get(j, "model_id")), "tiny-bert") == 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "max_input_length")), 24);
    CHECK(json_object_get(json_object_get(j, "model_type"), "embedding") != NULL);
    json_decref(j);
    http_free(&r);

    snprintf(body, sizeof body, "{\"model\":\"tiny-bert\",\"input\":[\"%s\"]}", texts[4]);
    r = http_post(port, "/api/embed", body);
    CHECK_EQ_INT(r.status, 200);
    j = http_json(&r);
    CHECK(row_equals(json_array_get(json_object_get(j, "embeddings"), 0), ref + 4 * dim, dim));
    CHECK(json_integer_value(json_object_get(j, "total_duration")) > 0);
    CHECK(json_integer_value(json_object_get(j, "prompt_eval_count")) > 0);
    json_decref(j);
    http_free(&r);
    free(ref);
    ia_server_stop(srv);
}

/* ---- batching is invisible ----------------------------------------------------------------- */

typedef struct client {
    uint16_t port;
    const char *model;
    size_t first, n;
    int rounds;
    const float *ref;
    size_t dim;
    int mismatches, failures;
    const char *priority;
} client;

static void *client_main(void *p) {
    client *c = p;
    for (int round = 0; round < c->rounds; round++) {
        size_t first = c->first + (size_t)round;
        char *b = embed_body(c->model, first, c->n, false);
        http_resp r = http_do(c->port, NULL, "/v1/embeddings", b, c->priority, NULL);
        free(b);
        json_t *j = r.status == 200 ? json_loadb(r.body, r.len, 0, NULL) : NULL;
        json_t *data = json_object_get(j, "data");
        if (!j || json_array_size(data) != c->n) {
            c->failures++;
        } else {
            for (size_t i = 0; i < c->n; i++)
                if (!row_equals(json_object_get(json_array_get(data, i), "embedding"),
                                c->ref + ((first + i) % N_TEXTS) * c->dim, c->dim))
                    c->mismatches++;
        }
        json_decref(j);
        http_free(&r);
    }
    return NULL;
}

static void check_batching(const char *dir, const char *spec, const char *model) {
    size_t dim = 0;
    float *ref = reference(dir, &dim);
    const char *models[] = {spec};
    ia_server_options o = ia_server_options_default();
    o.batch_wait_us = 20000; /* wait long enough that concurrent requests share batches */
    o.max_batch_tokens = 512;
    ia_server *srv = start_server(models, 1, &o);
    if (!srv || !ref) {
        free(ref);
        ia_server_stop(srv);
        return;
    }
    enum { N = 16 };
    static const char *prio[] = {NULL, "X-Priority: high", "X-Priority: low", "X-Priority: normal"};
    pthread_t th[N];
    client cs[N];
    for (int i = 0; i < N; i++) {
        cs[i] =
            (client){ia_server_port(srv), model, (size_t)i, (size_t)(1 + i % 3), 4, ref, dim, 0, 0,
                     prio[i % 4]};
        pthread_create(&th[i], NULL, client_main, &cs[i]);
    }
    int mismatches = 0, failures = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        mismatches += cs[i].mismatches;
        failures += cs[i].failures;
    }
    CHECK_EQ_INT(failures, 0);
    CHECK_MSG(mismatches == 0, "%d vectors differ from the one-at-a-time reference", mismatches);
    /* and batches really had more than one request in them */
    http_resp m = http_get(ia_server_port(srv), "/metrics");
    char *line = m.body ? strstr(m.body, "ia_batch_sequences_bucket{le=\"1\"} ") : NULL;
    char *count = m.body ? strstr(m.body, "ia_batch_sequences_count ") : NULL;
    long ones = line ? atol(line + strlen("ia_batch_sequences_bucket{le=\"1\"} ")) : -1;
    long batches = count ? atol(count + strlen("ia_batch_sequences_count ")) : -1;
    CHECK(batches > 0);
    CHECK_MSG(batches < N * 4, "%ld batches for %d requests: nothing was batched", batches, N * 4);
    (void)ones;
    http_free(&m);
    free(ref);
    ia_server_stop(srv);
}

TEST(batching_is_invisible_tiny_bert) {
    check_batching(test_source_path(BERT), test_source_path(BERT), "tiny-bert");
}

TEST(batching_is_invisible_minilm) {
    /* found as tests/runtime/test_minilm.c finds it */
    char dir[4096], cfg[4200];
    const char *env = getenv("IA_DEFAULT_MODEL"), *cache = getenv("XDG_CACHE_HOME"),
               *home = getenv("HOME");
    if (env && *env)
        snprintf(dir, sizeof dir, "%s", env);
    else if (cache && *cache)
        snprintf(dir, sizeof dir, "%s/ipfs-accelerate/models/all-MiniLM-L6-v2", cache);
    else
        snprintf(dir, sizeof dir, "%s/.cache/ipfs-accelerate/models/all-MiniLM-L6-v2",
                 home ? home : "");
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    if (access(cfg, R_OK) != 0)
        SKIP("all-MiniLM-L6-v2 not found at %s (scripts/fetch-default-model.sh fetches it)", dir);
    char spec[4200];
    snprintf(spec, sizeof spec, "minilm=%s", dir);
    check_batching(dir, spec, "minilm");
}
