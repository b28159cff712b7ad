/*
 * Loading tokenizers: HF tokenizer.json, and BERT's vocab.txt as a fallback.
 *
 * tokenizer.json names a normaliser, a pre-tokeniser, a model and a
 * post-processor and a decoder by "type". We accept the pieces of the BERT
 * family (BertNormalizer, BertPreTokenizer, WordPiece), of byte-level BPE
 * (ByteLevel, Split with a regex, NFC, BPE with merges and ignore_merges),
 * of SentencePiece-style BPE (Prepend/Replace normalizers or Metaspace,
 * byte_fallback, ByteFallback/Fuse/Strip decoders) and the post-processors
 * TemplateProcessing / BertProcessing / RobertaProcessing / ByteLevel (and a
 * Sequence of them), and turn anything else away at load time with
 * IA_EUNSUPPORTED naming the piece, so that a model never runs with a
 * silently different tokenisation. Malformed files give IA_EPARSE naming
 * the field. A vocab.txt becomes the tokenizer.json that HF's BertTokenizer
 * conversion would have produced: BertNormalizer as tokenizer_config.json
 * says, the five BERT special tokens, and [CLS] A [SEP] (B [SEP]).
 *
 * The truncation and padding blocks in tokenizer.json are ignored on
 * purpose (callers ask for them per call), except that padding's pad id and
 * token are remembered for ia_tokenizer_pad_id.
 */
#include "tokenize_internal.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define MAX_JSON_BYTES ((size_t)1 << 30)
#define MAX_VOCAB_TXT_BYTES ((size_t)256 << 20)
#define MAX_IDS ((json_int_t)1 << 24)

/* ---- small JSON helpers: each names the field in its error ---------------- */

static ia_status get_bool(const json_t *obj, const char *key, bool def, bool *out, const char *what,
                          const char *where) {
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return IA_OK;
    }
    if (!json_is_boolean(v))
        return ia_error_set(IA_EPARSE, "%s: %s.%s must be true or false", what, where, key);
    *out = json_is_true(v);
    return IA_OK;
}

static ia_status get_string(const json_t *obj, const char *key, const char *def, const char **out,
                            size_t *len, const char *what, const char *where) {
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (!def)
            return ia_error_set(IA_EPARSE, "%s: %s.%s is missing", what, where, key);
        *out = def;
        if (len)
            *len = strlen(def);
        return IA_OK;
    }
    if (!json_is_string(v))
        return ia_error_set(IA_EPARSE, "%s: %s.%s must be a string", what, where, key);
    *out = json_string_value(v);
    if (len)
        *len = json_string_length(v);
    return IA_OK;
}

static ia_status get_id(const json_t *v, int32_t *out, const char *what, const char *where) {
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= MAX_IDS)
        return ia_error_set(IA_EPARSE, "%s: %s must be an id between 0 and %lld", what, where,
                            (long long)MAX_IDS - 1);
    *out = (int32_t)json_integer_value(v);
    return IA_OK;
}

/* The "type" of a piece, or NULL with an error. */
static const char *piece_type(const json_t *obj, const char *what, const char *where) {
    const json_t *t = json_object_get(obj, "type");
    if (!json_is_string(t)) {
        ia_error_set(IA_EPARSE, "%s: %s.type is missing or not a string", what, where);
        return NULL;
    }
    return json_string_value(t);
}

/* ---- pieces ------------------------------------------------------------------ */

ia_status tok_norm_push(ia_tokenizer *tok, tok_norm_step **out) {
    tok_norm_step *n = ia_realloc_array(tok->norm, tok->n_norm + 1, sizeof *n);
    if (!n)
        return IA_ENOMEM;
    tok->norm = n;
    n = &n[tok->n_norm++];
    memset(n, 0, sizeof *n);
    *out = n;
    return IA_OK;
}

/* {"String": s} or {"Regex": r}, as Split, Replace and Metaspace write a pattern. */
static ia_status parse_pattern(const json_t *obj, tok_pattern *p, const char *what,
                               const char *where) {
    const json_t *str = json_object_get(obj, "String");
    const json_t *re = json_object_get(obj, "Regex");
    if (json_is_string(str))
        return tok_pattern_literal(p, json_string_value(str), json_string_length(str));
    if (json_is_string(re)) {
        char w[256];
        snprintf(w, sizeof w, "%s: %s", what, where);
        return tok_pattern_regex(p, json_string_value(re), json_string_length(re), w);
    }
    return ia_error_set(IA_EPARSE, "%s: %s.pattern must be {\"String\": ...} or {\"Regex\": ...}",
                        what, where);
}

static ia_status parse_bert_normalizer(tok_bert_norm *f, const json_t *n, const char *what) {
    ia_status st;
    const json_t *sa = json_object_get(n, "strip_accents");
    if ((st = get_bool(n, "clean_text", true, &f->clean_text, what, "normalizer")) ||
        (st = get_bool(n, "handle_chinese_chars", true, &f->handle_chinese, what, "normalizer")) ||
        (st = get_bool(n, "lowercase", true, &f->lowercase, what, "normalizer")) ||
        (st = get_bool(n, "strip_accents", false, &f->strip_accents, what, "normalizer")))
        return st;
    /* strip_accents null means "whatever lowercase says", as in BertTokenizer. */
    if (!sa || json_is_null(sa))
        f->strip_accents = f->lowercase;
    return IA_OK;
}

static const struct {
    const char *type;
    tok_norm_kind kind;
} NORM_TYPES[] = {
    {"BertNormalizer", TOK_NORM_BERT},
    {"Lowercase", TOK_NORM_BERT},
    {"NFC", TOK_NORM_NFC},
    {"NFD", TOK_NORM_NFD},
    {"NFKC", TOK_NORM_NFKC},
    {"NFKD", TOK_NORM_NFKD},
    {"Prepend", TOK_NORM_PREPEND},
    {"Replace", TOK_NORM_REPLACE},
    {"Strip", TOK_NORM_STRIP},
};

