/*
 * Encoding: text -> ids, the way HF `tokenizers` does it for BERT-family
 * tokenizers.
 *
 * The steps follow HF's order: (1) split the raw text around added tokens
 * that match unnormalised text, (2) normalise each remaining piece
 * (BertNormalizer: clean, pad CJK, strip accents, lowercase), (3) split those
 * around added tokens that match normalised text, (4) pre-tokenise
 * (whitespace splits, punctuation stands alone), (5) WordPiece each word with
 * greedy longest-match-first, (6) truncate, apply the post-processor's
 * template, pad.
 *
 * Everything a call needs lives in its own buffers (the tokenizer is only
 * read), so calls may run concurrently. Work is linear in the input: one
 * pass to normalise, one to split words, and WordPiece's candidate
 * substrings are bounded by the longest vocabulary entry, so a long word does
 * not cost quadratic time. Buffers grow geometrically; nothing is allocated
 * per character.
 */
#include "bpe.h"
#include "tokenize_internal.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---- growable buffers --------------------------------------------------------- */

typedef struct text_buf {
    char *p;
    size_t n, cap;
} text_buf;

static ia_status text_reserve(text_buf *b, size_t extra) {
    if (b->cap - b->n >= extra)
        return IA_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->n < extra) {
        if (!ia_size_mul(cap, 2, &cap))
            return ia_error_set(IA_ENOMEM, "tokenizer: text too large");
    }
    char *p = realloc(b->p, cap);
    if (!p)
        return ia_error_set(IA_ENOMEM, "tokenizer: out of memory for %zu bytes", cap);
    b->p = p;
    b->cap = cap;
    return IA_OK;
}

/* Token ids of one sequence, with their strings when asked for. */
typedef struct seq_buf {
    int32_t *ids;
    const char **strs;
    size_t n, cap;
    bool want_strs;
    /* copies of matched added-token text (HF reports the matched slice,
     * stripped spaces and normalisation included, as the token string) */
    char **owned;
    size_t n_owned;
} seq_buf;

static ia_status seq_push(seq_buf *s, int32_t id, const char *str) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        int32_t *ids = ia_realloc_array(s->ids, cap, sizeof *ids);
        if (!ids)
            return IA_ENOMEM;
        s->ids = ids;
        if (s->want_strs) {
            const char **strs = ia_realloc_array((void *)s->strs, cap, sizeof *strs);
            if (!strs)
                return IA_ENOMEM;
            s->strs = strs;
        }
        s->cap = cap;
    }
    s->ids[s->n] = id;
    if (s->want_strs)
        s->strs[s->n] = str;
    s->n++;
    return IA_OK;
}

/* Pushes an added token whose string is the matched text s[0..len). */
static ia_status seq_push_match(seq_buf *s, int32_t id, const char *text, size_t len) {
    if (!s->want_strs)
        return seq_push(s, id, NULL);
    char **owned = ia_realloc_array(s->owned, s->n_owned + 1, sizeof *owned);
    if (!owned)
        return IA_ENOMEM;
    s->owned = owned;
    if (!(owned[s->n_owned] = ia_strndup(text, len)))
        return IA_ENOMEM;
    return seq_push(s, id, owned[s->n_owned++]);
}

static void seq_free(seq_buf *s) {
    for (size_t i = 0; i < s->n_owned; i++)
        free(s->owned[i]);
    free(s->owned);
    free(s->ids);
    free((void *)s->strs);
}

/* ---- normalisation -------------------------------------------------------------- */

static void put_cp(text_buf *b, int32_t cp) { b->n += (size_t)tok_utf8_encode(cp, b->p + b->n); }

static void put_stripped_lowered(const tok_bert_norm *f, text_buf *b, int32_t cp) {
    int32_t parts[4];
    int n = 1;
    parts[0] = cp;
    if (f->strip_accents)
        n = tok_char_strip(cp, parts);
    for (int i = 0; i < n; i++) {
        if (!f->lowercase) {
            put_cp(b, parts[i]);
            continue;
        }
        int32_t low[3];
        int k = tok_char_lower(parts[i], low);
        for (int j = 0; j < k; j++)
            put_cp(b, low[j]);
    }
}

/* Appends the BertNormalizer form of text to b. A character grows to at most
 * 2 pad spaces + 4 decomposed code points x 3 lowercase code points x 4
 * bytes, hence the 64 bytes reserved per character. */
