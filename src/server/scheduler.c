/*
 * One scheduler thread per model: it loads the model, then takes jobs from a
 * bounded queue with three priorities (X-Priority high, normal, low; FIFO
 * within one) and is the only thread that touches the model.
 *
 * Embedding jobs arrive tokenised. The scheduler pops the first job and keeps
 * taking the next ones while they are embedding jobs whose tokens still fit
 * the batch budget (--max-batch-tokens); when the queue runs dry below the
 * budget it waits up to --batch-wait for more, then runs the whole batch as
 * one ia_embedder_embed_ids call and hands each job its rows. The embedder
 * computes every sequence on its own (packed batches, no padding), so a
 * request's vectors do not depend on what it was batched with; the tests
 * check that bit for bit.
 *
 * A model is either an embedder or a generator. A generator runs jobs
 * continuously batched (src/runtime/generate_batch.c): it has --parallel
 * slots, each a KV cache; queued jobs join free slots in priority order
 * between steps, and each step advances every slot's sequence at once (one
 * batched decode for all, the next prompt chunk of any still prefilling).
 * Each new piece of text is appended to the job's pending buffer for the
 * streaming reader (generate.c). A job whose client went away, whose
 * deadline passed, or whose server is stopping leaves before the next step
 * and frees its slot; a finished one leaves after the step that finished it.
 *
 * A full queue refuses at once (the handler answers 429 with Retry-After),
 * so a slow model pushes back instead of queueing forever.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "server/server_internal.h"

/* Generation slots per model when --parallel is not given (llama.cpp's
 * server has the same option and meaning). */
#define SRV_DEFAULT_PARALLEL 4

/* ---- jobs ----------------------------------------------------------------------------------- */

srv_job *srv_job_new(srv_job_kind kind) {
    srv_job *job = ia_calloc(1, sizeof *job);
    if (!job)
        return NULL;
    job->kind = kind;
    job->prio = SRV_PRIO_NORMAL;
    atomic_init(&job->refs, 1);
    atomic_init(&job->cancelled, false);
    job->extra_eos = -1;
    job->sampling = ia_sampling_default();
    pthread_mutex_init(&job->mu, NULL);
    pthread_cond_init(&job->cv, NULL);
    return job;
}

void srv_job_unref(srv_job *job) {
    if (!job || atomic_fetch_sub(&job->refs, 1) != 1)
        return;
    free(job->ids);
    free(job->seq_start);
    free(job->out);
    free(job->prompt);
    for (size_t i = 0; i < job->n_stop; i++)
        free(job->stop[i]);
    free(job->pending.data);
    ia_generate_result_free(&job->result);
    pthread_mutex_destroy(&job->mu);
    pthread_cond_destroy(&job->cv);
    free(job);
}

void srv_job_finish(srv_job *job, ia_status st, int http_status, const char *msg) {
    pthread_mutex_lock(&job->mu);
    job->status = st;
    job->http_status = http_status;
    if (msg)
        snprintf(job->error, sizeof job->error, "%s", msg);
    job->t_done = ia_time_now();
    job->done = true;
    pthread_cond_broadcast(&job->cv);
    pthread_mutex_unlock(&job->mu);
}

static void abstime_in(struct timespec *ts, double seconds) {
    clock_gettime(CLOCK_REALTIME, ts);
    long ns = ts->tv_nsec + (long)(seconds * 1e9);
    ts->tv_sec += ns / 1000000000L;
    ts->tv_nsec = ns % 1000000000L;
}

bool srv_job_wait(srv_job *job, struct MHD_Connection *conn) {
    pthread_mutex_lock(&job->mu);
    while (!job->done) {
        struct timespec ts;
        abstime_in(&ts, 0.05);
        pthread_cond_timedwait(&job->cv, &job->mu, &ts);
        if (job->done)
            break;
        pthread_mutex_unlock(&job->mu);
        bool gone = conn && srv_peer_closed(conn);
        bool late = ia_time_now() > job->deadline;
        if (gone || late)
            atomic_store(&job->cancelled, true);
        pthread_mutex_lock(&job->mu);
        if (late && !job->done) { /* give up; the scheduler drops it when it gets there */
            pthread_mutex_unlock(&job->mu);
            return false;
        }
    }
    pthread_mutex_unlock(&job->mu);
    return true;
}

