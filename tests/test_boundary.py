"""Where the switch sits inside a step (README "Exactness of the switch"), held against the rule itself.

The rule: steps 0..k-1 see the base, steps k.. the concept. An evaluation belongs to a step:
- at sigmas[j] itself (up to float rounding: sigmas[j] * (1 +/- 1e-6), heun's corrector landing on
  sigmas[j], the mid-step of dpm_2_ancestral / dpmpp_2s_ancestral that eta 1 lands on sigmas[j]):
  step j, as step j's first evaluation;
- strictly between sigmas[j+1] and sigmas[j] (the mid-step evaluations of dpm_2, dpmpp_sde, seeds_2
  at log-fraction 1/2, seeds_3 at 1/3 and 2/3): step j.
The reference below classifies each probe sigma by that rule alone (no boundary, nothing from
pci_core.schedule's insertion_boundary); the engine's decision is read through pci_core.insertion.sweep
and its branching_denoiser, which records which conditioning each row got.
"""
import pytest
import torch

from pci_core import insertion, samplers, schedule

TABLE = schedule.discrete_sigmas()
# "At sigmas[j]" up to float rounding, relative. The dpm_2_ancestral / dpmpp_2s_ancestral mid-step lands on
# sigmas[j+1] only up to float32 cancellation in sigma_down (measured up to 7e-5 on a 3-step schedule); a
# third of the smallest step here is 0.035 in log sigma, so no mid-step comes near.
AT_TOLERANCE = 1e-3
MID_FRACTIONS = (1 / 3, 1 / 2, 2 / 3)


def step_of(probe: float, sigmas: list[float]) -> int:
    """The step an evaluation at sigma = probe belongs to, from the rule (sigmas: the schedule, last 0)."""
    positive = [s for s in sigmas if s > 0]
    for j, s in enumerate(positive):
        if abs(probe - s) <= AT_TOLERANCE * s:
            return j
    for j in range(len(positive) - 1):
        if positive[j + 1] < probe < positive[j]:
            return j
    raise AssertionError(f"probe {probe} lies outside the schedule {sigmas}")


def probes_of(sigmas: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """(what, sigma) of every evaluation a sampler makes, computed in float32 as the samplers compute them."""
    out = []
    T = len(sigmas) - 1
    for j in range(T):
        s = sigmas[j]
        out += [(f"sigmas[{j}]", s), (f"sigmas[{j}]*(1+1e-6)", s * (1 + 1e-6)), (f"sigmas[{j}]*(1-1e-6)", s * (1 - 1e-6))]
        nxt = sigmas[j + 1]
        if nxt == 0:
            continue  # the last step of every sampler is a plain euler step: no evaluation below sigmas[T-1]
        for f in MID_FRACTIONS:  # dpm_2 / dpmpp_sde / seeds_2 (1/2), seeds_3 (1/3, 2/3): exp(lerp of log sigma)
            out.append((f"step {j} mid {f:.3f}", s.log().lerp(nxt.log(), f).exp()))
        out.append((f"heun corrector of step {j}", nxt.clone()))
        # dpm_2_ancestral (eta 1): mid-step between sigma and sigma_down in log sigma, which is sigma_next
        sigma_up = torch.minimum(nxt, (nxt ** 2 * (s ** 2 - nxt ** 2) / s ** 2) ** 0.5)
        sigma_down = (nxt ** 2 - sigma_up ** 2) ** 0.5
        out.append((f"dpm_2_ancestral mid of step {j}", s.log().lerp(sigma_down.log(), 0.5).exp()))
        # dpmpp_2s_ancestral: t = -log sigma, s = t + h / 2 towards sigma_down
        t, t_down = -s.log(), -sigma_down.log()
        out.append((f"dpmpp_2s_ancestral mid of step {j}", (-(t + 0.5 * (t_down - t))).exp()))
    return out


def engine_decisions(sigmas: torch.Tensor, monkeypatch) -> tuple[list[str], list[float], torch.Tensor]:
    """Which conditioning the engine gives every k = 0..T at every probe: (whats, probes, concept (P, K) bool)."""
    probes = probes_of(sigmas)
    seen_sigmas = []

    def denoise_with(x, sigma, use_concept):
        seen_sigmas.append(sigma)
        return torch.full_like(x, float(use_concept))

    got = []

    def probe_sampler(denoise, x, sigmas, callback=None, noise_sampler=None):
        ones = x.new_ones([x.shape[0]])
        for _, p in probes:
            got.append(denoise(x, p * ones)[:, 0, 0, 0].clone())
        return x

    monkeypatch.setitem(samplers.SAMPLERS, "probe", probe_sampler)
    T = len(sigmas) - 1
    insertion.sweep(denoise_with, [0], list(range(T + 1)), sigmas, "probe", (1, 1, 1), float(TABLE[-1]))
    # the model sees each probe's sigma unchanged
    assert all(torch.equal(s, s[:1].expand_as(s)) for s in seen_sigmas)
    assert {float(s[0]) for s in seen_sigmas} <= {float(p) for _, p in probes}
    return [w for w, _ in probes], [float(p) for _, p in probes], torch.stack(got).bool()


@pytest.mark.parametrize("scheduler, steps", [("normal", 1), ("normal", 3), ("normal", 10), ("normal", 25),
                                              ("karras", 2), ("karras", 7), ("karras", 20), ("karras", 40)])
def test_mid_step_evaluations_of_step_k_minus_1_see_the_base_and_sigmas_k_the_concept(scheduler, steps, monkeypatch):
    sigmas = schedule.make_schedule(scheduler, TABLE, steps)
    whats, probes, concept = engine_decisions(sigmas, monkeypatch)
    schedule_values = [float(s) for s in sigmas]
    wrong = []
    for p, (what, probe) in enumerate(zip(whats, probes)):
        step = step_of(probe, schedule_values)
        for k in range(steps + 1):
            expected = step >= k  # steps 0..k-1 the base, k.. the concept
            if bool(concept[p, k]) != expected:
                wrong.append(f"k={k}: {what} (sigma {probe:.7g}, step {step}) got the "
                             f"{'concept' if concept[p, k] else 'base'}")
    assert not wrong, f"{scheduler} {steps} steps: {len(wrong)} wrong decisions, e.g. " + "; ".join(wrong[:6])
    # every case of the rule was probed: for 0 < k < T, a base mid-step of step k-1 and the concept at sigmas[k]
    if steps >= 2:
        assert any(w.startswith("step 0 mid") for w in whats) and "dpm_2_ancestral mid of step 0" in whats


def test_the_reference_rule_reads_the_cases_it_names():
    sigmas = [8.0, 4.0, 2.0, 0.0]
    assert step_of(4.0, sigmas) == 1 and step_of(4.0 * (1 + 1e-6), sigmas) == 1 and step_of(4.0 * (1 - 1e-6), sigmas) == 1
    assert step_of((8.0 * 4.0) ** 0.5, sigmas) == 0 and step_of(8.0 ** (1 / 3) * 4.0 ** (2 / 3), sigmas) == 0
    assert step_of(8.0, sigmas) == 0 and step_of(2.0, sigmas) == 2
    with pytest.raises(AssertionError):
        step_of(1.0, sigmas)  # below the last positive sigma: no sampler evaluates there
