/*
 * Tokenizer parity with HF `tokenizers`, and its error paths.
 *
 * The fixtures come from tools/make_tokenizer_corpus.py (corpus.txt: ~20k
 * lines of varied real text) and tools/make_tokenizer_fixtures.py (the ids HF
 * gives for every line with the MiniLM and a cased vocabulary, and cases.json
 * with pairs, truncation, padding, token strings and added-token options).
 * Every corpus line must give exactly HF's ids; the first mismatches are
 * printed with their line numbers.
 */
#include "test.h"

#include "ia/tokenize.h"

#include <jansson.h>
#include <pthread.h>
#include <unistd.h>

#define FIX "tests/fixtures/tokenizer/"

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

static void print_mismatch(size_t lineno, const char *text, const ia_encoding *e,
                           const char *want) {
    fprintf(stderr, "  line %zu: \"%.120s\"\n    want: %.300s\n    got: ", lineno, text, want);
    for (size_t i = 0; i < e->len && i < 80; i++)
        fprintf(stderr, " %d", e->ids[i]);
    fputc('\n', stderr);
}

/* Encodes every corpus line and compares with HF's ids; returns mismatches. */
static size_t corpus_parity(const ia_tokenizer *tok, const char *expected, double *secs) {
    lines corpus, want;
    size_t bad = 0;
    if (!read_lines(test_source_path(FIX "corpus.txt"), &corpus))
        return 1;
    if (!read_lines(test_source_path(expected), &want)) {
        free_lines(&corpus);
        return 1;
    }
    CHECK_EQ_INT(corpus.n, want.n);
    ia_encode_options opts = ia_encode_options_default();
    double t0 = ia_time_now();
    for (size_t i = 0; i < corpus.n && i < want.n; i++) {
        ia_encoding e;
        ia_status st = ia_tokenizer_encode(tok, corpus.line[i], corpus.len[i], NULL, 0, &opts, &e);
        if (st != IA_OK || !same_ids(&e, want.line[i])) {
            if (bad++ < 10) {
                if (st != IA_OK)
                    fprintf(stderr, "  line %zu: %s\n", i + 1, ia_error_message());
                else
                    print_mismatch(i + 1, corpus.line[i], &e, want.line[i]);
            }
        }
        ia_encoding_free(&e);
    }
    *secs = ia_time_now() - t0;
    if (bad)
        fprintf(stderr, "  %s: %zu of %zu lines differ\n", expected, bad, corpus.n);
    else
        fprintf(stderr, "  %s: %zu lines identical (%.0f lines/s)\n", expected, corpus.n,
                corpus.n / (*secs > 0 ? *secs : 1e-9));
    free_lines(&corpus);
    free_lines(&want);
    return bad;
}

TEST(minilm_corpus_parity) {
    ia_tokenizer *tok = NULL;
    CHECK_OK(ia_tokenizer_load_json(test_source_path(FIX "minilm/tokenizer.json"), &tok));
    if (!tok)
        return;
    double secs;
    CHECK_EQ_INT(corpus_parity(tok, FIX "expected-minilm.txt", &secs), 0);
    CHECK_EQ_INT(ia_tokenizer_vocab_size(tok), 30522);
    CHECK_EQ_INT(ia_tokenizer_pad_id(tok), 0);
    CHECK_EQ_INT(ia_tokenizer_token_to_id(tok, "[CLS]"), 101);
    CHECK(strcmp(ia_tokenizer_id_to_token(tok, 102), "[SEP]") == 0);
    CHECK(ia_tokenizer_id_to_token(tok, 30522) == NULL);
    CHECK_EQ_INT(ia_tokenizer_token_to_id(tok, "no-such-token"), -1);
    ia_tokenizer_free(tok);
}

TEST(cased_corpus_parity) {
    ia_tokenizer *tok = NULL;
    CHECK_OK(ia_tokenizer_load_dir(test_source_path(FIX "cased"), &tok));
    if (!tok)
        return;
    double secs;
    CHECK_EQ_INT(corpus_parity(tok, FIX "expected-cased.txt", &secs), 0);
    ia_tokenizer_free(tok);
}

/* vocab.txt + tokenizer_config.json must tokenise exactly like tokenizer.json. */
TEST(minilm_vocab_txt_matches_json) {
    ia_tokenizer *tok = NULL;
    CHECK_OK(ia_tokenizer_load_vocab(test_source_path(FIX "minilm/vocab.txt"), true, &tok));
    if (!tok)
        return;
    double secs;
    CHECK_EQ_INT(corpus_parity(tok, FIX "expected-minilm.txt", &secs), 0);
    CHECK_EQ_INT(ia_tokenizer_vocab_size(tok), 30522);
    ia_tokenizer_free(tok);
}

