#!/usr/bin/env bash
# One short GPU check that fits a 10-minute window: recbench's `gpu` scenario (bench/scenarios/gpu.py) on ML-100K.
#
#   scripts/gpu_check.sh                 # results under reports/gpu/<run_id>/
#   OUT=/tmp/r BUDGET_S=480 RECBENCH_INSTANCE=g5.xlarge scripts/gpu_check.sh
#
# Needs, already on the machine (GPU hosts often have no network): a Python with recbench installed
# (`pip install -e .` with a CUDA build of torch), `onnxruntime-gpu` in place of `onnxruntime` for the onnx
# cells (without it they fail with one line and the rest run), and ML-100K in the data cache or a directory
# named by DATA_FROM (u.data + u.item, the recbole wheel, or ml-100k.zip). RECBENCH_INSTANCE prices the GPU cells
# as that price-sheet entry (without it GPU cells carry no $ figure; one H100: p5.48xlarge-per-gpu);
# RECBENCH_ARGS adds arguments to `recbench run` (e.g. --no-report where only results files come back).
# The run is stopped with SIGINT at BUDGET_S seconds: results written so far stay valid (one file per cell).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
OUT="${OUT:-reports/gpu}"
BUDGET_S="${BUDGET_S:-540}"

echo "== environment"
"$PY" - <<'EOF'
import sys
try:
    import torch
except ImportError:
    sys.exit("gpu_check: torch is not installed in this Python; install recbench with a CUDA build of torch")
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}); cuda available: {torch.cuda.is_available()}")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"device: {p.name}, {p.total_memory / 2**30:.1f} GiB, compute capability {p.major}.{p.minor}, "
          f"bf16: {torch.cuda.is_bf16_supported()}")
try:
    import onnxruntime as ort
    # ONNX Runtime finds CUDA/cuDNN from the torch wheels once torch is imported (or after preload_dlls)
    if hasattr(ort, "preload_dlls"):
        ort.preload_dlls()
    providers = ort.get_available_providers()
    print(f"onnxruntime {ort.__version__}: {', '.join(providers)}")
    if "CUDAExecutionProvider" not in providers:
        print("  no CUDAExecutionProvider: the onnx cells will fail (pip install onnxruntime-gpu)")
except ImportError:
    print("onnxruntime is not installed: the onnx cells will fail")
EOF

echo "== data"
"$PY" -m bench data fetch ml-100k ${DATA_FROM:+--from "$DATA_FROM"}

echo "== recbench run gpu (stopped at ${BUDGET_S} s)"
status=0
timeout --signal=INT --kill-after=30 "$BUDGET_S" \
    "$PY" -m bench run gpu --out "$OUT" ${RECBENCH_INSTANCE:+--instance "$RECBENCH_INSTANCE"} ${RECBENCH_ARGS:-} || status=$?
case "$status" in
    0) echo "gpu_check: every cell measured" ;;
    1) echo "gpu_check: some cells failed; each failed row says why (results.csv, flag column)" ;;
    124|130) echo "gpu_check: stopped at the ${BUDGET_S} s budget; the cells written so far are valid" ;;
    *) echo "gpu_check: recbench exited with $status" ;;
esac
ls -d "$OUT"/gpu-* 2>/dev/null | tail -n 1 | sed 's/^/results: /' || true
exit "$status"
