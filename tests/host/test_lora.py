"""A LoRA inserted at step k, measured like a prompt (issue 29): the concept is the base conditioning with a
weight hook (core CreateHookLoraModelOnly + ConditioningSetProperties, as a user wires it) over a LoRA file
in ComfyUI's LoRA format. Concept Insertion Sampler equals ComfyUI's own range graph (base on [0, p],
hooked concept on [p, 1]) bit for bit; a sweep's branches equal single hooked runs (bit for bit at
max_batch 1, the same decisions at the automatic batch); the hook is really applied; the conditioning
guard takes the hook for the intervention it is. On the demo model with its shipped LoRA, and on a tiny
random SD3 with a random LoRA file."""
import logging

import pytest
import torch
from safetensors.torch import save_file

from pci_cluster.testbed.range_graphs import insertion_and_range
from pci_cluster.testbed.tiny_families import FAMILIES
from pci_core.demo import demo_model, lora
from pci_core.demo.world import DEMO_BASE

STEPS = 6


def hooked(core_hooks, base, lora_name, strength=1.0):
    """The base conditioning with the LoRA as a weight hook, through the core nodes a user wires."""
    hook = core_hooks.CreateHookLoraModelOnly().create_hook_model_only(lora_name=lora_name, strength_model=strength)[0]
    return core_hooks.ConditioningSetProperties().set_properties(cond_NEW=base, strength=1.0,
                                                                 set_cond_area="default", hooks=hook)[0]


@pytest.fixture(scope="module")
def hooks_nodes(host):
    import comfy_extras.nodes_hooks as core_hooks
    return core_hooks


@pytest.fixture(scope="module")
def demo(host, hooks_nodes):
    import nodes as core
    model, clip, vae = host.glue("demo_adapter").load_demo(demo_model.WEIGHTS_FILE)
    base = core.CLIPTextEncode().encode(clip, DEMO_BASE)[0]
    return model, vae, base, hooked(hooks_nodes, base, lora.GREEN_LORA), core.CLIPTextEncode().encode(clip, "")[0]


@pytest.fixture(scope="module")
def sd3_with_lora(host, hooks_nodes, tmp_path_factory):
    """A tiny random SD3 and a random rank-4 LoRA on two of its attention layers, in models/loras."""
    import folder_paths
    family = FAMILIES["sd3"]()
    weights = family.model.model.state_dict()
    layers = [k[:-len(".weight")] for k in weights if k.startswith("diffusion_model.joint_blocks.0.")
              and k.endswith(("attn.qkv.weight", "attn.proj.weight"))][:2]
    assert len(layers) == 2, layers
    g, state = torch.Generator().manual_seed(1), {}
    for layer in layers:
        out, inp = weights[f"{layer}.weight"].shape
        state[f"{layer}.lora_up.weight"] = torch.randn(out, 4, generator=g) * 0.2
        state[f"{layer}.lora_down.weight"] = torch.randn(4, inp, generator=g) * 0.2
        state[f"{layer}.alpha"] = torch.tensor(4.0)
    folder = tmp_path_factory.mktemp("loras")
    save_file(state, str(folder / "tiny_sd3_lora.safetensors"))
    folder_paths.add_model_folder_path("loras", str(folder))
    base, neg = family.encode("a photo of a person"), family.encode("")
    return family, base, hooked(hooks_nodes, base, "tiny_sd3_lora.safetensors"), neg


def test_the_shipped_demo_lora_is_in_comfyuis_lora_list(host):
    import folder_paths
    assert lora.GREEN_LORA in folder_paths.get_filename_list("loras")


@pytest.mark.parametrize("sampler, scheduler, k", [("euler", "normal", 2), ("euler_ancestral", "karras", 3),
                                                   ("dpmpp_2m", "normal", 4)])
