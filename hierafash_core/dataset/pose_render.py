"""Render OpenPose-18 keypoints as the stick figure pose ControlNets are trained on.

The drawing follows the OpenPose convention that ComfyUI pose preprocessors use (limbs as
filled ellipses in the 17 standard limb colours at 60% brightness on black, joints as dots in the
18 point colours), so a ControlNet trained on these images accepts the preprocessors' renderings.

TODO(evidence: hierafash_core/pose is being built in parallel with its own OpenPose-18
renderer): at merge, keep one renderer and let ``training.data`` and ``dataset.preview`` call it.
"""

from __future__ import annotations

import math

import numpy as np

# Limbs as pairs of OpenPose-18 point indices (0 nose, 1 neck, 2-4 right arm, 5-7 left arm,
# 8-10 right leg, 11-13 left leg, 14-17 eyes and ears).
LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
    (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip
COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip


def render_openpose18(keypoints: np.ndarray, width: int, height: int, *, thickness: float | None = None) -> np.ndarray:
    """Draw one person's pose on black.

    Args:
        keypoints: (18, 3) x, y in pixels of a ``width`` x ``height`` image and a confidence;
            points with confidence 0 are left out with their limbs.
        thickness: half-width of a limb in pixels; by default 4 at 512 pixels, scaled with the image.

    Returns:
        (height, width, 3) uint8 RGB image.
    """
    import cv2

    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.shape != (18, 3):
        raise ValueError(f"keypoints of shape {kp.shape}; expected (18, 3) (OpenPose-18 x, y, confidence)")
    if width < 1 or height < 1:
        raise ValueError(f"pose canvas {width}x{height}: both sides must be at least 1 pixel")
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    half = thickness if thickness is not None else max(1.0, 4.0 * max(width, height) / 512.0)
    seen = kp[:, 2] > 0
    for (a, b), color in zip(LIMBS, COLORS, strict=False):
        if not (seen[a] and seen[b]):
            continue
        (xa, ya), (xb, yb) = kp[a, :2], kp[b, :2]
        length = math.hypot(xa - xb, ya - yb)
        angle = math.degrees(math.atan2(ya - yb, xa - xb))
        centre = (int(round((xa + xb) / 2)), int(round((ya + yb) / 2)))
        poly = cv2.ellipse2Poly(centre, (int(length / 2), max(1, int(round(half)))), int(angle), 0, 360, 1)
        cv2.fillConvexPoly(canvas, poly, [int(c * 0.6) for c in color])
    radius = max(1, int(round(half)))
    for i in np.flatnonzero(seen):
        cv2.circle(canvas, (int(round(kp[i, 0])), int(round(kp[i, 1]))), radius, COLORS[i], thickness=-1)
    return canvas
