#!/usr/bin/env bash
# One-go GPU benchmark for a lent H100/H200 (or any CUDA machine): synthetic
# ResNet-50 224x224, bf16, batch 256, with and without LCReg, TensorFlow and
# JAX backends, XLA on and off where the backend lets it be chosen. Writes one
# JSON per run to OUT and a summary to stdout. Budget: under 8 minutes.
#
#   bash tools/gpu_benchmark.sh OUT_DIR [STEPS]
#
# It needs keras, tensorflow (GPU build for the TensorFlow rows) and jax with
# CUDA in the interpreter it finds (`python3`, or $PYTHON). Where a package is
# missing on the device, carry wheels (see the device tool's notes) and put
# them on PYTHONPATH before calling this script. A failing row is reported
# and the others still run; each run has its own time limit.
set -uo pipefail
out=${1:?usage: tools/gpu_benchmark.sh OUT_DIR [STEPS]}
steps=${2:-30}
python=${PYTHON:-python3}
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>&1 || true
"$python" - <<'PY' > "$out/versions.txt" 2>&1 || true
import importlib
for name in ("keras", "tensorflow", "jax", "jaxlib", "numpy"):
    try:
        print(name, importlib.import_module(name).__version__)
    except Exception as error:
        print(name, "missing:", error)
PY
run() {  # name, time limit (s), benchmark.py arguments
  local name=$1 limit=$2; shift 2
  echo "== $name"
  timeout "$limit" "$python" "$here/tools/benchmark.py" step --gpu --steps="$steps" \
    --variants=plain,lcreg --no-reference --out="$out/$name" "$@" 2>&1 | tail -n 8
  echo "   exit ${PIPESTATUS[0]}"
}
run tensorflow_xla 150 --backends=tensorflow --jit=true
run tensorflow_noxla 120 --backends=tensorflow --jit=false
run jax 150 --backends=jax
"$python" "$here/tools/benchmark.py" summary --out="$out"
echo "== results in $out"
