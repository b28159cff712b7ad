#!/usr/bin/env python3
"""Builds tests/fixtures/tokenizer/corpus.txt: varied real text for tokenizer parity.

The C tokenizer is checked line by line against HF `tokenizers` on this corpus, so it
should hold what real users send: prose in many languages (man pages in ~20
languages, /usr/share/doc), code (Python and C sources on disk), Python docstrings,
URLs and numbers, names and addresses in many scripts (faker locales when installed,
glibc locale sources always), emoji, control and zero-width characters, very long
words and mixed scripts. Everything comes from files on this machine; the selection
and the synthetic mixes are seeded, so the output is the same on every run with the
same inputs. Lines never contain '\\n' (one text per line).

Lines starting at HELDOUT_START in the shuffled pool (a separate slice, never written to
the corpus) are written to /tmp/tokenizer-train.txt for training the cased vocabulary.

Run from the repository root:  python3 tools/make_tokenizer_corpus.py
"""
import ast
import glob
import gzip
import os
import random
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizer", "corpus.txt")
TRAIN_OUT = "/tmp/tokenizer-train.txt"
SEED = 20240611
rng = random.Random(SEED)


def clean(line):
    line = line.replace("\n", " ").replace("\r", " ")
    return line.strip(" ")


def man_lines(limit_per_lang):
    """Plain text from troff man pages: lines that are not macros, escapes removed."""
    out = []
    for d in sorted(glob.glob("/usr/share/man/*")):
        files = sorted(glob.glob(os.path.join(d, "**", "*.gz"), recursive=True))
        rng.shuffle(files)
        got = []
        for path in files[:60]:
            try:
                text = gzip.open(path, "rt", encoding="utf-8", errors="strict").read()
            except (OSError, UnicodeDecodeError, EOFError):
                continue
            for ln in text.split("\n"):
                if not ln or ln.startswith((".", "'", '\\"')):
                    continue
                ln = re.sub(r"\\f[BIRP]|\\\(..|\\[-e&]|\\s[-+]?\d", "", ln)
                if len(ln) > 20:
                    got.append(ln)
        out += got[:limit_per_lang]
    return out


def doc_lines(limit):
    out = []
    files = sorted(glob.glob("/usr/share/doc/*/copyright"))
    for path in files:
        try:
            for ln in open(path, encoding="utf-8"):
                ln = ln.strip()
                if len(ln) > 15:
                    out.append(ln)
        except (OSError, UnicodeDecodeError):
            pass
    rng.shuffle(out)
    return out[:limit]


def python_sources():
    base = os.path.dirname(os.__file__)
    return sorted(glob.glob(os.path.join(base, "*.py")))


def docstrings(limit):
    out = []
    for path in python_sources():
        try:
            tree = ast.parse(open(path, encoding="utf-8").read())
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Module, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    para = " ".join(doc.split("\n\n")[0].split())
                    if len(para) > 10:
                        out.append(para)
    rng.shuffle(out)
    return out[:limit]


def code_lines(limit):
    out = []
    files = python_sources()[:200] + sorted(glob.glob("/usr/include/*.h"))[:200]
    for path in files:
        try:
            for ln in open(path, encoding="utf-8"):
                ln = ln.rstrip("\n")
                if len(ln.strip()) > 8:
                    out.append(ln)
        except (OSError, UnicodeDecodeError):
            pass
    rng.shuffle(out)
    return out[:limit]


def locale_lines():
    """Month/day names, addresses and language names from glibc locale sources."""
    out = []
    for path in sorted(glob.glob("/usr/share/i18n/locales/*")):
        try:
            text = open(path, encoding="utf-8", errors="replace").read()
        except OSError:
            continue
        words = []
        for m in re.finditer(r'"((?:<U[0-9A-Fa-f]{4,8}>)+)"', text):
            s = "".join(chr(int(h, 16)) for h in re.findall(r"<U([0-9A-Fa-f]+)>", m.group(1)))
            if len(s) > 1 and not any(ord(c) < 32 for c in s):
                words.append(s)
        for i in range(0, len(words), 6):
            out.append(" ".join(words[i:i + 6]))
    return out


