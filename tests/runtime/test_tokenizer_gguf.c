/*
 * ia_tokenizer_from_gguf: the tokenizer a GGUF's tokenizer.ggml.* metadata
 * describes. For each tests/fixtures/decoders/<arch>/model.gguf the
 * tokenizer metadata alone (tensors stripped, as the fuzzer's seeds hold it)
 * must encode every fixture prompt to transformers' ids; then broken copies,
 * one fault each (tokens of the wrong type, an empty vocabulary, merges
 * naming unknown tokens, token types out of range, per-token arrays of the
 * wrong length, special ids past the vocabulary, ...), must fail with the
 * right status and a message naming the file and the key.
 *
 * IA_TOKENIZER_GGUF_CORPUS=dir also writes every file built here into dir:
 * that is how fuzz/corpus/tokenizer_arrays/ was made.
 */
#define _GNU_SOURCE
#include "test.h"
#include "test_fs.h"

#include <jansson.h>

#include "ia/formats.h"
#include "ia/runtime.h"

static const char *const archs[] = {"gpt2", "llama", "mistral", "qwen2"};

/* A replacement for one key of the stripped metadata. */
typedef enum {
    EDIT_NONE,
    EDIT_DROP,
    EDIT_TOKENS_AS_INTS, /* tokenizer.ggml.tokens as an INT32 array */
    EDIT_TOKENS_EMPTY,   /* an empty string array */
    EDIT_TOKEN_BAD_UTF8, /* token 3 is "\xff" */
    EDIT_MERGE_UNKNOWN,  /* a merge whose halves are not tokens */
    EDIT_MERGE_NO_SPACE, /* a merge without the separating space */
    EDIT_MERGES_AS_INTS, /* merges as an INT32 array */
    EDIT_TYPE_TOO_BIG,   /* token_type[7] = 9 */
    EDIT_TYPE_NEGATIVE,  /* token_type[7] = -1 */
    EDIT_TYPES_SHORT,    /* one entry fewer than tokens */
    EDIT_SCORES_SHORT,   /* one entry fewer than tokens */
    EDIT_SCORES_STRINGS, /* scores as strings */
    EDIT_ID_PAST_END,    /* the key's id = vocabulary size */
    EDIT_ID_NEGATIVE,    /* the key's id = -5 (i32) */
    EDIT_U32,            /* the key as a u32 (wrong type for a string or bool) */
    EDIT_STRING,         /* the key as the string "ugm" */
} edit_kind;

typedef struct edit {
    const char *key;
    edit_kind kind;
} edit;

static ia_gguf *open_fixture(const char *arch) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/fixtures/decoders/%s/model.gguf", arch);
    ia_gguf *g = NULL;
    ia_status st = ia_gguf_open(test_source_path(rel), &g);
    CHECK_MSG(st == IA_OK, "%s: %s", rel, ia_error_message());
    return g;
}

