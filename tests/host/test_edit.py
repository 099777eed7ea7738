"""Host tier: BestTimestepEdit in real ComfyUI on the demo model: a seed edit equals PCI at the chosen k,
an input-image edit equals the standalone inversion + edit, and bad inputs reach the client named."""
import pytest
import torch

from pci_core import edit_rules, schedule
from pci_cluster.testbed.demo_workflows import demo_inputs
from pci_core.demo import demo_model, latent_edits, pipeline

STEPS = 6
SOURCE, EDIT = "a red circle", "a blue circle"


def edit_prompt(rule="tau", fixed_k=3, edit=EDIT, steps=STEPS, judge=True, image=None, seed=5):
    p = {
        **demo_inputs(SOURCE, edit),
        "20": {"class_type": "BestTimestepEdit", "inputs": {
            "model": ["1", 0], "source": ["2", 0], "edit": ["3", 0], "negative": ["4", 0], "latent_image": ["5", 0],
            "seed": seed, "steps": steps, "cfg": 4.0, "sampler_name": "euler", "scheduler": "normal", "vae": ["1", 2],
            "rule": rule, "level": 0.5, "weight": 0.5, "fixed_k": fixed_k, "probe_seeds": 2, "judge_text": "blue"}},
        "21": {"class_type": "PreviewImage", "inputs": {"images": ["20", 0]}},
        "22": {"class_type": "PreviewImage", "inputs": {"images": ["20", 3]}},
    }
    if judge:
        p["20"]["inputs"]["judge"] = ["6", 0]
    if image is not None:
        p["20"]["inputs"]["image"] = image
    return p


def with_generated_image(p, size=64):
    """The source image made in the same graph (KSampler + VAEDecode), optionally rescaled, fed as image."""
    p["10"] = {"class_type": "KSampler", "inputs": {
        "model": ["1", 0], "positive": ["2", 0], "negative": ["4", 0], "latent_image": ["5", 0], "seed": 11,
        "steps": STEPS, "cfg": 4.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}}
    p["11"] = {"class_type": "VAEDecode", "inputs": {"samples": ["10", 0], "vae": ["1", 2]}}
    p["12"] = {"class_type": "ImageScale", "inputs": {"image": ["11", 0], "upscale_method": "nearest-exact",
                                                      "width": size, "height": size, "crop": "disabled"}}
    p["20"]["inputs"]["image"] = ["12", 0] if size != 64 else ["11", 0]
    return p


def errors_of(events):
    return [d for e, d in events if e in ("execution_error", "validation_error")]


def outputs(host):
    return [host.output("20", i) for i in range(5)]


@pytest.mark.parametrize("rule", ["tau", "best score"])
def test_seed_edit_is_pci_at_the_probed_step(host, rule):
    ok, events, _ = host.run(edit_prompt(rule=rule))
    assert ok, errors_of(events)
    edited, source, k, plot, explanation = outputs(host)
    assert 0 <= k <= STEPS and f"{rule} rule" in explanation and "probe over seeds 6, 7" in explanation, explanation
    assert plot.shape == (1, 300, 500, 3) and 0.0 <= plot.min() and plot.max() <= 1.0
    model = demo_model.load()
    settings = pipeline.SamplerSettings(steps=STEPS)
    latents = pipeline.insertion_latents(model, SOURCE, EDIT, [5], [k, STEPS], settings)
    expected_edit, expected_source = model.decode(latents[0, 0:1]), model.decode(latents[0, 1:2])
    assert (edited - expected_edit).abs().max().item() <= 1e-4
    assert (source - expected_source).abs().max().item() <= 1e-4


def test_input_image_edit_is_inversion_then_the_edit_prompt(host):
    ok, events, _ = host.run(with_generated_image(edit_prompt(rule="fixed", fixed_k=2, judge=False)))
    assert ok, errors_of(events)
    edited, source, k, _, explanation = outputs(host)
    assert k == 2 and "fixed rule" in explanation and "inverted with the source prompt" in explanation
    image = host.output("11")
    assert torch.equal(source, image)
    model = demo_model.load()
    settings = pipeline.SamplerSettings(steps=STEPS)
    sigmas = schedule.make_schedule("normal", schedule.discrete_sigmas(), STEPS)
    to_source, to_edit = latent_edits.prompt_denoisers(model, SOURCE, EDIT, settings, "")
    invert_with, _ = latent_edits.prompt_denoisers(model, SOURCE, EDIT, settings, "", cfg=1.0)
    levels = latent_edits.invert(invert_with, model.encode(image), sigmas)
    expected = model.decode(latent_edits.denoise_from(to_edit, levels[2], sigmas[2:], settings, [5]))
    assert (edited - expected).abs().max().item() <= 1e-3
    # k = steps: no inversion step and no edit step, the VAE round trip of the input comes back
    ok, events, _ = host.run(with_generated_image(edit_prompt(rule="fixed", fixed_k=STEPS, judge=False)))
    assert ok, errors_of(events)
    assert (host.output("20", 0) - model.decode(model.encode(image))).abs().max().item() <= 1e-4


def with_sweep(p, steps, run_name):
    """A CISSweep of the same source -> edit prompts (2 seeds, every k) wired into the edit's cis_result."""
    p["7"] = {"class_type": "CISSweep", "inputs": {
        "model": ["1", 0], "base": ["2", 0], "concept": ["3", 0], "negative": ["4", 0], "latent": ["5", 0],
        "vae": ["1", 2], "judge": ["6", 0], "judge_text": "blue", "seed": 100, "seed_count": 2, "seed_list": "",
        "insert_steps": "all", "steps": steps, "cfg": 4.0, "sampler_name": "euler", "scheduler": "normal",
        "threshold": 0.5, "max_batch": 16, "valid_seeds_only": False, "run_name": run_name}}
    p["20"]["inputs"]["cis_result"] = ["7", 2]
    return p


