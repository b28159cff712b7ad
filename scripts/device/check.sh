#!/usr/bin/env bash
# On the GPU machine, from the repo root, after scripts/device/pack.sh here: hardware
# detection against nvidia-smi, the perf probe, plans, and the unit tests whose
# AVX-512 cases this development machine skips. Logs go to $OUT.
export LD_LIBRARY_PATH=$PWD/.devcarry/lib
B=$PWD/.devcarry/bin
export IA_SOURCE_DIR=$PWD IA_CLI=$B/ipfs-accelerate
echo "== machine"; uname -r; nproc; grep -m1 "model name" /proc/cpuinfo
grep -o -w -E 'avx512[a-z_0-9]*|amx[a-z_0-9]*|avx_vnni' /proc/cpuinfo | sort -u | tr '\n' ' '; echo
echo "== hw"; $B/ipfs-accelerate hw 2>&1 | tee $OUT/hw.txt
$B/ipfs-accelerate hw --json > $OUT/hw.json 2>&1
echo "== hw_check"; bash scripts/device/hw_check.sh $B/ipfs-accelerate; echo "hw_check rc=$?"
echo "== perf"; time $B/ipfs-accelerate hw --perf --fresh --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["perf"])'
echo "== plan"; $B/ipfs-accelerate models plan --model tests/fixtures/models/tiny-bert --batch 32 --seq 128
$B/ipfs-accelerate models plan --model tests/fixtures/gguf/llama_tiny.gguf --device cuda:0; echo "rc=$?"
$B/ipfs-accelerate embed --model tests/fixtures/models/tiny-bert --device cuda:0 hi; echo "rc=$?"
echo "== tests"
for t in test_kernels_linear test_kernels_ops test_models_encoder test_tensor_dtype test_hw_hw_host test_hw_device test_runtime_plan; do
  timeout 300 $B/$t > /tmp/$t.log 2>&1; echo "$t rc=$? $(tail -1 /tmp/$t.log)"
  { echo "#### $t"; cat /tmp/$t.log; } >> $OUT/tests.log
done
grep -h -E "skipped|FAIL|planned" $OUT/tests.log | sort | uniq -c | head -40
