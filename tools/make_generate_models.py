#!/usr/bin/env python3
"""tools/make_generate_models.py - the random-weight models of bench/generate.

  tools/make_generate_models.py [--out bench/out/generate-models] [--which llama1b,gpt2]
                                [--ours build/ipfs-accelerate]

Makes, for each model, an HF directory (config.json + model.safetensors in float16, random
weights from a fixed seed, initialised the way transformers initialises the architecture) and
the GGUF F16 file converted from it by OUR converter (`ipfs-accelerate convert --type f16`).
The safetensors are float16 so that every engine reads the very same weight values: PyTorch
loads them (upcast to its compute type), llama.cpp and we read the F16 GGUF.

  llama1b  TinyLlama-1.1B's shape: hidden 2048, 22 layers, 32 heads, 4 kv heads (GQA),
           intermediate 5632, vocab 32000, untied head (1.10 B parameters)
  gpt2     GPT-2 124M: hidden 768, 12 layers, 12 heads, vocab 50257, context 1024, tied head

The tokenizer is the committed test fixture's of the family (tests/fixtures/decoders/<family>,
500 tokens) padded with filler tokens up to the model's vocabulary, so that the GGUF's token
list matches the embedding rows as llama.cpp requires; the benchmark feeds token ids directly.

The files are large (2.2 GB and 250 MB) and live under bench/out/ (ignored by git).
"""

import argparse
import json
import os
import subprocess
import sys

import torch

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def make_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=32000,
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=22,
        num_attention_heads=32,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
    )
    return LlamaForCausalLM(cfg)


def make_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(n_embd=768, n_layer=12, n_head=12, vocab_size=50257, n_positions=1024)
    return GPT2LMHeadModel(cfg)


MODELS = {"llama1b": (make_llama, "llama"), "gpt2": (make_gpt2, "gpt2")}


def base26(i):
    s = ""
    while True:
        s = chr(ord("a") + i % 26) + s
        i //= 26
        if i == 0:
            return s


def write_tokenizer(family, d, vocab_size):
    src = os.path.join(ROOT, "tests", "fixtures", "decoders", family)
    with open(os.path.join(src, "tokenizer.json"), encoding="utf-8") as f:
        tok = json.load(f)
    vocab = tok["model"]["vocab"]
    ids = set(vocab.values()) | {t["id"] for t in tok["added_tokens"]}
    nxt, i = max(ids) + 1, 0
    while nxt < vocab_size:
        name = "zz" + base26(i)
        i += 1
        if name not in vocab:
            vocab[name] = nxt
            nxt += 1
    with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)
    with open(os.path.join(src, "tokenizer_config.json"), encoding="utf-8") as f:
        cfg = f.read()
    with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        f.write(cfg)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out", "generate-models"))
    ap.add_argument("--which", default="llama1b,gpt2")
    ap.add_argument("--ours", default=os.path.join(ROOT, "build", "ipfs-accelerate"))
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    for name in args.which.split(","):
        d = os.path.join(args.out, name)
        gguf = os.path.join(args.out, name + "-f16.gguf")
        if not args.force and os.path.exists(gguf):
            print(f"{name}: {gguf} exists", file=sys.stderr)
            continue
        make, family = MODELS[name]
        if args.force or not os.path.exists(os.path.join(d, "model.safetensors")):
            torch.manual_seed(1234)
            with torch.no_grad():
                model = make().eval()
                model = model.to(torch.float16)
            model.save_pretrained(d, safe_serialization=True, max_shard_size="100GB")
        else:
            with torch.device("meta"):
                model = make()
        write_tokenizer(family, d, model.config.vocab_size)
        n = sum(p.numel() for p in model.parameters())
        del model
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        cfg["torch_dtype"] = "float16"
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        cmd = [args.ours, "convert", "--model", d, "-o", gguf, "--type", "f16"]
        print(f"{name}: {n / 1e6:.1f} M parameters; " + " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
