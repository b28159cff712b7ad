/*
 * The model server's HTTP shell over real HTTP (libcurl against an
 * in-process server on an ephemeral port): /health while loading and when
 * ready, routing (404, 405), OpenAI's error JSON for bad JSON, wrong types,
 * unknown and wrong-kind models, the body limit (413 by Content-Length and
 * for a chunked body), Bearer keys (401 without or with a wrong key, open
 * /health and /metrics, keys read from a file), X-Priority, a full queue
 * answering 429 with Retry-After while the server keeps serving, /metrics in
 * Prometheus text, start-up errors (duplicate ids, unsupported models), the
 * trustless gateway mounted under /ipfs/ (open even with keys), and the CLI (`serve --port 0`) as a
 * subprocess stopped by SIGTERM.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ia/ipfs.h"
#include "server_util.h"
#include "test_fs.h"

#define BERT "tests/fixtures/models/tiny-bert"
#define GPT2 "tests/fixtures/decoders/gpt2"

TEST(health_models_and_routing) {
    const char *models[] = {test_source_path(BERT), test_source_path(GPT2)};
    ia_server_options o = ia_server_options_default();
    o.load_async = true;
    ia_server *srv = start_server(models, 2, &o);
    if (!srv)
        return;
    uint16_t port = ia_server_port(srv);
    /* right after start the models may still load: 503 then, never anything else */
    http_resp h = http_get(port, "/health");
    CHECK(h.status == 503 || h.status == 200);
    http_free(&h);
    CHECK_OK(ia_server_wait_ready(srv, 60000));
    h = http_get(port, "/health");
    CHECK_EQ_INT(h.status, 200);
    json_t *j = http_json(&h);
    CHECK(j && strcmp(json_string_value(json_object_get(j, "status")), "ok") == 0);
    CHECK_EQ_INT(json_array_size(json_object_get(j, "models")), 2);
    json_decref(j);
    http_free(&h);

    http_resp m = http_get(port, "/v1/models");
    CHECK_EQ_INT(m.status, 200);
    j = http_json(&m);
    json_t *data = json_object_get(j, "data");
    CHECK_EQ_INT(json_array_size(data), 2);
    CHECK(strcmp(json_string_value(json_object_get(json_array_get(data, 0), "id")), "tiny-bert") ==
          0);
    CHECK(strcmp(json_string_value(json_object_get(json_array_get(data, 1), "id")), "gpt2") == 0);
    CHECK(json_integer_value(json_object_get(json_array_get(data, 0), "created")) > 1600000000);
    json_decref(j);
    http_free(&m);

    http_resp t = http_get(port, "/api/tags");
    CHECK_EQ_INT(t.status, 200);
    j = http_json(&t);
    CHECK_EQ_INT(json_array_size(json_object_get(j, "models")), 2);
    json_decref(j);
    http_free(&t);
    http_resp v = http_get(port, "/api/version");
    CHECK_EQ_INT(v.status, 200);
    CHECK(v.body && strstr(v.body, "\"version\""));
    http_free(&v);

    http_resp nf = http_get(port, "/nope");
    CHECK_EQ_INT(nf.status, 404);
    CHECK(strstr(http_error_message(&nf), "no route"));
    http_free(&nf);
    http_resp na = http_get(port, "/v1/embeddings");
    CHECK_EQ_INT(na.status, 405);
    http_free(&na);
    ia_server_stop(srv);
}

