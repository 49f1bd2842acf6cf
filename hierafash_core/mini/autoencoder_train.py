"""Training the mini autoencoder on a dataset folder's images (deterministic from a seed).

One step, for a batch of random crops x (aligned to the 8-pixel latent grid):

    1. z = E(x)                       the raw latent
    2. z' = z + s * std(z) * n         a little noise, so the decoder tolerates the diffusion model's errors
    3. L = |D(z') - x|_1 + |D(z') - x|^2 + p * mean(z^2)

Crops keep the cost per step low; both halves are fully convolutional, so they apply to whole
images unchanged. Batch order, crop positions and noise are a pure function of (seed, step).
After the last step the latent normalisation is measured on whole training images.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..dataset.records import read_records, resolve
from .autoencoder import AutoencoderConfig, MiniAutoencoder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AutoencoderTrainConfig:
    """Settings of :func:`train_autoencoder` (the recipe file's ``autoencoder`` section)."""

    steps: int = 1200
    batch_size: int = 32
    crop: tuple[int, int] = (96, 64)  # height, width in pixels (multiples of 8)
    learning_rate: float = 1e-3
    final_lr_fraction: float = 0.1  # cosine decay to this share of the learning rate
    latent_noise: float = 0.1
    latent_penalty: float = 1e-4
    stats_images: int = 512
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "crop", tuple(int(c) for c in self.crop))
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps={self.steps}, batch_size={self.batch_size}: both must be at least 1")
        if len(self.crop) != 2 or any(c < 8 or c % 8 for c in self.crop):
            raise ValueError(f"crop={self.crop}: give (height, width), multiples of 8")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate={self.learning_rate}: must be positive")


def load_images(root: str | Path, split: str = "train", limit: int | None = None) -> torch.Tensor:
    """A split's images as one uint8 tensor (N, 3, H, W) (all images must share one size)."""
    records = read_records(Path(root), split=split)
    if limit is not None:
        records = records[:limit]
    if not records:
        raise ValueError(f"dataset {root} has no '{split}' records")
    out = None
    for i, rec in enumerate(records):
        with Image.open(resolve(Path(root), rec.image, "image")) as im:
            arr = np.array(im.convert("RGB"))
        if out is None:
            out = torch.empty((len(records), 3, arr.shape[0], arr.shape[1]), dtype=torch.uint8)
        if arr.shape[:2] != tuple(out.shape[2:]):
            raise ValueError(f"image {rec.image} is {arr.shape[1]}x{arr.shape[0]}; all images must share one size")
        out[i] = torch.from_numpy(arr).permute(2, 0, 1)  # HWC -> CHW
    return out


def to_pixels(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float32 in [-1, 1]."""
    return images.float() / 127.5 - 1.0


def _lr_at(step: int, config: AutoencoderTrainConfig) -> float:
    frac = step / max(1, config.steps - 1)
    low = config.final_lr_fraction
    return config.learning_rate * (low + (1 - low) * 0.5 * (1 + math.cos(math.pi * frac)))


def train_autoencoder(
    images: torch.Tensor,
    config: AutoencoderTrainConfig,
    model_config: AutoencoderConfig | None = None,
    *,
    callback: Callable[[int, int, float], None] | None = None,
) -> tuple[MiniAutoencoder, list[dict]]:
    """Train an autoencoder on ``images`` (uint8 (N, 3, H, W)); return it and the loss log.

    The latent normalisation is measured on the first ``stats_images`` images at the end.
    """
    n, _, h, w = images.shape
    ch, cw = config.crop
    if ch > h or cw > w:
        raise ValueError(f"crop={config.crop} is larger than the images ({h}x{w})")
    torch.manual_seed(config.seed)
    model = MiniAutoencoder(model_config)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.0)
    logbook: list[dict] = []
    started = time.perf_counter()
    for step in range(config.steps):
        g = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        idx = torch.randint(0, n, (config.batch_size,), generator=g)
        top = torch.randint(0, (h - ch) // 8 + 1, (config.batch_size,), generator=g) * 8
        left = torch.randint(0, (w - cw) // 8 + 1, (config.batch_size,), generator=g) * 8
        flip = torch.rand(config.batch_size, generator=g) < 0.5
        crops = torch.stack(
            [
                images[i, :, t : t + ch, lft : lft + cw]
                for i, t, lft in zip(idx.tolist(), top.tolist(), left.tolist(), strict=True)
            ]
        )
        crops = torch.where(flip.view(-1, 1, 1, 1), crops.flip(-1), crops)
        x = to_pixels(crops)
        noise = torch.randn((config.batch_size, model.config.latent_channels, ch // 8, cw // 8), generator=g)
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, config)
        # Steps 1-3 of the module docstring.
        z = model.encode_raw(x)
        scale = z.detach().std().clamp_min(1e-3)
        y = model.decode_raw(z + config.latent_noise * scale * noise)
        loss = F.l1_loss(y, x) + F.mse_loss(y, x) + config.latent_penalty * z.pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        entry = {"step": step + 1, "loss": float(loss.detach()), "seconds": round(time.perf_counter() - started, 2)}
        logbook.append(entry)
        if callback is not None:
            callback(step + 1, config.steps, entry["loss"])
    model.eval()
    with torch.no_grad():
        raw = torch.cat(
            [model.encode_raw(to_pixels(images[i : i + 64])) for i in range(0, min(n, config.stats_images), 64)]
        )
        model.set_latent_stats(raw)
    return model, logbook


@torch.no_grad()
def reconstruction_psnr(model: MiniAutoencoder, images: torch.Tensor, batch: int = 64) -> float:
    """Mean PSNR (dB, pixels in [0, 1]) of decode(encode(x)) over ``images`` (uint8 (N, 3, H, W))."""
    values = []
    for i in range(0, len(images), batch):
        x = to_pixels(images[i : i + batch])
        y = model.decode(model.encode(x)).clamp(-1, 1)
        mse = ((y - x) / 2).pow(2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
        values.append(-10 * torch.log10(mse))
    return float(torch.cat(values).mean())


@torch.no_grad()
def fit_latent_rgb(model: MiniAutoencoder, images: torch.Tensor) -> dict:
    """A linear map latent (C,) -> RGB in [-1, 1] of the 8 x 8 pixels it covers, for host previews.

    Least squares over ``images`` (uint8 (N, 3, H, W)); returns ``{"factors": C x 3, "bias": 3}``
    in the form ComfyUI's latent preview takes (``latent_rgb_factors``, ``latent_rgb_factors_bias``).
    """
    x = to_pixels(images)
    z = model.encode(x)  # (N, C, h, w)
    target = F.avg_pool2d(x, 8)  # (N, 3, h, w)
    a = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])  # (N h w, C)
    a = torch.cat([a, torch.ones(len(a), 1)], dim=1)
    b = target.permute(0, 2, 3, 1).reshape(-1, 3)
    solution = torch.linalg.lstsq(a.double(), b.double()).solution.float()  # (C + 1, 3)
    return {"factors": solution[:-1].tolist(), "bias": solution[-1].tolist()}
