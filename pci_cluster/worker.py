"""One Ray worker of a distributed study: a ComfyUI server of its own on loopback (pci_cluster.comfy_server,
on the GPU Ray gave it, or the CPU), started once, and the study's units run on it through ComfyUI's public
API (pci_cluster.unit_runner). Only plain data goes back to the driver, which alone writes the study folder.
The server dies with the worker; a server that dies under it ends the unit with ServerGone, and the driver
gives the unit to another worker."""
from __future__ import annotations

import os

from .comfy_client import ComfyClient
from .comfy_server import LocalServer
from .unit_runner import UnitRunner


class StudyWorker:
    def __init__(self, comfy_path: str | None, cpu: bool, key: str, threads: int | None = None):
        import ray
        if not (comfy_path and os.path.isfile(os.path.join(comfy_path, "main.py"))):
            comfy_path = os.environ.get("COMFYUI_PATH")  # this machine's own, when the driver's path is not here
        # Ray sets CUDA_VISIBLE_DEVICES to this worker's GPU: the server sees it alone (no --cuda-device)
        self.server = LocalServer(comfy_path, "cpu" if cpu else "cuda", threads=threads).start()
        where = {"node": ray.util.get_node_ip_address(), "pid": os.getpid(), "server_pid": self.server.proc.pid,
                 "gpus": [str(g) for g in ray.get_gpu_ids()], "device": "cpu" if cpu else "cuda"}
        self.runner = UnitRunner(ComfyClient(self.server.url, timeout=120), key, where)

    def where(self) -> dict:
        return self.runner.where

    def check(self, prompt: dict, sweep_id: str) -> str | None:
        return self.runner.check(prompt, sweep_id)

    def full(self, template: dict, value: str, seeds: list[int]) -> dict:
        return self.runner.full(template, value, seeds)

    def adaptive(self, template: dict, value: str, seeds: list[int]) -> dict:
        return self.runner.adaptive(template, value, seeds)

    def stop(self) -> None:
        self.server.stop()
