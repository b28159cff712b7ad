/*
 * llamacpp_embed: a developer tool (not part of the build) that embeds
 * texts with a BERT GGUF model in llama.cpp and prints, as JSON, the token
 * ids llama.cpp's own tokenizer gives each text and the pooled embedding of
 * each (the file's pooling type, not normalised):
 *   {"dim": D, "ids": [[...], ...], "embeddings": [[...], ...]}
 * tools/make_bert_gguf_fixtures.py builds and runs it to record what
 * llama.cpp computes for a GGUF file written by our converter; the tests
 * read that record and never need llama.cpp.
 *
 *   cc -O2 tools/llamacpp_embed.c -I$LLAMA/include -I$LLAMA/ggml/include \
 *      -L$BUILD/bin -lllama -Wl,-rpath,$BUILD/bin -o llamacpp_embed
 *   ./llamacpp_embed model.gguf "first text" "second text"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama.h"

static void quiet(enum ggml_log_level level, const char *text, void *ctx) {
    (void)ctx;
    if (level >= GGML_LOG_LEVEL_ERROR)
        fputs(text, stderr);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.gguf TEXT...\n", argv[0]);
        return 2;
    }
    llama_log_set(quiet, NULL);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    struct llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        fprintf(stderr, "cannot load %s\n", argv[1]);
        return 1;
    }
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    int dim = llama_model_n_embd(model);
    printf("{\"dim\": %d, \"ids\": [", dim);
    float *out = calloc((size_t)(argc - 2) * (size_t)dim, sizeof *out);
    for (int t = 2; t < argc; t++) {
        int32_t ids[512];
        int n = llama_tokenize(vocab, argv[t], (int32_t)strlen(argv[t]), ids, 512, true, false);
        if (n <= 0) {
            fprintf(stderr, "cannot tokenise text %d\n", t - 2);
            return 1;
        }
        printf(t > 2 ? ",\n[" : "[");
        for (int i = 0; i < n; i++)
            printf(i ? ",%d" : "%d", ids[i]);
        printf("]");
        struct llama_context_params cp = llama_context_default_params();
        cp.n_ctx = cp.n_batch = cp.n_ubatch = 512;
        cp.n_threads = cp.n_threads_batch = 1;
        cp.embeddings = true;
        struct llama_context *ctx = llama_init_from_model(model, cp);
        if (!ctx) {
            fprintf(stderr, "cannot create a context\n");
            return 1;
        }
        struct llama_batch b = llama_batch_init(n, 0, 1);
        for (int i = 0; i < n; i++) {
            b.token[i] = ids[i];
            b.pos[i] = i;
            b.n_seq_id[i] = 1;
            b.seq_id[i][0] = 0;
            b.logits[i] = 1;
        }
        b.n_tokens = n;
        if (llama_encode(ctx, b) != 0) {
            fprintf(stderr, "llama_encode failed\n");
            return 1;
        }
        const float *e = llama_get_embeddings_seq(ctx, 0);
        if (!e) {
            fprintf(stderr, "no pooled embedding (pooling type none?)\n");
            return 1;
        }
        memcpy(out + (size_t)(t - 2) * (size_t)dim, e, (size_t)dim * sizeof *e);
        llama_batch_free(b);
        llama_free(ctx);
    }
    printf("], \"embeddings\": [");
    for (int t = 0; t < argc - 2; t++) {
        printf(t ? ",\n[" : "[");
        for (int j = 0; j < dim; j++)
            printf(j ? ",%.9g" : "%.9g", out[(size_t)t * (size_t)dim + j]);
        printf("]");
    }
    printf("]}\n");
    free(out);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
