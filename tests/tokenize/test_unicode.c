/*
 * HF's character rules for every code point.
 *
 * tests/fixtures/tokenizer/unicode-hf.txt records, for each of the 1.1M
 * scalar values, what HF `tokenizers` does with it alone: whether
 * BertNormalizer's clean_text drops it or turns it into a space, whether
 * handle_chinese_chars pads it, whether BertPreTokenizer splits on it or
 * isolates it, and what strip_accents and lowercase make of it. Our rules
 * (libutf8proc plus the generated exception tables) must agree everywhere,
 * so that text the corpus never saw still tokenises like HF.
 * Lines are "first last class" for runs that strip and lowercase to
 * themselves, else "cp class strip lower" (code points joined by '.', '-'
 * for nothing).
 */
#include "test.h"

#include "tokenize/tokenize_internal.h"

static int parse_cps(const char *s, int32_t *out) {
    if (strcmp(s, "-") == 0)
        return 0;
    int n = 0;
    while (*s && n < 8) {
        char *end;
        out[n++] = (int32_t)strtol(s, &end, 16);
        s = *end == '.' ? end + 1 : end;
    }
    return n;
}

static bool class_ok(int32_t cp, const char *cls) {
    unsigned f = tok_char_class(cp);
    bool removed = cls[0] == 'X';
    if (removed != ((f & TOK_CH_REMOVE) != 0))
        return false;
    if (!removed && (cls[0] == 'W') != ((f & TOK_CH_SPACE) != 0))
        return false;
    if ((cls[1] == 'C') != ((f & TOK_CH_CJK) != 0))
        return false;
    if ((cls[2] == 'S') != ((f & TOK_CH_SPACE) != 0))
        return false;
    return (cls[2] == 'P') == ((f & (TOK_CH_PUNCT | TOK_CH_SPACE)) == TOK_CH_PUNCT);
}

static bool same(const int32_t *a, int na, const int32_t *b, int nb) {
    return na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0;
}

TEST(every_code_point_like_hf) {
    FILE *f = fopen(test_source_path("tests/fixtures/tokenizer/unicode-hf.txt"), "r");
    if (!f) {
        CHECK_MSG(false, "cannot open unicode-hf.txt");
        return;
    }
    char line[256];
    size_t checked = 0, bad = 0;
    while (fgets(line, sizeof line, f)) {
        char a[32], b[32], c[32], d[64];
        int n = sscanf(line, "%31s %31s %31s %63s", a, b, c, d);
        if (n == 3) { /* a run with identity strip/lower */
            int32_t first = (int32_t)strtol(a, NULL, 16), last = (int32_t)strtol(b, NULL, 16);
            for (int32_t cp = first; cp <= last; cp++, checked++) {
                int32_t s[4], l[3];
                int ns = tok_char_strip(cp, s), nl = tok_char_lower(cp, l);
                if (!class_ok(cp, c) || !same(s, ns, &cp, 1) || !same(l, nl, &cp, 1))
                    if (bad++ < 20)
                        fprintf(stderr, "  U+%04X differs from HF (class %s)\n", cp, c);
            }
        } else if (n == 4) {
            int32_t cp = (int32_t)strtol(a, NULL, 16), ws[8], wl[8], s[4], l[3];
            int nws = parse_cps(c, ws), nwl = parse_cps(d, wl);
            int ns = tok_char_strip(cp, s), nl = tok_char_lower(cp, l);
            checked++;
            if (!class_ok(cp, b) || !same(s, ns, ws, nws) || !same(l, nl, wl, nwl))
                if (bad++ < 20)
                    fprintf(stderr, "  U+%04X differs from HF (class %s, strip %s, lower %s)\n", cp,
                            b, c, d);
        }
    }
    fclose(f);
    CHECK_EQ_INT(checked, 0x110000 - 0x800);
    CHECK_EQ_INT(bad, 0);
}
