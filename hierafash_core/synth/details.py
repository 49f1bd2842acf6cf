"""Sleeves and collars: the shapes that sleeve length, sleeve type and collar select.

Sleeve length is an arm level (0 shoulder, 1 elbow, 2 wrist): the sleeve's fabric ends exactly
there. Sleeve type is a half-width profile along the arm plus extra pieces (cuff, flounce, tier,
batwing, raglan yoke). A collar is a neckline curve (the bodice's top edge, skin shows above it)
plus the collar pieces: a trim band along the neckline, lapels, a stand or turtleneck band, a
cowl drape. Neckline points are written in the torso frame (``Body.local``: x in torso lengths to
the person's left, y down from the neck).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .body import Body, chain_polygon, ellipse_polygon, lerp, unit
from .garment import edge_points

SLEEVE_END = {
    "Sleeveless": None,
    "Short Sleeve": 0.45,
    "Elbow-length Sleeve": 1.05,
    "Mid-length Sleeve": 1.5,
    "Long Sleeve": 2.0,
}


@dataclass
class Piece:
    """A polygon and its role: which part (colour, label) it is painted as, and what it is clipped to."""

    points: list[np.ndarray]
    role: str
    clip: bool = False


def sleeve_pieces(body: Body, side: int, mu_end: float, kind: str) -> list[Piece]:
    """The polygons of one sleeve ending at arm level ``mu_end``, shaped as sleeve type ``kind``.

    Roles: ``sleeve`` (the garment's sleeve; also a dolman's batwing and a raglan's yoke), ``cuff``
    (trim colour), ``tier`` and ``flounce`` (garment colour, outlined apart).
    """
    path = body.arm_path(side)
    arm = body.arm_hw
    w = body.w

    def normal(m: float) -> np.ndarray:
        return body.arm_normal(side, m)

    def band(m0: float, m1: float, hw, n: int = 10) -> list[np.ndarray]:
        return chain_polygon(path, m0, m1, hw, normal, n)

    def cap(hw0: float, k: float) -> Piece:
        _, d = body.arm_at(side, 0.0)
        return Piece(ellipse_polygon(path[0], hw0, hw0 * k, axis=d, n=16), "sleeve")

    def s(m: float) -> float:
        return m / mu_end

    def base(m: float) -> float:
        return arm(m) + w(0.03)

    pieces: list[Piece] = []
    if kind in ("Regular", "Shirt", "Raglan"):
        pieces += [cap(base(0), 0.45), Piece(band(0, mu_end, base), "sleeve")]
        if kind == "Shirt":
            c = 0.2 if mu_end > 1.2 else 0.12
            pieces.append(Piece(band(mu_end - c, mu_end, lambda m: arm(m) + w(0.04)), "cuff"))
        if kind == "Raglan":  # the sleeve runs up to the neck in a diagonal seam
            yoke = [body.local(side * 0.12, -0.005), body.shoulder_outer(side), body.armpit(side)]
            pieces.append(Piece(yoke, "sleeve"))
    elif kind == "Puffed":
        mp = min(mu_end, 0.62)

        def puff(m: float) -> float:
            return base(m) + w(0.08) * np.clip(np.sin(np.pi * np.minimum(m / mp, 1.0)), 0, 1) ** 0.7

        pieces += [cap(base(0) + w(0.02), 0.9), Piece(band(0, mu_end, puff, n=14), "sleeve")]
        m0 = mp - 0.07 if mu_end > mp + 0.1 else mu_end - 0.07
        pieces.append(Piece(band(m0, m0 + 0.07, lambda m: arm(m) + w(0.018)), "cuff"))
    elif kind == "Lantern":
        pieces += [cap(base(0), 0.45)]
        pieces.append(
            Piece(
                band(0, mu_end, lambda m: base(m) + w(0.08) * np.clip(np.sin(np.pi * s(m)), 0, 1) ** 0.8, 14), "sleeve"
            )
        )
        pieces.append(Piece(band(mu_end - 0.08, mu_end, lambda m: arm(m) + w(0.015)), "cuff"))
    elif kind == "Flare":
        pieces += [cap(base(0), 0.45), Piece(band(0, mu_end, lambda m: base(m) + w(0.1) * s(m) ** 1.4, 12), "sleeve")]
    elif kind == "Ruffle":
        fl = min(0.36, 0.67 * mu_end)
        pieces += [cap(base(0), 0.45), Piece(band(0, mu_end - fl * 0.5, base), "sleeve")]
        pieces.append(Piece(_flounce(body, side, mu_end - fl, mu_end, w(0.15)), "flounce"))
    elif kind == "Layered":
        pieces += [cap(base(0), 0.45)]
        pieces.append(Piece(band(0, mu_end * 0.6, lambda m: base(m) + w(0.05) * s(m) / 0.6), "sleeve"))
        pieces.append(Piece(band(mu_end * 0.45, mu_end, lambda m: base(m) + w(0.025) + w(0.07) * s(m)), "tier"))
    elif kind == "Kimono":
        pieces += [cap(w(0.15), 0.3), Piece(band(0, mu_end, lambda m: w(0.15), n=6), "sleeve")]
    elif kind == "Dolman":

        def bat(m: float) -> float:
            return base(m) + w(0.1) * np.clip(1 - s(m), 0, 1) ** 1.3

        pieces += [cap(bat(0), 0.3), Piece(band(0, mu_end, bat, 12), "sleeve")]
        # the batwing: the sleeve's underside runs into the bodice's side down to the waist
        m = 0.55 * mu_end
        c, _ = body.arm_at(side, m)
        n = normal(m)
        a, b = c + n * bat(m), c - n * bat(m)
        inner = a if np.hypot(*(a - body.neck)) < np.hypot(*(b - body.neck)) else b
        pieces.append(Piece([body.shoulder_outer(side), inner, body.waist(side)], "sleeve"))
    else:
        raise ValueError(f"sleeve type {kind!r} has no drawing")
    return pieces


def _flounce(body: Body, side: int, m0: float, m1: float, hw: float) -> list[np.ndarray]:
    """A frill around the arm from ``m0`` to ``m1``, its free edge scalloped."""
    c0, _ = body.arm_at(side, m0)
    c1, d1 = body.arm_at(side, m1)
    n0, n1 = body.arm_normal(side, m0), body.arm_normal(side, m1)
    top_a, top_b = c0 + n0 * (hw * 0.7), c0 - n0 * (hw * 0.7)
    end = edge_points(c1 + n1 * hw, c1 - n1 * hw, d1, "Ruffle", body.u)
    return [top_a] + end + [top_b]


# -- collars ------------------------------------------------------------------------------------------
def _arc(half_w: float, depth: float, n: int = 11, power: float = 1.0) -> list[tuple[float, float]]:
    t = np.linspace(0, np.pi, n)
    return [(-half_w * np.cos(a), depth * np.sin(a) ** power) for a in t]


NECKLINES: dict[str, list[tuple[float, float]]] = {
    "Round": _arc(0.11, 0.11),
    "U-Neck": _arc(0.13, 0.3, power=0.45),
    "V-Neck": [(-0.115, 0.0), (0.0, 0.32), (0.115, 0.0)],
    "Square": [(-0.14, 0.0), (-0.14, 0.2), (0.14, 0.2), (0.14, 0.0)],
    "Boat Neck": _arc(0.26, 0.03),
    "Stand": _arc(0.09, 0.03, n=7),
    "T-neck": _arc(0.095, 0.03, n=7),
    "Lapel": [(-0.115, 0.0), (0.0, 0.5), (0.115, 0.0)],
    "Irregular": [(-0.115, 0.0), (0.06, 0.17), (0.2, 0.28)],
    "Swinging": _arc(0.14, 0.2),
}
TRIM_BAND = {"Round": 0.05, "Boat Neck": 0.06}


def neckline(body: Body, collar: str) -> list[np.ndarray]:
    """Neckline points in image pixels, from the person's right to left."""
    return [body.local(x, y) for x, y in NECKLINES[collar]]


def _offset(body: Body, pts_local: list[tuple[float, float]], dist: float) -> list[np.ndarray]:
    """The neckline moved ``dist`` torso lengths into the bodice, perpendicular to itself."""
    p = np.array(pts_local, dtype=float)
    out = []
    for i in range(len(p)):
        a, b = p[max(i - 1, 0)], p[min(i + 1, len(p) - 1)]
        t = unit(b - a)
        n = np.array([-t[1], t[0]])  # the side below a right-to-left curve
        if i not in (0, len(p) - 1):  # miter at inner vertices, capped
            t1, t2 = unit(p[i] - p[i - 1]), unit(p[i + 1] - p[i])
            n1, n2 = np.array([-t1[1], t1[0]]), np.array([-t2[1], t2[0]])
            m = unit(n1 + n2)
            n = m / max(float(np.dot(m, n1)), 0.5)
        q = p[i] + n * dist
        out.append(body.local(q[0], q[1]))
    return out


def collar_pieces(body: Body, collar: str) -> list[Piece]:
    """Pieces: role ``collar`` (trim colour) or ``collar_fold`` (a darker line); clipped ones lie on the bodice."""
    pts = NECKLINES[collar]
    line = [body.local(x, y) for x, y in pts]
    pieces = [Piece(line + _offset(body, pts, TRIM_BAND.get(collar, 0.04))[::-1], "collar", clip=True)]
    if collar == "Lapel":
        for s in (-1, 1):
            lapel = [body.local(s * 0.115, -0.005), body.local(s * 0.27, 0.17), body.local(s * 0.2, 0.2),
                     body.local(s * 0.015, 0.47)]  # fmt: skip
            pieces.append(Piece(lapel, "collar", clip=True))
    elif collar in ("Stand", "T-neck"):
        top, hw = (-0.085, 0.088) if collar == "Stand" else (-0.2, 0.097)
        band = [
            body.local(-hw - 0.004, 0.035),
            body.local(-hw, top),
            body.local(hw, top),
            body.local(hw + 0.004, 0.035),
        ]
        pieces.append(Piece(band, "collar"))
        if collar == "T-neck":
            for y in (-0.02, -0.07):
                pieces.append(Piece([body.local(-hw, y), body.local(hw, y)], "collar_fold"))
    elif collar == "Swinging":  # cowl: a draped panel below the neckline, with folds
        deep = _arc(0.15, 0.42)
        pieces.append(Piece(line + [body.local(x, y) for x, y in deep[::-1]], "collar", clip=True))
        for depth in (0.27, 0.35):
            pieces.append(Piece([body.local(x, y) for x, y in _arc(0.12, depth, n=9)], "collar_fold"))
    return pieces


def coat_front(body: Body, collar: str, lam_end: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A coat's centre-front line and button centres (image pixels)."""
    y0 = max(y for _, y in NECKLINES[collar])
    top = body.local(0.0, y0)
    bottom = body.level_point(lam_end)
    buttons = [lerp(top, body.level_point(1.0), t) for t in (0.15, 0.45, 0.75)]
    return [top, bottom], buttons
