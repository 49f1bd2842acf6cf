"""The sleeve layout hint: the asked sleeve painted onto the arms, checked against the synthetic drawing of it."""

from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pytest
import torch
from synth_look import LOOK

from hierafash_core.editing import EditConfig, run_edit
from hierafash_core.editing.layout import (
    CLEAR_MARGIN,
    FILL_UNIT,
    OUTLINE_SHADE,
    SLEEVE_MARGIN,
    _fill_from_surroundings,
    _skin_like,
    paint_sleeves,
    sleeve_end_level,
)
from hierafash_core.synth import render
from hierafash_core.synth.body import ARM_HW
from hierafash_core.synth.labels import LABEL
from hierafash_core.synth.pose_bank import POSES_BY_NAME, place

SIZE = (128, 192)
ARMS = ((2, 3, 4), (5, 6, 7))  # OpenPose-18 shoulder, elbow, wrist


def drawing(sleeve_length: str, pose: str = "front", size: tuple[int, int] = SIZE):
    fields = {
        "category": "Dress", "style": "Elegant", "occasion": "Party", "effect": "Tall", "feeling": "Crisp Feeling",
        "clothing_length": "Knee-length", "sleeve_length": sleeve_length, "sleeve_type": "Regular",
        "collar": "Round", "hem": "Flat",
    }  # fmt: skip
    kp = place(POSES_BY_NAME[pose].keypoints, size)
    return render(fields, kp, LOOK, size=size), kp


def as_batch(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255  # (1, 3, H, W)


def arm_point(kp: np.ndarray, arm: tuple[int, int, int], level: float) -> np.ndarray:
    s, e, w = (kp[i, :2] for i in arm)
    return s + (e - s) * level if level <= 1 else e + (w - e) * (level - 1)


@pytest.mark.parametrize("pose", ["front", "hand_on_hip", "photo_camera"])
@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("Long Sleeve", "Short Sleeve"),
        ("Short Sleeve", "Long Sleeve"),
        ("Elbow-length Sleeve", "Mid-length Sleeve"),
        ("Mid-length Sleeve", "Elbow-length Sleeve"),
        ("Sleeveless", "Elbow-length Sleeve"),
        ("Mid-length Sleeve", "Sleeveless"),
    ],
)
def test_the_painted_arm_is_skin_and_sleeve_where_a_drawing_of_the_asked_sleeve_is(before, after, pose, size=SIZE):
    source, kp = drawing(before, pose, size)
    target, _ = drawing(after, pose, size)
    painted = paint_sleeves(as_batch(source.image), torch.from_numpy(kp).float()[None], [after])[0]
    skin, cloth = np.array(LOOK.skin) / 255, np.array(LOOK.garment) / 255
    end = sleeve_end_level(after)
    checked = agreed = 0
    for arm in ARMS:
        for level in np.arange(0.1, 1.95, 0.05):
            if end is not None and abs(level - end) < 0.12:
                continue  # the edge itself, a pixel either way
            x, y = np.round(arm_point(kp, arm, level)).astype(int)
            label = target.parse[y, x]
            if label not in (LABEL["skin"], LABEL["sleeves"]):
                continue  # the other arm or the bodice drawn over this point
            colour = painted[:, y, x].numpy()
            painted_skin = np.linalg.norm(colour - skin) < np.linalg.norm(colour - cloth)
            checked += 1
            agreed += painted_skin == (label == LABEL["skin"])
    assert checked >= 40
    assert agreed / checked >= 0.95, (before, after, pose, agreed, checked)


