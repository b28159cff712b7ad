/*
 * Small tables the BPE tokenizers share: patterns (PCRE2 regexes and
 * literals, for Split pre-tokenizers and Replace normalizers), the
 * pre-tokenizer regexes known by name, the merges map, and GPT-2's
 * byte <-> character table.
 *
 * HF runs its regexes with Oniguruma; PCRE2 with UTF and UCP gives the same
 * matches for the patterns these tokenizers use (\p{L}, \p{N}, \s,
 * lookahead, (?i:...)), which the corpus parity tests check line by line.
 * One difference is patched here: Oniguruma's \s is exactly Unicode
 * White_Space, while PCRE2's \s under UCP differs at the edges (U+0085,
 * U+180E), so \s and \S are rewritten to the White_Space ranges before
 * compiling.
 * Compiled patterns are read-only; each encode call brings its own match
 * data, so matching is thread-safe.
 */
#include "tokenize_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- known regexes --------------------------------------------------------------- */

static const struct {
    const char *name;
    const char *re;
} KNOWN_REGEXES[] = {
    {"gpt2", "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"},
    {"llama3", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
               "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
    {"qwen2", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
              "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
};

const char *tok_known_regex(const char *name) {
    for (size_t i = 0; i < sizeof KNOWN_REGEXES / sizeof KNOWN_REGEXES[0]; i++)
        if (strcmp(KNOWN_REGEXES[i].name, name) == 0)
            return KNOWN_REGEXES[i].re;
    return NULL;
}

/* ---- patterns ------------------------------------------------------------------------ */

/* Unicode White_Space, which is what Oniguruma's \s matches. */
#define WHITE_SPACE                                                                      \
    "\\x{09}-\\x{0D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}" \
    "\\x{202F}\\x{205F}\\x{3000}"

/* Rewrites \s and \S as Oniguruma means them. Returns a malloc'd copy.
 * Inside a class, "\s" becomes the White_Space ranges; outside, a class of
 * them, and \S outside a class its negation. */
static char *onig_spaces(const char *re, size_t len, size_t *out_len) {
    static const char WS[] = WHITE_SPACE;
    size_t ws = sizeof WS - 1, cap;
    if (!ia_size_mul(len, ws + 4, &cap) || !ia_size_add(cap, 1, &cap))
        return NULL;
    char *out = ia_malloc(cap), *o = out;
    if (!out)
        return NULL;
    bool in_class = false;
    for (size_t i = 0; i < len; i++) {
        char c = re[i];
        if (c == '\\' && i + 1 < len) {
            char n = re[i + 1];
            i++;
            bool neg = n == 'S' && !in_class;
            if ((n == 's' || neg)) {
                if (!in_class) {
                    *o++ = '[';
                    if (neg)
                        *o++ = '^';
                }
                memcpy(o, WS, ws);
                o += ws;
                if (!in_class)
                    *o++ = ']';
            } else {
                *o++ = c;
                *o++ = n;
            }
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = true;
            *o++ = c;
            /* a leading ']' or '^]' is literal */
            if (i + 1 < len && re[i + 1] == '^')
                *o++ = re[++i];
            if (i + 1 < len && re[i + 1] == ']')
                *o++ = re[++i];
            continue;
        }
        if (c == ']' && in_class)
            in_class = false;
        *o++ = c;
    }
    *o = '\0';
    *out_len = (size_t)(o - out);
    return out;
}

ia_status tok_pattern_regex(tok_pattern *p, const char *re, size_t len, const char *what) {
    memset(p, 0, sizeof *p);
    size_t fixed_len = 0;
    char *fixed = onig_spaces(re, len, &fixed_len);
    if (!fixed)
        return IA_ENOMEM;
    int err = 0;
    PCRE2_SIZE at = 0;
    p->re = pcre2_compile((PCRE2_SPTR)fixed, fixed_len, PCRE2_UTF | PCRE2_UCP, &err, &at, NULL);
    free(fixed);
    if (!p->re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        return ia_error_set(IA_EUNSUPPORTED, "%s: regex '%.200s' does not compile (%s at %zu)",
                            what, re, (const char *)msg, (size_t)at);
    }
    /* JIT is an optimisation only: without it pcre2_match interprets. */
    (void)pcre2_jit_compile(p->re, PCRE2_JIT_COMPLETE);
    return IA_OK;
}

ia_status tok_pattern_literal(tok_pattern *p, const char *s, size_t len) {
    memset(p, 0, sizeof *p);
    if (!(p->lit = ia_strndup(s, len)))
        return IA_ENOMEM;
    p->lit_len = len;
    return IA_OK;
}

void tok_pattern_free(tok_pattern *p) {
    if (p->re)
        pcre2_code_free(p->re);
    free(p->lit);
    memset(p, 0, sizeof *p);
}

static int find_literal(const tok_pattern *p, const char *s, size_t len, size_t from, size_t *ms,
                        size_t *me) {
    if (p->lit_len == 0 || p->lit_len > len)
        return 0;
    for (size_t i = from; i + p->lit_len <= len; i++) {
        if (s[i] == p->lit[0] && memcmp(s + i, p->lit, p->lit_len) == 0) {
            *ms = i;
            *me = i + p->lit_len;
            return 1;
        }
    }
    return 0;
}

int tok_pattern_find(const tok_pattern *p, pcre2_match_data *md, const char *s, size_t len,
                     size_t from, size_t *ms, size_t *me) {
    if (!p->re)
        return find_literal(p, s, len, from, ms, me);
    int rc = pcre2_match(p->re, (PCRE2_SPTR)s, len, from, PCRE2_NO_UTF_CHECK, md, NULL);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
        rc = pcre2_match(p->re, (PCRE2_SPTR)s, len, from, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md,
                         NULL);
    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    if (rc < 0) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(rc, msg, sizeof msg);
        ia_error_set(IA_EINVAL, "tokenizer: the pre-tokenizer regex failed at byte %zu (%s)", from,
                     (const char *)msg);
        return -(int)IA_EINVAL;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    *ms = ov[0];
    *me = ov[1];
    return 1;
}

/* ---- merges ------------------------------------------------------------------------------ */

static uint64_t merge_key(int32_t a, int32_t b) {
    return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
}

static size_t merge_hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (size_t)k;
}

ia_status tok_merges_init(tok_merges *m, size_t n) {
    memset(m, 0, sizeof *m);
    size_t cap = 16;
    while (cap < n * 2 + 1)
        cap *= 2;
    m->keys = ia_malloc_array(cap, sizeof *m->keys);
    m->ranks = ia_malloc_array(cap, sizeof *m->ranks);
    m->ids = ia_malloc_array(cap, sizeof *m->ids);
    if (!m->keys || !m->ranks || !m->ids)
        return IA_ENOMEM;
    memset(m->keys, 0xFF, cap * sizeof *m->keys);
    m->mask = cap - 1;
    return IA_OK;
}

void tok_merges_put(tok_merges *m, int32_t a, int32_t b, uint32_t rank, int32_t id) {
    uint64_t k = merge_key(a, b);
    for (size_t i = merge_hash(k) & m->mask;; i = (i + 1) & m->mask) {
        if (m->keys[i] == UINT64_MAX)
            m->n++;
        else if (m->keys[i] != k)
            continue;
        m->keys[i] = k;
        m->ranks[i] = rank;
        m->ids[i] = id;
        return;
    }
}

bool tok_merges_get(const tok_merges *m, int32_t a, int32_t b, uint32_t *rank, int32_t *id) {
    if (!m->keys)
        return false;
    uint64_t k = merge_key(a, b);
    for (size_t i = merge_hash(k) & m->mask;; i = (i + 1) & m->mask) {
        if (m->keys[i] == UINT64_MAX)
            return false;
        if (m->keys[i] == k) {
            *rank = m->ranks[i];
            *id = m->ids[i];
            return true;
        }
    }
}

void tok_merges_free(tok_merges *m) {
    free(m->keys);
    free(m->ranks);
    free(m->ids);
    memset(m, 0, sizeof *m);
}

/* ---- GPT-2's byte table --------------------------------------------------------------------- */

/* Printable Latin-1 bytes stand for themselves; the other 68 (0x00-0x20,
 * 0x7F-0xA0, 0xAD) map, in byte order, to U+0100 onwards (bytes_to_unicode
 * in GPT-2's encoder.py). */
int32_t tok_byte_to_cp(unsigned char b) {
    if (b <= 0x20)
        return 256 + b;
    if (b >= 0x7F && b <= 0xA0)
        return 256 + 33 + (b - 0x7F);
    if (b == 0xAD)
        return 256 + 67;
    return b;
}

int tok_cp_to_byte(int32_t cp) {
    if (cp < 0 || cp >= 256 + 68)
        return -1;
    if (cp >= 256) {
        int32_t n = cp - 256;
        return n < 33 ? n : n < 67 ? 0x7F + (n - 33) : 0xAD;
    }
    return tok_byte_to_cp((unsigned char)cp) == cp ? cp : -1;
}
