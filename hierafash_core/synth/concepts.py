"""What the concept fields do: distributions over colour, pattern, silhouette and attributes.

Concepts set *distributions*, attributes set *shapes*. A record's concepts are drawn first; they
pick a palette family (style, moved by occasion and effect), a pattern and a silhouette (feeling,
style) and bias which attribute values are likely (every concept may multiply the weight of
some values). Then the look (skin, hair, background) is drawn independently of the caption.
All draws come from the record's own generator, so a record is reproducible from its seed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..taxonomy import ATTRIBUTE_FIELDS, CONCEPT_FIELDS, FIELD_KEYS, get_field
from .labels import distinct_values

# fmt: off
PALETTES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "pastel": ((244, 190, 196), (190, 214, 238), (214, 196, 234), (194, 232, 208), (248, 232, 180), (250, 206, 222)),
    "neutral": ((38, 42, 52), (96, 96, 102), (204, 196, 182), (236, 230, 218), (118, 90, 72), (34, 46, 84)),
    "dark": ((26, 26, 30), (72, 22, 30), (34, 36, 64), (50, 62, 42), (64, 64, 70)),
    "jewel": ((128, 20, 44), (22, 62, 118), (18, 96, 74), (92, 32, 116), (176, 134, 38)),
    "earth": ((152, 102, 60), (118, 128, 78), (186, 146, 102), (164, 82, 50), (104, 82, 60)),
    "bright": ((226, 56, 48), (248, 196, 36), (40, 118, 222), (36, 176, 108), (242, 122, 30), (228, 66, 150)),
    "soft": ((232, 216, 200), (212, 202, 222), (200, 216, 210), (240, 224, 224)),
    "white": ((248, 246, 240), (240, 236, 224), (246, 240, 246)),
    "red": ((204, 24, 40), (22, 22, 24), (156, 8, 44)),
    "green": ((52, 98, 48), (96, 124, 58), (30, 70, 50), (140, 150, 80)),
}
NEUTRALS = ((244, 244, 240), (30, 30, 34), (120, 120, 126), (210, 200, 184), (40, 52, 88))

STYLE_PALETTE: dict[str, dict[str, float]] = {
    **{s: {"pastel": 4, "soft": 1, "white": 1} for s in ("Sweet", "Korean Style", "Fresh", "Japanese Style",
                                                         "Campus Style")},
    **{s: {"neutral": 5, "dark": 1} for s in ("Simple Style", "Commute", "Office", "Office Lady",
                                              "Business Gentleman", "Workwear")},
    **{s: {"dark": 5, "red": 1} for s in ("Punk", "Rock", "Hip-hop", "Street Style")},
    **{s: {"jewel": 5, "white": 1} for s in ("Elegant", "Noble", "Courtly Style", "Chinese Style")},
    **{s: {"earth": 5, "green": 1} for s in ("Rural Style", "Western Style", "British Style", "Artsy", "Vintage")},
    **{s: {"bright": 5, "pastel": 1} for s in ("Youth/Pop", "Trendy", "Sport", "Casual", "Original Design")},
    "Homewear": {"soft": 5, "pastel": 1},
    "Sexy": {"red": 5, "dark": 1},
}
OCCASION_PALETTE = {"Wedding": {"white": 8}, "Office": {"neutral": 3}, "Business": {"neutral": 3},
                    "Party": {"jewel": 2, "red": 2}, "Sport": {"bright": 3}, "Home": {"soft": 3},
                    "Date": {"pastel": 2, "red": 1}, "Travel": {"earth": 2, "bright": 1}, "Campus": {"pastel": 2}}
EFFECT_PALETTE = {"Brighten Skin": {"white": 2, "pastel": 2, "bright": 1}, "Slimming": {"dark": 2}}
FEELING_PALETTE = {"Hazy Sensation": {"pastel": 3, "soft": 2}, "Jungle Feeling": {"green": 6},
                   "Heavy Industry Feeling": {"dark": 3, "neutral": 2},
                   "Dullness Sensation": {"neutral": 2, "dark": 2},
                   "Mature Feeling": {"dark": 1, "jewel": 1}, "Childlike Feeling": {"bright": 2, "pastel": 2}}

PATTERNS = ("plain", "stripes", "dots", "checks")
PATTERN_BIAS: dict[str, dict[str, float]] = {
    "Line Feeling": {"stripes": 6}, "Playful Feeling": {"dots": 4}, "Sense of Fun": {"dots": 3, "checks": 2},
    "Childlike Feeling": {"dots": 4}, "Jungle Feeling": {"dots": 2}, "British Style": {"checks": 6},
    "Campus Style": {"checks": 3}, "Vintage": {"dots": 2, "checks": 2}, "Rural Style": {"checks": 3},
    "Sport": {"stripes": 3}, "Simple Style": {"plain": 3}, "Office": {"plain": 2, "stripes": 1},
    "Business Gentleman": {"plain": 3}, "Sense of Restraint": {"plain": 3}, "Punk": {"checks": 3},
}
SILHOUETTES = ("fitted", "a-line", "straight", "full")
SILHOUETTE_BIAS: dict[str, dict[str, float]] = {
    "Sense of Curve": {"fitted": 6}, "Highlight Hips": {"fitted": 5}, "Slimming": {"fitted": 3},
    "Sense of Restraint": {"fitted": 3}, "Crisp Feeling": {"fitted": 2, "straight": 2},
    "Sense of Agility and Elegance": {"a-line": 4}, "Youthful Feeling": {"a-line": 3},
    "Drape Feeling": {"straight": 3, "full": 2}, "Casual and Relaxed Feeling": {"straight": 4},
    "Bulky Feeling": {"full": 4, "straight": 2}, "Three-dimensional Layering": {"full": 4},
    "Sense of Atmosphere": {"full": 3}, "Courtly Style": {"full": 4}, "Sweet": {"a-line": 3, "full": 2},
    "Homewear": {"straight": 4}, "Office Lady": {"fitted": 3}, "Wedding": {"full": 4}, "Sport": {"straight": 2},
}

# (concept value) -> {attribute field: {value: weight multiplier}}.
ATTRIBUTE_BIAS: dict[str, dict[str, dict[str, float]]] = {
    # categories
    "Coat": {"sleeve_length": {"Long Sleeve": 6, "Sleeveless": 0.05}, "collar": {"Lapel": 6, "Stand": 2}},
    "Sweater": {"sleeve_length": {"Long Sleeve": 4, "Sleeveless": 0.2}, "collar": {"T-neck": 4, "Round": 2},
                "hem": {"Curled": 2, "Flat": 2}},
    "Blouse": {"sleeve_type": {"Shirt": 3, "Puffed": 2}, "collar": {"Lapel": 2}},
    "Skirt": {"hem": {"Pleated": 2}},
    "Pant": {"hem": {"Curled": 2, "Ankle-tied": 2, "Flat": 2}, "clothing_length": {"Long": 2}},
    "Jumpsuit": {"clothing_length": {"Long": 2}},
    # styles
    "Sweet": {"sleeve_type": {"Puffed": 4, "Ruffle": 3}, "hem": {"Ruffle": 3, "Lace": 2}, "collar": {"Square": 2}},
    "Punk": {"hem": {"Raw": 5, "Irregular": 2}}, "Rock": {"hem": {"Raw": 4}, "collar": {"Irregular": 2}},
    "Chinese Style": {"collar": {"Stand": 6}, "hem": {"Slit": 5}}, "Japanese Style": {"sleeve_type": {"Kimono": 5}},
    "Courtly Style": {"sleeve_type": {"Puffed": 3, "Lantern": 3}, "collar": {"Square": 3},
                      "clothing_length": {"Long": 3}},
    "Vintage": {"collar": {"Square": 2}, "sleeve_type": {"Lantern": 2}, "hem": {"Pleated": 2}},
    "British Style": {"collar": {"Lapel": 3}}, "Campus Style": {"hem": {"Pleated": 4}, "collar": {"Round": 2}},
    "Sport": {"sleeve_type": {"Raglan": 5}, "collar": {"Round": 3}, "hem": {"Striped": 3},  # style and occasion
              "sleeve_length": {"Sleeveless": 2, "Short Sleeve": 3}, "clothing_length": {"Short": 3}},
    "Office Lady": {"collar": {"V-Neck": 2, "Lapel": 2}, "clothing_length": {"Knee-length": 3}},
    "Business Gentleman": {"collar": {"Lapel": 4}, "sleeve_type": {"Shirt": 3}},
    "Hip-hop": {"sleeve_type": {"Dolman": 3}}, "Sexy": {"hem": {"Slit": 3}, "collar": {"V-Neck": 3}},
    "Artsy": {"sleeve_type": {"Lantern": 2}, "hem": {"Irregular": 2}},
    # occasions
    "Wedding": {"clothing_length": {"Long": 5}, "sleeve_type": {"Puffed": 2, "Flare": 2},
                "hem": {"Ruffle": 2, "Layered": 3, "Lace": 3}},
    "Office": {"collar": {"Lapel": 3}, "sleeve_type": {"Shirt": 3}, "clothing_length": {"Knee-length": 2},
               "hem": {"Flat": 3}},
    "Business": {"collar": {"Lapel": 4}, "sleeve_length": {"Long Sleeve": 3}, "hem": {"Flat": 3}},
    "Party": {"sleeve_length": {"Sleeveless": 3}, "hem": {"Slit": 2, "Irregular": 2}, "collar": {"Boat Neck": 2}},
    "Home": {"collar": {"Round": 2, "U-Neck": 2}, "sleeve_type": {"Dolman": 2}},
    "Campus": {"clothing_length": {"Short": 2, "Knee-length": 2}}, "Date": {"collar": {"Square": 2, "V-Neck": 2}},
    # effects
    "Elongate Neck": {"collar": {"V-Neck": 4, "U-Neck": 3, "T-neck": 0.2, "Stand": 0.3}},
    "Face Slimming": {"collar": {"V-Neck": 4, "U-Neck": 2}}, "Enhance Bust": {"collar": {"Square": 3, "V-Neck": 2}},
    "Tall": {"clothing_length": {"Long": 3, "Ultra-short": 2}},
    "Slimming": {"clothing_length": {"Long": 2, "Mid-length": 2}},
    "Youthful": {"clothing_length": {"Short": 3, "Ultra-short": 2}, "sleeve_type": {"Puffed": 2}},
    "Muscular Look": {"sleeve_length": {"Sleeveless": 4, "Short Sleeve": 2}},
    "Highlight Hips": {"clothing_length": {"Short": 2, "Knee-length": 2}},
    # feelings
    "Three-dimensional Layering": {"hem": {"Layered": 4}, "sleeve_type": {"Layered": 4}},
    "Stacking Feeling": {"hem": {"Layered": 4}, "sleeve_type": {"Layered": 3}},
    "Playful Feeling": {"hem": {"Ruffle": 3}, "sleeve_type": {"Puffed": 2}}, "Sense of Fun": {"hem": {"Wavy": 3}},
    "Drape Feeling": {"collar": {"Swinging": 5}, "hem": {"Wavy": 3}, "clothing_length": {"Long": 2}},
    "Sense of Agility and Elegance": {"sleeve_type": {"Flare": 3}, "hem": {"Wavy": 2}},
    "Bulky Feeling": {"sleeve_type": {"Dolman": 3, "Kimono": 2}},
    "Crisp Feeling": {"hem": {"Flat": 3}, "collar": {"Lapel": 2}},
    "Casual and Relaxed Feeling": {"sleeve_type": {"Dolman": 2, "Raglan": 2}, "hem": {"Curved": 3}},
    "Hazy Sensation": {"sleeve_type": {"Flare": 2}}, "Line Feeling": {"hem": {"Slit": 2}},
    "Sense of Curve": {"collar": {"V-Neck": 2}},
    "Childlike Feeling": {"collar": {"Round": 3}, "sleeve_type": {"Puffed": 3}},
}
CATEGORY_WEIGHTS = {"Dress": 3.0, "Blouse": 2.0, "Sweater": 1.2, "Coat": 1.2, "Jumpsuit": 1.0, "Pant": 2.0,
                    "Skirt": 2.0}
# fmt: on
HAIR_STYLES = ("long", "bob", "bun", "short", "ponytail")
SKIN_TONES = ((250, 220, 196), (240, 200, 170), (224, 178, 140), (198, 146, 104), (150, 100, 68), (108, 70, 48))
HAIR_COLOURS = ((30, 24, 22), (64, 42, 30), (110, 72, 40), (176, 130, 70), (220, 190, 130), (140, 40, 30))
BACKGROUNDS = ((244, 242, 238), (236, 238, 242), (242, 236, 230), (232, 240, 236), (246, 240, 244))


@dataclass(frozen=True)
class Look:
    """Everything drawn that the caption does not name (colours, pattern, silhouette, hair)."""

    garment: tuple[int, int, int]
    pattern_colour: tuple[int, int, int]
    trim: tuple[int, int, int]
    companion: tuple[int, int, int]
    shoes: tuple[int, int, int]
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    background: tuple[int, int, int]
    palette: str = "neutral"
    pattern: str = "plain"
    pattern_period: float = 0.12  # in torso lengths
    pattern_vertical: bool = False
    silhouette: str = "a-line"
    hair_style: str = "long"
    companion_lower: str = "trousers"  # what a blouse, sweater or coat is worn over: trousers or skirt
    raw_phase: tuple[float, ...] = ()


def _pick(rng: np.random.Generator, weights: Mapping[str, float]) -> str:
    keys = list(weights)
    w = np.array([weights[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=w / w.sum()))]


def _biased(base: Mapping[str, float], biases: list[Mapping[str, float]]) -> dict[str, float]:
    out = dict(base)
    for b in biases:
        for k, m in b.items():
            if k in out:
                out[k] *= m
    return out


def sample_fields(rng: np.random.Generator, *, distinct_only: bool = True) -> dict[str, str]:
    """Draw the ten caption fields: concepts uniformly (categories weighted), then attributes biased.

    Args:
        distinct_only: draw attribute values only among those with a shape of their own, so no two
            captions name the same drawing (see :data:`.labels.DRAWN_AS`).
    """
    fields: dict[str, str] = {}
    for f in CONCEPT_FIELDS:
        weights = CATEGORY_WEIGHTS if f.key == "category" else dict.fromkeys(f.values, 1.0)
        fields[f.key] = _pick(rng, weights)
    concepts = [fields[f.key] for f in CONCEPT_FIELDS]
    for f in ATTRIBUTE_FIELDS:
        values = distinct_values(f.key) if distinct_only else f.values
        weights = _biased(dict.fromkeys(values, 1.0), [ATTRIBUTE_BIAS.get(c, {}).get(f.key, {}) for c in concepts])
        if f.key == "sleeve_type" and fields["sleeve_length"] == "Sleeveless":
            weights = {"Regular": 1.0}  # no sleeve to shape; the caption says the plain one
        fields[f.key] = _pick(rng, weights)
    return {k: fields[k] for k in FIELD_KEYS}


def _shade(c, k: float) -> tuple[int, int, int]:
    return tuple(int(np.clip(v * k, 0, 255)) for v in c)


def _luma(c) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def palette_weights(fields: Mapping[str, str]) -> dict[str, float]:
    """The weight of each palette family for a design's concepts (unnormalised; every family keeps a little)."""
    concepts = [fields.get(f.key) for f in CONCEPT_FIELDS]
    pal_w = _biased(dict.fromkeys(PALETTES, 0.2), [])
    for table in (STYLE_PALETTE, OCCASION_PALETTE, EFFECT_PALETTE, FEELING_PALETTE):
        for c in concepts:
            for k, v in table.get(c, {}).items():
                pal_w[k] += v
    return pal_w


