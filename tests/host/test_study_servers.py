"""`study-ray --servers URL,...`: a study on ComfyUI servers the user runs, through ComfyUI's public API
alone. The test starts real servers on loopback (pci_cluster.comfy_server, this checkout linked into their
custom nodes) and checks: the folder equals CIS Study's in one process; a server SIGKILLed in the middle
of a unit changes nothing (its unit runs on the other server); a re-run resumes with nothing left; a
workflow ComfyUI refuses is named before any unit runs; nothing but the given URLs is contacted."""
import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pci_cluster.comfy_client import ComfyClient
from pci_cluster.comfy_server import LocalServer
from pci_cluster.testbed.demo_workflows import demo_workflow
from pci_core import results

from study_reference import SEEDS, VALUES, cis_study_folder, folders

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def servers():
    started = [LocalServer(os.environ["COMFYUI_PATH"], "cpu", threads=1).start() for _ in range(2)]
    yield started
    for server in started:
        server.stop()


def study_on(servers: list[str], workflow: dict, out: Path, tmp_path: Path, *extra: str) -> subprocess.Popen:
    path = tmp_path / f"workflow-{time.time_ns()}.json"
    path.write_text(json.dumps(workflow))
    return subprocess.Popen([sys.executable, "-m", "pci_core", "study-ray", str(path), "--values", ",".join(VALUES),
                             "--seeds", SEEDS, "--out", str(out), "--seed-block", "2", "--servers", ",".join(servers),
                             *extra], cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(proc, timeout: float = 600) -> tuple[str, str]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out, err


@pytest.fixture(scope="module")
def reference(host):
    import uuid
    return cis_study_folder(host, f"servers-reference-{uuid.uuid4().hex[:8]}")


def same_scores(out: Path, reference: Path) -> None:
    mine, theirs = folders(out), {v: results.read_results(reference / v / results.RESULTS_FILE) for v in VALUES}
    for value in VALUES:
        (h, seeds, scores), (ref_h, ref_seeds, ref_scores) = mine[value], theirs[value]
        assert sorted(seeds) == sorted(ref_seeds) == list(range(8)) and len(seeds) == len(set(seeds))
        assert h["ks"] == ref_h["ks"] and h["sigmas"] == ref_h["sigmas"] and h["concept"] == value
        assert np.array_equal(scores[np.argsort(seeds)], ref_scores[np.argsort(ref_seeds)])


def test_a_study_on_servers_equals_cis_study_and_resumes(servers, reference, tmp_path):
    out = tmp_path / "study"
    stdout, _ = finished(study_on([servers[0].url], demo_workflow(), out, tmp_path))
    assert stdout.startswith("12 units") and f"node {servers[0].url} (server): 12 units" in stdout
    same_scores(out, reference)
    units = json.loads((out / "study_units.json").read_text())["units"]
    assert len(units) == 12 and {u["node"] for u in units} == {servers[0].url}
    before = {p.name: (p / results.RESULTS_FILE).read_bytes() for p in out.iterdir() if p.is_dir()}
    stdout, _ = finished(study_on([servers[0].url], demo_workflow(), out, tmp_path))
    assert stdout.startswith("0 units")
    assert {p.name: (p / results.RESULTS_FILE).read_bytes() for p in out.iterdir() if p.is_dir()} == before


def test_a_server_killed_mid_unit_changes_nothing(reference, tmp_path):
    doomed, survivor = (LocalServer(os.environ["COMFYUI_PATH"], "cpu", threads=1).start() for _ in range(2))
    try:
        out = tmp_path / "study"
        proc = study_on([doomed.url, survivor.url], demo_workflow(), out, tmp_path)
        client, deadline, killed = ComfyClient(doomed.url, timeout=2), time.time() + 300, False
        while not killed and time.time() < deadline and proc.poll() is None:
            try:
                running = client.request("/queue")["queue_running"]
            except Exception:  # noqa: BLE001  (the server is still starting or busy answering)
                running = []
            if running and (out / "study_units.json").is_file():  # a unit is written and another one is running
                os.kill(doomed.proc.pid, signal.SIGKILL)
                killed = True
            time.sleep(0.05)
        assert killed, "the server was never seen running a unit"
        stdout, stderr = finished(proc)
        assert f"server {doomed.url} went away" in stderr and "the unit runs again on another worker" in stderr
        same_scores(out, reference)
        units = json.loads((out / "study_units.json").read_text())["units"]
        assert len(units) == 12 and sum(u["attempts"] == 2 for u in units) == 1
        assert [u["node"] for u in units if u["attempts"] == 2] == [survivor.url]
    finally:
        doomed.stop()
        survivor.stop()


@pytest.mark.parametrize("break_it, named", [
    (lambda w: w.update({"9": {"class_type": "PCINoSuchNode", "inputs": {}}}), "PCINoSuchNode"),
    (lambda w: w["1"]["inputs"].update(weights="missing_weights.safetensors"), "missing_weights.safetensors"),
], ids=["unknown node", "missing model file"])
def test_a_workflow_a_server_refuses_is_named_before_any_unit_runs(servers, tmp_path, break_it, named):
    bad = demo_workflow()
    break_it(bad)
    proc = study_on([servers[1].url], bad, tmp_path / "study", tmp_path)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: workflow:") and named in line, err[-2000:]
    assert not (tmp_path / "study" / "blue").exists()


def test_a_server_that_does_not_answer_is_named(tmp_path):
    from pci_cluster.comfy_server import free_port
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    proc = study_on([url], demo_workflow(), tmp_path / "study", tmp_path)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and f"--servers: no server answered (ComfyUI at {url} cannot be reached" in err


def test_a_rerun_with_another_workflow_is_refused_even_with_nothing_left(servers, tmp_path):
    """cfg 4 -> 9 after every seed is done: 0 units to run, yet the smallest run's header is held against
    the stored concepts and the study stops, naming the setting; nothing is written; the units log keeps
    the first run's units."""
    out = tmp_path / "study"
    finished(study_on([servers[0].url], demo_workflow(), out, tmp_path, "--values", "blue", "--seeds", "0-1"))
    log = (out / "study_units.json").read_bytes()
    changed = demo_workflow()
    changed["7"]["inputs"]["cfg"] = 9.0
    proc = study_on([servers[0].url], changed, out, tmp_path, "--values", "blue", "--seeds", "0-1")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2 and "was made with another workflow (differing: settings.cfg)" in err, err[-2000:]
    assert (out / "study_units.json").read_bytes() == log
    stdout, _ = finished(study_on([servers[0].url], demo_workflow(), out, tmp_path, "--values", "blue",
                                  "--seeds", "0-3"))  # the same workflow, two more seeds: the log grows
    units = json.loads((out / "study_units.json").read_text())["units"]
    assert stdout.startswith("1 units") and [u["seeds"] for u in units] == [[0, 1], [2, 3]]


def test_values_that_would_share_a_folder_are_refused_before_any_work(tmp_path):
    proc = study_on(["http://127.0.0.1:9"], demo_workflow(), tmp_path / "study", tmp_path, "--values", "old person,old_person")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "--values: 'old person' and 'old_person' would share the result folder" in err
    assert not (tmp_path / "study").exists()


def test_a_study_over_lora_strengths_runs_on_a_server(servers, tmp_path):
    """Values fill a whole-value slot (CreateHookLoraModelOnly's strength_model = "{}"): a study over the demo
    LoRA's strengths; at strength 0 the concept is the base itself (never green), at 1 the LoRA turns the
    shapes green when inserted from the start."""
    template = demo_workflow(judge_text="green")
    template["3"] = {"class_type": "ConditioningSetProperties", "inputs": {
        "cond_NEW": ["2", 0], "strength": 1.0, "set_cond_area": "default", "hooks": ["8", 0]}}
    template["8"] = {"class_type": "CreateHookLoraModelOnly", "inputs": {
        "lora_name": "pci_demo_green.safetensors", "strength_model": "{}"}}
    out = tmp_path / "strengths"
    finished(study_on([servers[1].url], template, out, tmp_path, "--values", "0,1", "--seeds", "0-3"))
    (_, _, none), (header, _, full) = (results.read_results(out / v / results.RESULTS_FILE) for v in ("0", "1"))
    assert header["concept"] == "green" and not (none >= 0.5).any()
    assert (full[:, 0] >= 0.5).mean() >= 0.75 and not (full[:, -1] >= 0.5).any()


def test_a_server_restarted_mid_unit_takes_units_again(tmp_path):
    """One server, killed while it runs a unit and started again on the same port: the driver waits for it
    (asking every 2 s), gives it the lost unit again, and the study ends with every seed once."""
    server = LocalServer(os.environ["COMFYUI_PATH"], "cpu", threads=1).start()
    restarted = None
    try:
        out = tmp_path / "study"
        proc = study_on([server.url], demo_workflow(), out, tmp_path, "--values", "blue", "--seeds", "0-5")
        client, deadline = ComfyClient(server.url, timeout=2), time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            try:
                running = client.request("/queue")["queue_running"]
            except Exception:  # noqa: BLE001  (still starting)
                running = []
            if running and (out / "study_units.json").is_file():
                os.kill(server.proc.pid, signal.SIGKILL)
                server.proc.wait()
                restarted = LocalServer(os.environ["COMFYUI_PATH"], "cpu", threads=1, port=server.port).start()
                break
            time.sleep(0.05)
        assert restarted is not None, "the server was never seen running a unit"
        stdout, stderr = finished(proc)
        assert f"server {server.url} went away" in stderr and f"server {server.url} answers again" in stderr
        _, seeds, _ = results.read_results(out / "blue" / results.RESULTS_FILE)
        assert sorted(seeds) == list(range(6))
        units = json.loads((out / "study_units.json").read_text())["units"]
        assert len(units) == 3 and sum(u["attempts"] == 2 for u in units) == 1
    finally:
        server.stop()
        if restarted is not None:
            restarted.stop()


def test_files_a_study_workflow_saves_come_back_to_the_study_folder(servers, tmp_path):
    """A SaveImage in the workflow writes on the server; the driver brings each unit's files back into
    <concept>/outputs/seeds-<first>-<last>/ (nothing is left only in a worker's scratch folder)."""
    template = demo_workflow()
    template["9"] = {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "pci/curve"}}
    out = tmp_path / "study"
    finished(study_on([servers[0].url], template, out, tmp_path, "--values", "blue", "--seeds", "0-3"))
    saved = sorted((out / "blue" / "outputs").rglob("*.png"))
    # ComfyUI numbers files by its own output counter, which other tests on this server advance too.
    assert [(p.parent.name, p.name.startswith("curve_")) for p in saved] == [("seeds-0-1", True), ("seeds-2-3", True)], saved


def test_an_in_process_comfyui_removes_its_link_folder_when_it_exits(tmp_path):
    code = ("import os, tempfile; from pci_cluster.headless import Headless; h = Headless(os.environ['COMFYUI_PATH']); "
            "print([p for p in os.listdir(tempfile.gettempdir()) if p.startswith('pci_custom_nodes_')])")
    import tempfile
    before = {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("pci_custom_nodes_")}
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    during = set(ast.literal_eval(r.stdout.strip().splitlines()[-1])) - before
    after = {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("pci_custom_nodes_")}
    assert len(during) == 1 and not during & after
