"""The demo model's study workflow as an API prompt (host-free): what the study tests and benchmarks run."""
from __future__ import annotations

from pci_core.demo.demo_model import WEIGHTS_FILE
from pci_core.demo.world import DEMO_BASE


def demo_inputs(base: str, concept: str, batch: int = 1) -> dict:
    """Nodes 1-6 of a demo-model graph: model (1: MODEL, CLIP, VAE), base (2), concept (3) and empty negative (4)
    conditionings, a 64 px empty latent (5) and the rule judge (6)."""
    return {
        "1": {"class_type": "PCIDemoModelLoader", "inputs": {"weights": WEIGHTS_FILE}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": base}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": concept}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": batch}},
        "6": {"class_type": "PCIJudgeLoader", "inputs": {"backend": "rule", "model": "", "weights": "none (rule judge)",
                                                        "device": "cpu"}},
    }


def demo_workflow(judge_text="{}", concept=DEMO_BASE.replace("red", "{}")) -> dict:
    """The API prompt of a demo-model CIS Sweep whose concept prompt and judge text hold the slot."""
    return {
        **demo_inputs(DEMO_BASE, concept),
        "7": {"class_type": "CISSweep", "inputs": {
            "model": ["1", 0], "base": ["2", 0], "concept": ["3", 0], "negative": ["4", 0], "latent": ["5", 0],
            "vae": ["1", 2], "judge": ["6", 0], "judge_text": judge_text, "seed": 0, "seed_count": 1, "seed_list": "",
            "insert_steps": "all", "steps": 4, "cfg": 4.0, "sampler_name": "euler", "scheduler": "normal",
            "threshold": 0.5, "max_batch": 0, "valid_seeds_only": False, "run_name": "study", "contrast": ""}},
    }
