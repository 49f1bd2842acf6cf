"""The evaluation's held-out designs: test-split records of the synthetic data, and one edit for each.

Records are drawn again from the data seed (:func:`..synth.writer.make_sample`), so the evaluation
needs no data folder and sees exactly the build's test split: poses the training never saw (the
pose bank holds some out) with captions drawn the same way.

Each case gets one attribute edit: the attribute cycles through the five (clothing length, sleeve
length, sleeve type, collar, hem) and the new value is another value the generator draws
distinctly, chosen from a generator seeded by the case. A sleeve type is not edited on a
sleeveless design (there is no sleeve to shape); the next attribute is taken instead. A design
made sleeveless also gets the Regular sleeve type, as the generator captions it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..masks.regions import REACH_CATEGORY, longest_length
from ..prompt import HierarchicalPrompt
from ..synth.labels import distinct_values, drawn_as
from ..synth.writer import SynthConfig, make_sample, split_of
from ..taxonomy import ATTRIBUTE_FIELDS

ATTRIBUTES = tuple(f.key for f in ATTRIBUTE_FIELDS)


@dataclass(frozen=True)
class Case:
    """One held-out design and its edit.

    Attributes:
        index: the record's index in the data set; ``fields``: its ten caption fields; ``meta``:
            the generator's extra labels (palette, pattern); ``keypoints``: (18, 3) its pose in pixels.
        attribute / target: the attribute edited and its new value.
        image: (H, W, 3) uint8, the record's own image (the classifier's reference).
    """

    index: int
    fields: dict
    meta: dict
    keypoints: np.ndarray
    attribute: str
    target: str
    image: np.ndarray

    @property
    def prompt(self) -> HierarchicalPrompt:
        return HierarchicalPrompt(dict(self.fields))

    @property
    def edited_fields(self) -> dict:
        out = dict(self.fields)
        out[self.attribute] = self.target
        if self.attribute == "sleeve_length" and self.target == "Sleeveless":
            out["sleeve_type"] = "Regular"
        return out

    @property
    def edited_prompt(self) -> HierarchicalPrompt:
        return HierarchicalPrompt(self.edited_fields)

    @property
    def reach(self) -> str:
        """The edit region's ``reach`` (see :func:`..masks.region_mask`): for a length or hem edit the
        longer of the clothing lengths before and after it, as a designer would set it."""
        if self.attribute not in ("clothing_length", "hem"):
            return REACH_CATEGORY
        after = self.target if self.attribute == "clothing_length" else None
        return longest_length(self.fields.get("clothing_length"), after)


def _edit_for(fields: dict, order: int, rng: np.random.Generator) -> tuple[str, str]:
    for k in range(len(ATTRIBUTES)):
        attribute = ATTRIBUTES[(order + k) % len(ATTRIBUTES)]
        if attribute == "sleeve_type" and fields["sleeve_length"] == "Sleeveless":
            continue
        current = drawn_as(attribute, fields[attribute])
        choices = [v for v in distinct_values(attribute) if v != current]
        return attribute, choices[int(rng.integers(len(choices)))]
    raise AssertionError("every design has an editable attribute")  # clothing length always is


def held_out_cases(count: int, *, data_count: int = 10_000, data_seed: int = 0, seed: int = 0) -> list[Case]:
    """The first ``count`` test-split records of the data set ``(data_count, data_seed)``, each with an edit.

    Raises:
        ValueError: the data set has fewer test records than ``count``.
    """
    if count < 1:
        raise ValueError(f"cases={count}: at least 1")
    config = SynthConfig(count=data_count, seed=data_seed)
    cases: list[Case] = []
    for index in range(data_count):
        if split_of(config, index) != "test":
            continue
        sample, split, meta = make_sample(config, index)
        rng = np.random.default_rng([seed, index])
        attribute, target = _edit_for(sample.fields, len(cases), rng)
        cases.append(Case(index, dict(sample.fields), meta, sample.keypoints, attribute, target, sample.image))
        if len(cases) == count:
            return cases
    raise ValueError(f"cases={count}: the data set of {data_count} records holds only {len(cases)} test records")


def training_images(
    count: int, *, data_count: int = 10_000, data_seed: int = 0, test_after: int | None = None
) -> tuple[np.ndarray, list, list, np.ndarray]:
    """The first ``count`` training-split images (N, H, W, 3) uint8 with their fields, meta and
    keypoints (N, 18, 3).

    With ``test_after`` the test-split records after the first ``test_after`` follow them: records
    the evaluation never uses (its cases and the classifier's held-out check are the first ones),
    drawn on the held-out poses, so a classifier trained on them reads those poses too.
    """
    config = SynthConfig(count=data_count, seed=data_seed)
    images, fields, metas, keypoints = [], [], [], []
    trained, tested = 0, 0
    for index in range(data_count):
        split = split_of(config, index)
        if split == "train":
            if trained == count:
                continue
            trained += 1
        else:
            tested += 1
            if test_after is None or tested <= test_after:
                continue
        sample, _, meta = make_sample(config, index)
        images.append(sample.image)
        fields.append(dict(sample.fields))
        metas.append(meta)
        keypoints.append(sample.keypoints)
        if trained == count and test_after is None:
            break
    return np.stack(images), fields, metas, np.stack(keypoints)
