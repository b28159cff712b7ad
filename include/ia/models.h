/*
 * models: transformer architectures.
 *
 * One generic encoder serves the BERT family; each HF `model_type` is a row
 * in a table (src/models/arch_table.c) that says how to read its
 * hyper-parameters from config.json, what its tensors are called, and which
 * variations of the block it uses (position offset, token types, relative
 * position bias, activation). Supporting a new encoder is mostly a new row.
 *
 * The encoder runs on packed batches: the token rows of all sequences one
 * after another, seq_start[i]..seq_start[i+1] for sequence i, so no work is
 * spent on padding.
 */
#ifndef IA_MODELS_H
#define IA_MODELS_H

#include "ia/base.h"
#include "ia/kernels.h"
#include "ia/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Hyper-parameters of a loaded encoder, normalised across architectures. */
typedef struct ia_encoder_config {
    const char *model_type; /* the config's model_type, e.g. "bert" */
    int64_t vocab_size;
    int64_t hidden_size;
    int64_t num_layers;
    int64_t num_heads;
    int64_t intermediate_size;
    int64_t max_position_embeddings;
    int64_t type_vocab_size; /* 0 when the architecture has no token types */
    double layer_norm_eps;
    ia_activation activation;
    /* Position ids: padding_idx + 1 + i for RoBERTa-style rows, i otherwise. */
    bool position_from_padding;
    int64_t padding_idx;
    /* Longest sequence this model accepts (positions available). */
    int64_t max_tokens;
    /* MPNet-style relative attention bias buckets (0 when absent). */
    int64_t relative_buckets;
} ia_encoder_config;

typedef struct ia_encoder ia_encoder;

/* Loads config.json and model.safetensors from a model directory and packs
 * the weights for `backend` in `compute` (IA_DTYPE_F32 or IA_DTYPE_BF16).
 * The encoder owns its mapping and packed weights; free with
 * ia_encoder_free. Errors name the file and the tensor or field. */
ia_status ia_encoder_load(const char *dir, const ia_backend *backend, ia_dtype compute,
                          ia_encoder **out);
void ia_encoder_free(ia_encoder *enc);

const ia_encoder_config *ia_encoder_get_config(const ia_encoder *enc);

/* Runs the encoder on a packed batch. ids and type_ids (NULL: all zero)
 * hold seq_start[n_seqs] tokens; hidden_out receives [tokens, hidden_size]
 * f32 rows (the last hidden state). Scratch comes from `arena`, which the
 * caller resets between batches. ids are checked against the vocabulary and
 * lengths against max_tokens. */
ia_status ia_encoder_forward(const ia_encoder *enc, const int32_t *ids, const int32_t *type_ids,
                             const int32_t *seq_start, size_t n_seqs, float *hidden_out,
                             ia_arena *arena, ia_threadpool *pool);

/* The architecture rows this build knows ("bert", "roberta", ...), NULL-terminated. */
const char *const *ia_encoder_model_types(void);

/* ==== decoders ================================================================
 *
 * One generic causal decoder serves GPT-2 and the LLaMA family (llama,
 * mistral, qwen2): rows in a table say how each reads its hyper-parameters
 * (from config.json, or from GGUF metadata), what its tensors are called
 * under HF and under GGUF (llama.cpp) names, and which block variations it
 * uses: LayerNorm or RMSNorm, learned positions or RoPE (theta, llama3-style
 * scaling), GELU-tanh MLP or SwiGLU, grouped-query attention, QKV bias,
 * sliding-window attention, tied or separate output head, GPT-2's Conv1D
 * ([in, out]) weight layout.
 *
 * A forward call appends n tokens to one sequence's KV cache (prefill is one
 * call with the prompt, decode one call per token) and returns the logits of
 * the last token, or of every token when asked (tests compare them all).
 */

typedef struct ia_decoder_config {
    const char *model_type; /* "gpt2", "llama", "mistral", "qwen2" */
    int64_t vocab_size;
    int64_t hidden_size;
    int64_t num_layers;
    int64_t num_heads;
    int64_t num_kv_heads; /* == num_heads without GQA */
    int64_t head_dim;
    int64_t intermediate_size;
    int64_t max_positions; /* context length */
    double norm_eps;
    double rope_theta;      /* 0 for learned positions */
    int64_t sliding_window; /* 0: none */
    int64_t bos_token_id;   /* -1 when none */
    int64_t eos_token_id;   /* -1 when none */
} ia_decoder_config;

typedef struct ia_decoder ia_decoder;

/* Loads an HF model directory (config.json + *.safetensors) or a .gguf
 * file. Weights are packed for `compute` (IA_DTYPE_F32, IA_DTYPE_F16 - 2
 * bytes a weight, converted in registers - or IA_DTYPE_BF16).
 * Errors name the file and the tensor or key at fault. */
ia_status ia_decoder_load(const char *path, const ia_backend *backend, ia_dtype compute,
                          ia_decoder **out);
void ia_decoder_free(ia_decoder *dec);
const ia_decoder_config *ia_decoder_get_config(const ia_decoder *dec);

/* A KV cache for one sequence of up to max_tokens (0: the model's context),
 * keys and values stored as kv_dtype (IA_DTYPE_F32 or IA_DTYPE_F16). */
typedef struct ia_kv_cache ia_kv_cache;
ia_status ia_kv_cache_create(const ia_decoder *dec, size_t max_tokens, ia_dtype kv_dtype,
                             ia_kv_cache **out);
void ia_kv_cache_free(ia_kv_cache *kv);
size_t ia_kv_cache_length(const ia_kv_cache *kv); /* tokens held */
void ia_kv_cache_reset(ia_kv_cache *kv);          /* forget all tokens */

/* Runs tokens[0..n) at positions length..length+n of the cache, appending
 * their keys and values. logits gets vocab_size floats for the last token,
 * or n * vocab_size (row i for token i) when all_logits. IA_ERANGE when the
 * cache would overflow (the message gives the context length). */
ia_status ia_decoder_forward(const ia_decoder *dec, ia_kv_cache *kv, const int32_t *tokens,
                             size_t n, bool all_logits, float *logits, ia_threadpool *pool);

/* Llama-3 RoPE scaling as llama.cpp stores it in a GGUF's rope_freqs.weight:
 * head_dim / 2 per-frequency divisors of the plain inverse frequencies,
 * computed in double and rounded to float. The converter writes these and
 * the decoder applies llama3 through them from either source, so a GGUF and
 * its safetensors get the same frequencies bit for bit. */
void ia_rope_llama3_divisors(double theta, int64_t head_dim, double factor, double low_freq_factor,
                             double high_freq_factor, double original_max, float *out);

#ifdef __cplusplus
}
#endif

#endif /* IA_MODELS_H */