static ia_status normalize_bert(const tok_bert_norm *f, const char *text, size_t len, text_buf *b) {
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        ia_status st = text_reserve(b, 64);
        if (st)
            return st;
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            if (f->clean_text) {
                if (c == '\t' || c == '\n' || c == '\r') {
                    b->p[b->n++] = ' ';
                    continue;
                }
                if (c < 0x20 || c == 0x7F)
                    continue; /* NUL and the C0 controls (including \v \f) */
            }
            if (f->lowercase && c >= 'A' && c <= 'Z')
                c += 'a' - 'A';
            b->p[b->n++] = (char)c;
            continue;
        }
        int32_t cp;
        i += (size_t)tok_utf8_decode(s + i, &cp);
        unsigned cls = tok_char_class(cp);
        if (f->clean_text) {
            if (cls & TOK_CH_REMOVE)
                continue;
            if (cls & TOK_CH_SPACE) {
                b->p[b->n++] = ' ';
                continue;
            }
        }
        bool pad = f->handle_chinese && (cls & TOK_CH_CJK);
        if (pad)
            b->p[b->n++] = ' ';
        if (f->strip_accents || f->lowercase)
            put_stripped_lowered(f, b, cp);
        else
            put_cp(b, cp);
        if (pad)
            b->p[b->n++] = ' ';
    }
    return IA_OK;
}

static ia_status put_bytes(text_buf *b, const char *s, size_t len) {
    ia_status st = text_reserve(b, len + 1);
    if (st)
        return st;
    memcpy(b->p + b->n, s, len);
    b->n += len;
    return IA_OK;
}

static ia_status normalize_unicode(tok_norm_kind kind, const char *text, size_t len, text_buf *b) {
    static const int OPTS[] = {
        [TOK_NORM_NFC] = UTF8PROC_STABLE | UTF8PROC_COMPOSE,
        [TOK_NORM_NFD] = UTF8PROC_STABLE | UTF8PROC_DECOMPOSE,
        [TOK_NORM_NFKC] = UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT,
        [TOK_NORM_NFKD] = UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT,
    };
    if (len == 0)
        return IA_OK;
    utf8proc_uint8_t *res = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len, &res,
                                      (utf8proc_option_t)OPTS[kind]);
    if (n < 0)
        return ia_error_set(IA_EINVAL, "tokenizer: Unicode normalisation failed (%s)",
                            utf8proc_errmsg(n));
    ia_status st = put_bytes(b, (const char *)res, (size_t)n);
    free(res);
    return st;
}

static ia_status replace_all(const tok_pattern *p, pcre2_match_data *md, const char *s, size_t len,
                             const char *to, size_t to_len, text_buf *b) {
    size_t from = 0, ms, me;
    ia_status st;
    int rc;
    while (from <= len && (rc = tok_pattern_find(p, md, s, len, from, &ms, &me)) == 1) {
        if ((st = put_bytes(b, s + from, ms - from)) || (st = put_bytes(b, to, to_len)))
            return st;
        if (me == ms) { /* an empty match: keep one character and go on */
            if (ms >= len)
                return IA_OK;
            size_t l = 1;
            while (ms + l < len && ((unsigned char)s[ms + l] & 0xC0) == 0x80)
                l++;
            if ((st = put_bytes(b, s + ms, l)))
                return st;
            me = ms + l;
        }
        from = me;
    }
    if (rc < 0)
        return (ia_status)-rc;
    return from < len ? put_bytes(b, s + from, len - from) : IA_OK;
}

static bool is_rust_space(int32_t cp);

static ia_status normalize_strip(const tok_norm_step *n, const char *s, size_t len, text_buf *b) {
    size_t a = 0, e = len;
    while (n->left && a < e) {
        int32_t cp;
        int l = tok_utf8_decode((const unsigned char *)s + a, &cp);
        if (!is_rust_space(cp))
            break;
        a += (size_t)l;
    }
    while (n->right && e > a) {
        size_t k = e - 1;
        while (k > a && ((unsigned char)s[k] & 0xC0) == 0x80)
            k--;
        int32_t cp;
        tok_utf8_decode((const unsigned char *)s + k, &cp);
        if (!is_rust_space(cp))
            break;
        e = k;
    }
    return put_bytes(b, s + a, e - a);
}

/* One normaliser step: s[0..len) -> b (b is empty on entry). */
static ia_status normalize_step(const tok_norm_step *n, pcre2_match_data *md, const char *s,
                                size_t len, text_buf *b) {
    switch (n->kind) {
    case TOK_NORM_BERT:
        return normalize_bert(&n->bert, s, len, b);
    case TOK_NORM_NFC:
    case TOK_NORM_NFD:
    case TOK_NORM_NFKC:
    case TOK_NORM_NFKD:
        return normalize_unicode(n->kind, s, len, b);
    case TOK_NORM_PREPEND: {
        ia_status st = len ? put_bytes(b, n->content, n->content_len) : IA_OK;
        return st ? st : put_bytes(b, s, len);
    }
    case TOK_NORM_REPLACE:
        return replace_all(&n->pattern, md, s, len, n->content, n->content_len, b);
    case TOK_NORM_STRIP:
        return normalize_strip(n, s, len, b);
    }
    return ia_error_set(IA_EINTERNAL, "tokenizer: unknown normaliser step %d", (int)n->kind);
}

