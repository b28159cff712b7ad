/*
 * Real vocabularies against llama.cpp: the vocab-only GGUF files llama.cpp
 * ships (models/ggml-vocab-*.gguf, copied to tests/fixtures/llama_vocab/
 * from the llama-cpp-python 0.3.36 sdist) come with .inp/.out pairs: inputs
 * separated by "\n__ggml_vocab_test__\n", one line of expected ids per input.
 * llama.cpp's tests/test-tokenizer-0.cpp tokenizes each input with
 * add_special false and parse_special false, so the ids carry no BOS and
 * special tokens are never matched; the .out files themselves were written
 * by its test-tokenizer-0.py from HF `tokenizers`.
 *
 * For every committed vocabulary, ia_tokenizer_from_gguf must give exactly
 * the expected ids for every input (mismatches are printed with both id
 * lists), and decoding the expected ids must give the input back (llama.cpp's
 * test-tokenizer-1-* check that round trip token by token).
 *
 * IA_LLAMA_VOCAB_DIR=<llama.cpp>/models runs the same check on the
 * vocabularies of that directory that are not committed (together about
 * 29 MB: phi-3, deepseek-coder, deepseek-llm, falcon, mpt, refact,
 * starcoder, command-r, qwen35) and checks that the ones of a type we do not
 * implement are refused naming it. Synthetic files check that refusal for
 * WordPiece, Unigram, RWKV and unknown types and an unknown pre-tokenizer,
 * and llama.cpp's add_space_prefix flag on a SentencePiece vocabulary.
 */
#define _GNU_SOURCE
#include "test.h"
#include "test_fs.h"

#include "ia/formats.h"
#include "ia/runtime.h"

/* The committed vocabularies (tests/fixtures/llama_vocab/ggml-vocab-NAME.gguf). */
static const char *const committed[] = {"llama-spm", "gpt-2", "llama-bpe", "qwen2"};

/* Vocabularies we claim when IA_LLAMA_VOCAB_DIR supplies them. */
static const char *const claimed[] = {
    "llama-spm", "phi-3", "gpt-2",  "llama-bpe", "qwen2",     "deepseek-coder", "deepseek-llm",
    "falcon",    "mpt",   "refact", "starcoder", "command-r", "qwen35"};

/* Vocabularies of llama.cpp's tree whose type we do not implement, with the
 * type their refusal must name. */
static const struct {
    const char *name, *needle;
} refused[] = {
    {"nomic-bert-moe", "model 't5' (tokenizer.ggml.model) is not supported yet (Unigram"},
    {"gemma-4", "model 'gemma4'"},
};

#define SEP "\n__ggml_vocab_test__\n"

typedef struct vocab_case {
    char *text;
    size_t len;
    int32_t *ids;
    size_t n_ids;
} vocab_case;

static char *read_file(const char *path, size_t *len) {
    char *text = NULL;
    if (ia_file_read_all(path, (size_t)64 << 20, &text, len) != IA_OK) {
        fprintf(stderr, "  %s: %s\n", path, ia_error_message());
        return NULL;
    }
    return text;
}

/* Splits .inp at the separators (the text after the last one is dropped when
 * empty, as llama.cpp's reader does) and pairs each input with its .out line. */
static vocab_case *read_cases(const char *gguf_path, size_t *n_cases) {
    char inp_path[4200], out_path[4200];
    snprintf(inp_path, sizeof inp_path, "%s.inp", gguf_path);
    snprintf(out_path, sizeof out_path, "%s.out", gguf_path);
    size_t ilen = 0, olen = 0, n = 0, cap = 0;
    char *inp = read_file(inp_path, &ilen), *out = read_file(out_path, &olen);
    vocab_case *cases = NULL;
    *n_cases = 0;
    if (!inp || !out)
        goto done;
    for (size_t pos = 0; pos < ilen;) {
        char *next = memmem(inp + pos, ilen - pos, SEP, sizeof SEP - 1);
        size_t end = next ? (size_t)(next - inp) : ilen;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            cases = realloc(cases, cap * sizeof *cases);
        }
        cases[n].text = ia_strndup(inp + pos, end - pos);
        cases[n].len = end - pos;
        cases[n].ids = NULL;
        cases[n].n_ids = 0;
        n++;
        pos = next ? end + sizeof SEP - 1 : ilen;
    }
    size_t line = 0;
    for (char *p = out, *e = out + olen; p < e && line < n; line++) {
        char *nl = memchr(p, '\n', (size_t)(e - p));
        char *stop = nl ? nl : e;
        vocab_case *c = &cases[line];
        c->ids = malloc((size_t)(stop - p) * sizeof *c->ids + sizeof *c->ids);
        for (char *q = p; q < stop;) {
            char *end;
            long v = strtol(q, &end, 10);
            if (end == q)
                break;
            c->ids[c->n_ids++] = (int32_t)v;
            q = end;
        }
        p = stop + 1;
    }
    CHECK_MSG(line == n, "%s: %zu inputs but %zu output lines", gguf_path, n, line);
    *n_cases = n;
done:
    free(inp);
    free(out);
    return cases;
}

