/*
 * server/scheduling: the scheduler's promises, over real HTTP against an
 * in-process server on the tiny fixtures.
 *
 * - Batching is invisible at the size: 64 different embedding
 *   requests sent at once (64 client threads released together; the server
 *   batches them) give bit for bit (memcmp of the floats) the vectors of the
 *   same 64 sent one by one, and the server did batch them.
 * - Priority order: while the model is busy with a long request, requests
 *   queued with X-Priority high, normal and low start in priority order,
 *   first come first served within one. No sleeps decide it: the test reads
 *   the model's queue under its lock (server_internal.h) and proceeds only
 *   when all six requests are waiting at once while the long one still runs
 *   (if the long one finished first, a longer one is tried); each queued job
 *   is held by a reference so that its start time (the scheduler's clock) can
 *   be read after it finished.
 * - --max-streams is per model: with two streams in flight on a model (held
 *   before their jobs are queued: the test holds the model's queue lock), a
 *   third stream on it gets 429 with Retry-After in its API's error shape
 *   while another model's stream runs; the two then finish whole and give
 *   their slots back.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "server/server_internal.h"
#include "server_util.h"

#define BERT "tests/fixtures/models/tiny-bert"
#define GPT2 "tests/fixtures/decoders/gpt2"
#define LLAMA "tests/fixtures/decoders/llama"

/* ---- 64 concurrent == 64 sequential ------------------------------------------------------- */

enum { N_CONC = 64 };

/* 64 different texts of 2 to 12 tokens (the tiny model takes at most 24). */
static char *text_of(int i) {
    static const char *const words[] = {"the", "a", "of", "and", "to", "in", "is", "it", "on"};
    char buf[256];
    int len = snprintf(buf, sizeof buf, "%d", i);
    for (int w = 0; w < i % 6; w++)
        len += snprintf(buf + len, sizeof buf - (size_t)len, " %s", words[(i + w) % 9]);
    return strdup(buf);
}

/* The vector of one single-input request (malloc'd, *dim set); NULL on failure. */
static float *embed_one(uint16_t port, const char *text, size_t *dim) {
    json_t *b = json_pack("{s:s, s:s}", "model", "tiny-bert", "input", text);
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    http_resp r = http_post(port, "/v1/embeddings", body);
    free(body);
    json_t *j = r.status == 200 ? json_loadb(r.body, r.len, 0, NULL) : NULL;
    if (r.status != 200)
        fprintf(stderr, "  '%s': HTTP %ld (curl %d): %.300s\n", text, r.status, (int)r.rc,
                r.body ? r.body : "");
    json_t *arr = json_object_get(json_array_get(json_object_get(j, "data"), 0), "embedding");
    size_t n = json_array_size(arr);
    float *v = n ? malloc(n * sizeof *v) : NULL;
    for (size_t k = 0; v && k < n; k++)
        v[k] = (float)json_real_value(json_array_get(arr, k));
    *dim = n;
    json_decref(j);
    http_free(&r);
    return v;
}

typedef struct conc_client {
    uint16_t port;
    const char *text;
    pthread_barrier_t *go;
    float *vec;
    size_t dim;
} conc_client;

static void *conc_main(void *p) {
    conc_client *c = p;
    pthread_barrier_wait(c->go);
    c->vec = embed_one(c->port, c->text, &c->dim);
    return NULL;
}

static uint64_t batches_so_far(ia_server *srv) {
    pthread_mutex_lock(&srv->metrics.mu);
    uint64_t n = srv->metrics.batches;
    pthread_mutex_unlock(&srv->metrics.mu);
    return n;
}

