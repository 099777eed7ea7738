"""Command line: `python -m pci_core demo|cis|study|merge|edit-eval|fidelity|bench|train`."""
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
    from . import cis, plots, results, runner
    from .demo import demo_model, sweep
    settings, out = _settings(args), Path(args.out)
    judge_text = args.judge_text or sweep.default_judge_text(args.base, args.concept)
    # the --out folder is the run: same settings resume it (finished seeds are read back), others are refused
    store = results.RunStore(out, sweep.run_header(args.base, args.concept, judge_text, settings, args.weights))
    seeds = list(range(args.seed, args.seed + args.n))
    done = [s for s in seeds if s in set(store.done_seeds())]
    shown = {}
    keep = lambda block, ks, images: shown.update(seeds=block, images=images) if not shown else None
    measure = sweep.demo_measure(demo_model.load(args.weights), args.base, args.concept, judge_text, settings,
                                 args.max_batch, keep_images=keep)
    t = time.time()
    result = runner.full_run(store, seeds, measure, block_size=len(seeds))  # one branching run of every seed
    elapsed = time.time() - t
    computed = len(seeds) - len(done)
    print(f"CIS over {len(result.seeds)} seeds ({computed} computed now, {len(done)} read back from "
          f"{out / results.RESULTS_FILE}), {args.base!r} -> {args.concept!r}, judged on {judge_text!r} "
          f"({args.sampler}, {args.steps} steps, {computed * len(result.ks)} branches in {elapsed:.1f}s)")
    summary = cis.summarize(result)
    print(cis.table(summary))
    _save_png(plots.cis_plot([summary], title=f"CIS(k): {args.base!r} -> {args.concept!r}, "
                                              f"judged on {judge_text!r} ({len(result.seeds)} seeds)"),
              out / "cis.png", 1)
    written = f"{out.resolve()}/results.json, cis.csv, cis.png (the curve)"
    if shown:
        computed_now = result.restrict(shown["seeds"])
        _save_png(plots.timeline_grid(shown["images"], computed_now.scores, result.ks, shown["seeds"],
                                      result.threshold, max_rows=TIMELINE_ROWS), out / "timeline.png", 1)
        written += (f" and timeline.png (rows: the first {min(len(shown['seeds']), TIMELINE_ROWS)} seeds computed "
                    "now, columns: k)")
    print(f"wrote {written}")
    return 0


TIMELINE_ROWS = 8


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


def cmd_edit_eval(args) -> int:
    """The edit evaluation (pci_core/demo/edit_eval.py): CIS-chosen step against the usual ways to edit."""
    from .demo import edit_eval, edit_report
    torch_threads(args.threads)
    config = edit_eval.quick_config() if args.quick else edit_eval.EvalConfig(
        seeds=args.seeds, helper_seeds=args.helper_seeds, inversion_cfg=args.inversion_cfg,
        edits=tuple(args.edits.split(",")) if args.edits else tuple(edit_eval.EDITS), settings=_settings(args))
    t = time.time()
    results = edit_eval.run(config, weights=args.weights)
    print(edit_report.table(results))
    print(f"({config.seeds} seeds per edit, {config.helper_seeds} helper seeds for the CIS sweep, "
          f"{config.settings.sampler} {config.settings.steps} steps, cfg {config.settings.cfg}, inversion cfg "
          f"{config.inversion_cfg}; {time.time() - t:.0f}s)")
    return 0


def torch_threads(n: int | None) -> None:
    if n:
        import torch
        torch.set_num_threads(n)


# ---------------------------------------------------------------- concept studies (study, merge)

def _write_study(results, out: Path, title: str) -> str:
    """The study table (printed, study.txt) and the overlaid CIS plot (study.png) of (key, label, result)."""
    from . import cis, plots, study
    summaries = [cis.summarize(r) for _, _, r in results]
    labels = [label for _, label, _ in results]
    text = study.study_table(summaries, labels)
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.txt").write_text(text + "\n", encoding="utf-8")
    _save_png(plots.cis_plot(summaries, labels, title), out / "study.png", 1)
    return text


