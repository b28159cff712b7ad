/*
 * The endpoints file: YAML read with libyaml's document loader, so that
 * every node keeps its line and column for messages. The shape is
 *
 *   endpoints:
 *     - name: NAME            provider: openai|groq|vllm|anthropic|gemini|ollama|tgi|tei|ovms|opea
 *       base_url: URL         model: M | models: [M, ...]
 *       api_key_env: VAR | api_key_envs: [VAR, ...] | api_key_file: PATH
 *       key_selection: round_robin|least_loaded|pinned     key_cooldown_ms: N
 *       priority: high|normal|low   max_concurrency: N   queue: N   max_body_bytes: N
 *       retry: {max_attempts, base_ms, max_ms}
 *       breaker: {window, window_ms, min_calls, failure_rate, open_ms, half_open_probes, slow_ms}
 *       timeouts: {connect_ms, first_byte_ms, total_ms}
 *       batch: {max_items, max_wait_ms}
 *       fallbacks: [NAME, ...]
 *       api: openai|kserve    kserve: {input: NAME, output: NAME}      (ovms only)
 *
 * Anything else is refused with file:line:column and the endpoint's name, as
 * are unknown providers, URLs that are not http(s)://host..., duplicate
 * names and fallbacks to undeclared endpoints. Keys themselves are not read
 * here (ia_api_client_create does that), so the parsed config holds only
 * names of variables and files. Defaults come from the resilience layer's.
 */
#define _GNU_SOURCE /* asprintf */
#include <curl/curl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "backends/backends_internal.h"

#define MAX_ENDPOINTS 256

struct ia_api_config {
    char *source;
    ia_api_endpoint_config *eps;
    size_t n;
    char **strings; /* every string the endpoints point at */
    size_t n_strings, cap_strings;
};

typedef struct loader {
    ia_api_config *cfg;
    yaml_document_t doc;
    const char *what;
} loader;

static ia_status fail_at(loader *L, yaml_node_t *node, const char *ep, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static ia_status fail_at(loader *L, yaml_node_t *node, const char *ep, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    unsigned long line = node ? (unsigned long)node->start_mark.line + 1 : 0;
    unsigned long col = node ? (unsigned long)node->start_mark.column + 1 : 0;
    if (ep)
        return ia_error_set(IA_EINVAL, "%s:%lu:%lu: endpoint '%s': %s", L->what, line, col, ep,
                            msg);
    return ia_error_set(IA_EINVAL, "%s:%lu:%lu: %s", L->what, line, col, msg);
}

static const char *keep(loader *L, const char *s) {
    ia_api_config *c = L->cfg;
    if (c->n_strings == c->cap_strings) {
        size_t cap = c->cap_strings ? c->cap_strings * 2 : 64;
        char **n = ia_realloc_array(c->strings, cap, sizeof *n);
        if (!n)
            return NULL;
        c->strings = n;
        c->cap_strings = cap;
    }
    char *d = ia_strdup(s);
    if (d)
        c->strings[c->n_strings++] = d;
    return d;
}

static const char *scalar(yaml_node_t *n) {
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static ia_status get_string(loader *L, yaml_node_t *v, const char *ep, const char *field,
                            const char **out) {
    const char *s = scalar(v);
    if (!s || !*s)
        return fail_at(L, v, ep, "%s must be a non-empty string", field);
    *out = keep(L, s);
    return *out ? IA_OK : IA_ENOMEM;
}

static ia_status get_long(loader *L, yaml_node_t *v, const char *ep, const char *field, long min,
                          long max, long *out) {
    const char *s = scalar(v);
    char *end = NULL;
    long x = s ? strtol(s, &end, 10) : 0;
    if (!s || !*s || *end || x < min || x > max)
        return fail_at(L, v, ep, "%s must be an integer in [%ld, %ld], got '%s'", field, min, max,
                       s ? s : "(not a scalar)");
    *out = x;
    return IA_OK;
}

static ia_status get_int(loader *L, yaml_node_t *v, const char *ep, const char *field, long min,
                         long max, int *out) {
    long x = 0;
    ia_status st = get_long(L, v, ep, field, min, max, &x);
    if (st == IA_OK)
        *out = (int)x;
    return st;
}

/* A scalar or a list of scalars into out[], at most cap. */
static ia_status get_list(loader *L, yaml_node_t *v, const char *ep, const char *field,
                          const char **out, size_t cap, size_t *n) {
    if (v->type == YAML_SCALAR_NODE) {
        *n = 1;
        return get_string(L, v, ep, field, &out[0]);
    }
    if (v->type != YAML_SEQUENCE_NODE)
        return fail_at(L, v, ep, "%s must be a string or a list of strings", field);
    size_t k = 0;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        if (k == cap)
            return fail_at(L, v, ep, "%s has more than %zu entries", field, cap);
        ia_status st = get_string(L, yaml_document_get_node(&L->doc, *it), ep, field, &out[k]);
        if (st != IA_OK)
            return st;
        k++;
    }
    if (k == 0)
        return fail_at(L, v, ep, "%s is an empty list", field);
    *n = k;
    return IA_OK;
}

static ia_status check_url(loader *L, yaml_node_t *v, const char *ep, const char *url) {
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *query = NULL;
    ia_status st = IA_OK;
    if (!u)
        return ia_error_set(IA_ENOMEM, "out of memory");
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host || !*host)
        st = fail_at(L, v, ep, "base_url '%s' is not an http:// or https:// URL with a host", url);
    else if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK)
        st = fail_at(L, v, ep, "base_url '%s' must not have a query", url);
    curl_free(scheme);
    curl_free(host);
    curl_free(query);
    curl_url_cleanup(u);
    return st;
}

