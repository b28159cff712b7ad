/*
 * libFuzzer target for the config.json reader: parses the input and, when it
 * is accepted, runs every typed getter on every top-level key (and on the
 * first entries of arrays), so each getter meets every JSON type. Borrowed
 * strings are read to the end to catch dangling pointers under ASan.
 */
#include "ia/formats.h"

#include <jansson.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ia_config *cfg = NULL;
    if (ia_config_parse((const char *)data, size, "fuzz/config.json", &cfg) != IA_OK)
        return 0;
    volatile size_t sink = 0;
    const char *key;
    json_t *value;
    json_object_foreach(ia_config_json(cfg), key, value) {
        int64_t i = 0;
        double d = 0;
        bool b = false;
        const char *s = NULL;
        sink += ia_config_has(cfg, key);
        sink += ia_config_int(cfg, key, true, &i) + (size_t)i;
        sink += ia_config_float(cfg, key, false, &d) + (d > 0);
        sink += ia_config_bool(cfg, key, true, &b) + b;
        if (ia_config_string(cfg, key, true, &s) == IA_OK)
            sink += strlen(s);
        for (size_t k = 0; k < 3; k++)
            if (ia_config_string_at(cfg, key, k, &s) == IA_OK)
                sink += strlen(s);
    }
    int64_t i = 0;
    sink += ia_config_int(cfg, "hidden_size", false, &i);
    (void)sink;
    ia_config_free(cfg);
    return 0;
}
