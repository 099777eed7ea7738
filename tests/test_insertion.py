"""The branching engine on the real demo model against an independent plain loop
(pci_core.demo.reference: switches by step index, its own sampler updates, no engine code).

What is exact and what is float noise (README "Exactness of the switch"):
- at the same batch layout (the engine at max_batch=1 against the loop at batch 1; a sweep over one k
  against the loop with those seeds in one batch) the latents are equal bit for bit, at any number of
  torch threads;
- at the engine's own layout (many branches per model call) CPU kernels round differently per batch
  size: every rule-judge decision is the same, and the latents differ by float noise below TOLERANCE
  (measured for these cases: at most 1.2e-5 at one torch thread, 0 at two; printed by the tests, -s).
Shifting the switch by one step moves every branch here by 0.089 or more (max |diff| per branch), far
above TOLERANCE; a test checks that margin.
"""
import pytest
import torch

from pci_core import insertion
from pci_core.demo import demo_model, pipeline, reference
from pci_core.demo.rule_judge import RuleJudge
from pci_core.demo.demo_measure import default_judge_text

BASE, CONCEPT = "a red circle", "a blue square"
SEEDS, KS = [4, 17], [0, 1, 3, 5, 7, 8]
TOLERANCE = 1e-4  # measured float noise at the engine's layout, these cases: <= 1.2e-5 (1 thread), 0 (2 threads)


@pytest.fixture(scope="module")
def model():
    return demo_model.load()


def ref(model, seeds, k, settings, base=BASE, concept=CONCEPT):
    return reference.reference_run(model, base, concept, seeds, k, settings)


def loop(model, seeds, ks, settings, base=BASE, concept=CONCEPT):
    """(S, K, ...) of the paper's loop: every seed and k its own batch-1 reference run."""
    return reference.official_loop(model, base, concept, seeds, ks, settings)


def decisions(model, latents, judge_text=default_judge_text(BASE, CONCEPT)):
    images = model.decode(latents.reshape(-1, *latents.shape[-3:]))
    return (RuleJudge().score(images, judge_text) >= 0.5).reshape(latents.shape[:-3])


def report_noise(what, diff):
    print(f"\n  float noise {what}, {torch.get_num_threads()} torch thread(s): max |diff| = {diff:.2e}")


# ---------------------------------------------------------------- the same batch layout: bit for bit

@pytest.mark.parametrize("sampler", ["euler", "euler_ancestral", "dpmpp_2m"])
def test_at_batch_1_every_branch_equals_the_plain_loop_bit_for_bit(model, sampler):
    settings = pipeline.SamplerSettings(steps=8, sampler=sampler)
    swept = pipeline.insertion_latents(model, BASE, CONCEPT, SEEDS, KS, settings, max_batch=1)
    expected = loop(model, SEEDS, KS, settings)
    for i, seed in enumerate(SEEDS):
        for j, k in enumerate(KS):
            assert torch.equal(swept[i, j], expected[i, j]), (sampler, seed, k, (swept[i, j] - expected[i, j]).abs().max())
    assert not torch.equal(swept[0, 2], swept[0, 3])  # the insertion step changes the result


@pytest.mark.parametrize("sampler", ["euler", "euler_ancestral", "dpmpp_2m"])
def test_a_sweep_over_one_k_equals_the_plain_loop_over_the_same_seeds_bit_for_bit(model, sampler):
    """The loop with its seeds in one batch sends the model the same rows as the engine over one k."""
    settings = pipeline.SamplerSettings(steps=8, sampler=sampler)
    seeds = [4, 17, 3]
    for k in (0, 3, 8):
        assert torch.equal(pipeline.insertion_latents(model, BASE, CONCEPT, seeds, [k], settings)[:, 0],
                           ref(model, seeds, k, settings)), (sampler, k)


# ---------------------------------------------------------------- the engine's own layout: decisions exact

