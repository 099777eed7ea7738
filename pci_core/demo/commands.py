"""The demo model's commands (python -m pci_core demo|cis|study|fidelity|bench|edit-eval|train|train-lora).

Every input is checked (pci_core.arg_checks) before the model is loaded or anything is computed."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from .. import arg_checks, cis, plots, results, runner, study, taxonomy
from ..images import save_png
from . import demo_model, pipeline, demo_measure

TIMELINE_ROWS = 8


def sampler_settings(args) -> pipeline.SamplerSettings:
    """--steps, --cfg, --sampler, --scheduler as the standalone pipeline's settings, each checked by name."""
    from .. import samplers, schedule
    steps = arg_checks.check_whole(args.steps, "--steps", 1)
    cfg = arg_checks.check_cfg(args.cfg)
    if args.sampler not in samplers.SAMPLERS:
        raise ValueError(f"--sampler {args.sampler!r}: the demo engine has {', '.join(samplers.SAMPLERS)}")
    if args.scheduler not in schedule.SCHEDULES:
        raise ValueError(f"--scheduler {args.scheduler!r}: the demo engine has {', '.join(schedule.SCHEDULES)}")
    return pipeline.SamplerSettings(steps=steps, cfg=cfg, sampler=args.sampler, scheduler=args.scheduler)


def load_model(weights: str | None) -> demo_model.DemoModel:
    try:
        return demo_model.load(weights)
    except (ValueError, FileNotFoundError) as e:
        raise ValueError(f"--weights: {e}") from None


def demo(args) -> int:
    settings, seeds, out = sampler_settings(args), arg_checks.seeds(args), arg_checks.check_out_folder(args.out)
    model = load_model(args.weights)
    t = time.time()
    images = pipeline.generate(model, args.prompt, seeds, settings).numpy()
    elapsed = time.time() - t
    out.mkdir(parents=True, exist_ok=True)
    for seed, image in zip(seeds, images):
        save_png(image, out / f"seed{seed:04d}.png")
    save_png(np.concatenate(list(images), axis=1), out / "grid.png")
    print(f"{len(seeds)} images of {args.prompt!r} in {elapsed:.2f}s ({args.sampler}, {args.steps} steps, cfg {args.cfg})")
    print(f"wrote {out.resolve()}/seed*.png and grid.png (shown 8x, nearest)")
    return 0


def cis_run(args) -> int:
    settings, seeds, out = sampler_settings(args), arg_checks.seeds(args), arg_checks.check_out_folder(args.out)
    max_batch = arg_checks.check_whole(args.max_batch, "--max-batch", 1) if args.max_batch is not None else None
    judge_text = args.judge_text or demo_measure.default_judge_text(args.base, args.concept)
    # the --out folder is the run: same settings resume it (finished seeds are read back), others are refused
    store = results.RunStore(out, demo_measure.demo_header(args.base, args.concept, judge_text, settings, args.weights))
    done = [s for s in seeds if s in set(store.done_seeds())]
    shown = {}
    keep = lambda block, ks, images: shown.update(seeds=block, images=images) if not shown else None
    measure = demo_measure.demo_measure(load_model(args.weights), args.base, args.concept, judge_text, settings, max_batch,
                                 keep_images=keep)
    t = time.time()
    result = runner.full_run(store, seeds, measure, block_size=len(seeds))  # one branching run of every seed
    elapsed = time.time() - t
    computed = len(seeds) - len(done)
    print(f"CIS over {len(result.seeds)} seeds ({computed} computed now, {len(done)} read back from "
          f"{out / results.RESULTS_FILE}), {args.base!r} -> {args.concept!r}, judged on {judge_text!r} "
          f"({args.sampler}, {args.steps} steps, {computed * len(result.ks)} branches in {elapsed:.1f}s)")
    summary = cis.summarize(result)
    print(cis.table(summary))
    save_png(plots.cis_plot([summary], title=f"CIS(k): {args.base!r} -> {args.concept!r}, "
                                                 f"judged on {judge_text!r} ({len(result.seeds)} seeds)"), out / "cis.png", 1)
    written = f"{out.resolve()}/results.json, cis.csv, cis.png (the curve)"
    if shown:
        save_png(plots.timeline_grid(shown["images"], result.restrict(shown["seeds"]).scores, result.ks,
                                         shown["seeds"], result.threshold, max_rows=TIMELINE_ROWS),
                     out / "timeline.png", 1)
        written += (f" and timeline.png (rows: the first {min(len(shown['seeds']), TIMELINE_ROWS)} seeds computed "
                    "now, columns: k)")
    print(f"wrote {written}")
    return 0