/* Runs every step; the result is in *out (one of the two buffers). */
static ia_status normalize_into(const ia_tokenizer *tok, pcre2_match_data *md, const char *text,
                                size_t len, text_buf bufs[2], text_buf **out) {
    ia_status st;
    const char *s = text;
    size_t n = len;
    int cur = 0;
    if (tok->n_norm == 0) {
        bufs[0].n = 0;
        if ((st = put_bytes(&bufs[0], text, len)))
            return st;
        *out = &bufs[0];
        return IA_OK;
    }
    for (size_t i = 0; i < tok->n_norm; i++) {
        text_buf *b = &bufs[cur];
        b->n = 0;
        if ((st = text_reserve(b, 1)) || (st = normalize_step(&tok->norm[i], md, s, n, b)))
            return st;
        s = b->p;
        n = b->n;
        *out = b;
        cur ^= 1;
    }
    return IA_OK;
}

static pcre2_match_data *new_match_data(void) { return pcre2_match_data_create(1, NULL); }

ia_status tok_normalize(const ia_tokenizer *tok, const char *text, size_t len, char **out,
                        size_t *out_len) {
    text_buf bufs[2] = {{0}, {0}}, *res = NULL;
    pcre2_match_data *md = new_match_data();
    ia_status st = md ? normalize_into(tok, md, text, len, bufs, &res) : IA_ENOMEM;
    if (st == IA_OK)
        st = text_reserve(res, 1);
    pcre2_match_data_free(md);
    if (st) {
        free(bufs[0].p);
        free(bufs[1].p);
        return st;
    }
    res->p[res->n] = '\0';
    *out = res->p;
    *out_len = res->n;
    free(res == &bufs[0] ? bufs[1].p : bufs[0].p);
    return IA_OK;
}

/* ---- the per-call context ------------------------------------------------------------ */

typedef struct range {
    size_t start, end;
    bool match; /* for Split: a pattern match (true) or the text between */
} range;

typedef struct range_list {
    range *r;
    size_t n, cap;
} range_list;

typedef struct enc_ctx {
    const ia_tokenizer *tok;
    seq_buf *out;
    text_buf norm[2];               /* a raw piece, normalised */
    text_buf pre_a[TOK_MAX_PRE];    /* per pre-tokenizer step: its prepared text */
    text_buf pre_b[TOK_MAX_PRE];    /* and one piece of it, transformed */
    range_list ranges[TOK_MAX_PRE]; /* and its split */
    pcre2_match_data *md;
    tok_bpe_scratch bpe;
} enc_ctx;

static void ctx_free(enc_ctx *c) {
    free(c->norm[0].p);
    free(c->norm[1].p);
    for (size_t i = 0; i < TOK_MAX_PRE; i++) {
        free(c->pre_a[i].p);
        free(c->pre_b[i].p);
        free(c->ranges[i].r);
    }
    if (c->md)
        pcre2_match_data_free(c->md);
    tok_bpe_scratch_free(&c->bpe);
}

/* ---- WordPiece ------------------------------------------------------------------- */

static ia_status push_unk(const ia_tokenizer *tok, seq_buf *out) {
    if (tok->unk_id < 0)
        return ia_error_set(IA_ENOTFOUND,
                            "tokenizer: a word needs the unknown token '%s', which is not in "
                            "the vocabulary",
                            tok->unk);
    return seq_push(out, tok->unk_id, tok->unk);
}

static bool is_cont(unsigned char c) { return (c & 0xC0) == 0x80; }

