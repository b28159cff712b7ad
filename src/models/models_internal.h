/*
 * Private to models/: the architecture table that the generic encoder reads.
 */
#ifndef IA_MODELS_INTERNAL_H
#define IA_MODELS_INTERNAL_H

#include "ia/models.h"

/* Tensor names are printf patterns; "%d" stands for the layer index. A NULL
 * name means the architecture has no such tensor. */
typedef struct encoder_tensor_names {
    const char *word_embeddings, *position_embeddings, *token_type_embeddings;
    const char *embeddings_norm;      /* prefix of ".weight" / ".bias" */
    const char *q, *k, *v, *attn_out; /* prefixes of ".weight" / ".bias" */
    const char *attn_norm;
    const char *ffn_in, *ffn_out;
    const char *ffn_norm;
    const char *relative_bias; /* full name of the bucket table */
} encoder_tensor_names;

/* Config keys for the hyper-parameters that architectures name differently. */
typedef struct encoder_config_keys {
    const char *hidden, *layers, *heads, *intermediate, *activation;
    const char *layer_norm_eps; /* NULL: fixed_eps */
} encoder_config_keys;

typedef struct encoder_arch {
    const char *model_type;
    encoder_config_keys keys;
    double fixed_eps;
    bool has_token_types;
    bool position_from_padding;
    int64_t fixed_padding_idx; /* >= 0: use this instead of pad_token_id */
    bool relative_bias;
    encoder_tensor_names names;
} encoder_arch;

/* The row for a model_type, or NULL. */
const encoder_arch *encoder_arch_find(const char *model_type);

/* Prefixes that checkpoints put before the bare model's names, tried in
 * order ("" first): "bert.", "roberta.", ... */
extern const char *const encoder_name_prefixes[];

/* ==== decoders (decoder.c, decoder_arch.c) ==================================== */

typedef enum decoder_norm { DEC_NORM_LAYER, DEC_NORM_RMS } decoder_norm;
typedef enum decoder_mlp { DEC_MLP_GELU, DEC_MLP_SWIGLU } decoder_mlp;

/* Tensor names: printf patterns with "%d" for the layer; all but embed and
 * lm_head are prefixes of ".weight" / ".bias". NULL: the source has none. */
typedef struct decoder_tensor_names {
    const char *embed, *positions, *final_norm, *lm_head;
    const char *attn_norm, *qkv, *q, *k, *v, *attn_out;
    const char *ffn_norm, *gate, *up, *down;
} decoder_tensor_names;

/* config.json keys of the hyper-parameters that architectures name differently. */
typedef struct decoder_config_keys {
    const char *hidden, *layers, *heads, *kv_heads, *intermediate, *max_positions, *eps;
} decoder_config_keys;

typedef struct decoder_arch {
    const char *model_type;
    const char *gguf_arch; /* general.architecture of its GGUF files; NULL: none */
    decoder_config_keys keys;
    decoder_norm norm;
    decoder_mlp mlp;
    ia_activation act;      /* of the GELU MLP */
    bool learned_positions; /* else RoPE */
    bool fused_qkv;         /* one QKV tensor (GPT-2's c_attn) */
    bool qkv_bias, out_bias, mlp_bias;
    bool conv1d;            /* HF weights stored [in, out] (GPT-2's Conv1D) */
    bool tied_default;      /* tie_word_embeddings when config.json is silent */
    bool window_needs_flag; /* sliding_window counts only with use_sliding_window */
    /* HF checkpoints rotate halves (NEOX pairing). llama.cpp's converter
     * permutes LLaMA's Q/K rows so that adjacent pairs rotate, but leaves
     * Qwen2's alone; the loader undoes the permutation, so every source
     * runs NEOX on the same rows. */
    bool gguf_permuted_qk;
    decoder_tensor_names hf;
} decoder_arch;

/* llama.cpp's tensor names, shared by every architecture. */
extern const decoder_tensor_names decoder_gguf_names;

/* The row for a HF model_type or a GGUF general.architecture; NULL if none. */
const decoder_arch *decoder_arch_find(const char *model_type);
const decoder_arch *decoder_arch_find_gguf(const char *gguf_arch);
/* "gpt2, llama, mistral, qwen2" for messages. */
const char *decoder_arch_list(void);

/* Embedding rows of table for ids (already checked against its rows) into
 * out (n x cols), added to out when accumulate. A quantised table (llama.cpp
 * files keep token_embd quantised) is dequantised row by row through tmp
 * (cols floats). Shared by the encoder and the decoder. */
void models_embedding_gather(const ia_backend *be, const ia_tensor *table, const int32_t *ids,
                             size_t n, bool accumulate, float *out, size_t cols, float *tmp);

#endif /* IA_MODELS_INTERNAL_H */
