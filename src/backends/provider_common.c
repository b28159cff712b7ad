/*
 * What every provider adapter shares: the adapter table, building HTTP calls
 * (URL joining, headers, JSON bodies), reading JSON answers with errors that
 * say the provider sent something malformed, pulling the provider's own
 * error text out of an error body, and the accumulation of streamed text.
 */
#define _GNU_SOURCE /* vasprintf, asprintf */
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backends_internal.h"

static const char *const provider_names[IA_API_PROVIDER_COUNT] = {
    "openai", "groq", "vllm", "anthropic", "gemini", "ollama", "tgi", "tei", "ovms", "opea"};

const char *ia_api_provider_name(ia_api_provider p) {
    return (unsigned)p < IA_API_PROVIDER_COUNT ? provider_names[p] : NULL;
}

ia_status ia_api_provider_parse(const char *name, ia_api_provider *out) {
    for (int i = 0; i < IA_API_PROVIDER_COUNT; i++)
        if (strcmp(name, provider_names[i]) == 0) {
            *out = (ia_api_provider)i;
            return IA_OK;
        }
    return ia_error_set(IA_EINVAL,
                        "unknown provider '%s' (expected openai, groq, vllm, anthropic, gemini, "
                        "ollama, tgi, tei, ovms or opea)",
                        name);
}

const char *ia_api_op_name(ia_api_op op) {
    switch (op) {
    case IA_API_CHAT:
        return "chat";
    case IA_API_COMPLETE:
        return "complete";
    case IA_API_EMBED:
        return "embed";
    case IA_API_RERANK:
        return "rerank";
    }
    return "?";
}

const ia_api_adapter *ia_api_adapter_get(ia_api_provider p) {
    static const ia_api_adapter *const table[IA_API_PROVIDER_COUNT] = {
        [IA_API_PROVIDER_OPENAI] = &ia_api_adapter_openai,
        [IA_API_PROVIDER_GROQ] = &ia_api_adapter_groq,
        [IA_API_PROVIDER_VLLM] = &ia_api_adapter_vllm,
        [IA_API_PROVIDER_ANTHROPIC] = &ia_api_adapter_anthropic,
        [IA_API_PROVIDER_GEMINI] = &ia_api_adapter_gemini,
        [IA_API_PROVIDER_OLLAMA] = &ia_api_adapter_ollama,
        [IA_API_PROVIDER_TGI] = &ia_api_adapter_tgi,
        [IA_API_PROVIDER_TEI] = &ia_api_adapter_tei,
        [IA_API_PROVIDER_OVMS] = &ia_api_adapter_ovms,
        [IA_API_PROVIDER_OPEA] = &ia_api_adapter_opea,
    };
    return (unsigned)p < IA_API_PROVIDER_COUNT ? table[p] : NULL;
}

void ia_api_http_call_free(ia_api_http_call *hc) {
    free(hc->url);
    for (size_t i = 0; i < hc->n_headers; i++)
        free(hc->headers[i]);
    free(hc->body);
    memset(hc, 0, sizeof *hc);
}

ia_status ia_api_http_call_header(ia_api_http_call *hc, const char *fmt, ...) {
    if (hc->n_headers >= IA_API_MAX_HEADERS)
        return ia_error_set(IA_EINTERNAL, "too many headers for one provider call");
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        return ia_error_set(IA_ENOMEM, "out of memory building a header");
    hc->headers[hc->n_headers++] = s;
    return IA_OK;
}