static ia_status parse_normalizer(ia_tokenizer *tok, const json_t *n, const char *what, int depth) {
    ia_status st = IA_OK;
    if (!n || json_is_null(n))
        return IA_OK;
    if (!json_is_object(n))
        return ia_error_set(IA_EPARSE, "%s: normalizer must be an object or null", what);
    const char *type = piece_type(n, what, "normalizer");
    if (!type)
        return IA_EPARSE;
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(n, "normalizers");
        if (!json_is_array(list))
            return ia_error_set(IA_EPARSE, "%s: normalizer.normalizers must be a list", what);
        if (depth > 4 || tok->n_norm + json_array_size(list) > 32)
            return ia_error_set(IA_EUNSUPPORTED, "%s: the normalizer Sequence is too deep", what);
        for (size_t i = 0; i < json_array_size(list); i++)
            if ((st = parse_normalizer(tok, json_array_get(list, i), what, depth + 1)))
                return st;
        return IA_OK;
    }
    size_t k = 0, nt = sizeof NORM_TYPES / sizeof NORM_TYPES[0];
    while (k < nt && strcmp(NORM_TYPES[k].type, type) != 0)
        k++;
    if (k == nt)
        return ia_error_set(IA_EUNSUPPORTED,
                            "%s: normalizer type '%s' is not supported yet (BertNormalizer, "
                            "Lowercase, NFC, NFD, NFKC, NFKD, Prepend, Replace, Strip, Sequence)",
                            what, type);
    tok_norm_step *step;
    if ((st = tok_norm_push(tok, &step)))
        return st;
    step->kind = NORM_TYPES[k].kind;
    const char *content = NULL;
    size_t clen = 0;
    switch (step->kind) {
    case TOK_NORM_BERT:
        if (strcmp(type, "Lowercase") == 0) {
            step->bert.lowercase = true;
            return IA_OK;
        }
        return parse_bert_normalizer(&step->bert, n, what);
    case TOK_NORM_PREPEND:
    case TOK_NORM_REPLACE:
        if ((st = get_string(n, step->kind == TOK_NORM_PREPEND ? "prepend" : "content", NULL,
                             &content, &clen, what, "normalizer")))
            return st;
        if (!(step->content = ia_strndup(content, clen)))
            return IA_ENOMEM;
        step->content_len = clen;
        if (step->kind == TOK_NORM_REPLACE)
            return parse_pattern(json_object_get(n, "pattern"), &step->pattern, what,
                                 "normalizer(Replace)");
        return IA_OK;
    case TOK_NORM_STRIP:
        if ((st = get_bool(n, "strip_left", true, &step->left, what, "normalizer")) ||
            (st = get_bool(n, "strip_right", true, &step->right, what, "normalizer")))
            return st;
        return IA_OK;
    default:
        return IA_OK;
    }
}

/* ---- pre-tokenizers -------------------------------------------------------------------- */

static const struct {
    const char *name;
    tok_split_behavior how;
} BEHAVIORS[] = {
    {"Removed", TOK_SPLIT_REMOVED},
    {"Isolated", TOK_SPLIT_ISOLATED},
    {"MergedWithPrevious", TOK_SPLIT_MERGED_WITH_PREVIOUS},
    {"MergedWithNext", TOK_SPLIT_MERGED_WITH_NEXT},
    {"Contiguous", TOK_SPLIT_CONTIGUOUS},
};

static const struct {
    const char *name;
    int scheme;
} PREPEND_SCHEMES[] = {
    {"always", TOK_PREPEND_ALWAYS},
    {"first", TOK_PREPEND_FIRST},
    {"never", TOK_PREPEND_NEVER},
};

static ia_status parse_split(tok_pre_step *step, const json_t *p, const char *what) {
    const char *how = NULL;
    ia_status st;
    if ((st = get_string(p, "behavior", NULL, &how, NULL, what, "pre_tokenizer(Split)")) ||
        (st = get_bool(p, "invert", false, &step->invert, what, "pre_tokenizer(Split)")))
        return st;
    size_t k = 0, nb = sizeof BEHAVIORS / sizeof BEHAVIORS[0];
    while (k < nb && strcmp(BEHAVIORS[k].name, how) != 0)
        k++;
    if (k == nb)
        return ia_error_set(IA_EPARSE, "%s: pre_tokenizer(Split).behavior '%s' is unknown", what,
                            how);
    step->behavior = BEHAVIORS[k].how;
    return parse_pattern(json_object_get(p, "pattern"), &step->pattern, what,
                         "pre_tokenizer(Split)");
}

static ia_status parse_metaspace(tok_pre_step *step, const json_t *p, const char *what) {
    const char *rep = NULL, *scheme = "always";
    size_t rlen = 0;
    bool add_prefix = true;
    ia_status st;
    if ((st = get_string(p, "replacement", "\xe2\x96\x81", &rep, &rlen, what,
                         "pre_tokenizer(Metaspace)")) ||
        (st = get_bool(p, "split", true, &step->split, what, "pre_tokenizer(Metaspace)")) ||
        (st = get_bool(p, "add_prefix_space", true, &add_prefix, what, "pre_tokenizer(Metaspace)")))
        return st;
    int32_t cp;
    if (rlen == 0 || rlen >= sizeof step->replacement || !ia_utf8_valid(rep, rlen, NULL) ||
        tok_utf8_decode((const unsigned char *)rep, &cp) != (int)rlen)
        return ia_error_set(IA_EPARSE,
                            "%s: pre_tokenizer(Metaspace).replacement must be one "
                            "character",
                            what);
    memcpy(step->replacement, rep, rlen);
    step->replacement_len = rlen;
    /* older files say add_prefix_space instead of prepend_scheme */
    if (!add_prefix)
        scheme = "never";
    if ((st = get_string(p, "prepend_scheme", scheme, &scheme, NULL, what,
                         "pre_tokenizer(Metaspace)")))
        return st;
    size_t k = 0, ns = sizeof PREPEND_SCHEMES / sizeof PREPEND_SCHEMES[0];
    while (k < ns && strcmp(PREPEND_SCHEMES[k].name, scheme) != 0)
        k++;
    if (k == ns)
        return ia_error_set(IA_EPARSE,
                            "%s: pre_tokenizer(Metaspace).prepend_scheme '%s' is "
                            "unknown",
                            what, scheme);
    step->prepend_scheme = PREPEND_SCHEMES[k].scheme;
    return IA_OK;
}

static ia_status parse_byte_level_pre(tok_pre_step *step, const json_t *p, const char *what) {
    ia_status st;
    if ((st = get_bool(p, "add_prefix_space", true, &step->add_prefix_space, what,
                       "pre_tokenizer(ByteLevel)")) ||
        (st = get_bool(p, "use_regex", true, &step->use_regex, what, "pre_tokenizer(ByteLevel)")))
        return st;
    if (!step->use_regex)
        return IA_OK;
    const char *re = tok_known_regex("gpt2");
    return tok_pattern_regex(&step->pattern, re, strlen(re), what);
}

