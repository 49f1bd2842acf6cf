"""The local attribute edit: change the design inside a mask, keep the rest, on one denoiser contract.

``denoise(x, sigma)`` returns the model's clean estimate (CFG and any ControlNet already applied),
with ``x`` (B, C, h, w) in k-diffusion scaling and ``sigma`` (B,). ComfyUI's samplers receive
exactly such a callable; ``nodes/editing.py`` adapts a ComfyUI MODEL to it and
:mod:`hierafash_core.editing.diffusers_unet` a diffusers UNet.

| symbol  | here        | meaning                                                           |
|---------|-------------|-------------------------------------------------------------------|
| z0_src  | ``source``  | the latent being edited (B, C, h, w), model scaling               |
| m       | ``mask``    | (B, 1, h, w) in [0, 1], 1 = may change                            |
| t_s     | ``sigmas[0]`` | the edit's start level (see :mod:`.starts`)                     |
| z_t     | ``x``       | the latent at level sigma                                         |
| z0_hat  | ``D``       | the clean estimate                                                |
| lambda  | ``config.guidance.weight`` | guidance weight (see :mod:`.guidance`)              |
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

import torch

from .guidance import Denoiser, GuidanceConfig, guided_denoise
from .inversion import ddim_invert
from .masks import blend, release_mask
from .steppers import SamplerName, make_stepper

log = logging.getLogger(__name__)

RESAMPLE_SEED_MIX = 0x5DEECE66D  # mixes the edit's seed into the resampling noise's seed
Callback = Callable[[int, int], None]  # callback(done, total): progress, and the place to raise on Cancel
Preview = Callable[[int, torch.Tensor, torch.Tensor], None]  # preview(i, x, denoised) after each edit step


class Mode(str, Enum):
    """How the region outside the mask is kept."""

    BLEND = "blend"  # per-step latent blending with the source at the current level (released code)
    GUIDE = "guide"  # gradient guidance on the clean estimate only
    BOTH = "both"  # guidance, then blending

    @property
    def blends(self) -> bool:
        return self is not Mode.GUIDE

    @property
    def guides(self) -> bool:
        return self is not Mode.BLEND


class StartMethod(str, Enum):
    """How the source is brought to the start level."""

    NOISE = "noise"  # SDEdit: z0_src + sigma_0 * noise, once (released code)
    DDIM_INVERSION = "ddim inversion"  # the model's own deterministic path up to sigma_0


@dataclass(frozen=True)
class EditConfig:
    """Options of :func:`run_edit` (the node's widgets, minus the model and inputs)."""

    mode: Mode = Mode.BOTH
    start_method: StartMethod = StartMethod.NOISE
    sampler: SamplerName = SamplerName.EULER
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    inversion_refine: int = 0
    # Resampling (as RePaint does): each of the first ``resample_share`` of the steps runs ``resample``
    # times, noised back up to its level between passes, so the region and the kept rest, joined
    # only by the blend, agree with each other before the next step (1 = off; see docs/editing.md).
    # TODO(evidence: bench/mini_edit_variants.py, colour kept 44% -> 25% of length edits and 75% -> 53%
    # of sleeve edits with the source negative and 5 passes): the freer redraw lets the region's colour
    # drift from the garment's (resampling only from a quarter in did not keep it: 28% / 56%). Holding
    # the region's top (the garment at the waist) longer than its bottom, a latent mask ramped from 0.5
    # to 1 down the region, kept the colour of 75% of 240 length edits but drew the asked length in
    # only 56% (91% without; 0.3: 37%): the kept waist fixes the silhouette the length is part of.
    # Next: guide the region's low-frequency colour towards the source garment's around it, or paint
    # the lengthened garment first as SleeveHint does the sleeve.
    resample: int = 1
    resample_share: float = 0.5

    def __post_init__(self) -> None:
        for name, enum in (("mode", Mode), ("start_method", StartMethod), ("sampler", SamplerName)):
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, enum(value))
            except ValueError:
                raise ValueError(f"{name}={value!r} is not one of {', '.join(repr(e.value) for e in enum)}") from None
        if not isinstance(self.resample, int) or isinstance(self.resample, bool) or not 1 <= self.resample <= 20:
            raise ValueError(f"resample={self.resample!r}: give a whole number of passes per step, 1 (off) to 20")
        share = self.resample_share
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise ValueError(f"resample_share={share!r}: give the share of the steps resampled, a number from 0 to 1")

    def model_calls(self, n: int) -> int:
        """Denoiser calls of an edit of ``n`` steps (inversion and resampling passes included)."""
        calls = sum(self.passes(i, n) for i in range(n))
        if self.start_method is StartMethod.DDIM_INVERSION:
            calls += n * (1 + self.inversion_refine)
        return calls

    def passes(self, i: int, n: int) -> int:
        """Passes of step ``i`` of ``n``: ``resample`` within the first ``resample_share`` of the steps, else 1."""
        return self.resample if i < math.floor(self.resample_share * n + 0.5) else 1  # halves round up


