"""A real ComfyUI in this process, without its server: the pack loaded as a custom node, API prompts
validated and run by ComfyUI's own PromptExecutor. The host tier, the workflow tools, the benchmarks
and every worker of a distributed study run ComfyUI this way.

ComfyUI is found at a path (COMFYUI_PATH); importing this module imports nothing of it.
"""
from __future__ import annotations

import asyncio
import atexit
import inspect
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

PACK_ROOT = Path(__file__).resolve().parents[1]  # the custom node pack (its __init__.py, nodes/, pci_core/)
PACK_NAME = "pci_comfyui"


class HeadlessServer:
    """The few attributes PromptExecutor uses; events are kept for inspection."""

    def __init__(self):
        self.client_id = "headless"
        self.last_node_id = None
        self.last_prompt_id = None
        self.sockets_metadata = {}
        self.events: list[tuple[str, dict]] = []

    def send_sync(self, event, data, sid=None):
        self.events.append((event, data))

    def queue_updated(self):
        pass


def comfyui_path(path: str | os.PathLike | None = None) -> Path:
    """The ComfyUI folder (a path, else COMFYUI_PATH); FileNotFoundError naming what is missing."""
    path = path or os.environ.get("COMFYUI_PATH")
    if not path:
        raise FileNotFoundError("no ComfyUI: set COMFYUI_PATH to the ComfyUI folder (the one holding main.py)")
    if not (Path(path) / "main.py").is_file():
        raise FileNotFoundError(f"COMFYUI_PATH={str(path)!r}: no main.py in that folder; point it at the ComfyUI folder")
    return Path(path).resolve()


def make_executor(execution, server):
    """ComfyUI's PromptExecutor with the classic cache, whichever constructor this ComfyUI has: today's
    (execution.py at 04e2a914, ComfyUI 0.38) takes cache_args and reads cache_args["ram"] and
    ["ram_inactive"] on every run (0 = no RAM headroom kept, as main.py passes without --cache-ram); v0.3.64
    takes cache_size."""
    params = inspect.signature(execution.PromptExecutor.__init__).parameters
    if "cache_args" in params:
        return execution.PromptExecutor(server, cache_type=execution.CacheType.CLASSIC,
                                        cache_args={"lru": 0, "ram": 0.0, "ram_inactive": 0.0})
    return execution.PromptExecutor(server, cache_type=execution.CacheType.CLASSIC)


def cached_outputs(cache, node_id: str) -> list:
    """A node's outputs (one list per output slot) from the executor's output cache: today's cache
    (comfy_execution/caching.py at 0c5058b9) has a synchronous get_local returning CacheEntry(ui, outputs)
    (its get is a coroutine); v0.3.64's get returns the outputs list itself."""
    entry = cache.get_local(node_id) if hasattr(cache, "get_local") else cache.get(node_id)
    if entry is None:
        raise KeyError(f"node {node_id} has no cached outputs (it did not run in the last prompt)")
    return entry.outputs if hasattr(entry, "outputs") else entry


class Headless:
    """ComfyUI in-process with the pack loaded from PACK_ROOT (linked into a temporary custom_nodes folder).

    cpu=True forces ComfyUI's --cpu (decided when comfy.model_management is first imported, so it only
    takes effect for the first Headless of a process). output_dir: ComfyUI's output folder (default its own)."""

    def __init__(self, comfy_path: str | os.PathLike | None = None, cpu: bool = True, output_dir: str | None = None):
        path = comfyui_path(comfy_path)
        os.chdir(path)
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
        from comfy.cli_args import args
        if "comfy.model_management" not in sys.modules:
            args.cpu = cpu  # before comfy.model_management is imported
        import utils.extra_config  # noqa: F401  (main.py imports the top-level utils first)
        import comfy.model_management
        import comfy.utils
        import execution
        import folder_paths
        import nodes
        from comfy_execution.progress import get_progress_state
        from comfy_execution.utils import get_executing_context

        self.server = HeadlessServer()
        self.nodes, self.execution, self.mm, self.folder_paths = nodes, execution, comfy.model_management, folder_paths
        if output_dir is not None:
            folder_paths.set_output_directory(str(output_dir))
        links = Path(tempfile.mkdtemp(prefix="pci_custom_nodes_"))
        atexit.register(shutil.rmtree, links, ignore_errors=True)  # the link folder goes with the process
        (links / PACK_NAME).symlink_to(PACK_ROOT, target_is_directory=True)
        folder_paths.add_model_folder_path("custom_nodes", str(links))

        def progress_hook(value, total, preview_image, prompt_id=None, node_id=None):
            ctx = get_executing_context()
            if node_id is None and ctx is not None:
                node_id = ctx.node_id
            comfy.model_management.throw_exception_if_processing_interrupted()
            get_progress_state().update_progress(node_id, value, total, preview_image)
            self.server.send_sync("progress", {"value": value, "max": total, "node": node_id})

        t = time.time()
        asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
        comfy.utils.set_progress_bar_global_hook(progress_hook)
        self.startup_s = time.time() - t
        self.executor = make_executor(execution, self.server)
        import comfyui_version
        self.version = comfyui_version.__version__

    def validate(self, prompt: dict) -> tuple[bool, dict, list, dict]:
        """ComfyUI's own validation of an API prompt: (valid, error, output node ids, node errors)."""
        return asyncio.run(self.execution.validate_prompt(str(uuid.uuid4()), prompt, None))

    def run(self, prompt: dict):
        """Validate and execute a prompt: (ok, events, outputs by node id)."""
        self.server.events.clear()
        valid, err, outputs, node_errors = self.validate(prompt)
        if not valid:
            return False, [("validation_error", {"error": err, "node_errors": node_errors})], {}
        self.executor.execute(prompt, str(uuid.uuid4()), extra_data={"client_id": "headless"}, execute_outputs=outputs)
        return self.executor.success, list(self.server.events), self.executor.history_result.get("outputs", {})

    def output(self, node_id: str, index: int = 0):
        """A node's output value from the executor's cache (the first item of an output list)."""
        return cached_outputs(self.executor.caches.outputs, node_id)[index][0]

    def object_info(self, name: str) -> dict:
        """What GET /object_info reports for one node class (server.py's node_info for V3 nodes)."""
        return self.nodes.NODE_CLASS_MAPPINGS[name].GET_NODE_INFO_V1()

    def glue(self, name: str):
        """A module of the pack's ComfyUI glue (nodes/comfy_glue/<name>.py) as ComfyUI loaded it."""
        package = inspect.getmodule(self.nodes.NODE_CLASS_MAPPINGS["ConceptInsertionSampler"]).__package__
        return sys.modules[f"{package}.comfy_glue.{name}"]
