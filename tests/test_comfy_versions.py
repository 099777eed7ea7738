"""Every feature-detected branch for today's ComfyUI (0.38), tested against the newest shapes as read in
ComfyUI's sources (each test names the file and commit), and against v0.3.64's where the host tier does not
already run it. No ComfyUI here: the shapes are small stand-ins with the exact signatures read, put into
sys.modules for the duration of a test."""
import asyncio
import inspect
import logging
import sys
import types
from typing import NamedTuple

import pytest
import torch

from pci_cluster import headless


def load_internals():
    """nodes/comfy_glue/internals.py without ComfyUI (it imports nothing of it at module level)."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "nodes" / "comfy_glue" / "internals.py"
    spec = importlib.util.spec_from_file_location("pci_internals_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


@pytest.fixture()
def fake_comfy(monkeypatch):
    """A `comfy` package of empty modules the test fills in."""
    comfy = types.ModuleType("comfy")
    comfy.__path__ = []
    for name in ("sample", "model_management"):
        module = types.ModuleType(f"comfy.{name}")
        setattr(comfy, name, module)
        monkeypatch.setitem(sys.modules, f"comfy.{name}", module)
    monkeypatch.setitem(sys.modules, "comfy", comfy)
    return comfy


# ---------------------------------------------------------------- execution.PromptExecutor and its cache

class _CacheType:
    CLASSIC = 0


def test_executor_made_with_cache_args_where_the_constructor_takes_them():
    """execution.py at 04e2a914334246661a77665aa14068a0670e3321: PromptExecutor(server, cache_type=False,
    cache_args=None, asset_manager=None), and execute_async reads cache_args["ram"], ["ram_inactive"]."""
    class PromptExecutor:
        def __init__(self, server, cache_type=False, cache_args=None, asset_manager=None):
            self.cache_type, self.cache_args = cache_type, cache_args

        def execute(self):
            return int(self.cache_args["ram"] * 1024 ** 3), int(self.cache_args["ram_inactive"] * 1024 ** 3)

    newest = types.SimpleNamespace(PromptExecutor=PromptExecutor, CacheType=_CacheType)
    executor = headless.make_executor(newest, server=object())
    assert executor.cache_type == _CacheType.CLASSIC and executor.execute() == (0, 0)


def test_executor_made_without_cache_args_on_v0_3_64():
    """execution.py v0.3.64: PromptExecutor(server, cache_type=False, cache_size=None)."""
    class PromptExecutor:
        def __init__(self, server, cache_type=False, cache_size=None):
            self.cache_type, self.cache_size = cache_type, cache_size

    old = types.SimpleNamespace(PromptExecutor=PromptExecutor, CacheType=_CacheType)
    executor = headless.make_executor(old, server=object())
    assert executor.cache_type == _CacheType.CLASSIC and executor.cache_size is None


class CacheEntry(NamedTuple):  # comfy_execution/caching.py / execution.py at 0c5058b9 / 04e2a914
    ui: dict
    outputs: list


def test_cached_outputs_read_through_get_local_and_cache_entry():
    """comfy_execution/caching.py at 0c5058b99278d14cf0a9ac1adcd9d8b4efa5234e: get is a coroutine, get_local is
    synchronous, the stored value is CacheEntry(ui, outputs)."""
    class HierarchicalCache:
        def __init__(self):
            self.cache = {"7": CacheEntry(ui={}, outputs=[["image"], ["result"]])}

        async def get(self, node_id):
            return self.cache.get(node_id)

        def get_local(self, node_id):
            return self.cache.get(node_id)

    cache = HierarchicalCache()
    assert headless.cached_outputs(cache, "7")[1][0] == "result"
    assert asyncio.iscoroutinefunction(cache.get)  # the shape read: reading get() directly would fail
    with pytest.raises(KeyError, match="node 8"):
        headless.cached_outputs(cache, "8")


def test_cached_outputs_read_from_the_v0_3_64_cache():
    class HierarchicalCache:  # v0.3.64: get is synchronous and returns the outputs list
        def get(self, node_id):
            return [["image"], ["result"]] if node_id == "7" else None

    assert headless.cached_outputs(HierarchicalCache(), "7")[1][0] == "result"


# ---------------------------------------------------------------- empty latents, as KSampler treats them

def test_empty_latent_passes_the_downscale_ratios_where_fix_empty_latent_channels_takes_them(fake_comfy):
    """nodes.py at 02217e36a45bcbe2dd8fa24187aa5e053d9aea2e: common_ksampler calls
    fix_empty_latent_channels(model, latent_image, latent.get("downscale_ratio_spacial"),
    latent.get("downscale_ratio_temporal")); comfy/sample.py's newest form (as copied at f1072eb0) takes them."""
    seen = {}

    def fix_empty_latent_channels(model, latent_image, downscale_ratio_spacial=None, downscale_ratio_temporal=None):
        seen.update(spacial=downscale_ratio_spacial, temporal=downscale_ratio_temporal)
        return latent_image[..., ::2, ::2] if downscale_ratio_spacial == 8 else latent_image  # a ratio-16 model

    fake_comfy.sample.fix_empty_latent_channels = fix_empty_latent_channels
    internals = load_internals()
    latent = {"samples": torch.zeros(1, 4, 8, 8), "downscale_ratio_spacial": 8}
    assert internals.empty_latent("model", latent).shape == (1, 4, 4, 4)
    assert seen == {"spacial": 8, "temporal": None}
    out = internals.sampled_latent(latent, torch.ones(1, 4, 4, 4))  # KSampler pops the ratios from its output
    assert "downscale_ratio_spacial" not in out and out["samples"].shape == (1, 4, 4, 4)
    assert "downscale_ratio_spacial" in latent  # the input is left alone


