"""The standalone sampling pieces the demo edits are made of: finish a latent from a noise level, DDIM-style
inversion, img2img (KSampler with denoise < 1), and the two prompt denoisers (source, edit)."""
from __future__ import annotations

import torch

from .. import edit_rules, samplers, schedule
from . import pipeline

IMG2IMG_NOISE_SEED = 10**6  # img2img's fresh noise: seed + this (a new draw, not the source's noise)


def denoise_from(denoise, x: torch.Tensor, sigmas: torch.Tensor, settings, seeds) -> torch.Tensor:
    """Finish a latent x at sigmas[0] over sigmas (no noise added), with the settings' sampler."""
    if len(sigmas) < 2:
        return x
    sampler = samplers.get_sampler(settings.sampler)
    return sampler(denoise, x, sigmas, noise_sampler=samplers.seeded_noise(seeds, x.shape[1:]))


def invert(denoise, latents: torch.Tensor, sigmas: torch.Tensor) -> list[torch.Tensor]:
    """Euler (DDIM-style ODE) inversion over the flipped schedule: the latent at every sigmas[k],
    k = T..0 (index k of the returned list is the latent at the noise level of step k)."""
    up = edit_rules.inversion_sigmas(sigmas, 0, float(schedule.discrete_sigmas()[0]))
    at = {len(sigmas) - 1: latents}
    x = latents
    for i in range(len(up) - 1):  # one euler step at a time, keeping each level
        x = samplers.sample_euler(denoise, x, up[i:i + 2])
        at[len(sigmas) - 2 - i] = x
    return [at[k] for k in range(len(sigmas))]


def img2img(denoise, source_latents: torch.Tensor, k: int, sigmas: torch.Tensor, settings, seeds) -> torch.Tensor:
    """KSampler with denoise < 1: the source latent plus fresh noise at sigma_k, denoised over sigmas[k:]."""
    noise = torch.cat([samplers.initial_noise(s + IMG2IMG_NOISE_SEED, source_latents.shape[1:]) for s in seeds])
    x = source_latents + noise * sigmas[k]
    return denoise_from(denoise, x, sigmas[k:], settings, [s + IMG2IMG_NOISE_SEED for s in seeds])


def prompt_denoisers(model, source: str, edit: str, settings, negative: str, cfg: float | None = None):
    """(denoise with the source prompt, denoise with the edit prompt), CFG as the pipeline does."""
    dw = pipeline.cfg_denoise_with(model, source, edit, negative, settings.cfg if cfg is None else cfg)
    return (lambda x, s: dw(x, s, False)), (lambda x, s: dw(x, s, True))
