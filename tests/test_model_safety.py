"""Weights only from safetensors, in every pack loader; broken files named as such; outputs stay in their folder.

The pickles offered here would create a marker file if anything ever unpickled them, so each test
proves both the refusal and that no pickle was opened.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from hierafash_core.cli import main
from hierafash_core.model_files import check_safetensors, check_weights_folder, resolve_model
from hierafash_core.training import TrainConfig, train
from hierafash_core.training.tiny import build_tiny_base, write_toy_dataset

PICKLE_MESSAGE = r"pickle.*can run code when loaded.*(safetensors|save_file)"


class _Payload:
    """Unpickling this opens ``path`` for writing: the marker that says a pickle was loaded."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def write_trap(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}))
    return path


def truncated_copy(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety")
    return {"base": build_tiny_base(root / "base"), "data": write_toy_dataset(root / "data", 2)}


def train_config(tiny, out: Path, **kw) -> TrainConfig:
    settings = dict(dataset=str(tiny["data"]), base=str(tiny["base"]), output_dir=str(out), cpu=True, height=64,
                    width=64, batch_size=2, max_steps=1, checkpoint_every=0, progress=False)  # fmt: skip
    settings.update(kw)
    return TrainConfig(**settings)


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".bin", ".pth"])
def test_every_file_loader_refuses_pickles_with_the_reason(tmp_path, suffix, tiny):
    from hierafash_core.pose.openpose_body import OpenPoseBody

    marker = tmp_path / "unpickled"
    trap = write_trap(tmp_path / f"weights{suffix}", marker)
    with pytest.raises(ValueError, match=PICKLE_MESSAGE):
        resolve_model(str(trap), "checkpoints")
    with pytest.raises(ValueError, match=PICKLE_MESSAGE):
        OpenPoseBody(trap)
    with pytest.raises(ValueError, match=r"only \.safetensors checkpoints are read .*can run code.*save_file"):
        train(train_config(tiny, tmp_path / "run1", base=str(trap)))
    with pytest.raises(ValueError, match=PICKLE_MESSAGE):
        train(train_config(tiny, tmp_path / "run2", controlnet_init=str(trap)))
    assert not marker.exists(), "a pickle was unpickled"


def test_model_folders_with_only_pickled_weights_are_refused(tmp_path, tiny):
    marker = tmp_path / "unpickled"
    base = Path(shutil.copytree(tiny["base"], tmp_path / "base"))
    for f in (base / "unet").glob("*.safetensors"):
        f.unlink()
    write_trap(base / "unet" / "diffusion_pytorch_model.bin", marker)
    with pytest.raises(ValueError, match=r"base unet .* only as pickle-based files \(diffusion_pytorch_model.bin\)"):
        train(train_config(tiny, tmp_path / "run", base=str(base)))
    controlnet = tmp_path / "cn"
    write_trap(controlnet / "diffusion_pytorch_model.bin", marker)
    (controlnet / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"controlnet_init .* only as pickle-based files"):
        train(train_config(tiny, tmp_path / "run2", controlnet_init=str(controlnet)))
    assert not marker.exists(), "a pickle was unpickled"


def test_a_folder_with_both_formats_loads_the_safetensors_only(tmp_path, tiny):
    marker = tmp_path / "unpickled"
    base = Path(shutil.copytree(tiny["base"], tmp_path / "base"))
    for sub in ("unet", "vae"):
        write_trap(base / sub / "diffusion_pytorch_model.bin", marker)
    write_trap(base / "text_encoder" / "pytorch_model.bin", marker)
    train(train_config(tiny, tmp_path / "run", base=str(base)))
    assert (tmp_path / "run" / "loss.jsonl").is_file()
    assert not marker.exists(), "a pickle was unpickled"


