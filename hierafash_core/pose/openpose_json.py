"""The OpenPose JSON that ComfyUI pose preprocessors emit as ``POSE_KEYPOINT``, to and from tensors.

``POSE_KEYPOINT`` is a list with one entry per image::

    [{"people": [{"pose_keypoints_2d": [x0, y0, c0, x1, y1, c1, ...], ...}, ...],
      "canvas_width": W, "canvas_height": H}, ...]

with 18 OpenPose points per person (``0, 0, 0`` for a point not found). Variants met in the wild
and accepted here: coordinates normalised to 0..1 instead of pixels (some DWPose versions), the 25
points of OpenPose BODY_25 (mapped to 18), a single dict instead of a list, a JSON string, a
missing canvas size (the image size is assumed). The canvas may differ from the image the mask is
built for (preprocessors detect at their own resolution): points are scaled to the image.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import torch

from .keypoints import OPENPOSE_18, body_size

log = logging.getLogger(__name__)

# BODY_25 index of each OpenPose-18 point (BODY_25 adds MidHip at 8 and six foot points).
_BODY25_TO_18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
# Above this aspect-ratio mismatch between canvas and image, the keypoints probably belong to another image.
_ASPECT_TOLERANCE = 0.10
MAX_CANVAS = 1 << 16  # pixels a side; a canvas beyond any image's size scales every point to 0


def _frames(pose: Any, name: str) -> list[dict]:
    if isinstance(pose, (str, bytes)):
        try:
            pose = json.loads(pose)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, too many digits, nesting too deep
            raise ValueError(f"{name}: not valid JSON ({str(exc)[:200]}); expected the OpenPose layout") from None
    if isinstance(pose, dict):
        pose = [pose]
    if not isinstance(pose, Sequence) or not pose:
        raise ValueError(
            f"{name}: expected a list with one {{'people': [...], 'canvas_width': W, 'canvas_height': H}} per image, "
            f"got {type(pose).__name__} {str(pose)[:80]!r}"
        )
    for i, frame in enumerate(pose):
        if not isinstance(frame, dict) or not isinstance(frame.get("people", None), list):
            raise ValueError(f"{name}[{i}]: expected a dict with a 'people' list, got {str(frame)[:80]!r}")
    return list(pose)


def _person(values: Any, where: str) -> torch.Tensor | None:
    """One person's ``pose_keypoints_2d`` -> (18, 3), or None when the person has no body points."""
    if values is None:
        return None
    try:
        flat = torch.tensor([float(v) for v in values], dtype=torch.float32)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer past float range (10**400)
        raise ValueError(
            f"{where}: pose_keypoints_2d must be a list of finite numbers, got {str(values)[:80]!r}"
        ) from None
    if flat.numel() == 0:
        return None
    if flat.numel() % 3 or flat.numel() // 3 not in (18, 25):
        raise ValueError(
            f"{where}: pose_keypoints_2d holds {flat.numel()} numbers; expected 18 or 25 points of (x, y, confidence)"
        )
    points = flat.view(-1, 3)
    if points.shape[0] == 25:
        points = points[list(_BODY25_TO_18)]
    if not torch.isfinite(points).all():
        raise ValueError(f"{where}: pose_keypoints_2d holds NaN, infinite or out-of-range (beyond 3.4e38) values")
    return points


def people_from_pose_keypoint(
    pose: Any, image_size: tuple[int, int] | None = None, name: str = "pose_keypoint"
) -> list[torch.Tensor]:
    """Parse ``POSE_KEYPOINT`` into one (P, 18, 3) tensor per image, people ordered largest first.

    Args:
        pose: the ``POSE_KEYPOINT`` payload (list of frames, one frame dict, or a JSON string).
        image_size: (H, W) of the image the keypoints will be used with; points are scaled from
            the frame's canvas to it. Without it, points stay in canvas pixels.

    Returns:
        Per frame, a float tensor (P, 18, 3) of (x, y, confidence) in pixels; P may be 0. People
        are sorted by body size (torso length / shoulder width), largest first.
    """
    frames = _frames(pose, name)
    out = []
    for f, frame in enumerate(frames):
        people = []
        for p, person in enumerate(frame["people"]):
            where = f"{name}[{f}].people[{p}]"
            if not isinstance(person, dict):
                raise ValueError(f"{where}: expected a dict with 'pose_keypoints_2d', got {str(person)[:80]!r}")
            points = _person(person.get("pose_keypoints_2d"), where)
            if points is not None:
                people.append(points)
        kp = torch.stack(people) if people else torch.zeros(0, len(OPENPOSE_18), 3)
        canvas = _canvas(frame, f"{name}[{f}]")
        found = kp[..., 2] > 0
        normalised = bool(found.any()) and float(kp[..., :2][found].abs().max()) <= 1.0 + 1e-3
        if normalised:
            # Some DWPose versions write 0..1 coordinates; a real pose in pixels never fits in 1 px.
            ref = canvas or image_size
            if ref is None:
                raise ValueError(f"{name}[{f}]: coordinates are normalised (0..1) but no canvas size is given")
            log.info("%s[%d]: normalised coordinates; scaling to %dx%d", name, f, ref[1], ref[0])
            kp[..., 0] *= ref[1]
            kp[..., 1] *= ref[0]
            canvas = ref
        if image_size is not None and canvas is not None and tuple(canvas) != tuple(image_size):
            _check_aspect(canvas, image_size, f"{name}[{f}]")
            kp[..., 0] *= image_size[1] / canvas[1]
            kp[..., 1] *= image_size[0] / canvas[0]
        kp[..., :2] *= found[..., None]  # keep missing points at exactly 0, 0, 0
        if kp.shape[0] > 1:
            kp = kp[torch.argsort(body_size(kp), descending=True, stable=True)]
        out.append(kp)
    return out


