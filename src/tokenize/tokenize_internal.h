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

/* ---- the tokenizer ----------------------------------------------------------- */

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
    /* normaliser (BertNormalizer; all false when there is none) */
    bool clean_text, handle_chinese, strip_accents, lowercase;
    /* pre-tokeniser: BertPreTokenizer, or none (a piece is one word) */
    bool bert_pretok;
    /* WordPiece */
    char *prefix;
    size_t prefix_len;
    size_t max_chars;
    char *unk;
    int32_t unk_id; /* -1 when unk is not in the vocabulary */
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
};

/* Loader pieces used by both tokenizer.json and vocab.txt paths. */
ia_status tok_add_token(ia_tokenizer *tok, const char *content, size_t len, int32_t id,
                        bool single_word, bool lstrip, bool rstrip, bool normalized, bool special);
ia_status tok_finish(ia_tokenizer *tok, const char *what);
/* Normalises text (BertNormalizer as configured) into a malloc'd buffer. */
ia_status tok_normalize(const ia_tokenizer *tok, const char *text, size_t len, char **out,
                        size_t *out_len);

#endif /* IA_TOKENIZE_INTERNAL_H */
