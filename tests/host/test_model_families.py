"""The node where users run it: half-precision models, flow-matching sigma axes (SD3, FLUX) and a
real SD1.5-format checkpoint, each switching exactly where ComfyUI's own one-pass
ConditioningSetTimestepRange graph switches; every model call under the device guard."""
import sys

import pytest
import torch

from pci_core.demo import demo_model
from pci_cluster.testbed.range_graphs import insertion_and_range
from tests.device_guard import guarded


@pytest.fixture()
def guarded_guider(host, monkeypatch):
    """The node's whole run and, on their own, every model call of the insertion guider (engine +
    ComfyUI's sampling_function) run inside the device guard: a tensor our code makes there
    without device= fails the test."""
    glue = host.glue("guider")
    monkeypatch.setattr(glue.ConceptInsertionGuider, "predict_noise", guarded(glue.ConceptInsertionGuider.predict_noise))
    monkeypatch.setattr(glue, "concept_insertion_sample", guarded(glue.concept_insertion_sample))


def _demo(host, dtype=None):
    import nodes as core
    model, clip, _ = host.glue("demo_adapter").load_demo(demo_model.WEIGHTS_FILE, dtype)
    enc = lambda text: core.CLIPTextEncode().encode(clip, text)[0]
    return core, model, enc("a red circle on the left"), enc("a blue square on the right"), enc("")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_demo_model_switches_where_the_range_graph_does(host, inference, guarded_guider, dtype):
    core, model, base, concept, neg = _demo(host, dtype)
    assert model.model.get_dtype() == dtype and model.model.diffusion_model.conv_in.weight.dtype == dtype
    latent = core.EmptyLatentImage().generate(64, 64, 1)[0]
    inserted, reference = insertion_and_range(host, model, base, concept, neg, latent, 3, 4, 4.0, "dpmpp_2m",
                                              "normal", 2)
    assert torch.isfinite(inserted).all()
    assert torch.equal(inserted, reference), (inserted - reference).abs().max().item()
    _, full, *_ = _demo(host, torch.float32)
    node = host.nodes.NODE_CLASS_MAPPINGS["ConceptInsertionSampler"]
    in_full = node.execute(full, base, concept, neg, latent, 3, 4, 4.0, "dpmpp_2m", "normal", 2.0, 1.0).args[0]["samples"]
    diff = (in_full - inserted).abs().max().item()
    print(f"\n{dtype}: max |half - float32| = {diff:.2e} (the half model really computes in {dtype})")
    assert 0 < diff < 0.5


@pytest.mark.parametrize("patch", ["ModelSamplingSD3", "ModelSamplingFlux"])
def test_flow_matching_sigma_axis_switches_where_the_range_graph_does(host, inference, guarded_guider, patch):
    core, model, base, concept, neg = _demo(host)
    import comfy_extras.nodes_model_advanced as advanced
    if patch == "ModelSamplingSD3":
        flow = advanced.ModelSamplingSD3().patch(model, shift=3.0)[0]
    else:
        flow = advanced.ModelSamplingFlux().patch(model, max_shift=1.15, base_shift=0.5, width=64, height=64)[0]
    assert float(flow.get_model_object("model_sampling").sigma_max) == 1.0  # the flow axis: sigma in [0, 1]
    latent = core.EmptyLatentImage().generate(64, 64, 1)[0]
    outs = {}
    for sampler, scheduler, k in (("euler", "simple", 1), ("euler", "simple", 3), ("heun", "beta", 2)):
        inserted, reference = insertion_and_range(host, flow, base, concept, neg, latent, 1, 4, 3.0, sampler,
                                                  scheduler, k)
        assert torch.equal(inserted, reference), (patch, sampler, k, (inserted - reference).abs().max().item())
        outs[sampler, k] = inserted
    assert not torch.equal(outs["euler", 1], outs["euler", 3])


