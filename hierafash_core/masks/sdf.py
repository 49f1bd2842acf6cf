"""Signed distance fields on a coarse grid: the shapes masks are built from.

A region is a union of simple shapes (tapered capsules along limbs, convex polygons over the
torso and neck) given in image pixels. Their signed distance (negative inside) is evaluated on a
grid of about ``GRID`` cells along the long side, whatever the image size, then upsampled
bilinearly: a distance field is smooth, so its interpolation keeps edges accurate to a fraction
of a cell, and growing, shrinking and feathering become a threshold and a ramp on the same field.
The cost stays the same from 512 to 4096 pixels, and a photo at two resolutions gets the same
mask (the grid covers the same part of the body).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

# Grid cells along the long side of the image.
GRID = 256
# Distance reported far from every shape (pixels); any finite value larger than the image works.
FAR = 1e6


@dataclass(frozen=True)
class Capsule:
    """A segment from ``a`` to ``b`` with radius ``ra`` at ``a`` and ``rb`` at ``b`` (pixels)."""

    a: tuple[float, float]
    b: tuple[float, float]
    ra: float
    rb: float


@dataclass(frozen=True)
class Polygon:
    """The convex hull of ``points`` (pixels)."""

    points: tuple[tuple[float, float], ...]


Shape = Capsule | Polygon


@dataclass(frozen=True)
class Grid:
    """Sample points of an (H, W) image: ``x`` (gw,) and ``y`` (gh,) pixel coordinates of cell centres.

    Fields on the grid are float32 numpy arrays: a few dozen small array operations run faster in
    numpy than as torch ops, which each start a thread pool that a busy CPU makes wait.
    """

    height: int
    width: int
    x: np.ndarray
    y: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.y), len(self.x)

    @property
    def cell(self) -> float:
        """Mean cell size in pixels."""
        return (self.height / len(self.y) + self.width / len(self.x)) / 2

    @classmethod
    def for_size(cls, size: tuple[int, int], cells: int = GRID) -> Grid:
        h, w = int(size[0]), int(size[1])
        step = max(h, w) / cells if max(h, w) > cells else 1.0
        gh, gw = max(1, round(h / step)), max(1, round(w / step))
        # Cell centres in pixel-centre coordinates: the mapping bilinear resizing (cv2, and torch
        # with align_corners=False) uses, so upsampling puts every sample back where it was taken.
        y = ((np.arange(gh, dtype=np.float32) + 0.5) * (h / gh) - 0.5).astype(np.float32)
        x = ((np.arange(gw, dtype=np.float32) + 0.5) * (w / gw) - 0.5).astype(np.float32)
        return cls(h, w, x, y)


def _segment_distance(grid: Grid, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance from every grid point to segments a[i]-b[i] and the position t along them: (N, gh, gw) each."""
    ax, ay = a[:, 0, None, None], a[:, 1, None, None]
    dx, dy = (b[:, 0] - a[:, 0])[:, None, None], (b[:, 1] - a[:, 1])[:, None, None]
    px, py = grid.x[None, None, :] - ax, grid.y[None, :, None] - ay
    length2 = np.maximum(dx * dx + dy * dy, 1e-9)
    t = np.clip((px * dx + py * dy) / length2, 0, 1)
    return np.hypot(px - t * dx, py - t * dy), t


def _window(grid: Grid, lo: np.ndarray, hi: np.ndarray) -> tuple[slice, slice]:
    """Rows and columns of the grid whose centres lie within the box [lo, hi] (pixels)."""
    c0, c1 = np.searchsorted(grid.x, lo[0]), np.searchsorted(grid.x, hi[0], side="right")
    r0, r1 = np.searchsorted(grid.y, lo[1]), np.searchsorted(grid.y, hi[1], side="right")
    return slice(int(r0), int(r1)), slice(int(c0), int(c1))


def _sub(grid: Grid, rows: slice, cols: slice) -> Grid:
    return Grid(grid.height, grid.width, grid.x[cols], grid.y[rows])


