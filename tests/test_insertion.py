"""The branching engine on the real demo model: every branch equals its own one-pass run."""
import pytest
import torch

from pci_core import insertion
from pci_core.demo import demo_model, pipeline

BASE, CONCEPT = "a red circle", "a blue square"


@pytest.fixture(scope="module")
def model():
    return demo_model.load()


def one_pass(model, seed, k, settings):
    """The switched run of one seed alone: its own batch-1 sampler call."""
    return pipeline.insertion_latents(model, BASE, CONCEPT, [seed], [k], settings)[0, 0]


# ---------------------------------------------------------------- an independent reference

def reference_run(model, seed, k, settings):
    """The switched run written out as a plain loop: step i < k denoises with the base prompt, every
    later step with the concept, picked by the step index alone (no sigma boundary, no branching, no
    pci_core.samplers); noise drawn from the seed as ComfyUI draws it for a batch of one."""
    denoise_with = pipeline.cfg_denoise_with(model, BASE, CONCEPT, "", settings.cfg)
    sigmas = pipeline.sigmas_for(settings)
    x = torch.randn((1, *pipeline.LATENT_SHAPE), generator=torch.Generator().manual_seed(seed))
    x = x * (1.0 + float(sigmas[0]) ** 2) ** 0.5  # a full denoise starts at sqrt(1 + sigma_max^2)
    noise = torch.Generator().manual_seed(seed)  # the ancestral stream restarts from the seed
    old_denoised = None
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = denoise_with(x, sigma * x.new_ones([1]), i >= k)
        if settings.sampler == "euler":
            x = x + (x - denoised) / sigma * (sigma_next - sigma)
        elif settings.sampler == "euler_ancestral":
            sigma_up = min(sigma_next, (sigma_next ** 2 * (sigma ** 2 - sigma_next ** 2) / sigma ** 2) ** 0.5)
            sigma_down = (sigma_next ** 2 - sigma_up ** 2) ** 0.5
            if sigma_down == 0:
                x = denoised
            else:
                x = x + (x - denoised) / sigma * (sigma_down - sigma)
                x = x + torch.randn((1, *pipeline.LATENT_SHAPE), generator=noise) * sigma_up
        else:  # dpmpp_2m: second order from the previous step's denoised (first order on the first and last)
            t, t_next = -sigma.log(), -sigma_next.log()
            h = t_next - t
            if old_denoised is not None and sigma_next != 0:
                r = (t - (-sigmas[i - 1].log())) / h
                denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            else:
                denoised_d = denoised
            x = ((-t_next).exp() / (-t).exp()) * x - (-h).expm1() * denoised_d
            old_denoised = denoised
    return x[0]


@pytest.mark.parametrize("sampler", ["euler", "euler_ancestral", "dpmpp_2m"])
def test_every_branch_equals_a_plain_loop_that_switches_at_step_k(model, sampler):
    settings = pipeline.SamplerSettings(steps=8, sampler=sampler)
    seeds, ks = [4, 17], [0, 1, 3, 5, 7, 8]
    swept = pipeline.insertion_latents(model, BASE, CONCEPT, seeds, ks, settings)
    for i, seed in enumerate(seeds):
        for j, k in enumerate(ks):
            assert torch.equal(swept[i, j], reference_run(model, seed, k, settings)), (sampler, seed, k)
    assert not torch.equal(swept[0, 2], swept[0, 3])  # the insertion step changes the result


@pytest.mark.parametrize("sampler", ["euler", "euler_ancestral", "dpmpp_2m"])
def test_every_branch_equals_its_one_pass_run(model, sampler):
    settings = pipeline.SamplerSettings(steps=8, sampler=sampler)
    seeds, ks = [4, 17], [0, 1, 3, 5, 8]
    swept = pipeline.insertion_latents(model, BASE, CONCEPT, seeds, ks, settings)
    for i, seed in enumerate(seeds):
        for j, k in enumerate(ks):
            assert torch.equal(swept[i, j], one_pass(model, seed, k, settings)), (sampler, seed, k)


