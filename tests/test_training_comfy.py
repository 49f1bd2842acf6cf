"""Trained weights inside the real ComfyUI: the ControlNet through ControlNetLoader, the LoRA through LoraLoader.

Both are trained here for the seeded SD1.5-layout test checkpoint (read as a single file, its
layout recognised, the tokenizer found in the ComfyUI install), then loaded by ComfyUI's own
nodes and used in sampling with the core KSampler.
"""

from __future__ import annotations

import shutil

import pytest
import torch
from conftest import TINY_CKPT
from safetensors.torch import load_file

from hierafash_core.dataset.records import read_pose_json
from hierafash_core.pose.render import render_openpose_hwc
from hierafash_core.training import TrainConfig, train
from hierafash_core.training.models import load_base
from hierafash_core.training.tiny import write_toy_dataset

pytestmark = pytest.mark.comfy


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_checkpoint, comfy, comfy_base):
    """A ControlNet and a LoRA, one step each, copied into the host's model folders."""
    root = tmp_path_factory.mktemp("trained")
    data = write_toy_dataset(root / "data", 4, seed=3)
    base = load_base(tiny_checkpoint)
    assert base.layout == "tiny-sd15"
    common = dict(
        dataset=str(data), base=str(tiny_checkpoint), cpu=True, height=64, width=64, batch_size=2,
        max_steps=1, learning_rate=1e-3, checkpoint_every=0, progress=False, export_dtype="fp32",
    )  # fmt: skip
    # The ControlNet first: it copies the base UNet before the LoRA run adds adapters to it.
    cn = train(TrainConfig(output_dir=str(root / "cn"), **common), base=base).exports["controlnet"]
    lora = train(TrainConfig(output_dir=str(root / "lora"), mode="lora", lora_rank=4, **common), base=base)
    for folder, path in (("controlnet", cn), ("loras", lora.exports["lora"])):
        (comfy_base / "models" / folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, comfy_base / "models" / folder / f"hierafash-test-{folder}.safetensors")
    pose = read_pose_json(data / "poses" / "000000.json")
    (comfy_base / "input").mkdir(exist_ok=True)
    from PIL import Image

    Image.fromarray(render_openpose_hwc(pose.keypoints, 64, 96)).resize((64, 64)).save(
        comfy_base / "input" / "pose.png"
    )
    return {"controlnet": cn, "lora": lora.exports["lora"]}


def _graph(controlnet: bool = False, lora: bool = False) -> dict:
    model, clip = ["ckpt", 0], ["ckpt", 1]
    graph = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": TINY_CKPT}},
        "lat": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    }
    if lora:
        graph["lora"] = {
            "class_type": "LoraLoader",
            "inputs": {"model": model, "clip": clip, "lora_name": "hierafash-test-loras.safetensors",
                       "strength_model": 1.0, "strength_clip": 0.0},
        }  # fmt: skip
        model = ["lora", 0]
    graph["pos"] = {"class_type": "CLIPTextEncode", "inputs": {"clip": clip, "text": "Dress, Elegant, Party"}}
    graph["neg"] = {"class_type": "CLIPTextEncode", "inputs": {"clip": clip, "text": ""}}
    pos, neg = ["pos", 0], ["neg", 0]
    if controlnet:
        graph["cn"] = {
            "class_type": "ControlNetLoader",
            "inputs": {"control_net_name": "hierafash-test-controlnet.safetensors"},
        }
        graph["pose"] = {"class_type": "LoadImage", "inputs": {"image": "pose.png"}}
        graph["apply"] = {
            "class_type": "ControlNetApplyAdvanced",
            "inputs": {"positive": pos, "negative": neg, "control_net": ["cn", 0], "image": ["pose", 0],
                       "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0},
        }  # fmt: skip
        pos, neg = ["apply", 0], ["apply", 1]
    graph["ks"] = {
        "class_type": "KSampler",
        "inputs": {"model": model, "positive": pos, "negative": neg, "latent_image": ["lat", 0], "seed": 7,
                   "steps": 2, "cfg": 4.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0},
    }  # fmt: skip
    return graph


def test_trained_controlnet_loads_in_comfyui_and_steers_sampling(comfy, trained):
    out = comfy.run(_graph(controlnet=True), outputs=["ks"])
    loaded = out["cn"][0].control_model.state_dict()
    ours = load_file(str(trained["controlnet"]))
    assert {f"control_model.{k}" for k in loaded} == set(ours)  # every tensor found its place
    for key, value in loaded.items():
        assert torch.equal(value.float().cpu(), ours[f"control_model.{key}"].float()), key
    assert ours["control_model.zero_convs.0.0.weight"].abs().sum() > 0  # training moved the zero convs

    steered = out["ks"][0]["samples"]
    plain = comfy.run(_graph(), outputs=["ks"])["ks"][0]["samples"]
    assert steered.shape == plain.shape == (1, 4, 8, 8)
    assert torch.isfinite(steered).all()
    assert (steered - plain).abs().max() > 1e-4


def test_trained_lora_loads_in_comfyui_and_changes_sampling(comfy, trained):
    ours = load_file(str(trained["lora"]))
    modules = {k.split(".")[0] for k in ours}
    out = comfy.run(_graph(lora=True), outputs=["ks"])
    patched = out["lora"][0].patches
    # every LoRA module of the file patches one UNet weight (7 transformers x 2 attentions x 4 projections)
    assert len(modules) == len(patched) == 56
    assert all(k.startswith("diffusion_model.") for k in patched)
    with_lora = out["ks"][0]["samples"]
    plain = comfy.run(_graph(), outputs=["ks"])["ks"][0]["samples"]
    assert torch.isfinite(with_lora).all()
    assert (with_lora - plain).abs().max() > 1e-5
