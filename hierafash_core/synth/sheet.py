"""Contact sheets: a grid of images with a one-line caption under each, for people to look at."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .labels import PARSE_LABELS

# A colour per parse label, for looking at parse maps.
# fmt: off
PARSE_COLOURS = np.array([
    (255, 255, 255), (232, 184, 150), (92, 60, 30), (250, 214, 176), (40, 90, 200), (230, 60, 60),
    (250, 210, 0), (40, 170, 80), (130, 50, 170), (20, 20, 20), (128, 128, 128),
], dtype=np.uint8)
# fmt: on
if len(PARSE_COLOURS) != len(PARSE_LABELS):
    raise RuntimeError("PARSE_COLOURS needs one colour per parse label")


def colour_parse(parse: np.ndarray) -> np.ndarray:
    """(H, W) label map -> (H, W, 3) uint8 picture."""
    return PARSE_COLOURS[np.clip(parse, 0, len(PARSE_COLOURS) - 1)]


def contact_sheet(
    images: list[np.ndarray | None], captions: list[str] | None = None, columns: int = 10, caption_h: int = 12
) -> np.ndarray:
    """Images (H, W, 3) uint8 of one size in a grid (``None`` leaves a cell blank), a caption under each.

    Returns the sheet, (rows * (H + caption_h), columns * W, 3) uint8.
    """
    first = next(im for im in images if im is not None)
    h, w = first.shape[:2]
    rows = -(-len(images) // columns)
    sheet = Image.new("RGB", (columns * w, rows * (h + caption_h)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=max(8, caption_h - 2))
    for i, im in enumerate(images):
        x, y = (i % columns) * w, (i // columns) * (h + caption_h)
        if im is None:
            continue
        if im.shape[:2] != (h, w):
            raise ValueError(f"image {i} is {im.shape[1]}x{im.shape[0]}; all images must be {w}x{h}")
        sheet.paste(Image.fromarray(im), (x, y))
        if captions and captions[i]:
            draw.text((x + 2, y + h), captions[i][:28], fill=(40, 40, 40), font=font)
    return np.asarray(sheet)
