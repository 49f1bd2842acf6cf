"""Garment outlines: how long, how wide, and the shape of the hem edge.

Clothing length is a body level (see :mod:`.body`): the garment's lowest edge lies exactly at
that level. Two scales, because a top and a skirt of the same name do not end in the same place:

=========== ============================= ==========================================
value       dress, skirt, coat, trousers  blouse, sweater
=========== ============================= ==========================================
Ultra-short 1.28 (upper thigh)            0.56 (cropped, above the waist)
Short       1.60 (mid-thigh)              1.05 (at the hips)
Knee-length 2.05 (the knee)               2.05
Mid-length  2.50 (mid-calf)               2.50
Long        2.97 (the ankle)              2.97
=========== ============================= ==========================================
"""

from __future__ import annotations

import numpy as np

from .body import WAIST_LEVEL, Body, lerp, perp, unit

LENGTH_LEVELS = {"Ultra-short": 1.28, "Short": 1.60, "Knee-length": 2.05, "Mid-length": 2.50, "Long": 2.97}
TOP_LENGTH_LEVELS = {**LENGTH_LEVELS, "Ultra-short": 0.56, "Short": 1.05}
TOP_CATEGORIES = ("Blouse", "Sweater")
ARMPIT_LEVEL = 0.3

# Flare of a skirt-like outline below the hips: added half width per pixel of drop.
SKIRT_FLARE = {"fitted": 0.0, "a-line": 0.22, "straight": 0.05, "full": 0.38}


def length_level(category: str, value: str) -> float:
    """Body level at which a garment of ``category`` and clothing length ``value`` ends."""
    table = TOP_LENGTH_LEVELS if category in TOP_CATEGORIES else LENGTH_LEVELS
    if value not in table:
        raise ValueError(f"clothing_length={value!r}: use one of {', '.join(table)}")
    return table[value]


# -- skirt-like outlines (dress skirts, skirts, coat tails, tops below the waist) ----------------------
def lower_corner(body: Body, side: int, lam: float, silhouette: str) -> np.ndarray:
    """Outer corner of a skirt-like garment at body level ``lam`` (>= 1): legs covered, plus flare."""
    c = body.level_point(lam)
    left, right = body.legs_extent(lam)
    fitted_x = (right if side > 0 else left) + side * body.w(0.03)
    hip_hw = float(np.hypot(*(body.hip_side(1) - body.hip_side(-1)))) / 2
    drop = max(0.0, c[1] - body.midhip[1])
    base = hip_hw + (body.w(0.03) if silhouette == "straight" else 0.0)
    flare_x = body.midhip[0] + side * (base + SKIRT_FLARE[silhouette] * drop)
    x = max(fitted_x, flare_x) if side > 0 else min(fitted_x, flare_x)
    return np.array([x, c[1]])


def side_points(body: Body, side: int, lam_top: float, lam_end: float, silhouette: str) -> list[np.ndarray]:
    """One side of a garment from level ``lam_top`` down to ``lam_end`` (top to bottom).

    Above the hips the side follows the torso (armpit, waist: pinched when fitted); below, the
    skirt-like outline of :func:`lower_corner` (with a knee point on long garments so the knees stay
    covered).
    """
    fitted = silhouette == "fitted"
    knots: list[tuple[float, np.ndarray]] = [
        (ARMPIT_LEVEL, body.armpit(side)),
        (WAIST_LEVEL, body.waist(side, fitted)),
        (1.0, body.hip_side(side)),
    ]
    if lam_end > 2.15:
        knots.append((2.0, lower_corner(body, side, 2.0, silhouette)))
    if lam_end > 1.0:
        knots.append((lam_end, lower_corner(body, side, lam_end, silhouette)))
    lams = [k for k, _ in knots]

    def at(lam: float) -> np.ndarray:
        i = int(np.clip(np.searchsorted(lams, lam) - 1, 0, len(knots) - 2))
        (l0, p0), (l1, p1) = knots[i], knots[i + 1]
        return lerp(p0, p1, (lam - l0) / (l1 - l0))

    pts = [at(lam_top)] + [p for k, p in knots if lam_top < k < lam_end] + [at(lam_end)]
    return pts


# -- trousers -----------------------------------------------------------------------------------------
TROUSER_FIT = {"fitted": "skinny", "a-line": "flared", "straight": "straight", "full": "wide"}


def trouser_hw(body: Body, t: float, fit: str) -> float:
    """Half width of a trouser leg at leg parameter ``t`` (0 hip, 1 knee, 2 ankle)."""
    skin = body.leg_hw(t)
    if fit == "skinny":
        return skin + body.w(0.025)
    if fit == "straight":
        return max(skin + body.w(0.03), body.w(0.135))
    if fit == "flared":
        return max(skin + body.w(0.03), body.w(0.1) + body.w(0.1) * max(0.0, t - 1.0))
    return body.w(0.17) + body.w(0.04) * t  # wide


