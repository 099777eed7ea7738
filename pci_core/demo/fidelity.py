"""How faithfully the demo model renders prompts, read back by the exact pixel judge."""
from __future__ import annotations

import numpy as np
import torch

from . import demo_model, pipeline, world


@torch.no_grad()
def measure(model: demo_model.DemoModel, samples: int = 200, seed: int = 1234,
            settings: pipeline.SamplerSettings = pipeline.SamplerSettings(), batch: int = 50) -> dict[str, float]:
    """Fraction of samples whose attribute the judge reads back, per attribute and for all five at
    once; every prompt names all five attributes, sampled uniformly."""
    rng = np.random.default_rng(seed)
    attrs = [world.sample_attributes(rng) for _ in range(samples)]
    hits = {a: [] for a in world.ATTRIBUTES}
    hits["all"] = []
    for i, a in enumerate(attrs):
        images = pipeline.generate(model, world.make_prompt(a), [seed + i], settings)
        read = world.read_attributes(images[0].numpy())
        ok = [read[k] == a[k] for k in world.ATTRIBUTES]
        for k, good in zip(world.ATTRIBUTES, ok):
            hits[k].append(good)
        hits["all"].append(all(ok))
    return {k: float(np.mean(v)) for k, v in hits.items()}


def table(scores: dict[str, float]) -> str:
    head = "| " + " | ".join(scores) + " |"
    rule = "|" + "---|" * len(scores)
    return "\n".join([head, rule, "| " + " | ".join(f"{v:.1%}" for v in scores.values()) + " |"])