static ia_status apply_edit(ia_gguf_writer *w, const ia_gguf_value *v, const char *key,
                            edit_kind kind, size_t n_tokens) {
    uint64_t n = ia_gguf_array_count(v);
    switch (kind) {
    case EDIT_NONE:
        return ia_gguf_writer_add_value(w, key, v);
    case EDIT_DROP:
        return IA_OK;
    case EDIT_TOKENS_AS_INTS:
    case EDIT_MERGES_AS_INTS: {
        int32_t ints[4] = {1, 2, 3, 4};
        return ia_gguf_writer_add_array(w, key, IA_GGUF_INT32, ints, 4);
    }
    case EDIT_TOKENS_EMPTY:
        return ia_gguf_writer_add_string_array(w, key, NULL, 0);
    case EDIT_TOKEN_BAD_UTF8:
    case EDIT_MERGE_UNKNOWN:
    case EDIT_MERGE_NO_SPACE:
    case EDIT_SCORES_STRINGS: {
        const char **s = calloc(n ? n : 1, sizeof *s);
        for (uint64_t i = 0; i < n; i++) {
            const char *t = "0";
            if (kind != EDIT_SCORES_STRINGS)
                CHECK_OK(ia_gguf_array_string(v, i, &t, NULL));
            s[i] = t;
        }
        if (n > 3)
            s[3] = kind == EDIT_TOKEN_BAD_UTF8   ? "\xff"
                   : kind == EDIT_MERGE_UNKNOWN  ? "zq\xc3\xa9xq qxz\xc3\xa9q"
                   : kind == EDIT_MERGE_NO_SPACE ? "nospace"
                                                 : s[3];
        ia_status st = ia_gguf_writer_add_string_array(w, key, s, n);
        free(s);
        return st;
    }
    case EDIT_TYPE_TOO_BIG:
    case EDIT_TYPE_NEGATIVE:
    case EDIT_TYPES_SHORT: {
        int32_t *t = calloc(n ? n : 1, sizeof *t);
        for (uint64_t i = 0; i < n; i++) {
            int64_t x = 1;
            CHECK_OK(ia_gguf_array_int(v, i, &x));
            t[i] = (int32_t)x;
        }
        if (n > 7)
            t[7] = kind == EDIT_TYPE_TOO_BIG ? 9 : kind == EDIT_TYPE_NEGATIVE ? -1 : t[7];
        ia_status st = ia_gguf_writer_add_array(w, key, IA_GGUF_INT32, t,
                                                kind == EDIT_TYPES_SHORT ? n - 1 : n);
        free(t);
        return st;
    }
    case EDIT_SCORES_SHORT: {
        float *f = calloc(n ? n : 1, sizeof *f);
        ia_status st = ia_gguf_writer_add_array(w, key, IA_GGUF_FLOAT32, f, n - 1);
        free(f);
        return st;
    }
    case EDIT_ID_PAST_END:
        return ia_gguf_writer_add_u32(w, key, (uint32_t)n_tokens);
    case EDIT_ID_NEGATIVE:
        return ia_gguf_writer_add_i32(w, key, -5);
    case EDIT_U32:
        return ia_gguf_writer_add_u32(w, key, 7);
    case EDIT_STRING:
        return ia_gguf_writer_add_string(w, key, "ugm", 3);
    }
    return IA_EINVAL;
}

/* Writes src's general.architecture and tokenizer.ggml.* keys (no tensors,
 * no chat template) to path, with e applied to e->key (added when absent). */
static bool write_stripped(const ia_gguf *src, const edit *e, const char *path) {
    ia_gguf_writer *w = NULL;
    CHECK_OK(ia_gguf_writer_create(&w));
    if (!w)
        return false;
    const ia_gguf_value *vt = ia_gguf_find(src, "tokenizer.ggml.tokens");
    size_t n_tokens = (size_t)ia_gguf_array_count(vt);
    bool ok = true, seen = false;
    for (size_t i = 0; ok && i < ia_gguf_kv_count(src); i++) {
        const char *key = ia_gguf_kv_key(src, i);
        if (strcmp(key, "general.architecture") != 0 && strncmp(key, "tokenizer.ggml.", 15) != 0)
            continue;
        bool hit = e && strcmp(key, e->key) == 0;
        seen |= hit;
        ia_status st =
            apply_edit(w, ia_gguf_kv_value(src, i), key, hit ? e->kind : EDIT_NONE, n_tokens);
        CHECK_MSG(st == IA_OK, "writing %s: %s", key, ia_error_message());
        ok = st == IA_OK;
    }
    if (ok && e && !seen && e->kind != EDIT_DROP)
        ok = apply_edit(w, NULL, e->key, e->kind, n_tokens) == IA_OK;
    if (ok) {
        ia_status st = ia_gguf_writer_write(w, path);
        CHECK_MSG(st == IA_OK, "%s: %s", path, ia_error_message());
        ok = st == IA_OK;
    }
    ia_gguf_writer_free(w);
    const char *corpus = getenv("IA_TOKENIZER_GGUF_CORPUS");
    if (ok && corpus && *corpus) {
        char *text = NULL, dst[4096];
        size_t len = 0;
        const char *base = strrchr(path, '/');
        snprintf(dst, sizeof dst, "%s%s", corpus, base ? base : path);
        if (ia_file_read_all(path, 1 << 20, &text, &len) == IA_OK) {
            FILE *f = fopen(dst, "wb");
            if (f) {
                fwrite(text, 1, len, f);
                fclose(f);
            }
        }
        free(text);
    }
    return ok;
}

