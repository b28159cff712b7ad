/*
 * Text generation: sampling on hand-made logits (greedy, top-k, top-p, min-p,
 * repetition penalty with HF's semantics, seed reproducibility), stop strings
 * across token boundaries, chat template rendering for six families against
 * transformers' apply_chat_template (tests/fixtures/decoders/
 * chat_templates.json), and, with the tiny decoder fixtures
 * (tests/fixtures/decoders/<arch>), 64-token greedy generations identical to
 * transformers' model.generate from safetensors and from the converted GGUF,
 * the same seeded samples from both (their logits are bit-identical),
 * streaming, stop strings on a real model and the context-overflow error.
 *
 * IA_GENERATE_TEST_UNIT_ONLY builds only the cases that need no model.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ia/runtime.h"
#include "runtime/generate_internal.h"
#include "test.h"

/* ---- sampling ------------------------------------------------------------------------ */

static ia_sampler *make_sampler(ia_sampling p, size_t vocab) {
    ia_sampler *s = NULL;
    CHECK_OK(ia_sampler_create(&p, vocab, &s));
    return s;
}

/* Softmax of logits in double, for expected probabilities. */
static void ref_softmax(const double *x, size_t n, double *out) {
    double m = x[0], sum = 0;
    for (size_t i = 1; i < n; i++)
        m = x[i] > m ? x[i] : m;
    for (size_t i = 0; i < n; i++)
        sum += out[i] = exp(x[i] - m);
    for (size_t i = 0; i < n; i++)
        out[i] /= sum;
}

TEST(greedy_is_argmax_lowest_id_on_ties) {
    float logits[6] = {0.5f, 3.0f, -1.0f, 3.0f, 2.9f, 0.0f};
    ia_sampling p = ia_sampling_default();
    p.temperature = 0;
    ia_sampler *s = make_sampler(p, 6);
    ia_token_prob d[6];
    CHECK_EQ_INT(ia_sampler_distribution(s, logits, NULL, 0, d), 1);
    CHECK_EQ_INT(d[0].id, 1);
    for (int i = 0; i < 10; i++)
        CHECK_EQ_INT(ia_sampler_sample(s, logits, NULL, 0), 1);
    ia_sampler_free(s);
}

TEST(top_k_keeps_k_best_and_ties) {
    float logits[6] = {1.0f, 4.0f, 2.0f, 3.0f, 2.0f, 0.0f};
    ia_sampling p = ia_sampling_default();
    p.top_k = 2;
    ia_sampler *s = make_sampler(p, 6);
    ia_token_prob d[6];
    size_t n = ia_sampler_distribution(s, logits, NULL, 0, d);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(d[0].id, 1);
    CHECK_EQ_INT(d[1].id, 3);
    double x[2] = {4, 3}, want[2];
    ref_softmax(x, 2, want);
    CHECK_NEAR(d[0].prob, want[0], 1e-6);
    CHECK_NEAR(d[1].prob, want[1], 1e-6);
    ia_sampler_free(s);
    /* k = 3 meets a tie at the third place: both 2.0s stay, as HF keeps them. */
    p.top_k = 3;
    s = make_sampler(p, 6);
    CHECK_EQ_INT(ia_sampler_distribution(s, logits, NULL, 0, d), 4);
    ia_sampler_free(s);
}

TEST(temperature_scales_before_softmax) {
    float logits[3] = {2.0f, 1.0f, 0.0f};
    ia_sampling p = ia_sampling_default();
    p.temperature = 0.5f;
    ia_sampler *s = make_sampler(p, 3);
    ia_token_prob d[3];
    CHECK_EQ_INT(ia_sampler_distribution(s, logits, NULL, 0, d), 3);
    double x[3] = {4, 2, 0}, want[3];
    ref_softmax(x, 3, want);
    for (int i = 0; i < 3; i++)
        CHECK_NEAR(d[i].prob, want[i], 1e-6);
    ia_sampler_free(s);
}

