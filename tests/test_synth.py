"""The synthetic data generator: determinism, exact labels, visibly distinct attributes, the format, the CLI."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synth_look import LOOK

from hierafash_core.cli import main as cli_main
from hierafash_core.prompt import HierarchicalPrompt
from hierafash_core.synth import (
    PARSE_LABELS,
    SynthConfig,
    distinct_values,
    keypoints_from_openpose,
    openpose_json,
    render,
    split_poses,
    write_dataset,
)
from hierafash_core.synth.details import SLEEVE_END
from hierafash_core.synth.garment import length_level
from hierafash_core.synth.labels import LABEL
from hierafash_core.synth.pose_bank import POSE_BANK, POSES_BY_NAME, jitter, mirror, place
from hierafash_core.taxonomy import FIELD_KEYS, get_field, normalize_value

SIZE = (128, 192)
FRONT = place(POSES_BY_NAME["front"].keypoints, SIZE)


def design(category: str = "Dress", **attrs: str) -> dict[str, str]:
    fields = {
        "category": category,
        "style": "Elegant",
        "occasion": "Party",
        "effect": "Tall",
        "feeling": "Crisp Feeling",
        "clothing_length": "Knee-length",
        "sleeve_length": "Elbow-length Sleeve",
        "sleeve_type": "Regular",
        "collar": "Round",
        "hem": "Flat",
    }
    fields.update(attrs)
    return fields


def torso_u(kp: np.ndarray) -> float:
    return float(np.hypot(*((kp[8, :2] + kp[11, :2]) / 2 - kp[1, :2])))


def level_y(kp: np.ndarray, lam: float) -> float:
    """Image y of body level ``lam`` (0 neck, 1 mid-hip, 2 knees, 3 ankles), as docs/synth.md defines it."""
    neck, mid = kp[1, :2], (kp[8, :2] + kp[11, :2]) / 2
    if lam <= 1:
        return float(neck[1] + (mid[1] - neck[1]) * lam)
    ys = []
    for h, k, a in ((8, 9, 10), (11, 12, 13)):
        path = [kp[h, :2], kp[k, :2], kp[a, :2]]
        i = min(int(lam - 1), 1)
        ys.append(path[i][1] + (path[i + 1][1] - path[i][1]) * (lam - 1 - i))
    return float(np.mean(ys))


def arm_param(points: np.ndarray, arm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For (N, 2) pixel centres: arm level (0 shoulder, 1 elbow, 2 wrist) of the nearest arm point, and distance."""
    best_t = np.full(len(points), np.inf)
    best_d = np.full(len(points), np.inf)
    for i in range(2):
        a, b = arm[i], arm[i + 1]
        ab = b - a
        t = np.clip(((points - a) @ ab) / (ab @ ab), 0, 1 if i == 0 else 1.5)  # past the wrist too
        d = np.hypot(*(points - (a + t[:, None] * ab)).T)
        take = d < best_d
        best_d[take], best_t[take] = d[take], i + t[take]
    return best_t, best_d


