/*
 * cpu_internal: what the files of the CPU backend share.
 *
 * The CPU backend comes in three variants (generic C, AVX2+FMA, AVX-512) that
 * fill the same ia_backend table. They share one packed-weight layout
 * (parameterised by the panel width NR of the variant's micro-kernel), one
 * tiled and threaded GEMM driver (gemm.c) that calls a variant's
 * micro-kernels through a small descriptor, and the portable ops of
 * ops_generic.c, which are both the generic variant and the reference the
 * vector variants fall back to for shapes they do not specialise.
 *
 * Files named *_avx2.c and *_avx512.c are the only ones compiled with ISA
 * flags; everything declared here is callable from baseline code, and the
 * dispatcher (backend.c) calls an ISA function only after checking that the
 * CPU and the OS support it.
 */
#ifndef IA_CPU_INTERNAL_H
#define IA_CPU_INTERNAL_H

#include "ia/kernels.h"

/* Packed weights: the n output rows are cut into panels of nr rows (the last
 * one zero-padded), each panel stored k-major so that the micro-kernel reads
 * nr consecutive values per k step:
 *   f32:  panel[k][nr]
 *   f16:  panel[k][nr] of IEEE halves - the f32 layout at half the bytes;
 *         kernels widen nr values per k step with F16C (vcvtph2ps), so a
 *         memory-bound decode streams 2 bytes per weight
 *   bf16: panel[k/2][nr][2] (pairs of consecutive k per output, k padded to
 *         even with zeros) - the operand order of vdpbf16ps, and on AVX2 one
 *         256-bit load yields 8 outputs for k (low halves) and k+1 (high). */
struct ia_packed_weight {
    ia_dtype compute; /* IA_DTYPE_F32, IA_DTYPE_F16, IA_DTYPE_BF16 or a quantised type */
    size_t n, k;
    int nr;             /* panel width of the variant that packed it */
    size_t n_panels;    /* ceil(n / nr) */
    size_t panel_elems; /* elements per panel: nr * k (f32, f16) or nr * round_up(k, 2) */
    void *data;         /* 64-byte aligned; float or uint16_t, or quantised rows */
    size_t row_bytes;   /* quantised types: bytes of one row of k / block_elems blocks */
};

/* Quantised weights (compute a block type of quant.h) are not panelled: row
 * r of W is row_bytes of ggml blocks at data + r * row_bytes, exactly as a
 * GGUF file stores it, so packing a GGUF tensor is a copy. linear quantises
 * the rows of x once per call (cpu_qa32 blocks for the 32-element types,
 * Q8_K for the k-quants) and takes integer dot products of whole rows. */
typedef struct cpu_qa32 {
    float d;     /* scale: x ~ d * qs */
    int32_t sum; /* sum of qs: folds the weights' offsets (-8, -16) and minimums */
    int8_t qs[32];
} cpu_qa32;

/* Dot products of one weight row (nb blocks) with m <= CPU_GEMV_MAX_M
 * quantised activation rows, a_stride bytes apart: out[r] = w . a_r. */
typedef void (*cpu_qdot_fn)(size_t nb, const void *w, const void *a, size_t a_stride, int m,
                            float *out);

/* Q8_0 weights are the exception to the above (quant_gemm.c): packing
 * interleaves them in groups of 8 output rows (n padded with zero rows to a
 * multiple of 16), group g's nb blocks at data + (g nb + b) CPU_Q8X8_BYTES,
 * each block the 8 rows' f16 scales (16 bytes) and then, for pair p = 0..15,
 * the 8 rows' levels 2p and 2p+1 (16 bytes): one sign-extended load is 8
 * rows x 2 inputs for vpmaddwd. Activations are Q8_0-quantised per row (the
 * cpu_qa32 quantiser) and widened to int16. Every output is, whatever m and
 * the tile: acc = 0; per block b in order acc = fmaf(dw_b da_b, (float)
 * isum_b, acc) with the exact integer dot isum_b; y = act(acc + bias). */
