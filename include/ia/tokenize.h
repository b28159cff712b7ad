/*
 * tokenize: HF tokenizers, natively.
 *
 * Loads a tokenizer.json (the HF `tokenizers` serialisation) or, failing
 * that, a BERT vocab.txt, and turns text into the same ids that HF
 * `tokenizers` gives for encode(text): normaliser, pre-tokeniser, model and
 * post-processor as the file configures them. This issue covers the
 * WordPiece family (BertNormalizer, BertPreTokenizer, WordPiece), byte-level
 * BPE (GPT-2, RoBERTa, LLaMA-3, Qwen2: ByteLevel and Split pre-tokenizers,
 * PCRE2 for their regexes) and SentencePiece-style BPE (LLaMA-2, Mistral:
 * Prepend/Replace normalizers or Metaspace, byte_fallback), with their
 * post-processors and decoders; other piece types (Unigram, WordLevel, ...)
 * are rejected at load with a message naming the type.
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
/* Beginning / end of sequence ids, or -1 when unknown. Taken from
 * tokenizer_config.json's bos_token / eos_token when loading a directory,
 * else from the post-processor's template and well-known added tokens
 * (<s>, </s>, <|begin_of_text|>, <|endoftext|>, ...), or from the arrays. */
int32_t ia_tokenizer_bos_id(const ia_tokenizer *tok);
int32_t ia_tokenizer_eos_id(const ia_tokenizer *tok);
/* Whether encode with add_special_tokens puts a special token first (the
 * post-processor's single template starts with one, or add_bos). */
bool ia_tokenizer_adds_bos(const ia_tokenizer *tok);

/* ---- decoding ----------------------------------------------------------------- */

/* ids -> text, as HF's Tokenizer.decode(ids, skip_special_tokens) does: the
 * token strings (added tokens included, special ones dropped when
 * skip_special) through the file's decoder (ByteLevel byte reassembly,
 * ByteFallback, Metaspace, ...). Ids the vocabulary does not hold are
 * skipped, as HF skips them; bytes that do not form UTF-8 become U+FFFD as in
 * Rust's from_utf8_lossy. *out is malloc'd, NUL-terminated, owned by the
 * caller; *len excludes the NUL. */
ia_status ia_tokenizer_decode(const ia_tokenizer *tok, const int32_t *ids, size_t n,
                              bool skip_special, char **out, size_t *len);

/* Streaming decode for generation: push ids one at a time and get the text
 * they complete. Text is held back while it ends in an incomplete UTF-8
 * sequence and SentencePiece's first-token space strip is applied once, so
 * the concatenation of everything push and flush return equals
 * ia_tokenizer_decode of all the ids (HF's DecodeStream algorithm), except
 * when the ids stop inside a character: then the complete text is followed
 * by U+FFFD, where a one-shot ByteFallback decode would turn the whole byte
 * run into one U+FFFD per byte; and when a later id changes how bytes
 * already given out decode (a byte run that never forms a character), the
 * given text stands and the rest continues from the next character, as
 * transformers' TextStreamer does. Every piece is valid UTF-8. The
 * detokenizer borrows tok, which must outlive it; one per stream, not
 * thread-safe. */
typedef struct ia_detokenizer ia_detokenizer;
ia_status ia_detokenizer_create(const ia_tokenizer *tok, bool skip_special, ia_detokenizer **out);
/* *text points into the detokenizer (valid until the next call) and may be
 * empty (*len 0) when nothing is complete yet. */
ia_status ia_detokenizer_push(ia_detokenizer *d, int32_t id, const char **text, size_t *len);
/* Whatever is still held back (an incomplete sequence comes out as U+FFFD). */
ia_status ia_detokenizer_flush(ia_detokenizer *d, const char **text, size_t *len);
void ia_detokenizer_free(ia_detokenizer *d);

/* ---- from vocabulary arrays (GGUF) ----------------------------------------------- */

/* GGUF token types (tokenizer.ggml.token_type). */
enum {
    IA_TOKEN_NORMAL = 1,
    IA_TOKEN_UNKNOWN = 2,
    IA_TOKEN_CONTROL = 3,      /* a special added token */
    IA_TOKEN_USER_DEFINED = 4, /* a non-special added token */
    IA_TOKEN_UNUSED = 5,
    IA_TOKEN_BYTE = 6, /* <0xHH> for byte_fallback */
};

/* A tokenizer described by arrays, as GGUF metadata holds one; every field
 * names the GGUF key it comes from. Nothing is borrowed past the call. */
typedef struct ia_tokenizer_arrays {
    const char *model;         /* tokenizer.ggml.model: "gpt2" (byte-level BPE) or "llama"
                                  (SentencePiece-style BPE with byte fallback) */
    const char *pre;           /* tokenizer.ggml.pre: "default", "gpt-2", "llama-bpe"
                                  ("llama3"), "qwen2", ...; NULL means "default" */
    const char *const *tokens; /* tokenizer.ggml.tokens */
    const size_t *token_lens;  /* their byte lengths; NULL: NUL-terminated */
    size_t n_tokens;
    const float *scores;        /* tokenizer.ggml.scores (NULL: none); "llama" without merges
                                   derives merges from them as HF's converter does */
    const int32_t *token_types; /* tokenizer.ggml.token_type (NULL: all normal) */
    const char *const *merges;  /* tokenizer.ggml.merges, "left right" */
    size_t n_merges;
    int32_t bos_id; /* tokenizer.ggml.bos_token_id, -1 when absent */
    int32_t eos_id; /* tokenizer.ggml.eos_token_id */
    int32_t unk_id; /* tokenizer.ggml.unknown_token_id */
    int32_t pad_id; /* tokenizer.ggml.padding_token_id */
    bool add_bos;   /* tokenizer.ggml.add_bos_token */
    bool add_eos;   /* tokenizer.ggml.add_eos_token */
    /* tokenizer.ggml.add_space_prefix false: "llama" does not prepend U+2581
     * (nor strip it when decoding) */
    bool no_space_prefix;
    /* "bert" (WordPiece): tokenizer.ggml.normalizer.lowercase and
     * .strip_accents; when absent llama.cpp takes lowercase true and
     * strip_accents equal to lowercase, and so should the caller. */
    bool bert_lowercase, bert_strip_accents;
} ia_tokenizer_arrays;

/* Builds the tokenizer HF would load from the equivalent tokenizer.json:
 * "gpt2" gets the pre-tokenizer steps of the family `pre` names (GPT-2,
 * LLaMA-3, Qwen2, StarCoder, Falcon, DeepSeek, ...; see tokenize/arrays.c)
 * and the ByteLevel decoder; "llama" gets
 * Prepend/Replace U+2581, byte_fallback, fuse_unk and the SentencePiece
 * decoder; "bert" (llama.cpp's phantom-space WordPiece vocabulary) gets
 * the vocabulary back in HF's "##" form, BertNormalizer, BertPreTokenizer,
 * WordPiece and the [CLS] A [SEP] template. Control and user-defined tokens become added tokens.
 * add_bos / add_eos become the template. IA_EUNSUPPORTED for another model or pre. */
ia_status ia_tokenizer_load_arrays(const ia_tokenizer_arrays *a, ia_tokenizer **out);

#ifdef __cplusplus
}
#endif

#endif /* IA_TOKENIZE_H */
