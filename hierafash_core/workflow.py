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


def _default(spec: Any) -> Any:
    """A widget's default value from its ``/object_info`` spec (first option of a combo)."""
    opts = _options(spec)
    if "default" in opts:
        return opts["default"]
    kind = spec[0] if isinstance(spec, (list, tuple)) and spec else spec
    choices = kind if isinstance(kind, list) else opts.get("options")
    if choices:
        return choices[0]
    return {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}.get(kind)


def api_to_ui(
    graph: dict[str, dict],
    object_info: dict,
    positions: dict[str, tuple[float, float]] | None = None,
    groups: list[dict] | None = None,
    notes: list[dict] | None = None,
) -> dict:
    """The inverse of :func:`ui_to_api`: an API-format graph as a UI workflow ComfyUI can open.

    Widget values are written in the order the server's ``/object_info`` gives (a seed is followed
    by its "fixed" control value, an upload combo by the upload widget's value), sockets in the
    order of the node's non-widget inputs, so ``ui_to_api(api_to_ui(g, info), info) == g``.

    Args:
        graph: ``{id: {"class_type", "inputs", "_meta"}}`` with integer-like ids (the UI needs them).
        positions: ``{id: (x, y)}``; nodes without one are placed in a row.
        groups: litegraph groups (``{"title", "bounding": [x, y, w, h], "color"}``), written as given.
        notes: ``[{"text", "pos": (x, y), "size": (w, h), "title"}]``, added as Note nodes (which the
            API format does not have).

    Raises:
        WorkflowError: a node type the server lacks, an id that is not an integer, a link to a
            missing node or output.
    """
    ids = {}
    for node_id in graph:
        try:
            ids[node_id] = int(node_id)
        except ValueError:
            raise WorkflowError(f"node id {node_id!r} is not an integer; the UI format numbers its nodes") from None
    positions = positions or {}
    ui_nodes: list[dict] = []
    links: list[list] = []
    sockets: dict[str, list[dict]] = {}  # node id -> its input sockets (filled in as links are made)
    outputs: dict[str, list[dict]] = {}
    for node_id, node in graph.items():
        kind = node["class_type"]
        if kind not in object_info:
            raise WorkflowError(f"node {node_id} is of type {kind!r}, which the server does not know")
        info = object_info[kind]
        outputs[node_id] = [
            {"name": name, "type": typ, "links": [], "slot_index": slot}
            for slot, (typ, name) in enumerate(zip(info.get("output", []), info.get("output_name", []), strict=True))
        ]
    for order, (node_id, node) in enumerate(graph.items()):
        info = object_info[node["class_type"]]
        inputs = node.get("inputs", {})
        socket_list, widgets = [], []
        for name, spec, _optional in _input_order(info):
            value = inputs.get(name)
            linked = isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)
            linked = linked and str(value[0]) in graph
            widget = _is_widget(spec)
            if widget:
                widgets.append(_default(spec) if linked or name not in inputs else value)
                opts = _options(spec)
                if spec[0] == "INT" and (opts.get("control_after_generate") or name in ("seed", "noise_seed")):
                    widgets.append("fixed")
                if any(opts.get(flag) for flag in UPLOAD_FLAGS):
                    widgets.append("image")
                if not linked:
                    continue
            kind = spec[0] if isinstance(spec[0], str) else "COMBO"
            socket = {"name": name, "type": kind, "link": None}
            if widget:
                socket["widget"] = {"name": name}
            if linked:
                src, slot = str(value[0]), int(value[1])
                if slot >= len(outputs[src]):
                    raise WorkflowError(f"node {node_id} input {name!r} links to output {slot} of node {src}, "
                                        f"which has {len(outputs[src])} outputs")  # fmt: skip
                link_id = len(links) + 1
                links.append([link_id, ids[src], slot, ids[node_id], len(socket_list), outputs[src][slot]["type"]])
                outputs[src][slot]["links"].append(link_id)
                socket["link"] = link_id
            socket_list.append(socket)
        sockets[node_id] = socket_list
        x, y = positions.get(node_id, (40 + 380 * order, 40))
        ui_nodes.append({
            "id": ids[node_id],
            "type": node["class_type"],
            "pos": [x, y],
            "size": [340, 60 + 24 * (len(widgets) + max(len(socket_list), len(outputs[node_id])))],
            "flags": {},
            "order": order,
            "mode": 0,
            "title": node.get("_meta", {}).get("title") or node["class_type"],
            "inputs": socket_list,
            "outputs": outputs[node_id],
            "properties": {"Node name for S&R": node["class_type"]},
            "widgets_values": widgets,
        })  # fmt: skip
    next_id = max(ids.values(), default=0)
    for note in notes or []:
        next_id += 1
        ui_nodes.append({
            "id": next_id, "type": "Note", "pos": list(note.get("pos", (40, -300))),
            "size": list(note.get("size", (480, 240))), "flags": {}, "order": len(ui_nodes), "mode": 0,
            "title": note.get("title", "Note"), "inputs": [], "outputs": [], "properties": {},
            "widgets_values": [note["text"]],
        })  # fmt: skip
    return {
        "last_node_id": next_id,
        "last_link_id": len(links),
        "nodes": ui_nodes,
        "links": links,
        "groups": list(groups or []),
        "config": {},
        "extra": {},
        "version": 0.4,
    }
