"""Parse labels of the synthetic data, and which attribute values the generator draws distinctly.

Parse labels name body regions, not garments: a dress's upper part, a blouse and the plain top
worn over a skirt are all ``bodice``. The caption says which garment the category is; the regions
are what edit masks need (sleeves, collar, length and hem). Values that have no shape of their own
are drawn as the closest drawable one; :data:`DRAWN_AS` records the mapping so that data sets,
classifiers and evaluations can treat them as one class.
"""

from __future__ import annotations

from ..taxonomy import get_field

# Label index = position. Written to dataset.json as {"0": "background", ...}.
PARSE_LABELS: tuple[str, ...] = (
    "background",
    "skin",  # arms, legs, torso and neck skin, hands
    "hair",
    "face",
    "bodice",  # upper-body garment from the shoulders down to its own end (tops) or the waist (dress, coat)
    "sleeves",  # both sleeves, including a dolman's batwing and a raglan's shoulder yoke
    "collar",  # the neckline trim band, lapels, stand collar, turtleneck, cowl drape
    "skirt",  # below the waist: a skirt, a dress's skirt, a coat's tail
    "trousers",  # pelvis and legs of trousers, shorts or a jumpsuit
    "hem",  # the bottom band (or flounce, or lower tier) of the category garment
    "shoes",
)
LABEL = {name: i for i, name in enumerate(PARSE_LABELS)}

# Attribute value -> the shape drawn for it. A value that maps to itself is drawn distinctly.
# fmt: off
DRAWN_AS: dict[str, dict[str, str]] = {
    "clothing_length": {v: v for v in ("Ultra-short", "Short", "Knee-length", "Mid-length", "Long")},
    "sleeve_length": {v: v for v in ("Sleeveless", "Short Sleeve", "Elbow-length Sleeve", "Mid-length Sleeve",
                                     "Long Sleeve")},
    "sleeve_type": {
        "Regular": "Regular", "Puffed": "Puffed", "Lantern": "Lantern", "Flare": "Flare", "Ruffle": "Ruffle",
        "Layered": "Layered", "Kimono": "Kimono", "Dolman": "Dolman", "Raglan": "Raglan", "Shirt": "Shirt",
        "Flutter": "Flare", "Petal": "Flare", "Princess": "Puffed", "Wrapped": "Regular", "Drop-shoulder": "Regular",
    },
    "collar": {
        "Round": "Round", "V-Neck": "V-Neck", "Square": "Square", "Boat Neck": "Boat Neck", "U-Neck": "U-Neck",
        "Stand": "Stand", "T-neck": "T-neck", "Lapel": "Lapel", "Irregular": "Irregular", "Swinging": "Swinging",
        "Tailor": "Lapel", "A-Line": "V-Neck", "Closed": "Stand",
    },
    "hem": {
        "Flat": "Flat", "Curved": "Curved", "Ruffle": "Ruffle", "Layered": "Layered", "Wavy": "Wavy",
        "Slit": "Slit", "Pleated": "Pleated", "Irregular": "Irregular", "Raw": "Raw", "Curled": "Curled",
        "Striped": "Striped", "Lace": "Lace", "Ankle-tied": "Ankle-tied",
        "Low Waist": "Flat", "Loose": "Flat", "Draped": "Wavy", "Flared": "Ruffle", "Flanging": "Curled",
        "Tight-strap": "Ankle-tied", "Drawstring": "Ankle-tied",
    },
}
# fmt: on


def _check_tables() -> None:
    # The tables must cover each field's vocabulary exactly (a new label in taxonomy.py needs a shape).
    for key, table in DRAWN_AS.items():
        vocab = set(get_field(key).values)
        if set(table) != vocab or not set(table.values()) <= vocab:
            raise RuntimeError(f"DRAWN_AS[{key!r}] does not match the taxonomy: {sorted(set(table) ^ vocab)}")


_check_tables()


def distinct_values(field_key: str) -> tuple[str, ...]:
    """The values of an attribute field that have a shape of their own, in vocabulary order."""
    table = DRAWN_AS[field_key]
    return tuple(v for v in get_field(field_key).values if table[v] == v)


def drawn_as(field_key: str, value: str) -> str:
    """The shape drawn for ``value`` (itself when it is drawn distinctly)."""
    try:
        return DRAWN_AS[field_key][value]
    except KeyError:
        known = ", ".join(get_field(field_key).values)
        raise ValueError(f"{field_key}={value!r} is not a canonical label; use one of {known}") from None
