"""The nodes on each family users run (tiny random models built from ComfyUI's own classes, families.py):
SDXL, SD3, FLUX (cfg 1 and > 1) and Qwen-Image (5-D latents). On each: Concept Insertion Sampler switches
where the one-pass ConditioningSetTimestepRange graph does (bit for bit); a sweep's branches equal the
node's runs bit for bit at max_batch 1, and at the automatic batch give the same judge decisions within
a measured float noise; an edit of a seed and of an input image; and on FLUX the guidance guard."""
import logging

import pytest
import torch

from pci_cluster.testbed.tiny_families import FAMILIES
from pci_cluster.testbed.range_graphs import insertion_and_range

CASES = [("sdxl", 4.0), ("sd3", 3.0), ("flux", 1.0), ("flux", 3.0), ("qwen_image", 3.0)]
IDS = [f"{name}-cfg{cfg:g}" for name, cfg in CASES]
STEPS = 4
# Float noise of a branch at the automatic batch against its batch-1 run, relative to the latent's
# largest value (measured on this CPU at 1 and 2 threads: up to 6e-6; printed by the test).
RELATIVE_NOISE = 1e-4


@pytest.fixture(scope="module")
def built(host):
    return {name: FAMILIES[name]() for name in dict.fromkeys(name for name, _ in CASES)}


def prompts(family):
    return family.encode("a photo of a person"), family.encode("a photo of an old person"), family.encode("")


@pytest.mark.parametrize("name, cfg", CASES, ids=IDS)
def test_node_switches_where_the_range_graph_does(host, inference, built, name, cfg):
    family = built[name]
    base, concept, neg = prompts(family)
    outs = {}
    for sampler, scheduler, k in (("euler", "simple", 2), ("dpmpp_2m", "normal", 1), ("euler_ancestral", "simple", 3)):
        inserted, reference = insertion_and_range(host, family.model, base, concept, neg, family.latent(), 7, STEPS,
                                                  cfg, sampler, scheduler, k)
        assert torch.isfinite(inserted).all() and inserted.shape == reference.shape
        assert torch.equal(inserted, reference), (sampler, k, (inserted - reference).abs().max().item())
        outs[sampler] = inserted
    late, _ = insertion_and_range(host, family.model, base, concept, neg, family.latent(), 7, STEPS, cfg, "euler",
                                  "simple", 3)
    assert not torch.equal(outs["euler"], late)  # the step matters


def node_runs(host, family, base, concept, neg, seeds, ks, cfg):
    node = host.nodes.NODE_CLASS_MAPPINGS["ConceptInsertionSampler"]
    runs = [[node.execute(family.model, base, concept, neg, family.latent(), s, STEPS, cfg, "euler", "simple",
                          float(k), 1.0).args[0]["samples"][0] for k in ks] for s in seeds]
    return torch.stack([torch.stack(r) for r in runs])


@pytest.mark.parametrize("name, cfg", CASES, ids=IDS)
def test_sweep_equals_the_node_exactly_at_batch_one_and_decides_the_same_at_auto(host, inference, built, name, cfg,
                                                                                   tiny_clip_judge):
    family = built[name]
    base, concept, neg = prompts(family)
    Sampling, sweep = host.glue("sampling").Sampling, host.glue("branching")
    seeds, ks = [3, 5], [0, 1, 2, STEPS]
    reference = node_runs(host, family, base, concept, neg, seeds, ks, cfg)
    one_row, _ = sweep.sweep_latents(Sampling(family.model, neg, STEPS, cfg, "euler", "simple", 1), base, concept,
                                     family.latent(), seeds, ks)
    assert torch.equal(one_row, reference), (one_row - reference).abs().max().item()
    auto = Sampling(family.model, neg, STEPS, cfg, "euler", "simple").for_latent(family.latent())
    batched, _ = sweep.sweep_latents(auto, base, concept, family.latent(), seeds, ks)
    noise = ((batched - reference).abs().max() / reference.abs().max()).item()
    print(f"\n{name} cfg {cfg}: max_batch {auto.max_batch}, |branch - node| / max|latent| = {noise:.1e} "
          f"(torch threads {torch.get_num_threads()})")
    assert noise <= RELATIVE_NOISE
    flat = lambda latents: latents.reshape(-1, *latents.shape[2:])
    scores = [sweep.decode_and_judge(family.vae, tiny_clip_judge, flat(x), "an old person", "a person", 4)
              for x in (batched, reference)]
    assert ((scores[0] >= 0.5) == (scores[1] >= 0.5)).all() and abs(scores[0] - scores[1]).max() < 1e-3


