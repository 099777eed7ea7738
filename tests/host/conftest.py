import os

import pytest
import torch


@pytest.fixture(scope="session")
def host():
    """Real ComfyUI, in-process, with the pack loaded from this checkout."""
    path = os.environ.get("COMFYUI_PATH")
    if not path:
        pytest.fail("COMFYUI_PATH is not set: the host tier needs a real ComfyUI (see README, 'Host tier')")
    from comfy_host import Host
    h = Host(path)
    print(f"\nComfyUI {h.version} at {path}, pack loaded in {h.startup_s:.1f}s")
    return h


@pytest.fixture()
def inference():
    with torch.inference_mode():  # as ComfyUI's executor samples
        yield