typedef ia_status (*sub_fn)(loader *L, const char *key, yaml_node_t *v, ia_api_endpoint_config *e);

static ia_status sub_retry(loader *L, const char *k, yaml_node_t *v, ia_api_endpoint_config *e) {
    if (strcmp(k, "max_attempts") == 0)
        return get_int(L, v, e->name, "retry.max_attempts", 1, 100, &e->retry_max_attempts);
    if (strcmp(k, "base_ms") == 0)
        return get_long(L, v, e->name, "retry.base_ms", 0, 3600000, &e->retry_base_ms);
    if (strcmp(k, "max_ms") == 0)
        return get_long(L, v, e->name, "retry.max_ms", 0, 3600000, &e->retry_max_ms);
    return fail_at(L, v, e->name,
                   "unknown field 'retry.%s' (expected max_attempts, base_ms, max_ms)", k);
}

static ia_status sub_breaker(loader *L, const char *k, yaml_node_t *v, ia_api_endpoint_config *e) {
    if (strcmp(k, "window") == 0)
        return get_int(L, v, e->name, "breaker.window", 1, 4096, &e->breaker_window);
    if (strcmp(k, "window_ms") == 0)
        return get_long(L, v, e->name, "breaker.window_ms", 0, 86400000, &e->breaker_window_ms);
    if (strcmp(k, "min_calls") == 0)
        return get_int(L, v, e->name, "breaker.min_calls", 1, 4096, &e->breaker_min_calls);
    if (strcmp(k, "open_ms") == 0)
        return get_long(L, v, e->name, "breaker.open_ms", 0, 86400000, &e->breaker_open_ms);
    if (strcmp(k, "half_open_probes") == 0)
        return get_int(L, v, e->name, "breaker.half_open_probes", 1, 1000,
                       &e->breaker_half_open_probes);
    if (strcmp(k, "slow_ms") == 0)
        return get_long(L, v, e->name, "breaker.slow_ms", 0, 86400000, &e->breaker_slow_ms);
    if (strcmp(k, "failure_rate") == 0) {
        const char *s = scalar(v);
        char *end = NULL;
        double r = s ? strtod(s, &end) : 0;
        if (!s || !*s || *end || !(r > 0 && r <= 1))
            return fail_at(L, v, e->name, "breaker.failure_rate must be a number in (0, 1]");
        e->breaker_failure_rate = r;
        return IA_OK;
    }
    return fail_at(L, v, e->name,
                   "unknown field 'breaker.%s' (expected window, window_ms, min_calls, "
                   "failure_rate, open_ms, half_open_probes, slow_ms)",
                   k);
}

