"""Workflows: ComfyUI's UI (litegraph) format to the API format that ``POST /prompt`` runs.

A UI workflow stores each node's widget values by position (``widgets_values``) and its
connections as links ``[id, origin_node, origin_slot, target_node, target_slot, type]``. The API
format names every input: ``{"<id>": {"class_type": ..., "inputs": {name: value | [node, slot]}}}``.
Which position is which input comes from the server's ``/object_info`` (the order of the node's
widget inputs), so the conversion needs it.

Frontend conventions handled here: a seed-like INT input with ``control_after_generate`` is
followed by its control value ("fixed", "randomize", ...); an image-upload combo is followed by
the upload widget's value; ``Reroute`` nodes are followed through; a ``PrimitiveNode`` gives its
value to the widgets it feeds (the target keeps the value too); ``Note``/``MarkdownNote`` are
dropped; muted nodes (mode 2) are dropped and bypassed nodes (mode 4) pass their input of the
same type through. Subgraphs (group nodes) are not supported.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}
UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload", "animated_image_upload")
DROPPED_TYPES = {"Note", "MarkdownNote"}
MODE_MUTED, MODE_BYPASS = 2, 4


class WorkflowError(ValueError):
    """A UI workflow that cannot be converted (the message names the node and the fix)."""


def _links(workflow: dict) -> dict[int, tuple[int, int, int, int, str]]:
    out = {}
    for link in workflow.get("links") or []:
        if isinstance(link, dict):
            row = (link["id"], link["origin_id"], link["origin_slot"], link["target_id"], link["target_slot"])
            out[int(row[0])] = (*map(int, row[1:]), str(link.get("type", "")))
        else:
            out[int(link[0])] = (int(link[1]), int(link[2]), int(link[3]), int(link[4]), str(link[5]))
    return out


def _input_order(info: dict) -> list[tuple[str, Any, bool]]:
    """``[(name, spec, optional), ...]`` in the order the frontend makes widgets."""
    inputs = info.get("input", {})
    order = info.get("input_order") or {sec: list(inputs.get(sec, {})) for sec in ("required", "optional")}
    out = []
    for section in ("required", "optional"):
        for name in order.get(section, []):
            spec = inputs.get(section, {}).get(name)
            if spec is not None:
                out.append((name, spec, section == "optional"))
    return out


def _is_widget(spec: Any) -> bool:
    kind = spec[0] if isinstance(spec, (list, tuple)) and spec else spec
    options = spec[1] if isinstance(spec, (list, tuple)) and len(spec) > 1 and isinstance(spec[1], dict) else {}
    if options.get("forceInput") or options.get("rawLink"):
        return False
    return isinstance(kind, list) or kind in WIDGET_TYPES


def _options(spec: Any) -> dict:
    return spec[1] if isinstance(spec, (list, tuple)) and len(spec) > 1 and isinstance(spec[1], dict) else {}


def ui_to_api(workflow: dict, object_info: dict) -> dict[str, dict]:
    """Convert a UI-format workflow to an API-format graph.

    Args:
        workflow: the UI workflow (``{"nodes": [...], "links": [...], ...}``), as saved by ComfyUI.
        object_info: the server's ``GET /object_info`` answer (at least the node types used).

    Returns:
        ``{node_id: {"class_type", "inputs", "_meta": {"title"}}}`` with ids as strings.

    Raises:
        WorkflowError: not a UI workflow, a node type the server lacks, widget values that do not
            match the node's inputs, or a link to a node that is not there.
    """
    if not isinstance(workflow, dict) or not isinstance(workflow.get("nodes"), list):
        if isinstance(workflow, dict) and all(isinstance(v, dict) and "class_type" in v for v in workflow.values()):
            raise WorkflowError("the workflow is already in API format (node ids with class_type); post it as is")
        raise WorkflowError("not a ComfyUI UI workflow: expected an object with 'nodes' and 'links'")
    if (workflow.get("definitions") or {}).get("subgraphs"):
        raise WorkflowError("the workflow holds subgraphs, which this converter does not expand; unpack them first")
    nodes = {int(n["id"]): n for n in workflow["nodes"]}
    links = _links(workflow)

    def source(link_id: int, want: str, seen: frozenset = frozenset()) -> list | None:
        """The ``[node_id, slot]`` a link finally comes from, through reroutes and bypassed nodes."""
        if link_id not in links:
            raise WorkflowError(f"link {link_id} is used by a node but missing from 'links'; re-save the workflow")
        origin, slot, _, _, kind = links[link_id]
        node = nodes.get(origin)
        if node is None:
            raise WorkflowError(f"link {link_id} comes from node {origin}, which is not in the workflow")
        if origin in seen:
            raise WorkflowError(f"node {origin} ({node['type']}) is part of a loop of reroutes or bypassed nodes")
        mode = int(node.get("mode", 0))
        if node["type"] == "Reroute" or mode == MODE_BYPASS:
            wanted = kind if kind not in ("*", "") else want
            for inp in node.get("inputs") or []:
                if inp.get("link") is not None and (node["type"] == "Reroute" or inp.get("type") == wanted):
                    return source(int(inp["link"]), wanted, seen | {origin})
            return None  # a bypassed node without a matching input: the consumer's input is left out
        if node["type"] == "PrimitiveNode" or mode == MODE_MUTED:
            return None  # primitive values live in the target's widget; muted nodes give nothing
        return [str(origin), slot]

    graph: dict[str, dict] = {}
    for node_id, node in sorted(nodes.items()):
        kind = node.get("type")
        mode = int(node.get("mode", 0))
        if kind in DROPPED_TYPES or kind in ("Reroute", "PrimitiveNode") or mode in (MODE_MUTED, MODE_BYPASS):
            continue
        if kind not in object_info:
            raise WorkflowError(
                f"node {node_id} is of type {kind!r}, which the server does not know; install the pack that "
                "provides it (or check its spelling)"
            )
        info = object_info[kind]
        linked = {inp["name"]: inp.get("link") for inp in node.get("inputs") or [] if inp.get("link") is not None}
        values = node.get("widgets_values", [])
        by_name = values if isinstance(values, dict) else None
        queue = list(values) if isinstance(values, list) else []
        inputs: dict[str, Any] = {}
        for name, spec, _optional in _input_order(info):
            widget = _is_widget(spec)
            value_given = False
            if widget:
                if by_name is not None:
                    value_given = name in by_name
                    value = by_name.get(name)
                elif queue:
                    value, value_given = queue.pop(0), True
                    opts = _options(spec)
                    if spec[0] == "INT" and queue and isinstance(queue[0], str) and queue[0] in CONTROL_VALUES:
                        if opts.get("control_after_generate") or name in ("seed", "noise_seed"):
                            queue.pop(0)
                    if any(opts.get(flag) for flag in UPLOAD_FLAGS) and queue and isinstance(queue[0], str):
                        queue.pop(0)  # the upload button's value ("image")
            if name in linked:
                src = source(int(linked[name]), spec[0] if isinstance(spec[0], str) else "COMBO")
                if src is not None:
                    inputs[name] = src
                    continue
            if widget and value_given:
                inputs[name] = value
            elif widget and not _optional and name not in linked:
                raise WorkflowError(
                    f"node {node_id} ({kind}) has no value for its widget {name!r}; open the workflow in ComfyUI "
                    "and save it again, or add the value"
                )
        if queue:
            raise WorkflowError(
                f"node {node_id} ({kind}) has {len(queue)} widget value(s) more than the server's inputs take "
                f"(left over: {queue!r}); the workflow was saved with another version of that node"
            )
        graph[str(node_id)] = {"class_type": kind, "inputs": inputs, "_meta": {"title": node.get("title") or kind}}
    return graph
