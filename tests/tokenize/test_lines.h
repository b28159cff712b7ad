/*
 * The tokenizer tests' corpus reader: a file split on '\n' only, so that
 * lines keep every other byte (\r, NUL, U+2028, ...) for the tokenizer to
 * see. Include after test.h.
 */
#ifndef IA_TEST_LINES_H
#define IA_TEST_LINES_H

typedef struct lines {
    char *text;
    char **line;
    size_t *len;
    size_t n;
} lines;

/* Splits a file on '\n' only (lines may hold \r, NUL, U+2028...). */
static bool read_lines(const char *path, lines *out) {
    size_t len;
    memset(out, 0, sizeof *out);
    if (ia_file_read_all(path, 64u << 20, &out->text, &len) != IA_OK) {
        fprintf(stderr, "  cannot read %s: %s\n", path, ia_error_message());
        return false;
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += out->text[i] == '\n';
    out->line = calloc(n + 1, sizeof *out->line);
    out->len = calloc(n + 1, sizeof *out->len);
    char *p = out->text, *end = out->text + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            nl = end;
        out->line[out->n] = p;
        out->len[out->n++] = (size_t)(nl - p);
        *nl = '\0';
        p = nl + 1;
    }
    return true;
}

static void free_lines(lines *l) {
    free(l->text);
    free(l->line);
    free(l->len);
}

#endif /* IA_TEST_LINES_H */