def test_k0_is_the_concept_run_and_k_steps_the_base_run(model):
    settings = pipeline.SamplerSettings(steps=8)
    swept = pipeline.insertion_latents(model, BASE, CONCEPT, [2], [0, 8], settings)
    concept_only = pipeline.insertion_latents(model, CONCEPT, CONCEPT, [2], [8], settings)[0, 0]
    base_only = pipeline.insertion_latents(model, BASE, BASE, [2], [8], settings)[0, 0]
    assert torch.equal(swept[0, 0], concept_only) and torch.equal(swept[0, 1], base_only)
    assert not torch.equal(swept[0, 0], swept[0, 1])


def test_shared_prefix_evaluates_each_distinct_row_once(model):
    steps, seeds, ks = 10, [0, 1, 2], list(range(11))
    counter = insertion.EvalCounter()
    pipeline.insertion_latents(model, BASE, CONCEPT, seeds, ks, pipeline.SamplerSettings(steps=steps), counter=counter)
    # step i: one trunk row per seed (while some k > i) plus one row per branch already switched (k <= i)
    expected = len(seeds) * sum(int(any(k > i for k in ks)) + sum(k <= i for k in ks) for i in range(steps))
    naive = len(seeds) * len(ks) * steps
    assert counter.rows == expected
    assert counter.rows / naive < 0.6


def test_max_batch_bounds_each_call_without_changing_results(model):
    settings = pipeline.SamplerSettings(steps=6, sampler="euler_ancestral")
    seeds, ks = [1, 2, 3], [0, 2, 4, 6]
    free = pipeline.insertion_latents(model, BASE, CONCEPT, seeds, ks, settings)
    counter = insertion.EvalCounter()
    bounded = pipeline.insertion_latents(model, BASE, CONCEPT, seeds, ks, settings, max_batch=3, counter=counter)
    assert max(counter.per_call) <= 3
    assert torch.equal(free, bounded)


def test_without_cfg_the_engine_still_branches(model):
    settings = pipeline.SamplerSettings(steps=6, cfg=1.0)
    swept = pipeline.insertion_latents(model, BASE, CONCEPT, [9], [2, 4], settings)
    assert torch.equal(swept[0, 1], one_pass(model, 9, 4, settings))


def test_insert_step_accepts_steps_and_fractions_and_names_bad_values():
    assert insertion.resolve_insert_step(5, 20) == 5
    assert insertion.resolve_insert_step(5.0, 20) == 5
    assert insertion.resolve_insert_step(0.25, 20) == 5
    with pytest.raises(ValueError, match=r"insert_step=21: must be in \[0, 20\]"):
        insertion.resolve_insert_step(21, 20)
    with pytest.raises(ValueError, match="insert_step=1.5"):
        insertion.resolve_insert_step(1.5, 20)
    with pytest.raises(ValueError, match="steps=0"):
        insertion.resolve_insert_step(0, 0)
    with pytest.raises(ValueError, match="max_batch=0"):
        insertion.branching_denoiser(lambda *a: None, torch.zeros(1), torch.zeros(1, dtype=torch.long), max_batch=0)


def test_concept_takes_over_for_early_insertions(model):
    """PCI's premise on the demo world: inserting the concept early shows it, late keeps the base."""
    from pci_core.demo import world
    settings = pipeline.SamplerSettings(steps=10)
    images = model.decode(pipeline.insertion_latents(model, "a red circle", "a blue circle", range(8), [0, 10],
                                                     settings).reshape(-1, 4, 8, 8)).numpy()
    blue = world.judge_batch(images, {"colour": "blue"}).reshape(8, 2)
    assert blue[:, 0].mean() >= 0.75 and blue[:, 1].mean() <= 0.25
