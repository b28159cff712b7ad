#!/usr/bin/env python3
"""Perplexity of a GGUF causal LM as transformers computes it, scored the way
`ipfs-accelerate quantize --eval` scores it (src/runtime/quant_eval.c).

transformers loads the GGUF itself (its GGUF integration dequantises every
tensor to float32 and undoes llama.cpp's Q/K row permutation), so the
reference shares no code with ours. The text is tokenised with HF
`tokenizers`, built from the GGUF's tokenizer.ggml.* metadata the way the
model's own tokenizer.json is built (for SmolLM2: Digits(individual) then
ByteLevel, no BOS); the ids are then cut to --tokens and scored in windows of
--window tokens, the cache reset between windows, every position but a
window's first predicting the next token: perplexity = exp(mean NLL).

    python3 tools/perplexity_transformers.py --gguf MODEL.gguf \
        --text bench/data/sentences.txt --tokens 4096 --window 512 [--json OUT]

Used for tests/fixtures/smollm2/perplexity.json (scripts/fetch-smollm2.sh
fetches the model). Needs torch, transformers, tokenizers, gguf and accelerate
(transformers refuses GGUF files without accelerate).
"""
import argparse
import hashlib
import json
import math
import os
import sys

import numpy as np
import torch
import transformers
from gguf import GGUFReader
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

# tokenizer.ggml.pre -> the pre-tokenizer of the model's tokenizer.json
PRE = {
    "smollm": lambda: pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(False, True)]
    ),
    "starcoder": lambda: pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(False, True)]
    ),
    "gpt-2": lambda: pre_tokenizers.ByteLevel(False, True),
    "default": lambda: pre_tokenizers.ByteLevel(False, True),
}

CONTROL = 3


def field(r, key):
    f = r.fields.get(key)
    return None if f is None else f.contents()


def build_tokenizer(r):
    if field(r, "tokenizer.ggml.model") != "gpt2":
        sys.exit("only byte-level BPE (tokenizer.ggml.model gpt2) GGUFs are handled here")
    pre = field(r, "tokenizer.ggml.pre") or "default"
    if pre not in PRE:
        sys.exit(f"tokenizer.ggml.pre '{pre}' is not in this tool's table")
    tokens = field(r, "tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in field(r, "tokenizer.ggml.merges")]
    types = field(r, "tokenizer.ggml.token_type")
    tok = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges))
    tok.pre_tokenizer = PRE[pre]()
    tok.decoder = decoders.ByteLevel()
    from tokenizers import AddedToken

    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == CONTROL]
    )
    bos = field(r, "tokenizer.ggml.bos_token_id") if field(r, "tokenizer.ggml.add_bos_token") else None
    return tok, bos


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--window", type=int, default=512)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", help="also write the result here")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)

    r = GGUFReader(a.gguf)
    tok, bos = build_tokenizer(r)
    with open(a.text, "rb") as f:
        raw = f.read()
    ids = tok.encode(raw.decode("utf-8"), add_special_tokens=False).ids
    if bos is not None:
        ids = [bos] + ids
    ids = ids[: a.tokens] if a.tokens else ids

    d, name = os.path.split(os.path.abspath(a.gguf))
    model = transformers.AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32)
    model.eval()

    nll, n_scored = 0.0, 0
    with torch.no_grad():
        for w0 in range(0, len(ids) - 1, a.window):
            chunk = ids[w0 : w0 + a.window]
            if len(chunk) < 2:
                break
            x = torch.tensor([chunk])
            logits = model(x).logits[0].double()
            lp = torch.log_softmax(logits, dim=-1)
            tgt = torch.tensor(chunk[1:])
            nll -= lp[:-1].gather(1, tgt[:, None]).sum().item()
            n_scored += len(chunk) - 1
    ppl = math.exp(nll / n_scored)
    out = {
        "model": name,
        "model_sha256": hashlib.sha256(open(a.gguf, "rb").read()).hexdigest(),
        "text": os.path.relpath(os.path.abspath(a.text), os.path.join(os.path.dirname(__file__), "..")),
        "text_sha256": hashlib.sha256(raw).hexdigest(),
        "tokens": len(ids),
        "ids_sha256": hashlib.sha256(np.asarray(ids, dtype="<i4").tobytes()).hexdigest(),
        "window": a.window,
        "tokens_scored": n_scored,
        "ppl_transformers": round(ppl, 6),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }
    print(json.dumps(out, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
