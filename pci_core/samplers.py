"""Standalone k-diffusion samplers (same update rules as ComfyUI's comfy/k_diffusion/sampling.py).

A sampler takes `denoise(x, sigma) -> x0`, a starting x (already scaled by sigmas[0]) and the
sigma schedule, and returns the final x. `callback(i, x, denoised)` sees every step.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
NoiseSampler = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def seeded_noise(seeds: Sequence[int], shape: Sequence[int], repeats: int = 1) -> NoiseSampler:
    """Noise drawn per seed from its own generator and repeated `repeats` times per seed (rows
    seed-major). For one seed this is the stream ComfyUI's default_noise_sampler draws for a
    batch-1 run with that seed, so branches of a seed see exactly the noise of its own run."""
    generators = [torch.Generator().manual_seed(int(s)) for s in seeds]

    def draw(sigma, sigma_next):
        rows = [torch.randn((1, *shape), generator=g) for g in generators]
        return torch.cat(rows).repeat_interleave(repeats, dim=0)

    return draw


def initial_noise(seed: int, shape: Sequence[int]) -> torch.Tensor:
    """Starting noise for a seed, as ComfyUI's prepare_noise draws it for a latent batch of one."""
    return torch.randn((1, *shape), generator=torch.Generator().manual_seed(int(seed)))


def _to_d(x, sigma, denoised):
    return (x - denoised) / sigma


def _ancestral_step(sigma_from, sigma_to, eta=1.0):
    if not eta:
        return sigma_to, 0.0
    sigma_up = min(sigma_to, eta * (sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2) / sigma_from ** 2) ** 0.5)
    return (sigma_to ** 2 - sigma_up ** 2) ** 0.5, sigma_up


@torch.no_grad()
def sample_euler(denoise: Denoiser, x, sigmas, callback=None, noise_sampler=None):
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = denoise(x, sigmas[i] * s_in)
        if callback is not None:
            callback(i, x, denoised)
        x = x + _to_d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
    return x


@torch.no_grad()
def sample_euler_ancestral(denoise: Denoiser, x, sigmas, callback=None, noise_sampler: NoiseSampler | None = None,
                           eta: float = 1.0):
    if noise_sampler is None:
        raise ValueError("euler_ancestral needs a noise_sampler (see seeded_noise)")
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = denoise(x, sigmas[i] * s_in)
        sigma_down, sigma_up = _ancestral_step(sigmas[i], sigmas[i + 1], eta)
        if callback is not None:
            callback(i, x, denoised)
        if sigma_down == 0:
            x = denoised
        else:
            x = x + _to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * sigma_up
    return x


@torch.no_grad()
def sample_dpmpp_2m(denoise: Denoiser, x, sigmas, callback=None, noise_sampler=None):
    s_in = x.new_ones([x.shape[0]])
    t_fn = lambda sigma: sigma.log().neg()
    sigma_fn = lambda t: t.neg().exp()
    old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = denoise(x, sigmas[i] * s_in)
        if callback is not None:
            callback(i, x, denoised)
        t, t_next = t_fn(sigmas[i]), t_fn(sigmas[i + 1])
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            x = (sigma_fn(t_next) / sigma_fn(t)) * x - (-h).expm1() * denoised
        else:
            r = (t - t_fn(sigmas[i - 1])) / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (sigma_fn(t_next) / sigma_fn(t)) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x


SAMPLERS = {"euler": sample_euler, "euler_ancestral": sample_euler_ancestral, "dpmpp_2m": sample_dpmpp_2m}


def get_sampler(name: str):
    if name not in SAMPLERS:
        raise ValueError(f"sampler {name!r}: valid samplers are {sorted(SAMPLERS)}")
    return SAMPLERS[name]
