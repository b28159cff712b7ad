/*
 * libFuzzer target for the streaming CAR framing that `get --from` runs on a
 * gateway's answer as it arrives (ia_car_stream_item, then ia_cid_decode of
 * each section). The input's first byte picks the size of the pieces the
 * rest is delivered in, so items cut at every possible place are exercised;
 * the framing must never read past what it was given, and feeding the same
 * bytes in one piece must split them into the same items.
 */
#include "ia/ipfs.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ITEM ((size_t)1 << 20)

/* Splits buf[0..len) into items as a reader that received it all would;
 * returns how many items, and the bytes they took in *took. */
static size_t split_all(const uint8_t *buf, size_t len, size_t *took) {
    size_t pos = 0, items = 0;
    bool header_done = false;
    for (;;) {
        const uint8_t *item;
        size_t n, used;
        if (ia_car_stream_item(buf + pos, len - pos, header_done, MAX_ITEM, &item, &n, &used) ||
            used == 0)
            break;
        if (used > len - pos || item < buf + pos || item + n > buf + pos + used)
            abort(); /* an item outside what it was given */
        if (header_done) {
            ia_cid cid;
            size_t cid_len;
            if (ia_cid_decode(item, n, &cid, &cid_len) == IA_OK && cid_len > n)
                abort();
        }
        header_done = true;
        pos += used;
        items++;
    }
    *took = pos;
    return items;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    size_t piece = (size_t)data[0] % 64 + 1;
    data++;
    size--;
    size_t whole_took;
    size_t whole = split_all(data, size, &whole_took);

    /* The same bytes arriving piece by piece, kept in a growing buffer as
     * the fetcher keeps an item cut at a piece's end. */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    size_t have = 0, start = 0, items = 0, took = 0;
    bool header_done = false, failed = false;
    for (size_t off = 0; off < size && !failed; off += piece) {
        size_t n = size - off < piece ? size - off : piece;
        memcpy(buf + have, data + off, n);
        have += n;
        for (;;) {
            const uint8_t *item;
            size_t len, used;
            if (ia_car_stream_item(buf + start, have - start, header_done, MAX_ITEM, &item, &len,
                                   &used)) {
                failed = true;
                break;
            }
            if (used == 0)
                break;
            header_done = true;
            start += used;
            took += used;
            items++;
        }
    }
    free(buf);
    if (items != whole || took != whole_took)
        abort(); /* piecewise and whole framing disagree */
    return 0;
}