static ia_status load_stripped(const char *path, ia_tokenizer **tok) {
    ia_gguf *g = NULL;
    ia_status st = ia_gguf_open(path, &g);
    CHECK_MSG(st == IA_OK, "%s: %s", path, ia_error_message());
    if (st != IA_OK)
        return st;
    *tok = (ia_tokenizer *)g; /* must come back NULL on failure */
    st = ia_tokenizer_from_gguf(g, tok);
    ia_gguf_close(g);
    return st;
}

TEST(metadata_alone_encodes_like_transformers) {
    for (size_t a = 0; a < sizeof archs / sizeof archs[0]; a++) {
        ia_gguf *src = open_fixture(archs[a]);
        char rel[256], name[64];
        snprintf(rel, sizeof rel, "tests/fixtures/decoders/%s/expected.json", archs[a]);
        json_error_t jerr;
        json_t *e = json_load_file(test_source_path(rel), 0, &jerr);
        CHECK_MSG(e != NULL, "%s: %s", rel, jerr.text);
        snprintf(name, sizeof name, "%s.gguf", archs[a]);
        const char *path = scratch_path(name);
        ia_tokenizer *tok = NULL;
        if (src && e && write_stripped(src, NULL, path) && load_stripped(path, &tok) == IA_OK) {
            struct stat sb;
            CHECK(stat(path, &sb) == 0 && sb.st_size < 100 * 1024);
            size_t pi;
            json_t *p;
            json_array_foreach(json_object_get(e, "prompts"), pi, p) {
                const char *text = json_string_value(json_object_get(p, "text"));
                json_t *want = json_object_get(p, "ids");
                ia_encoding enc = {0};
                ia_encode_options o = ia_encode_options_default();
                CHECK_OK(ia_tokenizer_encode(tok, text, strlen(text), NULL, 0, &o, &enc));
                bool same = enc.len == json_array_size(want);
                for (size_t i = 0; same && i < enc.len; i++)
                    same = enc.ids[i] == json_integer_value(json_array_get(want, i));
                CHECK_MSG(same, "%s prompt %zu: ids differ from transformers", archs[a], pi);
                ia_encoding_free(&enc);
            }
            /* invalid UTF-8 is refused, not tokenised */
            ia_encoding enc = {0};
            ia_encode_options o = ia_encode_options_default();
            CHECK(ia_tokenizer_encode(tok, "ab\xc3", 3, NULL, 0, &o, &enc) == IA_EINVAL);
            ia_encoding_free(&enc);
        }
        CHECK_MSG(tok != NULL, "%s: %s", archs[a], ia_error_message());
        ia_tokenizer_free(tok);
        json_decref(e);
        ia_gguf_close(src);
    }
}

