"""Optional detector: controlnet-aux's OpenPose body network, with weights the user already has.

Nothing is downloaded and only safetensors load (the pack never unpickles): the network's usual
``body_pose_model.pth`` must be converted to ``.safetensors`` first (its state dict saved with
``safetensors.torch.save_file``). Both key layouts are accepted: the original one
(``conv1_1.weight``) and controlnet-aux's module names (``model0.conv1_1.weight``).

OpenPose finds several people at once; unlike BlazePose it gives no silhouette. Importing
controlnet-aux takes several seconds (its package imports every detector), so it happens on
first use only. Inside ComfyUI, DWPose/OpenPose preprocessors (comfyui_controlnet_aux) feed
ParseMask through ``POSE_KEYPOINT`` instead.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import torch

from ..model_files import PICKLE_SUFFIXES, check_safetensors
from .keypoints import OPENPOSE_18, body_size
from .render import to_uint8_hwc

log = logging.getLogger(__name__)

# The network sees the photo at this long side (controlnet-aux's preprocessors use 512 too).
DETECT_LONG_SIDE = 512


class OpenPoseBody:
    """A loaded OpenPose body network: ``detector(image)`` -> one (P, 18, 3) tensor per image,
    largest person first, points in pixels with confidence 1 (as OpenPose JSON writes them)."""

    def __init__(self, path: str | Path):
        path = Path(path)
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise ValueError(
                f"OpenPose weights {path}: a pickle-based file, which can run code when loaded; only .safetensors "
                "files load (the pack never unpickles .pth files). Convert it once in a trusted environment with "
                "safetensors.torch.save_file(state_dict, 'body_pose_model.safetensors')"
            )
        if not path.is_file():
            raise FileNotFoundError(f"OpenPose weights {path}: no such file")
        check_safetensors(path, "OpenPose weights")  # truncated or corrupt files get a clear error
        from safetensors.torch import load_file

        state = load_file(str(path))
        try:
            from controlnet_aux.open_pose.body import Body
            from controlnet_aux.open_pose.model import bodypose_model
        except ImportError as exc:
            raise ValueError(
                f"the OpenPose detector needs controlnet-aux ({exc}); pip install controlnet-aux"
            ) from None
        model = bodypose_model()
        expected = model.state_dict()
        if set(state) != set(expected):
            # The original checkpoint names layers without controlnet-aux's block prefix.
            by_suffix = {k.split(".", 1)[1]: k for k in expected}
            state = {by_suffix.get(k, k): v for k, v in state.items()}
        missing, unexpected = set(expected) - set(state), set(state) - set(expected)
        if missing or unexpected:
            raise ValueError(
                f"OpenPose weights {path}: not an OpenPose body model ({len(missing)} tensors missing, e.g. "
                f"{sorted(missing)[:2]}; {len(unexpected)} unexpected, e.g. {sorted(unexpected)[:2]})"
            )
        model.load_state_dict(state)
        self.body = Body.__new__(Body)  # its __init__ would torch.load a .pth; give it the network instead
        self.body.model = model.eval()
        self.path = path

    @torch.no_grad()
    def __call__(self, image: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) in [0, 1] -> per image (P, 18, 3) in pixels, largest first."""
        b, _, h, w = image.shape
        k = min(1.0, DETECT_LONG_SIDE / max(h, w))
        size = (max(1, round(w * k)), max(1, round(h * k)))
        out = []
        for frame in to_uint8_hwc(image):
            small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA) if k < 1 else frame
            candidate, subset = self.body(small[:, :, ::-1].copy())  # the network was trained on BGR
            people = []
            for person in self.body.format_body_result(candidate, subset):
                kp = torch.zeros(len(OPENPOSE_18), 3)
                for i, point in enumerate(person.keypoints):
                    if point is not None:
                        kp[i] = torch.tensor([point.x / k, point.y / k, 1.0])
                people.append(kp)
            found = torch.stack(people) if people else torch.zeros(0, len(OPENPOSE_18), 3)
            if len(found) > 1:
                found = found[torch.argsort(body_size(found), descending=True, stable=True)]
            out.append(found)
        return out


_loaded: dict[tuple[str, float], OpenPoseBody] = {}


def load_openpose_body(path: str | Path) -> OpenPoseBody:
    """Load (once per file version) the OpenPose body network from a local safetensors file."""
    path = Path(path)
    key = (str(path.resolve()), path.stat().st_mtime if path.is_file() else 0.0)
    if key not in _loaded:
        _loaded.clear()  # one network at a time: it holds 200 MB
        _loaded[key] = OpenPoseBody(path)
    return _loaded[key]
