"""OpenPose skeleton images (the hint pose ControlNets were trained on) and mask previews.

The skeleton follows the OpenPose body convention used to train pose ControlNets: limbs as
ellipses in 60 % of their colour, joints as full-colour dots, on black. Preprocessors draw at a
512-pixel short side with 4-pixel sticks and resize; here the stick width scales with the short
side instead, so a 512-pixel drawing matches theirs and larger canvases stay sharp.
TODO(evidence: controlnet_aux's draw_bodypose costs a 5 s package import and draws fixed 4 px
sticks): if a lighter controlnet-aux import appears, draw with it instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from .keypoints import OPENPOSE_COLORS, OPENPOSE_LIMBS

# Stick half-width and joint radius in pixels at a 512-pixel short side.
_STICK = 4
_JOINT = 4
_REFERENCE_SIDE = 512


def _people_per_image(keypoints: torch.Tensor | Sequence[torch.Tensor]) -> list[np.ndarray]:
    if isinstance(keypoints, torch.Tensor):
        if keypoints.ndim != 3 or keypoints.shape[-1] != 3:
            raise ValueError(f"keypoints: expected (B, 18, 3), got {tuple(keypoints.shape)}")
        return [kp[None].detach().float().cpu().numpy() for kp in keypoints]
    return [kp.detach().float().cpu().numpy().reshape(-1, 18, 3) for kp in keypoints]


def draw_skeleton(canvas: np.ndarray, people: np.ndarray, min_confidence: float = 0.3) -> np.ndarray:
    """Draw OpenPose-18 skeletons (P, 18, 3) in pixels onto an RGB uint8 canvas (H, W, 3), in place."""
    h, w = canvas.shape[:2]
    scale = min(h, w) / _REFERENCE_SIDE
    stick = max(1, round(_STICK * scale))
    joint = max(1, round(_JOINT * scale))
    for person in people:
        ok = person[:, 2] >= min_confidence
        for (a, b), color in zip(OPENPOSE_LIMBS, OPENPOSE_COLORS[: len(OPENPOSE_LIMBS)], strict=True):
            if not (ok[a] and ok[b]):
                continue
            (xa, ya), (xb, yb) = person[a, :2], person[b, :2]
            length = math.hypot(xa - xb, ya - yb)
            angle = math.degrees(math.atan2(ya - yb, xa - xb))
            center = (int((xa + xb) / 2), int((ya + yb) / 2))
            poly = cv2.ellipse2Poly(center, (int(length / 2), stick), int(angle), 0, 360, 1)
            cv2.fillConvexPoly(canvas, poly, [int(c * 0.6) for c in color])
        for i, color in enumerate(OPENPOSE_COLORS):
            if ok[i]:
                cv2.circle(canvas, (int(person[i, 0]), int(person[i, 1])), joint, color, thickness=-1)
    return canvas


def render_openpose(
    keypoints: torch.Tensor | Sequence[torch.Tensor], size: tuple[int, int], min_confidence: float = 0.3
) -> torch.Tensor:
    """OpenPose skeleton images for a pose ControlNet.

    Args:
        keypoints: (B, 18, 3) one person per image, or a list of (P, 18, 3), in pixels of ``size``.
        size: (H, W) of the images to draw.

    Returns:
        (B, 3, H, W) float in [0, 1], black background.
    """
    h, w = int(size[0]), int(size[1])
    frames = []
    for people in _people_per_image(keypoints):
        canvas = np.zeros((h, w, 3), dtype=np.uint8)
        frames.append(torch.from_numpy(draw_skeleton(canvas, people, min_confidence)))
    return torch.stack(frames).permute(0, 3, 1, 2).float() / 255.0  # BHWC -> BCHW


def render_openpose_hwc(keypoints: np.ndarray, width: int, height: int, min_confidence: float = 0.3) -> np.ndarray:
    """One image's skeleton as an (height, width, 3) uint8 array, for datasets and training.

    The same drawing as :func:`render_openpose` (what the pose nodes feed a ControlNet at inference),
    so a ControlNet trained on these images sees at training what it gets in ComfyUI.

    Args:
        keypoints: (18, 3) one person or (P, 18, 3), x, y in pixels of ``width`` x ``height``.
    """
    people = np.asarray(keypoints, dtype=np.float64)
    if people.ndim == 2:
        people = people[None]
    if people.ndim != 3 or people.shape[1:] != (18, 3):
        raise ValueError(f"keypoints of shape {people.shape}; expected (18, 3) or (P, 18, 3) OpenPose-18 points")
    if width < 1 or height < 1:
        raise ValueError(f"pose canvas {width}x{height}: both sides must be at least 1 pixel")
    return draw_skeleton(np.zeros((int(height), int(width), 3), dtype=np.uint8), people, min_confidence)


def to_uint8_hwc(image: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) float in [0, 1] -> (B, H, W, C) uint8, with numpy (single-threaded: torch's
    thread pool adds milliseconds per operation on a busy CPU)."""
    values = image.detach().float().cpu().numpy().transpose(0, 2, 3, 1)  # BCHW -> BHWC (a view)
    scaled = values * 255 + 0.5  # one float copy; rounding by truncation after +0.5
    np.clip(scaled, 0, 255, out=scaled)
    return np.ascontiguousarray(scaled, dtype=np.uint8)


def preview(
    image: torch.Tensor,
    mask: torch.Tensor,
    keypoints: torch.Tensor | Sequence[torch.Tensor] | None = None,
    color: tuple[int, int, int] = (26, 217, 255),
    strength: float = 0.5,
) -> torch.Tensor:
    """The photo with the mask tinted and outlined and the skeleton drawn over it.

    Args:
        image: (B, 3, H, W) in [0, 1]. mask: (B, 1, H, W) in [0, 1] (B may be 1 for a batch).
        keypoints: optional skeleton to draw, as for :func:`render_openpose`.
        color: RGB tint, 0..255. strength: how much of the tint covers the masked photo.

    Returns:
        (B, 3, H, W) float in [0, 1].
    """
    b, _, h, w = image.shape
    pixels = to_uint8_hwc(image)  # (B, H, W, 3)
    masks = mask.detach().float().cpu().numpy()[:, 0]  # (B or 1, H, W)
    frames = _people_per_image(keypoints) if keypoints is not None else [None]
    frames = frames * b if len(frames) == 1 else frames
    tint = np.array(color, dtype=np.float32)
    for i, (canvas, people) in enumerate(zip(pixels, frames, strict=True)):
        m = masks[i if len(masks) > 1 else 0]
        weight = (m * strength)[..., None]  # (H, W, 1)
        blended = canvas * (1 - weight) + tint * weight
        np.copyto(canvas, blended + 0.5, casting="unsafe")
        canvas[_outline(m)] = color
        if people is not None:
            draw_skeleton(canvas, people)
    return torch.from_numpy(pixels.transpose(0, 3, 1, 2).astype(np.float32) / 255)  # BHWC -> BCHW


def _outline(mask: np.ndarray, long_side: int = 768) -> np.ndarray:
    """(H, W) bool: pixels on the edge of ``mask > 0.5``, about 3 px thick at 768 px; found on a
    copy at most ``long_side`` pixels long so large images stay cheap."""
    h, w = mask.shape
    k = min(1.0, long_side / max(h, w))
    small = (
        cv2.resize(mask, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA) if k < 1 else mask
    )
    hard = (small > 0.5).astype(np.uint8)
    edge = cv2.morphologyEx(hard, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    if k < 1:
        edge = cv2.resize(edge, (w, h), interpolation=cv2.INTER_NEAREST)
    return edge > 0
