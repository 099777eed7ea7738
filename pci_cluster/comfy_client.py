"""A client of ComfyUI's public server API, the way every ComfyUI client talks to it: POST /prompt,
GET /history/{id}, GET /view for a run's files, POST /interrupt, POST /free, GET /system_stats, and the
websocket /ws for progress and the end of a prompt. This interface is the same from v0.3.64 to today's
ComfyUI (0.38), so a study runs on either; the executor's internals are never touched.

The websocket goes through aiohttp (ComfyUI's own dependency, so it is there wherever ComfyUI is). A
server that cannot be reached, or that lost a queued prompt (it restarted), raises ServerGone: the caller
gives the work to another server. A prompt ComfyUI refuses or that fails raises PromptFailed, with
ComfyUI's own messages naming the nodes and inputs.
"""
from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Callable


class ServerGone(ConnectionError):
    """The server is down, restarting or lost the prompt: the work can run elsewhere."""


class PromptFailed(ValueError):
    """ComfyUI refused the prompt or it failed (validation, a node's error, an interrupt)."""


def check_url(url: str) -> str:
    """A server's base URL (http or https, a host, an optional port); ValueError naming it otherwise."""
    parts = urllib.parse.urlsplit(url.strip() if isinstance(url, str) else "")
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise ValueError(f"server {url!r}: expected a ComfyUI address such as http://127.0.0.1:8188 "
                         "(the server started with --listen)")
    return f"{parts.scheme}://{parts.netloc}"


def node_errors_text(error: dict, node_errors: dict) -> str:
    """ComfyUI's validation answer as one line naming each node and input."""
    lines = [f"{error.get('message', error)}" + (f": {error['details']}" if error.get("details") else "")]
    for node, found in (node_errors or {}).items():
        for e in found.get("errors", []):
            lines.append(f"node {node} ({found.get('class_type')}): {e.get('message')}: {e.get('details')}")
    return "; ".join(lines)


