"""The mini designer's contact sheet: drafts of different concepts, then chains of attribute edits.

Row 1: staged drafts of held-out designs of different categories (pose and caption from the test
split). Rows 2 on: one draft each, then the same design edited attribute by attribute (sleeve
length, clothing length, collar, hem), every edit starting from the previous one, its region
outlined.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from PIL import Image

from ..design.sheet import Panel, contact_sheet
from ..editing import paste_back
from ..masks import region_mask
from ..synth.labels import distinct_values, drawn_as
from .cases import Case
from .run import HINTED, PACK_METHODS, EvalConfig, draft_latents, edit_latents

CHAIN = ("sleeve_length", "clothing_length", "collar", "hem")
SHORT = {"sleeve_length": "sleeves", "clothing_length": "length", "collar": "collar", "hem": "hem"}


def _pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def _mask_pil(mask: torch.Tensor) -> Image.Image:
    return Image.fromarray((mask[0].numpy() > 0.01).astype(np.uint8) * 255, "L")


def _concepts(case: Case) -> str:
    f = case.fields
    return f"{f['category']}, {f['style']}, {f['occasion']}"


def _far_value(attribute: str, current: str) -> str:
    """A value clearly unlike ``current`` (the other end of ordered scales), for a visible edit."""
    values = distinct_values(attribute)
    current = drawn_as(attribute, current)
    if attribute in ("clothing_length", "sleeve_length"):
        i = values.index(current)
        return values[0] if i >= len(values) // 2 else values[-1]
    return next(v for v in values if v != current and v not in ("Regular", "Flat", "Round"))


def design_sheet(designer, draft_cases: list[Case], chain_cases: list[Case], config: EvalConfig,
                 method: str = HINTED, panel_width: int = 128) -> Image.Image:  # fmt: skip
    """Drafts of ``draft_cases`` in one row, then an edit chain per ``chain_cases`` row (each edit
    starts from the previous edit's latent; with a pasting method the image shown after each edit
    is the previous image with the new edit pasted in inside its mask, as a ComfyUI graph would
    composite it)."""
    paste = method in PACK_METHODS and PACK_METHODS[method].paste
    w, h = designer.size
    rows = []
    with torch.no_grad():
        latents = draft_latents(designer, draft_cases, config, staged=True)
        images = designer.decode(latents)
        rows.append(contact_sheet(
            [Panel(_pil(img), c.fields["category"], _concepts(c)) for img, c in zip(images, draft_cases, strict=True)],
            panel_width=panel_width, caption_chars=22,
        ))  # fmt: skip
        for case in chain_cases:
            latent = draft_latents(designer, [case], config, staged=True)
            image = designer.decode(latent)
            panels = [Panel(_pil(image[0]), "draft", _concepts(case))]
            fields = dict(case.fields)
            kp = torch.from_numpy(case.keypoints[None]).float()
            for attribute in CHAIN:
                if attribute == "sleeve_length" and fields["sleeve_length"] == "Sleeveless":
                    target = "Long Sleeve"
                else:
                    target = _far_value(attribute, fields[attribute])
                step = dataclasses.replace(case, fields=dict(fields), attribute=attribute, target=target)
                mask = region_mask(kp, (h, w), attribute, fields["category"], reach=step.reach)
                latent = edit_latents(designer, [step], latent, mask, method, config)
                fields = step.edited_fields
                image = paste_back(image, designer.decode(latent), mask) if paste else designer.decode(latent)
                panels.append(Panel(_pil(image[0]), SHORT[attribute],
                                    f"-> {target}", mask=_mask_pil(mask[0])))  # fmt: skip
            rows.append(contact_sheet(panels, panel_width=panel_width, caption_chars=22))
    width = max(r.size[0] for r in rows)
    sheet = Image.new("RGB", (width, sum(r.size[1] for r in rows)), (250, 250, 248))
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.size[1]
    return sheet
