"""CIS(k) and tau50 on the real demo model, judged by the pixel judge."""
import numpy as np
import pytest

from pci_core import cis
from pci_core.demo import demo_model, pipeline, sweep


def test_first_crossing_interpolates_linearly():
    assert cis.first_crossing([0, 1, 2, 3], [1.0, 0.8, 0.4, 0.0]) == pytest.approx(1.75)
    assert cis.first_crossing([0, 1], [1.0, 0.5]) is None  # touching 0.5 is not falling through it
    assert cis.first_crossing([0, 1, 2], [0.2, 0.9, 0.1]) == pytest.approx(1.5)
    assert cis.first_crossing([0.0, 0.1, 0.3], [1.0, 0.6, 0.2], level=0.7) == pytest.approx(0.075)


def test_cis_is_the_fraction_of_seeds_per_step():
    assert np.allclose(cis.cis_curve(np.array([[1, 1, 0], [1, 0, 0]])), [1.0, 0.5, 0.0])


def test_judged_attributes_are_what_the_concept_changes():
    assert sweep.concept_attributes("a red circle", "a blue circle") == {"colour": "blue"}
    assert sweep.concept_attributes("a red circle", "a red circle") == {"colour": "red", "shape": "circle"}
    with pytest.raises(ValueError, match="names no attribute"):
        sweep.concept_attributes("a red circle", "a photo")


def test_colour_curve_falls_from_one_to_zero_on_the_demo_model():
    model = demo_model.load()
    result = sweep.demo_sweep(model, "a red circle on the left", "a blue circle on the left", range(8),
                            pipeline.SamplerSettings(steps=10))
    curve = result["cis"]
    assert curve.shape == (11,) and curve[0] >= 0.875 and curve[-1] <= 0.125
    assert 0 < result["tau50_step"] < 10 and 0 < result["tau50"] < 1
    assert result["images"].shape == (8, 11, 64, 64, 3)
