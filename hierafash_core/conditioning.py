"""Staged CONDITIONING as plain data: windows per stage, and re-windowing onto a sampler run.

ComfyUI's CONDITIONING is a list of ``[cross_attn, options]`` pairs; ``cross_attn`` is a tensor
(B, 77, 768) for SD1.5 and ``options`` a dict (``pooled_output``, ``start_percent``, ...). This
module only reads and copies those lists, so it imports nothing from ComfyUI.

An entry made by ConceptEncode or AttributeEncode carries, besides its ``start_percent`` and
``end_percent`` (the stage's timestep window, which every core sampler honours), a plain dict
under :data:`STAGE_KEY`::

    {"t_high": 999, "t_low": 900, "n_fields": 5, "caption": "Dress, Elegant", "level": "concept"}

so a staged sampler can move the window onto exact step boundaries (:func:`restage`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from .schedule import PromptSchedule, Stage
from .stage_plan import (
    CONCEPT_FIELDS_COUNT,
    StageSpan,
    StepSchedule,
    plan_switch_steps,
    plan_windows,
    stage_percents,
)

log = logging.getLogger(__name__)

STAGE_KEY = "hierafash_stage"
"""Key of the stage description in a conditioning entry's options dict."""


def stage_entries(encoded: Sequence, stage: Stage, caption: str) -> list[list]:
    """Copies of ``encoded`` (a CONDITIONING of one caption) limited to ``stage``'s window.

    Each entry gets ``start_percent``/``end_percent`` of the window and the :data:`STAGE_KEY`
    description; the tensors are shared, the options dicts are new.
    """
    start, end = stage_percents(stage)
    info = {
        "t_high": stage.t_high,
        "t_low": stage.t_low,
        "n_fields": stage.n_fields,
        "caption": caption,
        "level": "concept" if stage.n_fields <= CONCEPT_FIELDS_COUNT else "attribute",
    }
    out = []
    for cond, options in encoded:
        opts = dict(options)
        opts["start_percent"] = start
        opts["end_percent"] = end
        opts[STAGE_KEY] = dict(info)
        out.append([cond, opts])
    return out


def stage_info(entry: Sequence) -> dict | None:
    """The stage description of one ``[cross_attn, options]`` entry, or ``None`` for a plain entry."""
    info = entry[1].get(STAGE_KEY) if isinstance(entry[1], dict) else None
    return info if isinstance(info, dict) else None


def _window(info: dict) -> tuple[int, int]:
    return int(info["t_high"]), int(info["t_low"])


def schedule_of(conditioning: Sequence, name: str = "positive") -> PromptSchedule | None:
    """The timestep windows the staged entries of ``conditioning`` carry, or ``None`` if there are none.

    Raises:
        ValueError: the windows leave a gap or overlap (e.g. ConceptEncode without AttributeEncode),
            with the windows found and the fix.
    """
    windows: dict[tuple[int, int], int] = {}
    for entry in conditioning:
        info = stage_info(entry)
        if info is not None:
            windows.setdefault(_window(info), int(info["n_fields"]))
    if not windows:
        return None
    stages = tuple(Stage(hi, lo, n) for (hi, lo), n in sorted(windows.items(), key=lambda kv: -kv[0][0]))
    try:
        return PromptSchedule(stages)
    except ValueError as exc:
        found = ", ".join(f"{s.t_high}-{s.t_low}:{s.n_fields}" for s in stages)
        raise ValueError(
            f"{name}: the stage windows in the conditioning ({found}) do not cover t=999..0 once: {exc}. "
            "Connect AttributeEncode's output next to ConceptEncode's (both from the same design), or give "
            "ConceptEncode a schedule that ends at t=0 such as '999-0:5'"
        ) from None


def restage(conditioning: Sequence, spans: Sequence[StageSpan], by_window: bool, name: str = "positive") -> list:
    """Re-window the staged entries of ``conditioning`` onto the ``spans`` of a run.

    Args:
        spans: from :func:`~hierafash_core.stage_plan.plan_windows` or ``plan_switch_steps``.
        by_window: match a span to entries by its timestep window (spans planned from this
            conditioning's own windows); otherwise by the number of fields it shows.

    Returns:
        A new CONDITIONING: plain entries unchanged, then for each span copies of its entries with
        ``start_percent``/``end_percent`` set to the span's switch percents. Entries of stages
        that no step of the run falls in are left out.

    Raises:
        ValueError: a span needs a caption of ``n`` fields and no staged entry shows that many.
    """
    plain = [entry for entry in conditioning if stage_info(entry) is None]
    groups: dict[tuple[int, int], list] = {}
    for entry in conditioning:
        info = stage_info(entry)
        if info is not None:
            groups.setdefault(_window(info), []).append(entry)
    out = list(plain)
    for span in spans:
        if by_window:
            if span.stage is None:
                raise ValueError("restage(by_window=True) needs spans planned from timestep windows")
            group = groups.get((span.stage.t_high, span.stage.t_low), [])
        else:
            group = next((g for g in groups.values() if int(stage_info(g[0])["n_fields"]) == span.n_fields), [])
        if not group:
            have = sorted({int(stage_info(g[0])["n_fields"]) for g in groups.values()})
            raise ValueError(
                f"{name}: steps {span.start_step}-{span.end_step - 1} need the caption of {span.n_fields} fields, "
                f"but the conditioning holds captions of {', '.join(map(str, have))} fields; choose a schedule "
                "with those field counts, or give ConceptEncode the same schedule"
            )
        for cond, options in group:
            opts = dict(options)
            opts["start_percent"] = span.start_percent
            opts["end_percent"] = span.end_percent
            out.append([cond, opts])
    return out