TEST(concurrent_64_equal_sequential_64) {
    const char *models[] = {test_source_path(BERT)};
    ia_server_options o = ia_server_options_default();
    o.batch_wait_us = 20000; /* long enough that concurrent requests share batches */
    o.max_batch_tokens = 4096;
    ia_server *srv = start_server(models, 1, &o);
    if (!srv)
        return;
    uint16_t port = ia_server_port(srv);
    char *texts[N_CONC];
    float *seq[N_CONC];
    size_t dim = 0;
    for (int i = 0; i < N_CONC; i++) {
        texts[i] = text_of(i);
        size_t d = 0;
        seq[i] = embed_one(port, texts[i], &d);
        CHECK_MSG(seq[i] && d > 0, "sequential request %d failed", i);
        if (i == 0)
            dim = d;
        CHECK_EQ_INT(d, dim);
    }
    uint64_t b0 = batches_so_far(srv);
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, N_CONC);
    conc_client cs[N_CONC];
    pthread_t th[N_CONC];
    for (int i = 0; i < N_CONC; i++) {
        cs[i] = (conc_client){port, texts[i], &go, NULL, 0};
        pthread_create(&th[i], NULL, conc_main, &cs[i]);
    }
    int differ = 0;
    for (int i = 0; i < N_CONC; i++) {
        pthread_join(th[i], NULL);
        CHECK_MSG(cs[i].vec && cs[i].dim == dim, "concurrent request %d failed", i);
        if (cs[i].vec && seq[i] && cs[i].dim == dim &&
            memcmp(cs[i].vec, seq[i], dim * sizeof(float)) != 0) {
            differ++;
            fprintf(stderr, "  request %d ('%s'): concurrent vector differs from sequential\n", i,
                    texts[i]);
        }
    }
    CHECK_MSG(differ == 0, "%d of %d concurrent vectors differ", differ, N_CONC);
    uint64_t batches = batches_so_far(srv) - b0;
    CHECK_MSG(batches > 0 && batches < N_CONC,
              "%llu batches for %d concurrent requests: nothing was batched",
              (unsigned long long)batches, N_CONC);
    pthread_barrier_destroy(&go);
    for (int i = 0; i < N_CONC; i++) {
        free(texts[i]);
        free(seq[i]);
        free(cs[i].vec);
    }
    ia_server_stop(srv);
}

/* ---- priority order ---------------------------------------------------------------------- */

typedef struct prio_client {
    uint16_t port;
    const char *header; /* "X-Priority: ..." or NULL */
    size_t n_inputs;    /* the request's identity in the queue: its job's n_seq */
    const char *text;
    long status;
    atomic_bool done;
} prio_client;

static void *prio_main(void *p) {
    prio_client *c = p;
    json_t *in = json_array();
    for (size_t i = 0; i < c->n_inputs; i++)
        json_array_append_new(in, json_string(c->text));
    json_t *b = json_pack("{s:s, s:o}", "model", "tiny-bert", "input", in);
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    http_resp r = http_do(c->port, NULL, "/v1/embeddings", body, c->header, NULL);
    c->status = r.status;
    free(body);
    http_free(&r);
    atomic_store(&c->done, true);
    return NULL;
}

static uint64_t jobs_started(ia_server *srv) {
    pthread_mutex_lock(&srv->metrics.mu);
    uint64_t n = srv->metrics.queue_wait.n; /* one per job, when its batch starts */
    pthread_mutex_unlock(&srv->metrics.mu);
    return n;
}

static size_t queue_depth(srv_model *m) {
    pthread_mutex_lock(&m->mu);
    size_t d = m->depth;
    pthread_mutex_unlock(&m->mu);
    return d;
}

/* Waits up to 20 s for cond(); false on time-out. */
#define WAIT_FOR(cond)                                        \
    ({                                                        \
        bool ok_ = false;                                     \
        for (int t_ = 0; t_ < 20000 && !(ok_ = (cond)); t_++) \
            usleep(1000);                                     \
        ok_;                                                  \
    })

enum { N_PRIO = 6 };

/* One try: true when all N_PRIO requests were queued at once behind the
 * holder (then the order was checked), false when the holder finished too
 * soon to tell. */
