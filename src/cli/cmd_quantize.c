/*
 * `ipfs-accelerate quantize`: a decoder model (GGUF file or HF directory)
 * written as a GGUF file with ggml block-quantised matrices, by recipe
 * (src/runtime/quantize.c), with per-tensor overrides by glob. A progress
 * bar goes to stderr when it is a terminal; the summary (tensors per type,
 * sizes) to stdout, or one JSON object with --json.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ia/formats.h"
#include "ia/models.h"
#include "ia/quant.h"
#include "ia/runtime.h"

#define MAX_OVERRIDES 64

static const char quantize_usage[] =
    "usage: ipfs-accelerate quantize --model M --type T -o OUT.gguf [--keep-output-f16]\n"
    "                                [--override 'GLOB=TYPE' ...] [--threads N] [--json]\n"
    "       ipfs-accelerate quantize --model M --type T [-o OUT.gguf] --eval --eval-text FILE\n"
    "                                [--eval-tokens N] [--eval-window N] [--json]\n"
    "\n"
    "Writes the model M (a .gguf file, or an HF directory: gpt2, llama, mistral, qwen2, or\n"
    "a BERT encoder such as all-MiniLM-L6-v2) as a GGUF file whose matrices use ggml's\n"
    "quantised block types. Files written here load in llama.cpp; files quantised by\n"
    "llama.cpp load in `generate` (decoders) and `embed` (BERT).\n"
    "\n"
    "  --model M            the source model (f32, f16, bf16 or already quantised), or the\n"
    "                       CID of one in the local store (CID, CID/sub/path, /ipfs/...)\n"
    "  --repo DIR           the store for a CID model (default $IPFS_ACCELERATE_HOME or\n"
    "                       ~/.local/share/ipfs-accelerate)\n"
    "  --type T             recipe: q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k_s, q3_k_m,\n"
    "                       q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k, f16, bf16, f32\n"
    "                       (q3_k, q4_k, q5_k mean their _m mixes, as in llama-quantize)\n"
    "  -o, --output F       the GGUF file to write (atomically)\n"
    "  --keep-output-f16    keep the output head (or tied embeddings) in f16\n"
    "  --override G=T       tensors whose name matches glob G get type T (repeatable; the\n"
    "                       first match wins), e.g. 'blk.*.ffn_down.weight=q6_k'\n"
    "  --threads N          worker threads (default: physical cores)\n"
    "  --json               print the summary as one JSON object\n"
    "\n"
    "  --eval               measure the accuracy cost against the original M: for a decoder,\n"
    "                       perplexity of both, KL divergence of the next-token distributions\n"
    "                       and how often the top token is the same, on the text of\n"
    "                       --eval-text (the written file, or a temporary one without -o);\n"
    "                       for an embedding model directory, the cosine of each line's two\n"
    "                       embeddings and the rank agreement of pairwise similarities, with\n"
    "                       the file written by -o, or without -o the same recipe applied\n"
    "                       at load (no file written; the two agree bit for bit)\n"
    "  --eval-text FILE     the text (decoders) or one sentence per line (embedding models);\n"
    "                       IA_EVAL_TEXT in the environment when not given\n"
    "  --eval-tokens N      decoders: score at most N tokens (default 4096)\n"
    "  --eval-window N      decoders: tokens per window (default 512)\n";

typedef struct progress_state {
    bool tty;
    size_t last_len;
} progress_state;

static void progress(void *ctx, size_t done, size_t total, const char *tensor, ia_dtype type) {
    progress_state *p = ctx;
    if (!p->tty)
        return;
    int width = 30, filled = total ? (int)(done * (size_t)width / total) : width;
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[width] = '\0';
    int len = fprintf(stderr, "\r[%s] %zu/%zu %s %s", bar, done, total, tensor ? tensor : "done",
                      tensor ? ia_dtype_name(type) : "");
    for (size_t i = (size_t)(len > 0 ? len : 0); i < p->last_len; i++)
        fputc(' ', stderr);
    p->last_len = len > 0 ? (size_t)len : 0;
    if (!tensor)
        fputc('\n', stderr);
    fflush(stderr);
}

/* Whether M is a model directory of an encoder (embedding) architecture. */
static bool is_encoder_dir(const char *model) {
    char *cfg_path = ia_path_join(model, "config.json");
    ia_config *cfg = NULL;
    bool encoder = false;
    const char *mt = NULL;
    if (cfg_path && ia_file_exists(cfg_path) && ia_config_load(cfg_path, &cfg) == IA_OK &&
        ia_config_string(cfg, "model_type", false, &mt) == IA_OK && mt)
        for (const char *const *t = ia_encoder_model_types(); *t; t++)
            encoder = encoder || strcmp(*t, mt) == 0;
    ia_config_free(cfg);
    free(cfg_path);
    return encoder;
}

