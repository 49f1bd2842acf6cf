"""A part-id canvas: shapes are painted as part ids, colours and labels come from per-part tables.

Painting ids rather than colours is what makes the parse map exact: the label map and the image
are two lookups of the same painted array, so no pixel of the image can disagree with its label.
Outlines are drawn where neighbouring part ids differ (a flat illustration look); patterns are
masks applied inside the parts that carry them. Shapes are painted ``supersample`` times larger
and the colours box-filtered down (smooth edges); the label of an output pixel is that of the
sample nearest its centre.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .labels import LABEL

OUTLINE_SHADE = 0.55


@dataclass
class Part:
    label: int
    colour: tuple[int, int, int]
    pattern: bool = False
    outline: bool = True


class Canvas:
    """Paint polygons of parts in painter's order. Coordinates are drawing pixels (already supersampled)."""

    def __init__(self, width: int, height: int, background: tuple[int, int, int]):
        self.size = (width, height)
        self.img = Image.new("L", self.size, 0)
        self.draw = ImageDraw.Draw(self.img)
        self.parts: list[Part] = [Part(LABEL["background"], background, outline=False)]

    def part(self, label: str, colour, *, pattern: bool = False, outline: bool = True) -> int:
        """Register a part; returns its id (at most 255 parts)."""
        if len(self.parts) >= 255:
            raise RuntimeError("too many parts on one canvas")
        self.parts.append(Part(LABEL[label], tuple(int(c) for c in colour), pattern, outline))
        return len(self.parts) - 1

    def polygon(self, points: Iterable[np.ndarray], part: int, clip: Iterable[int] | None = None) -> None:
        xy = [(float(p[0]), float(p[1])) for p in points]
        if len(xy) < 3:
            return
        if clip is None:
            self.draw.polygon(xy, fill=part)
        else:
            self._clipped(lambda d: d.polygon(xy, fill=255), part, clip)

    def line(self, points: Iterable[np.ndarray], width: float, part: int, clip: Iterable[int] | None = None) -> None:
        xy = [(float(p[0]), float(p[1])) for p in points]
        w = max(1, int(round(width)))
        if clip is None:
            self.draw.line(xy, fill=part, width=w, joint="curve")
        else:
            self._clipped(lambda d: d.line(xy, fill=255, width=w, joint="curve"), part, clip)

    def _clipped(self, paint, part: int, clip: Iterable[int]) -> None:
        # Paint into a scratch mask the size of the canvas, then copy the part id only where the
        # canvas already holds one of the clip parts; work inside the mask's bounding box.
        scratch = Image.new("L", self.size, 0)
        paint(ImageDraw.Draw(scratch))
        box = scratch.getbbox()
        if box is None:
            return
        region = np.asarray(self.img.crop(box))
        hit = (np.asarray(scratch.crop(box)) > 0) & np.isin(region, np.fromiter(clip, dtype=np.uint8))
        if hit.any():
            self.img.paste(part, box, Image.fromarray(hit.astype(np.uint8) * 255, "L"))

    def ids(self) -> np.ndarray:
        return np.asarray(self.img)

    def render(self, supersample: int, pattern: np.ndarray | None, pattern_colour) -> tuple[np.ndarray, np.ndarray]:
        """Colour and label the painted parts.

        Args:
            supersample: the factor the canvas is larger than the output.
            pattern: (H, W) bool at canvas size, True where patterned parts take ``pattern_colour``.

        Returns:
            image (h, w, 3) uint8 and parse map (h, w) uint8 at output size.
        """
        ids = self.ids()
        n = len(self.parts)
        labels = np.array([p.label for p in self.parts], dtype=np.uint8)
        outlined = np.array([p.outline for p in self.parts])
        patterned = np.array([p.pattern for p in self.parts])
        # One colour table of 4 entries per part: (plain, outlined) x (ground, pattern colour).
        ground = np.array([p.colour for p in self.parts], dtype=np.float32)
        second = np.broadcast_to(np.asarray(pattern_colour, dtype=np.float32), ground.shape)
        table = np.stack([ground, ground * OUTLINE_SHADE, second, second * OUTLINE_SHADE], axis=1)
        table = np.clip(np.round(table), 0, 255).astype(np.uint16).reshape(n * 4, 3)
        # Outline: a pixel whose 4-neighbour belongs to another part, on the outlined side.
        edge = np.zeros(ids.shape, dtype=bool)
        diff_x = ids[:, 1:] != ids[:, :-1]
        diff_y = ids[1:, :] != ids[:-1, :]
        edge[:, 1:] |= diff_x
        edge[:, :-1] |= diff_x
        edge[1:, :] |= diff_y
        edge[:-1, :] |= diff_y
        key = ids.astype(np.intp) * 4
        key += edge & outlined[ids]
        if pattern is not None and patterned.any():
            key += (patterned[ids] & pattern) * 2
        rgb = np.take(table, key, axis=0)  # (H, W, 3) uint16
        s = supersample
        h, w = ids.shape[0] // s, ids.shape[1] // s
        acc = rgb[0 : h * s : s, 0 : w * s : s].copy()
        for dy in range(s):  # box filter by strided sums (much faster than a reshaped mean)
            for dx in range(s):
                if dy or dx:
                    acc += rgb[dy : h * s : s, dx : w * s : s]
        image = ((acc + (s * s) // 2) // (s * s)).astype(np.uint8)
        parse = labels[ids[s // 2 :: s, s // 2 :: s][:h, :w]]
        return image, parse
