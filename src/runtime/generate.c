/*
 * The generator: a decoder, its tokenizer and a KV cache, driven token by
 * token.
 *
 * Loading takes either an HF model directory or a .gguf file. From a
 * directory the tokenizer is tokenizer.json and the chat template comes from
 * tokenizer_config.json (or chat_template.jinja); from a GGUF both come from
 * the metadata (tokenizer.ggml.* built into a tokenizer by
 * ia_tokenizer_from_gguf in tokenizer_gguf.c, tokenizer.chat_template).
 *
 * The generator has max_seqs slots, each a KV cache and the tokens it
 * holds; generating a request is a sequence in one slot (generate_batch.c:
 * tokenised and checked, prefilled in chunks, then one token a step through
 * the sampler, the detokenizer and the stop-string matcher), and
 * ia_generator_generate is one sequence stepped until it is done. The
 * tokens in a slot's cache are remembered, so a chat that re-renders its
 * whole conversation only prefills what is new (reuse_cache) as long as the
 * cache holds a prefix of the new prompt.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ia/formats.h"
#include "ia/runtime.h"
#include "runtime/generate_internal.h"

#define DEFAULT_PREFILL_CHUNK 256
#define CONFIG_MAX_BYTES (8u << 20)

ia_generator_options ia_generator_options_default(void) {
    return (ia_generator_options){.dtype = IA_DTYPE_F32, .kv_dtype = IA_DTYPE_F32};
}

ia_generate_request ia_generate_request_default(void) {
    return (ia_generate_request){
        .prompt_len = SIZE_MAX, .sampling = ia_sampling_default(), .extra_eos = -1};
}

const char *ia_finish_reason_name(ia_finish_reason r) {
    static const char *const names[] = {"length", "eos", "stop", "cancelled"};
    return (unsigned)r < 4 ? names[r] : "unknown";
}

static bool is_gguf_path(const char *path) {
    size_t n = strlen(path);
    return n > 5 && strcmp(path + n - 5, ".gguf") == 0;
}

/* ---- tokenizer and chat template from a GGUF ------------------------------------------ */

static ia_status load_gguf_side(ia_generator *g, const char *path) {
    ia_gguf *gg = NULL;
    ia_status st = ia_gguf_open(path, &gg);
    if (st != IA_OK)
        return st;
    st = ia_tokenizer_from_gguf(gg, &g->tok);
    if (st == IA_OK) {
        const char *tmpl = NULL;
        size_t len = 0;
        ia_gguf_get_string(gg, "tokenizer.chat_template", false, &tmpl, &len);
        if (tmpl && !(g->template_text = ia_strndup(tmpl, len)))
            st = ia_error_set(IA_ENOMEM, "%s: out of memory", path);
    }
    ia_gguf_close(gg);
    return st;
}

/* ---- tokenizer_config.json ---------------------------------------------------------- */

/* The chat template: tokenizer_config.json's chat_template (a string, or a
 * list of {name, template} where "default" wins), else chat_template.jinja. */
static ia_status load_dir_template(ia_generator *g, const char *dir) {
    char *path = ia_path_join(dir, "tokenizer_config.json");
    json_t *cfg = NULL;
    ia_status st = IA_OK;
    if (!path)
        return ia_error_set(IA_ENOMEM, "out of memory");
    if (ia_file_exists(path)) {
        st = ia_json_load_file(path, CONFIG_MAX_BYTES, &cfg);
        if (st != IA_OK)
            goto done;
        json_t *t = json_object_get(cfg, "chat_template");
        const char *text = json_string_value(t);
        if (json_is_array(t)) {
            size_t i;
            json_t *e;
            json_array_foreach(t, i, e) {
                const char *name = json_string_value(json_object_get(e, "name"));
                if (!text || (name && strcmp(name, "default") == 0))
                    text = json_string_value(json_object_get(e, "template"));
            }
        }
        if (text && !(g->template_text = ia_strdup(text))) {
            st = ia_error_set(IA_ENOMEM, "out of memory");
            goto done;
        }
    }
    if (!g->template_text) {
        char *jpath = ia_path_join(dir, "chat_template.jinja");
        size_t len;
        if (jpath && ia_file_exists(jpath))
            st = ia_file_read_all(jpath, CONFIG_MAX_BYTES, &g->template_text, &len);
        free(jpath);
    }
done:
    json_decref(cfg);
    free(path);
    return st;
}

