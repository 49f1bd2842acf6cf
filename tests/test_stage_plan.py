"""The prompt schedule on a real run: sigma invariants, switch steps, percents, staged conditioning (core only)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hierafash_core.conditioning import (
    STAGE_KEY,
    restage,
    schedule_of,
    stage_entries,
    stage_for_run,
    steps_without_entry,
    uncovered_percents,
)
from hierafash_core.prompt import HierarchicalPrompt, StagedDesign
from hierafash_core.schedule import PromptSchedule, first_step_below, sigma_at, timestep_sigmas
from hierafash_core.stage_plan import (
    StepSchedule,
    as_sigmas,
    denoise_tail,
    describe,
    discrete_percent_to_sigma,
    full_steps_for_denoise,
    percent_of_sigma,
    plan_switch_steps,
    plan_windows,
    span_percents,
    split_sigmas,
    stage_percents,
    switch_percent,
    switch_sigma,
)
from hierafash_core.taxonomy import Level

TABLE = timestep_sigmas()


def karras(steps: int, rho: float = 7.0) -> list[float]:
    """Karras et al. (2022) spacing between the SD table's ends, steps + 1 values ending at 0."""
    lo, hi = float(TABLE[0]), float(TABLE[-1])
    ramp = [i / (steps - 1) for i in range(steps)]
    return [(hi ** (1 / rho) + r * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho for r in ramp] + [0.0]


def even_timesteps(steps: int) -> list[float]:
    return [sigma_at(999 - i * 999 / (steps - 1), TABLE) for i in range(steps)] + [0.0]


def float32_percent_to_sigma(percent: float) -> float:
    """ComfyUI's conversion: the timestep goes through float32 before the table look-up."""
    if percent <= 0:
        return 999999999.9
    if percent >= 1:
        return 0.0
    t = float(torch.tensor((1.0 - percent) * 999.0, dtype=torch.float32))
    return float(torch.tensor(sigma_at(t, TABLE), dtype=torch.float32))


# -- sigma invariants ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("steps", "denoise", "full"), [(20, 1.0, 20), (20, 0.99999, 20), (20, 0.5, 40), (7, 0.3, 23), (20, 0.0, 0)]
)
def test_full_steps_for_denoise_follows_ksampler(steps, denoise, full):
    assert full_steps_for_denoise(steps, denoise) == full


def test_denoise_tail_keeps_steps_plus_one_values_ending_at_zero():
    full = karras(40)
    for steps in (0, 1, 20, 40):
        tail = denoise_tail(full, steps)
        assert len(tail) == steps + 1
        assert tail[-1] == 0.0
        assert tail == full[len(full) - 1 - steps :]
    assert denoise_tail(full, 0) == [0.0]  # the x[:-0] trap: one value, not the whole schedule
    with pytest.raises(ValueError, match="steps=41: the full schedule has only 40 steps"):
        denoise_tail(full, 41)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.01, 20.0), min_size=1, max_size=40), st.data())
def test_split_halves_share_their_boundary(values, data):
    sigmas = sorted(values, reverse=True) + [0.0]
    steps = len(sigmas) - 1
    k = data.draw(st.integers(0, steps))
    high, low = split_sigmas(sigmas, k)
    assert high[-1] == low[0] == sigmas[k]
    assert high + low[1:] == sigmas
    assert len(high) - 1 + len(low) - 1 == steps
    assert len(high) >= 1 and len(low) >= 1  # never an empty half, at step 0 or at the end


def test_schedules_are_checked():
    with pytest.raises(ValueError, match="empty"):
        as_sigmas([])
    with pytest.raises(ValueError, match=r"sigmas\[2\]=3 is above sigmas\[1\]=2"):
        as_sigmas([5.0, 2.0, 3.0, 0.0])
    with pytest.raises(ValueError, match="finite and >= 0"):
        as_sigmas([1.0, -0.5])
    with pytest.raises(ValueError, match="run has no step"):
        plan_windows(PromptSchedule.paper(), [0.0], TABLE)
    with pytest.raises(ValueError, match="denoise=1.5"):
        full_steps_for_denoise(10, 1.5)


