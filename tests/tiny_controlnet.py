"""A seeded ControlNet for the tiny SD1.5-layout test checkpoint, in the original key layout.

Built as ControlNets are initialised (a copy of the UNet's encoder, time embedding and middle
block) plus a random hint encoder and random, non-zero "zero" convolutions, so that it changes
the sampled latent. Saved as ``control_model.*``, which ComfyUI's ControlNetLoader detects.
TODO(evidence): test_drafting_nodes builds a similar ControlNet in-process (its tiny_controlnet
fixture, with ComfyUI's own class); one shared builder in tests/ that can also write the file
would serve both.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

UNET_PREFIX = "model.diffusion_model."
COPIED = ("input_blocks.", "middle_block.", "time_embed.")
CHANNELS = 320  # model_channels of the tiny UNet (both levels)
# The hint encoder of an SD1.5 ControlNet: (in, out) channels per 3x3 conv, at Sequential indices 0, 2, ..., 14.
HINT_CONVS = ((3, 16), (16, 16), (16, 32), (32, 32), (32, 96), (96, 96), (96, 256), (256, CHANNELS))


def build_tiny_controlnet(checkpoint: Path, out: Path, seed: int = 7) -> Path:
    """Write the ControlNet for ``checkpoint`` to ``out`` (once) and return ``out``."""
    if out.is_file():
        return out
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    with safe_open(str(checkpoint), "pt") as f:
        for key in f.keys():
            if key.startswith(UNET_PREFIX) and key[len(UNET_PREFIX) :].startswith(COPIED):
                sd["control_model." + key[len(UNET_PREFIX) :]] = f.get_tensor(key).float()
    blocks = {int(k.split(".")[2]) for k in sd if k.startswith("control_model.input_blocks.")}
    for i in range(len(blocks)):  # one 1x1 "zero" conv per encoder block, here random and small
        sd[f"control_model.zero_convs.{i}.0.weight"] = 0.05 * torch.randn(CHANNELS, CHANNELS, 1, 1, generator=g)
        sd[f"control_model.zero_convs.{i}.0.bias"] = torch.zeros(CHANNELS)
    sd["control_model.middle_block_out.0.weight"] = 0.05 * torch.randn(CHANNELS, CHANNELS, 1, 1, generator=g)
    sd["control_model.middle_block_out.0.bias"] = torch.zeros(CHANNELS)
    for n, (cin, cout) in enumerate(HINT_CONVS):
        scale = 1 / (3 * cin**0.5)  # keeps activations near unit size through the chain
        sd[f"control_model.input_hint_block.{2 * n}.weight"] = scale * torch.randn(cout, cin, 3, 3, generator=g)
        sd[f"control_model.input_hint_block.{2 * n}.bias"] = torch.zeros(cout)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".partial")
    save_file({k: v.to(torch.float16).contiguous() for k, v in sd.items()}, str(tmp))
    tmp.rename(out)
    return out
