/*
 * Chat templates: a conversation as the text a chat model was trained on.
 *
 * HF models ship a Jinja template (tokenizer_config.json's chat_template, a
 * chat_template.jinja file, or a GGUF's tokenizer.chat_template). Rather than
 * embed a Jinja interpreter, we recognise which family a template belongs to
 * by markers only that family uses, and render with a small C formatter per
 * family that reproduces what transformers' apply_chat_template prints for
 * the family's published templates (tests/fixtures/decoders/chat_templates.json
 * holds transformers' renderings; the tests compare byte for byte).
 *
 * Families are rows in a table: the markers that identify them (checked in
 * table order, most specific first), the text that ends an assistant turn,
 * and the formatter. One family-specific detail is read from the template
 * itself: a ChatML template's default system prompt (Qwen's "You are a
 * helpful assistant."), used when the conversation brings none.
 */
#include <stdlib.h>
#include <string.h>

#include "ia/runtime.h"

struct ia_chat_template {
    ia_chat_family family;
    char *bos, *eos;
    char *default_system; /* ChatML: the template's own system prompt, or NULL */
};

/* A growing output string. */
typedef struct sbuf {
    char *s;
    size_t len, cap;
    bool failed;
} sbuf;

static void sb_addn(sbuf *b, const char *s, size_t n) {
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_add(sbuf *b, const char *s) { sb_addn(b, s, strlen(s)); }

/* Jinja's trim and Python's str.strip(): whitespace off both ends. */
static bool is_ws(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

static void sb_add_stripped(sbuf *b, const char *s) {
    size_t n = strlen(s);
    while (n && is_ws((unsigned char)s[n - 1]))
        n--;
    while (n && is_ws((unsigned char)*s)) {
        s++;
        n--;
    }
    sb_addn(b, s, n);
}

/* ---- the shared rule of alternating turns ------------------------------------------- */

/* Llama-2, Mistral and Gemma: an optional system message first, then user
 * and assistant strictly alternating, starting with the user. Returns the
 * index of the first non-system message, or SIZE_MAX with the error set. */
static size_t check_alternating(const ia_chat_message *m, size_t n, const char *family) {
    size_t first = n && strcmp(m[0].role, "system") == 0 ? 1 : 0;
    for (size_t i = first; i < n; i++) {
        const char *want = (i - first) % 2 == 0 ? "user" : "assistant";
        if (strcmp(m[i].role, want) != 0) {
            ia_error_set(IA_EINVAL,
                         "chat template %s: message %zu has role '%s' where '%s' was expected "
                         "(after an optional system message, roles must alternate "
                         "user/assistant)",
                         family, i, m[i].role, want);
            return SIZE_MAX;
        }
    }
    return first;
}

/* ---- formatters ----------------------------------------------------------------------- */

typedef ia_status (*render_fn)(const ia_chat_template *t, const ia_chat_message *m, size_t n,
                               bool gen, sbuf *b);

static ia_status render_chatml(const ia_chat_template *t, const ia_chat_message *m, size_t n,
                               bool gen, sbuf *b) {
    if (n && strcmp(m[0].role, "system") != 0 && t->default_system) {
        sb_add(b, "<|im_start|>system\n");
        sb_add(b, t->default_system);
        sb_add(b, "<|im_end|>\n");
    }
    for (size_t i = 0; i < n; i++) {
        sb_add(b, "<|im_start|>");
        sb_add(b, m[i].role);
        sb_add(b, "\n");
        sb_add(b, m[i].content);
        sb_add(b, "<|im_end|>\n");
    }
    if (gen)
        sb_add(b, "<|im_start|>assistant\n");
    return IA_OK;
}

static ia_status render_llama3(const ia_chat_template *t, const ia_chat_message *m, size_t n,
                               bool gen, sbuf *b) {
    for (size_t i = 0; i < n; i++) {
        if (i == 0)
            sb_add(b, t->bos);
        sb_add(b, "<|start_header_id|>");
        sb_add(b, m[i].role);
        sb_add(b, "<|end_header_id|>\n\n");
        sb_add_stripped(b, m[i].content);
        sb_add(b, "<|eot_id|>");
    }
    if (gen)
        sb_add(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    return IA_OK;
}

static ia_status render_llama2(const ia_chat_template *t, const ia_chat_message *m, size_t n,
                               bool gen, sbuf *b) {
    size_t first = check_alternating(m, n, "llama2");
    if (first == SIZE_MAX)
        return IA_EINVAL;
    for (size_t i = first; i < n; i++) {
        sbuf content = {0};
        if (i == first && first == 1) {
            sb_add(&content, "<<SYS>>\n");
            sb_add(&content, m[0].content);
            sb_add(&content, "\n<</SYS>>\n\n");
        }
        sb_add(&content, m[i].content);
        if (content.failed) {
            free(content.s);
            return IA_ENOMEM;
        }
        if (strcmp(m[i].role, "user") == 0) {
            sb_add(b, t->bos);
            sb_add(b, "[INST] ");
            sb_add_stripped(b, content.s);
            sb_add(b, " [/INST]");
        } else {
            sb_add(b, " ");
            sb_add_stripped(b, content.s);
            sb_add(b, " ");
            sb_add(b, t->eos);
        }
        free(content.s);
    }
    (void)gen; /* the Llama-2 template has no generation prompt: [/INST] is it */
    return IA_OK;
}

static ia_status render_mistral(const ia_chat_template *t, const ia_chat_message *m, size_t n,
                                bool gen, sbuf *b) {
    size_t first = check_alternating(m, n, "mistral");
    if (first == SIZE_MAX)
        return IA_EINVAL;
    sb_add(b, t->bos);
    for (size_t i = first; i < n; i++) {
        if (strcmp(m[i].role, "user") == 0) {
            sb_add(b, "[INST] ");
            if (i == first && first == 1) {
                sb_add(b, m[0].content);
                sb_add(b, "\n\n");
            }
            sb_add(b, m[i].content);
            sb_add(b, " [/INST]");
        } else {
            sb_add(b, m[i].content);
            sb_add(b, t->eos);
        }
    }
    (void)gen;
    return IA_OK;
}

static ia_status render_zephyr(const ia_chat_template *t, const ia_chat_message *m, size_t n,
                               bool gen, sbuf *b) {
    for (size_t i = 0; i < n; i++) {
        const char *r = m[i].role;
        if (strcmp(r, "user") == 0 || strcmp(r, "system") == 0 || strcmp(r, "assistant") == 0) {
            sb_add(b, "<|");
            sb_add(b, r);
            sb_add(b, "|>\n");
            sb_add(b, m[i].content);
            sb_add(b, t->eos);
            sb_add(b, "\n");
        }
        if (i + 1 == n && gen)
            sb_add(b, "<|assistant|>\n");
    }
    return IA_OK;
}

static ia_status render_gemma(const ia_chat_template *t, const ia_chat_message *m, size_t n,
                              bool gen, sbuf *b) {
    size_t first = check_alternating(m, n, "gemma");
    if (first == SIZE_MAX)
        return IA_EINVAL;
    sb_add(b, t->bos);
    for (size_t i = first; i < n; i++) {
        bool user = strcmp(m[i].role, "user") == 0;
        sb_add(b, "<start_of_turn>");
        sb_add(b, user ? "user" : "model");
        sb_add(b, "\n");
        if (i == first && first == 1) {
            sb_add(b, m[0].content);
            sb_add(b, "\n\n");
        }
        sb_add_stripped(b, m[i].content);
        sb_add(b, "<end_of_turn>\n");
    }
    if (gen)
        sb_add(b, "<start_of_turn>model\n");
    return IA_OK;
}

/* ---- the table -------------------------------------------------------------------------- */

typedef struct family_row {
    ia_chat_family family;
    const char *name;
    const char *markers[3];  /* all must appear in the template */
    const char *end_of_turn; /* NULL: the EOS string */
    render_fn render;
} family_row;

/* Most specific first: Llama-2 and Mistral share [INST]; Llama-2 adds <<SYS>>. */
static const family_row families[] = {
    {IA_CHAT_CHATML, "chatml", {"<|im_start|>", NULL}, "<|im_end|>", render_chatml},
    {IA_CHAT_LLAMA3,
     "llama3",
     {"<|start_header_id|>", "<|eot_id|>", NULL},
     "<|eot_id|>",
     render_llama3},
    {IA_CHAT_GEMMA, "gemma", {"<start_of_turn>", NULL}, "<end_of_turn>", render_gemma},
    {IA_CHAT_ZEPHYR, "zephyr", {"<|user|>", "<|assistant|>", NULL}, NULL, render_zephyr},
    {IA_CHAT_LLAMA2, "llama2", {"[INST]", "<<SYS>>", NULL}, NULL, render_llama2},
    {IA_CHAT_MISTRAL, "mistral", {"[INST]", NULL}, NULL, render_mistral},
};
#define N_FAMILIES (sizeof families / sizeof families[0])

static const family_row *row_of(ia_chat_family f) {
    for (size_t i = 0; i < N_FAMILIES; i++)
        if (families[i].family == f)
            return &families[i];
    return NULL;
}

const char *ia_chat_family_name(ia_chat_family family) {
    const family_row *r = row_of(family);
    return r ? r->name : "unknown";
}

/* The literal after "<|im_start|>system\n" up to "<|im_end|>" inside a
 * Jinja string, with the template's \n escapes undone; NULL when the
 * template has no such default. */
static char *chatml_default_system(const char *jinja) {
    static const char *const openers[] = {"<|im_start|>system\\n", "<|im_start|>system\n"};
    for (size_t k = 0; k < 2; k++) {
        const char *p = strstr(jinja, openers[k]);
        if (!p)
            continue;
        p += strlen(openers[k]);
        const char *end = strstr(p, "<|im_end|>");
        if (!end)
            return NULL;
        /* A Jinja expression or string break inside means it is not a literal. */
        for (const char *q = p; q < end; q++)
            if (*q == '\'' || *q == '"' || *q == '{' || *q == '}' || *q == '+')
                return NULL;
        if (end == p)
            return NULL;
        char *out = ia_malloc(end - p + 1);
        if (!out)
            return NULL;
        size_t o = 0;
        for (const char *q = p; q < end; q++) {
            if (q[0] == '\\' && q + 1 < end && q[1] == 'n') {
                out[o++] = '\n';
                q++;
            } else {
                out[o++] = *q;
            }
        }
        out[o] = '\0';
        return out;
    }
    return NULL;
}

ia_status ia_chat_template_detect(const char *jinja, const char *bos, const char *eos,
                                  ia_chat_template **out) {
    *out = NULL;
    if (!jinja || !*jinja)
        return ia_error_set(IA_ENOTFOUND, "the model has no chat template");
    const family_row *hit = NULL;
    for (size_t i = 0; i < N_FAMILIES && !hit; i++) {
        bool all = true;
        for (size_t k = 0; k < 3 && families[i].markers[k]; k++)
            all = all && strstr(jinja, families[i].markers[k]) != NULL;
        if (all)
            hit = &families[i];
    }
    if (!hit)
        return ia_error_set(IA_EUNSUPPORTED,
                            "unknown chat template: looked for the markers of ChatML "
                            "(<|im_start|>), Llama-3 (<|start_header_id|>, <|eot_id|>), Gemma "
                            "(<start_of_turn>), Zephyr (<|user|>, <|assistant|>), Llama-2 ([INST], "
                            "<<SYS>>) and Mistral ([INST]) and found none");
    ia_chat_template *t = ia_calloc(1, sizeof *t);
    if (!t)
        return ia_error_set(IA_ENOMEM, "chat template: out of memory");
    t->family = hit->family;
    t->bos = ia_strdup(bos ? bos : "");
    t->eos = ia_strdup(eos ? eos : "");
    if (hit->family == IA_CHAT_CHATML)
        t->default_system = chatml_default_system(jinja);
    if (!t->bos || !t->eos) {
        ia_chat_template_free(t);
        return ia_error_set(IA_ENOMEM, "chat template: out of memory");
    }
    *out = t;
    return IA_OK;
}

void ia_chat_template_free(ia_chat_template *t) {
    if (!t)
        return;
    free(t->bos);
    free(t->eos);
    free(t->default_system);
    free(t);
}

ia_chat_family ia_chat_template_family(const ia_chat_template *t) { return t->family; }

const char *ia_chat_template_end_of_turn(const ia_chat_template *t) {
    const family_row *r = row_of(t->family);
    return r && r->end_of_turn ? r->end_of_turn : t->eos;
}

ia_status ia_chat_template_render(const ia_chat_template *t, const ia_chat_message *msgs, size_t n,
                                  bool add_generation_prompt, char **out) {
    *out = NULL;
    for (size_t i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content)
            return ia_error_set(IA_EINVAL, "chat message %zu has no %s", i,
                                msgs[i].role ? "content" : "role");
    sbuf b = {0};
    sb_add(&b, ""); /* an empty conversation renders as "" rather than NULL */
    ia_status st = row_of(t->family)->render(t, msgs, n, add_generation_prompt, &b);
    if (st == IA_OK && b.failed)
        st = ia_error_set(IA_ENOMEM, "chat template: out of memory rendering %zu messages", n);
    if (st != IA_OK) {
        free(b.s);
        return st;
    }
    *out = b.s;
    return IA_OK;
}