TEST(error_shapes) {
    const char *models[] = {test_source_path(BERT), test_source_path(GPT2)};
    ia_server *srv = start_server(models, 2, NULL);
    if (!srv)
        return;
    uint16_t port = ia_server_port(srv);
    struct {
        const char *path, *body;
        long status;
        const char *param, *needle;
    } cases[] = {
        {"/v1/embeddings", "{\"model\":\"tiny-bert\",\"input\":", 400, NULL, "not valid JSON"},
        {"/v1/embeddings", "[1,2]", 400, NULL, "JSON object"},
        {"/v1/embeddings", "", 400, NULL, "empty"},
        {"/v1/embeddings", "{\"input\":\"x\"}", 400, "model", "'model' is required"},
        {"/v1/embeddings", "{\"model\":\"nope\",\"input\":\"x\"}", 404, "model", "does not exist"},
        {"/v1/embeddings", "{\"model\":\"gpt2\",\"input\":\"x\"}", 400, "model",
         "not an embedding"},
        {"/v1/embeddings", "{\"model\":\"tiny-bert\",\"input\":5}", 400, "input", "must be"},
        {"/v1/embeddings", "{\"model\":\"tiny-bert\",\"input\":[]}", 400, "input", "empty"},
        {"/v1/embeddings", "{\"model\":\"tiny-bert\",\"input\":\"x\",\"encoding_format\":\"hex\"}",
         400, "encoding_format", "float or base64"},
        {"/v1/embeddings", "{\"model\":\"tiny-bert\",\"input\":[[1,99999]]}", 400, "input",
         "vocabulary"},
        {"/v1/embeddings", "{\"model\":\"tiny-bert\",\"input\":\"x\",\"dimensions\":7}", 400,
         "dimensions", "36-dimensional"},
        {"/v1/chat/completions", "{\"model\":\"tiny-bert\",\"messages\":[]}", 400, "messages",
         "non-empty"},
        {"/v1/chat/completions",
         "{\"model\":\"gpt2\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", 400,
         "messages", "no chat template"},
        {"/v1/completions", "{\"model\":\"gpt2\",\"prompt\":\"a\",\"temperature\":-1}", 400,
         "temperature", "must be from"},
        {"/v1/completions", "{\"model\":\"gpt2\",\"prompt\":\"a\",\"max_tokens\":1e99}", 400,
         "max_tokens", "integer"},
        {"/v1/completions", "{\"model\":\"gpt2\",\"prompt\":\"a\",\"n\":2}", 400, "n", "'n'"},
        {"/v1/completions", "{\"model\":\"gpt2\",\"prompt\":\"a\",\"max_tokens\":100000}", 400,
         "max_tokens", "at most"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        http_resp r = http_post(port, cases[i].path, cases[i].body);
        CHECK_MSG(r.status == cases[i].status, "case %zu: %ld %s", i, r.status,
                  r.body ? r.body : "");
        json_t *j = http_json(&r);
        json_t *e = json_object_get(j, "error");
        CHECK_MSG(json_is_object(e) && json_is_string(json_object_get(e, "message")) &&
                      json_is_string(json_object_get(e, "type")) && json_object_get(e, "param") &&
                      json_object_get(e, "code"),
                  "case %zu: not OpenAI's error shape: %s", i, r.body ? r.body : "");
        CHECK_MSG(strstr(http_error_message(&r), cases[i].needle), "case %zu: %s", i,
                  http_error_message(&r));
        if (cases[i].param) {
            const char *p = json_string_value(json_object_get(e, "param"));
            CHECK_MSG(p && strcmp(p, cases[i].param) == 0, "case %zu: param %s", i, p ? p : "null");
        }
        json_decref(j);
        http_free(&r);
    }
    /* Ollama and TEI errors in their own shapes */
    http_resp o = http_post(port, "/api/embed", "{\"input\":\"x\"}");
    CHECK_EQ_INT(o.status, 400);
    json_t *j = http_json(&o);
    CHECK(json_is_string(json_object_get(j, "error")));
    json_decref(j);
    http_free(&o);
    http_resp t = http_post(port, "/embed", "{\"inputs\":7}");
    CHECK_EQ_INT(t.status, 400);
    j = http_json(&t);
    CHECK(json_is_string(json_object_get(j, "error")) &&
          strcmp(json_string_value(json_object_get(j, "error_type")), "Validation") == 0);
    json_decref(j);
    http_free(&t);
    /* invalid UTF-8 inside a JSON string */
    http_resp u =
        http_post(port, "/v1/embeddings", "{\"model\":\"tiny-bert\",\"input\":\"\xff\xfe\"}");
    CHECK_EQ_INT(u.status, 400);
    http_free(&u);
    http_resp p = http_do(port, NULL, "/v1/embeddings", "{\"model\":\"tiny-bert\",\"input\":\"x\"}",
                          "X-Priority: urgent", NULL);
    CHECK_EQ_INT(p.status, 400);
    CHECK(strstr(http_error_message(&p), "X-Priority"));
    http_free(&p);
    ia_server_stop(srv);
}

/* A chunked upload of n bytes (no Content-Length). */
typedef struct upload {
    size_t left;
} upload;

static size_t read_x(char *buf, size_t size, size_t n, void *ctx) {
    upload *u = ctx;
    size_t k = size * n < u->left ? size * n : u->left;
    memset(buf, 'x', k);
    u->left -= k;
    return k;
}

TEST(body_limit) {
    const char *models[] = {test_source_path(BERT)};
    ia_server_options o = ia_server_options_default();
    o.max_body_bytes = 1000;
    ia_server *srv = start_server(models, 1, &o);
    if (!srv)
        return;
    uint16_t port = ia_server_port(srv);
    size_t big = 10 << 20; /* 10 MB, announced by Content-Length */
    char *body = malloc(big + 1);
    memset(body, ' ', big);
    body[big] = 0;
    http_resp r = http_post(port, "/v1/embeddings", body);
    CHECK_EQ_INT(r.status, 413);
    CHECK(strstr(http_error_message(&r), "1000 bytes"));
    http_free(&r);
    free(body);
    /* chunked, so the server only learns the size while reading */
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/embeddings", (unsigned)port);
    CURL *c = curl_easy_init();
    upload u = {5000};
    http_resp cr;
    memset(&cr, 0, sizeof cr);
    struct curl_slist *h = curl_slist_append(NULL, "Transfer-Encoding: chunked");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, read_x);
    curl_easy_setopt(c, CURLOPT_READDATA, &u);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &cr);
    CHECK_EQ_INT(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &cr.status);
    CHECK_EQ_INT(cr.status, 413);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    http_free(&cr);
    /* and the server still answers */
    http_resp ok = http_post(port, "/v1/embeddings", "{\"model\":\"tiny-bert\",\"input\":\"hi\"}");
    CHECK_EQ_INT(ok.status, 200);
    http_free(&ok);
    ia_server_stop(srv);
}

