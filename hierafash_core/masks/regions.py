"""Which part of the body each attribute may change, as shapes built from the keypoints.

Each region covers the largest extent its attribute can take, so an edit can grow a garment as
well as shrink it: a sleeve edit covers the whole arm, a length or hem edit reaches from the
waist to where the longest garment of the category ends. Every size below is in body units u
(about the torso length, neck to mid-hip; see ``geometry``). The paper's code used boxes from
OpenPose keypoints with fixed pixel offsets for 512-pixel images; these shapes follow the same
idea with margins that scale with the body.

Without a garment parser the hem's current position is unknown, so the hem region is the
length region (every place the hem can be). An external mask narrows any region.

A category's usual range does not hold every length the vocabulary allows: a knee-length blouse or
a long coat ends below it. ``reach`` (a clothing length) extends length, hem and garment regions
down to where a garment of that length ends; give the longer of the lengths before and after the
edit, so the region holds both the garment to remove and the one to draw.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np

from ..taxonomy import CATEGORIES, get_field, normalize_value
from .geometry import Body, _unit
from .sdf import Capsule, Polygon, Shape

log = logging.getLogger(__name__)

ATTRIBUTES: tuple[str, ...] = ("clothing_length", "sleeve_length", "sleeve_type", "collar", "hem", "garment")
AUTO = "auto"
# reach: the category's own range (no clothing length given).
REACH_CATEGORY = "category"


@dataclass(frozen=True)
class Extent:
    """How far a category's garment can reach, for length, hem and whole-garment regions.

    Attributes:
        top: how far above the hip line the region starts (u): where the shortest garment can end.
        bottom: leg position where the region ends: 0 hip, 1 knee, 2 ankle, above 2 past the ankle.
        top_width, bottom_width: margin beside the hips and beside the legs at ``bottom`` (u).
        per_leg: trousers: one tube per leg instead of one flared shape.
        needs_knees: the region reaches below the knees, so at least one knee must be seen.
        upper_body: the garment also covers the torso and arms (for the ``garment`` region).
        label: words for messages.
    """

    top: float
    bottom: float
    top_width: float
    bottom_width: float
    per_leg: bool
    needs_knees: bool
    upper_body: bool
    label: str


# fmt: off
EXTENTS: dict[str, Extent] = {
    "Blouse":   Extent(0.40, 0.60, 0.30, 0.35, False, False, True, "from the waist to mid-thigh"),
    "Sweater":  Extent(0.40, 0.60, 0.30, 0.35, False, False, True, "from the waist to mid-thigh"),
    "Coat":     Extent(0.30, 1.50, 0.30, 0.45, False, False, True, "from the waist to mid-calf"),
    "Dress":    Extent(0.15, 2.15, 0.30, 0.50, False, True, True, "from the hips to the floor"),
    "Skirt":    Extent(0.15, 2.15, 0.30, 0.50, False, True, False, "from the hips to the floor"),
    "Jumpsuit": Extent(0.00, 2.15, 0.25, 0.30, True, True, True, "from the hips to the floor, per leg"),
    "Pant":     Extent(0.00, 2.15, 0.25, 0.30, True, True, False, "from the hips to the floor, per leg"),
}
# Where a garment of each clothing length ends, as a leg position (0 hip, 1 knee, 2 ankle), with a
# margin for the hem band: mid-thigh is short, just below the knee knee-length, mid-calf mid-length,
# the ankle long (the same levels `hierafash synth` draws; a cropped top ends above the hips, inside
# every category's range).
LENGTH_ENDS: dict[str, float] = {
    "Ultra-short": 0.35, "Short": 0.70, "Knee-length": 1.15, "Mid-length": 1.60, "Long": 2.15,
}
# fmt: on

# Arm tube radii (u): at the shoulder cap, upper arm, elbow, wrist; and the cuff past the wrist.
SHOULDER_CAP = 0.22
UPPER_ARM_RADIUS = 0.19
ELBOW_RADIUS = 0.17
WRIST_RADIUS = 0.20
CUFF = 0.15


@dataclass
class RegionShapes:
    """Shapes of one region in one image: ``add`` united, then ``cut`` (the face) removed."""

    attribute: str
    category: str
    add: list[Shape] = field(default_factory=list)
    cut: list[Shape] = field(default_factory=list)


def normalize_attribute(attribute: str) -> str:
    """'sleeve', 'A2', 'Sleeve length' -> 'sleeve_length'; 'garment' stays. Raises ValueError otherwise."""
    text = str(attribute).strip()
    if text.casefold() in ("garment", "whole garment", "whole_garment", "all"):
        return "garment"
    try:
        key = get_field(text).key
    except ValueError:
        key = None
    if key not in ATTRIBUTES:
        raise ValueError(f"attribute={attribute!r}: not an editable region; choose one of {', '.join(ATTRIBUTES)}")
    return key


def normalize_category(category: str | None) -> str:
    """A category label, or ``'auto'`` for None/empty/'auto'."""
    if category is None or str(category).strip().casefold() in ("", AUTO, "any", "none"):
        return AUTO
    try:
        return normalize_value("category", category)
    except ValueError as exc:
        raise ValueError(f"{exc}; or use 'auto'") from None  # the message already names category and value


def normalize_reach(reach: str | None) -> str:
    """A clothing length (canonical label), or ``'category'`` for None/empty/'category'/'auto'."""
    if reach is None or str(reach).strip().casefold() in ("", REACH_CATEGORY, AUTO, "none"):
        return REACH_CATEGORY
    try:
        return normalize_value("clothing_length", reach)
    except ValueError:
        raise ValueError(
            f"reach={reach!r}: give a clothing length ({', '.join(LENGTH_ENDS)}), the longer of the lengths "
            f"before and after the edit, or '{REACH_CATEGORY}' for the category's usual range"
        ) from None


def longest_length(*values: str | None) -> str:
    """The longest of the clothing lengths given, as a ``reach``; ``'category'`` if none is one.

    None, free text ("ankle grazing", allowed in free-text designs) and other values that are not
    a clothing length are skipped: they say nothing about where the garment ends.
    """
    known = []
    for value in values:
        try:
            known.append(normalize_reach(value))
        except ValueError:
            continue
    known = [v for v in known if v != REACH_CATEGORY]
    return max(known, key=LENGTH_ENDS.__getitem__) if known else REACH_CATEGORY


def reach_extent(category: str, reach: str = REACH_CATEGORY) -> Extent:
    """``category``'s extent, lengthened to where a garment of clothing length ``reach`` ends."""
    ext = EXTENTS[category]
    end = LENGTH_ENDS.get(reach)
    if end is None or end <= ext.bottom:
        return ext
    return replace(
        ext,
        bottom=end,
        bottom_width=max(ext.bottom_width, EXTENTS["Dress"].bottom_width),  # a long garment flares like a dress
        # past mid-calf the legs must be seen; up to there they are estimated as for a coat's own range
        needs_knees=ext.needs_knees or end > EXTENTS["Coat"].bottom,
        label=f"{ext.label}, reaching as far as a {reach.lower()} garment",
    )


