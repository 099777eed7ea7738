"""GPU check of this round's paths (not run by CI): on ComfyUI's own device, in real ComfyUI,
1. a LoRA inserted at step k (the demo's green LoRA as a weight hook through core CreateHookLoraModelOnly +
   ConditioningSetProperties): Concept Insertion Sampler against the one-pass range graph, max difference;
2. a video model's clip as one trial: a tiny random Wan 2.1 (2 latent frames = 5 video frames) through the
   CIS Sweep node (2 seeds, 4 steps, a tiny clip judge, clip rule 'mean'): one score per clip, the clips'
   files written, and the sweep's branch against Concept Insertion Sampler's clip at max_batch 1;
3. the memory bound of a long sweep: CIS Sweep's branching runs at 300 steps hold at most about 2 x max_batch
   branches (sweep_plan.branch_runs), with the device's peak memory printed.

    COMFYUI_PATH=/path/to/ComfyUI python bench/gpu_extras.py [--cpu]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cpu", action="store_true", help="run on the CPU (a smoke run of the script itself)")
    args = p.parse_args()
    sys.path[:0] = [os.environ["COMFYUI_PATH"], str(REPO)]
    from pci_cluster.headless import Headless
    host = Headless(os.environ["COMFYUI_PATH"], cpu=args.cpu)
    import torch
    with torch.inference_mode():
        lora_check(host)
        video_check(host)
        long_sweep_check(host, 30 if args.cpu else 300)
    return 0


def lora_check(host) -> None:
    import comfy_extras.nodes_hooks as hooks
    import nodes as core
    from pci_cluster.testbed.range_graphs import insertion_and_range
    from pci_core.demo.world import DEMO_BASE
    model, clip, _ = host.glue("demo_adapter").load_demo()
    base = core.CLIPTextEncode().encode(clip, DEMO_BASE)[0]
    hook = hooks.CreateHookLoraModelOnly().create_hook_model_only(lora_name="pci_demo_green.safetensors",
                                                                 strength_model=1.0)[0]
    concept = hooks.ConditioningSetProperties().set_properties(cond_NEW=base, strength=1.0, set_cond_area="default",
                                                               hooks=hook)[0]
    neg = core.CLIPTextEncode().encode(clip, "")[0]
    latent = core.EmptyLatentImage().generate(64, 64, 1)[0]
    for k in (1, 3, 6):  # k = 0: the range graph keeps both conds at the first step (use KSampler there)
        inserted, reference = insertion_and_range(host, model, base, concept, neg, latent, 1, 10, 4.0, "euler",
                                                  "normal", k)
        print(f"LoRA at k={k} ({model.load_device}, {model.model.get_dtype()}): max |node - range graph| = "
              f"{(inserted.float() - reference.float()).abs().max().item():.3e}", flush=True)


def video_check(host) -> None:
    import tempfile
    import folder_paths
    from pci_cluster.testbed.tiny_families import FAMILIES
    from pci_core.judges import tiny
    family = FAMILIES["wan21"](frames=2)
    folder = Path(tempfile.mkdtemp(prefix="pci_gpu_extras_"))
    folder_paths.add_model_folder_path("pci_judges", str(folder))
    tiny.register_tiny_clip(folder)
    weights = tiny.save_clip(tiny.TINY_CLIP, folder, logit_scale=30.0)
    loader = host.nodes.NODE_CLASS_MAPPINGS["PCIJudgeLoader"]
    judge = loader.execute("clip", tiny.TINY_CLIP, "none (rule judge)", "auto", str(weights), "", "p(yes)", "mean",
                           0).args[0]
    base, concept, neg = (family.encode(t) for t in ("a dog", "a dog in the snow", ""))
    sweep = host.nodes.NODE_CLASS_MAPPINGS["CISSweep"]
    name = f"gpu-extras-video-{time.time_ns()}"
    t = time.perf_counter()
    out = sweep.execute(family.model, base, concept, neg, family.latent(), family.vae, judge, "snow", 0, 2, "",
                        "all", 4, 3.0, "euler", "simple", 0.5, 1, False, name).args
    seconds = time.perf_counter() - t
    result, folder = out[2], Path(folder_paths.get_output_directory()) / "pci" / name
    clips = sorted(p.name for p in (folder / "clips").glob("*.webp"))
    node = host.nodes.NODE_CLASS_MAPPINGS["ConceptInsertionSampler"]
    Sampling, branching = host.glue("sampling").Sampling, host.glue("branching")
    single = node.execute(family.model, base, concept, neg, family.latent(), 0, 4, 3.0, "euler", "simple", 2.0,
                          1.0).args[0]["samples"][0]
    swept, _ = branching.sweep_latents(Sampling(family.model, neg, 4, 3.0, "euler", "simple", 1), base, concept,
                                       family.latent(), [0], [2])
    print(f"video (tiny Wan 2.1, 5-frame clips, {family.model.load_device}): scores {tuple(result.scores.shape)} "
          f"(one per clip), {len(clips)} clip files, {seconds:.1f} s; branch vs node clip: max diff "
          f"{(swept[0, 0].float().cpu() - single.float().cpu()).abs().max().item():.3e}", flush=True)


def long_sweep_check(host, steps: int) -> None:
    import torch
    import nodes as core
    from pci_core import sweep_plan
    model, clip, vae = host.glue("demo_adapter").load_demo()
    enc = lambda text: core.CLIPTextEncode().encode(clip, text)[0]
    latent = core.EmptyLatentImage().generate(64, 64, 1)[0]
    Sampling, branching = host.glue("sampling").Sampling, host.glue("branching")
    seeds = [0, 1]
    sampling = Sampling(model, enc(""), steps, 4.0, "euler", "normal", 16).for_latent(latent)
    ks = list(range(steps + 1))
    runs = sweep_plan.branch_runs(seeds, ks, sampling.max_batch)
    cuda = torch.cuda.is_available() and model.load_device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    judge = host.glue("demo_adapter").rule_judge()
    scores = branching.measure(sampling, enc("a large red circle on the left on a black background"),
                               enc("a large blue circle on the left on a black background"), latent, vae, judge,
                               "blue", None)(seeds, ks)
    peak = f", peak device memory {torch.cuda.max_memory_allocated() / 2 ** 20:.0f} MiB" if cuda else ""
    print(f"long sweep: {steps} steps x {len(seeds)} seeds = {len(seeds) * len(ks)} branches in {len(runs)} runs of "
          f"at most {max(len(b) * len(c) for b, c in runs)} branches, {time.perf_counter() - t:.1f} s{peak}; "
          f"CIS at k=0 {scores[:, 0].mean():.2f}, k=T {scores[:, -1].mean():.2f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
