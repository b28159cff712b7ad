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

#endif /* IA_MODELS_INTERNAL_H */
