"""A user's workflow as a study template (host-free): an API-format prompt with exactly one CIS Sweep
node whose concept conditioning is made from an input holding a {} slot; each unit of a study is that
prompt with a concept value filled in and the sweep's seeds (and insertion steps) set.

A slot in a text ("a photo of a {} person") takes the value as words; an input that is exactly "{}" takes
the whole value, as a number where it reads as one: a LoRA file name (CreateHookLoraModelOnly's lora_name)
or a LoRA strength (strength_model), so a study runs over LoRAs or strengths in the same way. The judge
text then may keep one text for every value (a strength study judges one look); a text slot needs {} in
the judge text too, so each concept is judged on its own words."""
from __future__ import annotations

import copy
from pathlib import Path

from pci_core.results import read_json

SWEEP = "CISSweep"
SLOT = "{}"


def load(path) -> dict:
    """The API prompt in a workflow file; ValueError naming the file when it is not one."""
    path = Path(path)
    prompt = read_json(path, "workflow", "ComfyUI's API format (Workflow -> Export (API))")
    if isinstance(prompt, dict) and "nodes" in prompt and "links" in prompt:
        raise ValueError(f"workflow {str(path)!r} is in ComfyUI's UI format; export it with Workflow -> Export (API)")
    if not isinstance(prompt, dict) or not prompt or not all(
            isinstance(n, dict) and "class_type" in n and isinstance(n.get("inputs"), dict) for n in prompt.values()):
        raise ValueError(f"workflow {str(path)!r}: not an API-format prompt ({{node id: {{class_type, inputs}}}})")
    return prompt


def _upstream(prompt: dict, start) -> set[str]:
    """Node ids feeding an input link [node id, slot], the linked node included."""
    seen, todo = set(), [start]
    while todo:
        link = todo.pop()
        if not (isinstance(link, list) and len(link) == 2 and str(link[0]) in prompt) or str(link[0]) in seen:
            continue
        seen.add(str(link[0]))
        todo += [v for v in prompt[str(link[0])]["inputs"].values() if isinstance(v, list)]
    return seen


def check(prompt: dict) -> tuple[str, list[tuple[str, str]]]:
    """(the CIS Sweep node's id, the (node id, input name) strings that take the concept value); ValueError
    naming what is wrong: no or several CIS Sweep nodes, no {} in its judge_text or in the text its concept
    input is made from, a {} that reaches the base prompt too."""
    sweeps = sorted(i for i, n in prompt.items() if n["class_type"] == SWEEP)
    if len(sweeps) != 1:
        raise ValueError(f"workflow: {len(sweeps)} CIS Sweep nodes ({', '.join(sweeps) or 'none'}); a study runs one "
                         "(exactly one node of class CISSweep)")
    sweep = prompt[sweeps[0]]["inputs"]
    concept, base = _upstream(prompt, sweep.get("concept")), _upstream(prompt, sweep.get("base"))
    slots = [(i, name) for i in sorted(concept) for name, v in prompt[i]["inputs"].items()
             if isinstance(v, str) and SLOT in v]
    if SLOT not in str(sweep.get("judge_text", "")) and any(prompt[i]["inputs"][n] != SLOT for i, n in slots):
        raise ValueError(f"workflow: CIS Sweep (node {sweeps[0]}) judge_text {sweep.get('judge_text')!r} has no {SLOT}; "
                         f"write where each concept value goes, e.g. 'a {SLOT} person'")
    if not slots:
        raise ValueError(f"workflow: no text feeding CIS Sweep's concept input (node {sweeps[0]}) holds {SLOT}; put it "
                         f"in the concept prompt, e.g. 'a photo of a {SLOT} person'")
    shared = [f"node {i} ({prompt[i]['class_type']}) input {name!r}" for i, name in slots if i in base]
    if shared:
        raise ValueError(f"workflow: {', '.join(shared)} holds {SLOT} but feeds the base prompt too; give the concept "
                         "prompt its own text node")
    return sweeps[0], slots + ([(sweeps[0], "judge_text")] if SLOT in str(sweep.get("judge_text", "")) else [])


def unit_prompt(prompt: dict, value: str, seeds: list[int], run_name: str, insert_steps: str | None = None) -> dict:
    """The workflow with the concept value in every {} slot, the sweep's seed_list, run_name and (for an
    adaptive round) insert_steps set."""
    sweep_id, slots = check(prompt)
    out = copy.deepcopy(prompt)
    for node, name in slots:
        text = out[node]["inputs"][name]
        out[node]["inputs"][name] = whole_value(value) if text == SLOT else text.replace(SLOT, value)
    inputs = out[sweep_id]["inputs"]
    inputs["seed_list"] = ",".join(str(s) for s in seeds)
    inputs["run_name"] = run_name
    if insert_steps is not None:
        inputs["insert_steps"] = insert_steps
    return out


def whole_value(value: str):
    """A value for an input that is exactly {}: a number where it reads as one (a LoRA strength), else the text
    (a LoRA file name)."""
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() and "." not in value else number


def concept_texts(prompt: dict, value: str) -> str:
    """The texts a concept value makes (for the run's settings: which concept a folder holds)."""
    _, slots = check(prompt)
    return " | ".join(prompt[node]["inputs"][name].replace(SLOT, value) for node, name in slots)
