/*
 * libFuzzer target for the UnixFS decoder, alone and inside a dag-pb node
 * (the way the exporter meets it). Decoded data is read to the end, and
 * whatever decodes is re-encoded and decoded again to the same fields.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ia/ipfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const uint8_t *data, size_t size) {
    ia_unixfs u, v;
    if (ia_unixfs_decode(data, size, &u) != IA_OK)
        return;
    volatile uint8_t sink = 0;
    for (size_t k = 0; k < u.data_len; k++)
        sink ^= u.data[k];
    uint64_t sum = 0;
    for (size_t i = 0; i < u.n_blocksizes; i++)
        sum += u.blocksizes[i];
    sink ^= (uint8_t)sum;
    (void)sink;
    uint8_t *out = NULL;
    size_t len = 0;
    if (ia_unixfs_encode(&u, &out, &len) != IA_OK)
        abort();
    if (ia_unixfs_decode(out, len, &v) != IA_OK)
        abort();
    if (v.type != u.type || v.n_blocksizes != u.n_blocksizes || v.has_data != u.has_data ||
        v.data_len != u.data_len || (u.data_len && memcmp(v.data, u.data, u.data_len) != 0) ||
        v.filesize != u.filesize || v.fanout != u.fanout || v.hash_type != u.hash_type)
        abort();
    for (size_t i = 0; i < u.n_blocksizes; i++)
        if (v.blocksizes[i] != u.blocksizes[i])
            abort();
    ia_unixfs_free(&v);
    ia_unixfs_free(&u);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    check(data, size);
    ia_pb_node node;
    if (ia_dagpb_decode(data, size, &node) == IA_OK) {
        if (node.has_data)
            check(node.data, node.data_len);
        ia_pb_node_free(&node);
    }
    return 0;
}
