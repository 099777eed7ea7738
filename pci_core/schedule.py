"""Noise schedules: the SD1 discrete eps schedule (as ComfyUI's ModelSamplingDiscrete) and the
sigma schedules a sampler steps through (as ComfyUI's normal/simple/karras schedulers)."""
from __future__ import annotations

import math

import torch


def discrete_sigmas(timesteps: int = 1000, linear_start: float = 0.00085, linear_end: float = 0.012) -> torch.Tensor:
    """sigma(t) for t = 0..timesteps-1 of the scaled-linear beta schedule, float32, increasing."""
    betas = torch.linspace(linear_start ** 0.5, linear_end ** 0.5, timesteps, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    return (((1 - alphas_cumprod) / alphas_cumprod) ** 0.5).float()


def timestep_of(sigma: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Nearest discrete timestep in log-sigma (the timestep the UNet was trained on)."""
    dists = sigma.log().reshape(-1)[None] - sigmas.log()[:, None]
    return dists.abs().argmin(dim=0).view(sigma.shape)


def sigma_of(t: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """sigma at a fractional timestep, interpolated in log-sigma."""
    log_sigmas = sigmas.log()
    t = t.float().clamp(0, len(sigmas) - 1)
    lo, hi, w = t.floor().long(), t.ceil().long(), t.frac()
    return ((1 - w) * log_sigmas[lo] + w * log_sigmas[hi]).exp()


def normal_schedule(sigmas: torch.Tensor, steps: int) -> torch.Tensor:
    """steps+1 sigmas, evenly spaced in timestep from sigma_max down, then 0."""
    start, end = timestep_of(sigmas[-1], sigmas), timestep_of(sigmas[0], sigmas)
    ts = torch.linspace(start, end, steps)
    return torch.FloatTensor([float(sigma_of(t, sigmas)) for t in ts] + [0.0])


def karras_schedule(sigmas: torch.Tensor, steps: int, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022) schedule between the model's sigma_min and sigma_max, then 0."""
    smin, smax = float(sigmas[0]), float(sigmas[-1])
    ramp = torch.linspace(0, 1, steps)
    out = (smax ** (1 / rho) + ramp * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
    return torch.cat([out, out.new_zeros([1])])


SCHEDULES = {"normal": normal_schedule, "karras": karras_schedule}


def make_schedule(name: str, sigmas: torch.Tensor, steps: int) -> torch.Tensor:
    if name not in SCHEDULES:
        raise ValueError(f"scheduler {name!r}: valid schedulers are {sorted(SCHEDULES)}")
    if steps < 1:
        raise ValueError(f"steps={steps}: must be at least 1")
    return SCHEDULES[name](sigmas, steps)


def tau_from_sigmas(sigmas) -> torch.Tensor:
    """The noise axis of the official PCI code, one value per insertion step k = 0..T of a schedule
    sigmas[0..T] (sigmas[T] = 0): normalised -log sigma_k^2, 0 at the first (noisiest) step and 1 at
    k = T. sigma_T = 0 has no logarithm, so k = T (base only) sits one step beyond sigma_{T-1} at the
    log-sigma spacing of the last step: every k keeps its own place, and a crossing between the last
    two steps does not collapse onto 1. A schedule that ends above 0 (denoise < 1 cuts the start, not
    the end) is used as it is. sigmas: a tensor or a list of floats; float64 out."""
    s = torch.as_tensor(sigmas, dtype=torch.float64).reshape(-1)
    if len(s) < 2:
        return torch.zeros(len(s), dtype=torch.float64)
    if s[-1] <= 0:
        positive = s[:-1]
        last = positive[-1] ** 2 / positive[-2] if len(positive) > 1 else positive[-1] / 2
        s = torch.cat([positive, last.reshape(1)])
    v = -torch.log(s ** 2)
    return (v - v[0]) / (v[-1] - v[0])


BOUNDARY_FRACTION = 0.1  # where the boundary sits between sigmas[k] and sigmas[k-1], in log sigma


def insertion_boundary(sigmas: torch.Tensor, insert_step: int) -> float:
    """Sigma boundary of an insertion at step k: evaluations at sigma < boundary use the concept.

    It lies strictly between sigmas[k] and sigmas[k-1], one tenth of the way up in log sigma, so
    - float error in a sampler's own sigma (uni_pc recomputes it) cannot flip a side;
    - mid-step evaluations of step k-1 at log-fractions 1/3, 1/2, 2/3 (dpm_2, dpmpp_sde, seeds_2/3
      evaluate at the geometric mean) see the base: they belong to step k-1; the geometric mean
      itself would tie with them;
    - heun's corrector at sigmas[k] sees the concept, as step k's first evaluation does.
    k = 0 -> +inf (concept everywhere); k = steps -> 0 (base everywhere)."""
    steps = len(sigmas) - 1
    if not 0 <= insert_step <= steps:
        raise ValueError(f"insert_step={insert_step}: must be in [0, {steps}] for {steps} steps")
    if insert_step == 0:
        return math.inf
    if insert_step == steps:
        return 0.0
    hi, lo = float(sigmas[insert_step - 1]), float(sigmas[insert_step])
    return hi ** BOUNDARY_FRACTION * lo ** (1 - BOUNDARY_FRACTION)
