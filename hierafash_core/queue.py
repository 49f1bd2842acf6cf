"""Queue a workflow on a ComfyUI server, follow its progress, and download what it made.

This is the Python face of ``hierafash queue``::

    from hierafash_core.queue import run_workflow
    result = run_workflow("http://127.0.0.1:8188", "workflow_api.json",
                          sets=["3.seed=42", "CheckpointLoaderSimple.ckpt_name=sd15.safetensors"],
                          out_dir="outputs", timeout=600)
    print(result.files)

The workflow is ComfyUI's API format (``{node_id: {"class_type", "inputs"}}``). Progress arrives on
the server's websocket (``/ws?clientId=...``); the result is read from ``/history`` and files from
``/view``. Every wait is bounded: a per-message timeout after which the server is asked whether it
is still alive, and an overall deadline.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .api_client import ComfyAPIError, ComfyClient, PromptFailed

log = logging.getLogger(__name__)

ProgressFn = Callable[[dict], None]


@dataclass
class QueueResult:
    prompt_id: str
    history: dict
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def outputs(self) -> dict:
        return self.history.get("outputs", {})


def _parse_value(text: str) -> Any:
    """JSON where it parses (numbers, booleans, lists, links such as ["4", 0]), else the raw string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _find_nodes(graph: dict, ref: str) -> list[str]:
    """Node ids matching ``ref``: an id, a node title (``_meta.title``) or a class_type."""
    if ref in graph:
        return [ref]
    by_title = [nid for nid, node in graph.items() if node.get("_meta", {}).get("title") == ref]
    if by_title:
        return by_title
    return [nid for nid, node in graph.items() if node.get("class_type") == ref]


def apply_overrides(graph: dict, sets: Iterable[str]) -> dict:
    """Return a copy of ``graph`` with ``NODE.INPUT=VALUE`` overrides applied.

    NODE is a node id, a node title or a class type (a class type must name exactly one node);
    VALUE is read as JSON when it parses (``5``, ``true``, ``"text"``) and as a string otherwise.

    Raises:
        ValueError: a malformed override, an unknown node or input (with what exists).
    """
    out = copy.deepcopy(graph)
    for item in sets:
        target, sep, raw = item.partition("=")
        node_ref, dot, input_name = target.rpartition(".")
        if not sep or not dot or not node_ref or not input_name:
            raise ValueError(
                f"--set {item!r}: write NODE.INPUT=VALUE, e.g. --set 3.seed=42 or --set KSampler.steps=20"
            )
        ids = _find_nodes(out, node_ref)
        if not ids:
            known = ", ".join(f"{nid} ({n.get('class_type')})" for nid, n in sorted(out.items()))
            raise ValueError(f"--set {item!r}: no node {node_ref!r} in the workflow; nodes: {known}")
        if len(ids) > 1:
            raise ValueError(f"--set {item!r}: {node_ref!r} names {len(ids)} nodes ({', '.join(ids)}); use a node id")
        inputs = out[ids[0]].setdefault("inputs", {})
        if input_name not in inputs:
            raise ValueError(
                f"--set {item!r}: node {ids[0]} ({out[ids[0]].get('class_type')}) has no input {input_name!r}; "
                f"inputs: {', '.join(sorted(inputs)) or 'none'}"
            )
        inputs[input_name] = _parse_value(raw)
    return out


