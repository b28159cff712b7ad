/*
 * `ipfs-accelerate generate`: text from a decoder model (an HF directory or
 * a .gguf), streamed to stdout as it is made, or one JSON object at the end
 * with --json. The options shared with `chat` (model, sampling, threads,
 * types, device) are parsed here by cli_gen_parse.
 *
 * Output is written with write-and-flush per piece; SIGPIPE is ignored so a
 * reader that goes away (`| head -c 20`) shows up as EPIPE, which stops
 * generation cleanly: no partial garbage, no crash, exit status 0.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ia/quant.h"
#include "ia/runtime.h"

static const char generate_usage[] =
    "usage: ipfs-accelerate generate --model M --prompt TEXT [options]\n"
    "\n"
    "Continues TEXT with a decoder model, streaming tokens to stdout.\n"
    "\n"
    "  --model M            HF model directory (config.json, *.safetensors, tokenizer.json)\n"
    "                       or a .gguf file, or the CID of either in the local store (CID,\n"
    "                       CID/sub/path, /ipfs/CID/...; --nocopy files are mapped in place)\n"
    "  --repo DIR           the store for a CID model (default $IPFS_ACCELERATE_HOME or\n"
    "                       ~/.local/share/ipfs-accelerate)\n"
    "  --prompt TEXT        the text to continue (UTF-8)\n"
    "  --max-tokens N       most new tokens (default 128; 0: until EOS or the context is full)\n"
    "  --temperature T      0 is greedy (default 0.8)\n"
    "  --top-k K            keep the K most likely tokens (default 40; 0: off)\n"
    "  --top-p P            nucleus sampling mass (default 0.95; 1: off)\n"
    "  --min-p P            drop tokens below P x the top probability (default 0.05; 0: off)\n"
    "  --repeat-penalty R   HF repetition penalty over prompt and output (default 1: off)\n"
    "  --seed S             random seed (default 0); the same seed gives the same tokens\n"
    "  --stop STR           stop before STR (repeatable); STR itself is not printed\n"
    "  --ignore-eos         keep going past the end-of-sequence token\n"
    "  --json               print one JSON object at the end: text, tokens, prompt_tokens,\n"
    "                       completion_tokens, finish_reason (stop|length|eos), timings\n"
    "  --threads N          worker threads (default: physical cores)\n"
    "  --dtype T            float weights' type in memory: f32 (default), f16, bf16, or a\n"
    "                       quantisation type (q8_0, q4_k, ...) applied at load; f16 streams\n"
    "                       half the bytes of f32 per token (exact for an F16 model).\n"
    "                       Tensors a GGUF file stores quantised keep their own type\n"
    "  --kv-cache f32|f16|q8_0  KV cache type (default f32); q8_0 stores int8 blocks\n"
    "  --context N          context length (default: the model's)\n"
    "  --device D           auto (default) or cpu: generation runs on the CPU in this build\n";

enum {
    OPT_MODEL = 256,
    OPT_PROMPT,
    OPT_MAX_TOKENS,
    OPT_TEMPERATURE,
    OPT_TOP_K,
    OPT_TOP_P,
    OPT_MIN_P,
    OPT_REPEAT,
    OPT_SEED,
    OPT_STOP,
    OPT_IGNORE_EOS,
    OPT_JSON,
    OPT_THREADS,
    OPT_DTYPE,
    OPT_KV,
    OPT_CONTEXT,
    OPT_DEVICE,
    OPT_SYSTEM,
    OPT_REPO,
    OPT_HELP,
};

static ia_status parse_float(const char *flag, const char *s, float *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno)
        return ia_error_set(IA_EINVAL, "%s: '%s' is not a number", flag, s);
    *out = (float)v;
    return IA_OK;
}

ia_status cli_gen_dtype_parse(const char *s, ia_dtype *out) {
    ia_dtype t;
    if (strcmp(s, "fp16") == 0 || strcmp(s, "fp32") == 0)
        t = s[2] == '1' ? IA_DTYPE_F16 : IA_DTYPE_F32;
    else if (ia_dtype_parse(s, &t) != IA_OK || !ia_dtype_get_info(t)->is_float ||
             t == IA_DTYPE_Q8_K)
        return ia_error_set(IA_EINVAL,
                            "--dtype: '%s' is not f32, f16, bf16 or a weight quantisation "
                            "type (q8_0, q4_0, q4_1, q5_0, q5_1, q2_k ... q6_k)",
                            s);
    *out = t;
    return IA_OK;
}

ia_status cli_gen_kv_cache_parse(const char *s, ia_dtype *out) {
    if (strcmp(s, "f32") == 0 || strcmp(s, "fp32") == 0)
        *out = IA_DTYPE_F32;
    else if (strcmp(s, "f16") == 0)
        *out = IA_DTYPE_F16;
    else if (strcmp(s, "q8_0") == 0)
        *out = IA_DTYPE_Q8_0;
    else
        return ia_error_set(IA_EINVAL, "--kv-cache: '%s' is not f32, f16 or q8_0", s);
    return IA_OK;
}

ia_status cli_gen_context_parse(const char *s, size_t *out) {
    long v;
    ia_status st = cli_parse_int("--context", s, 1, 1 << 24, &v);
    if (st == IA_OK)
        *out = (size_t)v;
    return st;
}

int cli_gen_parse(const char *cmd, const char *usage, int argc, char **argv, cli_gen_args *a) {
    static const struct option options[] = {
        {"model", required_argument, NULL, OPT_MODEL},
        {"prompt", required_argument, NULL, OPT_PROMPT},
        {"max-tokens", required_argument, NULL, OPT_MAX_TOKENS},
        {"temperature", required_argument, NULL, OPT_TEMPERATURE},
        {"top-k", required_argument, NULL, OPT_TOP_K},
        {"top-p", required_argument, NULL, OPT_TOP_P},
        {"min-p", required_argument, NULL, OPT_MIN_P},
        {"repeat-penalty", required_argument, NULL, OPT_REPEAT},
        {"seed", required_argument, NULL, OPT_SEED},
        {"stop", required_argument, NULL, OPT_STOP},
        {"ignore-eos", no_argument, NULL, OPT_IGNORE_EOS},
        {"json", no_argument, NULL, OPT_JSON},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"dtype", required_argument, NULL, OPT_DTYPE},
        {"kv-cache", required_argument, NULL, OPT_KV},
        {"context", required_argument, NULL, OPT_CONTEXT},
        {"device", required_argument, NULL, OPT_DEVICE},
        {"system", required_argument, NULL, OPT_SYSTEM},
        {"repo", required_argument, NULL, OPT_REPO},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof *a);
    a->opts = ia_generator_options_default();
    a->sampling = ia_sampling_default();
    a->sampling.temperature = 0.8f;
    a->sampling.top_k = 40;
    a->sampling.top_p = 0.95f;
    a->sampling.min_p = 0.05f;
    a->max_tokens = 128;
    long v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        ia_status st = IA_OK;
        switch (c) {
        case OPT_MODEL:
            a->model = optarg;
            break;
        case OPT_PROMPT:
            a->prompt = optarg;
            break;
        case OPT_REPO:
            a->repo = optarg;
            break;
        case OPT_SYSTEM:
            a->system = optarg;
            break;
        case OPT_MAX_TOKENS:
            st = cli_parse_int("--max-tokens", optarg, 0, 1 << 24, &v);
            a->max_tokens = (size_t)v;
            break;
        case OPT_TEMPERATURE:
            st = parse_float("--temperature", optarg, &a->sampling.temperature);
            break;
        case OPT_TOP_K:
            st = cli_parse_int("--top-k", optarg, 0, 1 << 24, &v);
            a->sampling.top_k = (int)v;
            break;
        case OPT_TOP_P:
            st = parse_float("--top-p", optarg, &a->sampling.top_p);
            break;
        case OPT_MIN_P:
            st = parse_float("--min-p", optarg, &a->sampling.min_p);
            break;
        case OPT_REPEAT:
            st = parse_float("--repeat-penalty", optarg, &a->sampling.repeat_penalty);
            break;
        case OPT_SEED: {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(optarg, &end, 10);
            if (!*optarg || *end || errno || *optarg == '-')
                st = ia_error_set(IA_EINVAL, "--seed: '%s' is not a number from 0 to 2^64-1",
                                  optarg);
            a->sampling.seed = (uint64_t)s;
            break;
        }
        case OPT_STOP:
            if (a->n_stop == CLI_MAX_STOP)
                st = ia_error_set(IA_EINVAL, "--stop: at most %d stop strings", CLI_MAX_STOP);
            else if (!*optarg || !ia_utf8_valid(optarg, strlen(optarg), NULL))
                st = ia_error_set(IA_EINVAL, "--stop: the string must be non-empty UTF-8");
            else
                a->stop[a->n_stop++] = optarg;
            break;
        case OPT_IGNORE_EOS:
            a->ignore_eos = true;
            break;
        case OPT_JSON:
            a->json = true;
            break;
        case OPT_THREADS:
            st = cli_parse_int("--threads", optarg, 1, 1024, &v);
            a->opts.n_threads = (int)v;
            break;
        case OPT_DTYPE:
            st = cli_gen_dtype_parse(optarg, &a->opts.dtype);
            break;
        case OPT_KV:
            st = cli_gen_kv_cache_parse(optarg, &a->opts.kv_dtype);
            break;
        case OPT_CONTEXT:
            st = cli_gen_context_parse(optarg, &a->opts.context);
            break;
        case OPT_DEVICE:
            if ((st = cli_parse_device(optarg)) == IA_OK && strcmp(optarg, "auto") != 0 &&
                strcmp(optarg, "cpu") != 0)
                st = ia_error_set(IA_EUNSUPPORTED,
                                  "--device %s: text generation runs on the CPU in this build "
                                  "(use auto or cpu)",
                                  optarg);
            break;
        case OPT_HELP:
            fputs(usage, stdout);
            return -1;
        default:
            return cli_usage_error(cmd, "bad option");
        }
        if (st != IA_OK)
            return cli_usage_error(cmd, "%s", ia_error_message());
    }
    if (optind < argc)
        return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!a->model)
        return cli_usage_error(cmd, "--model is required");
    return 0;
}

/* ---- streaming to stdout ---------------------------------------------------------------- */

