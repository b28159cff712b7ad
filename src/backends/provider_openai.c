/*
 * The OpenAI wire format and the providers that speak it: OpenAI itself,
 * Groq and vLLM (base_url ends in /v1 as their SDKs expect), OpenVINO Model
 * Server's OpenAI-compatible /v3 endpoints and OPEA ChatQnA (provider_ovms.c
 * and provider_opea.c reuse the pieces here).
 *
 * chat -> POST {base}/chat/completions {model, messages, max_tokens,
 * temperature, n, logprobs, logit_bias, stream}; complete -> /completions
 * {model, prompt, ...}; embed -> /embeddings {model, input: [...]}; rerank
 * (vLLM, OVMS) -> /rerank {model, query, documents} answering results
 * [{index, relevance_score}]. Keys go in "Authorization: Bearer".
 * Streams are SSE chunks with choices[0].delta.content (chat) or
 * choices[0].text (complete), ending with "data: [DONE]"; a stream that ends
 * without it was cut short. Groq refuses logprobs, logit_bias and n > 1, so
 * those are rejected here before anything is sent.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backends_internal.h"

static json_t *string_array(const char *const *texts, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(texts[i]));
    return a;
}

ia_status ia_openai_build(const ia_api_endpoint_config *ep, const ia_api_request *req,
                          const char *model, const char *key, const char *prefix, bool rerank,
                          bool stream_usage, ia_api_http_call *out) {
    json_t *body = json_object();
    const char *path = NULL;
    if (!body)
        return IA_ENOMEM;
    switch (req->op) {
    case IA_API_CHAT:
    case IA_API_COMPLETE:
        path = req->op == IA_API_CHAT ? "/chat/completions" : "/completions";
        json_object_set_new(body, "model", json_string(model));
        if (req->op == IA_API_CHAT)
            json_object_set_new(body, "messages", ia_api_chat_messages(req, true));
        else
            json_object_set_new(body, "prompt", json_string(req->texts[0]));
        if (req->max_tokens > 0)
            json_object_set_new(body, "max_tokens", json_integer(req->max_tokens));
        if (req->temperature >= 0)
            json_object_set_new(body, "temperature", json_real(req->temperature));
        if (req->top_p > 0)
            json_object_set_new(body, "top_p", json_real(req->top_p));
        if (req->n_stop)
            json_object_set_new(body, "stop", ia_api_string_array(req->stop, req->n_stop));
        if (req->has_seed)
            json_object_set_new(body, "seed", json_integer((json_int_t)(req->seed & INT64_MAX)));
        if (req->n > 1)
            json_object_set_new(body, "n", json_integer(req->n));
        if (req->logprobs)
            json_object_set_new(body, "logprobs", json_true());
        if (req->logit_bias_json) {
            json_t *lb = json_loads(req->logit_bias_json, 0, NULL);
            if (!json_is_object(lb)) {
                json_decref(lb);
                json_decref(body);
                return ia_error_set(IA_EINVAL,
                                    "logit_bias must be a JSON object of token id -> bias");
            }
            json_object_set_new(body, "logit_bias", lb);
        }
        if (req->stream) {
            json_object_set_new(body, "stream", json_true());
            if (stream_usage)
                json_object_set_new(body, "stream_options", json_pack("{s:b}", "include_usage", 1));
            out->stream = IA_API_STREAM_SSE;
        }
        break;
    case IA_API_EMBED:
        path = "/embeddings";
        json_object_set_new(body, "model", json_string(model));
        json_object_set_new(body, "input", string_array(req->texts, req->n_texts));
        break;
    case IA_API_RERANK:
        if (!rerank) {
            json_decref(body);
            return ia_error_set(IA_EUNSUPPORTED, "%s has no rerank API",
                                ia_api_provider_name(ep->provider));
        }
        path = "/rerank";
        json_object_set_new(body, "model", json_string(model));
        json_object_set_new(body, "query", json_string(req->query ? req->query : ""));
        json_object_set_new(body, "documents", string_array(req->texts, req->n_texts));
        break;
    }
    out->url = ia_api_url(ep, "%s%s", prefix, path);
    ia_status st = ia_api_post_json(out, body, "Authorization: Bearer ", key);
    if (st == IA_OK && req->stream && (req->op == IA_API_CHAT || req->op == IA_API_COMPLETE))
        st = ia_api_http_call_header(out, "Accept: text/event-stream");
    return st;
}

static void take_usage(json_t *usage, ia_api_result *out) {
    if (!json_is_object(usage))
        return;
    json_t *in = json_object_get(usage, "prompt_tokens");
    json_t *o = json_object_get(usage, "completion_tokens");
    if (json_is_integer(in))
        out->tokens_in = (long)json_integer_value(in);
    if (json_is_integer(o))
        out->tokens_out = (long)json_integer_value(o);
}

static ia_status set_finish(ia_api_result *out, json_t *fr) {
    if (!json_is_string(fr))
        return IA_OK;
    free(out->finish_reason);
    out->finish_reason = ia_strdup(json_string_value(fr));
    return out->finish_reason ? IA_OK : IA_ENOMEM;
}

ia_status ia_openai_parse(ia_api_op op, const char *body, size_t len, ia_api_result *out) {
    json_t *j;
    ia_status st = ia_api_json_body(body, len, &j);
    if (st != IA_OK)
        return st;
    if (!json_is_object(j)) {
        st = ia_error_set(IA_EPARSE, "the provider's answer is not a JSON object");
        goto done;
    }
    take_usage(json_object_get(j, "usage"), out);
    if (op == IA_API_CHAT || op == IA_API_COMPLETE) {
        json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
        const char *text =
            op == IA_API_CHAT
                ? json_string_value(json_object_get(json_object_get(c0, "message"), "content"))
                : json_string_value(json_object_get(c0, "text"));
        if (!json_is_object(c0) || (!text && op == IA_API_COMPLETE)) {
            st = ia_error_set(IA_EPARSE, "the provider's answer has no choices[0].%s",
                              op == IA_API_CHAT ? "message.content" : "text");
            goto done;
        }
        st = ia_api_set_text(out, text ? text : "");
        if (st == IA_OK)
            st = set_finish(out, json_object_get(c0, "finish_reason"));
    } else if (op == IA_API_EMBED) {
        st = ia_api_take_embeddings(json_object_get(j, "data"), "embedding", out);
    } else {
        json_t *res = json_object_get(j, "results");
        if (!res)
            res = json_object_get(j, "data");
        st = ia_api_take_ranks(res, "relevance_score", 0, out);
    }
done:
    json_decref(j);
    return st;
}

ia_status ia_openai_stream_event(ia_api_stream_state *s, const char *event, const char *data,
                                 size_t len) {
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        s->done = true;
        return IA_OK;
    }
    json_t *j;
    ia_status st = ia_api_json_body(data, len, &j);
    if (st != IA_OK)
        return st;
    json_t *err = json_object_get(j, "error");
    if (err) {
        ia_api_error_text(data, len, s->error, sizeof s->error);
        json_decref(j);
        s->error_status = 500;
        return ia_error_set(IA_EIO, "error event in the stream: %s", s->error);
    }
    json_t *usage = json_object_get(j, "usage");
    if (json_is_object(usage))
        take_usage(usage, s->res);
    json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
    if (json_is_object(c0)) {
        json_t *delta = json_object_get(c0, "delta");
        const char *t = delta ? json_string_value(json_object_get(delta, "content"))
                              : json_string_value(json_object_get(c0, "text"));
        if (t)
            st = ia_api_stream_delta(s, t, strlen(t));
        if (st == IA_OK)
            st = set_finish(s->res, json_object_get(c0, "finish_reason"));
    }
    json_decref(j);
    return st;
}

static ia_status openai_build(const ia_api_endpoint_config *ep, const ia_api_request *req,
                              const char *model, const char *key, ia_api_http_call *out) {
    return ia_openai_build(ep, req, model, key, "", false, true, out);
}

static ia_status vllm_build(const ia_api_endpoint_config *ep, const ia_api_request *req,
                            const char *model, const char *key, ia_api_http_call *out) {
    return ia_openai_build(ep, req, model, key, "", true, true, out);
}

/* Groq's OpenAI compatibility leaves out logprobs, logit_bias and n > 1; it
 * answers 400 for them, so they are refused before a request is spent. */
