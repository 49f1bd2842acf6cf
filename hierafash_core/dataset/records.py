"""The dataset format (docs/dataset-format.md): records, paths inside the folder, pose files.

One folder holds a dataset: ``records.jsonl`` (one JSON object per line), ``images/``, ``poses/``
and optionally ``parse/`` and ``dataset.json``. This module reads and writes that layout; the
checker (:mod:`.check`) reports every problem of a folder, the training data loader
(:mod:`hierafash_core.training.data`) refuses a folder that does not read cleanly.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from ..prompt import HierarchicalPrompt

log = logging.getLogger(__name__)

RECORDS_FILE = "records.jsonl"
META_FILE = "dataset.json"
SPLITS = ("train", "test")
NUM_KEYPOINTS = 18
# OpenPose-18 (COCO order) point names, for messages.
KEYPOINT_NAMES = (
    "nose", "neck", "right shoulder", "right elbow", "right wrist", "left shoulder", "left elbow", "left wrist",
    "right hip", "right knee", "right ankle", "left hip", "left knee", "left ankle", "right eye", "left eye",
    "right ear", "left ear",
)  # fmt: skip
KNOWN_KEYS = ("id", "image", "pose", "fields", "caption", "parse", "split")


class RecordError(ValueError):
    """A record that does not follow the format; the message names the key and the fix."""


@dataclass
class Record:
    """One line of ``records.jsonl``.

    Attributes:
        id: unique name of the example.
        image / pose / parse: paths relative to the dataset folder (``parse`` optional).
        fields: the caption fields as written (field key -> value, ``None`` for unset).
        caption: the paper's comma caption, an alternative to ``fields`` (both may be given).
        split: ``"train"`` or ``"test"``.
        line: 1-based line in ``records.jsonl`` (0 for a record built in memory).
        extra: keys this format does not define, kept when the record is written back.
    """

    id: str
    image: str
    pose: str | None
    fields: dict[str, str | None] = field(default_factory=dict)
    caption: str | None = None
    parse: str | None = None
    split: str = "train"
    line: int = 0
    extra: dict = field(default_factory=dict)

    def prompt(self, *, allow_free_text: bool = False) -> HierarchicalPrompt:
        """The record's caption fields as a :class:`HierarchicalPrompt` (``fields`` win over ``caption``).

        Raises:
            ValueError: an unknown field or value (with suggestions), or a caption of the wrong length.
        """
        if self.fields:
            return HierarchicalPrompt.from_mapping(self.fields, allow_free_text=allow_free_text)
        if self.caption is not None:
            return HierarchicalPrompt.from_caption(self.caption, allow_free_text=allow_free_text)
        raise RecordError(f"record {self.id!r} has neither 'fields' nor 'caption'; give the ten caption fields")

    def to_json(self) -> dict:
        out: dict = {"id": self.id, "image": self.image}
        if self.pose is not None:
            out["pose"] = self.pose
        if self.fields:
            out["fields"] = dict(self.fields)
        if self.caption is not None:
            out["caption"] = self.caption
        if self.parse is not None:
            out["parse"] = self.parse
        out["split"] = self.split
        out.update(self.extra)
        return out


def _optional_str(obj: Mapping, key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise RecordError(
            f"{where}: '{key}' must be a non-empty string (a path relative to the dataset), got {value!r}"
        )
    return value


def record_from_json(obj: object, line: int = 0) -> Record:
    """Build a :class:`Record` from one decoded line, checking its structure (not its files).

    Raises:
        RecordError: not an object, a missing ``id``/``image``, a key of the wrong type, a bad split.
    """
    where = f"line {line}" if line else "record"
    if not isinstance(obj, dict):
        raise RecordError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    rid = obj.get("id")
    if isinstance(rid, int) and not isinstance(rid, bool):
        rid = str(rid)
    if not isinstance(rid, str) or not rid.strip():
        raise RecordError(f"{where}: 'id' is missing or empty; give every record a unique id such as \"000001\"")
    where = f"{where} [{rid}]"
    image = _optional_str(obj, "image", where)
    if image is None:
        raise RecordError(f"{where}: 'image' is missing; give the image path, e.g. \"images/{rid}.png\"")
    fields = obj.get("fields") or {}
    if not isinstance(fields, dict):
        raise RecordError(
            f'{where}: \'fields\' must be an object of field -> value (e.g. {{"category": "Dress"}}), '
            f"got {type(fields).__name__}"
        )
    caption = obj.get("caption")
    if caption is not None and not isinstance(caption, str):
        raise RecordError(f"{where}: 'caption' must be a comma-separated string, got {type(caption).__name__}")
    split = obj.get("split") or "train"
    if split not in SPLITS:
        raise RecordError(f"{where}: split={split!r} is not one of {', '.join(SPLITS)}")
    return Record(
        id=rid,
        image=image,
        pose=_optional_str(obj, "pose", where),
        fields={str(k): (None if v is None else str(v)) for k, v in fields.items()},
        caption=caption,
        parse=_optional_str(obj, "parse", where),
        split=split,
        line=line,
        extra={k: v for k, v in obj.items() if k not in KNOWN_KEYS},
    )


def records_path(root: str | os.PathLike) -> Path:
    """``root/records.jsonl``, or a clear error when ``root`` is not a dataset folder."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"dataset folder {root} is a file; give the folder holding {RECORDS_FILE}")
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist; give a folder holding {RECORDS_FILE}")
    path = root / RECORDS_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: a dataset folder holds {RECORDS_FILE} (see docs/dataset-format.md); "
            "build one with `hierafash dataset import-paper` or `hierafash dataset import-csv`"
        )
    return path


