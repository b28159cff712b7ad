/*
 * The generation routes: OpenAI /v1/completions and /v1/chat/completions
 * (JSON, or Server-Sent Events ending with `data: [DONE]`, with a usage chunk
 * when stream_options.include_usage), Ollama /api/generate and /api/chat
 * (NDJSON lines, the last one with Ollama's timing fields in nanoseconds).
 *
 * The connection thread renders the chat template, tokenises the prompt to
 * check it against the context and the limits, and queues one job. A
 * non-streamed request waits for the job (a client that hangs up cancels
 * it). A streamed one answers at once with a libmicrohttpd callback response:
 * the reader (stream_read, on the same connection thread) blocks until the
 * scheduler has appended new text to the job, formats it as the dialect's
 * chunk, and finishes with the closing chunk. When the client goes away MHD
 * frees the reader (stream_free), which cancels the job: the scheduler ends
 * its sequence before the next batched step and the slot takes the next
 * queued job (scheduler.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/server_internal.h"

static atomic_uint_fast64_t request_counter;

static const char *finish_name(ia_finish_reason f) {
    return f == IA_FINISH_LENGTH ? "length" : "stop";
}

/* What a streamed or plain answer needs to know about the request. */
typedef struct gen_info {
    ia_api_dialect d;
    bool chat, include_usage;
    char id[48];
    json_int_t created;
    char created_at[48]; /* Ollama's RFC 3339 time */
    double t0;
    const char *model;
} gen_info;

static void info_init(gen_info *g, srv_req *r, const srv_model *m, bool chat) {
    g->d = r->dialect;
    g->chat = chat;
    g->t0 = r->t0;
    g->model = m->id;
    uint64_t n = atomic_fetch_add(&request_counter, 1) + 1;
    snprintf(g->id, sizeof g->id, "%s-%" PRIx64 "%06" PRIx64, chat ? "chatcmpl" : "cmpl",
             (uint64_t)time(NULL), n);
    g->created = (json_int_t)time(NULL);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(g->created_at, sizeof g->created_at, "%s.%09ldZ", base, ts.tv_nsec);
}

static json_t *usage_json(const ia_generate_result *res) {
    return json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)res->prompt_tokens,
                     "completion_tokens", (json_int_t)res->n_tokens, "total_tokens",
                     (json_int_t)(res->prompt_tokens + res->n_tokens));
}

/* Ollama's closing fields: durations in nanoseconds. */
static void ollama_timings(json_t *o, const gen_info *g, const srv_job *job) {
    const ia_generate_result *res = &job->result;
    json_object_set_new(o, "done_reason", json_string(finish_name(res->finish)));
    json_object_set_new(o, "total_duration",
                        json_integer((json_int_t)((ia_time_now() - g->t0) * 1e9)));
    json_object_set_new(o, "load_duration", json_integer(0));
    json_object_set_new(o, "prompt_eval_count", json_integer((json_int_t)res->prompt_tokens));
    json_object_set_new(o, "prompt_eval_duration",
                        json_integer((json_int_t)(res->prefill_ms * 1e6)));
    json_object_set_new(o, "eval_count", json_integer((json_int_t)res->n_tokens));
    json_object_set_new(o, "eval_duration", json_integer((json_int_t)(res->decode_ms * 1e6)));
}

json_t *srv_openai_chunk(const char *id, const char *model, json_int_t created, bool chat,
                         const char *text, size_t len, const char *finish, bool role) {
    json_t *choice;
    if (chat) {
        json_t *delta = json_object();
        if (role)
            json_object_set_new(delta, "role", json_string("assistant"));
        if (text)
            json_object_set_new(delta, "content", json_stringn(text, len));
        choice = json_pack("{s:i, s:o, s:n, s:o}", "index", 0, "delta", delta, "logprobs",
                           "finish_reason", finish ? json_string(finish) : json_null());
    } else {
        choice = json_pack("{s:i, s:o, s:n, s:o}", "index", 0, "text",
                           json_stringn(text ? text : "", text ? len : 0), "logprobs",
                           "finish_reason", finish ? json_string(finish) : json_null());
    }
    return json_pack("{s:s, s:s, s:I, s:s, s:[o]}", "id", id, "object",
                     chat ? "chat.completion.chunk" : "text_completion", "created", created,
                     "model", model, "choices", choice);
}

json_t *srv_openai_usage_chunk(const char *id, const char *model, json_int_t created, bool chat,
                               json_t *usage) {
    return json_pack("{s:s, s:s, s:I, s:s, s:[], s:o}", "id", id, "object",
                     chat ? "chat.completion.chunk" : "text_completion", "created", created,
                     "model", model, "choices", "usage", usage);
}

