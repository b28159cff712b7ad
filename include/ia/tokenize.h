/*
 * tokenize: HF tokenizers, natively.
 *
 * Loads a tokenizer.json (the HF `tokenizers` serialisation) or, failing
 * that, a BERT vocab.txt, and turns text into the same ids that HF
 * `tokenizers` gives for encode(text): normaliser, pre-tokeniser, model and
 * post-processor as the file configures them. This issue covers the
 * BertNormalizer, BertPreTokenizer, WordPiece and TemplateProcessing (and
 * BertProcessing) pieces; other piece types are rejected at load with a
 * message naming the type. BPE and Unigram come with the decoder issue.
 *
 * A loaded tokenizer is immutable: ia_tokenizer_encode may be called from
 * many threads at once.
 */
#ifndef IA_TOKENIZE_H
#define IA_TOKENIZE_H

#include "ia/base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ia_tokenizer ia_tokenizer;

/* From a model directory: tokenizer.json when present, else vocab.txt (with
 * do_lower_case etc. from tokenizer_config.json when present). */
ia_status ia_tokenizer_load_dir(const char *dir, ia_tokenizer **out);
ia_status ia_tokenizer_load_json(const char *path, ia_tokenizer **out);
/* From tokenizer.json text in memory; `what` names it in errors (fuzzer). */
ia_status ia_tokenizer_parse_json(const char *text, size_t len, const char *what,
                                  ia_tokenizer **out);
/* A BERT WordPiece tokenizer from vocab.txt; lowercase also strips accents,
 * as BertTokenizer does. */
ia_status ia_tokenizer_load_vocab(const char *path, bool lowercase, ia_tokenizer **out);
void ia_tokenizer_free(ia_tokenizer *tok);

typedef enum ia_truncation {
    IA_TRUNCATE_LONGEST_FIRST = 0,
    IA_TRUNCATE_ONLY_FIRST,
    IA_TRUNCATE_ONLY_SECOND,
} ia_truncation;

typedef struct ia_encode_options {
    bool add_special_tokens;  /* apply the post-processor (default true) */
    size_t max_length;        /* 0: no truncation; counts special tokens */
    ia_truncation truncation; /* how to cut pairs */
    size_t pad_to;            /* 0: no padding; else pad (right) to this length */
    bool want_tokens;         /* also fill tokens[] with the token strings */
} ia_encode_options;

/* add_special_tokens = true, nothing else. */
ia_encode_options ia_encode_options_default(void);

typedef struct ia_encoding {
    size_t len;
    int32_t *ids;
    int32_t *type_ids;
    uint8_t *attention_mask; /* 1 for real tokens, 0 for padding */
    char **tokens;           /* NULL unless want_tokens */
} ia_encoding;

/* Encodes text (and optionally a pair; pair may be NULL). Text must be
 * valid UTF-8 (IA_EINVAL naming the byte offset otherwise). The encoding's
 * arrays are allocated here; free them with ia_encoding_free. */
ia_status ia_tokenizer_encode(const ia_tokenizer *tok, const char *text, size_t len,
                              const char *pair, size_t pair_len, const ia_encode_options *opts,
                              ia_encoding *out);
void ia_encoding_free(ia_encoding *enc);

size_t ia_tokenizer_vocab_size(const ia_tokenizer *tok);
/* The token string of an id (borrowed), or NULL when out of range. */
const char *ia_tokenizer_id_to_token(const ia_tokenizer *tok, int32_t id);
/* The id of a token string, or -1. */
int32_t ia_tokenizer_token_to_id(const ia_tokenizer *tok, const char *token);
/* The padding id (from the padding config or [PAD]/<pad>), or 0. */
int32_t ia_tokenizer_pad_id(const ia_tokenizer *tok);

#ifdef __cplusplus
}
#endif

#endif /* IA_TOKENIZE_H */