typedef struct eval_args {
    bool on;
    const char *text;
    const char *name; /* --model as given, for the report */
    ia_quant_eval_options opts;
} eval_args;

/* The original directory against `quant` (the GGUF just written), or,
 * without one, against the directory with the recipe applied at load. */
static int eval_embeddings(const char *model, const char *quant, const char *type,
                           const eval_args *e, bool as_json) {
    ia_dtype dt;
    ia_status st = ia_quantize_recipe_base(type, &dt);
    if (st != IA_OK)
        return cli_fail("quantize", st);
    ia_text_lines tl;
    if ((st = ia_text_lines_read(e->text, 64u << 20, &tl)))
        return cli_fail("quantize", st);
    size_t n = 0;
    for (size_t i = 0; i < tl.n; i++)
        if (tl.lens[i])
            tl.lines[n++] = tl.lines[i];
    ia_quant_eval_embed_result r;
    st = ia_quant_eval_embed_recipe(model, quant, type, (const char *const *)tl.lines, n, &e->opts,
                                    &r);
    ia_text_lines_free(&tl);
    if (st != IA_OK)
        return cli_fail("quantize", st);
    if (as_json) {
        printf("{\"model\":\"%s\",\"quantized\":\"%s\",\"type\":\"%s\",\"sentences\":%zu,"
               "\"cosine_mean\":%.6f,\"cosine_min\":%.6f,\"pairs\":%zu,\"spearman\":%.6f}\n",
               e->name, quant ? quant : "at load", type, r.n, r.cos_mean, r.cos_min, r.n_pairs,
               r.spearman);
        return 0;
    }
    printf("%-10s %10s %12s %12s %10s %10s\n", "type", "sentences", "cosine mean", "cosine min",
           "pairs", "spearman");
    printf("%-10s %10zu %12.6f %12.6f %10zu %10.6f\n", type, r.n, r.cos_mean, r.cos_min, r.n_pairs,
           r.spearman);
    return 0;
}

static int eval_decoder(const char *model, const char *quantized, const char *recipe,
                        const eval_args *e, bool as_json) {
    char *text = NULL;
    size_t len = 0;
    ia_status st = ia_file_read_all(e->text, 256u << 20, &text, &len);
    if (st != IA_OK)
        return cli_fail("quantize", st);
    ia_quant_eval_lm_result r;
    st = ia_quant_eval_lm(model, IA_DTYPE_F32, quantized, IA_DTYPE_F32, text, len, &e->opts, &r);
    free(text);
    if (st != IA_OK)
        return cli_fail("quantize", st);
    if (as_json) {
        printf("{\"model\":\"%s\",\"recipe\":\"%s\",\"tokens_scored\":%zu,\"ppl_original\":%.6f,"
               "\"ppl_quantized\":%.6f,\"kl_mean\":%.6g,\"kl_max\":%.6g,\"same_top\":%.6f}\n",
               e->name, recipe, r.n_scored, r.ppl_base, r.ppl_quant, r.kl_mean, r.kl_max,
               r.same_top);
        return 0;
    }
    printf("%-8s %8s %12s %12s %8s %10s %10s %9s\n", "recipe", "tokens", "ppl original",
           "ppl quant", "ratio", "KL mean", "KL max", "same top");
    printf("%-8s %8zu %12.4f %12.4f %8.4f %10.6f %10.6f %9.4f\n", recipe, r.n_scored, r.ppl_base,
           r.ppl_quant, r.ppl_quant / r.ppl_base, r.kl_mean, r.kl_max, r.same_top);
    return 0;
}