bool cli_gen_write(void *ctx, const char *piece, size_t len) {
    cli_out_state *o = ctx;
    if (fwrite(piece, 1, len, stdout) != len || fflush(stdout) != 0) {
        o->err = errno;
        if (errno == EPIPE)
            o->closed = true;
        else
            o->failed = true;
        return false;
    }
    return true;
}

static void write_json(const ia_generate_result *r) {
    double pre_s = r->prefill_ms / 1000.0, dec_s = r->decode_ms / 1000.0;
    size_t prefilled = r->prompt_tokens - r->cached_tokens;
    fputs("{\"text\":", stdout);
    cli_write_string(stdout, r->text);
    fputs(",\"tokens\":", stdout);
    cli_write_ints(stdout, r->tokens, r->n_tokens);
    printf(",\"prompt_tokens\":%zu,\"completion_tokens\":%zu,\"finish_reason\":\"%s\"",
           r->prompt_tokens, r->n_tokens, ia_finish_reason_name(r->finish));
    printf(",\"timings\":{\"prefill_ms\":%.3f,\"decode_ms\":%.3f,\"prefill_tokens_per_s\":%.2f,"
           "\"decode_tokens_per_s\":%.2f}}\n",
           r->prefill_ms, r->decode_ms, pre_s > 0 ? prefilled / pre_s : 0.0,
           dec_s > 0 ? r->n_tokens / dec_s : 0.0);
}