@dataclass
class EditResult:
    """What :func:`run_edit` returns.

    Attributes:
        latent: (B, C, h, w) the edited latent, model scaling. With blending, exactly ``source``
            wherever the mask is 0.
        start_latent: (B, C, h, w) the latent the edit started from (noised or inverted source).
        guidance_losses: ``(step, loss_before, loss_after)`` for each guided step.
    """

    latent: torch.Tensor
    start_latent: torch.Tensor
    guidance_losses: list[tuple[int, float, float]] = field(default_factory=list)


def check_edit_inputs(sigmas: torch.Tensor, source: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor) -> None:
    """Raise ValueError for inputs the loop cannot run on (shapes, schedule)."""
    if source.ndim != 4:
        raise ValueError(f"source: expected a (B, C, h, w) latent, got shape {tuple(source.shape)}")
    if noise.shape != source.shape:
        raise ValueError(f"noise of shape {tuple(noise.shape)} does not match the source {tuple(source.shape)}")
    b, _, h, w = source.shape
    if tuple(mask.shape) != (b, 1, h, w):
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not match the source grid (B, 1, h, w) = {(b, 1, h, w)}; "
            "bring it onto the latent grid with editing.masks.latent_mask"
        )
    values = sigmas.tolist()
    if len(values) < 2:
        raise ValueError(f"the edit's schedule has {len(values) - 1} steps; it needs at least one")
    if values[-1] != 0:
        raise ValueError(f"the edit's schedule must end at sigma 0 (it ends at {values[-1]:.4g})")
    if any(a <= b_ for a, b_ in zip(values, values[1:], strict=False)):
        raise ValueError("the edit's schedule must decrease strictly; check the scheduler and steps")


