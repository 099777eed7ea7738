"""Editing with PCI: the rules that choose the step k at which the edit prompt takes over.

An edit is a concept insertion: denoise with the source prompt for steps 0..k-1 and with the edit
prompt from step k on (k = 0 regenerates with the edit prompt, k = T returns the source). Too early
and the whole image is regenerated, too late and the edit does not take. Four rules pick k:

- "tau" (level L, default 0.5): k = floor(tau_L), the last whole step at which CIS(k) has not yet
  fallen through L (CIS read along the measured curve, linear between measured steps, as
  cis.first_crossing). The paper reads the window where CIS is between 0.5 and 0.7 (tau70 <= k <=
  tau50) as the best balance; L = 0.5 picks the latest whole step inside that window (the one that
  keeps the most of the source), and when the window holds no whole step (a steep curve) the whole
  step just before it, where CIS > 0.7. A higher L trades preservation for edit success.
- "best score" (weight w): over candidate steps with measured mean edit success e(k) and mean
  preservation p(k), k = argmax w e(k) + (1 - w) p(k); ties go to the later step (more preserved).
- "fixed": the given k.
- "latest yes" (per seed, no helper seeds): the edit is made at every k for the image being edited
  itself (its own seed, or its inverted latents), the judge reads each result, and k = the largest
  step whose image shows the edit: the last step where the edit still takes, i.e. the one that keeps
  the most of the source. If no k shows it, k = 0 (regenerate) and the reason says the edit never took.
  The tau and best-score rules use one k for all seeds; this one fits k to the seed at hand.

The edit metrics (SSIM, PSNR, CLIP_img / CLIP_txt / CLIP_dir) are in pci_core.edit_metrics; what Best
Timestep Edit measures for a rule and how it words its explanation, in nodes/comfy_glue/edit_plan.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .cis import CISResult, cis_curve, first_crossing

RULES = ("tau", "best score", "fixed", "latest yes")
PAPER_WINDOW = (0.5, 0.7)  # CIS levels between which the paper's project page edits
DEFAULT_LEVEL = PAPER_WINDOW[0]
DEFAULT_WEIGHT = 0.5
JUDGE_THRESHOLD = 0.5  # a judge score at or above this reads as "the edit shows" (as a probe's CIS decisions)


@dataclass(frozen=True)
class StepChoice:
    """The chosen insertion step and a sentence saying which rule chose it and why."""
    k: int
    rule: str
    reason: str


# ---------------------------------------------------------------- checks

def check_step(k: int, steps: int, name: str = "fixed_k") -> int:
    if isinstance(k, bool) or not float(k).is_integer() or not 0 <= int(k) <= steps:
        raise ValueError(f"{name}={k}: must be a whole step in [0, {steps}] for {steps} steps "
                         f"(0 = regenerate with the edit prompt, {steps} = keep the source)")
    return int(k)


def check_fraction(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}={value!r}: must be a number in [0, 1]")
    return float(value)


def check_matching_run(result: CISResult, steps: int, sampler: str, scheduler: str,
                       sigmas: Sequence[float] | None = None) -> None:
    """A CIS result picks k for this edit only if it counted the same steps on the same schedule:
    raise ValueError naming what differs (the node does not recompute; wire a matching sweep)."""
    mine = {"steps": steps, "sampler": sampler, "scheduler": scheduler}
    theirs = {"steps": result.steps, "sampler": result.settings.get("sampler", result.settings.get("sampler_name")),
              "scheduler": result.settings.get("scheduler")}
    differ = [key for key in mine if theirs[key] is not None and theirs[key] != mine[key]]
    if not differ and sigmas is not None and len(sigmas) == len(result.sigmas):
        if not np.allclose(np.asarray(sigmas, dtype=np.float64), np.asarray(result.sigmas, dtype=np.float64),
                           rtol=1e-4, atol=1e-6):
            differ = ["sigmas"]
    if differ:
        run = ", ".join(f"{key}={theirs[key]}" for key in mine)
        node = ", ".join(f"{key}={mine[key]}" for key in mine)
        raise ValueError(f"cis_result was measured with {run} but this edit runs {node} (differs in "
                         f"{', '.join(differ)}): its step k would mean another noise level. Run the CIS sweep "
                         "with the same steps, sampler and scheduler, or disconnect cis_result and choose k "
                         "by a probe (connect a judge)")


# ---------------------------------------------------------------- rules

def choose_by_tau(result: CISResult, level: float = DEFAULT_LEVEL) -> StepChoice:
    """k = floor(tau_level): the last whole step where CIS has not yet fallen through the level."""
    level = check_fraction(level, "level")
    cis = cis_curve(result.decisions)
    ks = list(result.ks)
    curve = " ".join(f"{k}:{c:.2f}" for k, c in zip(ks, cis))
    if cis[0] < level:
        return StepChoice(ks[0], "tau", f"tau rule, level {level:.2f}: CIS is already {cis[0]:.2f} < {level:.2f} "
                          f"at the first measured step k={ks[0]} (the edit rarely takes even there), so "
                          f"k={ks[0]}. CIS(k) over {len(result.seeds)} seeds: {curve}")
    crossing = first_crossing(ks, cis, level)
    if crossing is None:
        return StepChoice(ks[-1], "tau", f"tau rule, level {level:.2f}: CIS never falls below {level:.2f} "
                          f"(the judge sees the edit even with the source prompt alone), so k={ks[-1]}. "
                          f"CIS(k) over {len(result.seeds)} seeds: {curve}")
    k = int(math.floor(crossing + 1e-9))
    window = {lv: first_crossing(ks, cis, lv) for lv in PAPER_WINDOW}
    place = ""
    if level == PAPER_WINDOW[0] and window[PAPER_WINDOW[1]] is not None:
        inside = k >= window[PAPER_WINDOW[1]] - 1e-9
        place = (f"; the paper's window CIS 0.5-0.7 is steps [{window[0.7]:.2f}, {window[0.5]:.2f}], "
                 + ("k is its latest whole step" if inside
                    else "which holds no whole step, so k is the one just before it"))
    return StepChoice(k, "tau", f"tau rule, level {level:.2f}: CIS falls through {level:.2f} at step "
                      f"{crossing:.2f}, so k = floor({crossing:.2f}) = {k}, the last whole step where the edit still "
                      f"takes on at least {level:.0%} of {len(result.seeds)} seeds{place}. CIS(k): {curve}")


def choose_by_score(ks: Sequence[int], edit_success: Sequence[float], preservation: Sequence[float],
                    weight: float = DEFAULT_WEIGHT) -> StepChoice:
    """k maximising weight * edit success + (1 - weight) * preservation; ties go to the later step."""
    weight = check_fraction(weight, "weight")
    e = np.asarray(edit_success, dtype=np.float64)
    p = np.asarray(preservation, dtype=np.float64)
    if not (len(ks) == len(e) == len(p)) or len(ks) == 0:
        raise ValueError(f"best score: {len(ks)} steps, {len(e)} edit-success and {len(p)} preservation values; "
                         "need one of each per candidate step (at least one)")
    if np.isnan(e).any() or np.isnan(p).any():
        raise ValueError("best score: edit success and preservation must be measured at every candidate step "
                         "(connect a judge so the node probes them)")
    score = weight * e + (1 - weight) * p
    best = np.flatnonzero(np.isclose(score, score.max(), rtol=0, atol=1e-12))[-1]
    k = int(ks[best])
    return StepChoice(k, "best score", f"best score rule, weight {weight:.2f}: {weight:.2f} x edit success + "
                      f"{1 - weight:.2f} x preservation is highest at k={k} (edit success {e[best]:.2f}, "
                      f"preservation {p[best]:.2f}, score {score[best]:.3f}); at k={ks[0]} it is {score[0]:.3f} "
                      f"and at k={ks[-1]} it is {score[-1]:.3f}")


def choose_fixed(k: int, steps: int) -> StepChoice:
    k = check_step(k, steps, "fixed_k")
    return StepChoice(k, "fixed", f"fixed rule: k={k} as set (of {steps} steps)")


def choose_latest_yes(ks: Sequence[int], decisions, what: str = "the image") -> StepChoice:
    """k = the largest candidate step whose edited image(s) the judge says show the edit (decisions (K,),
    or (B, K) for a batch: a step counts when every image shows it); none -> k = 0, saying so."""
    d = np.asarray(decisions, dtype=bool)
    d = d[None] if d.ndim == 1 else d
    if d.ndim != 2 or d.shape[1] != len(ks) or len(ks) == 0:
        raise ValueError(f"latest yes: {len(ks)} steps and decisions of shape {np.shape(decisions)}; need one "
                         "decision per candidate step (per image)")
    order = np.argsort(np.asarray(ks))
    ks_sorted, yes = [int(ks[i]) for i in order], d[:, order].all(axis=0)
    seen = " ".join(f"{k}:{'yes' if y else 'no'}" for k, y in zip(ks_sorted, yes))
    if not yes.any():
        return StepChoice(0, "latest yes", f"latest yes rule: the judge sees the edit on {what} at no step "
                          f"(the edit never took), so k=0 (regenerate with the edit prompt). Per step: {seen}")
    best = int(np.flatnonzero(yes)[-1])
    k = ks_sorted[best]
    after = (f", not at k={ks_sorted[best + 1]}" if best + 1 < len(ks_sorted) else
             " (the last step: the source already shows it)")
    return StepChoice(k, "latest yes", f"latest yes rule: k={k} is the latest step at which the judge sees the edit "
                      f"on {what}{after}; it keeps the most of the source. Per step: {seen}")


def choose_step(rule: str, steps: int, *, result: CISResult | None = None, level: float = DEFAULT_LEVEL,
                ks: Sequence[int] | None = None, edit_success: Sequence[float] | None = None,
                preservation: Sequence[float] | None = None, weight: float = DEFAULT_WEIGHT,
                fixed_k: int = 0, decisions=None, what: str = "the image") -> StepChoice:
    """One entry point for the rules; ValueError naming what a rule is missing."""
    if rule == "fixed":
        return choose_fixed(fixed_k, steps)
    if rule == "tau":
        if result is None:
            raise ValueError("rule 'tau' needs CIS measurements: connect cis_result (from a CIS sweep), or a judge "
                             "for a quick probe")
        return choose_by_tau(result, level)
    if rule == "best score":
        if edit_success is None or preservation is None or ks is None:
            raise ValueError("rule 'best score' needs edit success and preservation per step: connect a judge "
                             "(the node probes helper seeds with it)")
        return choose_by_score(ks, edit_success, preservation, weight)
    if rule == "latest yes":
        if decisions is None or ks is None:
            raise ValueError("rule 'latest yes' needs the judge's decision at every step for the image being edited: "
                             "connect a judge (the node makes the edit at every k and judges each)")
        return choose_latest_yes(ks, decisions, what)
    raise ValueError(f"rule {rule!r}: valid rules are {', '.join(RULES)}")


# ---------------------------------------------------------------- inversion

def inversion_sigmas(sigmas: torch.Tensor, k: int, sigma_min: float) -> torch.Tensor:
    """The schedule for inverting a clean latent to the noise level of step k: sigmas[k:] reversed,
    the final 0 replaced by sigma_min (the model's smallest trained noise level; ComfyUI's FlipSigmas
    puts 1e-4 there). A deterministic sampler (euler: the DDIM ODE) over it is the inversion; k = T
    gives one value, i.e. no step."""
    steps = len(sigmas) - 1
    check_step(k, steps, "insert step")
    up = sigmas[k:].flip(0).clone()
    if up[0] <= 0:
        up[0] = sigma_min
    return up


# ---------------------------------------------------------------- probes: per-k curves from helper seeds

def probe_curves(scores: np.ndarray, preservation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean edit success and mean preservation per candidate step from per-(seed, k) values (S, K)."""
    return np.asarray(scores, dtype=np.float64).mean(axis=0), np.asarray(preservation, dtype=np.float64).mean(axis=0)
