"""Trained weights in the files ComfyUI loads.

- ControlNet: the original ControlNet key layout (``control_model.input_blocks``, ``zero_convs``,
  ``input_hint_block``, ``middle_block``, ``middle_block_out``, ``time_embed``). ComfyUI's
  ControlNetLoader reads the model's shape from these names, so ControlNets of non-standard sizes
  (the reduced test UNet, small models) load as well as full-size ones; its diffusers-format path
  only knows the standard sizes.
- LoRA: the ``lora_unet_<LDM module path>`` names with ``lora_down``/``lora_up``/``alpha`` that
  ComfyUI's LoraLoader maps for every UNet it builds from a checkpoint.
- Whole UNet (``mode=unet``): ``model.diffusion_model.*`` LDM names, with the diffusers config in
  the file's metadata (``hierafash_unet_config``) for a loader of small custom models.

All files are safetensors.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import torch

from ..models.ldm_keys import ldm_key, unet_prefix_map, unet_to_ldm

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def _down_only_prefixes(config: Mapping) -> dict[str, str]:
    """The encoder half of the UNet key map (a ControlNet config has no up blocks)."""
    down = list(config["down_block_types"])
    up = [t.replace("Down", "Up") for t in reversed(down)]
    full = unet_prefix_map({**dict(config), "up_block_types": up})
    return {k: v for k, v in full.items() if not k.startswith("up_blocks.") and k not in ("conv_norm_out", "conv_out")}


def controlnet_to_ldm(state_dict: Mapping[str, torch.Tensor], config: Mapping) -> dict[str, torch.Tensor]:
    """Rename a diffusers ``ControlNetModel`` state dict to the original layout (``control_model.*``).

    Args:
        config: the ControlNet's config (``block_out_channels``, ``layers_per_block``,
            ``down_block_types``); the hint embedding must have the standard 8 convolutions
            (``conditioning_embedding_out_channels`` of length 4), which ComfyUI builds.

    Raises:
        ValueError: a hint embedding of another depth, or a key with no LDM name.
    """
    n_hint = len(config.get("conditioning_embedding_out_channels", (16, 32, 96, 256)))
    if n_hint != 4:
        raise ValueError(
            f"conditioning_embedding_out_channels has {n_hint} entries; "
            "ComfyUI's ControlNet builds 4 (16, 32, 96, 256)"
        )
    prefixes = _down_only_prefixes(config)
    unet_part, out = {}, {}
    for key, value in state_dict.items():
        if key.startswith("controlnet_cond_embedding."):
            rest = key[len("controlnet_cond_embedding.") :]
            head, _, tail = rest.partition(".")
            if head == "conv_in":
                index = 0
            elif head == "conv_out":
                index = 2 * (2 * n_hint - 1)
            elif head == "blocks":
                block, _, tail = tail.partition(".")
                index = 2 * (int(block) + 1)
            else:
                raise ValueError(f"no LDM name for ControlNet key {key!r}")
            out[f"input_hint_block.{index}.{tail}"] = value
        elif key.startswith("controlnet_down_blocks."):
            index, _, tail = key[len("controlnet_down_blocks.") :].partition(".")
            out[f"zero_convs.{index}.0.{tail}"] = value
        elif key.startswith("controlnet_mid_block."):
            out["middle_block_out.0." + key[len("controlnet_mid_block.") :]] = value
        else:
            unet_part[key] = value
    try:
        out.update({ldm_key(k, prefixes): v for k, v in unet_part.items()})
    except KeyError as exc:
        raise ValueError(str(exc)) from None
    return {"control_model." + k: v for k, v in out.items()}


def _to_dtype(sd: Mapping[str, torch.Tensor], dtype: str) -> dict[str, torch.Tensor]:
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r}: use fp16, bf16 or fp32")
    return {k: v.detach().to("cpu", DTYPES[dtype]).contiguous() for k, v in sd.items()}


def _save(sd: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str]) -> Path:
    from ..model_files import save_safetensors

    return save_safetensors(sd, path, metadata)  # same contents, same bytes


def save_controlnet_ldm(
    controlnet, path: str | os.PathLike, *, dtype: str = "fp16", metadata: dict | None = None
) -> Path:
    """Write a diffusers ``ControlNetModel`` as a ComfyUI-loadable ControlNet file."""
    sd = controlnet_to_ldm(controlnet.state_dict(), dict(controlnet.config))
    meta = {"hierafash": "controlnet", "format": "ldm-controlnet", **(metadata or {})}
    return _save(_to_dtype(sd, dtype), path, meta)


def lora_module_name(diffusers_module: str, prefixes: Mapping[str, str]) -> str:
    """``down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q`` -> ``lora_unet_input_blocks_1_1_..._to_q``."""
    ldm = ldm_key(diffusers_module + ".weight", prefixes)[: -len(".weight")]
    return "lora_unet_" + ldm.replace(".", "_")


def lora_to_comfy(lora_state_dict: Mapping[str, torch.Tensor], unet_config: Mapping, alpha: float) -> dict:
    """peft LoRA weights of a diffusers UNet -> ``lora_unet_*`` keys ComfyUI's LoraLoader maps.

    Args:
        lora_state_dict: ``peft.get_peft_model_state_dict(unet)`` (``<module>.lora_A.weight`` /
            ``<module>.lora_B.weight``).
        alpha: the LoRA alpha; ComfyUI scales by ``alpha / rank`` as peft does.
    """
    prefixes = unet_prefix_map(unet_config)
    out: dict[str, torch.Tensor] = {}
    for key, value in lora_state_dict.items():
        for part, name in ((".lora_A.weight", "lora_down"), (".lora_B.weight", "lora_up")):
            if key.endswith(part):
                module = lora_module_name(key[: -len(part)], prefixes)
                out[f"{module}.{name}.weight"] = value
                out[f"{module}.alpha"] = torch.tensor(float(alpha))
                break
        else:
            raise ValueError(f"LoRA key {key!r} is neither lora_A nor lora_B; only plain LoRA layers are exported")
    return out


def save_lora_comfy(
    lora_state_dict: Mapping[str, torch.Tensor],
    unet_config: Mapping,
    alpha: float,
    path: str | os.PathLike,
    *,
    dtype: str = "fp16",
    metadata: dict | None = None,
) -> Path:
    """Write peft LoRA weights as a ComfyUI LoRA file."""
    sd = lora_to_comfy(lora_state_dict, unet_config, alpha)
    meta = {"hierafash": "lora", "format": "lora_unet-ldm", **(metadata or {})}
    return _save(_to_dtype(sd, dtype), path, meta)


def save_unet_ldm(unet, path: str | os.PathLike, *, dtype: str = "fp16", metadata: dict | None = None) -> Path:
    """Write a whole diffusers UNet under LDM names (``model.diffusion_model.*``), config in the metadata."""
    config = dict(unet.config)
    sd = {"model.diffusion_model." + k: v for k, v in unet_to_ldm(unet.state_dict(), config).items()}
    meta = {
        "hierafash": "unet",
        "format": "ldm-unet",
        "hierafash_unet_config": json.dumps({k: v for k, v in config.items() if not k.startswith("_")}, default=list),
        **(metadata or {}),
    }
    return _save(_to_dtype(sd, dtype), path, meta)
