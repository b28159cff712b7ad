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
#include "ia/formats.h"
#include "ia/hw.h"
#include "ia/kernels.h"
#include "ia/models.h"
#include "ia/tokenize.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ia_embedder_options {
    int n_threads;             /* 0: physical cores */
    ia_dtype dtype;            /* IA_DTYPE_F32 (default), IA_DTYPE_F16 or IA_DTYPE_BF16 */
    const ia_backend *backend; /* NULL: ia_backend_cpu() */
    size_t batch_tokens;       /* token budget per batch; 0: 8192 */
    size_t batch_size;         /* most sequences per batch; 0: no limit but the budget */
    size_t max_length;         /* 0: the model's max_seq_length */
    int normalize;             /* -1: as the model's modules say, 0 off, 1 on */
    bool skip_tokenizer;       /* load no tokenizer: only ia_embedder_embed_ids works */
    /* Per-tensor weight types applied at load (a quantisation recipe, see
     * ia_quantize_recipe_weight_type); NULL: dtype everywhere. */
    ia_encoder_weight_type_fn weight_type;
    void *weight_type_ctx;
} ia_embedder_options;

ia_embedder_options ia_embedder_options_default(void);

typedef struct ia_embedder ia_embedder;

/* Loads a model directory (config.json, tokenizer.json or vocab.txt,
 * model.safetensors, and the sentence-transformers files when present), or
 * a BERT GGUF file: WordPiece tokenizer from its tokenizer.ggml.* metadata,
 * pooling from bert.pooling_type (mean when absent or "none"), and L2
 * normalisation on unless opts->normalize is 0 (GGUF has no Normalize
 * module; llama.cpp normalises embeddings by default), inputs up to
 * bert.context_length tokens. */
ia_status ia_embedder_load(const char *path, const ia_embedder_options *opts, ia_embedder **out);
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

/* Memory the embedder holds, in bytes, as estimated at load: its weights at
 * the compute type (the safetensors tensors' elements) plus its scratch at
 * the largest batch it may run. The resource pool counts models by this. */
size_t ia_embedder_bytes(const ia_embedder *emb);

/* The same estimate for a model directory without loading it (reads only the
 * safetensors header and config.json). *out is 0 on error. */
ia_status ia_embedder_estimate_bytes(const char *dir, const ia_embedder_options *opts, size_t *out);

/* ==== model plan ==============================================================
 *
 * What running a model here would take, before loading it: its class (via
 * hw/'s registry), its shape, the memory it needs for a workload (weights at
 * the compute type, KV cache for decoders, activations at the batch the
 * runtime would really run, and the process's own overhead), and the device
 * that would run it. Reads config.json (or GGUF metadata) and the weights
 * files' headers only. The estimate models this engine's actual buffers, and
 * tests hold it within 15% of measured peak RSS for the models it runs.
 */

typedef struct ia_model_shape {
    uint64_t hidden, layers, heads, kv_heads, intermediate, vocab, positions, type_vocab;
} ia_model_shape;

typedef struct ia_plan_request {
    const char *model;    /* a model directory, its config.json, or a .gguf file */
    size_t batch;         /* sequences at once; 0: 1 */
    size_t seq;           /* tokens per sequence; 0: the model's positions (capped at 512) */
    size_t batch_tokens;  /* encoders: the embedder's token budget per batch; 0: 8192 */
    const char *dtype;    /* compute type: "f32" (default), "bf16", "f16", "q8_0", "q4_k", ... */
    const char *device;   /* "auto" (NULL), "cpu", "cuda:0", ... */
    const ia_hw_info *hw; /* NULL: detect (without the perf probe) */
    bool memory_only;     /* skip device choice (and hardware detection) */
} ia_plan_request;