def run_edit(
    denoise: Denoiser,
    sigmas: torch.Tensor,
    source: torch.Tensor,
    mask: torch.Tensor,
    noise: torch.Tensor,
    config: EditConfig | None = None,
    *,
    seed: int = 0,
    init: torch.Tensor | None = None,
    callback: Callback | None = None,
    preview: Preview | None = None,
) -> EditResult:
    """Edit ``source`` inside ``mask`` along ``sigmas`` (the tail of a schedule from the start level to 0).

    Args:
        denoise: the denoiser, ``D = denoise(x, sigma)`` (see module docstring).
        sigmas: (N + 1,) decreasing, ``sigmas[0]`` the start level, ``sigmas[-1] == 0``.
        source: (B, C, h, w) z0_src in model scaling.
        mask: (B, 1, h, w) m on the latent grid (see :func:`.masks.latent_mask`).
        noise: (B, C, h, w) standard Gaussian noise for the noise start and the blend references.
        config: mode, start method, step rule, guidance.
        seed: seeds the ancestral step rule's fresh noise.
        init: (B, C, h, w) what the noise start noises instead of ``source`` wherever ``mask > 0``
            (a layout hint, see :mod:`.layout`); cells not yet released are held to it, cells with
            ``m == 0`` to ``source`` as always. Noise start only.
        callback: ``callback(done, total)`` after every model step (inversion included).
        preview: ``preview(i, x, D)`` after every edit step (host previews).

    Returns:
        :class:`EditResult`; ``latent`` is ``source`` bit for bit where ``m == 0`` when blending.

    Steps:
        1. Start: x_0 = z0_src + sigma_0 * n (noise), or the DDIM inversion of z0_src to sigma_0.
           The blend reference at level i is z0_src + sigma_i * n, or the inversion's x_i. With
           ``init``, z0_src is replaced by init wherever the mask is above 0.
        2. For each step i (sigma_i -> sigma_{i+1}):
           a. the clean estimate D; where guidance acts, x and D after the guidance update;
           b. the step rule moves x to sigma_{i+1};
           c. blending: x <- ref_{i+1} where the cell is not yet released (see
              :func:`.masks.release_mask`: a cell with mask value m is edited in the last fraction m
              of the steps). At the last step ref_N = z0_src, so cells with m = 0 are exact.
    """
    config = config or EditConfig()
    check_edit_inputs(sigmas, source, mask, noise)
    if init is not None:
        if init.shape != source.shape:
            raise ValueError(f"init of shape {tuple(init.shape)} does not match the source {tuple(source.shape)}")
        if config.start_method is not StartMethod.NOISE:
            raise ValueError(
                f"init is a noise start's starting point; start_method={config.start_method.value!r} inverts the "
                "source instead. Use start_method='noise' with init, or drop init"
            )
    values = [float(s) for s in sigmas]
    n = len(values) - 1
    inverting = config.start_method is StartMethod.DDIM_INVERSION
    total = config.model_calls(n)
    done = 0

    def report(now: int) -> None:
        nonlocal done
        done = now
        if callback is not None:
            callback(done, total)

    # 1. the start latent and the blend references
    if inverting:
        per_step = 1 + config.inversion_refine  # model calls per inversion step
        trajectory = ddim_invert(
            denoise,
            sigmas,
            source,
            refine=config.inversion_refine,
            callback=lambda k, _n: report(k * per_step),
        )

        def reference(i: int) -> torch.Tensor:
            return trajectory[i]

    else:
        # With init, every cell the mask touches starts from it and, until the cell is released, is
        # held to it (not to the source) noised to the level: otherwise a cell of a soft mask would be
        # reset to the source at the first blend and the init kept only where m == 1.
        base = source if init is None else torch.where(mask > 0, init, source)

        def reference(i: int) -> torch.Tensor:
            return base + noise * values[i] if values[i] > 0 else base

    x = reference(0)
    start_latent = x
    keep = 1.0 - mask
    stepper = make_stepper(config.sampler, seed)
    s_in = source.new_ones(source.shape[0])
    losses: list[tuple[int, float, float]] = []
    renoise = None
    if config.resample > 1:  # resampling's fresh noise: CPU for all devices, a stream apart from seed + k's
        renoise = torch.Generator(device="cpu").manual_seed((int(seed) ^ RESAMPLE_SEED_MIX) % 2**64)

    # 2. the edit
    for i in range(n):
        sigma, sigma_next = values[i], values[i + 1]
        passes = config.passes(i, n)
        history = stepper.history()
        for k in range(passes):
            if k > 0:  # d. noise the result back up to sigma and take the step again (resampling)
                stepper.restore(history)
                fresh = torch.randn(x.shape, generator=renoise, dtype=torch.float32).to(x.device, x.dtype)
                x = x + fresh * max(sigma**2 - sigma_next**2, 0.0) ** 0.5
            # a. clean estimate, guided where asked
            if config.mode.guides and config.guidance.acts_at(i, n):
                g = guided_denoise(denoise, x, sigma * s_in, source, keep, config.guidance)
                x, denoised = g.x, g.denoised
                if k == passes - 1:
                    losses.append((i, g.loss_before, g.loss_after))
            else:
                denoised = denoise(x, sigma * s_in)
            # b. the step
            x = stepper.step(x, denoised, sigma, sigma_next)
            # c. keep the rest
            if config.mode.blends:
                x = blend(x, reference(i + 1), release_mask(mask, (i + 1) / n))
            if k == passes - 1 and preview is not None:
                preview(i, x, denoised)  # before the progress call that shows it
            report(done + 1)

    if losses:
        log.info(
            "guided edit: kept-region loss %.4g -> %.4g at the first guided step, %.4g -> %.4g at the last (%d steps)",
            losses[0][1],
            losses[0][2],
            losses[-1][1],
            losses[-1][2],
            len(losses),
        )
    return EditResult(x, start_latent, losses)
