/*
 * libFuzzer target for the GGUF -> tokenizer path: the input is a GGUF image
 * whose tokenizer.ggml.* metadata goes through ia_tokenizer_from_gguf (the
 * generator's glue) into ia_tokenizer_load_arrays. When a tokenizer results,
 * a few fixed strings (ASCII, CJK, emoji, control characters) are encoded,
 * every id is checked against the vocabulary, and the ids are decoded in one
 * shot and streamed through the detokenizer, whose pieces must be UTF-8;
 * invalid UTF-8 must be rejected by encode with IA_EINVAL. A failed load must
 * leave no tokenizer and say why. Violations abort the run.
 *
 * Seeds (fuzz/corpus/tokenizer_arrays/) are the tokenizer metadata of
 * tests/fixtures/decoders/<arch>/model.gguf without tensors plus broken
 * variants, written by tests/runtime/test_tokenizer_gguf.c
 * (IA_TOKENIZER_GGUF_CORPUS=dir).
 */
#include "ia/formats.h"
#include "ia/runtime.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const valid_texts[] = {
    "Hello, world! It's 42 degrees.\n\tTabs  and   spaces",
    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe6\x96\x87\xe7\xab\xa0 "
    "\xe4\xb8\xad\xe6\x96\x87", /* 日本語の文章 中文 */
    "emoji \xf0\x9f\x91\x8b\xf0\x9f\x8f\xbd \xf0\x9f\x9a\x80 "
    "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7",
    "<s> </s> <|begin_of_text|> <|im_start|>user\n<0x41>",
    "",
};

#define TEXT(lit) \
    { lit, sizeof lit - 1 }
static const struct {
    const char *s;
    size_t len;
} invalid_texts[] = {
    TEXT("\xff\xfe abc"),           /* bytes that never start UTF-8 */
    TEXT("abc \xc3"),               /* truncated sequence */
    TEXT("\xed\xa0\x80 surrogate"), /* UTF-16 surrogate */
    TEXT("\xc0\xaf overlong"),      /* overlong '/' */
    TEXT("nul \0 inside \xe2\x82"), /* embedded NUL, then truncated */
    TEXT("\xf4\x90\x80\x80 past U+10FFFF"),
};

static void check_utf8(const char *s, size_t len) {
    if (len && !s)
        abort();
    if (!ia_utf8_valid(s, len, NULL))
        abort();
}

static void decode_ids(const ia_tokenizer *tok, const int32_t *ids, size_t n) {
    for (int skip = 0; skip < 2; skip++) {
        char *text = NULL;
        size_t len = 0;
        if (ia_tokenizer_decode(tok, ids, n, skip, &text, &len) == IA_OK) {
            check_utf8(text, len);
            if (text[len] != '\0')
                abort();
        }
        free(text);
        ia_detokenizer *d = NULL;
        if (ia_detokenizer_create(tok, skip, &d) != IA_OK)
            continue;
        const char *piece;
        for (size_t i = 0; i < n; i++)
            if (ia_detokenizer_push(d, ids[i], &piece, &len) == IA_OK)
                check_utf8(piece, len);
        if (ia_detokenizer_flush(d, &piece, &len) == IA_OK)
            check_utf8(piece, len);
        ia_detokenizer_free(d);
    }
}

static void exercise(const ia_tokenizer *tok) {
    size_t vocab = ia_tokenizer_vocab_size(tok);
    ia_encode_options opts = ia_encode_options_default();
    opts.want_tokens = true;
    for (size_t t = 0; t < sizeof valid_texts / sizeof valid_texts[0]; t++) {
        ia_encoding enc = {0};
        if (ia_tokenizer_encode(tok, valid_texts[t], strlen(valid_texts[t]), NULL, 0, &opts,
                                &enc) == IA_OK) {
            for (size_t i = 0; i < enc.len; i++) {
                if (enc.ids[i] < 0 || (size_t)enc.ids[i] >= vocab)
                    abort();
                if (!ia_tokenizer_id_to_token(tok, enc.ids[i]))
                    abort();
            }
            decode_ids(tok, enc.ids, enc.len);
        }
        ia_encoding_free(&enc);
    }
    for (size_t t = 0; t < sizeof invalid_texts / sizeof invalid_texts[0]; t++) {
        ia_encoding enc = {0};
        if (ia_tokenizer_encode(tok, invalid_texts[t].s, invalid_texts[t].len, NULL, 0, &opts,
                                &enc) != IA_EINVAL)
            abort();
        ia_encoding_free(&enc);
    }
    /* ids the vocabulary does not hold are skipped, not read */
    int32_t odd[] = {-1, 0, (int32_t)vocab, INT32_MAX, INT32_MIN, (int32_t)vocab - 1};
    decode_ids(tok, odd, sizeof odd / sizeof odd[0]);
    (void)ia_tokenizer_bos_id(tok);
    (void)ia_tokenizer_eos_id(tok);
    (void)ia_tokenizer_adds_bos(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bool quiet;
    if (!quiet) {
        ia_log_set_level(IA_LOG_ERROR);
        quiet = true;
    }
    ia_gguf *g = NULL;
    if (ia_gguf_open_memory(data, size, "fuzz.gguf", &g) != IA_OK)
        return 0;
    ia_tokenizer *tok = (ia_tokenizer *)g; /* must be reset to NULL on failure */
    ia_status st = ia_tokenizer_from_gguf(g, &tok);
    if (st == IA_OK) {
        if (!tok)
            abort();
        exercise(tok);
        ia_tokenizer_free(tok);
    } else if (tok || !ia_error_message()[0]) {
        abort();
    }
    ia_gguf_close(g);
    return 0;
}