typedef struct ia_model_plan {
    ia_model_class cls;
    ia_model_shape shape;
    char dtype[16];
    size_t batch, seq;
    uint64_t params;           /* parameters (from the weights when read, else the config) */
    bool weights_from_files;   /* sizes from safetensors/GGUF headers, not from the config */
    uint64_t weights_bytes;    /* resident weights at the compute type */
    uint64_t kv_cache_bytes;   /* decoders: keys and values for batch × seq */
    uint64_t activation_bytes; /* the largest batch's scratch */
    uint64_t overhead_bytes;   /* the process: code, libraries, tokenizer */
    uint64_t total_bytes;
    bool runnable; /* the engine implements this model somewhere here */
    ia_device_candidate devices[16];
    size_t n_devices;
    size_t chosen;          /* index into devices when runnable */
    char device_error[256]; /* why no device was chosen ("" when one was) */
} ia_model_plan;

/* Plans a model. Returns an error only when the model's files cannot be read
 * or make no sense; an unsupported model or no usable device is a result
 * (runnable false, device_error says why). */
ia_status ia_model_plan_make(const ia_plan_request *req, ia_model_plan *out);
struct json_t *ia_model_plan_to_json(const ia_model_plan *plan);

/* Resolves a --device value for a model: "auto" (or NULL) takes the best
 * usable device, a named device must be usable. Hardware is probed only when
 * the choice is not already settled by what this build implements (a build
 * whose engine runs the model on the CPU alone answers "cpu" for auto without
 * probing). Writes the chosen id ("cpu") into out; on error the message says
 * why each device was unusable. */
ia_status ia_model_device_select(const char *model, const char *want, const char *dtype, char *out,
                                 size_t size);

/* Loads the config of a model directory, config.json or .gguf file as a JSON
 * object (GGUF metadata mapped to HF names); caller json_decref's it. */
ia_status ia_model_config_load(const char *model, struct json_t **out);

/* ==== resource pool =========================================================
 *
 * One pool per process (ia_pool_global) holds loaded models so that callers
 * (the CLI, the server's request threads) share them. A model is keyed by
 * (source, device, dtype, variant) and by the loader that made it; callers
 * get a reference-counted handle. The pool keeps the models' bytes within a
 * budget: when a load needs room, idle models (no handles out) are evicted
 * least recently used first; a model in use is never evicted. When only
 * models in use stand in the way, the acquire waits for releases, up to
 * acquire_timeout_ms, and then fails with IA_ERANGE saying what is using the
 * budget.
 *
 * Sizes. A model's size is known for sure only after it is loaded, so the
 * pool uses the loader's estimate (optional) to make room before loading and
 * counts it against the budget while the load runs, then re-checks with the
 * real size. A load without an estimate, and a load whose real size exceeds
 * its estimate and does not fit, take the pool's single "unsized" slot: only
 * one such model is outside the accounting at a time. So the pool's counted
 * bytes never exceed the budget, the memory really held never exceeds it by
 * more than one model (given estimates that are not low), and a model larger
 * than the whole budget is admitted only when nothing else is resident or
 * loading (with a warning).
 *
 * Concurrency. Loads run outside the pool's lock, so other keys stay usable;
 * concurrent acquires of one key wait for that single load. A failed load is
 * not cached: the acquires waiting on it get its error, later acquires load
 * again. Frees (eviction) also run outside the lock; their bytes stay counted
 * until the free returns.
 *
 * Locking: one mutex per pool guards every entry, the LRU list and the
 * counters; one condition variable signals "a load finished, a handle was
 * released, or bytes were freed". Handles are used by one thread at a time
 * (the object itself is only as thread-safe as its type: an ia_embedder is
 * not), but different handles may be released from any thread.
 */

typedef struct ia_pool ia_pool;
typedef struct ia_pool_handle ia_pool_handle;

/* What a model is. Strings are copied by the pool. */
typedef struct ia_pool_key {
    const char *source;  /* path or CID */
    const char *device;  /* "cpu", "cuda:0", ...; NULL: "cpu" */
    ia_dtype dtype;      /* compute type */
    const char *variant; /* other load settings that change the object; NULL: "" */
} ia_pool_key;

/* How to load and free one kind of object (an embedder, a decoder, ...).
 * The pool copies this struct; entries of different `load` functions never
 * match, even with equal keys. load and estimate run during ia_pool_acquire
 * on the calling thread, possibly concurrently for different keys; free runs
 * later on whichever thread evicts or destroys, with the ctx of the acquire
 * that loaded the object: that ctx must outlive the object unless free
 * ignores it (ctx may then carry per-acquire settings, as the embedder's does). */