static const char *str_or_empty(const json_t *v) {
    return json_is_string(v) ? json_string_value(v) : "";
}

static bool int_list_equal(const json_t *list, const void *arr, size_t n, int width) {
    if (json_array_size(list) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        long long want = json_integer_value(json_array_get(list, i));
        long long got = width == 1 ? ((const uint8_t *)arr)[i] : ((const int32_t *)arr)[i];
        if (want != got)
            return false;
    }
    return true;
}

static void run_case(const json_t *c, ia_tokenizer *tok) {
    const char *name = str_or_empty(json_object_get(c, "name"));
    const json_t *text = json_object_get(c, "text");
    const json_t *pair = json_object_get(c, "pair");
    ia_encode_options o = ia_encode_options_default();
    o.add_special_tokens = json_is_true(json_object_get(c, "add_special_tokens"));
    o.max_length = (size_t)json_integer_value(json_object_get(c, "max_length"));
    o.pad_to = (size_t)json_integer_value(json_object_get(c, "pad_to"));
    o.want_tokens = true;
    const char *strategy = str_or_empty(json_object_get(c, "strategy"));
    o.truncation = strcmp(strategy, "only_first") == 0    ? IA_TRUNCATE_ONLY_FIRST
                   : strcmp(strategy, "only_second") == 0 ? IA_TRUNCATE_ONLY_SECOND
                                                          : IA_TRUNCATE_LONGEST_FIRST;
    ia_encoding e;
    ia_status st = ia_tokenizer_encode(tok, json_string_value(text), json_string_length(text),
                                       json_is_string(pair) ? json_string_value(pair) : NULL,
                                       json_string_length(pair), &o, &e);
    const json_t *expect = json_object_get(c, "expect");
    if (!expect) {
        CHECK_MSG(st != IA_OK, "case '%s': HF refuses (%s) but we encoded it", name,
                  str_or_empty(json_object_get(c, "error")));
        ia_encoding_free(&e);
        return;
    }
    CHECK_MSG(st == IA_OK, "case '%s': %s", name, ia_error_message());
    if (st != IA_OK)
        return;
    CHECK_MSG(int_list_equal(json_object_get(expect, "ids"), e.ids, e.len, 4), "case '%s' ids",
              name);
    CHECK_MSG(int_list_equal(json_object_get(expect, "type_ids"), e.type_ids, e.len, 4),
              "case '%s' type_ids", name);
    CHECK_MSG(int_list_equal(json_object_get(expect, "attention_mask"), e.attention_mask, e.len, 1),
              "case '%s' attention_mask", name);
    const json_t *toks = json_object_get(expect, "tokens");
    for (size_t i = 0; i < e.len && i < json_array_size(toks); i++)
        CHECK_MSG(strcmp(e.tokens[i], str_or_empty(json_array_get(toks, i))) == 0,
                  "case '%s' token %zu: '%s' vs '%s'", name, i, e.tokens[i],
                  str_or_empty(json_array_get(toks, i)));
    ia_encoding_free(&e);
}

TEST(hf_cases) {
    json_t *cases = NULL;
    CHECK_OK(ia_json_load_file(test_source_path(FIX "cases.json"), 16u << 20, &cases));
    if (!cases)
        return;
    ia_tokenizer *minilm = NULL, *cased = NULL, *added = NULL;
    CHECK_OK(ia_tokenizer_load_json(test_source_path(FIX "minilm/tokenizer.json"), &minilm));
    CHECK_OK(ia_tokenizer_load_json(test_source_path(FIX "cased/tokenizer.json"), &cased));
    CHECK_OK(ia_tokenizer_load_json(test_source_path(FIX "added-tokens.json"), &added));
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        const char *vocab = str_or_empty(json_object_get(c, "vocab"));
        ia_tokenizer *tok = strcmp(vocab, "minilm") == 0  ? minilm
                            : strcmp(vocab, "cased") == 0 ? cased
                                                          : added;
        if (tok)
            run_case(c, tok);
    }
    CHECK(json_array_size(cases) > 50);
    ia_tokenizer_free(minilm);
    ia_tokenizer_free(cased);
    ia_tokenizer_free(added);
    json_decref(cases);
}

/* ---- errors ----------------------------------------------------------------- */

static ia_status parse(const char *json, ia_tokenizer **tok) {
    return ia_tokenizer_parse_json(json, strlen(json), "test.json", tok);
}

#define VOCAB "\"vocab\": {\"[UNK]\": 0, \"[CLS]\": 1, \"[SEP]\": 2, \"a\": 3, \"##b\": 4}"

