"""``hierafash dataset preview``: a contact sheet of records with their pose and caption.

Each cell shows the image with its pose drawn over it, the record id, and the caption split into
its concept and attribute levels, so a reader sees at a glance whether images, poses and captions
belong together.
"""

from __future__ import annotations

import logging
import os
import random
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from ..pose.render import render_openpose_hwc
from ..taxonomy import Level
from .records import Record, read_pose_json, read_records, resolve

log = logging.getLogger(__name__)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow built without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _pose_overlay(root: Path, rec: Record, size: tuple[int, int]) -> np.ndarray | None:
    if rec.pose is None:
        return None
    path = resolve(root, rec.pose, "pose")
    if path.suffix.lower() == ".json":
        pose = read_pose_json(path)
        return render_openpose_hwc(pose.keypoints, *size)
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize(size))


def _caption_lines(rec: Record, width_chars: int) -> list[str]:
    try:
        prompt = rec.prompt(allow_free_text=True)
        levels = [prompt.level_text(Level.CONCEPT), prompt.level_text(Level.ATTRIBUTE)]
    except ValueError as exc:
        levels = [f"caption error: {exc}"]
    lines = [rec.id]
    for text in levels:
        lines += textwrap.wrap(text or "-", width=width_chars) or ["-"]
    return lines


def preview_grid(
    root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    count: int = 16,
    columns: int = 4,
    cell: int = 192,
    split: str | None = None,
    seed: int | None = None,
) -> Path:
    """Write a grid of ``count`` records (the first ones, or a random pick when ``seed`` is set).

    Args:
        cell: width of a cell in pixels; the image fills it, the caption is written below.
        split: only ``"train"`` or ``"test"`` records.

    Returns:
        the path written (PNG).
    """
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"out={out} is a folder; give an image file path, e.g. {out / 'preview.png'}")
    if out.suffix.lower() not in Image.registered_extensions():
        raise ValueError(f"out={out}: give a file name ending in an image type, e.g. .png")
    if count < 1:
        raise ValueError(f"count={count}: must be at least 1")
    if columns < 1:
        raise ValueError(f"columns={columns}: must be at least 1")
    if not 64 <= cell <= 1024:
        raise ValueError(f"cell={cell}: use 64..1024 pixels")
    root = Path(root)
    records = read_records(root, split=split)
    if not records:
        raise ValueError(f"dataset {root} has no {split or ''} records to preview".replace("  ", " "))
    if seed is not None:
        records = random.Random(seed).sample(records, min(count, len(records)))  # noqa: S311 (a preview pick)
    records = records[:count]
    font_size = max(9, cell // 16)
    font = _font(font_size)
    width_chars = max(12, int(cell / (font_size * 0.55)))
    captions = [_caption_lines(r, width_chars) for r in records]
    image_h = int(cell * 1.4)
    text_h = (max(len(c) for c in captions) + 1) * (font_size + 3)
    rows = (len(records) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * cell, rows * (image_h + text_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (rec, lines) in enumerate(zip(records, captions, strict=True)):
        x0, y0 = (i % columns) * cell, (i // columns) * (image_h + text_h)
        try:
            with Image.open(resolve(root, rec.image, "image")) as im:
                rgb = im.convert("RGB")
            pose = _pose_overlay(root, rec, rgb.size)
            if pose is not None:
                drawn = pose.max(axis=2, keepdims=True) > 0
                rgb = Image.fromarray(np.where(drawn, pose, np.asarray(rgb)).astype(np.uint8))
            rgb = ImageOps.contain(rgb, (cell - 4, image_h - 4), Image.Resampling.BICUBIC)
            sheet.paste(rgb, (x0 + (cell - rgb.width) // 2, y0 + (image_h - rgb.height) // 2))
        except (OSError, ValueError) as exc:
            draw.text((x0 + 4, y0 + 4), f"unreadable: {exc}"[:width_chars], fill="red", font=font)
        for j, line in enumerate(lines):
            draw.text((x0 + 4, y0 + image_h + 2 + j * (font_size + 3)), line, fill="black", font=font)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