typedef struct ia_pool_loader {
    /* Loads *obj and sets *bytes to the memory it holds. On failure returns
     * a status with its message set and leaves *obj NULL. */
    ia_status (*load)(void *ctx, const ia_pool_key *key, void **obj, size_t *bytes);
    void (*free)(void *ctx, void *obj);
    /* Optional: bytes the object will hold, before loading; 0 for unknown.
     * An upper bound keeps the budget honest while loads run. */
    size_t (*estimate)(void *ctx, const ia_pool_key *key);
    void *ctx;
} ia_pool_loader;

/* ia_pool_options.acquire_timeout_ms: fail at once instead of waiting for room. */
#define IA_POOL_NO_WAIT (-1)

typedef struct ia_pool_options {
    /* Bytes of models to keep; 0: 80% of the memory this process may use
     * (available memory and the cgroup limit, from ia_hw_detect). */
    uint64_t budget_bytes;
    /* Free a model as soon as its last handle is released (for small
     * machines: nothing stays resident while unused). */
    bool low_memory;
    /* Longest wait for room in the budget; 0: 60000; IA_POOL_NO_WAIT. Waits
     * for another thread's load of the same key are not bounded by it. */
    int acquire_timeout_ms;
} ia_pool_options;

typedef struct ia_pool_stats {
    size_t loaded;          /* models resident (loaded and not evicted) */
    size_t in_use;          /* of those, with handles out */
    uint64_t bytes;         /* bytes of the resident models */
    uint64_t budget;        /* budget_bytes in effect */
    uint64_t peak_bytes;    /* most bytes ever counted (resident + loading + freeing) */
    uint64_t hits;          /* acquires served by a resident model or another's load */
    uint64_t misses;        /* acquires that started a load */
    uint64_t evictions;     /* idle models freed to make room or by low_memory */
    uint64_t load_failures; /* loads that failed (their waiters not counted) */
    uint64_t waits;         /* acquires that waited for room in the budget */
    uint64_t timeouts;      /* acquires that gave up waiting for room */
} ia_pool_stats;

/* Creates a pool (opts NULL: defaults); *out owned by the caller
 * (ia_pool_destroy). */
ia_status ia_pool_create(const ia_pool_options *opts, ia_pool **out);

/* Frees every model and the pool. With handles still out or loads running it
 * frees nothing and returns IA_EINVAL naming how many: the pool stays valid. */
ia_status ia_pool_destroy(ia_pool *pool);

/* The process-wide pool, created with default options on first use (thread
 * safe). Never destroyed (ia_pool_destroy refuses it). On failure *out is NULL and the error is the
 * creation's (the same status on every call). */
ia_status ia_pool_global(ia_pool **out);

/* Returns a handle to the model for `key`, loading it with `loader` on a
 * miss. *out owned by the caller (ia_pool_release). Errors: the loader's, or
 * IA_ERANGE when no room appeared in the budget within the timeout. */
ia_status ia_pool_acquire(ia_pool *pool, const ia_pool_key *key, const ia_pool_loader *loader,
                          ia_pool_handle **out);

/* The loaded object (borrowed: valid until the handle is released). */
void *ia_pool_handle_get(const ia_pool_handle *handle);
/* The bytes the pool counts for the handle's model. */
size_t ia_pool_handle_bytes(const ia_pool_handle *handle);

/* Gives the handle back (NULL is a no-op). The model stays resident, idle,
 * unless the pool is in low-memory mode; its memory may go at the next
 * eviction. */
void ia_pool_release(ia_pool_handle *handle);

/* A consistent snapshot of the counters. */
void ia_pool_stats_get(ia_pool *pool, ia_pool_stats *out);

/* An embedder through the pool: key (realpath of dir, backend's device,
 * opts->dtype, the other options), bytes from ia_embedder_bytes. opts NULL:
 * defaults. The object is an ia_embedder * (not thread-safe: one user at a
 * time, or one embedder per variant). */
ia_status ia_pool_acquire_embedder(ia_pool *pool, const char *dir, const ia_embedder_options *opts,
                                   ia_pool_handle **out);