# -- percents -----------------------------------------------------------------------------------
def test_stage_percents_of_the_paper_cover_zero_to_one_without_gap():
    windows = [stage_percents(s) for s in PromptSchedule.paper().stages]
    assert windows[0] == (0.0, pytest.approx(1 - 900 / 999))
    assert windows[-1][1] == 1.0
    for (_, end), (start, _) in zip(windows, windows[1:], strict=False):
        assert start == end
    # A percent maps back to the boundary timestep's sigma (ComfyUI: t = (1 - p) * 999).
    to_sigma = discrete_percent_to_sigma(TABLE)
    assert to_sigma(windows[0][1]) == pytest.approx(sigma_at(900, TABLE), rel=1e-9)
    assert percent_of_sigma(sigma_at(900, TABLE), TABLE) == pytest.approx(windows[0][1], abs=1e-9)


def test_switch_percent_lands_strictly_between_two_steps_under_float32():
    sigmas = karras(1000)  # neighbouring sigmas a fraction of a percent apart
    for k in (1, 2, 500, 998):
        target = switch_sigma(sigmas, k)
        assert sigmas[k] < target < sigmas[k - 1]
        p = switch_percent(sigmas[k - 1], sigmas[k], target, float32_percent_to_sigma)
        assert sigmas[k] < float32_percent_to_sigma(p) < sigmas[k - 1]
        p = switch_percent(sigmas[k - 1], sigmas[k], target, float32_percent_to_sigma, guess=0.0001)  # bad guess
        assert sigmas[k] < float32_percent_to_sigma(p) < sigmas[k - 1]
        good = percent_of_sigma(target, TABLE)
        assert switch_percent(sigmas[k - 1], sigmas[k], target, float32_percent_to_sigma, guess=good) == good


def test_switch_between_equal_sigmas_is_refused():
    with pytest.raises(ValueError, match="steps 1 and 2 share sigma 3"):
        switch_sigma([5.0, 3.0, 3.0, 0.0], 2)
    with pytest.raises(ValueError, match=r"switch step 3 is outside the run: use a step in 1\.\.2"):
        switch_sigma([5.0, 3.0, 1.0, 0.0], 3)


# -- plans --------------------------------------------------------------------------------------
def assert_plan_well_formed(spans, sigmas, to_sigma):
    steps = len(sigmas) - 1
    assert spans[0].start_step == 0 and spans[-1].end_step == steps
    assert spans[0].start_percent == 0.0 and spans[-1].end_percent == 1.0
    for a, b in zip(spans, spans[1:], strict=False):
        assert a.end_step == b.start_step and a.steps > 0
        assert a.end_percent == b.start_percent and a.sigma_end == b.sigma_start
        k = b.start_step
        assert sigmas[k] < to_sigma(b.start_percent) < sigmas[k - 1]  # the switch is exactly at step k
    for i in range(steps):  # every step has exactly one stage active, checked as ComfyUI checks it
        active = [s for s in spans if to_sigma(s.end_percent) <= sigmas[i] <= to_sigma(s.start_percent)]
        assert len(active) == 1 and active[0].start_step <= i < active[0].end_step


@pytest.mark.parametrize("sigmas", [even_timesteps(20), karras(20), karras(7), even_timesteps(100)])
def test_paper_windows_switch_at_the_first_step_below_each_boundary(sigmas):
    spans = plan_windows(PromptSchedule.paper(), sigmas, TABLE, float32_percent_to_sigma)
    assert_plan_well_formed(spans, sigmas, float32_percent_to_sigma)
    for span in spans[1:]:
        upper = next(s for s in PromptSchedule.paper().stages if s.t_low == span.stage.t_high + 1)
        assert span.start_step == first_step_below(sigmas, sigma_at(upper.t_low, TABLE))
    assert spans[0].n_fields == 5 and spans[-1].n_fields == 10


def test_even_timesteps_put_the_paper_boundaries_where_the_table_says():
    spans = plan_windows(PromptSchedule.paper(), even_timesteps(20), TABLE)
    # t_i = 999 - 52.58 i = 999, 946, 894, 841, 789, 736, 684, 631, 578, 526, 473, ...
    assert [(s.n_fields, s.start_step, s.end_step) for s in spans] == [
        (5, 0, 2), (6, 2, 4), (7, 4, 6), (8, 6, 8), (9, 8, 9), (10, 9, 10), (10, 10, 20)
    ]  # fmt: skip
    text = describe(spans, {5: "Dress, Elegant"})
    assert text.splitlines()[0] == "steps 0-1 (t 999-900, 5 fields, percent 0.0000-0.0998): 'Dress, Elegant'"


