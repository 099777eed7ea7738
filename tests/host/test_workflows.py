"""The example workflows (UI format, as dragged into ComfyUI) load and run in the real host."""
import json
from pathlib import Path

import pytest

WORKFLOWS = sorted((Path(__file__).resolve().parents[2] / "workflows").glob("*.json"))
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def to_api(workflow: dict, host) -> dict:
    """UI workflow -> API prompt, assigning widgets_values in the order the node declares its inputs
    (a seed with control_after_generate carries one extra UI value)."""
    link_src = {l[0]: (str(l[1]), l[2]) for l in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        info = host.nodes.NODE_CLASS_MAPPINGS[node["type"]]
        spec = info.GET_NODE_INFO_V1() if hasattr(info, "GET_NODE_INFO_V1") else None
        declared = spec["input"] if spec else info.INPUT_TYPES()
        inputs = {i["name"]: list(link_src[i["link"]]) for i in node.get("inputs", []) if i.get("link") is not None}
        values = list(node.get("widgets_values", []))
        for section in ("required", "optional"):
            for name, decl in declared.get(section, {}).items():
                kind = decl[0] if isinstance(decl[0], str) else "COMBO"
                opts = decl[1] if len(decl) > 1 else {}
                if name in inputs or (kind not in WIDGET_TYPES and not isinstance(decl[0], list)):
                    continue
                if not values:
                    break
                inputs[name] = values.pop(0)
                if opts.get("control_after_generate"):
                    values.pop(0)
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_runs_in_comfyui(host, path):
    workflow = json.loads(path.read_text())
    for node in workflow["nodes"]:
        assert node["type"] in host.nodes.NODE_CLASS_MAPPINGS, node["type"]
    ok, events, _ = host.run(to_api(workflow, host))
    assert ok, [d for e, d in events if e in ("execution_error", "validation_error")]


def test_there_are_workflows():
    assert WORKFLOWS, "workflows/ has no example workflow"