def test_empty_latent_on_v0_3_64_passes_the_latent_alone(fake_comfy):
    def fix_empty_latent_channels(model, latent_image):  # comfy/sample.py v0.3.64
        return latent_image

    fake_comfy.sample.fix_empty_latent_channels = fix_empty_latent_channels
    internals = load_internals()
    samples = torch.zeros(1, 4, 8, 8)
    assert internals.empty_latent("model", {"samples": samples, "batch_index": [0]}) is samples


# ---------------------------------------------------------------- free memory under dynamic VRAM

def test_free_memory_asks_the_model_patcher_where_it_can(fake_comfy):
    """comfy/model_patcher.py at 08d0e510f4e539a1db39072589817136ac6cfa7d: ModelPatcher.get_free_memory(device)
    adds what dynamic-VRAM models would give up to model_management.get_free_memory."""
    fake_comfy.model_management.get_free_memory = lambda device: 100

    class ModelPatcher:
        load_device = "cuda:0"

        def get_free_memory(self, device):
            return 100 + 900  # the parked models' VRAM counts as free

    internals = load_internals()
    assert internals.free_memory(ModelPatcher()) == 1000
    assert internals.free_memory(types.SimpleNamespace(load_device="cuda:0")) == 100  # v0.3.64: no such method


# ---------------------------------------------------------------- the load-time check of internals