#define CPU_Q8X8_BYTES 272
typedef struct cpu_q8_0_tile {
    const uint8_t *w; /* two consecutive groups (16 rows of W), block 0 */
    size_t nb;        /* blocks per row */
    const int16_t *a; /* mr rows of nb * 32 levels, lda elements apart */
    size_t lda;
    const float *ad; /* their block scales, ldd floats apart */
    size_t ldd;
    int mr;            /* 1..CPU_Q8_0_MR */
    bool prefetch;     /* weights stream from memory: prefetch ahead */
    const float *bias; /* 16 values or NULL */
    ia_activation act; /* applied after the bias */
    float *out;        /* mr x 16 results, ldo floats apart (also the sums' scratch) */
    size_t ldo;
} cpu_q8_0_tile;
#define CPU_Q8_0_MR 4

typedef struct cpu_quant_kernels {
    cpu_qdot_fn dot[IA_DTYPE_COUNT]; /* NULL: the generic one */
    /* Activation quantisers, bit-identical to cpu_quantize_qa32 / _q8k
     * below; NULL: those. */
    void (*quantize_qa32)(const float *x, cpu_qa32 *dst, size_t k);
    void (*quantize_q8k)(const float *x, void *dst, size_t k);
    /* Q8_0 tile: its sums bit-identical to cpu_q8_0_tile_generic's (the
     * activation is the variant's own); NULL: that one. */
    void (*q8_0_tile)(const cpu_q8_0_tile *t);
    /* The tile's activation rows: cpu_quantize_qa32's levels widened to
     * int16 (q) and its scales (d), one per 32 values; NULL: that, widened. */
    void (*quantize_q8_0_i16)(const float *x, int16_t *q, float *d, size_t k);
} cpu_quant_kernels;

/* quant_gemm.c: the Q8_0 layout above - packing from row-major Q8_0 rows,
 * the portable tile, and linear for any m. */
void cpu_q8_0_interleave(const uint8_t *rows, size_t n, size_t k, uint8_t *dst);
size_t cpu_q8_0_packed_bytes(size_t n, size_t k);
void cpu_q8_0_tile_generic(const cpu_q8_0_tile *t);
void cpu_q8_0_linear(const cpu_quant_kernels *qk, const ia_packed_weight *w, const float *bias,
                     ia_activation act, const float *x, size_t ldx, float *y, size_t ldy, size_t m,
                     ia_threadpool *pool);

extern const cpu_quant_kernels cpu_quant_generic;
extern const cpu_quant_kernels cpu_quant_avx2;
extern const cpu_quant_kernels cpu_quant_avx512; /* AVX-512 VNNI (vpdpbusd) */

/* Packs quantised weights (see above): parts of that very type are copied
 * (their blocks validated), f32/f16/bf16 parts quantised row by row. */
ia_status cpu_quant_weight_pack(const ia_tensor *const *parts, int n_parts, ia_dtype compute,
                                int nr, ia_packed_weight **out);
/* linear on quantised weights, with the variant's dot products. */
void cpu_quant_linear(const cpu_quant_kernels *qk, const ia_packed_weight *w, const float *bias,
                      ia_activation act, const float *x, size_t ldx, float *y, size_t ldy, size_t m,
                      ia_threadpool *pool);
/* The activation side, in the layouts the dot products read (scalar,
 * shared by every variant): k must be a whole number of blocks. */
void cpu_quantize_qa32(const float *x, cpu_qa32 *dst, size_t k);
void cpu_quantize_q8k(const float *x, void *dst, size_t k);

/* Shared packing: validates the parts and packs them for panel width nr. */
ia_status cpu_weight_pack(const ia_tensor *const *parts, int n_parts, ia_dtype compute, int nr,
                          ia_packed_weight **out);
void cpu_weight_free(ia_packed_weight *w);
void cpu_weight_shape(const ia_packed_weight *w, size_t *n, size_t *k);

/* One call of a micro-kernel: C[mr, nr] (+)= A[mr, kc] B[kc, nr] over one
 * k-block. On the first block C starts from the bias (or zero) instead of its
 * old contents; on the last the activation is applied before the store. C is
 * always nr wide: the driver redirects edge panels to a scratch tile. */
