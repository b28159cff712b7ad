/*
 * Our side of bench/embed: one engine process speaking the driver's protocol
 *
 *   bench_embed_engine --model DIR --workload fixed|corpus|latency --threads N
 *                      --input FILE --out-embeddings FILE.f32 [--iterations K]
 *                      [--dtype f32|bf16|q8_0|q4_0|q4_1|q5_0|q5_1|q2_k|...|q6_k]
 *                      [--batch 32]
 *
 * and printing one JSON line with the timings. --dtype takes every type
 * ia_dtype_parse knows that the embedder runs (f32, bf16 and the quantised
 * weight types but Q8_K; weights are quantised at load); the engine is named
 * "ours" for f32 and "ours-<dtype>" otherwise. The JSON also gives the model
 * file read (model_file, model_bytes: model.safetensors) and the planner's
 * resident weight bytes at the compute type (weights_bytes_planned, from
 * ia_model_plan_make: packed matrices at the type's bytes per element plus
 * the f32 vectors; an estimate from the file's tensor shapes, not a count of
 * the allocations). Timing covers what a user
 * waits for (tokenisation included) and excludes loading, which is reported
 * separately as load_seconds (process start to ready).
 *   fixed:   the inputs truncated to 128 tokens, run as one batch K times
 *   corpus:  all inputs, max_seq_length of the model, length-sorted batches
 *   latency: one input per call; per-call latencies are reported
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ia/quant.h"
#include "ia/runtime.h"

/* s as a JSON string body (quotes, backslashes and control bytes escaped). */
static void print_json_string(const char *s) {
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
}

static int fail(const char *what) {
    fprintf(stderr, "bench_embed_engine: %s: %s\n", what, ia_error_message());
    return 1;
}

int main(int argc, char **argv) {
    double t_start = ia_time_now();
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},
        {"workload", required_argument, NULL, 'w'},
        {"threads", required_argument, NULL, 't'},
        {"input", required_argument, NULL, 'i'},
        {"out-embeddings", required_argument, NULL, 'o'},
        {"iterations", required_argument, NULL, 'k'},
        {"dtype", required_argument, NULL, 'd'},
        {"batch", required_argument, NULL, 'b'},
        {NULL, 0, NULL, 0},
    };
    const char *model = NULL, *workload = NULL, *input = NULL, *out_path = NULL;
    int threads = 2, iterations = 10, batch = 32;
    ia_dtype dtype = IA_DTYPE_F32;
    int c;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (c) {
        case 'm':
            model = optarg;
            break;
        case 'w':
            workload = optarg;
            break;
        case 't':
            threads = atoi(optarg);
            break;
        case 'i':
            input = optarg;
            break;
        case 'o':
            out_path = optarg;
            break;
        case 'k':
            iterations = atoi(optarg);
            break;
        case 'b':
            batch = atoi(optarg);
            break;
        case 'd':
            if (ia_dtype_parse(optarg, &dtype) != IA_OK ||
                !(dtype == IA_DTYPE_F32 || dtype == IA_DTYPE_BF16 ||
                  (ia_dtype_is_quantized(dtype) && dtype != IA_DTYPE_Q8_K))) {
                fprintf(stderr,
                        "bench_embed_engine: --dtype '%s': expected f32, bf16, q8_0, q4_0, "
                        "q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k or q6_k\n",
                        optarg);
                return 2;
            }
            break;
        default:
            return 2;
        }
    }
    if (!model || !workload || !input || threads < 1 || iterations < 1 || batch < 1) {
        fprintf(stderr, "bench_embed_engine: --model, --workload and --input are required\n");
        return 2;
    }
    bool fixed = strcmp(workload, "fixed") == 0, latency = strcmp(workload, "latency") == 0;
    if (!fixed && !latency && strcmp(workload, "corpus") != 0) {
        fprintf(stderr, "bench_embed_engine: unknown workload '%s'\n", workload);
        return 2;
    }
    ia_text_lines in;
    if (ia_text_lines_read(input, (size_t)1 << 30, &in) != IA_OK)
        return fail(input);
    ia_embedder_options opts = ia_embedder_options_default();
    opts.n_threads = threads;
    opts.dtype = dtype;
    opts.batch_size = (size_t)batch;
    if (fixed)
        opts.max_length = 128;
    ia_embedder *emb;
    if (ia_embedder_load(model, &opts, &emb) != IA_OK)
        return fail(model);
    size_t dim = ia_embedder_dim(emb), n = in.n;
    float *out = malloc(n * dim * sizeof(float));
    double *lat = malloc(n * sizeof(double));
    if (!out || !lat)
        return 1;
    const char *const *texts = (const char *const *)in.lines;
    /* warm-up: first touch of weights and scratch, not timed */
    if (ia_embedder_embed(emb, texts, in.lens, n < 4 ? n : 4, out) != IA_OK)
        return fail("warm-up");
    double load_seconds = ia_time_now() - t_start;

    double t0 = ia_time_now();
    size_t done = 0;
    if (latency) {
        for (size_t i = 0; i < n; i++) {
            double a = ia_time_now();
            if (ia_embedder_embed(emb, texts + i, in.lens + i, 1, out + i * dim) != IA_OK)
                return fail("embed");
            lat[i] = (ia_time_now() - a) * 1e3;
        }
        done = n;
    } else {
        int reps = fixed ? iterations : 1;
        for (int r = 0; r < reps; r++) {
            if (ia_embedder_embed(emb, texts, in.lens, n, out) != IA_OK)
                return fail("embed");
            done += n;
        }
    }
    double seconds = ia_time_now() - t0;

    if (out_path) {
        FILE *f = fopen(out_path, "wb");
        if (!f || fwrite(out, sizeof(float), n * dim, f) != n * dim || fclose(f) != 0) {
            fprintf(stderr, "bench_embed_engine: cannot write %s\n", out_path);
            return 1;
        }
    }
    /* Sizes, after timing: the file read and the planner's resident weights. */
    char engine[32], model_file[4096];
    snprintf(engine, sizeof engine, dtype == IA_DTYPE_F32 ? "ours" : "ours-%s",
             ia_dtype_name(dtype));
    snprintf(model_file, sizeof model_file, "%s/model.safetensors", model);
    struct stat sb;
    long long model_bytes = stat(model_file, &sb) == 0 ? (long long)sb.st_size : -1;
    ia_plan_request preq = {.model = model,
                            .batch = 1,
                            .seq = 1,
                            .batch_tokens = 1,
                            .dtype = ia_dtype_name(dtype),
                            .memory_only = true};
    ia_model_plan plan;
    long long weights_planned =
        ia_model_plan_make(&preq, &plan) == IA_OK ? (long long)plan.weights_bytes : -1;
    printf("{\"engine\": \"%s\", \"dtype\": \"%s\", \"workload\": \"%s\", \"n_sentences\": %zu, "
           "\"seconds\": %.6f, \"sentences_per_s\": %.3f, \"load_seconds\": %.4f, \"threads\": %d, "
           "\"backend\": \"%s\", \"model_bytes\": %lld, \"weights_bytes_planned\": %lld, "
           "\"model_file\": \"",
           engine, ia_dtype_name(dtype), workload, done, seconds, (double)done / seconds,
           load_seconds, threads, ia_backend_cpu()->name, model_bytes, weights_planned);
    print_json_string(model_file);
    printf("\", \"latencies_ms\": [");
    for (size_t i = 0; latency && i < n; i++)
        printf(i ? ", %.4f" : "%.4f", lat[i]);
    printf("]}\n");
    free(out);
    free(lat);
    ia_embedder_free(emb);
    ia_text_lines_free(&in);
    return 0;
}
