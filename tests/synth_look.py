"""A fixed synthetic look (colours, silhouette, hair) for tests that draw croquis and read their pixels back."""

from __future__ import annotations

from hierafash_core.synth import Look

LOOK = Look(
    garment=(40, 118, 222),
    pattern_colour=(244, 244, 240),
    trim=(28, 84, 160),
    companion=(244, 244, 240),
    shoes=(30, 30, 34),
    skin=(224, 178, 140),
    hair=(64, 42, 30),
    background=(244, 242, 238),
    silhouette="a-line",
    hair_style="bob",
)
