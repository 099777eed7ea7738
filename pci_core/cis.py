"""Concept Insertion Success: CIS(k) over seeds, its uncertainty, and where it crosses a level.

A CIS run measures, for seeds s and insertion steps k, whether the judge sees the concept in the
final image (decisions (S, K), from scores and a threshold). From it:
- CIS(k) = successes / n per k, with a Wilson 95% interval;
- tau_L (tau50, tau70): where CIS falls through level L, by linear interpolation between neighbouring
  measured k, in steps and on the noise axis (schedule.tau_from_sigmas), each with a bootstrap 95%
  interval over seeds; "never crosses" is None. A curve that falls through L more than once is read
  from the clean end (the last fall: after tau_L CIS stays below L), as the official runner's
  first_crossing reads it; reading=NOISY_END gives the first fall;
- the controls: CIS at k = 0 (concept from the start: can the model draw it, can the judge see it?)
  and at k = T (base only: the judge's false-positive rate).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from . import schedule

Z95 = 1.959963984540054  # two-sided 95% normal quantile
LEVELS = (0.5, 0.7)
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


def cis_curve(decisions: np.ndarray) -> np.ndarray:
    """CIS(k): the fraction of seeds whose image shows the concept, from decisions (S, K)."""
    return np.asarray(decisions, dtype=np.float64).mean(axis=0)


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (Wilson 1927); (0, 1) when n = 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # the bounds are exactly 0 at no successes and 1 at all; rounding would leave 1e-17 off
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


# Where a curve that falls through a level more than once (a seed whose edit takes at k, not at k+1, and
# again at k+2; with 4-8 seeds, and in bootstrap resamples) is read: the crossing nearest the clean end
# (k = T) or the noisy end (k = 0). The official runner's first_crossing (pci/core/utils.py) finds a
# rising crossing y[i] < level <= y[i+1] in array order, so it reads CIS rising from the clean end. The
# default is that reading: tau50 is then where the concept locks in for good (CIS never again reaches
# the level after it), the step an edit can be inserted last on half the seeds, and the paper's number;
# the first fall from the noisy end can be a dip of one step that the next steps undo. On a curve that
# crosses once both readings are the same number.
NOISY_END, CLEAN_END = "noisy end", "clean end"
READINGS = (CLEAN_END, NOISY_END)
DEFAULT_READING = CLEAN_END


def first_crossing(xs: Sequence[float], ys: Sequence[float], level: float = 0.5,
                   reading: str = DEFAULT_READING) -> float | None:
    """Where ys falls through level (ys[i] >= level > ys[i+1]), by linear interpolation between
    neighbouring points; None if it never does. reading: which crossing of a non-monotone curve, the one
    nearest the noisy end (the first in x) or the clean end (the last in x: the official runner's)."""
    if reading not in READINGS:
        raise ValueError(f"reading {reading!r}: {' or '.join(repr(r) for r in READINGS)}")
    pairs = range(len(ys) - 1)
    for i in (pairs if reading == NOISY_END else reversed(pairs)):
        y0, y1 = ys[i], ys[i + 1]
        if y0 >= level > y1:
            return float(xs[i] + (y0 - level) / (y0 - y1) * (xs[i + 1] - xs[i]))
    return None


def bootstrap_crossing(decisions: np.ndarray, xs: Sequence[float], level: float = 0.5,
                       resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                       reading: str = DEFAULT_READING) -> dict:
    """Percentile 95% interval of first_crossing over seeds resampled with replacement (fixed RNG
    seed, so the same data give the same interval). never = share of resamples that never cross;
    the interval is over the resamples that do (None when fewer than half of them do)."""
    decisions = np.asarray(decisions, dtype=np.float64)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, decisions.shape[0], size=(resamples, decisions.shape[0]))
    curves = decisions[picks].mean(axis=1)  # (resamples, K)
    found = [c for c in (first_crossing(xs, curve, level, reading) for curve in curves) if c is not None]
    never = 1.0 - len(found) / resamples
    if len(found) < resamples / 2:
        return {"low": None, "high": None, "never": never}
    low, high = np.percentile(found, [2.5, 97.5])
    return {"low": float(low), "high": float(high), "never": never}


