"""Host tier: CISSweep in real ComfyUI: branches bit-identical to ConceptInsertionSampler over many
samplers, files written per seed block, resume after an interrupt, and bad inputs named."""
import json
import sys
import uuid

import numpy as np
import pytest
import torch

from pci_cluster.testbed.demo_workflows import demo_inputs
from pci_core import schedule
from pci_core.demo import demo_model

# >= 10 samplers: plain, ancestral, SDE (Brownian tree), multistep, uni_pc, heun, every _cfg_pp kind,
# and dpm_adaptive (not batch-exact: one run per branch).
SAMPLERS = ["euler", "euler_ancestral", "dpmpp_2m_sde", "dpmpp_sde", "uni_pc", "heun", "lcm", "euler_cfg_pp",
            "euler_ancestral_cfg_pp", "dpmpp_2m_cfg_pp", "res_multistep_ancestral_cfg_pp", "dpm_adaptive"]


def _sweep(host, model, neg, steps, cfg, sampler, max_batch, base, concept, latent, seeds, ks):
    """The pack's sweep glue (nodes/comfy_glue/branching.py): latents (S, K, ...) and sigmas of every branch."""
    run = host.glue("sampling").Sampling(model, neg, steps, cfg, sampler, "normal", max_batch)
    return host.glue("branching").sweep_latents(run, base, concept, latent, seeds, ks)


def _parts(host):
    import nodes as core
    model, clip, vae = host.nodes.NODE_CLASS_MAPPINGS["PCIDemoModelLoader"].execute(demo_model.WEIGHTS_FILE).args
    enc = lambda text: core.CLIPTextEncode().encode(clip, text)[0]
    latent = core.EmptyLatentImage().generate(64, 64, 1)[0]
    return model, vae, enc("a red circle on the left"), enc("a blue square on the right"), enc(""), latent


def test_every_branch_equals_concept_insertion_sampler(host, inference):
    node = host.nodes.NODE_CLASS_MAPPINGS["ConceptInsertionSampler"]
    model, vae, base, concept, neg, latent = _parts(host)
    seeds, ks, steps, cfg = [3, 11], [0, 2, 3, 5], 5, 3.0
    worst = {}
    for sampler in SAMPLERS:  # chunked calls: 3 rows at most
        latents, sigmas = _sweep(host, model, neg, steps, cfg, sampler, 3, base, concept, latent, seeds, ks)
        assert latents.shape == (2, 4, 4, 8, 8) and len(sigmas) == steps + 1
        for i, seed in enumerate(seeds):
            for j, k in enumerate(ks):
                ref = node.execute(model, base, concept, neg, latent, seed, steps, cfg, sampler, "normal", float(k),
                                   1.0).args[0]["samples"][0]
                worst[sampler] = max(worst.get(sampler, 0.0), (latents[i, j] - ref).abs().max().item())
    print("\nmax |sweep branch - ConceptInsertionSampler| per sampler:", worst)
    assert all(v == 0.0 for v in worst.values()), worst
    assert not torch.equal(latents[0, 0], latents[1, 0]) and not torch.equal(latents[0, 0], latents[0, 3])