static ia_status groq_build(const ia_api_endpoint_config *ep, const ia_api_request *req,
                            const char *model, const char *key, ia_api_http_call *out) {
    const char *bad = req->logprobs          ? "logprobs"
                      : req->logit_bias_json ? "logit_bias"
                      : req->n > 1           ? "n > 1"
                                             : NULL;
    if (bad)
        return ia_error_set(IA_EUNSUPPORTED, "groq does not support %s", bad);
    if (req->op == IA_API_EMBED || req->op == IA_API_COMPLETE)
        return ia_error_set(IA_EUNSUPPORTED, "groq has no %s API (chat only)",
                            ia_api_op_name(req->op));
    return ia_openai_build(ep, req, model, key, "", false, false, out);
}

const ia_api_adapter ia_api_adapter_openai = {
    .provider = IA_API_PROVIDER_OPENAI,
    .needs_key = true,
    .probe_path = "/models",
    .build = openai_build,
    .parse = ia_openai_parse,
    .stream_event = ia_openai_stream_event,
};

const ia_api_adapter ia_api_adapter_groq = {
    .provider = IA_API_PROVIDER_GROQ,
    .needs_key = true,
    .probe_path = "/models",
    .build = groq_build,
    .parse = ia_openai_parse,
    .stream_event = ia_openai_stream_event,
};

const ia_api_adapter ia_api_adapter_vllm = {
    .provider = IA_API_PROVIDER_VLLM,
    .needs_key = false,
    .probe_path = "/models",
    .build = vllm_build,
    .parse = ia_openai_parse,
    .stream_event = ia_openai_stream_event,
};
