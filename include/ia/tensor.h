/*
 * tensor: element types and tensor views.
 *
 * An ia_tensor is a borrowed, row-major view: it names its data but never owns
 * it (weights belong to the mapped file they came from, scratch to an arena).
 * The innermost dimension is the last one, as in safetensors, PyTorch and
 * NumPy. Element types describe themselves through ia_dtype_info so that
 * block-quantised types (quant.h) fit the same size arithmetic: a row
 * of n elements of a type with block_elems B takes n / B * block_bytes bytes.
 */
#ifndef IA_TENSOR_H
#define IA_TENSOR_H

#include "ia/base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ia_dtype {
    IA_DTYPE_F32 = 0,
    IA_DTYPE_F16,
    IA_DTYPE_BF16,
    IA_DTYPE_I8,
    IA_DTYPE_I32,
    IA_DTYPE_I64,
    /* Block-quantised types, byte-compatible with ggml's (see quant.h). */
    IA_DTYPE_Q4_0,
    IA_DTYPE_Q4_1,
    IA_DTYPE_Q5_0,
    IA_DTYPE_Q5_1,
    IA_DTYPE_Q8_0,
    IA_DTYPE_Q2_K,
    IA_DTYPE_Q3_K,
    IA_DTYPE_Q4_K,
    IA_DTYPE_Q5_K,
    IA_DTYPE_Q6_K,
    IA_DTYPE_Q8_K, /* activations of the k-quant dot products */
    IA_DTYPE_COUNT
} ia_dtype;

typedef struct ia_dtype_info {
    const char *name;     /* "f32", "bf16", ... */
    uint32_t block_elems; /* elements per block: 1 for plain types */
    uint32_t block_bytes; /* bytes per block */
    bool is_float;        /* a floating-point (or quantised float) type */
} ia_dtype_info;

/* Facts about a type; NULL for a value outside the enum. */
const ia_dtype_info *ia_dtype_get_info(ia_dtype dtype);
const char *ia_dtype_name(ia_dtype dtype);
/* Bytes taken by n elements; IA_ERANGE when n is not a whole number of
 * blocks, IA_ENOMEM on overflow. */
ia_status ia_dtype_bytes(ia_dtype dtype, uint64_t n, size_t *out);

#define IA_MAX_DIMS 4

typedef struct ia_tensor {
    const char *name; /* borrowed; may be NULL */
    ia_dtype dtype;
    int ndim;
    int64_t shape[IA_MAX_DIMS]; /* shape[ndim-1] is the innermost */
    const void *data;           /* borrowed */
} ia_tensor;

int64_t ia_tensor_numel(const ia_tensor *t);
/* Writes "[384, 1536]" style text into buf. */
const char *ia_tensor_shape_str(const ia_tensor *t, char *buf, size_t cap);

/* ---- scalar conversions ---------------------------------------------------- */

static inline float ia_bf16_to_f32(uint16_t h) {
    union {
        uint32_t u;
        float f;
    } v = {.u = (uint32_t)h << 16};
    return v.f;
}

/* Round to nearest even; NaN stays NaN. */
static inline uint16_t ia_f32_to_bf16(float f) {
    union {
        float f;
        uint32_t u;
    } v = {.f = f};
    if ((v.u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((v.u >> 16) | 0x40);
    return (uint16_t)((v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16);
}

float ia_f16_to_f32(uint16_t h);
uint16_t ia_f32_to_f16(float f);

/* Converts n elements of a float type (f32, f16, bf16) to f32. */
ia_status ia_convert_to_f32(ia_dtype src_type, const void *src, float *dst, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* IA_TENSOR_H */
