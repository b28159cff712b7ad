/*
 * libFuzzer target for the quantised block decoders: the first input byte
 * picks one of the eleven block types, the rest is taken as whole blocks of
 * it (at most 64, the tail that does not fill a block dropped) and goes
 * through ia_quant_validate and ia_dequantize_row. Any bytes must be safe to
 * decode; blocks of the weight types that validate must decode to finite
 * values (a finite f16 scale times a small integer level cannot overflow
 * f32; Q8_K's f32 scale can, and it is never read from files); a failed
 * validation must name a block inside the input; a partial block is
 * refused.
 */
#include "ia/quant.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ia_dtype types[] = {IA_DTYPE_Q4_0, IA_DTYPE_Q4_1, IA_DTYPE_Q5_0, IA_DTYPE_Q5_1,
                                 IA_DTYPE_Q8_0, IA_DTYPE_Q2_K, IA_DTYPE_Q3_K, IA_DTYPE_Q4_K,
                                 IA_DTYPE_Q5_K, IA_DTYPE_Q6_K, IA_DTYPE_Q8_K};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    ia_dtype type = types[data[0] % (sizeof types / sizeof types[0])];
    const ia_dtype_info *info = ia_dtype_get_info(type);
    size_t nb = (size - 1) / info->block_bytes;
    if (nb > 64)
        nb = 64;
    size_t n = nb * info->block_elems;
    /* An exact-size copy, so ASan sees any read past the last block. */
    uint8_t *blocks = malloc(nb * info->block_bytes + 1);
    float *out = malloc((n + 1) * sizeof *out);
    if (!blocks || !out)
        abort();
    memcpy(blocks, data + 1, nb * info->block_bytes);
    size_t bad = SIZE_MAX;
    ia_status vst = ia_quant_validate(type, blocks, n, &bad);
    if (ia_dequantize_row(type, blocks, out, n) != IA_OK)
        abort(); /* any whole number of blocks decodes */
    if (vst != IA_OK && bad >= nb)
        abort();
    if (vst == IA_OK && type != IA_DTYPE_Q8_K)
        for (size_t i = 0; i < n; i++)
            if (!isfinite(out[i]))
                abort();
    /* A partial block is refused, never read. */
    if (info->block_elems > 1 && n > 0 && ia_dequantize_row(type, blocks, out, n - 1) != IA_ERANGE)
        abort();
    free(blocks);
    free(out);
    return 0;
}