/* ==== end of resource pool ================================================= */

/* ==== text generation =====================================================
 *
 * An ia_generator is a decoder model ready to write text: the decoder
 * (ia_decoder_load: an HF directory or a .gguf), its tokenizer (tokenizer.json
 * in the directory, or built from a GGUF's tokenizer.ggml.* metadata), a KV
 * cache for one sequence, and the model's chat template when it has one.
 * ia_generator_generate tokenises a prompt, prefills it in chunks, then
 * samples one token at a time until EOS, a stop string, max_tokens or the
 * context is full, streaming decoded text through a callback. Several
 * requests can run together, continuously batched (ia_gen_seq_start,
 * ia_generator_step, ia_gen_seq_end below); a generator is used by one
 * thread at a time.
 *
 * Sampling follows transformers' generate(): the repetition penalty first
 * (over every token of the prompt and the completion so far: positive logits
 * are divided by it, negative ones multiplied), then temperature, top-k,
 * top-p and min-p, then a draw from the softmax of what is left. Temperature
 * 0 is greedy (argmax, the lowest id on ties) and uses no randomness. The
 * random numbers come from xoshiro256** seeded through splitmix64 from the
 * 64-bit seed, so a seed gives the same tokens on every machine.
 */

typedef struct ia_sampling {
    float temperature;    /* 0: greedy */
    int top_k;            /* keep the k most likely; 0: off */
    float top_p;          /* keep the smallest set with this much mass; 1: off */
    float min_p;          /* drop tokens below min_p × the top probability; 0: off */
    float repeat_penalty; /* 1: off; > 1 discourages repeats */
    uint64_t seed;
} ia_sampling;

/* temperature 1, top_k 0, top_p 1, min_p 0, repeat_penalty 1, seed 0:
 * plain sampling from the model's distribution. */
ia_sampling ia_sampling_default(void);

/* A sampler: the parameters, the RNG state and scratch for one vocabulary. */
typedef struct ia_sampler ia_sampler;

/* IA_EINVAL naming the parameter when one is out of range (temperature < 0,
 * top_k < 0, top_p outside (0, 1], min_p outside [0, 1], repeat_penalty <= 0,
 * vocab 0). *out owned by the caller (ia_sampler_free). */
ia_status ia_sampler_create(const ia_sampling *params, size_t vocab, ia_sampler **out);
void ia_sampler_free(ia_sampler *s);

/* One candidate that survived the filters. */
typedef struct ia_token_prob {
    int32_t id;
    float prob;
} ia_token_prob;

/* The distribution the sampler would draw from for these logits (vocab
 * floats, not modified) after the previous tokens history[0..n_history):
 * the survivors, most likely first, probabilities summing to 1. out must
 * hold vocab entries; returns how many were written. Greedy: the argmax
 * alone with probability 1. */
size_t ia_sampler_distribution(ia_sampler *s, const float *logits, const int32_t *history,
                               size_t n_history, ia_token_prob *out);

/* Picks the next token: ia_sampler_distribution, then one draw. */
int32_t ia_sampler_sample(ia_sampler *s, const float *logits, const int32_t *history,
                          size_t n_history);

/* ---- chat templates ---- */

/* The families a chat template is recognised as, by markers in its Jinja
 * text; each is rendered by a C formatter written for it. */
typedef enum ia_chat_family {
    IA_CHAT_CHATML = 0, /* <|im_start|>role\n...<|im_end|> (Qwen, many others) */
    IA_CHAT_LLAMA2,     /* <s>[INST] <<SYS>>...<</SYS>> ... [/INST] */
    IA_CHAT_LLAMA3,     /* <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
    IA_CHAT_MISTRAL,    /* <s>[INST] ... [/INST]...</s> */
    IA_CHAT_ZEPHYR,     /* <|user|>\n...</s>\n */
    IA_CHAT_GEMMA,      /* <start_of_turn>user\n...<end_of_turn>\n */
    IA_CHAT_FAMILY_COUNT
} ia_chat_family;

typedef struct ia_chat_message {
    const char *role; /* "system", "user" or "assistant" */
    const char *content;
} ia_chat_message;

typedef struct ia_chat_template ia_chat_template;

