/*
 * Google's Gemini API (base_url https://generativelanguage.googleapis.com/v1beta),
 * key in the "x-goog-api-key" header. chat and complete -> POST
 * /models/{model}:generateContent {contents: [{role: "user", parts: [{text}]}],
 * systemInstruction: {parts: [{text}]}, generationConfig: {maxOutputTokens,
 * temperature, candidateCount}} answering {candidates: [{content: {parts:
 * [{text}]}, finishReason}], usageMetadata: {promptTokenCount,
 * candidatesTokenCount}}. Streaming uses :streamGenerateContent?alt=sse:
 * every SSE event is such a response with the next piece; there is no end
 * marker, so a stream counts as complete once a candidate carried a
 * finishReason. embed -> :batchEmbedContents {requests: [{model:
 * "models/{m}", content: {parts: [{text}]}}]} answering {embeddings:
 * [{values}]}. Probe GET /models.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backends_internal.h"

/* The turns as Gemini contents: roles user and model, text in parts. */
static json_t *gemini_contents(const ia_api_request *req) {
    json_t *turns = ia_api_chat_messages(req, false), *out = json_array(), *t;
    size_t i;
    json_array_foreach(turns, i, t) {
        const char *role = json_string_value(json_object_get(t, "role"));
        json_array_append_new(out, json_pack("{s:s,s:[{s:O}]}", "role",
                                             strcmp(role, "assistant") == 0 ? "model" : "user",
                                             "parts", "text", json_object_get(t, "content")));
    }
    json_decref(turns);
    return out;
}

static ia_status gemini_build(const ia_api_endpoint_config *ep, const ia_api_request *req,
                              const char *model, const char *key, ia_api_http_call *out) {
    json_t *body;
    const char *m = strncmp(model, "models/", 7) == 0 ? model + 7 : model;
    if (req->op == IA_API_CHAT || req->op == IA_API_COMPLETE) {
        if (req->logprobs || req->logit_bias_json)
            return ia_error_set(IA_EUNSUPPORTED, "gemini does not support %s",
                                req->logprobs ? "logprobs" : "logit_bias");
        body = json_pack("{s:o}", "contents", gemini_contents(req));
        if (!body)
            return IA_ENOMEM;
        char *system = ia_api_chat_system(req);
        if (system)
            json_object_set_new(body, "systemInstruction",
                                json_pack("{s:[{s:s}]}", "parts", "text", system));
        free(system);
        json_t *gc = json_object();
        if (req->max_tokens > 0)
            json_object_set_new(gc, "maxOutputTokens", json_integer(req->max_tokens));
        if (req->temperature >= 0)
            json_object_set_new(gc, "temperature", json_real(req->temperature));
        if (req->top_p > 0)
            json_object_set_new(gc, "topP", json_real(req->top_p));
        if (req->n_stop)
            json_object_set_new(gc, "stopSequences", ia_api_string_array(req->stop, req->n_stop));
        if (req->has_seed)
            json_object_set_new(gc, "seed", json_integer((json_int_t)(req->seed & INT32_MAX)));
        if (req->n > 1)
            json_object_set_new(gc, "candidateCount", json_integer(req->n));
        json_object_set_new(body, "generationConfig", gc);
        if (req->stream) {
            out->url = ia_api_url(ep, "/models/%s:streamGenerateContent?alt=sse", m);
            out->stream = IA_API_STREAM_SSE;
        } else {
            out->url = ia_api_url(ep, "/models/%s:generateContent", m);
        }
    } else if (req->op == IA_API_EMBED) {
        json_t *reqs = json_array();
        char full[512];
        snprintf(full, sizeof full, "models/%s", m);
        for (size_t i = 0; i < req->n_texts; i++)
            json_array_append_new(reqs, json_pack("{s:s,s:{s:[{s:s}]}}", "model", full, "content",
                                                  "parts", "text", req->texts[i]));
        body = json_pack("{s:o}", "requests", reqs);
        out->url = ia_api_url(ep, "/models/%s:batchEmbedContents", m);
    } else {
        return ia_error_set(IA_EUNSUPPORTED, "gemini has no rerank API");
    }
    return ia_api_post_json(out, body, "x-goog-api-key: ", key);
}

