/*
 * llamacpp_logits: a developer tool (not part of the build) that runs a
 * GGUF model in llama.cpp on given token ids and prints the logits of every
 * position as JSON: {"n_vocab": V, "logits": [[...], ...]}. It is how the
 * quantisation fixtures record llama.cpp's own output for a file
 * (tools/make_quant_interop.py builds and runs it).
 *
 *   cc -O2 tools/llamacpp_logits.c -I$LLAMA/include -I$LLAMA/ggml/include \
 *      -L$BUILD/bin -lllama -Wl,-rpath,$BUILD/bin -o llamacpp_logits
 *   ./llamacpp_logits model.gguf 1,15,27,3
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
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL.gguf ID,ID,...\n", argv[0]);
        return 2;
    }
    llama_log_set(quiet, NULL);
    int32_t ids[4096];
    int n = 0;
    for (char *s = strtok(argv[2], ","); s && n < 4096; s = strtok(NULL, ","))
        ids[n++] = atoi(s);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    struct llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        fprintf(stderr, "cannot load %s\n", argv[1]);
        return 1;
    }
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)(n < 64 ? 64 : n);
    cp.n_batch = cp.n_ubatch = (uint32_t)n;
    cp.n_threads = cp.n_threads_batch = 1;
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
    if (llama_decode(ctx, b) != 0) {
        fprintf(stderr, "llama_decode failed\n");
        return 1;
    }
    int v = llama_vocab_n_tokens(llama_model_get_vocab(model));
    printf("{\"n_vocab\": %d, \"logits\": [", v);
    for (int i = 0; i < n; i++) {
        const float *l = llama_get_logits_ith(ctx, i);
        printf(i ? ",\n[" : "[");
        for (int j = 0; j < v; j++)
            printf(j ? ",%.9g" : "%.9g", l[j]);
        printf("]");
    }
    printf("]}\n");
    llama_batch_free(b);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
