"""The test host itself: the real ComfyUI loads the pack and runs the seeded checkpoint."""

from __future__ import annotations

import pytest
import torch
from graphs import tiny_graph

pytestmark = pytest.mark.comfy


def test_pack_is_loaded_in_process(comfy):
    loaded = {name for name in comfy.nodes.LOADED_MODULE_DIRS}
    assert "hierafash" in loaded, f"the pack did not load; loaded custom nodes: {sorted(loaded)}"


def test_seeded_checkpoint_is_sd15_and_samples(comfy):
    out = comfy.run(tiny_graph(), outputs=["dec"])
    model = out["ckpt"][0]
    assert type(model.model.model_config).__name__ == "SD15"
    image = out["dec"][0]
    assert image.shape == (1, 64, 64, 3)
    assert torch.isfinite(image).all()


def test_ldm_key_map_matches_comfyui(comfy):
    """Our diffusers->LDM key mapping agrees with ComfyUI's own mapping for the tiny layout."""
    import comfy.utils  # the host's module (loaded by the fixture)
    from diffusers import UNet2DConditionModel

    from hierafash_core.models.ldm_keys import unet_from_ldm, unet_to_ldm
    from hierafash_core.models.tiny import load_config

    cfg = {k: v for k, v in load_config("unet").items() if not k.startswith("_")}
    keys = list(UNet2DConditionModel(**cfg).state_dict())
    unet_config = {
        "num_res_blocks": [1, 1],
        "channel_mult": [1, 1],
        "transformer_depth": [1, 1],
        "transformer_depth_output": [1, 1, 1, 1],
        "transformer_depth_middle": 1,
    }
    theirs = comfy.utils.unet_to_diffusers(unet_config)  # diffusers key -> ldm key (a superset)
    ours = unet_to_ldm({k: k for k in keys}, cfg)  # ldm key -> the diffusers key it came from
    assert len(ours) == len(keys)
    for ldm_key, diffusers_key in ours.items():
        assert theirs[diffusers_key] == ldm_key
    back = unet_from_ldm({k: v for k, v in ours.items()}, cfg)
    assert back == {k: k for k in keys}


def test_server_runs_a_graph_over_http(comfy_server):
    from hierafash_core.api_client import ComfyClient

    client = ComfyClient(comfy_server.url, timeout=30)
    entry = client.run(tiny_graph(save=True), timeout=300)
    images = entry["outputs"]["save"]["images"]
    assert len(images) == 1
    png = client.view(images[0]["filename"], images[0]["subfolder"], images[0]["type"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
