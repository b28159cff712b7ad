#!/usr/bin/env python3
"""Peer embedding engines for bench/embed: sentence-transformers, ONNX Runtime, OpenVINO.

Each invocation is one fresh process that loads one engine, runs one workload and prints ONE
JSON line on stdout (the engine protocol shared with our C engine, see bench/embed):

  embed_peers.py --engine st|ort|ov --model DIR --workload fixed|corpus|latency --threads N
                 --input FILE --out-embeddings FILE.f32 [--iterations K] [--cache-dir DIR]

  {"engine", "workload", "n_sentences", "seconds", "sentences_per_s", "latencies_ms",
   "load_seconds", "threads", ...}

Workloads (timing includes tokenisation, excludes model load):
  fixed    the input's sentences as ONE batch, truncated at max_length 128, run --iterations times
  corpus   every line, max_length = the model's max_seq_length (256), batches of 32 sorted by
           the engine's own length measure, output restored to input order
  latency  one sentence per call; latencies_ms has one entry per sentence
Embeddings are pooled and normalised as the model's modules.json says (mean + Normalize for
all-MiniLM-L6-v2) and written as raw little-endian float32, n x dim, in input order (for fixed,
the last iteration's batch).

Each peer is configured at its best as bench/BENCHMARKING.md (shared/BENCHMARKING.md) says:
  st   torch.set_num_threads(N), torch.inference_mode(), the model's default attention (SDPA),
       SentenceTransformer.encode (which sorts by length itself), float32.
  ort  the transformer exported once to ONNX (input_ids, attention_mask, token_type_ids ->
       last_hidden_state; dynamic batch and sequence axes; opset 17) into --cache-dir, session
       with ORT_ENABLE_ALL, intra_op_num_threads=N, inter_op_num_threads=1, ORT_SEQUENTIAL;
       the fast HF tokenizer; pooling + normalisation in numpy.
  ov   OpenVINO compiled from the same ONNX file, INFERENCE_NUM_THREADS=N,
       INFERENCE_PRECISION_HINT=f32 (same precision class as the others), PERFORMANCE_HINT
       LATENCY for the latency workload and THROUGHPUT for batches (batches are then fed
       through an AsyncInferQueue with the compiled model's optimal number of requests, as
       OpenVINO's throughput guide describes).

load_seconds is measured from process start (the kernel's start time of this process) to
"ready": libraries imported, model and tokenizer loaded/compiled, and one warm-up encode of
a single short sentence done.
"""

import argparse
import json
import os
import sys
import time


