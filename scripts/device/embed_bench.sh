#!/usr/bin/env bash
# On the GPU machine (its CPU has AVX512-BF16 and AMX), after scripts/device/pack.sh here:
# the embedding benchmark against ONNX Runtime on a random-weight model with
# all-MiniLM-L6-v2's exact shape and tokenizer (the weights cannot travel), 2 threads each.
export LD_LIBRARY_PATH=$PWD/.devcarry/lib PYTHONUNBUFFERED=1
set -e
python3 - <<'PY'
import shutil, torch, transformers
cfg = transformers.BertConfig.from_pretrained(".devcarry/minilm")
torch.manual_seed(0)
transformers.BertModel(cfg, add_pooling_layer=False).save_pretrained("/tmp/m", safe_serialization=True)
shutil.copytree(".devcarry/minilm", "/tmp/m", dirs_exist_ok=True)
print("model ready", transformers.__version__, torch.__version__)
PY
python3 -c "import onnxruntime, sentence_transformers; print('ort', onnxruntime.__version__, 'st', sentence_transformers.__version__)"
set +e
timeout 420 python3 bench/embed --engines ours,ours-bf16,ort --workloads fixed,corpus --rounds 2 \
  --corpus-limit 2000 --model /tmp/m --ours $PWD/.devcarry/bin/bench_embed_engine \
  --out /tmp/benchout --threads 2
echo "bench rc=$?"
cp /tmp/benchout/embed-latest.json $OUT/ 2>/dev/null; cp /tmp/benchout/embed-*.md $OUT/ 2>/dev/null; ls /tmp/benchout
