#!/usr/bin/env python3
"""Collect real sentences available offline on this machine, for benchmarks and tests.

Sources (all local, nothing downloaded):
  * English prose: Python standard-library docstrings (parsed with ast, nothing imported),
    /usr/share/doc/** READMEs and Debian changelogs, English man pages (roff stripped).
  * Other languages: translated messages in the gettext catalogs (*.mo) under
    /usr/share/locale and /usr/share/vim (German, French, Spanish, Russian, Japanese, ...).

The text is split into paragraphs and sentences, cleaned (no e-mail addresses, URLs, code,
or mostly-punctuation lines), deduplicated, measured in all-MiniLM-L6-v2 WordPiece tokens,
and sampled deterministically (seeded) into two disjoint sets:

  bench/data/sentences.txt         --bench-n (10,000) lines for bench/embed
  tests/fixtures/minilm/sentences.txt  --test-n (1,000) lines for the MiniLM parity test

Both mix lengths from 2 words to a few hundred tokens (whole paragraphs supply the long
ones: some exceed the 256-token max_seq_length) and include some non-ASCII text.
One sentence per line, UTF-8, no tabs or newlines inside a line.

Run:  python3 tools/make_sentences.py [--seed 20240601]
"""

import argparse
import ast
import glob
import gettext
import gzip
import os
import random
import re
import sys
import sysconfig
import unicodedata

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
MINILM = os.path.expanduser("~/.cache/ipfs-accelerate/models/all-MiniLM-L6-v2")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- sources

def read_text(path):
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                data = f.read(400_000)
        else:
            with open(path, "rb") as f:
                data = f.read(400_000)
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError):
        return ""


def stdlib_docstrings():
    lib = sysconfig.get_paths()["stdlib"]
    for path in sorted(glob.glob(os.path.join(lib, "**", "*.py"), recursive=True)):
        rel = os.path.relpath(path, lib)
        if rel.startswith(("test", "idlelib/idle_test", "lib2to3/tests", "site-packages")) or "/test" in rel:
            continue
        try:
            tree = ast.parse(read_text(path))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=True)
                if doc:
                    yield doc


def doc_files():
    pats = ["/usr/share/doc/*/README*", "/usr/share/doc/*/*.txt", "/usr/share/doc/*/*.md",
            "/usr/share/doc/*/changelog*.gz", "/usr/share/doc/*/NEWS*"]
    paths = sorted({p for pat in pats for p in glob.glob(pat) if os.path.isfile(p)})
    for p in paths:
        t = read_text(p)
        if "changelog" in os.path.basename(p):
            # Debian changelog: keep the bullet text, drop headers and trailer lines.
            lines = []
            for ln in t.splitlines():
                if ln.startswith(" -- ") or re.match(r"^\S", ln):
                    lines.append("")
                    continue
                ln = re.sub(r"^\s*[*+-]\s+", "", ln)
                if re.match(r"^\s*\[", ln):  # [ Maintainer Name ]
                    lines.append("")
                    continue
                lines.append(ln)
            t = "\n".join(lines)
        yield t


ROFF_ESC = re.compile(r"\\f[0-9BIRPCV]|\\f\(..|\\f\[[^]]*\]|\\\(..|\\\[[^]]*\]|\\[&|^%e-]|\\s[+-]?\d|\\\*.|\\n.|\\")


def man_pages(limit=2500):
    paths = sorted(glob.glob("/usr/share/man/man[1-8]/*.gz"))
    for p in paths[:limit]:
        t = read_text(p)
        out = []
        for ln in t.splitlines():
            if ln.startswith((".", "'")):
                m = re.match(r"^\.(?:B|I|BI|IB|BR|RB|IR|RI|SM|SB)\s+(.*)$", ln)
                if m:
                    out.append(m.group(1).replace('"', ""))
                elif re.match(r"^\.(PP|P|LP|SH|SS|TP|IP|br|sp|HP)\b", ln):
                    out.append("")
                continue
            out.append(ln)
        t = ROFF_ESC.sub("", "\n".join(out))
        yield t


def mo_messages():
    """Translated (non-English) message strings from gettext catalogs."""
    paths = sorted(glob.glob("/usr/share/locale/*/LC_MESSAGES/*.mo") +
                   glob.glob("/usr/share/vim/vim*/lang/*/LC_MESSAGES/*.mo"))
    for p in paths:
        lang = p.split("/locale/")[-1].split("/")[0] if "/locale/" in p else p.split("/lang/")[-1].split("/")[0]
        if lang.startswith("en"):
            continue
        try:
            with open(p, "rb") as f:
                cat = gettext.GNUTranslations(f)._catalog
        except Exception:  # noqa: BLE001 - a broken catalog is just skipped
            continue
        for k in sorted(cat, key=str):
            v = cat[k]
            if isinstance(v, str) and v and not (isinstance(k, str) and k == v):
                yield lang, v


# --------------------------------------------------------------------------- cleaning

BAD = re.compile(r"@|https?://|www\.|>>>|\.\.\.\s*$|[{}\[\]<>=\\|`~$#^]|\b\w+\(\)|__\w+__|%[sdif(]|\t")


def clean(s):
    s = unicodedata.normalize("NFC", s)
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"^[*+\-•]\s+", "", s)
    return s


