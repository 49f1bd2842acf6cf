"""The mini designer's 8x autoencoder: small enough to train and to encode ten thousand images on a CPU.

No pretrained VAE exists offline, and Stable Diffusion's layouts spend most of their work in
convolutions at full resolution (TAESD: about 12 GMAC per 192 x 128 image, encoder and decoder;
measured 0.47 s per image to encode on the shared 2-core machine, 78 minutes for the training
set). This one folds 2 x 2 pixels into channels before its first convolution and unfolds them
after its last one (pixel unshuffle / shuffle), so nothing runs at full resolution: about 0.2 GMAC
to encode and 0.4 GMAC to decode an image. Flat illustrations lose little by it.

    encode: (B, 3, H, W) in [-1, 1] -> unshuffle 2 -> 32 ch @ H/2 -> 64 ch @ H/4 -> 128 ch @ H/8 -> 4 ch
    decode: 4 ch @ H/8 -> 128 ch -> 64 ch @ H/4 -> 32 ch @ H/2 -> 12 ch -> shuffle 2 -> (B, 3, H, W)

Latents are normalised: the encoder's raw output minus a per-channel mean, divided by a
per-channel standard deviation, both measured on the training images after training and stored
with the weights. So the diffusion model sees unit-variance latents and no scale factor is needed
anywhere else (ComfyUI's LATENT of this model is this latent).

The encoder is deterministic (no sampling), so the trainer can cache each image's latent.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class AutoencoderConfig:
    """Shape of :class:`MiniAutoencoder` (saved in the weight file's metadata)."""

    channels: tuple[int, ...] = (32, 64, 128)  # at 1/2, 1/4, 1/8 of the image size
    latent_channels: int = 4
    decoder_blocks: tuple[int, ...] = (1, 1, 2)  # residual blocks per level of the decoder, finest first

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "decoder_blocks", tuple(int(c) for c in self.decoder_blocks))
        if len(self.channels) != 3 or any(c < 8 for c in self.channels):
            raise ValueError(f"channels={self.channels}: give three widths of at least 8 (the 1/2, 1/4, 1/8 levels)")
        if len(self.decoder_blocks) != 3 or any(b < 0 for b in self.decoder_blocks):
            raise ValueError(f"decoder_blocks={self.decoder_blocks}: give three counts of at least 0")
        if self.latent_channels < 1:
            raise ValueError(f"latent_channels={self.latent_channels}: at least 1")

    @property
    def downscale(self) -> int:
        return 8

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> AutoencoderConfig:
        return cls(**json.loads(text))


