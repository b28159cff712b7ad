/*
 * libFuzzer target for the dag-pb decoder. Whatever decodes must re-encode
 * to exactly the input (the strict decoder accepts only canonical field
 * order, so decode-encode is the identity), and every borrowed name and the
 * data are read to the end so ASan catches a pointer outside the block.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ia/ipfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ia_pb_node node;
    if (ia_dagpb_decode(data, size, &node) != IA_OK)
        return 0;
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < node.n_links; i++)
        for (size_t k = 0; k < node.links[i].name_len; k++)
            sink ^= (uint8_t)node.links[i].name[k];
    for (size_t k = 0; k < node.data_len; k++)
        sink ^= node.data[k];
    (void)sink;
    uint8_t *out = NULL;
    size_t len = 0;
    if (ia_dagpb_encode(&node, &out, &len) != IA_OK)
        abort();
    /* Varints inside may be non-minimal in the input; lengths then differ.
     * Canonical inputs (what every encoder writes) must come back as is. */
    if (len == size && memcmp(out, data, size) != 0)
        abort();
    if (len > size)
        abort();
    free(out);
    ia_pb_node_free(&node);
    return 0;
}