static void print_report(const ia_quantize_report *r, const char *out, double seconds,
                         bool as_json) {
    if (as_json) {
        json_t *o = json_object(), *types = json_object();
        for (int t = 0; t < IA_DTYPE_COUNT; t++)
            if (r->n_by_type[t])
                json_object_set_new(types, ia_dtype_name((ia_dtype)t),
                                    json_integer((json_int_t)r->n_by_type[t]));
        json_object_set_new(o, "output", json_string(out));
        json_object_set_new(o, "recipe", json_string(r->recipe));
        json_object_set_new(o, "tensors_by_type", types);
        json_object_set_new(o, "fallbacks", json_integer((json_int_t)r->n_fallbacks));
        json_object_set_new(o, "bytes_in", json_integer((json_int_t)r->bytes_in));
        json_object_set_new(o, "bytes_out", json_integer((json_int_t)r->bytes_out));
        json_object_set_new(o, "seconds", json_real(seconds));
        char *s = json_dumps(o, JSON_COMPACT);
        if (s)
            puts(s);
        free(s);
        json_decref(o);
        return;
    }
    printf("%s: recipe %s, %.1f MiB -> %.1f MiB of tensor data (%.2fx) in %.1f s\n", out, r->recipe,
           (double)r->bytes_in / 1048576.0, (double)r->bytes_out / 1048576.0,
           r->bytes_out ? (double)r->bytes_in / (double)r->bytes_out : 0.0, seconds);
    printf("tensors by type:");
    for (int t = 0; t < IA_DTYPE_COUNT; t++)
        if (r->n_by_type[t])
            printf(" %s %zu", ia_dtype_name((ia_dtype)t), r->n_by_type[t]);
    printf("\n");
    if (r->n_fallbacks)
        printf("%zu tensors took a legacy or f16 type: their rows are not a multiple of the "
               "recipe type's block\n",
               r->n_fallbacks);
}

