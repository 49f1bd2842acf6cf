"""A prompt schedule laid onto a real sampler run: which steps each stage owns, and where it switches.

A sampler run is a sigma schedule of ``steps + 1`` decreasing values; step ``i`` moves the latent
from ``sigmas[i]`` to ``sigmas[i + 1]``. Two forms of schedule are laid onto it:

- windows of noise level (:class:`~hierafash_core.schedule.PromptSchedule`, the paper's form): a
  stage starts at the first step whose sigma falls below the sigma of the previous stage's lowest
  timestep, so the step depends on the scheduler (DESIGN.md section 2);
- switch steps (:class:`StepSchedule`, for people who think "switch at step 12"): taken as given.

Either way the result is a list of :class:`StageSpan`. Each switch "at step k" is placed at a sigma
strictly between ``sigmas[k]`` and ``sigmas[k - 1]``, so a conditioning window that ComfyUI checks
by sigma (``start_percent``/``end_percent``) changes exactly at step k. The switch sigma sits close
to ``sigmas[k]`` (:data:`SWITCH_POSITION`): the extra evaluations that multi-evaluation samplers
make inside step ``k - 1`` (dpm_2's midpoint, seeds' thirds) keep the earlier caption; an
evaluation at ``sigmas[k]`` itself (heun's corrector) gets the new one, as step k does.

ComfyUI's percent for a sigma: ``percent = 1 - t / 999`` with ``t`` the (fractional) timestep of
that sigma, interpolated in log sigma; ``percent <= 0`` means "from the start", ``>= 1`` "to the end".
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .schedule import T_MAX, PromptSchedule, Stage, sigma_at, stage_steps, timestep_of

log = logging.getLogger(__name__)

SWITCH_POSITION = 0.9
"""Where a switch sigma sits between ``sigmas[k - 1]`` (0) and ``sigmas[k]`` (1), in log sigma."""

CONCEPT_FIELDS_COUNT = 5
"""Stages showing at most this many fields are concept (ideation) stages; the rest are attribute stages."""

_BISECT_ITERATIONS = 64  # halvings of the percent interval: far below float32 resolution

PercentToSigma = Callable[[float], float]


# -- sigma schedules: the invariants every run relies on ---------------------------------------
def as_sigmas(sigmas: Sequence[float] | torch.Tensor, name: str = "sigmas") -> list[float]:
    """Check a sampler schedule and return it as floats.

    Raises:
        ValueError: not 1-D, empty, not finite, negative, or increasing somewhere.
    """
    if isinstance(sigmas, torch.Tensor):
        if sigmas.ndim != 1:
            raise ValueError(f"{name}: expected a 1-D schedule, got shape {tuple(sigmas.shape)}")
        values = [float(s) for s in sigmas.detach().double().cpu()]
    else:
        values = [float(s) for s in sigmas]
    if not values:
        raise ValueError(f"{name} is empty: a run needs steps + 1 sigma values (denoise 0 runs no step)")
    for i, v in enumerate(values):
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"{name}[{i}]={v}: sigmas must be finite and >= 0")
    for i in range(len(values) - 1):
        if values[i + 1] > values[i]:
            raise ValueError(
                f"{name}[{i + 1}]={values[i + 1]:.6g} is above {name}[{i}]={values[i]:.6g}: "
                "a sampler schedule decreases; reverse it or use a scheduler's sigmas"
            )
    return values


def full_steps_for_denoise(steps: int, denoise: float) -> int:
    """How many steps the full schedule has when a run of ``steps`` denoises only ``denoise``.

    ComfyUI's KSampler computes ``int(steps / denoise)`` steps and keeps the last ``steps + 1``
    sigmas; ``denoise >= 0.9999`` is a full run and ``denoise <= 0`` runs no step (returns 0).
    """
    if steps < 0:
        raise ValueError(f"steps={steps}: must be at least 0")
    if not 0.0 <= denoise <= 1.0:
        raise ValueError(f"denoise={denoise}: must be in 0..1 (1 = from pure noise)")
    if denoise > 0.9999:
        return steps
    if denoise <= 0.0:
        return 0
    return int(steps / denoise)


def denoise_tail(full_sigmas: Sequence[float] | torch.Tensor, steps: int) -> list[float]:
    """The last ``steps + 1`` values of a full schedule: the run of a partial denoise.

    Written without ``x[-(steps + 1):]`` slicing tricks so ``steps = 0`` gives the final sigma
    alone (one value, no step) rather than an empty or a whole schedule.
    """
    values = as_sigmas(full_sigmas, "full_sigmas")
    if not 0 <= steps <= len(values) - 1:
        raise ValueError(f"steps={steps}: the full schedule has only {len(values) - 1} steps")
    return values[len(values) - 1 - steps :]


def split_sigmas(sigmas: Sequence[float] | torch.Tensor, step: int) -> tuple[list[float], list[float]]:
    """Split a run at ``step``: ``(high, low)`` share ``sigmas[step]``, and ``high + low[1:] == sigmas``.

    ``step = 0`` gives ``high = [sigmas[0]]`` (no step) and ``step = steps`` gives ``low = [sigmas[-1]]``.
    """
    values = as_sigmas(sigmas)
    steps = len(values) - 1
    if not 0 <= step <= steps:
        raise ValueError(f"step={step} is outside the run: 0..{steps} (steps={steps})")
    return values[: step + 1], values[step:]


# -- percents -----------------------------------------------------------------------------------
def percent_of_sigma(sigma: float, sigma_table: torch.Tensor) -> float:
    """ComfyUI's percent for ``sigma`` on a discrete model (1000 timesteps): ``1 - t / 999``."""
    if sigma == math.inf:
        return 0.0
    if sigma <= 0:
        return 1.0
    t = timestep_of(sigma, sigma_table)
    return 1.0 - t / (len(sigma_table) - 1)