/* Recognises a template's family. bos and eos are the model's BOS and EOS
 * token strings (NULL: ""), which the rendered text contains as the template
 * says. IA_EUNSUPPORTED when the text matches no family (the message lists
 * the markers looked for). *out owned by the caller (ia_chat_template_free). */
ia_status ia_chat_template_detect(const char *jinja, const char *bos, const char *eos,
                                  ia_chat_template **out);
void ia_chat_template_free(ia_chat_template *t);
ia_chat_family ia_chat_template_family(const ia_chat_template *t);
const char *ia_chat_family_name(ia_chat_family family); /* "chatml", "llama3", ... */
/* The token text that ends an assistant turn ("<|im_end|>", "<|eot_id|>",
 * "<end_of_turn>", else the EOS string); borrowed. */
const char *ia_chat_template_end_of_turn(const ia_chat_template *t);

/* Renders a conversation as the family's template does (transformers'
 * apply_chat_template with tokenize=False). *out is malloc'd (caller frees).
 * IA_EINVAL when the family refuses the conversation (roles not alternating
 * user/assistant, an unknown role), naming the message index. */
ia_status ia_chat_template_render(const ia_chat_template *t, const ia_chat_message *msgs, size_t n,
                                  bool add_generation_prompt, char **out);

/* ---- the generator ---- */

typedef struct ia_generator_options {
    int n_threads;             /* 0: physical cores */
    ia_dtype dtype;            /* weights: IA_DTYPE_F32 (default) or IA_DTYPE_BF16 */
    ia_dtype kv_dtype;         /* KV cache: IA_DTYPE_F32 (default), F16 or Q8_0 */
    const ia_backend *backend; /* NULL: ia_backend_cpu() */
    size_t context;            /* tokens the cache holds; 0: the model's context */
    size_t prefill_chunk;      /* prompt tokens per forward call; 0: 256 */
    size_t max_seqs;           /* sequences generating at once (slots, a KV cache each,
                                  made when first used); 0: 1 */
} ia_generator_options;

ia_generator_options ia_generator_options_default(void);

/* The tokenizer a GGUF's tokenizer.ggml.* metadata describes (model, pre,
 * tokens, scores, token_type, merges, special ids, add_bos/add_eos), built
 * with ia_tokenizer_load_arrays. Every array and id is checked against the
 * tokens array: a wrong type, a length that differs from the vocabulary's,
 * a token type outside 0..6 or a special id naming no token is an error
 * naming the file and the key. *out owned by the caller (ia_tokenizer_free);
 * NULL on error. */
ia_status ia_tokenizer_from_gguf(const ia_gguf *g, ia_tokenizer **out);

typedef struct ia_generator ia_generator;

/* Loads a model directory (config.json, *.safetensors, tokenizer.json,
 * tokenizer_config.json) or a .gguf file (tokenizer from its metadata).
 * *out owned by the caller (ia_generator_free). Errors name the file. */
ia_status ia_generator_load(const char *path, const ia_generator_options *opts, ia_generator **out);
void ia_generator_free(ia_generator *g);

const ia_tokenizer *ia_generator_tokenizer(const ia_generator *g);
const ia_decoder_config *ia_generator_config(const ia_generator *g);
size_t ia_generator_context(const ia_generator *g);

/* The model's chat template, recognised; NULL with the error set when the
 * model has none or it matches no known family (borrowed). */
const ia_chat_template *ia_generator_chat_template(const ia_generator *g);

/* Streaming: called with each piece of new text as it is decided (stop
 * strings already removed; pieces are whole UTF-8 characters). Return false
 * to stop generating (finish IA_FINISH_CANCELLED). */
typedef bool (*ia_generate_callback)(void *ctx, const char *piece, size_t len);

typedef enum ia_finish_reason {
    IA_FINISH_LENGTH = 0, /* max_tokens reached, or the context is full */
    IA_FINISH_EOS,        /* the model emitted EOS (or an end-of-turn token) */
    IA_FINISH_STOP,       /* a stop string appeared */
    IA_FINISH_CANCELLED,  /* the callback asked to stop */
} ia_finish_reason;
const char *ia_finish_reason_name(ia_finish_reason r); /* "length", "eos", "stop", "cancelled" */