static ia_status wordpiece(const ia_tokenizer *tok, const char *w, size_t len, size_t chars,
                           seq_buf *out) {
    if (chars > tok->max_chars)
        return push_unk(tok, out);
    size_t mark = out->n, start = 0;
    const tok_vocab *v = &tok->vocab;
    while (start < len) {
        const char *pre = start ? tok->prefix : "";
        size_t plen = start ? tok->prefix_len : 0;
        if (v->max_len <= plen)
            break;
        /* No vocabulary entry is longer than max_len, so start below it. */
        size_t end = len - start > v->max_len - plen ? start + (v->max_len - plen) : len;
        while (end < len && is_cont((unsigned char)w[end]))
            end--;
        int32_t id = -1;
        while (end > start) {
            id = tok_vocab_find2(v, pre, plen, w + start, end - start);
            if (id >= 0)
                break;
            end--;
            while (end > start && is_cont((unsigned char)w[end]))
                end--;
        }
        if (id < 0)
            break;
        ia_status st = seq_push(out, id, v->tokens[id]);
        if (st)
            return st;
        start = end;
    }
    if (start < len || len == 0) {
        out->n = mark; /* some part of the word is not in the vocabulary */
        return len ? push_unk(tok, out) : IA_OK;
    }
    return IA_OK;
}

/* One pre-tokenized word through the model. */
static ia_status model_word(enc_ctx *c, const char *w, size_t len) {
    const ia_tokenizer *tok = c->tok;
    if (tok->model == TOK_MODEL_WORDPIECE) {
        size_t chars = 0;
        for (size_t i = 0; i < len; i++)
            chars += !is_cont((unsigned char)w[i]);
        return wordpiece(tok, w, len, chars, c->out);
    }
    ia_status st = tok_bpe_word(tok, &c->bpe, w, len);
    for (size_t i = 0; st == IA_OK && i < c->bpe.n_out; i++) {
        int32_t id = c->bpe.out[i];
        st = seq_push(c->out, id, tok->vocab.tokens[id]);
    }
    return st;
}

/* ---- pre-tokenisation: BertPreTokenizer -------------------------------------------- */

/* TOK_CH_* of ASCII: whitespace \t..\r and ' ', punctuation !../:..@[..`{..~ */
static unsigned ascii_class(unsigned c) {
    if (c == ' ' || (c >= 9 && c <= 13))
        return TOK_CH_SPACE;
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
        (c >= 123 && c <= 126))
        return TOK_CH_PUNCT;
    return 0;
}

static ia_status pretokenize_bert(enc_ctx *c, const char *text, size_t len) {
    const unsigned char *s = (const unsigned char *)text;
    size_t word = 0, chars = 0;
    ia_status st = IA_OK;
    for (size_t i = 0; i < len;) {
        int32_t cp;
        int l = tok_utf8_decode(s + i, &cp);
        unsigned cls = cp < 0x80 ? ascii_class((unsigned)cp) : tok_char_class(cp);
        if (cls & (TOK_CH_SPACE | TOK_CH_PUNCT)) {
            if (chars && (st = model_word(c, text + word, i - word)))
                return st;
            if ((cls & TOK_CH_SPACE) == 0 && (st = model_word(c, text + i, (size_t)l)))
                return st;
            chars = 0;
            i += (size_t)l;
            continue;
        }
        if (!chars)
            word = i;
        chars++;
        i += (size_t)l;
    }
    if (chars)
        st = model_word(c, text + word, len - word);
    return st;
}

/* ---- pre-tokenisation: the step pipeline (ByteLevel, Split, Metaspace) ---------------- */

static ia_status range_push(range_list *l, size_t start, size_t end, bool match) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        range *r = ia_realloc_array(l->r, cap, sizeof *r);
        if (!r)
            return IA_ENOMEM;
        l->r = r;
        l->cap = cap;
    }
    l->r[l->n++] = (range){start, end, match};
    return IA_OK;
}

/* HF's Pattern::find_matches: matches and the gaps between them, in order. */
static ia_status find_matches(enc_ctx *c, const tok_pattern *p, const char *s, size_t len,
                              range_list *l) {
    size_t prev = 0, from = 0, ms, me;
    ia_status st;
    int rc;
    l->n = 0;
    while (from <= len && (rc = tok_pattern_find(p, c->md, s, len, from, &ms, &me)) == 1) {
        if (prev != ms && (st = range_push(l, prev, ms, false)))
            return st;
        if ((st = range_push(l, ms, me, true)))
            return st;
        prev = me;
        from = me;
        if (me == ms) { /* an empty match: search again from the next character */
            if (ms >= len)
                break;
            from = ms + 1;
            while (from < len && is_cont((unsigned char)s[from]))
                from++;
        }
    }
    if (rc < 0)
        return (ia_status)-rc;
    if (prev != len)
        return range_push(l, prev, len, false);
    return IA_OK;
}

/* HF's SplitDelimiterBehavior applied to a find_matches list, in place;
 * afterwards `match` means "remove". */