def discrete_percent_to_sigma(sigma_table: torch.Tensor) -> PercentToSigma:
    """The inverse of :func:`percent_of_sigma`, with ComfyUI's ends (0 -> no upper bound, 1 -> 0)."""
    last = len(sigma_table) - 1

    def percent_to_sigma(percent: float) -> float:
        if percent <= 0.0:
            return math.inf
        if percent >= 1.0:
            return 0.0
        return sigma_at((1.0 - percent) * last, sigma_table)

    return percent_to_sigma


def stage_percents(stage: Stage) -> tuple[float, float]:
    """ComfyUI ``(start_percent, end_percent)`` of a timestep window, for the core KSampler.

    Adjacent stages share their boundary percent (``1 - t_low / 999``), so windows built from a
    validated schedule cover 0..1 with no gap; the first starts at 0 and the last ends at 1.
    """
    start = 0.0 if stage.t_high >= T_MAX else 1.0 - (stage.t_high + 1) / T_MAX
    end = 1.0 if stage.t_low <= 0 else 1.0 - stage.t_low / T_MAX
    return start, end


def switch_sigma(sigmas: Sequence[float], k: int) -> float:
    """The sigma at which a caption switch "at step k" is placed (strictly inside ``(sigmas[k], sigmas[k-1])``).

    Raises:
        ValueError: k is not an inner step, or ``sigmas[k] == sigmas[k - 1]`` (no sigma separates them).
    """
    steps = len(sigmas) - 1
    if not 1 <= k <= steps - 1:
        raise ValueError(f"switch step {k} is outside the run: use a step in 1..{steps - 1} (steps={steps})")
    above, below = float(sigmas[k - 1]), float(sigmas[k])
    if not above > below > 0:
        raise ValueError(
            f"steps {k - 1} and {k} share sigma {below:.6g}: a switch at step {k} cannot be told apart by "
            "noise level; move the switch by one step or use another scheduler"
        )
    return math.exp(math.log(above) + SWITCH_POSITION * (math.log(below) - math.log(above)))


def switch_percent(
    sigma_above: float,
    sigma_below: float,
    target: float,
    percent_to_sigma: PercentToSigma,
    guess: float | None = None,
) -> float:
    """A percent whose sigma (through ``percent_to_sigma``) lies strictly inside ``(sigma_below, sigma_above)``.

    Tries ``guess`` (e.g. :func:`percent_of_sigma` of ``target``) first, else finds the percent of
    ``target`` by bisection; the host's own conversion is the judge, so float32 rounding in it
    cannot move the switch to a neighbouring step.
    """
    if guess is not None and 0.0 < guess < 1.0 and sigma_below < percent_to_sigma(guess) < sigma_above:
        return guess
    lo, hi = 0.0, 1.0  # percent_to_sigma decreases: lo side is above, hi side below
    for _ in range(_BISECT_ITERATIONS):
        mid = 0.5 * (lo + hi)
        value = percent_to_sigma(mid)
        if value > target:
            lo = mid
        else:
            hi = mid
    for p in (lo, hi, 0.5 * (lo + hi)):
        if sigma_below < percent_to_sigma(p) < sigma_above:
            return p
    # The target is unreachable (a sigma outside the model's range): fall back to any inside point.
    lo, hi = 0.0, 1.0
    for _ in range(_BISECT_ITERATIONS):
        mid = 0.5 * (lo + hi)
        value = percent_to_sigma(mid)
        if value >= sigma_above:
            lo = mid
        elif value <= sigma_below:
            hi = mid
        else:
            return mid
    raise ValueError(
        f"no percent maps between sigma {sigma_below:.6g} and {sigma_above:.6g} on this model: the switch "
        "lies outside the model's noise range; move it one step"
    )


