"""Body geometry from OpenPose-18 keypoints: a frame on the torso, limb paths, outlines.

Every length is a multiple of ``u``, the torso length (neck to mid-hip), so shapes keep their
proportions at any image size and pose scale. Two level scales place garment edges exactly:

- body level ``lam``: 0 at the neck, 1 at the mid-hip, 2 at the knees, 3 at the ankles (the legs'
  average; piecewise linear along each leg).
- arm level ``mu``: 0 at the shoulder, 1 at the elbow, 2 at the wrist (piecewise linear).

Sides: ``side = -1`` is the person's right (drawn on the image's left in a front view), ``+1``
the left. Points are numpy (2,) arrays in drawing pixels.
"""

from __future__ import annotations

import numpy as np

# Half widths, in torso lengths u.
ARM_HW = (0.072, 0.058, 0.045)  # at shoulder, elbow, wrist
LEG_HW = (0.15, 0.085, 0.055)  # at hip, knee, ankle
NECK_HW = 0.072
WAIST_LEVEL = 0.62


def unit(v: np.ndarray) -> np.ndarray:
    n = float(np.hypot(v[0], v[1]))
    return v / n if n > 1e-9 else np.array([0.0, 1.0])


def perp(v: np.ndarray) -> np.ndarray:
    """``v`` turned 90 degrees (x right, y down: from "down" it gives "image left")."""
    return np.array([-v[1], v[0]])


def lerp(a, b, t):
    return a + (b - a) * t


def _along(points: list[np.ndarray], t: float) -> tuple[np.ndarray, np.ndarray]:
    """Point and unit direction at parameter ``t`` on a polyline of segments [0,1], [1,2], ... (extrapolates)."""
    i = int(np.clip(np.floor(t), 0, len(points) - 2))
    a, b = points[i], points[i + 1]
    return lerp(a, b, t - i), unit(b - a)


