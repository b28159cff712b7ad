/*
 * Logging to stderr, one line per call, filtered by a process-wide level.
 * The level comes from IA_LOG at first use and from --log-level in the CLI.
 */
#include "ia/base.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_int log_level = -1;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

ia_status ia_log_level_parse(const char *name, ia_log_level *out) {
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (ia_log_level)i;
            return IA_OK;
        }
    }
    return ia_error_set(IA_EINVAL, "unknown log level '%s' (use error, warn, info or debug)", name);
}

ia_log_level ia_log_get_level(void) {
    int level = atomic_load_explicit(&log_level, memory_order_relaxed);
    if (level < 0) {
        ia_log_level parsed = IA_LOG_WARN;
        const char *env = getenv("IA_LOG");
        if (env && ia_log_level_parse(env, &parsed) != IA_OK)
            parsed = IA_LOG_WARN;
        level = (int)parsed;
        atomic_store_explicit(&log_level, level, memory_order_relaxed);
    }
    return (ia_log_level)level;
}

void ia_log_set_level(ia_log_level level) {
    atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
}

void ia_log(ia_log_level level, const char *fmt, ...) {
    if (level > ia_log_get_level())
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "ipfs-accelerate: %s: %s\n", level_names[level], line);
}
