"""UI workflows (what users drag into ComfyUI) <-> API prompts, by the frontend's widget rules.

Pure Python: the node definitions come as GET /object_info reports them (`node_info` builds that
from a node class in-process). The widget rules are the frontend's (comfyui_frontend_package 1.27):
- widgets follow the node's `input_order` (required, then optional); an input is a widget when its
  type is INT, FLOAT, STRING, BOOLEAN or COMBO (or a list of options) and it is not forceInput;
- an INT widget gets a second, unserialised "control_after_generate" value when its options say
  so, or by the legacy rule when it is named seed or noise_seed; a COMBO only when its options say so;
- LoadImage's upload button adds one trailing value; Note / MarkdownNote nodes are canvas-only.
The browser tier checks these rules against the real frontend's own graphToPrompt."""
from __future__ import annotations

import uuid

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
CANVAS_ONLY = {"Note", "MarkdownNote", "PrimitiveNode", "Reroute"}


def node_info(node_class) -> dict:
    """What GET /object_info says about one node class (server.py's node_info, inputs and outputs only)."""
    if hasattr(node_class, "GET_NODE_INFO_V1"):
        return node_class.GET_NODE_INFO_V1()
    inputs = node_class.INPUT_TYPES()
    outputs = list(node_class.RETURN_TYPES)
    return {"input": inputs, "input_order": {k: list(v.keys()) for k, v in inputs.items()},
            "output": outputs, "output_name": list(getattr(node_class, "RETURN_NAMES", outputs)),
            "output_is_list": list(getattr(node_class, "OUTPUT_IS_LIST", [False] * len(outputs)))}


def widget_inputs(info: dict) -> list[tuple[str, bool]]:
    """(name, has a control_after_generate value) for each widget of a node, in the frontend's order."""
    declared = info["input"]
    order = info.get("input_order") or {k: list(v) for k, v in declared.items()}
    widgets = []
    for section in ("required", "optional"):
        for name in order.get(section, []):
            decl = declared.get(section, {}).get(name)
            if decl is None:
                continue
            kind = "COMBO" if isinstance(decl[0], list) else decl[0]
            opts = decl[1] if len(decl) > 1 and isinstance(decl[1], dict) else {}
            if kind not in WIDGET_TYPES or opts.get("forceInput"):
                continue
            control = opts.get("control_after_generate")  # the frontend's `??`: None counts as unset
            if control is None:
                control = kind == "INT" and name in ("seed", "noise_seed")
            elif kind not in ("INT", "COMBO"):
                control = False
            widgets.append((name, bool(control)))
    return widgets


def to_api(workflow: dict, object_info: dict[str, dict]) -> dict:
    """UI workflow -> API prompt {id: {class_type, inputs}}: links become [source id, slot], widgets_values
    are assigned by widget_inputs. Canvas-only nodes and muted/bypassed nodes (mode 2/4) are left out."""
    link_src = {link[0]: (str(link[1]), link[2]) for link in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        if node["type"] in CANVAS_ONLY or node.get("mode", 0) in (2, 4):
            continue
        if node["type"] not in object_info:
            raise KeyError(f"node {node['id']}: type {node['type']!r} is not installed")
        values = list(node.get("widgets_values") or [])
        inputs = {}
        for name, control in widget_inputs(object_info[node["type"]]):
            if not values:
                break
            inputs[name] = values.pop(0)
            if control:
                values.pop(0)
        for slot in node.get("inputs", []):
            if slot.get("link") is not None:
                inputs[slot["name"]] = list(link_src[slot["link"]])
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs,
                                   "_meta": {"title": node.get("title", node["type"])}}
    return prompt


def fresh_run_names(prompt: dict) -> dict:
    """Each run_name made unique, so a run folder left in the host's output/ by an earlier run (maybe of an
    older version, with other settings) is neither resumed nor refused."""
    tag = uuid.uuid4().hex[:8]
    for node in prompt.values():
        if "run_name" in node["inputs"]:
            node["inputs"]["run_name"] = f"{node['inputs']['run_name']}-test-{tag}"
    return prompt
