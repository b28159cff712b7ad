/*
 * JSON documents through jansson, with errors that say which document and
 * where (line and column) in the project's message style.
 */
#include "ia/base.h"

#include <jansson.h>
#include <stdlib.h>

ia_status ia_json_parse(const char *text, size_t len, const char *what, json_t **out) {
    json_error_t err;
    *out = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
    if (!*out)
        return ia_error_set(IA_EPARSE, "%s: invalid JSON at line %d, column %d: %s", what, err.line,
                            err.column, err.text);
    return IA_OK;
}

ia_status ia_json_load_file(const char *path, size_t max_bytes, json_t **out) {
    char *text;
    size_t len;
    *out = NULL;
    ia_status st = ia_file_read_all(path, max_bytes, &text, &len);
    if (st != IA_OK)
        return st;
    st = ia_json_parse(text, len, path, out);
    free(text);
    return st;
}