def _canvas(frame: dict, where: str) -> tuple[int, int] | None:
    w, h = frame.get("canvas_width"), frame.get("canvas_height")
    if w is None or h is None:
        return None
    given = f"got {str(w)[:40]}, {str(h)[:40]}"
    try:
        # whole numbers only (512 or 512.0): int() would floor 1.9 to 1 and read True as 1
        whole = not any(isinstance(v, bool) for v in (w, h)) and all(float(v) == int(float(v)) for v in (w, h))
    except (TypeError, ValueError, OverflowError):
        whole = False
    if not whole:
        raise ValueError(f"{where}: canvas_width/canvas_height must be whole numbers of pixels, {given}")
    size = f"{str(w)[:40]} x {str(h)[:40]}"
    w, h = int(float(w)), int(float(h))
    if not (0 < w <= MAX_CANVAS and 0 < h <= MAX_CANVAS):
        raise ValueError(f"{where}: canvas size {size}: give from 1 to {MAX_CANVAS} pixels a side")
    return h, w


def _check_aspect(canvas: tuple[int, int], image: tuple[int, int], where: str) -> None:
    ratio = (canvas[1] / canvas[0]) / (image[1] / image[0])
    if abs(ratio - 1) > _ASPECT_TOLERANCE:
        log.warning(
            "%s: the keypoint canvas is %dx%d but the image is %dx%d (aspect ratios differ by %.0f%%); "
            "scaling anyway: check that the keypoints belong to this image",
            where, canvas[1], canvas[0], image[1], image[0], abs(ratio - 1) * 100,
        )  # fmt: skip


def select_person(people: list[torch.Tensor], person_index: int = 0, batch: int | None = None) -> torch.Tensor:
    """Pick person ``person_index`` (0 = largest) of each frame: list of (P, 18, 3) -> (B, 18, 3).

    One frame is repeated for a batch of ``batch`` images; otherwise the frame count must match.

    Raises:
        ValueError: a frame has no person, or fewer than ``person_index + 1``; the frame count
            matches neither 1 nor ``batch``.
    """
    if person_index < 0:
        raise ValueError(f"person_index={person_index}: must be 0 (the largest person) or more")
    if batch is not None and len(people) not in (1, batch):
        raise ValueError(
            f"pose_keypoint: {len(people)} frames for a batch of {batch} images; give one frame, or one per image"
        )
    chosen = []
    for f, kp in enumerate(people):
        if kp.shape[0] == 0:
            raise ValueError(
                f"pose_keypoint: no person found in image {f}: the keypoints list no one; check the pose input"
            )
        if person_index >= kp.shape[0]:
            raise ValueError(
                f"person_index={person_index}: image {f} has {kp.shape[0]} "
                f"{'person' if kp.shape[0] == 1 else 'people'} (0 is the largest); lower person_index"
            )
        chosen.append(kp[person_index])
    out = torch.stack(chosen)
    if batch is not None and out.shape[0] == 1 and batch > 1:
        out = out.expand(batch, -1, -1).clone()
    return out


def pose_keypoint_to_tensor(
    pose: Any, image_size: tuple[int, int] | None = None, person_index: int = 0, batch: int | None = None
) -> torch.Tensor:
    """``POSE_KEYPOINT`` -> keypoints (B, 18, 3) in pixels of ``image_size``, one person per image."""
    return select_person(people_from_pose_keypoint(pose, image_size), person_index, batch)


def tensor_to_pose_keypoint(
    keypoints: torch.Tensor | Sequence[torch.Tensor], image_size: tuple[int, int], min_confidence: float = 0.3
) -> list[dict]:
    """Keypoints -> ``POSE_KEYPOINT`` (pixel coordinates, OpenPose layout).

    Args:
        keypoints: (B, 18, 3) with one person per image, or a list with one (P, 18, 3) per image.
        image_size: (H, W), written as the canvas size.
        min_confidence: points below it are written as ``0, 0, 0`` (OpenPose's "not found").
    """
    if isinstance(keypoints, torch.Tensor):
        if keypoints.ndim != 3 or keypoints.shape[1:] != (len(OPENPOSE_18), 3):
            raise ValueError(f"keypoints: expected (B, 18, 3), got {tuple(keypoints.shape)}")
        frames = [kp[None] for kp in keypoints]
    else:
        frames = list(keypoints)
    h, w = int(image_size[0]), int(image_size[1])
    out = []
    for kp in frames:
        people = []
        for person in kp.detach().float().cpu():
            flat = []
            for x, y, c in person.tolist():
                flat += [round(x, 2), round(y, 2), round(c, 4)] if c >= min_confidence else [0.0, 0.0, 0.0]
            people.append(
                {
                    "pose_keypoints_2d": flat,
                    "face_keypoints_2d": None,
                    "hand_left_keypoints_2d": None,
                    "hand_right_keypoints_2d": None,
                }
            )
        out.append({"people": people, "canvas_width": w, "canvas_height": h})
    return out