class ResBlock(nn.Module):
    """x + conv(silu(conv(silu(x)))): two 3x3 convolutions, no normalisation (as TAESD)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class Encoder(nn.Module):
    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        c1, c2, c3 = config.channels
        self.conv_in = nn.Conv2d(12, c1, 3, padding=1)  # 3 colours x (2 x 2) pixels
        self.block1 = ResBlock(c1)
        self.down1 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.block2 = ResBlock(c2)
        self.down2 = nn.Conv2d(c2, c3, 3, stride=2, padding=1)
        self.block3 = ResBlock(c3)
        self.conv_out = nn.Conv2d(c3, config.latent_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pixel_unshuffle(x, 2)  # (B, 3, H, W) -> (B, 12, H/2, W/2)
        x = self.block1(self.conv_in(x))
        x = self.block2(self.down1(F.silu(x)))
        x = self.block3(self.down2(F.silu(x)))
        return self.conv_out(F.silu(x))


class Decoder(nn.Module):
    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        c1, c2, c3 = config.channels
        n1, n2, n3 = config.decoder_blocks
        self.conv_in = nn.Conv2d(config.latent_channels, c3, 3, padding=1)
        self.blocks3 = nn.Sequential(*(ResBlock(c3) for _ in range(n3)))
        self.up2 = nn.Conv2d(c3, c2, 3, padding=1)
        self.blocks2 = nn.Sequential(*(ResBlock(c2) for _ in range(n2)))
        self.up1 = nn.Conv2d(c2, c1, 3, padding=1)
        self.blocks1 = nn.Sequential(*(ResBlock(c1) for _ in range(n1)))
        self.conv_out = nn.Conv2d(c1, 12, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.blocks3(self.conv_in(z))
        x = self.blocks2(self.up2(F.interpolate(F.silu(x), scale_factor=2.0, mode="nearest")))
        x = self.blocks1(self.up1(F.interpolate(F.silu(x), scale_factor=2.0, mode="nearest")))
        return F.pixel_shuffle(self.conv_out(F.silu(x)), 2)  # (B, 12, H/2, W/2) -> (B, 3, H, W)


class MiniAutoencoder(nn.Module):
    """Encoder, decoder and the latent normalisation (buffers ``latent_mean``/``latent_std``, (C,))."""

    def __init__(self, config: AutoencoderConfig | None = None):
        super().__init__()
        self.config = config or AutoencoderConfig()
        self.encoder = Encoder(self.config)
        self.decoder = Decoder(self.config)
        self.register_buffer("latent_mean", torch.zeros(self.config.latent_channels))
        self.register_buffer("latent_std", torch.ones(self.config.latent_channels))
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        # He initialisation keeps the signal's size through the unnormalised stack (PyTorch's
        # default shrinks it about threefold per layer, and training then crawls); each residual
        # branch starts near zero, so every block starts close to the identity.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)
            if isinstance(module, ResBlock):
                module.conv2.weight.mul_(0.1)

    def _stats(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, -1) + (1,) * (z.ndim - 2)
        return self.latent_mean.view(shape).to(z), self.latent_std.view(shape).to(z)

    def encode_raw(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.encoder(pixels)

    def decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1], H and W multiples of 8 -> (B, C, H/8, W/8) unit-variance latents."""
        if pixels.ndim != 4 or pixels.shape[1] != 3:
            raise ValueError(f"pixels: expected (B, 3, H, W), got {tuple(pixels.shape)}")
        if pixels.shape[-1] % 8 or pixels.shape[-2] % 8:
            raise ValueError(f"pixels: height and width must be multiples of 8, got {tuple(pixels.shape[-2:])}")
        mean, std = self._stats(pixels.new_zeros(1, 1, 1, 1))
        return (self.encoder(pixels) - mean) / std

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) latents -> (B, 3, 8h, 8w) pixels, about [-1, 1] (not clamped)."""
        if latents.ndim != 4 or latents.shape[1] != self.config.latent_channels:
            raise ValueError(f"latents: expected (B, {self.config.latent_channels}, h, w), got {tuple(latents.shape)}")
        mean, std = self._stats(latents)
        return self.decoder(latents * std + mean)

    @torch.no_grad()
    def set_latent_stats(self, raw: torch.Tensor) -> None:
        """Measure the normalisation on raw encoder outputs (N, C, h, w)."""
        self.latent_mean.copy_(raw.mean(dim=(0, 2, 3)))
        self.latent_std.copy_(raw.std(dim=(0, 2, 3)).clamp_min(1e-6))


AE_FORMAT = "hierafash-mini-autoencoder"


def save_autoencoder(model: MiniAutoencoder, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write the autoencoder (float32: it is small, and fp16 would round the normalisation)."""
    from ..model_files import save_safetensors

    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    meta = {"format": AE_FORMAT, "config": model.config.to_json(), **(metadata or {})}
    return save_safetensors(state, path, meta)


def load_autoencoder(path: str | os.PathLike) -> MiniAutoencoder:
    """Read a file written by :func:`save_autoencoder`.

    Raises:
        ValueError: the file is not a mini autoencoder (wrong format tag or tensors).
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    from ..model_files import check_safetensors

    path = check_safetensors(Path(path), "mini designer autoencoder")
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
    if meta.get("format") != AE_FORMAT:
        raise ValueError(f"{path.name}: not a mini designer autoencoder (format={meta.get('format')!r})")
    model = MiniAutoencoder(AutoencoderConfig.from_json(meta["config"]))
    try:
        model.load_state_dict(load_file(str(path)), strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path.name}: the tensors do not fit the stored config ({exc})") from None
    return model.eval()
