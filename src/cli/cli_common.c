/*
 * Input and output helpers shared by the subcommands.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ia/hw.h"

#define INPUT_MAX_BYTES ((size_t)4 << 30)

ia_status cli_inputs_from_file(const char *path, cli_inputs *out) {
    memset(out, 0, sizeof *out);
    out->file = path;
    ia_text_lines tl;
    ia_status st = ia_text_lines_read(path, INPUT_MAX_BYTES, &tl);
    if (st != IA_OK)
        return st;
    out->texts = tl.lines;
    out->lens = tl.lens;
    out->n = tl.n;
    out->buffer = tl.buffer;
    return IA_OK;
}

ia_status cli_inputs_from_args(int argc, char **argv, cli_inputs *out) {
    memset(out, 0, sizeof *out);
    out->texts = ia_malloc_array(argc ? (size_t)argc : 1, sizeof *out->texts);
    out->lens = ia_malloc_array(argc ? (size_t)argc : 1, sizeof *out->lens);
    if (!out->texts || !out->lens) {
        cli_inputs_free(out);
        return IA_ENOMEM;
    }
    for (int i = 0; i < argc; i++) {
        size_t n = strlen(argv[i]), bad;
        if (!ia_utf8_valid(argv[i], n, &bad)) {
            cli_inputs_free(out);
            return ia_error_set(IA_EINVAL, "argument %d: invalid UTF-8 at byte %zu", i + 1,
                                bad + 1);
        }
        out->texts[i] = argv[i];
        out->lens[i] = n;
    }
    out->n = (size_t)argc;
    return IA_OK;
}

int cli_collect_inputs(const char *cmd, const char *input, int argc, char **argv, cli_inputs *out) {
    memset(out, 0, sizeof *out);
    if (input && argc > 0)
        return cli_usage_error(cmd, "give texts as arguments or with --input, not both");
    if (!input && argc <= 0)
        return cli_usage_error(cmd, "no input: give texts as arguments or --input FILE");
    ia_status st = input ? cli_inputs_from_file(input, out) : cli_inputs_from_args(argc, argv, out);
    if (st == IA_OK && out->n == 0) {
        st = ia_error_set(IA_EINVAL, "%s: no texts (the input is empty)", input);
        cli_inputs_free(out);
    }
    return st == IA_OK ? 0 : cli_fail(cmd, st);
}

void cli_inputs_free(cli_inputs *in) {
    free(in->texts);
    free(in->lens);
    free(in->buffer);
    memset(in, 0, sizeof *in);
}

ia_status cli_parse_format(const char *s, cli_format *out) {
    if (strcmp(s, "json") == 0)
        *out = CLI_FORMAT_JSON;
    else if (strcmp(s, "jsonl") == 0)
        *out = CLI_FORMAT_JSONL;
    else
        return ia_error_set(IA_EINVAL, "--format: '%s' is not a format (json or jsonl)", s);
    return IA_OK;
}

ia_status cli_parse_int(const char *flag, const char *s, long min, long max, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return ia_error_set(IA_EINVAL, "%s: '%s' is not an integer from %ld to %ld", flag, s, min,
                            max);
    *out = v;
    return IA_OK;
}

void cli_write_floats(FILE *f, const float *v, size_t n) {
    fputc('[', f);
    for (size_t i = 0; i < n; i++) {
        /* %.9g round-trips every float32 exactly */
        fprintf(f, i ? ", %.9g" : "%.9g", (double)v[i]);
    }
    fputc(']', f);
}

void cli_write_ints(FILE *f, const int32_t *v, size_t n) {
    fputc('[', f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, i ? ", %d" : "%d", v[i]);
    fputc(']', f);
}

void cli_write_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

int cli_fail(const char *cmd, ia_status st) {
    const char *msg = ia_error_message();
    fprintf(stderr, "ipfs-accelerate %s: %s\n", cmd, msg[0] ? msg : ia_status_str(st));
    return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "ipfs-accelerate %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'ipfs-accelerate %s --help')\n", cmd);
    return 2;
}

ia_status cli_parse_device(const char *s) {
    ia_device_kind kind;
    int index;
    return ia_device_parse(s, &kind, &index);
}
