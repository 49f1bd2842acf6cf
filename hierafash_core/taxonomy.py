"""The paper's caption vocabulary: ten fields, five concepts then five attributes.

A caption lists the fields in a fixed order, comma separated (HieraFashDiff, section 3 and its
released data). Values are English labels; a few are written with a noun in the caption
("Long Dress", "Regular Sleeve", "Draped Hem"). The vocabulary helps (validation, menus,
suggestions); free text stays possible where the caller allows it.
"""

from __future__ import annotations

import difflib
import logging
import re
from dataclasses import dataclass
from enum import Enum

log = logging.getLogger(__name__)


class Level(str, Enum):
    CONCEPT = "concept"
    ATTRIBUTE = "attribute"


@dataclass(frozen=True)
class Field:
    """One caption field.

    Attributes:
        key: identifier (``"sleeve_length"``); ``label`` is the human name (``"sleeve length"``).
        index: 1-based position in the caption.
        code: the paper's short name for attributes (``"A2"``), empty for concepts.
        suffix: noun written after the value in a caption (``"Sleeve"``, ``"Hem"``); for
            clothing length the category noun is used instead (``"Long Dress"``).
    """

    key: str
    label: str
    level: Level
    index: int
    values: tuple[str, ...]
    code: str = ""
    suffix: str = ""

    def render(self, value: str, category: str | None = None) -> str:
        """Write ``value`` as it appears in a caption."""
        if self.key == "clothing_length":
            noun = category or ""
            return f"{value} {noun}".strip() if value in self.values else value
        if self.suffix and value in self.values and not value.endswith(self.suffix):
            return f"{value} {self.suffix}"
        return value


CATEGORIES = ("Dress", "Blouse", "Sweater", "Coat", "Jumpsuit", "Pant", "Skirt")

# fmt: off
FIELDS: tuple[Field, ...] = (
    Field("category", "category", Level.CONCEPT, 1,
          CATEGORIES),
    Field("style", "style", Level.CONCEPT, 2,
          ("Original Design", "Street Style", "Commute", "Korean Style", "Elegant", "Sweet", "Western Style",
           "Japanese Style", "British Style", "Vintage", "Artsy", "Courtly Style", "Simple Style", "Rural Style",
           "Campus Style", "Office Lady", "Homewear", "Sport", "Casual", "Noble", "Youth/Pop",
           "Business Gentleman", "Fresh", "Trendy", "Chinese Style", "Punk", "Hip-hop", "Sexy", "Rock", "Workwear",
           "Office")),
    Field("occasion", "occasion", Level.CONCEPT, 3,
          ("Campus", "Home", "Date", "Party", "Office", "Sport", "Travel", "Wedding", "Business")),
    Field("effect", "effect", Level.CONCEPT, 4,
          ("Slimming", "Youthful", "Tall", "Highlight Hips", "Brighten Skin", "Face Slimming", "Elongate Neck",
           "Enhance Bust", "Muscular Look")),
    Field("feeling", "feeling", Level.CONCEPT, 5,
          ("Sense of Curve", "Sense of Agility and Elegance", "Sense of Restraint", "Three-dimensional Layering",
           "Hazy Sensation", "Drape Feeling", "Dullness Sensation", "Playful Feeling", "Youthful Feeling",
           "Sense of Fun", "Casual and Relaxed Feeling", "Sense of Atmosphere", "Line Feeling", "Stacking Feeling",
           "Mature Feeling", "Childlike Feeling", "Bulky Feeling", "Crisp Feeling", "Heavy Feeling",
           "Jungle Feeling", "Heavy Industry Feeling")),
    Field("clothing_length", "clothing length", Level.ATTRIBUTE, 6,
          ("Ultra-short", "Short", "Knee-length", "Mid-length", "Long"), code="A1"),
    Field("sleeve_length", "sleeve length", Level.ATTRIBUTE, 7,
          ("Sleeveless", "Short Sleeve", "Elbow-length Sleeve", "Mid-length Sleeve", "Long Sleeve"), code="A2"),
    Field("sleeve_type", "sleeve type", Level.ATTRIBUTE, 8,
          ("Dolman", "Puffed", "Lantern", "Flare", "Raglan", "Ruffle", "Wrapped", "Flutter", "Princess", "Layered",
           "Shirt", "Petal", "Kimono", "Regular", "Drop-shoulder"), code="A3", suffix="Sleeve"),
    Field("collar", "collar", Level.ATTRIBUTE, 9,
          ("Round", "V-Neck", "Square", "Tailor", "Lapel", "Stand", "T-neck", "Boat Neck", "U-Neck", "A-Line",
           "Swinging", "Irregular", "Closed"), code="A4"),
    Field("hem", "hem", Level.ATTRIBUTE, 10,
          ("Flat", "Curved", "Ruffle", "Layered", "Low Waist", "Striped", "Wavy", "Slit", "Draped", "Irregular",
           "Curled", "Raw", "Ankle-tied", "Flared", "Flanging", "Loose", "Lace", "Tight-strap", "Drawstring",
           "Pleated"), code="A5", suffix="Hem"),
)
# fmt: on

