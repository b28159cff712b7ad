/*
 * A tokenizer from a GGUF's metadata: tokenizer.ggml.* read into the arrays
 * that ia_tokenizer_load_arrays (tokenize/arrays.c) builds a tokenizer from.
 * This glue lives in runtime/ because runtime/ is the layer allowed to join
 * formats/ and tokenize/; the generator uses it for .gguf models and
 * fuzz/fuzz_tokenizer_arrays.c feeds it arbitrary GGUF images.
 *
 * Everything in the metadata is untrusted: each array must have the type and
 * the length the tokens array implies, token types must be GGUF's (0..6) and
 * special ids must name a token; anything else is an error naming the key
 * and the value, rather than a tokenizer that quietly behaves differently.
 */
#include <stdlib.h>
#include <string.h>

#include "ia/formats.h"
#include "ia/runtime.h"

/* The vocabulary limit of ia_tokenizer_load_arrays, checked before the
 * arrays are allocated. */
#define MAX_TOKENS ((uint64_t)1 << 24)

typedef struct gguf_arrays {
    const ia_gguf *g;
    const char *path;
    ia_tokenizer_arrays a;
    const char **tokens, **merges;
    size_t *lens;
    float *scores;
    int32_t *types;
    char **merge_copies;
    size_t n_merge_copies;
} gguf_arrays;

/* A special id key: absent is -1; present, it must name a token. */
static ia_status special_id(const gguf_arrays *ga, const char *key, int32_t *out) {
    int64_t v = -1;
    *out = -1;
    ia_status st = ia_gguf_get_i64(ga->g, key, false, &v); /* errors name the file */
    if (st != IA_OK || !ia_gguf_find(ga->g, key))
        return st;
    if (v < 0 || (uint64_t)v >= ga->a.n_tokens)
        return ia_error_set(IA_ERANGE,
                            "%s: %s is %lld, outside the %zu tokens of "
                            "tokenizer.ggml.tokens",
                            ga->path, key, (long long)v, ga->a.n_tokens);
    *out = (int32_t)v;
    return IA_OK;
}

/* An optional per-token array: absent is fine, present it must hold one
 * entry per token. */
static const ia_gguf_value *per_token(const gguf_arrays *ga, const char *key, ia_status *st) {
    const ia_gguf_value *v = ia_gguf_find(ga->g, key);
    *st = IA_OK;
    if (!v)
        return NULL;
    if (ia_gguf_value_type(v) != IA_GGUF_ARRAY) {
        *st = ia_error_set(IA_EPARSE, "%s: %s is not an array", ga->path, key);
        return NULL;
    }
    if (ia_gguf_array_count(v) != ga->a.n_tokens) {
        *st =
            ia_error_set(IA_EPARSE, "%s: %s has %llu entries; tokenizer.ggml.tokens has %zu",
                         ga->path, key, (unsigned long long)ia_gguf_array_count(v), ga->a.n_tokens);
        return NULL;
    }
    return v;
}

static ia_status read_tokens(gguf_arrays *ga) {
    const ia_gguf_value *v = ia_gguf_find(ga->g, "tokenizer.ggml.tokens");
    if (!v || ia_gguf_array_type(v) != IA_GGUF_STRING)
        return ia_error_set(IA_ENOTFOUND, "%s: no tokenizer.ggml.tokens string array", ga->path);
    uint64_t n = ia_gguf_array_count(v);
    if (n == 0 || n > MAX_TOKENS)
        return ia_error_set(IA_EPARSE,
                            "%s: tokenizer.ggml.tokens holds %llu tokens; a vocabulary has 1 to "
                            "%llu",
                            ga->path, (unsigned long long)n, (unsigned long long)MAX_TOKENS);
    ga->tokens = ia_malloc_array((size_t)n, sizeof *ga->tokens);
    ga->lens = ia_malloc_array((size_t)n, sizeof *ga->lens);
    if (!ga->tokens || !ga->lens)
        return IA_ENOMEM;
    ia_status st = IA_OK;
    for (size_t i = 0; i < n && st == IA_OK; i++)
        st = ia_gguf_array_string(v, i, &ga->tokens[i], &ga->lens[i]);
    ga->a.tokens = ga->tokens;
    ga->a.token_lens = ga->lens;
    ga->a.n_tokens = (size_t)n;
    return st;
}

static ia_status read_scores_and_types(gguf_arrays *ga) {
    size_t n = ga->a.n_tokens;
    ia_status st;
    const ia_gguf_value *vs = per_token(ga, "tokenizer.ggml.scores", &st);
    if (st != IA_OK)
        return st;
    if (vs) {
        if (!(ga->scores = ia_malloc_array(n, sizeof *ga->scores)))
            return IA_ENOMEM;
        for (size_t i = 0; i < n; i++) {
            double d;
            if ((st = ia_gguf_array_float(vs, i, &d)) != IA_OK)
                return st;
            ga->scores[i] = (float)d;
        }
        ga->a.scores = ga->scores;
    }
    const ia_gguf_value *vt = per_token(ga, "tokenizer.ggml.token_type", &st);
    if (st != IA_OK || !vt)
        return st;
    if (!(ga->types = ia_malloc_array(n, sizeof *ga->types)))
        return IA_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int64_t t;
        if ((st = ia_gguf_array_int(vt, i, &t)) != IA_OK)
            return st;
        if (t < 0 || t > IA_TOKEN_BYTE)
            return ia_error_set(IA_ERANGE,
                                "%s: tokenizer.ggml.token_type[%zu] is %lld; GGUF token types "
                                "are 0 to %d",
                                ga->path, i, (long long)t, IA_TOKEN_BYTE);
        ga->types[i] = (int32_t)t;
    }
    ga->a.token_types = ga->types;
    return IA_OK;
}