static ia_status parse_pre_tokenizer(ia_tokenizer *tok, const json_t *p, const char *what,
                                     bool in_sequence) {
    if (!p || json_is_null(p))
        return IA_OK;
    if (!json_is_object(p))
        return ia_error_set(IA_EPARSE, "%s: pre_tokenizer must be an object or null", what);
    const char *type = piece_type(p, what, "pre_tokenizer");
    if (!type)
        return IA_EPARSE;
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(p, "pretokenizers");
        if (!json_is_array(list))
            return ia_error_set(IA_EPARSE, "%s: pre_tokenizer.pretokenizers must be a list", what);
        if (in_sequence)
            return ia_error_set(IA_EUNSUPPORTED,
                                "%s: nested pre_tokenizer Sequences are not "
                                "supported",
                                what);
        if (json_array_size(list) == 1)
            return parse_pre_tokenizer(tok, json_array_get(list, 0), what, false);
        for (size_t i = 0; i < json_array_size(list); i++) {
            ia_status st = parse_pre_tokenizer(tok, json_array_get(list, i), what, true);
            if (st)
                return st;
        }
        return IA_OK;
    }
    if (strcmp(type, "BertPreTokenizer") == 0 && !in_sequence) {
        tok->bert_pretok = true;
        return IA_OK;
    }
    static const struct {
        const char *type;
        tok_pre_kind kind;
    } PRE_TYPES[] = {{"ByteLevel", TOK_PRE_BYTELEVEL},
                     {"Split", TOK_PRE_SPLIT},
                     {"Metaspace", TOK_PRE_METASPACE}};
    size_t k = 0, nt = sizeof PRE_TYPES / sizeof PRE_TYPES[0];
    while (k < nt && strcmp(PRE_TYPES[k].type, type) != 0)
        k++;
    if (k == nt)
        return ia_error_set(IA_EUNSUPPORTED,
                            "%s: pre_tokenizer type '%s' is not supported yet (BertPreTokenizer, "
                            "ByteLevel, Split, Metaspace or a Sequence of the last three)",
                            what, type);
    if (tok->n_pre == TOK_MAX_PRE)
        return ia_error_set(IA_EUNSUPPORTED, "%s: more than %d pre-tokenizers", what, TOK_MAX_PRE);
    tok_pre_step *step = &tok->pre[tok->n_pre++];
    memset(step, 0, sizeof *step);
    step->kind = PRE_TYPES[k].kind;
    switch (step->kind) {
    case TOK_PRE_BYTELEVEL:
        return parse_byte_level_pre(step, p, what);
    case TOK_PRE_SPLIT:
        return parse_split(step, p, what);
    case TOK_PRE_METASPACE:
        return parse_metaspace(step, p, what);
    }
    return IA_OK;
}

/* Largest id used by the model vocabulary and the added tokens. */
static ia_status max_id(const json_t *vocab, const json_t *added, const char *what, int32_t *out) {
    int32_t m = -1;
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)vocab, key, v) {
        int32_t id;
        if (get_id(v, &id, what, "model.vocab values") != IA_OK)
            return ia_error_set(IA_EPARSE, "%s: model.vocab['%s'] must be an id between 0 and %lld",
                                what, key, (long long)MAX_IDS - 1);
        if (id > m)
            m = id;
    }
    size_t i;
    json_array_foreach((json_t *)added, i, v) {
        int32_t id;
        if (!json_is_object(v) || get_id(json_object_get(v, "id"), &id, what, "added_tokens[].id"))
            return ia_error_set(IA_EPARSE, "%s: added_tokens[%zu].id is missing or not an id", what,
                                i);
        if (id > m)
            m = id;
    }
    *out = m;
    return IA_OK;
}

/* One merge: "left right" or ["left", "right"]. */
static ia_status merge_parts(const json_t *m, size_t i, const char *what, const char **l,
                             size_t *ll, const char **r, size_t *rl) {
    if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
        json_is_string(json_array_get(m, 1))) {
        *l = json_string_value(json_array_get(m, 0));
        *ll = json_string_length(json_array_get(m, 0));
        *r = json_string_value(json_array_get(m, 1));
        *rl = json_string_length(json_array_get(m, 1));
        return IA_OK;
    }
    if (json_is_string(m)) {
        const char *s = json_string_value(m), *sp = strchr(s, ' ');
        if (sp) {
            *l = s;
            *ll = (size_t)(sp - s);
            *r = sp + 1;
            *rl = json_string_length(m) - *ll - 1;
            return IA_OK;
        }
    }
    return ia_error_set(IA_EPARSE, "%s: model.merges[%zu] must be \"left right\" or [left, right]",
                        what, i);
}

ia_status tok_merge_add(ia_tokenizer *tok, const char *l, size_t ll, const char *r, size_t rl,
                        uint32_t rank, const char *what) {
    int32_t a = tok_vocab_find2(&tok->vocab, "", 0, l, ll);
    int32_t b = tok_vocab_find2(&tok->vocab, "", 0, r, rl);
    /* HF drops the continuing-subword prefix of the right side when joining. */
    if (tok->prefix_len && rl >= tok->prefix_len && memcmp(r, tok->prefix, tok->prefix_len) == 0) {
        r += tok->prefix_len;
        rl -= tok->prefix_len;
    }
    int32_t id = tok_vocab_find2(&tok->vocab, l, ll, r, rl);
    if (a < 0 || b < 0 || id < 0)
        return ia_error_set(IA_EPARSE,
                            "%s: merge %u ('%.*s' + '%.*s') uses a token that is not in the "
                            "vocabulary",
                            what, rank + 1, (int)(ll > 64 ? 64 : ll), l, (int)(rl > 64 ? 64 : rl),
                            r);
    tok_merges_put(&tok->merges, a, b, rank, id);
    return IA_OK;
}

static ia_status parse_bpe(ia_tokenizer *tok, const json_t *model, const char *what) {
    ia_status st;
    const char *prefix = NULL, *suffix = NULL, *unk = NULL;
    size_t plen = 0, slen = 0;
    const json_t *dropout = json_object_get(model, "dropout");
    if (dropout && !json_is_null(dropout) &&
        !(json_is_number(dropout) && json_number_value(dropout) == 0.0))
        return ia_error_set(IA_EUNSUPPORTED,
                            "%s: BPE dropout is random at encode time; only null or 0 is "
                            "supported",
                            what);
    if ((st = get_string(model, "continuing_subword_prefix", "", &prefix, &plen, what, "model")) ||
        (st = get_string(model, "end_of_word_suffix", "", &suffix, &slen, what, "model")) ||
        (st = get_string(model, "unk_token", "", &unk, NULL, what, "model")) ||
        (st = get_bool(model, "fuse_unk", false, &tok->fuse_unk, what, "model")) ||
        (st = get_bool(model, "byte_fallback", false, &tok->byte_fallback, what, "model")) ||
        (st = get_bool(model, "ignore_merges", false, &tok->ignore_merges, what, "model")))
        return st;
    if (plen && (!(tok->prefix = ia_strndup(prefix, plen))))
        return IA_ENOMEM;
    tok->prefix_len = plen;
    if (slen && (!(tok->suffix = ia_strndup(suffix, slen))))
        return IA_ENOMEM;
    tok->suffix_len = slen;
    if (unk[0]) {
        if (!(tok->unk = ia_strdup(unk)))
            return IA_ENOMEM;
        tok->unk_id = tok_vocab_find2(&tok->vocab, "", 0, unk, strlen(unk));
    }
    const json_t *merges = json_object_get(model, "merges");
    if (merges && !json_is_array(merges) && !json_is_null(merges))
        return ia_error_set(IA_EPARSE, "%s: model.merges must be a list", what);
    size_t n = json_array_size(merges);
    if (n > (size_t)MAX_IDS)
        return ia_error_set(IA_EPARSE, "%s: model.merges has %zu entries", what, n);
    if ((st = tok_merges_init(&tok->merges, n)))
        return st;
    for (size_t i = 0; i < n; i++) {
        const char *l = "", *r = "";
        size_t ll = 0, rl = 0;
        if ((st = merge_parts(json_array_get(merges, i), i, what, &l, &ll, &r, &rl)) ||
            (st = tok_merge_add(tok, l, ll, r, rl, (uint32_t)i, what)))
            return st;
    }
    return IA_OK;
}