def test_demo_lora_inserted_at_k_equals_the_range_graph(host, inference, demo, sampler, scheduler, k):
    import nodes as core
    model, _, base, concept, neg = demo
    latent = core.EmptyLatentImage().generate(64, 64, 1)[0]
    inserted, reference = insertion_and_range(host, model, base, concept, neg, latent, 5, STEPS, 4.0, sampler,
                                              scheduler, k)
    assert torch.equal(inserted, reference), (inserted - reference).abs().max().item()
    plain, _ = insertion_and_range(host, model, base, base, neg, latent, 5, STEPS, 4.0, sampler, scheduler, k)
    moved = (inserted - plain).abs().max().item()
    print(f"\ndemo LoRA at k={k} ({sampler}): moves the latent by {moved:.3f}")
    assert moved > 1e-2  # the hook is applied


def test_demo_lora_sweep_branches_equal_single_hooked_runs(host, inference, demo, tiny_clip_judge):
    model, vae, base, concept, neg = demo
    import nodes as core
    latent = core.EmptyLatentImage().generate(64, 64, 1)[0]
    Sampling, branching = host.glue("sampling").Sampling, host.glue("branching")
    node = host.nodes.NODE_CLASS_MAPPINGS["ConceptInsertionSampler"]
    seeds, ks = [0, 1], [0, 2, 4, STEPS]
    single = torch.stack([torch.stack([node.execute(model, base, concept, neg, latent, s, STEPS, 4.0, "euler",
                                                    "normal", float(k), 1.0).args[0]["samples"][0] for k in ks])
                          for s in seeds])
    for max_batch in (1, 0):
        sampling = Sampling(model, neg, STEPS, 4.0, "euler", "normal", max_batch).for_latent(latent)
        swept, _ = branching.sweep_latents(sampling, base, concept, latent, seeds, ks)
        assert torch.equal(swept, single), (max_batch, (swept - single).abs().max().item())
    judge = host.glue("demo_adapter").rule_judge()
    green = branching.decode_and_judge(vae, judge, single[:, 0], "green", None, 4)
    red = branching.decode_and_judge(vae, judge, single[:, -1], "green", None, 4)
    assert green.tolist() == [1.0, 1.0] and red.tolist() == [0.0, 0.0]  # the LoRA's look at k = 0 only


def test_a_lora_on_a_tiny_sd3_equals_the_range_graph_and_the_sweep(host, inference, sd3_with_lora):
    family, base, concept, neg = sd3_with_lora
    for sampler, k in (("euler", 1), ("dpmpp_2m", 2)):
        inserted, reference = insertion_and_range(host, family.model, base, concept, neg, family.latent(), 3, 4,
                                                  3.0, sampler, "simple", k)
        assert torch.equal(inserted, reference), (sampler, (inserted - reference).abs().max().item())
    plain, _ = insertion_and_range(host, family.model, base, base, neg, family.latent(), 3, 4, 3.0, "euler", "simple", 1)
    assert (plain - inserted).abs().max().item() > 1e-3
    Sampling, branching = host.glue("sampling").Sampling, host.glue("branching")
    node = host.nodes.NODE_CLASS_MAPPINGS["ConceptInsertionSampler"]
    seeds, ks = [2, 9], [0, 2, 4]
    single = torch.stack([torch.stack([node.execute(family.model, base, concept, neg, family.latent(), s, 4, 3.0,
                                                    "euler", "simple", float(k), 1.0).args[0]["samples"][0]
                                       for k in ks]) for s in seeds])
    swept, _ = branching.sweep_latents(Sampling(family.model, neg, 4, 3.0, "euler", "simple", 1), base, concept,
                                       family.latent(), seeds, ks)
    assert torch.equal(swept, single), (swept - single).abs().max().item()


def test_the_guard_takes_a_hook_for_the_intervention(host, demo, caplog):
    _, _, base, concept, _ = demo
    conditioning = host.glue("conditioning")
    with caplog.at_level(logging.WARNING):
        assert conditioning.warnings("CISSweep", base, concept) == []  # the LoRA alone: no "same" warning
    assert conditioning.warnings("CISSweep", base, base)  # truly the same: nothing would change
