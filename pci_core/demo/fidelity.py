"""How faithfully the demo model renders prompts, read back by the exact pixel judge."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .. import insertion, samplers, schedule
from . import demo_model, pipeline, world


@torch.no_grad()
def latents_each(model: demo_model.DemoModel, prompts: Sequence[str], seeds: Sequence[int],
                 settings: pipeline.SamplerSettings = pipeline.SamplerSettings()) -> torch.Tensor:
    """Latents (B, 4, 8, 8): prompt i with seed i, all rows in one sampler run; row i is bit-identical
    to the latent of pipeline.generate(model, prompts[i], [seeds[i]]) (same text contexts, same
    per-seed noise, and the demo UNet's rows do not depend on the batch)."""
    denoise = pipeline.eps_denoiser(model.unet, schedule.discrete_sigmas())
    contexts = [model.encode_prompts([p, p, ""]) for p in prompts]  # as generate encodes them
    cond = torch.cat([c[:1] for c in contexts])
    uncond = torch.cat([c[2:] for c in contexts])

    def cfg_denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if settings.cfg == 1.0:
            return denoise(x, sigma, cond)
        n = x.shape[0]
        both = denoise(torch.cat([x, x]), torch.cat([sigma, sigma]), torch.cat([cond, uncond]))
        return both[n:] + (both[:n] - both[n:]) * settings.cfg

    sigmas = pipeline.sigmas_for(settings)
    noise = torch.cat([samplers.initial_noise(s, pipeline.LATENT_SHAPE) for s in seeds])
    x = insertion.start_x(noise, sigmas, float(schedule.discrete_sigmas()[-1]))
    latents = samplers.get_sampler(settings.sampler)(cfg_denoise, x, sigmas,
                                                     noise_sampler=samplers.seeded_noise(seeds, pipeline.LATENT_SHAPE))
    return latents


@torch.no_grad()
def measure(model: demo_model.DemoModel, samples: int = 200, seed: int = 1234,
            settings: pipeline.SamplerSettings = pipeline.SamplerSettings(), batch: int = 50) -> dict[str, float]:
    """Fraction of samples whose attribute the judge reads back, per attribute and for all five at
    once; every prompt names all five attributes, sampled uniformly; sample i uses seed + i and is
    generated `batch` samples per sampler run."""
    if batch < 1:
        raise ValueError(f"batch={batch}: must be at least 1")
    rng = np.random.default_rng(seed)
    attrs = [world.sample_attributes(rng) for _ in range(samples)]
    hits = {a: [] for a in world.ATTRIBUTES}
    hits["all"] = []
    for start in range(0, samples, batch):
        chunk = attrs[start:start + batch]
        latents = latents_each(model, [world.make_prompt(a) for a in chunk],
                               [seed + start + i for i in range(len(chunk))], settings)
        images = model.decode(latents)
        for image, a in zip(images.numpy(), chunk):
            read = world.read_attributes(image)
            ok = [read[k] == a[k] for k in world.ATTRIBUTES]
            for k, good in zip(world.ATTRIBUTES, ok):
                hits[k].append(good)
            hits["all"].append(all(ok))
    return {k: float(np.mean(v)) for k, v in hits.items()}


def table(scores: dict[str, float]) -> str:
    head = "| " + " | ".join(scores) + " |"
    rule = "|" + "---|" * len(scores)
    return "\n".join([head, rule, "| " + " | ".join(f"{v:.1%}" for v in scores.values()) + " |"])
