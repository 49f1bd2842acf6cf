"""A layout hint for sleeve-length edits: the asked sleeve painted onto the arms before the edit.

Why: a small model redraws a thin arm region to fit what surrounds it more than it follows the
changed word (bench/mini_edit_variants.py: the mini designer's own drafts draw the asked sleeve
length 60% of the time, and its edits reach 64%). The pose is known, so where the asked sleeve
ends is known too: arm level 0 at the shoulder, 1 at the elbow, 2 at the wrist, the levels the
synthetic data draws (``SLEEVE_END``), which are the usual ones (short: halfway to the elbow;
mid-length: halfway down the forearm). The hint paints each arm from the shoulder to that level
in the sleeve's colour and from there to the wrist in skin colour, both colours read from the
image itself; the edit then starts from the painted image (``run_edit(init=...)``) at a noise
level low enough for the layout to survive, and the model redraws the detail (folds, cuffs,
pattern, outline). On the mini designer that took the sleeve edit from 64% to 84% of 240 edits read
as asked on the designs its constants were chosen on, and from 54% to 83% and from 53% to 85% on two
data sets nothing was tuned on, against 98% for the painting alone (docs/editing.md).

Shapes are tapered capsules along shoulder -> elbow -> wrist in body units u (the torso length,
see :mod:`..masks.geometry`), with the synthetic croquis' arm widths.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Callable, Sequence

import cv2
import numpy as np
import torch

from ..masks.geometry import Body, MissingKeypointsError
from ..masks.sdf import Capsule, Grid, ramp, shapes_sdf
from ..synth.body import ARM_HW
from ..synth.details import SLEEVE_END
from ..taxonomy import normalize_value

log = logging.getLogger(__name__)

# A sleeve stands this far (u) off the arm on each side, the bare arm not at all. A painted sleeve
# half as wide again as the croquis' own (0.03), and a bare arm no wider than the arm, read apart
# after the autoencoder: outlined, with 0.03 and a bare arm 0.012 wider, 84% of 300 painted drafts
# read as asked through the mini designer's autoencoder; with these 91%, and 92% on 300 designs of
# another data seed (the constants were chosen on the first 300; bench/mini_paint_reading.py).
SLEEVE_MARGIN = 0.045
SKIN_MARGIN = 0.0
# The painted parts' edges, darkened to this share of their colour: the croquis outline every part,
# and a flat sleeve without its edge was read as the neighbouring length far more often (sleeve and
# bare arm outlined at 0.7, with the skin hue below: 87% -> 92% of the 300 paintings read as asked,
# 82% -> 84% through the autoencoder; with today's widths 0.6, 0.7 and 0.8 read alike). 1 draws none.
# Figures: bench/mini_paint_reading.py.
OUTLINE_SHADE = 0.7
# Skin: red > green > blue at a hue of 8-38 degrees (the croquis' six tones lie at 22-27) and not
# grey: with the looser rule before (red - green > 0.03), a purple dress blurred into a hand passed
# for skin and the bare arm came out grey.
SKIN_HUE, SKIN_SATURATION = (8.0, 38.0), 0.12
# Where a hinted sleeve edit starts (0-999): low enough that the painted layout survives, high enough
# that the model redraws it, and below t = 800, so the sleeve-length word is in the staged caption
# throughout. bench/mini_edit_variants.py --cases 300 --seeds 4 on the mini designer (240 edits a row):
# chosen on data seed 0, where today's painter reads 77% from t = 591, 80% from 501 and 421, 84% from
# 341, 83% from 261 and 85% from 181 (the highest start on that plateau), then measured once on two
# data seeds nothing was tuned on: 83% and 85% of 240 (every start noise 80% or more), against 75% and
# 78% from 501 and 54% and 53% unpainted. Lower, the model keeps more of the flat painting; from 341 it
# still redraws the painted sleeve rather than keeping the flat paint (docs/editing.md).
SLEEVE_HINT_START_T = 341
CLEAR_MARGIN = 0.09  # the band cleared around the arm before painting: past a puffed sleeve's edge (u)
CLEAR_RADIUS = 0.1  # how far around the band its fill looks (u)
HAND_OFFSET, HAND_RADIUS = 0.07, 0.04  # a disc over each hand, beyond the wrist, read for skin (u)
HAND_PAINT_RADIUS = 0.06  # the hand painted back after clearing (u)
FACE_RADIUS = 0.05  # a disc over the face around the nose (u)
SHIN_RADIUS = 0.05  # a disc halfway down each shin (u)
# The sleeve takes the bodice's colour: the most common colour of the torso down the middle, from
# below the collar to above the waist (u below the neck, and the strip's half-width), colours
# counted in COLOUR_BINS steps per channel. A disc at the chest, as before, read a white neckline
# or bib as the dress's colour (the README's demo painted a blue dress's long sleeve pale); the
# torso's colour alone took the first painter from 74% to 82% of 300 paintings read as asked
# through the autoencoder (bench/mini_paint_reading.py).
TORSO_FROM, TORSO_TO, TORSO_RADIUS = 0.3, 0.9, 0.15
COLOUR_BINS = 8
MIN_TORSO_PIXELS = 12  # torso pixels free of the arms and skin needed to read the bodice's colour there
FAR_OUTSIDE = 4  # image sizes from the centre beyond which an arm is too far out to paint
# Bodies larger than this (u, pixels) have the cleared band filled at this size and scaled back: the
# fill is smooth, and at full size a 1024 x 1024 close-up (u = 696 px) took 53 s. The mini designer's
# bodies (u of about 40 px) and the croquis at 512 x 768 (about 230) are below or near it.
FILL_UNIT = 128.0
NOT_SKIN = 0.1  # RGB distance (0-1 scale) from the skin colour below which a chest pixel is skin
IMAGE_SLACK = 1e-3  # images may stray this far outside [0, 1] (a decoder's rounding) and are clamped


def sleeve_end_level(value: str) -> float | None:
    """Arm level where a sleeve of this sleeve length ends (None: sleeveless)."""
    name = None
    if isinstance(value, str):
        try:
            name = normalize_value("sleeve_length", value)
        except ValueError:
            pass
    if name not in SLEEVE_END:
        raise ValueError(f"sleeve_length={value!r} is not a sleeve length; use one of {', '.join(SLEEVE_END)}")
    return SLEEVE_END[name]


def _arm_point(arm: tuple[np.ndarray, np.ndarray, np.ndarray], level: float) -> np.ndarray:
    s, e, w = arm
    return s + (e - s) * level if level <= 1 else e + (w - e) * (level - 1)


def _pieces(lo: float, hi: float) -> list[tuple[float, float]]:
    """Arm levels ``lo`` to ``hi`` split at the elbow: one straight piece per arm segment."""
    stops = [lo] + [k for k in (1.0,) if lo < k < hi] + [hi]
    return list(zip(stops, stops[1:], strict=False))


def _capsule(arm, u: float, a: float, b: float, margin: float) -> Capsule:
    """The arm from level ``a`` to ``b`` (one segment), half-width ARM_HW + ``margin`` (u)."""
    ra = (float(np.interp(a, (0, 1, 2), ARM_HW)) + margin) * u
    rb = (float(np.interp(b, (0, 1, 2), ARM_HW)) + margin) * u
    return Capsule(tuple(_arm_point(arm, a)), tuple(_arm_point(arm, b)), ra, rb)


def _arm_capsules(arm, u: float, lo: float, hi: float, margin: float) -> list[Capsule]:
    """Capsules covering the arm from level ``lo`` to ``hi``, half-width ARM_HW + ``margin`` (u)."""
    return [_capsule(arm, u, a, b, margin) for a, b in _pieces(lo, hi)]


def _sleeve_alpha(arms: list, u: float, end: float | None, size: tuple[int, int]) -> np.ndarray:
    """(H, W) in [0, 1]: the sleeves from the shoulders to arm level ``end`` (None: sleeveless, zeros).

    Each piece is cut square across its own segment at its far end (a capsule's round cap would run
    past it): a forearm folded back puts the upper arm beyond the forearm's line, and the upper arm's
    round cap at the elbow would lengthen an elbow-length sleeve; the forearm piece's round start
    fills the joint.
    """
    alpha = np.zeros(size, dtype=np.float32)
    for arm in arms if end is not None else ():
        for a, b in _pieces(0.0, end):
            piece = _coverage([_capsule(arm, u, a, b, SLEEVE_MARGIN)], size) * _before(arm, b, size)
            np.maximum(alpha, piece, out=alpha)
    return alpha


def _skin_colour(image: np.ndarray, body: Body, hands: list[Capsule], index: int) -> np.ndarray | None:
    """The median skin-coloured pixel at the hands beyond the wrists, the face and the shins (bare
    under most dresses and skirts); those places as they are when none of them is skin-coloured."""
    u, size = body.unit, image.shape[1:]
    shapes = list(hands)
    nose = body.p("nose")
    if nose is not None:
        shapes.append(_disc(nose, FACE_RADIUS * u))
    for side in ("right", "left"):
        knee, ankle = body.guess(f"{side}_knee"), body.guess(f"{side}_ankle")
        if knee is not None and ankle is not None:
            shapes.append(_disc((knee + ankle) / 2, SHIN_RADIUS * u))
    places = _coverage(shapes, size)
    skin = _median(image, places * _skin_like(image))
    if skin is None:
        log.info("image %d: no skin-coloured pixel at the hands, shins or face; using their median colour", index)
        skin = _median(image, places)
    return skin


def _bodice_colour(image: np.ndarray, body: Body, band: np.ndarray, skin: np.ndarray | None) -> np.ndarray | None:
    """The sleeve's colour: the bodice's (the upper arm is often covered by hair, or bare), the most
    common colour of the torso where no arm crosses it (``band``) and no skin shows; of the whole
    strip as it is for a bare or skin-coloured torso."""
    u, size = body.unit, image.shape[1:]
    top, bottom = (tuple(body.neck + body.down * k * u) for k in (TORSO_FROM, TORSO_TO))
    torso = _coverage([Capsule(top, bottom, TORSO_RADIUS * u, TORSO_RADIUS * u)], size)
    free = torso * (1.0 - band)
    if skin is not None:
        free = free * (np.linalg.norm(image - skin[:, None, None], axis=0) > NOT_SKIN)
    return _dominant(image, free if (free > 0.5).sum() >= MIN_TORSO_PIXELS else torso)


def _dominant(image: np.ndarray, where: np.ndarray) -> np.ndarray | None:
    """The most common colour (3,) of ``image`` (3, H, W) where ``where`` > 0.5: the median of the
    pixels in the fullest of COLOUR_BINS^3 colour bins (None when empty). A pattern gives its ground
    colour, a collar or a fold its own only when it covers more than the rest."""
    pixels = image[:, where > 0.5]  # (3, N)
    if pixels.shape[1] == 0:
        return None
    bins = np.clip((pixels * COLOUR_BINS).astype(np.int64), 0, COLOUR_BINS - 1)
    key = (bins[0] * COLOUR_BINS + bins[1]) * COLOUR_BINS + bins[2]
    return np.median(pixels[:, key == np.bincount(key).argmax()], axis=1)


def _arms(body: Body, index: int) -> list:
    """The arms the keypoints give, (shoulder, elbow, wrist) each; a missing shoulder is logged."""
    arms = []
    for side in ("right", "left"):
        arm = body.arm(side)
        if arm is None:
            log.warning("image %d: no %s shoulder in the keypoints; that arm is left as it is", index, side)
        else:
            arms.append(arm)
    if not arms:
        raise ValueError(
            f"keypoints: image {index} has neither shoulder (confidence below 0.3), so there is no arm to paint a "
            "sleeve on; use a pose that shows the shoulders, or edit without the hint"
        )
    if body.notes:
        log.info("image %d: %s", index, "; ".join(dict.fromkeys(body.notes)))
    return arms


def _outline(image: np.ndarray, parts: list[np.ndarray], shade: float) -> None:
    """Darken ``image`` (3, H, W) in place by ``shade`` along the inner edge of each painted part:
    the pixels of a part (``parts``: (H, W) coverages, later ones painted over earlier ones) with a
    4-neighbour outside it, as the croquis outline every part where it meets another."""
    ids = np.zeros(image.shape[1:], dtype=np.uint8)
    for j, alpha in enumerate(parts, 1):
        ids[alpha > 0.5] = j
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    line = np.zeros(ids.shape, dtype=bool)
    for j in range(1, len(parts) + 1):
        part = (ids == j).astype(np.uint8)
        # the image's border does not end a part: only a neighbour inside the image does
        line |= (part > 0) & (cv2.erode(part, cross, borderType=cv2.BORDER_REPLICATE) == 0)
    image[:, line] *= shade


def _disc(centre, radius: float) -> Capsule:
    return Capsule(tuple(centre), tuple(centre), radius, radius)


def _coverage(shapes: list, size: tuple[int, int]) -> np.ndarray:
    """(H, W) float32 in [0, 1]: the shapes with a one-pixel soft edge."""
    if not shapes:
        return np.zeros(size, dtype=np.float32)
    grid = Grid.for_size(size)
    return ramp(shapes_sdf(grid, shapes, reach=4.0), size, grow=-0.5, feather=1.0)


def _before(arm, level: float, size: tuple[int, int]) -> np.ndarray:
    """(H, W) in [0, 1]: 1 on the shoulder's side of the line across the arm at ``level``, a one-pixel ramp."""
    point = _arm_point(arm, level)
    s, e, w = arm
    along = (e - s) if level <= 1 else (w - e)
    along = along / max(float(np.linalg.norm(along)), 1e-6)
    ys, xs = np.mgrid[0 : size[0], 0 : size[1]].astype(np.float32)
    ahead = (xs - point[0]) * along[0] + (ys - point[1]) * along[1]
    return np.clip(0.5 - ahead, 0.0, 1.0)


