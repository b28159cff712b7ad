/*
 * A tokenizer from vocabulary arrays, as GGUF metadata describes one
 * (tokenizer.ggml.model, .pre, .tokens, .scores, .token_type, .merges and
 * the special ids). runtime/ reads the GGUF and hands the arrays over, so
 * tokenize/ never depends on formats/.
 *
 * The result is the tokenizer HF would load from the equivalent
 * tokenizer.json, built from the same pieces the JSON loader uses:
 *
 *   model "gpt2"   byte-level BPE: the `pre` name picks the pre-tokenizer
 *                  steps of that family's tokenizer.json (PRE_TABLE: GPT-2's
 *                  ByteLevel regex, LLaMA-3's / Qwen2's Split + ByteLevel,
 *                  StarCoder's digits, Falcon's punctuation, DeepSeek's
 *                  Splits, ...), LLaMA-3 gets ignore_merges, Qwen2, MPT and
 *                  Command-R NFC; merges are required; ByteLevel decoder.
 *                  The llama.cpp test vocabularies (tests/fixtures/
 *                  llama_vocab/, tests/tokenize/test_llama_vocab.c) check
 *                  every row against HF's ids.
 *   model "llama"  SentencePiece-style BPE as HF's LlamaConverter builds it:
 *                  Prepend + Replace U+2581, byte_fallback, fuse_unk, and
 *                  Replace/ByteFallback/Fuse/Strip to decode (no Prepend and
 *                  no Strip when add_space_prefix is false). Without merges,
 *                  they are derived from the scores the way HF's
 *                  SentencePieceExtractor does (every split of a piece into
 *                  two pieces, ranked by the piece's score, then by the
 *                  halves' ids).
 *
 *   model "bert"   WordPiece as HF's BertTokenizerFast runs it. llama.cpp's
 *                  converter writes the vocabulary with a "phantom space":
 *                  a word-initial token gets U+2581 in front, a "##"
 *                  continuation loses its "##", control tokens stay as
 *                  they are. That is undone here, so the vocabulary is the
 *                  tokenizer.json's again; then BertNormalizer (clean_text,
 *                  CJK padding, lowercase and strip_accents as
 *                  tokenizer.ggml.normalizer.* say), BertPreTokenizer,
 *                  WordPiece with "##" and 100 characters a word at most,
 *                  the [CLS] $A [SEP] / [CLS] $A [SEP] $B:1 [SEP]:1
 *                  template from add_bos / add_eos (bos is [CLS], eos [SEP]),
 *                  and the WordPiece decoder.
 *                  llama.cpp's own WPM tokenizer gets the same ids for
 *                  ordinary text but differs at the edges: it lowercases one
 *                  code point at a time (no multi-character lowercase), has
 *                  no 100-character limit on a word, and treats only ASCII
 *                  symbols (not all Unicode symbols) as punctuation; this
 *                  loader follows HF, whose ids the models were trained on.
 *
 * Control and unknown tokens become special added tokens, user-defined ones
 * plain added tokens, both matched in the raw text. add_bos / add_eos become
 * the post-processor's template.
 */
#include "tokenize_internal.h"

#include <stdlib.h>
#include <string.h>

#define WHAT "tokenizer arrays"

/* Pre-tokenizer steps, as HF's tokenizer.json for each family lists them
 * (llama.cpp's regex_exprs in llama-vocab.cpp are its approximations of the
 * same): "S:<regex>" is Split(Isolated), "B" ByteLevel with GPT-2's regex,
 * "b" ByteLevel without a regex (after Splits), "R:<name>" a Split on a
 * tok_known_regex. HF's Digits is Split on \p{N} (individual) or \p{N}+,
 * Punctuation is Split on Unicode P plus ASCII punctuation. Steps after a
 * ByteLevel see the byte-mapped text, as in HF. */
#define RE_DIGIT "S:\\p{N}"
#define RE_CJK "S:[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+"
#define PRE_MAX_STEPS 7

typedef struct pre_spec {
    const char *names; /* tokenizer.ggml.pre values, '|'-separated */
    const char *steps[PRE_MAX_STEPS];
    bool ignore_merges, nfc;
} pre_spec;

