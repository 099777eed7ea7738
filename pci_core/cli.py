"""Command line: `python -m pci_core COMMAND` (the list: `python -m pci_core --help`).

The top floor: the parser and the dispatch, above everything they call. The demo model's commands live
in pci_core/demo/commands.py, the distributed study in pci_cluster/study_driver.py, the engine's own
commands on result folders (merge, report, export-official) here. Every command checks its inputs
before any work (pci_core.arg_checks): a bad input ends in one line naming it, exit 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .arg_checks import check_out_folder
from .demo.world import DEMO_BASE


# ---------------------------------------------------------------- the engine's commands

def merge(args) -> int:
    from . import results, study
    out = check_out_folder(args.out)
    merged = study.merge_studies([Path(d) for d in args.dirs])
    for key, _, result in merged:  # the merged study is a study folder again (mergeable, resumable)
        store = results.RunStore(out / key, result.header())
        done = set(store.done_seeds())
        new = [i for i, seed in enumerate(result.seeds) if seed not in done]
        if new:
            store.add([result.seeds[i] for i in new], result.scores[new])
    study.write_index(out, [(key, label) for key, label, _ in merged])
    print(f"merged {len(args.dirs)} folders into {len(merged)} concepts")
    print(study.write_study_files(merged, out, f"CIS(k) of {len(merged)} concepts (merged from {len(args.dirs)} folders)"))
    print(f"wrote {out.resolve()}/study.txt, study.png, study.json and one run folder per concept")
    return 0


def report(args) -> int:
    from . import cis, official, study
    problems: list[tuple[str, str]] = []
    found = official.collect([Path(p) for p in args.paths], args.negative, args.noise, problems)
    for key, _, result in found:
        print(f"== {key}")
        print(cis.table(cis.summarize(result, reading=args.reading)))
        theirs = official.official_crossings(result)
        n = len(official.switch_points(result)[0])
        print(f"official runner's noise axis (-log sigma^2 min-max over the {n} switch points stored, no k = T; their "
              f"first_crossing from the clean end): " + ", ".join(f"{k} {v:.4f}" for k, v in theirs.items()))
    for key, why in problems:
        print(f"== {key}\nnot read: {why}")
    if args.out and found:
        out = check_out_folder(args.out)
        print(study.write_study_files(found, out, f"CIS(k) of {len(found)} runs", args.reading))
        print(f"wrote {out.resolve()}/study.txt and study.png")
    return 0 if found else 2


def export_official(args) -> int:
    from . import official, study
    out = check_out_folder(args.out)
    found = official.collect([Path(p) for p in args.paths])
    by_folder: dict[str, str] = {}
    for key, _, result in found:  # their concept folder is the concept's name: two runs of one concept would meet
        other = by_folder.setdefault(study.folder_name(result.concept), key)
        if other != key:
            raise ValueError(f"{other} and {key} are both runs of the concept {result.concept!r}: merge them first "
                             "(python -m pci_core merge), then export")
    for key, _, result in found:
        path = official.write_official(result, out / study.folder_name(result.concept))
        print(f"{key}: {len(result.seeds)} seeds -> {path}")
    return 0


def study_ray(args) -> int:
    from pci_cluster import study_driver
    return study_driver.main(args)


# ---------------------------------------------------------------- the parser

def _sampling(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cfg", type=float, default=4.0)
    p.add_argument("--sampler", default="euler", help="euler, euler_ancestral or dpmpp_2m")
    p.add_argument("--scheduler", default="normal", help="normal or karras")
    p.add_argument("--weights", default=None, help="demo model safetensors (default: the shipped weights)")


def _seeds(p: argparse.ArgumentParser, n: int, help_first: str = "first seed") -> None:
    p.add_argument("--n", type=int, default=n, help="number of seeds")
    p.add_argument("--seed", type=int, default=0, help=help_first)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m pci_core", description=__doc__.split("\n")[0])
    sub = root.add_subparsers(dest="command", required=True)
    _demo_commands(sub)
    p = sub.add_parser("study-ray", help="a study of any ComfyUI workflow with one CIS Sweep node, fanned out over "
                                         "Ray workers (one per GPU, or CPU workers), resumable")
    from pci_cluster.study_driver import add_arguments
    add_arguments(p)
    p.set_defaults(func=study_ray)
    _result_commands(sub)
    _demo_tools(sub)
    return root


def _demo_commands(sub) -> None:
    """Commands on the demo model: images, a CIS run, a study."""
    from .demo import commands
    p = sub.add_parser("demo", help="generate images from the demo model for a prompt")
    p.add_argument("--prompt", default=DEMO_BASE)
    _seeds(p, 8)
    p.add_argument("--out", default="pci_demo_out")
    _sampling(p)
    p.set_defaults(func=commands.demo)

    p = sub.add_parser("cis", help="CIS(k) curve and tau50 of a concept on the demo model (pixel judge)")
    p.add_argument("--base", default=DEMO_BASE)
    p.add_argument("--concept", default="a large blue circle on the left on a black background")
    _seeds(p, 16)
    p.add_argument("--max-batch", type=int, default=None, help="most rows per model call")
    p.add_argument("--judge-text", default=None, help="what the rule judge must see, every attribute it names "
                   "(default: the attributes the concept changes, e.g. 'a blue shape')")
    p.add_argument("--out", default="pci_cis_out")
    _sampling(p)
    p.set_defaults(func=commands.cis_run)

    p = sub.add_parser("study", help="a concept study on the demo model from a taxonomy file (one run per concept)")
    p.add_argument("taxonomy", help="taxonomy JSON ({category: {attribute: [values]}}), e.g. pci_core/demo/taxonomy.json")
    p.add_argument("--path", default="", help="dotted path of the lists to study, e.g. demo_world.colour (default: all)")
    p.add_argument("--base", default=DEMO_BASE)
    p.add_argument("--adaptive", action="store_true", help="adaptive lock-in search instead of every k")
    _seeds(p, 16, "first seed (shard a full sweep by seed block)")
    p.add_argument("--seed-block", type=int, default=8, help="seeds per branching run of a full sweep")
    p.add_argument("--max-batch", type=int, default=None, help="most rows per model call")
    p.add_argument("--out", default="pci_study_out")
    _sampling(p)
    p.set_defaults(func=commands.study_run)


def _result_commands(sub) -> None:
    """The engine's commands on result folders (ours and the official runner's)."""
    from .cis import READINGS, DEFAULT_READING
    p = sub.add_parser("merge", help="merge study folders (shards from several machines) into one table and plot")
    p.add_argument("dirs", nargs="+", help="study or run folders")
    p.add_argument("--out", required=True)
    p.set_defaults(func=merge)

    p = sub.add_parser("report", help="CIS statistics of run folders, study folders or the official PCI runner's "
                                      "results (<out>/<concept>/results.json)")
    p.add_argument("paths", nargs="+", help="run, study or official output folders (or results.json files)")
    p.add_argument("--reading", choices=READINGS, default=DEFAULT_READING, help="which crossing of a curve that "
                   "crosses a level more than once: nearest the noisy end, or the clean end (the official runner's)")
    p.add_argument("--negative", choices=("without", "with", "per-seed"), default=None, help="official files "
                   "holding records without and with a negative prompt: which to read (per-seed: each seed's own, "
                   "its negative-prompt re-run where it has one); default: the kind present, or per seed")
    p.add_argument("--noise", choices=("auto", "discrete", "flow"), default="auto", help="official files: the noise "
                   "schedule of their timesteps (auto: flow when they start at 1000)")
    p.add_argument("--out", default=None, help="also write study.txt and the overlaid plot study.png here")
    p.set_defaults(func=report)

    p = sub.add_parser("export-official", help="run or study folders as the official PCI runner's results files")
    p.add_argument("paths", nargs="+", help="run or study folders")
    p.add_argument("--out", required=True, help="folder for <concept>/results.json")
    p.set_defaults(func=export_official)


def _demo_tools(sub) -> None:
    """The demo model's evaluations, benchmark and training."""
    from .demo import commands
    p = sub.add_parser("edit-eval", help="edit evaluation on the demo model: CIS-chosen step vs regeneration, "
                                         "a fixed middle step, img2img and inversion")
    p.add_argument("--seeds", type=int, default=50, help="evaluation seeds (and input images) per edit")
    p.add_argument("--helper-seeds", type=int, default=16, help="seeds of the CIS sweep that picks k")
    p.add_argument("--edits", default="", help="comma-separated subset of colour,size,shape,background,position")
    p.add_argument("--inversion-cfg", type=float, default=1.0, help="guidance scale of the input-image inversion")
    p.add_argument("--quick", action="store_true", help="a smoke run (4 seeds, the colour edit, 8 steps)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the demo model's tensors are "
                   "too small to gain from more; measured 5 s vs 35 s for --quick with 2 on a busy 2-core machine)")
    _sampling(p)
    p.set_defaults(func=commands.edit_eval)

    p = sub.add_parser("fidelity", help="pixel-judge fidelity of the demo model per attribute")
    p.add_argument("--samples", type=int, default=200)
    _sampling(p)
    p.set_defaults(func=commands.fidelity)

    p = sub.add_parser("bench", help="full CIS sweep: official loop vs branching engine, side by side")
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--samplers", default="euler,euler_ancestral")
    p.add_argument("--max-batch", type=int, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--weights", default=None)
    p.set_defaults(func=commands.bench)

    p = sub.add_parser("train", help="train the demo model from scratch (CPU, about 20 min)")
    from .demo.demo_model import DEFAULT_WEIGHTS
    p.add_argument("--out", default=str(DEFAULT_WEIGHTS))
    p.add_argument("--train-steps", type=int, default=None, help="diffusion steps (default: train.main's)")
    p.add_argument("--ae-steps", type=int, default=None, help="autoencoder steps (default: train.main's)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=commands.train)

    p = sub.add_parser("train-lora", help="train the demo LoRA that turns shapes one colour (CPU, a few minutes)")
    from .demo.lora import GREEN_LORA, LORA_FOLDER
    p.add_argument("--out", default=str(LORA_FOLDER / GREEN_LORA))
    p.add_argument("--colour", default="green", help="the colour every shape takes under the LoRA")
    p.add_argument("--train-steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=commands.train_lora)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as e:  # a bad input, a missing file, a full disk: one line, exit 2
        print(f"error: {e}", file=sys.stderr)
        return 2