static bool priority_round(ia_server *srv, size_t holder_inputs) {
    srv_model *m = &srv->models[0];
    uint16_t port = ia_server_port(srv);
    static const char *const long_text = "the model is busy with this";
    prio_client holder = {port, NULL, holder_inputs, long_text, 0, false};
    /* submission order; the expected start order is high, normal, low, FIFO in each */
    static const char *const hdr[N_PRIO] = {"X-Priority: low",  "X-Priority: normal",
                                            "X-Priority: high", "X-Priority: low",
                                            "X-Priority: high", NULL /* normal */};
    static const size_t expect[N_PRIO] = {3, 5, 2, 6, 1, 4}; /* n_inputs in start order */
    prio_client cs[N_PRIO];
    pthread_t th[N_PRIO], hth;
    int started = 0;
    bool all_queued = true;
    uint64_t s0 = jobs_started(srv);
    pthread_create(&hth, NULL, prio_main, &holder);
    CHECK(WAIT_FOR(jobs_started(srv) == s0 + 1)); /* the holder runs */
    for (int k = 0; k < N_PRIO && all_queued; k++) {
        cs[k] = (prio_client){port, hdr[k], (size_t)k + 1, "priority", 0, false};
        pthread_create(&th[k], NULL, prio_main, &cs[k]);
        started++;
        /* queued (depth k+1) and nothing but the holder started */
        all_queued = WAIT_FOR(queue_depth(m) == (size_t)k + 1 || jobs_started(srv) != s0 + 1) &&
                     jobs_started(srv) == s0 + 1;
    }
    srv_job *held[N_PRIO] = {0};
    size_t order[N_PRIO] = {0}, n_held = 0;
    if (all_queued) {
        pthread_mutex_lock(&m->mu);
        all_queued = m->depth == N_PRIO && jobs_started(srv) == s0 + 1;
        for (int p = 0; all_queued && p < SRV_PRIO_COUNT; p++)
            for (srv_job *j = m->head[p]; j && n_held < N_PRIO; j = j->next) {
                atomic_fetch_add(&j->refs, 1);
                order[n_held] = j->n_seq;
                held[n_held++] = j;
            }
        pthread_mutex_unlock(&m->mu);
    }
    for (int k = 0; k < started; k++)
        pthread_join(th[k], NULL);
    pthread_join(hth, NULL);
    CHECK_EQ_INT(holder.status, 200);
    for (int k = 0; k < started; k++)
        CHECK_EQ_INT(cs[k].status, 200);
    if (all_queued) {
        /* the queue held them in priority order, FIFO within one ... */
        for (size_t i = 0; i < N_PRIO; i++)
            CHECK_MSG(order[i] == expect[i], "queue position %zu holds request %zu, expected %zu",
                      i, order[i], expect[i]);
        /* ... and the scheduler started them in that order */
        for (size_t i = 0; i + 1 < n_held; i++)
            CHECK_MSG(held[i]->t_start < held[i + 1]->t_start,
                      "request %zu started at %.6f, not before request %zu at %.6f", order[i],
                      held[i]->t_start, order[i + 1], held[i + 1]->t_start);
    }
    for (size_t i = 0; i < n_held; i++)
        srv_job_unref(held[i]);
    return all_queued;
}

TEST(priority_order_behind_a_busy_model) {
    const char *models[] = {test_source_path(BERT)};
    ia_server_options o = ia_server_options_default();
    o.max_batch_tokens = 1; /* every job is a batch of its own */
    o.batch_wait_us = 1;
    o.max_inputs = 1 << 18;
    o.max_body_bytes = 64u << 20;
    ia_server *srv = start_server(models, 1, &o);
    if (!srv)
        return;
    bool decided = false;
    for (size_t n = 256; n <= (1u << 18) && !decided; n *= 4) {
        decided = priority_round(srv, n);
        fprintf(stderr, "  a busy request of %zu inputs: %s\n", n,
                decided ? "all six queued behind it" : "finished too soon, trying a longer one");
    }
    CHECK_MSG(decided, "the long request never outlasted the six queued ones");
    ia_server_stop(srv);
}

/* ---- --max-streams per model ----------------------------------------------------------------- */

static const char stream_body[] =
    "{\"model\":\"gpt2\",\"prompt\":\"hello\",\"max_tokens\":4,\"stream\":true}";

typedef struct stream_client {
    uint16_t port;
    long status;
    bool done_marker; /* the SSE stream ended with data: [DONE] */
} stream_client;