def capsules_sdf(grid: Grid, capsules: list[Capsule], reach: float = FAR) -> np.ndarray:
    """Signed distance to the union of ``capsules``: (gh, gw).

    Exact up to ``reach`` pixels outside the shapes; beyond it, any value of at least ``reach``
    (each capsule is evaluated only in its own box grown by ``reach``).
    """
    field = np.full(grid.shape, FAR, dtype=np.float32)
    for c in capsules:
        a, b = np.array([c.a], dtype=np.float32), np.array([c.b], dtype=np.float32)
        margin = max(c.ra, c.rb) + reach
        rows, cols = _window(grid, np.minimum(a[0], b[0]) - margin, np.maximum(a[0], b[0]) + margin)
        if rows.stop <= rows.start or cols.stop <= cols.start:
            continue
        dist, t = _segment_distance(_sub(grid, rows, cols), a, b)
        # Tapered radius interpolated along the segment (close to the exact distance for mild tapers).
        np.minimum(field[rows, cols], dist[0] - (c.ra + t[0] * (c.rb - c.ra)), out=field[rows, cols])
    return field


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Counter-clockwise hull (in image axes, y down) of (N, 2) points; degenerate input keeps its extremes."""
    return cv2.convexHull(points.astype(np.float32), clockwise=False)[:, 0, :]


def polygon_sdf(grid: Grid, polygon: Polygon, reach: float = FAR) -> np.ndarray:
    """Exact signed distance to the convex hull of the polygon's points: (gh, gw), exact up to
    ``reach`` pixels outside it (see :func:`capsules_sdf`)."""
    hull = convex_hull(np.asarray(polygon.points, dtype=np.float32))
    field = np.full(grid.shape, FAR, dtype=np.float32)
    rows, cols = _window(grid, hull.min(axis=0) - reach, hull.max(axis=0) + reach)
    if rows.stop <= rows.start or cols.stop <= cols.start:
        return field
    sub = _sub(grid, rows, cols)
    if len(hull) < 3:
        b = hull[1:] if len(hull) > 1 else hull
        field[rows, cols] = _segment_distance(sub, np.repeat(hull[:1], len(b), axis=0), b)[0].min(axis=0)
        return field
    a, b = hull, np.roll(hull, -1, axis=0)
    dist = _segment_distance(sub, a, b)[0].min(axis=0)
    # Inside a convex polygon = on the same side of every edge.
    ex, ey = (b[:, 0] - a[:, 0])[:, None, None], (b[:, 1] - a[:, 1])[:, None, None]
    cross = ex * (sub.y[None, :, None] - a[:, 1, None, None]) - ey * (sub.x[None, None, :] - a[:, 0, None, None])
    inside = (cross >= 0).all(axis=0) | (cross <= 0).all(axis=0)
    field[rows, cols] = np.where(inside, -dist, dist)
    return field


def shapes_sdf(grid: Grid, shapes: list[Shape], reach: float = FAR) -> np.ndarray:
    """Signed distance to the union of ``shapes``: (gh, gw); exact up to ``reach`` pixels outside
    them, at least ``reach`` beyond (``FAR`` far from every shape)."""
    field = capsules_sdf(grid, [s for s in shapes if isinstance(s, Capsule)], reach)
    for shape in shapes:
        if isinstance(shape, Polygon):
            np.minimum(field, polygon_sdf(grid, shape, reach), out=field)
    return field


def mask_sdf(grid: Grid, mask: torch.Tensor) -> np.ndarray:
    """Signed distance (pixels) to the region where ``mask`` (H, W) is at least 0.5: (gh, gw)."""
    gh, gw = grid.shape
    values = mask.detach().float().cpu().numpy()
    small = cv2.resize(values, (gw, gh), interpolation=cv2.INTER_AREA) if values.shape != (gh, gw) else values
    inside = (small >= 0.5).astype(np.uint8)
    if not inside.any():
        return np.full((gh, gw), FAR, dtype=np.float32)
    if inside.all():
        return np.full((gh, gw), -FAR, dtype=np.float32)
    # Distances in cells from each cell to the nearest cell of the other kind.
    outside_dist = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 5)
    inside_dist = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    return (outside_dist - inside_dist) * np.float32(grid.cell)


def ramp(sdf: np.ndarray, size: tuple[int, int], grow: float, feather: float) -> np.ndarray:
    """Upsample a grid field to (H, W) and turn it into a mask: 1 within ``grow`` pixels of the
    shape, fading smoothly to 0 over the next ``feather`` pixels (an outward feather: the grown
    region itself stays fully 1). Returns (H, W) float32 in [0, 1] (numpy)."""
    h, w = int(size[0]), int(size[1])
    field = np.ascontiguousarray(sdf, dtype=np.float32)
    if field.shape != (h, w):
        field = cv2.resize(field, (w, h), interpolation=cv2.INTER_LINEAR)
    if feather <= 0:
        return (field <= grow).astype(np.float32)
    # t = clamp((grow + feather - field) / feather, 0, 1), then smoothstep t^2 (3 - 2t); in place,
    # since at 4096 x 4096 every temporary is 64 MB.
    t = field
    t -= grow + feather
    t /= -feather
    np.clip(t, 0, 1, out=t)
    t2 = t * t
    t *= -2
    t += 3
    t *= t2
    return t