def _fill_from_surroundings(image: np.ndarray, hole: np.ndarray, radius: float, scale: float = 1.0) -> None:
    """Fill ``image`` (3, H, W) in [0, 1] where ``hole`` (H, W) bool, in place, from the pixels around it
    (OpenCV's fast-marching inpainting, Telea 2004), on the hole's bounding box (plus the radius) and,
    with ``scale`` < 1, at that scale: the fill is a smooth colour, and its cost grows with the hole's
    area times the radius squared (a 1024 x 1024 close-up took 53 s at full scale)."""
    if not hole.any():
        return
    ys, xs = np.nonzero(hole)
    pad = int(np.ceil(radius)) + 2
    y0, y1 = max(int(ys.min()) - pad, 0), min(int(ys.max()) + pad + 1, hole.shape[0])
    x0, x1 = max(int(xs.min()) - pad, 0), min(int(xs.max()) + pad + 1, hole.shape[1])
    crop, gap = image[:, y0:y1, x0:x1], hole[y0:y1, x0:x1]
    pixels = np.ascontiguousarray((crop.transpose(1, 2, 0) * 255).round().clip(0, 255).astype(np.uint8))
    if scale < 1:
        size = (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale)))
        small = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
        # a small pixel the hole touches at all is hole: its colour holds some of the old arm
        small_gap = cv2.resize(gap.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
        filled = cv2.inpaint(small, small_gap.astype(np.uint8), max(1.0, radius * scale), cv2.INPAINT_TELEA)
        filled = cv2.resize(filled, (pixels.shape[1], pixels.shape[0]), interpolation=cv2.INTER_LINEAR)
    else:
        filled = cv2.inpaint(pixels, gap.astype(np.uint8), max(1.0, radius), cv2.INPAINT_TELEA)
    crop[:, gap] = filled.transpose(2, 0, 1)[:, gap].astype(np.float32) / 255


def _skin_like(image: np.ndarray) -> np.ndarray:
    """(H, W) 1 where a pixel of ``image`` (3, H, W) in [0, 1] could be skin: warm (red over green over
    blue), clearly more red than blue and of an orange hue (``SKIN_HUE``), which rules out the greys and
    whites of backgrounds, pinks and purples, and most fabrics."""
    r, g, b = image
    hue = 60 * (g - b) / np.maximum(r - b, 1e-6)  # degrees, where red is the largest channel
    saturation = (r - b) / np.maximum(r, 1e-6)
    return ((r > g) & (g > b) & (r - b > 0.1) & (hue > SKIN_HUE[0]) & (hue < SKIN_HUE[1])
            & (saturation > SKIN_SATURATION)).astype(np.float32)  # fmt: skip


def _median(image: np.ndarray, where: np.ndarray) -> np.ndarray | None:
    """Median colour (3,) of ``image`` (3, H, W) where ``where`` (H, W) > 0.5, or None when empty."""
    pick = where > 0.5
    if not pick.any():
        return None
    return np.median(image[:, pick], axis=1)


def paint_sleeves(
    images: torch.Tensor,
    keypoints: torch.Tensor,
    sleeve_length: Sequence[str],
    *,
    outline: float = OUTLINE_SHADE,
    require_painted: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Paint the asked sleeve length onto each image's arms.

    Args:
        images: (B, 3, H, W) in [0, 1].
        keypoints: (B, 18, 3) OpenPose-18 in pixels of the images.
        sleeve_length: one sleeve-length value per image (any spelling the taxonomy accepts).
        outline: the painted parts' edges are darkened to this share of their colour (0-1; 1: no
            outline), as an illustration's outline.
        require_painted: an image that cannot be painted (its arms outside it, or no skin or bodice
            colour to read) is an error instead of a warning (a node's user should not get the image
            back unpainted without knowing).
        progress: ``progress(done, total)`` after each image (a host's progress bar and Cancel).

    Returns:
        (B, 3, H, W) in [0, 1]: the images with the arms repainted; unchanged beyond a band of
        ``CLEAR_MARGIN`` u around them.

    Raises:
        ValueError: an image is not RGB floats in [0, 1], a value is not a sleeve length, the counts
            differ, ``outline`` is outside 0-1, a body cannot be measured, or an image's pose has
            neither shoulder. A missing shoulder leaves its arm as it is, and arms outside the image
            leave it unpainted (both logged as warnings; the second an error with ``require_painted``).
    """
    b, h, w = _check_images(images)
    try:
        keypoints = torch.as_tensor(keypoints, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(
            f"keypoints: expected a ({b}, 18, 3) tensor of OpenPose-18 points in pixels, "
            f"got {type(keypoints).__name__}"
        ) from None
    if tuple(keypoints.shape) != (b, 18, 3):
        raise ValueError(f"keypoints: expected ({b}, 18, 3) OpenPose-18 points, got {tuple(keypoints.shape)}")
    if isinstance(sleeve_length, (str, bytes)) or not isinstance(sleeve_length, Sequence):
        raise ValueError(
            f"sleeve_length={sleeve_length!r}: give a list with one sleeve length per image, e.g. ['Long Sleeve']"
        )
    if len(sleeve_length) != b:
        raise ValueError(f"sleeve_length: {len(sleeve_length)} values for {b} images; give one per image")
    if isinstance(outline, bool) or not isinstance(outline, numbers.Real) or not 0 <= outline <= 1:
        raise ValueError(
            f"outline={outline!r}: give a shade from 0 (black lines) to 1 (no outline); the default is {OUTLINE_SHADE}"
        )
    outline = float(outline)
    ends = [sleeve_end_level(v) for v in sleeve_length]
    out = images.detach().float().cpu().numpy().copy()
    for i in range(b):
        _check_values(out[i], i)
        unpainted = _paint_one(out[i], keypoints[i], ends[i], outline, i)
        if unpainted is not None:
            blamed, why, fix = unpainted
            if require_painted:
                raise ValueError(f"{blamed}: image {i}: {why}; nothing painted: {fix}")
            log.warning("image %d: %s; nothing painted: %s", i, why, fix)
        if progress is not None:
            progress(i + 1, b)
    return torch.from_numpy(out).to(images.device, images.dtype).clamp(0, 1)


def _paint_one(
    image: np.ndarray, keypoints: torch.Tensor, end: float | None, outline: float, i: int
) -> tuple[str, str, str] | None:
    """Paint image ``i`` (3, H, W) in place: its arms' sleeves to arm level ``end`` (None: sleeveless) from
    its keypoints (18, 3). None when painted; else (the input to blame, why it was not, the fix)."""
    h, w = image.shape[1:]
    try:
        body = Body.from_keypoints(keypoints, (h, w), image_index=i)
    except MissingKeypointsError:
        raise ValueError(
            f"keypoints: image {i} has no measurable body (it needs both shoulders, or the neck and a hip, "
            "at confidence 0.3 or more); use a pose that shows the upper body"
        ) from None
    u, arms = body.unit, _arms(body, i)
    check_pose = "check that the keypoints are in this image's pixels"
    far = FAR_OUTSIDE * max(h, w)  # keypoints scaled for another image land far out: nothing to paint
    if not u < far or not any(np.all(np.abs(np.stack(a) - (w / 2, h / 2)) < far) for a in arms):
        return "keypoints", f"the pose lies far outside this {w} x {h} image (body size {u:.3g} px)", check_pose
    hands = [_disc(wr + (wr - e) / max(float(np.linalg.norm(wr - e)), 1e-6) * HAND_OFFSET * u,
                   HAND_RADIUS * u) for _, e, wr in arms]  # fmt: skip
    skin = _skin_colour(image, body, hands, i)
    # the band cleared before painting: wider than any sleeve, so no edge of the old one is left
    band = _coverage([c for a in arms for c in _arm_capsules(a, u, 0.0, 2.0, CLEAR_MARGIN)], (h, w))
    cloth = _bodice_colour(image, body, band, skin)
    if not (band > 0.5).any():
        return "keypoints", f"the arms lie outside this {w} x {h} image (or cover no pixel)", check_pose
    if skin is None or cloth is None:
        # a tight crop: the colours are read from the image itself, and guessing one would paint a
        # sleeve or an arm of a colour the design does not have
        missing = (
            "no skin colour to read (the hands, face and shins are outside the image or not of a skin hue)"
            if skin is None
            else "no bodice colour to read (the torso between collar and waist is outside the image, or all "
            "arms and skin)"
        )
        return (
            "images",
            missing,
            (
                "give an image that shows a hand, the face or a shin and the torso (a full-body or three-quarter "
                "view), or edit this sleeve without SleeveHint"
            ),
        )
    # from the background or bodice around
    _fill_from_surroundings(image, band > 0.5, CLEAR_RADIUS * u, scale=min(1.0, FILL_UNIT / u))
    # the bare arm and the hands (the band cleared them too), then the sleeves over them
    bare = [c for a in arms for c in _arm_capsules(a, u, 0.0 if end is None else end, 2.0, SKIN_MARGIN)] + [
        _disc(hand.a, HAND_PAINT_RADIUS * u) for hand in hands
    ]
    parts = [_coverage(bare, (h, w)), _sleeve_alpha(arms, u, end, (h, w))]
    for alpha, colour in zip(parts, (skin, cloth), strict=True):
        image *= 1 - alpha[None]
        image += alpha[None] * colour[:, None, None]
    if outline < 1:
        _outline(image, parts, outline)
    log.debug("image %d: %d arm(s) painted, sleeve to level %s, skin %s, cloth %s", i, len(arms), end, skin, cloth)
    return None


def _check_images(images: object) -> tuple[int, int, int]:
    """(B, H, W) of ``images`` after checking it is a (B, 3, H, W) float tensor (values: :func:`_check_values`)."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        got = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        raise ValueError(f"images: expected a (B, 3, H, W) RGB tensor in [0, 1], got {got}")
    b, _, h, w = images.shape
    if h < 1 or w < 1:
        raise ValueError(f"images: {w} x {h} pixels; give images of at least one pixel")
    if not images.is_floating_point():
        raise ValueError(f"images: {images.dtype} values; give floats in [0, 1] (8-bit data divided by 255)")
    return b, h, w


def _check_values(image: np.ndarray, index: int) -> None:
    """Refuse image ``index`` (3, H, W) unless its values are finite and in [0, 1]. Checked image by image,
    as it is painted, so that a large batch reaches the host's Cancel check after its first image."""
    if not np.isfinite(image).all():
        raise ValueError(f"images: image {index} holds NaN or infinite values; give finite floats in [0, 1]")
    lo, hi = float(image.min()), float(image.max())
    if lo < -IMAGE_SLACK or hi > 1 + IMAGE_SLACK:
        raise ValueError(
            f"images: image {index} has values from {lo:.3g} to {hi:.3g}; give floats in [0, 1] (8-bit data divided "
            "by 255, [-1, 1] data mapped by (x + 1) / 2)"
        )