def process_age_seconds():
    """Seconds since the kernel started this process (10 ms resolution)."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22 overall: starttime
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return float("nan")


def parse_args():
    ap = argparse.ArgumentParser(description="peer embedding engines (one workload per process)")
    ap.add_argument("--engine", required=True, choices=["st", "ort", "ov"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--workload", required=True, choices=["fixed", "corpus", "latency"])
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--out-embeddings", required=True)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--cache-dir", default=os.path.join("bench", "out", "onnx"))
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--ort-fusion", type=int, default=1,
                    help="1: run ORT's transformer optimiser on the export (default); 0: plain export")
    return ap.parse_args()


ARGS = parse_args()
N = str(ARGS.threads)
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
            "VECLIB_MAXIMUM_THREADS", "TBB_NUM_THREADS"):
    os.environ[var] = N
for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
    os.environ.pop(var, None)
os.environ["TOKENIZERS_PARALLELISM"] = "false"  # tokenisation on the calling thread for every engine
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

FIXED_MAX_LENGTH = 128


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [ln.rstrip("\n") for ln in f]


def model_settings(model_dir):
    """max_seq_length, pooling and normalisation from the sentence-transformers files."""
    max_len, pooling, normalize = 512, "mean", False
    p = os.path.join(model_dir, "sentence_bert_config.json")
    if os.path.exists(p):
        with open(p) as f:
            max_len = int(json.load(f).get("max_seq_length", max_len))
    p = os.path.join(model_dir, "modules.json")
    if os.path.exists(p):
        with open(p) as f:
            mods = json.load(f)
        normalize = any(m["type"].endswith("Normalize") for m in mods)
        for m in mods:
            if m["type"].endswith("Pooling"):
                with open(os.path.join(model_dir, m["path"], "config.json")) as f:
                    cfg = json.load(f)
                if "pooling_mode" in cfg:
                    pooling = cfg["pooling_mode"]
                else:
                    for k, v in (("pooling_mode_cls_token", "cls"), ("pooling_mode_max_tokens", "max"),
                                 ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len_tokens"),
                                 ("pooling_mode_mean_tokens", "mean")):
                        if cfg.get(k):
                            pooling = v
                            break
    return max_len, pooling, normalize


def pool_np(hidden, mask, pooling, normalize):
    mask = mask.astype(np.float32)[:, :, None]
    if pooling == "mean":
        v = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
    elif pooling == "cls":
        v = hidden[:, 0]
    elif pooling == "max":
        v = np.where(mask > 0, hidden, -1e9).max(1)
    elif pooling == "mean_sqrt_len_tokens":
        v = (hidden * mask).sum(1) / np.sqrt(np.maximum(mask.sum(1), 1e-9))
    else:
        raise SystemExit(f"unsupported pooling {pooling}")
    if normalize:
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return v.astype(np.float32)


# --------------------------------------------------------------------------- engines

class STEngine:
    name = "st"

    def __init__(self, model_dir, threads):
        import torch
        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
        from sentence_transformers import SentenceTransformer
        self.torch = torch
        self.model = SentenceTransformer(model_dir, device="cpu", model_kwargs={"dtype": torch.float32})
        self.model.eval()
        self.default_max = self.model.max_seq_length

    def encode(self, texts, max_length, batch_size):
        self.model.max_seq_length = max_length
        with self.torch.inference_mode():
            return self.model.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)

    def encode_one(self, text, max_length):
        self.model.max_seq_length = max_length
        with self.torch.inference_mode():
            return self.model.encode([text], batch_size=1, convert_to_numpy=True, show_progress_bar=False)


class OnnxBase:
    """Shared by ORT and OpenVINO: fast HF tokenizer, numpy pooling, length-sorted batches."""

    def __init__(self, model_dir, threads):
        from transformers import AutoTokenizer
        self.tok = AutoTokenizer.from_pretrained(model_dir)
        self.default_max, self.pooling, self.normalize = model_settings(model_dir)
        self.onnx_path = export_onnx(model_dir, ARGS.cache_dir, ARGS.opset)

    def feeds(self, enc):
        f = {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": enc["attention_mask"].astype(np.int64)}
        if "token_type_ids" in self.input_names:
            tt = enc.get("token_type_ids")
            f["token_type_ids"] = tt.astype(np.int64) if tt is not None else np.zeros_like(f["input_ids"])
        return f

    def tokenize(self, texts, max_length):
        return self.tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="np")

    def embed_batch(self, texts, max_length):
        enc = self.tokenize(texts, max_length)
        hidden = self.run(self.feeds(enc))
        return pool_np(hidden, enc["attention_mask"], self.pooling, self.normalize)

    def encode(self, texts, max_length, batch_size):
        # Sort by this engine's own tokenised length (without truncation/padding), longest first.
        lens = [len(x) for x in self.tok(texts, truncation=True, max_length=max_length)["input_ids"]]
        order = sorted(range(len(texts)), key=lambda i: -lens[i])
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        out = None
        for idx, emb in self.run_batches([[texts[i] for i in b] for b in batches], batches, max_length):
            if out is None:
                out = np.empty((len(texts), emb.shape[1]), dtype=np.float32)
            out[idx] = emb
        return out

    def run_batches(self, batch_texts, batch_idx, max_length):
        for texts, idx in zip(batch_texts, batch_idx):
            yield idx, self.embed_batch(texts, max_length)

    def encode_one(self, text, max_length):
        return self.embed_batch([text], max_length)


class ORTEngine(OnnxBase):
    name = "ort"

    def __init__(self, model_dir, threads):
        super().__init__(model_dir, threads)
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        path = optimize_for_ort(self.onnx_path, model_dir) if ARGS.ort_fusion else self.onnx_path
        self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.sess.get_inputs()}

    def run(self, feeds):
        return self.sess.run(["last_hidden_state"], feeds)[0]


class OVEngine(OnnxBase):
    name = "ov"

    def __init__(self, model_dir, threads, hint):
        super().__init__(model_dir, threads)
        import openvino as ov
        core = ov.Core()
        model = core.read_model(self.onnx_path)
        self.input_names = {i.get_any_name() for i in model.inputs}
        cfg = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": hint, "INFERENCE_PRECISION_HINT": "f32"}
        self.compiled = core.compile_model(model, "CPU", cfg)
        self.hint = hint
        self.nreq = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self.request = self.compiled.create_infer_request()
        self.out_port = self.compiled.output("last_hidden_state")
        self.results = []
        self.queue = None
        if hint == "THROUGHPUT" and self.nreq > 1:
            # One queue for the life of the process: destroying it from a callback thread aborts.
            self.queue = ov.AsyncInferQueue(self.compiled, self.nreq)
            self.queue.set_callback(self._done)

    def _done(self, req, userdata):
        idx, mask = userdata
        hidden = req.get_tensor(self.out_port).data
        self.results.append((idx, pool_np(hidden, mask, self.pooling, self.normalize)))

    def run(self, feeds):
        self.request.infer(feeds)
        return self.request.get_tensor(self.out_port).data.copy()

    def run_batches(self, batch_texts, batch_idx, max_length):
        if self.queue is None:
            yield from super().run_batches(batch_texts, batch_idx, max_length)
            return
        self.results = []
        for texts, idx in zip(batch_texts, batch_idx):
            enc = self.tokenize(texts, max_length)
            self.queue.start_async(self.feeds(enc), (idx, enc["attention_mask"]))
        self.queue.wait_all()
        results, self.results = self.results, []
        yield from results

    def encode_fixed(self, texts, iterations):
        """K independent copies of the one batch through the request queue (THROUGHPUT hint)."""
        last = None
        for idx, emb in self.run_batches([texts] * iterations, list(range(iterations)), FIXED_MAX_LENGTH):
            last = emb
        return last


def optimize_for_ort(onnx_path, model_dir):
    """ONNX Runtime's transformer optimiser (its documented step for BERT models on CPU): fuses
    attention, SkipLayerNormalization, bias+GELU and the embedding layer into ORT's contrib ops.
    Cached beside the plain export; only ORT runs it (OpenVINO reads the plain export)."""
    out = onnx_path.replace("model.onnx", "model.ort-fused.onnx")
    if os.path.exists(out):
        return out
    from onnxruntime.transformers.optimizer import optimize_model
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    opt = optimize_model(onnx_path, model_type="bert", num_heads=cfg["num_attention_heads"],
                         hidden_size=cfg["hidden_size"], opt_level=1, use_gpu=False)
    print("ort fusion:", opt.get_fused_operator_statistics(), file=sys.stderr)
    tmp = out + ".tmp"
    opt.save_model_to_file(tmp)
    os.replace(tmp, out)
    return out


def export_onnx(model_dir, cache_dir, opset):
    """Export the bare transformer to ONNX once (cached by model path, size and mtime)."""
    st = os.stat(os.path.join(model_dir, "model.safetensors"))
    key = f"{os.path.basename(os.path.normpath(model_dir))}-{st.st_size}-{int(st.st_mtime)}-opset{opset}"
    out_dir = os.path.join(cache_dir, key)
    path = os.path.join(out_dir, "model.onnx")
    if os.path.exists(path):
        return path
    os.makedirs(out_dir, exist_ok=True)
    import torch
    from transformers import AutoModel, AutoTokenizer
    model = AutoModel.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    enc = tok(["a short one", "a slightly longer sentence for the export"], padding=True, return_tensors="pt")
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if "token_type_ids" in enc else [])
    args = tuple(enc[n] for n in names)

    class Wrap(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, *xs):
            return self.m(**dict(zip(names, xs))).last_hidden_state

    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["last_hidden_state"] = {0: "batch", 1: "sequence"}
    tmp = path + ".tmp"
    with torch.no_grad():
        torch.onnx.export(Wrap(model), args, tmp, input_names=names, output_names=["last_hidden_state"],
                          dynamic_axes=axes, opset_version=opset, do_constant_folding=True, dynamo=False)
    os.replace(tmp, path)
    with open(os.path.join(out_dir, "export.json"), "w") as f:
        json.dump({"model": os.path.abspath(model_dir), "opset": opset, "inputs": names,
                   "torch": torch.__version__, "exporter": "torch.onnx.export (TorchScript), eager attention"}, f)
    return path


# --------------------------------------------------------------------------- main

def main():
    a = ARGS
    texts = read_lines(a.input)
    if a.engine == "st":
        eng = STEngine(a.model, a.threads)
    elif a.engine == "ort":
        eng = ORTEngine(a.model, a.threads)
    else:
        eng = OVEngine(a.model, a.threads, "LATENCY" if a.workload == "latency" else "THROUGHPUT")
    max_len = FIXED_MAX_LENGTH if a.workload == "fixed" else eng.default_max
    eng.encode_one("Warm-up sentence.", max_len)  # first-call initialisation, part of load
    load_seconds = process_age_seconds()

    lat = []
    if a.workload == "fixed":
        t0 = time.perf_counter()
        if isinstance(eng, OVEngine) and eng.queue is not None:
            emb = eng.encode_fixed(texts, a.iterations)
        else:
            for _ in range(a.iterations):
                emb = eng.encode(texts, FIXED_MAX_LENGTH, len(texts))
        seconds = time.perf_counter() - t0
        n = len(texts) * a.iterations
    elif a.workload == "corpus":
        t0 = time.perf_counter()
        emb = eng.encode(texts, max_len, a.batch_size)
        seconds = time.perf_counter() - t0
        n = len(texts)
    else:
        rows = []
        for t in texts:
            s = time.perf_counter()
            rows.append(eng.encode_one(t, max_len))
            lat.append((time.perf_counter() - s) * 1e3)
        seconds = sum(lat) / 1e3
        emb = np.concatenate(rows, axis=0)
        n = len(texts)
    np.ascontiguousarray(emb, dtype="<f4").tofile(a.out_embeddings)
    rec = {"engine": a.engine, "workload": a.workload, "n_sentences": n, "seconds": seconds,
           "sentences_per_s": n / seconds if seconds > 0 else None, "latencies_ms": lat,
           "load_seconds": load_seconds, "threads": a.threads, "dim": int(emb.shape[1])}
    if a.workload == "fixed":
        rec["iterations"] = a.iterations
    if isinstance(eng, OVEngine):
        rec["ov_hint"] = eng.hint
        rec["ov_requests"] = eng.nreq
    print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
    # Skip interpreter teardown: the result is written, and OpenVINO's worker threads can abort
    # ("Resource deadlock avoided") when its objects are destroyed during finalisation.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
