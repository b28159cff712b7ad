#!/usr/bin/env python3
"""Makes the GGUF reader's fixtures with the reference `gguf` package (gguf-py).

Writes, under tests/fixtures/gguf/:
  all_types.gguf   v3, every metadata value type (nested arrays and string
                   arrays included), F32/F16/BF16/I32 tensors and one Q8_0
                   tensor quantized by gguf-py itself
  llama_tiny.gguf  a tiny llama-style metadata set (tokenizer tokens, hyper-
                   parameters), alignment 64, one F32 tensor
  expected.json    what tests/formats/test_gguf.c must read back: every key
                   with its type and value, every tensor's dims (ggml order,
                   innermost first), type, offset, size and bytes (hex)

The expected values are the Python values fed to the writer (the source of
truth); before saving, the script reads each file back with gguf.GGUFReader
and checks it agrees, so a fixture never disagrees with the reference reader.

Check mode: `--check FILE` reads a GGUF file written by OUR writer with
gguf.GGUFReader and compares it with the all_types entry of expected.json
(the C test writes such a copy when IA_GGUF_KEEP=path is set; see
tests/fixtures/gguf/README.md).

    pip install -r tools/requirements.txt   # gguf==0.19.0
    python tools/make_gguf_fixtures.py
"""

import argparse
import json
import os
import sys

import numpy as np
import gguf
from gguf import GGUFReader, GGUFValueType as VT, GGMLQuantizationType as QT

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "gguf")


def all_types_kvs():
    """(key, value, type, sub_type) in file order, after general.architecture."""
    return [
        ("test.u8", 200, VT.UINT8, None),
        ("test.i8", -100, VT.INT8, None),
        ("test.u16", 65000, VT.UINT16, None),
        ("test.i16", -32000, VT.INT16, None),
        ("test.u32", 4000000000, VT.UINT32, None),
        ("test.i32", -2000000000, VT.INT32, None),
        ("test.f32", 3.25, VT.FLOAT32, None),
        ("test.bool_true", True, VT.BOOL, None),
        ("test.bool_false", False, VT.BOOL, None),
        ("test.string", "hello, gguf \u00e9\u4e16", VT.STRING, None),
        ("test.empty_string", "", VT.STRING, None),
        ("test.u64", 18000000000000000000, VT.UINT64, None),
        ("test.i64", -9000000000000000000, VT.INT64, None),
        ("test.f64", 2.718281828459045, VT.FLOAT64, None),
        ("test.small_u64", 7, VT.UINT64, None),
        ("test.arr_u8", [1, 2, 255], VT.ARRAY, VT.UINT8),
        ("test.arr_i16", [-3, 0, 3], VT.ARRAY, VT.INT16),
        ("test.arr_i32", [1, -2, 3, -4], VT.ARRAY, VT.INT32),
        ("test.arr_u64", [0, 1 << 40], VT.ARRAY, VT.UINT64),
        ("test.arr_f32", [0.5, -1.5, 100.0], VT.ARRAY, VT.FLOAT32),
        ("test.arr_f64", [1e-300, -2.5], VT.ARRAY, VT.FLOAT64),
        ("test.arr_bool", [True, False, True], VT.ARRAY, VT.BOOL),
        ("test.arr_str", ["a", "", "three \u2603"], VT.ARRAY, VT.STRING),
        ("test.nested", [[1, 2], [3], [4, 5, 6]], VT.ARRAY, VT.ARRAY),
        ("test.nested_str", [["x", "y"], ["z"]], VT.ARRAY, VT.ARRAY),
    ]


def llama_kvs():
    tokens = ["<unk>", "<s>", "</s>", "\u2581the", "\u2581a", "b", "c", "d"]
    return [
        ("general.name", "tiny-llama-fixture", VT.STRING, None),
        ("general.file_type", 1, VT.UINT32, None),
        ("general.quantization_version", 2, VT.UINT32, None),
        ("llama.context_length", 2048, VT.UINT32, None),
        ("llama.embedding_length", 64, VT.UINT32, None),
        ("llama.block_count", 2, VT.UINT32, None),
        ("llama.feed_forward_length", 172, VT.UINT32, None),
        ("llama.attention.head_count", 4, VT.UINT32, None),
        ("llama.attention.head_count_kv", 2, VT.UINT32, None),
        ("llama.rope.freq_base", 10000.0, VT.FLOAT32, None),
        ("llama.attention.layer_norm_rms_epsilon", 1e-05, VT.FLOAT32, None),
        ("tokenizer.ggml.model", "llama", VT.STRING, None),
        ("tokenizer.ggml.tokens", tokens, VT.ARRAY, VT.STRING),
        ("tokenizer.ggml.scores", [0.0, 0.0, 0.0, -1.0, -2.0, -3.0, -4.0, -5.0],
         VT.ARRAY, VT.FLOAT32),
        ("tokenizer.ggml.token_type", [2, 3, 3, 1, 1, 1, 1, 1], VT.ARRAY, VT.INT32),
        ("tokenizer.ggml.bos_token_id", 1, VT.UINT32, None),
        ("tokenizer.ggml.eos_token_id", 2, VT.UINT32, None),
    ]


