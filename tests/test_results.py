"""Run folders (results.json + cis.csv): resume, refusals that leave files untouched, merging shards."""
import json

import numpy as np
import pytest

from pci_core import cis, results

KS = [0, 2, 4, 6, 8]


def header(**settings):
    base = {"model": "demo", "sampler": "euler", "scheduler": "normal", "cfg": 4.0, "base_prompt": "a red circle",
            "concept_prompt": "a blue circle", "negative_prompt": "", "judge": "pixel: colour=blue",
            "latent_size": [8, 8]}
    return {"concept": "a blue circle", "ks": KS, "steps": 8, "sigmas": np.linspace(14.6, 0.0, 9).tolist(),
            "threshold": 0.5, "settings": {**base, **settings}}


def scores_for(seeds):
    """Judge-like scores (float32, as judges return them) that fall with k, different per seed."""
    rng = np.random.default_rng(list(seeds))
    lock = rng.uniform(1, 8, size=(len(seeds), 1))
    return np.clip(1.0 - np.array(KS) / lock / 2 + rng.normal(0, 0.1, (len(seeds), len(KS))), 0, 1).astype(np.float32)


def files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_resumed_run_writes_the_same_bytes_as_an_uninterrupted_one(tmp_path):
    seeds = list(range(10))
    whole = results.RunStore(tmp_path / "whole", header())
    whole.add(seeds, scores_for(seeds))
    first = results.RunStore(tmp_path / "resumed", header())
    first.add(seeds[:4], scores_for(seeds)[:4])
    again = results.RunStore(tmp_path / "resumed", header())  # a new session on the same folder
    assert again.done_seeds() == [0, 1, 2, 3]
    todo = [s for s in seeds if s not in again.done_seeds()]
    again.add(todo[:3], scores_for(seeds)[4:7])
    again.add(todo[3:], scores_for(seeds)[7:])
    assert files(tmp_path / "resumed") == files(tmp_path / "whole")  # no temporary file left behind either
    assert sorted(files(tmp_path / "whole")) == [results.LOCK_FILE, "cis.csv", "results.json"]  # the writers' lock


def test_results_json_schema_and_exact_scores(tmp_path):
    store = results.RunStore(tmp_path, header())
    store.add([7, 3], scores_for([7, 3]))
    data = json.loads((tmp_path / "results.json").read_text())
    assert (data["format"], data["version"], data["pack_version"]) == ("pci-cis-results", 1, "0.1.0")
    assert data["header"] == header() and [r["seed"] for r in data["records"]] == [7, 3]
    assert data["records"][0]["decisions"] == [bool(v >= 0.5) for v in scores_for([7, 3])[0]]
    back = results.RunStore(tmp_path, header()).result()
    assert back.seeds == [7, 3] and np.array_equal(back.scores, scores_for([7, 3]))  # float32 round-trips exactly
    assert back.ks == KS and back.concept == "a blue circle" and back.settings["latent_size"] == [8, 8]
    assert (tmp_path / "cis.csv").read_text() == cis.csv_text(cis.summarize(back, levels=()))


def test_other_settings_under_the_same_folder_are_refused_and_nothing_changes(tmp_path):
    results.RunStore(tmp_path, header()).add([0, 1], scores_for([0, 1]))
    before = files(tmp_path)
    other = header(sampler="euler_ancestral")
    other["steps"], other["sigmas"] = 9, np.linspace(14.6, 0.0, 10).tolist()
    with pytest.raises(ValueError) as e:
        results.RunStore(tmp_path, other)
    assert "steps" in str(e.value) and "settings.sampler" in str(e.value) and "nothing was overwritten" in str(e.value)
    assert "settings.cfg" not in str(e.value) and str(tmp_path / "results.json") in str(e.value)
    assert files(tmp_path) == before


@pytest.mark.parametrize("damage", ["truncated", "not json", "other format", "decisions disagree", "short record",
                                    "NaN score"])