def trouser_leg(body: Body, side: int, t_end: float, fit: str, gathered: bool = False):
    """A trouser leg from the hip to leg parameter ``t_end``.

    Returns (outer side top -> down, outer corner, inner corner, unit vector down the leg at the
    end, inner side bottom -> up). The caller puts the hem edge (outer -> inner corner) between.
    """
    ts = sorted(set(np.linspace(0.0, t_end, 8).tolist() + ([1.0] if 0 < 1.0 < t_end else [])))

    def hw(t: float) -> float:
        w = trouser_hw(body, t, fit)
        if gathered and t > t_end - 0.12:  # gathered into a cuff at the ankle
            w = lerp(w, body.leg_hw(t) + body.w(0.012), min(1.0, (t - (t_end - 0.12)) / 0.06))
        return w

    outer, inner = [], []
    for t in ts:
        c, d = body.leg_at(side, t)
        n = perp(d)
        if float(np.dot(n, body.lat)) * side < 0:
            n = -n
        outer.append(c + n * hw(t))
        inner.append(c - n * hw(t))
    _, d_end = body.leg_at(side, t_end)
    return outer[:-1], outer[-1], inner[-1], unit(d_end), inner[:-1][::-1]


def pelvis_polygon(body: Body) -> list[np.ndarray]:
    """The trousers' seat: waist to hips to crotch."""
    return [body.waist(-1), body.waist(1), body.hip_side(1), body.crotch(), body.hip_side(-1)]


# -- hem edges ----------------------------------------------------------------------------------------
RUFFLE_DEPTH = 0.13  # flounce height, u
HEM_BAND = 0.045  # ordinary hem band height, u
WIDE_BAND = {"Curled": 0.11, "Striped": 0.085, "Lace": 0.06, "Ankle-tied": 0.05}


def edge_points(
    a: np.ndarray, b: np.ndarray, down: np.ndarray, style: str, u: float, phase: np.ndarray | None = None
) -> list[np.ndarray]:
    """Points of a hem edge from ``a`` to ``b``; ``down`` points out of the garment.

    Every style's lowest point lies on the line a-b (the garment's length); shapes only go up from
    it. ``phase`` (values in [0, 1)) makes the raw edge's jags reproducible.
    """
    span = float(np.hypot(*(b - a)))
    up = -unit(down)

    def along(ss, offs):
        return [lerp(a, b, s) + up * o for s, o in zip(ss, offs, strict=True)]

    if style in ("Flat", "Layered", "Curled", "Striped", "Ankle-tied") or span < 2:
        return [a, b]
    if style == "Curved":  # shirt-tail: sides higher than the middle
        ss = np.linspace(0, 1, 13)
        return along(ss, 0.12 * u * (2 * ss - 1) ** 2)
    if style == "Irregular":  # asymmetric: one side higher
        return along([0.0, 0.55, 1.0], [0.3 * u, 0.1 * u, 0.0])
    if style == "Wavy":
        k = max(2, round(span / (0.22 * u)))
        ss = np.linspace(0, 1, 8 * k + 1)
        return along(ss, 0.035 * u * (1 - np.cos(2 * np.pi * k * ss)))
    if style in ("Ruffle", "Lace"):  # scallops hanging down
        depth, width = (0.045, 0.11) if style == "Ruffle" else (0.022, 0.055)
        k = max(2, round(span / (width * u)))
        ss = np.linspace(0, 1, 6 * k + 1)
        frac = (ss * k) % 1.0
        return along(ss, depth * u * (1 - np.sqrt(np.clip(1 - (2 * frac - 1) ** 2, 0, 1))))
    if style == "Pleated":  # knife pleats: a shallow zigzag
        k = max(3, round(span / (0.075 * u)))
        ss = np.linspace(0, 1, 2 * k + 1)
        return along(ss, np.where(np.arange(ss.size) % 2 == 1, 0.035 * u, 0.0))
    if style == "Raw":  # frayed, jagged
        k = max(4, round(span / (0.03 * u)))
        ss = np.linspace(0, 1, k + 1)
        jag = (phase if phase is not None and phase.size >= ss.size else np.linspace(0, 1, ss.size) % 0.7)[: ss.size]
        return along(ss, 0.065 * u * jag)
    if style == "Slit":  # a slit on one side, cut up from the edge
        h = min(0.5 * u, 0.45 * span + 0.1 * u)
        return along([0.0, 0.64, 0.7, 0.76, 1.0], [0.0, 0.0, h, 0.0, 0.0])
    raise ValueError(f"hem style {style!r} has no edge shape")


def shifted(points: list[np.ndarray], down: np.ndarray, dist: float) -> list[np.ndarray]:
    """The same edge moved ``dist`` pixels up (into the garment)."""
    up = -unit(down)
    return [p + up * dist for p in points]