static ia_status parse_model(ia_tokenizer *tok, const json_t *model, const json_t *added,
                             const char *what) {
    ia_status st;
    if (!json_is_object(model))
        return ia_error_set(IA_EPARSE, "%s: model is missing or not an object", what);
    const char *type = piece_type(model, what, "model");
    if (!type)
        return IA_EPARSE;
    bool bpe = strcmp(type, "BPE") == 0;
    if (!bpe && strcmp(type, "WordPiece") != 0)
        return ia_error_set(IA_EUNSUPPORTED,
                            "%s: model type '%s' is not supported yet (WordPiece or BPE)", what,
                            type);
    tok->model = bpe ? TOK_MODEL_BPE : TOK_MODEL_WORDPIECE;
    const json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_object(vocab))
        return ia_error_set(IA_EPARSE, "%s: model.vocab is missing or not an object", what);
    if (json_object_size(vocab) == 0)
        return ia_error_set(IA_EPARSE, "%s: model.vocab is empty", what);
    int32_t m = -1;
    if ((st = max_id(vocab, added, what, &m)))
        return st;
    if ((st = tok_vocab_init(&tok->vocab, (size_t)m + 1)))
        return st;
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)vocab, key, v) {
        int32_t id = (int32_t)json_integer_value(v);
        if (tok->vocab.tokens[id])
            return ia_error_set(IA_EPARSE, "%s: model.vocab gives id %d to both '%s' and '%s'",
                                what, (int)id, tok->vocab.tokens[id], key);
        /* jansson keys stop at NUL; tokens with NUL bytes cannot be looked up anyway. */
        if ((st = tok_vocab_set(&tok->vocab, id, key, strlen(key))))
            return st;
    }
    if ((st = tok_vocab_build_index(&tok->vocab)))
        return st;
    if (bpe)
        return parse_bpe(tok, model, what);
    const char *unk = NULL, *prefix = NULL;
    size_t prefix_len = 0;
    if ((st = get_string(model, "unk_token", "[UNK]", &unk, NULL, what, "model")) ||
        (st = get_string(model, "continuing_subword_prefix", "##", &prefix, &prefix_len, what,
                         "model")))
        return st;
    const json_t *mc = json_object_get(model, "max_input_chars_per_word");
    tok->max_chars = 100;
    if (mc && !json_is_null(mc)) {
        if (!json_is_integer(mc) || json_integer_value(mc) < 0)
            return ia_error_set(IA_EPARSE, "%s: model.max_input_chars_per_word must be a count",
                                what);
        tok->max_chars = (size_t)json_integer_value(mc);
    }
    tok->unk = ia_strdup(unk);
    tok->prefix = ia_strndup(prefix, prefix_len);
    if (!tok->unk || !tok->prefix)
        return IA_ENOMEM;
    tok->prefix_len = prefix_len;
    tok->unk_id = tok_vocab_find2(&tok->vocab, "", 0, unk, strlen(unk));
    return IA_OK;
}

static ia_status parse_added(ia_tokenizer *tok, const json_t *added, const char *what) {
    size_t i;
    const json_t *a;
    json_array_foreach((json_t *)added, i, a) {
        char where[64];
        snprintf(where, sizeof where, "added_tokens[%zu]", i);
        const char *content = NULL;
        size_t len = 0;
        int32_t id = (int32_t)json_integer_value(json_object_get(a, "id"));
        bool special = false, single = false, lstrip = false, rstrip = false, normalized = false;
        ia_status st;
        if ((st = get_string(a, "content", NULL, &content, &len, what, where)) ||
            (st = get_bool(a, "special", false, &special, what, where)) ||
            (st = get_bool(a, "single_word", false, &single, what, where)) ||
            (st = get_bool(a, "lstrip", false, &lstrip, what, where)) ||
            (st = get_bool(a, "rstrip", false, &rstrip, what, where)) ||
            (st = get_bool(a, "normalized", !special, &normalized, what, where)) ||
            (st =
                 tok_add_token(tok, content, len, id, single, lstrip, rstrip, normalized, special)))
            return st;
    }
    return IA_OK;
}

/* A [token, id] pair of BertProcessing/RobertaProcessing. */
static ia_status parse_pair_token(const json_t *pp, const char *key, const char *what,
                                  const char **s, int32_t *id) {
    const json_t *v = json_object_get(pp, key);
    if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_string(json_array_get(v, 0)))
        return ia_error_set(IA_EPARSE, "%s: post_processor.%s must be [token, id]", what, key);
    *s = json_string_value(json_array_get(v, 0));
    char where[64];
    snprintf(where, sizeof where, "post_processor.%s[1]", key);
    return get_id(json_array_get(v, 1), id, what, where);
}

ia_status tok_template_add(tok_template *t, int kind, uint32_t type_id, const int32_t *ids,
                           char *const *tokens, size_t n_ids) {
    tok_template_piece *p = ia_realloc_array(t->pieces, t->n + 1, sizeof *p);
    if (!p)
        return IA_ENOMEM;
    t->pieces = p;
    p = &p[t->n++];
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->type_id = type_id;
    if (kind != 2)
        return IA_OK;
    p->ids = ia_malloc_array(n_ids ? n_ids : 1, sizeof *p->ids);
    p->tokens = ia_calloc(n_ids ? n_ids : 1, sizeof *p->tokens);
    if (!p->ids || !p->tokens)
        return IA_ENOMEM;
    p->n_ids = n_ids;
    for (size_t i = 0; i < n_ids; i++) {
        p->ids[i] = ids[i];
        if (!(p->tokens[i] = ia_strdup(tokens[i])))
            return IA_ENOMEM;
    }
    t->n_special += n_ids;
    return IA_OK;
}

static ia_status special1(tok_template *t, const char *s, int32_t id) {
    char *tokens[1] = {(char *)s};
    return tok_template_add(t, 2, 0, &id, tokens, 1);
}

static ia_status parse_bert_processing(ia_tokenizer *tok, const json_t *pp, bool roberta,
                                       const char *what) {
    const char *sep, *cls;
    int32_t sep_id, cls_id;
    ia_status st;
    if ((st = parse_pair_token(pp, "sep", what, &sep, &sep_id)) ||
        (st = parse_pair_token(pp, "cls", what, &cls, &cls_id)))
        return st;
    /* BERT: [CLS] A [SEP] (B [SEP], type 1). RoBERTa: <s> A </s> (</s> B </s>), all type 0. */
    uint32_t b_type = roberta ? 0 : 1;
    if ((st = special1(&tok->single, cls, cls_id)) ||
        (st = tok_template_add(&tok->single, 0, 0, NULL, NULL, 0)) ||
        (st = special1(&tok->single, sep, sep_id)) || (st = special1(&tok->pair, cls, cls_id)) ||
        (st = tok_template_add(&tok->pair, 0, 0, NULL, NULL, 0)) ||
        (st = special1(&tok->pair, sep, sep_id)))
        return st;
    if (roberta && (st = special1(&tok->pair, sep, sep_id)))
        return st;
    if ((st = tok_template_add(&tok->pair, 1, b_type, NULL, NULL, 0)))
        return st;
    tok_template *p = &tok->pair;
    if ((st = special1(p, sep, sep_id)))
        return st;
    p->pieces[p->n - 1].type_id = b_type;
    return IA_OK;
}