def test_truncated_and_corrupt_safetensors_name_the_file_and_the_fix(tmp_path, tiny):
    from hierafash_core.pose.openpose_body import OpenPoseBody

    good = tmp_path / "good.safetensors"
    save_file({"w": torch.zeros(4096)}, str(good))
    cut = truncated_copy(good, tmp_path / "cut.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 7)
    for broken, why in ((cut, "truncated|header claims"), (junk, "shorter than a safetensors header")):
        with pytest.raises(ValueError, match=f"not a readable safetensors file .*({why}).*download or copy it again"):
            OpenPoseBody(broken)
        with pytest.raises(ValueError, match="not a readable safetensors file"):
            train(train_config(tiny, tmp_path / f"run-{broken.stem}", base=str(broken)))
        with pytest.raises(ValueError, match="not a readable safetensors file"):
            train(train_config(tiny, tmp_path / f"cn-{broken.stem}", controlnet_init=str(broken)))
    # a diffusers folder whose safetensors file is cut short
    base = Path(shutil.copytree(tiny["base"], tmp_path / "base"))
    unet = next((base / "unet").glob("*.safetensors"))
    truncated_copy(tiny["base"] / "unet" / unet.name, unet)
    with pytest.raises(ValueError, match=r"base unet .*diffusion_pytorch_model.safetensors.* is not a readable"):
        train(train_config(tiny, tmp_path / "run-folder", base=str(base)))
    assert check_safetensors(good) == good


def test_cli_loaders_refuse_pickles_in_one_line(tmp_path, capsys, tiny):
    marker = tmp_path / "unpickled"
    photo = tmp_path / "p.png"
    from PIL import Image

    Image.new("RGB", (96, 128), "white").save(photo)
    trap = write_trap(tmp_path / "body_pose_model.pth", marker)
    assert main(["parse", str(photo), "-a", "collar", "--openpose-weights", str(trap), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "pickle-based file" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    ckpt = write_trap(tmp_path / "model.ckpt", marker)
    argv = ["train", "--dataset", str(tiny["data"]), "--base", str(ckpt), "--output-dir", str(tmp_path / "r")]
    assert main([*argv, "--cpu", "--max-steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "only .safetensors" in err and "Traceback" not in err
    assert not marker.exists()


def test_weights_folder_check_accepts_safetensors_folders(tiny):
    for sub in ("unet", "text_encoder", "vae"):
        assert check_weights_folder(tiny["base"] / sub) == tiny["base"] / sub


# -- outputs stay under the chosen folder -----------------------------------------------------------------
class _FakeClient:
    """What download_outputs asks of a client: ``view`` bytes for a file name."""

    def __init__(self) -> None:
        self.asked: list[tuple] = []

    def view(self, filename, subfolder="", folder_type="output") -> bytes:
        self.asked.append((filename, subfolder, folder_type))
        return b"data"


def test_file_names_from_a_server_cannot_leave_the_output_folder(tmp_path):
    from hierafash_core.queue import download_outputs

    out = tmp_path / "out"
    hostile = ["../../escape.png", "/tmp/abs.png", "sub/../../up.png", "..", ".", "", "..\\win.png", "ok.png",
               "a/b/c/../../../../d.png", "\u202egnp.exe", "x" * 300 + ".png"]  # fmt: skip
    items = [{"filename": n, "subfolder": "../..", "type": "output"} for n in hostile]
    entry = {"outputs": {"9": {"images": items}, "../../node": {"images": items[-4:]}, "/abs": {"gifs": items[:3]}}}
    saved = download_outputs(_FakeClient(), entry, out)
    assert saved, "the ordinary names must still be saved"
    for path in saved:
        assert path.resolve().parent == out.resolve(), path
    written = {p.resolve() for p in tmp_path.rglob("*") if p.is_file()}
    assert all(p.parent == out.resolve() for p in written), written


def test_dataset_import_keeps_hostile_ids_and_names_inside_the_dataset(tmp_path):
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (64, 96), "white").save(images / "a.png")
    rows = ["image,id,category", "a.png,../../../evil,Dress", "a.png,/abs/evil,Dress", "../a.png,x,Dress",
            "/etc/hostname,y,Dress"]  # fmt: skip
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "ds"
    main(["dataset", "import-csv", str(images), str(tmp_path / "t.csv"), str(out)])
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert path.resolve().is_relative_to(tmp_path.resolve())
            assert "evil" not in path.parent.name
    written = [p for p in out.rglob("*") if p.is_file()]
    assert written and all(p.resolve().is_relative_to(out.resolve()) for p in written)
