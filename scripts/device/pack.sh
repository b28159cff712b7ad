#!/usr/bin/env bash
# Packs what the device checks need into .devcarry/ (ignored by git; name it in the device
# tool's `carry`): the CLI, test and bench binaries built here, the shared libraries they
# use beyond glibc (the GPU machine's image lacks libutf8proc, libmicrohttpd, ...), and the
# small files of all-MiniLM-L6-v2 (its weights are over the transfer limit; embed_bench.sh
# makes a random-weight model of the same shape there).
#   scripts/device/pack.sh [build-dir]     then run scripts/device/check.sh or embed_bench.sh there
set -euo pipefail
build=${1:-build}
model=${IA_DEFAULT_MODEL:-$HOME/.cache/ipfs-accelerate/models/all-MiniLM-L6-v2}
rm -rf .devcarry
mkdir -p .devcarry/bin .devcarry/lib .devcarry/minilm
cp "$build/ipfs-accelerate" "$build/bench/bench_embed_engine" "$build/bench/bench_kernels" .devcarry/bin/
for t in kernels_linear kernels_ops models_encoder tensor_dtype hw_hw_host hw_device runtime_plan; do
  cp "$build/tests/test_$t" .devcarry/bin/
done
for b in .devcarry/bin/*; do ldd "$b" | awk '$3 ~ /^\// {print $3}'; done | sort -u |
  grep -v -E '/(libc|libm|libresolv|libpthread|libdl|ld-linux[^/]*)\.so' |
  while read -r lib; do cp -L "$lib" .devcarry/lib/; done
(cd "$model" && cp -r 1_Pooling config.json config_sentence_transformers.json modules.json \
  sentence_bert_config.json special_tokens_map.json tokenizer.json tokenizer_config.json \
  vocab.txt "$OLDPWD/.devcarry/minilm/")
du -sh .devcarry