static ia_status parse_template(tok_template *t, const json_t *list, const json_t *specials,
                                const char *what, const char *field) {
    if (!json_is_array(list))
        return ia_error_set(IA_EPARSE, "%s: post_processor.%s must be a list", what, field);
    size_t i;
    const json_t *item;
    json_array_foreach((json_t *)list, i, item) {
        const json_t *seq = json_object_get(item, "Sequence");
        const json_t *sp = json_object_get(item, "SpecialToken");
        const json_t *body = seq ? seq : sp;
        const json_t *tid = json_object_get(body, "type_id");
        const json_t *name = json_object_get(body, "id");
        if (!json_is_object(body) || !json_is_string(name) || !json_is_integer(tid) ||
            json_integer_value(tid) < 0 || json_integer_value(tid) > UINT32_MAX)
            return ia_error_set(IA_EPARSE,
                                "%s: post_processor.%s[%zu] must be {\"Sequence\" or "
                                "\"SpecialToken\": {\"id\", \"type_id\"}}",
                                what, field, i);
        uint32_t type_id = (uint32_t)json_integer_value(tid);
        const char *n = json_string_value(name);
        ia_status st;
        if (seq) {
            if (strcmp(n, "A") != 0 && strcmp(n, "B") != 0)
                return ia_error_set(IA_EPARSE,
                                    "%s: post_processor.%s[%zu]: sequence '%s' is "
                                    "neither A nor B",
                                    what, field, i, n);
            if ((st = tok_template_add(t, n[0] == 'A' ? 0 : 1, type_id, NULL, NULL, 0)))
                return st;
            continue;
        }
        const json_t *def = json_object_get(specials, n);
        const json_t *ids = json_object_get(def, "ids");
        const json_t *toks = json_object_get(def, "tokens");
        if (!json_is_array(ids) || !json_is_array(toks) ||
            json_array_size(ids) != json_array_size(toks) || json_array_size(ids) > 64)
            return ia_error_set(IA_EPARSE,
                                "%s: post_processor.special_tokens['%s'] is missing or its ids "
                                "and tokens do not match",
                                what, n);
        int32_t id_buf[64];
        char *tok_buf[64];
        for (size_t k = 0; k < json_array_size(ids); k++) {
            if ((st = get_id(json_array_get(ids, k), &id_buf[k], what,
                             "post_processor.special_tokens[].ids[]")))
                return st;
            if (!json_is_string(json_array_get(toks, k)))
                return ia_error_set(IA_EPARSE,
                                    "%s: post_processor.special_tokens['%s'].tokens must be "
                                    "strings",
                                    what, n);
            tok_buf[k] = (char *)json_string_value(json_array_get(toks, k));
        }
        if ((st = tok_template_add(t, 2, type_id, id_buf, tok_buf, json_array_size(ids))))
            return st;
    }
    return IA_OK;
}

static ia_status parse_post(ia_tokenizer *tok, const json_t *pp, const char *what) {
    ia_status st;
    if (!pp || json_is_null(pp))
        return IA_OK;
    const char *type = piece_type(pp, what, "post_processor");
    if (!type)
        return IA_EPARSE;
    /* ByteLevel only trims offsets: for ids it is no post-processor at all. */
    if (strcmp(type, "ByteLevel") == 0)
        return IA_OK;
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(pp, "processors");
        if (!json_is_array(list))
            return ia_error_set(IA_EPARSE, "%s: post_processor.processors must be a list", what);
        for (size_t i = 0; i < json_array_size(list); i++) {
            const json_t *one = json_array_get(list, i);
            const char *t = json_is_object(one) ? piece_type(one, what, "post_processor[]") : NULL;
            if (!t)
                return IA_EPARSE;
            if (strcmp(t, "Sequence") == 0 || (tok->has_post && strcmp(t, "ByteLevel") != 0))
                return ia_error_set(IA_EUNSUPPORTED,
                                    "%s: a post_processor Sequence may hold ByteLevel and one "
                                    "template processor only",
                                    what);
            if ((st = parse_post(tok, one, what)))
                return st;
        }
        return IA_OK;
    }
    tok->has_post = true;
    if (strcmp(type, "BertProcessing") == 0 || strcmp(type, "RobertaProcessing") == 0)
        return parse_bert_processing(tok, pp, type[0] == 'R', what);
    if (strcmp(type, "TemplateProcessing") != 0)
        return ia_error_set(IA_EUNSUPPORTED,
                            "%s: post_processor type '%s' is not supported yet "
                            "(TemplateProcessing, BertProcessing or RobertaProcessing)",
                            what, type);
    const json_t *specials = json_object_get(pp, "special_tokens");
    if ((st = parse_template(&tok->single, json_object_get(pp, "single"), specials, what,
                             "single")) ||
        (st = parse_template(&tok->pair, json_object_get(pp, "pair"), specials, what, "pair")))
        return st;
    return IA_OK;
}

/* ---- decoders ------------------------------------------------------------------------- */

static ia_status dec_push(ia_tokenizer *tok, tok_dec_kind kind, tok_dec_step **out,
                          const char *what) {
    if (tok->n_dec == TOK_MAX_DEC)
        return ia_error_set(IA_EUNSUPPORTED, "%s: more than %d decoders", what, TOK_MAX_DEC);
    tok_dec_step *d = &tok->dec[tok->n_dec++];
    memset(d, 0, sizeof *d);
    d->kind = kind;
    *out = d;
    return IA_OK;
}

/* One character of a decoder field, as a code point. */
static ia_status get_char(const json_t *obj, const char *key, const char *def, int32_t *cp,
                          const char *what) {
    const char *s;
    size_t len;
    ia_status st = get_string(obj, key, def, &s, &len, what, "decoder");
    if (st)
        return st;
    if (len == 0 || !ia_utf8_valid(s, len, NULL) ||
        tok_utf8_decode((const unsigned char *)s, cp) != (int)len)
        return ia_error_set(IA_EPARSE, "%s: decoder.%s must be one character", what, key);
    return IA_OK;
}

