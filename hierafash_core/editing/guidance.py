"""Gradient guidance that keeps the region outside the edit mask close to the source.

HieraFashDiff describes a differentiable loss on the non-edit region that steers sampling by its
gradient (its released code never runs it). The form used here (DESIGN.md section 2):

    L(x) = || (1 - m) * (D(x, sigma) - z0_src) ||^2          (sum over every latent value)
    x   <- x - lambda_t * dL/dx                                (before the step)
    lambda_t = w * 2 L / || dL/dx ||^2                         (per batch item)

The step length lambda_t is the Gauss-Newton length along the gradient: if D were linear in x,
weight w removes the fraction w of the kept-region error (w = 1 removes all of it, 0 < w < 2
converges, 2 or more diverges). So one weight means the same at every noise level and for every
model, although the model's Jacobian dD/dx is near the identity at low noise and much smaller
at high noise. Through the model, an update never moves x (RMS) by more than MAX_STEP_PER_SIGMA
times sigma plus the kept-region error, so a small Jacobian cannot throw x far from its noise
level.

| symbol   | here        | meaning                                                      |
|----------|-------------|--------------------------------------------------------------|
| z_t, x   | ``x``       | latent at noise level sigma (k-diffusion scaling, z_t / sqrt(alpha_bar)) |
| z0_hat   | ``D``       | the model's clean estimate D(x, sigma) (CFG applied)        |
| z0_src   | ``source``  | the latent being edited                                      |
| m        | ``mask``    | 1 where the edit may change the design, soft on edges        |
| lambda_t | (derived)   | step length, from the weight w (``weight``)                  |

Gradient paths:

- ``CLEAN_ESTIMATE``: the noise prediction eps = (x - D) / sigma is held constant, so
  D(x') = x' - sigma * eps and dD/dx is the identity. No backward pass through the model; the
  update costs a few element-wise operations. With a hard mask, weight 1 puts the clean estimate
  outside the mask exactly onto the source.
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
MAX_GUIDANCE_WEIGHT = 2.0  # the step removes the fraction w of the error; from 2 on it grows instead
# An update through the model moves x by at most this many sigma (RMS), plus the kept-region error.
# TODO(evidence): chosen on the Gaussian test denoiser and the random test UNet only; tune it (and check
# the secant gain of model_gain) on a trained SD1.5 at 512x704 where dD/dx is far from the identity.
MAX_STEP_PER_SIGMA = 1.0

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x (B,C,h,w), sigma (B,)) -> D (B,C,h,w)


class GradientPath(str, Enum):
    CLEAN_ESTIMATE = "clean estimate"
    THROUGH_MODEL = "through the model"


@dataclass(frozen=True)
class GuidanceConfig:
    """How and when the keep-the-rest gradient acts.

    Attributes:
        weight: w, the fraction of the kept-region error one update removes (to first order);
            0 turns guidance off, 1 is a full correction.
        start, end: the fraction of the edit's steps it acts in, ``start <= i / steps < end``.
        path: see :class:`GradientPath`.
        iterations: gradient updates per step (1..MAX_GUIDANCE_ITERS).
    """

    weight: float = 1.0
    start: float = 0.0
    end: float = 1.0
    path: GradientPath = GradientPath.CLEAN_ESTIMATE
    iterations: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.weight < MAX_GUIDANCE_WEIGHT:
            raise ValueError(
                f"guidance weight={self.weight}: use 0 <= weight < {MAX_GUIDANCE_WEIGHT:g} (1 is a full correction "
                "of the kept region per update, 0 turns guidance off; 2 or more diverges)"
            )
        try:
            object.__setattr__(self, "path", GradientPath(self.path))
        except ValueError:
            raise ValueError(
                f"gradient path={self.path!r} is not one of {', '.join(repr(p.value) for p in GradientPath)}"
            ) from None
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
    """The result of :func:`guided_denoise`: the moved latent, the clean estimate to step with, losses.

    ``loss_after`` is the loss of ``denoised``, the estimate after the update as
    :func:`model_gain` predicts it (exact on the clean-estimate path).
    """

    x: torch.Tensor
    denoised: torch.Tensor
    loss_before: float
    loss_after: float


def keep_loss(denoised: torch.Tensor, source: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """L per batch item, (B,): || keep * (D - z0_src) ||^2 over (C, h, w); ``keep`` = ``1 - m``, (B, 1, h, w)."""
    return (keep * (denoised - source)).square().flatten(1).sum(dim=1)


def guidance_update(
    loss: torch.Tensor, grad: torch.Tensor, weight: float, max_rms: torch.Tensor | None = None
) -> torch.Tensor:
    """The update to subtract from x: lambda_t * dL/dx with lambda_t = w * 2 L / ||dL/dx||^2.

    Args:
        loss: (B,) L per item; grad: (B, C, h, w) dL/dx.
        max_rms: (B,) the largest RMS the update may have per item (None: no cap).
    """
    view = (-1, *([1] * (grad.ndim - 1)))
    # TODO(evidence): in float16, clamp_min(1e-20) rounds to 0, and a mask covering the whole latent
    # (loss and gradient 0) gave 0 / 0 = NaN; GradientGuidedEdit runs edits in float32, so only direct
    # callers with half tensors meet it. Next step: compute length and rms in float32.
    length = weight * 2 * loss / grad.square().flatten(1).sum(dim=1).clamp_min(1e-20)  # (B,)
    update = length.view(view) * grad
    if max_rms is None:
        return update
    rms = update.square().flatten(1).mean(dim=1).sqrt()  # (B,)
    scale = torch.where(rms > max_rms, max_rms / rms.clamp_min(1e-20), torch.ones_like(rms))
    return update * scale.view(view)


def model_gain(grad: torch.Tensor, dloss_dd: torch.Tensor) -> torch.Tensor:
    """How much D moves per unit move of x along the gradient, per item, (B,), in [0, 1].

    With ``g = J^T v`` (``v = dL/dD``, J = dD/dx) and J close to ``c * I``, ``<g, g> / <v, g>`` is
    c: a secant estimate from quantities the gradient already gave, no extra model call. It is 1
    on the clean-estimate path (J = I) and near 1 / (1 + sigma^2) for data of unit variance.
    """
    gg = grad.square().flatten(1).sum(dim=1)
    vg = (dloss_dd * grad).flatten(1).sum(dim=1)
    gain = torch.where(vg > 0, gg / vg.clamp_min(1e-20), torch.zeros_like(gg))
    return gain.clamp(0.0, 1.0)


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
        3. ``x <- x - lambda_t * dL/dx`` (:func:`guidance_update`).
        4. The clean estimate the step uses, without another model call: the last estimate moved by
           the update times the model's gain along it (:func:`model_gain`; exactly
           ``x - sigma * eps`` on the clean-estimate path). One model call per iteration, none extra.
    """
    through_model = config.path is GradientPath.THROUGH_MODEL
    with torch.inference_mode(False), torch.enable_grad():
        # 1. normal tensors, detached from anything the host recorded
        x_cur = x.detach().clone()
        sig = sigma.detach().clone()
        src = source.detach().clone()
        kp = keep.detach().clone()
        s = sig.view(-1, *([1] * (x_cur.ndim - 1)))  # (B,) -> (B, 1, 1, 1)
        eps = held = None
        if not through_model:
            with torch.no_grad():
                eps = (x_cur - denoise(x_cur, sig)) / s
        losses: list[float] = []
        for _ in range(config.iterations):
            # 2. gradient of the kept-region loss at the current latent
            leaf = x_cur.detach().requires_grad_(True)
            d = denoise(leaf, sig) if through_model else leaf - s * eps
            loss = keep_loss(d, src, kp)  # (B,)
            (grad,) = torch.autograd.grad(loss.sum(), leaf)
            losses.append(float(loss.detach().sum()))
            held = d.detach()
            # 3. the update, its length from the weight (see the module docstring); through the model
            # it may move x by at most sigma plus the kept-region error (RMS), so a small Jacobian
            # cannot throw x far from its noise level (the held-eps update needs no cap)
            cap = None
            if through_model:
                error_rms = (kp * (held - src)).square().flatten(1).mean(dim=1).sqrt()  # (B,)
                cap = MAX_STEP_PER_SIGMA * sig + error_rms
            update = guidance_update(loss.detach(), grad, config.weight, cap)
            x_cur = (leaf - update).detach()
        # 4. the clean estimate the step uses: the last estimate moved by the update times the gain
        with torch.no_grad():
            gain = model_gain(grad, 2 * kp.square() * (held - src))
            denoised = held - gain.view(-1, *([1] * (held.ndim - 1))) * update
            after = float(keep_loss(denoised, src, kp).sum())
    log.debug("guidance (%s): kept-region loss %.5g -> %.5g", config.path.value, losses[0], after)
    return GuidedStep(x_cur, denoised, losses[0], after)
