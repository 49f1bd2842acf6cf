"""Dataset format: the checker, the importers and the preview (core and CLI, no ComfyUI)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from hierafash_core.cli import main as cli_main
from hierafash_core.dataset import check_dataset, import_csv, import_paper_layout, preview_grid, read_records
from hierafash_core.dataset.records import RecordError, read_pose_json, resolve
from hierafash_core.training.tiny import write_toy_dataset


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_dataset(tmp_path_factory.mktemp("toy") / "data", 6, test=1)


def _lines(root):
    return [json.loads(line) for line in (root / "records.jsonl").read_text().splitlines()]


def _write(root, records):
    (root / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_a_clean_dataset_passes_with_a_summary(toy, capsys):
    report = check_dataset(toy)
    assert report.ok, [str(p) for p in report.problems]
    assert report.records == 6
    assert report.splits == {"train": 5, "test": 1}
    assert report.image_sizes == {(64, 96): 6}
    assert sum(report.field_counts["collar"].values()) == 6
    assert cli_main(["dataset", "check", str(toy)]) == 0
    out = capsys.readouterr().out
    assert "6 records in" in out and "0 problem(s)" in out
    first = _lines(toy)[0]["fields"]
    assert f"{first['hem']} " in out.split("hem: ")[1]  # per-value counts are printed


def test_check_reports_each_problem_on_its_own_line(toy, tmp_path, capsys):
    root = tmp_path / "bad"
    shutil.copytree(toy, root)
    recs = _lines(root)
    # 1 missing image, 2 unreadable image, 3 pose outside the image, 4 unknown value,
    # 5 caption with the wrong number of fields, 6 duplicate of record 0 (id and image).
    recs[1]["image"] = "images/nowhere.png"
    (root / "images" / "000002.png").write_bytes(b"not a png at all")
    pose = json.loads((root / "poses" / "000003.json").read_text())
    pose["people"][0]["pose_keypoints_2d"][4 * 3] = 500.0  # right wrist x
    (root / "poses" / "000003.json").write_text(json.dumps(pose))
    recs[4]["fields"]["collar"] = "Sqare Nek"
    del recs[5]["fields"]
    recs[5]["caption"] = (
        "Dress, Elegant, Party, Slimming, Line Feeling, Long Dress, Short Sleeve, Regular Sleeve, V-Neck"
    )
    dup = dict(recs[0])
    _write(root, [*recs, dup])

    assert cli_main(["dataset", "check", str(root), "--quiet"]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6, lines
    by_line = {int(line.split(":")[1].split()[0]): line for line in lines}
    assert "missing image images/nowhere.png" in by_line[2]
    assert "unreadable image images/000002.png" in by_line[3]
    assert "pose point 4 (right wrist) at (500.0," in by_line[4] and "outside the 64x96 image" in by_line[4]
    assert "collar='Sqare Nek' is not in the vocabulary (closest: Square" in by_line[5]
    assert "caption has 9 comma-separated fields; expected 10" in by_line[6]
    assert "duplicate record: id '000000' is also used at line 1" in by_line[7]
    report = check_dataset(root)
    assert report.codes() == {
        "missing-image": 1, "unreadable-image": 1, "pose-outside": 1, "unknown-value": 1, "field-count": 1,
        "duplicate": 1,
    }  # fmt: skip


def test_check_catches_copies_paths_and_near_misses(toy, tmp_path):
    root = tmp_path / "more"
    shutil.copytree(toy, root)
    recs = _lines(root)
    shutil.copyfile(root / "images" / "000000.png", root / "images" / "copy.png")
    recs[1]["image"] = "images/copy.png"  # same bytes as record 0's image
    recs[2]["pose"] = "../poses/000002.json"
    recs[3]["fields"]["collar"] = "v neck"
    recs[4]["fields"]["sleve"] = "Long Sleeve"
    _write(root, recs)
    problems = {p.code: str(p) for p in check_dataset(root).problems}
    assert "same content as record '000000'" in problems["duplicate"]
    assert "must not use '..'" in problems["bad-path"]
    assert "collar='v neck' is not a canonical label; write 'V-Neck'" in problems["not-canonical"]
    assert "field='sleve' is not a caption field. Did you mean" in problems["unknown-field"]
    assert "'sleeve length'" in problems["unknown-field"]
    assert "'fields' has 11 entries; a record holds at most 10" in problems["field-count"]


def test_records_refuse_paths_outside_the_folder(tmp_path):
    with pytest.raises(RecordError, match=r"image='/etc/passwd': paths must be relative"):
        resolve(tmp_path, "/etc/passwd", "image")
    assert resolve(tmp_path, "images/a.png") == tmp_path / "images" / "a.png"


def test_check_of_a_folder_without_records_is_one_line(tmp_path, capsys):
    assert cli_main(["dataset", "check", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "records.jsonl is missing" in err and "Traceback" not in err


def _fake_detector(calls):
    def detect(image):
        calls.append(image.size)
        w, h = image.size
        kp = np.zeros((18, 3))
        kp[:, 0], kp[:, 1], kp[:, 2] = w / 2, np.linspace(5, h - 5, 18), 1.0
        return kp

    return detect


def test_import_of_the_papers_release_layout(tmp_path):
    """A fixture in the layout of the HieraFashion release: train.json / test.json lists of
    {"gt": image, "pose": rendered pose image, "caption": ten comma fields}, paths relative to the folder."""
    src = tmp_path / "HieraFashion"
    for sub in ("train_images", "test_images", "train_pose/pose_images"):
        (src / sub).mkdir(parents=True)
    for i, name in enumerate(("000000_0", "000001_0", "000002_0")):
        Image.new("RGB", (64, 88), (200, 10 + 40 * i, 10)).save(src / "train_images" / f"{name}.jpg")
    Image.new("RGB", (64, 88), (10, 200, 10)).save(src / "test_images" / "78_0.jpg")
    Image.new("RGB", (64, 88)).save(src / "train_pose" / "pose_images" / "000000_0.jpg")
    caption = (
        "Dress, Elegant, Party, Elongate Neck, Sense of Agility and Elegance, Long Dress, Short Sleeve, "
        "Regular Sleeve, Round Collar, Draped Hem"
    )
    train = [
        {"pose": "train_pose/pose_images/000000_0.jpg", "gt": "train_images/000000_0.jpg", "caption": caption},
        {"pose": "train_pose/pose_images/000001_0.jpg", "gt": "train_images/000001_0.jpg", "caption": caption},
        {"pose": "train_pose/pose_images/000002_0.jpg", "gt": "train_images/000002_0.jpg", "caption": "Dress, Sweet"},
    ]
    test = [{"pose": "", "gt": "test_images/78_0.jpg", "caption": caption.replace("Party", "Wedding")}]
    (src / "train.json").write_text(json.dumps(train))
    (src / "test.json").write_text(json.dumps(test))

    calls: list = []
    report = import_paper_layout(src, tmp_path / "out", detector=_fake_detector(calls))
    assert report.imported == 3 and report.detected == 2 and calls == [(64, 88), (64, 88)]
    assert len(report.skipped) == 1 and "train.json[2]: caption has 2 comma-separated fields" in report.skipped[0]
    recs = read_records(tmp_path / "out")
    assert [(r.id, r.split, r.pose) for r in recs] == [
        ("000000_0", "train", "poses/000000_0.png"),
        ("000001_0", "train", "poses/000001_0.json"),
        ("78_0", "test", "poses/78_0.json"),
    ]
    assert recs[0].fields == {
        "category": "Dress", "style": "Elegant", "occasion": "Party", "effect": "Elongate Neck",
        "feeling": "Sense of Agility and Elegance", "clothing_length": "Long", "sleeve_length": "Short Sleeve",
        "sleeve_type": "Regular", "collar": "Round", "hem": "Draped",
    }  # fmt: skip
    assert recs[2].fields["occasion"] == "Wedding"
    assert read_pose_json(tmp_path / "out" / "poses" / "78_0.json").keypoints.shape == (18, 3)
    report = check_dataset(tmp_path / "out")
    assert report.ok, [str(p) for p in report.problems]


def test_import_without_detector_skips_and_says_so(tmp_path):
    src = tmp_path / "rel"
    src.mkdir()
    Image.new("RGB", (64, 64)).save(src / "a.png")
    (src / "train.json").write_text(json.dumps([{"gt": "a.png", "pose": "", "caption": ",,,,,,,,,"}]))
    report = import_paper_layout(src, tmp_path / "out")
    assert report.imported == 0
    assert report.skipped == ["train.json[0]: no pose given and no pose detector was given"]


def test_import_of_images_and_a_csv(tmp_path, capsys):
    images = tmp_path / "photos"
    images.mkdir()
    for i, name in enumerate(("look1.png", "look2.png")):
        Image.new("RGB", (64, 96), (90, 90 + 50 * i, 200)).save(images / name)
    (images / "look1.json").write_text(
        json.dumps(
            {"people": [{"pose_keypoints_2d": [10.0, 10.0, 1.0] * 18}], "canvas_width": 64, "canvas_height": 96}
        )
    )
    (tmp_path / "looks.csv").write_text(
        "image,pose,category,style,sleeve length,A4,hem,split\n"
        "look1.png,look1.json,dress,elegant,long sleeves,v neck,Draped Hem,train\n"
        "look2.png,,Skirt,Casual,,Tutleneck,,test\n"
    )
    calls: list = []
    report = import_csv(images, tmp_path / "looks.csv", tmp_path / "out", detector=_fake_detector(calls))
    assert report.imported == 2 and report.detected == 1 and len(calls) == 1
    assert any("collar='Tutleneck' is not in the vocabulary" in n for n in report.notes)
    recs = read_records(tmp_path / "out")
    assert recs[0].fields == {"category": "Dress", "style": "Elegant", "sleeve_length": "Long Sleeve",
                              "collar": "V-Neck", "hem": "Draped"}  # fmt: skip
    assert recs[1].fields["collar"] == "Tutleneck" and recs[1].split == "test"
    codes = check_dataset(tmp_path / "out").codes()
    assert codes == {"unknown-value": 1}

    (tmp_path / "bad.csv").write_text("image,colour\nlook1.png,red\n")
    assert cli_main(["dataset", "import-csv", str(images), str(tmp_path / "bad.csv"), str(tmp_path / "o2")]) == 2
    assert "column 'colour' is not a caption field" in capsys.readouterr().err


def test_preview_writes_a_grid_with_captions(toy, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert cli_main(["dataset", "preview", str(toy), "--out", str(out), "--count", "5", "--columns", "3"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    with Image.open(out) as im:
        assert im.width == 3 * 192
        grid = np.asarray(im.convert("RGB"))
    assert grid.shape[0] > 2 * int(192 * 1.4)  # two rows of images plus their captions
    assert (grid < 60).all(axis=2).sum() > 200  # caption text was drawn in black
    with pytest.raises(ValueError, match="count=0: must be at least 1"):
        preview_grid(toy, out, count=0)


def test_pack_pose_detector_finds_the_cameraman_and_nobody_in_a_blank_image():
    """The importers' default detector is the pack's BlazePose -> OpenPose-18 detection."""
    from PIL import Image
    from skimage import data

    from hierafash_core.dataset.importers import pack_pose_detector

    detect = pack_pose_detector()
    keypoints = detect(Image.fromarray(data.camera()))
    assert keypoints.shape == (18, 3)
    nose, neck = keypoints[0], keypoints[1]
    assert nose[2] > 0.5 and neck[2] > 0.5 and nose[1] < neck[1]
    assert detect(Image.new("RGB", (256, 256), (255, 255, 255))) is None