def faker_lines(limit):
    try:
        import faker
    except ImportError:
        print("faker not installed: skipping its locales", file=sys.stderr)
        return []
    locales = ["ar_SA", "hi_IN", "th_TH", "zh_CN", "zh_TW", "ja_JP", "ko_KR", "ru_RU",
               "el_GR", "he_IL", "fa_IR", "uk_UA", "bn_BD", "ka_GE", "hy_AM", "ta_IN",
               "vi_VN", "tr_TR", "pl_PL", "cs_CZ", "de_DE", "fr_FR", "es_ES", "pt_BR",
               "en_US", "ne_NP", "az_AZ", "bg_BG", "hu_HU", "ro_RO"]
    out = []
    for loc in locales:
        try:
            f = faker.Faker(loc)
        except AttributeError:
            continue
        f.seed_instance(SEED)
        for _ in range(limit // len(locales)):
            kind = rng.randrange(5)
            try:
                if kind == 0:
                    out.append(f.name() + ", " + f.address().replace("\n", ", "))
                elif kind == 1:
                    out.append(f.text(max_nb_chars=200).replace("\n", " "))
                elif kind == 2:
                    out.append(f.company() + " " + f.url() + " " + f.email())
                elif kind == 3:
                    out.append(f.sentence(nb_words=12))
                else:
                    out.append(f.job() + " " + f.phone_number() + " " + f.date())
            except AttributeError:
                pass
    return out


EMOJI = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🇩🇪", "❤️", "🥰", "🦀", "✨", "🤖", "1️⃣", "🫠", "🏳️‍🌈"]
ODD = ["\u200b", "\u200c", "\u200d", "\ufeff", "\u00ad", "\u2060", "\x00", "\x01", "\x07", "\x1b",
       "\x7f", "\u0085", "\u00a0", "\u2028", "\u3000", "\t", "\u0301", "\u0130", "\u1e9e",
       "\ufffd", "\ue000", "\U0010fffd", "\u0378", "\r", "\x0b", "\x0c", "\u180e", "\u2e44",
       "\u0890", "\U00011938", "\u1734"]


def synthetic(pool, n):
    """Mixes: URLs, numbers, emoji, odd characters, long words and script mixes."""
    out = []
    words = [w for ln in pool for w in ln.split() if w]
    for i in range(n):
        kind = i % 8
        if kind == 0:
            host = rng.choice(["example.com", "huggingface.co", "ipfs.io", "github.com"])
            out.append("See https://%s/%s?q=%d&lang=%s#sec-%d for details." % (
                host, "/".join(rng.choice(words)[:12] for _ in range(3)),
                rng.randrange(10**6), rng.choice(["en", "de", "zh"]), rng.randrange(99)))
        elif kind == 1:
            out.append("%s %d,%03d.%02d %.3e %d%% -%d +%s 0x%X" % (
                rng.choice(words), rng.randrange(1000), rng.randrange(1000), rng.randrange(100),
                rng.random() * 1e6, rng.randrange(100), rng.randrange(10**9),
                str(rng.random()), rng.randrange(1 << 32)))
        elif kind == 2:
            ws = [rng.choice(words) for _ in range(rng.randrange(3, 12))]
            for _ in range(rng.randrange(1, 4)):
                ws.insert(rng.randrange(len(ws) + 1), rng.choice(EMOJI))
            out.append(" ".join(ws))
        elif kind == 3:
            ws = list(" ".join(rng.choice(words) for _ in range(rng.randrange(3, 10))))
            for _ in range(rng.randrange(1, 5)):
                ws.insert(rng.randrange(len(ws) + 1), rng.choice(ODD))
            out.append("".join(ws))
        elif kind == 4:
            w = "".join(rng.choice(words) for _ in range(rng.randrange(8, 30)))
            out.append("long %s word %s" % (w.replace(" ", "")[: rng.randrange(90, 260)],
                                           rng.choice(words)))
        elif kind == 5:
            out.append("".join(rng.choice(words) for _ in range(rng.randrange(2, 6))))
        elif kind == 6:
            out.append(" ".join(rng.choice(words) for _ in range(rng.randrange(2, 25))).upper())
        else:
            out.append("[CLS] %s [SEP] %s [MASK] [PAD][UNK]" % (rng.choice(words),
                                                              rng.choice(words)))
    return out


def main():
    pool = []
    pool += man_lines(500)
    pool += doc_lines(1500)
    pool += docstrings(2000)
    pool += code_lines(2500)
    pool += locale_lines()
    pool += faker_lines(3000)
    pool = [clean(x) for x in pool]
    pool = [x for x in pool if x and len(x.encode()) < 2000]
    pool = list(dict.fromkeys(pool))  # drop duplicates, keep order
    rng.shuffle(pool)
    held = len(pool) // 4
    train, test = pool[:held], pool[held:]
    lines = test + synthetic(test, 2500)
    lines += ["", " ", "   \t  ", "\x00\x01\x02", "\u200b\u200d", "[CLS]", "a" * 150,
              "ÀÉÎÕÜ àéîõü İstanbul ΣΊΣΥΦΟΣ ǅungla ß ẞ ﬁ", "東京タワーと北京故宫 서울", "مرحبا بالعالم",
              "नमस्ते दुनिया", "สวัสดีชาวโลก"]
    lines = [x.replace("\n", " ") for x in lines]
    rng.shuffle(lines)
    with open(OUT, "w", encoding="utf-8", newline="\n") as f:
        for ln in lines:
            f.write(ln + "\n")
    with open(TRAIN_OUT, "w", encoding="utf-8") as f:
        for ln in train:
            f.write(ln + "\n")
    print("%d corpus lines (%d bytes), %d held-out training lines"
          % (len(lines), os.path.getsize(OUT), len(train)))


if __name__ == "__main__":
    main()
