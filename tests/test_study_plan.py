"""The distributed study's host-free parts: the workflow as a template (checks, filling a unit), concept
values, the unit plan and its resume, and the error when Ray is missing (pci_cluster; no ComfyUI here)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pci_cluster import study_driver, workflow
from pci_core import results
from pci_cluster.testbed.demo_workflows import demo_workflow
from pci_core.demo.world import DEMO_BASE

REPO = Path(__file__).resolve().parents[1]


def test_a_unit_is_the_workflow_with_the_value_and_seeds_filled_in():
    template = demo_workflow()
    assert workflow.check(template) == ("7", [("3", "text"), ("7", "judge_text")])
    unit = workflow.unit_prompt(template, "blue", [4, 5, 6], "run-x", "0,2,4")
    assert unit["3"]["inputs"]["text"] == DEMO_BASE.replace("red", "blue") and unit["7"]["inputs"]["judge_text"] == "blue"
    assert unit["2"]["inputs"]["text"] == DEMO_BASE  # the base prompt is the workflow's
    assert unit["7"]["inputs"]["seed_list"] == "4,5,6" and unit["7"]["inputs"]["run_name"] == "run-x"
    assert unit["7"]["inputs"]["insert_steps"] == "0,2,4"
    assert template["3"]["inputs"]["text"].count("{}") == 1  # the template itself is untouched
    assert workflow.concept_texts(template, "green") == f"{DEMO_BASE.replace('red', 'green')} | green"


@pytest.mark.parametrize("change, message", [
    (lambda w: w.pop("7"), "0 CIS Sweep nodes"),
    (lambda w: w.update({"8": json.loads(json.dumps(w["7"]))}), r"2 CIS Sweep nodes \(7, 8\)"),
    (lambda w: w["7"]["inputs"].update(judge_text="blue"), r"judge_text 'blue' has no \{\}"),
    (lambda w: w["3"]["inputs"].update(text="a blue circle"), r"no text feeding CIS Sweep's concept input"),
    (lambda w: w["7"]["inputs"].update(base=["3", 0]), r"node 3 \(CLIPTextEncode\) input 'text' holds \{\} but feeds "
                                                        "the base prompt too"),
])
def test_a_workflow_that_cannot_be_a_study_is_named(change, message):
    template = demo_workflow()
    change(template)
    with pytest.raises(ValueError, match=message):
        workflow.check(template)


def test_workflow_files_are_api_prompts(tmp_path):
    ui = tmp_path / "ui.json"
    ui.write_text(json.dumps({"nodes": [], "links": []}))
    with pytest.raises(ValueError, match="UI format; export it with Workflow -> Export \\(API\\)"):
        workflow.load(ui)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="is not JSON"):
        workflow.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="workflow '.*missing.json' does not exist"):
        workflow.load(tmp_path / "missing.json")


def test_concept_values_from_a_list_a_file_or_a_taxonomy(tmp_path):
    assert study_driver.concept_values("old, young ") == ["old", "young"]
    with pytest.raises(ValueError, match=r"--values: duplicate concept\(s\) \['old'\]"):
        study_driver.concept_values("old,young,old")
    (tmp_path / "values.txt").write_text("old\n\nmiddle-aged\n")
    assert study_driver.concept_values(str(tmp_path / "values.txt")) == ["old", "middle-aged"]
    (tmp_path / "taxonomy.json").write_text(json.dumps({"people": {"age": ["young", "old"], "hair": ["red"]}}))
    assert study_driver.concept_values(str(tmp_path / "taxonomy.json"), "people.age") == ["young", "old"]
    with pytest.raises(ValueError, match="--path 'people' holds 2 lists"):
        study_driver.concept_values(str(tmp_path / "taxonomy.json"), "people")


def _header(ks=(0, 1, 2)):
    return {"concept": "blue", "ks": list(ks), "steps": 2, "sigmas": [2.0, 1.0, 0.0], "threshold": 0.5,
            "settings": {k: "x" for k in results.SETTINGS_KEYS}}


def test_the_plan_skips_what_the_study_folder_holds(tmp_path):
    results.RunStore(tmp_path / "blue", _header()).add([0, 1, 2], np.ones((3, 3)))
    units = study_driver.plan(["blue", "green"], list(range(6)), tmp_path, block=2, adaptive=False)
    assert [(u.value, u.seeds) for u in units] == [("blue", [3, 4]), ("blue", [5]), ("green", [0, 1]),
                                                   ("green", [2, 3]), ("green", [4, 5])]
    adaptive = study_driver.plan(["blue", "green"], [0, 1, 2], tmp_path, block=2, adaptive=True)
    assert [(u.value, u.seeds) for u in adaptive] == [("green", [0, 1, 2])]  # blue holds these seeds: done
    with pytest.raises(ValueError, match="holds an adaptive run over other seeds"):
        study_driver.plan(["blue"], [0, 1], tmp_path, block=2, adaptive=True)


def test_without_ray_the_command_names_the_extra_to_install(tmp_path):
    pytest.importorskip("numpy")
    try:
        import ray
        if hasattr(ray, "init"):  # not just Ray's session folder /tmp/ray seen as a namespace package
            pytest.skip("Ray is installed in this Python")
    except ImportError:
        pass
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps(demo_workflow()))
    r = subprocess.run([sys.executable, "-m", "pci_core", "study-ray", str(path), "--values", "blue", "--seeds", "0-1",
                        "--out", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "error: study-ray needs Ray: install the extra into the Python that runs ComfyUI, python -m pip install "
        "'prompt-conditioned-intervention[ray]' (or: pip install ray tqdm)"], r.stderr


def lora_workflow(lora_name="pci_demo_green.safetensors", strength="{}") -> dict:
    """A study over a LoRA's strengths (or files): the concept is the base text with the LoRA as a hook."""
    prompt = demo_workflow(judge_text="green")
    prompt["3"] = {"class_type": "ConditioningSetProperties", "inputs": {"cond_NEW": ["2", 0], "strength": 1.0,
                                                                         "set_cond_area": "default", "hooks": ["8", 0]}}
    prompt["8"] = {"class_type": "CreateHookLoraModelOnly", "inputs": {"lora_name": lora_name, "strength_model": strength}}
    return prompt


