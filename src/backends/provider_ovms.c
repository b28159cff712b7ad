/*
 * OpenVINO Model Server (base_url http://host:8000). Text goes through its
 * OpenAI-compatible endpoints under /v3: /v3/chat/completions,
 * /v3/completions, /v3/embeddings and /v3/rerank (Cohere-style {model,
 * query, documents} answering results [{index, relevance_score}]), the same
 * wire format as provider_openai.c. Probe: KServe v2's GET
 * /v2/health/ready. (KServe v2 /v2/models/{m}/infer with raw tensors is not
 * wired to the text operations: its inputs are model-specific.)
 */
#include "backends/backends_internal.h"

static ia_status ovms_build(const ia_api_endpoint_config *ep, const ia_api_request *req,
                            const char *model, const char *key, ia_api_http_call *out) {
    return ia_openai_build(ep, req, model, key, "/v3", true, false, out);
}

const ia_api_adapter ia_api_adapter_ovms = {
    .provider = IA_API_OVMS,
    .needs_key = false,
    .probe_path = "/v2/health/ready",
    .build = ovms_build,
    .parse = ia_openai_parse,
    .stream_event = ia_openai_stream_event,
};