static const struct bad_case {
    const char *arch, *file;
    edit e;
    ia_status want;
    const char *needle; /* after the file name in the message */
} bad_cases[] = {
    {"llama",
     "bad_tokens_ints.gguf",
     {"tokenizer.ggml.tokens", EDIT_TOKENS_AS_INTS},
     IA_ENOTFOUND,
     "no tokenizer.ggml.tokens string array"},
    {"llama",
     "bad_tokens_missing.gguf",
     {"tokenizer.ggml.tokens", EDIT_DROP},
     IA_ENOTFOUND,
     "no tokenizer.ggml.tokens string array"},
    {"gpt2",
     "bad_tokens_empty.gguf",
     {"tokenizer.ggml.tokens", EDIT_TOKENS_EMPTY},
     IA_EPARSE,
     "tokenizer.ggml.tokens holds 0 tokens"},
    {"qwen2",
     "bad_token_utf8.gguf",
     {"tokenizer.ggml.tokens", EDIT_TOKEN_BAD_UTF8},
     IA_EPARSE,
     "token 3 is missing or not UTF-8"},
    {"gpt2",
     "bad_merge_unknown.gguf",
     {"tokenizer.ggml.merges", EDIT_MERGE_UNKNOWN},
     IA_EPARSE,
     "not in the vocabulary"},
    {"mistral",
     "bad_merge_unknown_spm.gguf",
     {"tokenizer.ggml.merges", EDIT_MERGE_UNKNOWN},
     IA_EPARSE,
     "not in the vocabulary"},
    {"llama",
     "bad_merge_nospace.gguf",
     {"tokenizer.ggml.merges", EDIT_MERGE_NO_SPACE},
     IA_EPARSE,
     "merges[3] is not \"left right\""},
    {"llama",
     "bad_merges_ints.gguf",
     {"tokenizer.ggml.merges", EDIT_MERGES_AS_INTS},
     IA_EPARSE,
     "tokenizer.ggml.merges is not a string array"},
    {"gpt2",
     "bad_merges_missing.gguf",
     {"tokenizer.ggml.merges", EDIT_DROP},
     IA_EPARSE,
     "needs tokenizer.ggml.merges"},
    {"llama",
     "bad_type_9.gguf",
     {"tokenizer.ggml.token_type", EDIT_TYPE_TOO_BIG},
     IA_ERANGE,
     "tokenizer.ggml.token_type[7] is 9"},
    {"mistral",
     "bad_type_neg.gguf",
     {"tokenizer.ggml.token_type", EDIT_TYPE_NEGATIVE},
     IA_ERANGE,
     "tokenizer.ggml.token_type[7] is -1"},
    {"qwen2",
     "bad_types_short.gguf",
     {"tokenizer.ggml.token_type", EDIT_TYPES_SHORT},
     IA_EPARSE,
     "tokenizer.ggml.token_type has 499 entries; tokenizer.ggml.tokens has 500"},
    {"mistral",
     "bad_scores_short.gguf",
     {"tokenizer.ggml.scores", EDIT_SCORES_SHORT},
     IA_EPARSE,
     "tokenizer.ggml.scores has 499 entries"},
    {"mistral",
     "bad_scores_strings.gguf",
     {"tokenizer.ggml.scores", EDIT_SCORES_STRINGS},
     IA_EPARSE,
     "tokenizer.ggml.scores"},
    {"llama",
     "bad_bos_past_end.gguf",
     {"tokenizer.ggml.bos_token_id", EDIT_ID_PAST_END},
     IA_ERANGE,
     "tokenizer.ggml.bos_token_id is 500, outside the 500 tokens"},
    {"qwen2",
     "bad_eos_past_end.gguf",
     {"tokenizer.ggml.eos_token_id", EDIT_ID_PAST_END},
     IA_ERANGE,
     "tokenizer.ggml.eos_token_id is 500"},
    {"mistral",
     "bad_unk_negative.gguf",
     {"tokenizer.ggml.unknown_token_id", EDIT_ID_NEGATIVE},
     IA_ERANGE,
     "tokenizer.ggml.unknown_token_id is -5"},
    {"gpt2",
     "bad_pad_past_end.gguf",
     {"tokenizer.ggml.padding_token_id", EDIT_ID_PAST_END},
     IA_ERANGE,
     "tokenizer.ggml.padding_token_id is 500"},
    {"llama",
     "bad_bos_string.gguf",
     {"tokenizer.ggml.bos_token_id", EDIT_STRING},
     IA_EPARSE,
     "tokenizer.ggml.bos_token_id"},
    {"llama",
     "bad_model_missing.gguf",
     {"tokenizer.ggml.model", EDIT_DROP},
     IA_ENOTFOUND,
     "tokenizer.ggml.model"},
    {"llama",
     "bad_model_ugm.gguf",
     {"tokenizer.ggml.model", EDIT_STRING},
     IA_EUNSUPPORTED,
     "model 'ugm' (tokenizer.ggml.model) is not supported"},
    {"qwen2",
     "bad_pre_u32.gguf",
     {"tokenizer.ggml.pre", EDIT_U32},
     IA_EPARSE,
     "tokenizer.ggml.pre"},
    {"qwen2",
     "bad_pre_ugm.gguf",
     {"tokenizer.ggml.pre", EDIT_STRING},
     IA_EUNSUPPORTED,
     "pre-tokenizer 'ugm'"},
    {"mistral",
     "bad_add_bos_u32.gguf",
     {"tokenizer.ggml.add_bos_token", EDIT_U32},
     IA_EPARSE,
     "tokenizer.ggml.add_bos_token"},
};

