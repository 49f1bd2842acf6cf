"""Model lookup in ComfyUI's folders and extra_model_paths.yaml; safetensors-only vetting."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from hierafash_core.model_files import check_safetensors, model_folders, resolve_model


@pytest.fixture()
def comfy_tree(tmp_path):
    comfyui = tmp_path / "ComfyUI"
    (comfyui / "models" / "checkpoints").mkdir(parents=True)
    shared = tmp_path / "shared_models"
    (shared / "sd").mkdir(parents=True)
    (comfyui / "extra_model_paths.yaml").write_text(
        f"mine:\n  base_path: {shared}\n  checkpoints: |\n    sd\n    other  # comment\n  controlnet: cn\n"
    )
    save_file({"w": torch.zeros(2)}, str(comfyui / "models" / "checkpoints" / "a.safetensors"))
    save_file({"w": torch.ones(2)}, str(shared / "sd" / "b.safetensors"))
    return comfyui, shared


def test_names_resolve_in_models_and_extra_paths(comfy_tree):
    comfyui, shared = comfy_tree
    assert model_folders("checkpoints", comfyui) == [comfyui / "models/checkpoints", shared / "sd", shared / "other"]
    assert resolve_model("a.safetensors", "checkpoints", comfyui).name == "a.safetensors"
    assert resolve_model("b.safetensors", "checkpoints", comfyui) == (shared / "sd" / "b.safetensors").resolve()


def test_missing_model_names_the_folders_and_the_fix(comfy_tree):
    comfyui, shared = comfy_tree
    with pytest.raises(FileNotFoundError) as info:
        resolve_model("nope.safetensors", "checkpoints", comfyui)
    msg = str(info.value)
    assert "looked in:" in msg and str(comfyui / "models/checkpoints") in msg and str(shared / "sd") in msg
    assert "Put the .safetensors file in" in msg


def test_names_cannot_climb_out_of_the_folders(comfy_tree, monkeypatch, tmp_path):
    comfyui, shared = comfy_tree
    monkeypatch.chdir(tmp_path / "ComfyUI")
    # ../shared_models/sd/b.safetensors exists next to models/checkpoints/.., but a *name* may not climb
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_model("../../shared_models/sd/b.safetensors", "checkpoints", comfyui)


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".bin", ".pth"])
def test_pickle_files_are_refused_with_the_reason(tmp_path, suffix):
    f = tmp_path / f"model{suffix}"
    f.write_bytes(b"\x80\x04not really")
    with pytest.raises(ValueError, match="pickle-based file .* can run code .* safetensors only"):
        resolve_model(str(f), "checkpoints")


def test_truncated_and_corrupt_safetensors_are_clear(tmp_path):
    good = tmp_path / "good.safetensors"
    save_file({"w": torch.zeros(1000)}, str(good))
    data = good.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) - 100])
    with pytest.raises(ValueError, match="truncated"):
        check_safetensors(truncated)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\xff" * 64)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        check_safetensors(garbage)
    assert check_safetensors(good) == good