def valid_seed_mask(decisions: np.ndarray, ks: Sequence[int], steps: int) -> np.ndarray:
    """The valid-seed filter: keep seeds whose k = 0 image shows the concept and whose k = steps image does
    not (both controls must have been measured). The official code keeps the valid seeds in seeds.txt; the
    test that chose them is in its unpublished notebook, so this is the filter the controls imply."""
    ks = list(ks)
    if 0 not in ks or steps not in ks:
        raise ValueError(f"the valid-seed filter needs k = 0 and k = {steps} among the measured steps {ks}")
    d = np.asarray(decisions, dtype=bool)
    return d[:, ks.index(0)] & ~d[:, ks.index(steps)]


def run_header(concept: str, ks: Sequence[int], steps: int, sigmas: Sequence[float], threshold: float,
               settings: dict) -> dict:
    """A run's header: what the judge looked for, the measured ks, the schedule (steps + 1 sigmas), the
    judge's threshold and the settings (model, sampler, prompts, judge, ...). The one way a header is made."""
    return {"concept": concept, "ks": [int(k) for k in ks], "steps": int(steps), "sigmas": [float(s) for s in sigmas],
            "threshold": float(threshold), "settings": dict(settings)}


@dataclass
class CISResult:
    """Everything a CIS run measured, self-describing (what CISSweep returns as CIS_RESULT and writes
    as results.json). Rows are seeds, columns the measured insertion steps ks (sorted)."""
    seeds: list[int]
    ks: list[int]
    steps: int
    sigmas: list[float]              # the whole schedule, steps + 1 values (k indexes it)
    scores: np.ndarray               # (S, K) judge scores in [0, 1]
    threshold: float                 # decision = score >= threshold
    concept: str                     # the text the judge looked for
    settings: dict = field(default_factory=dict)  # sampler, scheduler, cfg, prompts, model, judge, ...

    def __post_init__(self):
        # plain Python numbers, so the record serialises as JSON whatever the caller passed (numpy, torch)
        self.seeds, self.ks = [int(s) for s in self.seeds], [int(k) for k in self.ks]
        self.steps, self.threshold = int(self.steps), float(self.threshold)
        self.sigmas = [float(s) for s in self.sigmas]
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(len(self.seeds), len(self.ks))
        if self.ks != sorted(set(self.ks)):
            raise ValueError(f"ks must be sorted and distinct, got {self.ks}")
        if self.ks and not 0 <= self.ks[0] <= self.ks[-1] <= self.steps:
            raise ValueError(f"ks must lie in 0..steps = 0..{self.steps}, got {self.ks}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {self.seeds}")
        if len(self.sigmas) != self.steps + 1:
            raise ValueError(f"sigmas: {len(self.sigmas)} values for {self.steps} steps (need steps + 1)")

    @property
    def decisions(self) -> np.ndarray:
        return self.scores >= self.threshold

    @property
    def tau(self) -> np.ndarray:
        """Noise-axis position of each measured k (schedule.tau_from_sigmas)."""
        return schedule.tau_from_sigmas(self.sigmas).numpy()[self.ks]

    def to_json(self) -> dict:
        return {"seeds": [int(s) for s in self.seeds], "ks": [int(k) for k in self.ks], "steps": self.steps,
                "sigmas": [float(s) for s in self.sigmas], "threshold": self.threshold, "concept": self.concept,
                "settings": self.settings,
                "scores": [[float(v) for v in row] for row in self.scores]}

    def header(self) -> dict:
        """Everything but the seeds and their scores: what identifies the run (pci_core.results.RunStore)."""
        return run_header(self.concept, self.ks, self.steps, self.sigmas, self.threshold, self.settings)

    @classmethod
    def from_header(cls, header: dict, seeds: Sequence[int] = (), scores=None) -> "CISResult":
        """The result of a run header and its seeds' scores (S, K); no seeds: an empty result."""
        scores = np.zeros((0, len(header["ks"]))) if scores is None else scores
        return cls(list(seeds), header["ks"], header["steps"], header["sigmas"], scores, header["threshold"],
                   str(header["concept"]), dict(header["settings"]))

    @classmethod
    def from_json(cls, data: dict) -> "CISResult":
        return cls(seeds=list(data["seeds"]), ks=list(data["ks"]), steps=int(data["steps"]),
                   sigmas=list(data["sigmas"]), scores=np.asarray(data["scores"], dtype=np.float64).reshape(
                       len(data["seeds"]), len(data["ks"])), threshold=float(data["threshold"]),
                   concept=data["concept"], settings=dict(data.get("settings", {})))

    def restrict(self, seeds: Sequence[int]) -> "CISResult":
        """The rows of the given seeds, in that order; ValueError naming the seeds this result lacks."""
        row = {s: i for i, s in enumerate(self.seeds)}
        missing = [s for s in seeds if s not in row]
        if missing:
            raise ValueError(f"seeds {missing[:10]}{' ...' if len(missing) > 10 else ''} are not in this result")
        return CISResult(list(seeds), list(self.ks), self.steps, list(self.sigmas),
                         self.scores[[row[s] for s in seeds]], self.threshold, self.concept, dict(self.settings))

    def select_seeds(self, mask: np.ndarray) -> "CISResult":
        mask = np.asarray(mask, dtype=bool)
        return CISResult([s for s, m in zip(self.seeds, mask) if m], list(self.ks), self.steps, list(self.sigmas),
                         self.scores[mask], self.threshold, self.concept, dict(self.settings))


