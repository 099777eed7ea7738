"""Host tier: the pack inside real upstream ComfyUI (in-process PromptExecutor, CPU)."""
import math

import pytest
import torch

from pci_core.demo import demo_model, pipeline, world
from pci_core.demo.world import DEMO_BASE

PACK_NODES = ["PCIDemoModelLoader", "ConceptInsertionSampler", "PCIJudgeLoader", "CISJudge"]
NEG = ""


def t2i_prompt(text, seed=3, sampler="euler", scheduler="normal", steps=20, cfg=4.0, batch=1):
    return {
        "1": {"class_type": "PCIDemoModelLoader", "inputs": {"weights": demo_model.WEIGHTS_FILE}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": text}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": NEG}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": batch}},
        "5": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0],
                                                   "latent_image": ["4", 0], "seed": seed, "steps": steps, "cfg": cfg,
                                                   "sampler_name": sampler, "scheduler": scheduler, "denoise": 1.0}},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}},
    }


def errors_of(events):
    return [d for e, d in events if e in ("execution_error", "validation_error")]


def test_pack_loads_with_all_nodes(host):
    for name in PACK_NODES:
        assert name in host.nodes.NODE_CLASS_MAPPINGS, f"{name} missing from /object_info"
        info = host.object_info(name)
        assert info["category"] == "PCI"
    inputs = host.object_info("ConceptInsertionSampler")["input"]["required"]
    assert {"base", "concept", "negative", "insert_step", "sampler_name", "scheduler"} <= set(inputs)


def test_demo_text_to_image_graph_runs_and_renders_the_prompt(host):
    prompt = DEMO_BASE
    ok, events, _ = host.run(t2i_prompt(prompt, batch=4))
    assert ok, errors_of(events)
    images = host.output("6").numpy()
    assert images.shape == (4, 64, 64, 3)
    read = [world.read_attributes(im) for im in images]
    wanted = world.parse_prompt(prompt)
    hits = sum(all(r[a] == v for a, v in wanted.items()) for r in read)
    assert hits >= 3, read


@pytest.mark.parametrize("sampler", ["euler", "euler_ancestral", "dpmpp_2m"])
def test_loader_images_equal_standalone_pci_core(host, sampler):
    prompt, seed = "a small blue triangle at the top on a white background", 11
    ok, events, _ = host.run(t2i_prompt(prompt, seed=seed, sampler=sampler))
    assert ok, errors_of(events)
    comfy_image = host.output("6")
    model = demo_model.load()
    standalone = pipeline.generate(model, prompt, [seed], pipeline.SamplerSettings(sampler=sampler), NEG)
    diff = (comfy_image - standalone).abs().max().item()
    print(f"{sampler}: max |ComfyUI - pci_core| = {diff:.2e}")
    assert diff <= 1e-4


def test_core_nodes_accept_the_demo_model(host):
    """KSamplerAdvanced, ConditioningSetTimestepRange, ConditioningCombine, VAEEncode on the demo model."""
    p = t2i_prompt("a green square on the right")
    p.update({
        "10": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a yellow circle"}},
        "11": {"class_type": "ConditioningSetTimestepRange", "inputs": {"conditioning": ["2", 0], "start": 0.0, "end": 0.5}},
        "12": {"class_type": "ConditioningSetTimestepRange", "inputs": {"conditioning": ["10", 0], "start": 0.5, "end": 1.0}},
        "13": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["11", 0], "conditioning_2": ["12", 0]}},
        "14": {"class_type": "VAEEncode", "inputs": {"pixels": ["6", 0], "vae": ["1", 2]}},
        "15": {"class_type": "KSamplerAdvanced", "inputs": {
            "model": ["1", 0], "add_noise": "enable", "noise_seed": 1, "steps": 10, "cfg": 4.0, "sampler_name": "euler",
            "scheduler": "normal", "positive": ["13", 0], "negative": ["3", 0], "latent_image": ["14", 0],
            "start_at_step": 4, "end_at_step": 10, "return_with_leftover_noise": "disable"}},
        "16": {"class_type": "VAEDecode", "inputs": {"samples": ["15", 0], "vae": ["1", 2]}},
        "17": {"class_type": "PreviewImage", "inputs": {"images": ["16", 0]}},
    })
    ok, events, _ = host.run(p)
    assert ok, errors_of(events)
    assert host.output("14")["samples"].shape == (1, 4, 8, 8)
    image = host.output("16").numpy()[0]
    assert image.shape == (64, 64, 3) and 0.0 <= image.min() and image.max() <= 1.0


