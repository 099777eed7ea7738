"""Where the browser tier finds ComfyUI, the browser and its artefact folder; shared by conftest and tests."""
import importlib.util
import json
import os
import socket
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACK_NAME = "pci_comfyui"  # the folder name ComfyUI sees: templates and help pages are served under it
ARTIFACTS = Path(os.environ.get("PCI_BROWSER_ARTIFACTS", "/tmp/pci_browser_artifacts"))
CHROMIUM = os.environ.get("PCI_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BANNER = "#" * 96


def why_skipped() -> str | None:
    path = os.environ.get("COMFYUI_PATH", "")
    if not path or not (Path(path) / "main.py").is_file():
        return "no ComfyUI found (set COMFYUI_PATH, and COMFYUI_PYTHON if its venv is elsewhere)"
    if not Path(comfy_python()).is_file():
        return f"ComfyUI's python {comfy_python()} not found (set COMFYUI_PYTHON)"
    if not Path(CHROMIUM).is_file():
        return f"no browser at {CHROMIUM} (apt-get install chromium, or set PCI_CHROMIUM)"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright Python package is not installed (pip install playwright)"
    return None


def comfy_python() -> str:
    path = os.environ.get("COMFYUI_PATH", "")
    return os.environ.get("COMFYUI_PYTHON") or str(Path(path).parent / "venv" / "bin" / "python")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, timeout: float = 10.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())
