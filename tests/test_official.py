"""The official PCI runner's results files (<out>/<concept>/results.json, lists of {seed, vqa_binary,
timesteps, negative_prompt, target_prompt, ablated_prompt}), written here in that format: read with our
statistics, and our runs exported in it, so both tools read each other's results."""
import json

import numpy as np
import pytest

from pci_core import cis, cli, official, results, schedule

from test_cis_stats import official_first_crossing

DISCRETE_20 = [951, 901, 851, 801, 751, 701, 651, 601, 551, 501, 451, 401, 351, 301, 251, 201, 151, 101, 51, 1]


def official_records(decisions, timesteps, negative=None, first_seed=0):
    """What the runner's _append_record writes: one record per seed, keys in its dataclass's order."""
    return [{"seed": first_seed + i, "vqa_binary": [int(d) for d in row], "timesteps": list(timesteps),
             "negative_prompt": negative, "target_prompt": "a photo of a person",
             "ablated_prompt": "a photo of an old person"} for i, row in enumerate(decisions)]


def write(folder, records):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(records, indent=2))


def falling(n_seeds, T, rng):
    """Per seed: yes until its own lock-in step, no after (switch point j: concept from step j on)."""
    stops = rng.integers(2, T - 2, size=n_seeds)
    return np.array([[j < stop for j in range(T)] for stop in stops])


def test_official_results_read_with_our_statistics(tmp_path):
    rng = np.random.default_rng(1)
    decisions = falling(12, 20, rng)
    write(tmp_path / "out" / "old", official_records(decisions, DISCRETE_20))
    result = official.read_official(tmp_path / "out" / "old")
    assert result.concept == "old" and result.seeds == list(range(12)) and result.ks == list(range(20))
    assert result.steps == 20 and np.array_equal(result.decisions, decisions)
    table = official.diffusers_discrete_sigmas()
    assert result.sigmas == [float(table[t]) for t in DISCRETE_20] + [0.0] and result.settings["noise"] == "discrete"
    summary = cis.summarize(result)
    assert summary["crossings"]["tau50"]["step"] == cis.first_crossing(list(range(20)), decisions.mean(0))
    assert summary["controls"] == {"concept_only": 1.0, "base_only": None}  # the runner has no k = T run


def test_flow_timesteps_give_flow_sigmas_and_kinds_of_records_are_chosen(tmp_path):
    flow = [1000, 934, 850, 743, 600, 400, 180]  # int(sigma * 1000) of a shifted flow schedule
    decisions = falling(4, 7, np.random.default_rng(2))
    records = official_records(decisions, flow) + official_records(~decisions, flow, negative="blurry")
    write(tmp_path / "hat", records)
    with pytest.raises(ValueError, match=r"seeds \[0, 1, 2, 3\] have records without and with a negative prompt; choose"):
        official.read_official(tmp_path / "hat")
    plain = official.read_official(tmp_path / "hat", negative="without")
    assert plain.sigmas == [t / 1000 for t in flow] + [0.0] and plain.settings["noise"] == "flow"
    assert np.array_equal(plain.decisions, decisions)
    assert np.array_equal(official.read_official(tmp_path / "hat", negative="with").decisions, ~decisions)


def test_our_runs_export_to_the_official_format_and_read_back(tmp_path):
    rng = np.random.default_rng(3)
    sigmas = [float(s) for s in schedule.make_schedule("normal", schedule.discrete_sigmas(), 10)]
    scores = np.concatenate([falling(6, 11, rng).astype(float)], axis=0)
    header = {"concept": "a blue shape", "ks": list(range(11)), "steps": 10, "sigmas": sigmas, "threshold": 0.5,
              "settings": {**{k: "x" for k in results.SETTINGS_KEYS}, "base_prompt": "a red circle",
                           "concept_prompt": "a blue circle", "negative_prompt": ""}}
    results.RunStore(tmp_path / "run", header).add(list(range(6)), scores)
    assert cli.main(["export-official", str(tmp_path / "run"), "--out", str(tmp_path / "theirs")]) == 0
    records = json.loads((tmp_path / "theirs" / "a_blue_shape" / "results.json").read_text())  # the concept's folder
    assert list(records[0]) == ["seed", "vqa_binary", "timesteps", "negative_prompt", "target_prompt", "ablated_prompt",
                                "base_only"]  # their keys in their order, then the control their code ignores
    assert all(len(r["vqa_binary"]) == len(r["timesteps"]) == 10 for r in records)  # no k = T entry
    assert records[0]["timesteps"][0] == 999 and records[0]["timesteps"] == sorted(records[0]["timesteps"], reverse=True)
    assert records[0]["target_prompt"] == "a red circle" and records[0]["ablated_prompt"] == "a blue circle"
    assert records[0]["negative_prompt"] is None
    back = official.read_official(tmp_path / "theirs" / "a_blue_shape")
    assert np.array_equal(back.decisions, scores >= 0.5) and back.ks == list(range(11))  # k = T read back
    assert cis.summarize(back)["controls"] == cis.summarize(results.merge_runs([tmp_path / "run"]))["controls"]
    assert np.allclose(back.sigmas[:-1], sigmas[:-1], rtol=0.02)  # timesteps are whole numbers: sigmas rounded
    valid = [s for s in range(6) if scores[s, 0] >= 0.5 and scores[s, 10] < 0.5]
    assert (tmp_path / "theirs" / "a_blue_shape" / "seeds.txt").read_text() == "".join(f"{s}\n" for s in valid)