def resolve_category(body: Body, category: str) -> str:
    """``auto`` means the longest extent, a full-length garment (Dress): a length edit may make any
    garment long. Shorter reaches are asked for by naming the category."""
    return "Dress" if category == AUTO else category


def region_shapes(body: Body, attribute: str, category: str = AUTO, reach: str = REACH_CATEGORY) -> RegionShapes:
    """The shapes of ``attribute``'s region for one body (see the module docstring); ``reach``
    (normalised by :func:`normalize_reach`) lengthens length, hem and garment regions."""
    cat = resolve_category(body, category)
    if category == AUTO:
        log.debug("image %d: category auto -> %s extent", body.image_index, cat)
    out = RegionShapes(attribute, cat)
    if attribute in ("sleeve_length", "sleeve_type"):
        out.add += arm_shapes(body, wide=attribute == "sleeve_type")
    elif attribute == "collar":
        out.add += collar_shapes(body)
    elif attribute in ("clothing_length", "hem"):
        out.add += length_shapes(body, cat, attribute, auto=category == AUTO, reach=reach)
    elif attribute == "garment":
        out.add += garment_shapes(body, cat, reach)
    else:
        raise ValueError(f"attribute={attribute!r}: choose one of {', '.join(ATTRIBUTES)}")
    head = body.head()
    if head is not None:
        centre, radius = head
        out.cut.append(Capsule(tuple(centre), tuple(centre), radius, radius))
    if body.notes:
        log.info("image %d, %s: %s", body.image_index, attribute, "; ".join(dict.fromkeys(body.notes)))
    return out