static const pre_spec PRE_TABLE[] = {
    {.names = "default|gpt-2|gpt2|phi-2|olmo|jina-es|jina-de|jina-v2-es|jina-v2-de|exaone4",
     .steps = {"B"}},
    /* GPT-NeoX's tokenizer (MPT) normalises to NFC */
    {.names = "mpt", .steps = {"B"}, .nfc = true},
    {.names = "llama-bpe|llama3|llama-v3|dbrx|smaug-bpe",
     .steps = {"R:llama3", "b"},
     .ignore_merges = true},
    {.names = "qwen2|deepseek-r1-qwen|megrez", .steps = {"R:qwen2", "b"}, .nfc = true},
    {.names = "qwen35",
     .steps = {"S:(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| "
               "?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
               "b"}},
    {.names = "starcoder|refact|smollm|codeshell", .steps = {RE_DIGIT, "B"}},
    /* Cohere's tokenizer normalises to NFC */
    {.names = "command-r", .steps = {RE_DIGIT, "B"}, .nfc = true},
    {.names = "falcon",
     .steps = {"S:[\\p{P}!-/:-@\\[-`{-~]+", "B", "S:\\p{N}+", "S:[0-9][0-9][0-9]"}},
    {.names = "deepseek-coder",
     .steps = {"S:[\r\n]", "S:\\s?\\p{L}+", "S:\\s?\\p{P}+", RE_CJK, RE_DIGIT, "b"}},
    {.names = "deepseek-llm",
     .steps = {"S:[\r\n]",
               "S:\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf"
               "\u01c4-\u0293\u0295-\u02af\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f"
               "\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5\u03f7-\u0481"
               "\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd"
               "\u1c90-\u1cba\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a"
               "\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45\u1f48-\u1f4d\u1f50-\u1f57\u1f59"
               "\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe\u1fc2-\u1fc4"
               "\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4"
               "\u1ff6-\u1ffc\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126"
               "\u2128\u212a-\u212d\u212f-\u2134\u2139\u213c-\u213f\u2145-\u2149\u214e"
               "\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3"
               "\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e"
               "\uab70-\uabbf\ufb00-\ufb06\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a"
               "\U00010400-\U0001044f\U000104b0-\U000104d3\U000104d8-\U000104fb"
               "\U00010c80-\U00010cb2\U00010cc0-\U00010cf2\U000118a0-\U000118df"
               "\U0001e900-\U0001e943]+",
               "S:\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+", "S:\\s+$",
               RE_CJK, "S:\\p{N}+", "b"}},
};

/* The row whose '|'-separated names hold pre, or NULL. */
static const pre_spec *find_pre(const char *pre) {
    size_t plen = strlen(pre);
    for (size_t k = 0; k < sizeof PRE_TABLE / sizeof PRE_TABLE[0]; k++) {
        for (const char *n = PRE_TABLE[k].names; *n;) {
            const char *bar = strchr(n, '|');
            size_t len = bar ? (size_t)(bar - n) : strlen(n);
            if (len == plen && memcmp(n, pre, len) == 0)
                return &PRE_TABLE[k];
            n += len + (bar != NULL);
        }
    }
    return NULL;
}

static size_t token_len(const ia_tokenizer_arrays *a, size_t i) {
    return a->token_lens ? a->token_lens[i] : strlen(a->tokens[i]);
}

static int32_t token_type(const ia_tokenizer_arrays *a, size_t i) {
    return a->token_types ? a->token_types[i] : IA_TOKEN_NORMAL;
}

static ia_status add_pre(ia_tokenizer *tok, tok_pre_kind kind, tok_pre_step **out) {
    tok_pre_step *p = &tok->pre[tok->n_pre++];
    memset(p, 0, sizeof *p);
    p->kind = kind;
    *out = p;
    return IA_OK;
}

static ia_status add_step(ia_tokenizer *tok, const char *spec) {
    tok_pre_step *p;
    const char *re = spec + 2;
    add_pre(tok, spec[0] == 'S' || spec[0] == 'R' ? TOK_PRE_SPLIT : TOK_PRE_BYTELEVEL, &p);
    if (spec[0] == 'b')
        return IA_OK;
    if (spec[0] == 'B')
        re = tok_known_regex("gpt2");
    else if (spec[0] == 'R')
        re = tok_known_regex(re);
    p->use_regex = spec[0] == 'B';
    p->behavior = TOK_SPLIT_ISOLATED;
    return tok_pattern_regex(&p->pattern, re, strlen(re), WHAT);
}

