"""A small, dependency-free client for ComfyUI's HTTP API, with a bound on every wait.

ComfyUI protocol: POST ``/prompt`` with ``{"prompt": <API-format graph>, "client_id": ...}``
returns ``{"prompt_id": ...}`` or, when validation fails, HTTP 400 with ``error`` and
``node_errors`` (HTTP 200 with ``node_errors`` when only some outputs failed: it runs the others);
``GET /history/<id>`` holds the result once the prompt finished; ``GET /view`` serves output
files; ``GET /object_info`` describes every node.
"""

from __future__ import annotations

import json
import logging
import math
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


class ComfyAPIError(RuntimeError):
    """The server answered, but not with success (or stopped answering)."""


class PromptRejected(ComfyAPIError):
    """``/prompt`` refused the graph; ``node_errors`` says which node and input."""

    def __init__(self, message: str, error: dict, node_errors: dict):
        super().__init__(message)
        self.error = error
        self.node_errors = node_errors


class PromptFailed(ComfyAPIError):
    """The graph was accepted but a node raised while running."""

    def __init__(self, message: str, history: dict):
        super().__init__(message)
        self.history = history


def _format_node_errors(node_errors: dict) -> str:
    lines = []
    for node_id, info in sorted(node_errors.items()):
        for err in info.get("errors", []):
            detail = err.get("details") or err.get("message", "")
            lines.append(f"  node {node_id} ({info.get('class_type', '?')}): {err.get('message', '')}: {detail}")
    return "\n".join(lines)


def check_graph_shape(graph: Any) -> None:
    """Refuse a graph that is not ``{node id: {"class_type": str, "inputs": dict}}`` before it is sent.

    ComfyUI 0.3.75 validates only the nodes its outputs depend on and then builds cache keys for every
    node: a node without an ``inputs`` object raises KeyError in its prompt worker thread, which dies,
    and the server answers HTTP but never runs another prompt. A graph whose links form a cycle is
    accepted without a node error and reported as a success although the outputs on the cycle never
    ran. This keeps the pack's clients from sending either. TODO(evidence): report both upstream
    (execution.py set_prompt -> caching.py get_ordered_ancestry_internal, KeyError 'inputs'; the cycle
    passing validation), reproduced in tests/test_hostile_workflows.py.

    Raises:
        ValueError: naming the node and what is wrong.
    """
    if not isinstance(graph, dict) or not graph:
        raise ValueError(
            f"graph: expected an API-format workflow, {{node id: {{'class_type': ..., 'inputs': {{...}}}}}}, "
            f"got {type(graph).__name__} {str(graph)[:60]!r}; export it with 'Save (API)' in ComfyUI"
        )
    for node_id, node in graph.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
            raise ValueError(f"node {str(node_id)[:40]!r}: {str(node)[:80]!r} has no class_type; give each node one")
        if not isinstance(node.get("inputs"), dict):
            raise ValueError(
                f"node {str(node_id)[:40]!r} ({node['class_type'][:60]}): 'inputs' must be an object "
                f"(got {type(node.get('inputs')).__name__}); give it {{}} if the node has no inputs"
            )
        for name, value in node["inputs"].items():  # ComfyUI reads slot -1 as the last output, silently
            if isinstance(value, list) and len(value) == 2 and value[0] in graph and isinstance(value[1], int):
                if value[1] < 0:
                    raise ValueError(
                        f"node {str(node_id)[:40]!r} input {str(name)[:40]!r}: output slot {value[1]} of node "
                        f"{value[0]!r}; slots count from 0"
                    )
    _check_acyclic(graph)