TEST(top_p_keeps_the_token_that_crosses_the_mass) {
    /* probabilities 0.5, 0.25, 0.125, 0.0625, 0.0625 */
    float logits[5] = {logf(0.5f), logf(0.25f), logf(0.125f), logf(0.0625f), logf(0.0625f)};
    ia_sampling p = ia_sampling_default();
    p.top_p = 0.7f; /* 0.5 < 0.7: the 0.25 token crosses it and stays; 0.75 >= 0.7 stops */
    ia_sampler *s = make_sampler(p, 5);
    ia_token_prob d[5];
    size_t n = ia_sampler_distribution(s, logits, NULL, 0, d);
    CHECK_EQ_INT(n, 2);
    CHECK_NEAR(d[0].prob, 0.5 / 0.75, 1e-6);
    CHECK_NEAR(d[1].prob, 0.25 / 0.75, 1e-6);
    ia_sampler_free(s);
    p.top_p = 0.8f;
    s = make_sampler(p, 5);
    CHECK_EQ_INT(ia_sampler_distribution(s, logits, NULL, 0, d), 3);
    ia_sampler_free(s);
    p.top_p = 0.1f; /* the top token alone already holds more: it stays */
    s = make_sampler(p, 5);
    CHECK_EQ_INT(ia_sampler_distribution(s, logits, NULL, 0, d), 1);
    CHECK_EQ_INT(d[0].id, 0);
    ia_sampler_free(s);
}

TEST(min_p_drops_below_fraction_of_top) {
    float logits[4] = {logf(0.6f), logf(0.25f), logf(0.1f), logf(0.05f)};
    ia_sampling p = ia_sampling_default();
    p.min_p = 0.2f; /* floor 0.12: 0.1 and 0.05 go */
    ia_sampler *s = make_sampler(p, 4);
    ia_token_prob d[4];
    size_t n = ia_sampler_distribution(s, logits, NULL, 0, d);
    CHECK_EQ_INT(n, 2);
    CHECK_NEAR(d[0].prob, 0.6 / 0.85, 1e-6);
    CHECK_NEAR(d[1].prob, 0.25 / 0.85, 1e-6);
    ia_sampler_free(s);
}

TEST(repetition_penalty_hf_semantics) {
    /* HF: positive logits of seen tokens divided, negative multiplied, once
     * per token however often it occurred. */
    float logits[4] = {2.0f, -1.0f, 1.0f, 1.9f};
    ia_sampling p = ia_sampling_default();
    p.temperature = 1.0f;
    p.repeat_penalty = 2.0f;
    ia_sampler *s = make_sampler(p, 4);
    int32_t hist[] = {0, 1, 0, 0};
    ia_token_prob d[4];
    CHECK_EQ_INT(ia_sampler_distribution(s, logits, hist, 4, d), 4);
    double x[4] = {1.0, -2.0, 1.0, 1.9}, want[4];
    ref_softmax(x, 4, want);
    for (int i = 0; i < 4; i++) {
        int id = d[i].id;
        CHECK_NEAR(d[i].prob, want[id], 1e-6);
    }
    CHECK_EQ_INT(d[0].id, 3); /* 1.9 now leads */
    ia_sampler_free(s);
    /* Greedy is penalised too (HF applies processors before argmax). */
    p.temperature = 0;
    s = make_sampler(p, 4);
    CHECK_EQ_INT(ia_sampler_sample(s, logits, hist, 4), 3);
    CHECK_EQ_INT(ia_sampler_sample(s, logits, NULL, 0), 0);
    ia_sampler_free(s);
}

