/*
 * libFuzzer target for the safetensors reader: parses the input as a whole
 * file image and, when it is accepted, reads the first and last byte of every
 * tensor (and walks names and metadata), so that a view reaching outside the
 * input is caught by ASan. Every accepted tensor must also be findable by
 * its own name; a miss is a lookup bug and aborts the run.
 */
#include "ia/formats.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ia_safetensors *st = NULL;
    if (ia_safetensors_parse(data, size, "fuzz.safetensors", &st) != IA_OK)
        return 0;
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < ia_safetensors_count(st); i++) {
        const ia_tensor *t = ia_safetensors_at(st, i);
        size_t bytes = 0;
        if (ia_dtype_bytes(t->dtype, (uint64_t)ia_tensor_numel(t), &bytes) != IA_OK)
            abort();
        if (bytes) {
            const uint8_t *p = t->data;
            sink ^= p[0];
            sink ^= p[bytes - 1];
        }
        sink ^= (uint8_t)strlen(t->name);
        if (ia_safetensors_find(st, t->name) != t)
            abort();
    }
    const char *format = ia_safetensors_metadata(st, "format");
    if (format)
        sink ^= (uint8_t)strlen(format);
    (void)sink;
    ia_safetensors_close(st);
    return 0;
}
