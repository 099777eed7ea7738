"""What a distributed study is held against: CIS Study's folder for the same concepts, seeds and settings,
written in one process by the host's own executor."""
from pathlib import Path

from pci_cluster.testbed.demo_workflows import demo_workflow
from pci_core import results
from pci_core.demo.world import DEMO_BASE

VALUES, SEEDS = ["blue", "green", "yellow"], "0-7"


def folders(out: Path) -> dict:
    return {v: results.read_results(out / v / results.RESULTS_FILE) for v in VALUES}


def cis_study_folder(host, name: str, steps: int = 4, adaptive: bool = False) -> Path:
    """What CIS Study writes in one process for the same concepts, seeds and settings."""
    import folder_paths
    prompt = {k: v for k, v in demo_workflow().items() if k != "7" and k != "3"}
    prompt["8"] = {"class_type": "PCIConceptList", "inputs": {
        "clip": ["1", 1], "template": DEMO_BASE.replace("red", "{}"), "base_value": "red", "values": "\n".join(VALUES),
        "judge_template": "{}"}}
    prompt["9"] = {"class_type": "CISStudy", "inputs": {
        "model": ["1", 0], "concepts": ["8", 0], "negative": ["4", 0], "latent": ["5", 0], "seed": 0, "seed_count": 1,
        "seed_list": SEEDS,
        "steps": steps, "cfg": 4.0, "sampler_name": "euler", "scheduler": "normal", "vae": ["1", 2],
        "judge": ["6", 0], "threshold": 0.5, "max_batch": 0, "run_name": name, "adaptive": adaptive}}
    prompt["10"] = {"class_type": "PreviewAny", "inputs": {"source": ["9", 1]}}
    ok, events, _ = host.run(prompt)
    assert ok, [d for e, d in events if e.endswith("error")]
    return Path(folder_paths.get_output_directory()) / "pci" / name
