/*
 * `ipfs-accelerate embed`: sentence embeddings, one row per input in input
 * order, as sentence-transformers' encode() gives them.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ia/quant.h"
#include "ia/runtime.h"

static const char embed_usage[] =
    "usage: ipfs-accelerate embed --model DIR|FILE.gguf|CID [options] [TEXT ...]\n"
    "\n"
    "Prints one embedding (a JSON array of floats) per input text.\n"
    "\n"
    "  --model DIR        HF model directory (config.json, tokenizer.json or vocab.txt,\n"
    "                     model.safetensors; modules.json and 1_Pooling/ when present),\n"
    "                     or a BERT .gguf file (ours or llama.cpp's, any weight type):\n"
    "                     pooling from bert.pooling_type, L2-normalised by default as\n"
    "                     llama.cpp does (GGUF has no Normalize module); or the CID of\n"
    "                     either in the local store (CID, CID/sub/path, /ipfs/CID/...;\n"
    "                     files added with --nocopy are mapped in place)\n"
    "  --repo DIR         the store for a CID model (default $IPFS_ACCELERATE_HOME or\n"
    "                     ~/.local/share/ipfs-accelerate)\n"
    "  --input FILE       read texts from FILE, one per line ('-' for stdin)\n"
    "  --format FORMAT    json (default): one JSON array holding one array per input;\n"
    "                     jsonl: one array per line, one line per input\n"
    "  --dtype TYPE       weights in memory: f32 (default), bf16, or a quantisation type\n"
    "                     (q8_0, q4_0, q4_1, q5_0, q5_1, q2_k ... q6_k) applied at load,\n"
    "                     or a `quantize` mix (q4_k_m, q4_k_s, q3_k_m, ...): its per-tensor\n"
    "                     types applied at load, bit for bit what its GGUF file holds\n"
    "  --device D         auto (default), cpu, cuda:N, ...: where to run; a named device\n"
    "                     that cannot run the model is an error saying why\n"
    "  --threads N        worker threads (default: physical cores)\n"
    "  --max-length N     truncate inputs to N tokens (default: the model's max_seq_length)\n"
    "  --batch-tokens N   tokens per batch (default 8192)\n"
    "  --no-normalize     skip L2 normalisation even if the model asks for it\n"
    "  --normalize        L2-normalise even if the model does not ask for it\n";

ia_status cli_embed_dtype_parse(const char *s, ia_embedder_options *opts) {
    ia_embedder_options o = *opts;
    o.weight_type = NULL;
    o.weight_type_ctx = NULL;
    if (strcmp(s, "f32") == 0 || strcmp(s, "fp32") == 0)
        o.dtype = IA_DTYPE_F32;
    else if (strchr(s, '_') && strlen(s) > 4 &&
             ia_quantize_recipe_weight_fn(s, &o.weight_type, &o.weight_type_ctx) == IA_OK)
        /* a mix (q4_k_m, q3_k_s, ...): quantize's per-tensor types at load */
        ia_quantize_recipe_base(s, &o.dtype);
    else if (ia_dtype_parse(s, &o.dtype) != IA_OK ||
             (o.dtype != IA_DTYPE_BF16 && !ia_dtype_is_quantized(o.dtype)) ||
             o.dtype == IA_DTYPE_Q8_K)
        return ia_error_set(IA_EINVAL,
                            "--dtype: '%s' is not f32, bf16, a quantisation type "
                            "(q8_0, q4_0, q4_1, q5_0, q5_1, q2_k ... q6_k) or a mix "
                            "(q4_k_m, q4_k_s, q3_k_m, ...)",
                            s);
    *opts = o;
    return IA_OK;
}

int cmd_embed(int argc, char **argv) {
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},
        {"input", required_argument, NULL, 'i'},
        {"format", required_argument, NULL, 'f'},
        {"dtype", required_argument, NULL, 'd'},
        {"device", required_argument, NULL, 'D'},
        {"threads", required_argument, NULL, 't'},
        {"max-length", required_argument, NULL, 'L'},
        {"batch-tokens", required_argument, NULL, 'B'},
        {"no-normalize", no_argument, NULL, 'N'},
        {"normalize", no_argument, NULL, 'n'},
        {"repo", required_argument, NULL, 'R'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *model = NULL, *input = NULL, *device = NULL, *repo = NULL;
    char *model_path = NULL; /* the model's path on disk (a CID resolved) */
    cli_format format = CLI_FORMAT_JSON;
    ia_embedder_options opts = ia_embedder_options_default();
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
        case 'd':
            st = cli_embed_dtype_parse(optarg, &opts);
            break;
        case 'D':
            st = cli_parse_device(optarg);
            device = optarg;
            break;
        case 't':
            st = cli_parse_int("--threads", optarg, 1, 1024, &v);
            opts.n_threads = (int)v;
            break;
        case 'L':
            st = cli_parse_int("--max-length", optarg, 1, 1 << 20, &v);
            opts.max_length = (size_t)v;
            break;
        case 'B':
            st = cli_parse_int("--batch-tokens", optarg, 1, 1 << 24, &v);
            opts.batch_tokens = (size_t)v;
            break;
        case 'N':
            opts.normalize = 0;
            break;
        case 'n':
            opts.normalize = 1;
            break;
        case 'h':
            fputs(embed_usage, stdout);
            return 0;
        default:
            return cli_usage_error("embed", "bad option");
        }
        if (st != IA_OK)
            return cli_usage_error("embed", "%s", ia_error_message());
    }
    if (!model)
        return cli_usage_error("embed", "--model DIR is required");
    cli_inputs in;
    int rc_in = cli_collect_inputs("embed", input, argc - optind, argv + optind, &in);
    if (rc_in != 0)
        return rc_in;
    ia_status st = IA_OK;
    ia_embedder *emb = NULL;
    float *out = NULL;
    int rc = 1;
    char chosen[32];
    if ((st = ia_model_source_resolve(model, repo, &model_path, NULL)))
        goto done;
    if ((st = ia_model_device_select(model_path, device, ia_dtype_name(opts.dtype), chosen,
                                     sizeof chosen)))
        goto done;
    if ((st = ia_embedder_load(model_path, &opts, &emb)))
        goto done;
    size_t dim = ia_embedder_dim(emb);
    if (!(out = ia_malloc_array(in.n ? in.n * dim : 1, sizeof(float)))) {
        st = IA_ENOMEM;
        goto done;
    }
    if ((st = ia_embedder_embed(emb, (const char *const *)in.texts, in.lens, in.n, out))) {
        if (input) /* "input 12: ..." becomes "texts.txt: input 12: ..." */
            ia_error_prefix("%s", input);
        goto done;
    }
    if (format == CLI_FORMAT_JSON)
        fputs("[", stdout);
    for (size_t i = 0; i < in.n; i++) {
        if (format == CLI_FORMAT_JSON && i)
            fputs(",\n ", stdout);
        cli_write_floats(stdout, out + i * dim, dim);
        if (format == CLI_FORMAT_JSONL)
            fputc('\n', stdout);
    }
    if (format == CLI_FORMAT_JSON)
        fputs("]\n", stdout);
    rc = fflush(stdout) == 0 ? 0 : 1;
done:
    if (st != IA_OK)
        rc = cli_fail("embed", st);
    free(out);
    free(model_path);
    ia_embedder_free(emb);
    cli_inputs_free(&in);
    return rc;
}
