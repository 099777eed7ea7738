"""Concept Insertion Success: CIS(k) over seeds, and where it crosses a level (tau50)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from . import demo_model, pipeline, schedule, world


def cis_curve(decisions: np.ndarray) -> np.ndarray:
    """CIS(k): the fraction of seeds whose image shows the concept, from decisions (S, K)."""
    return np.asarray(decisions, dtype=np.float64).mean(axis=0)


def first_crossing(xs: Sequence[float], ys: Sequence[float], level: float = 0.5) -> float | None:
    """First x where ys falls through level, by linear interpolation between neighbouring points
    (the official code's first_crossing); None if it never does."""
    for i in range(len(ys) - 1):
        y0, y1 = ys[i], ys[i + 1]
        if y0 >= level > y1:
            return float(xs[i] + (y0 - level) / (y0 - y1) * (xs[i + 1] - xs[i]))
    return None


def concept_attributes(base: str, concept: str) -> dict[str, str]:
    """What the rule judge looks for: the concept's attributes that the base does not already name
    with the same value (all of the concept's when they name the same)."""
    b, c = world.parse_prompt(base), world.parse_prompt(concept)
    if not c:
        raise ValueError(f"concept {concept!r} names no attribute of the demo world")
    changed = {a: v for a, v in c.items() if b.get(a) != v}
    return changed or c


@torch.no_grad()
def demo_sweep(model: demo_model.DemoModel, base: str, concept: str, seeds: Sequence[int],
               settings: pipeline.SamplerSettings = pipeline.SamplerSettings(), max_batch: int | None = None) -> dict:
    """Every seed x every k on the demo model, judged by the pixel judge: images, decisions, CIS, tau50."""
    ks = list(range(settings.steps + 1))
    latents = pipeline.insertion_latents(model, base, concept, seeds, ks, settings, max_batch=max_batch)
    images = model.decode(latents.reshape(-1, *latents.shape[2:])).numpy()
    wanted = concept_attributes(base, concept)
    decisions = world.judge_batch(images, wanted).reshape(len(seeds), len(ks))
    curve = cis_curve(decisions)
    tau = schedule.tau_from_sigmas(pipeline.sigmas_for(settings)).numpy()
    tau_k = np.append(tau, 1.0)  # k = T: base only, the clean end of the noise axis
    return {"ks": ks, "images": images.reshape(len(seeds), len(ks), *images.shape[1:]), "decisions": decisions,
            "cis": curve, "tau": tau_k, "judged": wanted,
            "tau50_step": first_crossing(ks, curve), "tau50": first_crossing(tau_k, curve)}
