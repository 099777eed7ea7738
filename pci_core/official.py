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
steps as it has switch points: its step axis counts switch points. On a flow schedule int() truncates:
sigma = t / 1000 is up to 0.001 low (about 10 % at SD3.5's last switch point), and so is the noise axis
recovered from it.

Two noise axes. Ours (CISResult.tau, schedule.tau_from_sigmas) normalises -log sigma^2 from the first step
to k = T; the official code's (official_tau, their utils.tau_from_sigmas) min-max normalises it over the
array it is given: the switch points a file stores, with no k = T. The report prints both, named; τ50 / τ70
on theirs are their first_crossing over the reversed arrays (the clean end first: official_crossings).
An export (write_official) is read by their utils as we mean it: the concept's folder, seeds.txt with the
seeds that pass the controls (concept at k = 0, not at k = T), and each record's base-only decision in an
extra key "base_only" that their code ignores and read_official reads back as k = T.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from . import schedule
from .cis import CISResult
from .results import RESULTS_FILE, read_results, write_atomic

OFFICIAL_EPS = 1e-20  # their tau_from_sigmas clamps sigma^2 at this (a sigma of 0 has no logarithm)
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


def diffusers_discrete_sigmas() -> np.ndarray:
    """sigma_t = sqrt((1 - alphas_cumprod) / alphas_cumprod) as the official runner's pipelines have it
    (diffusers' DDIM / EulerAncestral for SD2.1 and SDXL: scaled_linear betas 0.00085-0.012, computed in
    float32), so their timesteps give their sigmas to the last bit."""
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=np.float32) ** 2
    alphas_cumprod = np.cumprod(1.0 - betas, dtype=np.float32)
    return np.sqrt((1 - alphas_cumprod) / alphas_cumprod)


def sigmas_of_timesteps(timesteps: Sequence[int], noise: str = "auto") -> tuple[list[float], str]:
    """(sigmas at the switch points plus the final 0, the schedule kind): noise "discrete" (SD's scaled-
    linear schedule, ComfyUI's ModelSamplingDiscrete), "flow" (sigma = t / 1000), or "auto" (flow when the
    first timestep is 1000, the flow schedules' start; else discrete)."""
    if noise == "auto":
        noise = "flow" if timesteps and max(timesteps) >= FLOW_TIMESTEP_MAX else "discrete"
    if noise == "flow":
        sigmas = [t / FLOW_TIMESTEP_MAX for t in timesteps]
    elif noise == "discrete":
        table = diffusers_discrete_sigmas()
        if any(not 0 <= t < len(table) for t in timesteps):
            raise ValueError(f"timesteps {list(timesteps)}: a discrete (SD) schedule has timesteps 0..{len(table) - 1}")
        sigmas = [float(table[t]) for t in timesteps]
    else:
        raise ValueError(f"noise {noise!r}: 'auto', 'discrete' (SD schedules) or 'flow' (SD3, FLUX)")
    return sigmas + [0.0], noise


def official_tau(sigmas: Sequence[float]) -> np.ndarray:
    """The official code's noise axis (pci/core/utils.py tau_from_sigmas): -log max(sigma^2, 1e-20), reversed
    if it falls, min-max normalised over exactly the array given."""
    sig = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    logsnr = -np.log(np.maximum(sig ** 2, OFFICIAL_EPS))
    if logsnr[0] > logsnr[-1]:
        logsnr = logsnr[::-1]
    lmin, lmax = float(logsnr.min()), float(logsnr.max())
    return (logsnr - lmin) / max(lmax - lmin, 1e-12)


