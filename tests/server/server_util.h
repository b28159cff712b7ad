/*
 * Helpers for the server tests: start an in-process server on an ephemeral
 * port over the committed fixtures, and talk to it with libcurl (a request
 * with a JSON body, its status, headers and body; the body parsed as JSON);
 * or start the CLI's `serve` as a process (serve_start, serve_stop).
 */
#ifndef IA_TEST_SERVER_UTIL_H
#define IA_TEST_SERVER_UTIL_H

#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ia/server.h"
#include "test.h"

typedef struct http_resp {
    long status;
    char *body;
    size_t len;
    char headers[8192];
    size_t hlen;
    CURLcode rc;
} http_resp;

static inline size_t http_on_body(char *p, size_t size, size_t n, void *ctx) {
    http_resp *r = ctx;
    size_t k = size * n;
    char *b = realloc(r->body, r->len + k + 1);
    if (!b)
        return 0;
    memcpy(b + r->len, p, k);
    r->body = b;
    r->len += k;
    r->body[r->len] = 0;
    return k;
}

static inline size_t http_on_header(char *p, size_t size, size_t n, void *ctx) {
    http_resp *r = ctx;
    size_t k = size * n;
    if (r->hlen + k < sizeof r->headers) {
        memcpy(r->headers + r->hlen, p, k);
        r->hlen += k;
        r->headers[r->hlen] = 0;
    }
    return k;
}

/* One request; body NULL sends none (GET unless method says otherwise).
 * extra: up to two header lines (NULL for none). */
static inline http_resp http_do(uint16_t port, const char *method, const char *path,
                                const char *body, const char *extra, const char *extra2) {
    http_resp r;
    memset(&r, 0, sizeof r);
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", (unsigned)port, path);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (extra)
        h = curl_slist_append(h, extra);
    if (extra2)
        h = curl_slist_append(h, extra2);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, http_on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    if (method)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    r.rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return r;
}

static inline http_resp http_post(uint16_t port, const char *path, const char *body) {
    return http_do(port, NULL, path, body, NULL, NULL);
}

static inline http_resp http_get(uint16_t port, const char *path) {
    return http_do(port, NULL, path, NULL, NULL, NULL);
}

static inline void http_free(http_resp *r) {
    free(r->body);
    r->body = NULL;
}

/* The body as JSON (caller decrefs); NULL (and a failed check) when it is not. */
static inline json_t *http_json(const http_resp *r) {
    json_error_t err;
    json_t *j = r->body ? json_loadb(r->body, r->len, 0, &err) : NULL;
    CHECK_MSG(j != NULL, "body is not JSON: %.300s", r->body ? r->body : "(none)");
    return j;
}

/* The value of a response header (case-insensitive name), or "" (a
 * thread-local buffer). */
static inline const char *http_header(const http_resp *r, const char *name) {
    static __thread char val[512]; /* per thread: clients run in threads */
    val[0] = 0;
    size_t n = strlen(name);
    for (const char *p = r->headers; *p;) {
        const char *eol = strstr(p, "\r\n");
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > n && strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            snprintf(val, sizeof val, "%.*s", (int)(len - (size_t)(v - p)), v);
        }
        p += len + (eol ? 2 : 0);
    }
    return val;
}

/* The OpenAI error's message ("" when the body has none). */
static inline const char *http_error_message(const http_resp *r) {
    static __thread char msg[1024];
    msg[0] = 0;
    json_t *j = r->body ? json_loadb(r->body, r->len, 0, NULL) : NULL;
    json_t *e = json_object_get(j, "error");
    const char *m =
        json_is_object(e) ? json_string_value(json_object_get(e, "message")) : json_string_value(e);
    snprintf(msg, sizeof msg, "%s", m ? m : "");
    json_decref(j);
    return msg;
}

/* /metrics once it contains every needle (NULL-terminated list): the server
 * records a request when MHD has finished with its connection, a moment after
 * the client has the whole response. Waits up to 5 s, then returns the last
 * text (the caller's checks then fail). Caller frees the response. */
