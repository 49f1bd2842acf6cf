"""One person's body frame from OpenPose-18 keypoints: its size, its axes, and the points a region needs.

Every margin of every region is a multiple of the body unit ``u`` (see
:func:`hierafash_core.pose.keypoints.body_size`: about the torso length, neck to mid-hip), so the
same person gets the same region at any resolution. Missing points a region needs are reported
by name; missing points it can do without are estimated from the others and logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from ..pose.keypoints import OP, OPENPOSE_18, body_size, point_label

log = logging.getLogger(__name__)

# Typical adult proportions in body units (u = neck to mid-hip), used only to estimate points
# that are hidden or outside the photo.
UPPER_ARM = 0.6  # shoulder to elbow
FOREARM = 0.5  # elbow to wrist
THIGH = 0.85  # hip to knee
# Hidden points the detector still placed with at least this confidence shape regions (never
# required points); OpenPose JSON marks missing points with 0, so they never pass.
GUESS_CONFIDENCE = 0.05

# Points further than this fraction of the image size outside it count as "outside the photo".
_FRAME_TOLERANCE = 0.02


class MissingKeypointsError(ValueError):
    """A region needs body points that the photo does not show (``missing`` lists their names)."""

    def __init__(self, message: str, missing: list[str]):
        super().__init__(message)
        self.missing = missing


@dataclass
class Body:
    """Body frame of one person in an (H, W) image.

    Attributes:
        points: (18, 3) OpenPose-18 keypoints (x, y, confidence) in pixels.
        usable: (18,) whether each point reaches ``min_confidence``.
        unit: body unit u in pixels.
        down: unit vector from the neck towards the hips (pixels, y down).
        across: unit vector perpendicular to ``down``.
        notes: what had to be estimated (for logs).
    """

    points: np.ndarray
    usable: np.ndarray
    size: tuple[int, int]
    unit: float
    down: np.ndarray
    across: np.ndarray
    image_index: int = 0
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_keypoints(
        cls, keypoints: torch.Tensor, size: tuple[int, int], min_confidence: float = 0.3, image_index: int = 0
    ) -> Body:
        """Build from one person's (18, 3) keypoints.

        Raises:
            MissingKeypointsError: the body cannot be measured (no shoulders, or neither shoulder
                width nor torso length).
        """
        pts = keypoints.detach().double().cpu().numpy().reshape(len(OPENPOSE_18), 3)
        usable = pts[:, 2] >= min_confidence
        unit = float(body_size(torch.from_numpy(pts).float()[None], min_confidence)[0])
        if unit <= 1e-3:
            missing = [point_label(i) for i in (OP["right_shoulder"], OP["left_shoulder"]) if not usable[i]]
            raise MissingKeypointsError(
                f"no usable person in image {image_index}: the body size needs both shoulders, or the neck and a hip "
                f"(missing: {', '.join(missing) or 'neck, hips'}; confidence below {min_confidence}); "
                "use a photo where the upper body is visible, or lower min_confidence",
                missing,
            )
        body = cls(pts, usable, (int(size[0]), int(size[1])), unit, np.zeros(2), np.zeros(2), image_index)
        body.down = body._down_axis()
        body.across = np.array([-body.down[1], body.down[0]])
        return body

    # -- points -------------------------------------------------------------------------------

    def has(self, name: str) -> bool:
        return bool(self.usable[OP[name]])

    def p(self, name: str) -> np.ndarray | None:
        """Pixel position of a point, or None when it is not usable."""
        return self.points[OP[name], :2].copy() if self.has(name) else None

    def guess(self, name: str) -> np.ndarray | None:
        """A usable point, or else the detector's low-confidence guess of a hidden one (confidence
        of at least ``GUESS_CONFIDENCE``), which places a hidden elbow or knee better than body
        proportions do and keeps the region steady when a confidence wavers around the threshold."""
        if self.has(name) or self.points[OP[name], 2] >= GUESS_CONFIDENCE:
            return self.points[OP[name], :2].copy()
        return None

    def in_photo(self, name: str) -> bool:
        """Usable and inside the image (within a small tolerance)."""
        if not self.has(name):
            return False
        x, y = self.points[OP[name], :2]
        h, w = self.size
        tol = _FRAME_TOLERANCE * max(h, w)
        return -tol <= x <= w - 1 + tol and -tol <= y <= h - 1 + tol

    @property
    def neck(self) -> np.ndarray:
        if self.has("neck"):
            return self.p("neck")
        rs, ls = self.p("right_shoulder"), self.p("left_shoulder")
        if rs is not None and ls is not None:
            return (rs + ls) / 2
        raise MissingKeypointsError(f"image {self.image_index}: no neck and no shoulders", ["neck"])

    def hip_mid(self) -> np.ndarray | None:
        hips = [p for p in (self.p("right_hip"), self.p("left_hip")) if p is not None]
        return np.mean(hips, axis=0) if hips else None

    def _down_axis(self) -> np.ndarray:
        rs, ls = self.p("right_shoulder"), self.p("left_shoulder")
        neck = self.p("neck")
        if neck is None and rs is not None and ls is not None:
            neck = (rs + ls) / 2
        hip = self.hip_mid()
        if neck is not None and hip is not None and np.linalg.norm(hip - neck) > 0.25 * self.unit:
            return _unit(hip - neck)
        if rs is not None and ls is not None and np.linalg.norm(ls - rs) > 1e-6:
            across = _unit(ls - rs)
            down = np.array([-across[1], across[0]])
            head = [self.p(n) for n in ("nose", "right_eye", "left_eye", "right_ear", "left_ear")]
            head = [h for h in head if h is not None]
            if head:  # the head is above the neck: "down" points away from it
                if np.dot(np.mean(head, axis=0) - neck, down) > 0:
                    down = -down
            elif down[1] < 0:
                down = -down
            return down
        return np.array([0.0, 1.0])

    # -- estimates ----------------------------------------------------------------------------

    def note(self, text: str) -> None:
        self.notes.append(text)

    def require(self, what: str, groups: list[tuple[str, ...]], fix: str) -> None:
        """Raise unless each group has at least one point that is usable and inside the photo.

        Args:
            what: the region, for the message ("hem (Dress: down to the ankles)").
            groups: tuples of point names; one point of each tuple is enough.
            fix: what the user can do.
        """
        missing = []
        for group in groups:
            if not any(self.in_photo(n) for n in group):
                missing += list(group)
        if missing:
            labels = [point_label(OP[n]) for n in missing]
            raise MissingKeypointsError(
                f"{what} lies outside the photo or is hidden in image {self.image_index}: it needs "
                f"{' and '.join(' or '.join(g) for g in groups)}, and these are missing (confidence below the "
                f"threshold or outside the {self.size[1]}x{self.size[0]} photo): {', '.join(labels)}. {fix}",
                missing,
            )

    def hips(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(right, left) hip, mirroring one across the body axis when only one is found; None if neither."""
        rh, lh = self.p("right_hip"), self.p("left_hip")
        if rh is None and lh is None:
            return None
        if rh is None or lh is None:
            present = rh if rh is not None else lh
            mirrored = present - 2 * np.dot(present - self.neck, self.across) * self.across
            self.note(f"{'right' if rh is None else 'left'} hip estimated by mirroring the other")
            rh, lh = (mirrored, lh) if rh is None else (rh, mirrored)
        return rh, lh

    def estimated_hips(self) -> tuple[np.ndarray, np.ndarray]:
        """Hips from the neck and the body unit when none are found (half-body photos)."""
        found = self.hips()
        if found is not None:
            return found
        self.note("hips estimated one body unit below the neck")
        centre = self.neck + self.down * self.unit
        half = 0.25 * self.unit
        return centre - self.across * half, centre + self.across * half

    def legs(self, hips: tuple[np.ndarray, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(hip, knee, ankle) per side, estimating hidden knees and ankles from the other leg or proportions."""
        sides = {"right": hips[0], "left": hips[1]}
        knees = {s: self.guess(f"{s}_knee") for s in sides}
        ankles = {s: self.guess(f"{s}_ankle") for s in sides}
        for s, other in (("right", "left"), ("left", "right")):
            if knees[s] is None:
                if knees[other] is not None:
                    knees[s] = sides[s] + (knees[other] - sides[other])
                    self.note(f"{s} knee estimated from the {other} leg")
                else:
                    knees[s] = sides[s] + self.down * THIGH * self.unit
                    self.note(f"{s} knee estimated {THIGH} body units below the hip")
        for s, other in (("right", "left"), ("left", "right")):
            if ankles[s] is None:
                if ankles[other] is not None:
                    ankles[s] = knees[s] + (ankles[other] - knees[other])
                    self.note(f"{s} ankle estimated from the {other} leg")
                else:
                    thigh = knees[s] - sides[s]
                    ankles[s] = knees[s] + thigh  # the shin is about as long as the thigh
                    self.note(f"{s} ankle estimated by continuing the thigh")
        return {s: (sides[s], knees[s], ankles[s]) for s in sides}

    def arm(self, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(shoulder, elbow, wrist) of one arm, estimating a hidden elbow or wrist; None without the shoulder."""
        shoulder = self.p(f"{side}_shoulder")
        if shoulder is None:
            return None
        elbow, wrist = self.guess(f"{side}_elbow"), self.guess(f"{side}_wrist")
        if elbow is None:
            elbow = shoulder + self.down * UPPER_ARM * self.unit
            self.note(f"{side} elbow estimated (arm hanging)")
        if wrist is None:
            wrist = elbow + _unit(elbow - shoulder, self.down) * FOREARM * self.unit
            self.note(f"{side} wrist estimated (forearm in line with the upper arm)")
        return shoulder, elbow, wrist

    def head(self) -> tuple[np.ndarray, float] | None:
        """Centre and radius of a disc over the face, or None when no head point is found."""
        pts = [self.p(n) for n in ("nose", "right_eye", "left_eye")]
        pts = [q for q in pts if q is not None]
        if not pts:
            pts = [q for q in (self.p("right_ear"), self.p("left_ear")) if q is not None]
        if not pts:
            return None
        return np.mean(pts, axis=0), 0.2 * self.unit


def _unit(v: np.ndarray, fallback: np.ndarray | None = None) -> np.ndarray:
    n = float(np.linalg.norm(v))
    if n < 1e-9:
        return fallback if fallback is not None else np.array([0.0, 1.0])
    return v / n
