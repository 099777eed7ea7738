"""The engine imports without ComfyUI and pulls in no comfy module; optional backends fail clearly."""
import subprocess
import sys
from pathlib import Path

import pytest

from pci_core import judges

REPO = Path(__file__).resolve().parents[1]


def test_pci_core_imports_no_comfy_module():
    code = ("import sys, pci_core, pci_core.world, pci_core.demo_model, pci_core.pipeline, pci_core.insertion, "
            "pci_core.judges, pci_core.bench, pci_core.cli; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('comfy', 'comfy_api', 'folder_paths', 'nodes')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_missing_optional_package_names_what_to_install():
    with pytest.raises(ImportError, match=r"clip judge needs the Python package 'not_a_pkg_x'.*pip install not_a_pkg_x"):
        judges.require("not_a_pkg_x", "not_a_pkg_x", "clip")
    assert judges.require("numpy", "numpy", "rule").__name__ == "numpy"
