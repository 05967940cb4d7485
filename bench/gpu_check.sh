#!/usr/bin/env bash
# Usage: bench/gpu_check.sh [options of bench/gpu_check.py]
# A five-minute check on a GPU node of the speed figures this toolkit claims: prints
# one table (GPU model; for ResNet34 and ECAPA-512 at bf16: model-alone training
# chunks/s, the features loader at 4 and 8 workers as % of model-alone, the audio
# loader likewise where it exists, DDP over all visible GPUs, extraction throughput,
# peak GPU memory). Needs only ../shared (speechocean762 for real feature arks; without
# it the loader columns read nan) and no network. Paste the table into RESULTS.md with
# the date and GPU. Without a CUDA device it stops at once, saying so (exit 1).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
. ./path.sh
if ! python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "$0: no CUDA device visible (nvidia-smi -L: $(nvidia-smi -L 2>/dev/null | head -1 || true)); torch $(python -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)'); this check needs a GPU" >&2
  exit 1
fi
nvidia-smi -L
exec timeout 600 python bench/gpu_check.py "$@"
