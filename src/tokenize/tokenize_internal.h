/*
 * tokenize internals: the loaded tokenizer's pieces, shared by the loader
 * (load.c), the vocabulary table (vocab.c), HF's character rules (unicode.c)
 * and the encoder (encode.c).
 *
 * A tokenizer is built once and then only read, which is what makes
 * ia_tokenizer_encode safe to call from many threads: every piece here is
 * immutable after load, and encode keeps its scratch on its own stack/heap.
 */
#ifndef IA_TOKENIZE_INTERNAL_H
#define IA_TOKENIZE_INTERNAL_H

#include "ia/tokenize.h"

/* ---- vocabulary: id <-> token string, open-addressing hash ------------- */

typedef struct tok_vocab {
    char **tokens;  /* id -> NUL-terminated string (NULL for an unused id) */
    uint32_t *lens; /* id -> byte length (tokens may hold NUL bytes) */
    size_t n;       /* ids are [0, n) */
    int32_t *slots; /* hash slots holding ids, -1 when empty */
    size_t mask;    /* slot count - 1 (a power of two) */
    size_t max_len; /* longest token in bytes: bounds WordPiece's search */
} tok_vocab;

/* Builds from parallel arrays of strings and ids; takes ownership of neither.
 * A string seen twice keeps the later id (HF's vocab.txt rule). */
ia_status tok_vocab_init(tok_vocab *v, size_t n_ids);
ia_status tok_vocab_set(tok_vocab *v, int32_t id, const char *s, size_t len);
ia_status tok_vocab_build_index(tok_vocab *v);
void tok_vocab_free(tok_vocab *v);
/* The id of prefix+s (prefix may be empty), or -1. No allocation. */
int32_t tok_vocab_find2(const tok_vocab *v, const char *prefix, size_t plen, const char *s,
                        size_t len);

/* ---- HF's character rules -------------------------------------------------- */

enum {
    TOK_CH_REMOVE = 1, /* clean_text drops it (controls, NUL, U+FFFD) */
    TOK_CH_SPACE = 2,  /* whitespace: clean_text maps it to ' ', pre-tokenizer splits */
    TOK_CH_PUNCT = 4,  /* BertPreTokenizer isolates it */
    TOK_CH_CJK = 8,    /* handle_chinese_chars pads it with spaces */
};

/* TOK_CH_* flags of a code point, HF's way. */
unsigned tok_char_class(int32_t cp);
/* strip_accents for one code point: NFD without nonspacing marks; writes up
 * to 4 code points to out and returns how many (0 when it vanishes). */
