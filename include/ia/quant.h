/*
 * quant: ggml-compatible block-quantised weight formats.
 *
 * The types are ia_dtype values (IA_DTYPE_Q8_0 ... IA_DTYPE_Q8_K, see
 * tensor.h) whose ia_dtype_info gives the block geometry: a row of n
 * elements takes n / block_elems blocks of block_bytes. Blocks are laid out
 * byte for byte as ggml writes them in GGUF files (little-endian f16 scales
 * first where ggml puts them first, packed nibbles and high bits in ggml's
 * order), so GGUF files quantised by llama.cpp load here and files written
 * here load in llama.cpp.
 *
 * This header is the portable reference: quantise and dequantise whole rows,
 * and check blocks read from a file. The SIMD dot products that run models
 * on these blocks live in kernels/ behind the backend table.
 */
#ifndef IA_QUANT_H
#define IA_QUANT_H

#include "ia/base.h"
#include "ia/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Whether dtype is one of the block-quantised types. */
bool ia_dtype_is_quantized(ia_dtype dtype);

/* The ia_dtype for a ggml type id (f32, f16, bf16 and the quantised types
 * above); IA_EUNSUPPORTED naming the ggml type for others. */
ia_status ia_dtype_from_ggml(uint32_t ggml_type, ia_dtype *out);
/* The ggml type id of a dtype, or -1 when ggml has none. */
int ia_dtype_to_ggml(ia_dtype dtype);
/* Parses "q4_k", "Q4_K", "q8_0", "f16", ... into a dtype; IA_EINVAL when
 * unknown. */
ia_status ia_dtype_parse(const char *name, ia_dtype *out);

/* The type rows of row_len values take when `type` is asked for: `type`
 * itself when its blocks divide the row, else the legacy type of about the
 * same size that llama.cpp falls back to (Q2_K/Q3_K -> Q4_0, Q4_K -> Q5_0,
 * Q5_K -> Q5_1, Q6_K -> Q8_0), else f16. Plain types come back as they are. */
ia_dtype ia_quant_fit(ia_dtype type, int64_t row_len);

/* Quantises n floats (a whole number of blocks; IA_ERANGE otherwise) into
 * dst (n / block_elems * block_bytes bytes). Deterministic; for Q8_0, Q4_0,
 * Q4_1, Q5_0 and Q5_1 the bytes equal ggml's reference quantiser's, for the
 * k-quants the error is no worse than ggml's reference. Non-finite input is
 * IA_EINVAL. */
ia_status ia_quantize_row(ia_dtype type, const float *src, void *dst, size_t n);

/* Quantises rows x n_per_row floats, spreading rows over the pool (may be
 * NULL). */
ia_status ia_quantize_rows(ia_dtype type, const float *src, void *dst, size_t rows,
                           size_t n_per_row, ia_threadpool *pool);

/* Dequantises n elements (a whole number of blocks) to f32, exactly as
 * ggml's to_float does. Also takes f32, f16 and bf16. */
ia_status ia_dequantize_row(ia_dtype type, const void *src, float *dst, size_t n);

/* Checks n elements' worth of blocks read from a file: every f16 scale and
 * minimum finite. On failure *bad_block (may be NULL) is the first bad
 * block's index and the message names the block and the field; callers
 * prefix the tensor's name. f32, f16 and bf16 have no scales: IA_OK. */
ia_status ia_quant_validate(ia_dtype type, const void *blocks, size_t n, size_t *bad_block);

#ifdef __cplusplus
}
#endif

#endif /* IA_QUANT_H */
