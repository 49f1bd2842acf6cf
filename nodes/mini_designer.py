"""MiniDesignerLoader: the built-in mini designer as MODEL, CLIP, VAE and the pose CONTROL_NET."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import folder_paths
from comfy_api.latest import io

from ..hierafash_core.mini.files import MiniDesignerFiles
from ..hierafash_core.model_files import PICKLE_SUFFIXES, check_safetensors
from .convert import check_inputs
from .mini_comfy import comfy_attention_heads, load_checkpoint, load_pose_controlnet

log = logging.getLogger(__name__)

BUILT_IN = "built-in"
CATEGORY = "HieraFash/models"


def _check_name(choice: object, name: str, kind: str) -> None:
    """Refuse a file name that leaves ComfyUI's ``kind`` folders or names a pickle, saying why and what to do."""
    if not isinstance(choice, str) or choice == BUILT_IN:
        return  # check_inputs names wrong types
    if Path(choice).is_absolute() or re.match(r"^[A-Za-z]:|^[\\/]", choice) or ".." in re.split(r"[\\/]", choice):
        raise ValueError(
            f"{name}={choice!r}: a path outside ComfyUI's {kind} folders ('..' or an absolute path) is refused; "
            f"copy the file into models/{kind} and pick it from the list"
        )
    if Path(choice).suffix.lower() in PICKLE_SUFFIXES:
        check_safetensors(Path(choice), name)  # raises: pickles can run code; convert to .safetensors


def _path(choice: str, kind: str, built_in: Path) -> str:
    if choice == BUILT_IN:
        if not built_in.is_file():
            raise ValueError(
                f"{kind}: the built-in mini designer is not built ({built_in} is missing); run "
                "`hierafash mini-designer build` once (about an hour on 2 CPU cores), or pick a file"
            )
        return str(check_safetensors(built_in, kind))
    path = folder_paths.get_full_path(kind, choice)
    if path is None:
        raise ValueError(f"{kind}: {choice!r} is not in ComfyUI's {kind} folders; pick a listed file or '{BUILT_IN}'")
    return str(check_safetensors(Path(path), kind))


class MiniDesignerLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HieraFash_MiniDesignerLoader",
            display_name="MiniDesignerLoader (HieraFash)",
            category=CATEGORY,
            description=(
                "Loads the built-in mini designer: a small model trained on the pack's synthetic fashion croquis "
                "(192 x 128 images) with staged captions and a pose ControlNet. Gives a MODEL, a CLIP and a VAE for "
                "the usual nodes (KSampler, StagedKSampler, GradientGuidedEdit, VAEDecode) and the pose CONTROL_NET "
                "for Apply ControlNet. Use 128 x 192 latents (EmptyLatentImage width 128, height 192)."
            ),
            inputs=[
                io.Combo.Input(
                    "checkpoint",
                    options=[BUILT_IN, *folder_paths.get_filename_list("checkpoints")],
                    default=BUILT_IN,
                    tooltip="'built-in': the files `hierafash mini-designer build` wrote; or a mini designer "
                    "checkpoint copied into models/checkpoints.",
                ),
                io.Combo.Input(
                    "pose_controlnet",
                    options=[BUILT_IN, *folder_paths.get_filename_list("controlnet")],
                    default=BUILT_IN,
                    tooltip="The pose ControlNet trained with it: 'built-in', or a copy in models/controlnet.",
                ),
            ],
            outputs=[
                io.Model.Output(
                    "model",
                    display_name="model",
                    tooltip="The mini designer's UNet (epsilon prediction, SD noise schedule).",
                ),
                io.Clip.Output(
                    "clip", display_name="clip", tooltip="Its text encoder: captions in the paper's ten-field form."
                ),
                io.Vae.Output(
                    "vae", display_name="vae", tooltip="Its 8x autoencoder (192 x 128 images <-> 4 x 24 x 16 latents)."
                ),
                io.ControlNet.Output(
                    "pose_control_net",
                    display_name="pose_control_net",
                    tooltip="Its pose ControlNet: feed it an OpenPose-18 stick figure drawing.",
                ),
            ],
        )

    @classmethod
    def execute(cls, checkpoint: str, pose_controlnet: str) -> io.NodeOutput:
        _check_name(checkpoint, "checkpoint", "checkpoints")
        _check_name(pose_controlnet, "pose_controlnet", "controlnet")
        check_inputs(cls, locals())
        files = MiniDesignerFiles.in_folder()
        model, clip, vae = load_checkpoint(_path(checkpoint, "checkpoints", files.checkpoint))
        heads = comfy_attention_heads(model.model.model_config.info["unet"])  # the UNet's, for the ControlNet
        control = load_pose_controlnet(_path(pose_controlnet, "controlnet", files.controlnet), heads)
        return io.NodeOutput(model, clip, vae, control)


NODES = [MiniDesignerLoader]
