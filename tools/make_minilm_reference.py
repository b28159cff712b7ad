#!/usr/bin/env python3
"""Encode tests/fixtures/minilm/sentences.txt with sentence-transformers as the reference.

Loads the real all-MiniLM-L6-v2 from ~/.cache/ipfs-accelerate/models/all-MiniLM-L6-v2 (or
--model) with SentenceTransformer(device='cpu') in float32 and encodes every line (batch size 32;
the model's modules.json pipeline: Transformer, mean Pooling, Normalize; max_seq_length from
sentence_bert_config.json, 256). Writes

  tests/fixtures/minilm/reference.f32   raw little-endian float32, n x dim, row i = line i
  tests/fixtures/minilm/reference.json  n, dim, dtype, max_seq_length, normalize, versions, command

then reloads the file and checks it against a fresh encode of a sample.

Run:  HF_HUB_OFFLINE=1 python3 tools/make_minilm_reference.py
"""

import argparse
import hashlib
import json
import os
import platform
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
import sentence_transformers  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DEFAULT_MODEL = os.path.expanduser("~/.cache/ipfs-accelerate/models/all-MiniLM-L6-v2")


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [ln.rstrip("\n") for ln in f]


def main():
    ap = argparse.ArgumentParser(description="make the all-MiniLM-L6-v2 reference embeddings")
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--sentences", default=os.path.join(ROOT, "tests", "fixtures", "minilm", "sentences.txt"))
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "tests", "fixtures", "minilm"))
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    texts = read_lines(args.sentences)
    model = SentenceTransformer(args.model, device="cpu", model_kwargs={"dtype": torch.float32})
    model.eval()
    assert next(model.parameters()).dtype == torch.float32
    with open(os.path.join(args.model, "modules.json"), encoding="utf-8") as f:
        modules = json.load(f)
    normalize = any(m["type"].endswith("Normalize") for m in modules)

    t0 = time.time()
    with torch.inference_mode():
        emb = model.encode(texts, batch_size=args.batch_size, convert_to_numpy=True, show_progress_bar=False)
    secs = time.time() - t0
    emb = np.ascontiguousarray(emb, dtype="<f4")
    n, dim = emb.shape
    assert n == len(texts)
    if normalize:
        norms = np.linalg.norm(emb, axis=1)
        assert np.all(np.abs(norms - 1) < 1e-5), norms.min()

    os.makedirs(args.out_dir, exist_ok=True)
    f32 = os.path.join(args.out_dir, "reference.f32")
    emb.tofile(f32)
    tok = model.tokenizer
    lens = [len(tok(t, truncation=False)["input_ids"]) for t in texts]
    meta = {
        "n": int(n), "dim": int(dim), "dtype": "float32", "byte_order": "little", "layout": "row-major n x dim, row i = line i of sentences.txt",
        "sentences": "sentences.txt",
        "sentences_sha256": hashlib.sha256(open(args.sentences, "rb").read()).hexdigest(),
        "reference_sha256": hashlib.sha256(open(f32, "rb").read()).hexdigest(),
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "model_safetensors_sha256": hashlib.sha256(open(os.path.join(args.model, "model.safetensors"), "rb").read()).hexdigest(),
        "max_seq_length": int(model.max_seq_length),
        "pooling": "mean", "normalize": normalize, "batch_size": args.batch_size,
        "n_truncated": int(sum(x > model.max_seq_length for x in lens)),
        "max_untruncated_tokens": int(max(lens)),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__,
                     "sentence_transformers": sentence_transformers.__version__,
                     "tokenizers": __import__("tokenizers").__version__, "numpy": np.__version__},
        "command": "HF_HUB_OFFLINE=1 python3 tools/make_minilm_reference.py",
        "encode_seconds": round(secs, 2),
    }
    with open(os.path.join(args.out_dir, "reference.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")

    # Verify on reload: shape, bytes, and a fresh encode (one at a time, unbatched) of a sample.
    back = np.fromfile(f32, dtype="<f4").reshape(-1, dim)
    assert back.shape == (n, dim) and np.array_equal(back, emb)
    idx = sorted(set(list(range(0, n, max(1, n // 40))) + [int(np.argmax(lens))]))
    with torch.inference_mode():
        fresh = model.encode([texts[i] for i in idx], batch_size=1, convert_to_numpy=True, show_progress_bar=False)
    cos = np.sum(fresh * back[idx], axis=1) / (np.linalg.norm(fresh, axis=1) * np.linalg.norm(back[idx], axis=1))
    assert cos.min() > 0.99999, cos.min()
    print(f"wrote {f32}: {n} x {dim}, {meta['n_truncated']} truncated at {meta['max_seq_length']}, "
          f"encode {secs:.1f}s; reload OK, unbatched re-encode of {len(idx)} rows min cosine {cos.min():.7f}, "
          f"max abs diff {np.abs(fresh - back[idx]).max():.2e}", file=sys.stderr)


if __name__ == "__main__":
    main()