def test_pixels_away_from_the_arms_are_untouched():
    source, kp = drawing("Long Sleeve")
    image = as_batch(source.image)
    painted = paint_sleeves(image, torch.from_numpy(kp).float()[None], ["Short Sleeve"])
    changed = (painted - image).abs().amax(dim=1)[0].numpy() > 1e-6
    assert changed.sum() > 50  # the forearms became skin
    ys, xs = np.nonzero(changed)
    u = float(np.hypot(*((kp[8, :2] + kp[11, :2]) / 2 - kp[1, :2])))
    for x, y in zip(xs, ys, strict=True):
        near = min(min(np.hypot(*(arm_point(kp, arm, lv) - (x, y))) for lv in np.linspace(0, 2, 41)) for arm in ARMS)
        assert near < (ARM_HW[0] + CLEAR_MARGIN) * u + 1.5, (x, y, near)  # the band cleared around the arm


def test_bad_inputs_name_the_parameter():
    source, kp = drawing("Long Sleeve")
    image, points = as_batch(source.image), torch.from_numpy(kp).float()[None]
    with pytest.raises(ValueError, match="sleeve_length"):
        paint_sleeves(image, points, ["Knee-length"])
    with pytest.raises(ValueError, match="sleeve_length: 2 values for 1 images"):
        paint_sleeves(image, points, ["Short Sleeve", "Long Sleeve"])
    with pytest.raises(ValueError, match=r"keypoints: expected \(1, 18, 3\)"):
        paint_sleeves(image, points[:, :17], ["Short Sleeve"])
    with pytest.raises(ValueError, match="images: expected"):
        paint_sleeves(image[:, :1], points, ["Short Sleeve"])
    for bad in (1.5, -0.1, "0.7", True):
        with pytest.raises(ValueError, match=rf"outline={bad!r}: give a shade from 0 \(black lines\) to 1"):
            paint_sleeves(image, points, ["Short Sleeve"], outline=bad)
    # numpy's numbers are numbers
    half = paint_sleeves(image, points, ["Short Sleeve"], outline=np.float32(0.5))
    assert torch.equal(half, paint_sleeves(image, points, ["Short Sleeve"], outline=0.5))
    # None is no sleeve length (str(None) would have read as the taxonomy's "none", sleeveless), and a
    # bare string is not one per image
    with pytest.raises(ValueError, match=r"sleeve_length=None is not a sleeve length"):
        paint_sleeves(image, points, [None])
    with pytest.raises(ValueError, match=r"sleeve_length='Short Sleeve': give a list with one sleeve length per"):
        paint_sleeves(image, points, "Short Sleeve")
    with pytest.raises(ValueError, match=r"keypoints: expected a \(1, 18, 3\) tensor .* got NoneType"):
        paint_sleeves(image, None, ["Short Sleeve"])
    # images must be floats in [0, 1]: 0-255, 8-bit, [-1, 1] and NaN would come back wrecked, not refused
    for bad, message in [
        (image * 255, r"images: image 0 has values from 16 to 244; give floats in \[0, 1\] \(8-bit data divided"),
        ((image * 255).to(torch.uint8), r"images: torch.uint8 values; give floats in \[0, 1\]"),
        (image * 2 - 1, r"images: image 0 has values from -0.875 to 0.914; .*\(x \+ 1\) / 2"),
        (image.masked_fill(image > 0.9, float("nan")), r"images: image 0 holds NaN or infinite values"),
    ]:
        with pytest.raises(ValueError, match=message):
            paint_sleeves(bad, points, ["Short Sleeve"])


def test_the_outline_darkens_the_painted_edges_only_and_1_draws_none():
    source, kp = drawing("Long Sleeve")
    image, points = as_batch(source.image), torch.from_numpy(kp).float()[None]
    flat = paint_sleeves(image, points, ["Elbow-length Sleeve"], outline=1.0)[0]
    lined = paint_sleeves(image, points, ["Elbow-length Sleeve"])[0]
    ratio = lined / flat.clamp_min(1e-6)
    darkened = (flat - lined).amax(0) > 1e-6
    assert darkened.sum() > 60  # around both sleeves and both bare forearms
    assert torch.allclose(ratio[:, darkened], torch.tensor(OUTLINE_SHADE), atol=1e-4)  # one shade, every channel
    assert torch.equal(lined[:, ~darkened], flat[:, ~darkened])  # nothing else moved, nothing brightened
    # the line crosses the arm where the sleeve ends (the sleeve's edge and the bare arm's), not halfway up it
    for arm in ARMS:
        for level, lined_there in ((1.05, True), (0.5, False), (1.5, False)):
            x, y = np.round(arm_point(kp, arm, level)).astype(int)
            near = darkened[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2].any().item()
            assert near == lined_there, (arm, level)