static void apply_behavior(range_list *l, tok_split_behavior how, bool invert) {
    size_t n = 0;
    bool prev_match = false;
    if (invert)
        for (size_t i = 0; i < l->n; i++)
            l->r[i].match = !l->r[i].match;
    switch (how) {
    case TOK_SPLIT_REMOVED:
        return;
    case TOK_SPLIT_ISOLATED:
        for (size_t i = 0; i < l->n; i++)
            l->r[i].match = false;
        return;
    case TOK_SPLIT_CONTIGUOUS:
    case TOK_SPLIT_MERGED_WITH_PREVIOUS:
        for (size_t i = 0; i < l->n; i++) {
            range r = l->r[i];
            bool join =
                how == TOK_SPLIT_CONTIGUOUS ? r.match == prev_match : (r.match && !prev_match);
            if (join && n)
                l->r[n - 1].end = r.end;
            else
                l->r[n++] = (range){r.start, r.end, false};
            prev_match = r.match;
        }
        l->n = n;
        return;
    case TOK_SPLIT_MERGED_WITH_NEXT:
        /* right to left, then the kept ranges are packed back in order */
        n = l->n;
        for (size_t i = l->n; i-- > 0;) {
            range r = l->r[i];
            if (r.match && !prev_match && n < l->n)
                l->r[n].start = r.start;
            else
                l->r[--n] = (range){r.start, r.end, false};
            prev_match = r.match;
        }
        memmove(l->r, l->r + n, (l->n - n) * sizeof *l->r);
        l->n -= n;
        return;
    }
}

static ia_status pre_run(enc_ctx *c, size_t level, const char *s, size_t len, bool at_start);

/* Runs the next level on every kept, non-empty range of s. */
static ia_status run_ranges(enc_ctx *c, size_t level, const char *s, const range_list *l,
                            bool at_start) {
    for (size_t i = 0; i < l->n; i++) {
        const range *r = &l->r[i];
        if (r->match || r->end == r->start)
            continue;
        ia_status st =
            pre_run(c, level + 1, s + r->start, r->end - r->start, at_start && r->start == 0);
        if (st)
            return st;
    }
    return IA_OK;
}

/* Maps bytes to GPT-2's printable characters. */
static ia_status byte_map(const char *s, size_t len, text_buf *b) {
    b->n = 0;
    size_t need;
    if (!ia_size_mul(len, 2, &need))
        return ia_error_set(IA_ENOMEM, "tokenizer: text too large");
    ia_status st = text_reserve(b, need + 1);
    if (st)
        return st;
    for (size_t i = 0; i < len; i++)
        put_cp(b, tok_byte_to_cp((unsigned char)s[i]));
    return IA_OK;
}

static ia_status pre_byte_level(enc_ctx *c, size_t level, const char *s, size_t len,
                                bool at_start) {
    const tok_pre_step *p = &c->tok->pre[level];
    text_buf *a = &c->pre_a[level], *b = &c->pre_b[level];
    ia_status st;
    if (p->add_prefix_space && s[0] != ' ') {
        a->n = 0;
        if ((st = put_bytes(a, " ", 1)) || (st = put_bytes(a, s, len)))
            return st;
        s = a->p;
        len = a->n;
    }
    if (!p->use_regex) {
        if ((st = byte_map(s, len, b)))
            return st;
        return pre_run(c, level + 1, b->p, b->n, at_start);
    }
    range_list *l = &c->ranges[level];
    if ((st = find_matches(c, &p->pattern, s, len, l)))
        return st;
    for (size_t i = 0; i < l->n; i++) {
        const range *r = &l->r[i];
        if (r->end == r->start)
            continue;
        if ((st = byte_map(s + r->start, r->end - r->start, b)) ||
            (st = pre_run(c, level + 1, b->p, b->n, at_start && r->start == 0)))
            return st;
    }
    return IA_OK;
}

static ia_status pre_metaspace(enc_ctx *c, size_t level, const char *s, size_t len, bool at_start) {
    const tok_pre_step *p = &c->tok->pre[level];
    text_buf *a = &c->pre_a[level];
    ia_status st;
    a->n = 0;
    bool starts = len >= p->replacement_len && memcmp(s, p->replacement, p->replacement_len) == 0;
    /* a leading space becomes the replacement, so it counts as "starts with" */
    starts = starts || s[0] == ' ';
    bool prepend = !starts && (p->prepend_scheme == TOK_PREPEND_ALWAYS ||
                               (p->prepend_scheme == TOK_PREPEND_FIRST && at_start));
    if (prepend && (st = put_bytes(a, p->replacement, p->replacement_len)))
        return st;
    for (size_t i = 0; i < len; i++) {
        st =
            s[i] == ' ' ? put_bytes(a, p->replacement, p->replacement_len) : put_bytes(a, s + i, 1);
        if (st)
            return st;
    }
    if (!p->split)
        return pre_run(c, level + 1, a->p, a->n, at_start);
    range_list *l = &c->ranges[level];
    tok_pattern lit = {.lit = (char *)p->replacement, .lit_len = p->replacement_len};
    if ((st = find_matches(c, &lit, a->p, a->n, l)))
        return st;
    apply_behavior(l, TOK_SPLIT_MERGED_WITH_NEXT, false);
    return run_ranges(c, level, a->p, l, at_start);
}