@pytest.mark.parametrize("sampler", ["euler", "euler_ancestral", "dpmpp_2m"])
def test_every_branch_makes_the_plain_loops_decision_within_float_noise(model, sampler):
    settings = pipeline.SamplerSettings(steps=8, sampler=sampler)
    swept = pipeline.insertion_latents(model, BASE, CONCEPT, SEEDS, KS, settings)
    expected = loop(model, SEEDS, KS, settings)
    diff = (swept - expected).abs().max().item()
    report_noise(f"engine vs plain loop, {sampler}", diff)
    assert diff <= TOLERANCE, f"{sampler}: engine and plain loop differ by {diff:.2e} > {TOLERANCE:.0e}"
    assert torch.equal(decisions(model, swept), decisions(model, expected))
    # the tolerance tells a one-step shift apart: the loop switching at k + 1 is far from the branch at k
    for j, k in enumerate(KS[:-1]):
        late = ref(model, SEEDS, k + 1, settings)
        assert (late - swept[:, j]).abs().amax(dim=(1, 2, 3)).min() > 100 * TOLERANCE, (sampler, k)


def test_k0_is_the_concept_run_and_k_steps_the_base_run(model):
    settings = pipeline.SamplerSettings(steps=8)
    concept_only = ref(model, [2], 8, settings, CONCEPT, CONCEPT)[0]  # one prompt: the switch changes nothing
    base_only = ref(model, [2], 8, settings, BASE, BASE)[0]
    exact = pipeline.insertion_latents(model, BASE, CONCEPT, [2], [0, 8], settings, max_batch=1)
    assert torch.equal(exact[0, 0], concept_only) and torch.equal(exact[0, 1], base_only)
    swept = pipeline.insertion_latents(model, BASE, CONCEPT, [2], [0, 8], settings)
    diff = max((swept[0, 0] - concept_only).abs().max().item(), (swept[0, 1] - base_only).abs().max().item())
    report_noise("k = 0 / k = T vs the one-prompt runs", diff)
    assert diff <= TOLERANCE
    assert (swept[0, 0] - swept[0, 1]).abs().max() > 100 * TOLERANCE


def test_shared_prefix_evaluates_each_distinct_row_once(model):
    steps, seeds, ks = 10, [0, 1, 2], list(range(11))
    counter = insertion.EvalCounter()
    pipeline.insertion_latents(model, BASE, CONCEPT, seeds, ks, pipeline.SamplerSettings(steps=steps), counter=counter)
    # step i: one trunk row per seed (while some k > i) plus one row per branch already switched (k <= i)
    expected = len(seeds) * sum(int(any(k > i for k in ks)) + sum(k <= i for k in ks) for i in range(steps))
    naive = len(seeds) * len(ks) * steps
    assert counter.rows == expected
    assert counter.rows / naive < 0.6


def test_max_batch_bounds_each_call_and_the_results_stay_the_plain_loops(model):
    settings = pipeline.SamplerSettings(steps=6, sampler="euler_ancestral")
    seeds, ks = [1, 2, 3], [0, 2, 4, 6]
    free = pipeline.insertion_latents(model, BASE, CONCEPT, seeds, ks, settings)
    counter = insertion.EvalCounter()
    bounded = pipeline.insertion_latents(model, BASE, CONCEPT, seeds, ks, settings, max_batch=3, counter=counter)
    assert max(counter.per_call) <= 3 and counter.rows == sum(counter.per_call)
    expected = loop(model, seeds, ks, settings)
    diff = max((free - expected).abs().max().item(), (bounded - expected).abs().max().item())
    report_noise("max_batch 3 and unbounded vs plain loop", diff)
    assert diff <= TOLERANCE
    assert torch.equal(decisions(model, bounded), decisions(model, expected))


def test_without_cfg_the_engine_still_branches(model):
    settings = pipeline.SamplerSettings(steps=6, cfg=1.0)
    exact = pipeline.insertion_latents(model, BASE, CONCEPT, [9], [2, 4], settings, max_batch=1)
    assert torch.equal(exact[0, 1], ref(model, [9], 4, settings)[0]) and torch.equal(exact[0, 0], ref(model, [9], 2, settings)[0])
    swept = pipeline.insertion_latents(model, BASE, CONCEPT, [9], [2, 4], settings)
    diff = (swept[0] - exact[0]).abs().max().item()
    report_noise("cfg 1 vs plain loop", diff)
    assert diff <= TOLERANCE and (swept[0, 0] - swept[0, 1]).abs().max() > 100 * TOLERANCE


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
