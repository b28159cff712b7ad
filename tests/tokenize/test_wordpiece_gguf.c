/*
 * WordPiece from a GGUF vocabulary: all-MiniLM-L6-v2's vocabulary as
 * llama.cpp's convert_hf_to_gguf.py writes it (--vocab-only, phantom-space
 * form; tests/fixtures/bert_gguf/minilm-vocab-llamacpp.gguf, made by
 * tools/make_bert_gguf_fixtures.py) must tokenise the ~20k-line corpus to
 * exactly HF's ids (tests/fixtures/tokenizer/expected-minilm.txt), the same
 * as the model's own tokenizer.json does in test_tokenizer.c. Also: the
 * vocabulary comes back in HF's "##" form, the special ids are llama.cpp's,
 * and normaliser switches in the metadata take effect.
 */
#include "test.h"

#include "ia/formats.h"
#include "ia/runtime.h"
#include "ia/tokenize.h"

#include <unistd.h>

#define FIX "tests/fixtures/tokenizer/"
#define VOCAB "tests/fixtures/bert_gguf/minilm-vocab-llamacpp.gguf"

#include "test_lines.h"

static bool same_ids(const ia_encoding *e, const char *want) {
    char *p = (char *)want;
    for (size_t i = 0; i < e->len; i++) {
        char *q;
        long v = strtol(p, &q, 10);
        if (q == p || v != e->ids[i])
            return false;
        p = q;
    }
    while (*p == ' ')
        p++;
    return *p == '\0';
}

static ia_tokenizer *load(const char *rel) {
    ia_gguf *g = NULL;
    ia_tokenizer *tok = NULL;
    CHECK_OK(ia_gguf_open(test_source_path(rel), &g));
    if (g)
        CHECK_OK(ia_tokenizer_from_gguf(g, &tok));
    ia_gguf_close(g);
    return tok;
}

TEST(minilm_gguf_vocab_corpus_parity) {
    ia_tokenizer *tok = load(VOCAB);
    lines corpus, want;
    if (!tok)
        return;
    if (!read_lines(test_source_path(FIX "corpus.txt"), &corpus)) {
        ia_tokenizer_free(tok);
        CHECK(false);
        return;
    }
    if (!read_lines(test_source_path(FIX "expected-minilm.txt"), &want)) {
        free_lines(&corpus);
        ia_tokenizer_free(tok);
        CHECK(false);
        return;
    }
    CHECK_EQ_INT(corpus.n, want.n);
    CHECK(corpus.n > 20000);
    size_t bad = 0;
    ia_encode_options opts = ia_encode_options_default();
    for (size_t i = 0; i < corpus.n && i < want.n; i++) {
        ia_encoding e;
        ia_status st = ia_tokenizer_encode(tok, corpus.line[i], corpus.len[i], NULL, 0, &opts, &e);
        if (st != IA_OK || !same_ids(&e, want.line[i])) {
            if (bad++ < 5)
                fprintf(stderr, "  line %zu differs: \"%.100s\"\n", i + 1, corpus.line[i]);
        }
        if (st == IA_OK)
            ia_encoding_free(&e);
    }
    fprintf(stderr, "  %zu of %zu corpus lines differ from HF\n", bad, corpus.n);
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(ia_tokenizer_vocab_size(tok), 30522);
    CHECK_EQ_INT(ia_tokenizer_token_to_id(tok, "[CLS]"), 101);
    CHECK_EQ_INT(ia_tokenizer_token_to_id(tok, "##ing"), 2075);
    CHECK_EQ_INT(ia_tokenizer_token_to_id(tok, "the"), 1996);
    CHECK_EQ_INT(ia_tokenizer_token_to_id(tok, "\xe2\x96\x81the"), -1);
    free_lines(&corpus);
    free_lines(&want);
    ia_tokenizer_free(tok);
}

/* tokenizer.ggml.normalizer.lowercase false: case (and accents) kept. */
TEST(normalizer_switches_from_metadata) {
    ia_gguf *g = NULL;
    ia_gguf_writer *w = NULL;
    char out[] = "/tmp/ia-test-wpm-XXXXXX";
    int fd = mkstemp(out);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    close(fd);
    CHECK_OK(ia_gguf_open(test_source_path(VOCAB), &g));
    CHECK_OK(ia_gguf_writer_create(&w));
    for (size_t i = 0; g && w && i < ia_gguf_kv_count(g); i++) {
        const char *key = ia_gguf_kv_key(g, i);
        if (strcmp(key, "tokenizer.ggml.normalizer.lowercase") != 0)
            CHECK_OK(ia_gguf_writer_add_value(w, key, ia_gguf_kv_value(g, i)));
    }
    if (w) {
        CHECK_OK(ia_gguf_writer_add_bool(w, "tokenizer.ggml.normalizer.lowercase", false));
        CHECK_OK(ia_gguf_writer_write(w, out));
    }
    ia_gguf_writer_free(w);
    ia_gguf_close(g);
    ia_gguf *g2 = NULL;
    ia_tokenizer *cased = NULL, *lower = load(VOCAB);
    CHECK_OK(ia_gguf_open(out, &g2));
    if (g2)
        CHECK_OK(ia_tokenizer_from_gguf(g2, &cased));
    ia_gguf_close(g2);
    if (cased && lower) {
        ia_encode_options o = ia_encode_options_default();
        ia_encoding a, b;
        CHECK_OK(ia_tokenizer_encode(lower, "Hello", 5, NULL, 0, &o, &a));
        CHECK_OK(ia_tokenizer_encode(cased, "Hello", 5, NULL, 0, &o, &b));
        /* [CLS] hello [SEP] vs [CLS] [UNK]-free pieces of "Hello" (no "Hello" in
         * an uncased vocabulary) */
        CHECK(a.len == 3 && a.ids[1] == 7592);
        CHECK(b.len >= 3 && b.ids[1] != 7592);
        ia_encoding_free(&a);
        ia_encoding_free(&b);
    }
    ia_tokenizer_free(cased);
    ia_tokenizer_free(lower);
    unlink(out);
}