TEST(broken_metadata_fails_with_a_clear_error) {
    for (size_t c = 0; c < sizeof bad_cases / sizeof bad_cases[0]; c++) {
        const struct bad_case *b = &bad_cases[c];
        ia_gguf *src = open_fixture(b->arch);
        const char *path = scratch_path(b->file);
        ia_tokenizer *tok = NULL;
        if (!src || !write_stripped(src, &b->e, path)) {
            ia_gguf_close(src);
            continue;
        }
        ia_error_clear();
        ia_status st = load_stripped(path, &tok);
        const char *msg = ia_error_message();
        const char *at = strstr(msg, b->file);
        CHECK_MSG(st == b->want, "%s: status %d, want %d (%s)", b->file, (int)st, (int)b->want,
                  msg);
        CHECK_MSG(tok == NULL, "%s: a tokenizer came back with an error", b->file);
        CHECK_MSG(at && strstr(at, b->needle), "%s: message '%s' lacks '%s'", b->file, msg,
                  b->needle);
        ia_tokenizer_free(tok);
        ia_gguf_close(src);
    }
}

/* ---- odd but well-formed vocabularies ------------------------------------------------- */

/* Small hand-made vocabularies with the shapes a fuzzer rarely builds from
 * the seeds: empty and duplicate tokens, a control token that is empty,
 * byte tokens that do not spell a byte, tokens holding NUL, a SentencePiece
 * vocabulary whose merges come from its scores. Each must either load and
 * then encode and decode (invalid UTF-8 refused) or fail with a message
 * naming the file; the files also seed the fuzzer. */
typedef struct odd_vocab {
    const char *file, *model, *pre;
    const char *tokens[16];
    size_t lens[16]; /* 0: strlen */
    int32_t types[16];
    const char *merges[8];
    int32_t unk, bos;
    bool with_scores;
} odd_vocab;

static const odd_vocab odd_vocabs[] = {
    {"odd_empty_control.gguf",
     "gpt2",
     "gpt2",
     {"a", "b", "ab", "", "\xc4\xa0",
      "\xc4\xa0"
      "a",
      "a"},
     {0},
     {1, 1, 1, 3, 1, 1, 1},
     {"a b", "\xc4\xa0 a"},
     -1,
     3,
     false},
    {"odd_spm_scores.gguf",
     "llama",
     NULL,
     {"<unk>", "<s>", "</s>", "<0xZZ>", "<0x41>", "\xe2\x96\x81",
      "\xe2\x96\x81"
      "a",
      "a", "", "ab", "b"},
     {0},
     {2, 3, 3, 6, 6, 1, 1, 1, 1, 1, 1},
     {NULL},
     0,
     1,
     true},
    {"odd_all_control.gguf",
     "llama",
     NULL,
     {"<unk>", "", "\xe2\x96\x81", "x"},
     {0},
     {3, 3, 3, 3},
     {NULL},
     1,
     1,
     true},
    {"odd_nul_tokens.gguf",
     "gpt2",
     "llama-bpe",
     {"a\0b", "a", "b", "\0", "ab"},
     {3, 0, 0, 1, 0},
     {1, 1, 1, 4, 1},
     {"a b"},
     3,
     -1,
     false},
};

static void exercise(const ia_tokenizer *tok, const char *file) {
    static const char *const texts[] = {"ab a b", "\xe6\x97\xa5\xe6\x9c\xac", "x \xf0\x9f\x9a\x80",
                                        ""};
    for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
        ia_encoding enc = {0};
        ia_encode_options o = ia_encode_options_default();
        ia_status st = ia_tokenizer_encode(tok, texts[t], strlen(texts[t]), NULL, 0, &o, &enc);
        CHECK_MSG(st == IA_OK, "%s text %zu: %s", file, t, ia_error_message());
        char *out = NULL;
        size_t len = 0;
        if (st == IA_OK && ia_tokenizer_decode(tok, enc.ids, enc.len, false, &out, &len) == IA_OK)
            CHECK(ia_utf8_valid(out, len, NULL));
        free(out);
        ia_encoding_free(&enc);
    }
    ia_encoding enc = {0};
    ia_encode_options o = ia_encode_options_default();
    CHECK(ia_tokenizer_encode(tok, "a\xff", 2, NULL, 0, &o, &enc) == IA_EINVAL);
    ia_encoding_free(&enc);
}

