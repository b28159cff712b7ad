/*
 * Our side of bench/generate: one engine process speaking the driver's protocol
 *
 *   bench_generate_engine --model PATH [--pp 512] [--tg 128] [--reps 1] [--threads 2]
 *                         [--dtype f32|f16|bf16] [--kv-cache f32|f16]
 *                         [--out-logits FILE.f32] [--no-warmup]
 *
 * and printing one JSON line. The tests are llama-bench's:
 *   pp N  one forward of N prompt tokens into an empty KV cache (the logits of
 *         the last token only), tokens/s = N / seconds
 *   tg N  N forwards of one token each, from an empty cache, tokens/s = N /
 *         seconds; no sampling (llama-bench feeds tokens without sampling)
 * Tokens are a fixed pseudo-random sequence, the same in every engine. Before
 * the timed repetitions one warm-up of each test runs (as llama-bench does)
 * unless --no-warmup. Load time (file to packed weights) is reported apart.
 * --out-logits writes the last-token logits of the first pp forward for the
 * driver's correctness check against PyTorch.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ia/kernels.h"
#include "ia/models.h"

static int fail(const char *what) {
    fprintf(stderr, "bench_generate_engine: %s: %s\n", what, ia_error_message());
    return 1;
}

/* The benchmark's token sequence: token i of every test (also bench/peers). */
static int32_t bench_token(size_t i, int64_t vocab) {
    return (int32_t)((i * 7919u + 13u) % (uint64_t)vocab);
}