TEST(seed_reproducible_and_distribution_followed) {
    enum { V = 8, N = 4000 };
    float logits[V];
    for (int i = 0; i < V; i++)
        logits[i] = (float)i * 0.3f;
    ia_sampling p = ia_sampling_default();
    p.seed = 42;
    ia_sampler *a = make_sampler(p, V), *b = make_sampler(p, V);
    p.seed = 43;
    ia_sampler *c = make_sampler(p, V);
    int same_ab = 0, same_ac = 0, count[V] = {0};
    for (int i = 0; i < N; i++) {
        int32_t ta = ia_sampler_sample(a, logits, NULL, 0);
        int32_t tb = ia_sampler_sample(b, logits, NULL, 0);
        int32_t tc = ia_sampler_sample(c, logits, NULL, 0);
        same_ab += ta == tb;
        same_ac += ta == tc;
        count[ta]++;
    }
    CHECK_EQ_INT(same_ab, N);
    CHECK(same_ac < N * 6 / 10);
    double x[V], want[V];
    for (int i = 0; i < V; i++)
        x[i] = i * 0.3;
    ref_softmax(x, V, want);
    for (int i = 0; i < V; i++) /* within ~4.5 sigma of the binomial */
        CHECK_NEAR((double)count[i] / N, want[i], 4.5 * sqrt(want[i] * (1 - want[i]) / N));
    ia_sampler_free(a);
    ia_sampler_free(b);
    ia_sampler_free(c);
}

TEST(sampler_rejects_bad_parameters) {
    ia_sampler *s = NULL;
    ia_sampling p = ia_sampling_default();
    p.top_p = 0;
    CHECK_ERR(ia_sampler_create(&p, 10, &s), IA_EINVAL, "top_p");
    p = ia_sampling_default();
    p.temperature = -1;
    CHECK_ERR(ia_sampler_create(&p, 10, &s), IA_EINVAL, "temperature");
    p = ia_sampling_default();
    p.min_p = 2;
    CHECK_ERR(ia_sampler_create(&p, 10, &s), IA_EINVAL, "min_p");
    p = ia_sampling_default();
    p.repeat_penalty = 0;
    CHECK_ERR(ia_sampler_create(&p, 10, &s), IA_EINVAL, "repeat penalty");
    CHECK(s == NULL);
}

/* ---- stop strings ---------------------------------------------------------------------- */

/* Feeds pieces and returns everything released (flushing unless stopped). */
static char *run_stops(const char *const *stops, size_t n_stops, const char *const *pieces,
                       bool *stopped) {
    stop_matcher m;
    stop_matcher_init(&m, stops, n_stops);
    char out[512] = "";
    for (size_t i = 0; pieces[i] && !m.stopped; i++) {
        const char *e;
        size_t el;
        CHECK_OK(stop_matcher_push(&m, pieces[i], strlen(pieces[i]), &e, &el));
        /* Released text never shows the start of a stop string that might follow. */
        strncat(out, e, el);
    }
    if (!m.stopped) {
        const char *e;
        size_t el;
        stop_matcher_flush(&m, &e, &el);
        strncat(out, e, el);
    }
    *stopped = m.stopped;
    CHECK_EQ_INT(stop_matcher_text_len(&m), strlen(out));
    stop_matcher_free(&m);
    return strdup(out);
}

TEST(stop_string_across_token_boundaries) {
    const char *stops[] = {"\nUser:", "END"};
    bool stopped;
    char *t = run_stops(stops, 2, (const char *[]){"Hello", " there\n", "Us", "er", ": more", NULL},
                        &stopped);
    CHECK(stopped);
    CHECK_MSG(strcmp(t, "Hello there") == 0, "got '%s'", t);
    free(t);
    /* A stop string inside one piece, with text after it. */
    t = run_stops(stops, 2, (const char *[]){"abcENDdef", NULL}, &stopped);
    CHECK(stopped);
    CHECK(strcmp(t, "abc") == 0);
    free(t);
    /* A false start is released once it cannot match. */
    t = run_stops(stops, 2, (const char *[]){"x\nUs", "ed", NULL}, &stopped);
    CHECK(!stopped);
    CHECK(strcmp(t, "x\nUsed") == 0);
    free(t);
    /* The earliest of two stop strings wins. */
    t = run_stops(stops, 2, (const char *[]){"aEN", "D\nUser:", NULL}, &stopped);
    CHECK(stopped);
    CHECK(strcmp(t, "a") == 0);
    free(t);
}