static inline http_resp metrics_when(uint16_t port, const char *const *needles) {
    http_resp m;
    for (int tries = 0;; tries++) {
        m = http_get(port, "/metrics");
        bool all = m.body != NULL;
        for (size_t i = 0; all && needles[i]; i++)
            all = strstr(m.body, needles[i]) != NULL;
        if (all || tries == 500)
            return m;
        http_free(&m);
        usleep(10000);
    }
}

/* A server over the given model specs, on an ephemeral port, models loaded. */
static inline ia_server *start_server(const char *const *models, size_t n, ia_server_options *o) {
    ia_server_options d = ia_server_options_default();
    if (!o)
        o = &d;
    o->models = models;
    o->n_models = n;
    o->port = 0;
    if (!o->threads)
        o->threads = 1;
    ia_server *srv = NULL;
    CHECK_OK(ia_server_start(o, &srv));
    CHECK(srv == NULL || ia_server_port(srv) != 0);
    return srv;
}

/* A JSON array of numbers as floats (malloc'd; *dim its length). */
static inline float *json_floats(json_t *arr, size_t *dim) {
    *dim = json_array_size(arr);
    float *v = *dim ? malloc(*dim * sizeof *v) : NULL;
    for (size_t k = 0; v && k < *dim; k++)
        v[k] = (float)json_number_value(json_array_get(arr, k));
    return v;
}

/* POST /v1/embeddings of one input to model; its embedding (malloc'd,
 * *dim long), NULL (*dim 0) after a failed check. */
static inline float *http_embedding(uint16_t port, const char *model, const char *input,
                                    size_t *dim) {
    *dim = 0;
    json_t *b = json_pack("{s:s, s:s}", "model", model, "input", input);
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    http_resp r = http_post(port, "/v1/embeddings", body);
    free(body);
    CHECK_MSG(r.status == 200, "embeddings for %s: %ld %s", model, r.status, r.body ? r.body : "");
    json_t *j = r.status == 200 ? http_json(&r) : NULL;
    float *v = json_floats(
        json_object_get(json_array_get(json_object_get(j, "data"), 0), "embedding"), dim);
    json_decref(j);
    http_free(&r);
    return v;
}

/* ---- a `serve` process -------------------------------------------------------------------- */

typedef struct served {
    pid_t pid;
    uint16_t port;
    FILE *out;
    bool up;
} served;

/* Starts `serve` with args; true once it printed its three lines (the
 * address, the example, "ready"). serve_stop is needed either way. */
static inline bool serve_start(served *s, const char *const *args) {
    const char *cli = getenv("IA_CLI");
    int fds[2];
    memset(s, 0, sizeof *s);
    if (!cli || pipe(fds) != 0)
        return false;
    const char *argv[32];
    int n = 0;
    argv[n++] = cli;
    argv[n++] = "serve";
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    s->pid = fork();
    if (s->pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execv(cli, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    s->out = fdopen(fds[0], "r");
    char line[512] = "", line2[512] = "", line3[512] = "";
    unsigned port = 0;
    s->up = s->out && fgets(line, sizeof line, s->out) && fgets(line2, sizeof line2, s->out) &&
            fgets(line3, sizeof line3, s->out) &&
            sscanf(line, "serving on http://127.0.0.1:%u", &port) == 1 &&
            strncmp(line3, "ready", 5) == 0;
    CHECK_MSG(s->up, "serve did not come up: '%s' '%s' '%s'", line, line2, line3);
    s->port = (uint16_t)port;
    return s->up;
}

/* Stops it with SIGTERM; a server that came up must exit 0. */
static inline void serve_stop(served *s) {
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        int status = 0;
        waitpid(s->pid, &status, 0);
        if (s->up)
            CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "serve exit status %d",
                      status);
    }
    if (s->out)
        fclose(s->out);
    memset(s, 0, sizeof *s);
}

#endif /* IA_TEST_SERVER_UTIL_H */
