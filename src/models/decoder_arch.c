/*
 * The decoder architecture table: one row per HF model_type of a causal LM
 * that the generic decoder (decoder.c) runs. A row says which config.json
 * keys hold the hyper-parameters, what the tensors are called in a HF
 * checkpoint, which GGUF architecture name it answers to, and which
 * variations of the block apply (norm, MLP, positions, biases, weight
 * layout, whether its GGUF files permute Q/K). GGUF tensor names are llama.cpp's
 * and the same for every row.
 */
#include <string.h>

#include "models_internal.h"

#define LLAMA_KEYS                                                                              \
    {                                                                                           \
        .hidden = "hidden_size", .layers = "num_hidden_layers", .heads = "num_attention_heads", \
        .kv_heads = "num_key_value_heads", .intermediate = "intermediate_size",                 \
        .max_positions = "max_position_embeddings", .eps = "rms_norm_eps",                      \
    }

#define LLAMA_NAMES                                                                              \
    {                                                                                            \
        .embed = "model.embed_tokens.weight", .final_norm = "model.norm",                        \
        .lm_head = "lm_head.weight", .attn_norm = "model.layers.%d.input_layernorm",             \
        .q = "model.layers.%d.self_attn.q_proj", .k = "model.layers.%d.self_attn.k_proj",        \
        .v = "model.layers.%d.self_attn.v_proj", .attn_out = "model.layers.%d.self_attn.o_proj", \
        .ffn_norm = "model.layers.%d.post_attention_layernorm",                                  \
        .gate = "model.layers.%d.mlp.gate_proj", .up = "model.layers.%d.mlp.up_proj",            \
        .down = "model.layers.%d.mlp.down_proj",                                                 \
    }

static const decoder_arch arch_rows[] = {
    {
        .model_type = "llama",
        .gguf_arch = "llama",
        .keys = LLAMA_KEYS,
        .norm = DEC_NORM_RMS,
        .mlp = DEC_MLP_SWIGLU,
        .gguf_permuted_qk = true,
        .hf = LLAMA_NAMES,
    },
    {
        /* llama.cpp converts Mistral checkpoints as "llama" */
        .model_type = "mistral",
        .keys = LLAMA_KEYS,
        .norm = DEC_NORM_RMS,
        .mlp = DEC_MLP_SWIGLU,
        .gguf_permuted_qk = true,
        .hf = LLAMA_NAMES,
    },
    {
        .model_type = "qwen2",
        .gguf_arch = "qwen2",
        .keys = LLAMA_KEYS,
        .norm = DEC_NORM_RMS,
        .mlp = DEC_MLP_SWIGLU,
        .qkv_bias = true,
        .window_needs_flag = true,
        .hf = LLAMA_NAMES,
    },
    {
        .model_type = "gpt2",
        .gguf_arch = "gpt2",
        .keys = {.hidden = "n_embd",
                 .layers = "n_layer",
                 .heads = "n_head",
                 .intermediate = "n_inner",
                 .max_positions = "n_positions",
                 .eps = "layer_norm_epsilon"},
        .norm = DEC_NORM_LAYER,
        .mlp = DEC_MLP_GELU,
        .act = IA_ACT_GELU_TANH,
        .learned_positions = true,
        .fused_qkv = true,
        .qkv_bias = true,
        .out_bias = true,
        .mlp_bias = true,
        .conv1d = true,
        .tied_default = true,
        .hf =
            {
                .embed = "transformer.wte.weight",
                .positions = "transformer.wpe.weight",
                .final_norm = "transformer.ln_f",
                .lm_head = "lm_head.weight",
                .attn_norm = "transformer.h.%d.ln_1",
                .qkv = "transformer.h.%d.attn.c_attn",
                .attn_out = "transformer.h.%d.attn.c_proj",
                .ffn_norm = "transformer.h.%d.ln_2",
                .up = "transformer.h.%d.mlp.c_fc",
                .down = "transformer.h.%d.mlp.c_proj",
            },
    },
};

const decoder_tensor_names decoder_gguf_names = {
    .embed = "token_embd.weight",
    .positions = "position_embd.weight",
    .final_norm = "output_norm",
    .lm_head = "output.weight",
    .attn_norm = "blk.%d.attn_norm",
    .qkv = "blk.%d.attn_qkv",
    .q = "blk.%d.attn_q",
    .k = "blk.%d.attn_k",
    .v = "blk.%d.attn_v",
    .attn_out = "blk.%d.attn_output",
    .ffn_norm = "blk.%d.ffn_norm",
    .gate = "blk.%d.ffn_gate",
    .up = "blk.%d.ffn_up",
    .down = "blk.%d.ffn_down",
};

const decoder_arch *decoder_arch_find(const char *model_type) {
    for (size_t i = 0; i < sizeof arch_rows / sizeof arch_rows[0]; i++)
        if (strcmp(arch_rows[i].model_type, model_type) == 0)
            return &arch_rows[i];
    return NULL;
}

const decoder_arch *decoder_arch_find_gguf(const char *gguf_arch) {
    for (size_t i = 0; i < sizeof arch_rows / sizeof arch_rows[0]; i++)
        if (arch_rows[i].gguf_arch && strcmp(arch_rows[i].gguf_arch, gguf_arch) == 0)
            return &arch_rows[i];
    return NULL;
}

const char *decoder_arch_list(void) { return "gpt2, llama, mistral, qwen2"; }