typedef struct cpu_ukr_args {
    size_t kc;     /* k-block length; odd only for the last block of an odd k */
    const void *a; /* f32 rows, or bf16 pairs (uint32) for packed-A kernels */
    size_t lda;    /* in elements of a (floats, or uint32 pairs) */
    const void *b; /* the packed panel at this k-block */
    float *c;
    size_t ldc;
    int mr;            /* rows in this call, 1..kernel mr */
    const float *bias; /* nr values or NULL; read only when first */
    bool first, last;
    ia_activation act;
    /* Optional: weights the driver reads next (part of the following
     * k-block of the packed stream). Kernels that honour it prefetch the
     * line at pf + k * pf_step at k step k, so a small-m call that streams
     * its weights from memory overlaps the next block's fetch with this
     * block's FMAs; pf_step = nr * element size covers a whole block of the
     * same kc. NULL: none. */
    const void *pf;
    size_t pf_step;
} cpu_ukr_args;

typedef void (*cpu_ukr_fn)(const cpu_ukr_args *args);

/* Converts rows [0, rows) x [k0, k0 + kc) of x to bf16 pairs (uint32, low half
 * = even k), kc rounded up to even with a zero; dst rows are ldd pairs apart. */
typedef void (*cpu_pack_a_fn)(const float *x, size_t ldx, size_t rows, size_t k0, size_t kc,
                              uint32_t *dst, size_t ldd);

/* One call of a GEMV kernel (m = 1..CPU_GEMV_MAX_M rows of x): y[m, cols of
 * panels p0..p1) = act(x W^T + bias) over the whole k at once, so that each
 * panel is one contiguous stream of weights. The last panel of w may be
 * partial; the kernel then writes only its real columns.
 *
 * Bits: a GEMV kernel must give each output exactly the bits of the
 * variant's micro-kernels: the same chain from the bias through k in order
 * (no split into partial sums) and the same activation code. Then a row's
 * result does not depend on m; see gemm.c. */
#define CPU_GEMV_MAX_M 4
typedef struct cpu_gemv_args {
    const ia_packed_weight *w;
    const float *x;
    size_t ldx;
    size_t m;
    float *y;
    size_t ldy;
    const float *bias; /* w->n values or NULL */
    ia_activation act;
    size_t p0, p1; /* panels [p0, p1) */
} cpu_gemv_args;

typedef void (*cpu_gemv_fn)(const cpu_gemv_args *args);

typedef struct cpu_gemm_kernel {
    int mr, nr;
    cpu_ukr_fn f32;
    cpu_ukr_fn bf16;
    cpu_pack_a_fn bf16_pack_a;      /* NULL: the bf16 kernel reads f32 rows of x */
    cpu_ukr_fn f16;                 /* f16 panels widened in registers; x in f32 */
    cpu_gemv_fn gemv;               /* optional: m <= CPU_GEMV_MAX_M, any compute type */
    const cpu_quant_kernels *quant; /* dot products for quantised weights */
} cpu_gemm_kernel;

/* The tiled, threaded driver shared by every variant. m <= CPU_GEMV_MAX_M
 * goes to the variant's gemv kernel when it has one. */
void cpu_linear_run(const cpu_gemm_kernel *kern, const ia_packed_weight *w, const float *bias,
                    ia_activation act, const float *x, size_t ldx, float *y, size_t ldy, size_t m,
                    ia_threadpool *pool);

/* Largest mr and nr of any kernel (sizes of the driver's edge scratch). */
#define CPU_MR_MAX 16
#define CPU_NR_MAX 32

/* ---- variants ------------------------------------------------------------ */

extern const cpu_gemm_kernel cpu_gemm_generic;
extern const cpu_gemm_kernel cpu_gemm_avx2;
extern const cpu_gemm_kernel cpu_gemm_avx512;      /* f32 in zmm, bf16 converted in registers */
extern const cpu_gemm_kernel cpu_gemm_avx512_bf16; /* bf16 through vdpbf16ps */

/* Scalar helpers shared by the generic ops and the vector tails. */
float cpu_act_scalar(ia_activation act, float x);

/* generic (ops_generic.c) */
void cpu_layer_norm_generic(const float *x, size_t ldx, const float *residual, size_t ldr,
                            const float *gamma, const float *beta, float eps, size_t rows,
                            size_t cols, float *out, size_t ldo, ia_threadpool *pool);