int tok_char_strip(int32_t cp, int32_t out[4]);
/* Rust char::to_lowercase: up to 3 code points. */
int tok_char_lower(int32_t cp, int32_t out[3]);
/* Rust regex \w (for single_word added tokens). */
bool tok_char_is_word(int32_t cp);
/* Decodes one code point of valid UTF-8 at s; returns its length. */
static inline int tok_utf8_decode(const unsigned char *s, int32_t *cp) {
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if (s[0] < 0xE0) {
        *cp = ((s[0] & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    if (s[0] < 0xF0) {
        *cp = ((s[0] & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return 3;
    }
    *cp = ((s[0] & 0x07) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    return 4;
}
static inline int tok_utf8_encode(int32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- pieces the file configures ----------------------------------------------- */

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* A compiled pattern: a PCRE2 regex (UTF + UCP, JIT when available) or a
 * literal string, as HF's Split / Replace take {"Regex": ...} or {"String": ...}. */
typedef struct tok_pattern {
    pcre2_code *re; /* NULL for a literal */
    char *lit;
    size_t lit_len;
} tok_pattern;

ia_status tok_pattern_regex(tok_pattern *p, const char *re, size_t len, const char *what);
ia_status tok_pattern_literal(tok_pattern *p, const char *s, size_t len);
void tok_pattern_free(tok_pattern *p);
/* The first match at or after `from`: 1 with [*ms, *me), 0 when none, or an
 * error status (negated) when the regex engine gives up. md may be NULL for
 * literals. An empty regex match is reported as such; callers step past it. */
int tok_pattern_find(const tok_pattern *p, pcre2_match_data *md, const char *s, size_t len,
                     size_t from, size_t *ms, size_t *me);

/* The pre-tokenizer regexes HF and llama.cpp use, by name (ByteLevel's own
 * is "gpt2"); NULL for an unknown name. */
const char *tok_known_regex(const char *name);

/* BertNormalizer's switches (Lowercase alone is a BertNormalizer with only
 * `lowercase`). */
typedef struct tok_bert_norm {
    bool clean_text, handle_chinese, strip_accents, lowercase;
} tok_bert_norm;

typedef enum tok_norm_kind {
    TOK_NORM_BERT,
    TOK_NORM_NFC,
    TOK_NORM_NFD,
    TOK_NORM_NFKC,
    TOK_NORM_NFKD,
    TOK_NORM_PREPEND,
    TOK_NORM_REPLACE,
    TOK_NORM_STRIP,
} tok_norm_kind;

typedef struct tok_norm_step {
    tok_norm_kind kind;
    tok_bert_norm bert;
    tok_pattern pattern; /* Replace */
    char *content;       /* Prepend / Replace */
    size_t content_len;
    bool left, right; /* Strip */
} tok_norm_step;

typedef enum tok_split_behavior {
    TOK_SPLIT_REMOVED,
    TOK_SPLIT_ISOLATED,
    TOK_SPLIT_MERGED_WITH_PREVIOUS,
    TOK_SPLIT_MERGED_WITH_NEXT,
    TOK_SPLIT_CONTIGUOUS,
} tok_split_behavior;

typedef enum tok_pre_kind { TOK_PRE_BYTELEVEL, TOK_PRE_SPLIT, TOK_PRE_METASPACE } tok_pre_kind;

enum { TOK_PREPEND_ALWAYS, TOK_PREPEND_FIRST, TOK_PREPEND_NEVER };

typedef struct tok_pre_step {
    tok_pre_kind kind;
    bool add_prefix_space, use_regex; /* ByteLevel */
    tok_pattern pattern;              /* Split, and ByteLevel's regex */
    tok_split_behavior behavior;
    bool invert;
    char replacement[8]; /* Metaspace: one character, UTF-8 */
    size_t replacement_len;
    int prepend_scheme;
    bool split;
} tok_pre_step;

#define TOK_MAX_PRE 8
#define TOK_MAX_DEC 8

typedef enum tok_dec_kind {
    TOK_DEC_BYTELEVEL,
    TOK_DEC_REPLACE,
    TOK_DEC_BYTE_FALLBACK,
    TOK_DEC_FUSE,
    TOK_DEC_STRIP,
    TOK_DEC_METASPACE,
    TOK_DEC_WORDPIECE,
} tok_dec_kind;

typedef struct tok_dec_step {
    tok_dec_kind kind;
    char *from, *to; /* Replace (literal), WordPiece prefix in `from` */
    size_t from_len, to_len;
    int32_t cp; /* Strip content / Metaspace replacement */
    size_t start, stop;
    bool prepend; /* Metaspace: prepend_scheme is not "never" */
    bool cleanup; /* WordPiece */
} tok_dec_step;

/* BPE merges: (left id, right id) -> (rank, merged id), open addressing. */
typedef struct tok_merges {
    uint64_t *keys; /* UINT64_MAX when empty */
    uint32_t *ranks;
    int32_t *ids;
    size_t mask, n;
} tok_merges;

ia_status tok_merges_init(tok_merges *m, size_t n);
/* A later duplicate replaces the earlier one, as HF's HashMap collect does. */
void tok_merges_put(tok_merges *m, int32_t a, int32_t b, uint32_t rank, int32_t id);
bool tok_merges_get(const tok_merges *m, int32_t a, int32_t b, uint32_t *rank, int32_t *id);
void tok_merges_free(tok_merges *m);

/* GPT-2's byte <-> printable character table. */
int32_t tok_byte_to_cp(unsigned char b);
int tok_cp_to_byte(int32_t cp); /* -1 when cp is not in the table */

/* ---- the tokenizer ----------------------------------------------------------- */

typedef enum tok_model_kind { TOK_MODEL_WORDPIECE, TOK_MODEL_BPE } tok_model_kind;

typedef struct tok_added {
    char *content; /* as written in the file */
    size_t len;
    char *match; /* what is searched for: content, normalised when `normalized` */
    size_t match_len;
    int32_t id;
    bool single_word, lstrip, rstrip, normalized, special;
} tok_added;

typedef struct tok_template_piece {
    int kind; /* 0: sequence A, 1: sequence B, 2: special token */
    uint32_t type_id;
    int32_t *ids;  /* the special token's ids (kind 2) */
    char **tokens; /* and their strings */
    size_t n_ids;
} tok_template_piece;

typedef struct tok_template {
    tok_template_piece *pieces;
    size_t n;
    size_t n_special; /* ids the template adds: truncation leaves room for them */
} tok_template;

struct ia_tokenizer {
    tok_vocab vocab;
    tok_model_kind model;
    /* normaliser steps, in order (none: the text as it is) */
    tok_norm_step *norm;
    size_t n_norm;
    /* pre-tokeniser: BertPreTokenizer, or the steps below, or none (a piece
     * is one word) */
    bool bert_pretok;
    tok_pre_step pre[TOK_MAX_PRE];
    size_t n_pre;
    /* WordPiece */
    char *prefix;
    size_t prefix_len;
    size_t max_chars;
    char *unk;
    int32_t unk_id; /* -1 when unk is not in the vocabulary */
    /* BPE (prefix above doubles as continuing_subword_prefix) */
    tok_merges merges;
    char *suffix; /* end_of_word_suffix */
    size_t suffix_len;
    bool byte_fallback, fuse_unk, ignore_merges;
    int32_t byte_ids[256]; /* <0xHH> tokens, -1 when absent */
    /* added tokens */
    tok_added *added;
    size_t n_added;
    /* first bytes of the raw and of the normalised added tokens: a quick
     * "could a match start here" test while scanning */
    bool first_raw[256], first_norm[256];
    /* post-processor: has_post false means none (pairs are concatenated) */
    bool has_post;
    tok_template single, pair;
    int32_t pad_id;
    uint32_t pad_type_id;
    char *pad_token;
    /* decoder: has_dec false joins the tokens with spaces, as HF does */
    bool has_dec;
    tok_dec_step dec[TOK_MAX_DEC];
    size_t n_dec;
    int32_t bos_id, eos_id; /* -1 when unknown */
};

/* Loader pieces shared by tokenizer.json, vocab.txt and the arrays loader. */
ia_tokenizer *tok_new(void);
ia_status tok_template_add(tok_template *t, int kind, uint32_t type_id, const int32_t *ids,
                           char *const *tokens, size_t n_ids);
ia_status tok_norm_push(ia_tokenizer *tok, tok_norm_step **out);
/* Adds merge `rank`: left + right (both in the vocabulary, as is their
 * concatenation, else IA_EPARSE naming `what`). */
ia_status tok_merge_add(ia_tokenizer *tok, const char *l, size_t ll, const char *r, size_t rl,
                        uint32_t rank, const char *what);
/* Fills byte_ids[] from the vocabulary's <0xHH> tokens. */
void tok_find_byte_tokens(ia_tokenizer *tok);
/* Sets bos/eos from well-known added tokens when still unknown. */
void tok_guess_bos_eos(ia_tokenizer *tok);
ia_status tok_add_token(ia_tokenizer *tok, const char *content, size_t len, int32_t id,
                        bool single_word, bool lstrip, bool rstrip, bool normalized, bool special);
ia_status tok_finish(ia_tokenizer *tok, const char *what);
/* Normalises text (the normaliser steps) into a malloc'd buffer. */
ia_status tok_normalize(const ia_tokenizer *tok, const char *text, size_t len, char **out,
                        size_t *out_len);

/* Decodes ids to text (HF decode); the result is malloc'd and NUL-terminated. */
ia_status tok_decode(const ia_tokenizer *tok, const int32_t *ids, size_t n, bool skip_special,
                     char **out, size_t *len);

#endif /* IA_TOKENIZE_INTERNAL_H */
