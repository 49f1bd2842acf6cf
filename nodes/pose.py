"""Pose and body-region nodes: ParseMask (an attribute's edit region) and PoseDetect (keypoints and
an OpenPose image for a pose ControlNet)."""

from __future__ import annotations

import json
import logging

import torch
from comfy_api.latest import io

from ..hierafash_core.masks import ATTRIBUTES, AUTO, LENGTH_ENDS, REACH_CATEGORY, REFINE_MODES, parse_image
from ..hierafash_core.pose.detect import NoPersonFound, bundled_complexities, detect_people, to_rgb
from ..hierafash_core.pose.openpose_json import people_from_pose_keypoint, tensor_to_pose_keypoint
from ..hierafash_core.pose.render import render_openpose
from ..hierafash_core.taxonomy import CATEGORIES
from .convert import check_inputs, host_progress, image_to_comfy, image_to_core, mask_to_comfy, mask_to_core

log = logging.getLogger(__name__)

# The keypoint type ComfyUI's pose preprocessors (DWPose, OpenPose) emit: OpenPose JSON per image.
PoseKeypoint = io.Custom("POSE_KEYPOINT")

_UNIT = "in body units (1 = about the torso length, neck to hips), so it means the same at any resolution"


class ParseMask(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HieraFash_ParseMask",
            display_name="ParseMask (HieraFash)",
            category="HieraFash/masks",
            description=(
                "The body region an attribute edit may change (sleeves, collar, length, hem, or the whole "
                "garment), built from the pose: detected in the photo with MediaPipe, or taken from a connected "
                "POSE_KEYPOINT (DWPose/OpenPose preprocessors). The region covers the largest extent the "
                "attribute can take, so a garment can grow as well as shrink. Several people: the largest is "
                "used unless person_index says otherwise."
            ),
            inputs=[
                io.Image.Input("image", tooltip="The photo or draft to edit."),
                io.Combo.Input(
                    "attribute",
                    options=list(ATTRIBUTES),
                    default="sleeve_length",
                    tooltip="Which attribute will be edited; 'garment' is the whole garment.",
                ),
                io.Combo.Input(
                    "category",
                    options=[AUTO, *CATEGORIES],
                    default=AUTO,
                    tooltip=(
                        "Garment category: how far length and hem regions reach (Dress, Skirt, Pant, Jumpsuit: to "
                        "the floor; Coat: mid-calf; Blouse, Sweater: mid-thigh). auto: the longest, to the floor "
                        "(needs the knees in the photo)."
                    ),
                ),
                io.Float.Input(
                    "grow",
                    default=0.0,
                    min=-0.5,
                    max=1.0,
                    step=0.01,
                    tooltip=f"Extra margin around the region, {_UNIT}.",
                ),
                io.Float.Input(
                    "feather",
                    default=0.05,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip=f"Width of the soft edge outside the region, {_UNIT}. 0 gives a hard edge.",
                ),
                io.Int.Input(
                    "person_index",
                    default=0,
                    min=0,
                    max=15,
                    step=1,
                    tooltip="Which person when the photo shows several: 0 is the largest, 1 the next, ...",
                ),
                io.Boolean.Input(
                    "clip_to_person",
                    default=True,
                    tooltip=(
                        "Keep the region within the detected person's silhouette (grown by person_margin). Needs "
                        "detection: with pose_keypoint connected no silhouette is known; connect one to refine_mask."
                    ),
                ),
                io.Float.Input(
                    "person_margin",
                    default=0.25,
                    min=0.0,
                    max=2.0,
                    step=0.01,
                    tooltip=f"How far the region may reach beyond the silhouette, {_UNIT}.",
                ),
                io.Combo.Input(
                    "refine_mode",
                    options=list(REFINE_MODES),
                    default="intersect",
                    tooltip="How refine_mask combines with the region: keep only the overlap, add it, or cut it out.",
                ),
                io.Float.Input(
                    "refine_margin",
                    default=0.0,
                    min=0.0,
                    max=2.0,
                    step=0.01,
                    tooltip=f"With intersect: how far the region may reach beyond refine_mask, {_UNIT}.",
                ),
                io.Combo.Input(
                    "reach",
                    options=[REACH_CATEGORY, *LENGTH_ENDS],
                    default=REACH_CATEGORY,
                    optional=True,  # graphs and API prompts saved before it existed keep working
                    tooltip=(
                        "Length, hem and garment regions: reach at least as far down as a garment of this clothing "
                        "length ends. Give the longer of the lengths before and after the edit (a knee-length "
                        "blouse or a long coat ends below its category's usual range). category: that range only."
                    ),
                ),
                PoseKeypoint.Input(
                    "pose_keypoint",
                    optional=True,
                    tooltip="Keypoints from a pose preprocessor (OpenPose JSON). When connected, no detector runs.",
                ),
                io.Mask.Input(
                    "refine_mask",
                    optional=True,
                    tooltip=(
                        "A mask from a parser or segmentation node (a person or garment mask). Another size with "
                        "the same aspect ratio is resized; another aspect ratio is refused."
                    ),
                ),
            ],
            outputs=[
                io.Mask.Output("mask", display_name="mask", tooltip="The region the attribute may change (1 = edit)."),
                io.Image.Output(
                    "preview", display_name="preview", tooltip="The photo with the region tinted and the skeleton."
                ),
                PoseKeypoint.Output(
                    "keypoints",
                    display_name="pose_keypoint",
                    tooltip="Every person's keypoints (OpenPose JSON), largest first: person_index keeps its meaning.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        image,
        attribute,
        category,
        grow,
        feather,
        person_index,
        clip_to_person,
        person_margin,
        refine_mode,
        refine_margin,
        reach=REACH_CATEGORY,
        pose_keypoint=None,
        refine_mask=None,
    ) -> io.NodeOutput:
        check_inputs(cls, locals())
        result = parse_image(
            image_to_core(image),
            attribute,
            category,
            pose_keypoint=pose_keypoint,
            person_index=person_index,
            grow=grow,
            feather=feather,
            clip_to_person=clip_to_person,
            person_margin=person_margin,
            refine_mask=mask_to_core(refine_mask, "refine_mask").clone() if refine_mask is not None else None,
            refine_mode=refine_mode,
            refine_margin=refine_margin,
            reach=reach,
        )
        return io.NodeOutput(mask_to_comfy(result.mask), image_to_comfy(result.preview), result.pose_keypoint())


class PoseDetect(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HieraFash_PoseDetect",
            display_name="PoseDetect (HieraFash)",
            category="HieraFash/pose",
            description=(
                "Find people in a photo with MediaPipe BlazePose (bundled weights, offline): their keypoints as "
                "POSE_KEYPOINT (OpenPose JSON, largest person first), an OpenPose skeleton image for a pose "
                "ControlNet, and their silhouettes as a mask."
            ),
            inputs=[
                io.Image.Input("image", tooltip="The photo to read the pose from."),
                io.Int.Input(
                    "max_people",
                    default=1,
                    min=1,
                    max=8,
                    step=1,
                    tooltip="How many people to look for; each one more costs another detector pass.",
                ),
                io.Combo.Input(
                    "model",
                    options=_pose_models(),
                    default="full",
                    tooltip="BlazePose full (more accurate) or lite (faster; offered only when the installed "
                    "MediaPipe bundles it: models are never downloaded).",
                ),
            ],
            outputs=[
                PoseKeypoint.Output(
                    "keypoints",
                    display_name="pose_keypoint",
                    tooltip="Keypoints of every person found (OpenPose JSON).",
                ),
                io.Image.Output(
                    "pose_image",
                    display_name="pose_image",
                    tooltip="OpenPose skeletons on black, in the colours pose ControlNets were trained on.",
                ),
                io.Mask.Output("person_mask", display_name="person_mask", tooltip="Silhouettes of the people found."),
            ],
        )

    @classmethod
    def execute(cls, image, max_people, model) -> io.NodeOutput:
        check_inputs(cls, locals())
        # TODO(evidence): Cancel is honoured per image, but the whole batch is converted first (400 images of
        # 704x512 took 17 s under load before the first check, tests/test_faults.py); convert image by image.
        rgb = to_rgb(image_to_core(image))
        _, _, h, w = rgb.shape
        found = detect_people(
            rgb, max_people=max_people, model_complexity=POSE_MODELS[model], callback=host_progress(rgb.shape[0])
        )
        for i, people in enumerate(found):
            if len(people) == 0:
                raise NoPersonFound(
                    f"no person found in image {i} ({w}x{h} px): use a photo where a person is clearly visible"
                )
        people = [p.keypoints for p in found]
        pose_image = render_openpose(people, (h, w))
        person_mask = torch.stack([p.masks.amax(dim=0) for p in found])  # union of silhouettes: (B, 1, H, W)
        return io.NodeOutput(
            tensor_to_pose_keypoint(people, (h, w)), image_to_comfy(pose_image), mask_to_comfy(person_mask)
        )


POSE_MODELS = {"full": 1, "lite": 0}


def _pose_models() -> list[str]:
    bundled = bundled_complexities()
    return [name for name, c in POSE_MODELS.items() if c in bundled] or ["full"]


class PoseKeypointFromJSON(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HieraFash_PoseKeypointFromJSON",
            display_name="PoseKeypoint from JSON (HieraFash)",
            category="HieraFash/pose",
            description=(
                "Keypoints typed or pasted as OpenPose JSON (what `hierafash parse` writes, or OpenPose's own "
                "output), as POSE_KEYPOINT for ParseMask or any pose node."
            ),
            inputs=[
                io.String.Input(
                    "json_text",
                    multiline=True,
                    default="",
                    tooltip=(
                        'OpenPose JSON: {"people": [{"pose_keypoints_2d": [x, y, c, ...]}], "canvas_width": W, '
                        '"canvas_height": H}, or a list of those (one per image).'
                    ),
                ),
            ],
            outputs=[PoseKeypoint.Output("keypoints", display_name="pose_keypoint", tooltip="The parsed keypoints.")],
        )

    @classmethod
    def execute(cls, json_text) -> io.NodeOutput:
        check_inputs(cls, locals())
        if not json_text.strip():
            raise ValueError("json_text: empty; paste OpenPose JSON keypoints")
        people_from_pose_keypoint(json_text, name="json_text")  # validates; a clear ValueError otherwise
        frames = json.loads(json_text)
        return io.NodeOutput(frames if isinstance(frames, list) else [frames])


NODES = [ParseMask, PoseDetect, PoseKeypointFromJSON]