static ia_status parse_decoder(ia_tokenizer *tok, const json_t *d, const char *what,
                               bool in_sequence) {
    ia_status st;
    if (!d || json_is_null(d))
        return IA_OK;
    const char *type = json_is_object(d) ? piece_type(d, what, "decoder") : NULL;
    if (!type)
        return json_is_object(d) ? IA_EPARSE
                                 : ia_error_set(IA_EPARSE, "%s: decoder must be an object", what);
    tok->has_dec = true;
    tok_dec_step *step = NULL;
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(d, "decoders");
        if (!json_is_array(list) || in_sequence)
            return ia_error_set(IA_EPARSE, "%s: decoder.decoders must be a list (not nested)",
                                what);
        for (size_t i = 0; i < json_array_size(list); i++)
            if ((st = parse_decoder(tok, json_array_get(list, i), what, true)))
                return st;
        return IA_OK;
    }
    if (strcmp(type, "ByteLevel") == 0)
        return dec_push(tok, TOK_DEC_BYTELEVEL, &step, what);
    if (strcmp(type, "ByteFallback") == 0)
        return dec_push(tok, TOK_DEC_BYTE_FALLBACK, &step, what);
    if (strcmp(type, "Fuse") == 0)
        return dec_push(tok, TOK_DEC_FUSE, &step, what);
    if (strcmp(type, "Strip") == 0) {
        const json_t *a = json_object_get(d, "start"), *b = json_object_get(d, "stop");
        if ((st = dec_push(tok, TOK_DEC_STRIP, &step, what)) ||
            (st = get_char(d, "content", " ", &step->cp, what)))
            return st;
        if ((a && !json_is_integer(a)) || (b && !json_is_integer(b)) || json_integer_value(a) < 0 ||
            json_integer_value(b) < 0)
            return ia_error_set(IA_EPARSE, "%s: decoder(Strip).start/stop must be counts", what);
        step->start = (size_t)json_integer_value(a);
        step->stop = (size_t)json_integer_value(b);
        return IA_OK;
    }
    if (strcmp(type, "Replace") == 0) {
        const json_t *pat = json_object_get(d, "pattern");
        const json_t *from = json_object_get(pat, "String");
        const char *to;
        size_t to_len;
        if (!json_is_string(from))
            return ia_error_set(IA_EUNSUPPORTED,
                                "%s: decoder(Replace) supports a String pattern only", what);
        if ((st = dec_push(tok, TOK_DEC_REPLACE, &step, what)) ||
            (st = get_string(d, "content", NULL, &to, &to_len, what, "decoder(Replace)")))
            return st;
        step->from = ia_strndup(json_string_value(from), json_string_length(from));
        step->to = ia_strndup(to, to_len);
        if (!step->from || !step->to)
            return IA_ENOMEM;
        step->from_len = json_string_length(from);
        step->to_len = to_len;
        return IA_OK;
    }
    if (strcmp(type, "Metaspace") == 0) {
        const char *scheme = "always";
        bool add_prefix = true;
        if ((st = dec_push(tok, TOK_DEC_METASPACE, &step, what)) ||
            (st = get_char(d, "replacement", "\xe2\x96\x81", &step->cp, what)) ||
            (st = get_bool(d, "add_prefix_space", true, &add_prefix, what, "decoder")) ||
            (st = get_string(d, "prepend_scheme", add_prefix ? "always" : "never", &scheme, NULL,
                             what, "decoder")))
            return st;
        step->prepend = strcmp(scheme, "never") != 0;
        return IA_OK;
    }
    if (strcmp(type, "WordPiece") == 0) {
        const char *prefix;
        size_t plen;
        if ((st = dec_push(tok, TOK_DEC_WORDPIECE, &step, what)) ||
            (st = get_string(d, "prefix", "##", &prefix, &plen, what, "decoder")) ||
            (st = get_bool(d, "cleanup", true, &step->cleanup, what, "decoder")))
            return st;
        if (!(step->from = ia_strndup(prefix, plen)))
            return IA_ENOMEM;
        step->from_len = plen;
        return IA_OK;
    }
    return ia_error_set(IA_EUNSUPPORTED,
                        "%s: decoder type '%s' is not supported yet (ByteLevel, ByteFallback, "
                        "Fuse, Strip, Replace, Metaspace, WordPiece or a Sequence of them)",
                        what, type);
}

static ia_status parse_padding(ia_tokenizer *tok, const json_t *pad, const char *what) {
    if (!pad || json_is_null(pad))
        return IA_OK;
    const json_t *id = json_object_get(pad, "pad_id");
    const json_t *type_id = json_object_get(pad, "pad_type_id");
    const json_t *token = json_object_get(pad, "pad_token");
    if (id && json_is_integer(id) && json_integer_value(id) >= 0 &&
        json_integer_value(id) < MAX_IDS)
        tok->pad_id = (int32_t)json_integer_value(id);
    if (type_id && json_is_integer(type_id) && json_integer_value(type_id) >= 0 &&
        json_integer_value(type_id) <= UINT32_MAX)
        tok->pad_type_id = (uint32_t)json_integer_value(type_id);
    if (json_is_string(token)) {
        free(tok->pad_token);
        if (!(tok->pad_token = ia_strdup(json_string_value(token))))
            return IA_ENOMEM;
    }
    return IA_OK;
}

ia_tokenizer *tok_new(void) {
    ia_tokenizer *tok = ia_calloc(1, sizeof *tok);
    if (tok) {
        tok->unk_id = -1;
        tok->pad_id = -1;
        tok->bos_id = -1;
        tok->eos_id = -1;
        for (int b = 0; b < 256; b++)
            tok->byte_ids[b] = -1;
    }
    return tok;
}

ia_status ia_tokenizer_parse_json(const char *text, size_t len, const char *what,
                                  ia_tokenizer **out) {
    json_t *root = NULL;
    ia_tokenizer *tok = NULL;
    ia_status st;
    *out = NULL;
    if ((st = ia_json_parse(text, len, what, &root)))
        goto fail;
    if (!json_is_object(root)) {
        st = ia_error_set(IA_EPARSE, "%s: the document is not a JSON object", what);
        goto fail;
    }
    if (!(tok = tok_new())) {
        st = IA_ENOMEM;
        goto fail;
    }
    const json_t *added = json_object_get(root, "added_tokens");
    if (added && !json_is_array(added) && !json_is_null(added)) {
        st = ia_error_set(IA_EPARSE, "%s: added_tokens must be a list", what);
        goto fail;
    }
    if (!json_is_array(added))
        added = NULL;
    if ((st = parse_model(tok, json_object_get(root, "model"), added, what)) ||
        (st = parse_normalizer(tok, json_object_get(root, "normalizer"), what, 0)) ||
        (st = parse_pre_tokenizer(tok, json_object_get(root, "pre_tokenizer"), what, false)) ||
        (st = parse_decoder(tok, json_object_get(root, "decoder"), what, false)) ||
        (st = parse_post(tok, json_object_get(root, "post_processor"), what)) ||
        (st = parse_padding(tok, json_object_get(root, "padding"), what)))
        goto fail;
    if (added && (st = parse_added(tok, added, what)))
        goto fail;
    if ((st = tok_finish(tok, what)))
        goto fail;
    json_decref(root);
    *out = tok;
    return IA_OK;
fail:
    json_decref(root);
    ia_tokenizer_free(tok);
    return st;
}

ia_status ia_tokenizer_load_json(const char *path, ia_tokenizer **out) {
    char *text = NULL;
    size_t len;
    *out = NULL;
    ia_status st = ia_file_read_all(path, MAX_JSON_BYTES, &text, &len);
    if (st == IA_OK)
        st = ia_tokenizer_parse_json(text, len, path, out);
    free(text);
    return st;
}

/* ---- vocab.txt ------------------------------------------------------------------ */

static const char *const BERT_SPECIALS[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};

