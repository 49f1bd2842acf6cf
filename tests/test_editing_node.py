"""GradientGuidedEdit inside the real ComfyUI (in-process executor, inference mode) on the seeded model.

Graphs are 64x64 pixels (an 8x8 latent). The draft is a 2-step KSampler; the edit mask is the
square of pixels 16..48 (latent cells 2..6), built from core mask nodes.
"""

from __future__ import annotations

import logging
import sys

import pytest
import torch
from comfy_host import GraphFailed
from graphs import TINY_CKPT
from tiny_controlnet import build_tiny_controlnet

pytestmark = pytest.mark.comfy

SIZE = 64
INSIDE = (slice(None), slice(None), slice(2, 6), slice(2, 6))  # the mask's latent cells
NODE = "HieraFash_GradientGuidedEdit"


def edit_inputs(**overrides) -> dict:
    inputs = {
        "model": ["ckpt", 0],
        "positive": ["attr", 0],
        "negative": ["neg", 0],
        "source": ["draft", 0],
        "mask": ["mask", 0],
        "attribute": "A2 sleeve length (t=831)",
        "start_timestep": 751,
        "start_step": 8,
        "steps": 8,
        "cfg": 5.0,
        "sampler": "euler",
        "scheduler": "normal",
        "seed": 3,
        "mode": "both",
        "guidance_weight": 1.0,
        "guidance_start": 0.0,
        "guidance_end": 1.0,
        "gradient_path": "clean estimate",
        "guidance_iterations": 1,
        "start_method": "noise",
        "inversion_refinements": 0,
    }
    inputs.update(overrides)
    return inputs


def edit_graph(mask_size: int = SIZE, **overrides) -> dict:
    """Draft (2-step KSampler), a square mask of ``mask_size`` pixels' canvas, one edit."""
    square = mask_size // 2
    return {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": TINY_CKPT}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["ckpt", 1], "text": "Dress, Elegant, Party"}},
        "attr": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["ckpt", 1], "text": "Long Sleeve"}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["ckpt", 1], "text": ""}},
        "empty": {"class_type": "EmptyLatentImage", "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1}},
        "draft": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["ckpt", 0],
                "positive": ["pos", 0],
                "negative": ["neg", 0],
                "latent_image": ["empty", 0],
                "seed": 1,
                "steps": 2,
                "cfg": 5.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
            },
        },
        "canvas": {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": mask_size, "height": mask_size}},
        "square": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": square, "height": square}},
        "mask": {
            "class_type": "MaskComposite",
            "inputs": {
                "destination": ["canvas", 0],
                "source": ["square", 0],
                "x": mask_size // 4,
                "y": mask_size // 4,
                "operation": "add",
            },
        },
        "edit": {"class_type": NODE, "inputs": edit_inputs(**overrides)},
    }


