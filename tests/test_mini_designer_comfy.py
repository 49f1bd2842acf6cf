"""The mini designer inside the real ComfyUI: MiniDesignerLoader, sampling, and agreement with the headless path."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hierafash_core.mini.pipeline import MiniDesigner
from hierafash_core.synth.pose_bank import POSES_BY_NAME, place

pytestmark = pytest.mark.comfy
CAPTION = "Dress, Elegant, Party, Tall, Crisp Feeling, Long Dress, Short Sleeve, Puffed Sleeve, V-Neck, Ruffle Hem"


@pytest.fixture(scope="module")
def designer(mini_test_designer, comfy, comfy_base):
    """The test mini designer, copied into the host's checkpoints and controlnet folders, and a pose image."""
    _, files, _ = mini_test_designer
    for folder, path in (("checkpoints", files.checkpoint), ("controlnet", files.controlnet)):
        (comfy_base / "models" / folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, comfy_base / "models" / folder / path.name)
    headless = MiniDesigner.load(files)
    pose = headless.pose_image(place(POSES_BY_NAME["front"].keypoints, (128, 192)))
    (comfy_base / "input").mkdir(exist_ok=True)
    Image.fromarray((pose[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(
        comfy_base / "input" / "mini-pose.png"
    )
    return files, headless, pose


def _graph(files, control: bool = True, steps: int = 2) -> dict:
    graph = {
        "load": {"class_type": "HieraFash_MiniDesignerLoader",
                 "inputs": {"checkpoint": files.checkpoint.name, "pose_controlnet": files.controlnet.name}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["load", 1], "text": CAPTION}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["load", 1], "text": ""}},
        "lat": {"class_type": "EmptyLatentImage", "inputs": {"width": 128, "height": 192, "batch_size": 1}},
    }  # fmt: skip
    pos, neg = ["pos", 0], ["neg", 0]
    if control:
        graph["pose"] = {"class_type": "LoadImage", "inputs": {"image": "mini-pose.png"}}
        graph["apply"] = {"class_type": "ControlNetApplyAdvanced", "inputs": {
            "positive": pos, "negative": neg, "control_net": ["load", 3], "image": ["pose", 0],
            "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0, "vae": ["load", 2]}}  # fmt: skip
        pos, neg = ["apply", 0], ["apply", 1]
    graph["ks"] = {"class_type": "KSampler", "inputs": {
        "model": ["load", 0], "positive": pos, "negative": neg, "latent_image": ["lat", 0], "seed": 5, "steps": steps,
        "cfg": 4.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}}  # fmt: skip
    graph["dec"] = {"class_type": "VAEDecode", "inputs": {"samples": ["ks", 0], "vae": ["load", 2]}}
    return graph


def test_loader_gives_model_clip_vae_and_pose_controlnet_that_sample_an_image(comfy, designer):
    files, _, _ = designer
    out = comfy.run(_graph(files), outputs=["dec"])
    model, clip, vae, control = out["load"]
    assert type(model).__name__ == "ModelPatcher" and type(clip).__name__ == "CLIP"
    assert type(vae).__name__ == "MiniVAE" and type(control).__name__ == "ControlNet"
    image = out["dec"][0]
    assert image.shape == (1, 192, 128, 3)
    assert torch.isfinite(image).all() and 0 <= float(image.min()) and float(image.max()) <= 1
    plain = comfy.run(_graph(files, control=False), outputs=["ks"])["ks"][0]["samples"]
    assert (out["ks"][0]["samples"] - plain).abs().max() > 1e-4  # the pose ControlNet acts


def test_comfy_text_encoding_equals_the_headless_one(comfy, designer):
    files, headless, _ = designer
    out = comfy.run(_graph(files, control=False, steps=1), outputs=["pos"])
    cond = out["pos"][0][0][0]  # CONDITIONING: [[tensor (1, 77, 384), {...}]]
    expected = headless.encode_text([CAPTION])
    assert cond.shape == expected.shape == (1, 77, 384)
    assert torch.allclose(cond.float(), expected, atol=2e-3), (cond.float() - expected).abs().max()


@pytest.fixture(scope="module")
def epsilon_designer(tmp_path_factory, comfy, comfy_base):
    """A test mini designer as the first recipe made them: epsilon prediction, 8 attention heads everywhere."""
    import json

    from mini_fixtures import build_test_designer

    from hierafash_core.mini.paths import CONFIG_DIR

    root = tmp_path_factory.mktemp("mini-eps")
    unet = json.loads((CONFIG_DIR / "unet.json").read_text()) | {"attention_head_dim": 8}
    (root / "unet-8-heads.json").write_text(json.dumps(unet))
    files, _ = build_test_designer(
        root, prediction="epsilon", name="mini-eps", unet_config=str(root / "unet-8-heads.json")
    )
    for folder, path in (("checkpoints", files.checkpoint), ("controlnet", files.controlnet)):
        target = comfy_base / "models" / folder / f"eps-{path.name}"
        shutil.copyfile(path, target)
    return files, MiniDesigner.load(files)


@pytest.mark.parametrize("prediction", ["v_prediction", "epsilon"])
def test_comfy_model_and_vae_agree_with_the_headless_denoiser(comfy, designer, epsilon_designer, prediction):
    """ComfyUI's own EPS / V_PREDICTION sampling and the headless D(x, sigma) are the same function."""
    from comfy.model_sampling import V_PREDICTION

    if prediction == "epsilon":
        files, headless = epsilon_designer
        files = dataclasses.replace(files, checkpoint=Path("eps-" + files.checkpoint.name),
                                    controlnet=Path("eps-" + files.controlnet.name))  # fmt: skip
    else:
        files, headless, _ = designer
    assert headless.prediction == prediction
    model, clip, vae, _ = comfy.run(_graph(files, control=False, steps=1), outputs=["load"])["load"]
    sampling = model.get_model_object("model_sampling")
    assert isinstance(sampling, V_PREDICTION) == (prediction == "v_prediction")
    ctx = headless.encode_text([CAPTION])
    g = torch.Generator().manual_seed(0)
    x = torch.randn((1, 4, 24, 16), generator=g) * 3.0
    sigma = torch.tensor([3.0])
    with torch.inference_mode():  # as inside a node
        ours = headless.denoiser([CAPTION], None, cfg=1.0)(x, sigma)
        # The inputs ComfyUI's sampler builds from a conditioning (cross_attn -> c_crossattn and y).
        conds = model.model.extra_conds(cross_attn=ctx, device=x.device, noise=x)
        theirs = model.model.apply_model(x, sigma, **{k: c.cond for k, c in conds.items()})
        decoded = vae.decode(x / 3)  # (B, H, W, C) in [0, 1]
        encoded = vae.encode(decoded)
    assert torch.allclose(ours, theirs.float(), atol=5e-3), (ours - theirs).abs().max()
    assert torch.allclose(decoded.movedim(-1, 1), headless.decode(x / 3), atol=1e-4)
    assert torch.allclose(encoded, headless.encode_images(decoded.movedim(-1, 1)), atol=1e-4)


@pytest.mark.parametrize("heads", ["64 channels per head", "8 heads"])
def test_comfy_pose_controlnet_agrees_with_the_headless_one(comfy, designer, epsilon_designer, heads):
    """The loader's ControlNet reads the caption summary (y), splits attention as trained, gives the same residuals."""
    from hierafash_core.models.caption_summary import caption_summary

    files, headless, pose = designer
    if heads == "8 heads":  # ComfyUI's own loader would assume 64 channels per head; the pack's sets 8
        files, headless = epsilon_designer
        files = dataclasses.replace(files, checkpoint=Path("eps-" + files.checkpoint.name),
                                    controlnet=Path("eps-" + files.controlnet.name))  # fmt: skip
    cn = comfy.run(_graph(files, control=False, steps=1), outputs=["load"])["load"][3]
    net = cn.control_model
    assert net.num_classes is not None, "ComfyUI's ControlNet lost the caption summary's class embedding"
    ctx = headless.encode_text([CAPTION])
    x = torch.randn((1, 4, 24, 16), generator=torch.Generator().manual_seed(1))
    t = torch.tensor([500])
    with torch.inference_mode():
        down, mid = headless.controlnet(x, t, encoder_hidden_states=ctx, controlnet_cond=pose, return_dict=False,
                                        class_labels=caption_summary(ctx))  # fmt: skip
        theirs = net(x=x, hint=pose, timesteps=t.float(), context=ctx, y=caption_summary(ctx))
        other = net(x=x, hint=pose, timesteps=t.float(), context=ctx, y=caption_summary(ctx) * 0)
    assert len(theirs["output"]) == len(down)
    for ours, their in zip([*down, mid], [*theirs["output"], *theirs["middle"]], strict=True):
        # Relative: a barely trained ControlNet's zero convolutions give small residuals.
        assert (ours - their).abs().max() <= 1e-3 * ours.abs().max() + 1e-6, (ours - their).abs().max()
    assert not torch.allclose(theirs["middle"][0], other["middle"][0], atol=1e-4)  # y is used


def test_text_of_another_width_is_refused_by_stock_samplers_too(comfy, designer):
    """A CLIP from another checkpoint (768 wide) with the mini MODEL: a message, not a matmul error."""
    files, headless, _ = designer
    model = comfy.run(_graph(files, control=False, steps=1), outputs=["load"])["load"][0]
    with pytest.raises(ValueError, match="text embeddings 768 wide, but the mini designer takes 384; encode"):
        model.model.extra_conds(cross_attn=torch.zeros(1, 77, 768), device=torch.device("cpu"),
                                noise=torch.zeros(1, 4, 24, 16))  # fmt: skip


HEADS = {"num_heads": 8, "num_head_channels": -1}
WIDE = {"num_heads": -1, "num_head_channels": 64}
CHANNELS = [64, 128, 256]


@pytest.mark.parametrize(
    ("heads", "channels", "expected"),
    [
        (8, CHANNELS, HEADS),
        ([8, 8, 8], CHANNELS, HEADS),
        ([1, 2, 4], CHANNELS, WIDE),
        (None, CHANNELS, HEADS),  # diffusers' default
        ([1, 2], CHANNELS, "give one head count per block"),
        ([1, 3, 4], CHANNELS, "give one head count per block"),
        ([1, 1, 4], CHANNELS, r"one width per head \(channels / heads\), here \[64, 128\]"),
    ],
)
def test_attention_heads_for_comfy(comfy, heads, channels, expected):
    config = {"attention_head_dim": heads, "block_out_channels": channels}
    import sys

    loader = sys.modules[comfy.node_classes["HieraFash_MiniDesignerLoader"].__module__]
    comfy_attention_heads = sys.modules[loader.__name__.rsplit(".", 1)[0] + ".mini_comfy"].comfy_attention_heads
    if isinstance(expected, dict):
        assert comfy_attention_heads(config) == expected
    else:
        with pytest.raises(ValueError, match=expected):
            comfy_attention_heads(config)


def test_mini_vae_has_every_attribute_of_comfys_own_vae(comfy, designer):
    """MiniVAE sets the attributes comfy.sd.VAE.__init__ sets; a ComfyUI update that adds one fails here."""
    from comfy.sd import VAE
    from comfy.taesd.taesd import TAESD

    files, _, _ = designer
    reference = VAE(sd=TAESD().state_dict())
    ours = comfy.run(_graph(files, control=False, steps=1), outputs=["load"])["load"][2]
    assert set(vars(reference)) <= set(vars(ours)), set(vars(reference)) - set(vars(ours))


def test_core_controlnet_loader_reads_the_pose_file(comfy, designer):
    files, _, _ = designer
    graph = {"cn": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": files.controlnet.name}}}
    control = comfy.run(graph, outputs=["cn"])["cn"][0]
    assert type(control).__name__ == "ControlNet"


def test_loader_refuses_a_checkpoint_that_is_not_a_mini_designer(comfy, designer):
    from comfy_host import GraphFailed
    from graphs import TINY_CKPT

    files, _, _ = designer
    graph = _graph(files, control=False, steps=1)
    graph["load"]["inputs"]["checkpoint"] = TINY_CKPT
    with pytest.raises(GraphFailed, match="not a mini designer checkpoint"):
        comfy.run(graph, outputs=["pos"])


def test_the_mini_design_workflow_runs_staged_sampler_parse_mask_and_edits(comfy, comfy_base, designer):
    """workflows/hierafash_mini_design.json (its API twin) on the test designer: StagedKSampler with the
    pose ControlNet, three GradientGuidedEdits with ParseMask masks (resampled, covering latent masks),
    each pasted into the image before it by ImageCompositeMasked, at 3 steps each."""
    import json
    from pathlib import Path

    files, _, _ = designer
    repo = Path(__file__).resolve().parents[1]
    graph = json.loads((repo / "tests" / "workflows" / "hierafash_mini_design_api.json").read_text())
    shutil.copyfile(repo / "workflows" / "hierafash_mini_pose.png", comfy_base / "input" / "hierafash_mini_pose.png")
    graph["1"]["inputs"].update(checkpoint=files.checkpoint.name, pose_controlnet=files.controlnet.name)
    for node in graph.values():
        if node["class_type"] in ("HieraFash_StagedKSampler", "HieraFash_GradientGuidedEdit"):
            node["inputs"]["steps"] = 3
    assert graph["47"]["class_type"] == "ImageCompositeMasked" and graph["45"]["inputs"]["images"] == ["47", 0]
    out = comfy.run(graph, outputs=["45"])
    draft, final = out["10"][0], out["47"][0]
    assert draft.shape == final.shape == (1, 192, 128, 3)
    assert (draft - final).abs().max() > 0  # the edits changed something
    mask = out["42"][0]  # the collar mask of the last edit
    outside = mask[0] < 0.01
    assert outside.float().mean() > 0.5  # a collar region, not the whole image
    # pasted: outside all three regions, not one pixel of the draft changed
    untouched = (out["22"][0][0] == 0) & (out["32"][0][0] == 0) & (out["42"][0][0] == 0)
    assert untouched.float().mean() > 0.3 and torch.equal(final[0][untouched], draft[0][untouched])


def test_built_in_choice_reads_the_built_files_or_says_how_to_build_them(comfy, designer, tmp_path, monkeypatch):
    from comfy_host import GraphFailed

    files, _, _ = designer
    graph = _graph(files, control=True, steps=1)
    graph["load"]["inputs"].update(checkpoint="built-in", pose_controlnet="built-in")
    monkeypatch.setenv("HIERAFASH_MODELS", str(tmp_path / "empty"))
    with pytest.raises(
        GraphFailed, match="the built-in mini designer is not built .* run `hierafash mini-designer build`"
    ):
        comfy.run(graph, outputs=["ks"])
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mini-designer").symlink_to(files.folder)
    monkeypatch.setenv("HIERAFASH_MODELS", str(tmp_path / "models"))
    out = comfy.run(graph, outputs=["ks"])
    assert out["ks"][0]["samples"].shape == (1, 4, 24, 16)


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".bin"])
def test_loader_refuses_pickles_paths_out_of_the_folders_and_truncated_files(comfy, comfy_base, designer, suffix):
    """Pickles in the model folders (so listed in the menu), names that climb out, a truncated copy: each refused
    with why and what to do, and no pickle is ever opened (its unpickling would create the marker file)."""
    import pickle

    from comfy_host import GraphFailed

    files, _, _ = designer
    marker = comfy_base / "unpickled"
    written = []
    try:
        for folder, key in (("checkpoints", "checkpoint"), ("controlnet", "pose_controlnet")):
            trap = comfy_base / "models" / folder / f"trap-{folder}{suffix}"
            trap.write_bytes(pickle.dumps({"state_dict": _Opener(str(marker))}))
            written.append(trap)
            graph = _graph(files, control=False, steps=1)
            graph["load"]["inputs"][key] = trap.name
            pickled = rf"{key} .*is a pickle-based file \({suffix}\), which can run code when loaded; HieraFash loads "
            with pytest.raises(GraphFailed, match=pickled + "safetensors only"):
                comfy.run(graph, outputs=["pos"])
            for outside in (f"../{folder}/{files.checkpoint.name}", str(files.checkpoint), f"..\\{trap.name}"):
                graph["load"]["inputs"][key] = outside
                refused = rf"{key}=.*a path outside ComfyUI's {folder} folders .*copy the file into models/{folder} "
                with pytest.raises(GraphFailed, match=refused + "and pick it from the list"):
                    comfy.run(graph, outputs=["pos"])
        cut = comfy_base / "models" / "checkpoints" / f"cut-{suffix[1:]}.safetensors"
        data = files.checkpoint.read_bytes()
        cut.write_bytes(data[: len(data) // 2])
        written.append(cut)
        graph = _graph(files, control=False, steps=1)
        graph["load"]["inputs"]["checkpoint"] = cut.name
        with pytest.raises(
            GraphFailed, match=r"is not a readable safetensors file .*truncated download.*copy it again"
        ):
            comfy.run(graph, outputs=["pos"])
    finally:
        for path in written:
            path.unlink(missing_ok=True)
    assert not marker.exists(), "a pickle was unpickled"


class _Opener:
    """Unpickling this creates ``path``: the marker that says a pickle was loaded."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))
