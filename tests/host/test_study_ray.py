"""`python -m pci_core study-ray` on a local Ray cluster of 2 CPU workers, each driving a ComfyUI server of
its own through the public API: a demo study (3 concepts x 8 seeds) whose folder equals what CIS Study
writes in one process; again with one worker, and once with one worker's ComfyUI server, killed in the
middle of a unit (same result, the unit run again elsewhere, nothing counted twice); a re-run that resumes
with nothing left; and a workflow ComfyUI refuses, named before any unit runs."""
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from pci_core import results
from pci_cluster.testbed.demo_workflows import demo_workflow

from study_reference import SEEDS, VALUES, cis_study_folder, folders

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed in ComfyUI's Python")

REPO = Path(__file__).resolve().parents[2]


def study_ray(workflow: dict, out: Path, tmp_path: Path, *extra: str) -> subprocess.Popen:
    path = tmp_path / f"workflow-{time.time_ns()}.json"
    path.write_text(json.dumps(workflow))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "pci_core", "study-ray", str(path), "--values", ",".join(VALUES),
                             "--seeds", SEEDS, "--out", str(out), "--workers", "2", "--seed-block", "4", *extra],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(proc: subprocess.Popen, timeout: float = 600) -> tuple[str, str]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out, err


def workers_of(proc: subprocess.Popen, busy: bool) -> list:
    """This driver's Ray worker processes (each starts a ComfyUI server; busy: running a unit): only
    descendants of the process this test started."""
    import psutil
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            title = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "StudyWorker" in title and (not busy or "StudyWorker.full" in title):
            found.append(child)
    return found


@pytest.fixture(scope="module")
def cis_study(host, tmp_path_factory):
    return cis_study_folder(host, f"ray-reference-{uuid.uuid4().hex[:8]}")  # a fresh folder in the host's output


@pytest.fixture(scope="module")
def distributed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("study_ray")
    out = tmp / "study"
    stdout, _ = finished(study_ray(demo_workflow(), out, tmp))
    return out, stdout, tmp


def test_the_study_folder_equals_cis_study_in_one_process(distributed, cis_study):
    out, stdout, _ = distributed
    assert "6 units in" in stdout and "2 workers were ready" in stdout
    assert sorted(line.split(" pid ")[0] for line in stdout.splitlines() if " pid " in line)  # where units ran
    mine, theirs = folders(out), {v: results.read_results(cis_study / v / results.RESULTS_FILE) for v in VALUES}
    for value in VALUES:
        (h, seeds, scores), (ref_h, ref_seeds, ref_scores) = mine[value], theirs[value]
        order = np.argsort(seeds)
        assert sorted(seeds) == sorted(ref_seeds) == list(range(8))
        assert h["ks"] == ref_h["ks"] and h["sigmas"] == ref_h["sigmas"] and h["concept"] == ref_h["concept"] == value
        assert np.array_equal(scores[order] >= 0.5, ref_scores[np.argsort(ref_seeds)] >= 0.5)  # the same decisions
        assert np.array_equal(scores[order], ref_scores[np.argsort(ref_seeds)])  # the rule judge: exact scores
        same = ("model", "sampler", "scheduler", "cfg", "base_prompt", "concept_prompt", "negative_prompt",
                "latent_size", "latent")
        assert {k: h["settings"][k] for k in same} == {k: ref_h["settings"][k] for k in same}
    assert json.loads((out / "study.json").read_text())["concepts"] == [{"folder": v, "label": v} for v in VALUES]
    assert (out / "study.png").is_file() and "tau50" in (out / "study.txt").read_text()
    units = json.loads((out / "study_units.json").read_text())["units"]
    assert len(units) == 6 and len({u["pid"] for u in units}) == 2  # both workers ran units


def victim_of(proc, out: Path, server: bool):
    """Once a unit is written, a worker running the next one (server: that worker's ComfyUI server)."""
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        busy = workers_of(proc, busy=True) if (out / "study_units.json").is_file() else []
        found = [c for w in busy for c in w.children() if "main.py" in " ".join(c.cmdline())] if server else busy
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no {'server' if server else 'worker'} was seen running a unit")


