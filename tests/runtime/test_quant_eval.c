/*
 * quantize --eval's measures (src/runtime/quant_eval.c): a model against
 * itself scores KL 0, the same top token everywhere and equal perplexities;
 * against its Q8_0 and Q2_K files the KL grows with the lost bits and the
 * top-token agreement falls; the embedding measure on the real MiniLM keeps
 * Q8_0 within the bound (mean cosine >= 0.9995) on the bench
 * sentences, and Q4_0 measurably below it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ia/runtime.h"
#include "test.h"

#define DIR "tests/fixtures/quant_interop/"

static char *read_text(const char *rel, size_t max, size_t *len) {
    char *text = NULL;
    CHECK_OK(ia_file_read_all(test_source_path(rel), 64u << 20, &text, len));
    if (text && *len > max)
        *len = max;
    return text;
}

TEST(lm_against_itself_and_quantised) {
    size_t len = 0;
    char *text = read_text("bench/data/sentences.txt", 6000, &len);
    if (!text)
        return;
    char base[4096];
    snprintf(base, sizeof base, "%s", test_source_path(DIR "model-f16.gguf"));
    ia_quant_eval_options o = {.window = 96, .max_tokens = 400, .n_threads = 2};
    ia_quant_eval_lm_result self, q8, q2;
    CHECK_OK(ia_quant_eval_lm(base, IA_DTYPE_F32, base, IA_DTYPE_F32, text, len, &o, &self));
    CHECK_OK(ia_quant_eval_lm(base, IA_DTYPE_F32, test_source_path(DIR "ours-q8_0.gguf"),
                              IA_DTYPE_F32, text, len, &o, &q8));
    CHECK_OK(ia_quant_eval_lm(base, IA_DTYPE_F32, test_source_path(DIR "ours-q2_k.gguf"),
                              IA_DTYPE_F32, text, len, &o, &q2));
    fprintf(stderr,
            "  self: n %zu KL %.3g same %.3f | q8_0: KL %.3g same %.3f | q2_k: KL %.3g "
            "same %.3f\n",
            self.n_scored, self.kl_mean, self.same_top, q8.kl_mean, q8.same_top, q2.kl_mean,
            q2.same_top);
    CHECK(self.n_scored > 300 && self.n_scored <= 400);
    CHECK(self.kl_mean == 0.0 && self.kl_max == 0.0);
    CHECK(self.same_top == 1.0);
    CHECK(self.ppl_base == self.ppl_quant && isfinite(self.ppl_base) && self.ppl_base > 1.0);
    CHECK(q8.kl_mean > 0.0 && q8.kl_mean < 0.05 && q8.same_top > 0.9);
    CHECK(q2.kl_mean > 10 * q8.kl_mean && q2.same_top < q8.same_top);
    CHECK(q8.ppl_base == self.ppl_base);
    free(text);

    ia_quant_eval_lm_result r;
    CHECK_ERR(ia_quant_eval_lm(base, IA_DTYPE_F32, base, IA_DTYPE_F32, "", 0, &o, &r), IA_EINVAL,
              "at least 2 are needed");
}

TEST(embeddings_q8_0_and_q4_0) {
    const char *model = getenv("IA_DEFAULT_MODEL");
    if (!model || !*model)
        SKIP("IA_DEFAULT_MODEL is not set (make test sets it)");
    ia_text_lines tl;
    CHECK_OK(ia_text_lines_read(test_source_path("bench/data/sentences.txt"), 64u << 20, &tl));
    size_t n = tl.n < 64 ? tl.n : 64;
    ia_quant_eval_options o = {.n_threads = 2};
    ia_quant_eval_embed_result q8, q4;
    CHECK_OK(ia_quant_eval_embed(model, IA_DTYPE_Q8_0, (const char *const *)tl.lines, n, &o, &q8));
    CHECK_OK(ia_quant_eval_embed(model, IA_DTYPE_Q4_0, (const char *const *)tl.lines, n, &o, &q4));
    fprintf(stderr, "  q8_0: cos mean %.6f min %.6f rho %.6f | q4_0: cos mean %.6f rho %.6f\n",
            q8.cos_mean, q8.cos_min, q8.spearman, q4.cos_mean, q4.spearman);
    CHECK(q8.n == n && q8.n_pairs == n * (n - 1) / 2);
    CHECK(q8.cos_mean >= 0.9995 && q8.cos_mean < 1.0);
    CHECK(q8.spearman > 0.999);
    CHECK(q4.cos_mean < q8.cos_mean && q4.cos_mean > 0.9);
    ia_text_lines_free(&tl);
}