def captions_by_fields(conditioning: Sequence) -> dict[int, str]:
    """``{n_fields: caption}`` of the staged entries (the first caption seen for each count)."""
    out: dict[int, str] = {}
    for entry in conditioning:
        info = stage_info(entry)
        if info is not None:
            out.setdefault(int(info["n_fields"]), str(info.get("caption", "")))
    return out


def uncovered_percents(conditioning: Sequence, eps: float = 1e-9) -> list[tuple[float, float]]:
    """Percent ranges in 0..1 where no entry of ``conditioning`` is active (empty when covered).

    An entry without ``start_percent``/``end_percent`` is active throughout. A step in an
    uncovered range gets no positive prediction, which ComfyUI does not report.
    """
    spans = sorted(
        (float(opts.get("start_percent", 0.0)), float(opts.get("end_percent", 1.0))) for _, opts in conditioning
    )
    gaps, reach = [], 0.0
    for start, end in spans:
        if start > reach + eps:
            gaps.append((reach, start))
        reach = max(reach, end)
    if reach < 1.0 - eps:
        gaps.append((reach, 1.0))
    return gaps


def steps_without_entry(conditioning: Sequence, sigmas: Sequence[float], percent_to_sigma) -> list[int]:
    """Steps of the run whose sigma no entry of ``conditioning`` is active at.

    An entry is active where ``sigma(end_percent) <= sigma <= sigma(start_percent)``, as ComfyUI
    checks it; ``percent_to_sigma`` is the host's conversion (``model_sampling.percent_to_sigma``).
    """
    windows = []
    for _, opts in conditioning:
        high = percent_to_sigma(float(opts["start_percent"])) if "start_percent" in opts else math.inf
        low = percent_to_sigma(float(opts["end_percent"])) if "end_percent" in opts else 0.0
        windows.append((float(high), float(low)))
    values = [float(s) for s in sigmas]
    return [i for i in range(len(values) - 1) if not any(lo <= values[i] <= hi for hi, lo in windows)]


def stage_for_run(
    conditioning: Sequence,
    sigmas: Sequence[float],
    sigma_table,
    percent_to_sigma=None,
    schedule: PromptSchedule | StepSchedule | None = None,
    name: str = "positive",
) -> tuple[list, list[StageSpan] | None]:
    """Re-window staged ``conditioning`` so its captions switch at exact steps of the run ``sigmas``.

    Args:
        sigmas: the run (``steps + 1`` values, at least one step).
        sigma_table: the model's sigma per timestep (ComfyUI: ``model_sampling.sigmas``).
        percent_to_sigma: the host's conversion (ComfyUI: ``model_sampling.percent_to_sigma``).
        schedule: ``None`` uses the windows the entries carry; a :class:`PromptSchedule` or a
            :class:`StepSchedule` overrides them (entries matched by their number of fields).

    Returns:
        ``(conditioning, spans)``; ``spans`` is ``None`` (and the conditioning unchanged) when no
        entry is staged and no schedule is given.

    Raises:
        ValueError: gaps or overlaps in the windows, a switch step outside the run, or a stage
            whose caption the conditioning lacks; each names the value and the fix.
    """
    if schedule is None:
        own = schedule_of(conditioning, name)
        if own is None:
            return list(conditioning), None
        spans = plan_windows(own, sigmas, sigma_table, percent_to_sigma)
        return restage(conditioning, spans, by_window=True, name=name), spans
    if not any(stage_info(e) is not None for e in conditioning):
        raise ValueError(
            f"{name}: the schedule {schedule.spec()!r} needs staged conditioning (ConceptEncode/AttributeEncode), "
            "but the conditioning holds none; connect those nodes or use the conditioning's own windows"
        )
    if isinstance(schedule, StepSchedule):
        spans = plan_switch_steps(schedule, sigmas, sigma_table, percent_to_sigma)
    else:
        spans = plan_windows(schedule, sigmas, sigma_table, percent_to_sigma)
    return restage(conditioning, spans, by_window=False, name=name), spans
