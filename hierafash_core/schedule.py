"""The prompt schedule: which caption fields the model sees at which noise level.

The paper trains with windows on the DDPM timestep t in 0..999 (DESIGN.md section 2):

    t >= 900: 5 fields (concepts only); 800-899: 6; 710-799: 7; 630-709: 8; 560-629: 9;
    500-559: 10; t < 500: all ten.

The windows are noise levels, not fractions of a step count. At inference each boundary
timestep is mapped to the model's sigma, and a stage starts at the first step whose sigma falls
below the boundary of the stage above it (which step that is depends on the scheduler). The
same table drives training captions (:meth:`PromptSchedule.fields_at`), so the two cannot
disagree.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .prompt import HierarchicalPrompt

NUM_TIMESTEPS = 1000
T_MAX = NUM_TIMESTEPS - 1


@dataclass(frozen=True)
class Stage:
    """Timesteps ``t_low..t_high`` (inclusive) show the first ``n_fields`` caption fields."""

    t_high: int
    t_low: int
    n_fields: int

    def __contains__(self, t: float) -> bool:
        return self.t_low <= t <= self.t_high + 0.999


@dataclass(frozen=True)
class PromptSchedule:
    """Ordered, gap-free stages covering t = 999 down to 0 (validated on creation)."""

    stages: tuple[Stage, ...]

    def __post_init__(self) -> None:
        stages = self.stages
        if not stages:
            raise ValueError("schedule has no stages; give at least one window such as '999-0:10'")
        if stages[0].t_high != T_MAX:
            raise ValueError(f"schedule starts at t={stages[0].t_high}; the first window must start at t={T_MAX}")
        if stages[-1].t_low != 0:
            raise ValueError(f"schedule ends at t={stages[-1].t_low}; the last window must end at t=0")
        for st in stages:
            if st.t_low > st.t_high:
                raise ValueError(f"window {st.t_high}-{st.t_low} is reversed; write it from high t to low t")
            if not 1 <= st.n_fields <= 10:
                raise ValueError(f"window {st.t_high}-{st.t_low} shows {st.n_fields} fields; use 1..10")
        for upper, lower in zip(stages, stages[1:], strict=False):
            if lower.t_high >= upper.t_low:
                raise ValueError(
                    f"windows {upper.t_high}-{upper.t_low} and {lower.t_high}-{lower.t_low} overlap; "
                    f"the second should start at t={upper.t_low - 1}"
                )
            if lower.t_high < upper.t_low - 1:
                raise ValueError(
                    f"gap between windows {upper.t_high}-{upper.t_low} and {lower.t_high}-{lower.t_low}: "
                    f"t={lower.t_high + 1}..{upper.t_low - 1} has no caption; start the second at t={upper.t_low - 1}"
                )

    # -- constructors --------------------------------------------------------------------------
    @classmethod
    def paper(cls) -> PromptSchedule:
        """The training windows of HieraFashDiff."""
        return cls.from_boundaries([(900, 5), (800, 6), (710, 7), (630, 8), (560, 9), (500, 10), (0, 10)])

    @classmethod
    def two_stage(cls, split_t: int = 500) -> PromptSchedule:
        """Concepts only above ``split_t``, every field from ``split_t - 1`` down."""
        if not 1 <= split_t <= T_MAX:
            raise ValueError(f"split_t={split_t} is outside 1..{T_MAX}")
        return cls.from_boundaries([(split_t, 5), (0, 10)])

    @classmethod
    def from_boundaries(cls, lows: Sequence[tuple[int, int]]) -> PromptSchedule:
        """Stages from ``[(t_low, n_fields), ...]`` ordered from high noise to low."""
        stages, high = [], T_MAX
        for low, n in lows:
            stages.append(Stage(high, int(low), int(n)))
            high = int(low) - 1
        return cls(tuple(stages))

    @classmethod
    def parse(cls, spec: str) -> PromptSchedule:
        """Parse ``"paper"``, ``"two-stage"``, ``"two-stage:600"`` or windows such as
        ``"999-900:5, 899-500:8, 499-0:10"`` (high t first; fields shown after the colon)."""
        text = spec.strip().lower()
        if text in ("", "paper", "default"):
            return cls.paper()
        if text.startswith("two-stage") or text.startswith("two_stage"):
            _, _, rest = text.partition(":")
            return cls.two_stage(int(rest) if rest.strip() else 500)
        stages = []
        for part in re.split(r"[,;\n]+", text):
            part = part.strip()
            if not part:
                continue
            m = re.fullmatch(r"(\d+)\s*-\s*(\d+)\s*:\s*(\d+)", part)
            if not m:
                raise ValueError(
                    f"schedule window {part!r} is not 'HIGH-LOW:FIELDS' (e.g. '999-900:5'); "
                    "or use 'paper' or 'two-stage:500'"
                )
            stages.append(Stage(int(m[1]), int(m[2]), int(m[3])))
        return cls(tuple(stages))

    # -- queries -------------------------------------------------------------------------------
    def fields_at(self, t: float) -> int:
        """How many caption fields the model sees at timestep ``t`` (0..999)."""
        if not 0 <= t <= T_MAX + 0.999:
            raise ValueError(f"timestep t={t} is outside 0..{T_MAX}")
        for stage in self.stages:
            if t >= stage.t_low:
                return stage.n_fields
        return self.stages[-1].n_fields

    def caption_at(self, prompt: HierarchicalPrompt, t: float) -> str:
        """The caption a training example with ``prompt`` shows at timestep ``t`` (0..999).

        This is the staged caption of the paper's fine-tuning: ``prompt.caption(fields_at(t))``.
        Training (``hierafash_core.training``) and inference both go through :meth:`fields_at` and
        :meth:`HierarchicalPrompt.caption`, so the text seen at a noise level is the same in both.
        """
        return prompt.caption(self.fields_at(float(t)))

    def captions_at(
        self, prompts: Sequence[HierarchicalPrompt], timesteps: Sequence[float] | torch.Tensor
    ) -> list[str]:
        """:meth:`caption_at` for a batch: one prompt and one timestep per example."""
        ts = timesteps.tolist() if isinstance(timesteps, torch.Tensor) else list(timesteps)
        if len(ts) != len(prompts):
            raise ValueError(f"got {len(prompts)} prompts and {len(ts)} timesteps; give one timestep per prompt")
        return [self.caption_at(p, t) for p, t in zip(prompts, ts, strict=True)]

    def merged(self) -> PromptSchedule:
        """Adjacent stages that show the same fields joined (fewer conditionings, same result)."""
        out: list[Stage] = []
        for st in self.stages:
            if out and out[-1].n_fields == st.n_fields:
                out[-1] = Stage(out[-1].t_high, st.t_low, st.n_fields)
            else:
                out.append(st)
        return PromptSchedule(tuple(out))

    def spec(self) -> str:
        return ", ".join(f"{s.t_high}-{s.t_low}:{s.n_fields}" for s in self.stages)


# -- noise levels -------------------------------------------------------------------------------
def sd_alphas_cumprod(
    beta_start: float = 0.00085, beta_end: float = 0.012, steps: int = NUM_TIMESTEPS
) -> torch.Tensor:
    """The cumulative alphas of Stable Diffusion's scaled-linear DDPM schedule, shape (steps,)."""
    betas = torch.linspace(beta_start**0.5, beta_end**0.5, steps, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


def timestep_sigmas(alphas_cumprod: torch.Tensor | None = None) -> torch.Tensor:
    """sigma(t) = sqrt((1 - a_t) / a_t) for t = 0..999, increasing; shape (1000,)."""
    ac = sd_alphas_cumprod() if alphas_cumprod is None else alphas_cumprod.double()
    return ((1 - ac) / ac).sqrt()


def sigma_at(t: float, sigma_table: torch.Tensor) -> float:
    """The sigma of a (possibly fractional) timestep, interpolated in log sigma as k-diffusion does."""
    if not 0 <= t <= len(sigma_table) - 1:
        raise ValueError(f"timestep t={t} is outside 0..{len(sigma_table) - 1}")
    lo = int(math.floor(t))
    hi = min(lo + 1, len(sigma_table) - 1)
    w = t - lo
    log_s = (1 - w) * math.log(float(sigma_table[lo])) + w * math.log(float(sigma_table[hi]))
    return math.exp(log_s)


def timestep_of(sigma: float, sigma_table: torch.Tensor) -> float:
    """Inverse of :func:`sigma_at`: the continuous timestep of ``sigma`` (clamped to the table)."""
    logs = sigma_table.double().log()
    ls = math.log(max(float(sigma), 1e-10))
    if ls <= float(logs[0]):
        return 0.0
    if ls >= float(logs[-1]):
        return float(len(sigma_table) - 1)
    hi = int(torch.searchsorted(logs, torch.tensor([ls], dtype=torch.float64)).item())
    lo = hi - 1
    w = (ls - float(logs[lo])) / (float(logs[hi]) - float(logs[lo]))
    return lo + w


def first_step_below(sigmas: Sequence[float] | torch.Tensor, boundary_sigma: float) -> int:
    """Index of the first step whose sigma is below ``boundary_sigma``.

    ``sigmas`` is a sampler schedule (``steps + 1`` values, decreasing, ending at 0); a step i
    runs from ``sigmas[i]`` to ``sigmas[i+1]``. Returns ``steps`` when no step qualifies.
    """
    values = [float(s) for s in sigmas]
    steps = len(values) - 1
    for i in range(steps):
        if values[i] < boundary_sigma:
            return i
    return steps


def stage_steps(schedule: PromptSchedule, sigmas, sigma_table: torch.Tensor) -> list[tuple[Stage, int, int]]:
    """Split a sampler run into the stages it passes through.

    Returns ``[(stage, start_step, end_step), ...]`` with ``start < end``, consecutive and
    covering ``0..steps``; stages that no step falls in are left out.
    """
    steps = len(sigmas) - 1
    out: list[tuple[Stage, int, int]] = []
    start = 0
    for i, stage in enumerate(schedule.stages):
        if i == len(schedule.stages) - 1:
            end = steps
        else:
            # This stage ends where the next one (lower t) starts: the first step below sigma(t_low).
            end = max(start, first_step_below(sigmas, sigma_at(stage.t_low, sigma_table)))
        if end > start:
            out.append((stage, start, end))
        start = end
    return out
