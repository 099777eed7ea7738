"""CIS(k) and tau50 on the real demo model, judged by the pixel judge."""
import numpy as np
import pytest

from pci_core import cis
from pci_core.demo import demo_model, pipeline, demo_measure


def test_first_crossing_interpolates_linearly():
    assert cis.first_crossing([0, 1, 2, 3], [1.0, 0.8, 0.4, 0.0]) == pytest.approx(1.75)
    assert cis.first_crossing([0, 1], [1.0, 0.5]) is None  # touching 0.5 is not falling through it
    assert cis.first_crossing([0, 1, 2], [0.2, 0.9, 0.1]) == pytest.approx(1.5)
    assert cis.first_crossing([0.0, 0.1, 0.3], [1.0, 0.6, 0.2], level=0.7) == pytest.approx(0.075)


def test_cis_is_the_fraction_of_seeds_per_step():
    assert np.allclose(cis.cis_curve(np.array([[1, 1, 0], [1, 0, 0]])), [1.0, 0.5, 0.0])


def test_default_judge_text_is_what_the_concept_changes():
    assert demo_measure.default_judge_text("a red circle", "a blue circle") == "a blue shape"
    assert demo_measure.default_judge_text("a red circle", "a red circle") == "a red circle"
    assert demo_measure.default_judge_text("a large red circle on the left", "a small red square on the left") == \
        "a small square"
    with pytest.raises(ValueError, match="names no attribute"):
        demo_measure.default_judge_text("a red circle", "a photo")


@pytest.fixture(scope="module")
def colour_sweep():
    return demo_measure.demo_sweep(demo_model.load(), "a red circle on the left", "a blue circle on the left", range(8),
                            pipeline.SamplerSettings(steps=10))


def test_colour_curve_falls_from_one_to_zero_on_the_demo_model(colour_sweep):
    result = colour_sweep
    curve = result["cis"]
    assert result["judged"] == "a blue shape"
    assert curve.shape == (11,) and curve[0] == 1.0 and curve[-1] == 0.0
    # measured: CIS = 1, 1, .875, .375, .25, .25, .25, 0, 0, 0, 0 -> tau50 at step 2.75 (noise axis 0.171);
    # the window allows one seed's decision at k = 3 to flip either way
    assert 2.5 <= result["tau50_step"] <= 3.0, curve
    assert result["tau50"] == pytest.approx(np.interp(result["tau50_step"], result["ks"], result["tau"]))
    assert result["images"].shape == (8, 11, 64, 64, 3)


def test_the_sweep_judges_its_judge_text_with_the_rule_judge(colour_sweep):
    """One definition of CIS: the rule judge on the judge text, every attribute it names."""
    import torch
    from pci_core.demo.rule_judge import RuleJudge
    judge = RuleJudge()
    images = torch.from_numpy(colour_sweep["images"].reshape(-1, 64, 64, 3))
    assert np.array_equal(colour_sweep["decisions"],
                          judge.decide(judge.score(images, "a blue shape")).numpy().reshape(8, 11))
    small = demo_measure.demo_sweep(demo_model.load(), "a red circle", "a blue square", [0, 1],
                             pipeline.SamplerSettings(steps=4), judge_text="a square")
    images = torch.from_numpy(small["images"].reshape(-1, 64, 64, 3))
    assert small["judged"] == "a square"
    assert np.array_equal(small["decisions"], judge.decide(judge.score(images, "a square")).numpy().reshape(2, 5))
