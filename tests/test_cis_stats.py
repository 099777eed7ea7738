"""The statistics of pci_core.cis against values computed by hand (no model, no host)."""
import numpy as np
import pytest
import torch

from pci_core import cis, schedule

SIGMAS = [14.6, 8.0, 4.0, 2.0, 1.0, 0.0]  # steps = 5


def result_of(decisions, ks=(0, 1, 2, 3, 4, 5), seeds=None, concept="blue"):
    d = np.asarray(decisions, dtype=np.float64)
    return cis.CISResult(list(range(len(d))) if seeds is None else seeds, list(ks), 5, SIGMAS, d, 0.5, concept)


@pytest.mark.parametrize("successes, n, low, high", [
    (8, 16, 0.2800, 0.7200),   # published Wilson 95% bounds (e.g. Newcombe 1998's tables), 4 decimals
    (1, 10, 0.0179, 0.4042),
    (0, 10, 0.0, 0.2775),
    (10, 10, 0.7225, 1.0),
])
def test_wilson_interval_matches_the_published_values(successes, n, low, high):
    lo, hi = cis.wilson_interval(successes, n)
    assert lo == pytest.approx(low, abs=5e-5) and hi == pytest.approx(high, abs=5e-5)


def test_wilson_interval_closed_forms_at_the_ends():
    z2 = cis.Z95 ** 2
    for n in (1, 7, 50):
        # no successes: (0, z^2 / (n + z^2)); all successes: the mirror image, exactly 0 and 1 at the ends
        assert cis.wilson_interval(0, n) == (0.0, pytest.approx(z2 / (n + z2), rel=1e-12))
        assert cis.wilson_interval(n, n) == (pytest.approx(n / (n + z2), rel=1e-12), 1.0)
    assert cis.wilson_interval(0, 0) == (0.0, 1.0)


def test_first_crossing_reads_falling_curves_only_and_interpolates():
    assert cis.first_crossing([0, 2, 4], [1.0, 0.75, 0.25]) == pytest.approx(3.0)
    assert cis.first_crossing([0, 2, 4], [0.4, 0.3, 0.0]) is None          # starts below: never falls through
    wavy = ([0, 1, 2, 3], [1.0, 0.4, 0.9, 0.1])  # falls through 0.5 twice
    assert cis.first_crossing(*wavy) == pytest.approx(2.5)  # the default: the last fall, nearest the clean end
    assert cis.first_crossing(*wavy, reading=cis.NOISY_END) == pytest.approx(0.5 / 0.6)  # the first fall
    assert cis.first_crossing([0, 1, 2], [1.0, 0.5, 0.5]) is None           # touching is not falling through
    assert cis.first_crossing([0, 1, 2], [1.0, 0.5, 0.0]) == pytest.approx(1.0)  # leaves 0.5 between 1 and 2 at 1
    with pytest.raises(ValueError, match="reading 'middle'"):
        cis.first_crossing(*wavy, reading="middle")