typedef struct ia_generate_request {
    const char *prompt; /* UTF-8 text (IA_EINVAL naming the byte offset otherwise) */
    size_t prompt_len;  /* bytes; SIZE_MAX: strlen */
    bool raw_prompt;    /* true: no BOS/special tokens added (a rendered chat prompt) */
    size_t max_tokens;  /* 0: until EOS, a stop string or the context is full */
    ia_sampling sampling;
    const char *const *stop; /* stop strings */
    size_t n_stop;
    bool ignore_eos;   /* keep going past EOS (it is then ordinary text) */
    int32_t extra_eos; /* another token that ends the reply (-1: none) */
    bool reuse_cache;  /* keep the cached tokens that prefix this prompt */
    ia_generate_callback on_text;
    void *ctx;
} ia_generate_request;

/* Fields zeroed, prompt_len SIZE_MAX, sampling ia_sampling_default(), extra_eos -1. */
ia_generate_request ia_generate_request_default(void);

typedef struct ia_generate_result {
    char *text; /* the completion, stop string excluded (malloc'd) */
    size_t text_len;
    int32_t *tokens; /* completion token ids (EOS included when it ended it) */
    size_t n_tokens;
    size_t prompt_tokens;
    size_t cached_tokens; /* prompt tokens served by the cache (reuse_cache) */
    ia_finish_reason finish;
    double prefill_ms, decode_ms;
} ia_generate_result;

/* Generates a completion. IA_ERANGE when the prompt alone does not fit the
 * context (the message gives both lengths). The result's arrays are owned by
 * the caller (ia_generate_result_free), also when the status is an error
 * raised mid-generation (they then hold what was made). */
ia_status ia_generator_generate(ia_generator *g, const ia_generate_request *req,
                                ia_generate_result *out);
void ia_generate_result_free(ia_generate_result *r);

/* Tokenises like generate does (BOS per the tokenizer unless raw). */
ia_status ia_generator_tokenize(const ia_generator *g, const char *text, size_t len, bool raw,
                                int32_t **ids, size_t *n);

/* ---- continuous batching (src/runtime/generate_batch.c) ----
 *
 * Requests that generate together: each sequence takes one of the
 * generator's max_seqs slots, and every ia_generator_step advances all of
 * them at once. A sequence still prefilling runs its next prompt chunk;
 * every sequence decoding runs its last sampled token, all of them in one
 * ia_decoder_forward_batch (the weights are read once for the whole batch).
 * Each then samples with its own sampler (its own seed), streams its text
 * through its own on_text and stop strings, and may finish. Sequences join
 * and leave between steps. A sequence's tokens are those it gets alone, bit
 * for bit, since the CPU backend's products do not depend on the batch's row
 * count. ia_generator_generate is one sequence stepped until it is done. */

typedef struct ia_gen_seq ia_gen_seq;

/* Starts a sequence: tokenises and checks the prompt (errors as
 * ia_generator_generate's), takes a free slot (with reuse_cache, the one
 * whose cached tokens prefix the prompt the furthest). Nothing runs until
 * the next step. req is copied, but what it points to (prompt, stop
 * strings, ctx) must live until ia_gen_seq_end. IA_ERANGE when every slot
 * is taken. *out is owned by the generator until ia_gen_seq_end. */
ia_status ia_gen_seq_start(ia_generator *g, const ia_generate_request *req, ia_gen_seq **out);

/* Advances every started sequence that is not done by one step (see
 * above); *n_decoded (may be NULL) gets the decode batch's size. A
 * sequence's own failure (out of memory) ends that sequence with its error,
 * reported by ia_gen_seq_end; the step itself returns IA_OK. */
ia_status ia_generator_step(ia_generator *g, size_t *n_decoded);

/* True once the sequence finished (EOS, a stop string, max_tokens, a full
 * context, on_text returning false, or an error). */
bool ia_gen_seq_done(const ia_gen_seq *s);

/* Ends a sequence, done or not (not done: finish IA_FINISH_CANCELLED with
 * the text streamed so far), frees its slot and moves its result into *out
 * (owned by the caller: ia_generate_result_free). Returns the sequence's
 * error, if it failed, with its message. s is invalid afterwards. */