def test_sd15_checkpoint_switches_where_the_range_graph_does(host, inference, guarded_guider, sd15_checkpoint):
    """A real model family: ComfyUI detects the random SD1.5-format file as SD1.5 and the node matches
    the one-pass ConditioningSetTimestepRange graph bit for bit (8x8 latent, 2 steps). That the switch
    step matters is shown on the demo model above; here it is ComfyUI's SD1.5 path end to end."""
    import comfy.supported_models
    import nodes as core
    model, clip, vae = core.CheckpointLoaderSimple().load_checkpoint(sd15_checkpoint)
    assert type(model.model.model_config) is comfy.supported_models.SD15
    enc = lambda text: core.CLIPTextEncode().encode(clip, text)[0]
    base, concept, neg = enc("a photo of a cat"), enc("a photo of a dog"), enc("")
    assert base[0][0].shape == (1, 77, 768)
    latent = core.EmptyLatentImage().generate(64, 64, 1)[0]
    # 2 steps, switch at 1: each SD1.5 step costs seconds on a CPU
    inserted, reference = insertion_and_range(host, model, base, concept, neg, latent, 0, 2, 5.0, "euler", "normal", 1)
    assert torch.isfinite(inserted).all() and inserted.shape == (1, 4, 8, 8)
    assert torch.equal(inserted, reference), (inserted - reference).abs().max().item()


def test_gpu_check_small_mode_runs_and_every_way_gives_the_same_images(host):
    """bench/gpu_check.py --small (CPU, demo model): the switch matches the range graph exactly and every
    way of running the sweep gives the naive loop's latents within float noise. Bit for bit on this CPU's
    AVX2 / AVX-512 paths (the demo UNet pads its batches); at ATEN_CPU_CAPABILITY=default the batched ways
    differ by up to 1.7e-6, so what is pinned is what holds on every path."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[2] / "bench" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    gpu_check = sys.modules["gpu_check"] = importlib.util.module_from_spec(spec)  # dataclasses look it up
    spec.loader.exec_module(gpu_check)
    (report,) = gpu_check.run(host, gpu_check.SMALL)
    assert report.switch_diff == 0.0
    assert report.unique_rows == 2 * sum(1 + (i + 1) for i in range(4))  # trunk + switched branches per step
    assert set(report.diffs) >= {"per k, batched over seeds", "branching, max_batch unbounded"}
    assert all(d <= 1e-4 for d in report.diffs.values()), report.diffs  # demo latents are of order 1
    assert report.best_rows_per_s > 0 and 1 <= report.policy_max_batch <= 64
    # the judge in the loop ran both ways (managed by ComfyUI, and as a plain module); no peak on a CPU
    assert report.judge.startswith("clip pci-tiny-clip") and set(report.peak_gb) == {"managed", "plain module"}
    assert all(report.times[f"sweep + judge ({way})"] > 0 for way in report.peak_gb)


def test_default_max_batch_follows_free_memory(host):
    """The device policy: 64 rows for small latents, fewer as ComfyUI's memory estimate of a cond +
    uncond batch grows past half the free memory, never below 1."""
    import comfy.model_management as mm
    pack = host.glue("sampling")
    _, model, *_ = _demo(host)
    assert pack.max_batch_for_device(model, (4, 8, 8)) == pack.MAX_BATCH_CAP
    free = mm.get_free_memory(model.load_device)
    side = 8
    while model.model.memory_required([2 * pack.MAX_BATCH_CAP, 4, side, side]) <= 0.5 * free:
        side *= 2  # a latent whose 64-row batch no longer fits
    rows = pack.max_batch_for_device(model, (4, side, side))
    assert 1 <= rows < pack.MAX_BATCH_CAP and rows & (rows - 1) == 0  # a smaller power of two
    assert rows == 1 or model.model.memory_required([2 * rows, 4, side, side]) <= 0.5 * free
    assert pack.max_batch_for_device(model, (4, 64 * side, 64 * side)) == 1