def test_a_damaged_results_json_is_named_and_left_as_it_is(tmp_path, damage):
    results.RunStore(tmp_path, header()).add([0, 1], scores_for([0, 1]))
    path = tmp_path / "results.json"
    text = path.read_text()
    data = json.loads(text)
    if damage == "truncated":
        text = text[: len(text) // 2]
    elif damage == "not json":
        text = "\x00\x00garbage"
    elif damage == "other format":
        text = json.dumps([{"seed": 0, "vqa_binary": [1, 0]}])  # the official runner's list of records
    elif damage == "decisions disagree":
        data["records"][0]["decisions"][0] = not data["records"][0]["decisions"][0]
        text = json.dumps(data)
    elif damage == "NaN score":  # NaN >= threshold is False, so a 'no' decision beside it looks consistent
        data["records"][1]["scores"][2], data["records"][1]["decisions"][2] = float("nan"), False
        text = json.dumps(data)
    else:
        data["records"][1]["scores"] = data["records"][1]["scores"][:2]
        text = json.dumps(data)
    path.write_text(text)
    before = files(tmp_path)
    with pytest.raises(ValueError, match="results.json") as e:
        results.RunStore(tmp_path, header())
    assert str(path) in str(e.value) and "left as it is" in str(e.value)
    if damage == "NaN score":
        assert "seed 1 has the score nan at k=" in str(e.value)
    with pytest.raises(ValueError, match="results.json"):
        results.merge_runs([tmp_path])
    assert files(tmp_path) == before


def test_a_stale_cis_csv_is_rewritten_on_open(tmp_path):
    """A crash between the two atomic replaces leaves cis.csv one block behind results.json."""
    store = results.RunStore(tmp_path, header())
    store.add([0, 1], scores_for([0, 1]))
    good = (tmp_path / "cis.csv").read_bytes()
    (tmp_path / "cis.csv").write_text("k,tau\n")
    results.RunStore(tmp_path, header())
    assert (tmp_path / "cis.csv").read_bytes() == good
    (tmp_path / "cis.csv").unlink()
    results.RunStore(tmp_path, header())
    assert (tmp_path / "cis.csv").read_bytes() == good


def test_bad_additions_and_headers_are_clear_errors(tmp_path):
    store = results.RunStore(tmp_path, header())
    store.add([0], scores_for([0]))
    with pytest.raises(ValueError, match=r"seeds \[0\] are already in"):
        store.add([0, 5], scores_for([0, 5]))
    with pytest.raises(ValueError, match=r"shape \(1, 4\), need \(1, 5\)"):
        store.add([5], scores_for([5])[:, :4])
    with pytest.raises(ValueError, match="finite"):
        store.add([5], np.full((1, 5), np.nan))
    assert store.done_seeds() == [0] and results.RunStore(tmp_path, header()).done_seeds() == [0]
    bad = header()
    del bad["settings"]["sampler"]
    with pytest.raises(ValueError, match="sampler"):
        results.RunStore(tmp_path / "x", bad)
    with pytest.raises(ValueError, match="seeds"):
        results.RunStore(tmp_path / "x", {**header(), "seeds": [1, 2]})
    assert not (tmp_path / "x").exists()


def test_merging_shards_equals_the_whole_run(tmp_path):
    seeds = list(range(12))
    whole = results.RunStore(tmp_path / "whole", header())
    whole.add(seeds, scores_for(seeds))
    # two machines: seeds 6..11 and 0..6 (seed 6 run on both, identical), folders listed in any order
    results.RunStore(tmp_path / "b", header()).add(seeds[6:], scores_for(seeds)[6:])
    results.RunStore(tmp_path / "a", header()).add(seeds[:7], scores_for(seeds)[:7])
    merged = results.merge_runs([tmp_path / "b", tmp_path / "a"])
    assert merged.to_json() == whole.result().to_json()
    assert cis.summarize(merged, resamples=300) == cis.summarize(whole.result(), resamples=300)
    assert results.csv_of(merged) == (tmp_path / "whole" / "cis.csv").read_text()


def test_merging_refuses_shards_of_different_runs(tmp_path):
    results.RunStore(tmp_path / "a", header()).add([0, 1], scores_for([0, 1]))
    results.RunStore(tmp_path / "b", header(cfg=7.5, judge="clip")).add([2], scores_for([2]))
    with pytest.raises(ValueError) as e:
        results.merge_runs([tmp_path / "a", tmp_path / "b"])
    message = str(e.value)
    assert "settings.cfg" in message and "settings.judge" in message and "settings.sampler" not in message
    assert str(tmp_path / "a") in message and str(tmp_path / "b") in message
    results.RunStore(tmp_path / "c", header()).add([1], scores_for([1]) * 0.5)
    with pytest.raises(ValueError, match="seed 1 is in .* different scores"):
        results.merge_runs([tmp_path / "a", tmp_path / "c"])
    with pytest.raises(ValueError, match="no results.json"):
        results.merge_runs([tmp_path / "a", tmp_path / "missing"])
    with pytest.raises(ValueError, match="no folder"):
        results.merge_runs([])


@pytest.mark.parametrize("name", ["..", ".", "a/b", "a\\b", "/tmp/x", "../x", "", "  ", "c:x", None, 3])
def test_run_names_are_one_folder_name(name):
    """The one run-name rule of every node (CISSweep, CIS Study): no separator, no '..', not absolute."""
    with pytest.raises(ValueError, match=r"run_name=.*one folder name"):
        results.check_run_name(name)


def test_good_run_names_pass_stripped():
    assert results.check_run_name(" old-person_sd1.5 v2 ") == "old-person_sd1.5 v2"


# ---------------------------------------------------------------- several writers, one folder (issue 27)

def test_two_command_line_runs_on_one_folder_at_once_keep_both_seed_sets(tmp_path):
    """Two `python -m pci_core cis` runs (seeds 0-3 and 100-103) on the same --out, started together: each
    merges what the other wrote under the folder's lock, so both seed sets are stored, each once."""
    import subprocess
    import sys
    from pathlib import Path
    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "shared"
    cmd = [sys.executable, "-m", "pci_core", "cis", "--steps", "4", "--n", "4", "--out", str(out)]
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd + ["--seed", str(first)], cwd=repo, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for first in (0, 100)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    _, seeds, _ = results.read_results(out / results.RESULTS_FILE)
    assert sorted(seeds) == [0, 1, 2, 3, 100, 101, 102, 103]
    stored = results.RunStore(out, results.read_results(out / results.RESULTS_FILE)[0])
    assert stored.result().scores.shape == (8, 5)


def test_a_writer_merges_what_another_wrote_and_a_seed_again_must_bring_the_same_scores(tmp_path):
    a, b = results.RunStore(tmp_path / "run", header()), results.RunStore(tmp_path / "run", header())
    a.add([0, 1], scores_for([0, 1]))
    b.add([5], scores_for([5]))  # b never saw a's seeds: it merges them first
    assert results.read_results(tmp_path / "run" / results.RESULTS_FILE)[1] == [0, 1, 5]
    b.add([1], scores_for([0, 1])[1:])  # the same seed with the same scores: nothing to add
    with pytest.raises(ValueError, match=r"seeds \[1\] are already in .* with other scores"):
        b.add([1], scores_for([0, 1])[1:] * 0.5)
    assert results.read_results(tmp_path / "run" / results.RESULTS_FILE)[1] == [0, 1, 5]


def test_a_temporary_file_a_killed_writer_left_is_removed_and_a_folder_named_results_json_is_named(tmp_path):
    store = results.RunStore(tmp_path / "run", header())
    store.add([0], scores_for([0]))
    (tmp_path / "run" / ".results.json.0123abcd.tmp").write_text("half a file")
    results.RunStore(tmp_path / "run", header())
    assert not list((tmp_path / "run").glob("*.tmp"))
    (tmp_path / "odd" / results.RESULTS_FILE).mkdir(parents=True)
    with pytest.raises(ValueError, match=r"results.json is not a file"):
        results.RunStore(tmp_path / "odd", header())


def test_a_full_disk_names_the_file_and_keeps_the_previous_one(tmp_path, monkeypatch):
    import errno
    import os
    store = results.RunStore(tmp_path / "run", header())
    store.add([0], scores_for([0]))
    before = (tmp_path / "run" / results.RESULTS_FILE).read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match=r"could not write .*results.json \(No space left on device\); nothing was "
                                      r"lost: the previous file is intact"):
        store.add([1], scores_for([1]))
    assert (tmp_path / "run" / results.RESULTS_FILE).read_bytes() == before
    assert not list((tmp_path / "run").glob("*.tmp"))