static void detect_chat(ia_generator *g) {
    const char *bos = ia_tokenizer_id_to_token(g->tok, ia_tokenizer_bos_id(g->tok));
    const char *eos = ia_tokenizer_id_to_token(g->tok, g->eos_id);
    if (ia_chat_template_detect(g->template_text, bos, eos, &g->chat) != IA_OK)
        g->chat_error = ia_strdup(ia_error_message());
}

/* ---- load ---------------------------------------------------------------------------- */

ia_status ia_generator_load(const char *path, const ia_generator_options *opts,
                            ia_generator **out) {
    *out = NULL;
    ia_generator_options o = opts ? *opts : ia_generator_options_default();
    ia_status st;
    ia_generator *g = ia_calloc(1, sizeof *g);
    if (!g)
        return ia_error_set(IA_ENOMEM, "generator: out of memory");
    if (o.kv_dtype != IA_DTYPE_F32 && o.kv_dtype != IA_DTYPE_F16 && o.kv_dtype != IA_DTYPE_Q8_0) {
        st = ia_error_set(IA_EINVAL, "generator: KV cache type %s is not f32, f16 or q8_0",
                          ia_dtype_name(o.kv_dtype));
        goto fail;
    }
    struct stat sb;
    if (stat(path, &sb) != 0) {
        st = ia_error_set(IA_ENOTFOUND, "%s: no such model file or directory", path);
        goto fail;
    }
    st = ia_decoder_load(path, o.backend ? o.backend : ia_backend_cpu(), o.dtype, &g->dec);
    if (st != IA_OK)
        goto fail;
    const ia_decoder_config *cfg = ia_decoder_get_config(g->dec);
    if (is_gguf_path(path)) {
        st = load_gguf_side(g, path);
    } else {
        st = ia_tokenizer_load_dir(path, &g->tok);
        if (st == IA_OK)
            st = load_dir_template(g, path);
    }
    if (st != IA_OK)
        goto fail;
    g->vocab = (size_t)cfg->vocab_size;
    g->eos_id = cfg->eos_token_id >= 0 ? (int32_t)cfg->eos_token_id : ia_tokenizer_eos_id(g->tok);
    g->context = o.context && o.context < (size_t)cfg->max_positions ? o.context
                                                                     : (size_t)cfg->max_positions;
    g->prefill_chunk = o.prefill_chunk ? o.prefill_chunk : DEFAULT_PREFILL_CHUNK;
    g->kv_dtype = o.kv_dtype;
    g->n_slots = o.max_seqs ? o.max_seqs : 1;
    g->pool = ia_threadpool_create(o.n_threads > 0 ? o.n_threads : ia_cpu_physical_cores());
    g->slots = ia_calloc(g->n_slots, sizeof *g->slots);
    g->logits = ia_malloc_array(g->n_slots, g->vocab * sizeof *g->logits);
    g->step_kv = ia_malloc_array(g->n_slots, sizeof *g->step_kv);
    g->step_tok = ia_malloc_array(g->n_slots, sizeof *g->step_tok);
    g->step_seq = ia_malloc_array(g->n_slots, sizeof *g->step_seq);
    if (!g->pool || !g->slots || !g->logits || !g->step_kv || !g->step_tok || !g->step_seq) {
        st = ia_error_set(IA_ENOMEM, "generator: out of memory for %zu sequences", g->n_slots);
        goto fail;
    }
    /* The first slot's cache now, so that a cache the model cannot have
     * fails the load; the others when first used. */
    if ((st = gen_slot_ready(g, &g->slots[0])) != IA_OK)
        goto fail;
    detect_chat(g);
    *out = g;
    return IA_OK;
fail:
    ia_generator_free(g);
    return st;
}

