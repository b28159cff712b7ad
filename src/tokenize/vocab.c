/*
 * The vocabulary table: token strings by id, and an open-addressing hash from
 * string to id. WordPiece looks up many candidate substrings per word, with
 * and without the "##" prefix, so lookups hash prefix and substring in place
 * (no concatenation, no allocation) and the table stays at most half full.
 */
#include "tokenize_internal.h"

#include <stdlib.h>
#include <string.h>

/* FNV-1a, continued across the prefix and the substring. */
static uint64_t hash_bytes(uint64_t h, const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}
#define HASH_SEED 0xcbf29ce484222325ULL

ia_status tok_vocab_init(tok_vocab *v, size_t n_ids) {
    memset(v, 0, sizeof *v);
    v->tokens = ia_calloc(n_ids ? n_ids : 1, sizeof *v->tokens);
    v->lens = ia_calloc(n_ids ? n_ids : 1, sizeof *v->lens);
    if (!v->tokens || !v->lens)
        return IA_ENOMEM;
    v->n = n_ids;
    return IA_OK;
}

ia_status tok_vocab_set(tok_vocab *v, int32_t id, const char *s, size_t len) {
    if (id < 0 || (size_t)id >= v->n || len > UINT32_MAX)
        return ia_error_set(IA_EINTERNAL, "tokenizer vocabulary: id %d out of range", (int)id);
    char *copy = ia_malloc(len + 1);
    if (!copy)
        return IA_ENOMEM;
    memcpy(copy, s, len);
    copy[len] = '\0';
    free(v->tokens[id]);
    v->tokens[id] = copy;
    v->lens[id] = (uint32_t)len;
    if (len > v->max_len)
        v->max_len = len;
    return IA_OK;
}

/* Inserts every id; a string already present keeps the higher id, as HF's
 * vocab.txt reader does when a line repeats. */
ia_status tok_vocab_build_index(tok_vocab *v) {
    size_t cap = 16;
    while (cap < v->n * 2 + 1)
        cap *= 2;
    v->slots = ia_malloc_array(cap, sizeof *v->slots);
    if (!v->slots)
        return IA_ENOMEM;
    memset(v->slots, 0xFF, cap * sizeof *v->slots);
    v->mask = cap - 1;
    for (size_t id = 0; id < v->n; id++) {
        if (!v->tokens[id])
            continue;
        uint64_t h = hash_bytes(HASH_SEED, v->tokens[id], v->lens[id]);
        size_t i = h & v->mask;
        for (;;) {
            int32_t other = v->slots[i];
            if (other < 0) {
                v->slots[i] = (int32_t)id;
                break;
            }
            if (v->lens[other] == v->lens[id] &&
                memcmp(v->tokens[other], v->tokens[id], v->lens[id]) == 0) {
                v->slots[i] = (int32_t)id;
                break;
            }
            i = (i + 1) & v->mask;
        }
    }
    return IA_OK;
}

void tok_vocab_free(tok_vocab *v) {
    if (v->tokens)
        for (size_t i = 0; i < v->n; i++)
            free(v->tokens[i]);
    free(v->tokens);
    free(v->lens);
    free(v->slots);
    memset(v, 0, sizeof *v);
}

int32_t tok_vocab_find2(const tok_vocab *v, const char *prefix, size_t plen, const char *s,
                        size_t len) {
    size_t total = plen + len;
    if (!v->slots || total > v->max_len)
        return -1;
    uint64_t h = hash_bytes(hash_bytes(HASH_SEED, prefix, plen), s, len);
    for (size_t i = h & v->mask;; i = (i + 1) & v->mask) {
        int32_t id = v->slots[i];
        if (id < 0)
            return -1;
        const char *t = v->tokens[id];
        if (v->lens[id] == total && memcmp(t, prefix, plen) == 0 && memcmp(t + plen, s, len) == 0)
            return id;
    }
}
