"""Body-region masks for attribute edits: which part of the photo each attribute may change.

Entry points: :func:`region_mask` (keypoints -> (B, 1, H, W) mask), :func:`build_region` (the same
with the body unit and category used), :func:`parse_image` (a photo, detected or with given
keypoints -> mask, preview and keypoints).
"""

from .build import REFINE_MODES, Region, build_region, fit_mask, region_mask
from .geometry import Body, MissingKeypointsError
from .parse import ParseResult, parse_image
from .regions import (
    ATTRIBUTES,
    AUTO,
    EXTENTS,
    LENGTH_ENDS,
    REACH_CATEGORY,
    longest_length,
    normalize_attribute,
    normalize_category,
    normalize_reach,
)

__all__ = [
    "ATTRIBUTES",
    "AUTO",
    "Body",
    "EXTENTS",
    "LENGTH_ENDS",
    "MissingKeypointsError",
    "ParseResult",
    "REACH_CATEGORY",
    "REFINE_MODES",
    "Region",
    "build_region",
    "fit_mask",
    "longest_length",
    "normalize_attribute",
    "normalize_category",
    "normalize_reach",
    "parse_image",
    "region_mask",
]
