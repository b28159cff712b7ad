/*
 * Continuous batching of generation (issue 7): concurrent generations with
 * different seeds and temperatures give exactly the texts they give alone.
 *   - runtime: 8 requests through a generator with 4 (or 8) slots,
 *     sequences joining as others leave, equal token for token to each
 *     request run alone with ia_generator_generate (f32 weights on GPT-2,
 *     Q8_0 weights on Qwen2, a stop string, a greedy request among sampled
 *     ones); ending a sequence early frees its slot for the next;
 *   - HTTP: 8 concurrent /v1/completions against a server with --parallel 4
 *     equal the same 8 sent one at a time, a streamed and a plain copy of a
 *     request running side by side agree, and /metrics shows steps that
 *     decoded several sequences at once;
 *   - streams whose clients hang up free their slots: every slot is taken
 *     by a stream that is then abandoned, and the next requests still run.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "ia/runtime.h"
#include "server_util.h"

#define GPT2 "tests/fixtures/decoders/gpt2"
#define QWEN "tests/fixtures/decoders/qwen2"
#define N_REQ 8

static const char *const prompts[N_REQ] = {"The quick brown fox",
                                           "Once upon a time",
                                           "In the beginning",
                                           "Hello",
                                           "A long time ago in a galaxy far",
                                           "Why",
                                           "The weather today is",
                                           "Numbers: 1, 2, 3,"};

/* Request i: its own seed and temperature (request 0 greedy). */
static ia_generate_request request(size_t i) {
    ia_generate_request r = ia_generate_request_default();
    r.prompt = prompts[i];
    r.max_tokens = 24 + 3 * i;
    r.sampling.temperature = i == 0 ? 0.0f : 0.5f + 0.15f * (float)i;
    r.sampling.top_p = i % 3 == 1 ? 0.9f : 1.0f;
    r.sampling.seed = 1000 + i;
    return r;
}

static bool same_result(const ia_generate_result *a, const ia_generate_result *b) {
    return a->n_tokens == b->n_tokens &&
           memcmp(a->tokens, b->tokens, a->n_tokens * sizeof *a->tokens) == 0 &&
           a->text_len == b->text_len && memcmp(a->text, b->text, a->text_len) == 0 &&
           a->finish == b->finish && a->prompt_tokens == b->prompt_tokens;
}

/* ---- runtime ----------------------------------------------------------------------------------
 */

static void sequences_equal_solo(const char *model, ia_dtype dtype, size_t slots) {
    ia_generator_options o = ia_generator_options_default();
    o.n_threads = 2;
    o.dtype = dtype;
    o.max_seqs = slots;
    ia_generator *g = NULL;
    CHECK_OK(ia_generator_load(test_source_path(model), &o, &g));
    if (!g)
        return;
    CHECK_EQ_INT(ia_generator_slots(g), slots);
    ia_generate_result solo[N_REQ], batched[N_REQ];
    memset(batched, 0, sizeof batched);
    /* a stop string from the middle of request 1's solo text */
    static char stop[8];
    const char *stops[1] = {stop};
    for (size_t i = 0; i < N_REQ; i++) {
        ia_generate_request r = request(i);
        if (i == 3 && solo[1].text_len > 8) {
            snprintf(stop, sizeof stop, "%.2s", solo[1].text + 6);
            r.prompt = prompts[1];
            r.sampling = request(1).sampling;
            r.stop = stops;
            r.n_stop = 1;
        }
        CHECK_OK(ia_generator_generate(g, &r, &solo[i]));
    }
    /* all eight through the slots: each joins when one leaves */
    ia_gen_seq *seq[N_REQ] = {0};
    ia_generate_request reqs[N_REQ];
    size_t next = 0, ended = 0, widest = 0, steps = 0;
    while (ended < N_REQ && steps < 10000) {
        while (next < N_REQ && ia_generator_active(g) < slots) {
            reqs[next] = request(next);
            if (next == 3 && solo[1].text_len > 8) {
                reqs[next].prompt = prompts[1];
                reqs[next].sampling = request(1).sampling;
                reqs[next].stop = stops;
                reqs[next].n_stop = 1;
            }
            CHECK_OK(ia_gen_seq_start(g, &reqs[next], &seq[next]));
            next++;
        }
        size_t n = 0;
        CHECK_OK(ia_generator_step(g, &n));
        widest = n > widest ? n : widest;
        steps++;
        for (size_t i = 0; i < next; i++)
            if (seq[i] && ia_gen_seq_done(seq[i])) {
                CHECK_OK(ia_gen_seq_end(seq[i], &batched[i]));
                seq[i] = NULL;
                ended++;
            }
    }
    CHECK_EQ_INT(ended, N_REQ);
    CHECK_EQ_INT(ia_generator_active(g), 0);
    fprintf(stderr, "  %s %s, %zu slots: %zu steps, widest decode batch %zu\n", model,
            ia_dtype_name(dtype), slots, steps, widest);
    CHECK(widest + 1 >= slots); /* they really ran together */
    if (solo[1].text_len > 8)
        fprintf(stderr, "  (request 3 stops at \"%s\")\n", stop);
    for (size_t i = 0; i < N_REQ; i++) {
        CHECK_MSG(same_result(&solo[i], &batched[i]),
                  "%s request %zu: batched '%s' (%zu tokens, %s) vs alone '%s' (%zu tokens, %s)",
                  model, i, batched[i].text ? batched[i].text : "", batched[i].n_tokens,
                  ia_finish_reason_name(batched[i].finish), solo[i].text ? solo[i].text : "",
                  solo[i].n_tokens, ia_finish_reason_name(solo[i].finish));
        ia_generate_result_free(&solo[i]);
        ia_generate_result_free(&batched[i]);
    }
    ia_generator_free(g);
}