def f32_bits(x):
    """The float32 nearest x, as a Python float (what a FLOAT32 KV holds)."""
    return float(np.float32(x))


INT64_MAX = (1 << 63) - 1


def jsonable(v):
    """jansson (the C side's JSON) stops at int64: larger u64 go as strings."""
    return str(v) if isinstance(v, int) and not isinstance(v, bool) and v > INT64_MAX else v


def expected_value(value, vtype, sub_type):
    if vtype == VT.ARRAY:
        elem = sub_type if sub_type is not None else VT.get_type(value[0])
        if elem == VT.ARRAY:
            return {"type": "ARRAY", "elem_type": "ARRAY",
                    "value": [expected_value(v, VT.ARRAY, None) for v in value]}
        vals = [f32_bits(v) if elem == VT.FLOAT32 else jsonable(v) for v in value]
        return {"type": "ARRAY", "elem_type": elem.name, "value": vals}
    if vtype == VT.FLOAT32:
        value = f32_bits(value)
    return {"type": vtype.name, "value": jsonable(value)}


def make_tensors_all_types():
    rng = np.random.default_rng(1234)
    f32 = np.array([[1.5, -2.0, 3.25], [0.0, 1e-3, -7.0]], dtype=np.float32)
    f16 = np.array([0.5, -1.25, 65504.0, 1.0], dtype=np.float16)
    bf16_src = np.array([[1.0, -3.0], [0.15625, 256.0]], dtype=np.float32)
    bf16 = (bf16_src.view(np.uint32) >> 16).astype(np.uint16)
    i32 = np.array([7, -8, 9], dtype=np.int32)
    q_src = rng.standard_normal((2, 64)).astype(np.float32)
    q8 = gguf.quants.quantize(q_src, QT.Q8_0)  # uint8 rows, gguf-py's own bytes
    return [
        # (name, array to write, raw_shape or None, raw_dtype or None)
        ("weight.f32", f32, None, None),
        ("weight.f16", f16, None, None),
        ("weight.bf16", bf16, [2, 2], QT.BF16),
        ("ids.i32", i32, None, None),
        ("weight.q8_0", q8, None, QT.Q8_0),
    ]