void ia_generator_free(ia_generator *g) {
    if (!g)
        return;
    for (size_t i = 0; g->slots && i < g->n_slots; i++) {
        ia_kv_cache_free(g->slots[i].kv);
        free(g->slots[i].cached);
    }
    free(g->slots);
    free(g->step_kv);
    free(g->step_tok);
    free(g->step_seq);
    ia_decoder_free(g->dec);
    ia_tokenizer_free(g->tok);
    if (g->pool)
        ia_threadpool_destroy(g->pool);
    ia_chat_template_free(g->chat);
    free(g->chat_error);
    free(g->template_text);
    free(g->logits);
    free(g);
}

const ia_tokenizer *ia_generator_tokenizer(const ia_generator *g) { return g->tok; }
const ia_decoder_config *ia_generator_config(const ia_generator *g) {
    return ia_decoder_get_config(g->dec);
}
size_t ia_generator_context(const ia_generator *g) { return g->context; }

const ia_chat_template *ia_generator_chat_template(const ia_generator *g) {
    if (!g->chat)
        ia_error_set(g->template_text ? IA_EUNSUPPORTED : IA_ENOTFOUND, "%s",
                     g->chat_error ? g->chat_error : "the model has no chat template");
    return g->chat;
}

/* ---- generation ---------------------------------------------------------------------- */

ia_status ia_generator_tokenize(const ia_generator *g, const char *text, size_t len, bool raw,
                                int32_t **ids, size_t *n) {
    *ids = NULL;
    *n = 0;
    size_t bad;
    if (!ia_utf8_valid(text, len, &bad))
        return ia_error_set(IA_EINVAL, "prompt is not valid UTF-8 (byte offset %zu)", bad);
    ia_encode_options eo = ia_encode_options_default();
    eo.add_special_tokens = !raw;
    ia_encoding enc = {0};
    ia_status st = ia_tokenizer_encode(g->tok, text, len, NULL, 0, &eo, &enc);
    if (st != IA_OK)
        return st;
    *ids = enc.ids;
    *n = enc.len;
    enc.ids = NULL;
    ia_encoding_free(&enc);
    return IA_OK;
}

ia_status gen_slot_ready(ia_generator *g, gen_slot *slot) {
    if (slot->kv)
        return IA_OK;
    ia_status st = ia_kv_cache_create(g->dec, g->context, g->kv_dtype, &slot->kv);
    if (st != IA_OK)
        return st;
    slot->cached = ia_malloc_array(g->context ? g->context : 1, sizeof *slot->cached);
    if (!slot->cached) {
        ia_kv_cache_free(slot->kv);
        slot->kv = NULL;
        return ia_error_set(IA_ENOMEM, "generator: out of memory for a %zu-token context",
                            g->context);
    }
    slot->n_cached = 0;
    return IA_OK;
}

/* One sequence, stepped until it is done (alongside any others started). */
ia_status ia_generator_generate(ia_generator *g, const ia_generate_request *req,
                                ia_generate_result *out) {
    memset(out, 0, sizeof *out);
    ia_gen_seq *s = NULL;
    size_t prompt_tokens = 0;
    ia_status st = gen_seq_start(g, req, &s, &prompt_tokens);
    if (st != IA_OK) {
        out->prompt_tokens = prompt_tokens;
        out->text = ia_strdup("");
        return st;
    }
    while (!ia_gen_seq_done(s))
        ia_generator_step(g, NULL);
    return ia_gen_seq_end(s, out);
}

void ia_generate_result_free(ia_generate_result *r) {
    if (!r)
        return;
    free(r->text);
    free(r->tokens);
    memset(r, 0, sizeof *r);
}