static ia_status sub_timeouts(loader *L, const char *k, yaml_node_t *v, ia_api_endpoint_config *e) {
    if (strcmp(k, "connect_ms") == 0)
        return get_long(L, v, e->name, "timeouts.connect_ms", 0, 3600000, &e->connect_ms);
    if (strcmp(k, "first_byte_ms") == 0)
        return get_long(L, v, e->name, "timeouts.first_byte_ms", 0, 3600000, &e->first_byte_ms);
    if (strcmp(k, "total_ms") == 0)
        return get_long(L, v, e->name, "timeouts.total_ms", 0, 86400000, &e->total_ms);
    return fail_at(L, v, e->name,
                   "unknown field 'timeouts.%s' (expected connect_ms, first_byte_ms, total_ms)", k);
}

static ia_status sub_batch(loader *L, const char *k, yaml_node_t *v, ia_api_endpoint_config *e) {
    if (strcmp(k, "max_items") == 0)
        return get_int(L, v, e->name, "batch.max_items", 1, 4096, &e->batch_max_items);
    if (strcmp(k, "max_wait_ms") == 0)
        return get_long(L, v, e->name, "batch.max_wait_ms", 0, 60000, &e->batch_max_wait_ms);
    return fail_at(L, v, e->name, "unknown field 'batch.%s' (expected max_items, max_wait_ms)", k);
}

static ia_status sub_kserve(loader *L, const char *k, yaml_node_t *v, ia_api_endpoint_config *e) {
    if (strcmp(k, "input") == 0)
        return get_string(L, v, e->name, "kserve.input", &e->kserve_input);
    if (strcmp(k, "output") == 0)
        return get_string(L, v, e->name, "kserve.output", &e->kserve_output);
    return fail_at(L, v, e->name, "unknown field 'kserve.%s' (expected input, output)", k);
}

static ia_status mapping(loader *L, yaml_node_t *v, ia_api_endpoint_config *e, const char *field,
                         sub_fn fn) {
    if (v->type != YAML_MAPPING_NODE)
        return fail_at(L, v, e->name, "%s must be a mapping", field);
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(&L->doc, p->key);
        const char *ks = scalar(k);
        if (!ks)
            return fail_at(L, k, e->name, "%s keys must be strings", field);
        ia_status st = fn(L, ks, yaml_document_get_node(&L->doc, p->value), e);
        if (st != IA_OK)
            return st;
    }
    return IA_OK;
}

static void endpoint_defaults(ia_api_endpoint_config *e) {
    ia_endpoint_config d;
    ia_resilience_endpoint_defaults(&d);
    memset(e, 0, sizeof *e);
    e->key_selection = IA_API_KEYS_ROUND_ROBIN;
    e->key_cooldown_ms = d.key_cooldown_ms;
    e->priority = IA_API_PRIORITY_NORMAL;
    e->max_concurrency = d.max_concurrency;
    e->queue_capacity = d.queue_capacity;
    e->retry_max_attempts = d.retry.max_attempts;
    e->retry_base_ms = d.retry.base_backoff_ms;
    e->retry_max_ms = d.retry.max_backoff_ms;
    e->breaker_window = d.breaker.window_calls;
    e->breaker_window_ms = d.breaker.window_ms;
    e->breaker_min_calls = d.breaker.min_calls;
    e->breaker_failure_rate = d.breaker.failure_rate;
    e->breaker_open_ms = d.breaker.open_ms;
    e->breaker_half_open_probes = d.breaker.half_open_probes;
    e->breaker_slow_ms = d.breaker.slow_call_ms;
    e->connect_ms = d.timeouts.connect_ms;
    e->first_byte_ms = d.timeouts.first_byte_ms;
    e->total_ms = d.timeouts.total_ms;
    e->max_body_bytes = 64L << 20;
    e->batch_max_items = 1;
    e->batch_max_wait_ms = d.batch.max_wait_ms;
}

