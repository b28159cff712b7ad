/*
 * The decoder's batch step (ia_decoder_forward_batch) against each sequence
 * run alone (ia_decoder_forward, one token per call): sequences with prompts
 * of different lengths, and so different positions, step together while
 * some leave and rejoin and the batch order changes, and every row's logits
 * must be bit for bit those of the same token run alone. Covered: every
 * architecture row of tests/fixtures/decoder_logits (learned positions,
 * RoPE, GQA, sliding window, QKV bias) with f32 weights on every CPU
 * variant the machine has, f16 and bf16 weights, weights
 * quantised at load (Q8_0, Q4_0), llama.cpp's Q4_K_M file of
 * tests/fixtures/quant_interop (mixed K-quant types), f16 and q8_0 KV
 * caches, batches of 1 to 8. Then the errors: a cache given twice, a full
 * cache (the message names the sequence, no cache changes).
 */
#include <math.h>

#include "ia/models.h"
#include "test.h"

#define MAX_SEQS 8
#define STEPS 12

/* 0: bit for bit (the kernels' products do not depend on the row count).
 * -DTOLERANCE=x compares within x instead, for a backend whose do. */
#ifndef TOLERANCE
#define TOLERANCE 0.0
#endif

static const char *fixture(const char *rel) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s", test_source_path(rel));
    return buf;
}

/* A deterministic token for sequence i at step t (not sampled: the test
 * must keep going whatever the logits are). */
static int32_t token_for(size_t i, size_t t, size_t vocab) {
    return (int32_t)((t * 31 + i * 17 + 5) % vocab);
}

/* Sequence i is in the batch of step t unless it sits this one out: every
 * sequence leaves and rejoins, and the batch size varies. */
static bool active(size_t i, size_t t) { return (t + i) % 5 != 4; }

/* Runs n sequences both ways and returns the largest |difference| of any
 * logit; *bits_equal tells whether every row was bit for bit the same. */
static double batch_vs_solo(const ia_decoder *dec, ia_dtype kv_type, size_t n, ia_threadpool *pool,
                            bool *bits_equal) {
    const ia_decoder_config *c = ia_decoder_get_config(dec);
    size_t vocab = (size_t)c->vocab_size;
    ia_kv_cache *solo[MAX_SEQS] = {0}, *bat[MAX_SEQS] = {0};
    float *ls = malloc(vocab * sizeof *ls), *lb = malloc(MAX_SEQS * vocab * sizeof *lb);
    double worst = 0;
    *bits_equal = true;
    for (size_t i = 0; i < n; i++) {
        CHECK_OK(ia_kv_cache_create(dec, 0, kv_type, &solo[i]));
        CHECK_OK(ia_kv_cache_create(dec, 0, kv_type, &bat[i]));
        if (!solo[i] || !bat[i])
            goto done;
        /* prompts of 2, 7, 12, ... tokens: every sequence at its own position */
        int32_t prompt[48];
        size_t len = 2 + 5 * i;
        for (size_t k = 0; k < len; k++)
            prompt[k] = (int32_t)((k * 7 + i * 13 + 1) % vocab);
        CHECK_OK(ia_decoder_forward(dec, solo[i], prompt, len, false, ls, pool));
        CHECK_OK(ia_decoder_forward(dec, bat[i], prompt, len, false, lb, pool));
    }
    for (size_t t = 0; t < STEPS; t++) {
        ia_kv_cache *kvs[MAX_SEQS];
        int32_t toks[MAX_SEQS];
        size_t who[MAX_SEQS], m = 0;
        for (size_t k = 0; k < n; k++) {
            size_t i = t % 2 ? n - 1 - k : k; /* the order changes every step */
            if (!active(i, t))
                continue;
            who[m] = i;
            kvs[m] = bat[i];
            toks[m++] = token_for(i, t, vocab);
        }
        if (m == 0)
            continue;
        ia_status st = ia_decoder_forward_batch(dec, kvs, toks, m, lb, pool);
        CHECK_MSG(st == IA_OK, "step %zu: %s", t, ia_error_message());
        if (st != IA_OK)
            break;
        for (size_t r = 0; r < m; r++) {
            size_t i = who[r];
            CHECK_OK(ia_decoder_forward(dec, solo[i], &toks[r], 1, false, ls, pool));
            CHECK_EQ_INT(ia_kv_cache_length(bat[i]), ia_kv_cache_length(solo[i]));
            const float *row = lb + r * vocab;
            if (memcmp(row, ls, vocab * sizeof *ls) != 0)
                *bits_equal = false;
            for (size_t v = 0; v < vocab; v++)
                worst = fmax(worst, fabs((double)row[v] - ls[v]));
        }
    }
done:
    for (size_t i = 0; i < n; i++) {
        ia_kv_cache_free(solo[i]);
        ia_kv_cache_free(bat[i]);
    }
    free(ls);
    free(lb);
    return worst;
}

