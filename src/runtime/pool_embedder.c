/*
 * Embedders through the resource pool: the loader (load, free, estimate)
 * that lets an ia_embedder live in an ia_pool, and the one-call
 * ia_pool_acquire_embedder. Kept apart from pool.c so that the pool itself
 * depends only on base/ and hw/ (its ThreadSanitizer test builds just those).
 *
 * The key's variant spells out every option that changes the loaded object,
 * so two callers asking for the same directory with different settings get
 * different embedders, and equal settings share one.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ia/runtime.h"

/* The options ride in the loader's ctx during the acquire only: free
 * ignores ctx, so nothing dangles once the acquire returns. */
static ia_status embedder_load(void *ctx, const ia_pool_key *key, void **obj, size_t *bytes) {
    ia_embedder_options opts = *(const ia_embedder_options *)ctx;
    opts.dtype = key->dtype;
    ia_embedder *emb = NULL;
    ia_status st = ia_embedder_load(key->source, &opts, &emb);
    if (st != IA_OK)
        return st;
    *obj = emb;
    *bytes = ia_embedder_bytes(emb);
    return IA_OK;
}

static void embedder_free(void *ctx, void *obj) {
    (void)ctx;
    ia_embedder_free(obj);
}

static size_t embedder_estimate(void *ctx, const ia_pool_key *key) {
    ia_embedder_options opts = *(const ia_embedder_options *)ctx;
    opts.dtype = key->dtype;
    size_t bytes = 0;
    /* an unreadable directory fails in load with a better message */
    if (ia_embedder_estimate_bytes(key->source, &opts, &bytes) != IA_OK)
        bytes = 0;
    ia_error_clear();
    return bytes;
}

ia_status ia_pool_acquire_embedder(ia_pool *pool, const char *dir,
                                   const ia_embedder_options *opts_in, ia_pool_handle **out) {
    ia_embedder_options opts = opts_in ? *opts_in : ia_embedder_options_default();
    *out = NULL;
    if (!dir)
        return ia_error_set(IA_EINVAL, "pool: no model directory given");
    const ia_backend *backend = opts.backend ? opts.backend : ia_backend_cpu();
    opts.backend = backend;
    char canonical[PATH_MAX];
    const char *source = realpath(dir, canonical) ? canonical : dir;
    char variant[256];
    snprintf(variant, sizeof variant,
             "embedder backend=%s threads=%d batch_tokens=%zu batch_size=%zu max_length=%zu "
             "normalize=%d tokenizer=%d weights=%p/%p",
             backend->name, opts.n_threads, opts.batch_tokens, opts.batch_size, opts.max_length,
             opts.normalize, !opts.skip_tokenizer,
             /* a per-tensor recipe (e.g. q4_k_m) is known by its function and context */
             opts.weight_type ? (void *)(uintptr_t)opts.weight_type : NULL, opts.weight_type_ctx);
    ia_pool_key key = {.source = source, .device = "cpu", .dtype = opts.dtype, .variant = variant};
    ia_pool_loader loader = {embedder_load, embedder_free, embedder_estimate, &opts};
    return ia_pool_acquire(pool, &key, &loader, out);
}