int cmd_quantize(int argc, char **argv) {
    enum {
        OPT_KEEP = 256,
        OPT_OVERRIDE,
        OPT_THREADS,
        OPT_JSON,
        OPT_EVAL,
        OPT_EVAL_TEXT,
        OPT_EVAL_TOKENS,
        OPT_EVAL_WINDOW,
        OPT_REPO
    };
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},
        {"type", required_argument, NULL, 't'},
        {"output", required_argument, NULL, 'o'},
        {"keep-output-f16", no_argument, NULL, OPT_KEEP},
        {"override", required_argument, NULL, OPT_OVERRIDE},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"json", no_argument, NULL, OPT_JSON},
        {"eval", no_argument, NULL, OPT_EVAL},
        {"eval-text", required_argument, NULL, OPT_EVAL_TEXT},
        {"eval-tokens", required_argument, NULL, OPT_EVAL_TOKENS},
        {"eval-window", required_argument, NULL, OPT_EVAL_WINDOW},
        {"repo", required_argument, NULL, OPT_REPO},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *model = NULL, *out = NULL, *repo = NULL, *overrides[MAX_OVERRIDES];
    bool as_json = false;
    ia_quantize_options opts = {0};
    eval_args ev = {.opts = {.max_tokens = 4096}};
    long v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:", options, NULL)) != -1) {
        switch (c) {
        case 'm':
            model = optarg;
            break;
        case 't':
            opts.type = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case OPT_REPO:
            repo = optarg;
            break;
        case OPT_KEEP:
            opts.keep_output_f16 = true;
            break;
        case OPT_OVERRIDE:
            if (opts.n_overrides == MAX_OVERRIDES)
                return cli_usage_error("quantize", "at most %d --override options", MAX_OVERRIDES);
            overrides[opts.n_overrides++] = optarg;
            break;
        case OPT_THREADS:
            if (cli_parse_int("--threads", optarg, 1, 1024, &v) != IA_OK)
                return cli_fail("quantize", IA_EINVAL);
            opts.n_threads = ev.opts.n_threads = (int)v;
            break;
        case OPT_EVAL:
            ev.on = true;
            break;
        case OPT_EVAL_TEXT:
            ev.text = optarg;
            break;
        case OPT_EVAL_TOKENS:
            if (cli_parse_int("--eval-tokens", optarg, 2, 1L << 30, &v) != IA_OK)
                return cli_fail("quantize", IA_EINVAL);
            ev.opts.max_tokens = (size_t)v;
            break;
        case OPT_EVAL_WINDOW:
            if (cli_parse_int("--eval-window", optarg, 2, 1L << 20, &v) != IA_OK)
                return cli_fail("quantize", IA_EINVAL);
            ev.opts.window = (size_t)v;
            break;
        case OPT_JSON:
            as_json = true;
            break;
        case 'h':
            fputs(quantize_usage, stdout);
            return 0;
        default:
            return cli_usage_error("quantize", "bad option");
        }
    }
    if (optind < argc)
        return cli_usage_error("quantize", "unexpected argument '%s'", argv[optind]);
    if (!model || !opts.type || (!out && !ev.on))
        return cli_usage_error("quantize", "--model M, --type T and -o OUT.gguf (or --eval) are "
                                           "required");
    if (ev.on && !ev.text)
        ev.text = getenv("IA_EVAL_TEXT");
    if (ev.on && !ev.text)
        return cli_usage_error("quantize",
                               "--eval needs --eval-text FILE (or IA_EVAL_TEXT): plain text for a "
                               "decoder, one sentence per line for an embedding model");
    /* a CID becomes a path on disk; reports show the argument as given */
    char *model_path = NULL;
    ia_status st = ia_model_source_resolve(model, repo, &model_path, NULL);
    if (st != IA_OK)
        return cli_fail("quantize", st);
    ev.name = model;
    model = model_path;
    bool encoder = is_encoder_dir(model);
    if (ev.on && encoder && !out) { /* the recipe applied at load, no file written */
        int rc = eval_embeddings(model, NULL, opts.type, &ev, as_json);
        free(model_path);
        return rc;
    }
    char tmp_out[64] = "";
    if (!out) { /* evaluate a temporary file */
        snprintf(tmp_out, sizeof tmp_out, "/tmp/ia-quantize-eval-%ld.gguf", (long)getpid());
        out = tmp_out;
    }
    opts.overrides = overrides;
    progress_state ps = {.tty = isatty(STDERR_FILENO) == 1};
    opts.progress = progress;
    opts.progress_ctx = &ps;
    ia_quantize_report report;
    double t0 = ia_time_now();
    st = ia_quantize_model(model, out, &opts, &report);
    if (ps.tty && ps.last_len && st != IA_OK)
        fputc('\n', stderr);
    if (st != IA_OK) {
        if (tmp_out[0])
            unlink(tmp_out);
        free(model_path);
        return cli_fail("quantize", st);
    }
    /* With --eval --json, stdout holds only the evaluation's JSON object. */
    if (!ev.on || (!tmp_out[0] && !as_json))
        print_report(&report, out, ia_time_now() - t0, as_json);
    int rc = !ev.on    ? 0
             : encoder ? eval_embeddings(model, out, opts.type, &ev, as_json)
                       : eval_decoder(model, out, report.recipe, &ev, as_json);
    if (tmp_out[0])
        unlink(tmp_out);
    free(model_path);
    return rc;
}
