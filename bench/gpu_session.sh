#!/usr/bin/env bash
# The one prepared script for a session lent a GPU machine (docs/gpu.md): the card, bench/gpu_check.py on
# CUDA (demo model + a random fp16 SD1.5 UNet, judge in the loop), bench/gpu_extras.py (a LoRA inserted at
# step k, a video model's clips, a long sweep's memory bound) and the unit tier on that machine's own float
# path (another CPU, another torch). Logs go to $OUT (or ./gpu_out).
#
# What travels with the working tree (all git-ignored, named in the device tool's `carry`):
#   .comfy  a ComfyUI source tree (git archive of the fetched snapshot, large tokenizer blobs left out)
#   .whl    wheels the machine lacks: torchsde, trampoline, av, open_clip_torch, ftfy, wcwidth
set -uo pipefail
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/card.txt"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 COMFYUI_PATH=$PWD/.comfy
python3 -c "import torch, transformers, sys; print('python', sys.version.split()[0], 'torch', torch.__version__,
'transformers', transformers.__version__, torch.cuda.get_device_name(0), torch.backends.cpu.get_cpu_capability())" \
  | tee -a "$OUT/card.txt"
timeout 200 python3 bench/gpu_check.py 2>&1 | grep -v 'it/s]' | tee "$OUT/gpu_check.log"
timeout 120 python3 bench/gpu_extras.py 2>&1 | grep -v 'it/s]' | tee "$OUT/gpu_extras.log"
timeout 170 python3 -m pytest tests --ignore=tests/host --ignore=tests/browser -q -p no:cacheprovider 2>&1 \
  | tail -30 | tee "$OUT/unit.log"
exit 0