def test_skin_is_an_orange_hue_not_pink_grey_or_purple():
    colours = {
        "croquis light": (250, 220, 196), "croquis dark": (108, 70, 48), "tan": (224, 178, 140),
        "purple dress blurred into a hand": (161, 133, 130), "grey": (150, 150, 150), "pink": (240, 150, 200),
        "olive": (150, 140, 100), "white": (245, 242, 238),
    }  # fmt: skip
    image = np.array(list(colours.values()), dtype=np.float32).T[:, None, :] / 255  # (3, 1, N)
    read = dict(zip(colours, _skin_like(image)[0] > 0.5, strict=True))
    assert read == {name: name in ("croquis light", "croquis dark", "tan") for name in colours}, read


def _toy_denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return x / (1 + sigma[:, None, None, None] ** 2)  # the clean estimate of a unit-variance prior


def test_run_edit_starts_from_init_inside_the_mask_and_keeps_the_source_outside():
    g = torch.Generator().manual_seed(0)
    source, init, noise = (torch.randn(1, 4, 6, 4, generator=g) for _ in range(3))
    mask = torch.zeros(1, 1, 6, 4)
    mask[..., 2:4, 1:3] = 1
    sigmas = torch.tensor([1.0, 0.5, 0.0])
    plain = run_edit(_toy_denoiser, sigmas, source, mask, noise)
    hinted = run_edit(_toy_denoiser, sigmas, source, mask, noise, init=init)
    assert torch.equal(hinted.start_latent, torch.where(mask > 0, init, source) + noise)
    assert torch.equal(hinted.latent[mask.expand_as(source) == 0], source[mask.expand_as(source) == 0])
    inside = mask.expand_as(source) == 1
    assert not torch.allclose(hinted.latent[inside], plain.latent[inside])
    same = run_edit(_toy_denoiser, sigmas, source, mask, noise, init=source.clone())
    assert torch.equal(same.latent, plain.latent)
    # a soft mask's cells start from init too, held to it until released, not reset to the source
    soft = mask * 0.5
    soft_plain = run_edit(_toy_denoiser, sigmas, source, soft, noise)
    soft_hinted = run_edit(_toy_denoiser, sigmas, source, soft, noise, init=init)
    assert (soft_hinted.latent - soft_plain.latent)[inside].abs().mean() > 0.1
    assert torch.equal(soft_hinted.latent[mask.expand_as(source) == 0], source[mask.expand_as(source) == 0])


def test_run_edit_init_is_refused_with_inversion_and_with_another_shape():
    source = torch.zeros(1, 4, 6, 4)
    mask, sigmas = torch.ones(1, 1, 6, 4), torch.tensor([1.0, 0.0])
    with pytest.raises(ValueError, match="init is a noise start's"):
        run_edit(_toy_denoiser, sigmas, source, mask, source, EditConfig(start_method="ddim inversion"), init=source)
    with pytest.raises(ValueError, match=r"init of shape \(1, 4, 3, 4\)"):
        run_edit(_toy_denoiser, sigmas, source, mask, source, init=source[:, :, :3])


