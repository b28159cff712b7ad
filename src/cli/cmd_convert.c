/*
 * `ipfs-accelerate convert`: an HF decoder directory (gpt2, llama, mistral,
 * qwen2) written as one GGUF file with llama.cpp's names and conventions
 * (see src/runtime/convert.c for what that means).
 */
#include <getopt.h>
#include <string.h>

#include "cli.h"
#include "ia/runtime.h"

static const char convert_usage[] =
    "usage: ipfs-accelerate convert --model DIR -o OUT.gguf [--type f32|f16|bf16]\n"
    "\n"
    "Writes the HF model directory DIR (config.json, model.safetensors, tokenizer.json,\n"
    "tokenizer_config.json) as a GGUF file that llama.cpp and `generate` load.\n"
    "\n"
    "  --model DIR     the HF directory (gpt2, llama, mistral or qwen2)\n"
    "  -o, --output F  the GGUF file to write (atomically)\n"
    "  --type T        matrix type: f32 (default), f16 or bf16; norms and biases stay f32\n";

int cmd_convert(int argc, char **argv) {
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},
        {"output", required_argument, NULL, 'o'},
        {"type", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *model = NULL, *out = NULL;
    ia_convert_options opts = {.type = IA_DTYPE_F32};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:", options, NULL)) != -1) {
        switch (c) {
        case 'm':
            model = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 't':
            if (strcmp(optarg, "f32") == 0)
                opts.type = IA_DTYPE_F32;
            else if (strcmp(optarg, "f16") == 0)
                opts.type = IA_DTYPE_F16;
            else if (strcmp(optarg, "bf16") == 0)
                opts.type = IA_DTYPE_BF16;
            else
                return cli_usage_error("convert", "--type: '%s' is not f32, f16 or bf16", optarg);
            break;
        case 'h':
            fputs(convert_usage, stdout);
            return 0;
        default:
            return cli_usage_error("convert", "bad option");
        }
    }
    if (optind < argc)
        return cli_usage_error("convert", "unexpected argument '%s'", argv[optind]);
    if (!model || !out)
        return cli_usage_error("convert", "--model DIR and -o OUT.gguf are required");
    ia_status st = ia_convert_to_gguf(model, out, &opts);
    if (st != IA_OK)
        return cli_fail("convert", st);
    return 0;
}
