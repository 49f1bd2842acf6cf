"""Real photos that scikit-image ships, as core tensors, and their detections (computed once per process)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).parent / "data"
DWPOSE_FIXTURE = DATA / "dwpose_astronaut.json"


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """(H, W) or (H, W, C) uint8 -> (1, C, H, W) float in [0, 1]."""
    if array.ndim == 2:
        array = array[..., None]
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None].float() / 255.0


@functools.cache
def astronaut() -> torch.Tensor:
    """Eileen Collins, half body, facing the camera: (1, 3, 512, 512)."""
    import skimage.data

    return to_tensor(skimage.data.astronaut())


@functools.cache
def camera_gray() -> torch.Tensor:
    """The cameraman, grayscale: (1, 1, 512, 512)."""
    import skimage.data

    return to_tensor(skimage.data.camera())


def camera() -> torch.Tensor:
    """The cameraman as RGB: (1, 3, 512, 512)."""
    return camera_gray().expand(-1, 3, -1, -1).contiguous()


PHOTOS = {"astronaut": astronaut, "camera": camera}


@functools.cache
def detected(name: str):
    """(keypoints (1, 18, 3), person mask (1, 1, H, W), people) of a photo, detected once."""
    from hierafash_core.pose.detect import detect_pose

    return detect_pose(PHOTOS[name]())


def dwpose_fixture() -> list:
    return json.loads(DWPOSE_FIXTURE.read_text())


def standing_person(scale: float = 1.0) -> torch.Tensor:
    """Hand-placed OpenPose-18 keypoints of a person standing face on, feet apart, on a 512x704
    canvas times ``scale``: (1, 18, 3)."""
    # fmt: off
    pts = {
        "nose": (256, 90), "neck": (256, 150), "right_shoulder": (206, 152), "right_elbow": (190, 235),
        "right_wrist": (182, 310), "left_shoulder": (306, 152), "left_elbow": (322, 235), "left_wrist": (330, 310),
        "right_hip": (228, 330), "right_knee": (215, 460), "right_ankle": (200, 600), "left_hip": (284, 330),
        "left_knee": (297, 460), "left_ankle": (312, 600), "right_eye": (246, 80), "left_eye": (266, 80),
        "right_ear": (234, 86), "left_ear": (278, 86),
    }
    # fmt: on
    from hierafash_core.pose.keypoints import OPENPOSE_18

    kp = torch.zeros(1, 18, 3)
    for i, name in enumerate(OPENPOSE_18):
        x, y = pts[name]
        kp[0, i] = torch.tensor([x * scale, y * scale, 1.0])
    return kp
