#!/usr/bin/env python3
"""Make the quantisation interop fixtures under tests/fixtures/quant_interop/.

Interop with llama.cpp both ways, recorded as files the C tests read:

  model-f16.gguf        a tiny random-weight LLaMA (hidden 256 so every
                        K-quant fits, intermediate 256, 2 layers, 4 heads of
                        64, 2 KV heads, the 500-token tokenizer of
                        tests/fixtures/decoders/llama), converted by OUR
                        `ipfs-accelerate convert --type f16`
  llamacpp-TYPE.gguf    that file quantised by llama.cpp's llama-quantize
  ours-TYPE.gguf        that file quantised by OUR `ipfs-accelerate quantize`
  logits.json           {"ids": [...], "files": {name: logits of every
                        position as llama.cpp computes them for that file}}

for TYPE in q8_0, q4_k_m and q2_k. The C test loads each file in our engine
and compares with llama.cpp's logits for the same file (so both directions
are covered: llama.cpp's quantiser read by us, our quantiser read by
llama.cpp), and re-quantises model-f16.gguf to check ours-TYPE.gguf is what
our quantiser writes today.

Needs: torch + transformers (tools/requirements.txt), a built
build/ipfs-accelerate, llama.cpp built with its tools (llama-quantize and
libllama; --llama-build, default /tmp/llamacpp/build) and its headers
(--llama-src), a C compiler for tools/llamacpp_logits.c.

Run:  python3 tools/make_quant_interop.py [--cli build/ipfs-accelerate]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

transformers.utils.logging.set_verbosity_error()

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZER_DIR = os.path.join(ROOT, "tests", "fixtures", "decoders", "llama")
TYPES = [("q8_0", "Q8_0"), ("q4_k_m", "Q4_K_M"), ("q2_k", "Q2_K")]
# A fixed sequence of token ids (BOS first): the tests need no tokenizer.
IDS = [0, 72, 310, 15, 499, 8, 250, 121, 33, 47, 401, 5, 77, 160, 2, 90]


def run(cmd, **kw):
    print("+", " ".join(cmd), file=sys.stderr)
    return subprocess.run(cmd, check=True, **kw)


def build_model(out):
    torch.manual_seed(1234)
    cfg = LlamaConfig(hidden_size=256, intermediate_size=256, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=64,
                      vocab_size=500, max_position_embeddings=256, rms_norm_eps=1e-5,
                      rope_theta=10000.0, bos_token_id=0, eos_token_id=4,
                      tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:  # norm gains away from 1
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif "embed_tokens" in name or "lm_head" in name:
                p.copy_(0.5 * torch.randn_like(p))
            else:
                p.copy_(0.06 * torch.randn_like(p))
    model.save_pretrained(out)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(TOKENIZER_DIR, f), out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", default=os.path.join(ROOT, "build", "ipfs-accelerate"))
    ap.add_argument("--llama-build", default="/tmp/llamacpp/build")
    ap.add_argument("--llama-src",
                    default="/tmp/llamacpp/llama_cpp_python-0.3.36/vendor/llama.cpp")
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "quant_interop"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    bindir = os.path.join(a.llama_build, "bin")
    with tempfile.TemporaryDirectory() as tmp:
        logits_bin = os.path.join(tmp, "llamacpp_logits")
        run(["cc", "-O2", os.path.join(ROOT, "tools", "llamacpp_logits.c"),
             "-I" + os.path.join(a.llama_src, "include"),
             "-I" + os.path.join(a.llama_src, "ggml", "include"),
             "-L" + bindir, "-lllama", "-Wl,-rpath," + bindir, "-o", logits_bin])
        hf = os.path.join(tmp, "hf")
        build_model(hf)
        src = os.path.join(a.out, "model-f16.gguf")
        run([a.cli, "convert", "--model", hf, "-o", src, "--type", "f16"])
        files = ["model-f16.gguf"]
        for ours, theirs in TYPES:
            lc = os.path.join(a.out, "llamacpp-%s.gguf" % ours)
            run([os.path.join(bindir, "llama-quantize"), src, lc, theirs],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            ow = os.path.join(a.out, "ours-%s.gguf" % ours)
            run([a.cli, "quantize", "--model", src, "--type", ours, "-o", ow, "--threads", "1"],
                stdout=subprocess.DEVNULL)
            files += [os.path.basename(lc), os.path.basename(ow)]
        result = {"ids": IDS, "files": {}}
        for f in files:
            p = run([logits_bin, os.path.join(a.out, f), ",".join(map(str, IDS))],
                    stdout=subprocess.PIPE)
            got = json.loads(p.stdout)
            result["files"][f] = [[float("%.7g" % x) for x in row] for row in got["logits"]]
        with open(os.path.join(a.out, "logits.json"), "w") as fh:
            json.dump(result, fh, separators=(",", ":"))
    print("wrote", a.out, file=sys.stderr)


if __name__ == "__main__":
    main()
