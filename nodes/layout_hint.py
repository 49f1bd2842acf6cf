"""SleeveHint: the asked sleeve length painted onto the arms, as a starting image for a sleeve edit.

Feed its image through VAEEncode into GradientGuidedEdit's ``init`` and start the edit lower
(``custom timestep``, about t = 340): the edit then redraws a sleeve whose end is already placed
from the pose, instead of asking the model to place it from the word alone (docs/editing.md).
"""

from __future__ import annotations

import logging

import torch
from comfy_api.latest import io

from ..hierafash_core.editing.layout import OUTLINE_SHADE, SLEEVE_HINT_START_T, paint_sleeves
from ..hierafash_core.pose.openpose_json import people_from_pose_keypoint, select_person
from ..hierafash_core.synth.details import SLEEVE_END
from .convert import check_inputs, host_progress, image_to_comfy, image_to_core
from .pose import PoseKeypoint

log = logging.getLogger(__name__)


class SleeveHint(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HieraFash_SleeveHint",
            display_name="SleeveHint (HieraFash)",
            category="HieraFash/editing",
            description=(
                "Paint the asked sleeve length onto the arms of an image, from the pose: the arm is cleared, "
                "then painted in the bodice's colour from the shoulder to where the sleeve ends and in skin "
                "colour beyond it. VAEEncode the result into GradientGuidedEdit's init and start the edit at "
                f"a custom timestep of about {SLEEVE_HINT_START_T}: the model redraws the sleeve with its end "
                "already in place. A rough picture on purpose; the edit makes it a sleeve."
            ),
            inputs=[
                io.Image.Input("image", tooltip="The design to edit (the decoded draft or previous edit)."),
                PoseKeypoint.Input(
                    "pose_keypoint",
                    tooltip="The pose of the image (PoseToCanvas, PoseDetect or a DWPose/OpenPose preprocessor).",
                ),
                io.Combo.Input(
                    "sleeve_length",
                    options=list(SLEEVE_END),
                    default="Long Sleeve",
                    tooltip="The sleeve length the edit asks for (the same value as the edit's AttributeEncode).",
                ),
                io.Int.Input(
                    "person_index",
                    default=0,
                    min=0,
                    max=63,
                    tooltip="Which person of the pose, largest first.",
                ),
                io.Float.Input(
                    "outline",
                    default=OUTLINE_SHADE,
                    min=0.0,
                    max=1.0,
                    step=0.05,
                    optional=True,
                    tooltip=(
                        "The painted sleeve's and bare arm's edges are darkened to this share of their colour, "
                        "as an illustration's outline (1 draws none). The mini designer reads the sleeve's end "
                        f"far better with it ({OUTLINE_SHADE}); try 1 for a photographic model."
                    ),
                ),
            ],
            outputs=[
                io.Image.Output(
                    "hint",
                    display_name="hint",
                    tooltip="The image with the sleeves painted in; VAEEncode it for GradientGuidedEdit's init.",
                ),
            ],
        )

    @classmethod
    def execute(cls, image, pose_keypoint, sleeve_length, person_index, outline=OUTLINE_SHADE) -> io.NodeOutput:
        check_inputs(cls, locals())
        images = image_to_core(image)  # (B, C, H, W)
        b, c, h, w = images.shape
        rgb = images[:, :3] if c >= 3 else images.expand(-1, 3, -1, -1)  # gray repeated
        keypoints = select_person(people_from_pose_keypoint(pose_keypoint, (h, w)), person_index, batch=b)
        # an image the pose misses is an error here: the edit would otherwise start, lower down, from
        # an unpainted image and the user would not know why the sleeve did not change
        try:
            painted = paint_sleeves(
                rgb, keypoints, [sleeve_length] * b, outline=outline, require_painted=True, progress=host_progress(b)
            )
        except ValueError as error:  # the core's names for the inputs, as this node names them
            core, _, problem = str(error).partition(": ")
            named = {"keypoints": f"pose_keypoint (person {person_index})", "images": "image"}.get(core)
            if named is None:
                raise
            raise ValueError(f"{named}: {problem}") from None
        if c == 4:
            # TODO(evidence: a break-test painted a cut-out figure on a transparent background (RGB 0 under
            # it) from long sleeves to sleeveless: the cleared band is filled from the black under the
            # transparent pixels and the alpha is handed back unchanged, so over white a dark outline of
            # the old sleeve shows around the new bare arm. VAEEncode drops alpha, so the edit itself is
            # unaffected; filling the alpha along with the colour would fix the picture.)
            painted = torch.cat([painted, images[:, 3:]], dim=1)  # the alpha channel kept as it came
        log.info("SleeveHint: %d image(s), sleeves painted as %s", b, sleeve_length)
        return io.NodeOutput(image_to_comfy(painted))


NODES = [SleeveHint]
