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
 * A request is tokenised, checked against the context, prefilled in chunks
 * (only the last chunk's last logits are kept), then each step samples a
 * token, streams its text through the detokenizer and the stop-string
 * matcher, and runs the token through the decoder unless generation ends.
 * The tokens in the cache are remembered, so a chat that re-renders its whole
 * conversation only prefills what is new (reuse_cache) as long as the cache
 * holds a prefix of the new prompt.
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

struct ia_generator {
    ia_decoder *dec;
    ia_tokenizer *tok;
    ia_kv_cache *kv;
    ia_threadpool *pool;
    size_t context, prefill_chunk, vocab;
    int32_t eos_id;
    char *template_text; /* raw chat template, NULL when none */
    ia_chat_template *chat;
    char *chat_error; /* why chat is NULL */
    int32_t *cached;  /* tokens whose keys and values are in kv */
    size_t n_cached;
    float *logits;
};

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
    st = ia_kv_cache_create(g->dec, g->context, o.kv_dtype, &g->kv);
    if (st != IA_OK)
        goto fail;
    g->pool = ia_threadpool_create(o.n_threads > 0 ? o.n_threads : ia_cpu_physical_cores());
    g->logits = ia_malloc_array(g->vocab, sizeof *g->logits);
    g->cached = ia_malloc_array(g->context ? g->context : 1, sizeof *g->cached);
    if (!g->pool || !g->logits || !g->cached) {
        st =
            ia_error_set(IA_ENOMEM, "generator: out of memory for a %zu-token context", g->context);
        goto fail;
    }
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
    ia_kv_cache_free(g->kv);
    ia_decoder_free(g->dec);
    ia_tokenizer_free(g->tok);
    if (g->pool)
        ia_threadpool_destroy(g->pool);
    ia_chat_template_free(g->chat);
    free(g->chat_error);
    free(g->template_text);
    free(g->cached);
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

/* Runs tokens through the decoder in chunks, recording them as cached;
 * g->logits ends with the last token's logits. */
static ia_status feed(ia_generator *g, const int32_t *ids, size_t n) {
    for (size_t off = 0; off < n; off += g->prefill_chunk) {
        size_t m = n - off < g->prefill_chunk ? n - off : g->prefill_chunk;
        ia_status st = ia_decoder_forward(g->dec, g->kv, ids + off, m, false, g->logits, g->pool);
        if (st != IA_OK) {
            /* The cache may hold part of the chunk: forget it all. */
            ia_kv_cache_reset(g->kv);
            g->n_cached = 0;
            return st;
        }
        memcpy(g->cached + g->n_cached, ids + off, m * sizeof *ids);
        g->n_cached += m;
    }
    return IA_OK;
}

/* Appends to the result's token array (which has room for max tokens). */
typedef struct gen_state {
    ia_generator *g;
    const ia_generate_request *req;
    ia_generate_result *res;
    int32_t *history; /* prompt + completion, for the repetition penalty */
    size_t n_history;
    ia_detokenizer *detok;
    stop_matcher stops;
} gen_state;

/* Streams a piece of decoded text through the stop matcher and the callback.
 * Returns false when generation must end (stop string or the callback). */
static ia_status stream_text(gen_state *s, const char *piece, size_t len, bool *go_on) {
    const char *emit;
    size_t emit_len;
    ia_status st = stop_matcher_push(&s->stops, piece, len, &emit, &emit_len);
    if (st != IA_OK)
        return st;
    if (emit_len && s->req->on_text && !s->req->on_text(s->req->ctx, emit, emit_len)) {
        s->res->finish = IA_FINISH_CANCELLED;
        *go_on = false;
    }
    if (s->stops.stopped) {
        if (s->res->finish != IA_FINISH_CANCELLED)
            s->res->finish = IA_FINISH_STOP;
        *go_on = false;
    }
    return IA_OK;
}

static ia_status decode_loop(gen_state *s, size_t max_new) {
    ia_generator *g = s->g;
    const ia_generate_request *req = s->req;
    ia_generate_result *res = s->res;
    ia_sampler *sampler = NULL;
    ia_status st = ia_sampler_create(&req->sampling, g->vocab, &sampler);
    if (st != IA_OK)
        return st;
    double t0 = ia_time_now();
    res->finish = IA_FINISH_LENGTH;
    bool go_on = true;
    while (go_on && res->n_tokens < max_new) {
        int32_t tok = ia_sampler_sample(sampler, g->logits, s->history, s->n_history);
        res->tokens[res->n_tokens++] = tok;
        s->history[s->n_history++] = tok;
        bool is_eos = (!req->ignore_eos && tok == g->eos_id) ||
                      (req->extra_eos >= 0 && tok == req->extra_eos);
        if (is_eos) {
            res->finish = IA_FINISH_EOS;
            break;
        }
        const char *piece;
        size_t plen;
        if ((st = ia_detokenizer_push(s->detok, tok, &piece, &plen)) != IA_OK)
            break;
        if ((st = stream_text(s, piece, plen, &go_on)) != IA_OK || !go_on)
            break;
        if (res->n_tokens == max_new)
            break;
        if (g->n_cached >= g->context) { /* no room for this token's keys */
            res->finish = IA_FINISH_LENGTH;
            break;
        }
        if ((st = feed(g, &tok, 1)) != IA_OK)
            break;
    }
    res->decode_ms = (ia_time_now() - t0) * 1000.0;
    ia_sampler_free(sampler);
    return st;
}

/* The end: what the detokenizer and the stop matcher still hold. */
static ia_status finish_text(gen_state *s) {
    ia_generate_result *res = s->res;
    if (res->finish == IA_FINISH_LENGTH || res->finish == IA_FINISH_EOS) {
        const char *piece;
        size_t plen;
        bool go_on = true;
        ia_status st = ia_detokenizer_flush(s->detok, &piece, &plen);
        if (st == IA_OK && plen)
            st = stream_text(s, piece, plen, &go_on);
        if (st != IA_OK)
            return st;
        if (!s->stops.stopped && res->finish != IA_FINISH_CANCELLED) {
            const char *emit;
            size_t emit_len;
            stop_matcher_flush(&s->stops, &emit, &emit_len);
            if (emit_len && s->req->on_text && !s->req->on_text(s->req->ctx, emit, emit_len))
                res->finish = IA_FINISH_CANCELLED;
        }
    }
    size_t n = stop_matcher_text_len(&s->stops);
    res->text = ia_malloc(n + 1);
    if (!res->text)
        return ia_error_set(IA_ENOMEM, "generate: out of memory for the text");
    if (n)
        memcpy(res->text, s->stops.buf, n);
    res->text[n] = '\0';
    res->text_len = n;
    return IA_OK;
}

ia_status ia_generator_generate(ia_generator *g, const ia_generate_request *req,
                                ia_generate_result *out) {
    memset(out, 0, sizeof *out);
    gen_state s = {.g = g, .req = req, .res = out};
    int32_t *ids = NULL;
    size_t n_ids = 0;
    size_t plen = req->prompt_len == SIZE_MAX ? strlen(req->prompt) : req->prompt_len;
    ia_status st = ia_generator_tokenize(g, req->prompt, plen, req->raw_prompt, &ids, &n_ids);
    if (st != IA_OK)
        goto done;
    out->prompt_tokens = n_ids;
    if (n_ids == 0) {
        st = ia_error_set(IA_EINVAL, "the prompt is empty (and the model adds no BOS token)");
        goto done;
    }
    if (n_ids > g->context) {
        st = ia_error_set(IA_ERANGE, "the prompt is %zu tokens; the context holds %zu", n_ids,
                          g->context);
        goto done;
    }
    size_t room = g->context - n_ids + 1; /* the last token needs no cache slot */
    size_t max_new = req->max_tokens && req->max_tokens < room ? req->max_tokens : room;
    out->tokens = ia_malloc_array(max_new, sizeof *out->tokens);
    s.history = ia_malloc_array(n_ids + max_new, sizeof *s.history);
    if (!out->tokens || !s.history) {
        st = ia_error_set(IA_ENOMEM, "generate: out of memory for %zu tokens", max_new);
        goto done;
    }
    memcpy(s.history, ids, n_ids * sizeof *ids);
    s.n_history = n_ids;
    if ((st = ia_detokenizer_create(g->tok, true, &s.detok)) != IA_OK)
        goto done;
    stop_matcher_init(&s.stops, req->stop, req->n_stop);

    /* Keep the cached prefix only when it is a strict prefix of the prompt
     * (at least one new token must run to give logits). */
    size_t keep = 0;
    if (req->reuse_cache && g->n_cached < n_ids &&
        memcmp(g->cached, ids, g->n_cached * sizeof *ids) == 0)
        keep = g->n_cached;
    if (keep == 0) {
        ia_kv_cache_reset(g->kv);
        g->n_cached = 0;
    }
    out->cached_tokens = keep;
    double t0 = ia_time_now();
    st = feed(g, ids + keep, n_ids - keep);
    out->prefill_ms = (ia_time_now() - t0) * 1000.0;
    if (st != IA_OK)
        goto done;
    st = decode_loop(&s, max_new);
    if (st == IA_OK)
        st = finish_text(&s);
done:
    if (st != IA_OK && !out->text) {
        out->text = ia_strdup("");
        out->text_len = 0;
    }
    stop_matcher_free(&s.stops);
    ia_detokenizer_free(s.detok);
    free(s.history);
    free(ids);
    return st;
}

void ia_generate_result_free(ia_generate_result *r) {
    if (!r)
        return;
    free(r->text);
    free(r->tokens);
    memset(r, 0, sizeof *r);
}
