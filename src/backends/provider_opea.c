/*
 * OPEA ChatQnA (base_url http://host:8888): chat -> POST /v1/chatqna
 * {messages: "question", max_tokens, temperature, stream} answering an
 * OpenAI chat completion (choices[0].message.content); streamed answers are
 * OpenAI-style SSE chunks ending in [DONE]. Only chat; probe GET
 * /v1/health_check.
 */
#include <jansson.h>

#include "backends/backends_internal.h"

static ia_status opea_build(const ia_api_endpoint_config *ep, const ia_api_request *req,
                            const char *model, const char *key, ia_api_http_call *out) {
    if (req->op != IA_API_CHAT)
        return ia_error_set(IA_EUNSUPPORTED, "opea ChatQnA serves chat only, not %s",
                            ia_api_op_name(req->op));
    json_t *body = json_pack("{s:s,s:b}", "messages", req->texts[0], "stream", req->stream ? 1 : 0);
    if (!body)
        return IA_ENOMEM;
    if (model && *model)
        json_object_set_new(body, "model", json_string(model));
    if (req->max_tokens > 0)
        json_object_set_new(body, "max_tokens", json_integer(req->max_tokens));
    if (req->temperature >= 0)
        json_object_set_new(body, "temperature", json_real(req->temperature));
    if (req->stream)
        out->stream = IA_API_STREAM_SSE;
    out->url = ia_api_url(ep, "/v1/chatqna");
    return ia_api_post_json(out, body, "Authorization: Bearer ", key);
}

const ia_api_adapter ia_api_adapter_opea = {
    .provider = IA_API_PROVIDER_OPEA,
    .needs_key = false,
    .probe_path = "/v1/health_check",
    .build = opea_build,
    .parse = ia_openai_parse,
    .stream_event = ia_openai_stream_event,
};