FIELD_KEYS = tuple(f.key for f in FIELDS)
CONCEPT_FIELDS = tuple(f for f in FIELDS if f.level is Level.CONCEPT)
ATTRIBUTE_FIELDS = tuple(f for f in FIELDS if f.level is Level.ATTRIBUTE)
NUM_CONCEPTS = len(CONCEPT_FIELDS)

# Common spellings people type, folded (see _fold) -> canonical label, per field.
# fmt: off
_ALIASES: dict[str, dict[str, str]] = {
    "category": {"pants": "Pant", "trousers": "Pant", "trouser": "Pant", "jumper": "Sweater", "shirt": "Blouse",
                 "dresses": "Dress", "skirts": "Skirt", "jacket": "Coat"},
    "style": {"hiphop": "Hip-hop", "youth": "Youth/Pop", "pop": "Youth/Pop", "ol": "Office Lady",
              "streetwear": "Street Style", "korean": "Korean Style", "japanese": "Japanese Style",
              "british": "British Style", "chinese": "Chinese Style", "western": "Western Style",
              "minimal": "Simple Style", "minimalist": "Simple Style", "simple": "Simple Style",
              "sporty": "Sport"},
    "clothing_length": {"mini": "Short", "ultrashort": "Ultra-short", "kneelength": "Knee-length",
                        "knee": "Knee-length", "midi": "Mid-length", "midlength": "Mid-length", "maxi": "Long",
                        "full": "Long", "fulllength": "Long"},
    "sleeve_length": {"short": "Short Sleeve", "long": "Long Sleeve", "none": "Sleeveless", "nosleeve": "Sleeveless",
                      "nosleeves": "Sleeveless", "elbow": "Elbow-length Sleeve", "elbowlength": "Elbow-length Sleeve",
                      "threequarter": "Mid-length Sleeve", "34": "Mid-length Sleeve", "midlength": "Mid-length Sleeve",
                      "shortsleeves": "Short Sleeve", "longsleeves": "Long Sleeve"},
    "sleeve_type": {"puff": "Puffed", "puffy": "Puffed", "bell": "Flare", "flared": "Flare",
                    "dropshoulder": "Drop-shoulder", "dropped": "Drop-shoulder", "batwing": "Dolman"},
    "collar": {"v": "V-Neck", "vneck": "V-Neck", "crew": "Round", "crewneck": "Round", "roundneck": "Round",
               "turtleneck": "T-neck", "tneck": "T-neck", "highneck": "Stand", "mandarin": "Stand",
               "boat": "Boat Neck", "bateau": "Boat Neck", "u": "U-Neck", "uneck": "U-Neck",
               "squareneck": "Square", "notched": "Lapel"},
    "hem": {"pleats": "Pleated", "ruffled": "Ruffle", "frill": "Ruffle", "asymmetric": "Irregular",
            "asymmetrical": "Irregular", "split": "Slit", "flare": "Flared"},
}
# fmt: on

# fmt: off
_FIELD_ALIASES = {
    "length": "clothing_length", "garment_length": "clothing_length", "dress_length": "clothing_length",
    "sleeve": "sleeve_length", "sleeves": "sleeve_length", "sleevelength": "sleeve_length",
    "sleevetype": "sleeve_type", "neck": "collar", "neckline": "collar", "collar_type": "collar",
    "hemline": "hem", "clothinglength": "clothing_length",
}
# fmt: on


class UnknownFieldError(ValueError):
    """A field name that is none of the ten."""


class UnknownValueError(ValueError):
    """A value outside a field's vocabulary (``suggestions`` holds the closest labels)."""

    def __init__(self, message: str, field: Field, value: str, suggestions: list[str]):
        super().__init__(message)
        self.field = field
        self.value = value
        self.suggestions = suggestions