# -- the step form ------------------------------------------------------------------------------
@dataclass(frozen=True)
class StepSchedule:
    """Stages by step: ``starts`` is ``((first_step, n_fields), ...)`` with the first at step 0.

    Parse ``"12"`` (concepts for steps 0..11, every field from step 12) or ``"0:5, 8:7, 12:10"``
    (caption of 5 fields from step 0, 7 from step 8, 10 from step 12). Steps count the steps the
    run executes (with denoise below 1, step 0 is the first step that runs).
    """

    starts: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        if not self.starts:
            raise ValueError("switch steps: none given; write e.g. '12' or '0:5, 12:10'")
        if self.starts[0][0] != 0:
            raise ValueError(f"switch steps: the first stage starts at step {self.starts[0][0]}; it must start at 0")
        for (a, _), (b, _) in zip(self.starts, self.starts[1:], strict=False):
            if b <= a:
                raise ValueError(f"switch steps: step {b} follows step {a}; list steps in increasing order")
        for step, n in self.starts:
            if not 1 <= n <= 10:
                raise ValueError(f"switch steps: '{step}:{n}' shows {n} fields; use 1..10")

    @classmethod
    def parse(cls, spec: str) -> StepSchedule:
        text = str(spec).strip()
        if re.fullmatch(r"\d+", text):
            return cls(((0, CONCEPT_FIELDS_COUNT), (int(text), 10)))
        starts: list[tuple[int, int]] = []
        for part in re.split(r"[,;\n]+", text):
            part = part.strip()
            if not part:
                continue
            m = re.fullmatch(r"(\d+)\s*:\s*(\d+)", part)
            if not m:
                raise ValueError(
                    f"switch steps: {part!r} is not 'STEP:FIELDS'; write e.g. '12' (concepts, then every field "
                    "from step 12) or '0:5, 8:7, 12:10'"
                )
            starts.append((int(m[1]), int(m[2])))
        if starts and starts[0][0] != 0:
            # Steps before the first listed one show the concepts; said in the node's tooltip.
            starts.insert(0, (0, CONCEPT_FIELDS_COUNT))
        return cls(tuple(starts))

    def segments(self, steps: int) -> list[tuple[int, int, int]]:
        """``[(start_step, end_step, n_fields), ...]`` covering ``0..steps``.

        Raises:
            ValueError: a switch step at or beyond the end of the run.
        """
        for step, _ in self.starts[1:]:
            if step >= steps:
                raise ValueError(
                    f"switch step {step} is outside the run of {steps} steps (steps 0..{steps - 1}); "
                    f"use a step in 1..{max(steps - 1, 1)} or raise steps"
                )
        bounds = [s for s, _ in self.starts] + [steps]
        return [(bounds[i], bounds[i + 1], n) for i, (_, n) in enumerate(self.starts)]

    def spec(self) -> str:
        return ", ".join(f"{s}:{n}" for s, n in self.starts)


# -- the plan -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class StageSpan:
    """One stage on a run: steps ``start_step <= i < end_step`` show the first ``n_fields`` fields.

    ``sigma_start``/``sigma_end`` bound the noise levels the stage answers (``inf`` above the
    first, ``0`` below the last); ``start_percent``/``end_percent`` are the same bounds as ComfyUI
    percents. ``stage`` is the timestep window it came from (``None`` in the step form).
    """

    n_fields: int
    start_step: int
    end_step: int
    sigma_start: float
    sigma_end: float
    start_percent: float
    end_percent: float
    stage: Stage | None = None

    @property
    def steps(self) -> int:
        return self.end_step - self.start_step

    @property
    def is_concept(self) -> bool:
        return self.n_fields <= CONCEPT_FIELDS_COUNT


