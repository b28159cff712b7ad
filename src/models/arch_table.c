/*
 * The encoder architecture table: one row per HF model_type of the BERT
 * family. A row says which config keys hold the hyper-parameters, what the
 * tensors are called, and which variations of the generic block apply.
 */
#include <string.h>

#include "models_internal.h"

#define BERT_LAYER_NAMES                                                                         \
    .q = "encoder.layer.%d.attention.self.query", .k = "encoder.layer.%d.attention.self.key",    \
    .v = "encoder.layer.%d.attention.self.value",                                                \
    .attn_out = "encoder.layer.%d.attention.output.dense",                                       \
    .attn_norm = "encoder.layer.%d.attention.output.LayerNorm",                                  \
    .ffn_in = "encoder.layer.%d.intermediate.dense", .ffn_out = "encoder.layer.%d.output.dense", \
    .ffn_norm = "encoder.layer.%d.output.LayerNorm"

#define BERT_EMBEDDING_NAMES                                        \
    .word_embeddings = "embeddings.word_embeddings.weight",         \
    .position_embeddings = "embeddings.position_embeddings.weight", \
    .embeddings_norm = "embeddings.LayerNorm"

#define BERT_CONFIG_KEYS                                                                        \
    {                                                                                           \
        .hidden = "hidden_size", .layers = "num_hidden_layers", .heads = "num_attention_heads", \
        .intermediate = "intermediate_size", .activation = "hidden_act",                        \
        .layer_norm_eps = "layer_norm_eps",                                                     \
    }

/* RoBERTa and XLM-RoBERTa are BERT with positions counted from padding_idx + 1. */
#define ROBERTA_ROW(type)                                                              \
    {                                                                                  \
        .model_type = type, .keys = BERT_CONFIG_KEYS, .has_token_types = true,         \
        .position_from_padding = true, .fixed_padding_idx = -1,                        \
        .names = {BERT_EMBEDDING_NAMES, BERT_LAYER_NAMES,                              \
                  .token_type_embeddings = "embeddings.token_type_embeddings.weight"}, \
    }

static const encoder_arch arch_rows[] = {
    {
        .model_type = "bert",
        .keys = BERT_CONFIG_KEYS,
        .has_token_types = true,
        .fixed_padding_idx = -1,
        .names = {BERT_EMBEDDING_NAMES, BERT_LAYER_NAMES,
                  .token_type_embeddings = "embeddings.token_type_embeddings.weight"},
    },
    ROBERTA_ROW("roberta"),
    ROBERTA_ROW("xlm-roberta"),
    {
        .model_type = "distilbert",
        .keys = {.hidden = "dim",
                 .layers = "n_layers",
                 .heads = "n_heads",
                 .intermediate = "hidden_dim",
                 .activation = "activation"},
        .fixed_eps = 1e-12, /* DistilBERT's LayerNorms are built with eps=1e-12 */
        .fixed_padding_idx = -1,
        .names =
            {
                BERT_EMBEDDING_NAMES,
                .q = "transformer.layer.%d.attention.q_lin",
                .k = "transformer.layer.%d.attention.k_lin",
                .v = "transformer.layer.%d.attention.v_lin",
                .attn_out = "transformer.layer.%d.attention.out_lin",
                .attn_norm = "transformer.layer.%d.sa_layer_norm",
                .ffn_in = "transformer.layer.%d.ffn.lin1",
                .ffn_out = "transformer.layer.%d.ffn.lin2",
                .ffn_norm = "transformer.layer.%d.output_layer_norm",
            },
    },
    {
        .model_type = "mpnet",
        .keys = BERT_CONFIG_KEYS,
        .position_from_padding = true,
        .fixed_padding_idx = 1, /* MPNetEmbeddings hard-codes padding_idx = 1 */
        .relative_bias = true,
        .names =
            {
                BERT_EMBEDDING_NAMES,
                .q = "encoder.layer.%d.attention.attn.q",
                .k = "encoder.layer.%d.attention.attn.k",
                .v = "encoder.layer.%d.attention.attn.v",
                .attn_out = "encoder.layer.%d.attention.attn.o",
                .attn_norm = "encoder.layer.%d.attention.LayerNorm",
                .ffn_in = "encoder.layer.%d.intermediate.dense",
                .ffn_out = "encoder.layer.%d.output.dense",
                .ffn_norm = "encoder.layer.%d.output.LayerNorm",
                .relative_bias = "encoder.relative_attention_bias.weight",
            },
    },
};

const char *const encoder_name_prefixes[] = {"",       "bert.",  "roberta.",      "distilbert.",
                                             "mpnet.", "model.", "0.auto_model.", NULL};

const encoder_arch *encoder_arch_find(const char *model_type) {
    for (size_t i = 0; i < sizeof arch_rows / sizeof arch_rows[0]; i++)
        if (strcmp(arch_rows[i].model_type, model_type) == 0)
            return &arch_rows[i];
    return NULL;
}

const char *const *ia_encoder_model_types(void) {
    static const char *types[sizeof arch_rows / sizeof arch_rows[0] + 1];
    for (size_t i = 0; i < sizeof arch_rows / sizeof arch_rows[0]; i++)
        types[i] = arch_rows[i].model_type;
    return types;
}