static void free_cases(vocab_case *c, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(c[i].text);
        free(c[i].ids);
    }
    free(c);
}

static void print_ids(const char *label, const int32_t *ids, size_t n) {
    fprintf(stderr, "    %s:", label);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

/* Decoding the expected ids must give the input back: byte-level BPE is
 * lossless, and SentencePiece's decoder strips only the space its
 * normaliser prepended. */
static bool decodes_back(const ia_tokenizer *tok, const vocab_case *c, const char *name, size_t k) {
    char *text = NULL;
    size_t len = 0;
    ia_status st = ia_tokenizer_decode(tok, c->ids, c->n_ids, false, &text, &len);
    CHECK_MSG(st == IA_OK, "%s input %zu: decode: %s", name, k, ia_error_message());
    const char *want = c->text;
    size_t want_len = c->len;
    bool same = st == IA_OK && len == want_len && memcmp(text, want, len) == 0;
    if (!same)
        fprintf(stderr, "  %s input %zu: decode gave '%s', wanted '%.*s'\n", name, k,
                text ? text : "", (int)want_len, want);
    free(text);
    return same;
}

/* Checks one vocabulary; returns the number of inputs that matched. */
static size_t check_vocab(const char *path, const char *name) {
    ia_gguf *g = NULL;
    ia_tokenizer *tok = NULL;
    size_t n = 0, ok = 0, round_ok = 0;
    vocab_case *cases = NULL;
    ia_status st = ia_gguf_open(path, &g);
    CHECK_MSG(st == IA_OK, "%s: %s", path, ia_error_message());
    if (st != IA_OK)
        return 0;
    st = ia_tokenizer_from_gguf(g, &tok);
    CHECK_MSG(st == IA_OK, "%s: %s", name, ia_error_message());
    if (st == IA_OK && (cases = read_cases(path, &n))) {
        ia_encode_options o = ia_encode_options_default();
        o.add_special_tokens = false;
        for (size_t k = 0; k < n; k++) {
            ia_encoding enc = {0};
            vocab_case *c = &cases[k];
            st = ia_tokenizer_encode(tok, c->text, c->len, NULL, 0, &o, &enc);
            bool same = st == IA_OK && enc.len == c->n_ids &&
                        memcmp(enc.ids, c->ids, c->n_ids * sizeof *c->ids) == 0;
            if (!same) {
                fprintf(stderr, "  %s input %zu '%s': ids differ from llama.cpp\n", name, k,
                        c->text);
                print_ids("expected", c->ids, c->n_ids);
                if (st == IA_OK)
                    print_ids("got     ", enc.ids, enc.len);
                else
                    fprintf(stderr, "    got an error: %s\n", ia_error_message());
            }
            ok += same;
            round_ok += decodes_back(tok, c, name, k);
            ia_encoding_free(&enc);
        }
        CHECK_MSG(ok == n, "%s: %zu of %zu inputs give llama.cpp's ids", name, ok, n);
        CHECK_MSG(round_ok == n, "%s: %zu of %zu inputs decode back", name, round_ok, n);
        fprintf(stderr, "  %s: %zu/%zu inputs identical, %zu/%zu decode back\n", name, ok, n,
                round_ok, n);
    }
    free_cases(cases, n);
    ia_tokenizer_free(tok);
    ia_gguf_close(g);
    return ok;
}

TEST(committed_vocabularies_match_llama_cpp) {
    for (size_t i = 0; i < sizeof committed / sizeof committed[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "tests/fixtures/llama_vocab/ggml-vocab-%s.gguf", committed[i]);
        check_vocab(test_source_path(rel), committed[i]);
    }
}

TEST(more_vocabularies_from_llama_cpp_tree) {
    const char *dir = getenv("IA_LLAMA_VOCAB_DIR");
    if (!dir || !*dir)
        SKIP("IA_LLAMA_VOCAB_DIR is not set (point it at llama.cpp's models/ directory to "
             "check the vocabularies too big to commit)");
    size_t found = 0;
    for (size_t i = 0; i < sizeof claimed / sizeof claimed[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/ggml-vocab-%s.gguf", dir, claimed[i]);
        if (access(path, R_OK) != 0)
            continue;
        found++;
        check_vocab(path, claimed[i]);
    }
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/ggml-vocab-%s.gguf", dir, refused[i].name);
        ia_gguf *g = NULL;
        if (access(path, R_OK) != 0 || ia_gguf_open(path, &g) != IA_OK)
            continue;
        found++;
        ia_tokenizer *tok = NULL;
        CHECK_ERR(ia_tokenizer_from_gguf(g, &tok), IA_EUNSUPPORTED, refused[i].needle);
        fprintf(stderr, "  %s: refused: %s\n", refused[i].name, ia_error_message());
        ia_tokenizer_free(tok);
        ia_gguf_close(g);
    }
    CHECK_MSG(found > 0, "%s holds none of the ggml-vocab-*.gguf files", dir);
}

/* The llama-spm vocabulary with tokenizer.ggml.add_space_prefix = value. */
static ia_status write_space_prefix(const char *path, bool value) {
    ia_gguf *g = NULL;
    ia_gguf_writer *w = NULL;
    ia_status st =
        ia_gguf_open(test_source_path("tests/fixtures/llama_vocab/ggml-vocab-llama-spm.gguf"), &g);
    if (st == IA_OK)
        st = ia_gguf_writer_create(&w);
    for (size_t i = 0; st == IA_OK && i < ia_gguf_kv_count(g); i++)
        st = ia_gguf_writer_add_value(w, ia_gguf_kv_key(g, i), ia_gguf_kv_value(g, i));
    if (st == IA_OK)
        st = ia_gguf_writer_add_bool(w, "tokenizer.ggml.add_space_prefix", value);
    if (st == IA_OK)
        st = ia_gguf_writer_write(w, path);
    ia_gguf_writer_free(w);
    ia_gguf_close(g);
    return st;
}

/* add_space_prefix false (llama.cpp's flag for SentencePiece models whose
 * normaliser adds no dummy prefix): "Hello" is the bare piece, not
 * "\u2581Hello", and decoding keeps a leading space of the text. */
TEST(space_prefix_flag) {
    for (int value = 0; value < 2; value++) {
        const char *path = scratch_path("spm.gguf");
        CHECK_OK(write_space_prefix(path, value));
        ia_gguf *g = NULL;
        ia_tokenizer *tok = NULL;
        CHECK_OK(ia_gguf_open(path, &g));
        if (g)
            CHECK_OK(ia_tokenizer_from_gguf(g, &tok));
        if (tok) {
            int32_t want[2] = {ia_tokenizer_token_to_id(tok, value ? "\xe2\x96\x81Hello" : "Hello"),
                               ia_tokenizer_token_to_id(tok, "\xe2\x96\x81world")};
            CHECK(want[0] >= 0 && want[1] >= 0);
            ia_encode_options o = ia_encode_options_default();
            o.add_special_tokens = false;
            ia_encoding enc = {0};
            CHECK_OK(ia_tokenizer_encode(tok, "Hello world", 11, NULL, 0, &o, &enc));
            CHECK_MSG(enc.len == 2 && enc.ids[0] == want[0] && enc.ids[1] == want[1],
                      "add_space_prefix %d: got %zu ids, first %d", value, enc.len,
                      enc.len ? enc.ids[0] : -1);
            ia_encoding_free(&enc);
            /* " world" alone: with the prefix the decoder strips the one space
             * it added; without it the space is the text's own */
            char *text = NULL;
            size_t len = 0;
            CHECK_OK(ia_tokenizer_decode(tok, &want[1], 1, false, &text, &len));
            CHECK_MSG(text && strcmp(text, value ? "world" : " world") == 0,
                      "add_space_prefix %d: decoded '%s'", value, text ? text : "");
            free(text);
        }
        ia_tokenizer_free(tok);
        ia_gguf_close(g);
        remove(path);
    }
}

/* A vocabulary-only GGUF with tokenizer.ggml.model = model and three tokens. */
static ia_status write_vocab(const char *path, const char *model, const char *pre) {
    static const char *const tokens[] = {"[UNK]", "a", "b"};
    ia_gguf_writer *w = NULL;
    ia_status st = ia_gguf_writer_create(&w);
    if (st == IA_OK)
        st = ia_gguf_writer_add_string(w, "tokenizer.ggml.model", model, strlen(model));
    if (st == IA_OK && pre)
        st = ia_gguf_writer_add_string(w, "tokenizer.ggml.pre", pre, strlen(pre));
    if (st == IA_OK)
        st = ia_gguf_writer_add_string_array(w, "tokenizer.ggml.tokens", tokens, 3);
    if (st == IA_OK)
        st = ia_gguf_writer_write(w, path);
    ia_gguf_writer_free(w);
    return st;
}

TEST(unsupported_vocabulary_types_are_named) {
    static const struct {
        const char *model, *pre, *needle;
    } cases[] = {
        {"plamo2", NULL, "model 'plamo2' (tokenizer.ggml.model) is not supported yet (PLaMo-2"},
        {"t5", NULL,
         "model 't5' (tokenizer.ggml.model) is not supported yet (Unigram, llama.cpp's UGM)"},
        {"rwkv", NULL, "model 'rwkv' (tokenizer.ggml.model) is not supported yet (RWKV"},
        {"bpe2", NULL, "model 'bpe2' (tokenizer.ggml.model) is not supported yet (unknown"},
        {"gpt2", "no-such-pre", "pre-tokenizer 'no-such-pre' (tokenizer.ggml.pre)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = scratch_path("vocab.gguf");
        CHECK_OK(write_vocab(path, cases[i].model, cases[i].pre));
        ia_gguf *g = NULL;
        CHECK_OK(ia_gguf_open(path, &g));
        ia_tokenizer *tok = (ia_tokenizer *)g;
        if (g)
            CHECK_ERR(ia_tokenizer_from_gguf(g, &tok), IA_EUNSUPPORTED, cases[i].needle);
        CHECK(tok == NULL);
        ia_gguf_close(g);
        remove(path);
    }
}
