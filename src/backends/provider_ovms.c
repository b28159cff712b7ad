/*
 * OpenVINO Model Server (base_url http://host:8000), over either of its two
 * text APIs, chosen per endpoint in the YAML:
 *
 *   api: openai (the default) - the OpenAI-compatible endpoints under /v3:
 *     /v3/chat/completions, /v3/completions, /v3/embeddings and /v3/rerank
 *     (Cohere-style {model, query, documents} answering results [{index,
 *     relevance_score}]), the wire format of provider_openai.c.
 *
 *   api: kserve - KServe v2 inference, POST /v2/models/{model}/infer, for
 *     servables that are not OpenAI-compatible (an embedding model, a text
 *     MediaPipe graph). The texts go in one BYTES tensor,
 *       {"inputs": [{"name": "text", "shape": [N], "datatype": "BYTES",
 *                    "data": ["...", ...]}], "outputs": [{"name": OUT}]?,
 *        "parameters": {"max_tokens": .., "temperature": ..}?}
 *     and the answer's output tensor is read back:
 *       {"model_name", "model_version", "outputs": [{"name", "shape",
 *        "datatype", "data"}]}
 *     embed takes an FP32/FP16/FP64 (or integer) output of shape [N, ...]
 *     as N rows; chat and complete take a BYTES output's first string. The
 *     input tensor's name is `kserve: {input: NAME}` ("text" by default);
 *     the output is `kserve: {output: NAME}`, else the first output of the
 *     right kind. KServe has no streaming and no rerank here; a chat sends
 *     one user text (a system prompt or earlier turns are refused rather
 *     than dropped).
 *
 * Probe: KServe v2's GET /v2/health/ready either way.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backends_internal.h"

/* ---- KServe v2 requests -------------------------------------------------------------- */

/* Model names go into the URL path unescaped: refuse what would change it. */
static bool plain_name(const char *s) {
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s == '/' || *s == '?' || *s == '#' || *s == '%' || (unsigned char)*s <= ' ' ||
            *s == 0x7f)
            return false;
    return true;
}

static ia_status kserve_build(const ia_api_endpoint_config *ep, const ia_api_request *req,
                              const char *model, const char *key, ia_api_http_call *out) {
    const char *why = req->stream                              ? "streaming"
                      : req->op == IA_API_RERANK               ? "rerank"
                      : req->n > 1                             ? "n > 1"
                      : req->logprobs                          ? "logprobs"
                      : req->logit_bias_json                   ? "logit_bias"
                      : req->op != IA_API_EMBED && req->system ? "a system prompt"
                      : req->op == IA_API_CHAT && req->n_messages > 1
                          ? "a conversation (one user text)"
                          : NULL;
    if (why)
        return ia_error_set(IA_EUNSUPPORTED, "ovms over KServe v2 does not support %s", why);
    if (!plain_name(model))
        return ia_error_set(
            IA_EINVAL,
            "ovms model name '%s' cannot go into /v2/models/{name}/infer (empty, or "
            "a '/', '?', '#', '%%' or blank in it)",
            model);
    size_t n = req->op == IA_API_EMBED ? req->n_texts : 1;
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(data, json_string(req->texts[i]));
    json_t *body = json_pack("{s:[{s:s,s:[I],s:s,s:o}]}", "inputs", "name",
                             ep->kserve_input ? ep->kserve_input : "text", "shape", (json_int_t)n,
                             "datatype", "BYTES", "data", data);
    if (!body)
        return IA_ENOMEM;
    if (ep->kserve_output)
        json_object_set_new(body, "outputs", json_pack("[{s:s}]", "name", ep->kserve_output));
    if (req->op != IA_API_EMBED && (req->max_tokens > 0 || req->temperature >= 0)) {
        json_t *p = json_object();
        if (req->max_tokens > 0)
            json_object_set_new(p, "max_tokens", json_integer(req->max_tokens));
        if (req->temperature >= 0)
            json_object_set_new(p, "temperature", json_real(req->temperature));
        json_object_set_new(body, "parameters", p);
    }
    out->url = ia_api_url(ep, "/v2/models/%s/infer", model);
    return ia_api_post_json(out, body, "Authorization: Bearer ", key);
}

/* ---- KServe v2 responses ------------------------------------------------------------- */

