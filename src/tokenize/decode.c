/*
 * Decoding: ids -> text, the way HF's Tokenizer.decode does it, and a
 * streaming decoder for generation.
 *
 * decode looks each id up (added tokens first, then the model vocabulary;
 * unknown ids are skipped and, with skip_special, so are special tokens),
 * runs the token strings through the decoder chain the file configured and
 * joins what comes out. Each decoder step maps a list of strings to a list
 * of strings exactly as HF's decode_chain does: ByteLevel turns GPT-2's
 * printable characters back into bytes (Rust's from_utf8_lossy: each
 * maximal invalid subsequence becomes one U+FFFD), ByteFallback turns runs
 * of <0xHH> tokens into their text (one U+FFFD per byte when the run is not
 * UTF-8), Replace / Fuse / Strip / Metaspace / WordPiece do what their names
 * say. Without a decoder HF joins the tokens with spaces, and so do we.
 *
 * The streaming decoder is HF's DecodeStream: it keeps the ids since the
 * last complete character as context, decodes context + new id, and emits
 * the part past the context's own decoding once it does not end in U+FFFD.
 * Keeping one token of context is what makes SentencePiece's "strip the
 * first space" come out right mid-stream.
 */
#include "tokenize_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- a list of strings ----------------------------------------------------------------- */

typedef struct str_list {
    char **s;
    size_t *len;
    size_t n, cap;
} str_list;

static void list_free(str_list *l) {
    for (size_t i = 0; i < l->n; i++)
        free(l->s[i]);
    free(l->s);
    free(l->len);
    memset(l, 0, sizeof *l);
}

/* Appends a copy of s[0..len). */
static ia_status list_push(str_list *l, const char *s, size_t len) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **ss = ia_realloc_array(l->s, cap, sizeof *ss);
        if (!ss)
            return IA_ENOMEM;
        l->s = ss;
        size_t *ll = ia_realloc_array(l->len, cap, sizeof *ll);
        if (!ll)
            return IA_ENOMEM;
        l->len = ll;
        l->cap = cap;
    }
    char *c = ia_malloc(len + 1);
    if (!c)
        return IA_ENOMEM;
    memcpy(c, s, len);
    c[len] = '\0';
    l->s[l->n] = c;
    l->len[l->n++] = len;
    return IA_OK;
}

/* A growable byte string. */
typedef struct bytes {
    char *p;
    size_t n, cap;
} bytes;

static ia_status bytes_put(bytes *b, const void *s, size_t len) {
    if (b->cap - b->n <= len) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->n <= len)
            if (!ia_size_mul(cap, 2, &cap))
                return IA_ENOMEM;
        char *p = realloc(b->p, cap);
        if (!p)
            return IA_ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
    return IA_OK;
}

static const char FFFD[] = "\xef\xbf\xbd";

/* Rust's String::from_utf8_lossy: valid UTF-8 is copied, and each maximal
 * prefix of a would-be sequence that turns out invalid becomes one U+FFFD. */
static ia_status utf8_lossy(const unsigned char *s, size_t len, bytes *out) {
    size_t i = 0;
    ia_status st;
    while (i < len) {
        unsigned c = s[i];
        size_t need = 0;
        unsigned lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            if ((st = bytes_put(out, s + i, 1)))
                return st;
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF)
            need = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            lo = c == 0xE0 ? 0xA0 : 0x80;
            hi = c == 0xED ? 0x9F : 0xBF;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            lo = c == 0xF0 ? 0x90 : 0x80;
            hi = c == 0xF4 ? 0x8F : 0xBF;
        }
        size_t k = 1;
        if (need) {
            /* the second byte has the narrowed range, the rest 80..BF */
            if (i + 1 < len && s[i + 1] >= lo && s[i + 1] <= hi) {
                k = 2;
                while (k <= need && i + k < len && (s[i + k] & 0xC0) == 0x80)
                    k++;
            }
        }
        if (need && k == need + 1)
            st = bytes_put(out, s + i, k);
        else
            st = bytes_put(out, FFFD, 3);
        if (st)
            return st;
        i += k;
    }
    return IA_OK;
}

