/*
 * kernels: the backend table.
 *
 * A backend is a table of operations that the models call; the CPU backend
 * comes in variants (generic C, AVX2+FMA, AVX-512) chosen at start-up from
 * the CPU's features, and a CUDA backend will fill the same table. Models
 * never test CPU features themselves.
 *
 * Activations are f32, row-major, with an explicit leading dimension (ld, in
 * elements) so that views into wider rows (Q, K, V inside one QKV row) need
 * no copy. Weights are packed once at load time into a backend-private
 * layout (ia_packed_weight) in the compute type the user chose (f32, f16,
 * bf16, or a ggml block-quantised type, whose products quantise the
 * activations on the fly).
 *
 * Sequences in a batch are stored packed, without padding: token rows of all
 * sequences one after another, with seq_start[i]..seq_start[i+1] the rows of
 * sequence i. Every op, attention included, therefore does no work on
 * padding.
 */
#ifndef IA_KERNELS_H
#define IA_KERNELS_H

#include "ia/base.h"
#include "ia/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ia_activation {
    IA_ACT_NONE = 0,
    IA_ACT_GELU_ERF,  /* 0.5 x (1 + erf(x / sqrt 2)), as HF "gelu" */
    IA_ACT_GELU_TANH, /* HF "gelu_new" / "gelu_pytorch_tanh" */
    IA_ACT_RELU,
    IA_ACT_SILU,
} ia_activation;

typedef enum ia_pooling {
    IA_POOL_MEAN = 0, /* mean over the sequence's tokens */
    IA_POOL_CLS,      /* the first token */
    IA_POOL_MAX,      /* element-wise max over tokens */
    IA_POOL_MEAN_SQRT_LEN,
    IA_POOL_LAST, /* the last token */
} ia_pooling;

/* A weight matrix W [n, k] (n outputs, k inputs; the layout of a HF Linear
 * weight), packed for one backend. Owned by the caller of weight_pack, freed
 * with the same backend's weight_free. */
typedef struct ia_packed_weight ia_packed_weight;

/* Fused attention over packed variable-length sequences. For token t the
 * query of head h is q[t * ld_q + h * head_dim ...], likewise k and v; the
 * output of head h goes to out[t * ld_out + h * head_dim ...]. */
typedef struct ia_attention_args {
    const float *q, *k, *v;
    size_t ld_q, ld_k, ld_v;
    float *out;
    size_t ld_out;
    const int32_t *seq_start; /* n_seqs + 1 row offsets */
    size_t n_seqs;
    int n_heads;
    int head_dim;
    float scale; /* usually 1 / sqrt(head_dim) */
    bool causal; /* decoder masking; false for encoders */
    /* Optional additive score bias that depends only on the key-query
     * distance (MPNet's and T5's relative position buckets): for query row
     * i, key row j of one sequence and head h, the score gains
     * rel_bias[(j - i + rel_bias_offset) * n_heads + h]. The table covers
     * distances -rel_bias_offset .. +rel_bias_offset, which must reach the
     * longest sequence. NULL when absent. */
    const float *rel_bias;
    int rel_bias_offset;
} ia_attention_args;

/* How RoPE pairs the dimensions of a head. HF checkpoints rotate halves
 * (x[i] with x[i + d/2], "rotate_half", llama.cpp's NEOX mode); llama.cpp's
 * converter permutes LLaMA's Q and K rows so that adjacent pairs (x[2i],
 * x[2i+1]) rotate instead ("normal" mode). Pair i turns by pos * inv_freq[i]
 * either way, so the two give the same attention scores. */
typedef enum ia_rope_mode {
    IA_ROPE_NEOX = 0,
    IA_ROPE_ADJACENT,
} ia_rope_mode;

/* Causal attention of n_q new queries (positions pos0 .. pos0 + n_q - 1 of
 * one sequence) against a KV cache that already holds their keys and values:
 * query at position p attends to cached rows max(0, p - window + 1) .. p
 * (all of 0 .. p when window is 0). Cache row j holds n_kv_heads heads of
 * head_dim keys (k) or values (v), row j at j * ld_kv elements, stored as
 * kv_dtype (IA_DTYPE_F32 or IA_DTYPE_F16). Query head h reads kv head
 * h / (n_heads / n_kv_heads) (grouped-query attention). */
typedef struct ia_kv_attention_args {
    const float *q;
    size_t ld_q;
    const void *k, *v;
    size_t ld_kv;
    ia_dtype kv_dtype;
    float *out;
    size_t ld_out;
    size_t n_q, pos0;
    int n_heads, n_kv_heads, head_dim;
    size_t window; /* 0: no sliding window */
    float scale;   /* usually 1 / sqrt(head_dim) */
} ia_kv_attention_args;