def write_file(path, arch, kvs, tensors, alignment=None):
    w = gguf.GGUFWriter(path, arch)
    if alignment is not None:
        w.add_custom_alignment(alignment)
    for key, value, vtype, sub in kvs:
        w.add_key_value(key, value, vtype, sub_type=sub)
    for name, arr, raw_shape, raw_dtype in tensors:
        w.add_tensor(name, arr, raw_shape=raw_shape, raw_dtype=raw_dtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def describe(path, arch, kvs, alignment):
    """The expected.json entry for a file, read back with GGUFReader for the
    parts only the writer decides (order of keys, offsets)."""
    r = GGUFReader(path)
    entries = [("general.architecture", arch, VT.STRING, None)]
    if alignment is not None:
        entries.append(("general.alignment", alignment, VT.UINT32, None))
    entries += kvs
    by_key = {e[0]: e for e in entries}
    file_keys = [k for k in r.fields.keys() if not k.startswith("GGUF.")]
    assert sorted(file_keys) == sorted(by_key), (file_keys, list(by_key))
    kv_out = []
    for key in file_keys:
        _, value, vtype, sub = by_key[key]
        want = expected_value(value, vtype, sub)
        check_field(r.fields[key], want, key)
        kv_out.append(dict(key=key, **want))
    tensors = []
    for t in r.tensors:
        raw = np.asarray(t.data).tobytes()
        tensors.append({
            "name": t.name,
            "type": t.tensor_type.name,
            "type_id": int(t.tensor_type),
            "dims": [int(d) for d in t.shape],  # ggml order: innermost first
            "offset": int(t.data_offset - r.data_offset),
            "n_bytes": int(t.n_bytes),
            "hex": raw.hex(),
        })
    return {
        "version": int(r.fields["GGUF.version"].parts[0][0]),
        "alignment": int(r.alignment),
        "data_offset": int(r.data_offset),
        "kv": kv_out,
        "tensors": tensors,
    }


def field_value(field):
    """Decodes a ReaderField into the expected.json form (nested arrays
    through the raw parts, which GGUFReader.contents does not handle)."""
    main = field.types[0]
    if main != VT.ARRAY:
        return {"type": main.name, "value": jsonable(field.contents())}
    # Walk the parts: after key length, key, type: [elem_type, count, items...]
    parts = field.parts[3:]
    pos = 0

    def read_array():
        nonlocal pos
        elem = VT(int(parts[pos][0]))
        count = int(parts[pos + 1][0])
        pos += 2
        vals = []
        for _ in range(count):
            if elem == VT.ARRAY:
                vals.append(read_array())
            elif elem == VT.STRING:
                vals.append(bytes(parts[pos + 1]).decode("utf-8"))
                pos += 2
            else:
                v = parts[pos].tolist()[0]
                vals.append(bool(v) if elem == VT.BOOL else jsonable(v))
                pos += 1
        return {"type": "ARRAY", "elem_type": elem.name, "value": vals}

    return read_array()


def check_field(field, want, key):
    got = field_value(field)
    if json.dumps(got, sort_keys=True) != json.dumps(want, sort_keys=True):
        raise SystemExit(f"{key}: GGUFReader read {got}, expected {want}")


def check_ours(path, expected):
    """Compares a file written by our C writer with expected.json's entry."""
    r = GGUFReader(path)
    want = expected["files"]["all_types.gguf"]
    keys = [k for k in r.fields.keys() if not k.startswith("GGUF.")]
    want_keys = [kv["key"] for kv in want["kv"]]
    if keys != want_keys:
        raise SystemExit(f"{path}: keys {keys} differ from {want_keys}")
    for kv in want["kv"]:
        check_field(r.fields[kv["key"]], {k: v for k, v in kv.items() if k != "key"}, kv["key"])
    if len(r.tensors) != len(want["tensors"]):
        raise SystemExit(f"{path}: {len(r.tensors)} tensors, expected {len(want['tensors'])}")
    for t, wt in zip(r.tensors, want["tensors"]):
        got = (t.name, t.tensor_type.name, [int(d) for d in t.shape],
               np.asarray(t.data).tobytes().hex())
        exp = (wt["name"], wt["type"], wt["dims"], wt["hex"])
        if got != exp:
            raise SystemExit(f"{path}: tensor {got[0]} differs: {got[:3]} vs {exp[:3]}")
    print(f"{path}: gguf {gguf_version()} GGUFReader agrees with expected.json "
          f"({len(keys)} keys, {len(r.tensors)} tensors)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", metavar="FILE", help="check a file written by our writer")
    args = ap.parse_args()
    exp_path = os.path.join(OUT, "expected.json")
    if args.check:
        with open(exp_path) as f:
            check_ours(args.check, json.load(f))
        return
    os.makedirs(OUT, exist_ok=True)
    files = {}
    p = os.path.join(OUT, "all_types.gguf")
    write_file(p, "testarch", all_types_kvs(), make_tensors_all_types())
    files["all_types.gguf"] = describe(p, "testarch", all_types_kvs(), None)
    p = os.path.join(OUT, "llama_tiny.gguf")
    emb = np.arange(8 * 64, dtype=np.float32).reshape(8, 64) / 64.0
    write_file(p, "llama", llama_kvs(), [("token_embd.weight", emb, None, None)], alignment=64)
    files["llama_tiny.gguf"] = describe(p, "llama", llama_kvs(), 64)
    with open(exp_path, "w") as f:
        json.dump({"generator": f"gguf=={gguf_version()}", "files": files}, f, indent=1,
                  ensure_ascii=False)
        f.write("\n")
    print(f"wrote {OUT}")


def gguf_version():
    try:
        from importlib.metadata import version
        return version("gguf")
    except Exception:  # noqa: BLE001
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