def test_a_study_over_lora_strengths_or_files_fills_whole_values():
    template = lora_workflow()
    assert workflow.check(template) == ("7", [("8", "strength_model")])  # one judge text for every strength
    assert workflow.unit_prompt(template, "0.5", [1], "r")["8"]["inputs"]["strength_model"] == 0.5
    assert workflow.unit_prompt(template, "2", [1], "r")["8"]["inputs"]["strength_model"] == 2
    files = lora_workflow(lora_name="{}", strength=1.0)
    unit = workflow.unit_prompt(files, "my_style.safetensors", [1], "r")
    assert unit["8"]["inputs"]["lora_name"] == "my_style.safetensors" and unit["7"]["inputs"]["judge_text"] == "green"
    assert unit["2"]["inputs"]["text"] == DEMO_BASE  # the base is untouched: the LoRA alone is inserted
    text = demo_workflow(judge_text="green")  # a text slot still needs {} in the judge text
    with pytest.raises(ValueError, match=r"judge_text 'green' has no \{\}"):
        workflow.check(text)


def test_a_unit_with_other_settings_than_its_folder_is_refused_by_name(tmp_path):
    """Every unit the driver receives is held against its concept's folder, not only the first (issue 27)."""
    from pci_core import cis
    template = demo_workflow()
    header = cis.run_header("blue", [0, 4], 4, [14.6, 5.0, 2.0, 1.0, 0.0], 0.5, {k: "x" for k in results.SETTINGS_KEYS})
    unit = lambda seeds, cfg: {**cis.CISResult.from_header({**header, "settings": {**header["settings"], "cfg": cfg}},
                                                          seeds, np.ones((len(seeds), 2))).to_json(),
                               "node": "n", "pid": 1, "gpus": [], "seconds": 1.0}
    writer = study_driver.Writer(tmp_path, template, adaptive=False)
    writer.add(study_driver.Unit("blue", [0, 1]), unit([0, 1], 4.0))
    with pytest.raises(ValueError, match=r"unit 'blue' seeds 2..3 \(2\) came back with other settings .* "
                                         r"\(differing: settings.cfg\)"):
        writer.add(study_driver.Unit("blue", [2, 3]), unit([2, 3], 9.0))
    assert results.read_results(tmp_path / "blue" / results.RESULTS_FILE)[1] == [0, 1]
