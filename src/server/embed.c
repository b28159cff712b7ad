/*
 * The embedding routes and the model lists: OpenAI /v1/embeddings and
 * /v1/models, TEI /embed, /tokenize and /info, Ollama /api/embed, /api/tags
 * and /api/version. Each embedding request is parsed (request.c), tokenised
 * here on the connection thread with the model's tokenizer (so limits and
 * usage are known before queueing), queued as one job to the model's
 * scheduler, which batches it with others, and answered in its dialect's
 * shape. Inputs longer than the model (or --max-input-tokens) are a 400
 * unless the request asks to truncate (TEI truncate, Ollama's default).
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/server_internal.h"

#define IA_SERVER_VERSION "0.1.0"

static size_t input_limit(const srv_model *m) {
    size_t lim = m->max_length;
    size_t cfg = m->srv->opts.max_input_tokens;
    return cfg && cfg < lim ? cfg : lim;
}

/* Appends n ids to the job's arrays as sequence k. */
static bool job_add_seq(srv_job *job, size_t k, const int32_t *ids, size_t n, size_t *cap) {
    if (job->n_tokens + n > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < job->n_tokens + n)
            c *= 2;
        int32_t *p = ia_realloc_array(job->ids, c, sizeof *p);
        if (!p)
            return false;
        job->ids = p;
        *cap = c;
    }
    memcpy(job->ids + job->n_tokens, ids, n * sizeof *ids);
    job->n_tokens += n;
    job->seq_start[k + 1] = (int32_t)job->n_tokens;
    return true;
}

/* Tokenises (or checks the token ids of) every input into a new job. On a
 * bad input answers 400 itself and returns NULL with *ret set. */
static srv_job *make_embed_job(srv_req *r, srv_model *m, const ia_embed_request *q, int *ret) {
    srv_job *job = srv_job_new(SRV_JOB_EMBED);
    size_t lim = input_limit(m), cap = 0, vocab = ia_tokenizer_vocab_size(m->tok);
    if (!job || !(job->seq_start = ia_calloc(q->n + 1, sizeof *job->seq_start)) ||
        !(job->out = ia_malloc_array(q->n, m->dim * sizeof(float))))
        goto oom;
    job->n_seq = q->n;
    for (size_t i = 0; i < q->n; i++) {
        if (q->ids) {
            size_t n = q->n_ids[i];
            for (size_t t = 0; t < n; t++)
                if ((size_t)q->ids[i][t] >= vocab) {
                    *ret = srv_send_error(r, 400, "input", NULL,
                                          "input %zu: token %zu is %d; the vocabulary has %zu", i,
                                          t, q->ids[i][t], vocab);
                    goto fail;
                }
            if (n > lim && !q->truncate) {
                *ret = srv_send_error(r, 400, "input", "context_length_exceeded",
                                      "input %zu has %zu tokens; this model takes at most %zu", i,
                                      n, lim);
                goto fail;
            }
            if (!job_add_seq(job, i, q->ids[i], n > lim ? lim : n, &cap))
                goto oom;
            continue;
        }
        ia_encode_options eo = ia_encode_options_default();
        eo.max_length = q->truncate ? lim : 0;
        ia_encoding enc = {0};
        ia_status st = ia_tokenizer_encode(m->tok, q->texts[i], q->lens[i], NULL, 0, &eo, &enc);
        if (st) {
            *ret = srv_send_error(r, 400, "input", NULL, "input %zu: %s", i, ia_error_message());
            goto fail;
        }
        if (enc.len > lim || enc.len == 0) {
            *ret = srv_send_error(r, 400, "input", "context_length_exceeded",
                                  "input %zu has %zu tokens; this model takes at most %zu (ask "
                                  "for truncation to cut it)",
                                  i, enc.len, lim);
            ia_encoding_free(&enc);
            goto fail;
        }
        bool ok = job_add_seq(job, i, enc.ids, enc.len, &cap);
        ia_encoding_free(&enc);
        if (!ok)
            goto oom;
    }
    job->prio = r->prio;
    job->deadline = r->t0 + r->srv->opts.timeout_ms / 1000.0;
    return job;
oom:
    *ret = srv_send_error(r, 500, NULL, NULL, "out of memory");
fail:
    srv_job_unref(job);
    return NULL;
}

