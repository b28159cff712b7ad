/*
 * The BPE model's per-call scratch and entry point (bpe.c). encode.c keeps
 * one scratch per encode call, so the tokenizer itself stays read-only.
 */
#ifndef IA_TOKENIZE_BPE_H
#define IA_TOKENIZE_BPE_H

#include "tokenize_internal.h"

typedef struct tok_bpe_symbol {
    int32_t id;
    int32_t prev, next; /* neighbours among the live symbols; -1 at the ends */
    bool alive;
} tok_bpe_symbol;

typedef struct tok_bpe_scratch {
    tok_bpe_symbol *sym;
    size_t n_sym, sym_cap;
    void *heap;
    size_t n_heap, heap_cap;
    int32_t *out; /* the word's ids after tok_bpe_word */
    size_t n_out, out_cap;
} tok_bpe_scratch;

/* Encodes one word (valid UTF-8, already pre-tokenized) into s->out. */
ia_status tok_bpe_word(const ia_tokenizer *tok, tok_bpe_scratch *s, const char *w, size_t len);
void tok_bpe_scratch_free(tok_bpe_scratch *s);

#endif /* IA_TOKENIZE_BPE_H */
