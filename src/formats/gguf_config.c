/*
 * gguf_config: GGUF metadata seen as a HF config.json, so that the model
 * classifier and planner read one shape whatever the file.
 *
 * GGUF names hyper-parameters "<arch>.<field>" with arch taken from
 * general.architecture ("llama.embedding_length"); HF config.json names
 * them without a prefix ("hidden_size"). The table below maps one to the
 * other; a field the file lacks is left out rather than guessed. The
 * vocabulary size is the length of tokenizer.ggml.tokens when present
 * (what the model actually ships), else <arch>.vocab_size.
 *
 * GGUF architecture names mostly equal HF model_type values; the ones that
 * differ are in arch_names (from llama.cpp's convert_hf_to_gguf.py, which
 * maps HF classes to these names). Other names have '-' turned into '_'
 * ("nomic-bert" -> "nomic_bert"), which is HF's spelling habit. GGUF keeps
 * no HF class name, so no "architectures" list is produced.
 */
#include "formats/gguf_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *gguf, *hf;
} arch_names[] = {
    {"command-r", "cohere"},      {"phi2", "phi"},           {"gptneox", "gpt_neox"},
    {"starcoder", "gpt_bigcode"}, {"qwen2moe", "qwen2_moe"}, {"qwen3moe", "qwen3_moe"},
    {"deepseek2", "deepseek_v2"}, {"t5encoder", "t5"},       {"modern-bert", "modernbert"},
};

const char *ia_gguf_arch_to_model_type(const char *arch, char *buf, size_t cap) {
    if (!arch || !buf || cap == 0)
        return NULL;
    for (size_t i = 0; i < sizeof arch_names / sizeof arch_names[0]; i++)
        if (strcmp(arch, arch_names[i].gguf) == 0) {
            snprintf(buf, cap, "%s", arch_names[i].hf);
            return buf;
        }
    snprintf(buf, cap, "%s", arch);
    for (char *c = buf; *c; c++)
        if (*c == '-')
            *c = '_';
    return buf;
}

/* config.json field <- "<arch>." + GGUF suffix, each an integer. */
static const struct {
    const char *hf, *suffix;
} int_fields[] = {
    {"hidden_size", "embedding_length"},
    {"num_hidden_layers", "block_count"},
    {"num_attention_heads", "attention.head_count"},
    {"num_key_value_heads", "attention.head_count_kv"},
    {"intermediate_size", "feed_forward_length"},
    {"max_position_embeddings", "context_length"},
};

/* Sets obj[field] to the integer at key when present. Some files store
 * head_count_kv (and feed_forward_length) as a per-layer array; those give
 * the first layer's value, which is what a uniform model has everywhere. */
static ia_status put_int(const ia_gguf *g, json_t *obj, const char *field, const char *key) {
    const ia_gguf_value *v = ia_gguf_find(g, key);
    int64_t n;
    ia_status st;
    if (!v)
        return IA_OK;
    if (ia_gguf_value_type(v) == IA_GGUF_ARRAY && ia_gguf_array_count(v) > 0)
        st = ia_gguf_array_int(v, 0, &n);
    else
        st = ia_gguf_value_i64(v, &n);
    if (st != IA_OK)
        return st;
    if (json_object_set_new(obj, field, json_integer((json_int_t)n)) != 0)
        return ia_error_set(IA_ENOMEM, "%s: cannot build the config object", ia_gguf_path(g));
    return IA_OK;
}

ia_status ia_gguf_config_json(const ia_gguf *g, struct json_t **out) {
    ia_status st;
    const char *arch;
    char model_type[128], key[256];
    json_t *obj = NULL;
    if (!g || !out)
        return ia_error_set(IA_EINVAL, "ia_gguf_config_json: NULL argument");
    *out = NULL;
    if ((st = ia_gguf_get_string(g, "general.architecture", true, &arch, NULL)))
        return st;
    if (!(obj = json_object())) {
        st = ia_error_set(IA_ENOMEM, "%s: cannot build the config object", ia_gguf_path(g));
        goto fail;
    }
    ia_gguf_arch_to_model_type(arch, model_type, sizeof model_type);
    if (json_object_set_new(obj, "model_type", json_string(model_type)) != 0) {
        st = ia_error_set(IA_ENOMEM, "%s: cannot build the config object", ia_gguf_path(g));
        goto fail;
    }
    for (size_t i = 0; i < sizeof int_fields / sizeof int_fields[0]; i++) {
        snprintf(key, sizeof key, "%s.%s", arch, int_fields[i].suffix);
        if ((st = put_int(g, obj, int_fields[i].hf, key)))
            goto fail;
    }
    const ia_gguf_value *tokens = ia_gguf_find(g, "tokenizer.ggml.tokens");
    if (tokens && ia_gguf_value_type(tokens) == IA_GGUF_ARRAY) {
        uint64_t n = ia_gguf_array_count(tokens);
        if (json_object_set_new(obj, "vocab_size", json_integer((json_int_t)n)) != 0) {
            st = ia_error_set(IA_ENOMEM, "%s: cannot build the config object", ia_gguf_path(g));
            goto fail;
        }
    } else {
        snprintf(key, sizeof key, "%s.vocab_size", arch);
        if ((st = put_int(g, obj, "vocab_size", key)))
            goto fail;
    }
    if ((st = put_int(g, obj, "gguf_file_type", "general.file_type")))
        goto fail;
    *out = obj;
    return IA_OK;
fail:
    json_decref(obj);
    return st;
}