/* One field of an endpoint; name and provider were taken first. */
static ia_status endpoint_field(loader *L, const char *k, yaml_node_t *v, ia_api_endpoint_config *e,
                                bool *have_url, bool *have_key) {
    const char *ep = e->name;
    if (strcmp(k, "name") == 0 || strcmp(k, "provider") == 0)
        return IA_OK;
    if (strcmp(k, "base_url") == 0) {
        const char *u;
        ia_status st = get_string(L, v, ep, k, &u);
        if (st == IA_OK)
            st = check_url(L, v, ep, u);
        if (st != IA_OK)
            return st;
        char *t = (char *)u;
        size_t n = strlen(t);
        while (n > 0 && t[n - 1] == '/')
            t[--n] = 0;
        e->base_url = t;
        *have_url = true;
        return IA_OK;
    }
    if (strcmp(k, "model") == 0 || strcmp(k, "models") == 0)
        return get_list(L, v, ep, k, e->models, IA_API_MAX_MODELS, &e->n_models);
    if (strcmp(k, "api_key_env") == 0 || strcmp(k, "api_key_envs") == 0) {
        if (*have_key)
            return fail_at(L, v, ep, "give one of api_key_env, api_key_envs, api_key_file");
        *have_key = true;
        return get_list(L, v, ep, k, e->key_envs, IA_API_MAX_KEYS, &e->n_key_envs);
    }
    if (strcmp(k, "api_key_file") == 0) {
        if (*have_key)
            return fail_at(L, v, ep, "give one of api_key_env, api_key_envs, api_key_file");
        *have_key = true;
        return get_string(L, v, ep, k, &e->key_file);
    }
    if (strcmp(k, "key_selection") == 0) {
        const char *s = scalar(v);
        static const char *const names[] = {"round_robin", "least_loaded", "pinned"};
        for (int i = 0; s && i < 3; i++)
            if (strcmp(s, names[i]) == 0) {
                e->key_selection = (ia_api_key_selection)i;
                return IA_OK;
            }
        return fail_at(L, v, ep, "key_selection must be round_robin, least_loaded or pinned");
    }
    if (strcmp(k, "priority") == 0) {
        const char *s = scalar(v);
        static const char *const names[] = {"high", "normal", "low"};
        for (int i = 0; s && i < 3; i++)
            if (strcmp(s, names[i]) == 0) {
                e->priority = (ia_api_priority)i;
                return IA_OK;
            }
        return fail_at(L, v, ep, "priority must be high, normal or low");
    }
    if (strcmp(k, "key_cooldown_ms") == 0)
        return get_long(L, v, ep, k, 0, 3600000, &e->key_cooldown_ms);
    if (strcmp(k, "max_concurrency") == 0)
        return get_int(L, v, ep, k, 1, 4096, &e->max_concurrency);
    if (strcmp(k, "queue") == 0)
        return get_int(L, v, ep, k, 0, 1000000, &e->queue_capacity);
    if (strcmp(k, "max_body_bytes") == 0)
        return get_long(L, v, ep, k, 1024, 1L << 32, &e->max_body_bytes);
    if (strcmp(k, "retry") == 0)
        return mapping(L, v, e, k, sub_retry);
    if (strcmp(k, "breaker") == 0)
        return mapping(L, v, e, k, sub_breaker);
    if (strcmp(k, "timeouts") == 0)
        return mapping(L, v, e, k, sub_timeouts);
    if (strcmp(k, "batch") == 0)
        return mapping(L, v, e, k, sub_batch);
    if (strcmp(k, "fallbacks") == 0)
        return get_list(L, v, ep, k, e->fallbacks, IA_API_MAX_FALLBACKS, &e->n_fallbacks);
    if (strcmp(k, "api") == 0 || strcmp(k, "kserve") == 0) {
        if (e->provider != IA_API_PROVIDER_OVMS)
            return fail_at(L, v, ep, "'%s' is only for provider ovms", k);
        if (strcmp(k, "kserve") == 0)
            return mapping(L, v, e, k, sub_kserve);
        const char *s = scalar(v);
        if (s && (strcmp(s, "openai") == 0 || strcmp(s, "v3") == 0)) {
            e->api = IA_API_WIRE_DEFAULT;
            return IA_OK;
        }
        if (s && strcmp(s, "kserve") == 0) {
            e->api = IA_API_WIRE_KSERVE;
            return IA_OK;
        }
        return fail_at(L, v, ep, "api must be openai (OVMS's /v3) or kserve (KServe v2 /v2)");
    }
    return fail_at(L, v, ep,
                   "unknown field '%s' (expected name, provider, base_url, model(s), "
                   "api_key_env(s), api_key_file, key_selection, key_cooldown_ms, priority, "
                   "max_concurrency, queue, max_body_bytes, retry, breaker, timeouts, batch, "
                   "fallbacks, api, kserve)",
                   k);
}

