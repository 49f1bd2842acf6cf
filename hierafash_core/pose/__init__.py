"""Pose: keypoint sets and conversions, OpenPose JSON (``POSE_KEYPOINT``), skeleton rendering, detection.

Keypoints are float tensors (B, K, 3): x, y in image pixels and a confidence. The detector
(MediaPipe BlazePose) is optional and imported only when used.
"""

from .keypoints import (
    BLAZEPOSE_33,
    OP,
    OPENPOSE_18,
    OPENPOSE_COLORS,
    OPENPOSE_LIMBS,
    blazepose_to_openpose,
    body_size,
    check_keypoints,
    point_label,
)
from .openpose_json import (
    people_from_pose_keypoint,
    pose_keypoint_to_tensor,
    select_person,
    tensor_to_pose_keypoint,
)
from .render import preview, render_openpose

__all__ = [
    "BLAZEPOSE_33",
    "OP",
    "OPENPOSE_18",
    "OPENPOSE_COLORS",
    "OPENPOSE_LIMBS",
    "blazepose_to_openpose",
    "body_size",
    "check_keypoints",
    "people_from_pose_keypoint",
    "point_label",
    "pose_keypoint_to_tensor",
    "preview",
    "render_openpose",
    "select_person",
    "tensor_to_pose_keypoint",
]
