"""The loss weighted by parse regions (TrainConfig.region_weights; hierafash_core.training)."""

from __future__ import annotations

import json

import pytest
import torch

from hierafash_core.training import TrainConfig, train
from hierafash_core.training.data import PoseCaptionDataset, collate
from hierafash_core.training.tiny import TINY_UNET, build_tiny_base, write_toy_dataset
from hierafash_core.training.trainer import region_map


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("regions")
    unet_json = root / "unet.json"
    unet_json.write_text(json.dumps(TINY_UNET))
    return {
        "base": build_tiny_base(root / "base"),
        "data": write_toy_dataset(root / "data", 4, parse=True),
        "plain": write_toy_dataset(root / "plain", 4),
        "unet": unet_json,
    }


def test_each_pixel_weighs_as_its_parse_label_says(toy):
    ds = PoseCaptionDataset(toy["data"], height=96, width=64, with_pose=False, region_weights={"garment": 5})
    item = ds[0]
    w = item["loss_weight"]
    assert w.shape == (1, 96, 64)
    assert set(torch.unique(w).tolist()) == {1.0, 5.0}  # background and face weigh 1, the garment 5
    # The garment is where the image has the garment's colour (the toy draws it flat).
    pixels = item["pixel_values"]
    garment_colour = pixels[:, w[0] == 5].mean(dim=1)
    assert (pixels[:, w[0] == 5] - garment_colour[:, None]).abs().max() < 0.05
    assert collate([ds[0], ds[1]])["loss_weight"].shape == (2, 1, 96, 64)
    plain = PoseCaptionDataset(toy["data"], height=96, width=64, with_pose=False)
    assert "loss_weight" not in plain[0] and "loss_weight" not in collate([plain[0]])


def test_the_latent_map_averages_areas_and_keeps_the_loss_size():
    pixels = torch.ones(2, 1, 16, 16)
    pixels[0, :, :8, :8] = 4.0  # a quarter of example 0 weighs 4
    small = region_map(pixels, (2, 2))
    assert small.shape == (2, 1, 2, 2)
    assert torch.allclose(small.mean(dim=(1, 2, 3)), torch.ones(2))
    assert torch.allclose(small[0, 0], torch.tensor([[4.0, 1.0], [1.0, 1.0]]) / 1.75)
    assert torch.allclose(small[1], torch.ones(1, 2, 2))  # no region weighted: the plain MSE


def test_bad_region_weights_are_refused_with_the_fix(toy):
    ok = dict(dataset="d", base="b", output_dir="o")
    for bad, match in (
        (["sleeves"], "item 'sleeves': use label=weight"),
        (["sleeves=0"], "item 'sleeves=0'"),
        (["sleeves=nan"], "item 'sleeves=nan'"),
        (["=3"], "item '=3'"),
        (["skin=2", "skin=3"], "names 'skin' twice"),
        ("sleeves=4", "a list of label=weight items"),
    ):
        with pytest.raises(ValueError, match=match):
            TrainConfig(**ok, region_weights=bad).validate()
    assert TrainConfig(**ok, region_weights=["sleeves=4", " skin = 2.5"]).region_weight_map == {
        "sleeves": 4.0,
        "skin": 2.5,
    }
    with pytest.raises(ValueError, match=r"names \['sleeves'\], which .* does not; its labels: \['background', "):
        PoseCaptionDataset(toy["data"], height=96, width=64, with_pose=False, region_weights={"sleeves": 4})
    with pytest.raises(ValueError, match="names no parse_labels"):
        PoseCaptionDataset(toy["plain"], height=96, width=64, with_pose=False, region_weights={"garment": 4})


def test_a_record_without_parse_map_is_refused(toy, tmp_path):
    import shutil

    data = shutil.copytree(toy["data"], tmp_path / "data")
    lines = (data / "records.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    del first["parse"]
    (data / "records.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    with pytest.raises(ValueError, match="1 records have no parse map \\(first: '000000'\\)"):
        PoseCaptionDataset(data, height=96, width=64, with_pose=False, region_weights={"garment": 4})


def _config(toy, out, **kw) -> TrainConfig:
    settings = dict(
        dataset=str(toy["data"]), base=str(toy["base"]), output_dir=str(out), cpu=True, height=96, width=64,
        batch_size=2, learning_rate=1e-3, checkpoint_every=0, progress=False, mode="unet", max_steps=1,
        unet_config=str(toy["unet"]), export_dtype="fp32", seed=5,
    )  # fmt: skip
    settings.update(kw)
    return TrainConfig(**settings)


def test_training_weights_the_loss_by_region(toy, tmp_path):
    from hierafash_core.training.models import load_base

    def first_loss(**kw):
        seen = []
        train(_config(toy, tmp_path / str(len(list(tmp_path.iterdir()))), **kw), base=load_base(toy["base"]),
              callback=lambda step, total, loss: seen.append(loss))  # fmt: skip
        return seen[0]

    plain = first_loss()
    assert first_loss(region_weights=["garment=1"]) == pytest.approx(plain, rel=1e-5)  # all ones: the plain MSE
    heavy = first_loss(region_weights=["garment=50"])
    assert heavy != pytest.approx(plain, rel=1e-3)  # the same step, its error spread another way


def test_parse_labels_that_do_not_read_are_refused(toy, tmp_path):
    import shutil

    data = shutil.copytree(toy["data"], tmp_path / "data")
    for labels in (["background", "garment"], {"zero": "background"}, {"300": "garment"}):
        (data / "dataset.json").write_text(json.dumps({"parse_labels": labels}))
        with pytest.raises(ValueError, match="parse_labels should map 8-bit parse values to names"):
            PoseCaptionDataset(data, height=96, width=64, with_pose=False, region_weights={"garment": 4})
