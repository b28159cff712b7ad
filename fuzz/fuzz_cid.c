/*
 * libFuzzer target for CID and multibase parsing: the input as text (a CID
 * string, and a multibase string) and as a binary CID. Whatever parses must
 * format back to a string that parses to the same CID, and re-encode to the
 * same binary prefix; every base must round-trip the decoded bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ia/ipfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_roundtrip(const ia_cid *cid) {
    static const ia_multibase bases[] = {IA_BASE32, IA_BASE58BTC, IA_BASE16, IA_BASE36};
    char text[IA_CID_MAX_STRING];
    for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++) {
        ia_cid back;
        if (ia_cid_format(cid, bases[i], text, sizeof text) != IA_OK)
            continue; /* a very long identity digest may not fit */
        if (ia_cid_parse(text, &back) != IA_OK || !ia_cid_equal(cid, &back))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 8192)
        return 0;
    char *str = malloc(size + 1);
    if (!str)
        return 0;
    memcpy(str, data, size);
    str[size] = 0;
    ia_cid cid;
    if (ia_cid_parse(str, &cid) == IA_OK)
        check_roundtrip(&cid);
    uint8_t *bytes = NULL;
    size_t n = 0;
    ia_multibase base;
    if (ia_multibase_decode(str, &bytes, &n, &base) == IA_OK) {
        char *again = NULL;
        uint8_t *back = NULL;
        size_t m = 0;
        if (ia_multibase_encode(base, bytes, n, &again) != IA_OK ||
            ia_multibase_decode(again, &back, &m, NULL) != IA_OK || m != n ||
            (n && memcmp(back, bytes, n) != 0))
            abort();
        free(again);
        free(back);
        free(bytes);
    }
    free(str);
    size_t used;
    if (ia_cid_decode(data, size, &cid, &used) == IA_OK) {
        uint8_t bin[IA_CID_MAX_BYTES];
        size_t len = ia_cid_encode(&cid, bin);
        if (len != used || memcmp(bin, data, len) != 0)
            abort();
        check_roundtrip(&cid);
    }
    return 0;
}
