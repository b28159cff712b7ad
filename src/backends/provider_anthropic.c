/*
 * Anthropic's Messages API (base_url https://api.anthropic.com): chat and
 * complete -> POST /v1/messages with "x-api-key" and "anthropic-version:
 * 2023-06-01", body {model, max_tokens (required: 1024 when the request has
 * none), system, messages: [{role: "user", content}], temperature, stream}.
 * The answer: {content: [{type: "text", text}...], stop_reason, usage:
 * {input_tokens, output_tokens}}. Streams are SSE with named events:
 * message_start (usage.input_tokens), content_block_start,
 * content_block_delta (delta.type "text_delta", delta.text),
 * content_block_stop, message_delta (delta.stop_reason, usage.output_tokens),
 * message_stop (the end marker), ping, and error ({error: {type, message}};
 * overloaded_error is the in-stream form of HTTP 529). No embeddings or
 * rerank. Probe GET /v1/models.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backends_internal.h"

static ia_status anthropic_build(const ia_api_endpoint_config *ep, const ia_api_request *req,
                                 const char *model, const char *key, ia_api_http_call *out) {
    if (req->op != IA_API_CHAT && req->op != IA_API_COMPLETE)
        return ia_error_set(IA_EUNSUPPORTED, "anthropic has no %s API", ia_api_op_name(req->op));
    if (req->n > 1 || req->logprobs || req->logit_bias_json)
        return ia_error_set(IA_EUNSUPPORTED, "anthropic does not support %s",
                            req->n > 1      ? "n > 1"
                            : req->logprobs ? "logprobs"
                                            : "logit_bias");
    json_t *body = json_pack("{s:s,s:i,s:o}", "model", model, "max_tokens",
                             req->max_tokens > 0 ? req->max_tokens : 1024, "messages",
                             ia_api_chat_messages(req, false));
    if (!body)
        return IA_ENOMEM;
    char *system = ia_api_chat_system(req); /* Anthropic takes it apart from the turns */
    if (system)
        json_object_set_new(body, "system", json_string(system));
    free(system);
    if (req->temperature >= 0)
        json_object_set_new(body, "temperature", json_real(req->temperature));
    if (req->top_p > 0)
        json_object_set_new(body, "top_p", json_real(req->top_p));
    if (req->n_stop) /* Messages has no seed: a seed is not sent */
        json_object_set_new(body, "stop_sequences", ia_api_string_array(req->stop, req->n_stop));
    if (req->stream) {
        json_object_set_new(body, "stream", json_true());
        out->stream = IA_API_STREAM_SSE;
    }
    out->url = ia_api_url(ep, "/v1/messages");
    ia_status st = ia_api_post_json(out, body, "x-api-key: ", key);
    if (st == IA_OK)
        st = ia_api_http_call_header(out, "anthropic-version: 2023-06-01");
    return st;
}

static void take_usage(json_t *u, ia_api_result *out) {
    json_t *in = json_object_get(u, "input_tokens"), *o = json_object_get(u, "output_tokens");
    if (json_is_integer(in))
        out->tokens_in = (long)json_integer_value(in);
    if (json_is_integer(o))
        out->tokens_out = (long)json_integer_value(o);
}

static ia_status set_stop(json_t *sr, ia_api_result *out) {
    if (!json_is_string(sr))
        return IA_OK;
    free(out->finish_reason);
    out->finish_reason = ia_strdup(json_string_value(sr));
    return out->finish_reason ? IA_OK : IA_ENOMEM;
}

static ia_status anthropic_parse(ia_api_op op, const char *body, size_t len, ia_api_result *out) {
    if (op != IA_API_CHAT && op != IA_API_COMPLETE)
        return ia_error_set(IA_EUNSUPPORTED, "anthropic has no %s answers", ia_api_op_name(op));
    json_t *j;
    ia_status st = ia_api_json_body(body, len, &j);
    if (st != IA_OK)
        return st;
    json_t *content = json_object_get(j, "content");
    if (!json_is_array(content)) {
        st = ia_error_set(IA_EPARSE, "the provider's answer has no content list");
        goto done;
    }
    /* The text is every text block, in order. */
    size_t total = 0;
    for (size_t i = 0; i < json_array_size(content); i++) {
        const char *t = json_string_value(json_object_get(json_array_get(content, i), "text"));
        total += t ? strlen(t) : 0;
    }
    char *text = ia_malloc(total + 1);
    if (!text) {
        st = IA_ENOMEM;
        goto done;
    }
    size_t at = 0;
    for (size_t i = 0; i < json_array_size(content); i++) {
        json_t *b = json_array_get(content, i);
        const char *t = json_string_value(json_object_get(b, "text"));
        if (t && json_is_string(json_object_get(b, "type")) &&
            strcmp(json_string_value(json_object_get(b, "type")), "text") == 0) {
            memcpy(text + at, t, strlen(t));
            at += strlen(t);
        }
    }
    text[at] = 0;
    free(out->text);
    out->text = text;
    take_usage(json_object_get(j, "usage"), out);
    st = set_stop(json_object_get(j, "stop_reason"), out);
done:
    json_decref(j);
    return st;
}

static ia_status anthropic_stream_event(ia_api_stream_state *s, const char *event, const char *data,
                                        size_t len) {
    if (event && strcmp(event, "ping") == 0)
        return IA_OK;
    json_t *j;
    ia_status st = ia_api_json_body(data, len, &j);
    if (st != IA_OK)
        return st;
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!type)
        type = event ? event : "";
    if (strcmp(type, "message_start") == 0) {
        take_usage(json_object_get(json_object_get(j, "message"), "usage"), s->res);
    } else if (strcmp(type, "content_block_delta") == 0) {
        json_t *d = json_object_get(j, "delta");
        const char *t = json_string_value(json_object_get(d, "text"));
        if (t)
            st = ia_api_stream_delta(s, t, strlen(t));
    } else if (strcmp(type, "message_delta") == 0) {
        json_t *u = json_object_get(j, "usage");
        json_t *o = json_object_get(u, "output_tokens");
        if (json_is_integer(o))
            s->res->tokens_out = (long)json_integer_value(o);
        st = set_stop(json_object_get(json_object_get(j, "delta"), "stop_reason"), s->res);
    } else if (strcmp(type, "message_stop") == 0) {
        s->done = true;
    } else if (strcmp(type, "error") == 0) {
        json_t *e = json_object_get(j, "error");
        const char *et = json_string_value(json_object_get(e, "type"));
        const char *m = json_string_value(json_object_get(e, "message"));
        snprintf(s->error, sizeof s->error, "%s: %s", et ? et : "error", m ? m : "");
        s->error_status = et && strcmp(et, "overloaded_error") == 0   ? 529
                          : et && strcmp(et, "rate_limit_error") == 0 ? 429
                          : et && strcmp(et, "api_error") == 0        ? 500
                                                                      : 400;
        st = ia_error_set(IA_EIO, "error event in the stream: %s", s->error);
    }
    json_decref(j);
    return st;
}

const ia_api_adapter ia_api_adapter_anthropic = {
    .provider = IA_API_PROVIDER_ANTHROPIC,
    .needs_key = true,
    .probe_path = "/v1/models",
    .build = anthropic_build,
    .parse = anthropic_parse,
    .stream_event = anthropic_stream_event,
};
