"""Benchmark (not a test): the same distributed study on 1 and on 2 Ray workers, units per second side by
side (after the workers are ready; their ComfyUI start-up is printed apart), one torch thread per worker.

    COMFYUI_PATH=~/comfyui-host/ComfyUI ~/comfyui-host/venv/bin/python bench/study_ray.py [--values ...]

On a GPU machine give --workers-list 1,N to compare one GPU with N (each worker takes one GPU).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pci_cluster.testbed.demo_workflows import demo_workflow  # noqa: E402


def main() -> int:
    from pci_cluster import study_driver
    from pci_core import sweep_plan
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--values", default="blue,green,yellow", help="colours: the demo base's colour slot")
    p.add_argument("--seeds", default="0-31")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed-block", type=int, default=4)
    p.add_argument("--workers-list", default="1,2")
    args = p.parse_args()
    template = demo_workflow()
    template["7"]["inputs"]["steps"] = args.steps
    values, seeds = study_driver.concept_values(args.values), sweep_plan.parse_seeds(args.seeds, "--seeds")
    stats = {}
    for workers in (int(w) for w in args.workers_list.split(",")):
        out = Path(tempfile.mkdtemp(prefix=f"study_ray_{workers}w_"))
        stats[workers] = study_driver.run(template, values, seeds, out, workers=workers, block=args.seed_block, progress=False)
        print(study_driver.summary(stats[workers]), flush=True)
    first = min(stats)
    print(f"\n{len(values)} concepts x {len(seeds)} seeds, {args.steps} steps, units of {args.seed_block} seeds")
    print("| workers | units | ready (s) | units run (s) | units/s | vs 1 worker |")
    print("|---|---|---|---|---|---|")
    for workers, s in stats.items():
        rate = s["units"] / s["run_s"]
        print(f"| {workers} | {s['units']} | {s['ready_s']:.1f} | {s['run_s']:.1f} | {rate:.3f} | "
              f"{rate / (stats[first]['units'] / stats[first]['run_s']):.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
