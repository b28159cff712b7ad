/*
 * Hugging Face Text Embeddings Inference (base_url http://host:8080):
 * embed -> POST /embed {inputs: [...], normalize: true} answering
 * [[float...], ...]; rerank -> POST /rerank {query, texts: [...]} answering
 * [{index, score}, ...] (best first). Errors come as {"error", "error_type"}.
 * TEI does not generate text. No key unless the deployment adds one
 * (sent as a bearer token); probe GET /info.
 */
#include <jansson.h>

#include "backends/backends_internal.h"

static json_t *texts_json(const ia_api_request *req) {
    json_t *a = json_array();
    for (size_t i = 0; i < req->n_texts; i++)
        json_array_append_new(a, json_string(req->texts[i]));
    return a;
}

static ia_status tei_build(const ia_api_endpoint_config *ep, const ia_api_request *req,
                           const char *model, const char *key, ia_api_http_call *out) {
    json_t *body;
    const char *path;
    if (req->op == IA_API_EMBED) {
        path = "/embed";
        body = json_pack("{s:o,s:b}", "inputs", texts_json(req), "normalize", 1);
    } else if (req->op == IA_API_RERANK) {
        path = "/rerank";
        body =
            json_pack("{s:s,s:o}", "query", req->query ? req->query : "", "texts", texts_json(req));
    } else {
        return ia_error_set(IA_EUNSUPPORTED, "tei serves embed and rerank only, not %s",
                            ia_api_op_name(req->op));
    }
    out->url = ia_api_url(ep, "%s", path);
    return ia_api_post_json(out, body, "Authorization: Bearer ", key);
}

static ia_status tei_parse(ia_api_op op, const char *body, size_t len, ia_api_result *out) {
    if (op != IA_API_EMBED && op != IA_API_RERANK)
        return ia_error_set(IA_EUNSUPPORTED, "tei has no %s answers", ia_api_op_name(op));
    json_t *j;
    ia_status st = ia_api_json_body(body, len, &j);
    if (st != IA_OK)
        return st;
    if (op == IA_API_EMBED)
        st = ia_api_take_embeddings(j, NULL, out);
    else
        st = ia_api_take_ranks(j, "score", 0, out);
    json_decref(j);
    return st;
}

const ia_api_adapter ia_api_adapter_tei = {
    .provider = IA_API_PROVIDER_TEI,
    .needs_key = false,
    .probe_path = "/info",
    .build = tei_build,
    .parse = tei_parse,
    .stream_event = NULL,
};