# -- the node, in the real ComfyUI -----------------------------------------------------------------------
@pytest.mark.comfy
def test_sleeve_hint_node_paints_what_the_core_paints_and_names_bad_people(comfy):
    from hierafash_core.synth import openpose_json

    source, kp = drawing("Long Sleeve")
    pose_json = json.dumps(openpose_json(kp, SIZE))
    image = torch.from_numpy(source.image)[None].float() / 255  # IMAGE (1, H, W, 3)
    graph = {"pose": {"class_type": "HieraFash_PoseKeypointFromJSON", "inputs": {"json_text": pose_json}}}
    node = comfy.node_classes["HieraFash_SleeveHint"]
    pose = comfy.run(graph, outputs=["pose"])["pose"][0]
    out = node.execute(image=image, pose_keypoint=pose, sleeve_length="Short Sleeve", person_index=0)
    painted = out.result[0] if hasattr(out, "result") else out[0]
    expected = paint_sleeves(as_batch(source.image), torch.from_numpy(kp).float()[None], ["Short Sleeve"])
    assert painted.shape == (1, SIZE[1], SIZE[0], 3)
    assert (painted.permute(0, 3, 1, 2) - expected).abs().max().item() < 2 / 255  # keypoints round-trip JSON
    with pytest.raises(ValueError, match=r"person_index=1: image 0 has 1 person \(0 is the largest\)"):
        node.execute(image=image, pose_keypoint=pose, sleeve_length="Short Sleeve", person_index=1)
    # the optional outline reaches the painter (1: none), and the default is the painter's own
    flat = node.execute(image=image, pose_keypoint=pose, sleeve_length="Short Sleeve", person_index=0, outline=1.0)
    flat = (flat.result[0] if hasattr(flat, "result") else flat[0]).permute(0, 3, 1, 2)
    expected_flat = paint_sleeves(as_batch(source.image), torch.from_numpy(kp).float()[None], ["Short Sleeve"],
                                  outline=1.0)  # fmt: skip
    assert (flat - expected_flat).abs().max().item() < 2 / 255
    assert (flat - painted.permute(0, 3, 1, 2)).abs().max().item() > 0.1  # the default draws the outline
    # RGBA: painted in RGB, the alpha channel handed back as it came
    alpha = torch.linspace(0, 1, SIZE[0]).expand(1, SIZE[1], SIZE[0])[..., None]
    rgba = node.execute(image=torch.cat([image, alpha], -1), pose_keypoint=pose, sleeve_length="Short Sleeve",
                        person_index=0)  # fmt: skip
    rgba = rgba.result[0] if hasattr(rgba, "result") else rgba[0]
    assert rgba.shape == (1, SIZE[1], SIZE[0], 4)
    assert torch.equal(rgba[..., 3:], alpha) and torch.equal(rgba[..., :3], painted)
    # a pose that misses the image is an error naming the input, not an unpainted image passed on
    aside = kp.copy()
    aside[:, 0] += 3 * SIZE[0]
    aside_pose = comfy.run(
        {"pose": {"class_type": "HieraFash_PoseKeypointFromJSON",
                  "inputs": {"json_text": json.dumps(openpose_json(aside, SIZE))}}}, outputs=["pose"]
    )["pose"][0]  # fmt: skip
    with pytest.raises(ValueError, match=r"pose_keypoint \(person 0\): image 0: the arms lie outside this 128 x 192"):
        node.execute(image=image, pose_keypoint=aside_pose, sleeve_length="Short Sleeve", person_index=0)
    # a crop with no skin in it to read: the image is blamed, by the node's name for it
    crop, cropped = image[:, 28:88].contiguous(), kp.copy()
    cropped[:, 1] -= 28
    crop_pose = comfy.run(
        {"pose": {"class_type": "HieraFash_PoseKeypointFromJSON",
                  "inputs": {"json_text": json.dumps(openpose_json(cropped, (SIZE[0], 60)))}}}, outputs=["pose"]
    )["pose"][0]  # fmt: skip
    with pytest.raises(ValueError, match=r"^image: image 0: no skin colour to read"):
        node.execute(image=crop, pose_keypoint=crop_pose, sleeve_length="Short Sleeve", person_index=0)