class ComfyClient:
    """One ComfyUI server. timeout: seconds for one HTTP request (a prompt itself may run for hours)."""

    def __init__(self, url: str, timeout: float = 30.0):
        self.url = check_url(url)
        self.timeout = timeout
        self.client_id = uuid.uuid4().hex

    # ------------------------------------------------------------ plain HTTP

    def request(self, path: str, body: dict | None = None, method: str | None = None, raw: bool = False):
        """JSON (or bytes with raw) of one request; ServerGone when the server cannot be reached,
        urllib's HTTPError for an HTTP error status."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method or ("POST" if data else "GET"),
                                     headers={"Content-Type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as answer:
                payload = answer.read()
        except urllib.error.HTTPError:
            raise
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:
            raise ServerGone(f"ComfyUI at {self.url} cannot be reached ({getattr(e, 'reason', e)})") from None
        if raw:
            return payload
        return json.loads(payload) if payload else None

    def alive(self) -> bool:
        try:
            self.system_stats()
            return True
        except (ServerGone, urllib.error.HTTPError):
            return False

    def system_stats(self) -> dict:
        return self.request("/system_stats")

    def history(self, prompt_id: str) -> dict | None:
        """The prompt's history entry (outputs, status) once it ended, else None."""
        return (self.request(f"/history/{urllib.parse.quote(prompt_id)}") or {}).get(prompt_id)

    def view(self, filename: str, subfolder: str = "", kind: str = "output") -> bytes:
        """A file of the server's output (or temp / input) folder."""
        query = urllib.parse.urlencode({"filename": filename, "subfolder": subfolder, "type": kind})
        return self.request(f"/view?{query}", raw=True)

    def interrupt(self, prompt_id: str | None = None) -> None:
        self.request("/interrupt", {"prompt_id": prompt_id} if prompt_id else {}, method="POST")

    def free(self, unload_models: bool = True, free_memory: bool = True) -> None:
        self.request("/free", {"unload_models": unload_models, "free_memory": free_memory})

    # ------------------------------------------------------------ a prompt, start to end

    def run(self, prompt: dict, on_progress: Callable[[int, int, str], None] | None = None,
            poll: float = 2.0) -> dict:
        """Queue a prompt and wait for its end: its history entry (outputs by node id). The websocket
        reports progress (on_progress(value, max, node)) and the end; /history is asked every `poll`
        seconds as well, so a missed message never hangs the wait. PromptFailed when ComfyUI refuses
        or the prompt fails; ServerGone when the server goes away or forgets the prompt."""
        return asyncio.run(self._run(prompt, on_progress, poll))

    async def _run(self, prompt, on_progress, poll) -> dict:
        import aiohttp
        ws_url = self.url.replace("http", "ws", 1) + f"/ws?clientId={self.client_id}"
        try:
            async with aiohttp.ClientSession() as session, session.ws_connect(ws_url, heartbeat=30) as ws:
                prompt_id = await asyncio.to_thread(self._queue, prompt)
                await self._listen(ws, prompt_id, on_progress, poll)
        except aiohttp.ClientConnectorError as e:
            raise ServerGone(f"ComfyUI at {self.url} cannot be reached ({e.os_error})") from None
        except (aiohttp.ClientError, OSError) as e:
            raise ServerGone(f"ComfyUI at {self.url}: the connection was lost ({e})") from None
        return await asyncio.to_thread(self._ended, prompt_id)

    def _queue(self, prompt: dict) -> str:
        try:
            answer = self.request("/prompt", {"prompt": prompt, "client_id": self.client_id})
        except urllib.error.HTTPError as e:
            try:
                body = json.loads(e.read() or b"{}")
            except json.JSONDecodeError:
                body = {}
            raise PromptFailed(node_errors_text(body.get("error", {"message": f"HTTP {e.code}"}),
                                                body.get("node_errors", {}))) from None
        return answer["prompt_id"]

    async def _listen(self, ws, prompt_id: str, on_progress, poll: float) -> None:
        import aiohttp
        last_poll = time.monotonic()
        while True:
            try:
                message = await ws.receive(timeout=poll)
            except asyncio.TimeoutError:
                message = None
            if message is not None and message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR,
                                                         aiohttp.WSMsgType.CLOSING):
                raise ServerGone(f"ComfyUI at {self.url} closed the connection during prompt {prompt_id}")
            if message is not None and message.type == aiohttp.WSMsgType.TEXT:
                event = json.loads(message.data)
                data = event.get("data") or {}
                if data.get("prompt_id") == prompt_id:
                    if event["type"] == "progress" and on_progress is not None:
                        on_progress(int(data["value"]), int(data["max"]), str(data.get("node")))
                    if event["type"] in ("execution_success", "execution_error", "execution_interrupted"):
                        return
                    if event["type"] == "executing" and data.get("node") is None:
                        return
            if time.monotonic() - last_poll >= poll:
                last_poll = time.monotonic()
                if await asyncio.to_thread(self._finished_or_lost, prompt_id):
                    return

    def _finished_or_lost(self, prompt_id: str) -> bool:
        """True when the prompt has a history entry; ServerGone when the server no longer knows it."""
        if self.history(prompt_id) is not None:
            return True
        queue = self.request("/queue") or {}
        queued = [item[1] for key in ("queue_running", "queue_pending") for item in queue.get(key, [])]
        if prompt_id not in queued and self.history(prompt_id) is None:
            raise ServerGone(f"ComfyUI at {self.url} no longer knows prompt {prompt_id} (it restarted)")
        return False

    def _ended(self, prompt_id: str) -> dict:
        entry = None
        for _ in range(50):  # the history is written just after the last message
            entry = self.history(prompt_id)
            if entry is not None:
                break
            time.sleep(0.1)
        if entry is None:
            raise ServerGone(f"ComfyUI at {self.url} ended prompt {prompt_id} but has no history of it")
        status = entry.get("status") or {}
        if status.get("status_str") != "success":
            raise PromptFailed(failure_text(status.get("messages", [])))
        return entry


def failure_text(messages: list) -> str:
    """What went wrong, from a history entry's status messages: the node and ComfyUI's message."""
    for event, data in messages:
        if event == "execution_error":
            return (f"node {data.get('node_id')} ({data.get('node_type')}): {data.get('exception_type')}: "
                    f"{data.get('exception_message', '').strip()}")
        if event == "execution_interrupted":
            return f"interrupted at node {data.get('node_id')} ({data.get('node_type')})"
    return "the prompt did not run"
