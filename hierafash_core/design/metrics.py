"""How well an edit kept the design outside its region, from the latents and images the graph saved.

"Outside" is decided on the latent grid, where the edit works: a latent cell is outside when its
8x8 pixel block of the saved mask is zero everywhere, and none of its 8 neighbours is inside. The
saved mask is 8-bit (values below 1/255 read as 0), and the neighbour margin keeps such faint
mask edges out of "outside", so the figure only ever covers cells the edit could not touch.

Figures per edit (against the edit's source, the previous stage):

- ``latent_max_abs_diff_outside``: the largest change of any latent value outside. With blending
  the edit copies the source there, so it is 0 (the editing issue's bound: below 1e-4).
- ``latent_mean_abs_diff_inside``: the mean change inside the region (that the edit did something).
- ``pixel_psnr_outside_db``: PSNR of the decoded images over the outside cells' pixels. Decoders
  spread a change by a few pixels beyond the cell that changed, so it is high but finite.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file

LATENT_SCALE = 8  # pixels per latent cell of the SD-family autoencoders
BOUND_BLEND = 1e-4  # the editing issue's bound on the latent outside the mask, with blending


def load_latent(path: str | Path) -> torch.Tensor:
    """A latent ComfyUI's SaveLatent wrote: (B, C, h, w) float32."""
    tensors = load_file(str(path))
    if "latent_tensor" not in tensors:
        raise ValueError(f"{path}: not a ComfyUI latent file (no 'latent_tensor'); save it with SaveLatent")
    return tensors["latent_tensor"].float()


def load_rgb(path: str | Path) -> np.ndarray:
    """(H, W, 3) float64 in 0..255."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float64)


def load_mask(path: str | Path) -> np.ndarray:
    """(H, W) float in [0, 1] from a mask image (MaskToImage's grey image)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.float32) / 255.0


def outside_cells(mask: np.ndarray, latent_hw: tuple[int, int], margin: int = 1) -> torch.Tensor:
    """(h, w) bool: latent cells with no mask pixel in their block or within ``margin`` cells of one."""
    # TODO(evidence: MaskToImage + SaveImage store 8 bits, so mask values below 1/255 read as 0 and
    # the one-cell margin stands in for them): save the float mask (a safetensors mask output) and
    # count exactly the cells the edit node left at 0.
    h, w = latent_hw
    m = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]
    if m.shape[-2:] != (h * LATENT_SCALE, w * LATENT_SCALE):  # a mask of another size: onto the image grid
        m = F.interpolate(m, size=(h * LATENT_SCALE, w * LATENT_SCALE), mode="bilinear", align_corners=False)
    inside = F.max_pool2d((m > 0).float(), LATENT_SCALE)  # (1, 1, h, w): any pixel of the block
    if margin:
        inside = F.max_pool2d(inside, 2 * margin + 1, stride=1, padding=margin)
    return inside[0, 0] == 0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two 0..255 arrays (inf when equal)."""
    mse = float(np.mean((a - b) ** 2)) if a.size else 0.0
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def preservation(
    source_latent: torch.Tensor,
    edited_latent: torch.Tensor,
    mask: np.ndarray,
    source_image: np.ndarray | None = None,
    edited_image: np.ndarray | None = None,
) -> dict[str, float | int | None]:
    """The figures of one edit (see the module docstring); JSON-ready (inf written as None).

    Shapes: latents (B, C, h, w); mask (H, W) in [0, 1]; images (H, W, 3) in 0..255.
    """
    if source_latent.shape != edited_latent.shape:
        raise ValueError(f"latents differ in shape: {tuple(source_latent.shape)} vs {tuple(edited_latent.shape)}")
    h, w = source_latent.shape[-2:]
    outside = outside_cells(mask, (h, w))
    diff = (edited_latent - source_latent).abs()  # (B, C, h, w)
    out: dict[str, float | int | None] = {
        "latent_cells_outside": int(outside.sum()),
        "latent_cells": int(h * w),
        "latent_max_abs_diff_outside": float(diff[..., outside].max()) if outside.any() else None,
        "latent_mean_abs_diff_inside": float(diff[..., ~outside].mean()) if (~outside).any() else None,
    }
    if source_image is not None and edited_image is not None and outside.any():
        pixels = outside.repeat_interleave(LATENT_SCALE, 0).repeat_interleave(LATENT_SCALE, 1).numpy()
        pixels = pixels[: source_image.shape[0], : source_image.shape[1]]
        value = psnr(source_image[pixels], edited_image[pixels])
        out["pixel_psnr_outside_db"] = None if math.isinf(value) else round(value, 2)
        out["pixel_max_abs_diff_outside"] = float(np.abs(source_image[pixels] - edited_image[pixels]).max())
    return out


def union_outside(masks: list[np.ndarray], latent_hw: tuple[int, int]) -> torch.Tensor:
    """Cells outside every mask (for the draft-to-final figure)."""
    out = torch.ones(latent_hw, dtype=torch.bool)
    for m in masks:
        out &= outside_cells(m, latent_hw)
    return out