TEST(api_keys) {
    char path[] = "/tmp/ia_serve_keys_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char *text = "# keys\n  sk-first  \n\nsk-second\n";
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    char **keys = NULL;
    size_t n = 0;
    CHECK_OK(ia_server_keys_load(path, &keys, &n));
    CHECK_EQ_INT(n, 2);
    CHECK(n == 2 && strcmp(keys[0], "sk-first") == 0 && strcmp(keys[1], "sk-second") == 0);
    const char *models[] = {test_source_path(BERT)};
    ia_server_options o = ia_server_options_default();
    o.api_keys = (const char *const *)keys;
    o.n_api_keys = n;
    ia_server *srv = start_server(models, 1, &o);
    ia_server_keys_free(keys, n);
    unlink(path);
    if (!srv)
        return;
    uint16_t port = ia_server_port(srv);
    const char *body = "{\"model\":\"tiny-bert\",\"input\":\"hi\"}";
    http_resp r = http_post(port, "/v1/embeddings", body);
    CHECK_EQ_INT(r.status, 401);
    CHECK(strstr(http_header(&r, "WWW-Authenticate"), "Bearer"));
    json_t *j = http_json(&r);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                 "invalid_api_key") == 0);
    json_decref(j);
    http_free(&r);
    const char *wrong[] = {"Authorization: Bearer sk-firs", "Authorization: Bearer sk-first2",
                           "Authorization: Basic sk-first", "Authorization: Bearer "};
    for (size_t i = 0; i < 4; i++) {
        r = http_do(port, NULL, "/v1/embeddings", body, wrong[i], NULL);
        CHECK_MSG(r.status == 401, "%s -> %ld", wrong[i], r.status);
        http_free(&r);
    }
    r = http_do(port, NULL, "/v1/embeddings", body, "Authorization: Bearer sk-second", NULL);
    CHECK_EQ_INT(r.status, 200);
    http_free(&r);
    r = http_get(port, "/v1/models");
    CHECK_EQ_INT(r.status, 401);
    http_free(&r);
    r = http_get(port, "/health");
    CHECK_EQ_INT(r.status, 200);
    http_free(&r);
    r = http_get(port, "/metrics");
    CHECK_EQ_INT(r.status, 200);
    http_free(&r);
    ia_server_stop(srv);
    /* a file without keys is an error */
    char empty[] = "/tmp/ia_serve_keys_XXXXXX";
    fd = mkstemp(empty);
    CHECK(write(fd, "# none\n\n", 8) == 8);
    close(fd);
    CHECK_ERR(ia_server_keys_load(empty, &keys, &n), IA_EINVAL, "no API key");
    unlink(empty);
}

