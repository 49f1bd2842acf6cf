"""``hierafash dataset check``: every problem of a dataset folder, one line each, and a summary.

A problem names the record (line and id), what is wrong and the fix. The checks: the line is a
JSON record; files present and readable (image, pose, parse map); image sizes; pose points inside
the image and a pose canvas that matches it; caption fields known, in the vocabulary (closest
labels suggested) and canonical; the right number of fields; duplicate ids, image paths and
image contents.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..prompt import HierarchicalPrompt
from ..taxonomy import FIELDS, UnknownFieldError, UnknownValueError, get_field, normalize_value
from .records import (
    KEYPOINT_NAMES,
    META_FILE,
    RECORDS_FILE,
    Record,
    RecordError,
    iter_lines,
    read_pose_json,
    record_from_json,
    resolve,
)

log = logging.getLogger(__name__)

UNSET = "(unset)"


@dataclass(frozen=True)
class Problem:
    """One problem: ``where`` is ``records.jsonl:LINE [ID]``; ``code`` a stable short name."""

    where: str
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class CheckReport:
    """What :func:`check_dataset` found."""

    root: Path
    records: int = 0
    problems: list[Problem] = field(default_factory=list)
    field_counts: dict[str, Counter] = field(default_factory=lambda: {f.key: Counter() for f in FIELDS})
    splits: Counter = field(default_factory=Counter)
    image_sizes: Counter = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not self.problems

    def codes(self) -> Counter:
        return Counter(p.code for p in self.problems)

    def summary_lines(self) -> list[str]:
        """The summary: counts of records, splits, image sizes and every field value."""
        lines = [f"{self.records} records in {self.root}: {len(self.problems)} problem(s)"]
        if self.problems:
            lines.append("problems: " + ", ".join(f"{c} {n}" for c, n in sorted(self.codes().items())))
        lines.append("split: " + (", ".join(f"{s} {n}" for s, n in sorted(self.splits.items())) or "none"))
        sizes = ", ".join(f"{w}x{h} ({n})" for (w, h), n in self.image_sizes.most_common(6))
        more = len(self.image_sizes) - 6
        lines.append("image sizes: " + (sizes or "none") + (f", and {more} more" if more > 0 else ""))
        for f in FIELDS:
            counts = self.field_counts[f.key]
            text = ", ".join(f"{v} {n}" for v, n in counts.most_common()) or "none"
            lines.append(f"{f.label}: {text}")
        return lines


class _Checker:
    def __init__(self, root: Path, min_size: int):
        self.root = root
        self.min_size = min_size
        self.report = CheckReport(root)
        self.ids: dict[str, str] = {}
        self.images: dict[str, str] = {}
        self.digests: dict[str, str] = {}

    def problem(self, where: str, code: str, message: str) -> None:
        self.report.problems.append(Problem(where, code, message))

    # -- one record ----------------------------------------------------------------------------
    def record(self, number: int, obj: object) -> None:
        where = f"{RECORDS_FILE}:{number}"
        if isinstance(obj, json.JSONDecodeError):
            self.problem(
                where, "not-json", f"the line is not JSON ({obj.msg} at column {obj.colno}); fix or remove it"
            )
            return
        if isinstance(obj, dict) and obj.get("id") is not None:
            where = f"{where} [{obj['id']}]"
        try:
            rec = record_from_json(obj, number)
        except RecordError as exc:
            message = str(exc).split(": ", 1)[-1]
            self.problem(where, "bad-record", message)
            return
        self.report.records += 1
        self.report.splits[rec.split] += 1
        duplicate = rec.id in self.ids
        if duplicate:
            self.problem(where, "duplicate", f"duplicate record: id {rec.id!r} is also used at {self.ids[rec.id]}")
        else:
            self.ids[rec.id] = f"line {number}"
        size = self.image(where, rec, duplicate)
        self.pose(where, rec, size)
        self.parse_map(where, rec, size)
        self.fields(where, rec)

    def _path(self, where: str, rec_value: str, key: str) -> Path | None:
        try:
            return resolve(self.root, rec_value, key)
        except RecordError as exc:
            self.problem(where, "bad-path", str(exc))
            return None

    def image(self, where: str, rec: Record, duplicate: bool) -> tuple[int, int] | None:
        """Check the image file; ``duplicate``: the record was already reported as a duplicate (one line each)."""
        path = self._path(where, rec.image, "image")
        if path is None:
            return None
        if rec.image in self.images:
            if not duplicate:
                self.problem(
                    where, "duplicate", f"duplicate record: image {rec.image} is also used by {self.images[rec.image]}"
                )
            duplicate = True
        else:
            self.images[rec.image] = f"record {rec.id!r}"
        if not path.is_file():
            self.problem(where, "missing-image", f"missing image {rec.image}; put the file there or fix the path")
            return None
        try:
            data = path.read_bytes()
            with Image.open(path) as im:
                im.load()
                size = im.size
                mode = im.mode
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            self.problem(
                where, "unreadable-image", f"unreadable image {rec.image} ({exc}); re-export it as PNG or JPEG"
            )
            return None
        digest = hashlib.sha1(data, usedforsecurity=False).hexdigest()
        if digest in self.digests and not duplicate:
            self.problem(
                where,
                "duplicate",
                f"duplicate record: image {rec.image} has the same content as {self.digests[digest]}",
            )
        elif digest not in self.digests:
            self.digests[digest] = f"record {rec.id!r} ({rec.image})"
        self.report.image_sizes[size] += 1
        if min(size) < self.min_size:
            self.problem(
                where,
                "small-image",
                f"image {rec.image} is {size[0]}x{size[1]}; both sides must be at least {self.min_size} pixels",
            )
        if mode not in ("RGB", "RGBA", "L", "P", "LA"):
            self.problem(where, "image-mode", f"image {rec.image} has mode {mode}; save it as 8-bit RGB")
        return size

    def pose(self, where: str, rec: Record, size: tuple[int, int] | None) -> None:
        if rec.pose is None:
            self.problem(
                where,
                "missing-pose",
                "no 'pose'; give an OpenPose JSON or a rendered pose image "
                "(the importers fill it in with the pose detector)",
            )
            return
        path = self._path(where, rec.pose, "pose")
        if path is None:
            return
        if not path.is_file():
            self.problem(where, "missing-pose", f"missing pose file {rec.pose}; put the file there or fix the path")
            return
        if path.suffix.lower() == ".json":
            try:
                pose = read_pose_json(path)
            except (ValueError, OSError) as exc:
                self.problem(where, "bad-pose", f"unreadable pose {rec.pose}: {exc}")
                return
            if pose.people > 1:
                self.problem(where, "bad-pose", f"pose {rec.pose} holds {pose.people} people; keep the one pictured")
            if size is None:
                return
            w, h = size
            if pose.width is not None and pose.height is not None and (pose.width, pose.height) != (w, h):
                self.problem(
                    where,
                    "pose-size",
                    f"pose {rec.pose} was made on a {pose.width}x{pose.height} canvas but the image is {w}x{h}; "
                    "detect the pose on this image",
                )
            kp = pose.keypoints
            seen = kp[:, 2] > 0
            outside = seen & ((kp[:, 0] < 0) | (kp[:, 0] > w) | (kp[:, 1] < 0) | (kp[:, 1] > h))
            for i in np.flatnonzero(outside):
                self.problem(
                    where,
                    "pose-outside",
                    f"pose point {i} ({KEYPOINT_NAMES[i]}) at ({kp[i, 0]:.1f}, {kp[i, 1]:.1f}) is outside the "
                    f"{w}x{h} image; the pose belongs to another image or is in other units (pixels expected)",
                )
            if not seen.any():
                self.problem(where, "bad-pose", f"pose {rec.pose} has no visible point; detect the pose again")
            return
        try:
            with Image.open(path) as im:
                im.load()
                psize = im.size
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            self.problem(where, "bad-pose", f"unreadable pose image {rec.pose} ({exc})")
            return
        if size is not None and psize != size:
            self.problem(
                where,
                "pose-size",
                f"pose image {rec.pose} is {psize[0]}x{psize[1]} but the image is {size[0]}x{size[1]}; "
                "render the pose at the image size",
            )

    def parse_map(self, where: str, rec: Record, size: tuple[int, int] | None) -> None:
        if rec.parse is None:
            return
        path = self._path(where, rec.parse, "parse")
        if path is None:
            return
        if not path.is_file():
            self.problem(where, "missing-parse", f"missing parse map {rec.parse}; put the file there or drop 'parse'")
            return
        try:
            with Image.open(path) as im:
                im.load()
                psize, mode = im.size, im.mode
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            self.problem(where, "bad-parse", f"unreadable parse map {rec.parse} ({exc})")
            return
        if mode not in ("L", "P", "I", "I;16"):
            self.problem(where, "bad-parse", f"parse map {rec.parse} has mode {mode}; save a single-channel label PNG")
        if size is not None and psize != size:
            self.problem(
                where,
                "bad-parse",
                f"parse map {rec.parse} is {psize[0]}x{psize[1]} but the image is {size[0]}x{size[1]}",
            )

    def fields(self, where: str, rec: Record) -> None:
        counts = self.report.field_counts
        if not rec.fields and rec.caption is None:
            self.problem(where, "no-fields", "no 'fields' and no 'caption'; give the ten caption fields")
            for f in FIELDS:
                counts[f.key][UNSET] += 1
            return
        values: dict[str, str | None] = {}
        if rec.caption is not None:
            parts = [p.strip() for p in rec.caption.split(",")]
            if len(parts) != len(FIELDS):
                self.problem(
                    where,
                    "field-count",
                    f"caption has {len(parts)} comma-separated fields; expected {len(FIELDS)} "
                    f"({', '.join(f.label for f in FIELDS)}), leave a field empty to unset it",
                )
                if not rec.fields:
                    for f in FIELDS:
                        counts[f.key]["(caption not counted)"] += 1
                    return
            elif not rec.fields:
                values = {f.key: (p or None) for f, p in zip(FIELDS, parts, strict=True)}
        if rec.fields:
            if len(rec.fields) > len(FIELDS):
                self.problem(
                    where,
                    "field-count",
                    f"'fields' has {len(rec.fields)} entries; a record holds at most {len(FIELDS)}, "
                    "one per caption field",
                )
            seen: dict[str, str] = {}
            for name, value in rec.fields.items():
                try:
                    f = get_field(name)
                except UnknownFieldError as exc:
                    self.problem(where, "unknown-field", str(exc))
                    continue
                if f.key in seen:
                    self.problem(where, "field-count", f"fields {seen[f.key]!r} and {name!r} both give the {f.label}")
                    continue
                seen[f.key] = name
                values[f.key] = value
        category = values.get("category")
        if category is not None:
            try:
                category = normalize_value("category", category)
            except UnknownValueError:
                category = None
        for f in FIELDS:
            value = values.get(f.key)
            if value is None or not str(value).strip():
                counts[f.key][UNSET] += 1
                continue
            text = str(value).strip()
            try:
                label = normalize_value(f, text, category=category)
            except UnknownValueError as exc:
                close = (
                    f"closest: {', '.join(exc.suggestions)}" if exc.suggestions else f"values: {', '.join(f.values)}"
                )
                self.problem(where, "unknown-value", f"{f.label}={text!r} is not in the vocabulary ({close})")
                counts[f.key][f"{text} (unknown)"] += 1
                continue
            counts[f.key][label] += 1
            if rec.caption is not None and not rec.fields:
                continue  # a caption writes values with their nouns ("Long Dress"); any known form is right
            if text != label:
                self.problem(where, "not-canonical", f"{f.label}={text!r} is not a canonical label; write {label!r}")
        if rec.caption is not None and rec.fields and len(rec.caption.split(",")) == len(FIELDS):
            try:
                from_caption = HierarchicalPrompt.from_caption(rec.caption).values
                from_fields = HierarchicalPrompt.from_mapping(rec.fields).values
            except ValueError:
                return  # the unknown field or value was reported above
            if from_caption != from_fields:
                self.problem(where, "caption-mismatch", "'caption' and 'fields' disagree; keep one of them")


def check_dataset(root: str | os.PathLike, *, min_size: int = 64) -> CheckReport:
    """Check every record of the dataset at ``root``.

    Args:
        min_size: the smallest image side accepted, in pixels.

    Raises:
        FileNotFoundError: ``root`` is not a dataset folder (no ``records.jsonl``).
    """
    root = Path(root)
    checker = _Checker(root, min_size)
    meta = root / META_FILE
    if meta.exists():
        try:
            json.loads(meta.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            checker.problem(META_FILE, "bad-meta", f"not JSON ({exc.msg} at line {exc.lineno})")
    for number, obj in iter_lines(root):
        checker.record(number, obj)
    if checker.report.records == 0 and not checker.report.problems:
        checker.problem(RECORDS_FILE, "empty", "no records; add one JSON object per line")
    return checker.report