static json_t *openai_chunk(const gen_info *g, const char *text, size_t len, const char *finish,
                            bool role) {
    return srv_openai_chunk(g->id, g->model, g->created, g->chat, text, len, finish, role);
}

static json_t *ollama_line(const gen_info *g, const char *text, size_t len, bool done) {
    json_t *o = json_pack("{s:s, s:s}", "model", g->model, "created_at", g->created_at);
    if (g->chat)
        json_object_set_new(o, "message",
                            json_pack("{s:s, s:o}", "role", "assistant", "content",
                                      json_stringn(text ? text : "", text ? len : 0)));
    else
        json_object_set_new(o, "response", json_stringn(text ? text : "", text ? len : 0));
    json_object_set_new(o, "done", json_boolean(done));
    return o;
}

/* ---- streaming ------------------------------------------------------------------- */

bool srv_buf_add(srv_buf *b, const char *p, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return false;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return true;
}

bool srv_buf_take_locked(srv_buf *pending, srv_buf *taken, pthread_mutex_t *mu, pthread_cond_t *cv,
                         const bool *done) {
    while (!pending->len && !*done) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L)
            ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(cv, mu, &ts);
    }
    srv_buf spare = *taken;
    *taken = *pending;
    spare.len = 0;
    *pending = spare;
    return *done;
}

size_t srv_buf_drain(srv_buf *b, size_t *off, char *dst, size_t max) {
    if (*off >= b->len)
        return 0;
    size_t n = b->len - *off;
    if (n > max)
        n = max;
    memcpy(dst, b->data + *off, n);
    *off += n;
    if (*off == b->len)
        *off = b->len = 0;
    return n;
}

bool srv_buf_add_json(srv_buf *b, json_t *v, bool sse) {
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (!text)
        return false;
    bool ok = (!sse || srv_buf_add(b, "data: ", 6)) && srv_buf_add(b, text, strlen(text)) &&
              srv_buf_add(b, sse ? "\n\n" : "\n", sse ? 2 : 1);
    free(text);
    return ok;
}

typedef struct stream_state {
    ia_server *srv;
    srv_model *m; /* holds one of its stream slots (srv_stream_acquire) */
    srv_job *job;
    gen_info g;
    int phase;   /* 0: opening chunk due, 1: text, 2: all sent */
    srv_buf out; /* formatted bytes not yet handed to MHD, from out_off */
    size_t out_off;
    srv_buf taken; /* text taken from the job */
} stream_state;

/* Frames a JSON value (stolen) as an SSE event or an NDJSON line. */
static bool out_json(stream_state *s, json_t *v) {
    return srv_buf_add_json(&s->out, v, s->g.d == IA_API_OPENAI);
}