TEST(stop_matcher_holds_back_only_prefixes) {
    const char *stops[] = {"</s>"};
    stop_matcher m;
    stop_matcher_init(&m, stops, 1);
    const char *e;
    size_t el;
    CHECK_OK(stop_matcher_push(&m, "ab<", 3, &e, &el));
    CHECK_EQ_INT(el, 2); /* "<" waits */
    CHECK_OK(stop_matcher_push(&m, "/", 1, &e, &el));
    CHECK_EQ_INT(el, 0);
    CHECK_OK(stop_matcher_push(&m, "x", 1, &e, &el));
    CHECK_EQ_INT(el, 3);
    CHECK(memcmp(e, "</x", 3) == 0);
    CHECK(!m.stopped);
    stop_matcher_free(&m);
}

/* ---- chat templates ---------------------------------------------------------------------- */

TEST(chat_templates_match_transformers) {
    json_t *root = NULL;
    CHECK_OK(ia_json_load_file(test_source_path("tests/fixtures/decoders/chat_templates.json"),
                               1 << 22, &root));
    if (!root)
        return;
    json_t *fams = json_object_get(root, "families");
    size_t fi, checked = 0;
    json_t *fam;
    bool seen[IA_CHAT_FAMILY_COUNT] = {0};
    json_array_foreach(fams, fi, fam) {
        const char *name = json_string_value(json_object_get(fam, "family"));
        ia_chat_template *t = NULL;
        CHECK_OK(ia_chat_template_detect(json_string_value(json_object_get(fam, "template")),
                                         json_string_value(json_object_get(fam, "bos_token")),
                                         json_string_value(json_object_get(fam, "eos_token")), &t));
        if (!t)
            continue;
        CHECK_MSG(strcmp(ia_chat_family_name(ia_chat_template_family(t)), name) == 0,
                  "template of %s detected as %s", name,
                  ia_chat_family_name(ia_chat_template_family(t)));
        seen[ia_chat_template_family(t)] = true;
        size_t ci;
        json_t *c;
        json_array_foreach(json_object_get(fam, "cases"), ci, c) {
            json_t *msgs = json_object_get(c, "messages");
            ia_chat_message m[8];
            size_t n = json_array_size(msgs);
            for (size_t i = 0; i < n && i < 8; i++) {
                m[i].role = json_string_value(json_object_get(json_array_get(msgs, i), "role"));
                m[i].content =
                    json_string_value(json_object_get(json_array_get(msgs, i), "content"));
            }
            bool gen = json_is_true(json_object_get(c, "add_generation_prompt"));
            char *text = NULL;
            ia_status st = ia_chat_template_render(t, m, n, gen, &text);
            const char *want = json_string_value(json_object_get(c, "expected"));
            if (want) {
                CHECK_MSG(st == IA_OK && strcmp(text, want) == 0,
                          "%s case %zu: got\n'%s'\nwanted\n'%s' (%s)", name, ci,
                          text ? text : "(error)", want, ia_error_message());
            } else {
                CHECK_MSG(st == IA_EINVAL, "%s case %zu: transformers refused it, we did not", name,
                          ci);
            }
            checked++;
            free(text);
        }
        ia_chat_template_free(t);
    }
    for (int f = 0; f < IA_CHAT_FAMILY_COUNT; f++)
        CHECK_MSG(seen[f], "family %s not in the fixture", ia_chat_family_name(f));
    CHECK(checked >= 40);
    json_decref(root);
}