def official_first_crossing(x: Sequence[float], y: Sequence[float], thr: float = 0.5) -> float:
    """The official code's first_crossing: the first rising crossing y[i] < thr <= y[i+1], interpolated in
    x; NaN when there is none."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    for i in range(len(y) - 1):
        if y[i] < thr <= y[i + 1]:
            w = (thr - y[i]) / (y[i + 1] - y[i] + 1e-12)
            return float(x[i] + w * (x[i + 1] - x[i]))
    return float("nan")


def switch_points(result: CISResult) -> tuple[list[int], list[float]]:
    """The measured ks an official file would store (every k < T) and their sigmas."""
    ks = [k for k in result.ks if k < result.steps]
    return ks, [result.sigmas[k] for k in ks]


def official_crossings(result: CISResult, levels: Sequence[float] = (0.5, 0.7)) -> dict[str, float]:
    """tau50 / tau70 on the official axis: official_tau over the switch points' sigmas, CIS per switch
    point, their first_crossing over both arrays reversed (the clean end first, where CIS rises)."""
    ks, sigmas = switch_points(result)
    if len(ks) < 2 or not len(result.seeds):
        return {f"tau{round(level * 100)}": float("nan") for level in levels}
    cis = result.decisions[:, [result.ks.index(k) for k in ks]].mean(axis=0)
    tau = official_tau(sigmas)
    return {f"tau{round(level * 100)}": official_first_crossing(tau[::-1], cis[::-1], level) for level in levels}


def timesteps_of_sigmas(sigmas: Sequence[float]) -> list[int]:
    """The official runner's int timesteps of our sigmas (the last, 0, excluded): sigma * 1000 truncated on a
    flow schedule (sigma_max 1), the nearest discrete timestep otherwise (ComfyUI's own rounding)."""
    positive = [float(s) for s in sigmas[:-1]]
    if positive and max(positive) <= 1.0 + 1e-6:
        return [int(s * FLOW_TIMESTEP_MAX) for s in positive]
    import torch
    return [int(t) for t in schedule.timestep_of(torch.tensor(positive), schedule.discrete_sigmas())]


NEGATIVE_CHOICES = (*NEGATIVE_KINDS, "per-seed")


def _chosen_records(records: list, negative: str | None, file: Path) -> list:
    """The records to read. negative "without" / "with": that kind alone; "per-seed": each seed's own record
    (a seed re-run with a negative prompt, as the runner does for seeds that need one, is read from that
    record). None: the one kind present, or per seed when no seed has both kinds."""
    if negative is not None and negative not in NEGATIVE_CHOICES:
        raise ValueError(f"negative {negative!r}: {', '.join(repr(k) for k in NEGATIVE_CHOICES)}")
    is_with = lambda r: r.get("negative_prompt") not in (None, "")
    kinds = {kind: [r for r in records if is_with(r) == (kind == "with")] for kind in NEGATIVE_KINDS}
    if negative in NEGATIVE_KINDS:
        return kinds[negative]
    both = sorted({r.get("seed") for r in kinds["with"]} & {r.get("seed") for r in kinds["without"]}, key=str)
    if negative is None and both:
        raise ValueError(f"{file}: seeds {both[:5]} have records without and with a negative prompt; choose: "
                         f"negative = {' or '.join(repr(k) for k in NEGATIVE_CHOICES)}")
    with_seeds = {r.get("seed") for r in kinds["with"]}
    return kinds["with"] + [r for r in kinds["without"] if r.get("seed") not in with_seeds]


def read_official(path: Path, negative: str | None = None, noise: str = "auto") -> CISResult:
    """A CISResult of an official results.json (path: the file or its concept folder): seeds as rows, switch
    points as ks 0..J-1 of J steps (and k = J where every record has our export's "base_only"), decisions
    as 0/1 scores at threshold 0.5, the folder's name as the concept. negative: see _chosen_records.
    ValueError naming the file for anything it cannot read (no records: CIS is undefined there)."""
    path = Path(path)
    file = path / RESULTS_FILE if path.is_dir() else path
    if not is_official_file(file):
        raise ValueError(f"{file}: not an official PCI results file (a JSON list of records with 'vqa_binary')")
    data = json.loads(file.read_text(encoding="utf-8"))
    chosen = _chosen_records([data] if isinstance(data, dict) else data, negative, file)
    if not chosen:
        raise ValueError(f"{file}: no records{'' if negative is None else f' ({negative} a negative prompt)'}; "
                         "CIS is undefined (the official code gives NaN)")
    timesteps = [int(t) for t in chosen[0]["timesteps"]]
    for r in chosen:
        if [int(t) for t in r["timesteps"]] != timesteps or len(r["vqa_binary"]) != len(timesteps):
            raise ValueError(f"{file}: seed {r.get('seed')} has other switch points than seed {chosen[0].get('seed')}; "
                             "one result needs the same timesteps for every seed")
    sigmas, kind = sigmas_of_timesteps(timesteps, noise)
    controls = all("base_only" in r for r in chosen)
    scores = np.array([[float(bool(v)) for v in r["vqa_binary"]] + ([float(bool(r["base_only"]))] if controls else [])
                       for r in chosen])
    first = chosen[0]
    settings = {"source": "official PCI runner", "noise": kind, "timesteps": timesteps,
                "base_prompt": first.get("target_prompt"), "concept_prompt": first.get("ablated_prompt"),
                "negative_prompt": first.get("negative_prompt")}
    ks = list(range(len(timesteps) + (1 if controls else 0)))
    try:
        return CISResult([int(r["seed"]) for r in chosen], ks, len(timesteps), sigmas, scores, 0.5, file.parent.name,
                         settings)
    except ValueError as e:
        raise ValueError(f"{file}: {e}") from None


def official_records(result: CISResult) -> list[dict]:
    """Our result as the official runner's records: the switch points k < T it measured (its runner has no
    k = T), decisions as vqa_binary, int timesteps, the prompts as text where the run knew them, and the
    base-only decision (k = T) in "base_only", a key their code does not read."""
    measured = [i for i, k in enumerate(result.ks) if k < result.steps]
    base_only = result.ks.index(result.steps) if result.steps in result.ks else None
    timesteps = timesteps_of_sigmas(result.sigmas)
    s = result.settings
    prompt = lambda text_key, key: s.get(text_key) or s.get(key)
    negative = s.get("negative_prompt") or None
    return [{"seed": int(seed), "vqa_binary": [int(d) for d in row[measured]],
             "timesteps": [timesteps[result.ks[i]] for i in measured], "negative_prompt": negative,
             "target_prompt": prompt("base_text", "base_prompt"), "ablated_prompt": prompt("concept_text", "concept_prompt"),
             **({} if base_only is None else {"base_only": int(row[base_only])})}
            for seed, row in zip(result.seeds, result.decisions)]


def write_official(result: CISResult, folder: Path) -> Path:
    """folder/results.json and seeds.txt in the official runner's format, written atomically. seeds.txt is
    what their utils read as the valid seeds: those whose controls hold (cis.valid_seed_mask: the concept
    at k = 0, not at k = T); all seeds when the run did not measure both controls."""
    from .cis import valid_seed_mask
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / RESULTS_FILE, json.dumps(official_records(result), indent=2) + "\n")
    try:
        valid = [s for s, ok in zip(result.seeds, valid_seed_mask(result.decisions, result.ks, result.steps)) if ok]
    except ValueError:
        valid = list(result.seeds)
    write_atomic(folder / "seeds.txt", "".join(f"{seed}\n" for seed in valid))
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


def collect(paths: Sequence[Path], negative: str | None = None, noise: str = "auto",
            problems: list | None = None) -> list[tuple[str, str, CISResult]]:
    """(key, label, result) of every run under the paths: a run folder (ours or an official concept folder),
    a results.json, our study folder (its study.json order) or an official output folder (one concept folder
    each); ValueError naming a path that holds none. With problems (a list), a concept folder of an
    official output folder that cannot be read is named there, (key, why), and the others are read."""
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
        if not official:
            found += [(key, label, read_any(folder)) for key, label, folder in run_folders(path)]
        for concept in official:
            try:
                found.append((concept.name, concept.name, read_official(concept, negative, noise)))
            except ValueError as e:
                if problems is None:
                    raise
                problems.append((concept.name, str(e)))
    return found
