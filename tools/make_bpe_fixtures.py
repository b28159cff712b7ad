#!/usr/bin/env python3
"""Reference outputs for the BPE tokenizers of src/tokenize, from HF `tokenizers`.

Trains small tokenizers of each BPE family with HF `tokenizers` on the tokenizer corpus
itself (no hub access is needed), shaped the way the real models' tokenizer.json files are,
and records what HF says for every corpus line:

  gpt2      byte-level BPE: ByteLevel pre-tokenizer (GPT-2 regex), ByteLevel post-processor
            and decoder, <|endoftext|>
  llama3    Sequence[Split(LLaMA-3 regex, isolated), ByteLevel(use_regex false)],
            ignore_merges, Sequence[ByteLevel, TemplateProcessing(<|begin_of_text|> $A)]
  qwen2     NFC normalizer, Split(Qwen2 regex) + ByteLevel, <|im_start|> <|im_end|>
  spm       SentencePiece-style BPE as LLaMA-2's tokenizer.json has it: normalizer
            Sequence[Prepend(U+2581), Replace(" ", U+2581)], no pre-tokenizer, byte_fallback,
            fuse_unk, <0x00>..<0xFF> in the vocabulary, decoder Sequence[Replace, ByteFallback,
            Fuse, Strip(left 1)], TemplateProcessing(<s> $A)
  metaspace the spm vocabulary with the older Metaspace pre-tokenizer and decoder

For each NAME it writes, under tests/fixtures/tokenizer/:

  NAME/tokenizer.json, NAME/tokenizer_config.json (bos_token, eos_token)
  expected-NAME.txt    one line per corpus line: "<count> <fnv1a-64 of the ids, hex>" (the
                       full ids of 20k lines would be megabytes per tokenizer; the count and
                       hash pin them exactly, and `--show N` prints HF's ids of line N)
  decode-NAME.json     a sample of lines with HF's ids, decode(ids) and decode(ids,
                       skip_special_tokens=True), plus hand-made id lists (lone byte tokens,
                       special tokens, unknown ids)
  arrays-NAME.json     (gpt2, spm) the vocabulary as GGUF keeps it: tokens, scores,
                       token_type, merges, bos/eos/unk ids, add_bos

Run from the repository root:  python3 tools/make_bpe_fixtures.py [--show NAME LINE]
Versions are pinned in tools/requirements.txt.
"""
import argparse
import json
import os
import random

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, processors, trainers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
NAMES = ("gpt2", "llama3", "qwen2", "spm", "metaspace")

LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
             r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
            r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPACE = "\u2581"
BYTE_TOKENS = ["<0x%02X>" % b for b in range(256)]


def corpus_lines():
    with open(os.path.join(FIX, "corpus.txt"), encoding="utf-8", newline="\n") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def byte_level_tokenizer(pre, specials, vocab_size=2000, normalizer=None):
    tok = Tokenizer(models.BPE())
    if normalizer:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    return tok, trainer


def train_gpt2(lines):
    tok, trainer = byte_level_tokenizer(pre_tokenizers.ByteLevel(add_prefix_space=False),
                                        ["<|endoftext|>"])
    tok.train_from_iterator(lines, trainer)
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    # A non-special added token with options, as fine-tuned GPT-2 vocabularies have.
    tok.add_tokens([AddedToken("<|sep|>", lstrip=True, rstrip=False, normalized=False)])
    tok.add_tokens([AddedToken(" world peace", normalized=True)])
    return tok, {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"}


def split_byte_level(regex):
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])


def train_llama3(lines):
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
    tok, trainer = byte_level_tokenizer(split_byte_level(LLAMA3_RE), specials)
    tok.train_from_iterator(lines, trainer)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(
            single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
            special_tokens=[("<|begin_of_text|>", bos)])])
    doc = json.loads(tok.to_str())
    doc["model"]["ignore_merges"] = True
    return Tokenizer.from_str(json.dumps(doc)), {"bos_token": "<|begin_of_text|>",
                                                 "eos_token": "<|eot_id|>"}


def train_qwen2(lines):
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok, trainer = byte_level_tokenizer(split_byte_level(QWEN2_RE), specials,
                                        normalizer=normalizers.NFC())
    tok.train_from_iterator(lines, trainer)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok, {"bos_token": None, "eos_token": "<|im_end|>"}


