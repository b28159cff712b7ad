/*
 * Text inputs of one text per line, the format every command and benchmark
 * that takes many texts reads: split on '\n' only, a trailing '\r' dropped,
 * no text after a final newline, each line valid UTF-8.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ia/base.h"

ia_status ia_text_lines_read(const char *path, size_t max_bytes, ia_text_lines *out) {
    memset(out, 0, sizeof *out);
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f)
        return ia_error_set(errno == ENOENT ? IA_ENOTFOUND : IA_EIO, "%s: cannot open: %s", path,
                            strerror(errno));
    size_t len = 0;
    ia_status st = ia_read_stream(f, is_stdin ? "stdin" : path, max_bytes, &out->buffer, &len);
    if (!is_stdin)
        fclose(f);
    if (st != IA_OK)
        return st;
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += out->buffer[i] == '\n';
    lines += len > 0 && out->buffer[len - 1] != '\n';
    out->lines = ia_malloc_array(lines ? lines : 1, sizeof *out->lines);
    out->lens = ia_malloc_array(lines ? lines : 1, sizeof *out->lens);
    if (!out->lines || !out->lens) {
        ia_text_lines_free(out);
        return IA_ENOMEM;
    }
    char *p = out->buffer, *end = out->buffer + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *stop = nl ? nl : end;
        size_t n = (size_t)(stop - p);
        if (n > 0 && p[n - 1] == '\r')
            n--;
        p[n] = '\0';
        size_t bad;
        if (!ia_utf8_valid(p, n, &bad)) {
            st = ia_error_set(IA_EINVAL, "%s:%zu: invalid UTF-8 at byte %zu of the line", path,
                              out->n + 1, bad + 1);
            ia_text_lines_free(out);
            return st;
        }
        out->lines[out->n] = p;
        out->lens[out->n++] = n;
        p = stop + 1;
    }
    return IA_OK;
}

void ia_text_lines_free(ia_text_lines *tl) {
    free(tl->lines);
    free(tl->lens);
    free(tl->buffer);
    memset(tl, 0, sizeof *tl);
}
