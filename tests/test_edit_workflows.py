"""The editing workflows over HTTP: three chained edits in one graph, and the UI file against its API twin.

The API twin (tests/workflows/*_api.json) and the UI workflow (workflows/*.json) are both written
by scripts/build_edit_workflows.py from one description; these tests run the twin on a real headless
ComfyUI and check the UI file against the server's own node schemas.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hierafash_core.api_client import ComfyClient

pytestmark = pytest.mark.comfy

REPO = Path(__file__).resolve().parents[1]
CHAIN_API = REPO / "tests" / "workflows" / "hierafash_edit_chain_api.json"
CHAIN_UI = REPO / "workflows" / "hierafash_edit_chain.json"
EDIT = "HieraFash_GradientGuidedEdit"
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def mask_cells(graph: dict, edit_id: str, latent_hw: tuple[int, int]) -> torch.Tensor:
    """Latent cells (h, w) touched by an edit's mask: the SolidMask boxes placed by its MaskComposites."""
    cells = torch.zeros(latent_hw, dtype=torch.bool)
    node = graph[graph[edit_id]["inputs"]["mask"][0]]  # FeatherMask (feathers inside the boxes)
    node = graph[node["inputs"]["mask"][0]]
    while node["class_type"] == "MaskComposite":
        box = graph[node["inputs"]["source"][0]]["inputs"]
        x, y = node["inputs"]["x"], node["inputs"]["y"]
        cells[y // 8 : (y + box["height"] - 1) // 8 + 1, x // 8 : (x + box["width"] - 1) // 8 + 1] = True
        node = graph[node["inputs"]["destination"][0]]
    return cells


def combo_options(spec: list) -> list | None:
    """The choices of a combo input in /object_info (V1: a list first; V3: "COMBO" with options)."""
    if isinstance(spec[0], list):
        return spec[0]
    if spec[0] == "COMBO":
        return spec[1]["options"]
    return None


def test_three_chained_edits_over_http(comfy_server):
    graph = json.loads(CHAIN_API.read_text())
    client = ComfyClient(comfy_server.url, timeout=30)
    entry = client.run(graph, timeout=600)

    latents = {}
    for node_id, output in entry["outputs"].items():
        for item in output.get("latents", []):
            path = Path(comfy_server.base_directory) / "output" / item["subfolder"] / item["filename"]
            latents[graph[node_id]["_meta"]["title"]] = load_file(str(path))["latent_tensor"]
    chain = [latents[f"Save {name} latent"] for name in ("draft", "edit1", "edit2", "edit3")]
    assert all(t.shape == (1, 4, 11, 8) for t in chain)

    edits = [nid for nid, node in graph.items() if node["class_type"] == EDIT]
    assert len(edits) == 3 and graph[edits[1]]["inputs"]["source"] == [edits[0], 0]  # each feeds the next
    union = torch.zeros(11, 8, dtype=torch.bool)
    for k, edit_id in enumerate(edits):
        region = mask_cells(graph, edit_id, (11, 8))
        union |= region
        before, after = chain[k], chain[k + 1]
        kept = (after - before)[:, :, ~region]
        assert kept.abs().max().item() < 1e-4, f"edit {k + 1} changed the latent outside its mask"
        assert (after - before)[:, :, region].abs().mean().item() > 0.1, f"edit {k + 1} did not change its region"
    assert (chain[3] - chain[0])[:, :, ~union].abs().max().item() < 1e-4
    assert "images" in entry["outputs"][next(n for n, v in graph.items() if v["_meta"]["title"] == "Save final")]


def test_ui_workflow_matches_its_api_twin_and_the_node_schemas(comfy_server):
    ui = json.loads(CHAIN_UI.read_text())
    api = json.loads(CHAIN_API.read_text())
    info = ComfyClient(comfy_server.url, timeout=60).object_info()
    links = {link[0]: link for link in ui["links"]}
    for node in ui["nodes"]:
        twin = api[str(node["id"])]
        assert node["type"] == twin["class_type"] and node["type"] in info, node["type"]
        # the links are the same graph
        for socket in node["inputs"]:
            if socket["link"] is not None:
                _, src, slot, *_ = links[socket["link"]]
                assert twin["inputs"][socket["name"]] == [str(src), slot], (node["id"], socket["name"])
        # widget values are in the server's widget order (a seed adds its control_after_generate value)
        schema = info[node["type"]]["input"]
        names = []
        for group in ("required", "optional"):
            for name in info[node["type"]]["input_order"].get(group, []):
                spec = schema[group][name]
                if isinstance(spec[0], list) or spec[0] in WIDGET_TYPES:
                    names.append(name)
                    if (spec[1] if len(spec) > 1 else {}).get("control_after_generate"):
                        names.append("control_after_generate")
        assert len(node["widgets_values"]) == len(names), (node["type"], names)
        for name, value in zip(names, node["widgets_values"], strict=True):
            if name in twin["inputs"] and name not in ("ckpt_name", "text", "steps", "width", "height"):
                if not isinstance(twin["inputs"][name], list):
                    assert type(value) is type(twin["inputs"][name]), (node["type"], name)
            spec = schema["required"].get(name) or schema.get("optional", {}).get(name)
            options = combo_options(spec) if spec else None
            if options is not None and name != "ckpt_name":
                assert value in options, f"{node['type']}.{name}={value!r} is not one of the server's options"