def arm_shapes(body: Body, wide: bool = False) -> list[Shape]:
    """Both arms from the shoulder cap to past the wrist; ``wide`` adds the armhole and the seam
    towards the neckline (drop-shoulder, raglan, dolman and kimono sleeves start there)."""
    body.require(
        "the sleeve region",
        [("right_shoulder", "left_shoulder")],
        "Use a photo that shows the shoulders, or feed keypoints.",
    )
    u, neck = body.unit, body.neck
    shapes: list[Shape] = []
    for side in ("right", "left"):
        arm = body.arm(side)
        if arm is None:
            body.note(f"{side} arm skipped (no {side} shoulder)")
            continue
        s, e, w = arm
        cuff = w + _unit(w - e, body.down) * CUFF * u
        shapes += [
            _disc(s, SHOULDER_CAP * u),
            Capsule(tuple(s), tuple(e), UPPER_ARM_RADIUS * u, ELBOW_RADIUS * u),
            Capsule(tuple(e), tuple(w), ELBOW_RADIUS * u, WRIST_RADIUS * u),
            Capsule(tuple(w), tuple(cuff), WRIST_RADIUS * u, WRIST_RADIUS * u),
        ]
        if wide:
            shapes += [
                Capsule(tuple(s), tuple(s + (neck - s) * 0.5), 0.15 * u, 0.12 * u),
                Capsule(tuple(s), tuple(s + body.down * 0.45 * u), 0.17 * u, 0.15 * u),
            ]
    return shapes


def collar_shapes(body: Body) -> list[Shape]:
    """Around the neck point: up the neck towards the chin (stand and T-neck collars), down the
    chest to a deep V (lapels, U- and V-necks), and out towards the shoulders (boat necks)."""
    if not (body.has("neck") or (body.has("right_shoulder") and body.has("left_shoulder"))):
        body.require("the collar region", [("neck",), ("right_shoulder",), ("left_shoulder",)], "Feed keypoints.")
    u, n, d, a = body.unit, body.neck, body.down, body.across
    if not body.in_photo("neck") and not (0 <= n[0] < body.size[1] and 0 <= n[1] < body.size[0]):
        body.require("the collar region", [("neck",)], "Use a photo that shows the neck.")
    up = 0.15 * u
    nose = body.p("nose")
    if nose is not None:
        up = min(0.18 * u, 0.45 * float(np.linalg.norm(nose - n)))
    pts = []
    for along, half in ((-up, 0.14), (0.0, 0.30), (0.25, 0.28), (0.48, 0.10)):
        centre = n + d * (along if along < 0 else along * u)
        pts += [centre - a * half * u, centre + a * half * u]
    return [Polygon(tuple(map(tuple, pts)))]


def _leg_point(hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray, t: float) -> np.ndarray:
    if t <= 1:
        return hip + (knee - hip) * t
    if t <= 2:
        return knee + (ankle - knee) * (t - 1)
    return ankle + (ankle - knee) * (t - 2)


