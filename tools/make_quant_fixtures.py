#!/usr/bin/env python3
"""Makes the quantised-block fixtures with ggml itself (and gguf-py).

Writes, under tests/fixtures/quant/:
  input.f32        ROWS x COLS little-endian f32 values: row 0 Gaussian,
                   row 1 Gaussian x 0.02 with a few large outliers and one
                   all-zero 32-value run (the shapes real weights have)
  <type>.blocks    the input quantised by ggml's reference quantiser
                   (ggml_get_type_traits(type)->from_float_ref), per type
  <type>.f32       ggml's to_float of those blocks: what our dequantiser
                   must reproduce bit for bit
  manifest.json    rows, cols, and per type: block geometry and the RMSE of
                   ggml's round trip (the bound our k-quant encoders meet)

For the types gguf-py can quantise (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) the script
checks that gguf-py's bytes equal ggml's, and for every type that gguf-py's
dequantise equals ggml's to_float, so both references agree before anything
is written.

ggml comes from llama.cpp's libggml-base (the llama-cpp-python build):
    IA_GGML_LIB=/tmp/llamacpp/build/bin/libggml-base.so \\
        python tools/make_quant_fixtures.py
"""

import ctypes
import json
import os
import sys

import numpy as np
from gguf import quants, GGMLQuantizationType as QT

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "quant")
ROWS, COLS = 2, 512

TYPES = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]
GGUF_PY_QUANTISES = {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"}


class TypeTraits(ctypes.Structure):
    # ggml.h: struct ggml_type_traits
    _fields_ = [
        ("type_name", ctypes.c_char_p),
        ("blck_size", ctypes.c_int64),
        ("blck_size_interleave", ctypes.c_int64),
        ("type_size", ctypes.c_size_t),
        ("is_quantized", ctypes.c_bool),
        ("to_float", ctypes.c_void_p),
        ("from_float_ref", ctypes.c_void_p),
    ]


CONV = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)


def load_ggml():
    path = os.environ.get("IA_GGML_LIB", "/tmp/llamacpp/build/bin/libggml-base.so")
    lib = ctypes.CDLL(path)
    lib.ggml_get_type_traits.restype = ctypes.POINTER(TypeTraits)
    lib.ggml_get_type_traits.argtypes = [ctypes.c_int]
    return lib


def make_input():
    rng = np.random.default_rng(20261127)
    x = np.empty((ROWS, COLS), dtype=np.float32)
    x[0] = rng.standard_normal(COLS)
    x[1] = 0.02 * rng.standard_normal(COLS)
    x[1, rng.integers(0, COLS, 6)] = [0.9, -1.3, 0.5, -0.7, 1.1, -0.4]
    x[1, 64:96] = 0.0
    return x


def ggml_quantize(lib, qt, x):
    tr = lib.ggml_get_type_traits(int(qt)).contents
    nb = x.size // tr.blck_size
    out = np.zeros(nb * tr.type_size, dtype=np.uint8)
    src = np.ascontiguousarray(x, dtype=np.float32)
    CONV(tr.from_float_ref)(src.ctypes.data, out.ctypes.data, x.size)
    back = np.zeros(x.size, dtype=np.float32)
    CONV(tr.to_float)(out.ctypes.data, back.ctypes.data, x.size)
    return out, back.reshape(x.shape), int(tr.blck_size), int(tr.type_size)


def main():
    lib = load_ggml()
    os.makedirs(OUT, exist_ok=True)
    x = make_input()
    x.tofile(os.path.join(OUT, "input.f32"))
    manifest = {"rows": ROWS, "cols": COLS, "types": {}}
    for name in TYPES:
        qt = QT[name]
        blocks, back, be, bb = ggml_quantize(lib, qt, x)
        if name in GGUF_PY_QUANTISES:
            ref = quants.quantize(x, qt).reshape(-1)
            if not np.array_equal(ref, blocks):
                sys.exit(f"{name}: gguf-py and ggml quantise differently")
        py_back = quants.dequantize(blocks.reshape(ROWS, -1), qt).astype(np.float32)
        if not np.array_equal(py_back.view(np.uint32), back.view(np.uint32)):
            # gguf-py computes some types in a different order; report, keep ggml's.
            diff = np.abs(py_back - back).max()
            print(f"note: {name}: gguf-py dequantise differs from ggml by up to {diff:g}")
        blocks.tofile(os.path.join(OUT, name.lower() + ".blocks"))
        back.tofile(os.path.join(OUT, name.lower() + ".f32"))
        rmse = float(np.sqrt(np.mean((back.astype(np.float64) - x) ** 2)))
        manifest["types"][name.lower()] = {
            "block_elems": be,
            "block_bytes": bb,
            "ggml_rmse": rmse,
        }
        print(f"{name}: {blocks.size} bytes, ggml rmse {rmse:.6g}")
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
