"""Deterministic DDIM inversion: the source latent carried up the edit's schedule by the model itself.

Sampling with the Euler (DDIM eta 0) rule goes from ``sigma_i`` down to ``sigma_{i+1}``:

    x_{i+1} = x_i + (sigma_{i+1} - sigma_i) * eps(x_i, sigma_i),   eps = (x - D(x, sigma)) / sigma

Inversion runs the same loop over the reversed schedule, solving that step for ``x_i``:

    x_i = x_{i+1} + (sigma_i - sigma_{i+1}) * eps(x_i, sigma_i)

``eps(x_i, sigma_i)`` needs the unknown ``x_i``; the usual DDIM inversion takes it at the known
``x_{i+1}`` (with the target level ``sigma_i``, the level the sampling step will use). Fixed-point
refinement repeats the solve with the latest ``x_i`` (each refinement costs one model call per
step) and makes the round trip exact up to the model's smoothness.

| symbol  | here       | meaning                                       |
|---------|------------|-----------------------------------------------|
| z0_src  | ``source`` | the latent being edited, at sigma 0           |
| sigma_i | ``sigmas`` | the edit's schedule, decreasing, ending at 0  |
| x_i     | ``trajectory[i]`` | the source carried to ``sigma_i``      |
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from .guidance import Denoiser

log = logging.getLogger(__name__)

MAX_INVERSION_REFINE = 8  # fixed-point refinements per step; each is one model call

# TODO(evidence): the node inverts with the edit's own conditioning and cfg (the denoiser ComfyUI hands
# its sampler); inversion is known to drift at high cfg. Measured only on the random test model (relative
# round-trip error 2e-5 at cfg 5); next step: a separate inversion cfg (a second sample_custom pass at
# cfg 1) if a trained model shows the drift.


def ddim_invert(
    denoise: Denoiser,
    sigmas: torch.Tensor,
    source: torch.Tensor,
    *,
    refine: int = 0,
    callback: Callable[[int, int], None] | None = None,
) -> list[torch.Tensor]:
    """Invert ``source`` along ``sigmas``.

    Args:
        denoise: ``D = denoise(x, sigma)`` with ``sigma`` of shape (B,).
        sigmas: (N + 1,) the edit's schedule, decreasing, ``sigmas[-1] == 0``.
        source: (B, C, h, w) z0_src.
        refine: fixed-point refinements per step (0..MAX_INVERSION_REFINE).
        callback: ``callback(done, total)`` after each step (progress and Cancel).

    Returns:
        ``trajectory`` with ``trajectory[i]`` the source at ``sigmas[i]`` (N + 1 tensors;
        ``trajectory[N]`` is ``source`` itself, ``trajectory[0]`` the edit's starting latent).
    """
    if not 0 <= refine <= MAX_INVERSION_REFINE:
        raise ValueError(f"inversion refine={refine}: use 0..{MAX_INVERSION_REFINE}")
    values = [float(s) for s in sigmas]
    n = len(values) - 1
    if n < 1 or values[-1] != 0:
        raise ValueError(f"inversion needs a schedule ending at sigma 0 with at least one step, got {values}")
    trajectory: list[torch.Tensor] = [source] * (n + 1)
    s_in = source.new_ones(source.shape[0])
    x = source
    # 1. walk the schedule backwards: from sigma_{i+1} (known x) up to sigma_i
    for done, i in enumerate(range(n - 1, -1, -1), start=1):
        sigma, sigma_below = values[i], values[i + 1]
        # 2. eps at the target level, first from the known latent, then from the latest solve
        guess = x
        for _ in range(refine + 1):
            eps = (guess - denoise(guess, sigma * s_in)) / sigma
            guess = x + (sigma - sigma_below) * eps
        # 3. keep the latent at this level: the blend reference of the edit's step i - 1
        x = guess
        trajectory[i] = x
        if callback is not None:
            callback(done, n)
    log.debug("DDIM inversion: %d steps up to sigma %.4g, %d refinements each", n, values[0], refine)
    return trajectory
