"""The editing workflows: UI files against their API twins, and the twins run over HTTP.

scripts/build_edit_workflows.py writes each UI workflow (workflows/*.json, 512x704 as in the paper)
and its API twin (tests/workflows/*_api.json) from one description. Here the UI file is converted
with the pack's converter against the server's own node schemas and must equal the twin; then the
twin runs on a real headless ComfyUI, shrunk to 64x88 pixels and a few steps, on the seeded test
models, with SaveLatent nodes added to read every stage back: the edit chain, a core-KSampler draft
and three chained edits with rectangle masks. The whole design workflow (workflows/hierafash_design.json:
pose, StagedKSampler draft, three edits with ParseMask) is the graph `hierafash design` runs; it is
checked and run in tests/test_design_session.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from graphs import TINY_CKPT
from safetensors.torch import load_file

from hierafash_core.api_client import ComfyClient
from hierafash_core.workflow import ui_to_api

pytestmark = pytest.mark.comfy

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = ("hierafash_edit_chain", "hierafash_mini_design")
EDIT = "HieraFash_GradientGuidedEdit"
SCALE = 8  # 512x704 -> 64x88 pixels, an 8x11 latent
TINY_CN = "hierafash-tiny-cn.safetensors"


def ui_file(name: str) -> dict:
    return json.loads((REPO / "workflows" / f"{name}.json").read_text())


def api_twin(name: str) -> dict:
    return json.loads((REPO / "tests" / "workflows" / f"{name}_api.json").read_text())


@pytest.fixture(scope="module")
def client(comfy_server) -> ComfyClient:
    return ComfyClient(comfy_server.url, timeout=60)


@pytest.fixture(scope="module")
def object_info(client) -> dict:
    return client.object_info()


@pytest.mark.parametrize("name", WORKFLOWS)
def test_shipped_files_are_the_scripts_output(name):
    """Both files are what scripts/build_edit_workflows.py writes today (a changed default reaches them)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_edit_workflows", REPO / "scripts" / "build_edit_workflows.py")
    script = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = script  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(script)
    finally:
        del sys.modules[spec.name]
    nodes = {"hierafash_edit_chain": script.edit_chain, "hierafash_mini_design": script.mini_design}[name]()
    stale = "stale: run .venv/bin/python scripts/build_edit_workflows.py"
    assert script.to_api(nodes) == api_twin(name), stale
    assert script.to_ui(nodes) == ui_file(name), stale


@pytest.mark.parametrize("name", WORKFLOWS)
def test_ui_workflow_converts_to_its_api_twin(object_info, name):
    ui, twin = ui_file(name), api_twin(name)
    assert ui_to_api(ui, object_info) == twin
    assert sum(node["class_type"] == EDIT for node in twin.values()) == 3
    for node in ui["nodes"]:  # the UI file's sockets are the server's
        info = object_info[node["type"]]
        assert [o["name"] for o in node["outputs"]] == info["output_name"], node["type"]
        assert [o["type"] for o in node["outputs"]] == info["output"], node["type"]
        specs = {**info["input"]["required"], **info["input"].get("optional", {})}
        for socket in node["inputs"]:
            assert specs[socket["name"]][0] == socket["type"], (node["type"], socket["name"])


def shrink(graph: dict) -> dict:
    """The twin at test size: 1/8 of every pixel size, 4 steps, the seeded test models."""
    for node in graph.values():
        inputs, kind = node["inputs"], node["class_type"]
        pixel_keys = {
            "EmptyLatentImage": ("width", "height"),
            "SolidMask": ("width", "height"),
            "MaskComposite": ("x", "y"),
            "FeatherMask": ("left", "top", "right", "bottom"),
        }.get(kind, ())
        for key in pixel_keys:
            inputs[key] = max(inputs[key] // SCALE, 1 if kind != "MaskComposite" else 0)
        if kind in ("KSampler", "HieraFash_StagedKSampler", EDIT):
            inputs["steps"] = 4
        if kind == "CheckpointLoaderSimple":
            inputs["ckpt_name"] = TINY_CKPT
        if kind == "ControlNetLoader":
            inputs["control_net_name"] = TINY_CN
        if kind == "HieraFash_ParseMask":
            inputs["feather"] = 0.0  # hard edges: the saved 8-bit mask is then exactly 0 outside
    return graph


def save_latents(graph: dict, sources: dict[str, str]) -> None:
    for title, node_id in sources.items():
        graph[f"save {title}"] = {
            "class_type": "SaveLatent",
            "inputs": {"samples": [node_id, 0], "filename_prefix": f"edit_tests/{title}"},
            "_meta": {"title": f"save {title}"},
        }


def read_latents(entry: dict, graph: dict, output_dir: Path) -> dict[str, torch.Tensor]:
    out = {}
    for node_id, output in entry["outputs"].items():
        for item in output.get("latents", []):
            path = output_dir / item["subfolder"] / item["filename"]
            out[graph[node_id]["_meta"]["title"][len("save ") :]] = load_file(str(path))["latent_tensor"]
    return out


def rect_cells(graph: dict, edit_id: str, latent_hw: tuple[int, int]) -> torch.Tensor:
    """Latent cells touched by an edit's rectangle mask (SolidMask boxes placed by MaskComposite)."""
    cells = torch.zeros(latent_hw, dtype=torch.bool)
    node = graph[graph[graph[edit_id]["inputs"]["mask"][0]]["inputs"]["mask"][0]]  # FeatherMask -> composite
    while node["class_type"] == "MaskComposite":
        box = graph[node["inputs"]["source"][0]]["inputs"]
        x, y = node["inputs"]["x"], node["inputs"]["y"]
        cells[y // 8 : (y + box["height"] - 1) // 8 + 1, x // 8 : (x + box["width"] - 1) // 8 + 1] = True
        node = graph[node["inputs"]["destination"][0]]
    return cells


def check_chain(chain: list[torch.Tensor], regions: list[torch.Tensor]) -> None:
    """Each edit changes its region and nothing outside it; the last equals the draft outside all regions."""
    union = torch.zeros_like(regions[0])
    for k, region in enumerate(regions):
        union |= region
        before, after = chain[k], chain[k + 1]
        assert (after - before)[:, :, ~region].abs().max().item() < 1e-4, f"edit {k + 1} changed outside its mask"
        assert (after - before)[:, :, region].abs().mean().item() > 0.1, f"edit {k + 1} did not change its region"
    assert (chain[-1] - chain[0])[:, :, ~union].abs().max().item() < 1e-4


def test_edit_chain_runs_over_http(client, comfy_server):
    graph = shrink(api_twin("hierafash_edit_chain"))
    edits = [nid for nid, node in graph.items() if node["class_type"] == EDIT]
    assert graph[edits[1]]["inputs"]["source"] == [edits[0], 0] and graph[edits[2]]["inputs"]["source"] == [
        edits[1],
        0,
    ]
    save_latents(graph, {"draft": "5", "edit1": edits[0], "edit2": edits[1], "edit3": edits[2]})
    entry = client.run(graph, timeout=600)
    latents = read_latents(entry, graph, Path(comfy_server.base_directory) / "output")
    chain = [latents[name] for name in ("draft", "edit1", "edit2", "edit3")]
    assert all(t.shape == (1, 4, 11, 8) for t in chain)
    check_chain(chain, [rect_cells(graph, e, (11, 8)) for e in edits])