TEST(chat_template_errors) {
    ia_chat_template *t = NULL;
    CHECK_ERR(ia_chat_template_detect("{{ messages[0]['content'] }}<|weird|>", "", "", &t),
              IA_EUNSUPPORTED, "looked for");
    CHECK(t == NULL);
    CHECK_ERR(ia_chat_template_detect("", "", "", &t), IA_ENOTFOUND, "no chat template");
    /* Mistral refuses two user turns in a row. */
    CHECK_OK(ia_chat_template_detect("{{ bos_token }}[INST] ", "<s>", "</s>", &t));
    ia_chat_message m[2] = {{"user", "a"}, {"user", "b"}};
    char *text = NULL;
    CHECK_ERR(ia_chat_template_render(t, m, 2, true, &text), IA_EINVAL, "alternate");
    CHECK(text == NULL);
    CHECK(strcmp(ia_chat_template_end_of_turn(t), "</s>") == 0);
    ia_chat_template_free(t);
    /* ChatML without a default system prompt adds none. */
    CHECK_OK(ia_chat_template_detect("{{'<|im_start|>' + message['role'] + '\\n'}}", "", "", &t));
    CHECK_OK(ia_chat_template_render(t, m, 1, true, &text));
    CHECK(text && strcmp(text, "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n") == 0);
    CHECK(strcmp(ia_chat_template_end_of_turn(t), "<|im_end|>") == 0);
    free(text);
    ia_chat_template_free(t);
}

#ifndef IA_GENERATE_TEST_UNIT_ONLY
/* ---- real (tiny) models --------------------------------------------------------------- */

static const char *const archs[] = {"gpt2", "llama", "mistral", "qwen2"};

static json_t *load_expected(const char *arch) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/fixtures/decoders/%s/expected.json", arch);
    json_t *e = NULL;
    CHECK_OK(ia_json_load_file(test_source_path(rel), 64 << 20, &e));
    return e;
}

static ia_generator *load_model(const char *arch, bool gguf, const ia_generator_options *o) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/fixtures/decoders/%s%s", arch, gguf ? "/model.gguf" : "");
    ia_generator *g = NULL;
    ia_status st = ia_generator_load(test_source_path(rel), o, &g);
    CHECK_MSG(st == IA_OK, "loading %s: %s", rel, ia_error_message());
    return g;
}

typedef struct collect {
    char buf[8192];
    size_t len;
    int calls, stop_after; /* stop_after > 0: return false on that call */
} collect;

static bool collect_text(void *ctx, const char *piece, size_t len) {
    collect *c = ctx;
    CHECK(len > 0);
    CHECK(ia_utf8_valid(piece, len, NULL));
    if (c->len + len < sizeof c->buf) {
        memcpy(c->buf + c->len, piece, len);
        c->len += len;
        c->buf[c->len] = '\0';
    }
    return ++c->calls != c->stop_after;
}

static bool ids_equal(const int32_t *a, size_t na, json_t *arr) {
    if (na != json_array_size(arr))
        return false;
    for (size_t i = 0; i < na; i++)
        if (a[i] != json_integer_value(json_array_get(arr, i)))
            return false;
    return true;
}

/* 64-token greedy continuations equal transformers' model.generate, from the
 * HF directory and from our converted GGUF; streaming gives the same text. */
