/*
 * libFuzzer target for the endpoints YAML (src/backends/config.c): any
 * input either parses into endpoints that are coherent (a name, a base URL
 * without a trailing '/', a known provider, fallbacks that name declared
 * endpoints other than itself, found again by name) or fails with a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ia/backends.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 65536)
        return 0;
    ia_api_config *cfg = NULL;
    ia_error_clear();
    ia_status st = ia_api_config_parse((const char *)data, size, "fuzz.yaml", &cfg);
    if (st != IA_OK) {
        if (cfg || !ia_error_message()[0])
            abort();
        return 0;
    }
    for (size_t i = 0; i < ia_api_config_count(cfg); i++) {
        const ia_api_endpoint_config *e = ia_api_config_endpoint(cfg, i);
        size_t n = strlen(e->base_url);
        if (!e->name[0] || n == 0 || e->base_url[n - 1] == '/' ||
            !ia_api_provider_name(e->provider))
            abort();
        if (ia_api_config_find(cfg, e->name) != e)
            abort();
        for (size_t f = 0; f < e->n_fallbacks; f++)
            if (!ia_api_config_find(cfg, e->fallbacks[f]) || strcmp(e->fallbacks[f], e->name) == 0)
                abort();
    }
    ia_api_config_free(cfg);
    return 0;
}