def sample_look(fields: Mapping[str, str], rng: np.random.Generator) -> Look:
    """Draw the look of a design from its concepts (palette, pattern, silhouette) and at random (the rest)."""
    concepts = [fields.get(f.key) for f in CONCEPT_FIELDS]
    palette = _pick(rng, palette_weights(fields))
    colours = PALETTES[palette]
    garment = colours[int(rng.integers(len(colours)))]
    pattern = _pick(rng, _biased({"plain": 4.0, "stripes": 1.0, "dots": 1.0, "checks": 1.0},
                                 [PATTERN_BIAS.get(c, {}) for c in concepts]))  # fmt: skip
    light = _luma(garment) > 150
    second = NEUTRALS[0] if not light else _shade(garment, 0.55)
    if rng.random() < 0.3:
        others = [c for c in colours if c != garment]
        second = others[int(rng.integers(len(others)))] if others else second
    trim = _shade(garment, 0.72) if rng.random() < 0.7 else (NEUTRALS[0] if not light else NEUTRALS[1])
    companion = NEUTRALS[int(rng.integers(len(NEUTRALS)))]
    if abs(_luma(companion) - _luma(garment)) < 40:  # keep the category garment apart from what it is worn with
        companion = NEUTRALS[0] if _luma(garment) < 128 else NEUTRALS[1]
    silhouette = _pick(rng, _biased(dict.fromkeys(SILHOUETTES, 1.0), [SILHOUETTE_BIAS.get(c, {}) for c in concepts]))
    return Look(
        garment=garment,
        pattern_colour=second,
        trim=trim,
        companion=companion,
        shoes=NEUTRALS[int(rng.integers(len(NEUTRALS)))] if rng.random() < 0.7 else _shade(garment, 0.8),
        skin=SKIN_TONES[int(rng.integers(len(SKIN_TONES)))],
        hair=HAIR_COLOURS[int(rng.integers(len(HAIR_COLOURS)))],
        background=BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))],
        palette=palette,
        pattern=pattern,
        pattern_period=float(rng.uniform(0.1, 0.15)),
        pattern_vertical=bool(rng.random() < 0.5),
        silhouette=silhouette,
        hair_style=HAIR_STYLES[int(rng.integers(len(HAIR_STYLES)))],
        companion_lower="skirt" if rng.random() < 0.3 else "trousers",
        raw_phase=tuple(float(x) for x in rng.random(64)),
    )


def check_fields(fields: Mapping[str, str]) -> dict[str, str]:
    """All ten fields, canonical labels; a ValueError names the field, the value and the fix."""
    out = {}
    for key in FIELD_KEYS:
        f = get_field(key)
        value = fields.get(key)
        if value is None:
            raise ValueError(f"fields[{key!r}] is missing; the generator draws all ten fields (use sample_fields)")
        if value not in f.values:
            raise ValueError(f"fields[{key!r}]={value!r} is not a canonical label; use one of {', '.join(f.values)}")
        out[key] = value
    return out
