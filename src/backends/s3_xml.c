/*
 * A bounded, single-pass XML scanner for S3 responses (see s3_xml.h for
 * what it accepts and refuses), and the few queries the client asks of a
 * document: an error's code and message, the text at a path, a count.
 *
 * State is the stack of open element names (as offsets into one path
 * buffer) and one text buffer that collects character data since the last
 * tag; both are fixed-size, so memory does not depend on the input.
 */
#include "backends/s3_xml.h"

#include <stdlib.h>
#include <string.h>

typedef struct walker {
    const char *p, *end, *start;
    char path[IA_S3_XML_MAX_PATH + 1];
    size_t path_len;
    size_t marks[IA_S3_XML_MAX_DEPTH]; /* path_len before each open element */
    int depth;
    bool root_done;
    char *text;
    size_t text_len;
} walker;

static ia_status bad(const walker *w, const char *why) {
    return ia_error_set(IA_EPARSE, "S3 XML response, byte %zu: %s", (size_t)(w->p - w->start), why);
}

static bool starts(const walker *w, const char *s) {
    size_t n = strlen(s);
    return (size_t)(w->end - w->p) >= n && memcmp(w->p, s, n) == 0;
}

static bool space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Moves past the next occurrence of s; false when there is none. */
static bool skip_past(walker *w, const char *s) {
    size_t n = strlen(s);
    for (const char *q = w->p; (size_t)(w->end - q) >= n; q++)
        if (memcmp(q, s, n) == 0) {
            w->p = q + n;
            return true;
        }
    return false;
}

static ia_status text_add(walker *w, const char *s, size_t n) {
    if (w->text_len + n > IA_S3_XML_MAX_TEXT)
        return bad(w, "element text longer than 64 KiB");
    memcpy(w->text + w->text_len, s, n);
    w->text_len += n;
    return IA_OK;
}