static bool out_closing(stream_state *s) {
    srv_job *job = s->job;
    bool sse = s->g.d == IA_API_OPENAI;
    if (job->status != IA_OK) {
        json_t *err =
            sse ? json_pack("{s:{s:s, s:s, s:n, s:n}}", "error", "message", job->error, "type",
                            job->http_status >= 500 ? "server_error" : "invalid_request_error",
                            "param", "code")
                : json_pack("{s:s}", "error", job->error);
        if (!out_json(s, err))
            return false;
        return !sse || srv_buf_add(&s->out, "data: [DONE]\n\n", 14);
    }
    if (!sse) {
        json_t *o = ollama_line(&s->g, NULL, 0, true);
        ollama_timings(o, &s->g, job);
        return out_json(s, o);
    }
    if (!out_json(s, openai_chunk(&s->g, NULL, 0, finish_name(job->result.finish), false)))
        return false;
    if (s->g.include_usage) {
        json_t *u = srv_openai_usage_chunk(s->g.id, s->g.model, s->g.created, s->g.chat,
                                           usage_json(&job->result));
        if (!out_json(s, u))
            return false;
    }
    return srv_buf_add(&s->out, "data: [DONE]\n\n", 14);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream_state *s = cls;
    for (;;) {
        size_t n = srv_buf_drain(&s->out, &s->out_off, buf, max);
        if (n)
            return (ssize_t)n;
        if (s->phase == 2)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (s->phase == 0) {
            s->phase = 1;
            if (s->g.d == IA_API_OPENAI && s->g.chat &&
                !out_json(s, openai_chunk(&s->g, "", 0, NULL, true)))
                return MHD_CONTENT_READER_END_WITH_ERROR;
            continue;
        }
        srv_job *job = s->job;
        pthread_mutex_lock(&job->mu);
        bool done = srv_buf_take_locked(&job->pending, &s->taken, &job->mu, &job->cv, &job->done);
        pthread_mutex_unlock(&job->mu);
        const char *text = s->taken.data;
        size_t len = s->taken.len;
        bool ok = true;
        if (len)
            ok = out_json(s, s->g.d == IA_API_OPENAI ? openai_chunk(&s->g, text, len, NULL, false)
                                                     : ollama_line(&s->g, text, len, false));
        if (ok && done) {
            ok = out_closing(s);
            s->phase = 2;
        }
        if (!ok)
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
}

static void stream_free(void *cls) {
    stream_state *s = cls;
    atomic_store(&s->job->cancelled, true); /* no-op when it finished */
    srv_job_unref(s->job);
    srv_stream_release(s->m);
    free(s->out.data);
    free(s->taken.data);
    free(s);
}

/* ---- the request --------------------------------------------------------------------------- */

static uint64_t fresh_seed(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^
                 (atomic_fetch_add(&request_counter, 1) * 0x9e3779b97f4a7c15ull);
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    return x ^ (x >> 29);
}

/* The prompt the generator sees: a rendered chat, Ollama generate's prompt
 * through the template, or the text as given. */
static int build_prompt(srv_req *r, srv_model *m, ia_gen_request *q, srv_job *job) {
    bool templated = q->chat || (r->dialect == IA_API_OLLAMA && !q->raw && m->tmpl);
    if (!templated) {
        job->prompt = q->prompt;
        q->prompt = NULL;
        job->raw = false;
        return 200;
    }
    if (!m->tmpl)
        return srv_send_error(r, 400, "messages", NULL,
                              "model '%s' has no chat template; use the completions route", m->id);
    size_t n = q->chat ? q->n_messages : 1 + (q->system != NULL);
    ia_chat_message *msgs = ia_calloc(n, sizeof *msgs);
    if (!msgs)
        return srv_send_error(r, 500, NULL, NULL, "out of memory");
    if (q->chat) {
        for (size_t i = 0; i < n; i++)
            msgs[i] = (ia_chat_message){q->messages[i].role, q->messages[i].content};
    } else {
        size_t k = 0;
        if (q->system)
            msgs[k++] = (ia_chat_message){"system", q->system};
        msgs[k] = (ia_chat_message){"user", q->prompt};
    }
    ia_status st = ia_chat_template_render(m->tmpl, msgs, n, true, &job->prompt);
    free(msgs);
    if (st)
        return srv_send_error(r, 400, "messages", NULL, "%s", ia_error_message());
    job->raw = true;
    job->extra_eos = m->end_id;
    return 200;
}

static int answer_plain(srv_req *r, const gen_info *g, srv_job *job) {
    const ia_generate_result *res = &job->result;
    const char *text = res->text ? res->text : "";
    json_t *body;
    if (g->d == IA_API_OLLAMA) {
        body = ollama_line(g, text, res->text_len, true);
        ollama_timings(body, g, job);
    } else if (g->chat) {
        body = json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:{s:s, s:s%}, s:n, s:s}], s:o}", "id",
                         g->id, "object", "chat.completion", "created", g->created, "model",
                         g->model, "choices", "index", 0, "message", "role", "assistant", "content",
                         text, res->text_len, "logprobs", "finish_reason", finish_name(res->finish),
                         "usage", usage_json(res));
    } else {
        body = json_pack("{s:s, s:s, s:I, s:s, s:[{s:s%, s:i, s:n, s:s}], s:o}", "id", g->id,
                         "object", "text_completion", "created", g->created, "model", g->model,
                         "choices", "text", text, res->text_len, "index", 0, "logprobs",
                         "finish_reason", finish_name(res->finish), "usage", usage_json(res));
    }
    return srv_send_json(r, 200, body);
}

