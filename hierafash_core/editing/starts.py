"""Where an attribute edit starts: the paper's per-attribute timestep mapped onto any schedule.

The released HieraFashDiff code edits with 100 DDIM steps (timesteps 991, 981, ..., 1) and starts
attribute Aj at t = 991 - 80 * j: A1 911, A2 831, A3 751, A4 671, A5 591, then runs to t = 1
(DESIGN.md section 2). These are noise levels, not step fractions: a start timestep is mapped to
the model's sigma and the edit begins at the first step of the caller's schedule whose sigma is
at or below it. A caller may instead name a timestep or a step of the schedule directly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..schedule import sigma_at, timestep_of
from ..taxonomy import ATTRIBUTE_FIELDS, get_field

log = logging.getLogger(__name__)

RELEASED_FIRST_T = 991  # first timestep of the released 100-step DDIM schedule
RELEASED_STRIDE = 80  # timesteps skipped per attribute level (8 of the 10-wide DDIM steps)

# {"clothing_length": 911, "sleeve_length": 831, "sleeve_type": 751, "collar": 671, "hem": 591}
ATTRIBUTE_START_T: dict[str, int] = {
    field.key: RELEASED_FIRST_T - RELEASED_STRIDE * j for j, field in enumerate(ATTRIBUTE_FIELDS, start=1)
}

# A schedule value counts as "at" a start sigma within this relative tolerance, so that the
# released 100-step DDIM schedule starts A1 exactly at its t = 911 step and not one step later.
_SIGMA_RTOL = 1e-4


@dataclass(frozen=True)
class EditStart:
    """The first step of an edit on a given schedule.

    Attributes:
        step: index into the full schedule (``sigmas[step:]`` is the edit's run).
        sigma: the schedule's sigma at that step (the level the source is brought to).
        timestep: the continuous DDPM timestep of ``sigma`` on the model's table.
        reason: what chose it, for logs (``"A2 sleeve length: t=831"``).
    """

    step: int
    sigma: float
    timestep: float
    reason: str


def attribute_start_timestep(attribute: str) -> int:
    """The released code's start timestep for an attribute (key, label or code such as ``"A2"``)."""
    try:
        field = get_field(attribute)
    except ValueError as exc:
        raise ValueError(
            f"attribute={attribute!r} is not an attribute; use one of "
            f"{', '.join(f'{f.code} {f.key}' for f in ATTRIBUTE_FIELDS)}, or give a start timestep"
        ) from exc
    if field.key not in ATTRIBUTE_START_T:
        raise ValueError(
            f"attribute={attribute!r} is a concept, not an attribute (concepts are set in the draft); "
            f"use one of {', '.join(ATTRIBUTE_START_T)}"
        )
    return ATTRIBUTE_START_T[field.key]


def first_step_at_or_below(sigmas: Sequence[float] | torch.Tensor, sigma: float) -> int:
    """Index of the first step ``i < steps`` with ``sigmas[i] <= sigma`` (within a relative 1e-4).

    ``sigmas`` is a sampler schedule: ``steps + 1`` decreasing values ending at 0. Returns
    ``steps`` when no step qualifies (the start lies after the last step).
    """
    values = [float(s) for s in sigmas]
    steps = len(values) - 1
    for i in range(steps):
        if values[i] <= sigma * (1 + _SIGMA_RTOL):
            return i
    return steps


def resolve_start(
    sigmas: Sequence[float] | torch.Tensor,
    sigma_table: torch.Tensor,
    *,
    attribute: str | None = None,
    timestep: float | None = None,
    step: int | None = None,
) -> EditStart:
    """Choose the first step of an edit on the schedule ``sigmas``.

    Exactly one of ``attribute`` (the paper's start for it), ``timestep`` (0..999 on the model's
    table) or ``step`` (an index into ``sigmas``) is given.

    Args:
        sigmas: the full schedule, ``steps + 1`` decreasing values ending at 0.
        sigma_table: the model's sigma for each DDPM timestep, shape (1000,), increasing.

    Raises:
        ValueError: none or several of the three were given, or the start falls outside the run.
    """
    given = [name for name, v in (("attribute", attribute), ("timestep", timestep), ("step", step)) if v is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one of attribute, timestep or step to start an edit (got {given or 'none'})")
    values = [float(s) for s in sigmas]
    steps = len(values) - 1
    if steps < 1:
        raise ValueError(f"the schedule has {steps} steps; an edit needs at least one (raise steps)")

    if step is not None:
        if not 0 <= step < steps:
            raise ValueError(
                f"start step={step} is outside the run of {steps} steps; use 0..{steps - 1} "
                "(0 regenerates from the highest noise)"
            )
        sigma = values[step]
        return EditStart(step, sigma, timestep_of(sigma, sigma_table), f"step {step} of {steps}")

    if attribute is not None:
        t = float(attribute_start_timestep(attribute))
        reason = f"{attribute}: t={t:.0f}"
    else:
        t = float(timestep)
        t_max = len(sigma_table) - 1
        if not 0 <= t <= t_max:
            raise ValueError(f"start timestep={timestep} is outside 0..{t_max}; use e.g. 911 for A1 or 591 for A5")
        reason = f"timestep {t:g}"
    boundary = sigma_at(t, sigma_table)
    index = first_step_at_or_below(values, boundary)
    if index >= steps:
        raise ValueError(
            f"start {reason} (sigma {boundary:.4g}) lies after the last step of this {steps}-step schedule "
            f"(its lowest non-zero sigma is {values[steps - 1]:.4g}); raise the start timestep or the steps"
        )
    sigma = values[index]
    log.debug("edit start %s -> step %d of %d (sigma %.4g, t=%.1f)", reason, index, steps, sigma, t)
    return EditStart(index, sigma, timestep_of(sigma, sigma_table), reason)