/* Longest head a rope or kv_attention call takes (stack buffers). */
#define IA_MAX_HEAD_DIM 512

typedef struct ia_backend ia_backend;

struct ia_backend {
    const char *name; /* "cpu-generic", "cpu-avx2", "cpu-avx512", ... */

    /* Packs the row-wise concatenation of n_parts weights (all with the same
     * k; e.g. Q, K and V stacked into one [3h, h] matrix) into `compute`:
     * IA_DTYPE_F32, F16, BF16 or a block-quantised weight type of quant.h
     * (not Q8_K, which is for activations). Sources may be f32, f16 or bf16
     * (quantised here when compute is a block type, which needs k to be a
     * whole number of its blocks), or already of the quantised compute type
     * (their blocks are kept). Returns IA_EUNSUPPORTED for a compute type
     * this backend lacks; errors name the tensor. */
    ia_status (*weight_pack)(const ia_tensor *const *parts, int n_parts, ia_dtype compute,
                             ia_packed_weight **out);
    void (*weight_free)(ia_packed_weight *w);
    /* Rows n and columns k of a packed weight. */
    void (*weight_shape)(const ia_packed_weight *w, size_t *n, size_t *k);

    /* y[m, n] = act(x[m, k] W^T + bias); bias may be NULL. */
    void (*linear)(const ia_packed_weight *w, const float *bias, ia_activation act, const float *x,
                   size_t ldx, float *y, size_t ldy, size_t m, ia_threadpool *pool);

    /* out = LayerNorm(x + residual) * gamma + beta over rows of `cols`;
     * residual may be NULL; out may alias x or residual. */
    void (*layer_norm)(const float *x, size_t ldx, const float *residual, size_t ldr,
                       const float *gamma, const float *beta, float eps, size_t rows, size_t cols,
                       float *out, size_t ldo, ia_threadpool *pool);

    void (*attention)(const ia_attention_args *args, ia_threadpool *pool);

    /* out[i] (+)= table[ids[i]] for i < n, rows of `cols` elements; the table
     * is f32, f16 or bf16. ids are checked by the caller. */
    void (*embedding_gather)(const ia_tensor *table, const int32_t *ids, size_t n, bool accumulate,
                             float *out, size_t ldo);

    /* out[i, :] = pool(x rows seq_start[i]..seq_start[i+1]) for each sequence. */
    void (*pool)(ia_pooling mode, const float *x, size_t ldx, size_t cols, const int32_t *seq_start,
                 size_t n_seqs, float *out, size_t ldo);

    /* Each row scaled to unit L2 norm (rows of zeros stay zero). */
    void (*l2_normalize)(float *x, size_t ld, size_t rows, size_t cols);

    /* In-place row-wise softmax. */
    void (*softmax)(float *x, size_t ld, size_t rows, size_t cols);

    /* In-place element-wise activation. */
    void (*activate)(ia_activation act, float *x, size_t n);

    /* ---- decoder ops ---- */

    /* out = x / sqrt(mean(x^2) + eps) * gamma over rows of `cols`. With a
     * residual, residual += x first (the stream of a pre-norm block) and the
     * sum is normalised. out may alias x (not residual). */
    void (*rms_norm)(const float *x, size_t ldx, float *residual, size_t ldr, const float *gamma,
                     float eps, size_t rows, size_t cols, float *out, size_t ldo,
                     ia_threadpool *pool);

    /* Rotates in place n_heads heads of head_dim (even, <= IA_MAX_HEAD_DIM)
     * in each of `rows` rows; row r is at position pos0 + r and its pair i
     * turns by the angle (float)pos * inv_freq[i], i < head_dim / 2. */
    void (*rope)(float *x, size_t ld, size_t rows, int n_heads, int head_dim, size_t pos0,
                 const float *inv_freq, ia_rope_mode mode);

    /* out = silu(gate) * up, element-wise over rows of `cols`; out may alias
     * gate or up. */
    void (*swiglu)(const float *gate, size_t ldg, const float *up, size_t ldu, size_t rows,
                   size_t cols, float *out, size_t ldo);

    /* Attention of new queries against a KV cache (see ia_kv_attention_args),
     * split across the pool by head. */
    void (*kv_attention)(const ia_kv_attention_args *args, ia_threadpool *pool);
};

/* The best CPU variant for this machine. IA_CPU_VARIANT=generic|avx2|avx512
 * in the environment picks a lower one (for tests and comparisons). */
const ia_backend *ia_backend_cpu(void);
/* A named CPU variant, or NULL when this CPU cannot run it. */
const ia_backend *ia_backend_cpu_variant(const char *name);
/* Whether a variant's kernels can run here ("avx512" needs AVX512F/BW/VL/DQ;
 * its BF16 dot products need AVX512_BF16). */
bool ia_cpu_has_variant(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* IA_KERNELS_H */
