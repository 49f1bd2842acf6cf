"""Contact sheet of a design session: the draft and each edit side by side, masks outlined,
captions under each panel."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

OUTLINE = (255, 40, 200)  # magenta reads on skin, fabric and the noise of an untrained model
BACKGROUND = (250, 250, 248)
TEXT = (20, 20, 20)
NOTE = (170, 30, 30)


@dataclass
class Panel:
    """One stage: its image, the region the edit was allowed to change (or None), and text."""

    image: Image.Image
    title: str
    caption: str = ""
    mask: Image.Image | None = None  # "L" mode, white = edited region


def _outline(image: Image.Image, mask: Image.Image, width: int) -> Image.Image:
    """Draw the boundary of ``mask`` over ``image`` (the mask resized to the image)."""
    m = mask.convert("L").resize(image.size, Image.Resampling.BILINEAR).point(lambda v: 255 if v >= 128 else 0)
    grown = m.filter(ImageFilter.MaxFilter(2 * width + 1))
    shrunk = m.filter(ImageFilter.MinFilter(2 * width + 1))
    edge = np.asarray(grown, dtype=np.int16) - np.asarray(shrunk, dtype=np.int16) > 0
    out = np.asarray(image.convert("RGB")).copy()
    out[edge] = OUTLINE
    return Image.fromarray(out)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def contact_sheet(panels: list[Panel], panel_width: int = 256, caption_chars: int = 34, note: str = "") -> Image.Image:
    """Lay ``panels`` out in one row; returns an RGB image.

    Each panel is scaled to ``panel_width`` wide (aspect kept), its mask drawn as an outline, its
    title above and its caption wrapped below; ``note`` is a line of text under the whole sheet.
    """
    if not panels:
        raise ValueError("contact sheet needs at least one panel")
    pad, title_h, line_h = 12, 22, 15
    font_title, font_text = _font(15), _font(12)
    scaled = []
    for p in panels:
        w, h = p.image.size
        img = p.image.convert("RGB").resize(
            (panel_width, max(1, round(h * panel_width / w))), Image.Resampling.LANCZOS
        )
        if p.mask is not None:
            img = _outline(img, p.mask, width=max(1, panel_width // 128))
        scaled.append(img)
    wrapped = [textwrap.wrap(p.caption, caption_chars) for p in panels]
    img_h = max(s.size[1] for s in scaled)
    text_h = max((len(w) for w in wrapped), default=0) * line_h
    width = pad + len(panels) * (panel_width + pad)
    note_lines = textwrap.wrap(note, max(20, width // 7)) if note else []
    height = pad + title_h + img_h + pad + text_h + pad + len(note_lines) * line_h + (pad if note_lines else 0)
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for i, (p, img, lines) in enumerate(zip(panels, scaled, wrapped, strict=True)):
        x = pad + i * (panel_width + pad)
        draw.text((x, pad), p.title, fill=TEXT, font=font_title)
        sheet.paste(img, (x, pad + title_h))
        y = pad + title_h + img_h + pad // 2
        for line in lines:
            draw.text((x, y), line, fill=TEXT, font=font_text)
            y += line_h
    y = pad + title_h + img_h + pad + text_h + pad
    for line in note_lines:
        draw.text((pad, y), line, fill=NOTE, font=font_text)
        y += line_h
    return sheet