TEST(bad_tokenizer_json) {
    ia_tokenizer *tok = NULL;
    CHECK_ERR(parse("{\"model\": {\"type\": \"WordPiece\", " VOCAB, &tok), IA_EPARSE,
              "test.json: invalid JSON");
    CHECK_ERR(parse("{\"model\": {\"type\": \"WordLevel\", \"vocab\": {}}}", &tok), IA_EUNSUPPORTED,
              "test.json: model type 'WordLevel' is not supported yet");
    CHECK_ERR(parse("{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}", &tok),
              IA_EPARSE, "test.json: model.vocab is empty");
    CHECK_ERR(parse("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", &tok), IA_EUNSUPPORTED,
              "model type 'Unigram'");
    CHECK_ERR(parse("{\"model\": {\"type\": \"WordPiece\"}}", &tok), IA_EPARSE, "model.vocab");
    CHECK_ERR(parse("{\"normalizer\": null}", &tok), IA_EPARSE, "test.json: model is missing");
    CHECK_ERR(parse("{\"model\": {\"vocab\": {}}}", &tok), IA_EPARSE, "model.type");
    CHECK_ERR(parse("{\"pre_tokenizer\": {\"type\": \"Whitespace\"}, \"model\": {\"type\": "
                    "\"WordPiece\", " VOCAB "}}",
                    &tok),
              IA_EUNSUPPORTED, "pre_tokenizer type 'Whitespace'");
    CHECK_ERR(parse("{\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": "
                    "\"Precompiled\"}]}, \"model\": {\"type\": \"WordPiece\", " VOCAB "}}",
                    &tok),
              IA_EUNSUPPORTED, "normalizer type 'Precompiled'");
    CHECK_ERR(parse("{\"post_processor\": {\"type\": \"Sequence\", \"processors\": ["
                    "{\"type\": \"BertProcessing\", \"sep\": [\"[SEP]\", 2], \"cls\": "
                    "[\"[CLS]\", 1]}, {\"type\": \"BertProcessing\"}]}, \"model\": {\"type\": "
                    "\"WordPiece\", " VOCAB "}}",
                    &tok),
              IA_EUNSUPPORTED, "one template processor only");
    CHECK_ERR(parse("{\"post_processor\": {\"type\": \"Bogus\"}, \"model\": {\"type\": "
                    "\"WordPiece\", " VOCAB "}}",
                    &tok),
              IA_EUNSUPPORTED, "post_processor type 'Bogus'");
    CHECK_ERR(
        parse("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0, \"b\": 0}}}", &tok),
        IA_EPARSE, "gives id 0 to both");
    CHECK_ERR(
        parse("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0, \"a\": 1}}}", &tok),
        IA_EPARSE, "duplicate");
    CHECK_ERR(parse("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": -1}}}", &tok),
              IA_EPARSE, "model.vocab['a']");
    CHECK_ERR(parse("{\"added_tokens\": [{\"id\": 1}], \"model\": {\"type\": \"WordPiece\", " VOCAB
                    "}}",
                    &tok),
              IA_EPARSE, "added_tokens[0].content is missing");
    CHECK_ERR(parse("{\"normalizer\": {\"type\": \"BertNormalizer\", \"lowercase\": 3}, "
                    "\"model\": {\"type\": \"WordPiece\", " VOCAB "}}",
                    &tok),
              IA_EPARSE, "normalizer.lowercase must be true or false");
    CHECK_ERR(ia_tokenizer_load_json(test_source_path(FIX "no-such-file.json"), &tok), IA_ENOTFOUND,
              "no-such-file.json");
    CHECK_ERR(ia_tokenizer_load_dir(test_source_path(FIX), &tok), IA_ENOTFOUND,
              "no tokenizer.json or vocab.txt");
    CHECK(tok == NULL);
}

