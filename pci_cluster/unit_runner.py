"""A study's units on one ComfyUI server, through its public API (pci_cluster.comfy_client): each unit is
the user's workflow with a concept value and seeds filled in (pci_cluster.workflow), queued with POST
/prompt; its CIS Sweep writes output/pci/<run name>/results.json on the server, which comes back through
GET /view as plain data, with every other file the workflow saved (SaveImage, videos: type "output").
The driver alone writes the study folder.

On the server a study's concept keeps one run folder, output/pci/pci-study-<study key>-<concept>/ (an
adaptive round's, one per set of insertion steps): a unit re-run there reads back the seeds it already
holds, and the folders stay bounded. The study key is a fingerprint of the workflow and the study
folder, so another study or a changed workflow never meets an old folder."""
from __future__ import annotations

import hashlib
import json
import time

from pci_core import results, study
from pci_core.cis import CISResult

from . import workflow
from .comfy_client import ComfyClient, PromptFailed


def study_key(template: dict, out: str) -> str:
    """A short fingerprint of a study: its workflow and its output folder."""
    return hashlib.sha1(json.dumps([template, str(out)], sort_keys=True).encode()).hexdigest()[:10]


def run_name(key: str, value: str, insert_steps: str | None = None) -> str:
    name = f"pci-study-{key}-{study.folder_name(value)}"
    return name if insert_steps is None else f"{name}-k{hashlib.sha1(insert_steps.encode()).hexdigest()[:8]}"


class UnitRunner:
    """Units of one study on one server. where: plain data naming the worker (node, pid, device)."""

    def __init__(self, client: ComfyClient, key: str, where: dict, on_progress=None):
        self.client, self.key, self.where, self.on_progress = client, key, where, on_progress

    def check(self, prompt: dict, sweep_id: str) -> dict:
        """A unit's prompt run once before a study starts: ComfyUI's validation (unknown nodes, files not in
        a loader's list) and the nodes' own errors (a weights file a loader cannot find). {"problem": None or
        what is wrong, naming the nodes and inputs, "header": the run's header (what the study folder's
        runs are held against)}."""
        try:
            result, _ = self.sweep(prompt, sweep_id)
        except PromptFailed as e:
            return {"problem": str(e), "header": None}
        return {"problem": None, "header": result.header()}

    def sweep(self, prompt: dict, sweep_id: str) -> tuple[CISResult, list[dict]]:
        """Run a unit's prompt: the CIS Sweep's result (every seed its run folder holds) and the files the
        workflow saved, as [{"subfolder", "filename", "bytes"}]."""
        entry = self.client.run(prompt, self.on_progress)
        folder = f"pci/{prompt[sweep_id]['inputs']['run_name']}"
        text = self.client.view(results.RESULTS_FILE, folder).decode("utf-8")
        header, seeds, scores = results.parse_results(text, f"{self.client.url} {folder}/{results.RESULTS_FILE}")
        saved = [f for out in entry.get("outputs", {}).values() for files in out.values() if isinstance(files, list)
                 for f in files if isinstance(f, dict) and f.get("type") == "output" and "filename" in f]
        files = [{"subfolder": f.get("subfolder", ""), "filename": f["filename"],
                  "bytes": self.client.view(f["filename"], f.get("subfolder", ""))} for f in saved]
        return CISResult.from_header(header, seeds, scores), files

    def full(self, template: dict, value: str, seeds: list[int]) -> dict:
        """Every k of the workflow's insert_steps for these seeds: CISResult.to_json, files, timing, where."""
        sweep_id, _ = workflow.check(template)
        t = time.time()
        prompt = workflow.unit_prompt(template, value, seeds, run_name(self.key, value))
        result, files = self.sweep(prompt, sweep_id)
        return {**result.restrict(seeds).to_json(), "files": files, "seconds": time.time() - t, **self.where}

    def adaptive(self, template: dict, value: str, seeds: list[int]) -> dict:
        """The adaptive lock-in search over these seeds (pci_core.runner.adaptive_scores), one sweep per round;
        the sweep's controls k = 0 and T come with every round and are kept only where the search asks."""
        from pci_core import runner
        sweep_id, _ = workflow.check(template)
        t, last, files = time.time(), {}, []

        def measure(seeds: list, ks: list):
            steps = ",".join(map(str, ks))
            prompt = workflow.unit_prompt(template, value, seeds, run_name(self.key, value, steps), steps)
            result, saved = self.sweep(prompt, sweep_id)
            last["result"] = result.restrict(seeds)
            files.extend(saved)
            return last["result"].scores[:, [last["result"].ks.index(k) for k in ks]]

        threshold = float(template[sweep_id]["inputs"]["threshold"])
        search, scores = runner.adaptive_scores(seeds, measure, int(template[sweep_id]["inputs"]["steps"]), threshold)
        return {**last["result"].to_json(), "ks": search.ks, "scores": scores.tolist(), "files": files,
                "seconds": time.time() - t, **self.where}
