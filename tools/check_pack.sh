#!/usr/bin/env bash
# Registry check: `comfy node validate` and `comfy node pack` (comfy-cli, in its own venv) on a
# snapshot of this checkout (tracked and untracked-but-not-ignored files, as a fresh git repo, since
# pack zips git-tracked files), then list what the package holds. Not part of the published pack.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
CLI_VENV=${COMFY_CLI_VENV:-/tmp/comfycli}
[ -x "$CLI_VENV/bin/comfy" ] || { python3 -m venv "$CLI_VENV" && "$CLI_VENV/bin/pip" install -q comfy-cli ruff; }
SNAP=$(mktemp -d /tmp/pci_pack_XXXX)
(cd "$REPO" && git ls-files -co --exclude-standard | tar -cf - -T -) | tar -xf - -C "$SNAP"
cd "$SNAP"
git init -q && git add -A && git -c user.email=ci@localhost -c user.name=ci commit -qm snapshot
export PATH="$CLI_VENV/bin:$PATH"
comfy --skip-prompt --no-enable-telemetry node validate
comfy --skip-prompt --no-enable-telemetry node pack
python3 - <<'PY'
import zipfile
names = zipfile.ZipFile("node.zip").namelist()
tops = sorted({n.split("/")[0] for n in names})
print(f"node.zip: {len(names)} files; top level: {tops}")
bad = [n for n in names if n.split("/")[0] in ("tests", "bench", "tools", ".ci")]
weights = [n for n in names if n.endswith(".safetensors")]
print("demo weights in the package:", weights)
assert not bad, f"kept out by .comfyignore, yet packed: {bad[:5]}"
assert any("demo/weights/" in n for n in weights), "the demo weights are missing from the package"
assert any(n.startswith("workflows/") and n.endswith(".jpg") for n in names), "no workflow thumbnails packed"
assert any(n.startswith("web/docs/") for n in names), "no help pages packed"
print("package OK")
PY
echo "snapshot and node.zip in $SNAP"
