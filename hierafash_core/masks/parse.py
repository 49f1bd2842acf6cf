"""From a photo to an attribute's region: keypoints (detected, or given as ``POSE_KEYPOINT``), the
region mask, a preview and the keypoints in OpenPose JSON. What ParseMask and ``hierafash parse`` run.

Several people: people are ordered by body size, largest first, and ``person_index`` picks one
(0 = the largest). A warning says when a photo shows more than one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..pose.detect import NoPersonFound, detect_pose, to_rgb
from ..pose.openpose_json import people_from_pose_keypoint, select_person, tensor_to_pose_keypoint
from ..pose.render import preview as render_preview
from .build import build_region
from .sdf import GRID

log = logging.getLogger(__name__)


@dataclass
class ParseResult:
    """What :func:`parse_image` found and built.

    Attributes:
        mask: (B, 1, H, W) region mask in [0, 1].
        preview: (B, 3, H, W) the photo with the mask and the chosen person's skeleton, or None.
        keypoints: (B, 18, 3) the chosen person's keypoints in pixels.
        people: per image, (P, 18, 3) every person found, largest first.
        person_mask: (B, 1, H, W) the chosen person's silhouette (detection only), else None.
        units: (B,) body unit in pixels. categories: the extent used per image.
    """

    mask: torch.Tensor
    preview: torch.Tensor | None
    keypoints: torch.Tensor
    people: list[torch.Tensor]
    person_mask: torch.Tensor | None
    units: torch.Tensor
    categories: list[str]

    def pose_keypoint(self, min_confidence: float = 0.3) -> list[dict]:
        """Every person found, as ``POSE_KEYPOINT`` (largest first, so person_index keeps its meaning)."""
        h, w = self.mask.shape[-2:]
        return tensor_to_pose_keypoint(self.people, (h, w), min_confidence)


def parse_image(
    image: torch.Tensor,
    attribute: str,
    category: str | None = None,
    *,
    pose_keypoint: Any = None,
    person_mask: torch.Tensor | None = None,
    detector: Callable[[torch.Tensor], list[torch.Tensor]] | None = None,
    person_index: int = 0,
    grow: float = 0.0,
    feather: float = 0.05,
    clip_to_person: bool = True,
    person_margin: float = 0.25,
    refine_mask: torch.Tensor | None = None,
    refine_mode: str = "intersect",
    refine_margin: float = 0.0,
    reach: str | None = None,
    min_confidence: float = 0.3,
    make_preview: bool = True,
    grid: int = GRID,
) -> ParseResult:
    """Build ``attribute``'s region for the photo ``image`` (B, C, H, W) in [0, 1].

    With ``pose_keypoint`` (OpenPose JSON, e.g. from a DWPose preprocessor) no detector runs; the
    region is clipped to ``person_mask`` (B, 1, H, W) when one is given. Otherwise MediaPipe
    detects the pose and its silhouette. ``clip_to_person`` keeps the region within the silhouette
    grown by ``person_margin``. ``detector`` replaces MediaPipe: a callable from (B, 3, H, W) to
    one (P, 18, 3) tensor per image, such as :func:`~hierafash_core.pose.openpose_body.load_openpose_body`
    (no silhouette then). Other arguments: see :func:`hierafash_core.masks.build.region_mask`.

    Raises:
        PoseDetectorUnavailable: no keypoints given and MediaPipe is not installed.
        NoPersonFound, MissingKeypointsError, ValueError: see the messages.
    """
    rgb = to_rgb(image)
    b, _, h, w = rgb.shape
    if person_mask is not None and pose_keypoint is None:
        raise ValueError("person_mask: give it together with pose_keypoint (detection finds its own silhouette)")
    if pose_keypoint is not None:
        people = people_from_pose_keypoint(pose_keypoint, (h, w))
        keypoints = select_person(people, person_index, b)
        if len(people) == 1 and b > 1:
            people = people * b
        for i, found in enumerate(people):
            if found.shape[0] > 1:
                log.warning(
                    "image %d: the keypoints list %d people; using person %d (0 is the largest); "
                    "set person_index to pick another", i, found.shape[0], person_index,
                )  # fmt: skip
    elif detector is not None:
        people = detector(rgb)
        for i, found in enumerate(people):
            if found.shape[0] == 0:
                raise NoPersonFound(f"no person found in image {i} ({w}x{h} px) by the given detector")
        keypoints = select_person(people, person_index, b)
    else:
        keypoints, person_mask, found = detect_pose(rgb, person_index)
        people = [f.keypoints for f in found]
    region = build_region(
        keypoints,
        (h, w),
        attribute,
        category,
        grow=grow,
        feather=feather,
        person_mask=person_mask if clip_to_person else None,
        person_margin=person_margin,
        refine_mask=refine_mask,
        refine_mode=refine_mode,
        refine_margin=refine_margin,
        reach=reach,
        min_confidence=min_confidence,
        grid=grid,
    )
    shown = render_preview(rgb, region.mask, keypoints) if make_preview else None
    return ParseResult(region.mask, shown, keypoints, people, person_mask, region.units, region.categories)
