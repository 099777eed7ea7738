"""The official PCI runner's result files, read and written, so both tools read each other's results.

The official runner (adagorgun/PCI-Prompt-Controlled-Interventions, pci/core/pci_runner.py) writes
<out>/<concept>/results.json: a JSON list of one record per seed (and per negative prompt kind),
    {"seed": int, "vqa_binary": [0/1 per switch point], "timesteps": [int per switch point],
     "negative_prompt": str or null, "target_prompt": base prompt, "ablated_prompt": concept prompt}
Switch point j (timesteps in the scheduler's order, noisiest first) runs the base prompt for steps
0..j-1 and the concept from step j on: our insertion step k = j. Entry 0 is k = 0 (concept from the
start); there is no base-only entry (k = T). Timesteps are int() of the scheduler's: 0..999 on the
discrete (SD) schedule, sigma * 1000 truncated on flow schedules (SD3, FLUX), which is how the noise
axis is recovered (sigmas_of_timesteps). A strided run (timestep_stride > 1) reads as a run of as many
steps as it has switch points: its step axis counts switch points, its noise axis is exact.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from . import schedule
from .cis import CISResult
from .results import RESULTS_FILE, read_results, write_atomic

FLOW_TIMESTEP_MAX = 1000  # flow schedules start at sigma 1 = timestep 1000; the discrete one ends at 999
NEGATIVE_KINDS = ("without", "with")  # records without / with a negative prompt (the runner keeps both)


def is_official_file(path: Path) -> bool:
    """A results.json holding the official runner's list of records (ours is an object with a header)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return False
    records = [data] if isinstance(data, dict) and "vqa_binary" in data else data
    return isinstance(records, list) and all(isinstance(r, dict) and "vqa_binary" in r for r in records)


def sigmas_of_timesteps(timesteps: Sequence[int], noise: str = "auto") -> tuple[list[float], str]:
    """(sigmas at the switch points plus the final 0, the schedule kind): noise "discrete" (SD's scaled-
    linear schedule, ComfyUI's ModelSamplingDiscrete), "flow" (sigma = t / 1000), or "auto" (flow when the
    first timestep is 1000, the flow schedules' start; else discrete)."""
    if noise == "auto":
        noise = "flow" if timesteps and max(timesteps) >= FLOW_TIMESTEP_MAX else "discrete"
    if noise == "flow":
        sigmas = [t / FLOW_TIMESTEP_MAX for t in timesteps]
    elif noise == "discrete":
        table = schedule.discrete_sigmas()
        if any(not 0 <= t < len(table) for t in timesteps):
            raise ValueError(f"timesteps {list(timesteps)}: a discrete (SD) schedule has timesteps 0..{len(table) - 1}")
        sigmas = [float(table[t]) for t in timesteps]
    else:
        raise ValueError(f"noise {noise!r}: 'auto', 'discrete' (SD schedules) or 'flow' (SD3, FLUX)")
    return sigmas + [0.0], noise


def timesteps_of_sigmas(sigmas: Sequence[float]) -> list[int]:
    """The official runner's int timesteps of our sigmas (the last, 0, excluded): sigma * 1000 truncated on a
    flow schedule (sigma_max 1), the nearest discrete timestep otherwise (ComfyUI's own rounding)."""
    positive = [float(s) for s in sigmas[:-1]]
    if positive and max(positive) <= 1.0 + 1e-6:
        return [int(s * FLOW_TIMESTEP_MAX) for s in positive]
    import torch
    return [int(t) for t in schedule.timestep_of(torch.tensor(positive), schedule.discrete_sigmas())]


