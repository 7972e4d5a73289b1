#!/usr/bin/env bash
# The CPU speed sweep behind docs/results.md: every backend and the settings
# that might make it faster (threads, XLA, bfloat16, torch.compile), LCReg
# against the plain model, beside the plain PyTorch reference; then one table.
#
#   bash tools/cpu_speed_sweep.sh [OUT_DIR]        # about 20 minutes on 2 cores
#
# Run it on an otherwise idle machine: other work on the same cores shows up
# as slow runs. Each setting writes OUT_DIR/<name>/step.json; the last line
# prints `python tools/benchmark.py summary --out=OUT_DIR` as Markdown.
set -u
out=${1:-runs/cpu_sweep}
steps=${STEPS:-12}
repeats=${REPEATS:-3}
limit=${LIMIT:-420}  # seconds per setting: torch.compile may compile for minutes
cd "$(dirname "$0")/.."

step() {
  local name=$1
  shift
  echo "== $name: $*"
  timeout "$limit" python tools/benchmark.py step --steps "$steps" --repeats "$repeats" \
    --variants plain,lcreg --no-reference --out "$out/$name" "$@" 2>&1 | grep -v oneDNN | grep -E "img/s|error|Error" || true
}

python tools/benchmark.py step --backends none --steps "$steps" --repeats "$repeats" \
  --torch_compile --out "$out/reference" 2>&1 | grep -E "img/s" || true
step tf_default --backends tensorflow
step tf_default_again --backends tensorflow
step tf_one_thread --backends tensorflow --threads 1
step tf_xla --backends tensorflow --jit true
step tf_bf16 --backends tensorflow --mixed_precision mixed_bfloat16
step tf_xla_bf16 --backends tensorflow --jit true --mixed_precision mixed_bfloat16
step jax_default --backends jax
step jax_bf16 --backends jax --mixed_precision mixed_bfloat16
step torch_default --backends torch
step torch_compile --backends torch --jit true
python tools/benchmark.py summary --out "$out"
