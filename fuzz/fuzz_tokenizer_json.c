/*
 * Fuzz target for the tokenizer.json loader and the encoder behind it.
 *
 * The input is split at the first NUL byte: before it, a tokenizer.json
 * document; after it, text to encode (single, then as a pair with itself,
 * with truncation and padding), so one run exercises both the parser on
 * hostile JSON and the encoder on hostile text with whatever configuration
 * the parser accepted. Errors are expected; crashes, leaks and sanitizer
 * reports are not.
 */
#include "ia/tokenize.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *json = (const char *)data;
    const uint8_t *nul = memchr(data, 0, size);
    size_t json_len = nul ? (size_t)(nul - data) : size;
    const char *text = nul ? (const char *)nul + 1 : "";
    size_t text_len = nul ? size - json_len - 1 : 0;
    ia_tokenizer *tok = NULL;
    if (ia_tokenizer_parse_json(json, json_len, "fuzz", &tok) != IA_OK)
        return 0;
    ia_encoding e;
    ia_encode_options o = ia_encode_options_default();
    o.want_tokens = true;
    if (ia_tokenizer_encode(tok, text, text_len, NULL, 0, &o, &e) == IA_OK)
        ia_encoding_free(&e);
    o.max_length = 8;
    o.pad_to = 12;
    for (int how = 0; how < 3; how++) {
        o.truncation = (ia_truncation)how;
        if (ia_tokenizer_encode(tok, text, text_len, text, text_len, &o, &e) == IA_OK)
            ia_encoding_free(&e);
    }
    ia_tokenizer_free(tok);
    return 0;
}
