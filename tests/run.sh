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
"$VENV/bin/pip" install -q -c tests/constraints.txt -e ".[test,clip,vqa]"
"$VENV/bin/python" -m pytest tests --ignore=tests/host --ignore=tests/browser -q
# The unit tier again on another float path (one thread, no vector instructions): an assertion that
# holds only by one machine's rounding fails here before it lands.
echo "unit tier again: OMP_NUM_THREADS=1 ATEN_CPU_CAPABILITY=default"
OMP_NUM_THREADS=1 ATEN_CPU_CAPABILITY=default "$VENV/bin/python" -m pytest tests --ignore=tests/host --ignore=tests/browser -q

for cand in "${COMFYUI_PATH:-}" /work/comfyui-host/ComfyUI "$HOME/comfyui-host/ComfyUI"; do
  if [ -n "$cand" ] && [ -f "$cand/main.py" ]; then COMFYUI_PATH=$cand; break; fi
done
if [ -z "${COMFYUI_PATH:-}" ] || [ ! -f "$COMFYUI_PATH/main.py" ]; then
  echo "################################################################################"
  echo "HOST TIER SKIPPED: no ComfyUI found (set COMFYUI_PATH/COMFYUI_PYTHON, or build one with"
  echo "  bash ../shared/comfyui-host/setup.sh COMFYUI_GIT_DIR ~/comfyui-host; see README 'Host tier')."
  echo "The nodes were NOT tested inside ComfyUI in this run (BROWSER TIER SKIPPED too)."
  echo "################################################################################"
  exit 0
fi
COMFYUI_PYTHON=${COMFYUI_PYTHON:-$(dirname "$COMFYUI_PATH")/venv/bin/python}
export COMFYUI_PATH COMFYUI_PYTHON
echo "host tier: ComfyUI at $COMFYUI_PATH ($COMFYUI_PYTHON)"
"$COMFYUI_PYTHON" -m pip install -q -c tests/constraints.txt open_clip_torch "transformers>=4.45" safetensors matplotlib \
  torchmetrics pytest "ray>=2.40,<3" "tqdm>=4.60"
"$COMFYUI_PYTHON" -m pytest tests/host -q -p no:cacheprovider

# Browser tier: the shipped workflows in ComfyUI's real frontend (Debian chromium, driven by Playwright).
# Installs the browser (as root, through apt) and the playwright package only when missing; without
# them the tier skips with a loud banner.
if [ ! -x "${PCI_CHROMIUM:-/usr/bin/chromium}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; } \
    || echo "browser tier: could not install chromium through apt-get"
fi
"$VENV/bin/python" -c "import playwright" 2>/dev/null || "$VENV/bin/pip" install -q playwright \
  || echo "browser tier: could not install playwright"
"$VENV/bin/python" -m pytest tests/browser -q -p no:cacheprovider