static int generate_route(srv_req *r, bool chat) {
    ia_gen_request q;
    char why[1024], param[64];
    int st = ia_server_parse_generate(r->dialect, chat, r->body, r->body_len, &q, why, sizeof why,
                                      param, sizeof param);
    if (st != 200)
        return srv_send_error(r, st, param, NULL, "%s", why);
    int ret = MHD_NO;
    srv_job *job = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (!q.model) {
        ret = srv_send_error(r, 400, "model", NULL, "'model' is required");
        goto done;
    }
    srv_model *m = srv_model_find(r, q.model, SRV_GENERATOR, &ret);
    if (!m)
        goto done;
    if (!(job = srv_job_new(SRV_JOB_GENERATE))) {
        ret = srv_send_error(r, 500, NULL, NULL, "out of memory");
        goto done;
    }
    if ((st = build_prompt(r, m, &q, job)) != 200) {
        ret = st; /* build_prompt answered */
        goto done;
    }
    if (ia_generator_tokenize(m->gen, job->prompt, strlen(job->prompt), job->raw, &ids, &n_ids)) {
        ret = srv_send_error(r, 400, chat ? "messages" : "prompt", NULL, "%s", ia_error_message());
        goto done;
    }
    if (n_ids == 0) {
        ret = srv_send_error(r, 400, chat ? "messages" : "prompt", NULL,
                             "the prompt is empty and model '%s' adds no BOS token to start from",
                             m->id);
        goto done;
    }
    size_t lim = m->context, cfg = r->srv->opts.max_input_tokens;
    if (cfg && cfg < lim)
        lim = cfg;
    if (n_ids >= lim) {
        ret = srv_send_error(r, 400, chat ? "messages" : "prompt", "context_length_exceeded",
                             "the prompt has %zu tokens; this model takes at most %zu, leaving "
                             "room for at least one new token",
                             n_ids, lim - 1);
        goto done;
    }
    size_t room = m->context - n_ids, cap = r->srv->opts.max_tokens;
    if (q.max_tokens > 0 && (size_t)q.max_tokens > cap) {
        ret =
            srv_send_error(r, 400, "max_tokens", NULL,
                           "max_tokens is %ld; this server allows at most %zu", q.max_tokens, cap);
        goto done;
    }
    size_t want = q.max_tokens > 0                         ? (size_t)q.max_tokens
                  : (r->dialect == IA_API_OPENAI && !chat) ? 16 /* OpenAI's default */
                                                           : cap;
    job->max_tokens = want < room ? want : room;
    job->sampling.temperature = (float)q.temperature;
    job->sampling.top_p = (float)q.top_p;
    job->sampling.top_k = (int)q.top_k;
    job->sampling.min_p = (float)q.min_p;
    job->sampling.repeat_penalty = (float)q.repeat_penalty;
    job->sampling.seed = q.has_seed ? q.seed : fresh_seed();
    for (size_t i = 0; i < q.n_stop; i++) {
        job->stop[i] = q.stop[i];
        q.stop[i] = NULL;
    }
    job->n_stop = q.n_stop;
    q.n_stop = 0;
    job->prio = r->prio;
    job->deadline = r->t0 + r->srv->opts.timeout_ms / 1000.0;

    gen_info g = {0};
    info_init(&g, r, m, chat);
    g.include_usage = q.include_usage;
    if (!q.stream) {
        srv_job *fin = srv_run_job(r, m, job, &ret);
        job = NULL;
        if (fin) {
            ret = answer_plain(r, &g, fin);
            srv_job_unref(fin);
        }
        goto done;
    }
    if (!srv_stream_acquire(r, m, &ret))
        goto done;
    if (!srv_model_submit(m, job)) {
        srv_stream_release(m);
        srv_metrics_count(&r->srv->metrics, &r->srv->metrics.rejected_full);
        ret = srv_send_error(r, 429, NULL, "rate_limit_exceeded",
                             "model '%s' has %zu requests waiting, its limit; retry later", m->id,
                             r->srv->opts.max_queue);
        goto done;
    }
    stream_state *s = ia_calloc(1, sizeof *s);
    struct MHD_Response *resp =
        s ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, s, stream_free)
          : NULL;
    if (!resp) {
        atomic_store(&job->cancelled, true);
        srv_stream_release(m);
        free(s);
        ret = MHD_NO;
        goto done;
    }
    s->srv = r->srv;
    s->m = m;
    s->job = job; /* the handler's reference moves to the stream */
    job = NULL;
    s->g = g;
    MHD_add_response_header(resp, "Content-Type",
                            r->dialect == IA_API_OPENAI ? "text/event-stream"
                                                        : "application/x-ndjson");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    r->status = 200;
    ret = MHD_queue_response(r->conn, 200, resp);
    MHD_destroy_response(resp);
done:
    free(ids);
    srv_job_unref(job);
    ia_gen_request_free(&q);
    return ret;
}

int srv_handle_completions(srv_req *r) { return generate_route(r, false); }
int srv_handle_chat(srv_req *r) { return generate_route(r, true); }
int srv_handle_ollama_generate(srv_req *r) { return generate_route(r, false); }
int srv_handle_ollama_chat(srv_req *r) { return generate_route(r, true); }