def read_official(path: Path, negative: str | None = None, noise: str = "auto") -> CISResult:
    """A CISResult of an official results.json (path: the file or its concept folder): seeds as rows, switch
    points as ks 0..J-1 of J steps, decisions as 0/1 scores at threshold 0.5, the folder's name as the
    concept. negative: which records to read when the file holds both kinds ("without" / "with")."""
    path = Path(path)
    file = path / RESULTS_FILE if path.is_dir() else path
    if not is_official_file(file):
        raise ValueError(f"{file}: not an official PCI results file (a JSON list of records with 'vqa_binary')")
    data = json.loads(file.read_text(encoding="utf-8"))
    records = [data] if isinstance(data, dict) else data
    kinds = {kind: [r for r in records if (r.get("negative_prompt") not in (None, "")) == (kind == "with")]
             for kind in NEGATIVE_KINDS}
    present = [k for k in NEGATIVE_KINDS if kinds[k]]
    if negative is None and len(present) > 1:
        raise ValueError(f"{file} holds records without and with a negative prompt; choose one: "
                         f"negative = {' or '.join(repr(k) for k in NEGATIVE_KINDS)}")
    if negative is not None and negative not in NEGATIVE_KINDS:
        raise ValueError(f"negative {negative!r}: {' or '.join(repr(k) for k in NEGATIVE_KINDS)}")
    chosen = kinds[negative or (present[0] if present else "without")]
    if not chosen:
        raise ValueError(f"{file}: no records{'' if negative is None else f' {negative} a negative prompt'}")
    timesteps = [int(t) for t in chosen[0]["timesteps"]]
    for r in chosen:
        if [int(t) for t in r["timesteps"]] != timesteps or len(r["vqa_binary"]) != len(timesteps):
            raise ValueError(f"{file}: seed {r.get('seed')} has other switch points than seed {chosen[0].get('seed')}; "
                             "one result needs the same timesteps for every seed")
    sigmas, kind = sigmas_of_timesteps(timesteps, noise)
    scores = np.array([[float(bool(v)) for v in r["vqa_binary"]] for r in chosen])
    first = chosen[0]
    settings = {"source": "official PCI runner", "noise": kind, "timesteps": timesteps,
                "base_prompt": first.get("target_prompt"), "concept_prompt": first.get("ablated_prompt"),
                "negative_prompt": first.get("negative_prompt")}
    return CISResult([int(r["seed"]) for r in chosen], list(range(len(timesteps))), len(timesteps), sigmas, scores,
                     0.5, file.parent.name, settings)


def official_records(result: CISResult) -> list[dict]:
    """Our result as the official runner's records: the switch points k < T it measured (it has no k = T),
    decisions as vqa_binary, int timesteps, the prompts as text where the run knew them."""
    measured = [i for i, k in enumerate(result.ks) if k < result.steps]
    timesteps = timesteps_of_sigmas(result.sigmas)
    s = result.settings
    prompt = lambda text_key, key: s.get(text_key) or s.get(key)
    negative = s.get("negative_prompt") or None
    return [{"seed": int(seed), "vqa_binary": [int(d) for d in row[measured]],
             "timesteps": [timesteps[result.ks[i]] for i in measured], "negative_prompt": negative,
             "target_prompt": prompt("base_text", "base_prompt"), "ablated_prompt": prompt("concept_text", "concept_prompt")}
            for seed, row in zip(result.seeds, result.decisions)]


def write_official(result: CISResult, folder: Path) -> Path:
    """folder/results.json (and seeds.txt) in the official runner's format, written atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / RESULTS_FILE, json.dumps(official_records(result), indent=2) + "\n")
    write_atomic(folder / "seeds.txt", "".join(f"{seed}\n" for seed in result.seeds))
    return folder / RESULTS_FILE


def read_any(path: Path, negative: str | None = None, noise: str = "auto") -> CISResult:
    """A result from our run folder or an official concept folder (or either's results.json)."""
    path = Path(path)
    file = path / RESULTS_FILE if path.is_dir() else path
    if not file.is_file():
        raise ValueError(f"{path}: no {RESULTS_FILE} there (give a run folder or an official concept folder)")
    if is_official_file(file):
        return read_official(file, negative, noise)
    header, seeds, scores = read_results(file)
    return CISResult.from_header(header, seeds, scores)


def collect(paths: Sequence[Path], negative: str | None = None, noise: str = "auto") -> list[tuple[str, str, CISResult]]:
    """(key, label, result) of every run under the paths: a run folder (ours or an official concept folder),
    a results.json, our study folder (its study.json order) or an official output folder (one concept folder
    each); ValueError naming a path that holds none."""
    from .study import run_folders
    found: list[tuple[str, str, CISResult]] = []
    for path in (Path(p) for p in paths):
        if path.is_file() or (path / RESULTS_FILE).is_file():
            folder = path.parent if path.is_file() else path
            found.append((folder.name, folder.name, read_any(path, negative, noise)))
            continue
        if not path.is_dir():
            raise ValueError(f"{path}: no such folder or results file")
        official = sorted(p for p in path.iterdir() if p.is_dir() and is_official_file(p / RESULTS_FILE))
        if official:
            found += [(p.name, p.name, read_official(p, negative, noise)) for p in official]
        else:
            found += [(key, label, read_any(folder)) for key, label, folder in run_folders(path)]
    return found