TEST(odd_vocabularies_load_or_fail_cleanly) {
    for (size_t v = 0; v < sizeof odd_vocabs / sizeof odd_vocabs[0]; v++) {
        const odd_vocab *ov = &odd_vocabs[v];
        size_t n = 0, n_merges = 0;
        while (n < 16 && (ov->tokens[n] || ov->types[n]))
            n++;
        while (n_merges < 8 && ov->merges[n_merges])
            n_merges++;
        ia_gguf_writer *w = NULL;
        CHECK_OK(ia_gguf_writer_create(&w));
        if (!w)
            continue;
        /* tokens with NULs need the value API: build the array by hand */
        const char *strs[16];
        char bufs[16][16];
        for (size_t i = 0; i < n; i++) {
            size_t len = ov->lens[i] ? ov->lens[i] : strlen(ov->tokens[i]);
            memcpy(bufs[i], ov->tokens[i], len);
            bufs[i][len] = 0;
            strs[i] = bufs[i];
        }
        float scores[16];
        for (size_t i = 0; i < n; i++)
            scores[i] = -(float)i;
        CHECK_OK(ia_gguf_writer_add_string(w, "general.architecture", "llama", 5));
        CHECK_OK(
            ia_gguf_writer_add_string(w, "tokenizer.ggml.model", ov->model, strlen(ov->model)));
        if (ov->pre)
            CHECK_OK(ia_gguf_writer_add_string(w, "tokenizer.ggml.pre", ov->pre, strlen(ov->pre)));
        CHECK_OK(ia_gguf_writer_add_string_array(w, "tokenizer.ggml.tokens", strs, n));
        CHECK_OK(
            ia_gguf_writer_add_array(w, "tokenizer.ggml.token_type", IA_GGUF_INT32, ov->types, n));
        if (ov->with_scores)
            CHECK_OK(
                ia_gguf_writer_add_array(w, "tokenizer.ggml.scores", IA_GGUF_FLOAT32, scores, n));
        if (n_merges)
            CHECK_OK(
                ia_gguf_writer_add_string_array(w, "tokenizer.ggml.merges", ov->merges, n_merges));
        if (ov->unk >= 0)
            CHECK_OK(
                ia_gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)ov->unk));
        if (ov->bos >= 0) {
            CHECK_OK(ia_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)ov->bos));
            CHECK_OK(ia_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", true));
        }
        const char *path = scratch_path(ov->file);
        CHECK_OK(ia_gguf_writer_write(w, path));
        ia_gguf_writer_free(w);
        const char *corpus = getenv("IA_TOKENIZER_GGUF_CORPUS");
        if (corpus && *corpus) {
            char *text = NULL, dst[4096];
            size_t len = 0;
            snprintf(dst, sizeof dst, "%s/%s", corpus, ov->file);
            if (ia_file_read_all(path, 1 << 20, &text, &len) == IA_OK) {
                FILE *f = fopen(dst, "wb");
                if (f) {
                    fwrite(text, 1, len, f);
                    fclose(f);
                }
            }
            free(text);
        }
        ia_tokenizer *tok = NULL;
        ia_error_clear();
        ia_status st = load_stripped(path, &tok);
        fprintf(stderr, "  %-24s %s\n", ov->file, st == IA_OK ? "loads" : ia_error_message());
        if (st == IA_OK)
            exercise(tok, ov->file);
        else
            CHECK_MSG(tok == NULL && strstr(ia_error_message(), ov->file), "%s: %s", ov->file,
                      ia_error_message());
        ia_tokenizer_free(tok);
    }
}
