"""Taxonomy, hierarchical prompts and the prompt schedule (core only, no ComfyUI)."""

from __future__ import annotations

import pytest

from hierafash_core.prompt import HierarchicalPrompt
from hierafash_core.schedule import (
    PromptSchedule,
    Stage,
    first_step_below,
    sigma_at,
    stage_steps,
    timestep_of,
    timestep_sigmas,
)
from hierafash_core.taxonomy import FIELDS, UnknownFieldError, UnknownValueError, get_field, normalize_value

PAPER_EXAMPLE = (
    "Dress, Elegant, Party, Elongate Neck, Sense of Agility and Elegance, Long Dress, Short Sleeve, "
    "Regular Sleeve, V-Neck, Draped Hem"
)


def test_vocabulary_sizes_match_the_paper_table():
    sizes = {f.key: len(f.values) for f in FIELDS}
    assert sizes == {"category": 7, "style": 31, "occasion": 9, "effect": 9, "feeling": 21, "clothing_length": 5,
                     "sleeve_length": 5, "sleeve_type": 15, "collar": 13, "hem": 20}  # fmt: skip
    assert [f.index for f in FIELDS] == list(range(1, 11))
    assert [f.code for f in FIELDS[5:]] == ["A1", "A2", "A3", "A4", "A5"]


@pytest.mark.parametrize("name", ["sleeve length", "Sleeve_Length", "A2", "a2", "7", 7, "sleeves"])
def test_field_lookup_is_forgiving(name):
    assert get_field(name).key == "sleeve_length"


def test_unknown_field_names_the_value_and_the_choices():
    with pytest.raises(UnknownFieldError, match=r"field='sleve lenght' .*Did you mean 'sleeve length'"):
        get_field("sleve lenght")


@pytest.mark.parametrize(
    ("field", "typed", "label"),
    [("collar", "v neck", "V-Neck"), ("collar", "VNECK", "V-Neck"), ("collar", "turtleneck", "T-neck"),
     ("clothing_length", "midi", "Mid-length"), ("clothing_length", "Long Dress", "Long"),
     ("sleeve_type", "regular sleeve", "Regular"), ("hem", "Draped Hem", "Draped"),
     ("sleeve_length", "long sleeves", "Long Sleeve"), ("style", "hip hop", "Hip-hop"),
     ("category", "trousers", "Pant")],
)  # fmt: skip
def test_values_forgive_case_spacing_and_common_spellings(field, typed, label):
    assert normalize_value(field, typed) == label


def test_unknown_value_suggests_the_closest_labels():
    with pytest.raises(UnknownValueError) as info:
        normalize_value("collar", "V-Nek")
    assert "collar='V-Nek'" in str(info.value)
    assert info.value.suggestions[0] == "V-Neck"
    assert "allow free text" in str(info.value)


def test_free_text_passes_through_when_allowed():
    assert normalize_value("style", "  Cyber Goth ", allow_free_text=True) == "Cyber Goth"
    with pytest.raises(UnknownValueError):
        normalize_value("style", "Cyber Goth")


def test_paper_caption_round_trips():
    prompt = HierarchicalPrompt.from_caption(PAPER_EXAMPLE)
    assert prompt.get("clothing length") == "Long"
    assert prompt.get("A3") == "Regular"
    assert prompt.caption() == PAPER_EXAMPLE
    assert prompt.caption(5) == "Dress, Elegant, Party, Elongate Neck, Sense of Agility and Elegance"
    assert prompt.caption(7).endswith("Long Dress, Short Sleeve")


def test_prompt_from_json_and_mapping_agree():
    a = HierarchicalPrompt.from_json('{"category": "dress", "collar": "v-neck", "A2": "long sleeve"}')
    b = HierarchicalPrompt.parse({"Category": "Dress", "neckline": "V Neck", "sleeve length": "Long Sleeve"})
    assert a == b
    # unset fields keep their position: 8 fields show sleeve length, not collar
    assert a.caption(8) == "Dress, Long Sleeve"
    assert a.caption(10) == "Dress, Long Sleeve, V-Neck"


def test_caption_with_too_many_fields_is_refused():
    with pytest.raises(ValueError, match="11 comma-separated fields"):
        HierarchicalPrompt.from_caption(PAPER_EXAMPLE + ", Extra")


@pytest.mark.parametrize(
    ("t", "n"),
    [(999, 5), (900, 5), (899, 6), (800, 6), (799, 7), (710, 7), (709, 8), (630, 8), (629, 9), (560, 9),
     (559, 10), (500, 10), (499, 10), (0, 10)],
)  # fmt: skip
def test_paper_schedule_matches_the_training_table_at_every_boundary(t, n):
    assert PromptSchedule.paper().fields_at(t) == n


def test_schedule_validation_names_gap_and_overlap():
    with pytest.raises(ValueError, match="gap between windows 999-900 and 800-0"):
        PromptSchedule.parse("999-900:5, 800-0:10")
    with pytest.raises(ValueError, match="overlap"):
        PromptSchedule.parse("999-900:5, 950-0:10")
    with pytest.raises(ValueError, match="must end at t=0"):
        PromptSchedule.parse("999-500:5")
    with pytest.raises(ValueError, match="HIGH-LOW:FIELDS"):
        PromptSchedule.parse("999 to 0")


def test_two_stage_and_parse_and_merge():
    assert PromptSchedule.parse("two-stage:600").stages == (Stage(999, 600, 5), Stage(599, 0, 10))
    assert PromptSchedule.parse(PromptSchedule.paper().spec()) == PromptSchedule.paper()
    merged = PromptSchedule.paper().merged()
    assert merged.stages[-1] == Stage(559, 0, 10)
    assert len(merged.stages) == 6


def test_sigma_timestep_round_trip_and_switch_steps():
    table = timestep_sigmas()
    assert table.shape == (1000,)
    assert abs(timestep_of(sigma_at(731.25, table), table) - 731.25) < 1e-6
    # an evenly spaced timestep schedule of 20 steps: boundaries fall where the table says
    ts = [999 - i * 999 / 19 for i in range(20)]
    sigmas = [sigma_at(t, table) for t in ts] + [0.0]
    spans = stage_steps(PromptSchedule.two_stage(500), sigmas, table)
    assert [(s.n_fields, a, b) for s, a, b in spans] == [(5, 0, 10), (10, 10, 20)]
    assert first_step_below(sigmas, sigma_at(500, table)) == 10
    assert first_step_below(sigmas, 1e9) == 0
    assert first_step_below(sigmas, 0.0) == 20