/* Merges are "left right" strings; copies make them NUL-terminated (a merge
 * with an embedded NUL is cut there and then fails the split check). */
static ia_status read_merges(gguf_arrays *ga) {
    const ia_gguf_value *v = ia_gguf_find(ga->g, "tokenizer.ggml.merges");
    if (!v)
        return IA_OK;
    if (ia_gguf_array_type(v) != IA_GGUF_STRING)
        return ia_error_set(IA_EPARSE, "%s: tokenizer.ggml.merges is not a string array", ga->path);
    size_t n = (size_t)ia_gguf_array_count(v);
    ga->merges = ia_malloc_array(n ? n : 1, sizeof *ga->merges);
    ga->merge_copies = ia_calloc(n ? n : 1, sizeof *ga->merge_copies);
    if (!ga->merges || !ga->merge_copies)
        return IA_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *m;
        size_t len;
        ia_status st = ia_gguf_array_string(v, i, &m, &len);
        if (st != IA_OK)
            return st;
        if (!(ga->merge_copies[i] = ia_strndup(m, len)))
            return IA_ENOMEM;
        ga->n_merge_copies = i + 1;
        ga->merges[i] = ga->merge_copies[i];
    }
    ga->a.merges = ga->merges;
    ga->a.n_merges = n;
    return IA_OK;
}

static ia_status read_flags(gguf_arrays *ga) {
    ia_tokenizer_arrays *a = &ga->a;
    ia_status st;
    /* llama.cpp's default when the key is absent: BOS for SentencePiece models. */
    a->add_bos = strcmp(a->model, "llama") == 0;
    a->add_eos = false;
    bool space_prefix = true; /* llama.cpp's default for SentencePiece models */
    if ((st = ia_gguf_get_string(ga->g, "tokenizer.ggml.pre", false, &a->pre, NULL)) ||
        (st = ia_gguf_get_bool(ga->g, "tokenizer.ggml.add_bos_token", false, &a->add_bos)) ||
        (st = ia_gguf_get_bool(ga->g, "tokenizer.ggml.add_space_prefix", false, &space_prefix)))
        return st;
    a->no_space_prefix = !space_prefix;
    /* BertNormalizer switches, with llama.cpp's defaults (llama-vocab.cpp):
     * lowercase true, strip_accents as lowercase. */
    a->bert_lowercase = true;
    if ((st = ia_gguf_get_bool(ga->g, "tokenizer.ggml.normalizer.lowercase", false,
                               &a->bert_lowercase)))
        return st;
    a->bert_strip_accents = a->bert_lowercase;
    if ((st = ia_gguf_get_bool(ga->g, "tokenizer.ggml.normalizer.strip_accents", false,
                               &a->bert_strip_accents)))
        return st;
    return ia_gguf_get_bool(ga->g, "tokenizer.ggml.add_eos_token", false, &a->add_eos);
}

/* llama.cpp's WPM tokenizer always wraps text in [CLS] ... [SEP] (the
 * add_bos / add_eos keys do not switch that off): bos is [CLS] and the
 * separator id, not eos, ends it; ids absent from the metadata take
 * llama.cpp's defaults for "bert" (101, 102, 100) when the vocabulary has
 * them. */
static ia_status bert_specials(gguf_arrays *ga) {
    ia_tokenizer_arrays *a = &ga->a;
    int32_t sep = -1;
    ia_status st = special_id(ga, "tokenizer.ggml.seperator_token_id", &sep);
    if (st != IA_OK)
        return st;
    int32_t *ids[3] = {&a->bos_id, &sep, &a->unk_id};
    const int32_t defaults[3] = {101, 102, 100};
    for (int i = 0; i < 3; i++)
        if (*ids[i] < 0 && (size_t)defaults[i] < a->n_tokens)
            *ids[i] = defaults[i];
    a->eos_id = sep;
    a->add_bos = a->add_eos = true;
    return IA_OK;
}

ia_status ia_tokenizer_from_gguf(const ia_gguf *g, ia_tokenizer **out) {
    gguf_arrays ga = {.g = g, .path = ia_gguf_path(g)};
    ia_tokenizer_arrays *a = &ga.a;
    ia_status st;
    *out = NULL;
    a->bos_id = a->eos_id = a->unk_id = a->pad_id = -1;
    /* the reader's errors name the file and the key */
    if ((st = ia_gguf_get_string(g, "tokenizer.ggml.model", true, &a->model, NULL)) ||
        (st = read_tokens(&ga)) || (st = read_scores_and_types(&ga)) || (st = read_merges(&ga)) ||
        (st = read_flags(&ga)) ||
        (st = special_id(&ga, "tokenizer.ggml.bos_token_id", &a->bos_id)) ||
        (st = special_id(&ga, "tokenizer.ggml.eos_token_id", &a->eos_id)) ||
        (st = special_id(&ga, "tokenizer.ggml.unknown_token_id", &a->unk_id)) ||
        (st = special_id(&ga, "tokenizer.ggml.padding_token_id", &a->pad_id)))
        goto done;
    if (strcmp(a->model, "bert") == 0 && (st = bert_specials(&ga)))
        goto done;
    if ((st = ia_tokenizer_load_arrays(a, out)))
        ia_error_prefix("%s", ga.path);
done:
    if (st == IA_ENOMEM)
        ia_error_set(IA_ENOMEM, "%s: out of memory reading the tokenizer metadata", ga.path);
    for (size_t i = 0; i < ga.n_merge_copies; i++)
        free(ga.merge_copies[i]);
    free(ga.merge_copies);
    free(ga.merges);
    free(ga.tokens);
    free(ga.lens);
    free(ga.scores);
    free(ga.types);
    return st;
}