/* ---- the queue ------------------------------------------------------------------- */

bool srv_model_submit(srv_model *m, srv_job *job) {
    pthread_mutex_lock(&m->mu);
    if (m->stop || m->depth >= m->srv->opts.max_queue) {
        pthread_mutex_unlock(&m->mu);
        return false;
    }
    atomic_fetch_add(&job->refs, 1);
    job->t_enqueue = ia_time_now();
    job->next = NULL;
    srv_prio p = job->prio;
    if (m->tail[p])
        m->tail[p]->next = job;
    else
        m->head[p] = job;
    m->tail[p] = job;
    m->depth++;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
    return true;
}

static srv_job *peek_locked(srv_model *m) {
    for (int p = 0; p < SRV_PRIO_COUNT; p++)
        if (m->head[p])
            return m->head[p];
    return NULL;
}

static srv_job *pop_locked(srv_model *m) {
    for (int p = 0; p < SRV_PRIO_COUNT; p++) {
        srv_job *j = m->head[p];
        if (!j)
            continue;
        m->head[p] = j->next;
        if (!m->head[p])
            m->tail[p] = NULL;
        j->next = NULL;
        m->depth--;
        return j;
    }
    return NULL;
}

/* ---- loading --------------------------------------------------------------------- */

static ia_status load_model(srv_model *m) {
    const ia_server_options *o = &m->srv->opts;
    ia_status st;
    if (m->kind == SRV_EMBEDDER) {
        ia_pool *pool = NULL;
        ia_embedder_options eo = ia_embedder_options_default();
        eo.n_threads = o->threads;
        eo.batch_tokens = o->max_batch_tokens;
        eo.dtype = o->dtype;
        eo.weight_type = o->weight_type;
        eo.weight_type_ctx = o->weight_type_ctx;
        if ((st = ia_pool_global(&pool)) ||
            (st = ia_pool_acquire_embedder(pool, m->path, &eo, &m->handle)))
            return st;
        m->emb = ia_pool_handle_get(m->handle);
        m->bytes = ia_pool_handle_bytes(m->handle);
        m->dim = ia_embedder_dim(m->emb);
        m->max_length = ia_embedder_max_length(m->emb);
        m->tok = ia_embedder_tokenizer(m->emb);
        return m->tok ? IA_OK : ia_error_set(IA_EINVAL, "%s: the model has no tokenizer", m->path);
    }
    ia_generator_options go = ia_generator_options_default();
    go.n_threads = o->threads;
    go.max_seqs = o->parallel ? o->parallel : SRV_DEFAULT_PARALLEL;
    go.dtype = o->dtype;
    go.kv_dtype = o->kv_dtype;
    go.context = o->context;
    if ((st = ia_generator_load(m->path, &go, &m->gen)))
        return st;
    /* size for /api/tags: the weights file (sharded directories: the first) */
    struct stat sb;
    char *weights = ia_path_join(m->path, "model.safetensors");
    if (stat(m->path, &sb) == 0 && S_ISREG(sb.st_mode))
        m->bytes = (uint64_t)sb.st_size;
    else if (weights && stat(weights, &sb) == 0)
        m->bytes = (uint64_t)sb.st_size;
    free(weights);
    m->tok = ia_generator_tokenizer(m->gen);
    m->context = ia_generator_context(m->gen);
    m->max_length = m->context;
    m->tmpl = ia_generator_chat_template(m->gen);
    if (m->tmpl)
        m->end_id = ia_tokenizer_token_to_id(m->tok, ia_chat_template_end_of_turn(m->tmpl));
    ia_error_clear();
    return IA_OK;
}

/* ---- running --------------------------------------------------------------------- */

/* A job that should not run: cancelled, or past its deadline while queued. */
static bool drop_if_dead(srv_model *m, srv_job *job) {
    if (atomic_load(&job->cancelled)) {
        srv_metrics_count(&m->srv->metrics, &m->srv->metrics.cancelled);
        srv_job_finish(job, IA_EIO, 499, "the request was cancelled");
        return true;
    }
    if (ia_time_now() > job->deadline) {
        srv_metrics_count(&m->srv->metrics, &m->srv->metrics.timeouts);
        srv_job_finish(job, IA_EIO, 504, "the request timed out waiting in the queue");
        return true;
    }
    return false;
}