static yaml_node_t *lookup(loader *L, yaml_node_t *map, const char *key) {
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const char *ks = scalar(yaml_document_get_node(&L->doc, p->key));
        if (ks && strcmp(ks, key) == 0)
            return yaml_document_get_node(&L->doc, p->value);
    }
    return NULL;
}

static ia_status endpoint(loader *L, yaml_node_t *m, ia_api_endpoint_config *e) {
    endpoint_defaults(e);
    e->line = (int)m->start_mark.line + 1;
    if (m->type != YAML_MAPPING_NODE)
        return fail_at(L, m, NULL, "each endpoint must be a mapping");
    yaml_node_t *name = lookup(L, m, "name");
    if (!name)
        return fail_at(L, m, NULL, "an endpoint has no name");
    ia_status st = get_string(L, name, NULL, "name", &e->name);
    if (st != IA_OK)
        return st;
    yaml_node_t *prov = lookup(L, m, "provider");
    if (!prov)
        return fail_at(L, m, e->name, "no provider given");
    const char *ps = scalar(prov);
    if (!ps || ia_api_provider_parse(ps, &e->provider) != IA_OK)
        return fail_at(L, prov, e->name,
                       "unknown provider '%s' (expected openai, groq, vllm, anthropic, gemini, "
                       "ollama, tgi, tei, ovms or opea)",
                       ps ? ps : "(not a string)");
    bool have_url = false, have_key = false;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(&L->doc, p->key);
        const char *ks = scalar(k);
        if (!ks)
            return fail_at(L, k, e->name, "field names must be strings");
        st = endpoint_field(L, ks, yaml_document_get_node(&L->doc, p->value), e, &have_url,
                            &have_key);
        if (st != IA_OK)
            return st;
    }
    if (!have_url)
        return fail_at(L, m, e->name, "no base_url given");
    if (e->retry_max_ms < e->retry_base_ms)
        return fail_at(L, m, e->name, "retry.max_ms (%ld) is below retry.base_ms (%ld)",
                       e->retry_max_ms, e->retry_base_ms);
    if (e->n_models == 0 && e->provider != IA_API_PROVIDER_TEI &&
        e->provider != IA_API_PROVIDER_TGI && e->provider != IA_API_PROVIDER_OPEA)
        return fail_at(L, m, e->name, "no model given (model: NAME or models: [NAME, ...])");
    return IA_OK;
}

static ia_status load_doc(loader *L, yaml_node_t *root) {
    if (!root || root->type != YAML_MAPPING_NODE)
        return fail_at(L, root, NULL, "the document must be a mapping with an 'endpoints' list");
    yaml_node_t *list = NULL;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(&L->doc, p->key);
        const char *ks = scalar(k);
        if (!ks || strcmp(ks, "endpoints") != 0)
            return fail_at(L, k, NULL, "unknown top-level field '%s' (expected endpoints)",
                           ks ? ks : "(not a string)");
        list = yaml_document_get_node(&L->doc, p->value);
    }
    if (!list || list->type != YAML_SEQUENCE_NODE)
        return fail_at(L, list ? list : root, NULL, "'endpoints' must be a list");
    size_t n = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
    if (n == 0)
        return fail_at(L, list, NULL, "'endpoints' is empty");
    if (n > MAX_ENDPOINTS)
        return fail_at(L, list, NULL, "more than %d endpoints", MAX_ENDPOINTS);
    L->cfg->eps = ia_calloc(n, sizeof *L->cfg->eps);
    if (!L->cfg->eps)
        return IA_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *m = yaml_document_get_node(&L->doc, list->data.sequence.items.start[i]);
        ia_status st = endpoint(L, m, &L->cfg->eps[i]);
        if (st != IA_OK)
            return st;
        L->cfg->n = i + 1;
        for (size_t j = 0; j < i; j++)
            if (strcmp(L->cfg->eps[j].name, L->cfg->eps[i].name) == 0)
                return fail_at(L, m, L->cfg->eps[i].name, "the name is already used on line %d",
                               L->cfg->eps[j].line);
    }
    for (size_t i = 0; i < n; i++) {
        ia_api_endpoint_config *e = &L->cfg->eps[i];
        for (size_t f = 0; f < e->n_fallbacks; f++) {
            if (!ia_api_config_find(L->cfg, e->fallbacks[f]))
                return ia_error_set(IA_EINVAL,
                                    "%s:%d: endpoint '%s': fallback '%s' is not declared", L->what,
                                    e->line, e->name, e->fallbacks[f]);
            if (strcmp(e->fallbacks[f], e->name) == 0)
                return ia_error_set(IA_EINVAL,
                                    "%s:%d: endpoint '%s': an endpoint cannot be its own fallback",
                                    L->what, e->line, e->name);
        }
    }
    return IA_OK;
}

