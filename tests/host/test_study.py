"""Host tier: PCI Concept List and CIS Study inside real ComfyUI, on the demo model."""
import json
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest

from pci_core import study
from pci_core.demo import demo_model, pipeline
from pci_core.demo import world_study
from pci_core.demo.world import DEMO_BASE

TEMPLATE = "a large {} circle on the left on a black background"


def errors_of(events):
    return [d for e, d in events if e in ("execution_error", "validation_error")]


@pytest.fixture()
def run_name():
    import folder_paths
    name = f"test_study_{uuid.uuid4().hex[:8]}"
    yield name
    shutil.rmtree(Path(folder_paths.get_output_directory()) / "pci" / name, ignore_errors=True)


def study_prompt(run_name, values="blue\nyellow", adaptive=False, steps=6, seeds="0-3", **concept_inputs):
    return {
        "1": {"class_type": "PCIDemoModelLoader", "inputs": {"weights": demo_model.WEIGHTS_FILE}},
        "2": {"class_type": "PCIConceptList", "inputs": {"clip": ["1", 1], "template": TEMPLATE, "base_value": "red",
                                                         "values": values, "judge_template": "a {} shape",
                                                         **concept_inputs}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "5": {"class_type": "PCIJudgeLoader", "inputs": {"backend": "rule", "model": "", "weights": "none (rule judge)",
                                                         "device": "cpu"}},
        "6": {"class_type": "CISStudy", "inputs": {
            "model": ["1", 0], "concepts": ["2", 0], "negative": ["3", 0], "latent": ["4", 0], "seed": 0, "seed_count": 1,
            "seed_list": seeds,
            "steps": steps, "cfg": 4.0, "sampler_name": "euler", "scheduler": "normal", "vae": ["1", 2],
            "judge": ["5", 0], "threshold": 0.5, "max_batch": 64, "run_name": run_name, "adaptive": adaptive}},
        "7": {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}},
        "8": {"class_type": "PreviewAny", "inputs": {"source": ["6", 1]}},
    }


def stored(run_name, concept):
    import folder_paths
    return json.loads((Path(folder_paths.get_output_directory()) / "pci" / run_name / concept / "results.json")
                      .read_text())


def test_study_nodes_are_registered_with_tooltips(host):
    for name in ("PCIConceptList", "CISStudy"):
        info = host.object_info(name)
        assert info["category"] == "PCI"
        inputs = {**info["input"]["required"], **info["input"].get("optional", {})}
        untipped = [k for k, v in inputs.items() if len(v) < 2 or not v[1].get("tooltip")
                    and k not in ("model", "negative", "steps", "cfg", "sampler_name", "scheduler", "vae")]
        assert not untipped, (name, untipped)


def test_study_graph_equals_the_standalone_demo_study_and_resumes(host, run_name, tmp_path):
    ok, events, _ = host.run(study_prompt(run_name))
    assert ok, errors_of(events)
    plot, table = host.output("6", 0), host.output("6", 1)
    assert plot.shape[0] == 1 and plot.shape[-1] == 3
    assert "blue" in table and "yellow" in table
    # every concept's folder holds what the standalone engine measures for the same seeds and settings
    standalone = dict((k.split("/")[-1], r) for k, _, r in world_study.run_study(
        demo_model.load(), {"demo_world.colour": world_study.attribute_concepts(DEMO_BASE, "colour",
                                                                                ["blue", "yellow"])},
        [0, 1, 2, 3], tmp_path, pipeline.SamplerSettings(steps=6)))
    for value in ("blue", "yellow"):
        data = stored(run_name, value)
        assert data["header"]["ks"] == list(range(7)) and data["header"]["concept"] == f"a {value} shape"
        decisions = np.array([r["decisions"] for r in data["records"]])
        assert np.array_equal(decisions, standalone[value].decisions), value
    # queued again with one more seed: the four stored seeds are read back, one is computed
    ok, events, _ = host.run(study_prompt(run_name, seeds="0-4"))
    assert ok, errors_of(events)
    assert [r["seed"] for r in stored(run_name, "blue")["records"]] == [0, 1, 2, 3, 4]
    merged = study.merge_studies([_folder(run_name)])  # output/pci/<run name> is a study folder
    assert [label for _, label, _ in merged] == ["blue", "yellow"]


def _folder(run_name):
    import folder_paths
    return Path(folder_paths.get_output_directory()) / "pci" / run_name


def test_adaptive_study_measures_fewer_steps_with_the_controls(host, run_name):
    ok, events, _ = host.run(study_prompt(run_name, values="green", adaptive=True, steps=12))
    assert ok, errors_of(events)
    header = stored(run_name, "green")["header"]
    assert header["settings"]["search"] == "adaptive"
    assert {0, 12} <= set(header["ks"]) and len(header["ks"]) < 13
    assert "green" in host.output("6", 1)


@pytest.mark.parametrize("inputs, message", [
    ({"template": "a large circle"}, "needs a {} slot"),
    ({"values": "blue\nblue"}, "duplicate concept"),
    ({"values": " \n "}, "values: empty"),
    ({"taxonomy_file": "/nonexistent/taxonomy.json"}, "taxonomy_file '/nonexistent/taxonomy.json': outside the folders"),
    ({"taxonomy_file": "../../../../../../etc/hostname"}, "taxonomy_file '../../../../../../etc/hostname': outside"),
    ({"taxonomy_file": "no_such_taxonomy.json"}, "no_such_taxonomy.json' does not exist"),  # in input/: looked for
    ({"values": "blue\nblue."}, "'blue' and 'blue.' would share the result folder 'blue'"),
    ({"taxonomy_file": str(world_study.TAXONOMY), "taxonomy_path": "demo_world.hue"}, "no key 'hue' in demo_world"),
    ({"taxonomy_file": str(world_study.TAXONOMY), "taxonomy_path": "demo_world"}, "holds 5 lists"),
])
def test_bad_concept_list_input_is_named(host, run_name, inputs, message):
    p = study_prompt(run_name, **inputs)
    ok, events, _ = host.run(p)
    assert not ok and message in str(errors_of(events)), errors_of(events)


def test_a_taxonomy_file_in_the_input_folder_is_read_and_its_content_never_echoed(host, run_name):
    import folder_paths
    secret = Path(folder_paths.get_input_directory()) / f"pci-test-{uuid.uuid4().hex[:6]}.json"
    secret.write_text(json.dumps({"aws": {"token": "AKIA-SECRET-1234"}, "colours": {"hue": ["blue", "yellow"]}}))
    try:
        ok, events, _ = host.run(study_prompt(run_name, taxonomy_file=secret.name, taxonomy_path="aws"))
        assert not ok and "AKIA-SECRET-1234" not in json.dumps([d for _, d in events]), errors_of(events)
        ok, events, _ = host.run(study_prompt(run_name, taxonomy_file=secret.name, taxonomy_path="colours.hue"))
        assert ok, errors_of(events)  # a file in ComfyUI's input folder is read by its name
    finally:
        secret.unlink()