def fidelity(args) -> int:
    from . import fidelity as fidelity_check
    settings, samples = sampler_settings(args), arg_checks.check_whole(args.samples, "--samples", 1)
    model = load_model(args.weights)
    t = time.time()
    scores = fidelity_check.measure(model, samples, settings=settings)
    print(f"fidelity over {samples} samples ({args.sampler}, {args.steps} steps, cfg {args.cfg}, "
          f"{time.time() - t:.1f}s):")
    print(fidelity_check.table(scores))
    return 0


def train(args) -> int:
    from . import train as training
    out = arg_checks.check_out_file(args.out)
    overrides = {k: arg_checks.check_whole(v, flag, 1) for k, v, flag in (("steps", args.train_steps, "--train-steps"),
                                                                     ("ae_steps", args.ae_steps, "--ae-steps"))
                 if v is not None}
    training.main(out=out, seed=arg_checks.check_whole(args.seed, "--seed", 0), **overrides)
    return 0


def train_lora(args) -> int:
    from . import lora, world
    out = arg_checks.check_out_file(args.out)
    if args.colour not in world.ATTRIBUTES["colour"]:
        raise ValueError(f"--colour {args.colour!r}: the demo world's colours are {', '.join(world.ATTRIBUTES['colour'])}")
    lora.main(out=out, steps=arg_checks.check_whole(args.train_steps, "--train-steps", 1), colour=args.colour,
              seed=arg_checks.check_whole(args.seed, "--seed", 0))
    return 0


def bench(args) -> int:
    from . import bench as benchmark
    seeds, steps = arg_checks.check_whole(args.seeds, "--seeds", 1), arg_checks.check_whole(args.steps, "--steps", 1)
    arg_checks.torch_threads(args.threads)
    rows = benchmark.run(seeds, steps, tuple(args.samplers.split(",")), args.max_batch, weights=args.weights)
    print(benchmark.report(rows, seeds, steps))
    if not all(r["agree"] for r in rows):
        print("error: the branching engine and the reference loop disagree (a decision, or latents past the "
              "float-noise tolerance)", file=sys.stderr)
        return 1
    return 0


def edit_eval(args) -> int:
    """The edit evaluation (pci_core/demo/edit_eval.py): CIS-chosen step against the usual ways to edit."""
    from . import edit_eval as evaluation, edit_report
    settings = sampler_settings(args)
    arg_checks.torch_threads(args.threads)
    config = evaluation.quick_config() if args.quick else evaluation.EvalConfig(
        seeds=arg_checks.check_whole(args.seeds, "--seeds", 1), helper_seeds=arg_checks.check_whole(args.helper_seeds, "--helper-seeds", 1),
        inversion_cfg=arg_checks.check_cfg(args.inversion_cfg, "--inversion-cfg"),
        edits=tuple(args.edits.split(",")) if args.edits else tuple(evaluation.EDITS), settings=settings)
    unknown = [e for e in config.edits if e not in evaluation.EDITS]
    if unknown:
        raise ValueError(f"--edits {','.join(unknown)}: valid edits are {', '.join(evaluation.EDITS)}")
    t = time.time()
    found = evaluation.run(config, weights=args.weights)
    print(edit_report.table(found))
    print(f"({config.seeds} seeds per edit, {config.helper_seeds} helper seeds for the CIS sweep, "
          f"{config.settings.sampler} {config.settings.steps} steps, cfg {config.settings.cfg}, inversion cfg "
          f"{config.inversion_cfg}; {time.time() - t:.0f}s)")
    return 0


def study_run(args) -> int:
    from . import world_study
    settings, seeds, out = sampler_settings(args), arg_checks.seeds(args), arg_checks.check_out_folder(args.out)
    block = arg_checks.check_whole(args.seed_block, "--seed-block", 1)
    max_batch = arg_checks.check_whole(args.max_batch, "--max-batch", 1) if args.max_batch is not None else None
    concept_lists = world_study.taxonomy_concepts(taxonomy.load_taxonomy(args.taxonomy), args.path, args.base)
    model = load_model(args.weights)
    t = time.time()
    report = lambda label, r: print(f"  {label}: {len(r.seeds)} seeds, {len(r.ks)} ks", flush=True)
    found = world_study.run_study(model, concept_lists, seeds, out, settings, args.adaptive, args.weights, max_batch,
                                 report, args.base, block)
    skipped = [f"{p}: {', '.join(c.skipped)}" for p, c in concept_lists.items() if c.skipped]
    search = "adaptive search" if args.adaptive else "full sweep"
    print(f"study of {len(found)} concepts against {args.base!r} ({search}, {len(seeds)} seeds, {args.sampler}, "
          f"{args.steps} steps, {time.time() - t:.1f}s)" + (f"; skipped (= base value): {'; '.join(skipped)}"
                                                            if skipped else ""))
    print(study.write_study_files(found, out, f"CIS(k) of {len(found)} concepts against {args.base!r} ({search})"))
    print(f"wrote {Path(out).resolve()}/study.txt, study.png, study.json and one run folder per concept")
    return 0
