"""What "exact" means per model family, measured (not a test): for tiny random SDXL, SD3, FLUX (cfg 1 and 3)
and Qwen-Image models built from ComfyUI's own classes (pci_cluster/testbed/tiny_families.py), the largest difference
between a CIS sweep's branch and Concept Insertion Sampler's own run of that seed and k, at max_batch 1
and at the automatic max_batch, at 1 and 2 torch threads, absolute and relative to the largest latent
value, and whether a judge's decisions agree (a tiny random CLIP judge, threshold 0.5).

    COMFYUI_PATH=~/comfyui-host/ComfyUI ~/comfyui-host/venv/bin/python bench/families.py
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CASES = [("sdxl", 4.0), ("sd3", 3.0), ("flux", 1.0), ("flux", 3.0), ("qwen_image", 3.0)]
STEPS, SEEDS, KS = 4, [3, 5, 8, 13], [0, 1, 2, 3, 4]


def main() -> int:
    from pci_cluster.headless import Headless
    host = Headless(os.environ["COMFYUI_PATH"])
    from pci_cluster.testbed.tiny_families import FAMILIES
    from pci_core.judges import tiny
    folder = Path(tempfile.mkdtemp())
    import folder_paths
    folder_paths.add_model_folder_path("pci_judges", str(folder))  # judge files are read from there only
    tiny.register_tiny_clip(folder)
    judge = host.nodes.NODE_CLASS_MAPPINGS["PCIJudgeLoader"].execute(
        "clip", tiny.TINY_CLIP, "none (rule judge)", "auto", str(tiny.save_clip(tiny.TINY_CLIP, folder, 30.0))).args[0]
    Sampling, sweep = host.glue("sampling").Sampling, host.glue("branching")
    node = host.nodes.NODE_CLASS_MAPPINGS["ConceptInsertionSampler"]
    print("| family | cfg | threads | max_batch | max abs diff | relative to max latent | decisions equal |")
    print("|---|---|---|---|---|---|---|")
    built = {name: FAMILIES[name]() for name, _ in CASES}
    for name, cfg in CASES:
        family = built[name]
        base, concept, neg = (family.encode(t) for t in ("a photo of a person", "a photo of an old person", ""))
        for threads in (1, 2):
            torch.set_num_threads(threads)
            with torch.inference_mode():
                ref = torch.stack([torch.stack([node.execute(family.model, base, concept, neg, family.latent(), s, STEPS,
                                                             cfg, "euler", "simple", float(k), 1.0).args[0]["samples"][0]
                                                for k in KS]) for s in SEEDS])
                ref_scores = sweep.decode_and_judge(family.vae, judge, ref.reshape(-1, *ref.shape[2:]), "old", "young",
                                                    8)
                for rows in (1, 0):
                    run = Sampling(family.model, neg, STEPS, cfg, "euler", "simple", rows).for_latent(family.latent())
                    latents, _ = sweep.sweep_latents(run, base, concept, family.latent(), SEEDS, KS)
                    scores = sweep.decode_and_judge(family.vae, judge, latents.reshape(-1, *latents.shape[2:]), "old",
                                                    "young", 8)
                    diff = (latents - ref).abs().max().item()
                    same = bool(((scores >= 0.5) == (ref_scores >= 0.5)).all())
                    print(f"| {name} | {cfg:g} | {threads} | {run.max_batch}{' (auto)' if rows == 0 else ''} | "
                          f"{diff:.1e} | {diff / ref.abs().max().item():.1e} | {'yes' if same else 'NO'} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
