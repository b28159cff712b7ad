#!/usr/bin/env python3
"""bench/serve_concurrency.py - aggregate generation tokens/s of `ipfs-accelerate serve` at
several client concurrencies: what continuous batching buys.

  bench/serve_concurrency.py --cli build/ipfs-accelerate --model bench/out/generate-models/gpt2-f16.gguf
                             [--threads 2] [--concurrency 1,4,8] [--parallel 8,1]
                             [--max-tokens 48] [--rounds 1]

For each --parallel value (the server's generation slots; 1 is one sequence at a time, the
server before continuous batching) it starts one server on a free port, waits until it is
ready, and for each concurrency c runs c client threads that each send `rounds` /v1/completions
requests back to back (a short prompt, max_tokens tokens, temperature 0.8, a seed per request),
all released together. It prints, per (parallel, c): wall time, completion tokens (from each
answer's usage), aggregate tokens/s, mean per-request latency, and the server's mean decode batch
size from /metrics (ia_generation_batch_sequences). Only the Python standard library is used.

Take the bench lock around it (mkdir /tmp/BENCH_LOCK.d ... rmdir), see the working rules.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request


def post(url, body, timeout=600):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read().decode()


def start_server(cli, model, threads, parallel):
    args = [cli, "serve", "--model", "m=" + model, "--port", "0", "--threads", str(threads),
            "--parallel", str(parallel), "--max-queue", "1024"]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    base = None
    deadline = time.time() + 300
    while time.time() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        m = re.search(r"serving on (http://\S+)", line)
        if m:
            base = m.group(1).rstrip("/")
        if base and "ready" in line:
            return p, base
    p.kill()
    raise SystemExit("the server did not become ready: %s" % " ".join(args))


def batch_stats(base):
    text = get(base + "/metrics")
    n = re.search(r"^ia_generation_batch_sequences_count (\S+)", text, re.M)
    s = re.search(r"^ia_generation_batch_sequences_sum (\S+)", text, re.M)
    return (float(n.group(1)) if n else 0.0), (float(s.group(1)) if s else 0.0)


def run_level(base, conc, rounds, max_tokens, seed0):
    go = threading.Barrier(conc)
    results = []
    lock = threading.Lock()

    def client(k):
        go.wait()
        for r in range(rounds):
            body = {"model": "m", "prompt": "Once upon a time %d" % k, "max_tokens": max_tokens,
                    "temperature": 0.8, "seed": seed0 + k * 1000 + r}
            t0 = time.time()
            ans = post(base + "/v1/completions", body)
            with lock:
                results.append((time.time() - t0, ans["usage"]["completion_tokens"]))

    n0, s0 = batch_stats(base)
    threads = [threading.Thread(target=client, args=(k,)) for k in range(conc)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - t0
    n1, s1 = batch_stats(base)
    tokens = sum(r[1] for r in results)
    lat = sum(r[0] for r in results) / max(1, len(results))
    mean_batch = (s1 - s0) / (n1 - n0) if n1 > n0 else 0.0
    return wall, tokens, lat, mean_batch


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cli", default="build/ipfs-accelerate")
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--concurrency", default="1,4,8")
    ap.add_argument("--parallel", default="8,1")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()
    levels = [int(x) for x in a.concurrency.split(",")]
    print("model %s, %d threads, %d tokens a request, %d request(s) per client"
          % (os.path.basename(a.model), a.threads, a.max_tokens, a.rounds))
    print("%-9s %-6s %8s %8s %10s %12s %10s" % ("parallel", "conc", "wall s", "tokens",
                                                  "tokens/s", "latency s", "batch"))
    for par in [int(x) for x in a.parallel.split(",")]:
        p, base = start_server(a.cli, a.model, a.threads, par)
        try:
            run_level(base, 1, 1, 4, 1)  # warm-up: pages in the weights
            for c in levels:
                wall, tokens, lat, mb = run_level(base, c, a.rounds, a.max_tokens, 7)
                print("%-9d %-6d %8.2f %8d %10.2f %12.2f %10.2f"
                      % (par, c, wall, tokens, tokens / wall, lat, mb))
                sys.stdout.flush()
        finally:
            p.terminate()
            p.wait()


if __name__ == "__main__":
    main()
