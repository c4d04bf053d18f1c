#!/usr/bin/env bash
# GPU figures for the README's "Speed" section: every bench configuration in fp32 and under bf16
# autocast, rnnkit beside plain PyTorch (cuDNN, fused AdamW) and the LSTMCell loop, on one CUDA GPU.
#
#   benchmarks/bench_gpu.sh                 # writes into $OUT (or benchmarks/results/)
#   REPEATS=9 benchmarks/bench_gpu.sh --configs char-2x512-lstm
#
# Needs a CUDA build of PyTorch; leaves the GPU's clocks and settings alone. Records the GPU, its
# driver and clocks, torch/CUDA/cuDNN versions, the table, and the JSON rows (bench_cuda.json).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks/results}"
python="${PYTHON:-python}"
mkdir -p "$out"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"

nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.limit,temperature.gpu \
    --format=csv > "$out/gpu.csv" 2>&1 || echo "nvidia-smi unavailable" > "$out/gpu.csv"
"$python" - <<'EOF' | tee "$out/env.txt"
import torch
assert torch.cuda.is_available(), "PyTorch sees no CUDA GPU: install a CUDA build of torch"
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
      f"{torch.cuda.get_device_name()}, cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}, "
      f"matmul precision={torch.get_float32_matmul_precision()}")
EOF
"$python" -m rnnkit bench --device cuda --amp --repeats "${REPEATS:-7}" --json "$@" \
    > "$out/bench_cuda.txt" 2> "$out/bench_cuda.log"
head -n -1 "$out/bench_cuda.txt"
tail -n 1 "$out/bench_cuda.txt" > "$out/bench_cuda.json"