def pixels(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.stack([xs, ys], axis=1).astype(float)


# -- determinism ---------------------------------------------------------------------------------------
def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_the_same_bytes_whatever_the_workers(tmp_path):
    config = SynthConfig(count=10, seed=7)
    write_dataset(tmp_path / "a", config, workers=1)
    write_dataset(tmp_path / "b", config, workers=2)
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert len(a) == 10 * 3 + 2
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    write_dataset(tmp_path / "c", SynthConfig(count=10, seed=8), workers=1)
    c = _tree(tmp_path / "c")
    assert sum(a[k] != c[k] for k in a if k.startswith("images/")) == 10


# -- exact labels ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("pose", ["front", "hand_on_hip"])
@pytest.mark.parametrize("sleeve_length", [v for v in SLEEVE_END if v != "Sleeveless"])
def test_sleeve_pixels_end_at_the_sleeve_length(sleeve_length, pose):
    kp = place(POSES_BY_NAME[pose].keypoints, SIZE)
    sample = render(design(sleeve_length=sleeve_length), kp, LOOK)
    sleeve = sample.parse == LABEL["sleeves"]
    u, end = torso_u(kp), SLEEVE_END[sleeve_length]
    for idx in ((2, 3, 4), (5, 6, 7)):
        arm = kp[list(idx), :2]
        t, d = arm_param(pixels(sleeve), arm)
        mine = d < 0.25 * u
        assert mine.sum() > 20
        seg = np.hypot(*(arm[2] - arm[1])) if end > 1 else np.hypot(*(arm[1] - arm[0]))
        # the farthest sleeve pixel lies at the sleeve's end: at most a pixel past it, a pixel and a half short
        err_px = (t[mine].max() - end) * seg
        assert -1.5 <= err_px <= 1.0, (sleeve_length, pose, err_px)
        # and the arm's skin continues to the hand
        skin_t, skin_d = arm_param(pixels(sample.parse == LABEL["skin"]), arm)
        assert skin_t[skin_d < 0.12 * u].max() > max(end, 1.9)


def test_sleeveless_has_no_sleeve_pixels_and_bare_shoulders():
    sample = render(design(sleeve_length="Sleeveless"), FRONT, LOOK)
    assert (sample.parse == LABEL["sleeves"]).sum() == 0
    x, y = FRONT[2, :2].round().astype(int)  # the right shoulder joint is skin, not fabric
    assert sample.parse[y, x] == LABEL["skin"]


@pytest.mark.parametrize(
    ("category", "labels"),
    [
        ("Dress", ("skirt", "hem")),
        ("Skirt", ("skirt", "hem")),
        ("Pant", ("trousers", "hem")),
        ("Blouse", ("bodice", "hem")),
    ],
)
def test_garment_ends_at_the_clothing_length(category, labels):
    for value in get_field("clothing_length").values:
        sample = render(design(category, clothing_length=value), FRONT, LOOK)
        garment = np.isin(sample.parse, [LABEL[n] for n in labels])
        bottom = np.nonzero(garment.any(axis=1))[0].max()
        expected = level_y(FRONT, length_level(category, value))
        assert abs(bottom - expected) <= 1.5, (category, value, bottom, expected)


@pytest.mark.parametrize("category", ["Dress", "Pant", "Sweater"])
def test_every_hem_keeps_the_garment_length(category):
    # hem shapes only go up from the length line (a slit, a curve, a scallop): the lowest garment pixel stays put
    length = "Mid-length" if category != "Sweater" else "Ultra-short"
    expected = level_y(FRONT, length_level(category, length))
    region = {"Dress": "skirt", "Pant": "trousers", "Sweater": "bodice"}[category]
    for hem in distinct_values("hem"):
        parse = render(design(category, clothing_length=length, hem=hem), FRONT, LOOK).parse
        garment = np.isin(parse, [LABEL[region], LABEL["hem"]])
        bottom = np.nonzero(garment.any(axis=1))[0].max()
        assert abs(bottom - expected) <= 1.5, (category, hem, bottom, expected)
        assert (parse == LABEL["hem"]).sum() >= 10, (category, hem)


def test_a_long_dress_reaches_the_ankles_and_a_short_one_shows_the_knees():
    long_ = render(design(clothing_length="Long"), FRONT, LOOK).parse
    short = render(design(clothing_length="Short"), FRONT, LOOK).parse
    ankle_y = FRONT[[10, 13], 1].mean()
    knee = FRONT[9, :2].round().astype(int)
    garment = [LABEL["skirt"], LABEL["hem"]]
    assert np.nonzero(np.isin(long_, garment).any(axis=1))[0].max() >= ankle_y - 2
    assert long_[knee[1], knee[0]] in garment
    assert short[knee[1], knee[0]] == LABEL["skin"]


def test_collar_pixels_differ_between_v_neck_and_round():
    v = render(design(collar="V-Neck"), FRONT, LOOK).parse
    r = render(design(collar="Round"), FRONT, LOOK).parse
    cv, cr = v == LABEL["collar"], r == LABEL["collar"]
    assert cv.sum() > 15 and cr.sum() > 15
    assert (cv & cr).sum() / (cv | cr).sum() < 0.5
    u, neck = torso_u(FRONT), FRONT[1, :2]
    centre = slice(int(round(neck[0])) - 1, int(round(neck[0])) + 2)

    def skin_depth(parse):  # how far below the neck point the skin reaches on the body's centre line
        ys = np.nonzero((parse[:, centre] == LABEL["skin"]).any(axis=1))[0]
        ys = ys[ys > neck[1] - 2]
        return (ys.max() - neck[1]) / u

    assert skin_depth(v) > 0.25
    assert skin_depth(r) < 0.12


def test_image_and_parse_map_are_one_drawing():
    sample = render(design(), FRONT, LOOK)
    img, parse = sample.image.astype(int), sample.parse
    interior = np.ones_like(parse, dtype=bool)  # pixels whose 3x3 neighbourhood has one label
    for dy, dx in itertools.product((-1, 0, 1), repeat=2):
        interior &= np.roll(np.roll(parse, dy, 0), dx, 1) == parse
    for label, colours in (("background", [LOOK.background]), ("skirt", [LOOK.garment])):
        m = interior & (parse == LABEL[label])
        ok = np.zeros(m.sum(), dtype=bool)
        for c in colours:
            ok |= np.abs(img[m] - np.array(c)).max(axis=1) <= 1
        # the floor shadow is background too; everything else inside a label is its exact colour
        assert ok.mean() > (0.9 if label == "background" else 0.97), label


# -- visibly distinct attributes ---------------------------------------------------------------------
def _region(attr: str, kp: np.ndarray) -> np.ndarray:
    """The body region an attribute may change (from keypoints, like the paper's edit masks)."""
    h, w = SIZE[1], SIZE[0]
    u, neck = torso_u(kp), kp[1, :2]
    yy, xx = np.mgrid[:h, :w]
    pts = np.stack([xx.ravel(), yy.ravel()], 1).astype(float)
    if attr in ("sleeve_length", "sleeve_type"):
        near = np.zeros(h * w, dtype=bool)
        for idx in ((2, 3, 4), (5, 6, 7)):
            _, d = arm_param(pts, kp[list(idx), :2])
            near |= d < 0.33 * u
        return near.reshape(h, w)
    if attr == "collar":
        return (np.abs(xx - neck[0]) <= 0.36 * u) & (yy >= neck[1] - 0.3 * u) & (yy <= neck[1] + 0.6 * u)
    return yy >= neck[1] + 0.5 * u  # clothing length, hem: below the chest


@pytest.mark.parametrize(
    ("attr", "category", "extra"),
    [
        ("clothing_length", "Dress", {}),
        ("clothing_length", "Pant", {}),
        ("sleeve_length", "Dress", {}),
        ("sleeve_type", "Dress", {"sleeve_length": "Long Sleeve"}),
        ("sleeve_type", "Dress", {"sleeve_length": "Short Sleeve"}),
        ("collar", "Dress", {}),
        ("hem", "Dress", {}),
        ("hem", "Pant", {"clothing_length": "Long"}),
    ],
)
def test_every_drawn_value_is_visibly_distinct_and_changes_only_its_region(attr, category, extra):
    region = _region(attr, FRONT)
    images = {
        v: render(design(category, **{**extra, attr: v}), FRONT, LOOK).image.astype(int) for v in distinct_values(attr)
    }
    for a, b in itertools.combinations(images, 2):
        diff = np.abs(images[a] - images[b]).max(axis=2)
        changed = diff > 24
        # at least 40 pixels change strongly (the smallest pair, a shirt cuff or a stand vs a turtleneck, ~90)
        assert changed.sum() >= 40, (attr, a, b, int(changed.sum()))
        assert diff.mean() > 0.3, (attr, a, b)
        inside = (changed & region).sum() / changed.sum()
        assert inside >= 0.97, (attr, a, b, inside)
        # seen on the 8x8-pixel grid of a 4x24x16 latent: some cell's mean colour moves by 12+ levels
        cells = np.abs(images[a] - images[b]).reshape(24, 8, 16, 8, 3).mean(axis=(1, 3)).max()
        assert cells >= 12, (attr, a, b, cells)


# -- concepts set distributions ---------------------------------------------------------------------------
def test_concepts_move_the_palette_silhouette_and_attributes():
    from collections import Counter

    from hierafash_core.synth import sample_fields, sample_look

    def looks(**concepts):
        out = []
        for i in range(300):
            rng = np.random.default_rng([11, i])
            fields = {**sample_fields(rng), **concepts}
            out.append(sample_look(fields, rng))
        return out

    wedding = Counter(lk.palette for lk in looks(occasion="Wedding", style="Casual"))
    assert wedding.most_common(1)[0][0] == "white" and wedding["white"] > 120
    curve = Counter(lk.silhouette for lk in looks(feeling="Sense of Curve", effect="Highlight Hips"))
    assert curve["fitted"] > 200
    coats = Counter()
    dresses = Counter()
    for i in range(1500):
        f = sample_fields(np.random.default_rng([12, i]))
        (coats if f["category"] == "Coat" else dresses)[f["sleeve_length"]] += 1
    assert coats["Long Sleeve"] / sum(coats.values()) > 0.5 > dresses["Long Sleeve"] / sum(dresses.values())
    # the sleeveless caption never names a sleeve shape there is nothing to show of
    for i in range(300):
        f = sample_fields(np.random.default_rng([13, i]))
        assert f["sleeve_length"] != "Sleeveless" or f["sleeve_type"] == "Regular"


# -- dataset format --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "ds"
    write_dataset(out, SynthConfig(count=40, seed=3, test_fraction=0.25), workers=1)
    return out


def test_output_follows_the_dataset_format(small_dataset):
    meta = json.loads((small_dataset / "dataset.json").read_text())
    assert meta["parse_labels"] == {str(i): n for i, n in enumerate(PARSE_LABELS)}
    assert meta["size"] == [128, 192] and meta["count"] == 40
    assert meta["drawn_as"]["sleeve_type"]["Petal"] == "Flare"
    lines = (small_dataset / "records.jsonl").read_text().splitlines()
    assert len(lines) == 40
    test_poses = {p.name for p in split_poses("test")}
    splits = set()
    for line in lines:
        rec = json.loads(line)
        assert set(rec) >= {"id", "image", "pose", "fields", "parse", "split"}
        for key in ("image", "pose", "parse"):
            assert not Path(rec[key]).is_absolute() and ".." not in Path(rec[key]).parts
            assert (small_dataset / rec[key]).is_file()
        assert list(rec["fields"]) == list(FIELD_KEYS)
        for key, value in rec["fields"].items():
            assert normalize_value(key, value) == value
        assert HierarchicalPrompt.from_mapping(rec["fields"]).caption().count(",") == 9
        img = Image.open(small_dataset / rec["image"])
        parse = np.asarray(Image.open(small_dataset / rec["parse"]))
        assert img.size == (128, 192) and img.mode == "RGB"
        assert parse.shape == (192, 128) and parse.max() < len(PARSE_LABELS)
        pose = json.loads((small_dataset / rec["pose"]).read_text())
        assert (pose["canvas_width"], pose["canvas_height"]) == (128, 192)
        kp = np.array(pose["people"][0]["pose_keypoints_2d"]).reshape(18, 3)
        vis = kp[:, 2] > 0
        assert vis.sum() >= 17
        assert (
            (kp[vis, 0] >= 0).all()
            and (kp[vis, 0] < 128).all()
            and (kp[vis, 1] >= 0).all()
            and (kp[vis, 1] < 192).all()
        )
        # the figure is drawn where the pose says: the neck point is on the body, the corners are background
        nx, ny = kp[1, :2].round().astype(int)
        assert parse[ny, nx] != LABEL["background"] and parse[0, 0] == LABEL["background"]
        assert rec["split"] in ("train", "test")
        assert (rec["meta"]["pose"] in test_poses) == (rec["split"] == "test")
        splits.add(rec["split"])
    assert splits == {"train", "test"}


def test_openpose_json_round_trip_and_errors():
    kp = place(POSES_BY_NAME["three_quarter"].keypoints, SIZE)
    data = json.loads(json.dumps(openpose_json(kp, SIZE)))
    np.testing.assert_allclose(keypoints_from_openpose(data), kp, atol=0.006)
    assert kp[17, 2] == 0 and data["people"][0]["pose_keypoints_2d"][51:54] == [0.0, 0.0, 0.0]  # hidden ear
    with pytest.raises(ValueError, match="pose_keypoints_2d has 51 numbers"):
        keypoints_from_openpose({"people": [{"pose_keypoints_2d": [0.0] * 51}]})
    with pytest.raises(ValueError, match="expected"):
        keypoints_from_openpose({"people": []})


def test_pose_bank_is_mirrored_and_jittered_inside_the_frame():
    assert {p.name for p in split_poses("train")}.isdisjoint(p.name for p in split_poses("test"))
    assert any(p.source.startswith("skimage.data.") for p in POSE_BANK)
    rng = np.random.default_rng(0)
    for base in POSE_BANK:
        np.testing.assert_allclose(mirror(mirror(base.keypoints)), base.keypoints)
        for _ in range(20):
            kp = place(jitter(mirror(base.keypoints), rng), SIZE)
            vis = kp[:, 2] > 0
            assert (kp[vis, 0] > 2).all() and (kp[vis, 0] < 126).all()
            assert (kp[vis, 1] > 2).all() and (kp[vis, 1] < 182).all()


def test_bad_inputs_name_the_parameter_and_the_fix(tmp_path):
    with pytest.raises(ValueError, match=r"fields\['hem'\]='Frilly' is not a canonical label"):
        render(design(hem="Frilly"), FRONT, LOOK)
    with pytest.raises(ValueError, match=r"keypoints has shape \(17, 3\)"):
        render(design(), FRONT[:17], LOOK)
    with pytest.raises(ValueError, match="test_fraction=1.0"):
        write_dataset(tmp_path / "x", SynthConfig(count=3, test_fraction=1.0))
    with pytest.raises(ValueError, match="size=16x500"):
        write_dataset(tmp_path / "x", SynthConfig(count=3, size=(16, 500)))


# -- CLI ---------------------------------------------------------------------------------------------------
def test_cli_refuses_a_non_empty_folder_then_replaces_with_force(tmp_path, capsys):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert cli_main(["synth", "--out", str(out), "--count", "3", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "is not empty" in err and "--force" in err
    (out / "images").mkdir()
    (out / "images" / "000099.png").write_bytes(b"stale")
    assert cli_main(["synth", "--out", str(out), "--count", "3", "--seed", "1", "--force", "--workers", "1"]) == 0
    captured = capsys.readouterr()
    assert "wrote 3 records" in captured.out
    assert "synth: 100%" in captured.err  # the progress bar
    assert sorted(p.name for p in (out / "images").iterdir()) == ["000000.png", "000001.png", "000002.png"]
    assert (out / "notes.txt").read_text() == "mine"
    assert len((out / "records.jsonl").read_text().splitlines()) == 3


def test_cli_size_errors_are_one_line(capsys):
    assert cli_main(["synth", "--out", "unused", "--count", "3", "--size", "big"]) == 2
    assert "--size 'big': write WIDTHxHEIGHT in pixels, e.g. 128x192" in capsys.readouterr().err
