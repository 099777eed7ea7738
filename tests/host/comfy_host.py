"""Run API-format prompts through real ComfyUI in-process (PromptExecutor, headless, CPU).

Found through COMFYUI_PATH; the pack is linked into a temporary custom_nodes folder. Import this
module only under ComfyUI's Python (COMFYUI_PYTHON)."""
from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
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


class Host:
    def __init__(self, comfy_path: str):
        os.chdir(comfy_path)
        sys.path.insert(0, comfy_path)
        from comfy.cli_args import args
        args.cpu = True  # before comfy.model_management is imported
        import utils.extra_config  # noqa: F401  (main.py imports the top-level utils first)
        import comfy.model_management
        import comfy.utils
        import execution
        import folder_paths
        import nodes
        from comfy_execution.progress import get_progress_state
        from comfy_execution.utils import get_executing_context

        self.server = HeadlessServer()
        self.nodes, self.execution, self.mm = nodes, execution, comfy.model_management
        links = Path(tempfile.mkdtemp(prefix="pci_custom_nodes_"))
        (links / PACK_NAME).symlink_to(REPO, target_is_directory=True)
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
        self.executor = execution.PromptExecutor(self.server, cache_type=execution.CacheType.CLASSIC)
        import comfyui_version
        self.version = comfyui_version.__version__

    def run(self, prompt: dict):
        """Validate and execute a prompt: (ok, events, outputs by node id)."""
        self.server.events.clear()
        pid = str(uuid.uuid4())
        valid, err, outputs, node_errors = asyncio.run(self.execution.validate_prompt(pid, prompt, None))
        if not valid:
            return False, [("validation_error", {"error": err, "node_errors": node_errors})], {}
        self.executor.execute(prompt, pid, extra_data={"client_id": "headless"}, execute_outputs=outputs)
        return self.executor.success, list(self.server.events), self.executor.history_result.get("outputs", {})

    def output(self, node_id: str, index: int = 0):
        """A node's output value from the executor's cache (the first item of an output list)."""
        return self.executor.caches.outputs.get(node_id)[index][0]

    def object_info(self, name: str) -> dict:
        """What GET /object_info reports for one node class (server.py's node_info for V3 nodes)."""
        return self.nodes.NODE_CLASS_MAPPINGS[name].GET_NODE_INFO_V1()
