/*
 * Shared pieces of the command-line front end: the subcommand table, input
 * reading (arguments or a file of one text per line), and JSON output.
 */
#ifndef IA_CLI_H
#define IA_CLI_H

#include <stdio.h>

#include "ia/base.h"

typedef int (*cli_command_fn)(int argc, char **argv);

int cmd_embed(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_add(int argc, char **argv);
int cmd_cid(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_block(int argc, char **argv);
int cmd_pin(int argc, char **argv);
int cmd_repo(int argc, char **argv);
/* `repo mirror` (cmd_repo_mirror.c); cmd_repo hands it argv from "mirror" on. */
int cmd_repo_mirror(int argc, char **argv);
int cmd_car(int argc, char **argv);
int cmd_gateway(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_hw(int argc, char **argv);
int cmd_models(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_s3(int argc, char **argv);
int cmd_api(int argc, char **argv);

/* Options shared by generate and chat (cmd_generate.c). */
#include "ia/runtime.h"
#define CLI_MAX_STOP 16
typedef struct cli_gen_args {
    const char *model, *prompt, *system;
    const char *repo; /* --repo: the store a CID --model is resolved in (NULL: default) */
    size_t max_tokens;
    ia_sampling sampling;
    const char *stop[CLI_MAX_STOP];
    size_t n_stop;
    bool ignore_eos, json;
    ia_generator_options opts;
} cli_gen_args;
/* Parses the options into *a: 0 on success, -1 after printing --help, else
 * the exit status of a usage error (already printed). */
int cli_gen_parse(const char *cmd, const char *usage, int argc, char **argv, cli_gen_args *a);
/* Streaming to stdout: cli_gen_write is an ia_generate_callback whose ctx is
 * a cli_out_state; a reader that went away (EPIPE, SIGPIPE ignored) sets
 * closed, another write error sets failed (errno in err). */
typedef struct cli_out_state {
    bool closed, failed;
    int err;
} cli_out_state;
bool cli_gen_write(void *ctx, const char *piece, size_t len);

/* The model options' values, one parser each, shared with `serve`. On a bad
 * value they return IA_EINVAL with a message naming the flag and the values
 * it takes, leaving the output unchanged.
 *   cli_embed_dtype_parse (cmd_embed.c): embed --dtype into opts' dtype and
 *     weight_type (f32, bf16, a quantisation type, or a `quantize` mix);
 *   cli_gen_dtype_parse (cmd_generate.c): generate/chat --dtype (f32, f16,
 *     bf16, a quantisation type); cli_gen_kv_cache_parse: --kv-cache (f32,
 *     f16, q8_0); cli_gen_context_parse: --context (1 to 2^24 tokens). */
ia_status cli_embed_dtype_parse(const char *s, ia_embedder_options *opts);
ia_status cli_gen_dtype_parse(const char *s, ia_dtype *out);
ia_status cli_gen_kv_cache_parse(const char *s, ia_dtype *out);
ia_status cli_gen_context_parse(const char *s, size_t *out);

/* Repo commands (cmd_repo.c): opens --repo DIR, or the default repo when dir
 * is NULL; parses a CID argument with a message naming it. */
struct ia_blockstore;
struct ia_cid;
ia_status cli_repo_open(const char *dir, struct ia_blockstore **out);
ia_status cli_parse_cid(const char *arg, struct ia_cid *out);
/* An ia_write_fn over a stdio stream (ctx is the FILE *). */
ia_status cli_write_stream(void *ctx, const void *data, size_t len);

/* Texts to process: from the command line (borrowed) or a file (owned). */
typedef struct cli_inputs {
    char **texts;
    size_t *lens;
    size_t n;
    char *buffer;     /* file contents the texts point into, or NULL */
    const char *file; /* for messages */
} cli_inputs;

/* Reads FILE ("-" for stdin): one text per line, split on '\n' only, a
 * trailing '\r' dropped, no text after a final newline. Each line must be
 * valid UTF-8: errors name the file, line and byte. */
ia_status cli_inputs_from_file(const char *path, cli_inputs *out);
/* Takes argv texts (validated as UTF-8 too). */
ia_status cli_inputs_from_args(int argc, char **argv, cli_inputs *out);
void cli_inputs_free(cli_inputs *in);
/* A command's texts: from --input FILE (when input is set) or from the
 * remaining arguments, exactly one of the two, and not an empty file. On a
 * problem it prints the usage or failure line itself and returns the exit
 * status (2 or 1); 0 on success, with *out to free. */
int cli_collect_inputs(const char *cmd, const char *input, int argc, char **argv, cli_inputs *out);

typedef enum cli_format { CLI_FORMAT_JSON, CLI_FORMAT_JSONL } cli_format;
ia_status cli_parse_format(const char *s, cli_format *out);
ia_status cli_parse_int(const char *flag, const char *s, long min, long max, long *out);
/* Checks a --device value: auto, cpu, cuda, cuda:N, rocm:N, opencl:N, ... */
ia_status cli_parse_device(const char *s);

/* Writes one row of floats or ints as a JSON array (no newline). */
void cli_write_floats(FILE *f, const float *v, size_t n);
void cli_write_ints(FILE *f, const int32_t *v, size_t n);
/* A JSON string with escapes. */
void cli_write_string(FILE *f, const char *s);

/* Prints "ipfs-accelerate CMD: message" to stderr and returns 1. */
int cli_fail(const char *cmd, ia_status st);
/* Prints a usage error and returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* IA_CLI_H */