def acceptable(s, min_words=2, max_chars=3000):
    if not s or len(s) > max_chars or BAD.search(s):
        return False
    words = s.split()
    if len(words) < min_words:
        return False
    nonspace = [c for c in s if not c.isspace()]
    letters = sum(c.isalpha() for c in nonspace)
    if letters < 0.75 * len(nonspace):
        return False
    if not any(c.isalpha() and c.islower() for c in s) and not any(ord(c) > 0x2E80 for c in s):
        return False
    if sum(1 for w in words if len(w) > 25) > 0:  # paths, identifiers, hashes
        return False
    return True


SENT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[\"'(]?[A-Z])")


def paragraphs(text):
    for para in re.split(r"\n\s*\n", text):
        lines = [ln for ln in para.splitlines() if ln.strip()]
        if not lines:
            continue
        # Indented blocks in docs are usually code or tables.
        if sum(1 for ln in lines if ln.startswith(("    ", "\t"))) > len(lines) // 2 and len(lines) > 1:
            continue
        yield clean(" ".join(lines))


def main():
    ap = argparse.ArgumentParser(description="collect real sentences for benchmarks and tests")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--bench-n", type=int, default=10000)
    ap.add_argument("--test-n", type=int, default=1000)
    ap.add_argument("--bench-out", default=os.path.join(ROOT, "bench", "data", "sentences.txt"))
    ap.add_argument("--test-out", default=os.path.join(ROOT, "tests", "fixtures", "minilm", "sentences.txt"))
    ap.add_argument("--tokenizer", default=os.path.join(MINILM, "tokenizer.json"))
    args = ap.parse_args()

    sentences, paras = {}, {}
    n_src = 0
    for src in (stdlib_docstrings(), doc_files(), man_pages()):
        for text in src:
            n_src += 1
            for p in paragraphs(text):
                sents = [s for s in SENT_SPLIT.split(p)]
                for s in sents:
                    s = clean(s)
                    if acceptable(s) and len(s.split()) <= 120:
                        sentences.setdefault(s, "en")
                if len(sents) >= 3 and acceptable(p, min_words=60):
                    paras.setdefault(p, "en")
    multi = {}
    for lang, msg in mo_messages():
        for p in paragraphs(msg):
            for s in SENT_SPLIT.split(p):
                s = clean(s)
                if acceptable(s, min_words=3) and len(s) >= 12:
                    multi.setdefault(s, lang)
    log(f"{n_src} source texts: {len(sentences)} sentences, {len(paras)} paragraphs, "
        f"{len(multi)} translated messages in {len(set(multi.values()))} languages")

    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(args.tokenizer)
    tok.no_truncation()
    tok.no_padding()

    def ntok(items):
        keys = sorted(items)
        lens = [len(e.ids) for e in tok.encode_batch(keys)]
        return dict(zip(keys, lens))

    rng = random.Random(args.seed)
    s_len, p_len, m_len = ntok(sentences), ntok(paras), ntok(multi)
    # Each line is one of: a sentence (2..~120 tokens), a translated message, or a whole paragraph
    # (100..700 tokens) for the long tail.
    pool_s = sorted(s for s in s_len if 4 <= s_len[s] <= 160)
    pool_p = sorted(p for p in p_len if 100 <= p_len[p] <= 700)
    # Prefer languages other than the Latin-script majority for variety, capped per language.
    by_lang = {}
    for m in sorted(m_len):
        if 5 <= m_len[m] <= 120:
            by_lang.setdefault(multi[m], []).append(m)
    pool_m = []
    for lang in sorted(by_lang):
        items = by_lang[lang]
        rng.shuffle(items)
        pool_m.extend(items[:60])
    for pool in (pool_s, pool_p, pool_m):
        rng.shuffle(pool)
    log(f"pools: {len(pool_s)} sentences, {len(pool_p)} paragraphs, {len(pool_m)} translated")

    def take(pool, n):
        out = pool[:n]
        del pool[:n]
        assert len(out) == n, f"pool too small: wanted {n}, had {len(out)}"
        return out

    # Test set first (small, and it must have paragraphs past 256 tokens).
    long_p = [p for p in pool_p if p_len[p] > 270]
    test_long = long_p[:30]
    pool_p = [p for p in pool_p if p not in set(test_long)]
    t_p = test_long + take(pool_p, 70)
    t_m = take(pool_m, 80)
    t_s = take(pool_s, args.test_n - len(t_p) - len(t_m))
    test = t_s + t_p + t_m
    rng.shuffle(test)

    b_p = take(pool_p, min(600, len(pool_p)))
    b_m = take(pool_m, min(700, len(pool_m)))
    b_s = take(pool_s, args.bench_n - len(b_p) - len(b_m))
    bench = b_s + b_p + b_m
    rng.shuffle(bench)
    assert not set(bench) & set(test)

    lens = {**s_len, **p_len, **m_len}
    for path, items in ((args.test_out, test), (args.bench_out, bench)):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            for s in items:
                assert "\n" not in s and "\r" not in s
                f.write(s + "\n")
        ls = sorted(lens[s] for s in items)
        nonascii = sum(1 for s in items if any(ord(c) > 127 for c in s))
        log(f"{os.path.relpath(path, ROOT)}: {len(items)} lines, tokens min {ls[0]} median {ls[len(ls)//2]} "
            f"max {ls[-1]}, >=126: {sum(x >= 126 for x in ls)}, >256: {sum(x > 256 for x in ls)}, "
            f"non-ASCII: {nonascii}")


if __name__ == "__main__":
    main()
