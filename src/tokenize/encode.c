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
#include "tokenize_internal.h"

#include <stdlib.h>
#include <string.h>

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

static void put_stripped_lowered(const ia_tokenizer *tok, text_buf *b, int32_t cp) {
    int32_t parts[4];
    int n = 1;
    parts[0] = cp;
    if (tok->strip_accents)
        n = tok_char_strip(cp, parts);
    for (int i = 0; i < n; i++) {
        if (!tok->lowercase) {
            put_cp(b, parts[i]);
            continue;
        }
        int32_t low[3];
        int k = tok_char_lower(parts[i], low);
        for (int j = 0; j < k; j++)
            put_cp(b, low[j]);
    }
}

/* Appends the normalised form of text to b. A character grows to at most
 * 2 pad spaces + 4 decomposed code points x 3 lowercase code points x 4
 * bytes, hence the 64 bytes reserved per character. */
static ia_status normalize_into(const ia_tokenizer *tok, const char *text, size_t len,
                                text_buf *b) {
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        ia_status st = text_reserve(b, 64);
        if (st)
            return st;
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            if (tok->clean_text) {
                if (c == '\t' || c == '\n' || c == '\r') {
                    b->p[b->n++] = ' ';
                    continue;
                }
                if (c < 0x20 || c == 0x7F)
                    continue; /* NUL and the C0 controls (including \v \f) */
            }
            if (tok->lowercase && c >= 'A' && c <= 'Z')
                c += 'a' - 'A';
            b->p[b->n++] = (char)c;
            continue;
        }
        int32_t cp;
        i += (size_t)tok_utf8_decode(s + i, &cp);
        unsigned cls = tok_char_class(cp);
        if (tok->clean_text) {
            if (cls & TOK_CH_REMOVE)
                continue;
            if (cls & TOK_CH_SPACE) {
                b->p[b->n++] = ' ';
                continue;
            }
        }
        bool pad = tok->handle_chinese && (cls & TOK_CH_CJK);
        if (pad)
            b->p[b->n++] = ' ';
        if (tok->strip_accents || tok->lowercase)
            put_stripped_lowered(tok, b, cp);
        else
            put_cp(b, cp);
        if (pad)
            b->p[b->n++] = ' ';
    }
    return IA_OK;
}

ia_status tok_normalize(const ia_tokenizer *tok, const char *text, size_t len, char **out,
                        size_t *out_len) {
    text_buf b = {0};
    ia_status st = normalize_into(tok, text, len, &b);
    if (st == IA_OK)
        st = text_reserve(&b, 1);
    if (st) {
        free(b.p);
        return st;
    }
    b.p[b.n] = '\0';
    *out = b.p;
    *out_len = b.n;
    return IA_OK;
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

/* ---- pre-tokenisation -------------------------------------------------------------- */

/* TOK_CH_* of ASCII: whitespace \t..\r and ' ', punctuation !../:..@[..`{..~ */
static unsigned ascii_class(unsigned c) {
    if (c == ' ' || (c >= 9 && c <= 13))
        return TOK_CH_SPACE;
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
        (c >= 123 && c <= 126))
        return TOK_CH_PUNCT;
    return 0;
}

static ia_status pretokenize(const ia_tokenizer *tok, const char *text, size_t len, seq_buf *out) {
    const unsigned char *s = (const unsigned char *)text;
    if (!tok->bert_pretok) {
        size_t chars = 0;
        for (size_t i = 0; i < len; i++)
            chars += !is_cont(s[i]);
        return wordpiece(tok, text, len, chars, out);
    }
    size_t word = 0, chars = 0;
    ia_status st = IA_OK;
    for (size_t i = 0; i < len;) {
        int32_t cp;
        int l = tok_utf8_decode(s + i, &cp);
        unsigned cls = cp < 0x80 ? ascii_class((unsigned)cp) : tok_char_class(cp);
        if (cls & (TOK_CH_SPACE | TOK_CH_PUNCT)) {
            if (chars && (st = wordpiece(tok, text + word, i - word, chars, out)))
                return st;
            if ((cls & TOK_CH_SPACE) == 0 && (st = wordpiece(tok, text + i, (size_t)l, 1, out)))
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
        st = wordpiece(tok, text + word, len - word, chars, out);
    return st;
}

/* ---- added tokens ------------------------------------------------------------------- */

static bool is_space_cp(int32_t cp) {
    return cp < 0x80 ? ascii_class((unsigned)cp) == TOK_CH_SPACE
                     : (tok_char_class(cp) & TOK_CH_SPACE) != 0;
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

typedef ia_status (*piece_fn)(const ia_tokenizer *tok, const char *s, size_t len, seq_buf *out,
                              text_buf *scratch);

/* Splits s around added tokens of one kind, emitting their ids and passing
 * the text between them to `rest`. lstrip/rstrip swallow neighbouring
 * whitespace; single_word tokens only match between non-word characters. */
static ia_status split_added(const ia_tokenizer *tok, bool normalized, const char *s, size_t len,
                             seq_buf *out, text_buf *scratch, piece_fn rest) {
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
        if (start > done && (st = rest(tok, s + done, start - done, out, scratch)))
            return st;
        if ((st = seq_push_match(out, a->id, s + start, stop - start)))
            return st;
        done = stop;
    }
    if (done < len)
        return rest(tok, s + done, len - done, out, scratch);
    return IA_OK;
}

static ia_status normalized_piece(const ia_tokenizer *tok, const char *s, size_t len, seq_buf *out,
                                  text_buf *scratch) {
    (void)scratch;
    return pretokenize(tok, s, len, out);
}

static ia_status raw_piece(const ia_tokenizer *tok, const char *s, size_t len, seq_buf *out,
                           text_buf *scratch) {
    scratch->n = 0;
    ia_status st = normalize_into(tok, s, len, scratch);
    if (st)
        return st;
    /* The scratch buffer is reused by the next raw piece only. */
    return split_added(tok, true, scratch->p, scratch->n, out, NULL, normalized_piece);
}

static ia_status encode_sequence(const ia_tokenizer *tok, const char *text, size_t len,
                                 seq_buf *out) {
    text_buf scratch = {0};
    ia_status st = split_added(tok, false, text, len, out, &scratch, raw_piece);
    free(scratch.p);
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