static void check_greedy(bool gguf) {
    for (size_t a = 0; a < sizeof archs / sizeof archs[0]; a++) {
        json_t *e = load_expected(archs[a]);
        ia_generator *g = e ? load_model(archs[a], gguf, NULL) : NULL;
        if (!g) {
            json_decref(e);
            continue;
        }
        size_t pi;
        json_t *p;
        json_array_foreach(json_object_get(e, "prompts"), pi, p) {
            const char *text = json_string_value(json_object_get(p, "text"));
            int32_t *ids = NULL;
            size_t n = 0;
            CHECK_OK(ia_generator_tokenize(g, text, strlen(text), false, &ids, &n));
            CHECK_MSG(ids_equal(ids, n, json_object_get(p, "ids")), "%s%s prompt %zu: token ids",
                      archs[a], gguf ? " (gguf)" : "", pi);
            free(ids);
            ia_generate_request req = ia_generate_request_default();
            req.prompt = text;
            req.max_tokens = 64;
            req.sampling.temperature = 0;
            collect c = {.len = 0};
            req.on_text = collect_text;
            req.ctx = &c;
            ia_generate_result r;
            ia_status st = ia_generator_generate(g, &req, &r);
            CHECK_MSG(st == IA_OK, "%s prompt %zu: %s", archs[a], pi, ia_error_message());
            json_t *want = json_object_get(p, "greedy");
            bool same = st == IA_OK && ids_equal(r.tokens, r.n_tokens, want);
            CHECK_MSG(same, "%s%s prompt %zu: greedy tokens differ from transformers (%zu vs %zu)",
                      archs[a], gguf ? " (gguf)" : "", pi, r.n_tokens, json_array_size(want));
            const char *finish = json_string_value(json_object_get(p, "finish"));
            if (same)
                CHECK(strcmp(ia_finish_reason_name(r.finish), finish) == 0);
            CHECK_EQ_INT(c.len, r.text_len);
            CHECK(r.text && strcmp(c.buf, r.text) == 0);
            ia_generate_result_free(&r);
        }
        ia_generator_free(g);
        json_decref(e);
    }
}

TEST(greedy_matches_transformers_safetensors) { check_greedy(false); }
TEST(greedy_matches_transformers_gguf) { check_greedy(true); }

/* The GGUF gives its safetensors' logits bit for bit (tests/models/
 * test_decoder.c checks the logits themselves), so sampling with the same
 * seed draws the same tokens: at temperature 1.5 with top-p the draws sit
 * near many probability thresholds, where a last-bit difference in a logit
 * could move one. Token ids and the text must be identical too. */
TEST(gguf_and_safetensors_sample_the_same) {
    for (size_t a = 0; a < sizeof archs / sizeof archs[0]; a++) {
        json_t *e = load_expected(archs[a]);
        ia_generator *hf = e ? load_model(archs[a], false, NULL) : NULL;
        ia_generator *gg = hf ? load_model(archs[a], true, NULL) : NULL;
        size_t pi;
        json_t *p;
        json_array_foreach(gg ? json_object_get(e, "prompts") : NULL, pi, p) {
            for (uint64_t seed = 1; seed <= 4; seed++) {
                ia_generate_request req = ia_generate_request_default();
                req.prompt = json_string_value(json_object_get(p, "text"));
                req.max_tokens = 48;
                req.sampling.temperature = 1.5f;
                req.sampling.top_p = 0.95f;
                req.sampling.seed = seed;
                ia_generate_result x, y;
                CHECK_OK(ia_generator_generate(hf, &req, &x));
                CHECK_OK(ia_generator_generate(gg, &req, &y));
                bool same = x.n_tokens == y.n_tokens &&
                            memcmp(x.tokens, y.tokens, x.n_tokens * sizeof *x.tokens) == 0 &&
                            x.text_len == y.text_len && memcmp(x.text, y.text, x.text_len) == 0;
                CHECK_MSG(same, "%s prompt %zu seed %llu: GGUF and safetensors sampled differently",
                          archs[a], pi, (unsigned long long)seed);
                ia_generate_result_free(&x);
                ia_generate_result_free(&y);
            }
        }
        ia_generator_free(hf);
        ia_generator_free(gg);
        json_decref(e);
    }
}