ia_status ia_api_config_parse(const char *text, size_t len, const char *what, ia_api_config **out) {
    *out = NULL;
    loader L = {.what = what ? what : "endpoints"};
    yaml_parser_t parser;
    bool have_doc = false;
    ia_status st = IA_OK;
    L.cfg = ia_calloc(1, sizeof *L.cfg);
    if (!L.cfg)
        return IA_ENOMEM;
    L.cfg->source = ia_strdup(L.what);
    if (!yaml_parser_initialize(&parser)) {
        ia_api_config_free(L.cfg);
        return ia_error_set(IA_ENOMEM, "libyaml could not start");
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &L.doc)) {
        st = ia_error_set(IA_EPARSE, "%s:%lu:%lu: YAML error: %s%s%s", L.what,
                          (unsigned long)parser.problem_mark.line + 1,
                          (unsigned long)parser.problem_mark.column + 1,
                          parser.problem ? parser.problem : "malformed", parser.context ? " " : "",
                          parser.context ? parser.context : "");
        goto done;
    }
    have_doc = true;
    st = load_doc(&L, yaml_document_get_root_node(&L.doc));
done:
    if (have_doc)
        yaml_document_delete(&L.doc);
    yaml_parser_delete(&parser);
    if (st != IA_OK) {
        ia_api_config_free(L.cfg);
        return st;
    }
    *out = L.cfg;
    return IA_OK;
}

ia_status ia_api_config_load(const char *path, ia_api_config **out) {
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    ia_status st = ia_file_read_all(path, (size_t)4 << 20, &text, &len);
    if (st != IA_OK)
        return st;
    st = ia_api_config_parse(text, len, path, out);
    free(text);
    return st;
}

void ia_api_config_free(ia_api_config *cfg) {
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_strings; i++)
        free(cfg->strings[i]);
    free(cfg->strings);
    free(cfg->eps);
    free(cfg->source);
    free(cfg);
}

size_t ia_api_config_count(const ia_api_config *cfg) { return cfg->n; }

const ia_api_endpoint_config *ia_api_config_endpoint(const ia_api_config *cfg, size_t i) {
    return i < cfg->n ? &cfg->eps[i] : NULL;
}

const ia_api_endpoint_config *ia_api_config_find(const ia_api_config *cfg, const char *name) {
    for (size_t i = 0; i < cfg->n; i++)
        if (strcmp(cfg->eps[i].name, name) == 0)
            return &cfg->eps[i];
    return NULL;
}

const char *ia_api_config_source(const ia_api_config *cfg) { return cfg->source; }

char *ia_api_config_default_path(void) {
    const char *env = getenv("IA_ENDPOINTS");
    if (env && *env)
        return ia_strdup(env);
    const char *xdg = getenv("XDG_CONFIG_HOME");
    char *out = NULL;
    if (xdg && *xdg) {
        if (asprintf(&out, "%s/ipfs-accelerate/endpoints.yaml", xdg) < 0)
            return NULL;
        return out;
    }
    const char *home = getenv("HOME");
    if (asprintf(&out, "%s/.config/ipfs-accelerate/endpoints.yaml", home ? home : ".") < 0)
        return NULL;
    return out;
}
