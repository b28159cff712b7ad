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
    /* GGUF files: the pooling <arch>.pooling_type names (has_pooling false
     * when the key is absent or says "none"; directories: always false, the
     * sentence-transformers modules say it). */
    bool from_gguf, has_pooling;
    ia_pooling pooling;
} ia_encoder_config;

typedef struct ia_encoder ia_encoder;

/* The type a float weight gets in memory, by its llama.cpp GGUF name
 * ("token_embd.weight", "blk.3.attn_v.weight", ...), the layer count and
 * its row length: a quantisation recipe applied at load (see
 * ia_quantize_recipe_weight_type). IA_DTYPE_COUNT: the compute type. */
typedef ia_dtype (*ia_encoder_weight_type_fn)(void *ctx, const char *gguf_name, int n_layers,
                                              int64_t row_len);

typedef struct ia_encoder_options {
    const ia_backend *backend; /* NULL: ia_backend_cpu() */
    /* Float matrices' type in memory: IA_DTYPE_F32, IA_DTYPE_BF16 or a
     * quantised type (quantised at load, falling back per ia_quant_fit).
     * Matrices a GGUF file holds quantised keep their own blocks. */
    ia_dtype compute;
    /* Optional per-tensor types (NULL: compute everywhere). A quantised type
     * for token_embd.weight quantises the embedding table too, as a GGUF
     * file written with the same recipe holds it, so the two agree bit for
     * bit. */
    ia_encoder_weight_type_fn weight_type;
    void *weight_type_ctx;
} ia_encoder_options;

/* Loads an encoder from a model directory (config.json + model.safetensors)
 * or a BERT GGUF file (general.architecture "bert", llama.cpp's tensor names
 * and bert.* keys; matrices and the token embedding table may be in any of
 * the ggml block types quant.h lists) and packs the weights for the backend.
 * The encoder owns its mapping and packed weights; free with
 * ia_encoder_free. Errors name the file and the tensor or field. */
ia_status ia_encoder_load_ex(const char *path, const ia_encoder_options *opts, ia_encoder **out);

/* ia_encoder_load_ex with only a backend and a compute type. */
ia_status ia_encoder_load(const char *path, const ia_backend *backend, ia_dtype compute,
                          ia_encoder **out);

/* Whether path names a GGUF file (by its magic), for callers that take a
 * directory or a file. */
bool ia_encoder_path_is_gguf(const char *path);
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
 * the last token, or of every token when asked (tests compare them all). A
 * batch step (ia_decoder_forward_batch) decodes one token for each of many
 * sequences at once, each with its own cache: continuous batching in the
 * server, where sequences join and leave between steps.
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
 * keys and values stored as kv_dtype (IA_DTYPE_F32, IA_DTYPE_F16 or
 * IA_DTYPE_Q8_0, the last for heads of a multiple of 32). */
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

/* One decode step for n_seqs sequences: tokens[i] runs at position
 * ia_kv_cache_length(kv[i]) of cache kv[i] (distinct caches of this decoder)
 * and logits row i (vocab_size floats) gets its next-token logits. Every
 * matrix multiply runs once with one row per sequence, so the weights are
 * read once a step; norms, RoPE and the cache append work per row at its own
 * position, attention per sequence against its own cache. Each row's logits
 * are those ia_decoder_forward gives for that token alone when the backend's
 * products do not depend on the row count (tests/models/test_decoder_batch.c).
 * The step's scratch lives in kv[0] (it grows to n_seqs rows once). Errors as
 * ia_decoder_forward's, naming the sequence; no cache changes then. */
ia_status ia_decoder_forward_batch(const ia_decoder *dec, ia_kv_cache *const *kv,
                                   const int32_t *tokens, size_t n_seqs, float *logits,
                                   ia_threadpool *pool);

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