def _insertion_prompt(insert_step, steps=10):
    p = t2i_prompt("a red circle", steps=steps)
    p["10"] = {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a blue square"}}
    p["5"] = {"class_type": "ConceptInsertionSampler", "inputs": {
        "model": ["1", 0], "base": ["2", 0], "concept": ["10", 0], "negative": ["3", 0], "latent_image": ["4", 0],
        "seed": 2, "steps": steps, "cfg": 4.0, "sampler_name": "euler", "scheduler": "normal",
        "insert_step": insert_step, "denoise": 1.0}}
    return p


def test_bad_input_reaches_client_named_and_next_prompt_runs(host):
    ok, events, _ = host.run(_insertion_prompt(insert_step=25, steps=10))
    assert not ok
    message = str(errors_of(events))
    assert "insert_step" in message and "[0, 10]" in message, message
    ok, events, _ = host.run(_insertion_prompt(insert_step=0, steps=0))
    assert not ok and "steps" in str(errors_of(events))
    ok, events, _ = host.run(t2i_prompt("a red circle with a purple background"))
    assert not ok and "purple" in str(errors_of(events))
    ok, events, _ = host.run(_insertion_prompt(insert_step=4, steps=10))
    assert ok, errors_of(events)


# ---------------------------------------------------------------- the switch, for every sampler and scheduler

def _percent_for_sigma(model_sampling, sigma: float) -> float:
    """start_percent whose percent_to_sigma is `sigma` (inverting the log-sigma interpolation)."""
    log_sigmas = model_sampling.log_sigmas.double()
    ls = math.log(sigma)
    i = int(torch.searchsorted(log_sigmas, torch.tensor(ls, dtype=torch.float64))) - 1
    t = i + (ls - float(log_sigmas[i])) / float(log_sigmas[i + 1] - log_sigmas[i])
    return 1.0 - t / 999.0


def test_insertion_equals_ksampler_and_timestep_range_for_every_sampler_and_scheduler(host, inference):
    import comfy.samplers
    import nodes as core
    from pci_core import schedule

    model, clip, _ = host.nodes.NODE_CLASS_MAPPINGS["PCIDemoModelLoader"].execute(demo_model.WEIGHTS_FILE).args
    enc = lambda text: core.CLIPTextEncode().encode(clip, text)[0]
    base, concept, neg = enc("a red circle on the left"), enc("a blue square on the right"), enc(NEG)
    latent = core.EmptyLatentImage().generate(64, 64, 1)[0]
    insertion_node = host.nodes.NODE_CLASS_MAPPINGS["ConceptInsertionSampler"]
    steps, k, seed, cfg = 6, 3, 5, 3.0
    ms = model.get_model_object("model_sampling")
    rows, worst = [], 0.0
    for sampler in comfy.samplers.KSampler.SAMPLERS:
        for scheduler in comfy.samplers.KSampler.SCHEDULERS:
            ks = lambda pos: core.common_ksampler(model, seed, steps, cfg, sampler, scheduler, pos, neg, latent)[0]["samples"]
            ins = lambda kk: insertion_node.execute(model, base, concept, neg, latent, seed, steps, cfg, sampler,
                                                     scheduler, float(kk), 1.0).args[0]["samples"]
            ks_sigmas = comfy.samplers.KSampler(model, steps, "cpu", sampler, scheduler, 1.0).sigmas
            p = _percent_for_sigma(ms, schedule.insertion_boundary(ks_sigmas, k))
            ranged = core.ConditioningCombine().combine(
                core.ConditioningSetTimestepRange().set_range(base, 0.0, p)[0],
                core.ConditioningSetTimestepRange().set_range(concept, p, 1.0)[0])[0]
            diffs = {"k=0 vs concept": (ins(0) - ks(concept)).abs().max().item(),
                     f"k={steps} vs base": (ins(steps) - ks(base)).abs().max().item(),
                     f"k={k} vs range": (ins(k) - ks(ranged)).abs().max().item()}
            worst = max(worst, *diffs.values())
            rows.append((sampler, scheduler, diffs))
    bad = [(s, sc, d) for s, sc, d in rows if max(d.values()) != 0.0]
    print(f"\n{len(rows)} sampler x scheduler pairs, {len(rows) - len(bad)} bit-identical, worst diff {worst:.2e}")
    for s, sc, d in bad:
        print(f"  {s:28s} {sc:16s} " + "  ".join(f"{n}: {v:.1e}" for n, v in d.items()))
    assert not bad


def _demo_parts(host):
    import nodes as core
    model, clip, vae = host.nodes.NODE_CLASS_MAPPINGS["PCIDemoModelLoader"].execute(demo_model.WEIGHTS_FILE).args
    enc = lambda text: core.CLIPTextEncode().encode(clip, text)[0]
    return core, model, clip, vae, enc


def test_batch_and_denoise_follow_ksampler(host, inference):
    """A latent batch draws all its noise from the one seed, and denoise < 1 counts the steps run."""
    core, model, clip, vae, enc = _demo_parts(host)
    base, concept, neg = enc("a red circle"), enc("a green triangle"), enc("")
    node = host.nodes.NODE_CLASS_MAPPINGS["ConceptInsertionSampler"]
    batch = core.EmptyLatentImage().generate(64, 64, 3)[0]
    ins = node.execute(model, base, concept, neg, batch, 7, 8, 4.0, "euler", "normal", 0.0, 1.0).args[0]["samples"]
    ks = core.common_ksampler(model, 7, 8, 4.0, "euler", "normal", concept, neg, batch)[0]["samples"]
    assert ins.shape == (3, 4, 8, 8) and torch.equal(ins, ks) and not torch.equal(ins[0], ins[1])
    source = {"samples": ks[:1]}
    ins = node.execute(model, base, concept, neg, source, 7, 8, 4.0, "euler", "normal", 8.0, 0.5).args[0]["samples"]
    ks = core.common_ksampler(model, 7, 8, 4.0, "euler", "normal", base, neg, source, denoise=0.5)[0]["samples"]
    assert torch.equal(ins, ks)


def test_bad_conditioning_and_insert_step_are_named(host, inference):
    core, model, clip, vae, enc = _demo_parts(host)
    base, neg = enc("a red circle"), enc("")
    latent = core.EmptyLatentImage().generate(64, 64, 1)[0]
    node = host.nodes.NODE_CLASS_MAPPINGS["ConceptInsertionSampler"]
    run = lambda concept, k=2.0, steps=4: node.execute(model, base, concept, neg, latent, 0, steps, 4.0, "euler",
                                                       "normal", k, 1.0)
    with pytest.raises(ValueError, match="concept conditioning is empty"):
        run([])
    wide = [[torch.zeros(1, 16, 128), {}]]
    with pytest.raises(ValueError, match="different text encoders"):
        run(wide)
    with pytest.raises(ValueError, match=r"insert_step=5: must be in \[0, 4\]"):
        run(base, k=5.0)
    with pytest.raises(ValueError, match="a fraction must be in"):
        run(base, k=2.5)
    assert run(base, k=0.5).args[0]["samples"].shape == (1, 4, 8, 8)  # half of 4 steps


def with_judge(prompt, device="cpu", concept="red"):
    """The text-to-image prompt with a rule PCIJudgeLoader (node 20) and a CISJudge of its images (node 21)."""
    prompt["20"] = {"class_type": "PCIJudgeLoader", "inputs": {"backend": "rule", "model": "",
                                                              "weights": "none (rule judge)", "device": device}}
    prompt["21"] = {"class_type": "CISJudge", "inputs": {"images": ["6", 0], "judge": ["20", 0], "concept": concept,
                                                        "threshold": 0.5}}
    return prompt


def test_judge_nodes_score_demo_images_in_a_graph(host):
    p = with_judge(t2i_prompt("a large green square at the bottom on a white background", batch=4), concept="green square")
    p["22"] = {"class_type": "CISJudge", "inputs": {"images": ["6", 0], "judge": ["20", 0], "concept": "red",
                                                   "threshold": 0.5}}
    p["23"] = {"class_type": "PreviewImage", "inputs": {"images": ["21", 3]}}
    p["24"] = {"class_type": "PreviewAny", "inputs": {"source": ["22", 2]}}
    ok, events, _ = host.run(p)
    assert ok, errors_of(events)
    from pci_cluster.headless import cached_outputs
    green, red = (cached_outputs(host.executor.caches.outputs, node) for node in ("21", "22"))
    assert len(green[0]) == 4 and sum(green[1]) >= 3 and sum(red[1]) == 0
    assert "green square" in green[2][0]
    assert green[3][0].shape == (4, 64, 64, 3)
    p["21"]["inputs"]["concept"] = "   "
    ok, events, _ = host.run(p)
    assert not ok and "concept" in str(errors_of(events))


def test_interrupt_stops_the_sampler_and_the_next_run_works(host, inference):
    """The guider's own interrupt check stops the run. The progress hook (ComfyUI's main.py and this
    harness install one that raises on interrupt too) is switched off, so no other check can."""
    import comfy.model_management as mm
    import comfy.utils
    core, model, clip, vae, enc = _demo_parts(host)
    base, concept, neg = enc("a red circle"), enc("a blue circle"), enc("")
    latent = core.EmptyLatentImage().generate(64, 64, 1)[0]
    node = host.nodes.NODE_CLASS_MAPPINGS["ConceptInsertionSampler"]
    run = lambda: node.execute(model, base, concept, neg, latent, 0, 6, 4.0, "euler", "normal", 3.0, 1.0)
    hook = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(None)
    mm.interrupt_current_processing(True)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            run()
    finally:
        mm.interrupt_current_processing(False)
        comfy.utils.set_progress_bar_global_hook(hook)
    assert run().args[0]["samples"].shape == (1, 4, 8, 8)


def test_area_conds_and_model_patches_pass_through(host):
    """RescaleCFG (a sampler_cfg_function patch) and an area cond reach ComfyUI's sampling unchanged:
    insertion at k = 0 equals KSampler with the same patched model and conditioning."""
    p = _insertion_prompt(insert_step=0, steps=8)
    p["30"] = {"class_type": "RescaleCFG", "inputs": {"model": ["1", 0], "multiplier": 0.7}}
    p["31"] = {"class_type": "ConditioningSetAreaPercentage", "inputs": {
        "conditioning": ["10", 0], "width": 0.5, "height": 1.0, "x": 0.5, "y": 0.0, "strength": 1.0}}
    p["32"] = {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["31", 0], "conditioning_2": ["10", 0]}}
    p["5"]["inputs"].update({"model": ["30", 0], "concept": ["32", 0]})
    p["33"] = {"class_type": "KSampler", "inputs": {
        "model": ["30", 0], "positive": ["32", 0], "negative": ["3", 0], "latent_image": ["4", 0], "seed": 2,
        "steps": 8, "cfg": 4.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}}
    p["34"] = {"class_type": "VAEDecode", "inputs": {"samples": ["33", 0], "vae": ["1", 2]}}
    p["35"] = {"class_type": "PreviewImage", "inputs": {"images": ["34", 0]}}
    ok, events, _ = host.run(p)
    assert ok, errors_of(events)
    inserted, reference = host.output("5")["samples"], host.output("33")["samples"]
    assert torch.equal(inserted, reference)
    p["31"]["inputs"]["x"] = 0.0  # the area matters: moving it changes the result
    ok, events, _ = host.run(p)
    assert ok and not torch.equal(host.output("5")["samples"], inserted)