def length_shapes(
    body: Body, category: str, attribute: str = "clothing_length", auto: bool = False, reach: str = REACH_CATEGORY
) -> list[Shape]:
    """From where the shortest garment of the category ends to where the longest one (or one of
    clothing length ``reach``, if that is longer) does."""
    ext = reach_extent(category, reach)
    groups = [("right_hip", "left_hip")] + ([("right_knee", "left_knee")] if ext.needs_knees else [])
    name = f"category auto -> {category}" if auto else category
    what = f"the {attribute.replace('_', ' ')} region ({name}: {ext.label})"
    hips_seen = body.in_photo("right_hip") or body.in_photo("left_hip")
    fix = (
        "Use a photo that shows the body down to the knees or the feet"
        if ext.needs_knees
        else "Use a photo that shows the hips"
    )
    if ext.needs_knees and hips_seen:
        if EXTENTS[category].needs_knees:  # the category itself reaches below the knees
            fix += "; if the garment ends near the hips, choose category Blouse or Sweater"
        else:  # only the reach goes below the knees
            fix += f"; or a shorter reach than {reach} ('{REACH_CATEGORY}': the {category}'s own range)"
    body.require(what, groups, fix + "; or feed keypoints, or a mask of the region with refine_mode union.")
    u, d, a = body.unit, body.down, body.across
    hips = body.hips()
    legs = body.legs(hips)
    shapes: list[Shape] = []
    if ext.per_leg:
        for hip, knee, ankle in legs.values():
            end = _leg_point(hip, knee, ankle, ext.bottom)
            shapes += [
                Capsule(tuple(hip), tuple(knee), 0.30 * u, 0.27 * u),
                Capsule(tuple(knee), tuple(end), 0.27 * u, ext.bottom_width * u),
            ]
        band = [h - d * ext.top * u + s * a * ext.top_width * u for h in hips for s in (-1, 1)]
        band += [h + d * 0.35 * u + s * a * 0.2 * u for h in hips for s in (-1, 1)]
        shapes.append(Polygon(tuple(map(tuple, band))))
        return shapes
    pts = [h - d * ext.top * u + s * a * ext.top_width * u for h in hips for s in (-1, 1)]
    stops = [t for t in (1.0, ext.bottom) if t <= ext.bottom]
    for hip, knee, ankle in legs.values():
        for t in stops:
            width = ext.top_width + (ext.bottom_width - ext.top_width) * min(t / ext.bottom, 1.0)
            p = _leg_point(hip, knee, ankle, t)
            pts += [p - a * width * u, p + a * width * u]
    shapes.append(Polygon(tuple(map(tuple, pts))))
    return shapes


def torso_shape(body: Body, hips: tuple[np.ndarray, np.ndarray]) -> Polygon:
    u, n, d, a = body.unit, body.neck, body.down, body.across
    pts = [n - d * 0.15 * u - a * 0.15 * u, n - d * 0.15 * u + a * 0.15 * u]
    for side in ("right", "left"):
        s = body.p(f"{side}_shoulder")
        if s is not None:
            out = a if np.dot(s - n, a) >= 0 else -a
            pts.append(s - d * 0.08 * u + out * 0.12 * u)
    for h in hips:
        pts += [h + d * 0.1 * u - a * 0.22 * u, h + d * 0.1 * u + a * 0.22 * u]
    return Polygon(tuple(map(tuple, pts)))


def garment_shapes(body: Body, category: str, reach: str = REACH_CATEGORY) -> list[Shape]:
    """The whole garment: torso and arms for upper-body categories, plus the length region."""
    ext = EXTENTS[category]
    shapes: list[Shape] = []
    found_hips = body.in_photo("right_hip") or body.in_photo("left_hip")
    if ext.upper_body:
        shapes += arm_shapes(body)
        shapes.append(torso_shape(body, body.estimated_hips()))
    if found_hips or not ext.upper_body:
        long = reach_extent(category, reach).needs_knees
        if long and not (body.in_photo("right_knee") or body.in_photo("left_knee")) and ext.upper_body:
            reaching = f" (reach {reach} needs a knee)" if reach != REACH_CATEGORY else ""
            body.note(f"no knee in the photo: the {category} region stops at the hips{reaching}")
            shapes += length_shapes(body, "Blouse", "garment")
        else:
            shapes += length_shapes(body, category, "garment", reach=reach)
    else:
        body.note("no hips in the photo: the garment region follows the torso to the edge of the photo")
    return shapes


def _disc(centre: np.ndarray, radius: float) -> Capsule:
    return Capsule(tuple(centre), tuple(centre), radius, radius)


__all__ = [
    "ATTRIBUTES",
    "AUTO",
    "CATEGORIES",
    "EXTENTS",
    "LENGTH_ENDS",
    "REACH_CATEGORY",
    "RegionShapes",
    "longest_length",
    "normalize_reach",
    "reach_extent",
    "region_shapes",
]