def _plan(
    segments: list[tuple[int, int, int, Stage | None]],
    sigmas: list[float],
    sigma_table: torch.Tensor,
    percent_to_sigma: PercentToSigma | None,
) -> list[StageSpan]:
    to_sigma = percent_to_sigma or discrete_percent_to_sigma(sigma_table)
    bounds: dict[int, tuple[float, float]] = {}  # switch step -> (sigma, percent)
    for _, end, _, _ in segments[:-1]:
        target = switch_sigma(sigmas, end)
        guess = percent_of_sigma(target, sigma_table)
        p = switch_percent(sigmas[end - 1], sigmas[end], target, to_sigma, guess)
        bounds[end] = (to_sigma(p), p)
    out = []
    for i, (start, end, n, stage) in enumerate(segments):
        s_hi, p_hi = (math.inf, 0.0) if i == 0 else bounds[start]
        s_lo, p_lo = (0.0, 1.0) if i == len(segments) - 1 else bounds[end]
        out.append(StageSpan(n, start, end, s_hi, s_lo, p_hi, p_lo, stage))
    return out


def plan_windows(
    schedule: PromptSchedule,
    sigmas: Sequence[float] | torch.Tensor,
    sigma_table: torch.Tensor,
    percent_to_sigma: PercentToSigma | None = None,
) -> list[StageSpan]:
    """Lay timestep windows onto a run: each stage starts at the first step below its upper neighbour.

    Args:
        schedule: the windows (validated gap-free).
        sigmas: the run, ``steps + 1`` decreasing values (usually ending at 0), at least one step.
        sigma_table: the model's sigma of each timestep, shape (1000,), increasing.
        percent_to_sigma: the host's conversion (ComfyUI: ``model_sampling.percent_to_sigma``);
            the switch percents are checked against it. Default: the discrete mapping of the table.

    Returns:
        Spans in order, consecutive, covering steps ``0..steps``; stages no step falls in are left
        out (a partial denoise starts below the high-noise stages).
    """
    values = as_sigmas(sigmas)
    if len(values) < 2:
        raise ValueError("sigmas: the run has no step (one value); raise steps or denoise")
    segments = [(a, b, st.n_fields, st) for st, a, b in stage_steps(schedule, values, sigma_table)]
    return _plan(segments, values, sigma_table, percent_to_sigma)


def plan_switch_steps(
    schedule: StepSchedule,
    sigmas: Sequence[float] | torch.Tensor,
    sigma_table: torch.Tensor,
    percent_to_sigma: PercentToSigma | None = None,
) -> list[StageSpan]:
    """Lay a step schedule onto a run (the same result type as :func:`plan_windows`).

    Raises:
        ValueError: a switch step outside the run (message names the step and the valid range).
    """
    values = as_sigmas(sigmas)
    if len(values) < 2:
        raise ValueError("sigmas: the run has no step (one value); raise steps or denoise")
    segments = [(a, b, n, None) for a, b, n in schedule.segments(len(values) - 1)]
    return _plan(segments, values, sigma_table, percent_to_sigma)


def span_percents(spans: Sequence[StageSpan], which: str) -> tuple[float, float] | None:
    """ComfyUI ``(start_percent, end_percent)`` covering the ``"all"``, ``"concept"`` or ``"attribute"`` spans.

    Returns ``None`` when no span of that kind is in the run. Raises if the chosen spans are not
    consecutive (a custom schedule that interleaves concept and attribute stages).
    """
    if which not in ("all", "concept", "attribute"):
        raise ValueError(f"stages={which!r}: use 'all', 'concept' or 'attribute'")
    idx = [i for i, s in enumerate(spans) if which == "all" or s.is_concept == (which == "concept")]
    if not idx:
        return None
    if idx != list(range(idx[0], idx[-1] + 1)):
        raise ValueError(
            f"the {which} stages are not consecutive in this schedule; reorder the windows so that "
            "concept stages (5 fields or fewer) come before attribute stages"
        )
    return spans[idx[0]].start_percent, spans[idx[-1]].end_percent


def describe(spans: Sequence[StageSpan], captions: dict[int, str] | None = None) -> str:
    """One line per span: steps, window, fields and (when given) the caption text."""
    lines = []
    for s in spans:
        window = f"t {s.stage.t_high}-{s.stage.t_low}, " if s.stage else ""
        text = f": {captions[s.n_fields]!r}" if captions and s.n_fields in captions else ""
        where = f"step {s.start_step}" if s.steps == 1 else f"steps {s.start_step}-{s.end_step - 1}"
        lines.append(f"{where} ({window}{s.n_fields} fields, percent {s.start_percent:.4f}-{s.end_percent:.4f}){text}")
    return "\n".join(lines)
