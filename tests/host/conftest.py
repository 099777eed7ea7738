import os

import pytest
import torch


@pytest.fixture(scope="session")
def host(tmp_path_factory):
    """Real ComfyUI, in-process, with the pack loaded from this checkout. Its output folder is a fresh one
    per session: run folders of an earlier session (another float path's settings) are never met."""
    path = os.environ.get("COMFYUI_PATH")
    if not path:
        pytest.fail("COMFYUI_PATH is not set: the host tier needs a real ComfyUI (see README, 'Host tier')")
    from pci_cluster.headless import Headless
    h = Headless(path, output_dir=str(tmp_path_factory.mktemp("comfyui_output")))
    print(f"\nComfyUI {h.version} at {path}, pack loaded in {h.startup_s:.1f}s")
    return h


@pytest.fixture()
def inference():
    with torch.inference_mode():  # as ComfyUI's executor samples
        yield


@pytest.fixture(scope="session")
def sd15_checkpoint(host):
    """File name (for CheckpointLoaderSimple) of a random-initialised SD1.5-format checkpoint, written
    once from ComfyUI's own model classes into a checkpoints folder registered with folder_paths
    (PCI_TEST_CACHE, default ~/.cache/pci-comfyui-tests; 2.1 GB, kept between sessions)."""
    import folder_paths
    from pci_cluster.testbed.sd15_checkpoint import write_sd15_checkpoint
    cache = os.environ.get("PCI_TEST_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "pci-comfyui-tests")
    folder = os.path.join(cache, "checkpoints")
    path = write_sd15_checkpoint(folder)
    folder_paths.add_model_folder_path("checkpoints", folder)
    return path.name


@pytest.fixture(scope="session")
def tiny_judge_files(host, tmp_path_factory):
    """A tiny random open_clip file and a tiny random Qwen2.5-VL folder (pci_core.judges.tiny), written
    once for the session: (clip weights file, vqa model folder)."""
    import folder_paths

    from pci_core.judges import tiny
    folder = tmp_path_factory.mktemp("pci_judges")
    folder_paths.add_model_folder_path("pci_judges", str(folder))  # a workflow reads judges from there only
    tiny.register_tiny_clip(folder)
    return tiny.save_clip(tiny.TINY_CLIP, folder, logit_scale=30.0), tiny.save_tiny_vqa(folder)


@pytest.fixture(scope="session")
def tiny_clip_judge(host, tiny_judge_files):
    """A clip judge through PCI Judge Loader (ComfyUI manages its network) over the tiny random weights."""
    from pci_core.judges import tiny
    loader = host.nodes.NODE_CLASS_MAPPINGS["PCIJudgeLoader"]
    return loader.execute("clip", tiny.TINY_CLIP, "none (rule judge)", "auto", str(tiny_judge_files[0])).args[0]
