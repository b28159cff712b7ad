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
 *                  regex (GPT-2's via ByteLevel, or LLaMA-3's / Qwen2's via
 *                  Split + ByteLevel), LLaMA-3 gets ignore_merges and Qwen2
 *                  NFC; merges are required; ByteLevel decoder.
 *   model "llama"  SentencePiece-style BPE as HF's LlamaConverter builds it:
 *                  Prepend + Replace U+2581, byte_fallback, fuse_unk, and
 *                  Replace/ByteFallback/Fuse/Strip to decode. Without merges,
 *                  they are derived from the scores the way HF's
 *                  SentencePieceExtractor does (every split of a piece into
 *                  two pieces, ranked by the piece's score, then by the
 *                  halves' ids).
 *
 * Control and unknown tokens become special added tokens, user-defined ones
 * plain added tokens, both matched in the raw text. add_bos / add_eos become
 * the post-processor's template.
 */
#include "tokenize_internal.h"

#include <stdlib.h>
#include <string.h>

#define WHAT "tokenizer arrays"

static const struct {
    const char *pre;
    const char *regex; /* tok_known_regex name */
    bool split;        /* Split + ByteLevel(use_regex false), else ByteLevel's own regex */
    bool ignore_merges, nfc;
} PRE_TABLE[] = {
    {"default", "gpt2", false, false, false}, {"gpt-2", "gpt2", false, false, false},
    {"gpt2", "gpt2", false, false, false},    {"llama-bpe", "llama3", true, true, false},
    {"llama3", "llama3", true, true, false},  {"llama-v3", "llama3", true, true, false},
    {"qwen2", "qwen2", true, false, true},
};

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

static ia_status setup_gpt2(ia_tokenizer *tok, const ia_tokenizer_arrays *a) {
    const char *pre = a->pre ? a->pre : "default";
    size_t k = 0, n = sizeof PRE_TABLE / sizeof PRE_TABLE[0];
    while (k < n && strcmp(PRE_TABLE[k].pre, pre) != 0)
        k++;
    if (k == n)
        return ia_error_set(IA_EUNSUPPORTED,
                            WHAT ": pre-tokenizer '%s' (tokenizer.ggml.pre) is not supported yet "
                                 "(default, gpt-2, llama-bpe, qwen2)",
                            pre);
    const char *re = tok_known_regex(PRE_TABLE[k].regex);
    tok_pre_step *p;
    ia_status st;
    if (PRE_TABLE[k].split) {
        add_pre(tok, TOK_PRE_SPLIT, &p);
        p->behavior = TOK_SPLIT_ISOLATED;
        if ((st = tok_pattern_regex(&p->pattern, re, strlen(re), WHAT)))
            return st;
        add_pre(tok, TOK_PRE_BYTELEVEL, &p);
    } else {
        add_pre(tok, TOK_PRE_BYTELEVEL, &p);
        p->use_regex = true;
        if ((st = tok_pattern_regex(&p->pattern, re, strlen(re), WHAT)))
            return st;
    }
    tok->ignore_merges = PRE_TABLE[k].ignore_merges;
    if (PRE_TABLE[k].nfc) {
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
    if ((st = tok_norm_push(tok, &n)))
        return st;
    n->kind = TOK_NORM_PREPEND;
    if (!(n->content = ia_strdup(SP)))
        return IA_ENOMEM;
    n->content_len = 3;
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

ia_status ia_tokenizer_load_arrays(const ia_tokenizer_arrays *a, ia_tokenizer **out) {
    ia_tokenizer *tok = NULL;
    ia_status st;
    *out = NULL;
    bool gpt2 = a->model && strcmp(a->model, "gpt2") == 0;
    bool llama = a->model && strcmp(a->model, "llama") == 0;
    if (!gpt2 && !llama)
        return ia_error_set(IA_EUNSUPPORTED,
                            WHAT ": model '%s' (tokenizer.ggml.model) is not supported yet "
                                 "(gpt2 or llama)",
                            a->model ? a->model : "(none)");
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
        if ((st = tok_vocab_set(&tok->vocab, (int32_t)i, a->tokens[i], len)))
            goto fail;
    }
    if ((st = tok_vocab_build_index(&tok->vocab)) ||
        (st = gpt2 ? setup_gpt2(tok, a) : setup_llama(tok, a)) ||
        (a->n_merges && (st = set_merges(tok, a))))
        goto fail;
    for (size_t i = 0; i < a->n_tokens; i++) {
        int32_t t = token_type(a, i);
        bool special = t == IA_TOKEN_CONTROL || t == IA_TOKEN_UNKNOWN;
        if ((special || t == IA_TOKEN_USER_DEFINED) &&
            (st = tok_add_token(tok, a->tokens[i], token_len(a, i), (int32_t)i, false, false, false,
                                false, special)))
            goto fail;
    }
    if ((st = set_template(tok, a)))
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