/* Many concurrent generations against a queue of one: some get 429 with
 * Retry-After at once, every other one succeeds. */
typedef struct flood_arg {
    uint16_t port;
    long status;
    char retry_after[32];
} flood_arg;

static void *flood_one(void *p) {
    flood_arg *a = p;
    http_resp r = http_post(a->port, "/v1/completions",
                            "{\"model\":\"gpt2\",\"prompt\":\"hello there\",\"max_tokens\":100,"
                            "\"temperature\":0}");
    a->status = r.status;
    snprintf(a->retry_after, sizeof a->retry_after, "%.31s", http_header(&r, "Retry-After"));
    http_free(&r);
    return NULL;
}

TEST(full_queue_answers_429) {
    const char *models[] = {test_source_path(GPT2)};
    ia_server_options o = ia_server_options_default();
    o.max_queue = 1;
    ia_server *srv = start_server(models, 1, &o);
    if (!srv)
        return;
    enum { N = 48 };
    pthread_t th[N];
    flood_arg args[N];
    for (int i = 0; i < N; i++) {
        args[i] = (flood_arg){ia_server_port(srv), 0, ""};
        pthread_create(&th[i], NULL, flood_one, &args[i]);
    }
    int ok = 0, busy = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        if (args[i].status == 200)
            ok++;
        else if (args[i].status == 429) {
            busy++;
            CHECK(strcmp(args[i].retry_after, "1") == 0);
        } else
            CHECK_MSG(0, "status %ld", args[i].status);
    }
    CHECK(ok >= 1);
    CHECK_MSG(busy >= 1, "no 429 among %d concurrent requests with a queue of 1", N);
    char want[96];
    snprintf(want, sizeof want, "ia_http_requests_total{route=\"/v1/completions\",code=\"429\"} %d",
             busy);
    const char *needles[] = {want, NULL};
    http_resp m = metrics_when(ia_server_port(srv), needles);
    CHECK(m.body && strstr(m.body, "ia_requests_rejected_total"));
    CHECK_MSG(m.body && strstr(m.body, want), "missing '%s'", want);
    http_free(&m);
    /* still serving */
    flood_arg again = {ia_server_port(srv), 0, ""};
    flood_one(&again);
    CHECK_EQ_INT(again.status, 200);
    ia_server_stop(srv);
}