TEST(stop_string_on_a_real_model) {
    ia_generator *g = load_model("llama", false, NULL);
    if (!g)
        return;
    ia_generate_request req = ia_generate_request_default();
    req.prompt = "The quick brown fox";
    req.max_tokens = 64;
    req.sampling.temperature = 0;
    ia_generate_result full;
    CHECK_OK(ia_generator_generate(g, &req, &full));
    /* A stop string taken from the middle of the greedy text: 3 bytes at
     * byte 20 (moved to a character boundary). */
    size_t at = 20;
    while (at < full.text_len && ((unsigned char)full.text[at] & 0xC0) == 0x80)
        at++;
    char stop[8] = {0};
    size_t sl = 0;
    for (size_t i = at; i < full.text_len && sl < 3; i++)
        stop[sl++] = full.text[i];
    while (sl < full.text_len - at && ((unsigned char)full.text[at + sl] & 0xC0) == 0x80 &&
           sl < 7) {
        stop[sl] = full.text[at + sl];
        sl++;
    }
    const char *stops[] = {stop};
    req.stop = stops;
    req.n_stop = 1;
    collect c = {.len = 0};
    req.on_text = collect_text;
    req.ctx = &c;
    ia_generate_result r;
    CHECK_OK(ia_generator_generate(g, &req, &r));
    char *first = strstr(full.text, stop);
    size_t want = first ? (size_t)(first - full.text) : 0;
    CHECK_EQ_INT(r.finish, IA_FINISH_STOP);
    CHECK_EQ_INT(r.text_len, want);
    CHECK(strncmp(r.text, full.text, want) == 0);
    CHECK(strcmp(c.buf, r.text) == 0);
    CHECK(r.n_tokens < full.n_tokens);
    ia_generate_result_free(&r);
    /* The callback can end generation. */
    c = (collect){.stop_after = 2};
    req.n_stop = 0;
    CHECK_OK(ia_generator_generate(g, &req, &r));
    CHECK_EQ_INT(r.finish, IA_FINISH_CANCELLED);
    CHECK_EQ_INT(c.calls, 2);
    ia_generate_result_free(&r);
    ia_generate_result_free(&full);
    ia_generator_free(g);
}

TEST(seeded_sampling_is_reproducible_on_a_model) {
    ia_generator *g = load_model("qwen2", false, NULL);
    if (!g)
        return;
    ia_generate_request req = ia_generate_request_default();
    req.prompt = "Once upon a time";
    req.max_tokens = 32;
    req.sampling.temperature = 1.0f;
    req.sampling.top_k = 50;
    req.sampling.top_p = 0.95f;
    req.sampling.seed = 7;
    ia_generate_result a, b, c;
    CHECK_OK(ia_generator_generate(g, &req, &a));
    CHECK_OK(ia_generator_generate(g, &req, &b));
    req.sampling.seed = 8;
    CHECK_OK(ia_generator_generate(g, &req, &c));
    CHECK(a.n_tokens == b.n_tokens && memcmp(a.tokens, b.tokens, a.n_tokens * 4) == 0);
    CHECK(a.n_tokens != c.n_tokens || memcmp(a.tokens, c.tokens, a.n_tokens * 4) != 0);
    ia_generate_result_free(&a);
    ia_generate_result_free(&b);
    ia_generate_result_free(&c);
    ia_generator_free(g);
}

TEST(context_overflow_is_a_clear_error) {
    ia_generator_options o = ia_generator_options_default();
    o.context = 8;
    ia_generator *g = load_model("gpt2", false, &o);
    if (!g)
        return;
    CHECK_EQ_INT(ia_generator_context(g), 8);
    ia_generate_request req = ia_generate_request_default();
    req.prompt = "Once upon a time, in a small village by the sea";
    req.sampling.temperature = 0;
    ia_generate_result r;
    CHECK_ERR(ia_generator_generate(g, &req, &r), IA_ERANGE, "context holds 8");
    CHECK(r.prompt_tokens > 8);
    ia_generate_result_free(&r);
    /* A prompt that fits: generation stops when the context is full. */
    req.prompt = "The";
    CHECK_OK(ia_generator_generate(g, &req, &r));
    CHECK_EQ_INT(r.prompt_tokens + r.n_tokens, 9);
    CHECK_EQ_INT(r.finish, IA_FINISH_LENGTH);
    ia_generate_result_free(&r);
    /* Invalid UTF-8 is refused before tokenising. */
    req.prompt = "bad \xff byte";
    CHECK_ERR(ia_generator_generate(g, &req, &r), IA_EINVAL, "UTF-8");
    ia_generate_result_free(&r);
    ia_generator_free(g);
}