srv_job *srv_run_job(srv_req *r, srv_model *m, srv_job *job, int *ret) {
    if (!srv_model_submit(m, job)) {
        srv_metrics_count(&r->srv->metrics, &r->srv->metrics.rejected_full);
        *ret = atomic_load(&r->srv->stopping)
                   ? srv_send_error(r, 503, NULL, NULL, "the server is stopping")
                   : srv_send_error(r, 429, NULL, "rate_limit_exceeded",
                                    "model '%s' has %zu requests waiting, its limit; retry later",
                                    m->id, r->srv->opts.max_queue);
        srv_job_unref(job);
        return NULL;
    }
    if (!srv_job_wait(job, r->conn)) {
        *ret = srv_send_error(r, 504, NULL, "timeout", "the request timed out after %u ms",
                              r->srv->opts.timeout_ms);
        srv_job_unref(job);
        return NULL;
    }
    if (job->status != IA_OK) {
        *ret = srv_send_error(r, job->http_status ? job->http_status : 500, NULL, NULL, "%s",
                              job->error);
        srv_job_unref(job);
        return NULL;
    }
    return job;
}

/* Parses, finds the model, tokenises, runs. NULL: answered already. */
static srv_job *embed_request(srv_req *r, ia_embed_request *q, srv_model **mp, int *ret) {
    char why[1024], param[64];
    int st = ia_server_parse_embed(r->dialect, r->body, r->body_len, r->srv->opts.max_inputs, q,
                                   why, sizeof why, param, sizeof param);
    if (st != 200) {
        *ret = srv_send_error(r, st, param, NULL, "%s", why);
        return NULL;
    }
    if (r->dialect != IA_API_TEI && !q->model) {
        *ret = srv_send_error(r, 400, "model", NULL, "'model' is required");
        return NULL;
    }
    srv_model *m = srv_model_find(r, q->model, SRV_EMBEDDER, ret);
    if (!m)
        return NULL;
    if (q->dimensions && (size_t)q->dimensions != m->dim) {
        *ret = srv_send_error(r, 400, "dimensions", NULL,
                              "'dimensions' is %ld; model '%s' makes %zu-dimensional vectors",
                              q->dimensions, m->id, m->dim);
        return NULL;
    }
    *mp = m;
    srv_job *job = make_embed_job(r, m, q, ret);
    return job ? srv_run_job(r, m, job, ret) : NULL;
}

static json_t *vector_json(const float *v, size_t dim) {
    json_t *a = json_array();
    for (size_t k = 0; a && k < dim; k++)
        json_array_append_new(a, json_real((double)v[k]));
    return a;
}

static char *base64_floats(const float *v, size_t dim) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = dim * sizeof(float);
    const unsigned char *p = (const unsigned char *)v; /* little-endian hosts only */
    char *out = ia_malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        unsigned x = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        *o++ = tab[x >> 18 & 63];
        *o++ = tab[x >> 12 & 63];
        *o++ = i + 1 < n ? tab[x >> 6 & 63] : '=';
        *o++ = i + 2 < n ? tab[x & 63] : '=';
    }
    *o = 0;
    return out;
}

int srv_handle_embeddings(srv_req *r) {
    ia_embed_request q;
    srv_model *m = NULL;
    int ret = MHD_NO;
    srv_job *job = embed_request(r, &q, &m, &ret);
    if (!job) {
        ia_embed_request_free(&q);
        return ret;
    }
    json_t *data = json_array();
    for (size_t i = 0; i < job->n_seq; i++) {
        const float *v = job->out + i * m->dim;
        json_t *emb;
        if (q.base64) {
            char *s = base64_floats(v, m->dim);
            emb = s ? json_string(s) : NULL;
            free(s);
        } else {
            emb = vector_json(v, m->dim);
        }
        json_array_append_new(data, json_pack("{s:s, s:I, s:o}", "object", "embedding", "index",
                                              (json_int_t)i, "embedding", emb));
    }
    json_t *body = json_pack("{s:s, s:o, s:s, s:{s:I, s:I}}", "object", "list", "data", data,
                             "model", m->id, "usage", "prompt_tokens", (json_int_t)job->n_tokens,
                             "total_tokens", (json_int_t)job->n_tokens);
    srv_job_unref(job);
    ia_embed_request_free(&q);
    return srv_send_json(r, 200, body);
}