def summarize(result: CISResult, levels: Sequence[float] = LEVELS, resamples: int = BOOTSTRAP_RESAMPLES,
              valid_seeds_only: bool = False, reading: str = DEFAULT_READING) -> dict:
    """The statistics of a run: per-k rows, crossings (read from `reading`) with bootstrap intervals,
    controls, warnings."""
    dropped = 0
    if valid_seeds_only:
        mask = valid_seed_mask(result.decisions, result.ks, result.steps)
        dropped = int((~mask).sum())
        result = result.select_seeds(mask)
    # rows in seed order: the bootstrap resamples row indices, so the same seeds in another order
    # (a resumed or merged run) must give the same intervals
    d = result.decisions[np.argsort(result.seeds, kind="stable")]
    n = d.shape[0]
    succ = d.sum(axis=0).astype(int)
    cis = succ / n if n else np.full(len(result.ks), np.nan)
    rows = [{"k": k, "tau": float(t), "sigma": float(result.sigmas[k]), "successes": int(s), "n": n,
             "cis": float(c), "low": wilson_interval(int(s), n)[0], "high": wilson_interval(int(s), n)[1]}
            for k, t, s, c in zip(result.ks, result.tau, succ, cis)]
    crossings = {}
    for level in levels:
        key = f"tau{round(level * 100)}"
        if n == 0:
            crossings[key] = {"level": level, "step": None, "tau": None, "step_ci": (None, None),
                              "tau_ci": (None, None), "never": 1.0}
            continue
        step_ci = bootstrap_crossing(d, result.ks, level, resamples, reading=reading)
        tau_ci = bootstrap_crossing(d, result.tau, level, resamples, reading=reading)
        crossings[key] = {"level": level, "step": first_crossing(result.ks, cis, level, reading),
                          "tau": first_crossing(result.tau, cis, level, reading),
                          "step_ci": (step_ci["low"], step_ci["high"]), "tau_ci": (tau_ci["low"], tau_ci["high"]),
                          "never": step_ci["never"]}
    controls = {"concept_only": float(cis[result.ks.index(0)]) if 0 in result.ks and n else None,
                "base_only": float(cis[result.ks.index(result.steps)]) if result.steps in result.ks and n else None}
    warnings = []
    if n == 0:
        warnings.append("no seed left to measure (the valid-seed filter dropped all of them)")
    if controls["concept_only"] is not None and controls["concept_only"] < 0.5:
        warnings.append(f"control k=0 (concept from the start) is {controls['concept_only']:.2f} < 0.5: the model "
                        "rarely draws the concept or the judge rarely sees it; the curve says little")
    for key, c in crossings.items():
        other = CLEAN_END if reading == NOISY_END else NOISY_END
        there = first_crossing(result.ks, cis, c["level"], other) if n else None
        if there != c["step"]:
            warnings.append(f"CIS falls through {c['level']:g} more than once: {key} is step {c['step']:.2f} read from "
                            f"the {reading} (used here), {there:.2f} from the {other}"
                            + (" (the official runner's reading)" if other == CLEAN_END else ""))
    if controls["base_only"] is not None and controls["base_only"] > 0.5:
        warnings.append(f"control k={result.steps} (base only) is {controls['base_only']:.2f} > 0.5: the judge "
                        "says yes without the concept (false positives); raise the threshold or change the judge text")
    return {"concept": result.concept, "n_seeds": n, "dropped_seeds": dropped, "rows": rows,
            "crossings": crossings, "controls": controls, "warnings": warnings, "steps": result.steps,
            "reading": reading}


