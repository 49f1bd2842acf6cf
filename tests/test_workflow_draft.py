"""The draft workflow: UI file and API twin agree, the pack's nodes are described, the twin runs over HTTP.

The converter's frontend conventions (reroutes, primitives, muted and bypassed nodes, seed
controls, upload widgets) are checked on small hand-made workflows without a server.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from conftest import TINY_CKPT

from hierafash_core.workflow import WorkflowError, ui_to_api

REPO = Path(__file__).resolve().parents[1]
DRAFT_UI = REPO / "workflows" / "hierafash_draft.json"
DRAFT_API = REPO / "tests" / "workflows" / "hierafash_draft_api.json"
PACK_NODES = ("HieraFash_ConceptEncode", "HieraFash_AttributeEncode", "HieraFash_StagedKSampler")


@pytest.fixture(scope="module")
def object_info(comfy_server):
    from hierafash_core.api_client import ComfyClient

    return ComfyClient(comfy_server.url, timeout=60).object_info()


@pytest.mark.comfy
def test_pack_nodes_appear_in_object_info_with_descriptions_and_tooltips(object_info):
    for name in PACK_NODES:
        info = object_info[name]
        assert info["category"] == "HieraFash/drafting"
        assert info["display_name"].endswith("(HieraFash)")
        assert len(info["description"]) > 80, name
        for section in ("required", "optional"):
            for input_name, spec in info["input"].get(section, {}).items():
                assert len(spec[1].get("tooltip", "")) > 10, f"{name}.{input_name} has no tooltip"
        assert len(info["output_tooltips"]) == len(info["output"]) and all(info["output_tooltips"]), name
    concept = object_info["HieraFash_ConceptEncode"]["input"]["required"]
    style = concept["style"]
    options = style[1]["options"] if style[0] == "COMBO" else style[0]
    assert options[0] == "(unset)" and "Elegant" in options and len(options) == 32


@pytest.mark.comfy
def test_ui_workflow_converts_to_its_api_twin(object_info):
    ui = json.loads(DRAFT_UI.read_text())
    twin = json.loads(DRAFT_API.read_text())
    converted = ui_to_api(ui, object_info)
    assert sorted(converted, key=int) == sorted(twin, key=int)
    for node_id, node in twin.items():
        assert converted[node_id] == node, node_id
    assert {n["type"] for n in ui["nodes"]} >= set(PACK_NODES) | {"CheckpointLoaderSimple", "VAEDecode", "SaveImage"}
    # The UI file's sockets are the server's: output names and types, input names and types, link types.
    for node in ui["nodes"]:
        info = object_info[node["type"]]
        assert [o["name"] for o in node["outputs"]] == info["output_name"], node["type"]
        assert [o["type"] for o in node["outputs"]] == info["output"], node["type"]
        specs = {**info["input"]["required"], **info["input"].get("optional", {})}
        for inp in node["inputs"]:
            assert specs[inp["name"]][0] == inp["type"], (node["type"], inp["name"])
    by_id = {n["id"]: n for n in ui["nodes"]}
    for _, origin, slot, target, target_slot, kind in ui["links"]:
        assert by_id[origin]["outputs"][slot]["type"] == by_id[target]["inputs"][target_slot]["type"] == kind


@pytest.mark.comfy
def test_api_twin_runs_over_http_and_yields_an_image(comfy_server):
    from hierafash_core.api_client import ComfyClient

    graph = json.loads(DRAFT_API.read_text())
    graph["1"]["inputs"]["ckpt_name"] = TINY_CKPT
    graph["5"]["inputs"].update(width=64, height=64)
    graph["6"]["inputs"].update(steps=3, sampler_name="euler", scheduler="karras")
    client = ComfyClient(comfy_server.url, timeout=30)
    entry = client.run(graph, timeout=300)
    images = entry["outputs"]["8"]["images"]
    assert len(images) == 1 and images[0]["filename"].startswith("draft")
    png = client.view(images[0]["filename"], images[0]["subfolder"], images[0]["type"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.comfy
def test_bad_input_over_http_names_the_field_value_and_fix(comfy_server):
    from hierafash_core.api_client import ComfyClient, PromptFailed, PromptRejected

    client = ComfyClient(comfy_server.url, timeout=30)
    graph = json.loads(DRAFT_API.read_text())
    with pytest.raises(PromptRejected, match=r"ckpt_name: 'v1-5-pruned-emaonly.safetensors' not in"):
        client.queue_prompt(graph)  # the shipped name is not installed on the test host
    graph["1"]["inputs"]["ckpt_name"] = TINY_CKPT
    graph["5"]["inputs"].update(width=64, height=64)
    graph["6"]["inputs"].update(steps=3, schedule="switch steps", schedule_spec="25")
    with pytest.raises(PromptFailed, match=r"ValueError: switch step 25 is outside the run of 3 steps"):
        client.run(graph, timeout=300)


# -- the converter on hand-made workflows (no server) --------------------------------------------
INFO = {
    "Loader": {"input": {"required": {"name": [["a.safetensors", "b.safetensors"], {}]}}, "output": ["MODEL"]},
    "Sampler": {
        "input": {
            "required": {
                "model": ["MODEL", {}],
                "seed": ["INT", {"default": 0, "control_after_generate": True}],
                "cfg": ["FLOAT", {"default": 7.0}],
            },
            "optional": {"extra": ["MODEL", {}], "note": ["STRING", {"default": ""}]},
        },
        "input_order": {"required": ["model", "seed", "cfg"], "optional": ["extra", "note"]},
        "output": ["LATENT"],
    },
    "Patch": {"input": {"required": {"model": ["MODEL", {}], "amount": ["FLOAT", {}]}}, "output": ["MODEL"]},
    "LoadPic": {"input": {"required": {"image": [["x.png"], {"image_upload": True}]}}, "output": ["IMAGE"]},
}


def workflow(nodes, links):
    return {"nodes": nodes, "links": links, "version": 0.4}


def node(id_, type_, widgets=(), inputs=(), mode=0):
    return {"id": id_, "type": type_, "mode": mode, "widgets_values": list(widgets), "inputs": list(inputs)}


def test_converter_follows_reroutes_seeds_and_primitives():
    wf = workflow(
        [
            node(1, "Loader", ["b.safetensors"]),
            node(2, "Reroute", inputs=[{"name": "", "type": "*", "link": 1}]),
            node(
                3,
                "Sampler",
                [42, "randomize", 4.5, "hi"],
                [
                    {"name": "model", "type": "MODEL", "link": 2},
                    {"name": "cfg", "type": "FLOAT", "link": 3, "widget": {"name": "cfg"}},
                ],
            ),  # fmt: skip
            node(4, "PrimitiveNode", [4.5, "fixed"]),
            node(5, "Note", ["remember the seed"]),
            node(6, "LoadPic", ["x.png", "image"]),
        ],
        [[1, 1, 0, 2, 0, "MODEL"], [2, 2, 0, 3, 0, "MODEL"], [3, 4, 0, 3, 2, "FLOAT"]],
    )
    assert ui_to_api(wf, INFO) == {
        "1": {"class_type": "Loader", "inputs": {"name": "b.safetensors"}, "_meta": {"title": "Loader"}},
        "3": {
            "class_type": "Sampler",
            "inputs": {"model": ["1", 0], "seed": 42, "cfg": 4.5, "note": "hi"},
            "_meta": {"title": "Sampler"},
        },
        "6": {"class_type": "LoadPic", "inputs": {"image": "x.png"}, "_meta": {"title": "LoadPic"}},
    }


def test_converter_drops_muted_nodes_and_passes_bypassed_ones_through():
    links = [[1, 1, 0, 2, 0, "MODEL"], [2, 2, 0, 3, 0, "MODEL"]]
    nodes = [
        node(1, "Loader", ["a.safetensors"]),
        node(2, "Patch", [0.5], [{"name": "model", "type": "MODEL", "link": 1}]),
        node(3, "Sampler", [1, "fixed", 7.0, ""], [{"name": "model", "type": "MODEL", "link": 2}]),
    ]
    bypassed = copy.deepcopy(nodes)
    bypassed[1]["mode"] = 4
    graph = ui_to_api(workflow(bypassed, links), INFO)
    assert "2" not in graph and graph["3"]["inputs"]["model"] == ["1", 0]
    muted = copy.deepcopy(nodes)
    muted[1]["mode"] = 2
    graph = ui_to_api(workflow(muted, links), INFO)
    assert "2" not in graph and "model" not in graph["3"]["inputs"]  # ComfyUI then reports the missing input


def test_converter_errors_name_the_node_and_the_fix():
    with pytest.raises(WorkflowError, match=r"node 7 is of type 'Nope'.* install the pack that provides it"):
        ui_to_api(workflow([node(7, "Nope")], []), INFO)
    with pytest.raises(WorkflowError, match=r"node 1 \(Loader\) has 1 widget value\(s\) more .*\['extra'\]"):
        ui_to_api(workflow([node(1, "Loader", ["a.safetensors", "extra"])], []), INFO)
    with pytest.raises(WorkflowError, match=r"node 1 \(Loader\) has no value for its widget 'name'"):
        ui_to_api(workflow([node(1, "Loader", [])], []), INFO)
    with pytest.raises(WorkflowError, match="already in API format"):
        ui_to_api(json.loads(DRAFT_API.read_text()), INFO)
    with pytest.raises(WorkflowError, match="link 9 is used by a node but missing"):
        ui_to_api(workflow([node(3, "Sampler", [1, 7.0], [{"name": "model", "type": "MODEL", "link": 9}])], []), INFO)
