#!/usr/bin/env bash
# The GPU checks, in one run of under ten minutes, for a machine with CUDA:
#   1. bench/throughput.py on the GPU: MLP ALAE (batch 128) and every style preset up to
#      256x256 at its top level, fp32 and bf16, against the GPU's matrix-product peak;
#   2. with two or more GPUs, tests/test_distributed.py, whose torchrun workers then train
#      on two GPUs with NCCL and are compared with a one-GPU run.
# Results go to $OUT (default: runs/gpu-check): throughput.json, and the logs.
#
#     bash bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs/gpu-check}
mkdir -p "$out"
python=${PYTHON:-.venv/bin/python}
"$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: torch sees no CUDA device')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpus.csv" || true
timeout 420 "$python" bench/throughput.py --device cuda --seconds 15 --json "$out/throughput.json" | tee "$out/throughput.txt"
gpus=$("$python" -c "import torch; print(torch.cuda.device_count())")
if [ "$gpus" -ge 2 ]; then
    timeout 150 "$python" -m pytest -q tests/test_distributed.py 2>&1 | tee "$out/distributed.txt"
else
    echo "one GPU: the two-rank torchrun check needs two" | tee "$out/distributed.txt"
fi
