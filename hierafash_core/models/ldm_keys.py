"""Key mapping between a diffusers ``UNet2DConditionModel`` and the original LDM/SD layout.

ComfyUI's checkpoint loader detects Stable Diffusion checkpoints from LDM key names
(``model.diffusion_model.input_blocks.1.0.in_layers.0.weight``...), while diffusers builds and
trains UNets under its own names (``down_blocks.0.resnets.0.norm1.weight``...). The two layouts
hold the same tensors; only the module paths differ. This module maps module prefixes for any
depth of UNet of the SD1/SD2 family (CrossAttn/plain down and up blocks, one mid block), so a
model trained or built with diffusers can be written as a checkpoint ComfyUI loads.

Layout facts (L levels, N res blocks per level):
    input_blocks.0            conv_in
    input_blocks.1+i(N+1)+j   level i, res block j (.0) and its transformer (.1)
    input_blocks.1+i(N+1)+N   downsampler of level i (all levels but the last)
    middle_block.0/1/2        res, transformer, res
    output_blocks.i(N+1)+j    up level i, res block j (.0), transformer (.1), upsampler (.1 or .2)
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

# Inside a res block only these names differ; attention blocks share their inner names.
_RESNET_RENAMES = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}


def unet_prefix_map(config: Mapping) -> dict[str, str]:
    """Return ``{diffusers module prefix: LDM module prefix}`` for a diffusers UNet config.

    Args:
        config: the ``UNet2DConditionModel`` config (``block_out_channels``,
            ``layers_per_block``, ``down_block_types``, ``up_block_types``).
    """
    levels = len(config["block_out_channels"])
    per = config["layers_per_block"]
    if not isinstance(per, int):
        raise ValueError(f"layers_per_block={per!r}: only one count for every level is supported")
    down_types = list(config["down_block_types"])
    up_types = list(config["up_block_types"])
    m: dict[str, str] = {
        "time_embedding.linear_1": "time_embed.0",
        "time_embedding.linear_2": "time_embed.2",
        # class_embed_type="projection" (a caption summary, see caption_summary.py): LDM's label_emb
        "class_embedding.linear_1": "label_emb.0.0",
        "class_embedding.linear_2": "label_emb.0.2",
        "conv_in": "input_blocks.0.0",
        "conv_norm_out": "out.0",
        "conv_out": "out.2",
        "mid_block.resnets.0": "middle_block.0",
        "mid_block.attentions.0": "middle_block.1",
        "mid_block.resnets.1": "middle_block.2",
    }
    for i in range(levels):
        for j in range(per):
            k = 1 + i * (per + 1) + j
            m[f"down_blocks.{i}.resnets.{j}"] = f"input_blocks.{k}.0"
            if "CrossAttn" in down_types[i]:
                m[f"down_blocks.{i}.attentions.{j}"] = f"input_blocks.{k}.1"
        if i < levels - 1:
            m[f"down_blocks.{i}.downsamplers.0.conv"] = f"input_blocks.{1 + i * (per + 1) + per}.0.op"
    for i in range(levels):
        has_attn = "CrossAttn" in up_types[i]
        for j in range(per + 1):
            k = i * (per + 1) + j
            m[f"up_blocks.{i}.resnets.{j}"] = f"output_blocks.{k}.0"
            if has_attn:
                m[f"up_blocks.{i}.attentions.{j}"] = f"output_blocks.{k}.1"
        if i < levels - 1:
            slot = 2 if has_attn else 1
            m[f"up_blocks.{i}.upsamplers.0.conv"] = f"output_blocks.{i * (per + 1) + per}.{slot}.conv"
    return m


def _convert_key(key: str, prefixes: Mapping[str, str]) -> str:
    # Longest prefix first so "mid_block.resnets.1" never matches a shorter sibling.
    for src in sorted(prefixes, key=len, reverse=True):
        if key.startswith(src + "."):
            rest = key[len(src) + 1 :]
            if ".resnets." in src + ".":
                head, _, tail = rest.partition(".")
                rest = f"{_RESNET_RENAMES.get(head, head)}.{tail}" if tail else rest
            return f"{prefixes[src]}.{rest}"
    raise KeyError(f"no LDM name for diffusers UNet key {key!r}")


def ldm_key(key: str, prefixes: Mapping[str, str]) -> str:
    """The LDM name of one diffusers key, given :func:`unet_prefix_map` prefixes (or a subset of them).

    Raises:
        KeyError: the key lies under none of the prefixes.
    """
    return _convert_key(key, prefixes)


def unet_to_ldm(state_dict: Mapping[str, torch.Tensor], config: Mapping) -> dict[str, torch.Tensor]:
    """Rename a diffusers UNet state dict to LDM names (without the ``model.diffusion_model.``)."""
    prefixes = unet_prefix_map(config)
    return {_convert_key(k, prefixes): v for k, v in state_dict.items()}


def unet_from_ldm(state_dict: Mapping[str, torch.Tensor], config: Mapping) -> dict[str, torch.Tensor]:
    """Inverse of :func:`unet_to_ldm`: LDM names (no model prefix) back to diffusers names."""
    prefixes = unet_prefix_map(config)
    inverse = {v: k for k, v in prefixes.items()}
    res_inverse = {v: k for k, v in _RESNET_RENAMES.items()}
    out = {}
    for key, value in state_dict.items():
        for src in sorted(inverse, key=len, reverse=True):
            if key.startswith(src + "."):
                rest = key[len(src) + 1 :]
                if ".resnets." in inverse[src] + ".":
                    for ldm_name, diff_name in res_inverse.items():
                        if rest.startswith(ldm_name + "."):
                            rest = diff_name + rest[len(ldm_name) :]
                            break
                out[f"{inverse[src]}.{rest}"] = value
                break
        else:
            raise KeyError(f"no diffusers name for LDM UNet key {key!r}")
    return out