def test_without_the_protections_branches_differ(host, inference):
    """What the per-seed noise, the post-CFG handling and the demo UNet's batch-size padding protect
    against, measured (printed for the README) and asserted to matter."""
    import comfy.samplers
    from comfy import sample
    node = host.nodes.NODE_CLASS_MAPPINGS["ConceptInsertionSampler"]
    model, vae, base, concept, neg, latent = _parts(host)
    seeds, ks, steps, cfg = [3, 11], [0, 2, 3, 6], 6, 3.0
    S, K = len(seeds), len(ks)

    def naive(sampler):  # one mixed batch through the plain guider and ComfyUI's own sampler
        sigmas = host.glue("sampling").Sampling(model, neg, steps, cfg, sampler, "normal").sigmas()
        bounds = torch.tensor([schedule.insertion_boundary(sigmas, k) for k in ks], dtype=torch.float64).repeat(S)
        guider = host.glue("guider").ConceptInsertionGuider(model, base, concept, neg, cfg, bounds, torch.arange(S).repeat_interleave(K))
        noise = torch.cat([sample.prepare_noise(latent["samples"], s) for s in seeds]).repeat_interleave(K, 0)
        out = guider.sample(noise, latent["samples"].repeat(S * K, 1, 1, 1), comfy.samplers.sampler_object(sampler),
                            sigmas, disable_pbar=True, seed=seeds[0])
        return out.reshape(S, K, *out.shape[1:])

    def diff(latents, sampler):
        refs = torch.stack([torch.stack([node.execute(model, base, concept, neg, latent, s, steps, cfg, sampler,
                                                      "normal", float(k), 1.0).args[0]["samples"][0] for k in ks])
                            for s in seeds])
        return (latents - refs).abs().max().item()

    found = {}
    for sampler in ["euler_ancestral", "dpmpp_2m_sde", "euler_cfg_pp"]:
        try:
            found[f"naive mixed batch, {sampler}"] = diff(naive(sampler), sampler)
        except RuntimeError as e:  # the post-CFG hook kept another sub-batch's rows
            found[f"naive mixed batch, {sampler}"] = f"fails: {str(e)[:60]}"
    unet_module = sys.modules[type(model.model.diffusion_model).__module__]
    saved = unet_module.MIN_ROWS
    unet_module.MIN_ROWS = 0  # the demo UNet's time MLP on the batch as it comes (a real model's behaviour)
    try:
        for sampler in ["euler", "dpmpp_2m"]:
            found[f"no batch-size padding in the UNet, {sampler}"] = diff(
                _sweep(host, model, neg, steps, cfg, sampler, S * K, base, concept, latent, seeds, ks)[0], sampler)
    finally:
        unet_module.MIN_ROWS = saved
    print("\nmax |branch - ConceptInsertionSampler| without protection:")
    for name, value in found.items():
        print(f"  {name}: {value if isinstance(value, str) else f'{value:.2e}'}")
    assert found["naive mixed batch, euler_ancestral"] > 0.1 and found["naive mixed batch, dpmpp_2m_sde"] > 0.1


# ---------------------------------------------------------------- the node in a graph

def sweep_prompt(run_name, seeds="", count=6, steps=4, insert="all", sampler="euler_ancestral", threshold=0.5,
                 judge_text="blue", batch=1, max_batch=8, concept="a blue circle on the left", cfg=4.0):
    return {
        **demo_inputs("a red circle on the left", concept, batch),
        "7": {"class_type": "CISSweep", "inputs": {
            "model": ["1", 0], "base": ["2", 0], "concept": ["3", 0], "negative": ["4", 0], "latent": ["5", 0],
            "vae": ["1", 2], "judge": ["6", 0], "judge_text": judge_text, "seed": 100, "seed_count": count,
            "seed_list": seeds, "insert_steps": insert, "steps": steps, "cfg": cfg, "sampler_name": sampler,
            "scheduler": "normal", "threshold": threshold, "max_batch": max_batch, "valid_seeds_only": False,
            "run_name": run_name}},
        "8": {"class_type": "PreviewImage", "inputs": {"images": ["7", 0]}},
        "9": {"class_type": "PreviewImage", "inputs": {"images": ["7", 1]}},
    }


def errors_of(events):
    return [d for e, d in events if e in ("execution_error", "validation_error")]


def _folder(name):
    import folder_paths
    from pathlib import Path
    return Path(folder_paths.get_output_directory()) / "pci" / name


@pytest.fixture()
def run_name(host):
    """Unique run names under ComfyUI's output/pci/, removed after the test."""
    import shutil
    names = []
    yield lambda prefix: names.append(f"test-{prefix}-{uuid.uuid4().hex[:8]}") or names[-1]
    for name in names:
        shutil.rmtree(_folder(name), ignore_errors=True)


def _run_interrupted_after(host, prompt, calls):
    """Run a prompt and interrupt it at the pack's `calls`-th interrupt check (one per sampler step and per
    decode / judge chunk). Counted there, not in the progress hook: today's ComfyUI throttles progress
    updates (comfy/utils.py at 09708eae: >= 100 ms and 0.5 % apart), so hook calls are not one per step."""
    import sys

    import comfy.model_management as mm
    check, seen = mm.throw_exception_if_processing_interrupted, []

    def counting():
        if ".comfy_glue." in sys._getframe(1).f_globals.get("__name__", ""):  # the pack's own checks only
            seen.append(1)
            if len(seen) == calls:
                mm.interrupt_current_processing(True)
        return check()
    mm.throw_exception_if_processing_interrupted = counting
    try:
        return host.run(prompt), seen
    finally:
        mm.throw_exception_if_processing_interrupted = check
        mm.interrupt_current_processing(False)


def _progress(events):
    return [(d["value"], d["max"]) for e, d in events if e == "progress" and d.get("node") == "7"]