/* Appends every text part of candidates[0] to text (malloc'd, may be NULL). */
static ia_status candidate_text(json_t *j, ia_api_result *res, ia_api_stream_state *s,
                                bool *finished) {
    json_t *c0 = json_array_get(json_object_get(j, "candidates"), 0);
    json_t *parts = json_object_get(json_object_get(c0, "content"), "parts");
    ia_status st = IA_OK;
    size_t total = 0;
    for (size_t i = 0; i < json_array_size(parts); i++) {
        const char *t = json_string_value(json_object_get(json_array_get(parts, i), "text"));
        if (!t)
            continue;
        if (s) {
            st = ia_api_stream_delta(s, t, strlen(t));
            if (st != IA_OK)
                return st;
        } else {
            size_t have = res->text ? strlen(res->text) : 0;
            char *n = realloc(res->text, have + strlen(t) + 1);
            if (!n)
                return ia_error_set(IA_ENOMEM, "out of memory");
            memcpy(n + have, t, strlen(t) + 1);
            res->text = n;
        }
        total++;
    }
    const char *fr = json_string_value(json_object_get(c0, "finishReason"));
    if (fr) {
        free(res->finish_reason);
        res->finish_reason = ia_strdup(fr);
        *finished = true;
    }
    json_t *u = json_object_get(j, "usageMetadata");
    json_t *in = json_object_get(u, "promptTokenCount"),
           *o = json_object_get(u, "candidatesTokenCount");
    if (json_is_integer(in))
        res->tokens_in = (long)json_integer_value(in);
    if (json_is_integer(o))
        res->tokens_out = (long)json_integer_value(o);
    (void)total;
    return st;
}

static ia_status gemini_parse(ia_api_op op, const char *body, size_t len, ia_api_result *out) {
    json_t *j;
    ia_status st = ia_api_json_body(body, len, &j);
    if (st != IA_OK)
        return st;
    if (op == IA_API_RERANK) {
        st = ia_error_set(IA_EUNSUPPORTED, "gemini has no rerank answers");
    } else if (op == IA_API_EMBED) {
        st = ia_api_take_embeddings(json_object_get(j, "embeddings"), "values", out);
    } else if (!json_is_array(json_object_get(j, "candidates"))) {
        st = ia_error_set(IA_EPARSE, "the provider's answer has no candidates");
    } else {
        bool fin = false;
        st = candidate_text(j, out, NULL, &fin);
        if (st == IA_OK && !out->text)
            st = ia_api_set_text(out, "");
    }
    json_decref(j);
    return st;
}

static ia_status gemini_stream_event(ia_api_stream_state *s, const char *event, const char *data,
                                     size_t len) {
    json_t *j;
    ia_status st = ia_api_json_body(data, len, &j);
    if (st != IA_OK)
        return st;
    json_t *err = json_object_get(j, "error");
    if (err) {
        ia_api_error_text(data, len, s->error, sizeof s->error);
        json_t *code = json_object_get(err, "code");
        s->error_status = json_is_integer(code) ? (int)json_integer_value(code) : 500;
        json_decref(j);
        return ia_error_set(IA_EIO, "error event in the stream: %s", s->error);
    }
    bool fin = false;
    st = candidate_text(j, s->res, s, &fin);
    if (fin)
        s->done = true;
    json_decref(j);
    return st;
}

const ia_api_adapter ia_api_adapter_gemini = {
    .provider = IA_API_PROVIDER_GEMINI,
    .needs_key = true,
    .probe_path = "/models",
    .build = gemini_build,
    .parse = gemini_parse,
    .stream_event = gemini_stream_event,
};
