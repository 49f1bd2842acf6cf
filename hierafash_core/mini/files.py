"""The mini designer's files: one checkpoint (UNet, text encoder, autoencoder) and one pose ControlNet.

``hierafash-mini-designer.safetensors``
    ``model.diffusion_model.*``          the UNet under LDM names (fp16)
    ``cond_stage_model.transformer.*``   the CLIP text encoder under its usual names (fp16)
    ``first_stage_model.*``              the mini autoencoder (fp32; its latents are normalised)
    metadata ``hierafash_mini``          JSON: the UNet, text encoder and autoencoder configs, the
                                         noise schedule, the prompt schedule and the recipe's hash
``hierafash-mini-designer-pose.safetensors``
    ``control_model.*``                  the pose ControlNet in the original layout; ComfyUI's own
                                         ControlNetLoader reads it too
``manifest.json``                        how the files were built: recipe, timings, hashes, figures

Nothing here is pickled; every file is safetensors or JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..models.ldm_keys import unet_from_ldm
from .autoencoder import AutoencoderConfig, MiniAutoencoder
from .paths import CHECKPOINT_NAME, CONTROLNET_NAME, MANIFEST_NAME, default_folder
from .text import TEXT_PREFIX, text_encoder_from_state, text_state_for_file

FORMAT = "hierafash-mini-designer"
UNET_PREFIX = "model.diffusion_model."
AE_PREFIX = "first_stage_model."
# The CLIPTextConfig settings a checkpoint records (ComfyUI's CLIP text model reads these).
TEXT_CONFIG_KEYS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "max_position_embeddings", "hidden_act", "layer_norm_eps", "bos_token_id", "eos_token_id", "pad_token_id",
    "projection_dim",
)  # fmt: skip


@dataclass(frozen=True)
class MiniDesignerFiles:
    """Paths of a built mini designer."""

    folder: Path
    checkpoint: Path
    controlnet: Path
    manifest: Path

    @classmethod
    def in_folder(cls, folder: str | os.PathLike | None = None) -> MiniDesignerFiles:
        folder = Path(folder) if folder is not None else default_folder()
        return cls(folder, folder / CHECKPOINT_NAME, folder / CONTROLNET_NAME, folder / MANIFEST_NAME)

    def exist(self) -> bool:
        return self.checkpoint.is_file() and self.controlnet.is_file() and self.manifest.is_file()


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_checkpoint(
    path: str | os.PathLike,
    *,
    unet_file: str | os.PathLike,
    text_encoder,
    autoencoder: MiniAutoencoder,
    info: dict,
) -> Path:
    """Assemble the checkpoint from the trainer's UNet export, the text encoder and the autoencoder."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from ..model_files import save_safetensors

    with safe_open(str(unet_file), framework="pt") as fh:
        unet_meta = fh.metadata() or {}
    if "hierafash_unet_config" not in unet_meta:
        raise ValueError(f"{unet_file}: not a UNet export of the trainer (no hierafash_unet_config in its metadata)")
    sd = {k: v.to(torch.float16) for k, v in load_file(str(unet_file)).items()}
    sd.update({k: v.to(torch.float16) for k, v in text_state_for_file(text_encoder).items()})
    sd.update({AE_PREFIX + k: v.to(torch.float32) for k, v in autoencoder.state_dict().items()})
    meta = {
        **info,
        "unet": json.loads(unet_meta["hierafash_unet_config"]),
        "text_encoder": {k: v for k, v in text_encoder.config.to_dict().items() if k in TEXT_CONFIG_KEYS},
        "autoencoder": json.loads(autoencoder.config.to_json()),
    }
    return save_safetensors(sd, path, {"format": FORMAT, "hierafash_mini": json.dumps(meta, sort_keys=True)})


def read_info(path: str | os.PathLike) -> dict:
    """The checkpoint's ``hierafash_mini`` metadata.

    Raises:
        ValueError: not a mini designer checkpoint.
    """
    from safetensors import safe_open

    from ..model_files import check_safetensors

    check_safetensors(Path(path), "mini designer checkpoint")  # a pickle or a truncated file, named as such
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
    if meta.get("format") != FORMAT or "hierafash_mini" not in meta:
        raise ValueError(
            f"{Path(path).name} is not a mini designer checkpoint (format={meta.get('format')!r}); "
            "build one with `hierafash mini-designer build`"
        )
    return json.loads(meta["hierafash_mini"])


def split_checkpoint(sd: dict[str, torch.Tensor]) -> tuple[dict, dict, dict]:
    """(UNet LDM tensors without prefix, text encoder tensors with prefix, autoencoder tensors without prefix)."""
    unet = {k[len(UNET_PREFIX) :]: v for k, v in sd.items() if k.startswith(UNET_PREFIX)}
    text = {k: v for k, v in sd.items() if k.startswith(TEXT_PREFIX)}
    ae = {k[len(AE_PREFIX) :]: v for k, v in sd.items() if k.startswith(AE_PREFIX)}
    return unet, text, ae


def load_parts(path: str | os.PathLike, dtype: torch.dtype = torch.float32):
    """The checkpoint as diffusers/torch modules: (unet, text_encoder, autoencoder, info), eval mode."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import load_file

    info = read_info(path)
    unet_sd, text_sd, ae_sd = split_checkpoint(load_file(str(path)))
    config = {k: v for k, v in info["unet"].items() if not k.startswith("_")}
    with torch.device("meta"):
        unet = UNet2DConditionModel(**config)
    unet.load_state_dict({k: v.to(dtype) for k, v in unet_from_ldm(unet_sd, config).items()}, strict=True, assign=True)
    text = text_encoder_from_state(text_sd, {k: v for k, v in info["text_encoder"].items() if not k.startswith("_")})
    ae = MiniAutoencoder(AutoencoderConfig(**info["autoencoder"]))
    ae.load_state_dict(ae_sd, strict=True)
    return unet.eval().requires_grad_(False), text, ae.eval().requires_grad_(False), info


def load_controlnet(path: str | os.PathLike, unet, dtype: torch.dtype = torch.float32):
    """The pose ControlNet file as a diffusers ``ControlNetModel`` shaped after ``unet``."""
    from diffusers import ControlNetModel
    from safetensors.torch import load_file

    from ..model_files import check_safetensors
    from ..training.export import controlnet_to_ldm

    check_safetensors(Path(path), "mini designer pose ControlNet")
    with torch.device("meta"):
        cn = ControlNetModel.from_unet(unet, load_weights_from_unet=False)
    config = dict(cn.config)
    inverse = {next(iter(controlnet_to_ldm({k: torch.empty(0)}, config))): k for k in cn.state_dict()}
    sd = load_file(str(path))
    missing = sorted(set(inverse) - set(sd))
    if missing:
        raise ValueError(f"{Path(path).name}: the ControlNet does not fit this UNet ({len(missing)} tensors missing)")
    cn.load_state_dict({inverse[k]: sd[k].to(dtype) for k in inverse}, strict=True, assign=True)
    return cn.eval().requires_grad_(False)
