"""What a sampling run of the pack needs, as one object, and the checks and choices every run shares:
the sigmas KSampler would use, the conditionings, and rows per model call."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

import comfy.model_management
import comfy.samplers

from ...pci_core.sweep_plan import check_max_batch
from . import internals


@dataclass(frozen=True)
class Sampling:
    """Everything a run needs besides its prompts, seeds and latent. max_batch: rows per model call
    (and decode / judge batch); 0 = the device policy (for_latent resolves it)."""
    model: Any          # a ModelPatcher (MODEL)
    negative: list      # CONDITIONING used at every step
    steps: int
    cfg: float
    sampler_name: str
    scheduler: str
    max_batch: int = 0

    def sigmas(self, denoise: float = 1.0) -> torch.Tensor:
        """The exact sigmas KSampler would use (denoise and penultimate-sigma rules included), on the CPU."""
        ks = comfy.samplers.KSampler(self.model, steps=self.steps, device=self.model.load_device,
                                     sampler=self.sampler_name, scheduler=self.scheduler, denoise=denoise,
                                     model_options=self.model.model_options)
        return ks.sigmas.cpu()

    def step_sigmas(self) -> list[float]:
        """steps + 1 sigmas for the noise axis: where a scheduler runs an extra step (ddim_uniform) the last
        one (base only) stands for k = steps, as the sweep's boundaries do."""
        values = [float(s) for s in self.sigmas()]
        return values if len(values) == self.steps + 1 else values[:self.steps] + values[-1:]

    def for_latent(self, latent: dict) -> "Sampling":
        """This run with max_batch resolved for the latent's size (0: the device policy)."""
        rows = check_max_batch(self.max_batch, auto=True) or max_batch_for_device(self.model, latent["samples"].shape[1:])
        return dataclasses.replace(self, max_batch=rows)


# ---------------------------------------------------------------- checks

def check_conditionings(**conds) -> None:
    """Each conditioning non-empty, and all of one text width (the same text encoder made them)."""
    widths = {}
    for name, cond in conds.items():
        if not cond:
            raise ValueError(f"{name} conditioning is empty: connect a CLIPTextEncode (or other conditioning) output")
        widths[name] = {tuple(c[0].shape[2:]) for c in cond}
    if len({w for ws in widths.values() for w in ws}) > 1:
        raise ValueError(f"{', '.join(conds)} conditioning come from different text encoders "
                         f"(token widths {widths}); encode them all with the same CLIP")


# ---------------------------------------------------------------- device policy
# Rows per model call in a branching run. Throughput grows with the batch until the device is busy
# (issue 9's measurement on an H100, SD1.5 fp16 512 px: 32 and 64 rows equally fast, unbounded
# batches 2x slower, as every step brings a new batch shape), so: the largest power of two up to
# MAX_BATCH_CAP whose cond + uncond batch fits in half of the memory free after the model is
# loaded (ComfyUI's own per-model estimate, BaseModel.memory_required). Powers of two keep the
# chunk shapes few and steady.
MAX_BATCH_CAP = 64


def max_batch_for_device(model_patcher, latent_shape) -> int:
    """Default max_batch for a sweep of latents of `latent_shape` (C, h, w) on this model's device."""
    free = internals.free_memory(model_patcher)
    unloaded = model_patcher.model_size() - model_patcher.loaded_size()  # weights still to come onto the device
    budget = 0.5 * (free - unloaded)
    rows = MAX_BATCH_CAP
    while rows > 1 and model_patcher.model.memory_required([2 * rows, *latent_shape]) > budget:
        rows //= 2
    return rows
