#!/usr/bin/env bash
# On the GPU machine (its host CPU has AVX-512), from the repo root, with .devcarry made by
# scripts/device/pack_static.sh here: runs the unit tests whose AVX-512 / VNNI cases the
# development machine skips, then bench_quant_gemv for the avx512 and avx2 variants.
# Logs go to $OUT (tests.log, gemv.txt).
set -u
d=/tmp/iadev
mkdir -p $d && tar -C $d -xJf .devcarry/dev.tar.xz
export IA_SOURCE_DIR=$PWD
echo "== machine"; nproc; grep -m1 "model name" /proc/cpuinfo
grep -o -w -E 'avx512[a-z_0-9]*|amx[a-z_0-9]*|avx_vnni' /proc/cpuinfo | sort -u | tr '\n' ' '; echo
echo "== tests"
for t in $d/test_*; do
  n=$(basename "$t")
  timeout 240 taskset -c 0,1 "$t" > /tmp/$n.log 2>&1
  echo "$n rc=$? $(tail -n 1 /tmp/$n.log)"
  { echo "#### $n"; cat /tmp/$n.log; } >> $OUT/tests.log
done
echo "== skipped or failed cases"; grep -h -E "^(SKIP|FAIL)" $OUT/tests.log | sort | uniq -c
echo "== bench_quant_gemv (2 threads)"
for v in avx512 avx2; do for ty in ${IA_GEMV_TYPES:-f16 q8_0 q4_k q2_k}; do
  timeout 60 taskset -c 0,1 $d/bench_quant_gemv 2 $v $ty 2>&1 | tee -a $OUT/gemv.txt
done; done
