"""Science check (not a test): do layout and colour lock in before size and shape on the demo model?

In real ComfyUI (in-process), CISSweep's engine (nodes/comfy_glue/branching.py measure: sweep_latents + decode_and_judge, seed
blocks of max_batch) on the demo model: base "a large red circle on the left on a black background",
five concepts each changing one attribute, judged by the rule judge on that attribute; S seeds x every
k of T steps, for each sampler. Prints tau50 with bootstrap 95% intervals (cis.summarize) per attribute
and sampler, whether the intervals of position/colour lie wholly before those of size/shape, and writes
the overlaid CIS plots (plots.cis_plot, one panel per sampler, stacked) to --out.

    COMFYUI_PATH=~/comfyui-host/ComfyUI ~/comfyui-host/venv/bin/python bench/sweep_science.py --out science.png
"""
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from sweep_host import demo_in_host, sampling_args  # noqa: E402  (bench/ is on the path when run as a script)
from pci_core.demo.world import DEMO_BASE  # noqa: E402
CONCEPTS = {  # attribute: (concept prompt, what the judge looks for)
    "position": ("a large red circle on the right on a black background", "on the right"),
    "colour": ("a large blue circle on the left on a black background", "blue"),
    "background": ("a large red circle on the left on a white background", "on a white background"),
    "size": ("a small red circle on the left on a black background", "small"),
    "shape": ("a large red square on the left on a black background", "square"),
}


def main() -> int:
    parser = sampling_args(seeds=32)
    parser.add_argument("--out", default="science.png")
    args = parser.parse_args()
    host, core, hm, model, clip, vae, judge, enc = demo_in_host()
    from PIL import Image
    from pci_core import cis, plots, sweep_plan
    base, neg = enc(DEMO_BASE), enc("")
    latent = core.EmptyLatentImage().generate(64, 64, 1)[0]
    seeds, ks, steps, max_batch = list(range(args.seeds)), list(range(args.steps + 1)), args.steps, 64  # the node's auto choice on a CPU
    summaries, t0 = {}, time.perf_counter()
    with torch.inference_mode():
        for sampler in args.samplers.split(","):
            run = hm.Sampling(model, neg, steps, args.cfg, sampler, "normal", max_batch)
            for attribute, (prompt, text) in CONCEPTS.items():
                measure = hm.measure(run, base, enc(prompt), latent, vae, judge, text, None)
                scores = [measure(block, ks) for block in sweep_plan.seed_blocks(seeds, sweep_plan.seeds_per_block(len(ks), max_batch))]
                result = cis.CISResult(seeds, ks, steps, run.step_sigmas(), np.concatenate(scores), 0.5,
                                       text, {"sampler": sampler})
                summaries[sampler, attribute] = cis.summarize(result)
                print(f"{sampler:16s} {attribute:10s} {cis.crossing_text(summaries[sampler, attribute]['crossings']['tau50'], steps)}"
                      f"  controls {summaries[sampler, attribute]['controls']}  ({time.perf_counter() - t0:.0f}s)", flush=True)
    print(f"\n{args.seeds} seeds x {len(ks)} k of {steps} steps, cfg {args.cfg}, normal scheduler, rule judge, "
          f"{time.perf_counter() - t0:.0f}s in all\n")
    ci = lambda c, key, d: "never" if c["step"] is None else (
        f"{c[key]:.{d}f} [{c[key + '_ci'][0]:.{d}f}, {c[key + '_ci'][1]:.{d}f}]" if c[key + "_ci"][0] is not None
        else f"{c[key]:.{d}f} [?]")
    print("| sampler | " + " | ".join(f"{a} (tau50 step / noise axis)" for a in CONCEPTS) + " |")
    print("|---|" + "---|" * len(CONCEPTS))
    for sampler in args.samplers.split(","):
        cells = [f"{ci(summaries[sampler, a]['crossings']['tau50'], 'step', 1)} / "
                 f"{ci(summaries[sampler, a]['crossings']['tau50'], 'tau', 3)}" for a in CONCEPTS]
        print(f"| {sampler} | " + " | ".join(cells) + " |")
    print()
    for sampler in args.samplers.split(","):
        c = {a: summaries[sampler, a]["crossings"]["tau50"] for a in CONCEPTS}
        early = [c[a]["step_ci"][1] for a in ("position", "colour")]
        late = [c[a]["step_ci"][0] for a in ("size", "shape")]
        if None in early or None in late:
            print(f"{sampler}: an interval is missing (a curve that does not cross in most resamples)")
        else:
            print(f"{sampler}: position/colour upper ends {early}, size/shape lower ends {late}: "
                  f"{'non-overlapping, layout and colour first' if max(early) < min(late) else 'OVERLAPPING'}")
    panels = [plots.cis_plot([summaries[sampler, a] for a in CONCEPTS], list(CONCEPTS),
                             title=f"demo model, {sampler}: base '{DEMO_BASE}', one attribute changed")
              for sampler in args.samplers.split(",")]
    Image.fromarray((np.concatenate(panels, axis=0) * 255).round().astype(np.uint8)).save(args.out)
    print(f"wrote {Path(args.out).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
