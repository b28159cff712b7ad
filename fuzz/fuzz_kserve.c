/*
 * libFuzzer target for the KServe v2 inference answer parser
 * (ia_kserve_parse, src/backends/provider_ovms.c): an OVMS server's answer
 * is untrusted. The first byte picks the operation (bit 0: embed, else chat)
 * and whether an output is named (bit 1: "embeddings" / "text_output"); the
 * rest is the body. Checks on success: chat has text; embeddings are
 * n x dim values, every one of them readable.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/backends/backends_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 1 << 20)
        return 0;
    bool embed = data[0] & 1;
    const char *output = data[0] & 2 ? (embed ? "embeddings" : "text_output") : NULL;
    ia_api_op op = embed ? IA_API_EMBED : IA_API_CHAT;
    ia_api_result r;
    memset(&r, 0, sizeof r);
    if (ia_kserve_parse(op, output, (const char *)data + 1, size - 1, &r) == IA_OK) {
        if (!embed && !r.text)
            abort();
        if (embed) {
            if (r.n_embeddings == 0 || r.dim == 0 || !r.embeddings)
                abort();
            volatile float sum = 0;
            for (size_t i = 0; i < r.n_embeddings * r.dim; i++)
                sum += r.embeddings[i];
            (void)sum;
        }
    }
    ia_api_result_free(&r);
    return 0;
}