@pytest.mark.parametrize("pose", ["photo_camera", "hand_to_hair"])  # elbows bent by more than 90 degrees
@pytest.mark.parametrize("after", ["Elbow-length Sleeve", "Mid-length Sleeve"])
def test_a_forearm_folded_back_does_not_cut_the_upper_arms_sleeve_away(pose, after):
    source, kp = drawing("Sleeveless", pose)
    painted = paint_sleeves(as_batch(source.image), torch.from_numpy(kp).float()[None], [after])[0].numpy()
    cloth, skin = np.array(LOOK.garment) / 255, np.array(LOOK.skin) / 255
    for arm in ARMS:
        for level in np.arange(0.15, 0.85, 0.1):  # the upper arm: sleeve for both lengths
            x, y = np.round(arm_point(kp, arm, level)).astype(int)
            colour = painted[:, y, x]
            assert np.linalg.norm(colour - cloth) < np.linalg.norm(colour - skin), (pose, after, arm, level, colour)


def test_the_sleeve_colour_is_read_beside_an_arm_that_crosses_the_chest():
    """photo_camera holds one forearm across the chest: the bodice colour must not be the sleeve's or skin's."""
    source, kp = drawing("Long Sleeve", "photo_camera")
    look_sleeve = np.array(LOOK.garment) / 255
    image = as_batch(source.image)
    painted = paint_sleeves(image, torch.from_numpy(kp).float()[None], ["Elbow-length Sleeve"])[0].numpy()
    x, y = np.round(arm_point(kp, ARMS[0], 0.5)).astype(int)
    assert np.abs(painted[:, y, x] - look_sleeve).max() < 0.05  # the dress's own colour


def test_a_white_bib_on_the_chest_does_not_colour_the_sleeve():
    """The sleeve takes the bodice's most common colour, not the colour just below the neck (a collar,
    a bib or a neckline there covers a third of the torso at most)."""
    source, kp = drawing("Sleeveless")
    image = as_batch(source.image)
    neck, hips = kp[1, :2], (kp[8, :2] + kp[11, :2]) / 2
    u = float(np.hypot(*(hips - neck)))
    bib = neck + (hips - neck) * 0.35
    ys, xs = np.mgrid[0 : SIZE[1], 0 : SIZE[0]]
    image[0, :, np.hypot(xs - bib[0], ys - bib[1]) < 0.14 * u] = 1.0  # white, over the chest
    painted = paint_sleeves(image, torch.from_numpy(kp).float()[None], ["Elbow-length Sleeve"])[0].numpy()
    cloth = np.array(LOOK.garment) / 255
    for arm in ARMS:
        x, y = np.round(arm_point(kp, arm, 0.5)).astype(int)
        assert np.abs(painted[:, y, x] - cloth).max() < 0.05, (arm, painted[:, y, x], cloth)


def test_no_shoulder_is_an_error_and_one_missing_shoulder_a_warning(caplog):
    source, kp = drawing("Long Sleeve")
    image = as_batch(source.image)
    no_left = kp.copy()
    no_left[5, 2] = 0  # left shoulder unseen
    with caplog.at_level("WARNING", logger="hierafash_core.editing.layout"):
        painted = paint_sleeves(image, torch.from_numpy(no_left).float()[None], ["Short Sleeve"])
    assert "no left shoulder in the keypoints; that arm is left as it is" in caplog.text
    assert (painted - image).abs().max() > 0.1  # the right arm was painted
    neither = kp.copy()
    neither[[2, 5], 2] = 0
    with pytest.raises(ValueError, match=r"keypoints: image 0 has neither shoulder .* edit without the hint"):
        paint_sleeves(image, torch.from_numpy(neither).float()[None], ["Short Sleeve"])
    with pytest.raises(ValueError, match=r"keypoints: image 0 has no measurable body"):
        paint_sleeves(image, torch.zeros(1, 18, 3), ["Short Sleeve"])
    with pytest.raises(ValueError, match=r"images: expected a \(B, 3, H, W\) RGB tensor"):
        paint_sleeves(source.image, torch.from_numpy(kp).float()[None], ["Short Sleeve"])