def test_sweep_node_writes_blocks_resumes_after_interrupt_and_equals_an_uninterrupted_run(host, run_name):
    import comfy.model_management as mm
    whole, parts = run_name("whole"), run_name("parts")
    ok, events, _ = host.run(sweep_prompt(whole))  # 6 seeds x k 0..4; blocks of 3 seeds (2 * 8 // 5)
    assert ok, errors_of(events)
    curve, grid, result, table, tau50 = (host.output("7", i) for i in range(5))
    assert curve.shape[0] == 1 and curve.shape[-1] == 3 and grid.shape[0] == 1 and grid.shape[-1] == 3
    assert result.seeds == list(range(100, 106)) and result.ks == [0, 1, 2, 3, 4] and result.scores.shape == (6, 5)
    assert "CIS of 'blue' over 6 seeds" in table and isinstance(tau50, float)
    assert result.decisions[:, 0].all() and not result.decisions[:, -1].any()  # the controls: blue at k=0, red at k=T
    steps_seen = _progress(events)
    assert steps_seen[-1][0] == steps_seen[-1][1] == 2 * (4 + 2)  # per block: 4 steps + 2 decode/judge chunks
    stored = json.loads((_folder(whole) / "results.json").read_text())
    assert [r["seed"] for r in stored["records"]] == result.seeds and (_folder(whole) / "cis.csv").is_file()

    (ok, events, _), seen = _run_interrupted_after(host, sweep_prompt(parts), calls=8)  # inside the second block
    assert not ok and any(e == "execution_interrupted" for e, _ in events)
    assert mm.processing_interrupted() is False
    stored = json.loads((_folder(parts) / "results.json").read_text())
    assert [r["seed"] for r in stored["records"]] == [100, 101, 102]  # the first block was kept
    ok, events, _ = host.run(sweep_prompt(parts))  # re-queue: resumes with the seeds not on disk
    assert ok, errors_of(events)
    assert _progress(events)[-1][1] == 4 + 2, "the resumed run sampled the finished block again"
    for name in ("results.json", "cis.csv"):
        assert (_folder(parts) / name).read_bytes() == (_folder(whole) / name).read_bytes(), name
    assert np.array_equal(host.output("7", 2).scores, result.scores) and host.output("7", 4) == tau50

    ok, events, _ = host.run(sweep_prompt(parts, sampler="euler"))  # other settings, same name
    message = str(errors_of(events))
    assert not ok and "settings.sampler" in message and "nothing was overwritten" in message, message
    (_folder(parts) / "results.json").write_text(stored_text := '{"format": "pci-cis-res')
    ok, events, _ = host.run(sweep_prompt(parts, count=7))
    message = str(errors_of(events))
    assert not ok and "results.json" in message and "corrupt" in message, message
    assert (_folder(parts) / "results.json").read_text() == stored_text  # nothing lost or rewritten
    ok, events, _ = host.run(sweep_prompt(whole, count=7))  # the server goes on: one more seed resumes
    assert ok and host.output("7", 2).seeds == list(range(100, 107)), errors_of(events)


@pytest.mark.parametrize("change, named", [
    ({"seeds": "1,,2"}, "seed_list"), ({"insert": "2,9"}, "insert_steps"), ({"insert": "every 0"}, "stride 0"),
    ({"steps": 1}, "'steps'"), ({"threshold": 0.0}, "threshold"), ({"threshold": 1.0}, "threshold"),
    ({"batch": 2}, "latent: a batch of 2"), ({"judge_text": " "}, "judge_text"), ({"max_batch": -1}, "max_batch"),
    ({"count": 0}, "seed_count")])
def test_bad_input_is_named_and_the_server_runs_on(host, change, named, run_name):
    name = run_name("bad")
    ok, events, _ = host.run(sweep_prompt(name, **change))
    assert not ok and named in str(errors_of(events)), errors_of(events)
    assert not _folder(name).exists()  # nothing written


def test_wrong_judge_same_prompts_and_the_fingerprint(host, inference, run_name):
    model, vae, base, concept, neg, latent = _parts(host)
    node = host.nodes.NODE_CLASS_MAPPINGS["CISSweep"]
    name = run_name("same")
    run = lambda judge, c: node.execute(model, base, c, neg, latent, vae, judge, "red", 0, 2, "", "every 2", 2, 4.0,
                                        "euler", "normal", 0.5, 8, False, name)
    with pytest.raises(ValueError, match="judge: expected a judge from PCI Judge Loader"):
        run("rule", concept)
    assert node.fingerprint_inputs(run_name=name) is None
    judge = host.nodes.NODE_CLASS_MAPPINGS["PCIJudgeLoader"].execute("rule", "", "none (rule judge)", "cpu").args[0]
    table = run(judge, base).args[3]
    assert "WARNING: base and concept conditioning are the same" in table
    # the files changed, so ComfyUI re-runs the node instead of handing back cached outputs
    assert node.fingerprint_inputs(run_name=name) is not None
