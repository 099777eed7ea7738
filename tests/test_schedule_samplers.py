"""Schedules and standalone samplers against reference formulas."""
import math

import pytest
import torch

from pci_core import samplers, schedule

SIGMAS = schedule.discrete_sigmas()


def test_discrete_schedule_is_sd1():
    assert SIGMAS.shape == (1000,)
    assert SIGMAS[-1].item() == pytest.approx(14.6146, abs=1e-3)
    assert SIGMAS[0].item() == pytest.approx(0.029168, abs=1e-5)
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    abar = torch.cumprod(1 - betas, 0)
    assert torch.allclose(SIGMAS.double(), ((1 - abar) / abar).sqrt(), rtol=1e-6)


def test_timestep_and_sigma_are_inverse_on_the_grid():
    t = torch.tensor([0, 1, 250, 999])
    assert torch.equal(schedule.timestep_of(schedule.sigma_of(t, SIGMAS), SIGMAS), t)


def test_normal_and_karras_schedules():
    normal = schedule.make_schedule("normal", SIGMAS, 10)
    assert len(normal) == 11 and normal[-1] == 0 and normal[0] == pytest.approx(SIGMAS[-1].item(), rel=1e-5)
    assert torch.all(normal[:-1] > normal[1:])
    karras = schedule.make_schedule("karras", SIGMAS, 5)
    rho, lo, hi = 7.0, SIGMAS[0].item(), SIGMAS[-1].item()
    ref = [(hi ** (1 / rho) + i / 4 * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho for i in range(5)] + [0.0]
    assert torch.allclose(karras, torch.tensor(ref), rtol=1e-5)
    with pytest.raises(ValueError, match="valid schedulers"):
        schedule.make_schedule("bogus", SIGMAS, 10)
    with pytest.raises(ValueError, match="steps=0"):
        schedule.make_schedule("normal", SIGMAS, 0)


def test_insertion_boundary_lies_strictly_between_the_steps():
    sig = schedule.make_schedule("karras", SIGMAS, 10)
    assert schedule.insertion_boundary(sig, 0) == math.inf
    assert schedule.insertion_boundary(sig, 10) == 0.0
    for k in range(1, 10):
        b = schedule.insertion_boundary(sig, k)
        assert sig[k].item() < b < sig[k - 1].item()
    with pytest.raises(ValueError, match=r"insert_step=11: must be in \[0, 10\]"):
        schedule.insertion_boundary(sig, 11)


def test_tau_axis_runs_from_noisy_to_clean():
    sigmas = schedule.make_schedule("normal", SIGMAS, 20)
    tau = schedule.tau_from_sigmas(sigmas)
    assert len(tau) == 21 and tau[0] == 0 and tau[-1] == pytest.approx(1.0) and torch.all(tau[1:] > tau[:-1])
    # normalised -log sigma^2 between steps: equal log-sigma ratios give equal tau gaps
    v = -torch.log(sigmas[:-1].double() ** 2)
    gaps = (v[1:] - v[:-1]) / (tau[1:20] - tau[:19]).double()
    assert torch.allclose(gaps, gaps[0].expand_as(gaps), rtol=1e-4)
    # k = T sits one last-step spacing beyond k = T-1, not on top of it
    assert float(tau[20] - tau[19]) == pytest.approx(float(tau[19] - tau[18]), rel=1e-4)


# A Gaussian world: data ~ N(0, 1) per element has the exact denoiser E[x0 | x] = x / (1 + sigma^2),
# and the probability-flow ODE solution x(sigma) = x_T * sqrt(1 + sigma^2) / sqrt(1 + sigma_T^2).
def gaussian_denoiser(x, sigma):
    return x / (1 + sigma.reshape(-1, 1) ** 2)


def ode_error(sampler, steps):
    sig = schedule.karras_schedule(SIGMAS, steps)[:-1]  # stop at sigma_min: the ODE is smooth there
    x_t = torch.randn(4, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = sampler(gaussian_denoiser, x_t.clone(), sig.double())
    exact = x_t * math.sqrt(1 + sig[-1].item() ** 2) / math.sqrt(1 + sig[0].item() ** 2)
    return (out - exact).abs().max().item()


def test_euler_is_first_order_and_dpmpp_2m_second_order_on_the_exact_ode():
    e1, e2 = ode_error(samplers.sample_euler, 20), ode_error(samplers.sample_euler, 40)
    d1, d2 = ode_error(samplers.sample_dpmpp_2m, 20), ode_error(samplers.sample_dpmpp_2m, 40)
    assert 1.6 < e1 / e2 < 2.6, e1 / e2
    assert d1 / d2 > 3.0, d1 / d2
    assert d2 < e2


def test_one_step_updates_match_the_formulas():
    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    s0, s1 = 3.0, 1.5
    sig = torch.tensor([s0, s1], dtype=torch.float64)
    d0 = gaussian_denoiser(x, sig[:1])
    euler = samplers.sample_euler(gaussian_denoiser, x.clone(), sig)
    assert torch.allclose(euler, x + (x - d0) / s0 * (s1 - s0))
    dpm = samplers.sample_dpmpp_2m(gaussian_denoiser, x.clone(), sig)
    assert torch.allclose(dpm, s1 / s0 * x - math.expm1(-(math.log(s0) - math.log(s1))) * d0)
    noise = samplers.seeded_noise([7], (3,))
    anc = samplers.sample_euler_ancestral(gaussian_denoiser, x[:1].clone(), sig, noise_sampler=noise)
    up = min(s1, (s1 ** 2 * (s0 ** 2 - s1 ** 2) / s0 ** 2) ** 0.5)
    down = (s1 ** 2 - up ** 2) ** 0.5
    z = torch.randn((1, 3), generator=torch.Generator().manual_seed(7))
    assert torch.allclose(anc, x[:1] + (x[:1] - d0[:1]) / s0 * (down - s0) + z * up)


def test_seeded_noise_is_per_seed_and_repeated_per_branch():
    draw = samplers.seeded_noise([3, 9], (2, 2), repeats=3)
    first, second = draw(None, None), draw(None, None)
    assert first.shape == (6, 2, 2)
    assert torch.equal(first[0], first[2]) and not torch.equal(first[0], first[3])
    assert not torch.equal(first, second)
    g = torch.Generator().manual_seed(9)
    assert torch.equal(first[3], torch.randn((1, 2, 2), generator=g)[0])
    with pytest.raises(ValueError, match="valid samplers"):
        samplers.get_sampler("bogus")
