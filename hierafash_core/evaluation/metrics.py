"""Figures of the evaluation: preservation outside a mask, attribute hits, concept adherence, diversity.

Images are (B, 3, H, W) float in [0, 1]; masks (B, 1, H, W) in [0, 1] with 1 = may change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ..synth.concepts import palette_weights

OUTSIDE = 0.01  # a pixel is "outside the mask" where the mask is at most this (feathered edges count inside)


def psnr_outside(source: torch.Tensor, edited: torch.Tensor, mask: torch.Tensor) -> list[float]:
    """PSNR (dB, peak 1) between ``source`` and ``edited`` over the pixels outside ``mask``, per image.

    Identical pixels give ``inf``; an image whose mask covers everything gives ``nan``.
    """
    out = []
    for s, e, m in zip(source.float(), edited.float(), mask.float(), strict=True):
        keep = (m[0] <= OUTSIDE).expand_as(s)
        if not keep.any():
            out.append(float("nan"))
            continue
        mse = float(((s - e)[keep] ** 2).mean())
        out.append(float("inf") if mse == 0 else -10.0 * float(np.log10(mse)))
    return out


def ssim_outside(source: torch.Tensor, edited: torch.Tensor, mask: torch.Tensor) -> list[float]:
    """Mean SSIM (7 x 7 windows, scikit-image) over the pixels outside ``mask``, per image."""
    from skimage.metrics import structural_similarity

    out = []
    for s, e, m in zip(source.float(), edited.float(), mask.float(), strict=True):
        keep = (m[0] <= OUTSIDE).numpy()
        if not keep.any():
            out.append(float("nan"))
            continue
        _, full = structural_similarity(
            s.permute(1, 2, 0).numpy(), e.permute(1, 2, 0).numpy(), channel_axis=2, data_range=1.0, full=True
        )
        out.append(float(full.mean(axis=2)[keep].mean()))
    return out


def mean(values: Sequence[float]) -> float:
    """Mean of the finite values (``inf`` PSNRs of untouched images are capped at 100 dB); nan if none."""
    vals = [min(v, 100.0) for v in values if not np.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")


def hit_rate(predicted: Sequence[str], expected: Sequence[str]) -> float:
    """Share of ``predicted`` equal to ``expected`` (nan for none)."""
    pairs = list(zip(predicted, expected, strict=True))
    return sum(p == e for p, e in pairs) / len(pairs) if pairs else float("nan")


def palette_adherence(predicted: Sequence[str], fields: Sequence[Mapping[str, str]], top: int = 2) -> float:
    """Share of images whose palette family is among the ``top`` most likely for their concepts.

    The generator draws a design's palette from weights its concepts set (style, occasion, effect,
    feeling; :func:`..synth.concepts.palette_weights`); a draft that follows its concepts should
    mostly show one of the likeliest families.
    """
    hits = []
    for p, f in zip(predicted, fields, strict=True):
        weights = palette_weights(f)
        likely = sorted(weights, key=weights.get, reverse=True)[:top]
        hits.append(p in likely)
    return sum(hits) / len(hits) if hits else float("nan")


def pairwise_distance(images: torch.Tensor) -> float:
    """Mean RMS pixel distance over all pairs of ``images`` (B >= 2), the diversity of one group."""
    b = images.shape[0]
    if b < 2:
        raise ValueError(f"diversity needs at least two images of a group, got {b}")
    flat = images.float().flatten(1)
    d = torch.cdist(flat, flat) / flat.shape[1] ** 0.5  # (B, B) RMS distances
    return float(d[torch.triu(torch.ones(b, b, dtype=torch.bool), 1)].mean())
