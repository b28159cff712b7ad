/*
 * runtime: models ready to use.
 *
 * An ia_embedder is what sentence-transformers calls a SentenceTransformer:
 * tokenizer + encoder + pooling (+ normalisation), configured from the
 * model's own files (modules.json, 1_Pooling/config.json,
 * sentence_bert_config.json). It tokenises, sorts inputs by length, packs
 * them into batches without padding, runs the encoder and pools, and writes
 * each embedding to its input's row, whatever order the batches ran in.
 */
#ifndef IA_RUNTIME_H
#define IA_RUNTIME_H

#include "ia/base.h"
#include "ia/kernels.h"
#include "ia/models.h"
#include "ia/tokenize.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ia_embedder_options {
    int n_threads;             /* 0: physical cores */
    ia_dtype dtype;            /* IA_DTYPE_F32 (default) or IA_DTYPE_BF16 */
    const ia_backend *backend; /* NULL: ia_backend_cpu() */
    size_t batch_tokens;       /* token budget per batch; 0: 8192 */
    size_t batch_size;         /* most sequences per batch; 0: no limit but the budget */
    size_t max_length;         /* 0: the model's max_seq_length */
    int normalize;             /* -1: as the model's modules say, 0 off, 1 on */
    bool skip_tokenizer;       /* load no tokenizer: only ia_embedder_embed_ids works */
} ia_embedder_options;

ia_embedder_options ia_embedder_options_default(void);

typedef struct ia_embedder ia_embedder;

/* Loads a model directory (config.json, tokenizer.json or vocab.txt,
 * model.safetensors, and the sentence-transformers files when present). */
ia_status ia_embedder_load(const char *dir, const ia_embedder_options *opts, ia_embedder **out);
void ia_embedder_free(ia_embedder *emb);

/* Embedding width (hidden size). */
size_t ia_embedder_dim(const ia_embedder *emb);
/* Longest input in tokens (special tokens included); longer inputs are truncated. */
size_t ia_embedder_max_length(const ia_embedder *emb);
const ia_tokenizer *ia_embedder_tokenizer(const ia_embedder *emb);
const ia_encoder *ia_embedder_encoder(const ia_embedder *emb);
ia_pooling ia_embedder_pooling(const ia_embedder *emb);
bool ia_embedder_normalizes(const ia_embedder *emb);

/* Embeds n texts (lens[i] bytes each; lens may be NULL for NUL-terminated
 * texts) into out[n * dim], row i for text i. Not thread-safe per embedder
 * (it owns scratch); errors name the input index. */
ia_status ia_embedder_embed(ia_embedder *emb, const char *const *texts, const size_t *lens,
                            size_t n, float *out);

/* The same from token ids: ids holds seq_start[n] tokens of n sequences
 * (already with special tokens); type_ids may be NULL. */
ia_status ia_embedder_embed_ids(ia_embedder *emb, const int32_t *ids, const int32_t *type_ids,
                                const int32_t *seq_start, size_t n, float *out);

#ifdef __cplusplus
}
#endif

#endif /* IA_RUNTIME_H */
