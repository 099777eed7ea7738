"""One worker of a distributed study: a headless ComfyUI with the pack loaded, started once, that runs
units (a concept's block of seeds, or a concept's whole adaptive search) through ComfyUI's own executor
and hands back plain data (seeds, ks, scores, the run's header): no shared filesystem is needed, the
driver alone writes the study folder. Run as a Ray actor (pci_cluster.study_driver)."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid

from . import workflow


class StudyWorker:
    def __init__(self, comfy_path: str | None, cpu: bool, threads: int | None = None):
        import torch
        if threads:
            torch.set_num_threads(threads)
        if not (comfy_path and os.path.isfile(os.path.join(comfy_path, "main.py"))):
            comfy_path = os.environ.get("COMFYUI_PATH")  # this machine's own, when the driver's path is not here
        from .headless import Headless
        self.output = tempfile.mkdtemp(prefix="pci_study_worker_")
        self.host = Headless(comfy_path, cpu=cpu, output_dir=self.output)

    def where(self) -> dict:
        """Where this worker runs: node address, process id, GPU ids (plain data for the driver's summary)."""
        import ray
        return {"node": ray.util.get_node_ip_address(), "pid": os.getpid(),
                "gpus": [str(g) for g in ray.get_gpu_ids()], "device": str(self.host.mm.get_torch_device())}

    def check(self, prompt: dict, sweep_id: str) -> str | None:
        """A unit's prompt checked before a study starts: ComfyUI's validation (unknown nodes, files not in
        a loader's list), then one run of it (the nodes' own errors: a weights file a V3 loader cannot find,
        a word the text encoder does not know). None, or what is wrong, naming the nodes and inputs."""
        valid, error, _, node_errors = self.host.validate(prompt)
        if not valid:
            lines = [f"{error.get('message', error)}" + (f": {error['details']}" if error.get("details") else "")]
            for node, found in node_errors.items():
                for e in found.get("errors", []):
                    lines.append(f"node {node} ({found.get('class_type')}): {e.get('message')}: {e.get('details')}")
            return "; ".join(lines)
        try:
            self._sweep(prompt, sweep_id)
        except ValueError as e:
            return str(e)
        return None

    def _sweep(self, prompt: dict, sweep_id: str):
        """Run a unit's prompt; the CIS Sweep node's CIS_RESULT (ValueError with ComfyUI's message on failure)."""
        ok, events, _ = self.host.run(prompt)
        if not ok:
            errors = [d.get("exception_message") or d.get("error") for e, d in events
                      if e in ("execution_error", "validation_error")]
            raise ValueError("; ".join(str(e) for e in errors) or "the prompt did not run")
        result = self.host.output(sweep_id, 2)
        shutil.rmtree(os.path.join(self.output, "pci", prompt[sweep_id]["inputs"]["run_name"]), ignore_errors=True)
        return result

    def full(self, template: dict, value: str, seeds: list[int]) -> dict:
        """Every k of the workflow's insert_steps for these seeds (CISResult.to_json, plain data)."""
        sweep_id, _ = workflow.check(template)
        t = time.time()
        result = self._sweep(workflow.unit_prompt(template, value, seeds, f"study-{uuid.uuid4().hex}"), sweep_id)
        return {**result.to_json(), "seconds": time.time() - t, **self.where()}

    def adaptive(self, template: dict, value: str, seeds: list[int]) -> dict:
        """The adaptive lock-in search over these seeds (pci_core.runner.adaptive_scores), one sweep per round;
        the sweep's controls k = 0 and T come with every round and are kept only where the search asks."""
        from pci_core import runner
        sweep_id, _ = workflow.check(template)
        t, last = time.time(), {}

        def measure(seeds: list, ks: list):
            prompt = workflow.unit_prompt(template, value, seeds, f"study-{uuid.uuid4().hex}", ",".join(map(str, ks)))
            last["result"] = self._sweep(prompt, sweep_id)
            return last["result"].scores[:, [last["result"].ks.index(k) for k in ks]]

        threshold = float(template[sweep_id]["inputs"]["threshold"])
        search, scores = runner.adaptive_scores(seeds, measure, int(template[sweep_id]["inputs"]["steps"]), threshold)
        return {**last["result"].to_json(), "ks": search.ks, "scores": scores.tolist(), "seconds": time.time() - t,
                **self.where()}
