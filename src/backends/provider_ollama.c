/*
 * Ollama's native API (base_url http://host:11434): chat -> POST /api/chat
 * {model, messages, stream, options: {num_predict, temperature}} answering
 * {message: {content}, done, done_reason, prompt_eval_count, eval_count};
 * complete -> /api/generate {model, prompt, ...} answering {response, ...};
 * embed -> /api/embed {model, input: [...]} answering {embeddings: [[...]]}.
 * Ollama streams by default, as NDJSON: one JSON object per line, the last
 * with "done": true (a stream without it was cut short), and an {"error"}
 * line when the model fails mid-way. No key; probe GET /api/tags.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backends_internal.h"

static ia_status ollama_build(const ia_api_endpoint_config *ep, const ia_api_request *req,
                              const char *model, const char *key, ia_api_http_call *out) {
    json_t *body = json_pack("{s:s,s:b}", "model", model, "stream", req->stream ? 1 : 0);
    const char *path;
    if (!body)
        return IA_ENOMEM;
    if (req->op == IA_API_CHAT || req->op == IA_API_COMPLETE) {
        json_t *opts = json_object();
        if (req->max_tokens > 0)
            json_object_set_new(opts, "num_predict", json_integer(req->max_tokens));
        if (req->temperature >= 0)
            json_object_set_new(opts, "temperature", json_real(req->temperature));
        if (req->top_p > 0)
            json_object_set_new(opts, "top_p", json_real(req->top_p));
        if (req->n_stop)
            json_object_set_new(opts, "stop", ia_api_string_array(req->stop, req->n_stop));
        if (req->has_seed)
            json_object_set_new(opts, "seed", json_integer((json_int_t)(req->seed & INT64_MAX)));
        json_object_set_new(body, "options", opts);
        if (req->op == IA_API_CHAT) {
            path = "/api/chat";
            json_object_set_new(body, "messages", ia_api_chat_messages(req, true));
        } else {
            path = "/api/generate";
            json_object_set_new(body, "prompt", json_string(req->texts[0]));
            if (req->system)
                json_object_set_new(body, "system", json_string(req->system));
        }
        if (req->stream)
            out->stream = IA_API_STREAM_NDJSON;
    } else if (req->op == IA_API_EMBED) {
        path = "/api/embed";
        json_object_del(body, "stream");
        json_t *in = json_array();
        for (size_t i = 0; i < req->n_texts; i++)
            json_array_append_new(in, json_string(req->texts[i]));
        json_object_set_new(body, "input", in);
    } else {
        json_decref(body);
        return ia_error_set(IA_EUNSUPPORTED, "ollama has no rerank API");
    }
    out->url = ia_api_url(ep, "%s", path);
    return ia_api_post_json(out, body, "Authorization: Bearer ", key);
}

static void take_counts(json_t *j, ia_api_result *out) {
    json_t *in = json_object_get(j, "prompt_eval_count");
    json_t *o = json_object_get(j, "eval_count");
    if (json_is_integer(in))
        out->tokens_in = (long)json_integer_value(in);
    if (json_is_integer(o))
        out->tokens_out = (long)json_integer_value(o);
}

static const char *piece(json_t *j) {
    json_t *m = json_object_get(j, "message");
    if (m)
        return json_string_value(json_object_get(m, "content"));
    return json_string_value(json_object_get(j, "response"));
}

static ia_status set_done_reason(json_t *j, ia_api_result *out) {
    const char *r = json_string_value(json_object_get(j, "done_reason"));
    if (!r)
        return IA_OK;
    free(out->finish_reason);
    out->finish_reason = ia_strdup(r);
    return out->finish_reason ? IA_OK : IA_ENOMEM;
}

static ia_status ollama_parse(ia_api_op op, const char *body, size_t len, ia_api_result *out) {
    json_t *j;
    ia_status st = ia_api_json_body(body, len, &j);
    if (st != IA_OK)
        return st;
    if (!json_is_object(j)) {
        st = ia_error_set(IA_EPARSE, "the provider's answer is not a JSON object");
    } else if (op == IA_API_RERANK) {
        st = ia_error_set(IA_EUNSUPPORTED, "ollama has no rerank answers");
    } else if (op == IA_API_EMBED) {
        st = ia_api_take_embeddings(json_object_get(j, "embeddings"), NULL, out);
        json_t *in = json_object_get(j, "prompt_eval_count");
        if (json_is_integer(in))
            out->tokens_in = (long)json_integer_value(in);
    } else {
        const char *t = piece(j);
        if (!t)
            st = ia_error_set(IA_EPARSE, "the provider's answer has no %s",
                              op == IA_API_CHAT ? "message.content" : "response");
        else
            st = ia_api_set_text(out, t);
        take_counts(j, out);
        if (st == IA_OK)
            st = set_done_reason(j, out);
    }
    json_decref(j);
    return st;
}

static ia_status ollama_stream_line(ia_api_stream_state *s, const char *event, const char *data,
                                    size_t len) {
    json_t *j;
    ia_status st = ia_api_json_body(data, len, &j);
    if (st != IA_OK)
        return st;
    const char *err = json_string_value(json_object_get(j, "error"));
    if (err) {
        snprintf(s->error, sizeof s->error, "%s", err);
        s->error_status = 500;
        json_decref(j);
        return ia_error_set(IA_EIO, "error line in the stream: %s", s->error);
    }
    const char *t = piece(j);
    if (t)
        st = ia_api_stream_delta(s, t, strlen(t));
    if (st == IA_OK && json_is_true(json_object_get(j, "done"))) {
        s->done = true;
        take_counts(j, s->res);
        st = set_done_reason(j, s->res);
    }
    json_decref(j);
    return st;
}

const ia_api_adapter ia_api_adapter_ollama = {
    .provider = IA_API_PROVIDER_OLLAMA,
    .needs_key = false,
    .probe_path = "/api/tags",
    .build = ollama_build,
    .parse = ollama_parse,
    .stream_event = ollama_stream_line,
};
