/*
 * Loading tokenizers: HF tokenizer.json, and BERT's vocab.txt as a fallback.
 *
 * tokenizer.json names a normaliser, a pre-tokeniser, a model and a
 * post-processor by "type". We accept the BERT family's pieces
 * (BertNormalizer, BertPreTokenizer, WordPiece, TemplateProcessing /
 * BertProcessing / RobertaProcessing) and turn anything else away at load
 * time with IA_EUNSUPPORTED naming the piece, so that a model never runs with
 * a silently different tokenisation. Malformed files give IA_EPARSE naming
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

static ia_status parse_normalizer(ia_tokenizer *tok, const json_t *n, const char *what) {
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
        if (json_array_size(list) > 1)
            return ia_error_set(IA_EUNSUPPORTED,
                                "%s: a normalizer Sequence of %zu pieces is not supported yet "
                                "(one BertNormalizer or Lowercase only)",
                                what, json_array_size(list));
        return json_array_size(list) ? parse_normalizer(tok, json_array_get(list, 0), what) : IA_OK;
    }
    if (strcmp(type, "Lowercase") == 0) {
        tok->lowercase = true;
        return IA_OK;
    }
    if (strcmp(type, "BertNormalizer") != 0)
        return ia_error_set(IA_EUNSUPPORTED,
                            "%s: normalizer type '%s' is not supported yet (BertNormalizer only)",
                            what, type);
    bool strip_null = true;
    const json_t *sa = json_object_get(n, "strip_accents");
    if ((st = get_bool(n, "clean_text", true, &tok->clean_text, what, "normalizer")) ||
        (st =
             get_bool(n, "handle_chinese_chars", true, &tok->handle_chinese, what, "normalizer")) ||
        (st = get_bool(n, "lowercase", true, &tok->lowercase, what, "normalizer")) ||
        (st = get_bool(n, "strip_accents", false, &tok->strip_accents, what, "normalizer")))
        return st;
    strip_null = !sa || json_is_null(sa);
    /* strip_accents null means "whatever lowercase says", as in BertTokenizer. */
    if (strip_null)
        tok->strip_accents = tok->lowercase;
    return IA_OK;
}

static ia_status parse_pre_tokenizer(ia_tokenizer *tok, const json_t *p, const char *what) {
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
        if (json_array_size(list) > 1)
            return ia_error_set(IA_EUNSUPPORTED,
                                "%s: a pre_tokenizer Sequence of %zu pieces is not supported "
                                "yet (one BertPreTokenizer only)",
                                what, json_array_size(list));
        return json_array_size(list) ? parse_pre_tokenizer(tok, json_array_get(list, 0), what)
                                     : IA_OK;
    }
    if (strcmp(type, "BertPreTokenizer") != 0)
        return ia_error_set(IA_EUNSUPPORTED,
                            "%s: pre_tokenizer type '%s' is not supported yet "
                            "(BertPreTokenizer only)",
                            what, type);
    tok->bert_pretok = true;
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

static ia_status parse_model(ia_tokenizer *tok, const json_t *model, const json_t *added,
                             const char *what) {
    ia_status st;
    if (!json_is_object(model))
        return ia_error_set(IA_EPARSE, "%s: model is missing or not an object", what);
    const char *type = piece_type(model, what, "model");
    if (!type)
        return IA_EPARSE;
    if (strcmp(type, "WordPiece") != 0)
        return ia_error_set(IA_EUNSUPPORTED,
                            "%s: model type '%s' is not supported yet (WordPiece only)", what,
                            type);
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

static ia_status template_add(tok_template *t, int kind, uint32_t type_id, const int32_t *ids,
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
    return template_add(t, 2, 0, &id, tokens, 1);
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
        (st = template_add(&tok->single, 0, 0, NULL, NULL, 0)) ||
        (st = special1(&tok->single, sep, sep_id)) || (st = special1(&tok->pair, cls, cls_id)) ||
        (st = template_add(&tok->pair, 0, 0, NULL, NULL, 0)) ||
        (st = special1(&tok->pair, sep, sep_id)))
        return st;
    if (roberta && (st = special1(&tok->pair, sep, sep_id)))
        return st;
    if ((st = template_add(&tok->pair, 1, b_type, NULL, NULL, 0)))
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
            if ((st = template_add(t, n[0] == 'A' ? 0 : 1, type_id, NULL, NULL, 0)))
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
        if ((st = template_add(t, 2, type_id, id_buf, tok_buf, json_array_size(ids))))
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

static ia_tokenizer *tok_new(void) {
    ia_tokenizer *tok = ia_calloc(1, sizeof *tok);
    if (tok) {
        tok->unk_id = -1;
        tok->pad_id = -1;
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
        (st = parse_normalizer(tok, json_object_get(root, "normalizer"), what)) ||
        (st = parse_pre_tokenizer(tok, json_object_get(root, "pre_tokenizer"), what)) ||
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
    tok->clean_text = true;
    tok->handle_chinese = chinese;
    tok->lowercase = lowercase;
    tok->strip_accents = strip_accents;
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
        (st = template_add(&tok->single, 0, 0, NULL, NULL, 0)) ||
        (st = special1(&tok->single, "[SEP]", sep)) || (st = special1(&tok->pair, "[CLS]", cls)) ||
        (st = template_add(&tok->pair, 0, 0, NULL, NULL, 0)) ||
        (st = special1(&tok->pair, "[SEP]", sep)) ||
        (st = template_add(&tok->pair, 1, 1, NULL, NULL, 0)) ||
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
