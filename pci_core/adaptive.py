"""The adaptive lock-in search: tau50 without sweeping every k.

A coarse k grid (always k = 0 and k = T), then probes between the measured ks that bracket the 0.5
crossing, nearest the interpolated crossing first, as many per round as the evaluation budget allows
(one branching run per round, so a round's ks share their base prefix), until the bracket is one step
wide or the budget is spent. Host-free (numpy only); pci_core.runner.adaptive_run keeps its files.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from . import cis

# decide(ks) -> decisions (S, len(ks)): one branching run over every seed and the given ks, judged
# (pci_core.runner's measure(seeds, ks) -> scores, thresholded).
Decide = Callable[[list], np.ndarray]


def branch_cost(ks: Sequence[int], steps: int) -> int:
    """Model evaluations per seed of one branching run over ks (insertion.sweep, shared prefix):
    the base trunk up to the largest k, and steps - k concept steps per branch."""
    ks = sorted(set(ks))
    return (max(ks) + sum(steps - k for k in ks)) if ks else 0


def coarse_grid(steps: int, stride: int) -> list[int]:
    if stride < 1:
        raise ValueError(f"stride={stride}: must be at least 1")
    return sorted(set(range(0, steps, stride)) | {steps})


def default_stride(steps: int) -> int:
    """A third of the steps: k = 0, T/3, 2T/3, T costs about a quarter of the full sweep's evaluations,
    which leaves room for refinement within a third of them (tuned in bench/adaptive.py)."""
    return max(1, math.ceil(steps / 3))


def crossing_brackets(ks: Sequence[int], curve: Sequence[float], level: float = 0.5) -> list[tuple[int, int]]:
    """Neighbouring measured (k_i, k_i+1) where CIS falls through level, in order; more than one means
    the measured curve is not monotone."""
    return [(ks[i], ks[i + 1]) for i in range(len(ks) - 1) if curve[i] >= level > curve[i + 1]]


def refinement_order(a: int, b: int, ya: float, yb: float, level: float = 0.5) -> list[int]:
    """The ks strictly between a bracket's ends, nearest the linearly interpolated crossing first
    (the two ks around it first: they bracket the crossing exactly when the curve is linear there)."""
    estimate = a + (ya - level) / (ya - yb) * (b - a)
    return sorted(range(a + 1, b), key=lambda k: (abs(k - estimate), k))


@dataclass
class AdaptiveSearch:
    """What the adaptive search measured: ks (sorted) and their decisions (S, K), the tau50 estimate
    (first_crossing over the measured ks; None = never crosses), the ks of each round, and the
    planned evaluations per seed (branch_cost summed over rounds)."""
    ks: list[int]
    decisions: np.ndarray
    tau50: float | None
    rounds: list[list[int]] = field(default_factory=list)
    evaluations_per_seed: int = 0
    brackets: list[tuple[int, int]] = field(default_factory=list)  # crossings of the final measured curve
    stopped: str = ""  # why the refinement stopped

    @property
    def curve(self) -> np.ndarray:
        return cis.cis_curve(self.decisions)


DEFAULT_BUDGET = 0.35  # of the full sweep's evaluations (bench/adaptive.py: tau50 within one step)


def adaptive_search(decide: Decide, steps: int, stride: int | None = None, budget: float = DEFAULT_BUDGET,
                    level: float = 0.5, reading: str = cis.DEFAULT_READING) -> AdaptiveSearch:
    """tau50 from a coarse k grid and refinement rounds around the crossing it is read at.

    Round 1 measures coarse_grid(steps, stride) (k = 0 and k = steps always). Each later round takes
    the bracket of the crossing tau50 is read at (neighbouring measured ks where CIS falls through the
    level: the last one from the clean end, the default; the first from the noisy end) and measures the ks
    inside it, nearest the interpolated crossing first, as many as fit the budget (a fraction of the
    full sweep's evaluations, branch_cost over k = 0..steps; at least one k per round, or the search
    stops). It stops when the bracket is one step wide (tau50 is then what the full sweep would
    interpolate there), when no bracket is left, or when the budget is spent. A non-monotone curve:
    tau50 is read on the measured curve; a dip between two coarse ks on the same side of the level is
    not seen, and only the bracket read is refined (brackets lists all of them).
    """
    if steps < 1:
        raise ValueError(f"steps={steps}: must be at least 1")
    if not 0 < budget:
        raise ValueError(f"budget={budget}: a positive fraction of the full sweep's evaluations")
    limit = budget * branch_cost(range(steps + 1), steps)
    columns: dict[int, np.ndarray] = {}
    rounds: list[list[int]] = []
    ks = coarse_grid(steps, stride or default_stride(steps))
    while ks:
        _measure_round(decide, ks, columns)
        rounds.append(list(ks))
        spent = sum(branch_cost(r, steps) for r in rounds)
        ks, stopped = next_round(columns, spent, limit, steps, budget, level, reading)
    ks = sorted(columns)
    decisions = np.stack([columns[k] for k in ks], axis=1)
    curve = decisions.mean(axis=0)
    return AdaptiveSearch(ks, decisions, cis.first_crossing(ks, curve, level, reading), rounds, spent,
                          crossing_brackets(ks, list(curve), level), stopped)


def _measure_round(decide: Decide, ks: list[int], columns: dict[int, np.ndarray]) -> None:
    """One round's decisions into columns (k -> decisions of every seed), checked."""
    decisions = np.asarray(decide(list(ks)), dtype=bool)
    if decisions.ndim != 2 or decisions.shape[1] != len(ks):
        raise ValueError(f"decide({ks}) returned shape {decisions.shape}; expected (seeds, {len(ks)})")
    if columns and decisions.shape[0] != next(iter(columns.values())).shape[0]:
        raise ValueError("decide returned a different number of seeds than in the first round")
    columns.update({k: decisions[:, i] for i, k in enumerate(ks)})


def next_round(columns: dict[int, np.ndarray], spent: int, limit: float, steps: int, budget: float, level: float,
               reading: str) -> tuple[list[int], str]:
    """The ks of the next refinement round, or ([], why the search stops)."""
    ks = sorted(columns)
    curve = [float(columns[k].mean()) for k in ks]
    brackets = crossing_brackets(ks, curve, level)
    if not brackets:
        return [], "CIS never falls through the level at the measured ks"
    a, b = brackets[-1 if reading == cis.CLEAN_END else 0]  # the crossing tau50 is read at
    if b - a <= 1:
        return [], "the first crossing is bracketed by neighbouring steps"
    chosen: list[int] = []
    for k in refinement_order(a, b, curve[ks.index(a)], curve[ks.index(b)], level):
        if spent + branch_cost(chosen + [k], steps) > limit:
            break
        chosen.append(k)
    if not chosen:
        return [], f"budget: the next round would pass {budget:.0%} of the full sweep's evaluations"
    return sorted(chosen), ""