def cmd_study(args) -> int:
    from . import study
    from .demo import demo_model, study as demo_study
    concept_lists = demo_study.taxonomy_concepts(study.load_taxonomy(args.taxonomy), args.path, args.base)
    seeds = list(range(args.seed, args.seed + args.n))
    out = Path(args.out)
    model = demo_model.load(args.weights)
    t = time.time()
    report = lambda label, r: print(f"  {label}: {len(r.seeds)} seeds, {len(r.ks)} ks", flush=True)
    results = demo_study.run_study(model, concept_lists, seeds, out, _settings(args), args.adaptive, args.weights,
                                   args.max_batch, report, args.base, args.seed_block)
    skipped = [f"{p}: {', '.join(c.skipped)}" for p, c in concept_lists.items() if c.skipped]
    search = "adaptive search" if args.adaptive else "full sweep"
    print(f"study of {len(results)} concepts against {args.base!r} ({search}, {len(seeds)} seeds, {args.sampler}, "
          f"{args.steps} steps, {time.time() - t:.1f}s)" + (f"; skipped (= base value): {'; '.join(skipped)}"
                                                            if skipped else ""))
    print(_write_study(results, out, f"CIS(k) of {len(results)} concepts against {args.base!r} ({search})"))
    print(f"wrote {out.resolve()}/study.txt, study.png, study.json and one run folder per concept")
    return 0


def cmd_merge(args) -> int:
    from . import results as results_files, study
    merged = study.merge_studies([Path(d) for d in args.dirs])
    out = Path(args.out)
    for key, _, result in merged:  # the merged study is a study folder again (mergeable, resumable)
        store = results_files.RunStore(out / key, study.header_of(result))
        done = set(store.done_seeds())
        new = [i for i, seed in enumerate(result.seeds) if seed not in done]
        if new:
            store.add([result.seeds[i] for i in new], result.scores[new])
    study.write_index(out, [(key, label) for key, label, _ in merged])
    print(f"merged {len(args.dirs)} folders into {len(merged)} concepts")
    print(_write_study(merged, out, f"CIS(k) of {len(merged)} concepts (merged from {len(args.dirs)} folders)"))
    print(f"wrote {out.resolve()}/study.txt, study.png, study.json and one run folder per concept")
    return 0


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
    p.add_argument("--judge-text", default=None, help="what the rule judge must see, every attribute it names "
                   "(default: the attributes the concept changes, e.g. 'a blue shape')")
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

    p = sub.add_parser("study", help="a concept study on the demo model from a taxonomy file (one run per concept)")
    p.add_argument("taxonomy", help="taxonomy JSON ({category: {attribute: [values]}}), e.g. pci_core/demo/taxonomy.json")
    p.add_argument("--path", default="", help="dotted path of the lists to study, e.g. demo_world.colour (default: all)")
    p.add_argument("--base", default="a large red circle on the left on a black background")
    p.add_argument("--adaptive", action="store_true", help="adaptive lock-in search instead of every k")
    p.add_argument("--n", type=int, default=16, help="number of seeds")
    p.add_argument("--seed", type=int, default=0, help="first seed (shard a full sweep by seed block)")
    p.add_argument("--seed-block", type=int, default=8, help="seeds per branching run of a full sweep")
    p.add_argument("--max-batch", type=int, default=None, help="most rows per model call")
    p.add_argument("--out", default="pci_study_out")
    _add_sampling(p)
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("merge", help="merge study folders (shards from several machines) into one table and plot")
    p.add_argument("dirs", nargs="+", help="study or run folders")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("edit-eval", help="edit evaluation on the demo model: CIS-chosen step vs regeneration, "
                                         "a fixed middle step, img2img and inversion")
    p.add_argument("--seeds", type=int, default=50, help="evaluation seeds (and input images) per edit")
    p.add_argument("--helper-seeds", type=int, default=16, help="seeds of the CIS sweep that picks k")
    p.add_argument("--edits", default="", help="comma-separated subset of colour,size,shape,background,position")
    p.add_argument("--inversion-cfg", type=float, default=1.0, help="guidance scale of the input-image inversion")
    p.add_argument("--quick", action="store_true", help="a smoke run (4 seeds, the colour edit, 8 steps)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the demo model's tensors are "
                   "too small to gain from more; measured 5 s vs 35 s for --quick with 2 on a busy 2-core machine)")
    _add_sampling(p)
    p.set_defaults(func=cmd_edit_eval)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