def train_spm(lines):
    """LLaMA-2's layout: <unk> <s> </s>, then the 256 byte tokens, then merges."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    # Train with SentencePiece's word split (pieces never cross a space), then serve the
    # file the way LLaMA-2's tokenizer.json does: no pre-tokenizer at all.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="first",
                                                 split=True)
    trainer = trainers.BpeTrainer(vocab_size=2300, special_tokens=["<unk>", "<s>", "</s>"] +
                                  BYTE_TOKENS, limit_alphabet=150, show_progress=False)
    tok.train_from_iterator(lines, trainer)
    doc = json.loads(tok.to_str())
    doc["added_tokens"] = [a for a in doc["added_tokens"] if a["content"] not in BYTE_TOKENS]
    doc["model"]["byte_fallback"] = True
    doc["model"]["fuse_unk"] = True
    doc["model"]["unk_token"] = "<unk>"
    tok = Tokenizer.from_str(json.dumps(doc))
    tok.pre_tokenizer = None
    tok.normalizer = normalizers.Sequence([normalizers.Prepend(SPACE),
                                           normalizers.Replace(" ", SPACE)])
    tok.decoder = decoders.Sequence([decoders.Replace(SPACE, " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s>:1 $B:1", special_tokens=[("<s>", 1)])
    tok.add_special_tokens(["<|im_start|>"])
    return tok, {"bos_token": "<s>", "eos_token": "</s>"}


def metaspace_from(spm):
    doc = json.loads(spm.to_str())
    doc["normalizer"] = None
    tok = Tokenizer.from_str(json.dumps(doc))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="always",
                                                 split=True)
    tok.decoder = decoders.Metaspace(replacement=SPACE, prepend_scheme="always", split=True)
    return tok


def fnv(ids):
    h = 0xcbf29ce484222325
    for i in ids:
        for b in (i & 0xFFFFFFFF).to_bytes(4, "little"):
            h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def write_expected(name, tok, lines):
    encs = tok.encode_batch(lines)
    with open(os.path.join(FIX, "expected-%s.txt" % name), "w") as f:
        for e in encs:
            f.write("%d %016x\n" % (len(e.ids), fnv(e.ids)))
    return encs


def write_decode(name, tok, lines, encs):
    rnd = random.Random(4)
    picks = sorted(rnd.sample(range(len(lines)), 300))
    cases = []
    for i in picks:
        ids = encs[i].ids
        cases.append({"line": i + 1, "ids": ids, "text": tok.decode(ids, skip_special_tokens=False),
                      "skip": tok.decode(ids, skip_special_tokens=True)})
    # Hand-made id lists: every special token, lone and split byte tokens, unknown ids.
    vocab = tok.get_vocab(with_added_tokens=True)
    specials = sorted(vocab[a.content] for a in tok.get_added_tokens_decoder().values())
    extra = [specials, specials[::-1] + [5, 6, 7], [len(vocab) + 10, 5]]
    text = "Grüße, 世界! 🎉 \t  x"
    ids = tok.encode(text).ids
    extra.append(ids)
    for k in range(1, len(ids)):
        extra.append(ids[:k])  # prefixes end inside multi-byte characters
    for byte_tok in ("<0xE4>", "<0xB8>", "<0x0A>", "\u00e4", "\u00b8"):
        if byte_tok in vocab:
            extra.append([vocab[byte_tok], 5])
            extra.append([5, vocab[byte_tok]])
            extra.append([vocab[byte_tok], vocab[byte_tok], 5])
    for ids in extra:
        cases.append({"line": 0, "ids": ids, "text": tok.decode(ids, skip_special_tokens=False),
                      "skip": tok.decode(ids, skip_special_tokens=True)})
    with open(os.path.join(FIX, "decode-%s.json" % name), "w") as f:
        json.dump(cases, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


def write_arrays(name, tok, config):
    """The vocabulary as GGUF's tokenizer.ggml.* arrays hold it."""
    doc = json.loads(tok.to_str())
    model = doc["model"]
    n = max(list(model["vocab"].values()) + [a["id"] for a in doc["added_tokens"]]) + 1
    tokens = [""] * n
    types = [1] * n
    scores = [0.0] * n
    for s, i in model["vocab"].items():
        tokens[i] = s
        scores[i] = -float(i)
        if s in BYTE_TOKENS and model.get("byte_fallback"):
            types[i] = 6
    for a in doc["added_tokens"]:
        tokens[a["id"]] = a["content"]
        types[a["id"]] = 3 if a["special"] else 4
    unk = model.get("unk_token")
    if unk:
        types[model["vocab"][unk]] = 2
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    get = lambda k: tok.token_to_id(config[k]) if config.get(k) else -1
    arrays = {"model": "llama" if model.get("byte_fallback") else "gpt2",
              "pre": "default" if name == "spm" else "gpt-2",
              "tokens": tokens, "scores": scores, "token_type": types, "merges": merges,
              "bos_token_id": get("bos_token"), "eos_token_id": get("eos_token"),
              "unknown_token_id": tok.token_to_id(unk) if unk else -1,
              "add_bos_token": name == "spm", "add_eos_token": False}
    with open(os.path.join(FIX, "arrays-%s.json" % name), "w") as f:
        json.dump(arrays, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


def save(name, tok, config):
    d = os.path.join(FIX, name)
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"), pretty=False)
    cfg = dict(config, tokenizer_class="PreTrainedTokenizerFast")
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--show", nargs=2, metavar=("NAME", "LINE"),
                    help="print HF's ids and tokens for one corpus line (1-based)")
    args = ap.parse_args()
    lines = corpus_lines()
    if args.show:
        tok = Tokenizer.from_file(os.path.join(FIX, args.show[0], "tokenizer.json"))
        e = tok.encode(lines[int(args.show[1]) - 1])
        print(" ".join(map(str, e.ids)))
        print(e.tokens)
        return
    built = {}
    built["gpt2"] = train_gpt2(lines)
    built["llama3"] = train_llama3(lines)
    built["qwen2"] = train_qwen2(lines)
    built["spm"] = train_spm(lines)
    built["metaspace"] = (metaspace_from(built["spm"][0]), built["spm"][1])
    for name in NAMES:
        tok, config = built[name]
        save(name, tok, config)
        tok = Tokenizer.from_file(os.path.join(FIX, name, "tokenizer.json"))  # as committed
        encs = write_expected(name, tok, lines)
        write_decode(name, tok, lines, encs)
        if name in ("gpt2", "spm"):
            write_arrays(name, tok, config)
        print("%s: vocab %d, %d tokens over %d lines" % (name, tok.get_vocab_size(),
                                                         sum(len(e.ids) for e in encs), len(lines)))
    print("tokenizers %s" % tokenizers.__version__)


if __name__ == "__main__":
    main()