def run_edit_graph(comfy, graph: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``graph``; return (draft latent, edited latent), both (1, 4, 8, 8)."""
    out = comfy.run(graph, outputs=["edit"])
    return out["draft"][0]["samples"], out["edit"][0]["samples"]


_RUNS: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def run_edit_once(comfy, **overrides) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`run_edit_graph` of ``edit_graph(**overrides)``, run once per module (tests share runs)."""
    key = tuple(sorted(overrides.items()))
    if key not in _RUNS:
        _RUNS[key] = run_edit_graph(comfy, edit_graph(**overrides))
    return _RUNS[key]


def outside(t: torch.Tensor) -> torch.Tensor:
    kept = torch.ones_like(t, dtype=torch.bool)
    kept[INSIDE] = False
    return t[kept]


def test_node_is_registered_with_tooltips(comfy):
    cls = comfy.node_classes[NODE]
    info = cls.GET_SCHEMA() if hasattr(cls, "GET_SCHEMA") else cls.define_schema()
    assert info.display_name == "GradientGuidedEdit (HieraFash)"
    missing = [i.id for i in info.inputs if not i.tooltip]
    assert missing == [], f"inputs without a tooltip: {missing}"
    assert [o.id for o in info.outputs] == ["edited"]


def test_blend_keeps_the_outside_and_changes_the_inside(comfy):
    draft, edited = run_edit_once(comfy, mode="blend")
    assert edited.shape == draft.shape == (1, 4, 8, 8)
    assert (outside(edited) - outside(draft)).abs().max().item() < 1e-4
    change = (edited - draft)[INSIDE].abs().mean().item()
    assert change > 0.5, f"the masked region barely changed ({change:.3g})"


@pytest.mark.parametrize("path", ["clean estimate", "through the model"])
def test_guidance_alone_halves_the_distance_outside(comfy, path):
    """Guidance without blending, against the same run without guidance; through the model, the
    gradient runs through the UNet inside ComfyUI's executor (inference mode) on CPU."""
    draft, plain = run_edit_once(comfy, mode="guide", guidance_weight=0.0)
    _, guided = run_edit_once(comfy, mode="guide", gradient_path=path, guidance_weight=0.5)
    before = (outside(plain) - outside(draft)).norm().item()
    after = (outside(guided) - outside(draft)).norm().item()
    print(f"{path}: distance to the source outside the mask {before:.4g} -> {after:.4g} ({after / before:.1%})")
    assert after <= 0.5 * before
    assert (guided - draft)[INSIDE].abs().mean().item() > 0.5


def test_ddim_inversion_then_sampling_returns_the_source(comfy, caplog):
    """Full mask, blend, the draft's own conditioning: the edit is inversion then plain sampling.

    Bound: relative error under 1e-3 (measured about 2e-5 on this model at 8 steps; its noise
    prediction depends little on x, so the bound is looser than needed here; the exact Gaussian
    denoiser of test_editing_core shows the error against steps and refinements).
    """
    graph = edit_graph(mode="blend", start_method="ddim inversion", positive=["pos", 0])
    graph["mask"] = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": SIZE, "height": SIZE}}
    with caplog.at_level(logging.WARNING):
        draft, edited = run_edit_graph(comfy, graph)
    error = ((edited - draft).norm() / draft.norm()).item()
    print(f"DDIM inversion + sampling, relative error to the source: {error:.3g}")
    assert error < 1e-3
    assert "covers the whole latent: this edit is a regeneration" in caplog.text


def test_pose_controlnet_with_gradient_through_the_model(comfy, comfy_base, tiny_checkpoint):
    build_tiny_controlnet(tiny_checkpoint, comfy_base / "models" / "controlnet" / "hierafash-tiny-cn.safetensors")
    graph = edit_graph(mode="guide", gradient_path="through the model", guidance_weight=0.5)
    graph["cn"] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "hierafash-tiny-cn.safetensors"}}
    graph["pose"] = {
        "class_type": "EmptyImage",
        "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1, "color": 0xFF8040},
    }
    graph["edit"]["inputs"].update(control_net=["cn", 0], pose_image=["pose", 0], control_strength=1.0)
    draft, controlled = run_edit_graph(comfy, graph)
    _, free = run_edit_once(comfy, mode="guide", gradient_path="through the model", guidance_weight=0.5)
    assert torch.isfinite(controlled).all()
    assert (controlled - free)[INSIDE].abs().max().item() > 1e-3, "the ControlNet had no effect"


def test_progress_is_reported_and_cancel_stops_the_edit(comfy):
    """The node advances ComfyUI's progress bar per step and stops at the next step after Cancel."""
    import importlib

    utils, comfy_nodes = importlib.import_module("comfy.utils"), importlib.import_module("nodes")
    seen = []

    def hook(value, total, preview, prompt_id=None, node_id=None):
        seen.append((value, total))
        if total == 6 and value == 2:  # the edit: A2 starts at step 2 of 8, so 6 steps
            comfy_nodes.interrupt_processing(True)

    previous = utils.PROGRESS_BAR_HOOK
    utils.set_progress_bar_global_hook(hook)
    try:
        with pytest.raises(GraphFailed, match=f"execution_interrupted in node edit \\({NODE}\\)"):
            comfy.run(edit_graph(), outputs=["edit"])
    finally:
        utils.set_progress_bar_global_hook(previous)
        comfy_nodes.interrupt_processing(False)
    assert [event for event in seen if event[1] == 6] == [(1, 6), (2, 6)]


