"""PCI on the demo model standalone: every seed x every k, judged by the rule (exact pixel) judge."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .. import insertion, schedule
from ..cis import cis_curve, first_crossing, run_header
from . import demo_model, pipeline, world
from .rule_judge import RuleJudge


def default_judge_text(base: str, concept: str) -> str:
    """The judge text when none is given: the attributes the concept changes from the base, as words
    ("a red circle" -> "a blue circle" gives "a blue shape"); all of the concept's when it changes none.
    CIS has one definition: the rule judge sees every attribute its judge text names."""
    b, c = world.parse_prompt(base), world.parse_prompt(concept)
    if not c:
        raise ValueError(f"concept {concept!r} names no attribute of the demo world")
    changed = {a: v for a, v in c.items() if b.get(a) != v}
    return world.make_prompt(changed or c)


JUDGE_THRESHOLD = 0.5  # the rule judge scores 0 or 1


def demo_header(base: str, concept: str, judge_text: str, settings: pipeline.SamplerSettings,
                weights: str | None) -> dict:
    """What identifies a demo CIS run in its results folder (pci_core.results.RunStore): every k of
    the schedule, the sampler settings, prompts, judge and weights; the seeds are not part of it."""
    return run_header(judge_text, range(settings.steps + 1), settings.steps, pipeline.sigmas_for(settings).tolist(),
                      JUDGE_THRESHOLD, {"model": f"demo model ({weights or 'shipped weights'})",
                                        "sampler": settings.sampler, "scheduler": settings.scheduler,
                                        "cfg": settings.cfg, "base_prompt": base, "concept_prompt": concept,
                                        "negative_prompt": "", "judge": RuleJudge().describe(),
                                        "latent_size": list(pipeline.LATENT_SHAPE[1:])})


def demo_measure(model: demo_model.DemoModel, base: str, concept: str, judge_text: str,
                 settings: pipeline.SamplerSettings = pipeline.SamplerSettings(), max_batch: int | None = None,
                 counter: insertion.EvalCounter | None = None, keep_images=None):
    """pci_core.runner's measure(seeds, ks) -> scores (S, K) on the demo model: one branching run over the
    seeds and ks, decoded and judged by the rule judge on judge_text; keep_images(seeds, ks, images
    (S, K, 64, 64, 3) numpy) sees the pictures."""
    judge = RuleJudge()

    @torch.no_grad()
    def measure(seeds: list, ks: list) -> np.ndarray:
        latents = pipeline.insertion_latents(model, base, concept, seeds, ks, settings, max_batch=max_batch,
                                             counter=counter)
        images = model.decode(latents.reshape(-1, *latents.shape[2:]))
        if keep_images is not None:
            keep_images(seeds, ks, images.numpy().reshape(len(seeds), len(ks), *images.shape[1:]))
        return judge.score(images, judge_text).numpy().astype(np.float64).reshape(len(seeds), len(ks))

    return measure


def demo_sweep(model: demo_model.DemoModel, base: str, concept: str, seeds: Sequence[int],
               settings: pipeline.SamplerSettings = pipeline.SamplerSettings(), max_batch: int | None = None,
               judge_text: str | None = None) -> dict:
    """Every seed x every k on the demo model, judged by the rule judge on judge_text (default:
    default_judge_text): images, decisions, CIS, tau50."""
    ks = list(range(settings.steps + 1))
    judge_text = judge_text or default_judge_text(base, concept)
    kept = {}
    scores = demo_measure(model, base, concept, judge_text, settings, max_batch,
                          keep_images=lambda s, k, images: kept.update(images=images))(list(seeds), ks)
    decisions = scores >= JUDGE_THRESHOLD
    curve = cis_curve(decisions)
    tau_k = schedule.tau_from_sigmas(pipeline.sigmas_for(settings)).numpy()
    return {"ks": ks, "images": kept["images"], "decisions": decisions, "scores": scores, "cis": curve,
            "tau": tau_k, "judged": judge_text, "tau50_step": first_crossing(ks, curve),
            "tau50": first_crossing(tau_k, curve)}