int srv_handle_tei_embed(srv_req *r) {
    ia_embed_request q;
    srv_model *m = NULL;
    int ret = MHD_NO;
    srv_job *job = embed_request(r, &q, &m, &ret);
    if (!job) {
        ia_embed_request_free(&q);
        return ret;
    }
    /* TEI normalises unless told not to; a model that normalises itself is left alone */
    bool norm = q.normalize != 0 && !ia_embedder_normalizes(m->emb);
    json_t *body = json_array();
    for (size_t i = 0; i < job->n_seq; i++) {
        float *v = job->out + i * m->dim;
        if (norm) {
            double ss = 0;
            for (size_t k = 0; k < m->dim; k++)
                ss += (double)v[k] * v[k];
            float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
            for (size_t k = 0; k < m->dim; k++)
                v[k] *= inv;
        }
        json_array_append_new(body, vector_json(v, m->dim));
    }
    srv_job_unref(job);
    ia_embed_request_free(&q);
    return srv_send_json(r, 200, body);
}

int srv_handle_ollama_embed(srv_req *r) {
    ia_embed_request q;
    srv_model *m = NULL;
    int ret = MHD_NO;
    srv_job *job = embed_request(r, &q, &m, &ret);
    if (!job) {
        ia_embed_request_free(&q);
        return ret;
    }
    json_t *embs = json_array();
    for (size_t i = 0; i < job->n_seq; i++)
        json_array_append_new(embs, vector_json(job->out + i * m->dim, m->dim));
    double total = job->t_done - r->t0, eval = job->t_done - job->t_start;
    json_t *body = json_pack("{s:s, s:o, s:I, s:I, s:I}", "model", m->id, "embeddings", embs,
                             "total_duration", (json_int_t)(total * 1e9), "load_duration",
                             (json_int_t)0, "prompt_eval_count", (json_int_t)job->n_tokens);
    (void)eval;
    srv_job_unref(job);
    ia_embed_request_free(&q);
    return srv_send_json(r, 200, body);
}

int srv_handle_tei_tokenize(srv_req *r) {
    ia_embed_request q;
    char why[1024], param[64];
    int st = ia_server_parse_embed(IA_API_TEI, r->body, r->body_len, r->srv->opts.max_inputs, &q,
                                   why, sizeof why, param, sizeof param);
    if (st != 200)
        return srv_send_error(r, st, param, NULL, "%s", why);
    int ret = MHD_NO;
    srv_model *m = srv_model_find(r, q.model, SRV_EMBEDDER, &ret);
    if (!m) {
        ia_embed_request_free(&q);
        return ret;
    }
    json_t *ast = json_object_get(q.json, "add_special_tokens");
    if (ast && !json_is_boolean(ast)) {
        ia_embed_request_free(&q);
        return srv_send_error(r, 400, "add_special_tokens", NULL,
                              "'add_special_tokens' must be true or false");
    }
    ia_encode_options eo = ia_encode_options_default();
    eo.add_special_tokens = !ast || json_is_true(ast);
    eo.want_tokens = true;
    /* a token is special when the post-processor added it: the ids that an
     * encoding without special tokens does not have at that end */
    json_t *body = json_array();
    for (size_t i = 0; i < q.n; i++) {
        ia_encoding enc = {0}, plain = {0};
        ia_encode_options po = eo;
        po.add_special_tokens = false;
        if (ia_tokenizer_encode(m->tok, q.texts[i], q.lens[i], NULL, 0, &eo, &enc) ||
            ia_tokenizer_encode(m->tok, q.texts[i], q.lens[i], NULL, 0, &po, &plain)) {
            ia_encoding_free(&enc);
            ia_encoding_free(&plain);
            json_decref(body);
            ia_embed_request_free(&q);
            return srv_send_error(r, 400, "inputs", NULL, "input %zu: %s", i, ia_error_message());
        }
        size_t lead = 0; /* special tokens before the text's own */
        if (enc.len > plain.len)
            while (lead < enc.len - plain.len &&
                   !(plain.len && enc.ids[lead] == plain.ids[0] &&
                     memcmp(enc.ids + lead, plain.ids, plain.len * sizeof(int32_t)) == 0))
                lead++;
        json_t *toks = json_array();
        for (size_t t = 0; t < enc.len; t++) {
            bool special = enc.len > plain.len && (t < lead || t >= lead + plain.len);
            json_array_append_new(toks, json_pack("{s:i, s:s, s:b, s:n, s:n}", "id", enc.ids[t],
                                                  "text", enc.tokens[t] ? enc.tokens[t] : "",
                                                  "special", special, "start", "stop"));
        }
        json_array_append_new(body, toks);
        ia_encoding_free(&enc);
        ia_encoding_free(&plain);
    }
    ia_embed_request_free(&q);
    return srv_send_json(r, 200, body);
}