def load_workflow(path: str | Path, client: ComfyClient | None = None) -> dict:
    """Read a workflow file: API format as is; UI format converted with the server's ``/object_info``."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"workflow {str(p)!r} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"workflow {str(p)!r} is a folder; give a workflow JSON file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"workflow {str(p)!r} is not JSON ({exc}); export it with 'Save (API Format)'") from None
    if isinstance(data, dict) and "nodes" in data and "links" in data:
        if client is None:
            raise ValueError(f"workflow {str(p)!r} is in UI format; converting it needs a server (--server)")
        from .workflow import ui_to_api

        return ui_to_api(data, client.object_info())
    if isinstance(data, dict) and "prompt" in data and isinstance(data["prompt"], dict):
        data = data["prompt"]  # a saved POST body
    if not isinstance(data, dict) or not all(isinstance(v, dict) and "class_type" in v for v in data.values()):
        raise ValueError(
            f"workflow {str(p)!r} is neither API format (node id -> class_type/inputs) nor UI format (nodes/links)"
        )
    return data


async def _follow(client: ComfyClient, graph: dict, timeout: float, idle: float, on_progress: ProgressFn | None):
    """Queue ``graph`` with a websocket open and follow it until it finishes; return (prompt_id, history)."""
    import aiohttp  # noqa: PLC0415 - ComfyUI's own dependency; only needed to follow progress

    ws_url = client.url.replace("http", "ws", 1) + f"/ws?clientId={client.client_id}"
    deadline = time.monotonic() + timeout
    session_timeout = aiohttp.ClientTimeout(total=None, connect=client.timeout, sock_connect=client.timeout)
    async with aiohttp.ClientSession(timeout=session_timeout) as session:
        try:
            ws = await session.ws_connect(ws_url, heartbeat=idle)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            raise ComfyAPIError(f"ComfyUI at {client.url} did not accept a websocket: {exc}") from None
        async with ws:
            prompt_id = await asyncio.to_thread(client.queue_prompt, graph)
            log.info("queued prompt %s on %s", prompt_id, client.url)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ComfyAPIError(f"prompt {prompt_id} did not finish within {timeout:.0f} s at {client.url}")
                try:
                    msg = await ws.receive(timeout=min(idle, left))
                except asyncio.TimeoutError:
                    # Quiet for a while: a long node, or a dead server. Ask the history (bounded).
                    entry = await asyncio.to_thread(client.history, prompt_id)
                    if entry is not None:
                        return prompt_id, entry
                    continue
                if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR,
                                aiohttp.WSMsgType.CLOSING):  # fmt: skip
                    raise ComfyAPIError(
                        f"ComfyUI at {client.url} closed the connection while prompt {prompt_id} was running "
                        "(did the server stop?); finished outputs are in its output folder"
                    )
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue  # binary preview images
                event = json.loads(msg.data)
                kind, data = event.get("type"), event.get("data", {})
                if data.get("prompt_id") not in (None, prompt_id):
                    continue
                if on_progress and kind in ("progress", "executing", "executed", "execution_cached"):
                    on_progress(event)
                if kind in ("execution_error", "execution_interrupted") or (
                    kind == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id
                ) or kind == "execution_success":  # fmt: skip
                    entry = await asyncio.to_thread(client.wait, prompt_id, max(5.0, min(60.0, left)))
                    return prompt_id, entry


def run_workflow(
    server: str,
    workflow: dict | str | Path,
    sets: Iterable[str] = (),
    out_dir: str | Path | None = None,
    timeout: float = 600.0,
    idle: float = 10.0,
    on_progress: ProgressFn | None = None,
    request_timeout: float = 30.0,
) -> QueueResult:
    """Queue ``workflow`` on ``server``, follow it, and save its output files into ``out_dir``.

    Args:
        server: e.g. ``http://127.0.0.1:8188``.
        workflow: an API-format graph, or a path to an API- or UI-format JSON file.
        sets: ``NODE.INPUT=VALUE`` overrides (see :func:`apply_overrides`).
        out_dir: where to write the images/files the outputs list; ``None`` downloads nothing.
        timeout: seconds for the whole run; ``idle``: seconds without a message before the
            server is asked whether the prompt finished; ``request_timeout``: per HTTP request.
        on_progress: called with each websocket event of this prompt (``progress``, ``executing``...).

    Raises:
        PromptRejected: the server refused the graph (``node_errors`` say where).
        PromptFailed: a node raised while running.
        ComfyAPIError: the server did not answer, went away, or the time ran out.
    """
    for name, seconds in (("timeout", timeout), ("idle", idle), ("request_timeout", request_timeout)):
        if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds <= 0:
            raise ValueError(f"{name}={seconds!r}: must be a positive, finite number of seconds")
    client = ComfyClient(server, timeout=request_timeout)
    graph = workflow if isinstance(workflow, dict) else load_workflow(workflow, client)
    graph = apply_overrides(graph, sets)
    start = time.monotonic()
    try:
        prompt_id, entry = asyncio.run(_follow(client, graph, timeout, idle, on_progress))
    except ImportError:
        log.warning("aiohttp is not installed: following the prompt by polling, without step progress")
        prompt_id = client.queue_prompt(graph)
        entry = client.wait(prompt_id, timeout=timeout)
    status = entry.get("status", {})
    if status.get("status_str") == "error":
        raise PromptFailed(client._error_text(prompt_id, status), entry)
    result = QueueResult(prompt_id, entry, seconds=time.monotonic() - start)
    if out_dir is not None:
        result.files = download_outputs(client, entry, Path(out_dir))
    return result


MAX_NAME = 120  # characters kept of a server's file name (file systems stop at 255 bytes)


def _local_name(filename: str) -> str | None:
    """A file name from a server, made safe to write in the output folder, or None if nothing is left.

    Only the base name is kept (a hostile server must not make us write outside ``out_dir``), control
    characters are dropped and long names are shortened, keeping the suffix.
    """
    name = Path(filename.replace("\\", "/")).name
    name = "".join(ch for ch in name if ch.isprintable() and ch not in "\x7f")
    if not name or name in (".", "..") or set(name) == {"."}:
        return None
    if len(name) > MAX_NAME:
        suffix = Path(name).suffix[:16]
        name = name[: MAX_NAME - len(suffix)] + suffix
    return name


def download_outputs(client: ComfyClient, entry: dict, out_dir: Path) -> list[Path]:
    """Save every file the history entry lists (images, gifs, ...) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    for node_id, output in sorted(entry.get("outputs", {}).items()):
        for kind in ("images", "gifs", "videos", "audio", "files", "latents"):
            for item in output.get(kind, []) or []:
                if not isinstance(item, dict) or "filename" not in item:
                    continue
                name = _local_name(str(item["filename"]))
                if name is None:
                    log.warning("skipped an output with the unusable file name %r", str(item["filename"])[:80])
                    continue
                data = client.view(item["filename"], item.get("subfolder", ""), item.get("type", "output"))
                target = out_dir / (_local_name(f"{node_id}_{name}") or name)  # node ids come from the server too
                target.write_bytes(data)
                saved.append(target)
    return saved
