"""Nodes of the whole design session: PoseToCanvas puts a photo's pose (and the photo) onto the design canvas."""

from __future__ import annotations

import logging

from comfy_api.latest import io

from ..hierafash_core.design.canvas import FITS, MAX_SIDE, MIN_SIDE, check_canvas, fit_image, fit_pose, pose_image
from ..hierafash_core.pose.detect import to_rgb
from .convert import check_inputs, image_to_comfy, image_to_core

log = logging.getLogger(__name__)

PoseKeypoint = io.Custom("POSE_KEYPOINT")


class PoseToCanvas(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HieraFash_PoseToCanvas",
            display_name="PoseToCanvas (HieraFash)",
            category="HieraFash/pose",
            description=(
                "Moves one person's pose from a photo of any size onto the design canvas (the paper's 512x704), "
                "and the photo with it: the skeleton for the pose ControlNet, the keypoints for ParseMask and the "
                "photo as a starting image all line up. 'contain' keeps the whole person (pads), 'cover' fills "
                "the canvas (crops), 'stretch' only suits photos of the canvas's shape."
            ),
            inputs=[
                PoseKeypoint.Input(
                    "pose_keypoint",
                    tooltip="Keypoints of the photo (PoseDetect, a DWPose/OpenPose preprocessor, or JSON); each "
                    "frame's canvas_width/canvas_height must be the photo's size.",
                ),
                io.Int.Input(
                    "width", default=512, min=MIN_SIDE, max=MAX_SIDE, step=8, tooltip="Canvas width in pixels."
                ),
                io.Int.Input(
                    "height", default=704, min=MIN_SIDE, max=MAX_SIDE, step=8, tooltip="Canvas height in pixels."
                ),
                io.Combo.Input(
                    "fit",
                    options=list(FITS),
                    default="contain",
                    tooltip="contain: the whole photo, padded; cover: fill the canvas, crop the overflow (centred); "
                    "stretch: scale each side on its own.",
                ),
                io.Int.Input(
                    "person_index",
                    default=0,
                    min=0,
                    max=15,
                    tooltip="Which person when there are several: 0 is the largest, 1 the next, ...",
                ),
                io.Image.Input(
                    "image",
                    optional=True,
                    tooltip="The photo the keypoints belong to; fitted the same way (padding is white).",
                ),
            ],
            outputs=[
                PoseKeypoint.Output(
                    "canvas_keypoints",
                    display_name="pose_keypoint",
                    tooltip="The chosen person's keypoints in canvas pixels (for ParseMask).",
                ),
                io.Image.Output(
                    "pose_image",
                    display_name="pose_image",
                    tooltip="The OpenPose skeleton on the canvas (for a pose ControlNet).",
                ),
                io.Image.Output(
                    "canvas_image",
                    display_name="image",
                    tooltip="The photo fitted to the canvas; without a photo, the skeleton image.",
                ),
            ],
        )

    @classmethod
    def execute(cls, pose_keypoint, width, height, fit, person_index, image=None) -> io.NodeOutput:
        check_inputs(cls, locals())
        check_canvas(width, height)
        canvas = (height, width)
        keypoints, on_canvas, fitted = fit_pose(pose_keypoint, canvas, fit, person_index)
        skeleton = pose_image(keypoints, canvas)  # (B, 3, H, W)
        if image is None:
            return io.NodeOutput(on_canvas, image_to_comfy(skeleton), image_to_comfy(skeleton))
        photo = image_to_core(image)
        frames = pose_keypoint if isinstance(pose_keypoint, list) else [pose_keypoint]
        size = (int(frames[0]["canvas_height"]), int(frames[0]["canvas_width"]))
        if tuple(photo.shape[-2:]) != size:
            raise ValueError(
                f"image: the photo is {photo.shape[-1]}x{photo.shape[-2]} but the keypoints were found on a "
                f"{size[1]}x{size[0]} photo; connect the photo the keypoints come from"
            )
        return io.NodeOutput(on_canvas, image_to_comfy(skeleton), image_to_comfy(fit_image(to_rgb(photo), fitted)))


NODES = [PoseToCanvas]