def test_report_reads_ours_and_theirs_side_by_side(tmp_path, capsys):
    write(tmp_path / "official" / "old", official_records(falling(8, 20, np.random.default_rng(4)), DISCRETE_20))
    write(tmp_path / "official" / "young", official_records(falling(8, 20, np.random.default_rng(5)), DISCRETE_20))
    assert cli.main(["report", str(tmp_path / "official"), "--out", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert "== old" in out and "== young" in out and "tau50: step" in out
    assert (tmp_path / "report" / "study.png").is_file()
    assert cli.main(["report", str(tmp_path / "nothing")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_two_readings_of_a_curve_that_falls_twice_are_both_reported(tmp_path):
    """A curve that falls through 0.5, rises and falls again: the default reads the last fall (the
    official runner's), the table's warning gives the other reading."""
    d = np.array([[1, 1, 0, 1, 1, 0, 0]] * 3 + [[1, 1, 1, 1, 1, 0, 0]] * 1 + [[1, 0, 0, 0, 0, 0, 0]] * 2, dtype=bool)
    result = cis.CISResult(list(range(6)), list(range(7)), 6, [6, 5, 4, 3, 2, 1, 0], d.astype(float), 0.5, "x")
    summary = cis.summarize(result, resamples=200)
    assert summary["crossings"]["tau50"]["step"] == pytest.approx(4.0 + (4 / 6 - 0.5) / (4 / 6))
    assert any("read from the clean end (used here)" in w and "noisy end" in w for w in summary["warnings"])
    noisy = cis.summarize(result, resamples=200, reading=cis.NOISY_END)
    assert noisy["crossings"]["tau50"]["step"] == pytest.approx(1.0 + (4 / 6 - 0.5) / (4 / 6 - 1 / 6))


# ---------------------------------------------------------------- their noise axis, as their code computes it

def their_tau_from_sigmas(sigmas):
    """pci/core/utils.py tau_from_sigmas of adagorgun/PCI-Prompt-Controlled-Interventions (a0ad6a0),
    written out (checked once against their own module, which is not part of this repository)."""
    sig = np.asarray(sigmas, dtype=np.float64)
    if sig.ndim != 1:
        sig = sig.reshape(-1)
    eps = 1e-20
    logsnr = -np.log(np.maximum(sig**2, eps))
    if logsnr[0] > logsnr[-1]:
        logsnr = logsnr[::-1]
    lmin, lmax = float(logsnr.min()), float(logsnr.max())
    denom = max(lmax - lmin, 1e-12)
    return (logsnr - lmin) / denom


def their_first_crossing(x, y, thr=0.5):
    """pci/core/utils.py first_crossing, written out (test_cis_stats holds it, NaN for None)."""
    found = official_first_crossing(x, y, thr)
    return float("nan") if found is None else found


def diffusers_discrete_sigmas():
    """sigma_t = sqrt((1 - alphas_cumprod) / alphas_cumprod), scaled_linear betas 0.00085-0.012 in float32
    (diffusers' DDIM / EulerAncestral tables for SD2.1 and SDXL)."""
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=np.float32) ** 2
    ac = np.cumprod(1.0 - betas, dtype=np.float32)
    return np.sqrt((1 - ac) / ac)


SD_50 = list(range(981, 0, -20))  # SD2.1 DDIM / SDXL "leading" spacing, 50 steps: 981, 961, ..., 1


def sd35_timesteps(n=28, shift=3.0):
    """int(t) of FlowMatchEulerDiscreteScheduler (shift 3): t = 1000 sigma, sigma shifted from linspace."""
    s = np.linspace(1.0, 1 / n, n)
    return [int(1000 * v) for v in shift * s / (1 + (shift - 1) * s)]


def their_taus(records, sigma_of):
    cis = np.mean([r["vqa_binary"] for r in records], axis=0)
    tau = their_tau_from_sigmas([sigma_of(t) for t in records[0]["timesteps"]])
    x, y = tau[::-1], cis[::-1]  # the clean end first: CIS rises there
    return their_first_crossing(x, y, 0.5), their_first_crossing(x, y, 0.7)


@pytest.mark.parametrize("schedule_name, timesteps, sigma_of", [
    ("SD discrete", SD_50, lambda t: float(diffusers_discrete_sigmas()[t])),
    ("SD3.5 flow", sd35_timesteps(), lambda t: t / 1000),
    ("FLUX flow", [int(1000 * v) for v in np.exp(1.15) / (np.exp(1.15) + (1 / np.linspace(1, 1 / 28, 28) - 1))],
     lambda t: t / 1000),
])
def test_report_gives_their_tau50_and_tau70_on_their_axis(tmp_path, capsys, schedule_name, timesteps, sigma_of):
    rng = np.random.default_rng(7)
    records = official_records(falling(24, len(timesteps), rng), timesteps)
    write(tmp_path / "out" / "old", records)
    tau50, tau70 = their_taus(records, sigma_of)
    assert np.isfinite(tau50) and np.isfinite(tau70)
    got = official.official_crossings(official.read_official(tmp_path / "out" / "old"))
    assert got["tau50"] == pytest.approx(tau50, abs=1e-9) and got["tau70"] == pytest.approx(tau70, abs=1e-9)
    assert cli.main(["report", str(tmp_path / "out")]) == 0
    line = [l for l in capsys.readouterr().out.splitlines() if l.startswith("official runner's noise axis")][0]
    assert f"tau50 {tau50:.4f}" in line and f"tau70 {tau70:.4f}" in line and f"over the {len(timesteps)} switch" in line


def test_their_axis_is_min_max_over_what_it_is_given():
    assert np.allclose(official.official_tau([4, 2, 1, 0]), [0, 0.0284, 0.0568, 1], atol=5e-5)  # issue 27's numbers
    assert np.allclose(official.official_tau([4, 2, 1]), [0, 0.5, 1])
    assert np.allclose(schedule.tau_from_sigmas([4.0, 2.0, 1.0, 0.0]).numpy(), [0, 1 / 3, 2 / 3, 1])  # ours


def test_a_concept_that_cannot_be_read_is_named_and_the_others_are_reported(tmp_path, capsys):
    write(tmp_path / "out" / "old", official_records(falling(6, 20, np.random.default_rng(8)), DISCRETE_20))
    write(tmp_path / "out" / "empty", [])
    write(tmp_path / "out" / "twice", official_records(falling(2, 20, np.random.default_rng(9)), DISCRETE_20) * 2)
    assert cli.main(["report", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "== old" in out and "tau50: step" in out
    assert "== empty\nnot read: " in out and "no records; CIS is undefined" in out
    assert "== twice\nnot read: " in out and "twice/results.json: seeds must be distinct" in out


def test_seeds_with_one_kind_of_record_each_read_together(tmp_path):
    d = falling(4, 20, np.random.default_rng(10))
    write(tmp_path / "mixed", official_records(d[:2], DISCRETE_20) +
          official_records(d[2:], DISCRETE_20, negative="blurry", first_seed=2))
    result = official.read_official(tmp_path / "mixed")  # no seed has both kinds: read per seed
    assert sorted(result.seeds) == [0, 1, 2, 3]
    assert len(official.read_official(tmp_path / "mixed", negative="without").seeds) == 2


def test_export_refuses_two_runs_of_one_concept(tmp_path, capsys):
    sigmas = [float(s) for s in schedule.make_schedule("normal", schedule.discrete_sigmas(), 4)]
    for name in ("a", "b"):
        header = {"concept": "blue", "ks": list(range(5)), "steps": 4, "sigmas": sigmas, "threshold": 0.5,
                  "settings": {k: "x" for k in results.SETTINGS_KEYS}}
        results.RunStore(tmp_path / name, header).add([0], np.ones((1, 5)))
    assert cli.main(["export-official", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "x")]) == 2
    assert "a and b are both runs of the concept 'blue': merge them first" in capsys.readouterr().err