class Body:
    """Derived body points of one pose. ``kp``: (18, 3) keypoints in drawing pixels."""

    def __init__(self, kp: np.ndarray):
        p = kp[:, :2].astype(float)
        self.kp = kp
        self.nose, self.neck = p[0], p[1]
        self.shoulder = {-1: p[2], 1: p[5]}
        self.elbow = {-1: p[3], 1: p[6]}
        self.wrist = {-1: p[4], 1: p[7]}
        self.hip = {-1: p[8], 1: p[11]}
        self.knee = {-1: p[9], 1: p[12]}
        self.ankle = {-1: p[10], 1: p[13]}
        self.eye = {-1: p[14] if kp[14, 2] > 0 else None, 1: p[15] if kp[15, 2] > 0 else None}
        self.midhip = (p[8] + p[11]) / 2
        self.u = float(np.hypot(*(self.midhip - self.neck)))
        if self.u < 4:
            raise ValueError(f"pose: the torso (neck to mid-hip) is {self.u:.1f} px long; the figure is too small")
        self.down = unit(self.midhip - self.neck)
        lat = -perp(self.down)  # points to the image's right for an upright figure
        if float(np.dot(lat, self.shoulder[1] - self.shoulder[-1])) < 0:
            lat = -lat
        self.lat = lat
        self.shoulder_hw = float(np.hypot(*(self.shoulder[1] - self.shoulder[-1]))) / 2

    # -- frames ------------------------------------------------------------------------------------
    def local(self, x: float, y: float) -> np.ndarray:
        """A point ``x`` u to the side (+ = the person's left) and ``y`` u down from the neck."""
        return self.neck + self.lat * (x * self.u) + self.down * (y * self.u)

    def w(self, k: float) -> float:
        """``k`` torso lengths in pixels."""
        return k * self.u

    # -- torso -------------------------------------------------------------------------------------
    def shoulder_outer(self, side: int) -> np.ndarray:
        s = self.shoulder[side]
        return s + unit(s - self.neck) * self.w(0.06) + self.down * self.w(0.015)

    def armpit(self, side: int) -> np.ndarray:
        return self.shoulder_outer(side) + self.down * self.w(0.3) - self.lat * (side * self.w(0.035))

    def waist_hw(self, fitted: bool = True) -> float:
        pinched = 0.5 * self.w(0.2) + 0.5 * 0.72 * self.shoulder_hw
        return pinched if fitted else 0.5 * self.w(0.24) + 0.5 * 0.9 * self.shoulder_hw

    def waist(self, side: int, fitted: bool = True) -> np.ndarray:
        c = self.neck + (self.midhip - self.neck) * WAIST_LEVEL
        return c + self.lat * (side * self.waist_hw(fitted))

    def hip_side(self, side: int) -> np.ndarray:
        h = self.hip[side]
        return h + unit(h - self.midhip) * self.w(0.15)

    def crotch(self) -> np.ndarray:
        return self.midhip + self.down * self.w(0.13)

    def torso_polygon(self) -> list[np.ndarray]:
        pts = [self.shoulder_outer(-1), self.local(-NECK_HW * 1.3, -0.01), self.local(NECK_HW * 1.3, -0.01)]
        pts += [self.shoulder_outer(1), self.armpit(1), self.waist(1), self.hip_side(1), self.crotch()]
        pts += [self.hip_side(-1), self.waist(-1), self.armpit(-1)]
        return pts

    # -- limbs -------------------------------------------------------------------------------------
    def arm_path(self, side: int) -> list[np.ndarray]:
        return [self.shoulder[side], self.elbow[side], self.wrist[side]]

    def leg_path(self, side: int) -> list[np.ndarray]:
        return [self.hip[side], self.knee[side], self.ankle[side]]

    def arm_at(self, side: int, mu: float) -> tuple[np.ndarray, np.ndarray]:
        """Point and direction on an arm at arm level ``mu`` (0 shoulder, 1 elbow, 2 wrist)."""
        return _along(self.arm_path(side), mu)

    def arm_normal(self, side: int, mu):
        """Unit normal(s) to the arm at ``mu`` (scalar -> (2,), array -> (n, 2)), blended across the
        elbow so outlines do not kink."""
        path = self.arm_path(side)
        n_up, n_low = perp(unit(path[1] - path[0])), perp(unit(path[2] - path[1]))
        t = np.clip((np.asarray(mu, dtype=float) - 0.85) / 0.3, 0.0, 1.0)[..., None]
        n = n_up + (n_low - n_up) * t
        return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-9)

    def arm_hw(self, mu):
        return self.u * np.interp(mu, (0.0, 1.0, 2.0), ARM_HW)

    def leg_at(self, side: int, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Point and direction on a leg at ``t`` (0 hip, 1 knee, 2 ankle)."""
        return _along(self.leg_path(side), t)

    def leg_hw(self, t):
        return self.u * np.interp(t, (0.0, 1.0, 2.0), LEG_HW)

    # -- levels ------------------------------------------------------------------------------------
    def level_point(self, lam: float) -> np.ndarray:
        """Centre point at body level ``lam`` (0 neck, 1 mid-hip, 2 knees, 3 ankles)."""
        if lam <= 1.0:
            return lerp(self.neck, self.midhip, lam)
        a, _ = self.leg_at(-1, lam - 1.0)
        b, _ = self.leg_at(1, lam - 1.0)
        return (a + b) / 2

    def legs_extent(self, lam: float) -> tuple[float, float]:
        """Leftmost and rightmost image x of the two legs' skin at body level ``lam`` >= 1."""
        xs = []
        for side in (-1, 1):
            c, d = self.leg_at(side, lam - 1.0)
            hw = self.leg_hw(lam - 1.0) * (abs(d[1]) + abs(d[0]) * 0.3)
            xs += [c[0] - hw, c[0] + hw]
        return min(xs), max(xs)

    # -- head ----------------------------------------------------------------------------------------
    def head_axis(self) -> np.ndarray:
        """Unit vector from the chin up through the head."""
        eyes = [e for e in self.eye.values() if e is not None]
        top = np.mean(eyes, axis=0) if eyes else self.nose
        return unit(top - self.neck)

    def face_centre(self) -> np.ndarray:
        eyes = [e for e in self.eye.values() if e is not None]
        mid = np.mean(eyes, axis=0) if len(eyes) == 2 else self.nose + self.head_axis() * self.w(0.05)
        return (mid + self.nose) / 2 - self.head_axis() * self.w(0.01)


def chain_polygon(
    path: list[np.ndarray], t0: float, t1: float, half_width, normal=None, n: int = 10
) -> list[np.ndarray]:
    """Outline of a band along ``path`` from parameter ``t0`` to ``t1``.

    ``half_width(t)`` gives the band's half width at parameters ``t`` (an array); ``normal(t)`` the
    unit normals, shape (len(t), 2) (default: each segment's own normal). Returns the left edge
    forward and the right edge back.
    """
    ts = np.linspace(t0, t1, n)
    knots = [float(k) for k in range(1, len(path) - 1) if t0 < k < t1 and np.abs(ts - k).min() > 1e-6]
    if knots:  # keep the joints as vertices
        ts = np.sort(np.concatenate([ts, knots]))
    pts = np.asarray(path, dtype=float)
    seg = np.clip(np.floor(ts).astype(int), 0, len(pts) - 2)
    frac = (ts - seg)[:, None]
    a, b = pts[seg], pts[seg + 1]
    centre = a + (b - a) * frac
    if normal is None:
        d = b - a
        d = d / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)[:, None]
        nrm = np.stack([-d[:, 1], d[:, 0]], axis=1)
    else:
        nrm = normal(ts)
    hw = np.broadcast_to(np.asarray(half_width(ts), dtype=float), ts.shape)[:, None]
    left, right = centre + nrm * hw, centre - nrm * hw
    return list(left) + list(right[::-1])


def ellipse_polygon(centre: np.ndarray, rx: float, ry: float, axis: np.ndarray | None = None, n: int = 20):
    """Ellipse outline; ``ry`` along ``axis`` (unit vector, default image-vertical), ``rx`` across it."""
    ay = axis if axis is not None else np.array([0.0, 1.0])
    ax = -perp(ay)
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return [centre + ax * (rx * np.cos(a)) + ay * (ry * np.sin(a)) for a in ang]
