/*
 * Request bodies of the model server, parsed without any HTTP: the JSON of an
 * embedding request (OpenAI's input string / list / token ids, TEI's inputs,
 * Ollama's input) and of a generation request (OpenAI completions and chat,
 * Ollama generate and chat, with Ollama's parameters under "options"). Every
 * field is type-checked and range-checked here, so the handlers only see
 * values that make sense; a bad one is a 400 naming the field. Strings must
 * be valid UTF-8 (jansson checks that while parsing). This file is also the
 * libFuzzer target's entry (fuzz/fuzz_server_request.c).
 */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ia/server.h"

static int bad(char *why, size_t cap, char *param, size_t pcap, int status, const char *name,
               const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static int bad(char *why, size_t cap, char *param, size_t pcap, int status, const char *name,
               const char *fmt, ...) {
    if (why && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, cap, fmt, ap);
        va_end(ap);
    }
    if (param && pcap)
        snprintf(param, pcap, "%s", name ? name : "");
    return status;
}

#define BAD(status, name, ...) bad(why, cap, param, pcap, status, name, __VA_ARGS__)

static int parse_body(const char *body, size_t len, json_t **out, char *why, size_t cap,
                      char *param, size_t pcap) {
    json_error_t err;
    *out = NULL;
    if (len == 0)
        return BAD(400, "", "the request body is empty; send a JSON object");
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
    if (!j)
        return BAD(400, "", "the body is not valid JSON: %s (line %d, column %d)", err.text,
                   err.line, err.column);
    if (!json_is_object(j)) {
        json_decref(j);
        return BAD(400, "", "the body must be a JSON object");
    }
    *out = j;
    return 200;
}

/* An optional string field: absent or null is NULL; another type is an error. */
static int opt_string(json_t *o, const char *name, const char **out, char *why, size_t cap,
                      char *param, size_t pcap) {
    json_t *v = json_object_get(o, name);
    *out = NULL;
    if (!v || json_is_null(v))
        return 200;
    if (!json_is_string(v))
        return BAD(400, name, "'%s' must be a string", name);
    *out = json_string_value(v);
    return 200;
}

static int opt_bool(json_t *o, const char *name, bool *out, char *why, size_t cap, char *param,
                    size_t pcap) {
    json_t *v = json_object_get(o, name);
    if (!v || json_is_null(v))
        return 200;
    if (!json_is_boolean(v))
        return BAD(400, name, "'%s' must be true or false", name);
    *out = json_is_true(v);
    return 200;
}

/* A number within [lo, hi]; absent or null leaves *out. */
static int opt_number(json_t *o, const char *name, double lo, double hi, double *out, char *why,
                      size_t cap, char *param, size_t pcap) {
    json_t *v = json_object_get(o, name);
    if (!v || json_is_null(v))
        return 200;
    if (!json_is_number(v))
        return BAD(400, name, "'%s' must be a number", name);
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi))
        return BAD(400, name, "'%s' is %g; it must be from %g to %g", name, x, lo, hi);
    *out = x;
    return 200;
}

/* An integer within [lo, hi]; absent or null leaves *out. */
static int opt_int(json_t *o, const char *name, long lo, long hi, long *out, char *why, size_t cap,
                   char *param, size_t pcap) {
    json_t *v = json_object_get(o, name);
    if (!v || json_is_null(v))
        return 200;
    if (!json_is_integer(v))
        return BAD(400, name, "'%s' must be an integer", name);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return BAD(400, name, "'%s' is %lld; it must be from %ld to %ld", name, (long long)x, lo,
                   hi);
    *out = (long)x;
    return 200;
}

/* ---- embeddings ---------------------------------------------------------------------------- */