def _beside_segment(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Distance from ``p`` to the segment a-b when ``p`` lies beside it (projects inside it), else inf."""
    t = np.dot(p - a, b - a) / max(np.dot(b - a, b - a), 1e-9)
    return float(np.hypot(*(p - (a + t * (b - a))))) if 0 <= t <= 1 else np.inf


@pytest.mark.parametrize("pose", ["front", "hand_on_hip", "photo_camera"])
@pytest.mark.parametrize("after", ["Short Sleeve", "Elbow-length Sleeve", "Mid-length Sleeve"])
def test_the_sleeve_ends_where_its_length_says_within_a_pixel_or_two(pose, after):
    """No round cap runs past the end (the upper arm's cap at the elbow lengthened elbow-length sleeves)."""
    source, kp = drawing("Long Sleeve", pose)
    target, _ = drawing(after, pose)  # where a bent arm's upper sleeve lies beside the forearm, it says so
    painted = paint_sleeves(as_batch(source.image), torch.from_numpy(kp).float()[None], [after])[0].numpy()
    cloth, skin = np.array(LOOK.garment) / 255, np.array(LOOK.skin) / 255
    end = sleeve_end_level(after)
    u = float(np.hypot(*((kp[8, :2] + kp[11, :2]) / 2 - kp[1, :2])))
    checked = 0
    for arm in ARMS:
        s, e, w = (kp[i, :2] for i in arm)
        seg = np.hypot(*(e - s)) if end <= 1 else np.hypot(*(w - e))
        for offset_px in (-2.5, 2.5, 5.0):
            point = arm_point(kp, arm, end + offset_px / seg)
            if end > 1 and _beside_segment(point, s, e) < (ARM_HW[1] + SLEEVE_MARGIN) * u + 1:
                continue  # a sharply bent elbow: the upper arm's sleeve lies right beside the forearm here
            x, y = np.round(point).astype(int)
            label = target.parse[y, x]
            if label not in (LABEL["skin"], LABEL["sleeves"]):
                continue
            want, other = (skin, cloth) if label == LABEL["skin"] else (cloth, skin)
            colour = painted[:, y, x]
            assert np.linalg.norm(colour - want) < np.linalg.norm(colour - other), (pose, after, arm, offset_px)
            checked += 1
    assert checked >= 2


def test_keypoints_far_outside_the_image_paint_nothing_and_say_so(caplog):
    source, kp = drawing("Long Sleeve")
    image = as_batch(source.image)
    far = kp.copy()
    far[:, :2] *= 1e30  # keypoints of some other scale: overflowed once
    with caplog.at_level("WARNING", logger="hierafash_core.editing.layout"):
        painted = paint_sleeves(image, torch.from_numpy(far).float()[None], ["Short Sleeve"])
    assert torch.equal(painted, image)
    assert "the pose lies far outside this 128 x 192 image" in caplog.text
    # the node asks for an error instead: its user would otherwise edit from an unpainted image unknowingly
    with pytest.raises(ValueError, match="keypoints: image 0: the pose lies far outside this 128 x 192 image"):
        paint_sleeves(image, torch.from_numpy(far).float()[None], ["Short Sleeve"], require_painted=True)
    aside = kp.copy()
    aside[:, 0] += 3 * SIZE[0]  # beside the image, not far out: the arms cover no pixel
    with pytest.raises(ValueError, match="keypoints: image 0: the arms lie outside this 128 x 192 image"):
        paint_sleeves(image, torch.from_numpy(aside).float()[None], ["Short Sleeve"], require_painted=True)


def test_an_image_with_no_skin_to_read_says_so_rather_than_blaming_the_pose(caplog):
    """A tight crop shows no hand, face or shin: the bare arm's colour cannot be read, and the message says
    that (the keypoints are right)."""
    source, kp = drawing("Long Sleeve")
    top, bottom = 28, 88  # below the nose (y 19), above the hands (94) and shins: shoulders to forearms
    crop = as_batch(source.image)[:, :, top:bottom].contiguous()
    points = torch.from_numpy(kp).float()[None]
    points[..., 1] -= top
    with pytest.raises(ValueError, match=r"images: image 0: no skin colour to read \(the hands, face and shins"):
        paint_sleeves(crop, points, ["Short Sleeve"], require_painted=True)
    with caplog.at_level("WARNING", logger="hierafash_core.editing.layout"):
        assert torch.equal(paint_sleeves(crop, points, ["Short Sleeve"]), crop)
    assert "give an image that shows a hand, the face or a shin" in caplog.text


def test_a_bad_image_late_in_a_batch_is_named_after_the_images_before_it_are_reported():
    """Values are checked image by image, so a host's Cancel is reached after the first image of a large batch."""
    source, kp = drawing("Long Sleeve")
    image = as_batch(source.image).repeat(3, 1, 1, 1)
    image[2, 0, 0, 0] = float("nan")
    seen = []
    with pytest.raises(ValueError, match="images: image 2 holds NaN"):
        paint_sleeves(image, torch.from_numpy(kp).float()[None].repeat(3, 1, 1), ["Short Sleeve"] * 3,
                      progress=lambda done, total: seen.append(done))  # fmt: skip
    assert seen == [1, 2]


def test_progress_is_reported_after_every_image_painted_or_not():
    source, kp = drawing("Long Sleeve")
    image = as_batch(source.image).repeat(3, 1, 1, 1)
    points = torch.from_numpy(kp).float()[None].repeat(3, 1, 1)
    points[1, :, :2] *= 1e30  # the middle one is skipped with a warning, and still counted
    seen = []
    paint_sleeves(image, points, ["Short Sleeve"] * 3, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_a_large_close_up_is_painted_as_the_small_drawing_is_and_quickly():
    """Bodies above FILL_UNIT px have the cleared band filled at that size: a 1024 x 1536 drawing (u of
    about 460 px; 11 s at full size) reads as the small one does, pixel for pixel along the arms."""
    size = (1024, 1536)
    assert size[0] / 4 > FILL_UNIT  # the scaled fill is used
    started = time.perf_counter()
    test_the_painted_arm_is_skin_and_sleeve_where_a_drawing_of_the_asked_sleeve_is(
        "Long Sleeve", "Short Sleeve", "front", size=size
    )
    test_the_painted_arm_is_skin_and_sleeve_where_a_drawing_of_the_asked_sleeve_is(
        "Short Sleeve", "Long Sleeve", "hand_on_hip", size=size
    )
    assert time.perf_counter() - started < 30  # two drawings and two paintings; about 3 s here


def test_the_fill_on_the_holes_box_is_the_fill_on_the_whole_image():
    """The cleared band is filled on its bounding box (plus the fill's radius): at full scale that is the
    whole image's fill, pixel for pixel, so the mini designer's figures did not move with it."""
    source, kp = drawing("Long Sleeve", "hand_on_hip")
    image = source.image.transpose(2, 0, 1).astype(np.float32) / 255
    hole = np.zeros(image.shape[1:], bool)
    hole[60:110, 20:50] = True
    radius = 5.0
    whole = image.copy()
    pixels = np.ascontiguousarray((whole.transpose(1, 2, 0) * 255).round().clip(0, 255).astype(np.uint8))
    filled = cv2.inpaint(pixels, hole.astype(np.uint8), radius, cv2.INPAINT_TELEA)
    whole[:, hole] = filled.transpose(2, 0, 1)[:, hole].astype(np.float32) / 255
    boxed = image.copy()
    _fill_from_surroundings(boxed, hole, radius)
    assert np.array_equal(boxed, whole)
    assert not np.array_equal(boxed, image)