static void *stream_main(void *p) {
    stream_client *c = p;
    http_resp r = http_post(c->port, "/v1/completions", stream_body);
    c->status = r.status;
    c->done_marker = r.body && strstr(r.body, "data: [DONE]");
    http_free(&r);
    return NULL;
}

TEST(max_streams_per_model) {
    const char *models[] = {test_source_path(GPT2), test_source_path(LLAMA)};
    ia_server_options o = ia_server_options_default();
    o.max_streams = 2;
    ia_server *srv = start_server(models, 2, &o);
    if (!srv)
        return;
    uint16_t port = ia_server_port(srv);
    srv_model *gpt2 = &srv->models[0];
    CHECK(strcmp(gpt2->id, "gpt2") == 0);

    /* a stream runs and gives its slot back */
    http_resp r = http_post(port, "/v1/completions", stream_body);
    CHECK_EQ_INT(r.status, 200);
    CHECK(r.body && strstr(r.body, "data: [DONE]"));
    http_free(&r);
    CHECK(WAIT_FOR(atomic_load(&gpt2->streams) == 0 && atomic_load(&srv->streams) == 0));

    /* Two real streams in flight: with gpt2's queue lock held by the test,
     * their handlers take a stream slot and then wait to queue their jobs. */
    pthread_mutex_lock(&gpt2->mu);
    stream_client sc[2] = {{port, 0, false}, {port, 0, false}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, stream_main, &sc[i]);
    bool both = WAIT_FOR(atomic_load(&gpt2->streams) == 2);
    CHECK_MSG(both, "%u streams in flight, expected 2", atomic_load(&gpt2->streams));

    /* a third stream on gpt2 is refused at once, in the API's error shape */
    r = http_post(port, "/v1/completions", stream_body);
    CHECK_EQ_INT(r.status, 429);
    CHECK(strcmp(http_header(&r, "Retry-After"), "1") == 0);
    json_t *j = http_json(&r);
    json_t *e = json_object_get(j, "error");
    CHECK(json_string_value(json_object_get(e, "type")) &&
          strcmp(json_string_value(json_object_get(e, "type")), "rate_limit_error") == 0);
    CHECK(json_string_value(json_object_get(e, "code")) &&
          strcmp(json_string_value(json_object_get(e, "code")), "rate_limit_exceeded") == 0);
    CHECK_MSG(strstr(http_error_message(&r), "--max-streams"), "message: %s",
              http_error_message(&r));
    json_decref(j);
    http_free(&r);
    /* Ollama streams by default: refused in its own error shape */
    r = http_post(port, "/api/generate", "{\"model\":\"gpt2\",\"prompt\":\"hi\"}");
    CHECK_EQ_INT(r.status, 429);
    j = http_json(&r);
    CHECK(json_is_string(json_object_get(j, "error")));
    json_decref(j);
    http_free(&r);
    /* the limit is per model: llama's slots are free */
    r = http_post(port, "/v1/completions",
                  "{\"model\":\"llama\",\"prompt\":\"hello\",\"max_tokens\":4,\"stream\":true}");
    CHECK_EQ_INT(r.status, 200);
    CHECK(r.body && strstr(r.body, "data: [DONE]"));
    http_free(&r);
    CHECK(WAIT_FOR(atomic_load(&srv->models[1].streams) == 0));
    CHECK_EQ_INT(atomic_load(&gpt2->streams), 2); /* refusals took nothing */

    /* let the two run: both finish whole and give their slots back */
    pthread_mutex_unlock(&gpt2->mu);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(sc[i].status, 200);
        CHECK(sc[i].done_marker);
    }
    CHECK(WAIT_FOR(atomic_load(&gpt2->streams) == 0 && atomic_load(&srv->streams) == 0));
    /* not streamed: no slot needed; and streams run again */
    r = http_post(port, "/v1/completions",
                  "{\"model\":\"gpt2\",\"prompt\":\"hello\",\"max_tokens\":4}");
    CHECK_EQ_INT(r.status, 200);
    http_free(&r);
    r = http_post(port, "/v1/completions", stream_body);
    CHECK_EQ_INT(r.status, 200);
    http_free(&r);
    ia_server_stop(srv);
}