static ia_status load_vocab_txt(const char *path, bool lowercase, bool strip_accents, bool chinese,
                                ia_tokenizer **out) {
    char *text = NULL;
    size_t len;
    ia_tokenizer *tok = NULL;
    ia_status st;
    *out = NULL;
    if ((st = ia_file_read_all(path, MAX_VOCAB_TXT_BYTES, &text, &len)))
        goto fail;
    size_t bad;
    if (!ia_utf8_valid(text, len, &bad)) {
        st = ia_error_set(IA_EPARSE, "%s: invalid UTF-8 at byte %zu", path, bad);
        goto fail;
    }
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    if (len && text[len - 1] != '\n')
        lines++;
    if (lines == 0) {
        st = ia_error_set(IA_EPARSE, "%s: the vocabulary is empty", path);
        goto fail;
    }
    if (!(tok = tok_new()) || (st = tok_vocab_init(&tok->vocab, lines))) {
        st = IA_ENOMEM;
        goto fail;
    }
    /* One token per line, id = line number; trailing whitespace is not part of
     * the token (HF trims it). */
    size_t id = 0;
    for (char *p = text, *end = text + len; p < end; id++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *stop = nl ? nl : end;
        char *e = stop;
        while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
            e--;
        if ((st = tok_vocab_set(&tok->vocab, (int32_t)id, p, (size_t)(e - p))))
            goto fail;
        p = stop + 1;
    }
    if ((st = tok_vocab_build_index(&tok->vocab)))
        goto fail;
    tok_norm_step *norm;
    if ((st = tok_norm_push(tok, &norm)))
        goto fail;
    norm->kind = TOK_NORM_BERT;
    norm->bert.clean_text = true;
    norm->bert.handle_chinese = chinese;
    norm->bert.lowercase = lowercase;
    norm->bert.strip_accents = strip_accents;
    tok->bert_pretok = true;
    tok->max_chars = 100;
    tok->prefix = ia_strdup("##");
    tok->unk = ia_strdup("[UNK]");
    if (!tok->prefix || !tok->unk) {
        st = IA_ENOMEM;
        goto fail;
    }
    tok->prefix_len = 2;
    tok->unk_id = tok_vocab_find2(&tok->vocab, "", 0, "[UNK]", 5);
    int32_t cls = tok_vocab_find2(&tok->vocab, "", 0, "[CLS]", 5);
    int32_t sep = tok_vocab_find2(&tok->vocab, "", 0, "[SEP]", 5);
    if (cls < 0 || sep < 0) {
        st = ia_error_set(IA_EPARSE, "%s: [CLS] or [SEP] is missing from the vocabulary", path);
        goto fail;
    }
    for (size_t i = 0; i < sizeof BERT_SPECIALS / sizeof BERT_SPECIALS[0]; i++) {
        const char *s = BERT_SPECIALS[i];
        int32_t sid = tok_vocab_find2(&tok->vocab, "", 0, s, strlen(s));
        if (sid >= 0 &&
            (st = tok_add_token(tok, s, strlen(s), sid, false, false, false, false, true)))
            goto fail;
    }
    tok->has_post = true;
    if ((st = special1(&tok->single, "[CLS]", cls)) ||
        (st = tok_template_add(&tok->single, 0, 0, NULL, NULL, 0)) ||
        (st = special1(&tok->single, "[SEP]", sep)) || (st = special1(&tok->pair, "[CLS]", cls)) ||
        (st = tok_template_add(&tok->pair, 0, 0, NULL, NULL, 0)) ||
        (st = special1(&tok->pair, "[SEP]", sep)) ||
        (st = tok_template_add(&tok->pair, 1, 1, NULL, NULL, 0)) ||
        (st = special1(&tok->pair, "[SEP]", sep)))
        goto fail;
    tok->pair.pieces[tok->pair.n - 1].type_id = 1;
    if ((st = tok_finish(tok, path)))
        goto fail;
    free(text);
    *out = tok;
    return IA_OK;
fail:
    free(text);
    ia_tokenizer_free(tok);
    return st;
}

ia_status ia_tokenizer_load_vocab(const char *path, bool lowercase, ia_tokenizer **out) {
    return load_vocab_txt(path, lowercase, lowercase, true, out);
}

/* do_lower_case, strip_accents and tokenize_chinese_chars from
 * tokenizer_config.json, with BertTokenizer's defaults when absent. */
static ia_status read_bert_config(const char *dir, bool *lower, bool *strip, bool *chinese) {
    char *path = ia_path_join(dir, "tokenizer_config.json");
    json_t *cfg = NULL;
    ia_status st = IA_OK;
    *lower = true;
    *chinese = true;
    if (!path)
        return IA_ENOMEM;
    if (ia_file_exists(path)) {
        bool strip_set = false;
        if ((st = ia_json_load_file(path, 16u << 20, &cfg)))
            goto done;
        if ((st = get_bool(cfg, "do_lower_case", true, lower, path, "config")) ||
            (st = get_bool(cfg, "tokenize_chinese_chars", true, chinese, path, "config")))
            goto done;
        const json_t *sa = json_object_get(cfg, "strip_accents");
        strip_set = sa && !json_is_null(sa);
        if (strip_set && (st = get_bool(cfg, "strip_accents", false, strip, path, "config")))
            goto done;
        if (!strip_set)
            *strip = *lower;
    } else {
        *strip = *lower;
    }
done:
    json_decref(cfg);
    free(path);
    return st;
}

/* A token field of tokenizer_config.json: "text", {"content": "text"} or null. */
static const char *config_token(const json_t *cfg, const char *key) {
    const json_t *v = json_object_get(cfg, key);
    if (json_is_object(v))
        v = json_object_get(v, "content");
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* bos_token / eos_token from tokenizer_config.json, when it names tokens the
 * vocabulary has; the tokenizer's own guesses stay otherwise. */
static ia_status read_bos_eos(const char *dir, ia_tokenizer *tok) {
    char *path = ia_path_join(dir, "tokenizer_config.json");
    json_t *cfg = NULL;
    ia_status st = IA_OK;
    if (!path)
        return IA_ENOMEM;
    if (ia_file_exists(path) && (st = ia_json_load_file(path, 16u << 20, &cfg)) == IA_OK) {
        const char *bos = config_token(cfg, "bos_token"), *eos = config_token(cfg, "eos_token");
        int32_t id;
        /* an explicit null (Qwen2's bos_token) means the model has none */
        if (json_is_null(json_object_get(cfg, "bos_token")))
            tok->bos_id = -1;
        if (bos && (id = ia_tokenizer_token_to_id(tok, bos)) >= 0)
            tok->bos_id = id;
        if (eos && (id = ia_tokenizer_token_to_id(tok, eos)) >= 0)
            tok->eos_id = id;
    }
    json_decref(cfg);
    free(path);
    return st;
}

ia_status ia_tokenizer_load_dir(const char *dir, ia_tokenizer **out) {
    ia_status st;
    char *json_path = ia_path_join(dir, "tokenizer.json");
    char *vocab_path = ia_path_join(dir, "vocab.txt");
    *out = NULL;
    if (!json_path || !vocab_path) {
        st = IA_ENOMEM;
        goto done;
    }
    if (ia_file_exists(json_path)) {
        st = ia_tokenizer_load_json(json_path, out);
    } else if (ia_file_exists(vocab_path)) {
        bool lower = true, strip = true, chinese = true;
        if ((st = read_bert_config(dir, &lower, &strip, &chinese)) == IA_OK)
            st = load_vocab_txt(vocab_path, lower, strip, chinese, out);
    } else {
        st =
            ia_error_set(IA_ENOTFOUND, "%s: no tokenizer.json or vocab.txt in this directory", dir);
    }
    if (st == IA_OK && (st = read_bos_eos(dir, *out))) {
        ia_tokenizer_free(*out);
        *out = NULL;
    }
done:
    free(json_path);
    free(vocab_path);
    return st;
}

/* ---- shared finishing steps and accessors ------------------------------------------ */

ia_status tok_add_token(ia_tokenizer *tok, const char *content, size_t len, int32_t id,
                        bool single_word, bool lstrip, bool rstrip, bool normalized, bool special) {
    if (len == 0)
        return IA_OK; /* HF ignores empty added tokens */
    tok_added *a = ia_realloc_array(tok->added, tok->n_added + 1, sizeof *a);
    if (!a)
        return IA_ENOMEM;
    tok->added = a;
    a = &a[tok->n_added];
    memset(a, 0, sizeof *a);
    if (!(a->content = ia_strndup(content, len)))
        return IA_ENOMEM;
    tok->n_added++;
    a->len = len;
    a->id = id;
    a->single_word = single_word;
    a->lstrip = lstrip;
    a->rstrip = rstrip;
    a->normalized = normalized;
    a->special = special;
    return IA_OK;
}

void tok_find_byte_tokens(ia_tokenizer *tok) {
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        tok->byte_ids[b] = tok_vocab_find2(&tok->vocab, "", 0, name, 6);
    }
}

