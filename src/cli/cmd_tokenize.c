/*
 * `ipfs-accelerate tokenize`: the ids HF tokenizers gives for encode(text),
 * or with --tokens the token strings. No truncation or padding unless asked.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ia/runtime.h"
#include "ia/tokenize.h"

static const char tokenize_usage[] =
    "usage: ipfs-accelerate tokenize --model DIR|CID [options] [TEXT ...]\n"
    "\n"
    "Prints the token ids of each input as a JSON array.\n"
    "\n"
    "  --model DIR            model directory (tokenizer.json, else vocab.txt), or a\n"
    "                         .gguf file (its tokenizer.ggml.* vocabulary), or the CID\n"
    "                         of either in the local store (CID, CID/sub/path, /ipfs/...)\n"
    "  --repo DIR             the store for a CID model (default $IPFS_ACCELERATE_HOME or\n"
    "                         ~/.local/share/ipfs-accelerate)\n"
    "  --input FILE           read texts from FILE, one per line ('-' for stdin)\n"
    "  --format FORMAT        json (default): one JSON array per input, wrapped in an\n"
    "                         array when there are several; jsonl: one array per line\n"
    "  --tokens               print token strings instead of ids\n"
    "  --pair TEXT            encode each input together with TEXT as a pair\n"
    "  --no-special-tokens    skip the post-processor ([CLS] ... [SEP])\n"
    "  --max-length N         truncate to N tokens (special tokens included)\n"
    "  --pad-to N             pad on the right to N tokens\n";

typedef struct tokenize_settings {
    const ia_tokenizer *tok;
    ia_encode_options opts;
    const char *pair;
    bool tokens;
} tokenize_settings;

static ia_status print_one(const tokenize_settings *s, const char *text, size_t len) {
    ia_encoding enc = {0};
    ia_status st = ia_tokenizer_encode(s->tok, text, len, s->pair, s->pair ? strlen(s->pair) : 0,
                                       &s->opts, &enc);
    if (st != IA_OK)
        return st;
    if (s->tokens) {
        fputc('[', stdout);
        for (size_t i = 0; i < enc.len; i++) {
            if (i)
                fputs(", ", stdout);
            cli_write_string(stdout, enc.tokens[i]);
        }
        fputc(']', stdout);
    } else {
        cli_write_ints(stdout, enc.ids, enc.len);
    }
    ia_encoding_free(&enc);
    return IA_OK;
}

int cmd_tokenize(int argc, char **argv) {
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},
        {"input", required_argument, NULL, 'i'},
        {"format", required_argument, NULL, 'f'},
        {"tokens", no_argument, NULL, 'T'},
        {"pair", required_argument, NULL, 'p'},
        {"no-special-tokens", no_argument, NULL, 'S'},
        {"max-length", required_argument, NULL, 'L'},
        {"pad-to", required_argument, NULL, 'P'},
        {"repo", required_argument, NULL, 'R'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *model = NULL, *input = NULL, *repo = NULL;
    char *model_path = NULL; /* the model's path on disk (a CID resolved) */
    cli_format format = CLI_FORMAT_JSON;
    tokenize_settings s = {.opts = ia_encode_options_default()};
    long v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        ia_status st = IA_OK;
        switch (c) {
        case 'm':
            model = optarg;
            break;
        case 'i':
            input = optarg;
            break;
        case 'R':
            repo = optarg;
            break;
        case 'f':
            st = cli_parse_format(optarg, &format);
            break;
        case 'T':
            s.tokens = true;
            break;
        case 'p':
            s.pair = optarg;
            break;
        case 'S':
            s.opts.add_special_tokens = false;
            break;
        case 'L':
            st = cli_parse_int("--max-length", optarg, 1, 1 << 24, &v);
            s.opts.max_length = (size_t)v;
            break;
        case 'P':
            st = cli_parse_int("--pad-to", optarg, 1, 1 << 24, &v);
            s.opts.pad_to = (size_t)v;
            break;
        case 'h':
            fputs(tokenize_usage, stdout);
            return 0;
        default:
            return cli_usage_error("tokenize", "bad option");
        }
        if (st != IA_OK)
            return cli_usage_error("tokenize", "%s", ia_error_message());
    }
    s.opts.want_tokens = s.tokens;
    if (!model)
        return cli_usage_error("tokenize", "--model DIR is required");
    size_t bad;
    if (s.pair && !ia_utf8_valid(s.pair, strlen(s.pair), &bad))
        return cli_usage_error("tokenize", "--pair: invalid UTF-8 at byte %zu", bad + 1);
    cli_inputs in;
    int rc_in = cli_collect_inputs("tokenize", input, argc - optind, argv + optind, &in);
    if (rc_in != 0)
        return rc_in;
    ia_status st = IA_OK;
    ia_tokenizer *tok = NULL;
    int rc = 1;
    if ((st = ia_model_source_resolve(model, repo, &model_path, NULL)))
        goto done;
    if (ia_encoder_path_is_gguf(model_path)) { /* a GGUF file: tokenizer.ggml.* */
        ia_gguf *g = NULL;
        if ((st = ia_gguf_open(model_path, &g)) == IA_OK)
            st = ia_tokenizer_from_gguf(g, &tok);
        ia_gguf_close(g);
    } else {
        st = ia_tokenizer_load_dir(model_path, &tok);
    }
    if (st != IA_OK)
        goto done;
    s.tok = tok;
    bool wrap = format == CLI_FORMAT_JSON && in.n != 1;
    if (wrap)
        fputc('[', stdout);
    for (size_t i = 0; i < in.n; i++) {
        if (wrap && i)
            fputs(",\n ", stdout);
        if ((st = print_one(&s, in.texts[i], in.lens[i]))) {
            fflush(stdout);
            if (input)
                ia_error_prefix("%s:%zu", input, i + 1);
            else
                ia_error_prefix("argument %zu", i + 1);
            goto done;
        }
        if (format == CLI_FORMAT_JSONL)
            fputc('\n', stdout);
    }
    if (wrap)
        fputc(']', stdout);
    if (format == CLI_FORMAT_JSON)
        fputc('\n', stdout);
    rc = fflush(stdout) == 0 ? 0 : 1;
done:
    if (st != IA_OK)
        rc = cli_fail("tokenize", st);
    free(model_path);
    ia_tokenizer_free(tok);
    cli_inputs_free(&in);
    return rc;
}