TEST(runtime_sequences_equal_solo) {
    sequences_equal_solo(GPT2, IA_DTYPE_F32, 4);
    sequences_equal_solo(QWEN, IA_DTYPE_Q8_0, 8);
}

TEST(runtime_early_end_frees_the_slot) {
    ia_generator_options o = ia_generator_options_default();
    o.n_threads = 1;
    o.max_seqs = 2;
    ia_generator *g = NULL;
    CHECK_OK(ia_generator_load(test_source_path(GPT2), &o, &g));
    if (!g)
        return;
    ia_generate_request r0 = request(1), r1 = request(2), r2 = request(3);
    ia_gen_seq *a = NULL, *b = NULL, *c = NULL;
    CHECK_OK(ia_gen_seq_start(g, &r0, &a));
    CHECK_OK(ia_gen_seq_start(g, &r1, &b));
    CHECK_ERR(ia_gen_seq_start(g, &r2, &c), IA_ERANGE, "slots are in use");
    for (int i = 0; i < 4; i++)
        CHECK_OK(ia_generator_step(g, NULL));
    ia_generate_result ra, rb, rc, alone;
    CHECK(!ia_gen_seq_done(a));
    CHECK_OK(ia_gen_seq_end(a, &ra)); /* abandoned mid-way: cancelled */
    CHECK_EQ_INT(ra.finish, IA_FINISH_CANCELLED);
    CHECK(ra.n_tokens >= 2 && ra.n_tokens < r0.max_tokens);
    CHECK_OK(ia_gen_seq_start(g, &r2, &c)); /* its slot is free again */
    while (!ia_gen_seq_done(b) || !ia_gen_seq_done(c))
        CHECK_OK(ia_generator_step(g, NULL));
    CHECK_OK(ia_gen_seq_end(b, &rb));
    CHECK_OK(ia_gen_seq_end(c, &rc));
    CHECK_OK(ia_generator_generate(g, &r2, &alone));
    CHECK(same_result(&rc, &alone));
    ia_generate_result_free(&ra);
    ia_generate_result_free(&rb);
    ia_generate_result_free(&rc);
    ia_generate_result_free(&alone);
    ia_generator_free(g);
}

/* ---- HTTP --------------------------------------------------------------------------------------
 */

static ia_server *srv;
static uint16_t port;

static bool setup(void) {
    if (srv)
        return true;
    static char g[600];
    snprintf(g, sizeof g, "%s", test_source_path(GPT2));
    const char *models[] = {g};
    ia_server_options o = ia_server_options_default();
    o.parallel = 4;
    o.threads = 2;
    srv = start_server(models, 1, &o);
    port = srv ? ia_server_port(srv) : 0;
    return srv != NULL;
}

static char *body_for(size_t i, bool stream) {
    ia_generate_request r = request(i);
    json_t *b = json_pack("{s:s, s:s, s:i, s:f, s:f, s:I, s:b}", "model", "gpt2", "prompt",
                          r.prompt, "max_tokens", (int)r.max_tokens, "temperature",
                          (double)r.sampling.temperature, "top_p", (double)r.sampling.top_p, "seed",
                          (json_int_t)r.sampling.seed, "stream", stream);
    char *s = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    return s;
}

/* The completion's text of a plain answer, or of a stream's chunks joined. */
static char *completion_text(const http_resp *r, bool stream) {
    if (r->status != 200 || !r->body)
        return NULL;
    if (!stream) {
        json_t *j = json_loadb(r->body, r->len, 0, NULL);
        const char *t = json_string_value(
            json_object_get(json_array_get(json_object_get(j, "choices"), 0), "text"));
        char *out = t ? strdup(t) : NULL;
        json_decref(j);
        return out;
    }
    char *out = calloc(1, r->len + 1);
    for (const char *p = r->body; out && (p = strstr(p, "data: ")) != NULL;) {
        p += 6;
        const char *end = strstr(p, "\n\n");
        if (!end)
            break;
        json_t *j = json_loadb(p, (size_t)(end - p), 0, NULL);
        const char *t = json_string_value(
            json_object_get(json_array_get(json_object_get(j, "choices"), 0), "text"));
        if (t)
            strcat(out, t);
        json_decref(j);
        p = end;
    }
    return out;
}

typedef struct client {
    pthread_barrier_t *go;
    size_t i;
    bool stream;
    char *text;
    long status;
} client;