static bool numeric_type(const char *t) {
    static const char *const types[] = {"FP32",  "FP16",  "FP64",  "BF16",   "INT8",   "INT16",
                                        "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(t, types[i]) == 0)
            return true;
    return false;
}

/* Appends data's leaves (KServe allows nested arrays in row-major order) to
 * flat, at most max of them and at most 8 levels deep. */
static ia_status flatten(json_t *data, json_t *flat, size_t max, int depth) {
    if (!json_is_array(data)) {
        if (json_array_size(flat) >= max)
            return ia_error_set(IA_EPARSE, "the KServe output holds more values than its shape");
        return json_array_append(flat, data) == 0 ? IA_OK : IA_ENOMEM;
    }
    if (depth > 8)
        return ia_error_set(IA_EPARSE, "the KServe output's data is nested too deeply");
    size_t i;
    json_t *v;
    json_array_foreach(data, i, v) {
        ia_status st = flatten(v, flat, max, depth + 1);
        if (st != IA_OK)
            return st;
    }
    return IA_OK;
}

/* The output tensor to read: the one named, else the first of the wanted kind. */
static json_t *pick_output(json_t *outs, const char *name, bool numeric) {
    size_t i;
    json_t *o;
    json_array_foreach(outs, i, o) {
        const char *n = json_string_value(json_object_get(o, "name"));
        const char *t = json_string_value(json_object_get(o, "datatype"));
        if (name ? n && strcmp(n, name) == 0
                 : t && (numeric ? numeric_type(t) : strcmp(t, "BYTES") == 0))
            return o;
    }
    return NULL;
}

/* The element count a shape gives, checked for overflow and a sane bound. */
static ia_status shape_count(json_t *shape, size_t *count, size_t *rows) {
    if (!json_is_array(shape) || json_array_size(shape) == 0 || json_array_size(shape) > 8)
        return ia_error_set(IA_EPARSE, "the KServe output's shape is not a list of 1 to 8 sizes");
    size_t n = 1, i;
    json_t *d;
    json_array_foreach(shape, i, d) {
        json_int_t v = json_is_integer(d) ? json_integer_value(d) : -1;
        if (v < 0 || (v > 0 && n > ((size_t)1 << 28) / (size_t)v))
            return ia_error_set(IA_EPARSE,
                                "the KServe output's shape has a negative, non-integer or too "
                                "large size");
        n *= (size_t)v;
    }
    *count = n;
    *rows = (size_t)json_integer_value(json_array_get(shape, 0));
    return IA_OK;
}

ia_status ia_kserve_parse(ia_api_op op, const char *output, const char *body, size_t len,
                          ia_api_result *out) {
    json_t *j, *flat = NULL;
    ia_status st = ia_api_json_body(body, len, &j);
    if (st != IA_OK)
        return st;
    bool numeric = op == IA_API_EMBED;
    json_t *outs = json_object_get(j, "outputs");
    json_t *o = json_is_array(outs) ? pick_output(outs, output, numeric) : NULL;
    if (!o) {
        st = !json_is_array(outs) ? ia_error_set(IA_EPARSE, "the KServe answer has no outputs list")
             : output ? ia_error_set(IA_EPARSE, "the KServe answer has no output '%s'", output)
                      : ia_error_set(IA_EPARSE, "the KServe answer has no %s output",
                                     numeric ? "numeric" : "BYTES");
        goto done;
    }
    const char *type = json_string_value(json_object_get(o, "datatype"));
    if (!type || (numeric ? !numeric_type(type) : strcmp(type, "BYTES") != 0)) {
        st = ia_error_set(IA_EPARSE, "the KServe output's datatype is %s; %s needs %s",
                          type ? type : "missing", ia_api_op_name(op),
                          numeric ? "a numeric one (FP32, ...)" : "BYTES");
        goto done;
    }
    size_t count = 0, rows = 0;
    if ((st = shape_count(json_object_get(o, "shape"), &count, &rows)) != IA_OK)
        goto done;
    json_t *data = json_object_get(o, "data");
    if (!json_is_array(data)) {
        st = ia_error_set(IA_EPARSE, "the KServe output has no data list");
        goto done;
    }
    if (!(flat = json_array())) {
        st = IA_ENOMEM;
        goto done;
    }
    if ((st = flatten(data, flat, count, 0)) != IA_OK)
        goto done;
    if (json_array_size(flat) != count) {
        st = ia_error_set(IA_EPARSE, "the KServe output's data has %zu values; its shape says %zu",
                          json_array_size(flat), count);
        goto done;
    }
    if (!numeric) {
        const char *t = json_string_value(json_array_get(flat, 0));
        st = t ? ia_api_set_text(out, t)
               : ia_error_set(IA_EPARSE, "the KServe BYTES output holds no string");
        goto done;
    }
    if (count == 0 || rows == 0) {
        st = ia_error_set(IA_EPARSE, "the KServe output is empty");
        goto done;
    }
    size_t rank = json_array_size(json_object_get(o, "shape"));
    size_t n_rows = rank == 1 ? 1 : rows, dim = count / n_rows;
    float *v = ia_malloc_array(count, sizeof *v);
    if (!v) {
        st = IA_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < count; i++) {
        json_t *x = json_array_get(flat, i);
        if (!json_is_number(x)) {
            free(v);
            st = ia_error_set(IA_EPARSE, "value %zu of the KServe output is not a number", i);
            goto done;
        }
        v[i] = (float)json_number_value(x);
    }
    free(out->embeddings);
    out->embeddings = v;
    out->n_embeddings = n_rows;
    out->dim = dim;
done:
    json_decref(flat);
    json_decref(j);
    return st;
}

/* ---- the adapter ----------------------------------------------------------------------- */

static ia_status ovms_build(const ia_api_endpoint_config *ep, const ia_api_request *req,
                            const char *model, const char *key, ia_api_http_call *out) {
    if (ep->api == IA_API_WIRE_KSERVE)
        return kserve_build(ep, req, model, key, out);
    return ia_openai_build(ep, req, model, key, "/v3", true, false, out);
}

static ia_status ovms_parse_for(const ia_api_endpoint_config *ep, ia_api_op op, const char *body,
                                size_t len, ia_api_result *out) {
    if (ep->api == IA_API_WIRE_KSERVE)
        return ia_kserve_parse(op, ep->kserve_output, body, len, out);
    return ia_openai_parse(op, body, len, out);
}

const ia_api_adapter ia_api_adapter_ovms = {
    .provider = IA_API_PROVIDER_OVMS,
    .needs_key = false,
    .probe_path = "/v2/health/ready",
    .build = ovms_build,
    .parse = ia_openai_parse,
    .parse_for = ovms_parse_for,
    .stream_event = ia_openai_stream_event,
};
