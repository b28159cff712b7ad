/*
 * The BPE model: one pre-tokenized word -> ids, exactly as HF's
 * models/bpe does it (merge_word + Word::merge_all).
 *
 * The word starts as one symbol per character (looked up with the
 * continuing-subword prefix / end-of-word suffix when the file has them);
 * a character missing from the vocabulary becomes its <0xHH> byte tokens
 * under byte_fallback, else the unknown token (runs fused under fuse_unk),
 * else nothing. Then the lowest-ranked adjacent pair is merged until no pair
 * is in the merges map, the leftmost first among equal ranks. As in HF, a
 * binary heap holds candidate merges and stale entries are skipped when
 * popped, so a word of n characters costs O(n log n) and a long
 * SentencePiece line (one "word") stays cheap. ignore_merges (LLaMA-3)
 * takes a word that is itself a vocabulary entry as one token.
 */
#include "bpe.h"
#include "tokenize_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct bpe_merge {
    uint32_t rank;
    uint32_t pos;
    int32_t id;
} bpe_merge;

static ia_status grow(void **p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap)
        return IA_OK;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *q = ia_realloc_array(*p, c, size);
    if (!q)
        return ia_error_set(IA_ENOMEM, "tokenizer: out of memory for a word of %zu symbols", need);
    *p = q;
    *cap = c;
    return IA_OK;
}

static ia_status add_symbol(tok_bpe_scratch *s, int32_t id) {
    ia_status st = grow((void **)&s->sym, &s->sym_cap, s->n_sym + 1, sizeof *s->sym);
    if (st)
        return st;
    tok_bpe_symbol *y = &s->sym[s->n_sym];
    y->id = id;
    y->prev = (int32_t)s->n_sym - 1;
    y->next = (int32_t)s->n_sym + 1;
    y->alive = true;
    s->n_sym++;
    return IA_OK;
}

/* ---- the heap: min on (rank, pos) ------------------------------------------------ */