static void *client_run(void *arg) {
    client *c = arg;
    char *body = body_for(c->i, c->stream);
    pthread_barrier_wait(c->go);
    http_resp r = http_post(port, "/v1/completions", body);
    c->status = r.status;
    c->text = completion_text(&r, c->stream);
    http_free(&r);
    free(body);
    return NULL;
}

/* The metric's value from /metrics text ("" labels: the bare name). */
static double metric(const char *text, const char *name) {
    const char *p = text ? strstr(text, name) : NULL;
    return p ? atof(p + strlen(name)) : -1;
}

TEST(concurrent_completions_equal_sequential) {
    if (!setup())
        return;
    char *alone[N_REQ] = {0};
    for (size_t i = 0; i < N_REQ; i++) {
        char *body = body_for(i, false);
        http_resp r = http_post(port, "/v1/completions", body);
        CHECK_EQ_INT(r.status, 200);
        alone[i] = completion_text(&r, false);
        CHECK(alone[i] != NULL);
        http_free(&r);
        free(body);
    }
    /* the eight at once, plus a streamed copy of request 5 beside its plain one */
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, N_REQ + 1);
    client cl[N_REQ + 1];
    pthread_t th[N_REQ + 1];
    for (size_t i = 0; i <= N_REQ; i++) {
        cl[i] = (client){.go = &go, .i = i < N_REQ ? i : 5, .stream = i == N_REQ};
        pthread_create(&th[i], NULL, client_run, &cl[i]);
    }
    for (size_t i = 0; i <= N_REQ; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
    for (size_t i = 0; i <= N_REQ; i++) {
        const char *want = alone[cl[i].i];
        CHECK_EQ_INT(cl[i].status, 200);
        CHECK_MSG(cl[i].text && want && strcmp(cl[i].text, want) == 0,
                  "request %zu%s: concurrent '%s' vs alone '%s'", cl[i].i,
                  cl[i].stream ? " (streamed)" : "", cl[i].text ? cl[i].text : "(none)",
                  want ? want : "(none)");
        free(cl[i].text);
    }
    for (size_t i = 0; i < N_REQ; i++)
        free(alone[i]);
    http_resp m = http_get(port, "/metrics");
    double steps = metric(m.body, "\nia_generation_batch_sequences_count ");
    double single = metric(m.body, "\nia_generation_batch_sequences_bucket{le=\"1\"} ");
    double seqs = metric(m.body, "\nia_generation_batch_sequences_sum ");
    fprintf(stderr, "  %.0f decode steps, %.0f of one sequence, %.2f sequences a step\n", steps,
            single, steps > 0 ? seqs / steps : 0);
    CHECK_MSG(steps > single && single >= 0, "no step decoded more than one sequence");
    http_free(&m);
}

/* A streamed request whose client reads the first bytes and hangs up. */
static size_t hang_up(char *p, size_t size, size_t n, void *ctx) {
    (void)p;
    int *calls = ctx;
    return ++*calls > 1 ? 0 : size * n;
}

static void *abandon_stream(void *arg) {
    (void)arg;
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/completions", (unsigned)port);
    CURL *c = curl_easy_init();
    int calls = 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS,
                     "{\"model\":\"gpt2\",\"prompt\":\"Tell a long story\",\"max_tokens\":120,"
                     "\"temperature\":1,\"stream\":true}");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, hang_up);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &calls);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_perform(c);
    curl_easy_cleanup(c);
    return NULL;
}

TEST(cancelled_streams_free_their_slots) {
    if (!setup())
        return;
    /* every slot taken by a stream that is abandoned, twice over */
    for (int round = 0; round < 2; round++) {
        pthread_t th[4];
        for (int i = 0; i < 4; i++)
            pthread_create(&th[i], NULL, abandon_stream, NULL);
        for (int i = 0; i < 4; i++)
            pthread_join(th[i], NULL);
    }
    /* the slots are free: four requests at once all finish, with the texts
     * they give alone */
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 4);
    client cl[4];
    pthread_t th[4];
    for (size_t i = 0; i < 4; i++) {
        cl[i] = (client){.go = &go, .i = i};
        pthread_create(&th[i], NULL, client_run, &cl[i]);
    }
    for (size_t i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
    for (size_t i = 0; i < 4; i++) {
        CHECK_EQ_INT(cl[i].status, 200);
        char *body = body_for(i, false);
        http_resp r = http_post(port, "/v1/completions", body);
        char *want = completion_text(&r, false);
        CHECK(cl[i].text && want && strcmp(cl[i].text, want) == 0);
        free(want);
        http_free(&r);
        free(body);
        free(cl[i].text);
    }
    const char *needles[] = {"ia_streams_active 0", NULL};
    http_resp m = metrics_when(port, needles);
    CHECK(m.body && strstr(m.body, "ia_streams_active 0"));
    CHECK_MSG(metric(m.body, "\nia_requests_cancelled_total ") >= 1,
              "no abandoned stream was cancelled");
    http_free(&m);
}

TEST(zz_teardown) {
    ia_server_stop(srv);
    srv = NULL;
}