static ia_status pre_split(enc_ctx *c, size_t level, const char *s, size_t len, bool at_start) {
    const tok_pre_step *p = &c->tok->pre[level];
    range_list *l = &c->ranges[level];
    ia_status st = find_matches(c, &p->pattern, s, len, l);
    if (st)
        return st;
    apply_behavior(l, p->behavior, p->invert);
    return run_ranges(c, level, s, l, at_start);
}

/* Pre-tokenizer step `level` on one piece; past the last step, the model. */
static ia_status pre_run(enc_ctx *c, size_t level, const char *s, size_t len, bool at_start) {
    if (len == 0)
        return IA_OK;
    if (level == c->tok->n_pre)
        return model_word(c, s, len);
    switch (c->tok->pre[level].kind) {
    case TOK_PRE_BYTELEVEL:
        return pre_byte_level(c, level, s, len, at_start);
    case TOK_PRE_METASPACE:
        return pre_metaspace(c, level, s, len, at_start);
    case TOK_PRE_SPLIT:
        return pre_split(c, level, s, len, at_start);
    }
    return ia_error_set(IA_EINTERNAL, "tokenizer: unknown pre-tokenizer step");
}

static ia_status pretokenize(enc_ctx *c, const char *text, size_t len, bool at_start) {
    if (c->tok->bert_pretok)
        return pretokenize_bert(c, text, len);
    return pre_run(c, 0, text, len, at_start);
}

/* ---- added tokens ------------------------------------------------------------------- */

static bool is_space_cp(int32_t cp) {
    return cp < 0x80 ? ascii_class((unsigned)cp) == TOK_CH_SPACE
                     : (tok_char_class(cp) & TOK_CH_SPACE) != 0;
}