void cpu_attention_generic(const ia_attention_args *args, ia_threadpool *pool);
void cpu_attention_generic_task(const ia_attention_args *args, size_t seq, int head);
void cpu_embedding_gather(const ia_tensor *table, const int32_t *ids, size_t n, bool accumulate,
                          float *out, size_t ldo);
void cpu_pool_generic(ia_pooling mode, const float *x, size_t ldx, size_t cols,
                      const int32_t *seq_start, size_t n_seqs, float *out, size_t ldo);
void cpu_l2_normalize_generic(float *x, size_t ld, size_t rows, size_t cols);
void cpu_softmax_generic(float *x, size_t ld, size_t rows, size_t cols);
void cpu_activate_generic(ia_activation act, float *x, size_t n);

/* generic decoder ops (ops_decoder.c) */
#define CPU_KV_QBLOCK 16 /* queries per kv_attention task */

/* Checks the parts of a stacked weight (non-empty 2-D matrices of f32, f16,
 * bf16 or `also`, pass IA_DTYPE_COUNT for none, sharing k) and gives the
 * stacked rows n and columns k. Errors name the part. */
ia_status cpu_weight_parts_shape(const ia_tensor *const *parts, int n_parts, ia_dtype also,
                                 size_t *n, size_t *k);
void cpu_rms_norm_generic(const float *x, size_t ldx, float *residual, size_t ldr,
                          const float *gamma, float eps, size_t rows, size_t cols, float *out,
                          size_t ldo, ia_threadpool *pool);
void cpu_rope_angles(size_t pos, const float *inv_freq, int half, float *cs, float *sn);
void cpu_rope_generic(float *x, size_t ld, size_t rows, int n_heads, int head_dim, size_t pos0,
                      const float *inv_freq, ia_rope_mode mode);
void cpu_swiglu_generic(const float *gate, size_t ldg, const float *up, size_t ldu, size_t rows,
                        size_t cols, float *out, size_t ldo);
size_t cpu_kv_first_key(const ia_kv_attention_args *a, size_t p);
/* Queries [i0, i1) of one head, the reference path. */
void cpu_kv_attention_generic_rows(const ia_kv_attention_args *a, int head, size_t i0, size_t i1);
void cpu_kv_attention_generic(const ia_kv_attention_args *a, ia_threadpool *pool);

/* avx2 decoder ops (ops_decoder_avx2.c) */
void cpu_rms_norm_avx2(const float *x, size_t ldx, float *residual, size_t ldr, const float *gamma,
                       float eps, size_t rows, size_t cols, float *out, size_t ldo,
                       ia_threadpool *pool);
void cpu_rope_avx2(float *x, size_t ld, size_t rows, int n_heads, int head_dim, size_t pos0,
                   const float *inv_freq, ia_rope_mode mode);
void cpu_swiglu_avx2(const float *gate, size_t ldg, const float *up, size_t ldu, size_t rows,
                     size_t cols, float *out, size_t ldo);
void cpu_kv_attention_avx2(const ia_kv_attention_args *a, ia_threadpool *pool);

/* avx2 (ops_avx2.c) */
void cpu_layer_norm_avx2(const float *x, size_t ldx, const float *residual, size_t ldr,
                         const float *gamma, const float *beta, float eps, size_t rows, size_t cols,
                         float *out, size_t ldo, ia_threadpool *pool);
void cpu_attention_avx2(const ia_attention_args *args, ia_threadpool *pool);
void cpu_l2_normalize_avx2(float *x, size_t ld, size_t rows, size_t cols);
void cpu_softmax_avx2(float *x, size_t ld, size_t rows, size_t cols);
void cpu_activate_avx2(ia_activation act, float *x, size_t n);

/* CPU features, detected once (backend.c). */
typedef struct cpu_features {
    bool avx2;        /* AVX2 + FMA + F16C with OS-enabled ymm state */
    bool avx512;      /* AVX512 F/BW/VL/DQ with OS-enabled zmm state */
    bool avx512_bf16; /* and AVX512_BF16 */
    bool avx512_vnni; /* and AVX512_VNNI (vpdpbusd) */
} cpu_features;

const cpu_features *cpu_get_features(void);

#endif /* IA_CPU_INTERNAL_H */