static ia_status setup_gpt2(ia_tokenizer *tok, const ia_tokenizer_arrays *a) {
    const char *pre = a->pre ? a->pre : "default";
    const pre_spec *spec = find_pre(pre);
    if (!spec)
        return ia_error_set(IA_EUNSUPPORTED,
                            WHAT ": pre-tokenizer '%s' (tokenizer.ggml.pre) is not supported yet "
                                 "(default, gpt-2, mpt, llama-bpe, qwen2, starcoder, refact, "
                                 "command-r, falcon, deepseek-coder, deepseek-llm and aliases)",
                            pre);
    ia_status st;
    for (size_t i = 0; i < PRE_MAX_STEPS && spec->steps[i]; i++)
        if ((st = add_step(tok, spec->steps[i])))
            return st;
    tok->ignore_merges = spec->ignore_merges;
    if (spec->nfc) {
        tok_norm_step *nfc;
        if ((st = tok_norm_push(tok, &nfc)))
            return st;
        nfc->kind = TOK_NORM_NFC;
    }
    if (!a->n_merges)
        return ia_error_set(IA_EPARSE, WHAT ": a gpt2 model needs tokenizer.ggml.merges");
    tok->has_dec = true;
    tok->dec[tok->n_dec++] = (tok_dec_step){.kind = TOK_DEC_BYTELEVEL};
    return IA_OK;
}

/* ---- merges from scores (SentencePieceExtractor) ------------------------------------ */

typedef struct by_score {
    float score;
    int32_t id;
} by_score;

