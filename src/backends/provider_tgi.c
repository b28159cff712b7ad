/*
 * Hugging Face Text Generation Inference (base_url http://host:8080).
 * complete -> POST /generate {inputs, parameters: {max_new_tokens,
 * temperature, details: true}} answering {generated_text, details:
 * {finish_reason, generated_tokens}}; streamed -> /generate_stream, SSE
 * events {token: {text, special}, generated_text: null | "...", details}
 * where the last event carries generated_text (the end marker). chat uses
 * TGI's Messages API, /v1/chat/completions in the OpenAI format. Errors:
 * {"error", "error_type"}. Probe GET /info.
 */
#define _GNU_SOURCE /* memmem */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backends_internal.h"

static ia_status tgi_build(const ia_api_endpoint_config *ep, const ia_api_request *req,
                           const char *model, const char *key, ia_api_http_call *out) {
    if (req->op == IA_API_CHAT)
        return ia_openai_build(ep, req, model, key, "/v1", false, false, out);
    if (req->op != IA_API_COMPLETE)
        return ia_error_set(IA_EUNSUPPORTED, "tgi serves chat and complete only, not %s",
                            ia_api_op_name(req->op));
    json_t *params = json_pack("{s:b}", "details", 1);
    if (req->max_tokens > 0)
        json_object_set_new(params, "max_new_tokens", json_integer(req->max_tokens));
    if (req->temperature > 0)
        json_object_set_new(params, "temperature", json_real(req->temperature));
    if (req->top_p > 0 && req->top_p < 1) /* TGI wants it inside (0, 1) */
        json_object_set_new(params, "top_p", json_real(req->top_p));
    if (req->n_stop)
        json_object_set_new(params, "stop", ia_api_string_array(req->stop, req->n_stop));
    if (req->has_seed)
        json_object_set_new(params, "seed", json_integer((json_int_t)(req->seed & INT64_MAX)));
    json_t *body = json_pack("{s:s,s:o}", "inputs", req->texts[0], "parameters", params);
    out->url = ia_api_url(ep, "%s", req->stream ? "/generate_stream" : "/generate");
    if (req->stream)
        out->stream = IA_API_STREAM_SSE;
    return ia_api_post_json(out, body, "Authorization: Bearer ", key);
}

static ia_status take_details(json_t *d, ia_api_result *out) {
    if (!json_is_object(d))
        return IA_OK;
    json_t *n = json_object_get(d, "generated_tokens");
    if (json_is_integer(n))
        out->tokens_out = (long)json_integer_value(n);
    const char *fr = json_string_value(json_object_get(d, "finish_reason"));
    if (fr) {
        free(out->finish_reason);
        out->finish_reason = ia_strdup(fr);
        if (!out->finish_reason)
            return IA_ENOMEM;
    }
    return IA_OK;
}

static ia_status tgi_parse(ia_api_op op, const char *body, size_t len, ia_api_result *out) {
    if (op == IA_API_CHAT)
        return ia_openai_parse(op, body, len, out);
    if (op != IA_API_COMPLETE)
        return ia_error_set(IA_EUNSUPPORTED, "tgi has no %s answers", ia_api_op_name(op));
    json_t *j;
    ia_status st = ia_api_json_body(body, len, &j);
    if (st != IA_OK)
        return st;
    /* /generate answers an object; some versions a one-element list. */
    json_t *o = json_is_array(j) ? json_array_get(j, 0) : j;
    const char *t = json_string_value(json_object_get(o, "generated_text"));
    if (!t)
        st = ia_error_set(IA_EPARSE, "the provider's answer has no generated_text");
    else
        st = ia_api_set_text(out, t);
    if (st == IA_OK)
        st = take_details(json_object_get(o, "details"), out);
    json_decref(j);
    return st;
}

static ia_status tgi_stream_event(ia_api_stream_state *s, const char *event, const char *data,
                                  size_t len) {
    /* TGI's chat stream is the OpenAI one; its chunks have "choices". */
    if ((len == 6 && memcmp(data, "[DONE]", 6) == 0) || memmem(data, len, "\"choices\"", 9))
        return ia_openai_stream_event(s, event, data, len);
    json_t *j;
    ia_status st = ia_api_json_body(data, len, &j);
    if (st != IA_OK)
        return st;
    const char *err = json_string_value(json_object_get(j, "error"));
    if (err) {
        snprintf(s->error, sizeof s->error, "%s", err);
        s->error_status = 500;
        json_decref(j);
        return ia_error_set(IA_EIO, "error event in the stream: %s", s->error);
    }
    json_t *tok = json_object_get(j, "token");
    const char *t = json_string_value(json_object_get(tok, "text"));
    if (t && !json_is_true(json_object_get(tok, "special")))
        st = ia_api_stream_delta(s, t, strlen(t));
    if (st == IA_OK && json_is_string(json_object_get(j, "generated_text"))) {
        s->done = true;
        st = take_details(json_object_get(j, "details"), s->res);
    }
    json_decref(j);
    return st;
}

const ia_api_adapter ia_api_adapter_tgi = {
    .provider = IA_API_PROVIDER_TGI,
    .needs_key = false,
    .probe_path = "/info",
    .build = tgi_build,
    .parse = tgi_parse,
    .stream_event = tgi_stream_event,
};
