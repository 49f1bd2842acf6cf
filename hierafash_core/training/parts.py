"""The pieces a training run is made of: the trainable part per mode, caches, the weight average, placement."""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import torch

from ..model_files import check_safetensors, check_weights_folder
from ..models.caption_summary import summary_kwargs
from .config import TrainConfig
from .export import save_controlnet_ldm, save_lora_comfy, save_unet_ldm
from .models import BaseModel, read_json
from .summary_whitening import folded

log = logging.getLogger(__name__)


class UNetWithControl(torch.nn.Module):
    """A UNet and its pose ControlNet as one module (mode ``unet+controlnet``), so DDP sees one forward.

    ``forward(zt, t, states, cond)`` -> the UNet's prediction (B, C, h, w) with the ControlNet's
    residuals added; state dict keys are ``unet.*`` and ``controlnet.*``.
    """

    def __init__(self, unet: torch.nn.Module, controlnet: torch.nn.Module):
        super().__init__()
        self.unet = unet
        self.controlnet = controlnet

    def forward(self, zt: torch.Tensor, t: torch.Tensor, states: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        extra = summary_kwargs(self.unet, states)  # the caption summary, for a UNet that takes one
        down, mid = self.controlnet(
            zt, t, encoder_hidden_states=states, controlnet_cond=cond, return_dict=False, **extra
        )
        return self.unet(
            zt,
            t,
            encoder_hidden_states=states,
            **extra,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
            return_dict=False,
        )[0]


class Trainable:
    """The part of the model that learns, per mode: how to build, read, load and export it."""

    def __init__(self, config: TrainConfig, base: BaseModel):
        self.config = config
        self.base = base
        self.mode = config.mode
        if self.mode == "controlnet":
            self.module = self._controlnet()
        elif self.mode == "lora":
            self.module = self._lora()
        elif self.mode == "unet+controlnet":
            from diffusers import ControlNetModel

            unet = self._unet()  # the ControlNet starts as a copy of its encoder, as in the paper
            self.module = UNetWithControl(unet, ControlNetModel.from_unet(unet))
        else:
            self.module = self._unet()
        if config.freeze_pose_embedding:
            freeze_pose_embedding(self.module.controlnet if self.mode == "unet+controlnet" else self.module)

    def _controlnet(self):
        from diffusers import ControlNetModel

        init = self.config.controlnet_init
        if init is None:
            return ControlNetModel.from_unet(self.base.unet)  # the paper: a copy of the base UNet's encoder
        path = Path(init)
        if path.is_dir():
            check_weights_folder(path, "controlnet_init")
            return ControlNetModel.from_pretrained(path, local_files_only=True, use_safetensors=True)
        if path.is_file():
            check_safetensors(path, "controlnet_init")  # a pickle is refused with the reason first
        raise ValueError(
            f"controlnet_init={init}: give a diffusers ControlNet folder (config.json and weights) "
            "or leave it unset to start from the base UNet"
        )

    def _lora(self):
        from peft import LoraConfig

        alpha = self.config.lora_alpha or float(self.config.lora_rank)
        lora = LoraConfig(
            r=self.config.lora_rank,
            lora_alpha=alpha,
            init_lora_weights="gaussian",
            target_modules=list(self.config.lora_targets),
        )
        try:
            self.base.unet.add_adapter(lora)
        except ValueError as exc:
            raise ValueError(f"lora_targets={self.config.lora_targets}: {exc}") from None
        return self.base.unet

    def _unet(self):
        if self.config.unet_config is None:
            return self.base.unet
        from diffusers import UNet2DConditionModel

        cfg = {k: v for k, v in read_json(Path(self.config.unet_config)).items() if not k.startswith("_")}
        unet = UNet2DConditionModel(**cfg)
        width = int(self.base.text_encoder.config.hidden_size)
        if unet.config.cross_attention_dim != width:
            raise ValueError(
                f"unet_config: cross_attention_dim={unet.config.cross_attention_dim} but the text encoder gives "
                f"{width}; set cross_attention_dim to {width}"
            )
        self.base.unet = unet
        return unet

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.module.parameters() if p.requires_grad]

    def state(self, module=None) -> dict[str, torch.Tensor]:
        module = module or self.module
        if self.mode == "lora":
            from peft.utils import get_peft_model_state_dict

            return get_peft_model_state_dict(module)
        return module.state_dict()

    def load(self, state: dict[str, torch.Tensor]) -> None:
        if self.mode == "lora":
            from peft.utils import set_peft_model_state_dict

            result = set_peft_model_state_dict(self.module, state)
            unexpected = getattr(result, "unexpected_keys", None)
            if unexpected:
                raise ValueError(f"the checkpoint's LoRA does not fit this model ({len(unexpected)} unknown tensors)")
            return
        self.module.load_state_dict(state, strict=True)

    def export_names(self) -> dict[str, str]:
        """``{kind: file name}`` of the ComfyUI files this mode writes."""
        if self.mode == "unet+controlnet":
            return {kind: f"{self.config.output_name}-{kind}.safetensors" for kind in ("unet", "controlnet")}
        return {self.mode: f"{self.config.output_name}-{self.mode}.safetensors"}

    def export_all(self, module, folder: Path, step: int) -> dict[str, Path]:
        """Write every file of :meth:`export_names` into ``folder``."""
        return {kind: self.export(module, folder / name, step, kind) for kind, name in self.export_names().items()}

    def export(self, module, path: Path, step: int, kind: str | None = None) -> Path:
        # A whitened class embedding (summary_whitening) is written as the plain layer it equals.
        with folded(module):
            return self._export(module, path, step, kind)

    def _export(self, module, path: Path, step: int, kind: str | None) -> Path:
        meta = {"hierafash_step": str(step), "hierafash_schedule": self.config.prompt_schedule.spec()}
        dtype = self.config.export_dtype
        if self.mode == "unet+controlnet":
            part = {"unet": module.unet, "controlnet": module.controlnet}[kind or "unet"]
            save = save_unet_ldm if kind in (None, "unet") else save_controlnet_ldm
            return save(part, path, dtype=dtype, metadata=meta)
        if self.mode == "controlnet":
            return save_controlnet_ldm(module, path, dtype=dtype, metadata=meta)
        if self.mode == "lora":
            alpha = self.config.lora_alpha or float(self.config.lora_rank)
            return save_lora_comfy(self.state(module), dict(module.config), alpha, path, dtype=dtype, metadata=meta)
        return save_unet_ldm(module, path, dtype=dtype, metadata=meta)


