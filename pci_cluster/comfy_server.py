"""A ComfyUI server started by the pack on loopback: what a study worker drives through the public API
(pci_cluster.comfy_client), one per GPU (--cuda-device) or per CPU (--cpu). Its output, temp and input
folders are a scratch folder of its own, removed when it stops; the pack is found in ComfyUI's
custom_nodes or, where it is not installed there, through an extra_model_paths file naming a folder
that links to this checkout. On Linux the server dies with the process that started it (a killed worker
leaves no server behind)."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .comfy_client import ComfyClient
from .headless import PACK_NAME, PACK_ROOT, comfyui_path

PACK_ID = 'name = "prompt-conditioned-intervention"'  # pyproject.toml of this pack, wherever it is installed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pack_installed(comfy: Path) -> bool:
    """Is this pack already one of ComfyUI's custom nodes (a folder or a link holding its pyproject)?"""
    for folder in (comfy / "custom_nodes").glob("*"):
        project = folder / "pyproject.toml"
        if project.is_file() and PACK_ID in project.read_text(encoding="utf-8", errors="replace"):
            return True
    return False


def _die_with_parent():  # runs in the child before exec: SIGTERM when the starting process dies (Linux)
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class LocalServer:
    """`python main.py --listen 127.0.0.1 --port N` with its device; start() waits until it answers."""

    def __init__(self, comfy_path: str | os.PathLike | None = None, device: str = "cpu", python: str | None = None,
                 threads: int | None = None, port: int | None = None):
        self.comfy = comfyui_path(comfy_path)
        self.device, self.python, self.threads = device, python or sys.executable, threads
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.scratch = Path(tempfile.mkdtemp(prefix="pci_comfy_server_"))
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        cmd = [self.python, "main.py", "--listen", "127.0.0.1", "--port", str(self.port), "--disable-auto-launch",
               "--output-directory", str(self.scratch / "output"), "--temp-directory", str(self.scratch),
               "--input-directory", str(self.scratch / "input")]
        if self.device == "cpu":
            cmd.append("--cpu")
        elif str(self.device).isdigit():  # "cuda": the GPUs this process sees (a Ray worker sees its own)
            cmd += ["--cuda-device", str(self.device)]
        if not pack_installed(self.comfy):
            links = self.scratch / "custom_nodes"
            links.mkdir(exist_ok=True)
            (links / PACK_NAME).symlink_to(PACK_ROOT, target_is_directory=True)
            config = self.scratch / "extra_model_paths.yaml"
            config.write_text(f"pci_pack:\n  custom_nodes: {links}\n", encoding="utf-8")
            cmd += ["--extra-model-paths-config", str(config)]
        return cmd

    def start(self, timeout: float = 300.0) -> "LocalServer":
        env = dict(os.environ)
        if self.threads:
            env["OMP_NUM_THREADS"] = str(self.threads)
        self.log = open(self.scratch / "server.log", "w")
        self.proc = subprocess.Popen(self.command(), cwd=self.comfy, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env, preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        client, deadline = ComfyClient(self.url, timeout=5), time.time() + timeout
        while not client.alive():
            if self.proc.poll() is not None or time.time() > deadline:
                tail = (self.scratch / "server.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"ComfyUI at {self.comfy} did not start on port {self.port}:\n{tail}")
            time.sleep(0.5)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.scratch, ignore_errors=True)