static bool before(const bpe_merge *a, const bpe_merge *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static ia_status heap_push(tok_bpe_scratch *s, bpe_merge m) {
    ia_status st = grow(&s->heap, &s->heap_cap, s->n_heap + 1, sizeof m);
    if (st)
        return st;
    bpe_merge *h = s->heap;
    size_t i = s->n_heap++;
    while (i > 0 && before(&m, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = m;
    return IA_OK;
}

static bpe_merge heap_pop(tok_bpe_scratch *s) {
    bpe_merge *h = s->heap;
    bpe_merge top = h[0], last = h[--s->n_heap];
    size_t i = 0, n = s->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && before(&h[c + 1], &h[c]))
            c++;
        if (!before(&h[c], &last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (n)
        h[i] = last;
    return top;
}

static ia_status push_pair(const ia_tokenizer *tok, tok_bpe_scratch *s, size_t pos) {
    const tok_bpe_symbol *y = &s->sym[pos];
    if (y->next < 0 || (size_t)y->next >= s->n_sym)
        return IA_OK;
    uint32_t rank;
    int32_t id;
    if (!tok_merges_get(&tok->merges, y->id, s->sym[y->next].id, &rank, &id))
        return IA_OK;
    return heap_push(s, (bpe_merge){rank, (uint32_t)pos, id});
}

static ia_status merge_all(const ia_tokenizer *tok, tok_bpe_scratch *s) {
    ia_status st;
    s->n_heap = 0;
    for (size_t i = 0; i + 1 < s->n_sym; i++)
        if ((st = push_pair(tok, s, i)))
            return st;
    while (s->n_heap) {
        bpe_merge top = heap_pop(s);
        tok_bpe_symbol *y = &s->sym[top.pos];
        if (!y->alive || y->next < 0 || (size_t)y->next >= s->n_sym)
            continue;
        tok_bpe_symbol *right = &s->sym[y->next];
        uint32_t rank;
        int32_t id;
        if (!tok_merges_get(&tok->merges, y->id, right->id, &rank, &id) || id != top.id)
            continue; /* stale: one side merged since this entry was pushed */
        y->id = top.id;
        y->next = right->next;
        right->alive = false;
        if (y->next >= 0 && (size_t)y->next < s->n_sym)
            s->sym[y->next].prev = (int32_t)top.pos;
        if (y->prev >= 0 && (st = push_pair(tok, s, (size_t)y->prev)))
            return st;
        if ((st = push_pair(tok, s, top.pos)))
            return st;
    }
    return IA_OK;
}

/* ---- a word -------------------------------------------------------------------------------- */

/* The id of one character, with the prefix (not first) or suffix (last). */
static int32_t char_id(const ia_tokenizer *tok, const char *c, size_t clen, bool first, bool last,
                       char *buf, size_t buf_cap) {
    const char *pre = first ? "" : tok->prefix ? tok->prefix : "";
    size_t plen = first ? 0 : tok->prefix_len;
    if (!last || !tok->suffix_len)
        return tok_vocab_find2(&tok->vocab, pre, plen, c, clen);
    if (clen + tok->suffix_len > buf_cap)
        return -1;
    memcpy(buf, c, clen);
    memcpy(buf + clen, tok->suffix, tok->suffix_len);
    return tok_vocab_find2(&tok->vocab, pre, plen, buf, clen + tok->suffix_len);
}

static bool is_cont(unsigned char c) { return (c & 0xC0) == 0x80; }

ia_status tok_bpe_word(const ia_tokenizer *tok, tok_bpe_scratch *s, const char *w, size_t len) {
    ia_status st;
    s->n_sym = 0;
    s->n_out = 0;
    if (len == 0)
        return IA_OK;
    if (tok->ignore_merges) {
        int32_t id = tok_vocab_find2(&tok->vocab, "", 0, w, len);
        if (id >= 0) {
            if ((st = add_symbol(s, id)))
                return st;
            goto out;
        }
    }
    int32_t unk_pending = -1; /* fused unknowns: one symbol for the run */
    char buf[64];
    for (size_t i = 0; i < len;) {
        size_t e = i + 1;
        while (e < len && is_cont((unsigned char)w[e]))
            e++;
        int32_t id = char_id(tok, w + i, e - i, i == 0, e == len, buf, sizeof buf);
        if (id >= 0) {
            if (unk_pending >= 0 && (st = add_symbol(s, unk_pending)))
                return st;
            unk_pending = -1;
            if ((st = add_symbol(s, id)))
                return st;
            i = e;
            continue;
        }
        bool bytes_ok = tok->byte_fallback;
        for (size_t k = i; bytes_ok && k < e; k++)
            bytes_ok = tok->byte_ids[(unsigned char)w[k]] >= 0;
        if (bytes_ok) {
            /* HF leaves a pending unknown in place across byte tokens */
            for (size_t k = i; k < e; k++)
                if ((st = add_symbol(s, tok->byte_ids[(unsigned char)w[k]])))
                    return st;
            i = e;
            continue;
        }
        if (tok->unk) {
            if (tok->unk_id < 0)
                return ia_error_set(IA_ENOTFOUND,
                                    "tokenizer: a word needs the unknown token '%s', which is "
                                    "not in the vocabulary",
                                    tok->unk);
            if (unk_pending >= 0 && !tok->fuse_unk && (st = add_symbol(s, unk_pending)))
                return st;
            unk_pending = tok->unk_id;
        }
        i = e;
    }
    if (unk_pending >= 0 && (st = add_symbol(s, unk_pending)))
        return st;
    if (s->n_sym)
        s->sym[s->n_sym - 1].next = -1;
    if ((st = merge_all(tok, s)))
        return st;
out:
    if ((st = grow((void **)&s->out, &s->out_cap, s->n_sym, sizeof *s->out)))
        return st;
    for (size_t i = 0; i < s->n_sym; i++)
        if (s->sym[i].alive)
            s->out[s->n_out++] = s->sym[i].id;
    return IA_OK;
}

void tok_bpe_scratch_free(tok_bpe_scratch *s) {
    free(s->sym);
    free(s->heap);
    free(s->out);
    memset(s, 0, sizeof *s);
}
