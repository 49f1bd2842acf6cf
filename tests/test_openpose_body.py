"""The optional OpenPose body detector (controlnet-aux's network) with local safetensors weights."""

from __future__ import annotations

import pytest
import torch
from photos import astronaut
from safetensors.torch import save_file

from hierafash_core.masks import parse_image
from hierafash_core.pose.detect import NoPersonFound
from hierafash_core.pose.openpose_body import OpenPoseBody


def test_refuses_pickles_and_foreign_weights(tmp_path):
    pth = tmp_path / "body_pose_model.pth"
    pth.write_bytes(b"not loaded")
    with pytest.raises(ValueError, match=r"only \.safetensors files load .* safetensors\.torch\.save_file"):
        OpenPoseBody(pth)
    with pytest.raises(FileNotFoundError, match="no such file"):
        OpenPoseBody(tmp_path / "missing.safetensors")
    other = tmp_path / "other.safetensors"
    save_file({"conv.weight": torch.zeros(2, 2)}, str(other))
    with pytest.raises(ValueError, match=r"not an OpenPose body model \(\d+ tensors missing"):
        OpenPoseBody(other)


@pytest.mark.slow
def test_runs_with_weights_in_the_original_key_layout(tmp_path):
    """A network of the right layout (zero weights: it sees nobody) loads and runs end to end."""
    from controlnet_aux.open_pose.model import bodypose_model

    state = {k.split(".", 1)[1]: torch.zeros_like(v) for k, v in bodypose_model().state_dict().items()}
    path = tmp_path / "body_pose_model.safetensors"
    save_file(state, str(path))
    detector = OpenPoseBody(path)
    found = detector(astronaut())
    assert len(found) == 1 and found[0].shape == (0, 18, 3)
    with pytest.raises(NoPersonFound, match="no person found in image 0 .* by the given detector"):
        parse_image(astronaut(), "collar", detector=detector)