@pytest.mark.parametrize("name, cfg", CASES, ids=IDS)
def test_cis_sweep_node_and_an_edit_on_each_family(host, inference, built, name, cfg, tiny_clip_judge, tmp_path):
    family = built[name]
    base, concept, neg = prompts(family)
    sweep_node = host.nodes.NODE_CLASS_MAPPINGS["CISSweep"]
    out = sweep_node.execute(family.model, base, concept, neg, family.latent(), family.vae, tiny_clip_judge,
                             "an old person", 0, 2, "", "all", STEPS, cfg, "euler", "simple", 0.5, 0, False,
                             f"family-{name}-{cfg:g}-{tmp_path.name}", "a person").args
    result = out[2]
    assert result.seeds == [0, 1] and result.ks == list(range(STEPS + 1)) and result.scores.shape == (2, STEPS + 1)
    assert out[0].shape[-1] == 3 and out[1].shape[-1] == 3  # the curve and the timeline grid are images
    edit = host.nodes.NODE_CLASS_MAPPINGS["BestTimestepEdit"]
    k = 2
    edited, source_image, chosen, _, explanation = edit.execute(
        family.model, base, concept, neg, family.latent(), 4, STEPS, cfg, "euler", "simple", family.vae, "fixed", 0.5,
        0.5, k, 2, "an old person").args
    at_k = node_runs(host, family, base, concept, neg, [4], [k], cfg)[0]
    expected = host.glue("branching").decode(family.vae, at_k)
    assert chosen == k and torch.equal(edited, expected), explanation
    assert edited.ndim == 4 and edited.shape[-1] == 3 and not torch.equal(edited, source_image)
    image_edit = edit.execute(family.model, base, concept, neg, family.latent(), 4, STEPS, cfg, "euler", "simple",
                              family.vae, "fixed", 0.5, 0.5, k, 2, "an old person", image=source_image).args
    assert image_edit[0].shape == source_image.shape and torch.isfinite(image_edit[0]).all()
    assert "input image: inverted with the source prompt" in image_edit[4]


@pytest.mark.parametrize("cfg", [1.0, 3.0])
def test_flux_guidance_on_the_base_only_is_named_and_changes_the_image(host, inference, built, cfg, caplog):
    """FluxGuidance 2.0 on the base, a freshly encoded concept: the concept branch would run at FLUX's
    default 3.5. The nodes say so, naming the key and both values; with the guidance on both (what PCI
    Concept Encode makes) they say nothing."""
    import comfy_extras.nodes_flux as flux_nodes
    family = built["flux"]
    text = family.encode("a photo of a person")
    base = flux_nodes.FluxGuidance.execute(text, 2.0).args[0]
    fresh = family.encode("a photo of an old person")
    same_guidance = [[fresh[0][0], {**fresh[0][1], "guidance": 2.0}]]
    neg = family.encode("")
    node = host.nodes.NODE_CLASS_MAPPINGS["ConceptInsertionSampler"]
    run = lambda concept: node.execute(family.model, base, concept, neg, family.latent(), 1, STEPS, cfg, "euler",
                                       "simple", 1.0, 1.0).args[0]["samples"]
    with caplog.at_level(logging.WARNING):
        mixed = run(fresh)
    assert "guidance: base 2.0, concept not set (the model's default)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        agreed = run(same_guidance)
    assert "differ in more than their text" not in caplog.text
    diff = (mixed - agreed).abs().max().item()
    print(f"\nFLUX cfg {cfg}: |concept at default guidance - concept at 2.0| = {diff:.2f}")
    assert diff > 0.1
    table = host.nodes.NODE_CLASS_MAPPINGS["CISSweep"].execute(
        family.model, base, fresh, neg, family.latent(), family.vae, host.glue("demo_adapter").rule_judge(), "red", 0, 1, "",
        "every 2", STEPS, cfg, "euler", "simple", 0.5, 0, False, f"flux-guard-{cfg:g}", "").args[3]
    assert "WARNING: base and concept differ in more than their text: guidance: base 2.0" in table
