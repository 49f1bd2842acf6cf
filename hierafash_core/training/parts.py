"""The pieces a training run is made of: the trainable part per mode, the text cache, device placement."""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import torch

from ..model_files import check_safetensors, check_weights_folder
from .config import TrainConfig
from .export import save_controlnet_ldm, save_lora_comfy, save_unet_ldm
from .models import BaseModel, read_json

log = logging.getLogger(__name__)


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
        else:
            self.module = self._unet()

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

    def export_name(self) -> str:
        return f"{self.config.output_name}-{self.mode}.safetensors"

    def export(self, module, path: Path, step: int) -> Path:
        meta = {"hierafash_step": str(step), "hierafash_schedule": self.config.prompt_schedule.spec()}
        dtype = self.config.export_dtype
        if self.mode == "controlnet":
            return save_controlnet_ldm(module, path, dtype=dtype, metadata=meta)
        if self.mode == "lora":
            alpha = self.config.lora_alpha or float(self.config.lora_rank)
            return save_lora_comfy(self.state(module), dict(module.config), alpha, path, dtype=dtype, metadata=meta)
        return save_unet_ldm(module, path, dtype=dtype, metadata=meta)


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


def place(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> None:
    """Move ``module``; cast only when its dtype differs (diffusers warns on every cast)."""
    module.to(device)
    if next(module.parameters()).dtype != dtype:
        module.to(dtype=dtype)
