/*
 * ipfs-accelerate: the command-line front end. main() picks the subcommand
 * from a table; each subcommand lives in its own cmd_<name>.c and parses its
 * own options. Results go to stdout, diagnostics to stderr; exit status 0 on
 * success, 1 on a failure, 2 on a usage error.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

#ifndef IA_VERSION
#define IA_VERSION "0.1.0"
#endif

static const struct {
    const char *name;
    cli_command_fn fn;
    const char *summary;
} commands[] = {
    {"embed", cmd_embed, "sentence embeddings from a BERT-family model directory"},
    {"tokenize", cmd_tokenize, "token ids (or token strings) as HF tokenizers gives them"},
    {"search", cmd_search, "rank texts by cosine similarity to a query"},
    {"add", cmd_add, "add files and directories; prints the CIDs Kubo gives"},
    {"cid", cmd_cid, "inspect and convert CIDs (inspect, format, base32)"},
    {"cat", cmd_cat, "print a file's bytes (CID or CID/path; --offset, --length)"},
    {"get", cmd_get, "write a file or directory tree to disk"},
    {"ls", cmd_ls, "list a directory: CID, size, name"},
    {"block", cmd_block, "raw blocks: get, put, stat, rm"},
    {"pin", cmd_pin, "keep DAGs from gc: add, rm, ls"},
    {"repo", cmd_repo, "the store: gc, verify, stat"},
    {"car", cmd_car, "CAR archives: export, import"},
    {"gateway", cmd_gateway, "serve the store as an IPFS Trustless Gateway (HTTP)"},
    {"serve", cmd_serve, "serve models over HTTP: OpenAI, TEI and Ollama APIs, /metrics"},
    {"hw", cmd_hw, "what this machine has: CPU, memory, accelerators, and why a probe found none"},
    {"models", cmd_models, "classify a model, list the registry, plan memory and device"},
    {"generate", cmd_generate, "continue a prompt with a decoder model (HF directory or .gguf)"},
    {"chat", cmd_chat, "chat with a model through its chat template (interactive or piped)"},
    {"convert", cmd_convert, "write an HF decoder directory as a GGUF file (llama.cpp names)"},
    {"quantize", cmd_quantize,
     "write a decoder as a GGUF file with 8- to 2-bit quantised matrices"},
    {"bench", cmd_bench,
     "benchmarks into a results DB: run, query, compare, regressions, report, import"},
    {"s3", cmd_s3, "objects in S3 or an S3-compatible store: put, get, ls, rm, mb"},
    {"api", cmd_api, "remote inference providers from endpoints.yaml: call, stats, check"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: ipfs-accelerate [--log-level LEVEL] COMMAND [OPTIONS] ...\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "  %-10s %s\n\n", "version", "print the version");
    fprintf(f, "'ipfs-accelerate COMMAND --help' describes a command's options.\n");
}

int main(int argc, char **argv) {
    int i = 1;
    while (i < argc && argv[i][0] == '-') {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("ipfs-accelerate %s\n", IA_VERSION);
            return 0;
        }
        if (strcmp(argv[i], "--log-level") == 0 && i + 1 < argc) {
            ia_log_level level;
            if (ia_log_level_parse(argv[i + 1], &level) != IA_OK)
                return cli_fail("", IA_EINVAL);
            ia_log_set_level(level);
            i += 2;
            continue;
        }
        fprintf(stderr, "ipfs-accelerate: unknown option '%s'\n", argv[i]);
        usage(stderr);
        return 2;
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[i], "version") == 0) {
        printf("ipfs-accelerate %s\n", IA_VERSION);
        return 0;
    }
    if (strcmp(argv[i], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++)
        if (strcmp(argv[i], commands[c].name) == 0)
            return commands[c].fn(argc - i, argv + i);
    fprintf(stderr, "ipfs-accelerate: unknown command '%s'\n", argv[i]);
    usage(stderr);
    return 2;
}
