#!/usr/bin/env python3
r"""Peer embedding engines for bench/embed: sentence-transformers, ONNX Runtime, OpenVINO, and the
int8 variants of the last two.

Each invocation is one fresh process that loads one engine, runs one workload and prints ONE
JSON line on stdout (the engine protocol shared with our C engine, see bench/embed):

  embed_peers.py --engine st|ort|ov|ort-int8|ov-int8 --model DIR --workload fixed|corpus|latency --threads N
                 --input FILE --out-embeddings FILE.f32 [--iterations K] [--cache-dir DIR]

  {"engine", "workload", "n_sentences", "seconds", "sentences_per_s", "latencies_ms",
   "load_seconds", "threads", "model_files": {path: bytes}, "model_bytes", ...}

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
  ort-int8  ONNX Runtime's dynamic quantization (its documented int8 path for transformers on
       CPU: optimise, then quantize): the fused model that `ort` runs (model.ort-fused.onnx) through
       onnxruntime.quantization.quantize_dynamic(weight_type=QuantType.QInt8,
       per_channel=--ort-int8-per-channel (default 1), reduce_range=--ort-int8-reduce-range
       (default 0), op_types_to_quantize=--ort-int8-ops (default all: ORT's whole integer-op
       registry, i.e. MatMul -> MatMulInteger, Attention -> QAttention, EmbedLayerNormalization
       and Gather with int8 tables; activations quantised to uint8 per tensor at run time),
       nodes_to_exclude=the nodes whose names match --ort-int8-exclude (default none),
       extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT} (shape inference cannot type
       the fused contrib ops' outputs)). Cached beside the fp32 export as
       model.ort-fused.int8[-pc][-rr][-OPS][-xHASH].onnx. Session options as for `ort`.
       Per-channel is the default because per-tensor is unusable here: mean cosine to
       sentence-transformers fp32 0.947 (min 0.883) on the fixed 32 x 128 batch, per-channel
       0.992 (2026-11-27, AMD EPYC AVX2 without VNNI; reduce_range changed nothing, 0.9916).
       Even per-channel misses issue 5's mean-cosine bound 0.995 (corpus 0.9915, latency 0.990,
       first 64 sentences), almost all of it from the FFN-down MatMuls, whose GELU inputs
       quantise badly per tensor: without them (--ort-int8-ops MatMul+Attention
       --ort-int8-exclude 'layer\.\d+/output/dense', 2/3 of the GEMM work int8) corpus 0.9952,
       latency 0.9945; Attention alone (QKV, 1/4 of the work) 0.9984. bench/embed's engine
       variants (ort-int8:per-channel=0, ort-int8:ops=...:exclude=...) time these side by side.
  ov-int8  OpenVINO with int8 weights, without a calibration set, mode --ov-int8-mode:
       nncf-int8-asym (default) / nncf-int8-sym: the plain ONNX export read by OpenVINO, then
         nncf.compress_weights(model, mode=CompressWeightsMode.INT8_ASYM / INT8_SYM) (NNCF's
         data-free int8 weight compression, per output channel, of every MatMul and the
         embedding Gathers), saved once as IR (openvino.save_model, compress_to_fp16=False)
         beside the export and loaded from there; the CPU plugin decompresses the int8 weights
         inside its FullyConnected kernels and may quantise activations on the fly
         (DYNAMIC_QUANTIZATION_GROUP_SIZE: --ov-int8-dq-group, plugin default when 0; this
         machine's plugin reports 32). Accuracy: mean cosine 0.99964 (corpus), 0.99959 (fixed);
         sym 0.99933 (fixed).
       ort-dynamic: OpenVINO reading ORT's dynamically quantised ONNX of the plain (unfused)
         export (DynamicQuantizeLinear + MatMulInteger, which its ONNX frontend imports); mean
         cosine 0.9934 (fixed), below 0.995.
       Same compile options as `ov` (INFERENCE_NUM_THREADS, PERFORMANCE_HINT per workload,
       INFERENCE_PRECISION_HINT f32 for the parts that are not int8). INT8_ASYM is NNCF's default
       int8 mode; which mode is fastest was not settled (the machine was loaded while this was
       written): time ov-int8:mode=nncf-int8-sym and ov-int8:mode=ort-dynamic beside it.
  Model sizes: model_files gives the bytes of every file the engine loads (ONNX, IR .xml+.bin,
  safetensors), model_bytes their sum.

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
    ap.add_argument("--engine", required=True, choices=["st", "ort", "ov", "ort-int8", "ov-int8"])
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
    ap.add_argument("--ort-int8-per-channel", type=int, default=None,
                    help=f"ort-int8: 1 per-channel weight scales, 0 per-tensor "
                         f"(default {ORT_INT8_PER_CHANNEL_DEFAULT})")
    ap.add_argument("--ort-int8-reduce-range", type=int, default=0,
                    help="ort-int8 (and ov-int8 ort-dynamic): 1 quantise weights to 7 bits (quantize_dynamic "
                         "reduce_range)")
    ap.add_argument("--ort-int8-ops", default=ORT_INT8_OPS_DEFAULT,
                    help="ort-int8: op types quantize_dynamic quantises (op_types_to_quantize), separated by ',' "
                         "or '+'; "
                         "'all' for its whole integer-op registry")
    ap.add_argument("--ort-int8-exclude", default=ORT_INT8_EXCLUDE_DEFAULT,
                    help="ort-int8: keep in float the nodes whose names match this regular expression "
                         "(re.search; quantize_dynamic nodes_to_exclude); '' for none")
    ap.add_argument("--ov-int8-mode", default=OV_INT8_MODE_DEFAULT, choices=list(OV_INT8_MODES))
    ap.add_argument("--ov-int8-dq-group", type=int, default=0,
                    help="ov-int8: CPU DYNAMIC_QUANTIZATION_GROUP_SIZE (0: the plugin's default)")
    a = ap.parse_args()
    if a.ort_int8_per_channel is None:
        a.ort_int8_per_channel = ORT_INT8_PER_CHANNEL_DEFAULT
    return a


ORT_INT8_PER_CHANNEL_DEFAULT = 1
ORT_INT8_OPS_DEFAULT = "all"
ORT_INT8_EXCLUDE_DEFAULT = ""
OV_INT8_MODES = ("nncf-int8-asym", "nncf-int8-sym", "ort-dynamic")
OV_INT8_MODE_DEFAULT = "nncf-int8-asym"
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
        self.model_files = [os.path.join(model_dir, "model.safetensors")]

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

    def __init__(self, model_dir, threads, int8=False):
        super().__init__(model_dir, threads)
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        path = optimize_for_ort(self.onnx_path, model_dir) if ARGS.ort_fusion else self.onnx_path
        if int8:
            self.name = "ort-int8"
            path = quantize_for_ort(path, ARGS.ort_int8_per_channel, ARGS.ort_int8_reduce_range, ARGS.ort_int8_ops,
                                    ARGS.ort_int8_exclude)
            self.info = {"ort_int8": {"per_channel": bool(ARGS.ort_int8_per_channel), "op_types": ARGS.ort_int8_ops,
                                      "exclude": ARGS.ort_int8_exclude,
                                      "reduce_range": bool(ARGS.ort_int8_reduce_range),
                                      "weight_type": "QInt8", "fused_first": bool(ARGS.ort_fusion)}}
        self.model_files = [path]
        self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.sess.get_inputs()}

    def run(self, feeds):
        return self.sess.run(["last_hidden_state"], feeds)[0]


class OVEngine(OnnxBase):
    name = "ov"

    def __init__(self, model_dir, threads, hint, int8=False):
        super().__init__(model_dir, threads)
        import openvino as ov
        core = ov.Core()
        cfg = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": hint, "INFERENCE_PRECISION_HINT": "f32"}
        if int8:
            self.name = "ov-int8"
            self.model_files = ov_int8_model(self.onnx_path, ARGS.ov_int8_mode)
            model = core.read_model(self.model_files[0])
            if ARGS.ov_int8_dq_group:
                cfg["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = ARGS.ov_int8_dq_group
            self.info = {"ov_int8": {"mode": ARGS.ov_int8_mode,
                                     "dynamic_quantization_group_size": ARGS.ov_int8_dq_group}}
        else:
            self.model_files = [self.onnx_path]
            model = core.read_model(self.onnx_path)
        self.input_names = {i.get_any_name() for i in model.inputs}
        self.compiled = core.compile_model(model, "CPU", cfg)
        self.hint = hint
        try:
            self.info = dict(getattr(self, "info", {}), ov_dq_group_effective=str(
                self.compiled.get_property("DYNAMIC_QUANTIZATION_GROUP_SIZE")))
        except Exception:  # noqa: BLE001 - property absent in some builds
            pass
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


def quantize_for_ort(onnx_path, per_channel, reduce_range, ops="all", exclude=""):
    """onnxruntime.quantization.quantize_dynamic of onnx_path (QInt8 weights), cached beside it."""
    import hashlib
    op_types = None if ops == "all" else [o for o in ops.replace("+", ",").split(",") if o]
    import re
    excl = re.compile(exclude) if exclude else None
    tag = ".int8" + ("-pc" if per_channel else "") + ("-rr" if reduce_range else "") + \
        ("" if op_types is None else "-" + "-".join(op_types)) + \
        ("" if not excl else "-x" + hashlib.sha256(exclude.encode()).hexdigest()[:8])
    out = onnx_path[:-len(".onnx")] + tag + ".onnx"
    if os.path.exists(out):
        return out
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    tmp = out[:-len(".onnx")] + ".tmp.onnx"
    t0 = time.perf_counter()
    nodes_to_exclude = []
    if excl:
        g = onnx.load(onnx_path, load_external_data=False).graph
        nodes_to_exclude = [n.name for n in g.node if excl.search(n.name)]
    # ONNX shape inference cannot type the outputs of ORT's fused contrib ops (Attention,
    # SkipLayerNormalization, ...); every tensor in this model is float32, which DefaultTensorType says.
    quantize_dynamic(onnx_path, tmp, weight_type=QuantType.QInt8, per_channel=bool(per_channel),
                     reduce_range=bool(reduce_range), op_types_to_quantize=op_types, nodes_to_exclude=nodes_to_exclude,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    os.replace(tmp, out)
    print(f"ort int8: quantize_dynamic({os.path.basename(onnx_path)}, per_channel={bool(per_channel)}, "
          f"reduce_range={bool(reduce_range)}, op_types_to_quantize={op_types}, "
          f"{len(nodes_to_exclude)} nodes excluded ({exclude!r})) -> {out} in {time.perf_counter() - t0:.1f}s",
          file=sys.stderr)
    return out


def ov_int8_model(onnx_path, mode):
    """The files OpenVINO loads for ov-int8 (first: the one to read_model), made once and cached."""
    if mode == "ort-dynamic":
        return [quantize_for_ort(onnx_path, ARGS.ort_int8_per_channel, ARGS.ort_int8_reduce_range)]
    xml = onnx_path[:-len(".onnx")] + f".ov-{mode}.xml"
    files = [xml, xml[:-len(".xml")] + ".bin"]
    if all(os.path.exists(f) for f in files):
        return files
    import nncf
    import openvino as ov
    t0 = time.perf_counter()
    model = ov.Core().read_model(onnx_path)
    cmode = {"nncf-int8-asym": nncf.CompressWeightsMode.INT8_ASYM,
             "nncf-int8-sym": nncf.CompressWeightsMode.INT8_SYM}[mode]
    model = nncf.compress_weights(model, mode=cmode)
    tmp = xml[:-len(".xml")] + ".tmp.xml"
    ov.save_model(model, tmp, compress_to_fp16=False)
    os.replace(tmp[:-len(".xml")] + ".bin", files[1])
    os.replace(tmp, xml)
    print(f"ov int8: nncf {nncf.__version__} compress_weights(mode={cmode}) -> {xml} in "
          f"{time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return files


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
    elif a.engine in ("ort", "ort-int8"):
        eng = ORTEngine(a.model, a.threads, int8=a.engine == "ort-int8")
    else:
        eng = OVEngine(a.model, a.threads, "LATENCY" if a.workload == "latency" else "THROUGHPUT",
                       int8=a.engine == "ov-int8")
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
    rec.update(getattr(eng, "info", {}))
    files = getattr(eng, "model_files", None) or []
    rec["model_files"] = {os.path.abspath(f): os.path.getsize(f) for f in files if os.path.exists(f)}
    rec["model_bytes"] = sum(rec["model_files"].values()) if files else None
    print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
    # Skip interpreter teardown: the result is written, and OpenVINO's worker threads can abort
    # ("Resource deadlock avoided") when its objects are destroyed during finalisation.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
