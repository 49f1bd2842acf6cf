"""Gradient guidance that keeps the region outside the edit mask close to the source.

HieraFashDiff describes a differentiable loss on the non-edit region that steers sampling by its
gradient (its released code never runs it). The form used here (DESIGN.md section 2):

    L(x) = || (1 - m) * (D(x, sigma) - z0_src) ||^2          (sum over every latent value)
    x   <- x - lambda * dL/dx                                  (before the step)

| symbol   | here        | meaning                                                      |
|----------|-------------|--------------------------------------------------------------|
| z_t, x   | ``x``       | latent at noise level sigma (k-diffusion scaling, z_t / sqrt(alpha_bar)) |
| z0_hat   | ``D``       | the model's clean estimate D(x, sigma) (CFG applied)        |
| z0_src   | ``source``  | the latent being edited                                      |
| m        | ``mask``    | 1 where the edit may change the design, soft on edges        |
| lambda   | ``weight``  | guidance weight                                              |

Gradient paths:

- ``CLEAN_ESTIMATE``: the noise prediction eps = (x - D) / sigma is held constant, so
  D(x') = x' - sigma * eps and dD/dx is the identity. No backward pass through the model; the
  update costs a few element-wise operations. With this path, weight 0.5 moves the clean estimate
  outside the mask exactly onto the source (the update is 2 * lambda * (1 - m)^2 * (D - z0_src));
  weights of 1 or more overshoot and diverge.
- ``THROUGH_MODEL``: autograd through the denoiser, so the model's own Jacobian shapes the update
  (the content inside the mask is pulled to agree with what is kept). One forward pass with
  activations kept plus one backward pass per inner iteration.

The gradient is taken on a detached clone with grad enabled locally, so it works where the host
runs everything under ``torch.inference_mode()``; the caller makes the model's weights usable by
autograd (see ``nodes/editing.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import torch

log = logging.getLogger(__name__)

MAX_GUIDANCE_ITERS = 8  # inner gradient iterations per step; each costs a forward and a backward pass

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x (B,C,h,w), sigma (B,)) -> D (B,C,h,w)


class GradientPath(str, Enum):
    CLEAN_ESTIMATE = "clean estimate"
    THROUGH_MODEL = "through the model"


@dataclass(frozen=True)
class GuidanceConfig:
    """How and when the keep-the-rest gradient acts.

    Attributes:
        weight: lambda; 0 turns guidance off.
        start, end: the fraction of the edit's steps it acts in, ``start <= i / steps < end``.
        path: see :class:`GradientPath`.
        iterations: gradient updates per step (1..MAX_GUIDANCE_ITERS).
    """

    weight: float = 0.5
    start: float = 0.0
    end: float = 1.0
    path: GradientPath = GradientPath.CLEAN_ESTIMATE
    iterations: int = 1

    def __post_init__(self) -> None:
        if not self.weight >= 0:
            raise ValueError(f"guidance weight={self.weight}: must be 0 or more (0 turns guidance off)")
        object.__setattr__(self, "path", GradientPath(self.path))
        if self.path is GradientPath.CLEAN_ESTIMATE and self.weight >= 1:
            raise ValueError(
                f"guidance weight={self.weight} with the clean-estimate path: 1 or more overshoots the source "
                "and diverges; use 0.5 for a full correction, less for a gentler one"
            )
        if not 0 <= self.start <= 1 or not 0 <= self.end <= 1:
            raise ValueError(f"guidance range {self.start}..{self.end}: both ends must lie in 0..1")
        if self.start > self.end:
            raise ValueError(f"guidance range {self.start}..{self.end} is reversed; start must not exceed end")
        if not 1 <= self.iterations <= MAX_GUIDANCE_ITERS:
            raise ValueError(
                f"guidance iterations={self.iterations}: use 1..{MAX_GUIDANCE_ITERS} (each one costs a model pass "
                "through the model path)"
            )

    def acts_at(self, i: int, steps: int) -> bool:
        """Whether guidance acts at step ``i`` of ``steps``."""
        return self.weight > 0 and self.start <= i / steps < self.end


@dataclass(frozen=True)
class GuidedStep:
    """The result of :func:`guided_denoise`: the moved latent, the clean estimate to step with, losses."""

    x: torch.Tensor
    denoised: torch.Tensor
    loss_before: float
    loss_after: float


def keep_loss(denoised: torch.Tensor, source: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """L = || keep * (D - z0_src) ||^2, summed; ``keep`` is ``1 - m``, (B, 1, h, w)."""
    return (keep * (denoised - source)).square().sum()


def guided_denoise(
    denoise: Denoiser,
    x: torch.Tensor,
    sigma: torch.Tensor,
    source: torch.Tensor,
    keep: torch.Tensor,
    config: GuidanceConfig,
) -> GuidedStep:
    """Move ``x`` down the gradient of :func:`keep_loss`; return it with the clean estimate for the step.

    Args:
        denoise: the denoiser, ``D = denoise(x, sigma)``.
        x: (B, C, h, w) latent at level ``sigma``.
        sigma: (B,) noise level.
        source: (B, C, h, w) z0_src.
        keep: (B, 1, h, w) weight of the kept region, ``1 - m``.
        config: weight, path and iterations.

    Steps:
        1. Clone every input under ``inference_mode(False)`` (host tensors may be inference tensors,
           which autograd refuses to save).
        2. Per iteration: a fresh leaf ``x`` with grad; D from the model (through-model path) or
           ``x - sigma * eps`` with eps held (clean-estimate path); L; dL/dx by autograd.
        3. ``x <- x - lambda * dL/dx``.
        4. The clean estimate for the step is ``x - sigma * eps`` with the last eps: the step does
           not call the model again (one model call per iteration in all, none extra).
    """
    with torch.inference_mode(False), torch.enable_grad():
        # 1. normal tensors, detached from anything the host recorded
        x_cur = x.detach().clone()
        sig = sigma.detach().clone()
        src = source.detach().clone()
        kp = keep.detach().clone()
        s = sig.view(-1, *([1] * (x_cur.ndim - 1)))  # (B,) -> (B, 1, 1, 1)
        eps = None
        if config.path is GradientPath.CLEAN_ESTIMATE:
            with torch.no_grad():
                eps = (x_cur - denoise(x_cur, sig)) / s
        losses: list[float] = []
        for _ in range(config.iterations):
            # 2. gradient of the kept-region loss at the current latent
            leaf = x_cur.detach().requires_grad_(True)
            if config.path is GradientPath.THROUGH_MODEL:
                d = denoise(leaf, sig)
                with torch.no_grad():
                    eps = (leaf - d) / s
            else:
                d = leaf - s * eps
            loss = keep_loss(d, src, kp)
            (grad,) = torch.autograd.grad(loss, leaf)
            losses.append(float(loss.detach()))
            # 3. the update
            x_cur = (leaf - config.weight * grad).detach()
        # 4. the clean estimate the step uses, with eps held from the last model call
        with torch.no_grad():
            denoised = x_cur - s * eps
            after = float(keep_loss(denoised, src, kp))
    log.debug("guidance (%s): kept-region loss %.5g -> %.5g", config.path.value, losses[0], after)
    return GuidedStep(x_cur, denoised, losses[0], after)