def test_a_changed_or_missing_internal_is_one_line_and_the_nodes_that_need_it_refuse(fake_comfy, caplog, monkeypatch):
    def fix_empty_latent_channels(model, latent_image, downscale_ratio_spacial, downscale_ratio_temporal):
        return latent_image  # a future shape with required ratios: the pack's (model, latent) call no longer binds

    fake_comfy.sample.fix_empty_latent_channels = fix_empty_latent_channels
    version = types.ModuleType("comfyui_version")
    version.__version__ = "9.9.9"
    monkeypatch.setitem(sys.modules, "comfyui_version", version)
    internals = load_internals()
    table = (internals.Internal("comfy.sample.fix_empty_latent_channels", (internals.ANY, internals.ANY)),
             internals.Internal("comfy.sample.prepare_noise", (internals.ANY, internals.ANY, internals.ANY)),
             internals.Internal("comfy.model_management.get_torch_device", (), (), ("PCIDemoModelLoader",)))
    with caplog.at_level(logging.WARNING):
        found = internals.check(table)
    assert set(found) == {"comfy.sample.fix_empty_latent_channels", "comfy.sample.prepare_noise",
                          "comfy.model_management.get_torch_device"}
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3 and all("ComfyUI 9.9.9" in line for line in lines)
    assert "no longer binds" in lines[0] and "missing" in lines[1]
    with pytest.raises(RuntimeError, match=r"CISSweep cannot run on ComfyUI 9\.9\.9: comfy\.sample\."
                                           r"fix_empty_latent_channels\(_, _\) no longer binds"):
        internals.require("CISSweep", table)
    internals.require("CISJudge", table)  # needs none of them: runs


def test_every_listed_internal_names_nodes_the_pack_has():
    internals = load_internals()
    node_ids = {"PCIDemoModelLoader", "ConceptInsertionSampler", "PCIConceptEncode", "PCIJudgeLoader", "CISJudge",
                "PCIConceptList", "CISStudy", "CISSweep", "BestTimestepEdit"}
    assert all(set(i.nodes) <= node_ids and i.nodes for i in internals.INTERNALS)
    assert len({i.name for i in internals.INTERNALS}) == len(internals.INTERNALS)


# ---------------------------------------------------------------- interrupts are BaseException today

def test_an_interrupt_that_is_a_base_exception_stops_a_run_and_keeps_its_written_blocks(tmp_path):
    """comfy/model_management.py at 02b2b3886164b1fa412d393a3ed0674b9d1cf010:
    class InterruptProcessingException(BaseException). Nothing in the run loop may swallow it."""
    import numpy as np

    from pci_core import cis, results, runner

    class InterruptProcessingException(BaseException):
        pass

    def measure(seeds, ks):
        if seeds[0] >= 2:
            raise InterruptProcessingException()
        return np.ones((len(seeds), len(ks)))

    header = cis.run_header("x", [0, 1, 2], 2, [2.0, 1.0, 0.0], 0.5, {k: "" for k in results.SETTINGS_KEYS})
    store = results.RunStore(tmp_path / "run", header)
    with pytest.raises(InterruptProcessingException):
        runner.full_run(store, [0, 1, 2, 3], measure, block_size=2)
    assert results.read_results(tmp_path / "run" / results.RESULTS_FILE)[1] == [0, 1]
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]
    assert inspect.isclass(InterruptProcessingException) and not issubclass(InterruptProcessingException, Exception)


# ---------------------------------------------------------------- the tiny Wan 2.1 VAE, read by both versions

def newest_wan21_vae_settings(sd: dict) -> dict:
    """comfy/sd.py at 033046cc4fac82d954c6daedccf1c8128433c4f1, VAE.__init__'s Wan branch, written out: the
    Wan 2.1 layout and the keys it reads with sd[...] (a missing one is a KeyError there)."""
    assert "decoder.middle.0.residual.0.gamma" in sd
    wan22_layout = "decoder.upsamples.0.upsamples.0.residual.2.weight" in sd
    head = sd.get("decoder.head.2.weight", None)
    assert not (wan22_layout and head is not None and head.ndim == 5 and head.shape[2] == 1)  # not Qwen Image 2.1
    assert not wan22_layout  # not Wan 2.2
    return {"dim": sd["decoder.head.0.gamma"].shape[0], "output_channels": sd["encoder.conv1.weight"].shape[1],
            "conv_out_channels": sd["decoder.head.2.weight"].shape[0]}


def test_the_tiny_wan_vae_probe_holds_every_key_todays_comfyui_reads():
    from pci_cluster.testbed.tiny_families import wan_vae_probe
    assert newest_wan21_vae_settings(wan_vae_probe()) == {"dim": 96, "output_channels": 3, "conv_out_channels": 3}