def _fmt(x: float | None, digits: int = 2) -> str:
    return "never" if x is None else f"{x:.{digits}f}"


def crossing_text(c: dict, steps: int) -> str:
    """E.g. 'step 5.70 [4.90, 6.80] of 20, noise axis 0.237 [0.21, 0.27]' or 'never crosses'."""
    if c["step"] is None:
        return f"never crosses (in {c['never']:.0%} of resamples)"
    ci = lambda lo_hi, d: "[?]" if lo_hi[0] is None else f"[{lo_hi[0]:.{d}f}, {lo_hi[1]:.{d}f}]"
    return (f"step {c['step']:.2f} {ci(c['step_ci'], 2)} of {steps}, noise axis (ours) {c['tau']:.3f} "
            f"{ci(c['tau_ci'], 3)}")


def table(summary: dict) -> str:
    """A plain-text table of a summary (what the STRING output and cis.csv's readers see)."""
    lines = [f"CIS of {summary['concept']!r} over {summary['n_seeds']} seeds"
             + (f" ({summary['dropped_seeds']} dropped by the valid-seed filter)" if summary["dropped_seeds"] else ""),
             "    k    tau   sigma     CIS  95% interval   yes/n"]
    for r in summary["rows"]:
        lines.append(f"{r['k']:5d}  {r['tau']:5.3f}  {r['sigma']:6.3f}  {r['cis']:5.2f}  [{r['low']:.2f}, {r['high']:.2f}]"
                     f"   {r['successes']:3d}/{r['n']}")
    for key, c in summary["crossings"].items():
        lines.append(f"{key}: {crossing_text(c, summary['steps'])}")
    ctl = summary["controls"]
    lines.append(f"controls: k=0 (concept only) {_fmt(ctl['concept_only'])}, "
                 f"k={summary['steps']} (base only) {_fmt(ctl['base_only'])}")
    lines += [f"WARNING: {w}" for w in summary["warnings"]]
    return "\n".join(lines)


CSV_COLUMNS = ("k", "tau", "sigma", "successes", "n", "cis", "low", "high")


def csv_text(summary: dict) -> str:
    """cis.csv: one row per k with the statistics."""
    lines = [",".join(CSV_COLUMNS)]
    for r in summary["rows"]:
        lines.append(",".join(f"{r[c]:.6g}" if isinstance(r[c], float) else str(r[c]) for c in CSV_COLUMNS))
    return "\n".join(lines) + "\n"