/* Every batch size 1..8 on one model: each must be bit-identical to the
 * solo runs. */
static void check_variant(const char *label, const char *path, const ia_backend *be,
                          ia_dtype compute, ia_dtype kv_type, ia_threadpool *pool) {
    ia_decoder *dec = NULL;
    CHECK_OK(ia_decoder_load(path, be, compute, &dec));
    if (!dec)
        return;
    static const size_t sizes[] = {1, 2, 3, 4, 5, 8};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        bool same = false;
        double worst = batch_vs_solo(dec, kv_type, sizes[s], pool, &same);
        if (!same || s + 1 == sizeof sizes / sizeof sizes[0])
            fprintf(stderr, "  %-26s %-11s weights %-5s kv %-5s %zu seqs: %s (max |diff| %.3g)\n",
                    label, be->name, ia_dtype_name(compute), ia_dtype_name(kv_type), sizes[s],
                    same ? "bit-identical" : "DIFFERENT", worst);
        CHECK_MSG(TOLERANCE > 0 ? worst <= TOLERANCE : same,
                  "%s on %s, %s weights, %s KV, %zu sequences: batch logits differ from solo "
                  "(max |diff| %g)",
                  label, be->name, ia_dtype_name(compute), ia_dtype_name(kv_type), sizes[s], worst);
    }
    ia_decoder_free(dec);
}

static void check_model(const char *label, const char *path, ia_dtype compute, ia_dtype kv_type,
                        ia_threadpool *pool) {
    check_variant(label, path, ia_backend_cpu(), compute, kv_type, pool);
}

static const char *const archs[] = {"tiny-gpt2",         "tiny-llama",   "tiny-llama3",
                                    "tiny-llama-linear", "tiny-mistral", "tiny-qwen2"};

/* f32 weights on every CPU variant this machine runs. */
TEST(batch_step_equals_solo_f32_weights) {
    static const char *const variants[] = {"generic", "avx2", "avx512"};
    ia_threadpool *pool = ia_threadpool_create(2);
    for (size_t v = 0; v < 3; v++) {
        const ia_backend *be = ia_backend_cpu_variant(variants[v]);
        if (!be) {
            fprintf(stderr, "  variant %s skipped (CPU lacks it)\n", variants[v]);
            continue;
        }
        for (size_t a = 0; a < sizeof archs / sizeof archs[0]; a++) {
            char rel[128];
            snprintf(rel, sizeof rel, "tests/fixtures/decoder_logits/%s", archs[a]);
            check_variant(archs[a], fixture(rel), be, IA_DTYPE_F32, IA_DTYPE_F32, pool);
        }
    }
    ia_threadpool_destroy(pool);
}

