"""An independent reference of a switched run: the paper's plain loop, written without the engine.

Step i < k denoises with the base prompt and every later step with the concept, picked by the STEP
INDEX alone: no sigma boundary, no branching, no shared prefix, and its own sampler update code
(euler, euler_ancestral, dpmpp_2m). It uses only the model call (pipeline.cfg_denoise_with) and the
sigma schedule (pipeline.sigmas_for); nothing from pci_core.insertion or pci_core.samplers. Noise is
drawn per seed as ComfyUI draws it for a latent batch of one (the start noise, then the ancestral
stream from a fresh generator with the same seed).

What it is for: the engine (pci_core.insertion.sweep) must make the same decisions as this loop, and
its latents must equal this loop's bit for bit where both send the model the same batch layout (the
engine at max_batch=1 against this loop at batch 1; a sweep over one k against this loop with those
seeds in one batch). At other layouts CPU kernels round differently per batch size (one torch thread
most of all), so latents agree only to float noise (README "Exactness of the switch").
"""
from __future__ import annotations

from typing import Sequence

import torch

from . import pipeline

SAMPLERS = ("euler", "euler_ancestral", "dpmpp_2m")

# Largest latent difference the benchmark allows between the engine and this loop at different batch
# layouts (latents are of order 1, at most about 5.3 in absolute value). Float noise measured, base
# "a red circle", concept "a blue circle", 8 seeds x every k (the benchmark's run), max |diff| over all
# branches for euler / euler_ancestral / dpmpp_2m at one torch thread:
#   10 steps 4.9e-5 / 5.5e-5 / 1.5e-4;  20 steps 1.4e-5 / 1.4e-4 / 6.9e-5;
#   30 steps 3.0e-5 / 6.8e-4 / 3.6e-5;  50 steps 7.3e-5 / 9.2e-4 / 4.9e-4
# (the median branch differs by 2e-6 to 1e-5; the largest is one branch whose run amplifies it). At two
# threads: 0 (bit for bit) at 10 and 20 steps, every sampler (30 and 50 not measured). At the same batch
# layout: 0 at one and two threads. The tolerance is 5x the largest measured. Switching one step late
# moves the median branch by 0.16 or more and the largest by far more than the tolerance (the smallest
# single-branch move seen is 3.7e-3, 50 steps): a late switch is told by the run, not branch by branch.
LATENT_TOLERANCE = 5e-3


def _noise(generators, shape):
    return torch.cat([torch.randn((1, *shape), generator=g) for g in generators])


@torch.no_grad()
def reference_run(model, base: str, concept: str, seeds: Sequence[int], k: int,
                  settings: pipeline.SamplerSettings = pipeline.SamplerSettings(), negative: str = "",
                  denoise_with=None) -> torch.Tensor:
    """Final latents (len(seeds), 4, 8, 8) of the run that switches from base to concept at step k,
    all seeds in one batch (row i = seeds[i]; pass one seed for the paper's batch-1 run).
    denoise_with: a prepared pipeline.cfg_denoise_with for these prompts (saves re-encoding them)."""
    if settings.sampler not in SAMPLERS:
        raise ValueError(f"sampler {settings.sampler!r}: the reference loop knows {', '.join(SAMPLERS)}")
    sigmas = pipeline.sigmas_for(settings)
    steps = len(sigmas) - 1
    if not 0 <= k <= steps:
        raise ValueError(f"k={k}: must be in [0, {steps}]")
    if denoise_with is None:
        denoise_with = pipeline.cfg_denoise_with(model, base, concept, negative, settings.cfg)
    shape = pipeline.LATENT_SHAPE
    seeds = [int(s) for s in seeds]
    # A full denoise: the start noise is scaled to sqrt(1 + sigma_max^2), as ComfyUI's EPS noise_scaling does.
    x = _noise([torch.Generator().manual_seed(s) for s in seeds], shape) * (1.0 + float(sigmas[0]) ** 2) ** 0.5
    ancestral = [torch.Generator().manual_seed(s) for s in seeds]  # each seed's stream restarts from the seed
    ones = x.new_ones([len(seeds)])
    old_denoised = None
    for i in range(steps):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = denoise_with(x, sigma * ones, i >= k)  # the switch: by step index, nothing else
        if settings.sampler == "euler":
            x = x + (x - denoised) / sigma * (sigma_next - sigma)
        elif settings.sampler == "euler_ancestral":  # eta 1
            sigma_up = min(sigma_next, (sigma_next ** 2 * (sigma ** 2 - sigma_next ** 2) / sigma ** 2) ** 0.5)
            sigma_down = (sigma_next ** 2 - sigma_up ** 2) ** 0.5
            if sigma_down == 0:
                x = denoised
            else:
                x = x + (x - denoised) / sigma * (sigma_down - sigma)
                x = x + _noise(ancestral, shape) * sigma_up
        else:  # dpmpp_2m: second order from the previous step's denoised, first order on the first and last
            t, t_next = -sigma.log(), -sigma_next.log()
            h = t_next - t
            if old_denoised is not None and sigma_next != 0:
                r = (t - (-sigmas[i - 1].log())) / h
                denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            else:
                denoised_d = denoised
            x = ((-t_next).exp() / (-t).exp()) * x - (-h).expm1() * denoised_d
            old_denoised = denoised
    return x


@torch.no_grad()
def official_loop(model, base: str, concept: str, seeds: Sequence[int], ks: Sequence[int],
                  settings: pipeline.SamplerSettings = pipeline.SamplerSettings(), negative: str = "",
                  counter=None) -> torch.Tensor:
    """The paper's loop: for every seed and every k, a fresh batch-1 run of all steps. Latents
    (len(seeds), len(ks), 4, 8, 8). counter (insertion.EvalCounter or anything with add(n)) counts
    the conditioned rows sent to the model."""
    denoise_with = pipeline.cfg_denoise_with(model, base, concept, negative, settings.cfg)
    if counter is not None:
        inner = denoise_with

        def denoise_with(x, sigma, use_concept):
            counter.add(x.shape[0])
            return inner(x, sigma, use_concept)

    return torch.stack([torch.stack([reference_run(model, base, concept, [s], k, settings,
                                                   denoise_with=denoise_with)[0] for k in ks]) for s in seeds])