/* Well-known names, in order of preference, for models whose files say
 * nothing more specific. */
static const char *const BOS_NAMES[] = {"<s>", "<|begin_of_text|>", "<|startoftext|>",
                                        "<|endoftext|>", "[CLS]"};
static const char *const EOS_NAMES[] = {"</s>",       "<|end_of_text|>", "<|endoftext|>",
                                        "<|im_end|>", "<|eot_id|>",      "[SEP]"};

static int32_t first_special(const ia_tokenizer *tok, const char *const *names, size_t n) {
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < tok->n_added; k++)
            if (tok->added[k].special && strcmp(tok->added[k].content, names[i]) == 0)
                return tok->added[k].id;
    return -1;
}

void tok_guess_bos_eos(ia_tokenizer *tok) {
    const tok_template *t = &tok->single;
    if (tok->bos_id < 0 && tok->has_post && t->n && t->pieces[0].kind == 2 && t->pieces[0].n_ids)
        tok->bos_id = t->pieces[0].ids[0];
    if (tok->bos_id < 0)
        tok->bos_id = first_special(tok, BOS_NAMES, sizeof BOS_NAMES / sizeof BOS_NAMES[0]);
    if (tok->eos_id < 0)
        tok->eos_id = first_special(tok, EOS_NAMES, sizeof EOS_NAMES / sizeof EOS_NAMES[0]);
}

/* Normalises the `normalized` added tokens (they are matched in normalised
 * text) and settles the padding defaults. */
ia_status tok_finish(ia_tokenizer *tok, const char *what) {
    for (size_t i = 0; i < tok->n_added; i++) {
        tok_added *a = &tok->added[i];
        size_t bad;
        if (!ia_utf8_valid(a->content, a->len, &bad))
            return ia_error_set(IA_EPARSE, "%s: added token %zu is not valid UTF-8", what, i);
        if (a->normalized) {
            ia_status st = tok_normalize(tok, a->content, a->len, &a->match, &a->match_len);
            if (st)
                return st;
        } else {
            if (!(a->match = ia_strndup(a->content, a->len)))
                return IA_ENOMEM;
            a->match_len = a->len;
        }
        if (a->match_len)
            (a->normalized ? tok->first_norm : tok->first_raw)[(unsigned char)a->match[0]] = true;
    }
    tok_find_byte_tokens(tok);
    tok_guess_bos_eos(tok);
    if (tok->pad_id < 0) {
        int32_t id = ia_tokenizer_token_to_id(tok, "[PAD]");
        if (id < 0)
            id = ia_tokenizer_token_to_id(tok, "<pad>");
        tok->pad_id = id < 0 ? 0 : id;
    }
    if (!tok->pad_token) {
        const char *s = ia_tokenizer_id_to_token(tok, tok->pad_id);
        if (!(tok->pad_token = ia_strdup(s ? s : "[PAD]")))
            return IA_ENOMEM;
    }
    return IA_OK;
}

static void template_free(tok_template *t) {
    for (size_t i = 0; i < t->n; i++) {
        for (size_t k = 0; k < t->pieces[i].n_ids; k++)
            free(t->pieces[i].tokens[k]);
        free(t->pieces[i].tokens);
        free(t->pieces[i].ids);
    }
    free(t->pieces);
}

void ia_tokenizer_free(ia_tokenizer *tok) {
    if (!tok)
        return;
    tok_vocab_free(&tok->vocab);
    for (size_t i = 0; i < tok->n_added; i++) {
        free(tok->added[i].content);
        free(tok->added[i].match);
    }
    free(tok->added);
    for (size_t i = 0; i < tok->n_norm; i++) {
        tok_pattern_free(&tok->norm[i].pattern);
        free(tok->norm[i].content);
    }
    free(tok->norm);
    for (size_t i = 0; i < tok->n_pre; i++)
        tok_pattern_free(&tok->pre[i].pattern);
    for (size_t i = 0; i < tok->n_dec; i++) {
        free(tok->dec[i].from);
        free(tok->dec[i].to);
    }
    tok_merges_free(&tok->merges);
    free(tok->suffix);
    template_free(&tok->single);
    template_free(&tok->pair);
    free(tok->prefix);
    free(tok->unk);
    free(tok->pad_token);
    free(tok);
}

size_t ia_tokenizer_vocab_size(const ia_tokenizer *tok) { return tok->vocab.n; }

const char *ia_tokenizer_id_to_token(const ia_tokenizer *tok, int32_t id) {
    for (size_t i = 0; i < tok->n_added; i++)
        if (tok->added[i].id == id)
            return tok->added[i].content;
    if (id < 0 || (size_t)id >= tok->vocab.n)
        return NULL;
    return tok->vocab.tokens[id];
}

int32_t ia_tokenizer_token_to_id(const ia_tokenizer *tok, const char *token) {
    size_t len = strlen(token);
    for (size_t i = 0; i < tok->n_added; i++)
        if (tok->added[i].len == len && memcmp(tok->added[i].content, token, len) == 0)
            return tok->added[i].id;
    return tok_vocab_find2(&tok->vocab, "", 0, token, len);
}

int32_t ia_tokenizer_pad_id(const ia_tokenizer *tok) { return tok->pad_id; }
int32_t ia_tokenizer_bos_id(const ia_tokenizer *tok) { return tok->bos_id; }
int32_t ia_tokenizer_eos_id(const ia_tokenizer *tok) { return tok->eos_id; }

bool ia_tokenizer_adds_bos(const ia_tokenizer *tok) {
    return tok->has_post && tok->single.n && tok->single.pieces[0].kind == 2;
}