@torch.no_grad()
def freeze_pose_embedding(controlnet) -> None:
    """Fix the pose-image convolutions of a diffusers ControlNet but the last (see TrainConfig).

    The fixed layers get He-normal weights and zero biases (drawn from the global generator, so a
    seeded run draws the same ones), which keeps the drawn pose's signal at a steady size through
    them; the last convolution (zero-initialised) learns to read it.
    """
    embedding = controlnet.controlnet_cond_embedding
    for conv in [embedding.conv_in, *embedding.blocks]:
        torch.nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
        torch.nn.init.zeros_(conv.bias)
        conv.requires_grad_(False)


class TextCache:
    """Text encoder states per caption (the encoder is frozen; a closed vocabulary repeats captions)."""

    def __init__(self, base: BaseModel, size: int, dtype: torch.dtype):
        self.base, self.size, self.dtype = base, size, dtype
        self.cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    def __call__(self, captions: list[str]) -> torch.Tensor:
        """(B, tokens, width) states for the captions, in the training dtype."""
        if self.size == 0:
            return self.base.encode_text(captions).to(self.dtype)
        found = {c: self.cache[c] for c in set(captions) if c in self.cache}
        todo = sorted(set(captions) - set(found))
        if todo:
            found.update(zip(todo, self.base.encode_text(todo).to(self.dtype), strict=True))
            for caption in todo:
                self.cache[caption] = found[caption]
                if len(self.cache) > self.size:
                    self.cache.popitem(last=False)
        return torch.stack([found[c] for c in captions])


class LatentCache:
    """Latents per dataset index, for autoencoders that encode deterministically (no sampling)."""

    def __init__(self, base: BaseModel, size: int):
        from diffusers import AutoencoderKL

        if size and isinstance(base.vae, AutoencoderKL):
            raise ValueError(
                "latent_cache is set but the base's VAE samples its latents (AutoencoderKL); "
                "set latent_cache to 0, or use a deterministic autoencoder (TAESD, the mini designer's)"
            )
        self.base, self.size = base, size
        self.cache: dict[int, torch.Tensor] = {}

    def __call__(self, indices: list[int], pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(B, C, h, w) latents of the examples ``indices`` whose images are ``pixels`` (B, 3, H, W)."""
        if self.size == 0:
            return self.base.encode_pixels(pixels, generator=generator)
        todo = [k for k, i in enumerate(indices) if i not in self.cache]
        if todo:
            fresh = self.base.encode_pixels(pixels[todo], generator=generator).cpu()
            for k, z in zip(todo, fresh, strict=True):
                if len(self.cache) < self.size:
                    self.cache[indices[k]] = z
        found = {k: self.cache[i] for k, i in enumerate(indices) if i in self.cache}
        if len(found) < len(indices):  # the cache is full: encode what it does not hold
            rest = [k for k in range(len(indices)) if k not in found]
            found.update(zip(rest, self.base.encode_pixels(pixels[rest], generator=generator).cpu(), strict=True))
        return torch.stack([found[k] for k in range(len(indices))]).to(next(self.base.vae.parameters()).device)


class WeightAverage:
    """An exponential moving average of the trained parameters (float32 copies, by name).

    Update k uses the decay ``min(decay, (1 + k) / (10 + k))``, so early weights fade quickly.
    """

    def __init__(self, module: torch.nn.Module, decay: float):
        self.decay = float(decay)
        self.updates = 0
        self.shadow = {n: p.detach().float().clone() for n, p in module.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, p in module.named_parameters():
            if name in self.shadow:
                self.shadow[name].lerp_(p.detach().float(), 1.0 - d)
        self.updates += 1

    def state(self) -> dict[str, torch.Tensor]:
        return {**self.shadow, "__updates__": torch.tensor(self.updates, dtype=torch.int64)}

    def load(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.shadow) - set(state)
        if missing:
            raise ValueError(f"the saved weight average lacks {len(missing)} tensors: {sorted(missing)[0]}, ...")
        for name in self.shadow:
            self.shadow[name].copy_(state[name])
        self.updates = int(state["__updates__"])

    @contextlib.contextmanager
    def applied(self, module: torch.nn.Module) -> Iterator[None]:
        """Within the block the module holds the averaged weights; the trained ones come back after."""
        saved = {}
        with torch.no_grad():
            for name, p in module.named_parameters():
                if name in self.shadow:
                    saved[name] = p.detach().clone()
                    p.copy_(self.shadow[name].to(p))
        try:
            yield
        finally:
            with torch.no_grad():
                for name, p in module.named_parameters():
                    if name in saved:
                        p.copy_(saved[name])


def place(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> None:
    """Move ``module``; cast only when its dtype differs (diffusers warns on every cast)."""
    module.to(device)
    if next(module.parameters()).dtype != dtype:
        module.to(dtype=dtype)