void ia_embed_request_free(ia_embed_request *r) {
    if (!r)
        return;
    if (r->ids)
        for (size_t i = 0; i < r->n; i++)
            free(r->ids[i]);
    free(r->ids);
    free(r->n_ids);
    free(r->texts);
    free(r->lens);
    free(r->model);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

/* An int array as token ids (0..INT32_MAX). */
static int ids_from(json_t *arr, const char *name, size_t index, int32_t **out, size_t *n,
                    char *why, size_t cap, char *param, size_t pcap) {
    size_t k = json_array_size(arr);
    if (k == 0)
        return BAD(400, name, "input %zu is an empty token list", index);
    int32_t *ids = ia_malloc_array(k, sizeof *ids);
    if (!ids)
        return BAD(500, name, "out of memory");
    for (size_t j = 0; j < k; j++) {
        json_t *t = json_array_get(arr, j);
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) > INT32_MAX) {
            free(ids);
            return BAD(400, name, "input %zu: token %zu must be a non-negative integer", index, j);
        }
        ids[j] = (int32_t)json_integer_value(t);
    }
    *out = ids;
    *n = k;
    return 200;
}

int ia_server_parse_embed(ia_api_dialect d, const char *body, size_t len, size_t max_inputs,
                          ia_embed_request *out, char *why, size_t cap, char *param, size_t pcap) {
    memset(out, 0, sizeof *out);
    out->normalize = -1;
    out->truncate = d == IA_API_OLLAMA; /* Ollama truncates by default */
    int st = parse_body(body, len, &out->json, why, cap, param, pcap);
    if (st != 200)
        return st;
    json_t *j = out->json;
    const char *model = NULL, *fmt = NULL;
    const char *in_name = d == IA_API_TEI ? "inputs" : "input";
    if ((st = opt_string(j, "model", &model, why, cap, param, pcap)) != 200 ||
        (st = opt_string(j, "encoding_format", &fmt, why, cap, param, pcap)) != 200 ||
        (st = opt_bool(j, "truncate", &out->truncate, why, cap, param, pcap)) != 200 ||
        (st = opt_int(j, "dimensions", 1, 1 << 20, &out->dimensions, why, cap, param, pcap)) != 200)
        goto fail;
    bool norm = true;
    if (json_object_get(j, "normalize")) {
        if ((st = opt_bool(j, "normalize", &norm, why, cap, param, pcap)) != 200)
            goto fail;
        out->normalize = norm;
    }
    if (model && !(out->model = ia_strdup(model))) {
        st = BAD(500, "", "out of memory");
        goto fail;
    }
    if (fmt) {
        if (strcmp(fmt, "float") == 0)
            out->base64 = false;
        else if (strcmp(fmt, "base64") == 0)
            out->base64 = true;
        else {
            st = BAD(400, "encoding_format", "encoding_format '%.40s': expected float or base64",
                     fmt);
            goto fail;
        }
    }
    json_t *in = json_object_get(j, in_name);
    if (!in || json_is_null(in)) {
        st = BAD(400, in_name, "'%s' is required: a string or a list of strings", in_name);
        goto fail;
    }
    /* One string, a list of strings, one token list, or a list of token lists. */
    bool single = json_is_string(in) || (json_is_array(in) && json_array_size(in) > 0 &&
                                         json_is_integer(json_array_get(in, 0)));
    size_t n = single ? 1 : json_is_array(in) ? json_array_size(in) : 0;
    if (!single && !json_is_array(in)) {
        st = BAD(400, in_name, "'%s' must be a string, a list of strings or of token lists",
                 in_name);
        goto fail;
    }
    if (n == 0) {
        st = BAD(400, in_name, "'%s' is an empty list", in_name);
        goto fail;
    }
    if (n > max_inputs) {
        st = BAD(413, in_name, "'%s' has %zu inputs; this server takes at most %zu per request",
                 in_name, n, max_inputs);
        goto fail;
    }
    out->n = n;
    out->texts = ia_calloc(n, sizeof *out->texts);
    out->lens = ia_calloc(n, sizeof *out->lens);
    if (!out->texts || !out->lens) {
        st = BAD(500, "", "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *v = single ? in : json_array_get(in, i);
        if (json_is_string(v)) {
            out->texts[i] = json_string_value(v);
            out->lens[i] = json_string_length(v);
            if (out->lens[i] == 0) {
                st = BAD(400, in_name, "input %zu is an empty string", i);
                goto fail;
            }
            if (strlen(out->texts[i]) != out->lens[i]) {
                st = BAD(400, in_name, "input %zu contains a NUL character", i);
                goto fail;
            }
        } else if (json_is_array(v) && d == IA_API_OPENAI) {
            if (!out->ids) {
                out->ids = ia_calloc(n, sizeof *out->ids);
                out->n_ids = ia_calloc(n, sizeof *out->n_ids);
                if (!out->ids || !out->n_ids) {
                    st = BAD(500, "", "out of memory");
                    goto fail;
                }
            }
            if ((st = ids_from(v, in_name, i, &out->ids[i], &out->n_ids[i], why, cap, param,
                               pcap)) != 200)
                goto fail;
        } else {
            st = BAD(400, in_name, "input %zu must be a string%s", i,
                     d == IA_API_OPENAI ? " or a list of token ids" : "");
            goto fail;
        }
    }
    /* Mixed text and token inputs would need two paths for one batch. */
    if (out->ids)
        for (size_t i = 0; i < n; i++)
            if (!out->ids[i]) {
                st = BAD(400, in_name,
                         "input %zu is text but others are token lists; send one kind", i);
                goto fail;
            }
    return 200;
fail:
    ia_embed_request_free(out);
    return st;
}

/* ---- generation ------------------------------------------------------------------------------ */

void ia_gen_request_free(ia_gen_request *r) {
    if (!r)
        return;
    free(r->model);
    free(r->prompt);
    free(r->system);
    free(r->messages);
    for (size_t i = 0; i < r->n_owned; i++)
        free(r->owned[i]);
    free(r->owned);
    for (size_t i = 0; i < r->n_stop; i++)
        free(r->stop[i]);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

static int stops_from(json_t *v, const char *name, ia_gen_request *r, char *why, size_t cap,
                      char *param, size_t pcap) {
    if (!v || json_is_null(v))
        return 200;
    size_t n = json_is_string(v) ? 1 : json_is_array(v) ? json_array_size(v) : 0;
    if (!json_is_string(v) && !json_is_array(v))
        return BAD(400, name, "'%s' must be a string or a list of strings", name);
    if (n > IA_SERVER_MAX_STOP)
        return BAD(400, name, "'%s' has %zu strings; at most %d", name, n, IA_SERVER_MAX_STOP);
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_is_string(v) ? v : json_array_get(v, i);
        if (!json_is_string(s) || json_string_length(s) == 0 ||
            strlen(json_string_value(s)) != json_string_length(s))
            return BAD(400, name, "'%s' entry %zu must be a non-empty string", name, i);
        if (!(r->stop[r->n_stop] = ia_strdup(json_string_value(s))))
            return BAD(500, "", "out of memory");
        r->n_stop++;
    }
    return 200;
}

/* A message's content: a string, or OpenAI's list of {"type":"text","text":...} parts. */
static int content_of(json_t *c, size_t i, ia_gen_request *r, const char **out, char *why,
                      size_t cap, char *param, size_t pcap) {
    if (json_is_string(c)) {
        *out = json_string_value(c);
        if (strlen(*out) != json_string_length(c))
            return BAD(400, "messages", "message %zu contains a NUL character", i);
        return 200;
    }
    if (!json_is_array(c))
        return BAD(400, "messages", "message %zu: 'content' must be a string or a list of parts",
                   i);
    size_t total = 0, k = json_array_size(c);
    for (size_t p = 0; p < k; p++) {
        json_t *part = json_array_get(c, p);
        json_t *type = json_object_get(part, "type"), *text = json_object_get(part, "text");
        if (!json_is_string(type) || strcmp(json_string_value(type), "text") != 0 ||
            !json_is_string(text))
            return BAD(400, "messages",
                       "message %zu part %zu: only {\"type\":\"text\",\"text\":...} parts are "
                       "supported",
                       i, p);
        total += strlen(json_string_value(text));
    }
    char *joined = ia_malloc(total + 1);
    char **owned = joined ? ia_realloc_array(r->owned, r->n_owned + 1, sizeof *owned) : NULL;
    if (!owned) {
        free(joined);
        return BAD(500, "", "out of memory");
    }
    r->owned = owned;
    r->owned[r->n_owned++] = joined;
    size_t off = 0;
    for (size_t p = 0; p < k; p++) {
        const char *t = json_string_value(json_object_get(json_array_get(c, p), "text"));
        size_t n = strlen(t);
        memcpy(joined + off, t, n);
        off += n;
    }
    joined[off] = 0;
    *out = joined;
    return 200;
}

static int messages_from(json_t *j, ia_gen_request *r, char *why, size_t cap, char *param,
                         size_t pcap) {
    json_t *m = json_object_get(j, "messages");
    if (!json_is_array(m) || json_array_size(m) == 0)
        return BAD(400, "messages", "'messages' must be a non-empty list");
    size_t n = json_array_size(m);
    if (n > 4096)
        return BAD(400, "messages", "'messages' has %zu entries; at most 4096", n);
    r->messages = ia_calloc(n, sizeof *r->messages);
    if (!r->messages)
        return BAD(500, "", "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *msg = json_array_get(m, i);
        json_t *role = json_object_get(msg, "role"), *content = json_object_get(msg, "content");
        if (!json_is_object(msg) || !json_is_string(role))
            return BAD(400, "messages", "message %zu needs a 'role' string", i);
        const char *rs = json_string_value(role);
        if (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant") &&
            strcmp(rs, "developer"))
            return BAD(400, "messages",
                       "message %zu: role '%.40s' is not one of system, user, assistant", i, rs);
        if (!content || json_is_null(content))
            return BAD(400, "messages", "message %zu needs 'content'", i);
        r->messages[i].role = strcmp(rs, "developer") == 0 ? "system" : rs;
        int st = content_of(content, i, r, &r->messages[i].content, why, cap, param, pcap);
        if (st != 200)
            return st;
        r->n_messages++;
    }
    return 200;
}

/* The sampling and length parameters: top level (OpenAI) or under "options" (Ollama). */
static int sampling_from(ia_api_dialect d, json_t *j, ia_gen_request *r, char *why, size_t cap,
                         char *param, size_t pcap) {
    json_t *o = j;
    if (d == IA_API_OLLAMA) {
        o = json_object_get(j, "options");
        if (!o || json_is_null(o))
            return 200;
        if (!json_is_object(o))
            return BAD(400, "options", "'options' must be an object");
    }
    int st;
    long seed = -1;
    const char *len_name = d == IA_API_OLLAMA ? "num_predict" : "max_tokens";
    if ((st = opt_number(o, "temperature", 0, 100, &r->temperature, why, cap, param, pcap)) !=
            200 ||
        (st = opt_number(o, "top_p", 1e-9, 1, &r->top_p, why, cap, param, pcap)) != 200 ||
        (st = opt_number(o, "min_p", 0, 1, &r->min_p, why, cap, param, pcap)) != 200 ||
        (st = opt_number(o, d == IA_API_OLLAMA ? "repeat_penalty" : "repetition_penalty", 1e-3, 100,
                         &r->repeat_penalty, why, cap, param, pcap)) != 200 ||
        (st = opt_int(o, "top_k", 0, 1 << 30, &r->top_k, why, cap, param, pcap)) != 200 ||
        (st = opt_int(o, "seed", d == IA_API_OLLAMA ? -1 : 0, INT64_MAX, &seed, why, cap, param,
                      pcap)) != 200)
        return st;
    if (json_object_get(o, "seed") && !json_is_null(json_object_get(o, "seed")) && seed >= 0) {
        r->has_seed = true;
        r->seed = (uint64_t)seed;
    }
    if (d == IA_API_OPENAI && json_object_get(o, "max_completion_tokens"))
        len_name = "max_completion_tokens";
    long mt = -1;
    if ((st = opt_int(o, len_name, d == IA_API_OLLAMA ? -2 : 1, 1L << 30, &mt, why, cap, param,
                      pcap)) != 200)
        return st;
    r->max_tokens = mt < 0 ? -1 : mt; /* Ollama -1/-2: until the context is full */
    return stops_from(json_object_get(o, "stop"), "stop", r, why, cap, param, pcap);
}

int ia_server_parse_generate(ia_api_dialect d, bool chat, const char *body, size_t len,
                             ia_gen_request *out, char *why, size_t cap, char *param, size_t pcap) {
    memset(out, 0, sizeof *out);
    out->chat = chat;
    out->max_tokens = -1;
    out->temperature = d == IA_API_OLLAMA ? 0.8 : 1.0;
    out->top_p = d == IA_API_OLLAMA ? 0.9 : 1.0;
    out->top_k = d == IA_API_OLLAMA ? 40 : 0;
    out->repeat_penalty = 1.0;
    out->stream = d == IA_API_OLLAMA; /* Ollama streams unless told not to */
    int st = parse_body(body, len, &out->json, why, cap, param, pcap);
    if (st != 200)
        return st;
    json_t *j = out->json;
    const char *model = NULL, *prompt = NULL, *system = NULL;
    if ((st = opt_string(j, "model", &model, why, cap, param, pcap)) != 200 ||
        (st = opt_bool(j, "stream", &out->stream, why, cap, param, pcap)) != 200)
        goto fail;
    if (model && !(out->model = ia_strdup(model))) {
        st = BAD(500, "", "out of memory");
        goto fail;
    }
    if (d == IA_API_OPENAI) {
        long n = 1;
        if ((st = opt_int(j, "n", 1, 1 << 20, &n, why, cap, param, pcap)) != 200)
            goto fail;
        if (n != 1) {
            st = BAD(400, "n", "'n' must be 1: one choice per request is served");
            goto fail;
        }
        json_t *so = json_object_get(j, "stream_options");
        if (so && !json_is_null(so)) {
            if (!json_is_object(so)) {
                st = BAD(400, "stream_options", "'stream_options' must be an object");
                goto fail;
            }
            if ((st = opt_bool(so, "include_usage", &out->include_usage, why, cap, param, pcap)) !=
                200)
                goto fail;
        }
    }
    if ((st = sampling_from(d, j, out, why, cap, param, pcap)) != 200)
        goto fail;
    if (chat) {
        if ((st = messages_from(j, out, why, cap, param, pcap)) != 200)
            goto fail;
    } else {
        json_t *p = json_object_get(j, "prompt");
        if (json_is_array(p) && json_array_size(p) == 1 && json_is_string(json_array_get(p, 0)))
            p = json_array_get(p, 0); /* OpenAI: a list of one prompt */
        if (!json_is_string(p)) {
            st = BAD(400, "prompt", "'prompt' is required: a string");
            goto fail;
        }
        prompt = json_string_value(p);
        if (strlen(prompt) != json_string_length(p)) {
            st = BAD(400, "prompt", "'prompt' contains a NUL character");
            goto fail;
        }
        if (d == IA_API_OLLAMA) {
            if ((st = opt_string(j, "system", &system, why, cap, param, pcap)) != 200 ||
                (st = opt_bool(j, "raw", &out->raw, why, cap, param, pcap)) != 200)
                goto fail;
            if (system && !(out->system = ia_strdup(system))) {
                st = BAD(500, "", "out of memory");
                goto fail;
            }
        }
        if (!(out->prompt = ia_strdup(prompt))) {
            st = BAD(500, "", "out of memory");
            goto fail;
        }
    }
    return 200;
fail:
    ia_gen_request_free(out);
    return st;
}
