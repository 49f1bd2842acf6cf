"""A seeded random checkpoint in the SD1.5 layout, small enough for CPU tests and the demo.

No diffusion weights can ship with the pack, so tests and the out-of-the-box demo use a
checkpoint built here from a seed: a UNet cut to two levels (channels 320 at both, one res block
and one transformer per level, context 768, about 44M parameters), a full-size CLIP-L text
encoder (ComfyUI leaves partial CLIP weights uninitialised) and a TAESD-layout autoencoder.
ComfyUI's ``CheckpointLoaderSimple`` detects it as SD1.5 (model_channels 320, context_dim 768).
Its images are noise: it exercises every code path, not the quality of a design.

The same UNet layout loads in diffusers from ``configs/tiny-sd15`` without any hub look-up.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch

from .ldm_keys import unet_to_ldm

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs" / "tiny-sd15"
DEFAULT_NAME = "hierafash-tiny-sd15.safetensors"
DEFAULT_SEED = 20240114  # the paper's arXiv submission month, fixed so every cache agrees


def load_config(part: str) -> dict:
    """Read one of the shipped diffusers configs (``unet`` or ``text_encoder``)."""
    path = CONFIG_DIR / part / "config.json"
    return json.loads(path.read_text())


def _taesd_state_dict() -> dict[str, torch.Tensor]:
    from diffusers import AutoencoderTiny

    vae = AutoencoderTiny()
    out: dict[str, torch.Tensor] = {}
    for key, value in vae.state_dict().items():
        # diffusers' tiny decoder omits TAESD's leading Clamp module, so its indices sit one lower.
        if key.startswith("encoder.layers."):
            out["taesd_encoder." + key[len("encoder.layers.") :]] = value
        elif key.startswith("decoder.layers."):
            index, _, rest = key[len("decoder.layers.") :].partition(".")
            out[f"taesd_decoder.{int(index) + 1}.{rest}"] = value
    out["vae_scale"] = torch.tensor(1.0)
    out["vae_shift"] = torch.tensor(0.0)
    return out


@torch.no_grad()
def build_tiny_sd15(seed: int = DEFAULT_SEED) -> dict[str, torch.Tensor]:
    """Build the seeded checkpoint's state dict (LDM key layout, float16).

    The same seed gives the same tensors on every CPU: each part is made after its own
    ``torch.manual_seed`` so adding a part never shifts another's weights.
    """
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    unet_cfg = {k: v for k, v in load_config("unet").items() if not k.startswith("_")}
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**unet_cfg)
    # A freshly initialised conv_out predicts noise of a few units; scale it so the random
    # model's eps estimate has roughly unit size, like a trained one, and samples stay finite.
    unet.conv_out.weight.mul_(0.1)
    torch.manual_seed(seed + 1)
    clip = CLIPTextModel(CLIPTextConfig(**load_config("text_encoder")))
    torch.manual_seed(seed + 2)
    taesd = _taesd_state_dict()

    sd: dict[str, torch.Tensor] = {}
    for key, value in unet_to_ldm(unet.state_dict(), unet_cfg).items():
        sd["model.diffusion_model." + key] = value
    for key, value in clip.state_dict().items():
        if key.endswith("position_ids"):
            continue
        sd["cond_stage_model.transformer." + key] = value
    for key, value in taesd.items():
        sd["first_stage_model." + key] = value
    return {k: v.detach().to(torch.float16).contiguous() for k, v in sd.items()}


def ensure_tiny_checkpoint(folder: str | os.PathLike, seed: int = DEFAULT_SEED) -> Path:
    """Write the seeded checkpoint into ``folder`` unless it is already there; return its path.

    The file is written to a temporary name and renamed, so an interrupted build never leaves a
    truncated checkpoint behind for the next run to trust.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = DEFAULT_NAME if seed == DEFAULT_SEED else f"hierafash-tiny-sd15-seed{seed}.safetensors"
    path = folder / name
    if path.is_file():
        return path
    log.info("building seeded test checkpoint %s (about 320 MB, under a minute)", path)
    tmp = path.with_suffix(".partial")
    save_file(build_tiny_sd15(seed), str(tmp), metadata={"hierafash": "seeded random test model", "seed": str(seed)})
    os.replace(tmp, path)
    return path