TEST(batch_step_equals_solo_f16_weights_and_kv) {
    ia_threadpool *pool = ia_threadpool_create(2);
    check_model("tiny-llama", fixture("tests/fixtures/decoder_logits/tiny-llama"), IA_DTYPE_F16,
                IA_DTYPE_F32, pool);
    check_model("tiny-gpt2", fixture("tests/fixtures/decoder_logits/tiny-gpt2"), IA_DTYPE_F16,
                IA_DTYPE_F16, pool);
    check_model("tiny-mistral", fixture("tests/fixtures/decoder_logits/tiny-mistral"),
                IA_DTYPE_BF16, IA_DTYPE_F16, pool);
    ia_threadpool_destroy(pool);
}

TEST(batch_step_equals_solo_quantised) {
    ia_threadpool *pool = ia_threadpool_create(2);
    check_model("tiny-llama (q8_0 at load)", fixture("tests/fixtures/decoder_logits/tiny-llama"),
                IA_DTYPE_Q8_0, IA_DTYPE_F32, pool);
    check_model("tiny-qwen2 (q4_0 at load)", fixture("tests/fixtures/decoder_logits/tiny-qwen2"),
                IA_DTYPE_Q4_0, IA_DTYPE_F32, pool);
    /* llama.cpp's Q4_K_M mix (Q4_K, Q6_K; V at more bits than Q and K) with
     * an int8 KV cache */
    check_model("llamacpp-q4_k_m.gguf",
                fixture("tests/fixtures/quant_interop/llamacpp-q4_k_m.gguf"), IA_DTYPE_F32,
                IA_DTYPE_Q8_0, pool);
    ia_threadpool_destroy(pool);
}

TEST(batch_step_errors_leave_caches_alone) {
    ia_decoder *dec = NULL;
    CHECK_OK(ia_decoder_load(fixture("tests/fixtures/decoder_logits/tiny-llama"), ia_backend_cpu(),
                             IA_DTYPE_F32, &dec));
    if (!dec)
        return;
    size_t vocab = (size_t)ia_decoder_get_config(dec)->vocab_size;
    ia_kv_cache *a = NULL, *b = NULL;
    CHECK_OK(ia_kv_cache_create(dec, 4, IA_DTYPE_F32, &a));
    CHECK_OK(ia_kv_cache_create(dec, 8, IA_DTYPE_F32, &b));
    float *logits = malloc(2 * vocab * sizeof *logits);
    int32_t four[4] = {1, 2, 3, 4}, toks[2] = {5, 6};
    if (a && b && logits) {
        CHECK_OK(ia_decoder_forward(dec, a, four, 4, false, logits, NULL));
        CHECK_OK(ia_decoder_forward(dec, b, four, 2, false, logits, NULL));
        ia_kv_cache *same[2] = {b, b};
        CHECK_ERR(ia_decoder_forward_batch(dec, same, toks, 2, logits, NULL), IA_EINVAL,
                  "share one KV cache");
        ia_kv_cache *full[2] = {b, a}; /* a holds its 4 tokens: no room */
        CHECK_ERR(ia_decoder_forward_batch(dec, full, toks, 2, logits, NULL), IA_ERANGE,
                  "sequence 1 of 2");
        CHECK_EQ_INT(ia_kv_cache_length(a), 4);
        CHECK_EQ_INT(ia_kv_cache_length(b), 2);
        int32_t bad[2] = {5, (int32_t)vocab};
        ia_kv_cache *two[2] = {b, a};
        ia_kv_cache_reset(a);
        CHECK_ERR(ia_decoder_forward_batch(dec, two, bad, 2, logits, NULL), IA_ERANGE,
                  "outside the vocabulary");
        CHECK_ERR(ia_decoder_forward_batch(dec, two, toks, 0, logits, NULL), IA_EINVAL,
                  "no sequences");
        CHECK_EQ_INT(ia_kv_cache_length(b), 2);
    }
    free(logits);
    ia_kv_cache_free(a);
    ia_kv_cache_free(b);
    ia_decoder_free(dec);
}
