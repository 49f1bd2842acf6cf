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
import torch.nn.functional as F

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
    """Sample points of an (H, W) image: ``x`` (gw,) and ``y`` (gh,) pixel coordinates of cell centres."""

    height: int
    width: int
    x: torch.Tensor
    y: torch.Tensor

    @property
    def cell(self) -> float:
        """Mean cell size in pixels."""
        return (self.height / len(self.y) + self.width / len(self.x)) / 2

    @classmethod
    def for_size(cls, size: tuple[int, int], cells: int = GRID) -> Grid:
        h, w = int(size[0]), int(size[1])
        step = max(h, w) / cells if max(h, w) > cells else 1.0
        gh, gw = max(1, round(h / step)), max(1, round(w / step))
        # Cell centres in pixel-centre coordinates, as F.interpolate(align_corners=False) maps them.
        y = (torch.arange(gh, dtype=torch.float32) + 0.5) * (h / gh) - 0.5
        x = (torch.arange(gw, dtype=torch.float32) + 0.5) * (w / gw) - 0.5
        return cls(h, w, x, y)


def _segment_distance(grid: Grid, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance from every grid point to segments a[i]-b[i] and the position t along them: (N, gh, gw) each."""
    ax, ay = a[:, 0, None, None], a[:, 1, None, None]
    dx, dy = (b[:, 0] - a[:, 0])[:, None, None], (b[:, 1] - a[:, 1])[:, None, None]
    px, py = grid.x[None, None, :] - ax, grid.y[None, :, None] - ay
    length2 = (dx * dx + dy * dy).clamp(min=1e-9)
    t = ((px * dx + py * dy) / length2).clamp(0, 1)
    return torch.hypot(px - t * dx, py - t * dy), t


def capsules_sdf(grid: Grid, capsules: list[Capsule]) -> torch.Tensor:
    """Signed distance to the union of ``capsules``: (gh, gw)."""
    if not capsules:
        return torch.full((len(grid.y), len(grid.x)), FAR)
    a = torch.tensor([c.a for c in capsules], dtype=torch.float32)
    b = torch.tensor([c.b for c in capsules], dtype=torch.float32)
    ra = torch.tensor([c.ra for c in capsules], dtype=torch.float32)[:, None, None]
    rb = torch.tensor([c.rb for c in capsules], dtype=torch.float32)[:, None, None]
    dist, t = _segment_distance(grid, a, b)
    # Tapered radius interpolated along the segment (close to the exact distance for mild tapers).
    return (dist - (ra + t * (rb - ra))).amin(dim=0)


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Counter-clockwise hull (in image axes, y down) of (N, 2) points; degenerate input keeps its extremes."""
    hull = cv2.convexHull(points.astype(np.float32), clockwise=False)[:, 0, :]
    return hull.astype(np.float64)


def polygon_sdf(grid: Grid, polygon: Polygon) -> torch.Tensor:
    """Exact signed distance to the convex hull of the polygon's points: (gh, gw)."""
    hull = convex_hull(np.asarray(polygon.points, dtype=np.float64))
    if len(hull) < 3:
        pts = torch.tensor(hull, dtype=torch.float32)
        b = pts[1:] if len(pts) > 1 else pts
        return _segment_distance(grid, pts[:1].expand(len(b), 2), b)[0].amin(dim=0)
    v = torch.tensor(hull, dtype=torch.float32)
    a, b = v, torch.roll(v, -1, dims=0)
    dist = _segment_distance(grid, a, b)[0].amin(dim=0)
    # Inside a convex polygon = on the same side of every edge; with y pointing down, the
    # counter-clockwise order of cv2 leaves the interior on the positive cross-product side.
    ex, ey = (b[:, 0] - a[:, 0])[:, None, None], (b[:, 1] - a[:, 1])[:, None, None]
    cross = ex * (grid.y[None, :, None] - a[:, 1, None, None]) - ey * (grid.x[None, None, :] - a[:, 0, None, None])
    inside = (cross >= 0).all(dim=0) | (cross <= 0).all(dim=0)
    return torch.where(inside, -dist, dist)


def shapes_sdf(grid: Grid, shapes: list[Shape]) -> torch.Tensor:
    """Signed distance to the union of ``shapes``: (gh, gw); ``FAR`` where there is none."""
    capsules = [s for s in shapes if isinstance(s, Capsule)]
    fields = [capsules_sdf(grid, capsules)] + [polygon_sdf(grid, s) for s in shapes if isinstance(s, Polygon)]
    return torch.stack(fields).amin(dim=0)


def mask_sdf(grid: Grid, mask: torch.Tensor) -> torch.Tensor:
    """Signed distance (pixels) to the region where ``mask`` (H, W) is at least 0.5: (gh, gw)."""
    gh, gw = len(grid.y), len(grid.x)
    small = (
        F.interpolate(mask[None, None].float(), size=(gh, gw), mode="area")[0, 0] if mask.shape != (gh, gw) else mask
    )
    inside = (small >= 0.5).cpu().numpy().astype(np.uint8)
    if not inside.any():
        return torch.full((gh, gw), FAR)
    if inside.all():
        return torch.full((gh, gw), -FAR)
    # Distances in cells from each cell to the nearest cell of the other kind.
    outside_dist = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 5)
    inside_dist = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    return torch.from_numpy(outside_dist - inside_dist) * grid.cell


def ramp(sdf: torch.Tensor, size: tuple[int, int], grow: float, feather: float) -> torch.Tensor:
    """Upsample a grid field to (H, W) and turn it into a mask: 1 within ``grow`` pixels of the
    shape, fading smoothly to 0 over the next ``feather`` pixels (an outward feather: the grown
    region itself stays fully 1). Returns (H, W) float in [0, 1]."""
    field = F.interpolate(sdf[None, None], size=tuple(size), mode="bilinear", align_corners=False)[0, 0]
    if feather <= 0:
        return (field <= grow).float()
    t = ((grow + feather - field) / feather).clamp(0, 1)
    return t * t * (3 - 2 * t)  # smoothstep
