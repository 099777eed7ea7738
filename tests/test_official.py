"""The official PCI runner's results files (<out>/<concept>/results.json, lists of {seed, vqa_binary,
timesteps, negative_prompt, target_prompt, ablated_prompt}), written here in that format: read with our
statistics, and our runs exported in it, so both tools read each other's results."""
import json

import numpy as np
import pytest

from pci_core import cis, cli, official, results, schedule

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
    table = schedule.discrete_sigmas()
    assert result.sigmas == [float(table[t]) for t in DISCRETE_20] + [0.0] and result.settings["noise"] == "discrete"
    summary = cis.summarize(result)
    assert summary["crossings"]["tau50"]["step"] == cis.first_crossing(list(range(20)), decisions.mean(0))
    assert summary["controls"] == {"concept_only": 1.0, "base_only": None}  # the runner has no k = T run


def test_flow_timesteps_give_flow_sigmas_and_kinds_of_records_are_chosen(tmp_path):
    flow = [1000, 934, 850, 743, 600, 400, 180]  # int(sigma * 1000) of a shifted flow schedule
    decisions = falling(4, 7, np.random.default_rng(2))
    records = official_records(decisions, flow) + official_records(~decisions, flow, negative="blurry")
    write(tmp_path / "hat", records)
    with pytest.raises(ValueError, match="holds records without and with a negative prompt; choose one"):
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
    records = json.loads((tmp_path / "theirs" / "run" / "results.json").read_text())
    assert list(records[0]) == ["seed", "vqa_binary", "timesteps", "negative_prompt", "target_prompt", "ablated_prompt"]
    assert all(len(r["vqa_binary"]) == len(r["timesteps"]) == 10 for r in records)  # no k = T entry
    assert records[0]["timesteps"][0] == 999 and records[0]["timesteps"] == sorted(records[0]["timesteps"], reverse=True)
    assert records[0]["target_prompt"] == "a red circle" and records[0]["ablated_prompt"] == "a blue circle"
    assert records[0]["negative_prompt"] is None
    back = official.read_official(tmp_path / "theirs" / "run")
    assert np.array_equal(back.decisions, scores[:, :10] >= 0.5)
    assert np.allclose(back.sigmas[:-1], sigmas[:-1], rtol=0.02)  # timesteps are whole numbers: sigmas rounded
    assert (tmp_path / "theirs" / "run" / "seeds.txt").read_text() == "".join(f"{s}\n" for s in range(6))


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