def _fold(text: str) -> str:
    """Fold case, spacing and punctuation: 'V-neck', 'v neck' and 'VNECK' all give 'vneck'."""
    return re.sub(r"[\s\-_/.,'’]+", "", text.casefold())


_BY_KEY = {f.key: f for f in FIELDS}


def get_field(name: str | int) -> Field:
    """Find a field by key, label, paper code (``"A2"``) or 1-based caption position."""
    if isinstance(name, int) and not isinstance(name, bool):
        if 1 <= name <= len(FIELDS):
            return FIELDS[name - 1]
        raise UnknownFieldError(f"field index {name} is outside 1..{len(FIELDS)}")
    text = str(name).strip()
    folded = _fold(text)
    for f in FIELDS:
        if folded in (_fold(f.key), _fold(f.label)) or (f.code and folded == f.code.casefold()):
            return f
    if folded in {_fold(k): v for k, v in _FIELD_ALIASES.items()}:
        return _BY_KEY[{_fold(k): v for k, v in _FIELD_ALIASES.items()}[folded]]
    if folded.isdigit():
        return get_field(int(folded))
    names = [f.label for f in FIELDS]
    close = difflib.get_close_matches(text.casefold(), names, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownFieldError(
        f"field={text!r} is not a caption field.{hint} Fields: {', '.join(names)} (or A1..A5 for the attributes)"
    )


def _strip_noun(field: Field, text: str, category: str | None) -> str:
    """Undo caption rendering: 'Long Dress' -> 'Long', 'Regular Sleeve' -> 'Regular', 'Draped Hem' -> 'Draped'."""
    words = text.strip()
    nouns = [field.suffix] if field.suffix else []
    if field.key == "clothing_length":
        nouns = [category] if category else list(CATEGORIES)
        nouns += [n + "s" for n in nouns] + ["Skirt", "Dress", "Coat", "Pants", "Trousers"]
    for noun in nouns:
        if noun and words.casefold().endswith(" " + noun.casefold()):
            return words[: -len(noun) - 1].strip()
    return words


def suggest(field: Field | str, value: str, n: int = 3) -> list[str]:
    """The vocabulary labels closest to ``value`` (best first)."""
    f = field if isinstance(field, Field) else get_field(field)
    folded = {_fold(v): v for v in f.values}
    target = _fold(value)
    hits = difflib.get_close_matches(target, list(folded), n=n, cutoff=0.4)
    out = [folded[h] for h in hits]
    # Substring matches catch 'neck' -> 'V-Neck', 'Boat Neck', ... that ratio scoring misses.
    for key, label in folded.items():
        if target and (target in key or key in target) and label not in out:
            out.append(label)
    return out[:n]


def normalize_value(
    field: Field | str, value: str, *, allow_free_text: bool = False, category: str | None = None
) -> str:
    """Return the canonical label for ``value`` in ``field``.

    Case, spacing, hyphens and the caption nouns are forgiven ("v neck", "Long Dress",
    "draped hem"), and common spellings are mapped ("midi" -> "Mid-length").

    Args:
        allow_free_text: return an unknown value as typed (stripped) instead of raising.
        category: the garment category, to undo "Long Dress"-style clothing lengths.

    Raises:
        UnknownValueError: unknown value and ``allow_free_text`` is false; the message names the
            field, the value, the closest labels and how to allow free text.
    """
    f = field if isinstance(field, Field) else get_field(field)
    text = str(value).strip()
    if not text:
        raise UnknownValueError(f"{f.label}: the value is empty; pick one of {', '.join(f.values)}", f, text, [])
    by_fold = {_fold(v): v for v in f.values}
    for candidate in (text, _strip_noun(f, text, category)):
        folded = _fold(candidate)
        if folded in by_fold:
            return by_fold[folded]
        alias = {_fold(k): v for k, v in _ALIASES.get(f.key, {}).items()}.get(folded)
        if alias:
            return alias
        # "Long Sleeve" typed as "long sleeves", "Draped" typed as "draped hems".
        if folded.endswith("s") and folded[:-1] in by_fold:
            return by_fold[folded[:-1]]
    if allow_free_text:
        log.debug("%s: keeping free text %r", f.label, text)
        return text
    close = suggest(f, text)
    hint = f"closest: {', '.join(close)}" if close else f"values: {', '.join(f.values)}"
    raise UnknownValueError(
        f"{f.label}={text!r} is not in the vocabulary ({hint}); pick one of those, or allow free text",
        f,
        text,
        close,
    )
