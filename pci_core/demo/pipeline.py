"""Run the demo model standalone: eps denoiser with CFG, text-to-image, concept-insertion sweeps."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .. import insertion, schedule
from . import demo_model

LATENT_SHAPE = (4, 8, 8)


@dataclass(frozen=True)
class SamplerSettings:
    steps: int = 20
    cfg: float = 4.0
    sampler: str = "euler"
    scheduler: str = "normal"


def eps_denoiser(unet: torch.nn.Module, sigma_table: torch.Tensor):
    """k-diffusion denoiser of an eps-prediction UNet on a discrete schedule (as ComfyUI's EPS +
    ModelSamplingDiscrete): x0 = x - sigma * eps(x / sqrt(sigma^2 + 1), t(sigma), context)."""

    def denoise(x: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        s = sigma.reshape(-1, 1, 1, 1)
        t = schedule.timestep_of(sigma.reshape(-1), sigma_table).float()
        eps = unet(x / (s ** 2 + 1.0) ** 0.5, t, context)
        return x - eps * s

    return denoise


def cfg_denoise_with(model: demo_model.DemoModel, base: str, concept: str, negative: str, cfg: float):
    """denoise_with(x, sigma, use_concept) for the branching engine: CFG over the base or concept
    prompt against the negative prompt (cond and uncond in one batch, as ComfyUI batches them)."""
    table = schedule.discrete_sigmas()
    denoise = eps_denoiser(model.unet, table)
    ctx_base, ctx_concept, ctx_neg = model.encode_prompts([base, concept, negative]).split(1)

    def denoise_with(x: torch.Tensor, sigma: torch.Tensor, use_concept: bool) -> torch.Tensor:
        cond = (ctx_concept if use_concept else ctx_base).expand(x.shape[0], -1, -1)
        if cfg == 1.0:  # ComfyUI skips the uncond pass at cfg 1
            return denoise(x, sigma, cond)
        n = x.shape[0]
        both = denoise(torch.cat([x, x]), torch.cat([sigma, sigma]), torch.cat([cond, ctx_neg.expand(n, -1, -1)]))
        pos, neg = both[:n], both[n:]
        return neg + (pos - neg) * cfg

    return denoise_with


def sigmas_for(settings: SamplerSettings) -> torch.Tensor:
    return schedule.make_schedule(settings.scheduler, schedule.discrete_sigmas(), settings.steps)


@torch.no_grad()
def insertion_latents(model: demo_model.DemoModel, base: str, concept: str, seeds: Sequence[int],
                      insert_steps: Sequence[int], settings: SamplerSettings = SamplerSettings(),
                      negative: str = "", max_batch: int | None = None,
                      counter: insertion.EvalCounter | None = None, callback=None) -> torch.Tensor:
    """Latents (S, K, 4, 8, 8): base prompt for steps < k, concept prompt from step k on."""
    denoise_with = cfg_denoise_with(model, base, concept, negative, settings.cfg)
    sigma_max = float(schedule.discrete_sigmas()[-1])
    return insertion.sweep(denoise_with, seeds, insert_steps, sigmas_for(settings), settings.sampler,
                           LATENT_SHAPE, sigma_max, max_batch, counter, callback)


@torch.no_grad()
def generate(model: demo_model.DemoModel, prompt: str, seeds: Sequence[int],
             settings: SamplerSettings = SamplerSettings(), negative: str = "") -> torch.Tensor:
    """Images (S, 64, 64, 3) in [0, 1] for one prompt and several seeds; each row equals that seed's own run."""
    latents = insertion_latents(model, prompt, prompt, seeds, [settings.steps], settings, negative)
    return model.decode(latents[:, 0])
