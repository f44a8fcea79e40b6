#!/usr/bin/env bash
# One short GPU check (a few minutes on an H100/H200): the GPU tests, the GPU benchmark, the kernel's profile.
#   bash scripts/gpu_check.sh          # results in $OUT if set, else artifacts/gpu_check/
# Needs python3 with torch and transformers only: no gradio, datasets, network or pip install.
# The GPU tests run under pytest when it is installed, else as the plain script they wrap.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
RESULTS="${OUT:-artifacts/gpu_check}"
mkdir -p "$RESULTS"

python3 - <<'PY' | tee "$RESULTS/device.txt"
import torch, transformers
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA GPU"
try:
    import triton
    kernel = f"triton {triton.__version__}"
except ImportError:
    kernel = "no triton (the fused check kernel is off)"
print(f"torch {torch.__version__}, transformers {transformers.__version__}, {kernel}, {gpu}")
PY

if python3 -c "import pytest" 2>/dev/null; then
  timeout 300 python3 -m pytest tests/test_gpu.py -q -rs -p no:cacheprovider -o addopts="" \
    --junitxml="$RESULTS/gpu_tests.xml" 2>&1 | tee "$RESULTS/gpu_tests.txt"
  tests_status=${PIPESTATUS[0]}
else
  echo "pytest is not installed: running the GPU checks as a plain script"
  timeout 300 python3 scripts/gpu_checks.py --json "$RESULTS/gpu_checks.json" 2>&1 | tee "$RESULTS/gpu_tests.txt"
  tests_status=${PIPESTATUS[0]}
fi

timeout 200 python3 scripts/gpu_bench.py --out "$RESULTS/gpu_bench.json" 2>&1 | tee "$RESULTS/gpu_bench.txt"
bench_status=${PIPESTATUS[0]}
# Where a verified pass spends its time: the kernel per layer (profiler) and one launch's host time.
timeout 120 python3 scripts/kernel_sweep.py --quick --profile --out "$RESULTS/kernel_sweep.json" > "$RESULTS/kernel_sweep.txt" 2>&1
[ "$?" -eq 0 ] || bench_status=1
grep '^{' "$RESULTS/kernel_sweep.txt"
grep -E '_check_kernel|cudnn_generated|Self CUDA time total' "$RESULTS/kernel_sweep.txt" | head -4

echo "gpu tests exit $tests_status, gpu benchmark exit $bench_status; results in $RESULTS"
[ "$tests_status" -eq 0 ] && [ "$bench_status" -eq 0 ]