ia_status ia_gen_seq_end(ia_gen_seq *s, ia_generate_result *out);

size_t ia_generator_slots(const ia_generator *g);  /* max_seqs */
size_t ia_generator_active(const ia_generator *g); /* started and not ended */

/* ---- conversion ---- */

typedef struct ia_convert_options {
    ia_dtype type; /* tensor type of the matrices: F32, F16 or BF16 (1-D tensors stay F32) */
} ia_convert_options;

/* Writes an HF decoder directory (gpt2, llama, mistral, qwen2) or a BERT
 * encoder directory as a GGUF file with llama.cpp's names and conventions:
 * general.architecture, <arch>.* hyper-parameters, tokenizer.ggml.* from
 * tokenizer.json (BERT: the phantom-space WordPiece vocabulary), Q/K rows
 * permuted for llama and mistral as llama.cpp's converter does. */
ia_status ia_convert_to_gguf(const char *dir, const char *out_path, const ia_convert_options *opts);

/* ---- quantisation ---- */

typedef struct ia_quantize_options {
    const char *type;             /* a recipe: "q4_k_m", "q8_0", ... (ia_quantize_recipe_names) */
    bool keep_output_f16;         /* the output head (or tied embeddings) as f16 */
    const char *const *overrides; /* "GLOB=TYPE" on tensor names; the first match wins */
    size_t n_overrides;
    int n_threads; /* 0: physical cores */
    /* Called before each tensor (name, the type it gets) and once at the end
     * with name NULL and done == total. May be NULL. */
    void (*progress)(void *ctx, size_t done, size_t total, const char *tensor, ia_dtype type);
    void *progress_ctx;
} ia_quantize_options;

typedef struct ia_quantize_report {
    const char *recipe;               /* the recipe's canonical name (static) */
    uint64_t bytes_in, bytes_out;     /* tensor data only */
    size_t n_by_type[IA_DTYPE_COUNT]; /* tensors written per type */
    size_t n_fallbacks;               /* tensors whose rows did not fit the recipe's K type */
} ia_quantize_report;

/* The recipe names quantize accepts, for help texts and errors. */
const char *ia_quantize_recipe_names(void);
/* A recipe's base type (q4_k_m -> q4_k): what a model quantised at load
 * (embed --dtype) uses for the same name. IA_EINVAL for an unknown name. */
ia_status ia_quantize_recipe_base(const char *name, ia_dtype *out);

/* The per-tensor types a recipe gives a BERT encoder loaded from its
 * directory (ia_encoder_options / ia_embedder_options weight_type): the
 * types `quantize` gives the same tensors of the GGUF it writes. *ctx is
 * static. IA_EINVAL for an unknown name. */
ia_status ia_quantize_recipe_weight_fn(const char *name, ia_encoder_weight_type_fn *fn, void **ctx);

/* Writes `model` (a GGUF file, or an HF decoder or BERT directory that is
 * converted first) as a GGUF file at out_path (atomically) with the recipe's types;
 * see src/runtime/quantize.c for the recipes. Errors name the tensor. */
ia_status ia_quantize_model(const char *model, const char *out_path,
                            const ia_quantize_options *opts, ia_quantize_report *report);

/* ---- quantisation accuracy (src/runtime/quant_eval.c) ---- */

typedef struct ia_quant_eval_options {
    size_t window;     /* LM: tokens per window (0: 512) */
    size_t max_tokens; /* LM: score at most this many tokens of the text (0: all) */
    int n_threads;     /* 0: physical cores */
} ia_quant_eval_options;

typedef struct ia_quant_eval_lm_result {
    size_t n_scored;            /* next-token predictions scored */
    double ppl_base, ppl_quant; /* perplexities */
    double kl_mean, kl_max;     /* KL(original || quantised) per position, nats */
    double same_top;            /* fraction of positions with the same top token */
} ia_quant_eval_lm_result;

/* Scores the quantised decoder `quant` (loaded with quant_dtype for its
 * float tensors) against `base` (base_dtype) on text, tokenised with the
 * base's tokenizer. Both models are loaded at once. */
