"""Keypoint sets: OpenPose/COCO 18 (what pose ControlNets and ComfyUI preprocessors use) and BlazePose 33.

Keypoints travel as float tensors of shape (B, K, 3): x and y in image pixels (origin at the
top-left corner, x to the right), then a confidence in [0, 1]. A point that was not found has
confidence 0 (OpenPose writes it as ``0, 0, 0``). "Left" and "right" are the person's own sides,
so a person facing the camera has the left shoulder on the image's right.
"""

from __future__ import annotations

import torch

# OpenPose BODY_18 / COCO order.
OPENPOSE_18: tuple[str, ...] = (
    "nose",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
)
OP = {name: i for i, name in enumerate(OPENPOSE_18)}

# Short names OpenPose users know, for messages ("right_hip (RHip)").
OPENPOSE_SHORT = {
    "nose": "Nose", "neck": "Neck", "right_shoulder": "RShoulder", "right_elbow": "RElbow", "right_wrist": "RWrist",
    "left_shoulder": "LShoulder", "left_elbow": "LElbow", "left_wrist": "LWrist", "right_hip": "RHip",
    "right_knee": "RKnee", "right_ankle": "RAnkle", "left_hip": "LHip", "left_knee": "LKnee",
    "left_ankle": "LAnkle", "right_eye": "REye", "left_eye": "LEye", "right_ear": "REar", "left_ear": "LEar",
}  # fmt: skip

# Limbs of the OpenPose skeleton as pairs of OpenPose-18 indices, in the order whose colours pose
# ControlNets were trained on (limb i is drawn in OPENPOSE_COLORS[i]).
OPENPOSE_LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip

# RGB colour of keypoint i and of limb i (limbs are drawn at 60 % of it).
OPENPOSE_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip

# MediaPipe BlazePose's 33 landmarks.
BLAZEPOSE_33: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)  # fmt: skip

# OpenPose-18 index -> BlazePose-33 index of the same body point (the neck has none: it is the
# midpoint of the shoulders).
_BLAZE_FOR_OPENPOSE = {i: BLAZEPOSE_33.index(name) for i, name in enumerate(OPENPOSE_18) if name != "neck"}


# Shoulder width over torso length (neck to mid-hip) of an adult seen from the front, roughly.
SHOULDER_TO_TORSO = 0.75


def point_label(index: int) -> str:
    """``'right_hip (RHip)'`` for OpenPose-18 index 8."""
    name = OPENPOSE_18[index]
    return f"{name} ({OPENPOSE_SHORT[name]})"


def check_keypoints(keypoints: torch.Tensor, name: str = "keypoints") -> torch.Tensor:
    """Validate OpenPose-18 keypoints and return them as float32 (B, 18, 3); (18, 3) gains a batch axis."""
    if not isinstance(keypoints, torch.Tensor):
        raise ValueError(f"{name}: expected a tensor of shape (B, 18, 3), got {type(keypoints).__name__}")
    if keypoints.ndim == 2:
        keypoints = keypoints.unsqueeze(0)
    if keypoints.ndim != 3 or keypoints.shape[-1] != 3:
        raise ValueError(f"{name}: expected shape (B, 18, 3) (x, y, confidence), got {tuple(keypoints.shape)}")
    if keypoints.shape[1] == len(BLAZEPOSE_33):
        raise ValueError(
            f"{name}: got 33 BlazePose landmarks; convert them with blazepose_to_openpose() to the 18 OpenPose points"
        )
    if keypoints.shape[1] != len(OPENPOSE_18):
        raise ValueError(f"{name}: expected 18 OpenPose points, got {keypoints.shape[1]} in {tuple(keypoints.shape)}")
    keypoints = keypoints.float()
    if not torch.isfinite(keypoints).all():
        raise ValueError(f"{name}: holds NaN or infinite values; mark a missing point with confidence 0 instead")
    return keypoints


def blazepose_to_openpose(landmarks: torch.Tensor) -> torch.Tensor:
    """BlazePose 33 landmarks (B, 33, 3) -> OpenPose 18 keypoints (B, 18, 3), same pixel units.

    The neck is the midpoint of the shoulders, with the lower of their two confidences.
    """
    if landmarks.ndim != 3 or landmarks.shape[1:] != (len(BLAZEPOSE_33), 3):
        raise ValueError(f"landmarks: expected shape (B, 33, 3), got {tuple(landmarks.shape)}")
    out = landmarks.new_zeros(landmarks.shape[0], len(OPENPOSE_18), 3)
    for op_index, blaze_index in _BLAZE_FOR_OPENPOSE.items():
        out[:, op_index] = landmarks[:, blaze_index]
    left, right = landmarks[:, BLAZEPOSE_33.index("left_shoulder")], landmarks[:, BLAZEPOSE_33.index("right_shoulder")]
    out[:, OP["neck"], :2] = (left[:, :2] + right[:, :2]) / 2
    out[:, OP["neck"], 2] = torch.minimum(left[:, 2], right[:, 2])
    return out


def body_size(keypoints: torch.Tensor, min_confidence: float = 0.3) -> torch.Tensor:
    """A length that measures each person's body, in pixels: (B, K, 3) -> (B,).

    The larger of the torso length (neck to the middle of the hips) and the shoulder width divided
    by 0.75 (shoulders are about three quarters of the torso length on an adult facing the camera),
    so a side view (narrow shoulders) and a half-body photo (no hips) still measure the body. Zero
    when neither can be measured. Used to order people and to scale every mask margin.
    """
    kp = check_keypoints(keypoints)
    ok = kp[..., 2] >= min_confidence
    xy = kp[..., :2]
    rs, ls, rh, lh = OP["right_shoulder"], OP["left_shoulder"], OP["right_hip"], OP["left_hip"]
    shoulders_ok = ok[:, rs] & ok[:, ls]
    width = torch.where(shoulders_ok, (xy[:, rs] - xy[:, ls]).norm(dim=-1), torch.zeros(()))
    neck_ok = ok[:, OP["neck"]] | shoulders_ok
    neck = torch.where(ok[:, OP["neck"], None], xy[:, OP["neck"]], (xy[:, rs] + xy[:, ls]) / 2)
    hips_n = ok[:, rh].float() + ok[:, lh].float()
    hip_mid = (xy[:, rh] * ok[:, rh, None] + xy[:, lh] * ok[:, lh, None]) / hips_n.clamp(min=1)[:, None]
    torso_ok = neck_ok & (hips_n > 0)
    torso = torch.where(torso_ok, (neck - hip_mid).norm(dim=-1), torch.zeros(()))
    return torch.maximum(torso, width / SHOULDER_TO_TORSO)