static int cmp_score(const void *x, const void *y) {
    const by_score *a = x, *b = y;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

typedef struct split_pair {
    int32_t l, r;
} split_pair;

static int cmp_pair(const void *x, const void *y) {
    const split_pair *a = x, *b = y;
    if (a->l != b->l)
        return a->l < b->l ? -1 : 1;
    return a->r < b->r ? -1 : a->r > b->r;
}

/* The splits of token id into two vocabulary pieces; returns how many (at
 * most cap). */
static size_t splits_of(const ia_tokenizer *tok, int32_t id, split_pair *out, size_t cap) {
    const char *s = tok->vocab.tokens[id];
    size_t len = tok->vocab.lens[id], n = 0;
    for (size_t k = 1; k < len && n < cap; k++) {
        if (((unsigned char)s[k] & 0xC0) == 0x80)
            continue;
        int32_t l = tok_vocab_find2(&tok->vocab, "", 0, s, k);
        int32_t r = tok_vocab_find2(&tok->vocab, "", 0, s + k, len - k);
        if (l >= 0 && r >= 0)
            out[n++] = (split_pair){l, r};
    }
    return n;
}

static ia_status merges_from_scores(ia_tokenizer *tok, const ia_tokenizer_arrays *a) {
    by_score *order = ia_malloc_array(a->n_tokens, sizeof *order);
    split_pair *local = ia_malloc_array(4096, sizeof *local);
    ia_status st = IA_OK;
    size_t n = 0, total = 0;
    if (!order || !local) {
        st = IA_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < a->n_tokens; i++) {
        int32_t t = token_type(a, i);
        if ((t == IA_TOKEN_NORMAL || t == IA_TOKEN_USER_DEFINED) && tok->vocab.tokens[i])
            order[n++] = (by_score){a->scores[i], (int32_t)i};
    }
    qsort(order, n, sizeof *order, cmp_score);
    for (size_t i = 0; i < n; i++)
        total += splits_of(tok, order[i].id, local, 4096);
    if ((st = tok_merges_init(&tok->merges, total)))
        goto done;
    uint32_t rank = 0;
    for (size_t i = 0; i < n; i++) {
        size_t m = splits_of(tok, order[i].id, local, 4096);
        qsort(local, m, sizeof *local, cmp_pair);
        for (size_t k = 0; k < m; k++)
            tok_merges_put(&tok->merges, local[k].l, local[k].r, rank++, order[i].id);
    }
done:
    free(order);
    free(local);
    return st;
}

static ia_status setup_llama(ia_tokenizer *tok, const ia_tokenizer_arrays *a) {
    static const char SP[] = "\xe2\x96\x81";
    tok_norm_step *n;
    ia_status st;
    /* add_space_prefix (the default): HF's Prepend normaliser, and the
     * decoder's Strip of that one space */
    if (!a->no_space_prefix) {
        if ((st = tok_norm_push(tok, &n)))
            return st;
        n->kind = TOK_NORM_PREPEND;
        if (!(n->content = ia_strdup(SP)))
            return IA_ENOMEM;
        n->content_len = 3;
    }
    if ((st = tok_norm_push(tok, &n)))
        return st;
    n->kind = TOK_NORM_REPLACE;
    if (!(n->content = ia_strdup(SP)) || (st = tok_pattern_literal(&n->pattern, " ", 1)))
        return n->content ? st : IA_ENOMEM;
    n->content_len = 3;
    tok->byte_fallback = true;
    tok->fuse_unk = true;
    if (a->unk_id >= 0 && (size_t)a->unk_id < a->n_tokens) {
        if (!(tok->unk =
                  ia_strdup(tok->vocab.tokens[a->unk_id] ? tok->vocab.tokens[a->unk_id] : "<unk>")))
            return IA_ENOMEM;
        tok->unk_id = a->unk_id;
    }
    if (!a->n_merges) {
        if (!a->scores)
            return ia_error_set(IA_EPARSE,
                                WHAT ": a llama model needs tokenizer.ggml.merges or .scores");
        if ((st = merges_from_scores(tok, a)))
            return st;
    }
    tok->has_dec = true;
    tok_dec_step *d = &tok->dec[tok->n_dec++];
    *d = (tok_dec_step){.kind = TOK_DEC_REPLACE, .from_len = 3, .to_len = 1};
    if (!(d->from = ia_strdup(SP)) || !(d->to = ia_strdup(" ")))
        return IA_ENOMEM;
    tok->dec[tok->n_dec++] = (tok_dec_step){.kind = TOK_DEC_BYTE_FALLBACK};
    tok->dec[tok->n_dec++] = (tok_dec_step){.kind = TOK_DEC_FUSE};
    if (!a->no_space_prefix)
        tok->dec[tok->n_dec++] = (tok_dec_step){.kind = TOK_DEC_STRIP, .cp = ' ', .start = 1};
    return IA_OK;
}

static ia_status set_merges(ia_tokenizer *tok, const ia_tokenizer_arrays *a) {
    ia_status st = tok_merges_init(&tok->merges, a->n_merges);
    for (size_t i = 0; st == IA_OK && i < a->n_merges; i++) {
        const char *m = a->merges[i], *sp = m ? strchr(m, ' ') : NULL;
        if (!sp)
            return ia_error_set(IA_EPARSE, WHAT ": merges[%zu] is not \"left right\"", i);
        st = tok_merge_add(tok, m, (size_t)(sp - m), sp + 1, strlen(sp + 1), (uint32_t)i, WHAT);
    }
    return st;
}

static ia_status set_template(ia_tokenizer *tok, const ia_tokenizer_arrays *a) {
    bool bos = a->add_bos && a->bos_id >= 0 && (size_t)a->bos_id < a->n_tokens;
    bool eos = a->add_eos && a->eos_id >= 0 && (size_t)a->eos_id < a->n_tokens;
    ia_status st = IA_OK;
    if (!bos && !eos)
        return IA_OK;
    tok->has_post = true;
    for (int pair = 0; pair < 2 && !st; pair++) {
        tok_template *t = pair ? &tok->pair : &tok->single;
        for (int seq = 0; seq <= pair && !st; seq++) {
            char *bs = (char *)ia_tokenizer_id_to_token(tok, a->bos_id);
            char *es = (char *)ia_tokenizer_id_to_token(tok, a->eos_id);
            if (bos && (st = tok_template_add(t, 2, (uint32_t)seq, &a->bos_id, &bs, 1)))
                break;
            if ((st = tok_template_add(t, seq, (uint32_t)seq, NULL, NULL, 0)))
                break;
            if (eos)
                st = tok_template_add(t, 2, (uint32_t)seq, &a->eos_id, &es, 1);
        }
    }
    return st;
}

/* ---- bert (WordPiece) ---------------------------------------------------------------- */

#define PHANTOM "\xe2\x96\x81"

/* Token i as HF's vocabulary holds it: llama.cpp's phantom-space form
 * undone (see the file comment). *buf (malloc'd, may be NULL) is kept for
 * the caller to free. */
static ia_status bert_token(const ia_tokenizer_arrays *a, size_t i, char **buf, const char **s,
                            size_t *len) {
    *buf = NULL;
    *s = a->tokens[i];
    *len = token_len(a, i);
    if (token_type(a, i) == IA_TOKEN_CONTROL)
        return IA_OK;
    if (*len >= 3 && memcmp(*s, PHANTOM, 3) == 0) {
        *s += 3;
        *len -= 3;
        return IA_OK;
    }
    if (!(*buf = ia_malloc(*len + 3)))
        return IA_ENOMEM;
    memcpy(*buf, "##", 2);
    memcpy(*buf + 2, *s, *len);
    (*buf)[*len + 2] = '\0';
    *s = *buf;
    *len += 2;
    return IA_OK;
}

static ia_status bert_special(tok_template *t, const ia_tokenizer *tok, int32_t id,
                              uint32_t type_id) {
    char *tokens[1] = {(char *)ia_tokenizer_id_to_token(tok, id)};
    return tok_template_add(t, 2, type_id, &id, tokens, 1);
}

static ia_status setup_bert(ia_tokenizer *tok, const ia_tokenizer_arrays *a) {
    tok_norm_step *norm;
    ia_status st = tok_norm_push(tok, &norm);
    if (st != IA_OK)
        return st;
    norm->kind = TOK_NORM_BERT;
    norm->bert = (tok_bert_norm){.clean_text = true,
                                 .handle_chinese = true,
                                 .strip_accents = a->bert_strip_accents,
                                 .lowercase = a->bert_lowercase};
    tok->model = TOK_MODEL_WORDPIECE;
    tok->bert_pretok = true;
    tok->max_chars = 100;
    tok->prefix_len = 2;
    if (!(tok->prefix = ia_strdup("##")))
        return IA_ENOMEM;
    int32_t unk = a->unk_id >= 0 ? a->unk_id : tok_vocab_find2(&tok->vocab, "", 0, "[UNK]", 5);
    if (unk >= 0) {
        if (!(tok->unk = ia_strdup(tok->vocab.tokens[unk])))
            return IA_ENOMEM;
        tok->unk_id = unk;
    } else if (!(tok->unk = ia_strdup("[UNK]"))) {
        return IA_ENOMEM;
    }
    /* HF's WordPiece decoder: "##" pieces join the previous word, cleanup on */
    tok->has_dec = true;
    tok_dec_step *d = &tok->dec[tok->n_dec++];
    *d = (tok_dec_step){.kind = TOK_DEC_WORDPIECE, .from_len = 2, .cleanup = true};
    if (!(d->from = ia_strdup("##")))
        return IA_ENOMEM;
    bool cls = a->add_bos && a->bos_id >= 0, sep = a->add_eos && a->eos_id >= 0;
    if (!cls && !sep)
        return IA_OK;
    tok->has_post = true;
    for (int pair = 0; pair < 2 && st == IA_OK; pair++) {
        tok_template *t = pair ? &tok->pair : &tok->single;
        if (cls)
            st = bert_special(t, tok, a->bos_id, 0);
        for (uint32_t seq = 0; seq <= (uint32_t)pair && st == IA_OK; seq++) {
            st = tok_template_add(t, (int)seq, seq, NULL, NULL, 0);
            if (st == IA_OK && sep)
                st = bert_special(t, tok, a->eos_id, seq);
        }
    }
    return st;
}

/* What llama.cpp calls the tokenizer models we do not implement, for the
 * refusal's message. */
static const char *model_kind(const char *model) {
    static const struct {
        const char *model, *kind;
    } KINDS[] = {
        {"bert", "WordPiece, llama.cpp's WPM"},
        {"t5", "Unigram, llama.cpp's UGM"},
        {"rwkv", "RWKV's trie, llama.cpp's RWKV"},
        {"plamo2", "PLaMo-2's Aho-Corasick"},
        {"gemma4", "Gemma 4's BPE"},
        {"no_vocab", "no vocabulary"},
        {"none", "no vocabulary"},
    };
    for (size_t i = 0; i < sizeof KINDS / sizeof KINDS[0]; i++)
        if (strcmp(KINDS[i].model, model) == 0)
            return KINDS[i].kind;
    return "unknown to this loader";
}

ia_status ia_tokenizer_load_arrays(const ia_tokenizer_arrays *a, ia_tokenizer **out) {
    ia_tokenizer *tok = NULL;
    ia_status st;
    *out = NULL;
    bool gpt2 = a->model && strcmp(a->model, "gpt2") == 0;
    bool llama = a->model && strcmp(a->model, "llama") == 0;
    bool bert = a->model && strcmp(a->model, "bert") == 0;
    if (!gpt2 && !llama && !bert)
        return ia_error_set(IA_EUNSUPPORTED,
                            WHAT ": model '%s' (tokenizer.ggml.model) is not supported yet (%s); "
                                 "GGUF tokenizers can be gpt2 (byte-level BPE), llama "
                                 "(SentencePiece BPE) or bert (WordPiece)",
                            a->model ? a->model : "(none)",
                            a->model ? model_kind(a->model) : "absent");
    if (!a->tokens || a->n_tokens == 0 || a->n_tokens > ((size_t)1 << 24))
        return ia_error_set(IA_EPARSE, WHAT ": tokenizer.ggml.tokens is missing or too large");
    if (!(tok = tok_new()) || (st = tok_vocab_init(&tok->vocab, a->n_tokens))) {
        st = IA_ENOMEM;
        goto fail;
    }
    tok->model = TOK_MODEL_BPE;
    for (size_t i = 0; i < a->n_tokens; i++) {
        size_t len = token_len(a, i);
        if (!a->tokens[i] || !ia_utf8_valid(a->tokens[i], len, NULL)) {
            st = ia_error_set(IA_EPARSE, WHAT ": token %zu is missing or not UTF-8", i);
            goto fail;
        }
        char *buf = NULL;
        const char *s = a->tokens[i];
        if (bert && (st = bert_token(a, i, &buf, &s, &len)))
            goto fail;
        st = tok_vocab_set(&tok->vocab, (int32_t)i, s, len);
        free(buf);
        if (st != IA_OK)
            goto fail;
    }
    if ((st = tok_vocab_build_index(&tok->vocab)) ||
        (st = gpt2    ? setup_gpt2(tok, a)
              : llama ? setup_llama(tok, a)
                      : setup_bert(tok, a)) ||
        (!bert && a->n_merges && (st = set_merges(tok, a))))
        goto fail;
    for (size_t i = 0; i < a->n_tokens; i++) {
        int32_t t = token_type(a, i);
        bool special = t == IA_TOKEN_CONTROL || t == IA_TOKEN_UNKNOWN;
        /* the vocabulary's string: for bert, with the phantom space undone */
        if ((special || t == IA_TOKEN_USER_DEFINED) &&
            (st = tok_add_token(tok, tok->vocab.tokens[i], tok->vocab.lens[i], (int32_t)i, false,
                                false, false, false, special)))
            goto fail;
    }
    if (!bert && (st = set_template(tok, a)))
        goto fail;
    tok->bos_id = a->bos_id >= 0 && (size_t)a->bos_id < a->n_tokens ? a->bos_id : -1;
    tok->eos_id = a->eos_id >= 0 && (size_t)a->eos_id < a->n_tokens ? a->eos_id : -1;
    if (a->pad_id >= 0 && (size_t)a->pad_id < a->n_tokens)
        tok->pad_id = a->pad_id;
    if ((st = tok_finish(tok, WHAT)))
        goto fail;
    *out = tok;
    return IA_OK;
fail:
    ia_tokenizer_free(tok);
    return st;
}
