"""Attribute region masks: shapes from keypoints, refined by silhouettes and masks, grown and feathered.

All margins are in body units u (about the torso length, neck to mid-hip, measured per person),
so the mask of a person does not depend on the photo's resolution.

Order of operations, on signed distance fields (see ``sdf``):
    1. the attribute's shapes (``regions``), minus a disc over the face;
    2. intersect with the person's silhouette grown by ``person_margin`` (when given);
    3. combine with an external mask (``refine_mode``: intersect, union or subtract), grown by
       ``refine_margin`` when intersecting;
    4. grow by ``grow`` and feather outward over ``feather``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..pose.keypoints import check_keypoints
from .geometry import Body
from .regions import AUTO, normalize_attribute, normalize_category, normalize_reach, region_shapes
from .sdf import GRID, Grid, mask_sdf, ramp, shapes_sdf

log = logging.getLogger(__name__)

REFINE_MODES = ("intersect", "union", "subtract")
# A mask given at another size is resized when its aspect ratio is this close to the image's.
_ASPECT_TOLERANCE = 0.01
# Bounds of the body-unit margins (a whole body unit of feather is already very soft).
_MARGIN_RANGE = (-1.0, 2.0)


@dataclass
class Region:
    """A built region.

    Attributes:
        mask: (B, 1, H, W) float in [0, 1].
        units: (B,) body unit of each image in pixels.
        categories: the category whose extent was used per image ('auto' resolved).
    """

    mask: torch.Tensor
    units: torch.Tensor
    categories: list[str]


def fit_mask(mask: torch.Tensor, size: tuple[int, int], batch: int, name: str = "refine_mask") -> torch.Tensor:
    """Bring a (B, 1, h, w) mask to (batch, 1, H, W).

    A mask of another size is resized (bilinear) when its aspect ratio matches the image's within
    1 % (the same picture at another resolution), and refused otherwise: stretching a mask made for
    another framing would put it on the wrong part of the body.
    """
    if not isinstance(mask, torch.Tensor) or mask.ndim != 4 or mask.shape[1] != 1:
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"{name}: expected a (B, 1, H, W) mask, got {shape}")
    if mask.shape[0] not in (1, batch):
        raise ValueError(f"{name}: batch of {mask.shape[0]} masks for {batch} images; give 1 mask or {batch}")
    h, w = size
    mh, mw = mask.shape[-2:]
    if (mh, mw) != (h, w):
        ratio = (mw / mh) / (w / h)
        if abs(ratio - 1) > _ASPECT_TOLERANCE:
            raise ValueError(
                f"{name}: {mw}x{mh} does not match the {w}x{h} image (aspect ratios differ by {abs(ratio - 1):.0%}); "
                "make the mask from this image, or crop/resize both alike"
            )
        log.info("%s: resized from %dx%d to the image's %dx%d", name, mw, mh, w, h)
        mask = F.interpolate(mask.float(), size=(h, w), mode="bilinear", align_corners=False)
    return mask.float().expand(batch, 1, h, w)


def _check_margin(name: str, value: float) -> float:
    value = float(value)
    lo, hi = _MARGIN_RANGE
    if not (lo <= value <= hi):
        raise ValueError(f"{name}={value}: must be between {lo} and {hi} body units (1 = about the torso length)")
    return value


def build_region(
    keypoints: torch.Tensor,
    size: tuple[int, int],
    attribute: str,
    category: str | None = None,
    *,
    grow: float = 0.0,
    feather: float = 0.0,
    person_mask: torch.Tensor | None = None,
    person_margin: float = 0.25,
    refine_mask: torch.Tensor | None = None,
    refine_mode: str = "intersect",
    refine_margin: float = 0.0,
    reach: str | None = None,
    min_confidence: float = 0.3,
    grid: int = GRID,
) -> Region:
    """The region of ``attribute`` for one person per image. See :func:`region_mask`."""
    kp = check_keypoints(keypoints)
    h, w = int(size[0]), int(size[1])
    if h < 1 or w < 1:
        raise ValueError(f"size={tuple(size)}: height and width must be at least 1")
    attribute = normalize_attribute(attribute)
    category = normalize_category(category)
    reach = normalize_reach(reach)
    grow, person_margin, refine_margin = (
        _check_margin("grow", grow),
        _check_margin("person_margin", person_margin),
        _check_margin("refine_margin", refine_margin),
    )
    feather = _check_margin("feather", feather)
    if feather < 0:
        raise ValueError(f"feather={feather}: must be 0 (a hard edge) or more")
    if refine_mode not in REFINE_MODES:
        raise ValueError(f"refine_mode={refine_mode!r}: choose one of {', '.join(REFINE_MODES)}")
    if not 0 <= min_confidence <= 1:
        raise ValueError(f"min_confidence={min_confidence}: must be in [0, 1]")
    b = kp.shape[0]
    person = fit_mask(person_mask, (h, w), b, "person_mask") if person_mask is not None else None
    refine = fit_mask(refine_mask, (h, w), b) if refine_mask is not None else None
    g = Grid.for_size((h, w), grid)
    masks, units, categories = [], [], []
    for i in range(b):
        body = Body.from_keypoints(kp[i], (h, w), min_confidence, image_index=i)
        shapes = region_shapes(body, attribute, category, reach)
        u = body.unit
        # Past this distance the exact value no longer matters: the mask is 0 there whatever follows.
        far = max(0.0, (grow + feather) * u) + 2 * g.cell
        field = shapes_sdf(g, shapes.add, far)
        if shapes.cut:
            field = np.maximum(field, -shapes_sdf(g, shapes.cut, far))
        if not bool((field <= 0).any()):  # no grid cell of the photo lies in the region
            raise ValueError(
                f"the {attribute} region lies outside the {w}x{h} photo in image {i}; "
                "check that the keypoints belong to this image"
            )
        if person is not None:
            field = np.maximum(field, mask_sdf(g, person[i, 0]) - person_margin * u)
        if refine is not None:
            ext = mask_sdf(g, refine[i, 0])
            if refine_mode == "intersect":
                field = np.maximum(field, ext - refine_margin * u)
            elif refine_mode == "union":
                field = np.minimum(field, ext)
            else:
                field = np.maximum(field, -ext)
        mask = ramp(field, (h, w), grow * u, feather * u)
        if not mask.any():
            raise ValueError(
                f"the {attribute} region is empty in image {i} after refinement: the person silhouette or "
                "refine_mask leaves nothing of it; check the refinement mask or raise person_margin/grow"
            )
        masks.append(mask)
        units.append(u)
        categories.append(shapes.category)
    return Region(torch.from_numpy(np.stack(masks))[:, None], torch.tensor(units), categories)


def region_mask(
    keypoints: torch.Tensor,
    size: tuple[int, int],
    attribute: str,
    category: str | None = None,
    **options,
) -> torch.Tensor:
    """The body region ``attribute`` may change, as a mask.

    Args:
        keypoints: (B, 18, 3) OpenPose-18 points (x, y, confidence) in pixels, one person per image.
        size: (H, W) of the image.
        attribute: ``clothing_length``, ``sleeve_length``, ``sleeve_type``, ``collar``, ``hem`` or
            ``garment`` (aliases such as ``sleeve`` or ``A2`` are accepted).
        category: garment category (``Dress``, ``Blouse``, ...) setting how far length and hem
            regions reach; None or ``'auto'``: the longest extent (a full-length Dress).
        grow: extra margin around the region (u; negative shrinks).
        feather: width of the soft outward edge (u; 0 = hard edge).
        person_mask: optional (B, 1, H, W) silhouette; the region is kept within it, grown by
            ``person_margin`` (u) so a garment can still grow a little beyond the body.
        refine_mask: optional (B or 1, 1, h, w) external mask (a parser's or a segmentation node's),
            combined by ``refine_mode`` (``intersect``, ``union``, ``subtract``); ``refine_margin``
            (u) grows it when intersecting. Another size with the same aspect ratio is resized.
        reach: a clothing length (``Knee-length``, ``Long``, ...): length, hem and garment regions
            reach at least as far down as a garment of that length ends; give the longer of the
            lengths before and after the edit. None or ``'category'``: the category's usual range.
        min_confidence: keypoints below it count as missing.

    Returns:
        (B, 1, H, W) float in [0, 1].

    Raises:
        MissingKeypointsError: the region needs points the photo does not show (the message names them).
        ValueError: bad arguments, or a region that lies outside the photo or is refined away.
    """
    return build_region(keypoints, size, attribute, category, **options).mask


__all__ = ["AUTO", "REFINE_MODES", "Region", "build_region", "fit_mask", "region_mask"]