static void run_embed_batch(srv_model *m, srv_job **jobs, size_t n) {
    size_t total_seq = 0, total_tok = 0, live = 0;
    double now = ia_time_now();
    for (size_t i = 0; i < n; i++) {
        if (drop_if_dead(m, jobs[i])) {
            jobs[i] = NULL;
            continue;
        }
        srv_metrics_wait(&m->srv->metrics, now - jobs[i]->t_enqueue);
        jobs[i]->t_start = now;
        total_seq += jobs[i]->n_seq;
        total_tok += jobs[i]->n_tokens;
        live++;
    }
    if (!live)
        return;
    /* A request gets the same bits alone as in any batch: the kernels give
     * each row of a product the same bits whatever the number of rows
     * (src/kernels/cpu/gemm.c; tests/server/test_embed.c checks it here). */
    int32_t *ids = ia_malloc_array(total_tok, sizeof *ids);
    int32_t *starts = ia_malloc_array(total_seq + 1, sizeof *starts);
    float *out = ia_malloc_array(total_seq, m->dim * sizeof(float));
    ia_status st = ids && starts && out ? IA_OK : IA_ENOMEM;
    if (st == IA_OK) {
        size_t s = 0, t = 0;
        starts[0] = 0;
        for (size_t i = 0; i < n; i++) {
            srv_job *j = jobs[i];
            if (!j)
                continue;
            memcpy(ids + t, j->ids, j->n_tokens * sizeof *ids);
            for (size_t k = 0; k < j->n_seq; k++)
                starts[s + k + 1] = (int32_t)(t + (size_t)j->seq_start[k + 1]);
            s += j->n_seq;
            t += j->n_tokens;
        }
        st = ia_embedder_embed_ids(m->emb, ids, NULL, starts, total_seq, out);
    }
    srv_metrics_batch(&m->srv->metrics, total_seq, total_tok);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", st ? ia_error_message() : "");
    size_t row = 0;
    for (size_t i = 0; i < n; i++) {
        srv_job *j = jobs[i];
        if (!j)
            continue;
        if (st == IA_OK) {
            memcpy(j->out, out + row * m->dim, j->n_seq * m->dim * sizeof(float));
            srv_metrics_tokens(&m->srv->metrics, j->n_tokens, 0);
        }
        row += j->n_seq;
        srv_job_finish(j, st, st ? 500 : 200, st ? msg : NULL);
    }
    free(ids);
    free(starts);
    free(out);
}

/* ---- generation: continuous batching ----------------------------------------------------- */

/* A generation job in one of the generator's slots. */
typedef struct gen_active {
    srv_model *m;
    srv_job *job; /* NULL: the slot is free */
    ia_gen_seq *seq;
} gen_active;

/* Should a running job stop: its client went away, its deadline passed, or
 * the server is stopping. */
static bool gen_abandoned(const gen_active *a) {
    return atomic_load(&a->job->cancelled) || ia_time_now() > a->job->deadline ||
           atomic_load(&a->m->srv->stopping);
}

/* The sequence's text callback: appends to the job's pending buffer for the
 * streaming reader (generate.c) and wakes it. */
static bool on_piece(void *ctx, const char *piece, size_t len) {
    gen_active *a = ctx;
    srv_job *job = a->job;
    pthread_mutex_lock(&job->mu);
    if (job->t_first == 0) {
        job->t_first = ia_time_now();
        srv_metrics_ttft(&a->m->srv->metrics, job->t_first - job->t_enqueue);
    }
    bool ok = srv_buf_add(&job->pending, piece, len);
    pthread_cond_broadcast(&job->cv);
    pthread_mutex_unlock(&job->mu);
    return ok && !gen_abandoned(a);
}

/* Starts a queued job's sequence in slot a; false (the job finished and
 * released) when it does not start. */
