"""Benchmark (not a test): CISSweep's engine against the curve built the way a user would without it.

In real ComfyUI (in-process, pci_cluster/headless.py), on the demo model: S seeds x every k of T steps,
 - sweep: nodes/comfy_glue/branching.py measure (sweep_latents + decode_and_judge) in seed blocks (what CISSweep runs);
 - user: one ConceptInsertionSampler run + VAE decode + judge per (seed, k), batch 1.
Both in one process, one after the other per sampler; model rows counted at the UNet (cond and uncond
rows), decisions asserted identical. Prints a table.

    COMFYUI_PATH=~/comfyui-host/ComfyUI ~/comfyui-host/venv/bin/python bench/sweep_host.py [--seeds 16 --steps 20]
"""
import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from pci_core.demo.world import DEMO_BASE  # noqa: E402

BASE, CONCEPT, JUDGE_TEXT = DEMO_BASE, \
    "a large blue circle on the left on a black background", "blue"


def counting(model_patcher):
    """A clone of the model whose UNet calls add their rows to counter[0]."""
    counter = [0]

    def wrapper(apply_model, args):
        counter[0] += args["input"].shape[0]
        return apply_model(args["input"], args["timestep"], **args["c"])
    model = model_patcher.clone()
    model.set_model_unet_function_wrapper(wrapper)
    return model, counter


def sampling_args(seeds: int) -> argparse.ArgumentParser:
    """The options both host benchmarks take (this one and sweep_science.py)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=seeds)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cfg", type=float, default=4.0)
    parser.add_argument("--samplers", default="euler,euler_ancestral")
    return parser


def demo_in_host():
    """Real ComfyUI in-process with the pack: (host, core nodes, the pack's sweep glue (nodes/comfy_glue/branching.py),
    model, clip, vae, rule judge, encode(text) -> conditioning)."""
    from pci_cluster.headless import Headless
    host = Headless(os.environ["COMFYUI_PATH"])
    import nodes as core
    from pci_core.demo import demo_model
    hm = host.glue("branching")
    model, clip, vae = host.nodes.NODE_CLASS_MAPPINGS["PCIDemoModelLoader"].execute(demo_model.WEIGHTS_FILE).args
    judge = host.nodes.NODE_CLASS_MAPPINGS["PCIJudgeLoader"].execute("rule", "", "none (rule judge)", "cpu").args[0]
    return host, core, hm, model, clip, vae, judge, lambda text: core.CLIPTextEncode().encode(clip, text)[0]


def main() -> int:
    args = sampling_args(seeds=16).parse_args()
    host, core, hm, model, clip, vae, judge, enc = demo_in_host()
    from pci_core import sweep_plan
    insertion = host.nodes.NODE_CLASS_MAPPINGS["ConceptInsertionSampler"]
    base, concept, neg = enc(BASE), enc(CONCEPT), enc("")
    latent = core.EmptyLatentImage().generate(64, 64, 1)[0]
    seeds, ks, steps, max_batch = list(range(args.seeds)), list(range(args.steps + 1)), args.steps, 64  # the node's auto choice on a CPU
    print(f"ComfyUI {host.version}, demo model, {len(seeds)} seeds x {len(ks)} k of {steps} steps, cfg {args.cfg}, "
          f"max_batch {max_batch}, torch threads {torch.get_num_threads()}")
    rows = []
    with torch.inference_mode():
        for sampler in args.samplers.split(","):  # warm-up, untimed: first-call costs fall on neither side
            hm.measure(hm.Sampling(model, neg, 2, args.cfg, sampler, "normal", 2), base, concept, latent, vae, judge,
                       JUDGE_TEXT, None)(seeds[:1], ks[:2])
            insertion.execute(model, base, concept, neg, latent, 0, 2, args.cfg, sampler, "normal", 1.0, 1.0)
        for sampler in args.samplers.split(","):
            counted, counter = counting(model)
            t = time.perf_counter()
            sweep_scores = []
            measure = hm.measure(hm.Sampling(counted, neg, steps, args.cfg, sampler, "normal", max_batch), base, concept,
                                 latent, vae, judge, JUDGE_TEXT, None)
            for block in sweep_plan.seed_blocks(seeds, sweep_plan.seeds_per_block(len(ks), max_batch)):
                sweep_scores.append(measure(block, ks).reshape(-1))
            sweep_s, sweep_rows = time.perf_counter() - t, counter[0]
            counted, counter = counting(model)
            t = time.perf_counter()
            user_scores = []
            for seed in seeds:
                for k in ks:
                    out = insertion.execute(counted, base, concept, neg, latent, seed, steps, args.cfg, sampler, "normal",
                                            float(k), 1.0).args[0]
                    image = core.VAEDecode().decode(vae, out)[0]
                    user_scores.append(judge.score(image, JUDGE_TEXT).numpy())
            user_s, user_rows = time.perf_counter() - t, counter[0]
            sweep_d, user_d = np.concatenate(sweep_scores) >= 0.5, np.concatenate(user_scores) >= 0.5
            assert np.array_equal(sweep_d, user_d), f"{sampler}: decisions differ"
            cis = sweep_d.reshape(len(seeds), len(ks)).mean(axis=0)
            rows.append((sampler, user_rows, sweep_rows, user_s, sweep_s, cis))
    print("\n| sampler | user way: UNet rows | CISSweep: UNet rows | ratio | user way: s | CISSweep: s | ratio | "
          "identical decisions |")
    print("|---|---|---|---|---|---|---|---|")
    for sampler, ur, sr, us, ss, _ in rows:
        print(f"| {sampler} | {ur:,} | {sr:,} | {sr / ur:.3f} | {us:.1f} | {ss:.1f} | {ss / us:.3f} | yes |")
    for sampler, *_, cis in rows:
        print(f"{sampler}: CIS(k) = {' '.join(f'{c:.2f}' for c in cis)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