TEST(cache_reuse_gives_the_same_tokens) {
    ia_generator *g = load_model("qwen2", false, NULL);
    if (!g)
        return;
    ia_generate_request req = ia_generate_request_default();
    req.sampling.temperature = 0;
    req.max_tokens = 16;
    req.raw_prompt = true;
    req.reuse_cache = true;
    req.prompt = "The quick brown fox";
    ia_generate_result a, b, fresh;
    /* One token: the cache then holds exactly the prompt (the sampled token
     * is never run), which prefixes the longer prompt below. Only a cache that
     * is a whole prefix is reused: there is no KV truncation yet. */
    req.max_tokens = 1;
    CHECK_OK(ia_generator_generate(g, &req, &a));
    req.max_tokens = 16;
    req.prompt = "The quick brown fox jumps over";
    CHECK_OK(ia_generator_generate(g, &req, &b));
    CHECK_EQ_INT(b.cached_tokens, a.prompt_tokens);
    req.reuse_cache = false;
    CHECK_OK(ia_generator_generate(g, &req, &fresh));
    CHECK_EQ_INT(fresh.cached_tokens, 0);
    CHECK(b.n_tokens == fresh.n_tokens &&
          memcmp(b.tokens, fresh.tokens, b.n_tokens * sizeof *b.tokens) == 0);
    ia_generate_result_free(&a);
    ia_generate_result_free(&b);
    ia_generate_result_free(&fresh);
    ia_generator_free(g);
}

TEST(chat_template_from_model_files) {
    static const struct {
        const char *arch;
        ia_chat_family fam;
    } want[] = {{"qwen2", IA_CHAT_CHATML}, {"llama", IA_CHAT_LLAMA3}, {"mistral", IA_CHAT_MISTRAL}};
    for (int gguf = 0; gguf < 2; gguf++)
        for (size_t i = 0; i < 3; i++) {
            ia_generator *g = load_model(want[i].arch, gguf, NULL);
            if (!g)
                continue;
            const ia_chat_template *t = ia_generator_chat_template(g);
            CHECK_MSG(t && ia_chat_template_family(t) == want[i].fam, "%s: %s", want[i].arch,
                      t ? ia_chat_family_name(ia_chat_template_family(t)) : ia_error_message());
            ia_generator_free(g);
        }
    ia_generator *g = load_model("gpt2", false, NULL);
    if (g) {
        CHECK(ia_generator_chat_template(g) == NULL);
        CHECK(strstr(ia_error_message(), "no chat template") != NULL);
        ia_generator_free(g);
    }
}

TEST(f16_kv_cache_runs) {
    ia_generator_options o = ia_generator_options_default();
    o.kv_dtype = IA_DTYPE_F16;
    o.prefill_chunk = 5; /* several prefill chunks */
    ia_generator *g = load_model("llama", false, &o);
    json_t *e = load_expected("llama");
    if (!g || !e) {
        ia_generator_free(g);
        json_decref(e);
        return;
    }
    json_t *p = json_array_get(json_object_get(e, "prompts"), 1);
    ia_generate_request req = ia_generate_request_default();
    req.prompt = json_string_value(json_object_get(p, "text"));
    req.max_tokens = 8;
    req.sampling.temperature = 0;
    ia_generate_result r;
    CHECK_OK(ia_generator_generate(g, &req, &r));
    /* f16 keys and values move logits by ~1e-3; the first tokens still agree. */
    CHECK(r.n_tokens >= 1 &&
          r.tokens[0] == json_integer_value(json_array_get(json_object_get(p, "greedy"), 0)));
    ia_generate_result_free(&r);
    ia_generator_free(g);
    json_decref(e);
}
#endif
