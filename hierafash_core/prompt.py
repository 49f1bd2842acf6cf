"""Hierarchical prompts: the ten caption fields of one design, and the text each stage shows.

During fine-tuning the caption depends on the noise level: only the concepts at high noise,
then one more attribute per window (DESIGN.md section 2). :meth:`HierarchicalPrompt.caption`
renders the first ``n`` fields the same way, so inference shows the model what it was taught.
Unset fields are skipped in the text but keep their position (the schedule counts positions).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from .schedule import PromptSchedule, Stage
from .taxonomy import ATTRIBUTE_FIELDS, CONCEPT_FIELDS, FIELDS, Field, Level, get_field, normalize_value


@dataclass(frozen=True)
class HierarchicalPrompt:
    """One design's caption fields, in canonical labels (or free text where allowed).

    ``values`` maps a field key (``"sleeve_length"``) to its value; missing keys are unset.
    Build with :meth:`from_caption`, :meth:`from_mapping` or :meth:`from_json`.
    """

    values: Mapping[str, str] = field(default_factory=dict)

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, data: Mapping[str, str | None], *, allow_free_text: bool = False) -> HierarchicalPrompt:
        """Fields by name (key, label or A1..A5), values forgiven for case and spelling.

        Raises:
            UnknownFieldError / UnknownValueError: with the field, the value and suggestions.
        """
        category = None
        raw: dict[Field, str] = {}
        for name, value in data.items():
            if value is None or str(value).strip() in ("", "-", "none", "None"):
                continue
            f = get_field(name)
            raw[f] = str(value)
            if f.key == "category":
                category = normalize_value(f, value, allow_free_text=allow_free_text)
        values = {
            f.key: normalize_value(f, v, allow_free_text=allow_free_text, category=category) for f, v in raw.items()
        }
        return cls({k: values[k] for k in (f.key for f in FIELDS) if k in values})

    @classmethod
    def from_caption(cls, caption: str, *, allow_free_text: bool = False, first_field: int = 1) -> HierarchicalPrompt:
        """Parse the paper's comma caption (fields in order; fewer than ten is fine).

        Args:
            first_field: caption position of the first value (6 reads ``"Long, Short Sleeve"`` as
                attributes A1, A2); empty parts skip a field.

        Raises:
            ValueError: too many fields, or a value outside the vocabulary.
        """
        fields = FIELDS[first_field - 1 :]
        parts = [p.strip() for p in caption.split(",")]
        if len(parts) == 1 and not parts[0]:
            return cls({})
        if len(parts) > len(fields):
            raise ValueError(
                f"caption has {len(parts)} comma-separated fields, at most {len(fields)} are allowed "
                f"({', '.join(f.label for f in fields)}); remove commas inside values"
            )
        return cls.from_mapping(
            {f.key: p for f, p in zip(fields, parts, strict=False)}, allow_free_text=allow_free_text
        )

    @classmethod
    def from_json(cls, text: str, *, allow_free_text: bool = False, first_field: int = 1) -> HierarchicalPrompt:
        """A JSON object of fields, or a JSON string holding a comma caption."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"prompt JSON does not parse ({exc.msg} at line {exc.lineno}); give an object of fields"
            ) from None
        if isinstance(data, str):
            return cls.from_caption(data, allow_free_text=allow_free_text, first_field=first_field)
        if not isinstance(data, dict):
            raise ValueError(f"prompt JSON must be an object of fields, got {type(data).__name__}")
        return cls.from_mapping(data, allow_free_text=allow_free_text)

    @classmethod
    def parse(cls, value: str | Mapping, *, allow_free_text: bool = False, first_field: int = 1) -> HierarchicalPrompt:
        """Accept any of the three forms: a mapping, a JSON object, or a comma caption.

        ``first_field`` is the caption position a comma caption starts at (1: category; 6: A1).
        """
        if isinstance(value, Mapping):
            return cls.from_mapping(value, allow_free_text=allow_free_text)
        text = str(value).strip()
        if text.startswith("{"):
            return cls.from_json(text, allow_free_text=allow_free_text, first_field=first_field)
        return cls.from_caption(text, allow_free_text=allow_free_text, first_field=first_field)

    # -- use -----------------------------------------------------------------------------------
    def get(self, name: str) -> str | None:
        return self.values.get(get_field(name).key)

    def merged(self, other: HierarchicalPrompt, *, strict: bool = False, name: str = "") -> HierarchicalPrompt:
        """This prompt with ``other``'s set fields written over it (an edit on top of a draft).

        With ``strict``, a field set to different values in both raises a ValueError naming the
        field, both values and ``name`` (where ``other`` came from) instead of overwriting.
        """
        if strict:
            for key, value in other.values.items():
                mine = self.values.get(key)
                if mine is not None and mine != value:
                    label = get_field(key).label
                    where = f"{name}: " if name else ""
                    raise ValueError(f"{where}{label} is set twice, to {mine!r} and to {value!r}; unset one of them")
        out = dict(self.values)
        out.update(other.values)
        return HierarchicalPrompt({k: out[k] for k in (f.key for f in FIELDS) if k in out})

    def rendered(self) -> list[str | None]:
        """The ten fields as caption text (``None`` where unset)."""
        category = self.values.get("category")
        return [f.render(self.values[f.key], category) if f.key in self.values else None for f in FIELDS]

    def caption(self, n_fields: int = len(FIELDS)) -> str:
        """The comma caption of the first ``n_fields`` fields, unset ones skipped."""
        if not 0 <= n_fields <= len(FIELDS):
            raise ValueError(f"n_fields={n_fields} is outside 0..{len(FIELDS)}")
        return ", ".join(v for v in self.rendered()[:n_fields] if v)

    def level_text(self, level: Level) -> str:
        """Only the concept fields, or only the attribute fields, as caption text."""
        keys = {f.key for f in (CONCEPT_FIELDS if level is Level.CONCEPT else ATTRIBUTE_FIELDS)}
        return ", ".join(v for f, v in zip(FIELDS, self.rendered(), strict=True) if v and f.key in keys)

    @property
    def has_concepts(self) -> bool:
        return any(f.key in self.values for f in CONCEPT_FIELDS)

    def to_dict(self) -> dict[str, str]:
        return dict(self.values)


@dataclass(frozen=True)
class StagedDesign:
    """A design on its way through the drafting nodes: its fields and the schedule that stages them.

    ConceptEncode makes one; AttributeEncode adds the attribute fields. ``stage_captions`` is what
    each stage of the schedule shows the model (the attribute stages cumulative, as in training).
    """

    prompt: HierarchicalPrompt
    schedule: PromptSchedule

    def stage_captions(self, level: Level | None = None) -> list[tuple[Stage, str]]:
        """``[(stage, caption), ...]`` in schedule order; ``level`` keeps only concept stages
        (5 fields or fewer) or only attribute stages."""
        out = []
        for stage in self.schedule.stages:
            is_concept = stage.n_fields <= len(CONCEPT_FIELDS)
            if level is None or is_concept == (level is Level.CONCEPT):
                out.append((stage, self.prompt.caption(stage.n_fields)))
        return out