# ---------------------------------------------------------------- bad input and ignored settings (issue 10)

def test_denoise_zero_returns_the_latent_unchanged_as_ksampler(host, inference):
    core, model, clip, vae, enc = _demo_parts(host)
    base, concept, neg = enc("a red circle"), enc("a blue circle"), enc("")
    source = {"samples": torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))}
    node = host.nodes.NODE_CLASS_MAPPINGS["ConceptInsertionSampler"]
    out = node.execute(model, base, concept, neg, source, 0, 8, 4.0, "euler", "normal", 4.0, 0.0).args[0]
    ks = core.common_ksampler(model, 0, 8, 4.0, "euler", "normal", base, neg, source, denoise=0.0)[0]
    assert torch.equal(out["samples"], source["samples"]) and torch.equal(ks["samples"], source["samples"])
    with pytest.raises(ValueError, match=r"insert_step=9: must be in \[0, 8\]"):  # still checked
        node.execute(model, base, concept, neg, source, 0, 8, 4.0, "euler", "normal", 9.0, 0.0)


@pytest.mark.parametrize("insert_step, message", [
    (None, "Failed to convert an input value to a FLOAT value"),  # ComfyUI's own validation names the input
    ("half", "Failed to convert an input value to a FLOAT value"),
    (float("nan"), "insert_step=nan: expected a number"),  # NaN passes ComfyUI's min/max checks; the node names it
])
def test_insert_step_null_text_or_nan_through_the_api_is_named(host, insert_step, message):
    ok, events, _ = host.run(_insertion_prompt(insert_step=insert_step, steps=6))
    errors = str(errors_of(events))
    assert not ok and "insert_step" in errors and message in errors, errors