def _check_acyclic(graph: dict) -> None:
    """Refuse links that form a cycle, naming its nodes."""
    links = {
        n: [v[0] for v in node["inputs"].values() if isinstance(v, list) and len(v) == 2 and v[0] in graph]
        for n, node in graph.items()
        if isinstance(node, dict) and isinstance(node.get("inputs"), dict)
    }
    state: dict = {}  # 1: on the current path, 2: done
    for start in links:
        if state.get(start):
            continue
        path, stack = [start], [iter(links[start])]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt]
                raise ValueError(
                    f"graph: the links form a cycle ({' <- '.join(str(n)[:20] for n in cycle)}); a node cannot "
                    "depend on its own output; connect the first node of the chain to an earlier output"
                )
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(links.get(nxt, [])))


@dataclass
class ComfyClient:
    """Talk to one ComfyUI server. ``timeout`` bounds each HTTP request, in seconds."""

    url: str
    timeout: float = 30.0
    client_id: str = ""

    def __post_init__(self) -> None:
        parsed = urllib.parse.urlparse(self.url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"server={self.url!r} is not an http(s) URL; use e.g. http://127.0.0.1:8188")
        try:
            port = parsed.port  # ValueError for a port beyond 65535 or not a number
        except ValueError:
            port = 0
        if port == 0 or not parsed.hostname:
            raise ValueError(
                f"server={self.url!r}: give a host and a port from 1 to 65535, e.g. http://127.0.0.1:8188"
            )
        self.url = self.url.rstrip("/")
        self.client_id = self.client_id or uuid.uuid4().hex

    # -- plumbing -------------------------------------------------------------------------------
    def _request(self, path: str, body: Any = None, timeout: float | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        method = "POST" if data is not None else "GET"
        req = urllib.request.Request(self.url + path, data=data, method=method)  # noqa: S310 - scheme checked
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:  # noqa: S310 - http(s) checked
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                payload = json.loads(raw)
            except json.JSONDecodeError:
                payload = {"error": {"message": raw.decode(errors="replace")[:500]}}
            if path == "/prompt":
                error = (
                    payload.get("error", {})
                    if isinstance(payload.get("error"), dict)
                    else {"message": payload.get("error")}
                )
                node_errors = payload.get("node_errors", {}) or {}
                msg = f"ComfyUI refused the graph: {error.get('message', '')} {error.get('details', '')}"
                msg = msg.strip()
                if node_errors:
                    msg += "\n" + _format_node_errors(node_errors)
                raise PromptRejected(msg, error, node_errors) from None
            raise ComfyAPIError(f"{self.url}{path}: HTTP {exc.code}: {payload}") from None
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            raise ComfyAPIError(f"ComfyUI at {self.url} did not answer {path}: {exc}") from None
        return json.loads(raw) if raw else None

    # -- API ------------------------------------------------------------------------------------
    def object_info(self) -> dict:
        return self._request("/object_info", timeout=max(self.timeout, 60.0))

    def queue_prompt(self, graph: dict, extra_data: dict | None = None) -> str:
        check_graph_shape(graph)
        body = {"prompt": graph, "client_id": self.client_id}
        if extra_data:
            body["extra_data"] = extra_data
        reply = self._request("/prompt", body)
        node_errors = (reply or {}).get("node_errors") or {}
        if node_errors:
            # ComfyUI answers 200 and runs the outputs that validated when only some did: the caller
            # would wait for a "success" that silently lacks the rest. Take it off the queue and say so.
            prompt_id = reply.get("prompt_id")
            self._drop_from_queue(prompt_id)
            msg = (
                f"ComfyUI refused part of the graph and queued only the outputs that do not depend on these "
                f"nodes (prompt {prompt_id}, taken off the queue; nothing was run for you):\n"
                + _format_node_errors(node_errors)
            )
            raise PromptRejected(msg, reply.get("error") or {}, node_errors)
        return reply["prompt_id"]

    def _drop_from_queue(self, prompt_id: str | None) -> None:
        """Best effort: delete a pending prompt (one already running finishes on its own)."""
        if not prompt_id:
            return
        try:
            self._request("/queue", {"delete": [prompt_id]})
        except ComfyAPIError as exc:
            log.warning("could not take prompt %s off the queue at %s: %s", prompt_id, self.url, exc)

    def history(self, prompt_id: str) -> dict | None:
        reply = self._request(f"/history/{urllib.parse.quote(prompt_id)}")
        return (reply or {}).get(prompt_id)

    def wait(self, prompt_id: str, timeout: float = 600.0, poll: float = 0.25) -> dict:
        """Poll ``/history`` until the prompt finishes; at most ``timeout`` seconds in all.

        Raises:
            PromptFailed: a node raised (the message carries its type and text).
            ComfyAPIError: the server stopped answering or the time ran out.
        """
        if not math.isfinite(timeout) or timeout <= 0:
            raise ValueError(f"timeout={timeout!r}: must be a positive, finite number of seconds")
        deadline = time.monotonic() + timeout
        while True:
            entry = self.history(prompt_id)
            if entry is not None:
                status = entry.get("status", {})
                if status.get("status_str") == "error" or status.get("completed") is False:
                    raise PromptFailed(self._error_text(prompt_id, status), entry)
                return entry
            if time.monotonic() >= deadline:
                raise ComfyAPIError(f"prompt {prompt_id} did not finish within {timeout:.0f} s at {self.url}")
            time.sleep(poll)

    @staticmethod
    def _error_text(prompt_id: str, status: dict) -> str:
        for event, data in status.get("messages", []):
            if event == "execution_error":
                return (
                    f"prompt {prompt_id} failed in node {data.get('node_id')} ({data.get('node_type')}): "
                    f"{data.get('exception_type')}: {data.get('exception_message')}"
                )
            if event == "execution_interrupted":
                node = f"{data.get('node_id')} ({data.get('node_type')})"
                return f"prompt {prompt_id} was interrupted in node {node}"
        return f"prompt {prompt_id} did not complete: {status}"

    def run(self, graph: dict, timeout: float = 600.0) -> dict:
        """Queue ``graph`` and wait for its history entry."""
        return self.wait(self.queue_prompt(graph), timeout=timeout)

    def view(self, filename: str, subfolder: str = "", folder_type: str = "output") -> bytes:
        query = urllib.parse.urlencode({"filename": filename, "subfolder": subfolder, "type": folder_type})
        req = urllib.request.Request(f"{self.url}/view?{query}")  # noqa: S310 - scheme checked
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - http(s) checked
                return resp.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            raise ComfyAPIError(f"could not fetch {filename!r} from {self.url}: {exc}") from None

    def queue_remaining(self) -> int:
        """Prompts queued or running on the server (``GET /prompt``)."""
        return int(self._request("/prompt")["exec_info"]["queue_remaining"])

    def interrupt(self) -> None:
        self._request("/interrupt", {})

    def upload_image(self, name: str, data: bytes, overwrite: bool = True) -> str:
        """Put an image into the server's input folder (``POST /upload/image``); returns the name to load it by."""
        safe = "".join(ch for ch in name if ch.isalnum() or ch in "._-") or "image.png"
        boundary = uuid.uuid4().hex
        parts = [
            (f'Content-Disposition: form-data; name="image"; filename="{safe}"\r\n'
             "Content-Type: application/octet-stream\r\n\r\n").encode() + data,
            b'Content-Disposition: form-data; name="overwrite"\r\n\r\n' + (b"true" if overwrite else b"false"),
        ]  # fmt: skip
        body = b"".join(f"--{boundary}\r\n".encode() + p + b"\r\n" for p in parts) + f"--{boundary}--\r\n".encode()
        req = urllib.request.Request(self.url + "/upload/image", data=body, method="POST")  # noqa: S310 - scheme checked
        req.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - http(s) checked
                reply = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise ComfyAPIError(f"{self.url}/upload/image refused {safe!r}: HTTP {exc.code}") from None
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, json.JSONDecodeError) as exc:
            raise ComfyAPIError(f"could not upload {safe!r} to {self.url}: {exc}") from None
        sub = reply.get("subfolder") or ""
        return f"{sub}/{reply['name']}" if sub else reply["name"]
