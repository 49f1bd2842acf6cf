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
        (["sleeves=1e37"], "a weight from 0.001 to 1000"),  # float32 pooling would overflow to a NaN loss
        (["sleeves=1e-46"], "item 'sleeves=1e-46'"),
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

    for snr_gamma in (0.0, 5.0):
        plain = first_loss(snr_gamma=snr_gamma)
        # One weight everywhere is the plain MSE whatever its size: each map is scaled to a mean of 1.
        for same in (["garment=1"], ["garment=3", "background=3", "face=3"]):
            assert first_loss(region_weights=same, snr_gamma=snr_gamma) == pytest.approx(plain, rel=1e-5)
        heavy = first_loss(region_weights=["garment=50"], snr_gamma=snr_gamma)
        assert heavy != pytest.approx(plain, rel=1e-3)  # the same step, its error spread another way


def test_parse_labels_that_do_not_read_are_refused(toy, tmp_path):
    import shutil

    data = shutil.copytree(toy["data"], tmp_path / "data")
    for labels in (["background", "garment"], {"zero": "background"}, {"300": "garment"}):
        (data / "dataset.json").write_text(json.dumps({"parse_labels": labels}))
        with pytest.raises(ValueError, match="parse_labels should map 8-bit parse values to names"):
            PoseCaptionDataset(data, height=96, width=64, with_pose=False, region_weights={"garment": 4})


def _copy(toy, tmp_path):
    import shutil

    return shutil.copytree(toy["data"], tmp_path / "data")


def test_a_crop_to_the_training_aspect_keeps_weights_on_their_pixels(toy):
    # 64x96 images trained at 64x64: both are centre-cropped the same way.
    ds = PoseCaptionDataset(toy["data"], height=64, width=64, with_pose=False, region_weights={"garment": 5})
    for i in range(len(ds)):
        item = ds[i]
        garment = item["loss_weight"][0] == 5
        colour = item["pixel_values"][:, garment].median(dim=1).values
        close = (item["pixel_values"] - colour[:, None, None]).abs().amax(dim=0) < 0.05
        assert (close[garment].float().mean() > 0.95) and (garment[close].float().mean() > 0.9)


def test_palette_maps_are_read_by_their_label_values(toy, tmp_path):
    from PIL import Image

    data = _copy(toy, tmp_path)
    grey = PoseCaptionDataset(data, height=96, width=64, with_pose=False, region_weights={"garment": 5})[0]
    for path in (data / "parse").glob("*.png"):
        with Image.open(path) as im:
            labels = im.copy()
        palette = labels.convert("P")
        palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)  # colours whose grey is not the label
        palette.save(path)
    assert Image.open(next((data / "parse").glob("*.png"))).mode == "P"
    ds = PoseCaptionDataset(data, height=96, width=64, with_pose=False, region_weights={"garment": 5})
    assert torch.equal(ds[0]["loss_weight"], grey["loss_weight"])


def test_bad_parse_maps_stop_the_run_before_training(toy, tmp_path):
    from PIL import Image

    def refused(match, **kw):
        with pytest.raises(ValueError, match=match):
            PoseCaptionDataset(data, height=96, width=64, with_pose=False, region_weights={"garment": 4}, **kw)

    data = _copy(toy, tmp_path)
    first = data / "parse" / "000001.png"
    Image.open(first).resize((32, 48)).save(first)
    refused("record '000001' .*parse map parse/000001.png is 32x48, its image 64x96; .* give it the same size")
    Image.new("RGB", (64, 96)).save(first)
    refused("record '000001' .*has mode RGB; region_weights reads single-channel label maps .*save it as 8-bit grey")
    first.write_bytes(b"not a png")
    refused("record '000001' .*does not open .*run `hierafash dataset check")
    first.unlink()
    refused("record '000001' .*does not open")


def test_dataset_json_problems_name_the_file(toy, tmp_path):
    data = _copy(toy, tmp_path)
    (data / "dataset.json").write_text("{bad")
    with pytest.raises(ValueError, match="dataset.json does not read"):
        PoseCaptionDataset(data, height=96, width=64, with_pose=False, region_weights={"garment": 4})
    (data / "dataset.json").write_text(
        json.dumps({"parse_labels": {"0": "background", "1": "garment", "2": "garment"}})
    )
    with pytest.raises(ValueError, match="one name to several values"):
        PoseCaptionDataset(data, height=96, width=64, with_pose=False, region_weights={"garment": 4})