TEST(metrics_text) {
    const char *models[] = {test_source_path(BERT)};
    ia_server *srv = start_server(models, 1, NULL);
    if (!srv)
        return;
    uint16_t port = ia_server_port(srv);
    for (int i = 0; i < 3; i++) {
        http_resp r = http_post(port, "/v1/embeddings",
                                "{\"model\":\"tiny-bert\",\"input\":[\"a b c\",\"d\"]}");
        CHECK_EQ_INT(r.status, 200);
        http_free(&r);
    }
    http_resp bad = http_post(port, "/v1/embeddings", "{");
    http_free(&bad);
    const char *want[] = {
        "ia_http_requests_total{route=\"/v1/embeddings\",code=\"200\"} 3",
        "ia_http_requests_total{route=\"/v1/embeddings\",code=\"400\"} 1",
        "ia_http_errors_total{route=\"/v1/embeddings\"} 1",
        "ia_http_request_duration_seconds_count{route=\"/v1/embeddings\"} 4",
        "ia_http_request_duration_seconds_bucket{route=\"/v1/embeddings\",le=\"+Inf\"} 4",
        "ia_batch_sequences_count",
        "ia_tokens_in_total 24", /* 3 x ([CLS] a b c [SEP] + [CLS] d [SEP]) */
        "ia_queue_depth{model=\"tiny-bert\"} 0",
        "ia_model_ready{model=\"tiny-bert\"} 1",
        "# TYPE ia_time_to_first_token_seconds histogram",
        "ia_pool_loaded",
        NULL,
    };
    http_resp m = metrics_when(port, want);
    CHECK_EQ_INT(m.status, 200);
    CHECK(strstr(http_header(&m, "Content-Type"), "text/plain"));
    for (size_t i = 0; want[i]; i++) {
        CHECK_MSG(m.body && strstr(m.body, want[i]), "missing '%s'", want[i]);
    }
    /* every sample line is NAME{labels} VALUE or NAME VALUE */
    int lines = 0;
    for (char *p = m.body; p && *p;) {
        char *eol = strchr(p, '\n');
        CHECK(eol != NULL);
        if (!eol)
            break;
        if (*p != '#') {
            char *sp = memrchr(p, ' ', (size_t)(eol - p));
            CHECK(sp && sp > p);
            char *end;
            strtod(sp + 1, &end);
            CHECK_MSG(end == eol, "bad sample line: %.*s", (int)(eol - p), p);
            lines++;
        }
        p = eol + 1;
    }
    CHECK(lines > 20);
    http_free(&m);
    ia_server_stop(srv);
}

TEST(start_errors) {
    ia_server *srv = NULL;
    const char *dup[] = {test_source_path(BERT), test_source_path(BERT)};
    ia_server_options o = ia_server_options_default();
    o.models = dup;
    o.n_models = 2;
    CHECK_ERR(ia_server_start(&o, &srv), IA_EINVAL, "two models are named 'tiny-bert'");
    CHECK(srv == NULL);
    const char *missing[] = {"/nonexistent/model"};
    o.models = missing;
    o.n_models = 1;
    CHECK(ia_server_start(&o, &srv) != IA_OK);
    CHECK(strstr(ia_error_message(), "/nonexistent/model"));
    o.n_models = 0;
    CHECK_ERR(ia_server_start(&o, &srv), IA_EINVAL, "no model");
    /* NAME=PATH renames; two names for one model are fine */
    char a[600], b[600];
    snprintf(a, sizeof a, "one=%s", test_source_path(BERT));
    snprintf(b, sizeof b, "two=%s", test_source_path(BERT));
    const char *named[] = {a, b};
    srv = start_server(named, 2, NULL);
    if (srv) {
        http_resp r = http_post(ia_server_port(srv), "/v1/embeddings",
                                "{\"model\":\"two\",\"input\":\"hi\"}");
        CHECK_EQ_INT(r.status, 200);
        json_t *j = http_json(&r);
        CHECK(strcmp(json_string_value(json_object_get(j, "model")), "two") == 0);
        json_decref(j);
        http_free(&r);
        ia_server_stop(srv);
    }
}

