"""The engine runs where users run: no tensor of ours lands on the CPU by accident (a CPU-only
guard that catches the whole class of device bugs), and the switch decision survives half precision."""
import inspect

import pytest
import torch

from pci_core import insertion, schedule
from pci_core.demo import demo_model, pipeline
from tests.device_guard import FactoryWithoutDevice, device_guard, guarded

BASE, CONCEPT = "a red circle", "a blue square"


@pytest.fixture(scope="module")
def model():
    return demo_model.load()


@pytest.fixture()
def guarded_engine(monkeypatch):
    """Every call of every branching denoiser made in the test runs inside the device guard."""
    engine = insertion.branching_denoiser
    monkeypatch.setattr(insertion, "branching_denoiser", lambda *a, **kw: guarded(engine(*a, **kw)))


# ---------------------------------------------------------------- the guard catches the bug that shipped

def old_branching_denoiser(denoise_with, boundaries, lineage, max_batch=None):
    """The engine's denoise body as released before the device fix (063b405, pci_core/insertion.py),
    kept here only to prove that the guard catches it."""
    state = {"lineage": lineage.clone()}

    def denoise(x, sigma):
        sigma_rows = sigma.reshape(-1).expand(x.shape[0]).to(boundaries.dtype)
        use_concept = sigma_rows < boundaries
        keys = state["lineage"] * 2 + use_concept.long()
        unique_keys, inverse = torch.unique(keys, return_inverse=True)
        first = torch.full((len(unique_keys),), x.shape[0], dtype=torch.long)
        first.scatter_reduce_(0, inverse, torch.arange(x.shape[0]), reduce="amin")
        out = torch.empty((len(unique_keys), *x.shape[1:]), dtype=x.dtype, device=x.device)
        concept_of_key = (unique_keys % 2).bool()
        for flag in (False, True):
            idx = torch.nonzero(concept_of_key == flag).flatten()
            if len(idx) == 0:
                continue
            for chunk in idx.split(max_batch or len(idx)):
                rows = first[chunk]
                out[chunk] = denoise_with(x[rows], sigma_rows[rows].to(x.dtype), flag)
        state["lineage"] = inverse
        return out[inverse]

    return denoise


def _line_of(function, text: str) -> int:
    lines, start = inspect.getsourcelines(function)
    return start + next(i for i, line in enumerate(lines) if text in line)


def _branch_setup(model, seeds, ks, steps):
    sigmas = pipeline.sigmas_for(pipeline.SamplerSettings(steps=steps))
    boundaries = torch.tensor([schedule.insertion_boundary(sigmas, k) for k in ks], dtype=torch.float64)
    boundaries = boundaries.repeat(len(seeds))
    lineage = torch.arange(len(seeds)).repeat_interleave(len(ks))
    x = torch.randn(len(seeds) * len(ks), *pipeline.LATENT_SHAPE, generator=torch.Generator().manual_seed(0))
    denoise_with = pipeline.cfg_denoise_with(model, BASE, CONCEPT, "", 4.0)
    return sigmas, boundaries, lineage, x, denoise_with


@torch.no_grad()
def test_guard_names_the_lines_of_the_old_engine_that_broke_on_gpus(model):
    sigmas, boundaries, lineage, x, denoise_with = _branch_setup(model, [0, 1], [0, 2, 4], steps=4)
    old = old_branching_denoiser(denoise_with, boundaries, lineage)
    new = insertion.branching_denoiser(denoise_with, boundaries, lineage)
    sigma = sigmas[2] * x.new_ones(x.shape[0])
    assert torch.equal(old(x, sigma), new(x, sigma))  # on the CPU the old engine looked right
    old = old_branching_denoiser(denoise_with, boundaries, lineage)
    with pytest.raises(FactoryWithoutDevice) as caught:
        with device_guard(roots=[__file__]):
            old(x, sigma)
    message = str(caught.value)
    for text in ("first = torch.full(", "torch.arange(x.shape[0])"):
        assert f"test_device.py:{_line_of(old_branching_denoiser, text)}:" in message, message
    assert "torch.empty" not in message  # out = torch.empty(..., device=x.device) was right


@torch.no_grad()
@pytest.mark.parametrize("sampler", ["euler", "euler_ancestral"])
def test_engine_makes_no_tensor_off_the_data_device(model, guarded_engine, sampler):
    settings = pipeline.SamplerSettings(steps=5, sampler=sampler)
    latents = pipeline.insertion_latents(model, BASE, CONCEPT, [3, 8], [0, 2, 5], settings, max_batch=2)
    assert latents.shape == (2, 3, *pipeline.LATENT_SHAPE) and torch.isfinite(latents).all()


@torch.no_grad()
def test_branching_denoiser_alone_passes_the_guard(model):
    sigmas, boundaries, lineage, x, denoise_with = _branch_setup(model, [5], [1, 3], steps=4)
    denoise = insertion.branching_denoiser(denoise_with, boundaries, lineage, max_batch=1)
    with device_guard():
        for i in range(len(sigmas) - 1):
            x = denoise(x, sigmas[i] * x.new_ones(x.shape[0]))
    assert torch.isfinite(x).all()


# ---------------------------------------------------------------- half precision keeps each switch on its step

def _concept_rows_per_step(dtype, sigmas, ks, seeds=3):
    """Which rows the engine sends to the concept at each step, with x and sigma in `dtype`
    (as a sampler running in that dtype passes them). denoise_with answers 1 for concept rows."""
    boundaries = torch.tensor([schedule.insertion_boundary(sigmas, k) for k in ks], dtype=torch.float64).repeat(seeds)
    lineage = torch.arange(seeds).repeat_interleave(len(ks))
    denoise = insertion.branching_denoiser(lambda x, s, flag: torch.full_like(x, float(flag)), boundaries, lineage)
    x = torch.zeros(seeds * len(ks), 4, 2, 2, dtype=dtype)
    rows = []
    with device_guard():
        for i in range(len(sigmas) - 1):
            out = denoise(x, sigmas[i].to(dtype) * x.new_ones(x.shape[0]))
            assert out.dtype == dtype
            rows.append(out.flatten(1)[:, 0].bool())
    return torch.stack(rows)


@pytest.mark.parametrize("scheduler", ["normal", "karras"])
@pytest.mark.parametrize("steps", [20, 50])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_switches_on_the_same_steps_as_float32(dtype, steps, scheduler):
    sigmas = schedule.make_schedule(scheduler, schedule.discrete_sigmas(), steps)
    ks = list(range(steps + 1))
    full = _concept_rows_per_step(torch.float32, sigmas, ks)
    step = torch.arange(steps)[:, None]
    assert torch.equal(full, step >= torch.tensor(ks).repeat(3)[None])  # row (seed, k) switches at step k
    assert torch.equal(_concept_rows_per_step(dtype, sigmas, ks), full)