/* ---- decoder steps -------------------------------------------------------------------------- */

static ia_status dec_byte_level(str_list *l) {
    bytes raw = {0}, text = {0};
    ia_status st = IA_OK;
    for (size_t i = 0; i < l->n && !st; i++) {
        const unsigned char *s = (const unsigned char *)l->s[i];
        size_t mark = raw.n;
        bool ok = true;
        for (size_t k = 0; k < l->len[i] && ok;) {
            int32_t cp;
            k += (size_t)tok_utf8_decode(s + k, &cp);
            int b = tok_cp_to_byte(cp);
            unsigned char byte = (unsigned char)b;
            if (b < 0)
                ok = false;
            else
                st = bytes_put(&raw, &byte, 1);
        }
        if (!st && !ok) { /* a character outside the table: the token as it is */
            raw.n = mark;
            st = bytes_put(&raw, s, l->len[i]);
        }
    }
    if (!st)
        st = utf8_lossy((const unsigned char *)(raw.p ? raw.p : ""), raw.n, &text);
    list_free(l);
    if (!st)
        st = list_push(l, text.p ? text.p : "", text.n);
    free(raw.p);
    free(text.p);
    return st;
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* "<0xHH>" -> HH, else -1 (u8::from_str_radix also takes "+H"). */
static int byte_token(const char *s, size_t len) {
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return -1;
    int lo = hex_digit(s[4]), hi = s[3] == '+' ? 0 : hex_digit(s[3]);
    return lo < 0 || hi < 0 ? -1 : hi * 16 + lo;
}

static ia_status flush_bytes(str_list *out, bytes *run, size_t count) {
    ia_status st = IA_OK;
    if (!count)
        return IA_OK;
    if (ia_utf8_valid(run->p, run->n, NULL))
        st = list_push(out, run->p, run->n);
    else
        for (size_t i = 0; i < count && !st; i++)
            st = list_push(out, FFFD, 3);
    run->n = 0;
    return st;
}

static ia_status dec_byte_fallback(str_list *l) {
    str_list out = {0};
    bytes run = {0};
    size_t count = 0;
    ia_status st = IA_OK;
    for (size_t i = 0; i < l->n && !st; i++) {
        int b = byte_token(l->s[i], l->len[i]);
        if (b >= 0) {
            unsigned char byte = (unsigned char)b;
            st = bytes_put(&run, &byte, 1);
            count++;
            continue;
        }
        if (!(st = flush_bytes(&out, &run, count)))
            st = list_push(&out, l->s[i], l->len[i]);
        count = 0;
    }
    if (!st)
        st = flush_bytes(&out, &run, count);
    free(run.p);
    list_free(l);
    *l = out;
    return st;
}

static ia_status replace_in(const char *s, size_t len, const char *from, size_t flen,
                            const char *to, size_t tlen, bytes *b) {
    ia_status st = IA_OK;
    for (size_t i = 0; i < len && !st;) {
        if (flen && i + flen <= len && memcmp(s + i, from, flen) == 0) {
            st = bytes_put(b, to, tlen);
            i += flen;
        } else {
            st = bytes_put(b, s + i, 1);
            i++;
        }
    }
    return st ? st : bytes_put(b, "", 0);
}

/* Each token through fn, in place. */
typedef ia_status (*map_fn)(const tok_dec_step *d, size_t index, const char *s, size_t len,
                            bytes *out);

static ia_status dec_map(const tok_dec_step *d, str_list *l, map_fn fn) {
    for (size_t i = 0; i < l->n; i++) {
        bytes b = {0};
        ia_status st = fn(d, i, l->s[i], l->len[i], &b);
        if (!st && !b.p)
            st = bytes_put(&b, "", 0);
        if (st) {
            free(b.p);
            return st;
        }
        free(l->s[i]);
        l->s[i] = b.p;
        l->len[i] = b.n;
    }
    return IA_OK;
}

static ia_status map_replace(const tok_dec_step *d, size_t index, const char *s, size_t len,
                             bytes *out) {
    (void)index;
    return replace_in(s, len, d->from, d->from_len, d->to, d->to_len, out);
}

/* Strip: up to `start` leading and `stop` trailing copies of one character. */
static ia_status map_strip(const tok_dec_step *d, size_t index, const char *s, size_t len,
                           bytes *out) {
    (void)index;
    char c[4];
    size_t cl = (size_t)tok_utf8_encode(d->cp, c), a = 0, e = len;
    for (size_t k = 0; k < d->start && a + cl <= e && memcmp(s + a, c, cl) == 0; k++)
        a += cl;
    for (size_t k = 0; k < d->stop && e >= a + cl && memcmp(s + e - cl, c, cl) == 0; k++)
        e -= cl;
    return bytes_put(out, s + a, e - a);
}

/* Metaspace: the replacement becomes a space, except in the first token,
 * where (unless prepend_scheme is "never") it disappears. */
static ia_status map_metaspace(const tok_dec_step *d, size_t index, const char *s, size_t len,
                               bytes *out) {
    char c[4];
    size_t cl = (size_t)tok_utf8_encode(d->cp, c);
    const char *to = index == 0 && d->prepend ? "" : " ";
    return replace_in(s, len, c, cl, to, strlen(to), out);
}

static const struct {
    const char *from, *to;
} WP_CLEANUP[] = {
    {" .", "."},   {" ?", "?"},     {" !", "!"},     {" ,", ","},
    {" ' ", "'"},  {" n't", "n't"}, {" 'm", "'m"},   {" do not", " don't"},
    {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
};

static ia_status map_wordpiece(const tok_dec_step *d, size_t index, const char *s, size_t len,
                               bytes *out) {
    bytes cur = {0};
    ia_status st;
    if (index != 0 && len >= d->from_len && memcmp(s, d->from, d->from_len) == 0)
        st = bytes_put(&cur, s + d->from_len, len - d->from_len);
    else if (index != 0 && !(st = bytes_put(&cur, " ", 1)))
        st = bytes_put(&cur, s, len);
    else
        st = bytes_put(&cur, s, len);
    for (size_t k = 0; d->cleanup && !st && k < sizeof WP_CLEANUP / sizeof WP_CLEANUP[0]; k++) {
        bytes next = {0};
        st = replace_in(cur.p, cur.n, WP_CLEANUP[k].from, strlen(WP_CLEANUP[k].from),
                        WP_CLEANUP[k].to, strlen(WP_CLEANUP[k].to), &next);
        free(cur.p);
        cur = next;
    }
    if (!st)
        st = bytes_put(out, cur.p ? cur.p : "", cur.n);
    free(cur.p);
    return st;
}

static ia_status dec_fuse(str_list *l) {
    bytes b = {0};
    ia_status st = bytes_put(&b, "", 0);
    for (size_t i = 0; i < l->n && !st; i++)
        st = bytes_put(&b, l->s[i], l->len[i]);
    list_free(l);
    if (!st)
        st = list_push(l, b.p, b.n);
    free(b.p);
    return st;
}

static ia_status dec_step(const tok_dec_step *d, str_list *l) {
    switch (d->kind) {
    case TOK_DEC_BYTELEVEL:
        return dec_byte_level(l);
    case TOK_DEC_BYTE_FALLBACK:
        return dec_byte_fallback(l);
    case TOK_DEC_FUSE:
        return dec_fuse(l);
    case TOK_DEC_REPLACE:
        return dec_map(d, l, map_replace);
    case TOK_DEC_STRIP:
        return dec_map(d, l, map_strip);
    case TOK_DEC_METASPACE:
        return dec_map(d, l, map_metaspace);
    case TOK_DEC_WORDPIECE:
        return dec_map(d, l, map_wordpiece);
    }
    return ia_error_set(IA_EINTERNAL, "tokenizer: unknown decoder step %d", (int)d->kind);
}

/* ---- decode -------------------------------------------------------------------------------- */

static bool is_special_string(const ia_tokenizer *tok, const char *s) {
    for (size_t i = 0; i < tok->n_added; i++)
        if (tok->added[i].special && strcmp(tok->added[i].content, s) == 0)
            return true;
    return false;
}

ia_status tok_decode(const ia_tokenizer *tok, const int32_t *ids, size_t n, bool skip_special,
                     char **out, size_t *len) {
    str_list l = {0};
    bytes b = {0};
    ia_status st = IA_OK;
    *out = NULL;
    if (len)
        *len = 0;
    for (size_t i = 0; i < n && !st; i++) {
        const char *s = ia_tokenizer_id_to_token(tok, ids[i]);
        if (!s || (skip_special && is_special_string(tok, s)))
            continue;
        size_t slen = strlen(s);
        if (ids[i] >= 0 && (size_t)ids[i] < tok->vocab.n && s == tok->vocab.tokens[ids[i]])
            slen = tok->vocab.lens[ids[i]];
        st = list_push(&l, s, slen);
    }
    for (size_t k = 0; tok->has_dec && k < tok->n_dec && !st; k++)
        st = dec_step(&tok->dec[k], &l);
    if (!st)
        st = bytes_put(&b, "", 0);
    for (size_t i = 0; i < l.n && !st; i++) {
        if (!tok->has_dec && i > 0)
            st = bytes_put(&b, " ", 1);
        if (!st)
            st = bytes_put(&b, l.s[i], l.len[i]);
    }
    list_free(&l);
    if (st) {
        free(b.p);
        return st;
    }
    *out = b.p;
    if (len)
        *len = b.n;
    return IA_OK;
}

ia_status ia_tokenizer_decode(const ia_tokenizer *tok, const int32_t *ids, size_t n,
                              bool skip_special, char **out, size_t *len) {
    if (!ids && n)
        return ia_error_set(IA_EINVAL, "tokenizer decode: ids is NULL");
    return tok_decode(tok, ids, n, skip_special, out, len);
}

/* ---- streaming ------------------------------------------------------------------------------ */

struct ia_detokenizer {
    const ia_tokenizer *tok;
    bool skip_special;
    int32_t *ids; /* the context since the last emitted text, then the new ids */
    size_t n, cap;
    char *prefix; /* decode of ids[0..prefix_index) */
    size_t prefix_len, prefix_index;
    char *text; /* what the last push / flush returned */
};

ia_status ia_detokenizer_create(const ia_tokenizer *tok, bool skip_special, ia_detokenizer **out) {
    ia_detokenizer *d = ia_calloc(1, sizeof *d);
    *out = NULL;
    if (!d)
        return IA_ENOMEM;
    d->tok = tok;
    d->skip_special = skip_special;
    if (!(d->prefix = ia_strdup(""))) {
        free(d);
        return IA_ENOMEM;
    }
    *out = d;
    return IA_OK;
}

static char *dup_bytes(const char *s, size_t len) {
    char *c = ia_malloc(len + 1);
    if (c) {
        memcpy(c, s, len);
        c[len] = '\0';
    }
    return c;
}

static bool ends_with_fffd(const char *s, size_t len) {
    return len >= 3 && memcmp(s + len - 3, FFFD, 3) == 0;
}

static void set_text(ia_detokenizer *d, char *text, const char **out, size_t *len,
                     size_t text_len) {
    free(d->text);
    d->text = text;
    *out = text;
    *len = text_len;
}

ia_status ia_detokenizer_push(ia_detokenizer *d, int32_t id, const char **text, size_t *len) {
    char *s = NULL, *rest = NULL;
    size_t slen;
    ia_status st;
    *text = "";
    *len = 0;
    if (d->prefix_len == 0 && d->n) {
        if ((st = tok_decode(d->tok, d->ids, d->n, d->skip_special, &s, &slen)))
            return st;
        if (!ends_with_fffd(s, slen)) {
            free(d->prefix);
            d->prefix = s;
            d->prefix_len = slen;
            d->prefix_index = d->n;
            s = NULL;
        }
        free(s);
        s = NULL;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        int32_t *ids = ia_realloc_array(d->ids, cap, sizeof *ids);
        if (!ids)
            return IA_ENOMEM;
        d->ids = ids;
        d->cap = cap;
    }
    d->ids[d->n++] = id;
    if ((st = tok_decode(d->tok, d->ids, d->n, d->skip_special, &s, &slen)))
        return st;
    if (slen <= d->prefix_len || ends_with_fffd(s, slen)) {
        free(s);
        return IA_OK; /* nothing complete yet */
    }
    /* A new id can change how earlier bytes decode (ByteFallback turns a
     * byte run that never forms a character into U+FFFDs): the text already
     * given out stays given out, and what follows is emitted by length, as
     * transformers' TextStreamer does. */
    size_t from = d->prefix_len;
    if (memcmp(s, d->prefix, d->prefix_len) != 0)
        while (from < slen && ((unsigned char)s[from] & 0xC0) == 0x80)
            from++; /* start at a character, never inside one */
    size_t rest_len = slen - from;
    if (!(rest = dup_bytes(s + from, rest_len))) {
        free(s);
        return IA_ENOMEM;
    }
    free(s);
    /* the ids after the old prefix become the new context */
    size_t keep_from = d->prefix_index, new_index = d->n - d->prefix_index;
    memmove(d->ids, d->ids + keep_from, (d->n - keep_from) * sizeof *d->ids);
    d->n -= keep_from;
    char *p;
    size_t plen;
    if ((st = tok_decode(d->tok, d->ids, d->n, d->skip_special, &p, &plen))) {
        free(rest);
        return st;
    }
    free(d->prefix);
    d->prefix = p;
    d->prefix_len = plen;
    d->prefix_index = new_index;
    set_text(d, rest, text, len, rest_len);
    return IA_OK;
}

ia_status ia_detokenizer_flush(ia_detokenizer *d, const char **text, size_t *len) {
    char *s = NULL, *rest;
    size_t slen;
    *text = "";
    *len = 0;
    ia_status st = tok_decode(d->tok, d->ids, d->n, d->skip_special, &s, &slen);
    if (st)
        return st;
    size_t from = slen;
    if (slen > d->prefix_len && memcmp(s, d->prefix, d->prefix_len) == 0) {
        from = d->prefix_len;
    } else if (slen > 0 && d->prefix_index < d->n) {
        /* ByteFallback turns a whole byte run into U+FFFDs once it ends
         * mid-character, which would take back text already emitted: emit
         * the held-back ids on their own instead. */
        free(s);
        if ((st = tok_decode(d->tok, d->ids + d->prefix_index, d->n - d->prefix_index,
                             d->skip_special, &s, &slen)))
            return st;
        from = 0;
    }
    rest = dup_bytes(s + from, slen - from);
    free(s);
    if (!rest)
        return IA_ENOMEM;
    set_text(d, rest, text, len, slen - from);
    d->n = 0;
    d->prefix_len = 0;
    d->prefix_index = 0;
    d->prefix[0] = '\0';
    return IA_OK;
}

void ia_detokenizer_free(ia_detokenizer *d) {
    if (!d)
        return;
    free(d->ids);
    free(d->prefix);
    free(d->text);
    free(d);
}