char *ia_api_url(const ia_api_endpoint_config *ep, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *path = NULL;
    int n = vasprintf(&path, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *url = NULL;
    if (asprintf(&url, "%s%s", ep->base_url, path) < 0)
        url = NULL;
    free(path);
    if (!url)
        ia_error_set(IA_ENOMEM, "out of memory building a URL");
    return url;
}

ia_status ia_api_json_set_body(ia_api_http_call *hc, json_t *obj) {
    if (!obj)
        return ia_error_set(IA_ENOMEM, "out of memory building a request body");
    char *s = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (!s)
        return ia_error_set(IA_ENOMEM, "out of memory serialising a request body");
    free(hc->body);
    hc->body = s;
    hc->body_len = strlen(s);
    return ia_api_http_call_header(hc, "Content-Type: application/json");
}

ia_status ia_api_post_json(ia_api_http_call *hc, json_t *body, const char *auth_prefix,
                           const char *key) {
    hc->method = "POST";
    if (!hc->url) {
        json_decref(body);
        return IA_ENOMEM;
    }
    ia_status st = ia_api_json_set_body(hc, body);
    if (st == IA_OK && key)
        st = ia_api_http_call_header(hc, "%s%s", auth_prefix, key);
    return st;
}

ia_status ia_api_json_body(const char *body, size_t len, json_t **out) {
    json_error_t err;
    *out = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &err);
    if (!*out)
        return ia_error_set(IA_EPARSE, "malformed JSON from the provider at line %d column %d: %s",
                            err.line, err.column, err.text);
    return IA_OK;
}

ia_status ia_api_set_text(ia_api_result *out, const char *text) {
    free(out->text);
    out->text = ia_strdup(text ? text : "");
    return out->text ? IA_OK : IA_ENOMEM;
}

ia_status ia_api_take_embeddings(json_t *rows, const char *field, ia_api_result *out) {
    if (!json_is_array(rows) || json_array_size(rows) == 0)
        return ia_error_set(IA_EPARSE, "the provider's answer has no embeddings");
    size_t n = json_array_size(rows), dim = 0;
    float *v = NULL;
    for (size_t i = 0; i < n; i++) {
        json_t *row = json_array_get(rows, i);
        if (field)
            row = json_is_object(row) ? json_object_get(row, field) : NULL;
        if (!json_is_array(row) || json_array_size(row) == 0) {
            free(v);
            return ia_error_set(
                IA_EPARSE, "embedding %zu in the provider's answer is not an array of numbers", i);
        }
        if (i == 0) {
            dim = json_array_size(row);
            v = ia_malloc_array(n, dim * sizeof(float));
            if (!v)
                return IA_ENOMEM;
        } else if (json_array_size(row) != dim) {
            free(v);
            return ia_error_set(IA_EPARSE, "embedding %zu has %zu values, embedding 0 has %zu", i,
                                json_array_size(row), dim);
        }
        for (size_t j = 0; j < dim; j++) {
            json_t *x = json_array_get(row, j);
            if (!json_is_number(x)) {
                free(v);
                return ia_error_set(IA_EPARSE, "embedding %zu value %zu is not a number", i, j);
            }
            v[i * dim + j] = (float)json_number_value(x);
        }
    }
    free(out->embeddings);
    out->embeddings = v;
    out->n_embeddings = n;
    out->dim = dim;
    return IA_OK;
}

static int rank_cmp(const void *a, const void *b) {
    const ia_api_rank *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return x->index < y->index ? -1 : x->index > y->index;
}

ia_status ia_api_take_ranks(json_t *arr, const char *score_field, size_t n_texts,
                            ia_api_result *out) {
    if (!json_is_array(arr))
        return ia_error_set(IA_EPARSE, "the provider's rerank answer is not a list");
    size_t n = json_array_size(arr);
    ia_api_rank *r = ia_calloc(n ? n : 1, sizeof *r);
    if (!r)
        return IA_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *it = json_array_get(arr, i);
        json_t *idx = json_object_get(it, "index");
        json_t *sc = json_object_get(it, score_field);
        if (!json_is_integer(idx) || !json_is_number(sc) || json_integer_value(idx) < 0 ||
            (n_texts && (size_t)json_integer_value(idx) >= n_texts)) {
            free(r);
            return ia_error_set(IA_EPARSE, "rerank result %zu lacks a valid index and %s", i,
                                score_field);
        }
        r[i].index = (size_t)json_integer_value(idx);
        r[i].score = json_number_value(sc);
    }
    qsort(r, n, sizeof *r, rank_cmp);
    free(out->ranks);
    out->ranks = r;
    out->n_ranks = n;
    return IA_OK;
}

