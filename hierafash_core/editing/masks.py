"""Edit masks on the latent grid, and the per-step blend that keeps the rest of the design.

A mask is (B, 1, H, W) float in [0, 1], 1 where the edit may change the design. It usually comes
at image size (8x the latent grid) and is brought to the latent grid by area averaging, so the
edges of a hard mask become soft there and a feathered mask stays feathered.

Soft values are not blended as fractions at every step: a fraction applied at each of N steps
compounds to about m^N, which turns a feathered edge back into a hard one (a seam where m
reaches 1). Instead a cell is released to the edit for the last fraction m of the steps (the
idea of Differential Diffusion, Levin and Fried 2024): m = 1 changes from the start, m = 0.25
only in the last quarter, when little noise is left, and m = 0 never. The change then grows
smoothly with m, and cells with m = 0 stay exactly the source.

With ``cover`` a cell takes the largest mask value inside it instead of the average. A region
about one cell wide (an arm on a 16 x 24 latent) then averages to 0.3-0.6, so it would be
released only in the last third of the steps, too late to change a sleeve's shape; covered, it is
free from the first step. The cells around the region change too, so the decoded edit must be
pasted back into the source image inside the pixel mask (``paste_back``) to keep the rest.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

FULL_MASK_LEVEL = 0.99  # every cell at or above this: the edit regenerates the whole latent
EMPTY_MASK_LEVEL = 1e-6  # a mask whose largest value is below this edits nothing
LATENT_SCALE = 8  # pixels per latent cell of the SD-family autoencoders


def latent_mask(
    mask: torch.Tensor, latent_shape: tuple[int, ...], name: str = "mask", cover: bool = False
) -> torch.Tensor:
    """Bring an edit mask onto the latent grid and check it.

    Args:
        mask: (B_m, 1, H, W) float; B_m is 1 (shared by the batch) or the latent batch size.
        latent_shape: (B, C, h, w) of the latent to edit.
        name: the parameter name used in messages.
        cover: shrink by the largest value in each cell instead of the average (module docstring).

    Returns:
        (B, 1, h, w) float32 in [0, 1].

    Raises:
        ValueError: wrong layout, a batch that does not match, or an empty mask (nothing to edit).
    """
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(f"{name}: expected a (B, 1, H, W) mask, got shape {tuple(mask.shape)}")
    b, _, h, w = latent_shape
    bm, _, mh, mw = mask.shape
    if bm not in (1, b):
        raise ValueError(
            f"{name}: {bm} masks for a batch of {b} latents; give one mask (shared) or one per latent ({b})"
        )
    if mh == 0 or mw == 0:
        raise ValueError(f"{name}: the mask is empty, shape {tuple(mask.shape)}")
    mask = mask.float().clamp(0, 1)
    if not torch.isfinite(mask).all():
        raise ValueError(f"{name}: the mask holds NaN or infinite values; rebuild it")

    peaks = mask.flatten(1).amax(dim=1)  # (B_m,)
    if (peaks < EMPTY_MASK_LEVEL).all():
        raise ValueError(
            f"{name}: the mask is empty (all zeros), so there is nothing to edit; connect the mask of the region "
            "to change (ParseMask, or paint one in the image editor)"
        )
    empty = [i for i, p in enumerate(peaks.tolist()) if p < EMPTY_MASK_LEVEL]
    if empty:
        raise ValueError(
            f"{name}: mask {empty[0]} of the batch is empty (all zeros), so that latent has nothing to edit; "
            "give every latent a region to change, or edit them separately"
        )

    if (mh, mw) != (h, w):
        if (mh, mw) == (h * LATENT_SCALE, w * LATENT_SCALE):
            log.debug("%s: image-size mask %dx%d averaged onto the %dx%d latent grid", name, mw, mh, w, h)
        else:
            log.info(
                "%s: mask of %dx%d resized to the %dx%d latent grid (an image-size mask would be %dx%d)",
                name,
                mw,
                mh,
                w,
                h,
                w * LATENT_SCALE,
                h * LATENT_SCALE,
            )
            if abs(mw / mh - w / h) > 0.02 * (w / h):
                log.warning(
                    "%s: the mask's aspect ratio %.3f differs from the latent's %.3f; it is stretched to fit, "
                    "so check that it still covers the intended region",
                    name,
                    mw / mh,
                    w / h,
                )
        # Area averaging when shrinking keeps the mask's coverage (the largest value with cover);
        # bilinear when enlarging.
        if mh >= h and mw >= w and cover:
            mask = F.adaptive_max_pool2d(mask, (h, w))
        else:
            mode = "area" if mh >= h and mw >= w else "bilinear"
            kwargs = {"align_corners": False} if mode == "bilinear" else {}
            mask = F.interpolate(mask, size=(h, w), mode=mode, **kwargs)
        mask = mask.clamp(0, 1)
        if (mask.flatten(1).amax(dim=1) < 0.05).any():
            log.warning(
                "%s: after resizing to the %dx%d latent grid the mask covers under 5%% of any cell; "
                "the edit will barely change anything: grow or dilate the mask",
                name,
                w,
                h,
            )

    if bool((mask >= FULL_MASK_LEVEL).all()):
        log.warning(
            "%s covers the whole latent: this edit is a regeneration from its start level, nothing is kept "
            "from the source but what the start noise leaves; use a mask of the region to change",
            name,
        )
    return mask.expand(b, 1, h, w).contiguous()


def release_mask(mask: torch.Tensor, progress: float) -> torch.Tensor:
    """The cells free to change once ``progress`` (0..1) of the steps are done: ``m >= 1 - progress``, ``m > 0``.

    A binary mask is returned as it is. Shape (B, 1, h, w), float 0/1.
    """
    return ((mask >= 1 - progress - 1e-6) & (mask > 0)).to(mask.dtype)


def blend(x: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Keep ``reference`` outside the mask: ``reference + m * (x - reference)``.

    Exact where ``m == 0`` (the result is ``reference`` bit for bit), proportional on soft edges.
    Shapes: x, reference (B, C, h, w); mask (B, 1, h, w).
    """
    return torch.lerp(reference, x, mask)


def paste_back(source: torch.Tensor, edited: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The edited image inside ``mask``, the source image outside: ``source + m * (edited - source)``.

    source, edited: (B, C, H, W) decoded images; mask: (B or 1, 1, H, W) in [0, 1] at their size
    (the pixel mask the edit was given). Exact (the source bit for bit) where ``m == 0``.
    """
    if source.shape != edited.shape:
        raise ValueError(f"paste_back: source {tuple(source.shape)} and edited {tuple(edited.shape)} differ in shape")
    if (
        mask.ndim != 4
        or mask.shape[1] != 1
        or mask.shape[2:] != source.shape[2:]
        or mask.shape[0] not in (1, source.shape[0])
    ):
        raise ValueError(
            f"paste_back: mask of shape {tuple(mask.shape)} for images of shape {tuple(source.shape)}; "
            "give the (B, 1, H, W) pixel mask of the edit"
        )
    return torch.lerp(source, edited, mask.clamp(0, 1).to(source))
