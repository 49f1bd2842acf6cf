"""Body-region masks for attribute edits: which part of the photo each attribute may change.

Entry points: :func:`region_mask` (keypoints -> (B, 1, H, W) mask), :func:`build_region` (the same
with the body unit and category used), :func:`parse_image` (a photo, detected or with given
keypoints -> mask, preview and keypoints).
"""

from .build import REFINE_MODES, Region, build_region, fit_mask, region_mask
from .geometry import Body, MissingKeypointsError
from .parse import ParseResult, parse_image
from .regions import ATTRIBUTES, AUTO, EXTENTS, normalize_attribute, normalize_category

__all__ = [
    "ATTRIBUTES",
    "AUTO",
    "Body",
    "EXTENTS",
    "MissingKeypointsError",
    "ParseResult",
    "REFINE_MODES",
    "Region",
    "build_region",
    "fit_mask",
    "normalize_attribute",
    "normalize_category",
    "parse_image",
    "region_mask",
]
