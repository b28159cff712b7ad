/*
 * Status codes and the thread-local error message.
 *
 * Library functions return an ia_status and leave the human-readable detail
 * here; the CLI prints it as one line. Messages are bounded (a long path is
 * truncated, never overflowed).
 */
#include "ia/base.h"

#include <stdio.h>
#include <string.h>

#define ERROR_CAP 1024

static _Thread_local char error_buf[ERROR_CAP];

ia_status ia_error_set(ia_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_buf, sizeof error_buf, fmt, ap);
    va_end(ap);
    return status;
}

void ia_error_prefix(const char *fmt, ...) {
    char prefix[ERROR_CAP];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    char old[ERROR_CAP];
    memcpy(old, error_buf, sizeof old);
    /* Truncation of very long messages is intended: the buffer bounds them. */
    size_t used = (size_t)n < sizeof error_buf - 1 ? (size_t)n : sizeof error_buf - 1;
    memcpy(error_buf, prefix, used);
    if (old[0] && used + 2 < sizeof error_buf) {
        memcpy(error_buf + used, ": ", 2);
        used += 2;
        size_t rest = strnlen(old, sizeof old);
        if (rest > sizeof error_buf - 1 - used)
            rest = sizeof error_buf - 1 - used;
        memcpy(error_buf + used, old, rest);
        used += rest;
    }
    error_buf[used] = '\0';
}

const char *ia_error_message(void) { return error_buf; }

void ia_error_clear(void) { error_buf[0] = '\0'; }

const char *ia_status_str(ia_status status) {
    static const char *const names[] = {
        [IA_OK] = "ok",
        [IA_EINVAL] = "invalid argument",
        [IA_ENOMEM] = "out of memory",
        [IA_EIO] = "I/O error",
        [IA_EPARSE] = "parse error",
        [IA_EUNSUPPORTED] = "unsupported",
        [IA_ENOTFOUND] = "not found",
        [IA_ERANGE] = "out of range",
        [IA_EINTERNAL] = "internal error",
    };
    if ((unsigned)status < sizeof names / sizeof names[0] && names[status])
        return names[status];
    return "unknown status";
}