static bool gen_admit(srv_model *m, gen_active *a, srv_job *job) {
    if (drop_if_dead(m, job)) {
        srv_job_unref(job);
        return false;
    }
    double now = ia_time_now();
    srv_metrics_wait(&m->srv->metrics, now - job->t_enqueue);
    job->t_start = now;
    a->m = m;
    a->job = job;
    ia_generate_request req = ia_generate_request_default();
    req.prompt = job->prompt;
    req.raw_prompt = job->raw;
    req.max_tokens = job->max_tokens;
    req.sampling = job->sampling;
    req.stop = (const char *const *)job->stop;
    req.n_stop = job->n_stop;
    req.extra_eos = job->extra_eos;
    req.on_text = on_piece;
    req.ctx = a;
    ia_status st = ia_gen_seq_start(m->gen, &req, &a->seq);
    if (st != IA_OK) {
        /* the request's own fault (a prompt the model cannot take) or ours */
        srv_job_finish(job, st, st == IA_ERANGE || st == IA_EINVAL ? 400 : 500, ia_error_message());
        srv_job_unref(job);
        a->job = NULL;
        return false;
    }
    return true;
}

/* Ends slot a's sequence (done, or abandoned: cancelled), hands the job its
 * result and frees the slot. */
static void gen_retire(gen_active *a) {
    srv_model *m = a->m;
    srv_job *job = a->job;
    ia_generate_result res;
    ia_status st = ia_gen_seq_end(a->seq, &res);
    srv_metrics_tokens(&m->srv->metrics, res.prompt_tokens, res.n_tokens);
    ia_finish_reason finish = res.finish;
    pthread_mutex_lock(&job->mu);
    job->result = res;
    pthread_mutex_unlock(&job->mu);
    if (st != IA_OK) {
        srv_job_finish(job, st, st == IA_ERANGE || st == IA_EINVAL ? 400 : 500, ia_error_message());
    } else if (finish == IA_FINISH_CANCELLED && ia_time_now() > job->deadline) {
        srv_metrics_count(&m->srv->metrics, &m->srv->metrics.timeouts);
        srv_job_finish(job, IA_EIO, 504, "the request timed out while generating");
    } else {
        if (finish == IA_FINISH_CANCELLED)
            srv_metrics_count(&m->srv->metrics, &m->srv->metrics.cancelled);
        srv_job_finish(job, IA_OK, 200, NULL);
    }
    srv_job_unref(job);
    a->job = NULL;
    a->seq = NULL;
}

/* The generator's loop: queued jobs join free slots (priority order), every
 * slot's sequence advances one step together, finished or abandoned ones
 * leave. Returns with m->mu held, once stopping, every slot retired. */
static void generator_loop(srv_model *m) {
    size_t n_slots = ia_generator_slots(m->gen), n_active = 0;
    gen_active *act = ia_calloc(n_slots, sizeof *act);
    pthread_mutex_lock(&m->mu);
    while (act) {
        while (!m->stop && m->depth == 0 && n_active == 0)
            pthread_cond_wait(&m->cv, &m->mu);
        if (m->stop)
            break;
        for (size_t k = 0; k < n_slots && m->depth > 0; k++) {
            if (act[k].job)
                continue;
            srv_job *job = pop_locked(m);
            pthread_mutex_unlock(&m->mu);
            n_active += gen_admit(m, &act[k], job);
            pthread_mutex_lock(&m->mu);
        }
        pthread_mutex_unlock(&m->mu);
        /* a client that went away or a deadline that passed frees its slot
         * before the step rather than after it */
        for (size_t k = 0; k < n_slots; k++)
            if (act[k].job && gen_abandoned(&act[k])) {
                gen_retire(&act[k]);
                n_active--;
            }
        size_t batch = 0;
        if (n_active)
            ia_generator_step(m->gen, &batch);
        if (batch)
            srv_metrics_gen_batch(&m->srv->metrics, batch);
        for (size_t k = 0; k < n_slots; k++)
            if (act[k].job && ia_gen_seq_done(act[k].seq)) {
                gen_retire(&act[k]);
                n_active--;
            }
        pthread_mutex_lock(&m->mu);
    }
    pthread_mutex_unlock(&m->mu);
    for (size_t k = 0; act && k < n_slots; k++)
        if (act[k].job)
            gen_retire(&act[k]); /* stopping: ends as cancelled */
    free(act);
    pthread_mutex_lock(&m->mu);
}