def test_insert_step_that_is_not_a_number_is_named_when_called_directly(host, inference):
    core, model, clip, vae, enc = _demo_parts(host)
    base, neg = enc("a red circle"), enc("")
    latent = core.EmptyLatentImage().generate(64, 64, 1)[0]
    node = host.nodes.NODE_CLASS_MAPPINGS["ConceptInsertionSampler"]
    for bad in (None, "3", float("inf"), True):
        with pytest.raises(ValueError, match=r"insert_step=.*: expected a number, a step in \[0, steps\]"):
            node.execute(model, base, base, neg, latent, 0, 6, 4.0, "euler", "normal", bad, 1.0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_judge_loader_on_cuda_without_cuda_names_device_and_what_is_available(host):
    p = with_judge(t2i_prompt("a red circle", steps=2), device="cuda")
    p["22"] = {"class_type": "PreviewAny", "inputs": {"source": ["21", 2]}}
    ok, events, _ = host.run(p)
    errors = str(errors_of(events))
    assert not ok and "device 'cuda': this machine has no such device; available: cpu" in errors, errors


def _cond(clip, text):
    import nodes as core
    return core.CLIPTextEncode().encode(clip, text)[0][0][0]


def test_clip_set_last_layer_is_honoured_on_the_demo_clip(host, inference, caplog):
    import logging
    import nodes as core
    core_, model, clip, vae, enc = _demo_parts(host)
    last = lambda layer: core.CLIPSetLastLayer().set_last_layer(clip, layer)[0]
    text = "a red circle on the left"
    full = _cond(clip, text)
    assert torch.equal(_cond(last(-1), text), full)
    second = _cond(last(-2), text)
    encoder = clip.cond_stage_model.encoder  # by hand: the first block's output, then the final norm
    ids = torch.tensor([demo_model.tokenize(text)])
    assert torch.equal(second, encoder.norm(encoder.blocks[0](encoder.embed(ids))))
    assert not torch.allclose(second, full)
    assert torch.equal(_cond(clip, text), full)  # the clone's layer does not stick to the original
    with caplog.at_level(logging.WARNING):
        assert torch.equal(_cond(last(-24), text), full)
    assert "stop_at_clip_layer=-24 is beyond its 2 layers" in caplog.text


def test_prompt_weights_are_honoured_on_the_demo_clip_as_comfyui_does(host, inference):
    core, model, clip, vae, enc = _demo_parts(host)
    plain = _cond(clip, "a red circle")
    assert torch.equal(_cond(clip, "a (red:1.0) circle"), plain)
    weighted = _cond(clip, "a (red:1.5) circle")
    empty = clip.cond_stage_model.encoder(torch.zeros(1, demo_model.MAX_TOKENS, dtype=torch.long))
    red = demo_model.tokenize("a red circle").index(demo_model.tokenize("red")[0])
    expected = plain.clone()
    expected[0, red] = (plain[0, red] - empty[0, red]) * 1.5 + empty[0, red]  # comfy.sd1_clip's rule
    assert torch.allclose(weighted, expected, atol=1e-6) and not torch.allclose(weighted, plain)
    both = _cond(clip, "a (red circle:0.5)")
    tokens = clip.tokenize("a (red circle:0.5)")
    assert tokens["weights"][:3] == [1.0, 0.5, 0.5] and not torch.allclose(both, plain)
