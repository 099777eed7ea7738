"""Judges inside ComfyUI's memory manager: a clip or vqa judge's network is a model comfy.model_management
holds like its own (loaded to judge, offloaded when memory is wanted, freed by Unload models), one copy
per weights file whatever the template, in the dtype ComfyUI chooses for the device."""
import pytest
import torch

from pci_core.judges import tiny

LOADER = "PCIJudgeLoader"


def loaded(host, patcher) -> int:
    """How many of ComfyUI's loaded models are this patcher (0 or 1)."""
    return sum(m.model is patcher for m in host.mm.current_loaded_models)


def load(host, files, backend, template=""):
    clip_file, vqa_folder = files
    weights = str(clip_file) if backend == "clip" else str(vqa_folder)
    loader = host.nodes.NODE_CLASS_MAPPINGS[LOADER]
    return loader.execute(backend, tiny.TINY_CLIP, "none (rule judge)", "auto", weights, template).args[0]


@pytest.mark.parametrize("backend", ["clip", "vqa"])
def test_the_judge_is_loaded_offloaded_and_freed_by_comfyuis_model_management(host, tiny_judge_files, backend):
    mm = host.mm
    judge = load(host, tiny_judge_files, backend)
    patcher = judge.net.patcher
    mm.unload_all_models()
    assert loaded(host, patcher) == 0 and patcher.loaded_size() == 0
    images = torch.rand(3, 32, 32, 3, generator=torch.Generator().manual_seed(0))
    scores = host.nodes.NODE_CLASS_MAPPINGS["CISJudge"].execute(images, judge, "a red circle", 0.5).args[0]
    assert len(scores) == 3
    # judging loaded it, whole, through ComfyUI (a plain module would be nowhere in this list)
    assert loaded(host, patcher) == 1 and patcher.loaded_size() == patcher.model_size() > 0
    assert patcher.load_device == mm.get_torch_device()
    assert {p.device for p in judge.model.parameters()} == {patcher.load_device}
    assert judge.net.dtype == host.glue("managed_judges").dtype_for(backend, patcher.load_device)
    # another template or question: the same network, still one model in ComfyUI's list
    other = load(host, tiny_judge_files, backend, "a drawing of {}" if backend == "clip" else "Is there a {concept}?")
    assert other is not judge and other.net is judge.net
    other.score(images, "a red circle")
    assert loaded(host, patcher) == 1
    # ComfyUI offloads it when another model needs the memory ...
    freed = mm.free_memory(1e30, patcher.load_device)
    assert any(m.model is patcher for m in freed) and loaded(host, patcher) == 0
    # ... and it comes back to judge, with the same scores
    assert torch.equal(judge.score(images, "a red circle"), torch.tensor(scores, dtype=torch.float32))
    assert loaded(host, patcher) == 1
    # "Unload models" (POST /free) frees it with the others
    mm.unload_all_models()
    assert loaded(host, patcher) == 0 and patcher.loaded_size() == 0


def test_in_a_sweep_the_unet_and_the_judge_are_both_comfyuis(host, tiny_judge_files, inference):
    """A CIS Sweep judged by a clip judge: the demo UNet and the judge's network are both in ComfyUI's list
    of loaded models after the run (each loaded when its turn came)."""
    import nodes as core
    mm = host.mm
    judge = load(host, tiny_judge_files, "clip")
    model, clip, vae = host.glue("demo_adapter").load_demo()
    enc = lambda text: core.CLIPTextEncode().encode(clip, text)[0]
    mm.unload_all_models()
    host.nodes.NODE_CLASS_MAPPINGS["CISSweep"].execute(
        model, enc("a red circle"), enc("a blue circle"), enc(""), core.EmptyLatentImage().generate(64, 64, 1)[0], vae,
        judge, "blue", 0, 2, "", "every 2", 4, 4.0, "euler", "normal", 0.5, 0, False, "managed-judge-sweep", "red")
    assert loaded(host, judge.net.patcher) == 1 and loaded(host, model) == 1


def test_judge_networks_are_freed_when_nothing_holds_them(host, tiny_judge_files, tmp_path):
    """One copy per weights file while a judge is held (ComfyUI's output cache holds the loader's); none once
    nothing does: the cache does not keep networks alive, and clearing it forgets them."""
    import gc
    import shutil
    import weakref
    judges = host.glue("managed_judges").judges  # the engine as ComfyUI loaded it (the pack's own module copy)
    copy = tiny_judge_files[0].parent / f"own-{tmp_path.name}.safetensors"  # in models/pci_judges: no other holder
    own = (shutil.copy(tiny_judge_files[0], copy), tiny_judge_files[1])
    judge = load(host, own, "clip", "a sketch of {}")
    judge.score(torch.rand(1, 32, 32, 3), "red")
    net = weakref.ref(judge.net)
    assert load(host, own, "clip", "a painting of {}").net is net()
    judges.clear_judge_cache()
    assert load(host, own, "clip", "a sketch of {}").net is not net()  # forgotten: loaded anew
    del judge
    host.mm.unload_all_models()
    gc.collect()
    assert net() is None


@pytest.mark.parametrize("weights, weights_path, named", [
    ("none (rule judge)", "../../../../../../etc/hostname", "weights_path '../../../../../../etc/hostname': outside"),
    ("none (rule judge)", "/etc/hostname", "weights_path '/etc/hostname': outside the folders a workflow may read"),
    ("../../../etc/hostname", "", "weights '../../../etc/hostname': not one of the"),
])
def test_judge_weights_stay_inside_the_judges_model_folder(host, tiny_judge_files, weights, weights_path, named):
    loader = host.nodes.NODE_CLASS_MAPPINGS[LOADER]
    with pytest.raises(ValueError, match=named.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        loader.execute("clip", tiny.TINY_CLIP, weights, "auto", weights_path)