def official_first_crossing(x, y, thr=0.5):
    """The official runner's first_crossing (pci/core/utils.py), verbatim but for NaN -> None."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    for i in range(len(y) - 1):
        if y[i] < thr <= y[i + 1]:
            w = (thr - y[i]) / (y[i + 1] - y[i] + 1e-12)
            return float(x[i] + w * (x[i + 1] - x[i]))
    return None


def test_the_default_reading_is_the_official_one_on_cis_rising_from_the_clean_end():
    """The official code reads a rising curve; CIS rises from k = T to k = 0, so it is called on the
    reversed arrays: our default equals it on every curve, monotone or not (up to its 1e-12 guard)."""
    rng = np.random.default_rng(0)
    for _ in range(2000):
        ks = list(range(int(rng.integers(2, 12))))
        curve = rng.integers(0, 9, size=len(ks)) / 8  # CIS over 8 seeds, any shape
        ours, theirs = cis.first_crossing(ks, curve), official_first_crossing(ks[::-1], curve[::-1])
        assert (ours is None) == (theirs is None) and (ours is None or ours == pytest.approx(theirs, abs=1e-9))


def test_tau_axis_places_sigma_zero_one_log_step_on():
    assert np.allclose(schedule.tau_from_sigmas([4.0, 2.0, 0.0]).numpy(), [0.0, 0.5, 1.0])


def test_valid_seed_mask_keeps_seeds_that_see_the_concept_at_k0_and_not_at_kT():
    d = np.array([[1, 1, 0], [0, 0, 0], [1, 1, 1], [1, 0, 0]])
    assert cis.valid_seed_mask(d, [0, 2, 5], 5).tolist() == [True, False, False, True]
    with pytest.raises(ValueError, match="k = 5"):
        cis.valid_seed_mask(d, [0, 2, 4], 5)


def test_summarize_counts_intervals_crossings_and_controls_by_hand():
    # 4 seeds whose decision switches off at steps 1, 2, 3, never: CIS = 1, .75, .5, .25, .25, .25
    d = [[1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]]
    s = cis.summarize(result_of(d), resamples=500)
    assert [r["successes"] for r in s["rows"]] == [4, 3, 2, 1, 1, 1] and all(r["n"] == 4 for r in s["rows"])
    assert [r["cis"] for r in s["rows"]] == [1.0, 0.75, 0.5, 0.25, 0.25, 0.25]
    assert (s["rows"][1]["low"], s["rows"][1]["high"]) == cis.wilson_interval(3, 4)
    assert [r["sigma"] for r in s["rows"]] == SIGMAS
    tau50 = s["crossings"]["tau50"]
    # 0.5 is reached at k = 2 but only left between k = 2 (0.5) and k = 3 (0.25): at 2 + 0/0.25 = 2
    assert tau50["step"] == pytest.approx(2.0) and tau50["level"] == 0.5
    tau = schedule.tau_from_sigmas(SIGMAS).numpy()
    assert tau50["tau"] == pytest.approx(tau[2])
    # tau70 between k = 1 (0.75) and k = 2 (0.5): 1 + 0.05 / 0.25 = 1.2
    assert s["crossings"]["tau70"]["step"] == pytest.approx(1.2)
    assert s["controls"] == {"concept_only": 1.0, "base_only": 0.25}
    assert s["warnings"] == [] and s["n_seeds"] == 4 and s["dropped_seeds"] == 0 and s["steps"] == 5


def test_summarize_valid_seed_filter_and_the_control_warnings():
    d = [[1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]]
    s = cis.summarize(result_of(d), resamples=200, valid_seeds_only=True)
    assert s["n_seeds"] == 2 and s["dropped_seeds"] == 2 and [r["cis"] for r in s["rows"]][:4] == [1, 1, 0.5, 0]
    low = cis.summarize(result_of([[0] * 6, [0] * 6, [1] * 6]), resamples=200)  # k=0 at 1/3, k=T at 1/3
    assert len(low["warnings"]) == 1 and "k=0" in low["warnings"][0]
    high = cis.summarize(result_of([[1] * 6, [1] * 6, [1, 0, 0, 0, 0, 0]]), resamples=200)  # k=T at 2/3
    assert len(high["warnings"]) == 1 and "k=5" in high["warnings"][0] and "false positives" in high["warnings"][0]
    assert high["crossings"]["tau50"]["step"] is None
    assert "tau50: never crosses" in cis.table(high)
    gone = cis.summarize(result_of([[0] * 6]), resamples=200, valid_seeds_only=True)
    assert gone["n_seeds"] == 0 and gone["crossings"]["tau50"]["step"] is None and "no seed left" in gone["warnings"][0]
    assert "never crosses" in cis.table(gone)


def lock_in_decisions(lock_steps, ks):
    """Each seed shows the concept while k < its own lock-in step: the per-seed step curve."""
    return (np.asarray(ks)[None, :] < np.asarray(lock_steps)[:, None]).astype(float)


def test_bootstrap_interval_is_deterministic_and_order_free():
    rng = np.random.default_rng(1)
    ks = list(range(21))
    d = lock_in_decisions(rng.integers(4, 15, size=24), ks)
    a = cis.bootstrap_crossing(d, ks, 0.5, resamples=1000)
    assert a == cis.bootstrap_crossing(d, ks, 0.5, resamples=1000)
    assert a["low"] < cis.first_crossing(ks, cis.cis_curve(d)) < a["high"] and a["never"] == 0.0
    # the same seeds listed in another order (a resumed or merged run) give the same summary
    r = cis.CISResult(list(range(24)), ks, 20, np.linspace(10, 0, 21).tolist(), d, 0.5, "c")
    order = rng.permutation(24)
    shuffled = cis.CISResult([r.seeds[i] for i in order], ks, 20, r.sigmas, d[order], 0.5, "c")
    assert cis.summarize(r, resamples=300) == cis.summarize(shuffled, resamples=300)


def test_bootstrap_interval_covers_the_true_crossing_of_a_step_curve():
    """Seeds lock in at a step drawn from a known distribution, so the true CIS(k) = P(lock-in > k) and
    its tau50 are known; over 1000 simulated runs of 32 seeds the 95% interval must contain it about 95%
    of the time. Measured (these runs): 95% interval 0.946; a 90% one (percentiles 5/95) 0.888; a 99% one
    (0.5/99.5) 0.990. The window [0.92, 0.97] is >= 3 binomial standard deviations from each of them."""
    ks = list(range(21))
    probs = np.full(21, 0.0)
    probs[5:16] = 1 / 11                                      # lock-in step uniform on 5..15
    true_curve = np.array([(np.arange(21) > k) @ probs for k in ks])  # P(lock-in > k) = P(decision at k)
    true_tau50 = cis.first_crossing(ks, true_curve)
    assert true_tau50 == pytest.approx(9.5)
    rng = np.random.default_rng(0)
    covered = []
    for _ in range(1000):
        d = lock_in_decisions(rng.choice(21, size=32, p=probs), ks)
        ci = cis.bootstrap_crossing(d, ks, 0.5, resamples=1000)
        covered.append(ci["low"] <= true_tau50 <= ci["high"])
    assert 0.92 <= np.mean(covered) <= 0.97, f"coverage {np.mean(covered):.3f} of a nominal 95% interval"


def percentile(values, q):
    """The q-quantile (0..1) of values, linear between order statistics (numpy's default), by hand."""
    v = sorted(values)
    pos = q * (len(v) - 1)
    lo = int(pos)
    return v[lo] + (pos - lo) * (v[min(lo + 1, len(v) - 1)] - v[lo])


def test_bootstrap_interval_is_the_2_5_and_97_5_percentiles_of_the_resampled_crossings():
    """The interval recomputed here from the same resamples (seeds drawn with replacement by
    numpy's default_rng(seed).integers, as cis.bootstrap_crossing documents its fixed RNG): every
    resampled curve is monotone here, so each crosses once, read by hand."""
    rng = np.random.default_rng(3)
    ks = list(range(21))
    S, resamples, seed = 40, 4000, 11
    d = lock_in_decisions(rng.integers(3, 18, size=S), ks)
    got = cis.bootstrap_crossing(d, ks, 0.5, resamples=resamples, seed=seed)
    crossings = []
    for pick in np.random.default_rng(seed).integers(0, S, size=(resamples, S)):
        curve = d[pick].mean(axis=0)
        i = next(i for i in range(20) if curve[i] >= 0.5 > curve[i + 1])
        crossings.append(ks[i] + (curve[i] - 0.5) / (curve[i] - curve[i + 1]))
    assert got["never"] == 0.0
    assert got["low"] == pytest.approx(percentile(crossings, 0.025), abs=1e-9)
    assert got["high"] == pytest.approx(percentile(crossings, 0.975), abs=1e-9)
    # the test tells a 95% interval from a 90% one (and a 99% one) by far more than its tolerance
    assert percentile(crossings, 0.05) - percentile(crossings, 0.025) > 0.05
    assert percentile(crossings, 0.975) - percentile(crossings, 0.95) > 0.05
    assert percentile(crossings, 0.025) - percentile(crossings, 0.005) > 0.05


def test_table_and_csv_text_read_the_summary():
    d = [[1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]]
    s = cis.summarize(result_of(d, concept="a blue circle"), resamples=300)
    text = cis.table(s)
    assert text.splitlines()[0] == "CIS of 'a blue circle' over 4 seeds"
    assert "    2  " in text and "  2/4" in text and "tau50: step 2.00 [" in text and "of 5, noise axis" in text
    assert "controls: k=0 (concept only) 1.00, k=5 (base only) 0.25" in text
    lines = cis.csv_text(s).splitlines()
    assert lines[0] == "k,tau,sigma,successes,n,cis,low,high" and len(lines) == 7
    k1 = lines[2].split(",")
    assert k1[0] == "1" and k1[3:6] == ["3", "4", "0.75"] and float(k1[6]) == pytest.approx(cis.wilson_interval(3, 4)[0], rel=1e-5)
    assert lines[-1].split(",")[:3] == ["5", "1", "0"]


def test_cis_result_round_trips_through_json_and_rejects_bad_records():
    import json
    r = cis.CISResult(np.array([3, 1]), np.arange(3), 2, torch.tensor([2.0, 1.0, 0.0]).tolist(),
                      np.array([[0.9, 0.2, 0.1], [0.7, 0.6, 0.0]], dtype=np.float32), np.float32(0.5), "c", {"a": 1})
    back = cis.CISResult.from_json(json.loads(json.dumps(r.to_json())))
    assert back.seeds == [3, 1] and back.ks == [0, 1, 2] and np.array_equal(back.scores, r.scores)
    assert back.decisions.tolist() == [[True, False, False], [True, True, False]]
    with pytest.raises(ValueError, match="distinct"):
        cis.CISResult([1, 1], [0, 1, 2], 2, [2.0, 1.0, 0.0], np.zeros((2, 3)), 0.5, "c")
    with pytest.raises(ValueError, match="sorted"):
        cis.CISResult([1], [2, 0], 2, [2.0, 1.0, 0.0], np.zeros((1, 2)), 0.5, "c")
    with pytest.raises(ValueError, match="0..steps"):
        cis.CISResult([1], [0, 3], 2, [2.0, 1.0, 0.0], np.zeros((1, 2)), 0.5, "c")
    with pytest.raises(ValueError, match="steps \\+ 1"):
        cis.CISResult([1], [0, 2], 3, [2.0, 1.0, 0.0], np.zeros((1, 2)), 0.5, "c")
