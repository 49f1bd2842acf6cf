"""Whitened caption summaries while a UNet learns to read them, folded into plain weights on export.

A UNet trained from scratch with a caption summary (:mod:`..models.caption_summary`) reads it
through the first linear layer of its class embedding. The raw summary is a poorly conditioned
input for that layer: most of it is what every caption shares (on the mini designer's encoder, a
summary's norm is 16.7 while editing one attribute moves it by 0.8-1.5 and another design's
caption by 7.2-7.7; ``bench/mini_summary_probe.py``), and under AdamW a layer learns slowly along
the small directions of its input, which is where single attribute words live.

During training the layer therefore sees ``P (s - m)``: ``m`` the mean summary and ``P`` the
inverse square root of the covariance (eigenvalues floored at a share of the largest, so directions
no training caption moves are not blown up), both estimated once from the training captions as
the trainer shows them (each stage's caption weighted by its share of timesteps, the empty caption
by the dropout). Nothing else changes. On export the layer is folded back into an ordinary
``Linear`` (``W P`` and ``b - W P m``), so the files, ComfyUI and the headless pipeline see a
plain class embedding reading the plain summary: the preconditioning exists only for the
optimiser.

Measured on the mini designer (docs/mini-designer.md, "Experiments that did not reach the edit
goal"): at its 1,600 CPU steps the option changed neither how much the denoiser reads an attribute
word nor the edit accuracy, so the shipped recipe leaves it off; it stays as a setting for longer
(GPU) runs and further experiments.

    summaries (N, width) -> WhiteningStats(mean (width,), whiten (width, width))
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from ..models.caption_summary import caption_summary, takes_caption_summary
from ..prompt import HierarchicalPrompt
from ..schedule import PromptSchedule

log = logging.getLogger(__name__)

EIGEN_FLOOR = 1e-3
"""Eigenvalues below this share of the largest are raised to it (at most ~32x the gain of the top direction)."""

_ENCODE_BATCH = 256


@dataclass(frozen=True)
class WhiteningStats:
    """``mean`` (width,) and ``whiten`` (width, width, symmetric) of the training summaries."""

    mean: torch.Tensor
    whiten: torch.Tensor


def whitening_from_summaries(
    summaries: torch.Tensor, weights: torch.Tensor, floor: float = EIGEN_FLOOR
) -> WhiteningStats:
    """Weighted mean and inverse square-root covariance of (N, width) summaries (float64 inside)."""
    if summaries.ndim != 2 or weights.shape != summaries.shape[:1]:
        raise ValueError(
            f"summaries {tuple(summaries.shape)} and weights {tuple(weights.shape)}: expected (N, width) and (N,)"
        )
    x, w = summaries.double(), weights.double().clamp_min(0)
    if float(w.sum()) <= 0:
        raise ValueError("the whitening weights sum to zero")
    w = w / w.sum()
    mean = (w[:, None] * x).sum(0)
    centred = x - mean
    cov = (centred * w[:, None]).T @ centred
    evals, evecs = torch.linalg.eigh(cov)
    top = float(evals.max())
    if top <= 0:
        raise ValueError("every training caption has the same summary: nothing to whiten")
    gain = (evals.clamp_min(0) + floor * top).rsqrt()
    whiten = evecs @ torch.diag(gain) @ evecs.T
    return WhiteningStats(mean.float(), ((whiten + whiten.T) / 2).float())


def training_captions(
    prompts: Sequence[HierarchicalPrompt],
    schedule: PromptSchedule,
    caption_dropout: float,
    focus: tuple[float, int] = (0.0, 0),
    num_t: int = 1000,
) -> tuple[list[str], list[float]]:
    """Each prompt's caption at every stage, weighted by how often the trainer draws a timestep of
    that stage (uniform, or with ``focus = (share, t_min)`` that share drawn from ``t_min..num_t-1``),
    plus the empty caption weighted by the dropout: the captions the trainer draws, in its proportions."""
    share, t_min = focus
    t_min = min(t_min, num_t - 1)
    captions: list[str] = []
    weights: list[float] = []
    for prompt in prompts:
        for stage in schedule.stages:
            width = stage.t_high - stage.t_low + 1
            in_focus = max(0, min(stage.t_high, num_t - 1) - max(stage.t_low, t_min) + 1)
            drawn = (1.0 - share) * width / num_t + share * in_focus / (num_t - t_min)
            captions.append(schedule.caption_at(prompt, stage.t_low))
            weights.append((1.0 - caption_dropout) * drawn)
    captions.append("")
    weights.append(caption_dropout * len(prompts))
    return captions, weights


@torch.no_grad()
def estimate_whitening(
    encode: Callable[[list[str]], torch.Tensor],
    prompts: Sequence[HierarchicalPrompt],
    schedule: PromptSchedule,
    caption_dropout: float,
    floor: float = EIGEN_FLOOR,
    focus: tuple[float, int] = (0.0, 0),
    num_t: int = 1000,
) -> WhiteningStats:
    """Statistics of the summaries of ``prompts`` as the trainer captions them.

    Args:
        encode: captions -> (B, tokens, width) text states (the frozen text encoder).
        focus / num_t: the trainer's timestep draw (``(focus_share, focus_t_min)``, the
            scheduler's timestep count), which sets how often each stage's caption is seen.
    """
    if not prompts:
        raise ValueError("summary_whitening: the dataset has no records to estimate the whitening from")
    captions, weights = training_captions(prompts, schedule, caption_dropout, focus, num_t)
    # Captions repeat (concept stages share fields); each distinct one is encoded once.
    distinct = sorted(set(captions))
    summaries = {}
    for i in range(0, len(distinct), _ENCODE_BATCH):
        part = distinct[i : i + _ENCODE_BATCH]
        summaries.update(zip(part, caption_summary(encode(part).float()).cpu(), strict=True))
    x = torch.stack([summaries[c] for c in captions])
    try:
        stats = whitening_from_summaries(x, torch.tensor(weights), floor)
    except ValueError as error:
        raise ValueError(
            f"summary_whitening={len(prompts)} records: {error}; use more records, or set summary_whitening to 0"
        ) from None
    log.info("caption summary whitening from %d captions (%d distinct)", len(captions), len(distinct))
    return stats


class WhitenedLinear(torch.nn.Module):
    """``inner(P (x - m))``: a class embedding's first layer reading whitened summaries (training only).

    ``inner`` is the original ``Linear`` (the same parameters: an optimiser or weight average made
    before or after wrapping sees the same tensors); ``m`` and ``P`` are buffers, so checkpoints
    carry them and a resumed run continues exactly.
    """

    def __init__(self, inner: torch.nn.Linear, stats: WhiteningStats):
        super().__init__()
        width = inner.in_features
        if stats.mean.shape != (width,) or stats.whiten.shape != (width, width):
            raise ValueError(
                f"whitening of width {tuple(stats.mean.shape)} for a layer reading {width} values; "
                "the text encoder and the UNet's projection_class_embeddings_input_dim must agree"
            )
        self.inner = inner
        self.register_buffer("mean", stats.mean.clone().to(inner.weight))
        self.register_buffer("whiten", stats.whiten.clone().to(inner.weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner((x - self.mean.to(x)) @ self.whiten.to(x))

    @torch.no_grad()
    def folded(self) -> torch.nn.Linear:
        """The plain ``Linear`` computing the same function: weight ``W P``, bias ``b - W P m``."""
        w = self.inner.weight.double() @ self.whiten.double()
        out = torch.nn.Linear(self.inner.in_features, self.inner.out_features, bias=True)
        bias = self.inner.bias.double() if self.inner.bias is not None else torch.zeros(w.shape[0], dtype=w.dtype)
        out.weight.copy_(w.to(out.weight))
        out.bias.copy_((bias - w @ self.mean.double()).to(out.bias))
        return out.to(device=self.inner.weight.device, dtype=self.inner.weight.dtype)


def _summary_readers(module: torch.nn.Module) -> list[torch.nn.Module]:
    """The UNets / ControlNets inside ``module`` (itself included) that take a caption summary."""
    found = []
    for sub in module.modules():
        if hasattr(sub, "config") and hasattr(sub, "class_embedding") and takes_caption_summary(sub):
            found.append(sub)
    return found


def check_takes_summary(module: torch.nn.Module) -> list[torch.nn.Module]:
    """The summary readers in ``module``.

    Raises:
        ValueError: no UNet in ``module`` takes a caption summary.
    """
    readers = _summary_readers(module)
    if not readers:
        raise ValueError(
            "summary_whitening is set but the UNet takes no caption summary; set class_embed_type "
            "'projection' in unet_config, or summary_whitening to 0"
        )
    return readers


def attach_whitening(module: torch.nn.Module, stats: WhiteningStats) -> int:
    """Wrap the first class-embedding layer of every summary reader in ``module``; returns how many.

    Raises:
        ValueError: no UNet in ``module`` takes a caption summary.
    """
    readers = check_takes_summary(module)
    for reader in readers:
        embedding = reader.class_embedding
        if not isinstance(embedding.linear_1, WhitenedLinear):
            embedding.linear_1 = WhitenedLinear(embedding.linear_1, stats)
    return len(readers)


@contextlib.contextmanager
def folded(module: torch.nn.Module) -> Iterator[None]:
    """Within the block every :class:`WhitenedLinear` in ``module`` is its folded ``Linear`` (for export)."""
    swapped = []
    for reader in _summary_readers(module):
        embedding = reader.class_embedding
        if isinstance(embedding.linear_1, WhitenedLinear):
            swapped.append((embedding, embedding.linear_1))
            embedding.linear_1 = embedding.linear_1.folded()
    try:
        yield
    finally:
        for embedding, wrapper in swapped:
            embedding.linear_1 = wrapper