def test_resampling_reports_every_pass_and_cover_frees_the_cells_a_thin_mask_touches(comfy):
    """resample=3 over the first half of 6 steps: 3 steps x 3 passes + 3 = 12 model calls on the
    progress bar; a 3-pixel-wide mask line covers one latent column partly (average: changed late,
    little) or fully (cover), and both leave the other columns exactly as they were."""
    import importlib

    utils = importlib.import_module("comfy.utils")
    seen = []
    previous = utils.PROGRESS_BAR_HOOK
    utils.set_progress_bar_global_hook(lambda value, total, *a, **k: seen.append((value, total)))
    try:
        draft, resampled = run_edit_graph(comfy, edit_graph(mode="blend", resample=3, resample_share=0.5))
    finally:
        utils.set_progress_bar_global_hook(previous)
    assert [e for e in seen if e[1] == 12][-1] == (12, 12)
    _, plain = run_edit_once(comfy, mode="blend")
    assert (outside(resampled) - outside(draft)).abs().max().item() < 1e-4
    assert (resampled - plain)[INSIDE].abs().mean().item() > 0.05  # the passes changed the result

    changes = {}
    for how in ("average", "cover"):
        graph = edit_graph(mode="blend", latent_mask=how)
        graph["square"]["inputs"].update(width=3, height=SIZE // 2)  # 3 px of a latent column's 8
        draft, edited = run_edit_graph(comfy, graph)
        column = (edited - draft)[..., 2:6, 2].abs().mean().item()
        rest = torch.cat([(edited - draft)[..., :2], (edited - draft)[..., 3:]], dim=-1).abs().max().item()
        assert rest < 1e-4, how
        changes[how] = column
    assert changes["cover"] > 2 * changes["average"], changes
    with pytest.raises(GraphFailed, match="latent_mask"):
        comfy.run(edit_graph(latent_mask="nearest"), outputs=["edit"])


# -- bad input: clear messages ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mask": ["zeros", 0]}, r"the mask is empty \(all zeros\), so there is nothing to edit"),
        ({"attribute": "custom step", "start_step": 20}, r"start step=20 is outside the run of 8 steps; use 0\.\.7"),
        ({"mask": ["three_masks", 0]}, "3 masks for a batch of 1 latents; give one mask"),
    ],
)
def test_bad_inputs_say_what_to_fix(comfy, change, message):
    graph = edit_graph(**change)
    graph["draft"] = {"class_type": "EmptyLatentImage", "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1}}
    graph["zeros"] = {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": SIZE, "height": SIZE}}
    graph["images"] = {
        "class_type": "EmptyImage",
        "inputs": {"width": SIZE, "height": SIZE, "batch_size": 3, "color": 0},
    }
    graph["three_masks"] = {"class_type": "ImageToMask", "inputs": {"image": ["images", 0], "channel": "red"}}
    with pytest.raises(GraphFailed, match=message):
        comfy.run(graph, outputs=["edit"])


def test_pose_control_needs_both_inputs(comfy):
    module = sys.modules[comfy.node_classes[NODE].__module__.rsplit(".", 1)[0] + ".edit_sampling"]
    pose = torch.zeros(1, SIZE, SIZE, 3)
    with pytest.raises(ValueError, match="control_net: the pose ControlNet needs both control_net and pose_image"):
        module.apply_pose_control([], [], None, pose, 1.0)
    with pytest.raises(ValueError, match="pose_image: the pose ControlNet needs both"):
        module.apply_pose_control([], [], object(), None, 1.0)


def test_mask_of_another_size_is_resized_and_logged(comfy, caplog):
    with caplog.at_level(logging.INFO):
        draft, edited = run_edit_graph(comfy, edit_graph(mask_size=32, mode="blend"))
    assert "mask of 32x32 resized to the 8x8 latent grid" in caplog.text
    assert (outside(edited) - outside(draft)).abs().max().item() < 1e-4


def test_attribute_conditioning_alone_cannot_start_above_its_windows(comfy):
    """AttributeEncode's windows begin below t=900; an edit from the top of the schedule needs the concepts too."""
    graph = edit_graph(attribute="custom step", start_step=0, steps=20)
    graph["draft"] = {"class_type": "EmptyLatentImage", "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1}}
    graph["concepts"] = {
        "class_type": "HieraFash_ConceptEncode",
        "inputs": {"clip": ["ckpt", 1], "category": "Dress", "style": "Elegant", "occasion": "(unset)",
                   "effect": "(unset)", "feeling": "(unset)", "free_text": "", "allow_free_text": False,
                   "schedule": "paper"},
    }  # fmt: skip
    graph["attrs"] = {
        "class_type": "HieraFash_AttributeEncode",
        "inputs": {"clip": ["ckpt", 1], "design": ["concepts", 1], "clothing_length": "Long",
                   "sleeve_length": "(unset)", "sleeve_type": "(unset)", "collar": "(unset)", "hem": "(unset)",
                   "free_text": "", "allow_free_text": False},
    }  # fmt: skip
    graph["edit"]["inputs"]["positive"] = ["attrs", 0]
    with pytest.raises(GraphFailed, match=r"positive: steps \[0, 1\] of this edit .* have no active conditioning"):
        comfy.run(graph, outputs=["edit"])
    graph["both"] = {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["concepts", 0],
                                                                    "conditioning_2": ["attrs", 0]}}  # fmt: skip
    graph["edit"]["inputs"]["positive"] = ["both", 0]
    out = comfy.run(graph, outputs=["edit"])
    assert out["edit"][0]["samples"].shape == (1, 4, 8, 8)


# -- init: where the region starts (SleeveHint's painting, encoded) ----------------------------------------
def test_init_changes_where_the_region_starts_and_the_outside_stays(comfy):
    """An init latent (here a second draft of another seed) is what the region is noised from: the
    edit's inside moves towards it against the same edit from the source, and the outside is kept."""
    graph = edit_graph(mode="blend", attribute="custom timestep", start_timestep=400, init=["other", 0])
    graph["other"] = {"class_type": "KSampler", "inputs": {**graph["draft"]["inputs"], "seed": 99}}
    out = comfy.run(graph, outputs=["edit", "other"])
    draft, hinted, other = out["draft"][0]["samples"], out["edit"][0]["samples"], out["other"][0]["samples"]
    plain_graph = edit_graph(mode="blend", attribute="custom timestep", start_timestep=400)
    _, plain = run_edit_graph(comfy, plain_graph)
    assert (outside(hinted) - outside(draft)).abs().max().item() < 1e-4
    to_other = (hinted - other)[INSIDE].abs().mean().item()
    assert to_other < 0.6 * (plain - other)[INSIDE].abs().mean().item()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"start_method": "ddim inversion"}, r"init: given with start_method='ddim inversion'.*'noise'"),
        ({"init": ["small", 0]}, r"init: a latent of shape \(1, 4, 4, 4\), the source's is \(1, 4, 8, 8\)"),
    ],
)
def test_init_bad_inputs_say_what_to_fix(comfy, change, message):
    graph = edit_graph(**{"init": ["draft", 0], **change})
    graph["small"] = {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}}
    with pytest.raises(GraphFailed, match=message):
        comfy.run(graph, outputs=["edit"])