def test_tau_rule_reads_k_from_a_wired_cis_result(host):
    import shutil
    from pathlib import Path
    import folder_paths
    shutil.rmtree(Path(folder_paths.get_output_directory()) / "pci" / "test_edit_tau", ignore_errors=True)
    ok, events, _ = host.run(with_sweep(edit_prompt(rule="tau", judge=False), STEPS, "test_edit_tau"))
    assert ok, errors_of(events)
    result = host.output("7", 2)
    k, explanation = host.output("20", 2), host.output("20", 4)
    assert k == edit_rules.choose_by_tau(result, 0.5).k and "Measured by: cis_result" in explanation, explanation


def test_bad_inputs_reach_the_client_named_and_the_server_keeps_running(host):
    cases = [
        (edit_prompt(rule="fixed", fixed_k=25), "fixed_k=25: must be a whole step in [0, 6]"),
        (edit_prompt(rule="tau", judge=False), "judge: rule 'tau' without cis_result needs CIS per step"),
        (edit_prompt(rule="best score", judge=False), "judge: rule 'best score'"),
        (with_generated_image(edit_prompt(rule="fixed"), size=60), "image is 60x60 pixels; this VAE needs width and "
                                                                   "height that are multiples of 8"),
    ]
    for prompt, message in cases:
        ok, events, _ = host.run(prompt)
        assert not ok and message in str(errors_of(events)), (message, errors_of(events))
    # a CIS result measured with other steps is refused, naming both
    ok, events, _ = host.run(with_sweep(edit_prompt(rule="tau", judge=False), 4, "test_edit_mismatch"))
    assert not ok and "cis_result was measured with steps=4" in str(errors_of(events)), errors_of(events)
    assert "this edit runs steps=6" in str(errors_of(events))
    # source = edit: a warning, the source comes back unchanged
    ok, events, _ = host.run(edit_prompt(rule="fixed", edit=SOURCE))
    assert ok, errors_of(events)
    edited, source, k, _, explanation = outputs(host)
    assert k == STEPS and torch.equal(edited, source) and explanation.startswith("WARNING: source and edit")
    ok, events, _ = host.run(edit_prompt(rule="fixed", fixed_k=3))
    assert ok, errors_of(events)


def with_insertion_samplers(p, ks, seed=5):
    """ConceptInsertionSampler + VAEDecode (+ preview) of the same seed and prompts at each k (ids 30+i / 40+i)."""
    for i, k in enumerate(ks):
        p[str(30 + i)] = {"class_type": "ConceptInsertionSampler", "inputs": {
            "model": ["1", 0], "base": ["2", 0], "concept": ["3", 0], "negative": ["4", 0], "latent_image": ["5", 0],
            "seed": seed, "steps": STEPS, "cfg": 4.0, "sampler_name": "euler", "scheduler": "normal",
            "insert_step": float(k), "denoise": 1.0}}
        p[str(40 + i)] = {"class_type": "VAEDecode", "inputs": {"samples": [str(30 + i), 0], "vae": ["1", 2]}}
        p[str(50 + i)] = {"class_type": "PreviewImage", "inputs": {"images": [str(40 + i), 0]}}
    return p


def test_latest_yes_takes_the_last_step_where_this_seeds_edit_shows(host):
    from pci_core.demo.rule_judge import RuleJudge
    judge = RuleJudge()
    ok, events, _ = host.run(edit_prompt(rule="latest yes"))
    assert ok, errors_of(events)
    edited, _, k, _, explanation = outputs(host)
    assert "latest yes rule" in explanation and "the edit of seed 5" in explanation, explanation
    assert 0 < k < STEPS, explanation  # this seed's edit takes part-way (else the test would show no boundary)
    ok, events, _ = host.run(with_insertion_samplers(edit_prompt(rule="fixed", fixed_k=k), [k, k + 1]))
    assert ok, errors_of(events)
    at_k, after_k = host.output("40"), host.output("41")
    assert (edited - at_k).abs().max().item() <= 1e-4  # the edit is ConceptInsertionSampler at the chosen k
    assert judge.score(at_k, "blue").item() >= 0.5 and judge.score(after_k, "blue").item() < 0.5


def test_latest_yes_on_an_input_image_is_the_last_step_its_inverted_edit_shows(host):
    from pci_core.demo.rule_judge import RuleJudge
    judge = RuleJudge()
    ok, events, _ = host.run(with_generated_image(edit_prompt(rule="latest yes")))
    assert ok, errors_of(events)
    edited, _, k, _, explanation = outputs(host)
    assert "the input image inverted to every k" in explanation, explanation
    assert judge.score(edited, "blue").item() >= 0.5, explanation
    if k < STEPS:  # the same image edited one step later (inverted to k+1 in one run) does not show it
        ok, events, _ = host.run(with_generated_image(edit_prompt(rule="fixed", fixed_k=k + 1, judge=False)))
        assert ok, errors_of(events)
        assert judge.score(host.output("20", 0), "blue").item() < 0.5, explanation
    ok, events, _ = host.run(edit_prompt(rule="latest yes", judge=False))
    assert not ok and "judge: rule 'latest yes' needs the judge's reading" in str(errors_of(events))