static size_t utf8_put(uint32_t c, char *out) {
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* At '&': one of the five predefined entities or a character reference. */
static ia_status entity(walker *w) {
    static const struct {
        const char *name;
        char c;
    } named[] = {{"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&quot;", '"'}, {"&apos;", '\''}};
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
        if (starts(w, named[i].name)) {
            w->p += strlen(named[i].name);
            return text_add(w, &named[i].c, 1);
        }
    if (!starts(w, "&#"))
        return bad(w, "unknown entity (only &lt; &gt; &amp; &quot; &apos; and &#N; are allowed)");
    const char *q = w->p + 2;
    int base = 10;
    if (q < w->end && *q == 'x') {
        base = 16;
        q++;
    }
    uint32_t c = 0;
    int digits = 0;
    for (; q < w->end && *q != ';'; q++, digits++) {
        int d = (*q >= '0' && *q <= '9')                 ? *q - '0'
                : (base == 16 && *q >= 'a' && *q <= 'f') ? *q - 'a' + 10
                : (base == 16 && *q >= 'A' && *q <= 'F') ? *q - 'A' + 10
                                                         : -1;
        if (d < 0 || digits >= 8)
            return bad(w, "bad character reference");
        c = c * (uint32_t)base + (uint32_t)d;
    }
    if (q >= w->end || digits == 0 || c == 0 || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return bad(w, "bad character reference");
    w->p = q + 1;
    char buf[4];
    return text_add(w, buf, utf8_put(c, buf));
}

static ia_status open_element(walker *w, const char *name, size_t n) {
    const char *colon = memchr(name, ':', n); /* drop a namespace prefix */
    if (colon) {
        n -= (size_t)(colon + 1 - name);
        name = colon + 1;
    }
    if (n == 0)
        return bad(w, "empty element name");
    if (w->root_done)
        return bad(w, "a second root element");
    if (w->depth == IA_S3_XML_MAX_DEPTH)
        return bad(w, "elements nested too deep");
    if (w->path_len + n + 1 > IA_S3_XML_MAX_PATH)
        return bad(w, "element path too long");
    w->marks[w->depth++] = w->path_len;
    if (w->path_len)
        w->path[w->path_len++] = '/';
    memcpy(w->path + w->path_len, name, n);
    w->path_len += n;
    w->path[w->path_len] = 0;
    w->text_len = 0;
    return IA_OK;
}

static ia_status close_element(walker *w, ia_s3_xml_fn fn, void *ctx) {
    w->text[w->text_len] = 0;
    ia_status st = fn ? fn(ctx, w->path, w->text, w->text_len) : IA_OK;
    w->path_len = w->marks[--w->depth];
    w->path[w->path_len] = 0;
    w->text_len = 0;
    if (w->depth == 0)
        w->root_done = true;
    return st;
}

/* After '<' of a start tag: the name, attributes (skipped, quotes
 * honoured), then '>' or '/>'. */
static ia_status start_tag(walker *w, ia_s3_xml_fn fn, void *ctx) {
    const char *name = ++w->p;
    while (w->p < w->end && !space(*w->p) && *w->p != '>' && *w->p != '/' && *w->p != '<')
        w->p++;
    ia_status st = open_element(w, name, (size_t)(w->p - name));
    if (st)
        return st;
    while (w->p < w->end && *w->p != '>' && *w->p != '/') {
        if (*w->p == '"' || *w->p == '\'') {
            const char *q = memchr(w->p + 1, *w->p, (size_t)(w->end - w->p - 1));
            if (!q)
                return bad(w, "unterminated attribute value");
            w->p = q + 1;
        } else if (*w->p == '<') {
            return bad(w, "'<' inside a tag");
        } else {
            w->p++;
        }
    }
    if (w->p >= w->end)
        return bad(w, "unterminated start tag");
    if (*w->p == '/') {
        if (w->p + 1 >= w->end || w->p[1] != '>')
            return bad(w, "'/' not followed by '>' in a tag");
        w->p += 2;
        return close_element(w, fn, ctx);
    }
    w->p++;
    return IA_OK;
}

static ia_status end_tag(walker *w, ia_s3_xml_fn fn, void *ctx) {
    w->p += 2;
    const char *name = w->p;
    while (w->p < w->end && *w->p != '>' && !space(*w->p))
        w->p++;
    size_t n = (size_t)(w->p - name);
    const char *colon = memchr(name, ':', n);
    if (colon) {
        n -= (size_t)(colon + 1 - name);
        name = colon + 1;
    }
    while (w->p < w->end && space(*w->p))
        w->p++;
    if (w->p >= w->end || *w->p != '>')
        return bad(w, "unterminated end tag");
    w->p++;
    if (w->depth == 0)
        return bad(w, "end tag without a start tag");
    size_t open_at = w->marks[w->depth - 1] + (w->depth > 1);
    if (w->path_len - open_at != n || memcmp(w->path + open_at, name, n) != 0)
        return bad(w, "end tag does not match the open element");
    return close_element(w, fn, ctx);
}

static ia_status walk(walker *w, ia_s3_xml_fn fn, void *ctx) {
    ia_status st;
    const char *nul = memchr(w->p, 0, (size_t)(w->end - w->p));
    if (nul) {
        w->p = nul;
        return bad(w, "a NUL byte (not allowed anywhere in XML)");
    }
    if (starts(w, "\xEF\xBB\xBF"))
        w->p += 3;
    while (w->p < w->end) {
        if (*w->p != '<') {
            if (w->depth == 0) {
                if (!space(*w->p))
                    return bad(w, "text outside the root element");
                w->p++;
            } else if (*w->p == '&') {
                if ((st = entity(w)))
                    return st;
            } else {
                const char *q = w->p;
                while (q < w->end && *q != '<' && *q != '&')
                    q++;
                if ((st = text_add(w, w->p, (size_t)(q - w->p))))
                    return st;
                w->p = q;
            }
            continue;
        }
        if (starts(w, "<?")) {
            if (!skip_past(w, "?>"))
                return bad(w, "unterminated processing instruction");
        } else if (starts(w, "<!--")) {
            if (!skip_past(w, "-->"))
                return bad(w, "unterminated comment");
        } else if (starts(w, "<![CDATA[")) {
            if (w->depth == 0)
                return bad(w, "CDATA outside the root element");
            const char *from = w->p + 9;
            w->p = from;
            if (!skip_past(w, "]]>"))
                return bad(w, "unterminated CDATA section");
            if ((st = text_add(w, from, (size_t)(w->p - 3 - from))))
                return st;
        } else if (starts(w, "<!")) {
            return bad(w, "DOCTYPE and other declarations are not accepted");
        } else if (starts(w, "</")) {
            if ((st = end_tag(w, fn, ctx)))
                return st;
        } else if ((st = start_tag(w, fn, ctx))) {
            return st;
        }
    }
    if (w->depth != 0)
        return bad(w, "the document ends inside an element");
    if (!w->root_done)
        return bad(w, "no root element");
    return IA_OK;
}

ia_status ia_s3_xml_walk(const char *xml, size_t len, ia_s3_xml_fn fn, void *ctx) {
    walker *w = ia_calloc(1, sizeof *w);
    if (!w)
        return IA_ENOMEM;
    if (!(w->text = ia_malloc(IA_S3_XML_MAX_TEXT + 1))) {
        free(w);
        return IA_ENOMEM;
    }
    w->p = w->start = xml;
    w->end = xml + len;
    ia_status st = walk(w, fn, ctx);
    free(w->text);
    free(w);
    return st;
}

/* ---- queries ------------------------------------------------------------------------- */

typedef struct error_ctx {
    char *code, *message;
    size_t code_cap, message_cap;
    bool is_error;
} error_ctx;

static void copy_trunc(char *dst, size_t cap, const char *s, size_t n) {
    if (cap == 0)
        return;
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = 0;
}

static ia_status on_error(void *ctx, const char *path, const char *text, size_t len) {
    error_ctx *e = ctx;
    if (strcmp(path, "Error") == 0)
        e->is_error = true;
    else if (strcmp(path, "Error/Code") == 0)
        copy_trunc(e->code, e->code_cap, text, len);
    else if (strcmp(path, "Error/Message") == 0)
        copy_trunc(e->message, e->message_cap, text, len);
    return IA_OK;
}

ia_status ia_s3_xml_error(const char *xml, size_t len, char *code, size_t code_cap, char *message,
                          size_t message_cap) {
    error_ctx e = {code, message, code_cap, message_cap, false};
    copy_trunc(code, code_cap, "", 0);
    copy_trunc(message, message_cap, "", 0);
    ia_status st = ia_s3_xml_walk(xml, len, on_error, &e);
    if (st)
        return st;
    if (!e.is_error)
        return ia_error_set(IA_EPARSE, "S3 XML response: not an <Error> document");
    return IA_OK;
}

typedef struct find_ctx {
    const char *path;
    char *found;
    size_t count;
} find_ctx;

static ia_status on_find(void *ctx, const char *path, const char *text, size_t len) {
    find_ctx *f = ctx;
    if (strcmp(path, f->path) != 0)
        return IA_OK;
    f->count++;
    if (!f->found && !(f->found = ia_strndup(text, len)))
        return IA_ENOMEM;
    return IA_OK;
}

ia_status ia_s3_xml_find(const char *xml, size_t len, const char *path, char **out) {
    find_ctx f = {path, NULL, 0};
    *out = NULL;
    ia_status st = ia_s3_xml_walk(xml, len, on_find, &f);
    if (st) {
        free(f.found);
        return st;
    }
    if (!f.found)
        return ia_error_set(IA_ENOTFOUND, "S3 XML response: no <%s>", path);
    *out = f.found;
    return IA_OK;
}

static ia_status on_count(void *ctx, const char *path, const char *text, size_t len) {
    find_ctx *f = ctx;
    f->count += strcmp(path, f->path) == 0;
    return IA_OK;
}

ia_status ia_s3_xml_count(const char *xml, size_t len, const char *path, size_t *count) {
    find_ctx f = {path, NULL, 0};
    ia_status st = ia_s3_xml_walk(xml, len, on_count, &f);
    *count = f.count;
    return st;
}