/* Rust char::is_whitespace (the White_Space property). */
static bool is_rust_space(int32_t cp) {
    return (cp >= 9 && cp <= 13) || cp == ' ' || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

/* The code point that ends just before byte `at` (at > 0). */
static int32_t cp_before(const char *s, size_t at, size_t *start) {
    size_t i = at - 1;
    while (i > 0 && is_cont((unsigned char)s[i]))
        i--;
    int32_t cp;
    tok_utf8_decode((const unsigned char *)s + i, &cp);
    *start = i;
    return cp;
}

/* Leftmost-longest match of an added token (of the `normalized` kind) at or
 * after `from`; returns its index or -1. */
static long find_added(const ia_tokenizer *tok, bool normalized, const char *s, size_t len,
                       size_t from, size_t *at) {
    const bool *first = normalized ? tok->first_norm : tok->first_raw;
    for (size_t i = from; i < len; i++) {
        if (!first[(unsigned char)s[i]])
            continue;
        long best = -1;
        for (size_t k = 0; k < tok->n_added; k++) {
            const tok_added *a = &tok->added[k];
            if (a->normalized != normalized || a->match_len == 0 || a->match_len > len - i ||
                memcmp(s + i, a->match, a->match_len) != 0)
                continue;
            if (best < 0 || a->match_len > tok->added[best].match_len)
                best = (long)k;
        }
        if (best >= 0) {
            *at = i;
            return best;
        }
    }
    return -1;
}

typedef ia_status (*piece_fn)(enc_ctx *c, const char *s, size_t len, bool at_start);

/* Splits s around added tokens of one kind, emitting their ids and passing
 * the text between them to `rest` (with whether it starts the input).
 * lstrip/rstrip swallow neighbouring whitespace; single_word tokens only
 * match between non-word characters. */
static ia_status split_added(enc_ctx *c, bool normalized, const char *s, size_t len, bool at_start,
                             piece_fn rest) {
    const ia_tokenizer *tok = c->tok;
    size_t done = 0, from = 0, at;
    ia_status st;
    long k;
    while (from < len && (k = find_added(tok, normalized, s, len, from, &at)) >= 0) {
        const tok_added *a = &tok->added[k];
        size_t start = at, stop = at + a->match_len, prev;
        from = stop;
        if (a->single_word) {
            bool word_before = start > 0 && tok_char_is_word(cp_before(s, start, &prev));
            int32_t next = 0;
            if (stop < len)
                tok_utf8_decode((const unsigned char *)s + stop, &next);
            if (word_before || (stop < len && tok_char_is_word(next)))
                continue;
        }
        if (a->lstrip) {
            while (start > done && is_space_cp(cp_before(s, start, &prev)))
                start = prev;
        }
        if (a->rstrip) {
            int32_t cp;
            int l;
            while (stop < len &&
                   (l = tok_utf8_decode((const unsigned char *)s + stop, &cp), is_space_cp(cp)))
                stop += (size_t)l;
            from = stop;
        }
        if (start > done && (st = rest(c, s + done, start - done, at_start && done == 0)))
            return st;
        if ((st = seq_push_match(c->out, a->id, s + start, stop - start)))
            return st;
        done = stop;
    }
    if (done < len)
        return rest(c, s + done, len - done, at_start && done == 0);
    return IA_OK;
}

static ia_status raw_piece(enc_ctx *c, const char *s, size_t len, bool at_start) {
    text_buf *res = NULL;
    ia_status st = normalize_into(c->tok, c->md, s, len, c->norm, &res);
    if (st)
        return st;
    /* The normalised buffers are reused by the next raw piece only. */
    return split_added(c, true, res->p, res->n, at_start, pretokenize);
}

static ia_status encode_sequence(const ia_tokenizer *tok, const char *text, size_t len,
                                 seq_buf *out) {
    enc_ctx c;
    memset(&c, 0, sizeof c);
    c.tok = tok;
    c.out = out;
    ia_status st =
        (c.md = new_match_data()) ? split_added(&c, false, text, len, true, raw_piece) : IA_ENOMEM;
    ctx_free(&c);
    return st;
}

/* ---- truncation, template, padding -------------------------------------------------------- */

/* HF's truncate_encodings (direction right, no stride). */
static ia_status truncate(seq_buf *a, seq_buf *b, size_t max_len, ia_truncation how) {
    size_t total = a->n + (b ? b->n : 0);
    if (max_len == 0) {
        a->n = 0;
        if (b)
            b->n = 0;
        return IA_OK;
    }
    if (total <= max_len)
        return IA_OK;
    size_t remove = total - max_len;
    if (how == IA_TRUNCATE_LONGEST_FIRST) {
        if (!b) {
            a->n = max_len;
            return IA_OK;
        }
        size_t n1 = a->n, n2 = b->n;
        bool swap = n1 > n2;
        if (swap) {
            size_t t = n1;
            n1 = n2;
            n2 = t;
        }
        n2 = n1 > max_len ? n1 : (n1 > max_len - n1 ? n1 : max_len - n1);
        if (n1 + n2 > max_len) {
            n1 = max_len / 2;
            n2 = n1 + max_len % 2;
        }
        if (swap) {
            size_t t = n1;
            n1 = n2;
            n2 = t;
        }
        if (a->n > n1)
            a->n = n1;
        if (b->n > n2)
            b->n = n2;
        return IA_OK;
    }
    seq_buf *target = how == IA_TRUNCATE_ONLY_FIRST ? a : b;
    if (!target)
        return ia_error_set(IA_EINVAL, "tokenizer: truncation only_second needs a pair");
    if (target->n <= remove)
        return ia_error_set(IA_EINVAL,
                            "tokenizer: cannot truncate to %zu tokens by cutting only the %s "
                            "sequence (it has %zu tokens, %zu must go)",
                            max_len, target == a ? "first" : "second", target->n, remove);
    target->n -= remove;
    return IA_OK;
}

typedef struct out_builder {
    ia_encoding *enc;
    size_t n;
} out_builder;

static ia_status out_put(out_builder *o, int32_t id, uint32_t type_id, uint8_t mask,
                         const char *str) {
    ia_encoding *e = o->enc;
    e->ids[o->n] = id;
    e->type_ids[o->n] = (int32_t)type_id;
    e->attention_mask[o->n] = mask;
    if (e->tokens && !(e->tokens[o->n] = ia_strdup(str ? str : "")))
        return IA_ENOMEM;
    o->n++;
    return IA_OK;
}

static ia_status out_seq(out_builder *o, const seq_buf *s, uint32_t type_id) {
    for (size_t i = 0; i < s->n; i++) {
        ia_status st = out_put(o, s->ids[i], type_id, 1, s->want_strs ? s->strs[i] : NULL);
        if (st)
            return st;
    }
    return IA_OK;
}

static ia_status assemble(const ia_tokenizer *tok, const seq_buf *a, const seq_buf *b,
                          bool specials, out_builder *o) {
    ia_status st;
    if (!specials || !tok->has_post) {
        if ((st = out_seq(o, a, 0)))
            return st;
        return b ? out_seq(o, b, 1) : IA_OK;
    }
    const tok_template *t = b ? &tok->pair : &tok->single;
    for (size_t i = 0; i < t->n; i++) {
        const tok_template_piece *p = &t->pieces[i];
        if (p->kind == 0 || p->kind == 1) {
            const seq_buf *s = p->kind == 0 ? a : b;
            if (s && (st = out_seq(o, s, p->type_id)))
                return st;
            continue;
        }
        for (size_t k = 0; k < p->n_ids; k++)
            if ((st = out_put(o, p->ids[k], p->type_id, 1, p->tokens[k])))
                return st;
    }
    return IA_OK;
}

ia_encode_options ia_encode_options_default(void) {
    ia_encode_options o;
    memset(&o, 0, sizeof o);
    o.add_special_tokens = true;
    o.truncation = IA_TRUNCATE_LONGEST_FIRST;
    return o;
}

static size_t template_len(const ia_tokenizer *tok, bool pair) {
    return tok->has_post ? (pair ? tok->pair.n_special : tok->single.n_special) : 0;
}

ia_status ia_tokenizer_encode(const ia_tokenizer *tok, const char *text, size_t len,
                              const char *pair, size_t pair_len, const ia_encode_options *opts,
                              ia_encoding *out) {
    ia_encode_options def = ia_encode_options_default();
    seq_buf a = {0}, b = {0};
    out_builder o = {out, 0};
    ia_status st;
    size_t bad;
    memset(out, 0, sizeof *out);
    if (!opts)
        opts = &def;
    if (!text && len) {
        st = ia_error_set(IA_EINVAL, "tokenizer: text is NULL");
        goto fail;
    }
    if (!ia_utf8_valid(text ? text : "", len, &bad)) {
        st = ia_error_set(IA_EINVAL, "tokenizer input: invalid UTF-8 at byte %zu", bad);
        goto fail;
    }
    if (pair && !ia_utf8_valid(pair, pair_len, &bad)) {
        st = ia_error_set(IA_EINVAL, "tokenizer pair input: invalid UTF-8 at byte %zu", bad);
        goto fail;
    }
    a.want_strs = b.want_strs = opts->want_tokens;
    if ((st = encode_sequence(tok, text ? text : "", len, &a)))
        goto fail;
    if (pair && (st = encode_sequence(tok, pair, pair_len, &b)))
        goto fail;
    size_t specials = opts->add_special_tokens ? template_len(tok, pair != NULL) : 0;
    if (opts->max_length) {
        if (opts->max_length < specials) {
            st = ia_error_set(IA_EINVAL,
                              "tokenizer: max_length %zu leaves no room for the %zu special "
                              "tokens",
                              opts->max_length, specials);
            goto fail;
        }
        if ((st = truncate(&a, pair ? &b : NULL, opts->max_length - specials, opts->truncation)))
            goto fail;
    }
    size_t n = a.n + b.n + specials;
    size_t total = opts->pad_to > n ? opts->pad_to : n;
    out->ids = ia_malloc_array(total ? total : 1, sizeof *out->ids);
    out->type_ids = ia_malloc_array(total ? total : 1, sizeof *out->type_ids);
    out->attention_mask = ia_malloc(total ? total : 1);
    if (opts->want_tokens)
        out->tokens = ia_calloc(total ? total : 1, sizeof *out->tokens);
    if (!out->ids || !out->type_ids || !out->attention_mask ||
        (opts->want_tokens && !out->tokens)) {
        st = IA_ENOMEM;
        goto fail;
    }
    if ((st = assemble(tok, &a, pair ? &b : NULL, opts->add_special_tokens, &o)))
        goto fail;
    while (o.n < total)
        if ((st = out_put(&o, tok->pad_id, tok->pad_type_id, 0, tok->pad_token)))
            goto fail;
    out->len = o.n;
    seq_free(&a);
    seq_free(&b);
    return IA_OK;
fail:
    seq_free(&a);
    seq_free(&b);
    out->len = o.n; /* so that the token strings made so far are freed */
    ia_encoding_free(out);
    return st;
}

void ia_encoding_free(ia_encoding *enc) {
    if (!enc)
        return;
    if (enc->tokens)
        for (size_t i = 0; i < enc->len; i++)
            free(enc->tokens[i]);
    free(enc->tokens);
    free(enc->ids);
    free(enc->type_ids);
    free(enc->attention_mask);
    memset(enc, 0, sizeof *enc);
}
