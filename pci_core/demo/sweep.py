"""PCI on the demo model standalone: every seed x every k, judged by the exact pixel judge."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .. import schedule
from ..cis import cis_curve, first_crossing
from . import demo_model, pipeline, world


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
    tau_k = schedule.tau_from_sigmas(pipeline.sigmas_for(settings)).numpy()
    return {"ks": ks, "images": images.reshape(len(seeds), len(ks), *images.shape[1:]), "decisions": decisions,
            "cis": curve, "tau": tau_k, "judged": wanted,
            "tau50_step": first_crossing(ks, curve), "tau50": first_crossing(tau_k, curve)}
