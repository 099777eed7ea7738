"""Concept insertion: switch the conditioning from base to concept at step k, and the branching
denoiser that runs many (seed, k) branches in one sampler call, evaluating each distinct row once.

The switch rule: an evaluation at sigma uses the concept when sigma < boundary(k), with the
boundary strictly between sigmas[k] and sigmas[k-1] (schedule.insertion_boundary: a tenth of the
way up in log sigma). Steps 0..k-1 see the base, steps k.. the concept; a sampler's mid-step
evaluations inside step k-1 (heun's corrector at sigmas[k] excepted) see the base.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from . import samplers, schedule
from .sweep_plan import check_max_batch

# denoise_with(x, sigma_per_row, use_concept) -> x0 for a sub-batch whose rows share one conditioning.
DenoiseWith = Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]


@dataclass
class EvalCounter:
    """Rows passed to the model (one row = one conditioned evaluation, before CFG doubling)."""
    rows: int = 0
    per_call: list[int] = field(default_factory=list)

    def add(self, n: int) -> None:
        self.rows += n
        self.per_call.append(n)


def resolve_insert_step(insert_step: float, steps: int) -> int:
    """An insertion step from an int step in [0, steps] or a fraction of steps in [0, 1); ValueError naming
    insert_step for anything else (an API prompt can send null, a string or NaN)."""
    if isinstance(insert_step, bool) or not isinstance(insert_step, numbers.Real) or not math.isfinite(insert_step):
        raise ValueError(f"insert_step={insert_step!r}: expected a number, a step in [0, steps] "
                         f"(0 = concept from the start, steps = base only) or a fraction of the steps in (0, 1)")
    if steps < 1:
        raise ValueError(f"steps={steps}: must be at least 1")
    if isinstance(insert_step, float) and not float(insert_step).is_integer():
        if not 0.0 <= insert_step <= 1.0:
            raise ValueError(f"insert_step={insert_step}: a fraction must be in [0, 1], a step in [0, {steps}]")
        return int(round(insert_step * steps))
    k = int(insert_step)
    if not 0 <= k <= steps:
        raise ValueError(f"insert_step={k}: must be in [0, {steps}] for {steps} steps (0 = concept from the start, "
                         f"{steps} = base only), or a fraction in [0, 1]")
    return k


def branching_denoiser(denoise_with: DenoiseWith, boundaries: torch.Tensor, lineage: torch.Tensor,
                       max_batch: int | None = None, counter: EvalCounter | None = None):
    """A denoiser over rows that may switch conditioning at their own boundary.

    Rows with the same lineage hold bit-identical x (same seed, same noise, same conditioning so
    far); each call evaluates one representative per (lineage, conditioning) and broadcasts it, so
    a branch that has not switched yet costs nothing beyond its seed's trunk. Distinct rows go to
    the model in chunks of at most max_batch rows (memory stays flat as branches grow).

    Which rows use the concept is decided on the host in float64 (boundaries and lineage stay on
    the CPU): exact on every device, MPS (no float64) included, at one tiny device-to-host copy of
    the sigmas per call. Only row indices travel to x's device; sigma reaches the model unchanged.
    """
    if max_batch is not None:
        check_max_batch(max_batch)
    boundaries = boundaries.detach().to("cpu", torch.float64)
    state = {"lineage": lineage.detach().to("cpu", torch.long).clone()}

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        sigma_rows = sigma.reshape(-1).expand(n)
        use_concept = sigma_rows.detach().to("cpu", torch.float64) < boundaries
        keys = state["lineage"] * 2 + use_concept.long()
        unique_keys, inverse = torch.unique(keys, return_inverse=True)
        # First row of each key is its representative.
        first = torch.full((len(unique_keys),), n, dtype=torch.long, device="cpu")
        first.scatter_reduce_(0, inverse, torch.arange(n, device="cpu"), reduce="amin")
        out = torch.empty((len(unique_keys), *x.shape[1:]), dtype=x.dtype, device=x.device)
        concept_of_key = (unique_keys % 2).bool()
        for flag in (False, True):
            idx = torch.nonzero(concept_of_key == flag).flatten()
            if len(idx) == 0:
                continue
            for chunk in idx.split(max_batch or len(idx)):
                rows = first[chunk].to(x.device)
                if counter is not None:
                    counter.add(len(rows))
                out[chunk.to(x.device)] = denoise_with(x[rows], sigma_rows[rows], flag)
        state["lineage"] = inverse
        return out[inverse.to(x.device)]

    return denoise


def start_x(noise: torch.Tensor, sigmas: torch.Tensor, sigma_max: float) -> torch.Tensor:
    """Scale unit noise to the first sigma; at the model's sigma_max use sqrt(1 + sigma^2) as
    ComfyUI's EPS noise_scaling does for a full denoise."""
    s0 = float(sigmas[0])
    full = abs(s0 - sigma_max) <= 1e-5 * sigma_max or s0 > sigma_max
    return noise * ((1.0 + s0 ** 2) ** 0.5 if full else s0)


def sweep(denoise_with: DenoiseWith, seeds: Sequence[int], insert_steps: Sequence[int], sigmas: torch.Tensor,
          sampler: str, shape: Sequence[int], sigma_max: float, max_batch: int | None = None,
          counter: EvalCounter | None = None, callback=None) -> torch.Tensor:
    """Final latents (S, K, *shape) for every seed and insertion step, in one sampler run."""
    steps = len(sigmas) - 1
    ks = [resolve_insert_step(k, steps) for k in insert_steps]
    S, K = len(seeds), len(ks)
    noise = torch.cat([samplers.initial_noise(s, shape) for s in seeds]).repeat_interleave(K, dim=0)
    boundaries = torch.tensor([schedule.insertion_boundary(sigmas, k) for k in ks], dtype=torch.float64).repeat(S)
    lineage = torch.arange(S).repeat_interleave(K)
    denoise = branching_denoiser(denoise_with, boundaries, lineage, max_batch, counter)
    out = samplers.get_sampler(sampler)(denoise, start_x(noise, sigmas, sigma_max), sigmas, callback=callback,
                                        noise_sampler=samplers.seeded_noise(seeds, shape, repeats=K))
    return out.reshape(S, K, *shape)