int srv_handle_tei_info(srv_req *r) {
    int ret = MHD_NO;
    srv_model *m = srv_model_find(r, NULL, SRV_EMBEDDER, &ret);
    if (!m)
        return ret;
    static const char *pool_names[] = {"mean", "cls", "max", "mean_sqrt_len", "last"};
    int p = (int)ia_embedder_pooling(m->emb);
    /* TEI spells its float types out; quantised ones keep our names */
    const char *dtype = strcmp(m->dtype, "f32") == 0    ? "float32"
                        : strcmp(m->dtype, "f16") == 0  ? "float16"
                        : strcmp(m->dtype, "bf16") == 0 ? "bfloat16"
                                                        : m->dtype;
    json_t *body = json_pack("{s:s, s:s, s:{s:{s:s}}, s:I, s:I, s:I, s:I, s:I, s:s}", "model_id",
                             m->id, "model_dtype", dtype, "model_type", "embedding", "pooling",
                             p >= 0 && p < 5 ? pool_names[p] : "unknown", "max_input_length",
                             (json_int_t)input_limit(m), "max_batch_tokens",
                             (json_int_t)r->srv->opts.max_batch_tokens, "max_concurrent_requests",
                             (json_int_t)r->srv->opts.max_queue, "max_client_batch_size",
                             (json_int_t)r->srv->opts.max_inputs, "tokenization_workers",
                             (json_int_t)1, "version", IA_SERVER_VERSION);
    return srv_send_json(r, 200, body);
}

json_t *srv_model_entry(const srv_model *m, json_int_t created) {
    json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:s}", "id", m->id, "object", "model", "created",
                          created, "owned_by", "ipfs-accelerate", "dtype", m->dtype);
    if (o && m->kind == SRV_GENERATOR) {
        json_object_set_new(o, "kv_cache", json_string(ia_dtype_name(m->srv->opts.kv_dtype)));
        /* the generator's own figure: known once the model has loaded */
        if (atomic_load(&m->state) == SRV_READY)
            json_object_set_new(o, "context", json_integer((json_int_t)m->context));
    }
    return o;
}

int srv_handle_models(srv_req *r) {
    json_t *data = json_array();
    for (size_t i = 0; i < r->srv->n_models; i++)
        json_array_append_new(
            data, srv_model_entry(&r->srv->models[i], (json_int_t)r->srv->started_unix));
    return srv_send_json(r, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

int srv_handle_tags(srv_req *r) {
    json_t *models = json_array();
    char when[64];
    time_t t = (time_t)r->srv->started_unix;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    for (size_t i = 0; i < r->srv->n_models; i++) {
        srv_model *m = &r->srv->models[i];
        const char *fmt = strstr(m->path, ".gguf") ? "gguf" : "safetensors";
        char level[sizeof m->dtype]; /* Ollama's spelling: F32, Q8_0, Q4_K_M */
        for (size_t k = 0; k < sizeof level; k++)
            level[k] = (char)toupper((unsigned char)m->dtype[k]);
        json_array_append_new(
            models, json_pack("{s:s, s:s, s:s, s:I, s:s, s:{s:s, s:s, s:s}}", "name", m->id,
                              "model", m->id, "modified_at", when, "size", (json_int_t)m->bytes,
                              "digest", "", "details", "format", fmt, "family",
                              m->kind == SRV_EMBEDDER ? "text-encoder" : "text-decoder",
                              "quantization_level",
                              strcmp(fmt, "gguf") == 0 ? "" : level /* GGUF: as stored */));
    }
    return srv_send_json(r, 200, json_pack("{s:o}", "models", models));
}

int srv_handle_version(srv_req *r) {
    return srv_send_json(r, 200, json_pack("{s:s}", "version", IA_SERVER_VERSION));
}