/* ---- the model's thread ---------------------------------------------------------------- */

#define MAX_BATCH_JOBS 1024

/* The embedder's loop: batches of embedding jobs by token budget. Returns
 * with m->mu held, once stopping. */
static void embedder_loop(srv_model *m) {
    ia_server *srv = m->srv;
    srv_job **batch = ia_malloc_array(MAX_BATCH_JOBS, sizeof *batch);
    double wait_s = srv->opts.batch_wait_us / 1e6;
    pthread_mutex_lock(&m->mu);
    for (;;) {
        while (!m->stop && m->depth == 0)
            pthread_cond_wait(&m->cv, &m->mu);
        if (m->stop || !batch)
            break;
        srv_job *job = pop_locked(m);
        size_t n = 0, tokens = job->n_tokens;
        batch[n++] = job;
        double until = ia_time_now() + wait_s;
        while (n < MAX_BATCH_JOBS && tokens < srv->opts.max_batch_tokens && !m->stop) {
            srv_job *next = peek_locked(m);
            if (next) {
                if (next->kind != SRV_JOB_EMBED ||
                    tokens + next->n_tokens > srv->opts.max_batch_tokens)
                    break;
                batch[n++] = pop_locked(m);
                tokens += next->n_tokens;
                continue;
            }
            if (ia_time_now() >= until)
                break;
            struct timespec ts;
            abstime_in(&ts, until - ia_time_now());
            pthread_cond_timedwait(&m->cv, &m->mu, &ts);
        }
        pthread_mutex_unlock(&m->mu);
        run_embed_batch(m, batch, n);
        for (size_t i = 0; i < n; i++)
            srv_job_unref(batch[i]);
        pthread_mutex_lock(&m->mu);
    }
    free(batch);
}

static void *model_thread(void *arg) {
    srv_model *m = arg;
    ia_server *srv = m->srv;
    ia_status st = load_model(m);
    pthread_mutex_lock(&srv->ready_mu);
    if (st) {
        snprintf(m->error, sizeof m->error, "%s: %s", m->id, ia_error_message());
        ia_log(IA_LOG_ERROR, "serve: cannot load %s", m->error);
        atomic_store(&m->state, SRV_FAILED);
    } else {
        if (m->kind == SRV_EMBEDDER)
            ia_log(IA_LOG_INFO, "serve: model '%s' ready (embeddings, dtype %s)", m->id, m->dtype);
        else
            ia_log(IA_LOG_INFO,
                   "serve: model '%s' ready (generation, dtype %s, kv-cache %s, "
                   "context %zu)",
                   m->id, m->dtype, ia_dtype_name(srv->opts.kv_dtype), m->context);
        atomic_store(&m->state, SRV_READY);
    }
    pthread_cond_broadcast(&srv->ready_cv);
    pthread_mutex_unlock(&srv->ready_mu);

    if (st != IA_OK)
        pthread_mutex_lock(&m->mu);
    else if (m->kind == SRV_GENERATOR)
        generator_loop(m);
    else
        embedder_loop(m);
    /* Stopping (or the model failed): fail whatever still waits. */
    m->stop = true;
    srv_job *job;
    while ((job = pop_locked(m))) {
        srv_job_finish(job, IA_EIO, 503, "the server is stopping");
        srv_job_unref(job);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

ia_status srv_model_start(srv_model *m) {
    atomic_store(&m->state, SRV_LOADING);
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    m->sync_init = true;
    if (pthread_create(&m->thread, NULL, model_thread, m) != 0)
        return ia_error_set(IA_EIO, "serve: cannot start the thread of model '%s'", m->id);
    m->thread_started = true;
    return IA_OK;
}

void srv_model_stop(srv_model *m) {
    if (!m->thread_started)
        return;
    pthread_mutex_lock(&m->mu);
    m->stop = true;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->thread, NULL);
    m->thread_started = false; /* mu and cv stay for /metrics until ia_server_stop */
}
