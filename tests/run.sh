#!/usr/bin/env bash
# The project's test command (README, CI): a fresh venv with the pinned torch pair, the project and
# its test extra, then pytest on the unit and demo-model tiers; then the host tier inside real ComfyUI
# when one is found (COMFYUI_PATH / COMFYUI_PYTHON, or a host built at /work/comfyui-host or
# ~/comfyui-host), else a loud SKIPPED line.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${PCI_VENV:-.venv-test}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q -c tests/constraints.txt torch==2.14.1 torchvision==0.29.1
"$VENV/bin/pip" install -q -c tests/constraints.txt -e ".[test]"
"$VENV/bin/python" -m pytest tests --ignore=tests/host -q

for cand in "${COMFYUI_PATH:-}" /work/comfyui-host/ComfyUI "$HOME/comfyui-host/ComfyUI"; do
  if [ -n "$cand" ] && [ -f "$cand/main.py" ]; then COMFYUI_PATH=$cand; break; fi
done
if [ -z "${COMFYUI_PATH:-}" ] || [ ! -f "$COMFYUI_PATH/main.py" ]; then
  echo "################################################################################"
  echo "HOST TIER SKIPPED: no ComfyUI found (set COMFYUI_PATH/COMFYUI_PYTHON, or build one with"
  echo "  bash ../shared/comfyui-host/setup.sh COMFYUI_GIT_DIR ~/comfyui-host; see README 'Host tier')."
  echo "The nodes were NOT tested inside ComfyUI in this run."
  echo "################################################################################"
  exit 0
fi
COMFYUI_PYTHON=${COMFYUI_PYTHON:-$(dirname "$COMFYUI_PATH")/venv/bin/python}
export COMFYUI_PATH COMFYUI_PYTHON
echo "host tier: ComfyUI at $COMFYUI_PATH ($COMFYUI_PYTHON)"
"$COMFYUI_PYTHON" -m pip install -q -c tests/constraints.txt open_clip_torch "transformers>=4.45" safetensors pytest
"$COMFYUI_PYTHON" -m pytest tests/host -q -p no:cacheprovider