def test_partial_denoise_leaves_out_the_high_noise_stages():
    sigmas = denoise_tail(karras(40), 20)  # denoise 0.5
    spans = plan_windows(PromptSchedule.paper(), sigmas, TABLE)
    assert spans[0].start_step == 0 and spans[0].start_percent == 0.0
    assert spans[0].n_fields > 5  # the run starts below t=900
    assert_plan_well_formed(spans, sigmas, discrete_percent_to_sigma(TABLE))


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 60), st.floats(1.5, 12.0), st.integers(1, 998))
def test_any_two_stage_split_on_any_karras_run_is_exact(steps, rho, split):
    sigmas = karras(steps, rho)
    spans = plan_windows(PromptSchedule.two_stage(split), sigmas, TABLE, float32_percent_to_sigma)
    assert_plan_well_formed(spans, sigmas, float32_percent_to_sigma)
    k = first_step_below(sigmas, sigma_at(split, TABLE))
    expected = [(5, 0, steps)] if k == steps else [(10, 0, steps)] if k == 0 else [(5, 0, k), (10, k, steps)]
    assert [(s.n_fields, s.start_step, s.end_step) for s in spans] == expected


def test_step_form_switches_where_the_user_says():
    sigmas = karras(20)
    spans = plan_switch_steps(StepSchedule.parse("12"), sigmas, TABLE, float32_percent_to_sigma)
    assert [(s.n_fields, s.start_step, s.end_step) for s in spans] == [(5, 0, 12), (10, 12, 20)]
    assert_plan_well_formed(spans, sigmas, float32_percent_to_sigma)
    spans = plan_switch_steps(StepSchedule.parse("0:5, 4:7, 9:10"), sigmas, TABLE)
    assert [(s.n_fields, s.start_step, s.end_step) for s in spans] == [(5, 0, 4), (7, 4, 9), (10, 9, 20)]
    assert StepSchedule.parse("8:7, 12:10").starts == ((0, 5), (8, 7), (12, 10))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("25", r"switch step 25 is outside the run of 20 steps \(steps 0\.\.19\); use a step in 1\.\.19"),
        ("0:5, 20:10", "switch step 20 is outside the run of 20 steps"),
        ("0:5, 12:10, 8:7", "step 8 follows step 12; list steps in increasing order"),
        ("0:5, 12:11", "'12:11' shows 11 fields; use 1..10"),
        ("at step 12", "'at step 12' is not 'STEP:FIELDS'"),
    ],
)
def test_step_form_errors_name_the_step_and_the_fix(spec, message):
    with pytest.raises(ValueError, match=message):
        plan_switch_steps(StepSchedule.parse(spec), karras(20), TABLE)


def test_pose_stage_percents():
    spans = plan_windows(PromptSchedule.paper(), karras(20), TABLE)
    assert span_percents(spans, "all") == (0.0, 1.0)
    concept = span_percents(spans, "concept")
    assert concept == (0.0, spans[0].end_percent)
    assert span_percents(spans, "attribute") == (spans[1].start_percent, 1.0)
    assert span_percents(plan_windows(PromptSchedule.parse("999-0:10"), karras(5), TABLE), "concept") is None
    mixed = plan_windows(PromptSchedule.parse("999-700:5, 699-400:10, 399-0:5"), karras(20), TABLE)
    with pytest.raises(ValueError, match="concept stages are not consecutive"):
        span_percents(mixed, "concept")


# -- staged conditioning ------------------------------------------------------------------------
def encoded(tag: float) -> list:
    return [[torch.full((1, 2, 3), tag), {"pooled_output": torch.full((1, 3), tag)}]]


def design_conditioning(schedule: PromptSchedule) -> list:
    design = StagedDesign(HierarchicalPrompt.from_caption("Dress, Elegant, Party, , , Long, Short Sleeve"), schedule)
    out = []
    for stage, caption in design.stage_captions():
        out += stage_entries(encoded(stage.n_fields), stage, caption)
    return out


def test_stage_entries_carry_window_and_caption_and_leave_the_input_alone():
    source = encoded(1.0)
    stage = PromptSchedule.paper().stages[1]
    (entry,) = stage_entries(source, stage, "Dress, Long Dress")
    assert entry[0] is source[0][0]
    assert "start_percent" not in source[0][1]
    assert (entry[1]["start_percent"], entry[1]["end_percent"]) == stage_percents(stage)
    assert entry[1][STAGE_KEY] == {
        "t_high": 899, "t_low": 800, "n_fields": 6, "caption": "Dress, Long Dress", "level": "attribute"
    }  # fmt: skip


