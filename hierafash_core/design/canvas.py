"""Bring a photo's pose (and the photo) onto the design canvas.

A design is drawn on a fixed canvas (the paper's 512x704); photos come in any size. One
:class:`CanvasFit` maps the photo onto the canvas, and the same map moves the photo's pixels and
its keypoints, so the pose skeleton, the edit masks built from it and the photo used as a
starting image all line up.

Fits: ``contain`` scales the whole photo into the canvas and pads the rest (nobody is cut off);
``cover`` fills the canvas and crops the overflow (centred); ``stretch`` scales each axis on its
own (bodies change proportions: only for photos that already have the canvas's aspect).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..pose.openpose_json import people_from_pose_keypoint, select_person, tensor_to_pose_keypoint
from ..pose.render import render_openpose

log = logging.getLogger(__name__)

FITS = ("contain", "cover", "stretch")
MIN_SIDE = 64  # smaller canvases than this make latents of under 8x8 cells
MAX_SIDE = 8192


@dataclass(frozen=True)
class CanvasFit:
    """Where a (src_h, src_w) photo lands on a (height, width) canvas: ``x' = x * scale_x + offset_x``.

    ``resized`` is the photo's size after scaling (before padding or cropping); offsets are in canvas
    pixels (negative when ``cover`` crops).
    """

    source: tuple[int, int]
    canvas: tuple[int, int]
    resized: tuple[int, int]
    offset_x: int
    offset_y: int
    fit: str

    @property
    def scale_x(self) -> float:
        return self.resized[1] / self.source[1]

    @property
    def scale_y(self) -> float:
        return self.resized[0] / self.source[0]

    def points(self, keypoints: torch.Tensor) -> torch.Tensor:
        """Keypoints (..., 18, 3) in photo pixels -> canvas pixels; missing points stay 0, 0, 0."""
        out = keypoints.clone().float()
        found = out[..., 2] > 0
        out[..., 0] = out[..., 0] * self.scale_x + self.offset_x
        out[..., 1] = out[..., 1] * self.scale_y + self.offset_y
        out[..., :2] *= found[..., None]
        return out


def check_canvas(width: int, height: int) -> None:
    """Refuse canvas sizes the SD-family autoencoders cannot use, naming the fix."""
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{name}={value!r}: must be a whole number of pixels")
        if not MIN_SIDE <= value <= MAX_SIDE:
            raise ValueError(f"{name}={value}: must be between {MIN_SIDE} and {MAX_SIDE} pixels")
        if value % 8:
            raise ValueError(
                f"{name}={value}: must be a multiple of 8 (one latent cell is 8 pixels); use {value - value % 8} "
                f"or {value - value % 8 + 8}"
            )


def canvas_fit(source: tuple[int, int], canvas: tuple[int, int], fit: str = "contain") -> CanvasFit:
    """The map of a (H, W) photo onto a (H, W) canvas (see the module docstring for ``fit``)."""
    if fit not in FITS:
        raise ValueError(f"fit={fit!r}: use one of {', '.join(FITS)}")
    sh, sw = int(source[0]), int(source[1])
    ch, cw = int(canvas[0]), int(canvas[1])
    if min(sh, sw, ch, cw) < 1:
        raise ValueError(f"photo {sw}x{sh} or canvas {cw}x{ch} is empty")
    if fit == "stretch":
        return CanvasFit((sh, sw), (ch, cw), (ch, cw), 0, 0, fit)
    scale = min(cw / sw, ch / sh) if fit == "contain" else max(cw / sw, ch / sh)
    rh, rw = max(1, round(sh * scale)), max(1, round(sw * scale))
    if fit == "contain":  # rounding must not overflow the canvas
        rh, rw = min(rh, ch), min(rw, cw)
    else:
        rh, rw = max(rh, ch), max(rw, cw)
    return CanvasFit((sh, sw), (ch, cw), (rh, rw), (cw - rw) // 2, (ch - rh) // 2, fit)


def fit_image(image: torch.Tensor, fit: CanvasFit, pad: float = 1.0) -> torch.Tensor:
    """(B, C, H, W) photo -> (B, C, canvas_h, canvas_w); ``contain`` pads with ``pad`` (1 = white)."""
    if tuple(image.shape[-2:]) != fit.source:
        raise ValueError(f"image of size {tuple(image.shape[-2:])} does not match the fit's source {fit.source}")
    resized = image.float()
    if fit.resized != fit.source:
        shrinking = fit.resized[0] < fit.source[0] or fit.resized[1] < fit.source[1]
        resized = F.interpolate(resized, size=fit.resized, mode="bilinear", align_corners=False, antialias=shrinking)
        resized = resized.clamp(0, 1)
    b, c = image.shape[:2]
    ch, cw = fit.canvas
    out = torch.full((b, c, ch, cw), float(pad), dtype=resized.dtype)
    # Overlap of the resized photo (placed at the offsets) with the canvas, in both frames.
    x0, y0 = max(fit.offset_x, 0), max(fit.offset_y, 0)
    x1, y1 = min(fit.offset_x + fit.resized[1], cw), min(fit.offset_y + fit.resized[0], ch)
    ox, oy = fit.offset_x, fit.offset_y
    out[:, :, y0:y1, x0:x1] = resized[:, :, y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    return out


FAR_OUTSIDE = 10  # a keypoint more than this many photo sizes away is not a point of that photo


def fit_pose(
    pose_keypoint: Any, canvas: tuple[int, int], fit: str = "contain", person_index: int = 0
) -> tuple[torch.Tensor, list[dict], CanvasFit]:
    """One person of ``POSE_KEYPOINT`` moved onto the canvas.

    Args:
        pose_keypoint: OpenPose JSON (one frame per image; the canvas size in each frame is the
            photo's size).
        canvas: (H, W) of the design.
        person_index: 0 = the largest person of each frame.

    Returns:
        keypoints (B, 18, 3) in canvas pixels, the same as ``POSE_KEYPOINT`` on the canvas, and the
        fit of the first frame's photo.

    Raises:
        ValueError: no canvas size in the keypoints (the photo's size is needed to place them),
            no person, bad layout.
    """
    frames = pose_keypoint if isinstance(pose_keypoint, list) else [pose_keypoint]
    if not frames:
        raise ValueError("pose_keypoint: an empty list, no frame to place; connect PoseDetect or PoseKeypointFromJSON")
    fits, moved = [], []
    for i, frame in enumerate(frames):
        if not isinstance(frame, dict) or not frame.get("canvas_width") or not frame.get("canvas_height"):
            raise ValueError(
                f"pose_keypoint[{i}]: no canvas_width/canvas_height, so the photo size the points belong to is "
                "unknown; add them (OpenPose JSON from a preprocessor or `hierafash parse` has them)"
            )
        people = people_from_pose_keypoint([frame], name=f"pose_keypoint[{i}]")
        person = select_person(people, person_index)  # (1, 18, 3) in photo pixels
        size = max(int(frame["canvas_height"]), int(frame["canvas_width"]))
        seen = person[0, :, 2] > 0
        far = person[0, :, :2][seen].abs().max() if seen.any() else 0.0
        if far > FAR_OUTSIDE * size:  # pixels of another photo, or garbage: nothing sensible to draw
            raise ValueError(
                f"pose_keypoint[{i}]: keypoints lie up to {float(far):.3g} px from the corner of its "
                f"{frame['canvas_width']}x{frame['canvas_height']} photo; give the points in that photo's pixels"
            )
        f = canvas_fit((int(frame["canvas_height"]), int(frame["canvas_width"])), canvas, fit)
        fits.append(f)
        moved.append(f.points(person)[0])
    keypoints = torch.stack(moved)
    inside = keypoints[..., 2] > 0
    xs, ys = keypoints[..., 0][inside], keypoints[..., 1][inside]
    if xs.numel() and (xs.min() < 0 or ys.min() < 0 or xs.max() >= canvas[1] or ys.max() >= canvas[0]):
        log.info("fit %s: some keypoints fall outside the %dx%d canvas (cropped)", fit, canvas[1], canvas[0])
    return keypoints, tensor_to_pose_keypoint(keypoints, canvas), fits[0]


def pose_image(keypoints: torch.Tensor, canvas: tuple[int, int]) -> torch.Tensor:
    """OpenPose skeletons on the canvas: (B, 3, H, W) in [0, 1], what a pose ControlNet follows."""
    return render_openpose(keypoints, canvas)
