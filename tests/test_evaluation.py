"""hierafash evaluate: metrics, held-out cases, tables, and the small setting end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from hierafash_core.cli import main as cli_main
from hierafash_core.evaluation.cases import ATTRIBUTES, held_out_cases, training_images
from hierafash_core.evaluation.classifier import (
    HEADS,
    AttributeClassifier,
    ClassifierTrainConfig,
    accuracy,
    arm_strips,
    labels_of,
    load_classifier,
    pose_drawings,
    pose_drawings_uint8,
    save_classifier,
    shifted,
    train_classifier,
)
from hierafash_core.evaluation.metrics import pairwise_distance, palette_adherence, psnr_outside, ssim_outside
from hierafash_core.evaluation.report import edits_table, findings
from hierafash_core.evaluation.run import METHODS, PACK_METHODS, EvalConfig, EvalResult
from hierafash_core.synth.labels import distinct_values, drawn_as
from hierafash_core.synth.writer import SynthConfig, make_sample, split_of


def test_psnr_and_ssim_count_only_pixels_outside_the_mask():
    src = torch.rand(2, 3, 32, 24, generator=torch.Generator().manual_seed(0))
    edited = src.clone()
    mask = torch.zeros(2, 1, 32, 24)
    mask[:, :, 8:20, 6:18] = 1.0
    edited[:, :, 8:20, 6:18] = 0.0  # changes inside the mask only
    assert psnr_outside(src, edited, mask) == [math.inf, math.inf]
    assert ssim_outside(src, edited, mask)[0] < 1.0  # windows that straddle the edge see the change...
    assert ssim_outside(src, src, mask) == pytest.approx([1.0, 1.0])
    edited[0, :, 0, 0] += 0.1  # one pixel of three channels outside, off by 0.1
    outside = 3 * (32 * 24 - 12 * 12)
    assert psnr_outside(src, edited, mask)[0] == pytest.approx(-10 * math.log10(3 * 0.01 / outside), abs=1e-3)
    assert math.isnan(psnr_outside(src, edited, torch.ones(2, 1, 32, 24))[0])


def test_diversity_and_palette_adherence():
    a, b = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)
    assert pairwise_distance(torch.cat([a, b])) == pytest.approx(1.0)
    assert pairwise_distance(torch.cat([a, a, a])) == 0.0
    with pytest.raises(ValueError, match="at least two images"):
        pairwise_distance(a)
    wedding = {
        "category": "Dress",
        "style": "Elegant",
        "occasion": "Wedding",
        "effect": "Tall",
        "feeling": "Line Feeling",
    }
    assert palette_adherence(["white", "jewel", "earth"], [wedding] * 3) == pytest.approx(2 / 3)


def test_held_out_cases_are_test_records_with_a_real_edit_each():
    cases = held_out_cases(12, data_seed=0)
    assert [c.index for c in cases] == [c.index for c in held_out_cases(12, data_seed=0)]  # deterministic
    config = SynthConfig(count=10_000, seed=0)
    for c in cases:
        assert split_of(config, c.index) == "test" == make_sample(config, c.index)[1]
        assert c.target in distinct_values(c.attribute) and c.target != drawn_as(c.attribute, c.fields[c.attribute])
        assert not (c.attribute == "sleeve_type" and c.fields["sleeve_length"] == "Sleeveless")
        assert c.edited_prompt.values[c.attribute] == c.target
        assert c.keypoints.shape == (18, 3) and c.image.shape == (192, 128, 3)
    assert {c.attribute for c in cases} == set(ATTRIBUTES)
    assert all(split_of(config, i) == make_sample(config, i)[1] for i in range(40))
    with pytest.raises(ValueError, match="holds only"):
        held_out_cases(5, data_count=20)


def test_classifier_images_add_held_out_pose_records_but_never_the_evaluated_ones():
    # 60 records, a quarter held out: the classifier reads held-out poses only from test records
    # after the first `test_after`, which are the evaluation's cases.
    images, fields, metas, keypoints = training_images(5, data_count=60, test_after=3)
    config = SynthConfig(count=60, seed=0)
    test_indices = [i for i in range(60) if split_of(config, i) == "test"]
    assert len(test_indices) > 3
    cased = held_out_cases(3, data_count=60)
    assert [c.index for c in cased] == test_indices[:3]
    assert images.shape == (5 + len(test_indices) - 3, 192, 128, 3)
    assert keypoints.shape == (len(images), 18, 3)
    assert np.array_equal(keypoints[-1], make_sample(config, test_indices[-1])[0].keypoints)
    expected = [make_sample(config, i)[0].fields for i in test_indices[3:]]
    assert [dict(f) for f in fields[5:]] == [dict(f) for f in expected]
    assert all(dict(f) != dict(c.fields) for f in fields for c in cased)
    plain, plain_fields, _, _ = training_images(5, data_count=60)
    assert plain.shape[0] == 5 and np.array_equal(plain, images[:5])


def test_classifier_heads_and_labels():
    model = AttributeClassifier()
    out = model(torch.rand(2, 3, 192, 128))
    assert {k: v.shape for k, v in out.items()} == {k: (2, len(v)) for k, v in HEADS.items()}
    sample, _, meta = make_sample(SynthConfig(count=10, seed=0), 0)
    labels = labels_of(sample.fields, meta)
    assert all(0 <= labels[k] < len(HEADS[k]) for k in HEADS)
    assert set(model.predict(torch.rand(3, 3, 192, 128))) == set(HEADS)


def test_pose_reading_classifier_needs_the_poses_and_learns_from_them(tmp_path):
    # Labels that only the pose drawing carries (which half of the canvas holds the skeleton): the
    # pose-reading judge must learn them, and must refuse to judge without the drawings.
    n = 48
    keypoints = np.zeros((n, 18, 3), dtype=np.float32)
    keypoints[:, :, 2] = 1.0
    side = torch.arange(n) % 2
    for i in range(n):
        x0 = 10.0 if side[i] == 0 else 50.0
        keypoints[i, :, 0] = x0 + np.linspace(-4, 4, 18)
        keypoints[i, :, 1] = np.linspace(10, 85, 18)
    drawn = pose_drawings(keypoints, (64, 96))
    assert drawn.shape == (n, 3, 96, 64) and float(drawn.max()) <= 1.0
    poses = pose_drawings_uint8(keypoints, (64, 96), batch=5)  # what training keeps: exact, 8 bits
    assert poses.dtype == torch.uint8 and torch.equal(poses.float() / 255, drawn)
    images = torch.full((n, 3, 96, 64), 128, dtype=torch.uint8)  # the pictures say nothing
    labels = {name: torch.full((n,), -1) for name in HEADS}
    labels["pattern"] = side
    config = ClassifierTrainConfig(steps=120, batch_size=16, learning_rate=3e-3, pose=True, depth=2, arms=False)
    model = train_classifier(images, labels, config, poses=poses)
    assert accuracy(model, images, labels, poses)["pattern"] == 1.0
    with pytest.raises(ValueError, match="reads each image's pose"):
        model.predict(images.float() / 255)
    poses = drawn
    with pytest.raises(ValueError, match=r"poses of shape \(3, 3, 96, 64\) for images of shape \(48, 3, 96, 64\)"):
        model.predict(images.float() / 255, poses[:3])
    with pytest.raises(ValueError, match="config.pose is set"):
        train_classifier(images, labels, config)
    # the augmentation moves each picture and its pose drawing by the same pixels
    marks = torch.zeros(2, 3, 96, 64, dtype=torch.uint8)
    marks[:, :, 40, 30] = 255
    x, p = shifted(marks, marks.clone(), 2, -1)
    assert torch.equal(x, p) and x[0, 0, 42, 29] == 1.0 and shifted(marks, None, 1, 1)[1] is None
    again, _ = load_classifier(save_classifier(model, tmp_path / "judge.safetensors"))
    assert (again.pose, again.depth) == (True, 2)
    assert (
        again.predict(images.float() / 255, poses)["pattern"] == model.predict(images.float() / 255, poses)["pattern"]
    )


def test_arm_strips_follow_the_arm_from_the_shoulder_past_the_wrist():
    # an image whose value is the x coordinate, and a right arm straight along a row: the strip's
    # middle row runs from the shoulder's x through the elbow's to past the wrist's
    w, h = 64, 32
    image = torch.linspace(0, 1, w).view(1, 1, 1, w).expand(2, 3, h, w).contiguous()
    kp = torch.zeros(2, 18, 3)
    kp[:, 2] = torch.tensor([10.0, 16.0, 1.0])  # right shoulder, elbow, wrist
    kp[:, 3] = torch.tensor([20.0, 16.0, 1.0])
    kp[:, 4] = torch.tensor([30.0, 16.0, 1.0])
    kp[1, 4, 2] = 0.0  # image 1: the right wrist is not seen
    strips = arm_strips(image, kp)
    assert strips.shape == (2, 2, 3, 9, 40)
    middle = strips[0, 0, 0, 4] * (w - 1)  # x of each sample along the arm
    assert middle[0].item() == pytest.approx(10, abs=1e-3) and middle[-1].item() == pytest.approx(34, abs=1e-3)
    assert bool((middle[1:] > middle[:-1]).all())
    assert torch.equal(strips[1, 0], torch.zeros(3, 9, 40))  # a missing point: zeros, not a guess
    assert torch.equal(strips[:, 1], torch.zeros(2, 3, 9, 40))  # the left arm has no points at all
    with pytest.raises(ValueError, match=r"keypoints of shape \(1, 18, 3\) for 2 images"):
        arm_strips(image, kp[:1])


def test_arm_reading_classifier_reads_where_along_the_arm_a_mark_is(tmp_path):
    # A mark at the elbow or at the wrist (the label), arms placed anywhere: the strips carry it
    g = torch.Generator().manual_seed(0)
    n = 64
    images = torch.full((n, 3, 96, 64), 40, dtype=torch.uint8)
    keypoints = torch.zeros(n, 18, 3)
    labels = {name: torch.full((n,), -1) for name in HEADS}
    labels["sleeve_length"] = torch.arange(n) % 2  # a head that reads the strips
    for i in range(n):
        x0, y0 = (int(v) for v in torch.randint(8, 24, (2,), generator=g))
        step = int(torch.randint(8, 14, (1,), generator=g))
        shoulder, elbow, wrist = (x0, y0), (x0 + step, y0 + step), (x0 + 2 * step, y0 + 2 * step)
        keypoints[i, 2:5] = torch.tensor([[*shoulder, 1.0], [*elbow, 1.0], [*wrist, 1.0]])
        mx, my = wrist if labels["sleeve_length"][i] else elbow
        images[i, :, my - 2 : my + 3, mx - 2 : mx + 3] = 250
    config = ClassifierTrainConfig(steps=150, batch_size=16, learning_rate=3e-3, pose=False, arms=True)
    model = train_classifier(images, labels, config, keypoints=keypoints)
    assert accuracy(model, images, labels, None, keypoints)["sleeve_length"] >= 0.9
    with pytest.raises(ValueError, match="reads the arms along the keypoints: pass keypoints"):
        model.predict(images.float() / 255)
    with pytest.raises(ValueError, match="config.arms is set: give each image's keypoints"):
        train_classifier(images, labels, config)
    again, _ = load_classifier(save_classifier(model, tmp_path / "judge.safetensors"))
    assert again.arms and again.predict(images.float() / 255, None, keypoints) == model.predict(
        images.float() / 255, None, keypoints
    )


def test_findings_say_where_flat_captions_do_as_well_or_better():
    result = EvalResult(EvalConfig(cases=2, methods=METHODS[:1]))
    row = {"attributes": 0.5, "category": 0.9, "palette": 0.4}
    flat = dict(row, attributes=0.6, category=0.7, palette=0.401)
    result.drafts = {"staged captions (pack)": dict(row), "one flat caption, no staging": flat}
    result.edits = {METHODS[0]: {**dict.fromkeys(ATTRIBUTES, 0.9), "edited": 0.9, "others kept": 1.0, "psnr": 36.0,
                                 "ssim": 0.99, "counts": dict.fromkeys(ATTRIBUTES, 2)}}  # fmt: skip
    lines = findings(result)
    assert "the flat caption is better than the staged one on attribute accuracy (60% against 50%)" in lines[0]
    assert "staged captions beat the flat caption on category accuracy (90% against 70%)" in lines[1]
    assert "staged and flat captions are level on palette adherence (40% each)" in lines[2]
    assert any("meets the goals" in line for line in lines)
    assert "| pack: blend, noise start | 90% |" in edits_table(result)
    with pytest.raises(ValueError, match="unknown; choose from"):
        EvalConfig(methods=("magic",))


@pytest.mark.slow
def test_small_evaluation_runs_end_to_end(mini_test_designer, tmp_path, capsys):
    """The test suite's setting: 5 designs, 4 steps, every method, a small classifier (about a minute)."""
    _, files, _ = mini_test_designer
    out = tmp_path / "eval"
    assert (
        cli_main(["evaluate", "--size", "small", "--model", str(files.folder), "--out", str(out), "--threads", "1"])
        == 0
    )
    table = (out / "table.md").read_text()
    assert (
        table.count("\n| pack: ") == len(PACK_METHODS) == 12
        and "| SDEdit, no mask |" in table
        and "| released code: noise once" in table
    )
    assert "| staged captions (pack) |" in table and "| one flat caption, no staging |" in table
    data = json.loads((out / "results.json").read_text())
    assert set(data["edits"]) == set(METHODS)
    for row in data["edits"].values():
        assert 0 <= row["edited"] <= 1 and row["psnr"] > 5 and 0 < row["ssim"] <= 1
    # blending keeps the latent outside the mask exactly; SDEdit regenerates everything
    assert data["edits"]["pack: blend, noise start"]["psnr"] > data["edits"]["SDEdit, no mask"]["psnr"]
    assert (out / "sheet.png").is_file()
    assert np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(out / "sheet.png")).shape[2] == 3
    assert "evaluation took" in capsys.readouterr().out
