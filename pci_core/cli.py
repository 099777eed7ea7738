"""Command line: `python -m pci_core demo|cis|fidelity|train|bench`."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def _save_png(image: np.ndarray, path: Path, upscale: int = 8) -> None:
    from PIL import Image
    arr = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    Image.fromarray(arr).resize((arr.shape[1] * upscale, arr.shape[0] * upscale), Image.NEAREST).save(path)


def _settings(args):
    from .demo.pipeline import SamplerSettings
    return SamplerSettings(steps=args.steps, cfg=args.cfg, sampler=args.sampler, scheduler=args.scheduler)


def _add_sampling(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cfg", type=float, default=4.0)
    p.add_argument("--sampler", default="euler", help="euler, euler_ancestral or dpmpp_2m")
    p.add_argument("--scheduler", default="normal", help="normal or karras")
    p.add_argument("--weights", default=None, help="demo model safetensors (default: the shipped weights)")


def cmd_demo(args) -> int:
    from .demo import demo_model, pipeline
    model = demo_model.load(args.weights)
    seeds = list(range(args.seed, args.seed + args.n))
    t = time.time()
    images = pipeline.generate(model, args.prompt, seeds, _settings(args)).numpy()
    elapsed = time.time() - t
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for seed, image in zip(seeds, images):
        _save_png(image, out / f"seed{seed:04d}.png")
    _save_png(np.concatenate(list(images), axis=1), out / "grid.png")
    print(f"{len(seeds)} images of {args.prompt!r} in {elapsed:.2f}s ({args.sampler}, {args.steps} steps, cfg {args.cfg})")
    print(f"wrote {out.resolve()}/seed*.png and grid.png (shown 8x, nearest)")
    return 0


def cmd_cis(args) -> int:
    from .demo import demo_model, sweep
    model = demo_model.load(args.weights)
    seeds = list(range(args.seed, args.seed + args.n))
    t = time.time()
    result = sweep.demo_sweep(model, args.base, args.concept, seeds, _settings(args), args.max_batch)
    elapsed = time.time() - t
    print(f"CIS over {len(seeds)} seeds, {args.base!r} -> {args.concept!r}, judged on {result['judged']} "
          f"({args.sampler}, {args.steps} steps, {len(seeds) * len(result['ks'])} branches in {elapsed:.1f}s)")
    print("   k    tau   CIS")
    for k, tau, c in zip(result["ks"], result["tau"], result["cis"]):
        print(f"{k:4d}  {tau:5.3f}  {c:4.2f}  {'#' * round(c * 20)}")
    step, tau50 = result["tau50_step"], result["tau50"]
    print("tau50: " + (f"step {step:.2f} of {args.steps}, noise axis {tau50:.3f}" if step is not None
                       else "CIS never falls through 0.5"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images = result["images"]
    _save_png(np.concatenate([np.concatenate(list(row), axis=1) for row in images], axis=0), out / "branches.png", 2)
    _plot_cis(result, args, out / "cis.png")
    print(f"wrote {out.resolve()}/cis.png (the curve) and branches.png (rows: seeds, columns: k = 0..{args.steps})")
    return 0


def _plot_cis(result, args, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(result["ks"], result["cis"], marker="o")
    ax.axhline(0.5, color="gray", lw=0.8, ls="--")
    if result["tau50_step"] is not None:
        ax.axvline(result["tau50_step"], color="tab:red", lw=0.8, label=f"tau50 = step {result['tau50_step']:.2f}")
        ax.legend()
    ax.set(xlabel="insertion step k", ylabel="CIS(k)", ylim=(-0.02, 1.02))
    ax.set_title(f"base: {args.base}\nconcept: {args.concept}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def cmd_fidelity(args) -> int:
    from .demo import demo_model, fidelity
    model = demo_model.load(args.weights)
    t = time.time()
    scores = fidelity.measure(model, args.samples, settings=_settings(args))
    print(f"fidelity over {args.samples} samples ({args.sampler}, {args.steps} steps, cfg {args.cfg}, "
          f"{time.time() - t:.1f}s):")
    print(fidelity.table(scores))
    return 0


def cmd_train(args) -> int:
    from .demo import train
    overrides = {k: v for k, v in (("steps", args.train_steps), ("ae_steps", args.ae_steps)) if v is not None}
    train.main(out=Path(args.out), seed=args.seed, **overrides)
    return 0


def cmd_bench(args) -> int:
    from .demo import bench
    torch_threads(args.threads)
    rows = bench.run(args.seeds, args.steps, tuple(args.samplers.split(",")), args.max_batch, weights=args.weights)
    print(bench.report(rows, args.seeds, args.steps))
    if not all(r["identical"] for r in rows):
        print("error: the branching engine and the official loop disagree", file=sys.stderr)
        return 1
    return 0


def torch_threads(n: int | None) -> None:
    if n:
        import torch
        torch.set_num_threads(n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pci_core", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="generate images from the demo model for a prompt")
    p.add_argument("--prompt", default="a large red circle on the left on a black background")
    p.add_argument("--n", type=int, default=8, help="number of seeds")
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--out", default="pci_demo_out")
    _add_sampling(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("cis", help="CIS(k) curve and tau50 of a concept on the demo model (pixel judge)")
    p.add_argument("--base", default="a large red circle on the left on a black background")
    p.add_argument("--concept", default="a large blue circle on the left on a black background")
    p.add_argument("--n", type=int, default=16, help="number of seeds")
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--max-batch", type=int, default=None, help="most rows per model call")
    p.add_argument("--out", default="pci_cis_out")
    _add_sampling(p)
    p.set_defaults(func=cmd_cis)

    p = sub.add_parser("fidelity", help="pixel-judge fidelity of the demo model per attribute")
    p.add_argument("--samples", type=int, default=200)
    _add_sampling(p)
    p.set_defaults(func=cmd_fidelity)

    p = sub.add_parser("train", help="train the demo model from scratch (CPU, about 20 min)")
    from .demo.demo_model import DEFAULT_WEIGHTS
    p.add_argument("--out", default=str(DEFAULT_WEIGHTS))
    p.add_argument("--train-steps", type=int, default=None, help="diffusion steps (default: train.main's)")
    p.add_argument("--ae-steps", type=int, default=None, help="autoencoder steps (default: train.main's)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("bench", help="full CIS sweep: official loop vs branching engine, side by side")
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--samplers", default="euler,euler_ancestral")
    p.add_argument("--max-batch", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--weights", default=None)
    p.set_defaults(func=cmd_bench)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
