"""When does the demo LoRA's look lock in? (README "A LoRA inserted at step k"; not a test.)

The shipped workflow workflows/lora_insertion_demo.json (the green LoRA alone as the concept, judged "green")
run in real ComfyUI with --seeds seeds instead of its 8, and the same colour inserted as a prompt (the base
with "green" for "red") beside it: the CIS table of each and their tau50 / tau70 with bootstrap intervals.

    COMFYUI_PATH=~/comfyui-host/ComfyUI ~/comfyui-host/venv/bin/python bench/lora_insertion.py [--seeds 32]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tools")]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=32)
    args = p.parse_args()
    from pci_cluster.headless import Headless
    from pci_core import cis
    from pci_core.demo.world import DEMO_BASE
    from workflow_api import node_info, to_api
    host = Headless(os.environ["COMFYUI_PATH"])
    info = {name: node_info(cls) for name, cls in host.nodes.NODE_CLASS_MAPPINGS.items()}
    prompt = to_api(json.loads((REPO / "workflows" / "lora_insertion_demo.json").read_text()), info)
    sweep = next(i for i, n in prompt.items() if n["class_type"] == "CISSweep")
    prompt[sweep]["inputs"].update(seed_count=args.seeds, run_name=f"bench-lora-{uuid.uuid4().hex[:6]}")
    as_prompt = json.loads(json.dumps(prompt))
    concept_link = as_prompt[sweep]["inputs"]["concept"][0]
    base_link = as_prompt[sweep]["inputs"]["base"][0]
    as_prompt["99"] = {"class_type": "CLIPTextEncode", "inputs": {"clip": as_prompt[base_link]["inputs"]["clip"],
                                                                   "text": DEMO_BASE.replace("red", "green")}}
    as_prompt[sweep]["inputs"].update(concept=["99", 0], run_name=f"bench-lora-prompt-{uuid.uuid4().hex[:6]}")
    assert concept_link != "99"
    for label, graph in (("the LoRA alone", prompt), ("the word 'green' in the prompt", as_prompt)):
        ok, events, _ = host.run(graph)
        if not ok:
            print([d for e, d in events if e.endswith("error")])
            return 1
        result = host.output(sweep, 2)
        summary = cis.summarize(result)
        print(f"\n== {label}: {args.seeds} seeds, 20 euler steps, judged 'green'")
        print(cis.table(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