def test_staged_design_captions_are_cumulative():
    design = StagedDesign(
        HierarchicalPrompt.from_caption("Dress, Elegant, Party, , , Long, Short Sleeve"), PromptSchedule.paper()
    )
    assert [c for _, c in design.stage_captions(Level.CONCEPT)] == ["Dress, Elegant, Party"]
    assert [c for _, c in design.stage_captions(Level.ATTRIBUTE)] == [
        "Dress, Elegant, Party, Long Dress",
        "Dress, Elegant, Party, Long Dress, Short Sleeve",
        *["Dress, Elegant, Party, Long Dress, Short Sleeve"] * 4,
    ]


def test_concept_and_attribute_windows_cover_the_whole_range():
    conditioning = design_conditioning(PromptSchedule.paper())
    assert uncovered_percents(conditioning) == []
    concepts_only = [e for e in conditioning if e[1][STAGE_KEY]["level"] == "concept"]
    assert uncovered_percents(concepts_only) == [(pytest.approx(1 - 900 / 999), 1.0)]
    with pytest.raises(ValueError, match=r"\(999-900:5\) do not cover t=999\.\.0 once.*Connect AttributeEncode"):
        schedule_of(concepts_only)
    assert schedule_of(conditioning) == PromptSchedule.paper()


def test_restage_by_window_and_by_fields():
    sigmas = karras(20)
    conditioning = design_conditioning(PromptSchedule.paper()) + encoded(99.0)  # plus one plain entry
    spans = plan_windows(PromptSchedule.paper(), sigmas, TABLE)
    staged = restage(conditioning, spans, by_window=True)
    assert staged[0][0][0, 0, 0] == 99.0 and STAGE_KEY not in staged[0][1]  # plain entry kept as is
    assert [e[1][STAGE_KEY]["n_fields"] for e in staged[1:]] == [s.n_fields for s in spans]
    assert [(e[1]["start_percent"], e[1]["end_percent"]) for e in staged[1:]] == [
        (s.start_percent, s.end_percent) for s in spans
    ]
    to_sigma = discrete_percent_to_sigma(TABLE)
    assert steps_without_entry(staged[1:], sigmas, to_sigma) == []
    assert steps_without_entry(staged[1:3], sigmas, to_sigma) == list(range(spans[2].start_step, 20))

    by_steps = plan_switch_steps(StepSchedule.parse("0:5, 6:7, 10:10"), sigmas, TABLE)
    staged = restage(conditioning, by_steps, by_window=False)
    assert [float(e[0][0, 0, 0]) for e in staged[1:]] == [5.0, 7.0, 10.0]
    with pytest.raises(ValueError, match=r"steps 6-19 need the caption of 3 fields, .* holds captions of 5, 6, 7"):
        restage(conditioning, plan_switch_steps(StepSchedule.parse("0:5, 6:3"), sigmas, TABLE), by_window=False)


def test_free_text_in_attribute_order_and_conflicts():
    attrs = HierarchicalPrompt.parse("Long, , Puffed", first_field=6)
    assert attrs.values == {"clothing_length": "Long", "sleeve_type": "Puffed"}
    base = HierarchicalPrompt.from_caption("Dress, Elegant")
    with pytest.raises(ValueError, match="free_text: style is set twice, to 'Elegant' and to 'Vintage'; unset one"):
        base.merged(HierarchicalPrompt.from_caption(", Vintage"), strict=True, name="free_text")
    assert base.merged(HierarchicalPrompt.from_caption("Dress"), strict=True) == base


def test_percent_of_sigma_ends():
    assert percent_of_sigma(math.inf, TABLE) == 0.0
    assert percent_of_sigma(0.0, TABLE) == 1.0
    assert discrete_percent_to_sigma(TABLE)(0.0) == math.inf


def test_stage_for_run_uses_own_windows_or_an_override():
    sigmas = karras(12)
    conditioning = design_conditioning(PromptSchedule.paper())
    staged, spans = stage_for_run(conditioning, sigmas, TABLE)
    assert [s.stage for s in spans] == [s.stage for s in plan_windows(PromptSchedule.paper(), sigmas, TABLE)]
    assert len(staged) == len(spans)
    staged, spans = stage_for_run(conditioning, sigmas, TABLE, schedule=StepSchedule.parse("5"))
    assert [(float(e[0][0, 0, 0]), e[1]["end_percent"]) for e in staged] == [(5.0, spans[0].end_percent), (10.0, 1.0)]
    plain = encoded(1.0)
    assert stage_for_run(plain, sigmas, TABLE) == (plain, None)
    with pytest.raises(ValueError, match=r"positive: the schedule '0:5, 5:10' needs staged conditioning"):
        stage_for_run(plain, sigmas, TABLE, schedule=StepSchedule.parse("5"))
