/*
 * Element types: names, sizes and conversions between the float formats.
 * f16 conversion follows IEEE 754 binary16 with round-to-nearest-even, which
 * is what numpy and PyTorch do.
 */
#include "ia/tensor.h"

#include <stdio.h>
#include <string.h>

static const ia_dtype_info dtype_infos[IA_DTYPE_COUNT] = {
    [IA_DTYPE_F32] = {"f32", 1, 4, true},
    [IA_DTYPE_F16] = {"f16", 1, 2, true},
    [IA_DTYPE_BF16] = {"bf16", 1, 2, true},
    [IA_DTYPE_I8] = {"i8", 1, 1, false},
    [IA_DTYPE_I32] = {"i32", 1, 4, false},
    [IA_DTYPE_I64] = {"i64", 1, 8, false},
    /* ggml's block geometry: elements per block, bytes per block. */
    [IA_DTYPE_Q4_0] = {"q4_0", 32, 18, true},
    [IA_DTYPE_Q4_1] = {"q4_1", 32, 20, true},
    [IA_DTYPE_Q5_0] = {"q5_0", 32, 22, true},
    [IA_DTYPE_Q5_1] = {"q5_1", 32, 24, true},
    [IA_DTYPE_Q8_0] = {"q8_0", 32, 34, true},
    [IA_DTYPE_Q2_K] = {"q2_k", 256, 84, true},
    [IA_DTYPE_Q3_K] = {"q3_k", 256, 110, true},
    [IA_DTYPE_Q4_K] = {"q4_k", 256, 144, true},
    [IA_DTYPE_Q5_K] = {"q5_k", 256, 176, true},
    [IA_DTYPE_Q6_K] = {"q6_k", 256, 210, true},
    [IA_DTYPE_Q8_K] = {"q8_k", 256, 292, true},
};

const ia_dtype_info *ia_dtype_get_info(ia_dtype dtype) {
    if ((unsigned)dtype >= IA_DTYPE_COUNT)
        return NULL;
    return &dtype_infos[dtype];
}

const char *ia_dtype_name(ia_dtype dtype) {
    const ia_dtype_info *info = ia_dtype_get_info(dtype);
    return info ? info->name : "unknown";
}

ia_status ia_dtype_bytes(ia_dtype dtype, uint64_t n, size_t *out) {
    const ia_dtype_info *info = ia_dtype_get_info(dtype);
    if (!info)
        return ia_error_set(IA_EINVAL, "unknown dtype %d", (int)dtype);
    if (n % info->block_elems)
        return ia_error_set(IA_ERANGE, "%llu elements is not a whole number of %s blocks of %u",
                            (unsigned long long)n, info->name, info->block_elems);
    uint64_t bytes;
    if (__builtin_mul_overflow(n / info->block_elems, (uint64_t)info->block_bytes, &bytes) ||
        bytes > SIZE_MAX)
        return ia_error_set(IA_ENOMEM, "%llu elements of %s overflow a size", (unsigned long long)n,
                            info->name);
    *out = (size_t)bytes;
    return IA_OK;
}

int64_t ia_tensor_numel(const ia_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

const char *ia_tensor_shape_str(const ia_tensor *t, char *buf, size_t cap) {
    size_t used = 0;
    used += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < t->ndim && used < cap; i++)
        used +=
            (size_t)snprintf(buf + used, cap - used, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (used < cap)
        snprintf(buf + used, cap - used, "]");
    return buf;
}

float ia_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int shift = 0;
            while (!(mant & 0x400)) {
                mant <<= 1;
                shift++;
            }
            mant &= 0x3ff;
            bits = sign | ((uint32_t)(127 - 15 - shift + 1) << 23) | (mant << 13);
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

uint16_t ia_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t abs = x & 0x7fffffffu;
    if (abs > 0x7f800000u)
        return (uint16_t)(sign | 0x7e00); /* NaN */
    if (abs >= 0x477ff000u)               /* rounds to >= 65520: infinity */
        return (uint16_t)(sign | 0x7c00);
    if (abs < 0x38800000u) { /* below the smallest normal: subnormal or zero */
        if (abs < 0x33000000u)
            return (uint16_t)sign;
        uint32_t mant = (abs & 0x7fffff) | 0x800000;
        int shift = 126 - (int)(abs >> 23); /* 14..24 */
        uint32_t half = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1)))
            half++;
        return (uint16_t)(sign | half);
    }
    uint32_t r = abs - 0x38000000u; /* rebias exponent by (127 - 15) << 23 */
    uint32_t half = r >> 13;
    uint32_t rem = r & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1)))
        half++;
    return (uint16_t)(sign | half);
}

ia_status ia_convert_to_f32(ia_dtype src_type, const void *src, float *dst, size_t n) {
    switch (src_type) {
    case IA_DTYPE_F32:
        memcpy(dst, src, n * sizeof(float));
        return IA_OK;
    case IA_DTYPE_F16: {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++)
            dst[i] = ia_f16_to_f32(s[i]);
        return IA_OK;
    }
    case IA_DTYPE_BF16: {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++)
            dst[i] = ia_bf16_to_f32(s[i]);
        return IA_OK;
    }
    default:
        return ia_error_set(IA_EUNSUPPORTED, "cannot convert %s to f32", ia_dtype_name(src_type));
    }
}