static int parse_type(const char *s, ia_dtype *out) {
    if (strcmp(s, "f32") == 0)
        *out = IA_DTYPE_F32;
    else if (strcmp(s, "f16") == 0)
        *out = IA_DTYPE_F16;
    else if (strcmp(s, "bf16") == 0)
        *out = IA_DTYPE_BF16;
    else
        return -1;
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One pp forward of n tokens from an empty cache; returns seconds. */
static double run_pp(const ia_decoder *dec, ia_kv_cache *kv, const int32_t *toks, size_t n,
                     float *logits, ia_threadpool *pool, ia_status *st) {
    ia_kv_cache_reset(kv);
    double t0 = ia_time_now();
    *st = ia_decoder_forward(dec, kv, toks, n, false, logits, pool);
    return ia_time_now() - t0;
}

static double run_tg(const ia_decoder *dec, ia_kv_cache *kv, const int32_t *toks, size_t n,
                     float *logits, ia_threadpool *pool, ia_status *st) {
    ia_kv_cache_reset(kv);
    double t0 = ia_time_now();
    *st = IA_OK;
    for (size_t i = 0; i < n && *st == IA_OK; i++)
        *st = ia_decoder_forward(dec, kv, toks + i, 1, false, logits, pool);
    return ia_time_now() - t0;
}

static void print_list(const char *key, const double *v, int n) {
    printf(", \"%s\": [", key);
    for (int i = 0; i < n; i++)
        printf(i ? ", %.4f" : "%.4f", v[i]);
    printf("]");
}

int main(int argc, char **argv) {
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},    {"pp", required_argument, NULL, 'p'},
        {"tg", required_argument, NULL, 'g'},       {"reps", required_argument, NULL, 'r'},
        {"threads", required_argument, NULL, 't'},  {"dtype", required_argument, NULL, 'd'},
        {"kv-cache", required_argument, NULL, 'k'}, {"out-logits", required_argument, NULL, 'o'},
        {"no-warmup", no_argument, NULL, 'W'},      {NULL, 0, NULL, 0},
    };
    const char *model = NULL, *out_logits = NULL;
    int pp = 512, tg = 128, reps = 1, threads = 2, warmup = 1, c;
    ia_dtype dtype = IA_DTYPE_F16, kv_dtype = IA_DTYPE_F16;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (c) {
        case 'm':
            model = optarg;
            break;
        case 'p':
            pp = atoi(optarg);
            break;
        case 'g':
            tg = atoi(optarg);
            break;
        case 'r':
            reps = atoi(optarg);
            break;
        case 't':
            threads = atoi(optarg);
            break;
        case 'd':
            if (parse_type(optarg, &dtype))
                return fprintf(stderr, "bench_generate_engine: --dtype f32|f16|bf16\n"), 2;
            break;
        case 'k':
            if (parse_type(optarg, &kv_dtype) || kv_dtype == IA_DTYPE_BF16)
                return fprintf(stderr, "bench_generate_engine: --kv-cache f32|f16\n"), 2;
            break;
        case 'o':
            out_logits = optarg;
            break;
        case 'W':
            warmup = 0;
            break;
        default:
            return 2;
        }
    }
    if (!model || pp < 0 || tg < 0 || reps < 1 || reps > 100 || threads < 1) {
        fprintf(stderr, "bench_generate_engine: --model is required (see the file's header)\n");
        return 2;
    }

    double t_load = ia_time_now();
    ia_decoder *dec = NULL;
    if (ia_decoder_load(model, ia_backend_cpu(), dtype, &dec) != IA_OK)
        return fail(model);
    t_load = ia_time_now() - t_load;
    const ia_decoder_config *cfg = ia_decoder_get_config(dec);
    size_t ctx = (size_t)(pp > tg ? pp : tg);
    ia_kv_cache *kv = NULL;
    if (ia_kv_cache_create(dec, ctx, kv_dtype, &kv) != IA_OK)
        return fail("kv cache");
    ia_threadpool *pool = threads > 1 ? ia_threadpool_create(threads) : NULL;
    int32_t *toks = malloc(ctx * sizeof *toks);
    float *logits = malloc((size_t)cfg->vocab_size * sizeof *logits);
    if (!toks || !logits)
        return fprintf(stderr, "bench_generate_engine: out of memory\n"), 1;
    for (size_t i = 0; i < ctx; i++)
        toks[i] = bench_token(i, cfg->vocab_size);

    double pp_s[100], tg_s[100];
    ia_status st = IA_OK;
    if (pp > 0) {
        if (warmup || out_logits)
            run_pp(dec, kv, toks, (size_t)pp, logits, pool, &st);
        if (st != IA_OK)
            return fail("pp");
        if (out_logits) {
            FILE *f = fopen(out_logits, "wb");
            if (!f || fwrite(logits, sizeof *logits, (size_t)cfg->vocab_size, f) !=
                          (size_t)cfg->vocab_size) {
                fprintf(stderr, "bench_generate_engine: cannot write %s\n", out_logits);
                return 1;
            }
            fclose(f);
        }
        for (int r = 0; r < reps && st == IA_OK; r++)
            pp_s[r] = run_pp(dec, kv, toks, (size_t)pp, logits, pool, &st);
    }
    if (tg > 0 && st == IA_OK) {
        if (warmup)
            run_tg(dec, kv, toks, 1, logits, pool, &st);
        for (int r = 0; r < reps && st == IA_OK; r++)
            tg_s[r] = run_tg(dec, kv, toks, (size_t)tg, logits, pool, &st);
    }
    if (st != IA_OK)
        return fail("forward");

    printf("{\"engine\": \"ours\", \"dtype\": \"%s\", \"kv\": \"%s\", \"threads\": %d, "
           "\"backend\": \"%s\", \"load_seconds\": %.3f, \"pp\": %d, \"tg\": %d",
           ia_dtype_name(dtype), ia_dtype_name(kv_dtype), threads, ia_backend_cpu()->name, t_load,
           pp, tg);
    double sorted[100];
    if (pp > 0) {
        print_list("pp_seconds", pp_s, reps);
        memcpy(sorted, pp_s, (size_t)reps * sizeof *sorted);
        qsort(sorted, (size_t)reps, sizeof *sorted, cmp_double);
        printf(", \"pp_tokens_per_s\": %.4f", pp / sorted[reps / 2]);
    }
    if (tg > 0) {
        print_list("tg_seconds", tg_s, reps);
        memcpy(sorted, tg_s, (size_t)reps * sizeof *sorted);
        qsort(sorted, (size_t)reps, sizeof *sorted, cmp_double);
        printf(", \"tg_tokens_per_s\": %.4f", tg / sorted[reps / 2]);
    }
    printf("}\n");
    free(toks);
    free(logits);
    ia_threadpool_destroy(pool);
    ia_kv_cache_free(kv);
    ia_decoder_free(dec);
    return 0;
}