TEST(cli_serve_subprocess) {
    const char *cli = getenv("IA_CLI");
    if (!cli)
        SKIP("IA_CLI is not set");
    int out[2];
    CHECK(pipe(out) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        execl(cli, cli, "serve", "--model", test_source_path(BERT), "--port", "0", "--threads", "1",
              (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    FILE *f = fdopen(out[0], "r");
    char line[256] = "", line2[256] = "", line3[256] = "";
    CHECK(fgets(line, sizeof line, f) != NULL);
    CHECK(fgets(line2, sizeof line2, f) != NULL);
    CHECK(fgets(line3, sizeof line3, f) != NULL);
    unsigned port = 0;
    CHECK_MSG(sscanf(line, "serving on http://127.0.0.1:%u", &port) == 1, "first line: %s", line);
    CHECK_MSG(strstr(line2, "curl http://127.0.0.1:"), "second line: %s", line2);
    CHECK_MSG(strncmp(line3, "ready", 5) == 0, "third line: %s", line3);
    if (port) {
        http_resp r = http_post((uint16_t)port, "/v1/embeddings",
                                "{\"model\":\"tiny-bert\",\"input\":\"hi\"}");
        CHECK_EQ_INT(r.status, 200);
        http_free(&r);
    }
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);
    fclose(f);
}

TEST(gateway_mounted_under_ipfs) {
    char dir[] = "/tmp/ia_serve_gw_XXXXXX";
    if (!mkdtemp(dir))
        SKIP("mkdtemp failed");
    char repo[300];
    snprintf(repo, sizeof repo, "%s/repo", dir);
    ia_blockstore *bs = NULL;
    ia_gateway *gw = NULL;
    CHECK_OK(ia_blockstore_open(repo, &bs));
    const char block[] = "a block served next to the models";
    ia_cid cid;
    ia_cid_of_block(1, IA_CODEC_RAW, block, sizeof block - 1, &cid);
    CHECK_OK(ia_blockstore_put(bs, &cid, block, sizeof block - 1));
    CHECK_OK(ia_gateway_start(bs, NULL, NULL, &gw));
    const char *models[] = {test_source_path(BERT)};
    const char *keys[] = {"sk-x"};
    ia_server_options o = ia_server_options_default();
    o.gateway = gw;
    o.api_keys = keys;
    o.n_api_keys = 1;
    ia_server *srv = bs && gw ? start_server(models, 1, &o) : NULL;
    if (srv) {
        char text[IA_CID_MAX_STRING], path[IA_CID_MAX_STRING + 32];
        ia_cid_format(&cid, IA_BASE32, text, sizeof text);
        snprintf(path, sizeof path, "/ipfs/%s?format=raw", text);
        http_resp r = http_get(ia_server_port(srv), path);
        CHECK_EQ_INT(r.status, 200);
        CHECK(r.len == sizeof block - 1 && r.body && memcmp(r.body, block, r.len) == 0);
        CHECK(strstr(http_header(&r, "Content-Type"), "application/vnd.ipld.raw"));
        http_free(&r);
        r = http_get(ia_server_port(srv), "/ipfs/not-a-cid?format=raw");
        CHECK_EQ_INT(r.status, 400);
        http_free(&r);
        const char *needles[] = {"ia_http_requests_total{route=\"/ipfs\",code=\"200\"} 1",
                                 "ia_http_requests_total{route=\"/ipfs\",code=\"400\"} 1", NULL};
        http_resp m = metrics_when(ia_server_port(srv), needles);
        for (size_t i = 0; needles[i]; i++)
            CHECK_MSG(m.body && strstr(m.body, needles[i]), "missing '%s'", needles[i]);
        http_free(&m);
        ia_server_stop(srv);
    }
    ia_gateway_stop(gw);
    ia_blockstore_close(bs);
    rm_rf(dir);
}