void ia_api_error_text(const char *body, size_t len, char *buf, size_t n) {
    if (n == 0)
        return;
    buf[0] = 0;
    if (!body || len == 0)
        return;
    json_t *j = json_loadb(body, len, 0, NULL);
    const char *msg = NULL;
    if (json_is_object(j)) {
        json_t *e = json_object_get(j, "error");
        if (json_is_object(e))
            msg = json_string_value(json_object_get(e, "message"));
        else if (json_is_string(e))
            msg = json_string_value(e);
        if (!msg)
            msg = json_string_value(json_object_get(j, "detail"));
        if (!msg)
            msg = json_string_value(json_object_get(j, "message"));
    } else if (json_is_array(j) && json_is_object(json_array_get(j, 0))) {
        /* Gemini wraps its error object in a list on some paths. */
        json_t *e = json_object_get(json_array_get(j, 0), "error");
        msg = json_string_value(json_object_get(e, "message"));
    }
    if (msg)
        snprintf(buf, n, "%s", msg);
    else
        snprintf(buf, n, "%.*s", (int)(len < 160 ? len : 160), body);
    json_decref(j);
    /* Keep the message on one line. */
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
}

ia_status ia_api_stream_delta(ia_api_stream_state *s, const char *text, size_t len) {
    if (len == 0)
        return IA_OK;
    size_t need;
    if (!ia_size_add(s->text_len, len + 1, &need))
        return ia_error_set(IA_ENOMEM, "streamed text too long");
    if (need > s->text_cap) {
        size_t cap = s->text_cap ? s->text_cap : 256;
        while (cap < need)
            cap *= 2;
        char *t = realloc(s->text, cap);
        if (!t)
            return ia_error_set(IA_ENOMEM, "out of memory holding streamed text");
        s->text = t;
        s->text_cap = cap;
    }
    memcpy(s->text + s->text_len, text, len);
    s->text_len += len;
    s->text[s->text_len] = 0;
    s->deltas++;
    if (s->on_delta && !s->on_delta(s->delta_ctx, text, len)) {
        s->stopped = true;
        return ia_error_set(IA_EINVAL, "stopped by the caller");
    }
    return IA_OK;
}

void ia_api_result_free(ia_api_result *r) {
    if (!r)
        return;
    free(r->text);
    free(r->finish_reason);
    free(r->embeddings);
    free(r->ranks);
    memset(r, 0, sizeof *r);
}

/* ---- conversations ------------------------------------------------------------------ */

json_t *ia_api_string_array(const char *const *s, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_string(s[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

json_t *ia_api_chat_messages(const ia_api_request *req, bool keep_system) {
    json_t *msgs = json_array();
    if (!msgs)
        return NULL;
    if (req->system && keep_system)
        json_array_append_new(msgs,
                              json_pack("{s:s,s:s}", "role", "system", "content", req->system));
    if (req->n_messages == 0) {
        json_array_append_new(msgs,
                              json_pack("{s:s,s:s}", "role", "user", "content", req->texts[0]));
        return msgs;
    }
    for (size_t i = 0; i < req->n_messages; i++) {
        const ia_api_message *m = &req->messages[i];
        if (!keep_system && strcmp(m->role, "system") == 0)
            continue;
        json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", m->role, "content", m->content));
    }
    return msgs;
}

char *ia_api_chat_system(const ia_api_request *req) {
    size_t n = req->system ? strlen(req->system) : 0, k = 0;
    for (size_t i = 0; i < req->n_messages; i++)
        if (strcmp(req->messages[i].role, "system") == 0)
            n += strlen(req->messages[i].content) + 2, k++;
    if (!req->system && k == 0)
        return NULL;
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    *o = 0;
    if (req->system)
        o = stpcpy(o, req->system);
    for (size_t i = 0; i < req->n_messages; i++)
        if (strcmp(req->messages[i].role, "system") == 0) {
            if (o != out)
                o = stpcpy(o, "\n\n");
            o = stpcpy(o, req->messages[i].content);
        }
    return out;
}