int cmd_generate(int argc, char **argv) {
    cli_gen_args a;
    int rc = cli_gen_parse("generate", generate_usage, argc, argv, &a);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (!a.prompt)
        return cli_usage_error("generate", "--prompt is required");
    signal(SIGPIPE, SIG_IGN);
    ia_generator *g = NULL;
    ia_generate_result res = {0};
    cli_out_state o = {0};
    char *model_path = NULL; /* the model's path on disk (a CID resolved) */
    ia_status st = ia_model_source_resolve(a.model, a.repo, &model_path, NULL);
    if (st == IA_OK)
        st = ia_generator_load(model_path, &a.opts, &g);
    free(model_path);
    if (st != IA_OK)
        return cli_fail("generate", st);
    ia_generate_request req = ia_generate_request_default();
    req.prompt = a.prompt;
    req.max_tokens = a.max_tokens;
    req.sampling = a.sampling;
    req.stop = a.stop;
    req.n_stop = a.n_stop;
    req.ignore_eos = a.ignore_eos;
    if (!a.json) {
        req.on_text = cli_gen_write;
        req.ctx = &o;
    }
    st = ia_generator_generate(g, &req, &res);
    rc = 0;
    if (st != IA_OK) {
        rc = cli_fail("generate", st);
    } else if (o.failed) {
        fprintf(stderr, "ipfs-accelerate generate: writing to stdout: %s\n", strerror(o.err));
        rc = 1;
    } else if (!o.closed) {
        if (a.json)
            write_json(&res);
        else
            fputc('\n', stdout);
        if (fflush(stdout) != 0 && errno != EPIPE) {
            fprintf(stderr, "ipfs-accelerate generate: writing to stdout: %s\n", strerror(errno));
            rc = 1;
        }
    }
    ia_generate_result_free(&res);
    ia_generator_free(g);
    return rc;
}
