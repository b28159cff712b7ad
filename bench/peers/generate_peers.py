#!/usr/bin/env python3
"""bench/peers/generate_peers.py - the PyTorch (transformers) peer of bench/generate.

  generate_peers.py --model HF_DIR [--pp 512] [--tg 128] [--reps 1] [--threads 2]
                    [--dtype float32|bfloat16] [--out-logits FILE.f32] [--no-warmup]

The same protocol and tests as bench/generate_engine.c (llama-bench's pp/tg): pp N is one
forward of N tokens into an empty KV cache keeping the last token's logits only
(logits_to_keep=1); tg N is N one-token forwards with the KV cache (DynamicCache) from an empty
cache, tokens fed without sampling. At its best per BENCHMARKING.md: torch.set_num_threads(N),
torch.inference_mode(), the model's default attention (SDPA), weights in --dtype (the float16
safetensors upcast at load). One warm-up of each test before the timed ones. Prints one JSON line.
"""

import argparse
import json
import time


def bench_token(i, vocab):
    return (i * 7919 + 13) % vocab


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--pp", type=int, default=512)
    ap.add_argument("--tg", type=int, default=128)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--out-logits")
    ap.add_argument("--no-warmup", action="store_true")
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, DynamicCache

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    t0 = time.perf_counter()
    dtype = getattr(torch, args.dtype)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype).eval()
    load_s = time.perf_counter() - t0
    vocab = model.config.vocab_size
    n = max(args.pp, args.tg)
    toks = torch.tensor([[bench_token(i, vocab) for i in range(n)]], dtype=torch.long)

    def run_pp(keep=False):
        cache = DynamicCache(config=model.config)
        t = time.perf_counter()
        out = model(input_ids=toks[:, :args.pp], past_key_values=cache, use_cache=True, logits_to_keep=1)
        s = time.perf_counter() - t
        return s, out.logits[0, -1].float() if keep else None

    def run_tg(steps):
        cache = DynamicCache(config=model.config)
        t = time.perf_counter()
        for i in range(steps):
            out = model(input_ids=toks[:, i:i + 1], past_key_values=cache, use_cache=True)
            cache = out.past_key_values
        return time.perf_counter() - t

    rec = {"engine": "torch", "dtype": args.dtype, "threads": args.threads, "load_seconds": round(load_s, 3),
           "pp": args.pp, "tg": args.tg, "torch": torch.__version__,
           "attn": getattr(model.config, "_attn_implementation", None)}
    with torch.inference_mode():
        if args.pp > 0:
            if not args.no_warmup or args.out_logits:
                _, logits = run_pp(keep=True)
                if args.out_logits:
                    logits.numpy().astype("float32").tofile(args.out_logits)
            pp_s = [run_pp()[0] for _ in range(args.reps)]
            rec["pp_seconds"] = [round(x, 4) for x in pp_s]
            rec["pp_tokens_per_s"] = args.pp / sorted(pp_s)[len(pp_s) // 2]
        if args.tg > 0:
            if not args.no_warmup:
                run_tg(1)
            tg_s = [run_tg(args.tg) for _ in range(args.reps)]
            rec["tg_seconds"] = [round(x, 4) for x in tg_s]
            rec["tg_tokens_per_s"] = args.tg / sorted(tg_s)[len(tg_s) // 2]
    print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