@pytest.mark.parametrize("server, said", [(False, "died during unit"), (True, "ComfyUI server died during unit")],
                         ids=["worker", "its ComfyUI server"])
def test_a_worker_or_its_server_killed_mid_unit_changes_nothing(distributed, tmp_path, server, said):
    import psutil
    reference, _, _ = distributed
    out = tmp_path / "study"
    proc = study_ray(demo_workflow(), out, tmp_path)
    victim = victim_of(proc, out, server)
    os.kill(victim.pid, signal.SIGKILL)
    stdout, stderr = finished(proc)
    assert said in stderr and "the unit runs again on another worker" in stderr
    mine, theirs = folders(out), folders(reference)
    for value in VALUES:
        (_, seeds, scores), (_, ref_seeds, ref_scores) = mine[value], theirs[value]
        assert sorted(seeds) == sorted(ref_seeds) and len(seeds) == len(set(seeds))  # nothing lost or twice
        assert np.array_equal(scores[np.argsort(seeds)], ref_scores[np.argsort(ref_seeds)])
    units = json.loads((out / "study_units.json").read_text())["units"]
    assert len(units) == 6 and sum(u["attempts"] == 2 for u in units) == 1
    assert "1 of them run again after a worker died" in stdout
    assert not psutil.pid_exists(victim.pid) or psutil.Process(victim.pid).status() == psutil.STATUS_ZOMBIE


def test_a_rerun_resumes_with_nothing_left_and_changes_no_file(distributed):
    out, _, tmp = distributed
    before = {p.name: (p / results.RESULTS_FILE).read_bytes() for p in out.iterdir() if p.is_dir()}
    stdout, _ = finished(study_ray(demo_workflow(), out, tmp))
    assert stdout.startswith("0 units")
    assert {p.name: (p / results.RESULTS_FILE).read_bytes() for p in out.iterdir() if p.is_dir()} == before


def test_an_adaptive_study_equals_cis_studys_adaptive_search(host, tmp_path):
    """--adaptive: a unit per concept, the search's rounds run in the worker; the same ks and scores as
    CIS Study's adaptive search in one process (20 steps: the coarse grid 0, 7, 14, 20 and refinement)."""
    template = demo_workflow()
    template["7"]["inputs"]["steps"] = 20
    stdout, _ = finished(study_ray(template, tmp_path / "study", tmp_path, "--adaptive"))
    assert stdout.startswith("3 units")
    reference = cis_study_folder(host, f"ray-adaptive-reference-{uuid.uuid4().hex[:8]}", steps=20, adaptive=True)
    refined = 0
    for value in VALUES:
        h, seeds, scores = results.read_results(tmp_path / "study" / value / results.RESULTS_FILE)
        ref_h, ref_seeds, ref_scores = results.read_results(reference / value / results.RESULTS_FILE)
        assert h["ks"] == ref_h["ks"] and h["settings"]["search"] == "adaptive", (value, h["ks"], ref_h["ks"])
        assert np.array_equal(scores[np.argsort(seeds)], ref_scores[np.argsort(ref_seeds)])
        refined += len(h["ks"]) > 4
    assert refined  # some concept needed more than the coarse grid


@pytest.mark.parametrize("break_it, named", [
    (lambda w: w.update({"9": {"class_type": "PCINoSuchNode", "inputs": {}}}), "PCINoSuchNode"),
    (lambda w: w["1"]["inputs"].update(weights="missing_weights.safetensors"), "missing_weights.safetensors"),
], ids=["unknown node", "missing model file"])
def test_a_workflow_comfyui_refuses_is_named_before_any_unit_runs(tmp_path, break_it, named):
    bad = demo_workflow()
    break_it(bad)
    proc = study_ray(bad, tmp_path / "study", tmp_path)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: workflow:") and named in line, err[-2000:]
    assert not (tmp_path / "study" / "blue").exists()  # no unit ran