def iter_lines(root: str | os.PathLike) -> Iterator[tuple[int, object | json.JSONDecodeError]]:
    """Yield ``(line number, decoded object or the decode error)`` for each non-blank line."""
    with records_path(root).open(encoding="utf-8") as fh:
        for number, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                yield number, json.loads(text)
            except json.JSONDecodeError as exc:
                yield number, exc


def read_records(root: str | os.PathLike, split: str | None = None) -> list[Record]:
    """Read every record (strict): the first malformed line raises.

    Args:
        split: keep only ``"train"`` or ``"test"`` records; ``None`` keeps all.

    Raises:
        RecordError: a line that is not JSON or not a valid record; run ``hierafash dataset check``.
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"split={split!r} is not one of {', '.join(SPLITS)}")
    out = []
    for number, obj in iter_lines(root):
        if isinstance(obj, json.JSONDecodeError):
            raise RecordError(
                f"{RECORDS_FILE} line {number} is not JSON ({obj.msg}); "
                "run `hierafash dataset check` for every problem"
            )
        rec = record_from_json(obj, number)
        if split is None or rec.split == split:
            out.append(rec)
    return out


def write_records(root: str | os.PathLike, records: list[Record], meta: Mapping | None = None) -> Path:
    """Write ``records.jsonl`` (and ``dataset.json`` when ``meta`` is given) into ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / RECORDS_FILE
    tmp = path.with_suffix(".partial")
    with tmp.open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec.to_json(), ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    if meta is not None:
        (root / META_FILE).write_text(json.dumps(dict(meta), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def resolve(root: str | os.PathLike, rel: str, key: str = "path") -> Path:
    """The file a record path names, refusing absolute paths and ``..`` (a dataset stays in its folder).

    Raises:
        RecordError: the path is absolute or climbs out of the folder.
    """
    text = rel.replace("\\", "/")
    pure = PurePosixPath(text)
    if pure.is_absolute() or (len(text) > 1 and text[1] == ":") or ".." in pure.parts:
        raise RecordError(
            f"{key}={rel!r}: paths must be relative to the dataset folder and must not use '..'; "
            "copy the file into the folder (e.g. images/) and name it from there"
        )
    return Path(root).joinpath(*pure.parts)


# -- pose files ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pose:
    """One person's OpenPose-18 keypoints read from a JSON pose file.

    Attributes:
        keypoints: (18, 3) float array of x, y in image pixels and a confidence (0 = not seen).
        width / height: the canvas the points refer to (``None`` when the file does not say).
        people: how many people the file held (the format holds one; the first is used).
    """

    keypoints: np.ndarray
    width: int | None
    height: int | None
    people: int = 1


def parse_pose(data: object, source: str = "pose") -> Pose:
    """Read the OpenPose layout that ComfyUI pose preprocessors emit (a dict, or a list of one dict).

    Raises:
        ValueError: no person, a keypoint list that is not 18 (x, y, c) triples, bad canvas sizes.
    """
    if isinstance(data, list):
        if len(data) != 1:
            raise ValueError(f"{source}: a list of {len(data)} poses; a record's pose file holds one image's pose")
        data = data[0]
    if not isinstance(data, dict) or not isinstance(data.get("people"), list):
        raise ValueError(f'{source}: expected {{"people": [{{"pose_keypoints_2d": [...]}}], ...}} (OpenPose JSON)')
    people = data["people"]
    if not people:
        raise ValueError(f"{source}: no person in the pose file; detect the pose again or drop the record")
    flat = people[0].get("pose_keypoints_2d") if isinstance(people[0], dict) else None
    if not isinstance(flat, list) or len(flat) != NUM_KEYPOINTS * 3:
        got = len(flat) if isinstance(flat, list) else type(flat).__name__
        raise ValueError(
            f"{source}: pose_keypoints_2d must hold {NUM_KEYPOINTS} points as x, y, confidence "
            f"({NUM_KEYPOINTS * 3} numbers, OpenPose-18), got {got}"
        )
    try:
        kp = np.asarray(flat, dtype=np.float64).reshape(NUM_KEYPOINTS, 3)
    except (TypeError, ValueError):
        raise ValueError(f"{source}: pose_keypoints_2d holds values that are not numbers") from None
    if not np.isfinite(kp).all():
        raise ValueError(f"{source}: pose_keypoints_2d holds NaN or infinite values")
    width, height = data.get("canvas_width"), data.get("canvas_height")
    for name, value in (("canvas_width", width), ("canvas_height", height)):
        if value is not None and (not isinstance(value, int | float) or value <= 0):
            raise ValueError(f"{source}: {name}={value!r} must be a positive number of pixels")
    return Pose(kp, None if width is None else int(width), None if height is None else int(height), len(people))


def read_pose_json(path: str | os.PathLike) -> Pose:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path.name}: not JSON ({exc.msg} at line {exc.lineno})") from None
    return parse_pose(data, path.name)


def pose_to_json(keypoints: np.ndarray, width: int, height: int) -> dict:
    """OpenPose JSON for one person: ``keypoints`` is (18, 3) in image pixels."""
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.shape != (NUM_KEYPOINTS, 3):
        raise ValueError(f"keypoints of shape {kp.shape}; expected ({NUM_KEYPOINTS}, 3) (OpenPose-18 x, y, c)")
    flat = [round(float(v), 3) for v in kp.reshape(-1)]
    return {"people": [{"pose_keypoints_2d": flat}], "canvas_width": int(width), "canvas_height": int(height)}


def write_pose_json(path: str | os.PathLike, keypoints: np.ndarray, width: int, height: int) -> None:
    Path(path).write_text(json.dumps(pose_to_json(keypoints, width, height)) + "\n", encoding="utf-8")
