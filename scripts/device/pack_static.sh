#!/usr/bin/env bash
# Packs the unit tests that hold AVX-512 cases (which this AVX2 development machine skips),
# and bench_quant_gemv, as static binaries (no shared libraries to carry: they use base/,
# tensor/, kernels/ and models/ only) into .devcarry/dev.tar.xz, small enough to travel
# beside the tracked tree. Then, on the GPU machine's host CPU: scripts/device/avx512_check.sh.
#   scripts/device/pack_static.sh [build-dir]      (after `make`)
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
link() { # name object...
  local name=$1; shift
  cc -O2 -static -o "$tmp/$name" "$@" "$build/libipfs-accelerate.a" -Wl,--as-needed \
    -ljansson -lutf8proc -lpcre2-8 -lyaml -lcrypto -lm -lpthread -ldl 2>&1 |
    grep -v -E "Using 'dlopen'|in function .hw_dlopen" || true
  strip "$tmp/$name"
}
for t in kernels_quant_kernels kernels_linear kernels_ops kernels_decoder_ops tensor_quant \
         models_encoder models_decoder models_decoder_batch; do
  link "test_$t" "$build"/tests/CMakeFiles/test_$t.dir/*/*.o
done
link bench_quant_gemv "$build/bench/CMakeFiles/bench_quant_gemv.dir/quant_gemv.c.o"
mkdir -p .devcarry
tar -C "$tmp" -cJf .devcarry/dev.tar.xz .
ls -la .devcarry/dev.tar.xz
