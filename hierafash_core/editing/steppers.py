"""Step rules in sigma space: move a latent from ``sigmas[i]`` to ``sigmas[i + 1]`` given the clean estimate.

The denoiser contract is k-diffusion's (as ComfyUI's samplers use it): ``x`` at noise level sigma is
``z_t / sqrt(alpha_bar_t)``, and the model returns its clean estimate ``denoised = D(x, sigma)``.
The derivative of the probability-flow ODE is ``d = (x - D) / sigma``; an Euler step along it is
exactly DDIM with eta 0 for an epsilon-prediction model (Karras et al. 2022, eq. 4 and app. B.1).

Each rule is a small object because multistep rules keep history; :meth:`Stepper.reset` clears it.
"""

from __future__ import annotations

import math
from enum import Enum

import torch


class SamplerName(str, Enum):
    """Step rules the edit loop supports (the node's ``sampler`` combo lists these)."""

    EULER = "euler"  # deterministic; DDIM eta 0 (the released code's sampler)
    EULER_ANCESTRAL = "euler_ancestral"  # DDIM eta 1: fresh noise each step
    DPMPP_2M = "dpmpp_2m"  # deterministic second-order multistep (Lu et al. 2022, DPM-Solver++(2M))


def ancestral_split(sigma: float, sigma_next: float, eta: float = 1.0) -> tuple[float, float]:
    """Split the move to ``sigma_next`` into a deterministic part (to ``sigma_down``) and fresh noise ``sigma_up``.

    ``sigma_down**2 + sigma_up**2 == sigma_next**2``; eta 0 gives a plain deterministic step.
    """
    if sigma_next == 0 or eta == 0:
        return sigma_next, 0.0
    up = min(sigma_next, eta * math.sqrt(max(sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2, 0.0)))
    down = math.sqrt(max(sigma_next**2 - up**2, 0.0))
    return down, up


class Stepper:
    """One step rule. ``step`` is pure apart from the history a multistep rule keeps."""

    deterministic = True

    def reset(self) -> None:
        """Forget any history (call before a new run)."""

    def history(self) -> object:
        """The history a multistep rule keeps (None for one-step rules), for :meth:`restore`."""
        return None

    def restore(self, history: object) -> None:
        """Go back to ``history`` (from :meth:`history`): a step taken again must not count itself as its past."""

    def step(self, x: torch.Tensor, denoised: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
        raise NotImplementedError


class EulerStepper(Stepper):
    """``x_next = x + (sigma_next - sigma) * (x - D) / sigma``; lands on ``D`` when ``sigma_next`` is 0."""

    def step(self, x, denoised, sigma, sigma_next):
        if sigma_next == 0:
            return denoised
        d = (x - denoised) / sigma
        return x + d * (sigma_next - sigma)


class EulerAncestralStepper(Stepper):
    """Euler to ``sigma_down``, then fresh Gaussian noise of size ``sigma_up`` (seeded, reproducible)."""

    deterministic = False

    def __init__(self, seed: int, eta: float = 1.0):
        self.seed = int(seed)
        self.eta = float(eta)
        self.reset()

    def reset(self) -> None:
        # A CPU generator gives the same noise on every device for a seed.
        self.generator = torch.Generator(device="cpu").manual_seed(self.seed)

    def step(self, x, denoised, sigma, sigma_next):
        down, up = ancestral_split(sigma, sigma_next, self.eta)
        if down == 0:
            x = denoised
        else:
            x = x + (x - denoised) / sigma * (down - sigma)
        if up > 0:
            fresh = torch.randn(x.shape, generator=self.generator, dtype=torch.float32).to(x.device, x.dtype)
            x = x + fresh * up
        return x


class DPMPP2MStepper(Stepper):
    """DPM-Solver++(2M): the exponential-integrator step, corrected with the previous clean estimate.

    In log-sigma time ``t = -log sigma`` with ``h = t_next - t``, the first-order step is
    ``x_next = (sigma_next / sigma) * x - expm1(-h) * D``; from the second step on, ``D`` is
    replaced by ``(1 + 1/(2r)) D - 1/(2r) D_prev`` with ``r = h_prev / h`` (Lu et al. 2022, alg. 2).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.prev: tuple[torch.Tensor, float] | None = None  # (previous denoised, its sigma)

    def history(self) -> tuple[torch.Tensor, float] | None:
        return self.prev

    def restore(self, history: object) -> None:
        self.prev = history  # type: ignore[assignment]

    def step(self, x, denoised, sigma, sigma_next):
        if sigma_next == 0:
            self.prev = None
            return denoised
        t, t_next = -math.log(sigma), -math.log(sigma_next)
        h = t_next - t
        d = denoised
        if self.prev is not None:
            prev_denoised, prev_sigma = self.prev
            r = (t - (-math.log(prev_sigma))) / h
            d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * prev_denoised
        self.prev = (denoised, sigma)
        return (sigma_next / sigma) * x - math.expm1(-h) * d


def make_stepper(name: str | SamplerName, seed: int = 0) -> Stepper:
    """The step rule called ``name`` (see :class:`SamplerName`); ``seed`` feeds the ancestral noise."""
    try:
        which = SamplerName(name)
    except ValueError:
        raise ValueError(
            f"sampler={name!r} is not supported by the edit loop; use one of {', '.join(s.value for s in SamplerName)}"
        ) from None
    if which is SamplerName.EULER:
        return EulerStepper()
    if which is SamplerName.EULER_ANCESTRAL:
        return EulerAncestralStepper(seed)
    return DPMPP2MStepper()
