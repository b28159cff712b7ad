/*
 * libFuzzer target for the CAR reader: parses the input as a CARv1 or
 * CARv2 (header CBOR, CARv2 offsets, section lengths, CIDs, block hashes)
 * without a store, reads every root it returns, and also runs the same bytes
 * through the dag-cbor and dag-pb link readers that walks and gc use.
 */
#include "ia/ipfs.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ia_car_info info;
    volatile size_t sink = 0;
    if (ia_car_import_buffer(NULL, data, size, "fuzz.car", &info) == IA_OK) {
        for (size_t i = 0; i < info.n_roots; i++)
            sink += info.roots[i].digest_len + (size_t)info.roots[i].codec;
        sink += (size_t)info.n_blocks;
        ia_car_info_free(&info);
    }
    static const uint64_t codecs[] = {IA_CODEC_DAG_CBOR, IA_CODEC_DAG_PB};
    for (size_t c = 0; c < 2; c++) {
        ia_cid cid;
        ia_cid *links = NULL;
        size_t n = 0;
        ia_cid_of_block(1, codecs[c], data, size, &cid);
        if (ia_block_links(&cid, data, size, &links, &n) == IA_OK)
            for (size_t i = 0; i < n; i++)
                sink += links[i].digest_len;
        free(links);
    }
    (void)sink;
    return 0;
}