ia_status ia_quant_eval_lm(const char *base, ia_dtype base_dtype, const char *quant,
                           ia_dtype quant_dtype, const char *text, size_t len,
                           const ia_quant_eval_options *opts, ia_quant_eval_lm_result *r);

typedef struct ia_quant_eval_embed_result {
    size_t n;                 /* sentences */
    double cos_mean, cos_min; /* cosine of each sentence's two embeddings */
    size_t n_pairs;           /* sentence pairs ranked */
    double spearman;          /* rank correlation of the pairs' similarities */
} ia_quant_eval_embed_result;

/* Embeds texts with the model directory at f32 and quantised at load to
 * quant_dtype, and compares the two. */
ia_status ia_quant_eval_embed(const char *dir, ia_dtype quant_dtype, const char *const *texts,
                              size_t n, const ia_quant_eval_options *opts,
                              ia_quant_eval_embed_result *r);

/* Embeds texts with the model directory `dir` at f32 and with `quant`: a
 * GGUF file (e.g. what `quantize` wrote from dir), or, when quant is NULL,
 * dir itself with the recipe's per-tensor types applied at load
 * (ia_quantize_recipe_weight_fn); and compares the two as above. */
ia_status ia_quant_eval_embed_recipe(const char *dir, const char *quant, const char *recipe,
                                     const char *const *texts, size_t n,
                                     const ia_quant_eval_options *opts,
                                     ia_quant_eval_embed_result *r);

/* ==== end of text generation ============================================== */

/* ==== model sources: a path or a CID in the local store (model_source.c) ========== */

/* A --model argument is a path on disk (a model directory or a .gguf file),
 * or, when no such path exists, a CID of one in the local IPFS store: "CID",
 * "CID/sub/path" or "/ipfs/CID/sub/path". A CID is turned into a path the
 * loaders take, under ${XDG_CACHE_HOME:-~/.cache}/ipfs-accelerate/cid/<CIDv1>/
 * (a directory CID: that directory; a file CID, which must be a GGUF file:
 * model.gguf inside it). A file whose every leaf the store holds as a
 * --nocopy reference into one file, covering it whole and in order, is not
 * copied: its leaves are re-hashed against their CIDs in place (spread over
 * the cores) and the cache entry holds a symlink to that file, which the
 * loader then maps where it is. Other files are exported from the store once
 * (every block re-hashed), through a temporary directory renamed into place,
 * so an entry is either whole or absent and concurrent processes agree. */

typedef struct ia_model_source_info {
    bool from_store;         /* the argument was a CID, not a path */
    bool exported;           /* the cache entry was (re)built by this call */
    size_t files_in_place;   /* files mapped where they were added (symlinks) */
    size_t files_copied;     /* files exported from the store's blocks */
    uint64_t bytes_verified; /* bytes re-hashed in place by this call */
    double verify_seconds;   /* the time that took */
} ia_model_source_info;

/* true when arg is not an existing path but reads as a CID (or CID path). */
bool ia_model_source_is_cid(const char *arg);

/* The path to load `arg` from (malloc'd; caller frees): arg itself when it
 * exists on disk, else the cache entry of the CID it names in the store at
 * repo_dir (NULL: $IPFS_ACCELERATE_HOME or ~/.local/share/ipfs-accelerate),
 * made or checked now. info may be NULL. Errors name arg: IA_ENOTFOUND when
 * it is neither a path nor a CID, or when the CID is not in the store (naming
 * the store); IA_EUNSUPPORTED for a file CID that is not GGUF; IA_EIO when a
 * file added by reference changed since it was added (naming the file). */
ia_status ia_model_source_resolve(const char *arg, const char *repo_dir, char **path,
                                  ia_model_source_info *info);
/* The same over an open store (borrowed), for a caller that keeps it. */
struct ia_blockstore;
ia_status ia_model_source_resolve_in(struct ia_blockstore *bs, const char *arg, char **path,
                                     ia_model_source_info *info);

/* ==== end of model sources ========================================================= */

#ifdef __cplusplus
}
#endif

#endif /* IA_RUNTIME_H */
