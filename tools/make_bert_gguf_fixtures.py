#!/usr/bin/env python3
"""Make the BERT GGUF interop fixtures under tests/fixtures/bert_gguf/.

Interop with llama.cpp both ways for BERT encoders, recorded as files the C
tests (tests/models/test_encoder_gguf.c, tests/tokenize/test_wordpiece_gguf.c)
read without llama.cpp or Python:

  tiny-bert-llamacpp-f32.gguf
      tests/fixtures/models/tiny-bert converted by llama.cpp's own
      convert_hf_to_gguf.py (--outtype f32) from the vendored llama.cpp
      source, with the installed gguf package. Its get_vocab_base_pre()
      refuses the tiny vocabulary (its fingerprint hash is no model
      llama.cpp knows) so it is patched to answer "default", the value our
      converter writes; llama.cpp's WPM tokenizer never reads the key.
  minilm-vocab-llamacpp.gguf
      all-MiniLM-L6-v2's vocabulary alone (--vocab-only), for the
      20,804-line tokenizer parity test against HF's ids.
  llamacpp-embeddings.json
      {"texts": [...], "files": {name: {"ids": [[...]], "embeddings":
      [[...]]}}}: the token ids llama.cpp's tokenizer gives and the pooled,
      unnormalised embeddings llama.cpp computes (tools/llamacpp_embed.c,
      built against libllama) for OUR converter's tiny-bert GGUF
      (tiny-bert-ours-f32.gguf, written by `ipfs-accelerate quantize
      --type f32`, committed too) and for llama.cpp's own; and under
      "minilm-q4_k_m-ours" for all-MiniLM-L6-v2 quantised by OUR
      `quantize --type q4_k_m` (not committed: the test makes it again from
      the real weights when IA_DEFAULT_MODEL is set, byte for byte the file
      llama-quantize makes).

Needs: torch + transformers + gguf (tools/requirements.txt), a built
ipfs-accelerate (--cli), llama.cpp's source (--llama-src) and a build with
libllama (--llama-build), a C compiler, and the all-MiniLM-L6-v2 directory
(--minilm, default ~/.cache/ipfs-accelerate/models/all-MiniLM-L6-v2).

Run:  python3 tools/make_bert_gguf_fixtures.py --cli build/ipfs-accelerate
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "bert_gguf")
TINY = os.path.join(ROOT, "tests", "fixtures", "models", "tiny-bert")
LLAMA = "/tmp/llamacpp/llama_cpp_python-0.3.36/vendor/llama.cpp"

TEXTS = [
    "hello world",
    "The quick brown fox jumps over the lazy dog.",
    "a b c",
]

# Runs llama.cpp's converter in-process with get_vocab_base_pre answering
# "default" (see the docstring), then its own main().
CONVERT_SHIM = r"""
import sys
sys.path.insert(0, sys.argv[1])
sys.argv = [sys.argv[1] + "/convert_hf_to_gguf.py"] + sys.argv[2:]
import runpy
import conversion.base as base
base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "default"
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run(cmd, **kw):
    print("+", " ".join(cmd[:6]), "..." if len(cmd) > 6 else "", file=sys.stderr)
    return subprocess.run(cmd, check=True, **kw)


def llama_convert(src, dst, extra, patch_pre):
    if patch_pre:
        run([sys.executable, "-c", CONVERT_SHIM, a.llama_src, src, "--outfile", dst] + extra)
    else:
        run([sys.executable, os.path.join(a.llama_src, "convert_hf_to_gguf.py"), src,
             "--outfile", dst] + extra)


def main():
    global a
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cli", default=os.path.join(ROOT, "build", "ipfs-accelerate"))
    p.add_argument("--llama-src", default=LLAMA)
    p.add_argument("--llama-build", default="/tmp/llamacpp/build")
    p.add_argument("--minilm", default=os.path.expanduser(
        "~/.cache/ipfs-accelerate/models/all-MiniLM-L6-v2"))
    a = p.parse_args()
    os.makedirs(OUT, exist_ok=True)
    theirs = os.path.join(OUT, "tiny-bert-llamacpp-f32.gguf")
    ours = os.path.join(OUT, "tiny-bert-ours-f32.gguf")
    llama_convert(TINY, theirs, ["--outtype", "f32"], True)
    llama_convert(a.minilm, os.path.join(OUT, "minilm-vocab-llamacpp.gguf"), ["--vocab-only"],
                  False)
    run([a.cli, "quantize", "--model", TINY, "--type", "f32", "-o", ours])
    bindir = os.path.join(a.llama_build, "bin")
    with tempfile.TemporaryDirectory() as tmp:
        tool = os.path.join(tmp, "llamacpp_embed")
        run(["cc", "-O2", os.path.join(ROOT, "tools", "llamacpp_embed.c"),
             "-I" + os.path.join(a.llama_src, "include"),
             "-I" + os.path.join(a.llama_src, "ggml", "include"),
             "-L" + bindir, "-lllama", "-Wl,-rpath," + bindir, "-o", tool])
        files = {}
        for path in (ours, theirs):
            r = run([tool, path] + TEXTS, capture_output=True, text=True)
            files[os.path.basename(path)] = json.loads(r.stdout)
        q4 = os.path.join(tmp, "minilm-q4_k_m.gguf")
        run([a.cli, "quantize", "--model", a.minilm, "--type", "q4_k_m", "-o", q4])
        r = run([tool, q4] + TEXTS, capture_output=True, text=True)
        files["minilm-q4_k_m-ours"] = json.loads(r.stdout)
    with open(os.path.join(OUT, "llamacpp-embeddings.json"), "w") as f:
        json.dump({"texts": TEXTS, "files": files}, f)
        f.write("\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