TEST(bad_input_and_edges) {
    ia_tokenizer *tok = NULL;
    CHECK_OK(parse("{\"model\": {\"type\": \"WordPiece\", " VOCAB "}, \"pre_tokenizer\": "
                   "{\"type\": \"BertPreTokenizer\"}, \"post_processor\": "
                   "{\"type\": \"BertProcessing\", \"sep\": [\"[SEP]\", 2], \"cls\": [\"[CLS]\", "
                   "1]}}",
                   &tok));
    if (!tok)
        return;
    ia_encoding e;
    CHECK_ERR(ia_tokenizer_encode(tok, "ab\xff", 3, NULL, 0, NULL, &e), IA_EINVAL,
              "invalid UTF-8 at byte 2");
    CHECK_ERR(ia_tokenizer_encode(tok, "a", 1, "\xc3(", 2, NULL, &e), IA_EINVAL,
              "pair input: invalid UTF-8 at byte 0");
    CHECK_OK(ia_tokenizer_encode(tok, "", 0, NULL, 0, NULL, &e));
    CHECK_EQ_INT(e.len, 2);
    ia_encoding_free(&e);
    /* "abb": a ##b ##b; "ba": [UNK] (no "b" at word start) */
    CHECK_OK(ia_tokenizer_encode(tok, "abb ba", 6, NULL, 0, NULL, &e));
    int32_t want[] = {1, 3, 4, 4, 0, 2};
    CHECK(e.len == 6 && memcmp(e.ids, want, sizeof want) == 0);
    ia_encoding_free(&e);
    ia_encode_options o = ia_encode_options_default();
    o.max_length = 1;
    CHECK_ERR(ia_tokenizer_encode(tok, "a", 1, NULL, 0, &o, &e), IA_EINVAL, "max_length 1");
    o.max_length = 4;
    o.truncation = IA_TRUNCATE_ONLY_SECOND;
    CHECK_ERR(ia_tokenizer_encode(tok, "a a a", 5, NULL, 0, &o, &e), IA_EINVAL, "needs a pair");
    ia_tokenizer_free(tok);

    /* No [UNK] in the vocabulary: only an unknown word fails. */
    CHECK_OK(parse("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}", &tok));
    if (!tok)
        return;
    CHECK_OK(ia_tokenizer_encode(tok, "a", 1, NULL, 0, NULL, &e));
    CHECK_EQ_INT(e.len, 1);
    ia_encoding_free(&e);
    CHECK_ERR(ia_tokenizer_encode(tok, "b", 1, NULL, 0, NULL, &e), IA_ENOTFOUND, "'[UNK]'");
    ia_tokenizer_free(tok);
}

/* vocab.txt: a repeated line keeps the later id, as HF's reader does. */
TEST(vocab_txt_duplicates_and_errors) {
    char dir[] = "/tmp/ia-tok-XXXXXX";
    if (!mkdtemp(dir))
        SKIP("no temporary directory");
    char path[256], cfg[256];
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", dir);
    FILE *f = fopen(path, "w");
    fputs("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\nHello\nhello\n##s\n", f);
    fclose(f);
    f = fopen(cfg, "w");
    fputs("{\"do_lower_case\": false}", f);
    fclose(f);
    ia_tokenizer *tok = NULL;
    CHECK_OK(ia_tokenizer_load_dir(dir, &tok));
    if (tok) {
        ia_encoding e;
        CHECK_OK(ia_tokenizer_encode(tok, "Hello hellos", 12, NULL, 0, NULL, &e));
        int32_t want[] = {2, 5, 6, 7, 3};
        CHECK(e.len == 5 && memcmp(e.ids, want, sizeof want) == 0);
        ia_encoding_free(&e);
        ia_tokenizer_free(tok);
    }
    f = fopen(path, "w");
    fputs("a\nb\n", f);
    fclose(f);
    CHECK_ERR(ia_tokenizer_load_vocab(path, true, &tok), IA_EPARSE, "[CLS] or [SEP] is missing");
    f = fopen(path, "w");
    fputs("[CLS]\n[SEP]\n\xff\n", f);
    fclose(f);
    CHECK_ERR(ia_tokenizer_load_vocab(path, true, &tok), IA_EPARSE, "invalid UTF-8 at byte 12");
    remove(path);
    remove(cfg);
    rmdir(dir);
}

/* ---- threads: a const tokenizer, many encoders ----------------------------------- */

typedef struct thread_job {
    const ia_tokenizer *tok;
    const lines *corpus;
    size_t first, step;
    uint64_t sum;
} thread_job;

static void *encode_all(void *arg) {
    thread_job *j = arg;
    for (size_t i = j->first; i < j->corpus->n; i += j->step) {
        ia_encoding e;
        if (ia_tokenizer_encode(j->tok, j->corpus->line[i], j->corpus->len[i], NULL, 0, NULL, &e) ==
            IA_OK)
            for (size_t k = 0; k < e.len; k++)
                j->sum += (uint64_t)e.ids[k] * (k + 1);
        ia_encoding_free(&e);
    }
    return NULL;
}

TEST(threads_agree) {
    ia_tokenizer *tok = NULL;
    lines corpus;
    CHECK_OK(ia_tokenizer_load_json(test_source_path(FIX "minilm/tokenizer.json"), &tok));
    if (!tok || !read_lines(test_source_path(FIX "corpus.txt"), &corpus)) {
        ia_tokenizer_free(tok);
        return;
    }
    corpus.n = corpus.n > 4000 ? 4000 : corpus.n;
    thread_job one = {tok, &corpus, 0, 1, 0};
    encode_all(&one);
    thread_job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (thread_job){tok, &corpus, (size_t)i, 4, 0};
        pthread_create(&th[i], NULL, encode_all, &jobs[i]);
    }
    uint64_t sum = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        sum += jobs[i].sum;
    }
    CHECK(sum == one.sum);
    free_lines(&corpus);
    ia_tokenizer_free(tok);
}
