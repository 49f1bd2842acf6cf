"""Render one design: ten caption fields + a pose + a look -> image, exact parse map.

Painter's order: shadow, hair behind, legs and shoes, torso skin, what the category garment is worn
with, the lower garment, the bodice, the collar, each arm with its sleeve, the head. The category
garment is painted in the look's colour and pattern; what it is worn with (trousers under a blouse,
a top over a skirt) in a neutral colour, so the category reads at a glance. Sleeves and collar
belong to whichever garment covers the upper body (a skirt's record describes the top it is shown
with); clothing length and hem belong to the category garment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .body import NECK_HW, WAIST_LEVEL, Body, chain_polygon, ellipse_polygon, perp, unit
from .canvas import Canvas
from .concepts import Look, check_fields, sample_look
from .details import SLEEVE_END, coat_front, collar_pieces, neckline, sleeve_pieces
from .garment import (
    ARMPIT_LEVEL,
    HEM_BAND,
    RUFFLE_DEPTH,
    TROUSER_FIT,
    WIDE_BAND,
    edge_points,
    length_level,
    pelvis_polygon,
    shifted,
    side_points,
    trouser_leg,
)
from .labels import drawn_as

LACE = (246, 243, 236)
FEATURES = (48, 34, 34)
LIPS = (186, 92, 92)


@dataclass(frozen=True)
class Sample:
    """One rendered design. ``image`` (H, W, 3) uint8, ``parse`` (H, W) uint8 label map, ``keypoints`` (18, 3)."""

    image: np.ndarray
    parse: np.ndarray
    keypoints: np.ndarray
    fields: dict
    look: Look


def _lighter(c) -> tuple[int, int, int]:
    return tuple(int(v + (255 - v) * 0.35) for v in c)


def shade(c, k: float) -> tuple[int, int, int]:
    return tuple(int(np.clip(v * k, 0, 255)) for v in c)


class _Painter:
    def __init__(self, fields: Mapping[str, str], kp: np.ndarray, look: Look, size: tuple[int, int], ss: int):
        self.f = fields
        self.look = look
        self.ss = ss
        self.canvas = Canvas(size[0] * ss, size[1] * ss, look.background)
        draw_kp = kp.astype(float).copy()
        vis = draw_kp[:, 2] > 0
        draw_kp[vis, :2] = draw_kp[vis, :2] * ss + (ss - 1) / 2  # output pixel centres -> canvas pixels
        self.body = Body(draw_kp)
        self.cat = fields["category"]
        self.lam = length_level(self.cat, fields["clothing_length"])
        self.hem = drawn_as("hem", fields["hem"])
        self.collar = drawn_as("collar", fields["collar"])
        self.sleeve_type = drawn_as("sleeve_type", fields["sleeve_type"])
        self.sleeve_end = SLEEVE_END[fields["sleeve_length"]]
        self.coat_tail: int | None = None  # part id of a coat's skirt, for its centre-front line

    # -- helpers -----------------------------------------------------------------------------------
    def new(self, label: str, colour, pattern: bool = False, outline: bool = True) -> int:
        return self.canvas.part(label, colour, pattern=pattern and self.look.pattern != "plain", outline=outline)

    def garment_part(self, label: str, category_owned: bool) -> int:
        if category_owned:
            return self.new(label, self.look.garment, pattern=True)
        return self.new(label, self.look.companion)

    def line_w(self, k: float) -> float:
        return max(1.0, self.body.w(k))

    # -- hem -----------------------------------------------------------------------------------------
    def garment_edge(self, a, b, down, style: str | None, slit_flip: bool = False) -> list[np.ndarray]:
        """The garment polygon's bottom edge from ``a`` to ``b`` for hem ``style`` (None: plain flat)."""
        u = self.body.u
        if style is None:
            return [a, b]
        if style == "Ruffle":  # the flounce hangs from higher up and ends at the length
            return shifted([a, b], down, RUFFLE_DEPTH * u * 0.55)
        if style == "Slit" and slit_flip:
            return edge_points(b, a, down, style, u)[::-1]
        return edge_points(a, b, down, style, u, np.asarray(self.look.raw_phase))

    def draw_hem(self, a, b, down, style: str, garment: int, region: str, slit_flip: bool = False) -> None:
        """Hem pieces along the garment's bottom edge a -> b (label ``hem``)."""
        u, w, look = self.body.u, self.body.w, self.look
        out_a, out_b = unit(a - b), unit(b - a)
        if style == "Ruffle":
            top = shifted([a, b], down, RUFFLE_DEPTH * u)
            bottom = edge_points(a + out_a * w(0.05), b + out_b * w(0.05), down, "Ruffle", u)
            self.canvas.polygon([top[0]] + bottom + [top[1]], self.new("hem", look.garment, pattern=True))
            return
        if style == "Layered":
            th = w(0.15)
            lower = [a, b] + shifted([a, b], down, th)[::-1]
            self.canvas.polygon(lower, self.new("hem", shade(look.garment, 0.88), pattern=True), clip=[garment])
            t2, t1 = shifted([a, b], down, 2.2 * th), shifted([a, b], down, th)
            upper = [t2[0], t2[1], t1[1] + out_b * w(0.045), t1[0] + out_a * w(0.045)]
            self.canvas.polygon(upper, self.new(region, look.garment, pattern=True))
            return
        edge = self.garment_edge(a, b, down, style, slit_flip)
        hb = WIDE_BAND.get(style, HEM_BAND) * u
        colour = {"Raw": _lighter(look.garment), "Curled": shade(look.garment, 0.7), "Lace": LACE}.get(
            style, look.trim
        )
        hem = self.new("hem", colour)
        self.canvas.polygon(edge + shifted(edge, down, hb)[::-1], hem, clip=[garment])
        if style == "Striped":
            mid = shifted([a, b], down, hb * 0.5)
            stripe = LACE if sum(colour) < 450 else shade(colour, 0.45)
            self.canvas.line(mid, hb * 0.34, self.new("hem", stripe, outline=False), clip=[hem])
        elif style == "Pleated":
            fold_g, fold_h = self.new(region, shade(look.garment, 0.62)), self.new("hem", shade(colour, 0.62))
            for p in edge[1:-1:2]:
                fold = [p, p - unit(down) * w(0.42)]
                self.canvas.line(fold, self.line_w(0.012), fold_g, clip=[garment])
                self.canvas.line(fold, self.line_w(0.012), fold_h, clip=[hem])
        elif style == "Lace":
            holes = self.new("hem", shade(LACE, 0.78), outline=False)
            n = max(3, int(np.hypot(*(b - a)) / w(0.06)))
            for t in np.linspace(0.05, 0.95, n):
                c = a + (b - a) * t - unit(down) * (hb * 0.55)
                self.canvas.polygon(ellipse_polygon(c, w(0.011), w(0.011), n=6), holes, clip=[hem])
        elif style == "Ankle-tied":  # a bow at the outer corner, sticking out sideways (never below the length)
            tie = self.new("hem", shade(look.trim, 0.8))
            up = -unit(down)
            knot = a + up * (hb * 0.5)
            for lift in (0.07, -0.02):
                tip = knot + out_a * w(0.11) + up * w(lift)
                self.canvas.polygon([knot, tip, tip - out_a * w(0.03) + up * w(0.025)], tie)

    # -- garments ------------------------------------------------------------------------------------
    def skirt(self, lam: float, silhouette: str, part: int, hem: str | None, region: str = "skirt") -> None:
        body = self.body
        right = side_points(body, -1, WAIST_LEVEL, lam, silhouette)
        left = side_points(body, 1, WAIST_LEVEL, lam, silhouette)
        a, b = right[-1], left[-1]
        if hem == "Ankle-tied":  # gathered into a bubble
            a, b = a + body.lat * body.w(0.08), b - body.lat * body.w(0.08)
        down = np.array([0.0, 1.0])
        edge = self.garment_edge(a, b, down, hem)
        self.canvas.polygon(right[:-1] + edge + left[:-1][::-1], part)
        if hem:
            self.draw_hem(a, b, down, hem, part, region)

    def trousers(self, lam: float, fit: str, category_owned: bool, hem: str | None) -> None:
        body = self.body
        parts = {s: self.garment_part("trousers", category_owned) for s in (-1, 1)}
        self.canvas.polygon(pelvis_polygon(body), parts[-1])
        for side in (-1, 1):
            outer, oc, ic, d, inner_up = trouser_leg(body, side, lam - 1.0, fit, gathered=hem == "Ankle-tied")
            edge = self.garment_edge(oc, ic, d, hem, slit_flip=True)
            self.canvas.polygon(outer + edge + inner_up, parts[side])
            if hem:
                self.draw_hem(oc, ic, d, hem, parts[side], "trousers", slit_flip=True)

    def bodice(self, lam: float, silhouette: str, part: int, hem: str | None) -> None:
        body = self.body
        sleeveless = self.sleeve_end is None
        top = (
            [self._shoulder_point(-1, sleeveless)]
            + neckline(body, self.collar)
            + [self._shoulder_point(1, sleeveless)]
        )
        right = side_points(body, -1, ARMPIT_LEVEL, lam, silhouette)
        left = side_points(body, 1, ARMPIT_LEVEL, lam, silhouette)
        if sleeveless:  # cut the armhole in
            right[0] = right[0] + body.lat * body.w(0.035)
            left[0] = left[0] - body.lat * body.w(0.035)
        a, b = left[-1], right[-1]
        down = body.down if lam < 1.0 else np.array([0.0, 1.0])
        edge = self.garment_edge(a, b, down, hem)
        self.canvas.polygon(top + left[:-1] + edge + right[:-1][::-1], part)
        if hem:
            self.draw_hem(a, b, down, hem, part, "bodice")

    def _shoulder_point(self, side: int, sleeveless: bool) -> np.ndarray:
        if sleeveless:
            return self.body.local(side * 0.235, 0.02)
        return self.body.shoulder_outer(side)

    # -- the figure ----------------------------------------------------------------------------------
    def paint(self) -> None:
        body, look, cat = self.body, self.look, self.cat
        skin = look.skin
        # 1. floor shadow, hair behind the body
        feet = (body.ankle[-1] + body.ankle[1]) / 2 + np.array([0.0, body.w(0.16)])
        self.canvas.polygon(
            ellipse_polygon(feet, body.w(0.45), body.w(0.05)),
            self.new("background", shade(look.background, 0.9), outline=False),
        )
        self.hair(behind=True)
        # 2. legs, shoes, torso skin, neck
        for side in (-1, 1):
            self.canvas.polygon(
                chain_polygon(body.leg_path(side), 0, 2, lambda t: body.leg_hw(t)), self.new("skin", skin)
            )
        for side in (-1, 1):
            c, d = body.leg_at(side, 2.0)
            shoe = ellipse_polygon(
                c + d * body.w(0.07) + body.lat * side * body.w(0.01), body.w(0.06), body.w(0.09), d
            )
            self.canvas.polygon(shoe, self.new("shoes", look.shoes))
        torso_skin = self.new("skin", skin)
        self.canvas.polygon(body.torso_polygon(), torso_skin)
        a = body.head_axis()
        hl = perp(a)
        chin = body.face_centre() - a * body.w(0.12)
        nw = body.w(NECK_HW)
        self.canvas.polygon(
            [body.local(-NECK_HW, 0.06), chin - hl * nw, chin + hl * nw, body.local(NECK_HW, 0.06)], torso_skin
        )
        # 3. what the category garment is worn with, then the lower garment
        if cat in ("Blouse", "Sweater", "Coat"):
            if look.companion_lower == "skirt" and cat != "Coat":
                self.skirt(2.05, "a-line", self.garment_part("skirt", False), None)
            else:
                self.trousers(2.97, "skinny" if cat == "Coat" else "straight", False, None)
        if cat in ("Dress", "Skirt", "Coat"):
            tail = self.garment_part("skirt", True)
            self.skirt(self.lam, look.silhouette, tail, self.hem)
            self.coat_tail = tail if cat == "Coat" else None
        elif cat in ("Pant", "Jumpsuit"):
            self.trousers(self.lam, TROUSER_FIT[look.silhouette], True, self.hem)
        # 4. bodice (a coat shows what is under it inside the neckline)
        if cat == "Coat":
            inner = [
                body.local(-0.15, -0.01),
                body.local(0.15, -0.01),
                body.local(0.15, 0.62),
                body.local(-0.15, 0.62),
            ]
            self.canvas.polygon(inner, self.garment_part("bodice", False))
        top_owned = cat not in ("Pant", "Skirt")
        bodice = self.garment_part("bodice", top_owned)
        top_sil = "fitted" if look.silhouette == "fitted" else "straight"
        if cat in ("Blouse", "Sweater"):
            self.bodice(self.lam, top_sil, bodice, self.hem)
        elif top_owned:
            self.bodice(WAIST_LEVEL, top_sil, bodice, None)
        else:
            self.bodice(0.7, top_sil, bodice, None)
        if cat == "Coat":
            self.coat_details(bodice)
        # 5. collar
        owner = look.garment if top_owned else look.companion
        trim = look.trim if top_owned else shade(look.companion, 0.78)
        self.collar_pieces(bodice, trim, owner)
        # 6. arms and sleeves, one side at a time (a crossing arm covers the other)
        for side in (-1, 1):
            self.arm(side)
            if self.sleeve_end is not None:
                self.sleeve(side, top_owned)
        # 7. head
        self.head()

    def coat_details(self, bodice: int) -> None:
        line, buttons = coat_front(self.body, self.collar, self.lam)
        dark = shade(self.look.garment, 0.6)
        self.canvas.line(line, self.line_w(0.012), self.new("bodice", dark), clip=[bodice])
        if self.coat_tail is not None:
            self.canvas.line(line, self.line_w(0.012), self.new("skirt", dark), clip=[self.coat_tail])
        knob = self.new("bodice", shade(self.look.trim, 0.8))
        for c in buttons:
            self.canvas.polygon(ellipse_polygon(c + self.body.lat * self.body.w(0.035), self.body.w(0.02),
                                                self.body.w(0.02), n=8), knob, clip=[bodice])  # fmt: skip

    def collar_pieces(self, bodice: int, trim, owner) -> None:
        collar_parts: list[int] = []
        for piece in collar_pieces(self.body, self.collar):
            if piece.role == "collar_fold":
                fold = self.new("collar", shade(trim, 0.7))
                self.canvas.line(piece.points, self.line_w(0.012), fold, clip=collar_parts)
                continue
            colour = shade(owner, 0.86) if self.collar == "Lapel" and len(collar_parts) else trim
            pid = self.new("collar", colour)
            collar_parts.append(pid)
            self.canvas.polygon(piece.points, pid, clip=[bodice] if piece.clip else None)

    def arm(self, side: int) -> None:
        body = self.body
        part = self.new("skin", self.look.skin)
        _, d0 = body.arm_at(side, 0.0)
        self.canvas.polygon(ellipse_polygon(body.shoulder[side], body.arm_hw(0), body.arm_hw(0) * 0.6, d0, 12), part)
        self.canvas.polygon(
            chain_polygon(body.arm_path(side), 0, 2, body.arm_hw, lambda m: body.arm_normal(side, m)), part
        )
        c, d = body.arm_at(side, 2.0)
        self.canvas.polygon(ellipse_polygon(c + d * body.w(0.07), body.w(0.045), body.w(0.085), d, 12), part)

    def sleeve(self, side: int, owned: bool) -> None:
        look = self.look
        if not owned:
            main, cuff = look.companion, shade(look.companion, 0.78)
            patterned = False
        elif self.sleeve_type == "Raglan":
            main, cuff, patterned = (look.pattern_colour if look.pattern == "plain" else look.trim), look.trim, False
        else:
            main, cuff, patterned = look.garment, look.trim, True
        sleeve = self.new("sleeves", main, pattern=patterned)
        for piece in sleeve_pieces(self.body, side, self.sleeve_end, self.sleeve_type):
            if piece.role == "sleeve":
                pid = sleeve
            elif piece.role == "cuff":
                pid = self.new("sleeves", cuff)
            elif piece.role == "tier":  # the lower tier a shade darker, as a second layer would be
                pid = self.new("sleeves", shade(main, 0.82), pattern=patterned)
            else:  # flounce: same fabric, outlined apart
                pid = self.new("sleeves", main, pattern=patterned)
            self.canvas.polygon(piece.points, pid)

    def hair(self, behind: bool) -> None:
        body, look = self.body, self.look
        a = body.head_axis()
        hl = perp(a)
        f = body.face_centre()
        w = body.w
        if behind:
            style = look.hair_style
            part = self.new("hair", look.hair)
            if style == "long":
                back = [f + a * w(0.1) - hl * w(0.17), f + a * w(0.1) + hl * w(0.17), body.local(0.2, 0.42),
                        body.local(0.0, 0.47), body.local(-0.2, 0.42)]  # fmt: skip
                self.canvas.polygon(back, part)
            elif style == "bob":
                self.canvas.polygon(ellipse_polygon(f - a * w(0.03), w(0.18), w(0.2), a), part)
            elif style == "ponytail":
                self.canvas.polygon(ellipse_polygon(f + hl * w(0.16) - a * w(0.05), w(0.055), w(0.16), a), part)
            elif style == "bun":
                self.canvas.polygon(ellipse_polygon(f + a * w(0.22), w(0.085), w(0.075), a, 12), part)
            return
        self.canvas.polygon(ellipse_polygon(f + a * w(0.035), w(0.15), w(0.185), a), self.new("hair", look.hair))

    def head(self) -> None:
        body, look = self.body, self.look
        a = body.head_axis()
        f = body.face_centre()
        w = body.w
        self.hair(behind=False)
        self.canvas.polygon(ellipse_polygon(f - a * w(0.01), w(0.125), w(0.165), a), self.new("face", look.skin))
        eyes = self.new("face", FEATURES, outline=False)
        for e in body.eye.values():
            if e is not None:
                self.canvas.polygon(ellipse_polygon(e, w(0.02), w(0.026), a, 8), eyes)
        mouth = body.nose - a * w(0.075)
        self.canvas.polygon(ellipse_polygon(mouth, w(0.035), w(0.014), a, 8), self.new("face", LIPS, outline=False))

    # -- colours -------------------------------------------------------------------------------------
    def pattern_mask(self) -> np.ndarray | None:
        look = self.look
        if look.pattern == "plain":
            return None
        h, w = self.canvas.size[1], self.canvas.size[0]
        p = max(3.0, look.pattern_period * self.body.u)
        yy, xx = np.ogrid[:h, :w]
        x = xx - self.body.neck[0]
        y = yy - self.body.neck[1]
        if look.pattern == "stripes":
            return np.broadcast_to(((x if look.pattern_vertical else y) % p) < 0.36 * p, (h, w))
        if look.pattern == "checks":
            return ((x // p + y // p) % 2) == 1
        row = np.floor(y / p)
        dx = (x + (row % 2) * p / 2) % p - p / 2
        dy = y % p - p / 2
        return dx * dx + dy * dy < (0.22 * p) ** 2


def render(
    fields: Mapping[str, str],
    keypoints: np.ndarray,
    look: Look | None = None,
    size: tuple[int, int] = (128, 192),
    supersample: int = 2,
    seed: int = 0,
) -> Sample:
    """Draw one design.

    Args:
        fields: all ten caption fields, canonical labels (``taxonomy`` field keys).
        keypoints: (18, 3) OpenPose-18 keypoints (x, y, confidence) in output image pixels
            (:func:`.pose_bank.keypoints_from_openpose` reads the JSON layout).
        look: colours, pattern, silhouette and hair; None draws one from the concepts with ``seed``
            (see :func:`.concepts.sample_look`).
        size: (width, height) of the output image.
        supersample: the canvas is this many times larger, for smooth edges (1 = aliased, fastest).

    Returns:
        :class:`Sample` with the image (H, W, 3) uint8 and the parse map (H, W) uint8 whose values
        index :data:`.labels.PARSE_LABELS`.
    """
    fields = check_fields(fields)
    kp = np.asarray(keypoints, dtype=float)
    if kp.shape != (18, 3):
        raise ValueError(f"keypoints has shape {kp.shape}; give (18, 3) OpenPose-18 points (x, y, confidence)")
    if supersample not in (1, 2, 3, 4):
        raise ValueError(f"supersample={supersample}: use 1, 2, 3 or 4")
    w, h = (int(v) for v in size)
    if not (16 <= w <= 4096 and 16 <= h <= 4096):
        raise ValueError(f"size={size}: give (width, height), each 16..4096 pixels")
    if look is None:
        look = sample_look(fields, np.random.default_rng(seed))
    painter = _Painter(fields, kp, look, (w, h), supersample)
    painter.paint()
    image, parse = painter.canvas.render(supersample, painter.pattern_mask(), look.pattern_colour)
    return Sample(image, parse, kp, dict(fields), look)
