"""Write a synthetic data set in the HieraFash dataset format (docs/dataset-format.md).

Record ``i`` is drawn from its own generator, seeded by ``(seed, i)``: the split, the ten fields,
the look and the pose, in that order. So a record does not depend on the worker that drew it or
on how many records come before it, and the same seed gives byte-identical files.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .. import __version__
from ..taxonomy import ATTRIBUTE_FIELDS
from .concepts import sample_fields, sample_look
from .labels import DRAWN_AS, PARSE_LABELS, distinct_values, drawn_as
from .pose_bank import draw_pose, openpose_json, split_poses
from .render import Sample, render

log = logging.getLogger(__name__)

DATASET_FILES = ("records.jsonl", "dataset.json")
DATASET_DIRS = ("images", "poses", "parse")
_OUR_FILE = re.compile(r"^\d{6,}\.(png|json)$")
MIN_SIDE, MAX_SIDE = 32, 4096
MAX_COUNT = 1_000_000  # records in one data set (about 10 GB at 128x192; a typo of many zeros stops here)


@dataclass(frozen=True)
class SynthConfig:
    """How a data set is drawn. ``size`` is (width, height) in pixels."""

    count: int
    seed: int = 0
    size: tuple[int, int] = (128, 192)
    test_fraction: float = 0.1
    supersample: int = 2
    distinct_only: bool = True

    def check(self) -> None:
        if not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"count={self.count!r}: must be a whole number of at least 1")
        if self.count > MAX_COUNT:
            raise ValueError(f"count={self.count}: at most {MAX_COUNT:,} records per data set; draw several data "
                             "sets with different --seed values for more")  # fmt: skip
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed={self.seed!r}: must be a whole number of at least 0")
        w, h = self.size
        if not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
            raise ValueError(f"size={w}x{h}: each side must be {MIN_SIDE}..{MAX_SIDE} pixels (default 128x192)")
        if h < 96 or w < 64:
            log.warning("size %dx%d: below 64x96 the collars and hems are a pixel or two; attributes blur", w, h)
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"test_fraction={self.test_fraction}: must be at least 0 and below 1 (0.1 holds out 10%)")
        if self.supersample not in (1, 2, 3, 4):
            raise ValueError(f"supersample={self.supersample}: use 1 (fastest), 2 (default), 3 or 4")


def _draw_split(rng: np.random.Generator, test_fraction: float) -> str:
    return "test" if rng.random() < test_fraction else "train"


def split_of(config: SynthConfig, index: int) -> str:
    """The split of record ``index`` without drawing it (the first draw of its generator)."""
    return _draw_split(np.random.default_rng([config.seed, index]), config.test_fraction)


def make_sample(config: SynthConfig, index: int) -> tuple[Sample, str, dict]:
    """Record ``index`` of the data set ``config`` describes: (sample, split, metadata)."""
    rng = np.random.default_rng([config.seed, index])
    split = _draw_split(rng, config.test_fraction)
    fields = sample_fields(rng, distinct_only=config.distinct_only)
    look = sample_look(fields, rng)
    kp, pose_name, mirrored = draw_pose(rng, split, config.size)
    sample = render(fields, kp, look, config.size, config.supersample)
    meta = {
        "pose": pose_name,
        "mirrored": mirrored,
        "palette": look.palette,
        "pattern": look.pattern,
        "silhouette": look.silhouette,
    }
    mapped = {f.key: drawn_as(f.key, fields[f.key]) for f in ATTRIBUTE_FIELDS}
    if any(mapped[k] != fields[k] for k in mapped):
        meta["drawn_as"] = {k: v for k, v in mapped.items() if v != fields[k]}
    return sample, split, meta


def record_id(index: int, count: int) -> str:
    return str(index).zfill(max(6, len(str(count - 1))))


def _write_one(args: tuple[SynthConfig, str, int]) -> tuple[str, str]:
    """Render record ``index`` and write its three files; returns its records.jsonl line and split."""
    config, out, index = args
    root = Path(out)
    rid = record_id(index, config.count)
    sample, split, meta = make_sample(config, index)
    Image.fromarray(sample.image, "RGB").save(root / "images" / f"{rid}.png", compress_level=6)
    Image.fromarray(sample.parse, "L").save(root / "parse" / f"{rid}.png", compress_level=6)
    pose = json.dumps(openpose_json(sample.keypoints, config.size), separators=(",", ":"))
    (root / "poses" / f"{rid}.json").write_text(pose + "\n", encoding="utf-8")
    record = {
        "id": rid,
        "image": f"images/{rid}.png",
        "pose": f"poses/{rid}.json",
        "fields": sample.fields,
        "parse": f"parse/{rid}.png",
        "split": split,
        "meta": meta,
    }
    return json.dumps(record, ensure_ascii=False), split


def dataset_metadata(config: SynthConfig, splits: dict[str, int]) -> dict:
    return {
        "name": "hierafash-synth",
        "generator": f"hierafash synth (hierafash_core {__version__})",
        "seed": config.seed,
        "count": config.count,
        "size": list(config.size),
        "supersample": config.supersample,
        "test_fraction": config.test_fraction,
        "splits": splits,
        "parse_labels": {str(i): name for i, name in enumerate(PARSE_LABELS)},
        "attribute_values": "distinct" if config.distinct_only else "all",
        "distinct_values": {k: list(distinct_values(k)) for k in DRAWN_AS},
        "drawn_as": {k: {v: d for v, d in table.items() if v != d} for k, table in DRAWN_AS.items()},
        "pose_bank": {s: [p.name for p in split_poses(s)] for s in ("train", "test")},
    }


def prepare_folder(out: Path, force: bool) -> None:
    """Make ``out`` ready: refuse a non-empty folder unless ``force``; with it, clear earlier synth files only."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file; give a folder")
    if out.is_dir():
        entries = list(out.iterdir())
        if entries and not force:
            raise ValueError(
                f"--out {out} is not empty ({len(entries)} entries); pass --force to replace the data set there, "
                "or give an empty or new folder"
            )
        for name in DATASET_DIRS:  # only files this generator writes; anything else stays
            d = out / name
            if d.is_dir():
                for f in d.iterdir():
                    if f.is_file() and _OUR_FILE.match(f.name):
                        f.unlink()
        for name in DATASET_FILES:
            if (out / name).is_file():
                (out / name).unlink()
    try:
        for name in DATASET_DIRS:
            (out / name).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ValueError(
            f"--out {out}: cannot make the folder there ({reason}); give a folder you can write to"
        ) from None


def write_dataset(
    out: str | Path,
    config: SynthConfig,
    *,
    workers: int = 1,
    force: bool = False,
    callback: Callable[[int, int], None] | None = None,
) -> dict:
    """Draw ``config.count`` records into ``out``.

    Images, poses and parse maps are written as records are drawn; records.jsonl and dataset.json
    last, so an interrupted run never looks like a finished data set.

    Args:
        workers: processes drawing records (1 = in this process). The files do not depend on it.
        force: replace a data set already in ``out`` (only the files this generator writes).
        callback: ``callback(done, total)`` after each record, for a progress bar.

    Returns:
        The dataset.json contents written, plus ``seconds`` (wall time).
    """
    config.check()
    if not isinstance(workers, int) or not 1 <= workers <= 64:
        raise ValueError(f"workers={workers!r}: use 1..64 processes (2 on a 2-core machine)")
    out = Path(out)
    prepare_folder(out, force)
    start = time.perf_counter()
    # Jobs are made as they are drawn (a pool takes them in bounded batches): nothing grows with
    # ``count`` before the first image but the list of finished records.
    jobs = ((config, str(out), i) for i in range(config.count))
    lines: list[str] = []
    splits = {"train": 0, "test": 0}
    if workers == 1 or config.count < 8:
        for i, job in enumerate(jobs):
            line, split = _write_one(job)
            lines.append(line)
            splits[split] += 1
            if callback:
                callback(i + 1, config.count)
    else:
        # spawn: safe inside hosts that run threads (fork would copy their locks)
        ctx = multiprocessing.get_context("spawn")
        chunk = max(1, min(32, config.count // (workers * 8)))
        batch = chunk * workers * 16  # Pool.imap reads its whole iterable at once: feed it in batches
        with ctx.Pool(workers) as pool:
            for lo in range(0, config.count, batch):
                part = [(config, str(out), i) for i in range(lo, min(lo + batch, config.count))]
                for line, split in pool.imap(_write_one, part, chunksize=chunk):
                    lines.append(line)
                    splits[split] += 1
                    if callback:
                        callback(len(lines), config.count)
    (out / "records.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    meta = dataset_metadata(config, splits)
    (out / "dataset.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    seconds = time.perf_counter() - start
    log.debug("wrote %d records to %s in %.1f s", config.count, out, seconds)
    return {**meta, "seconds": seconds}
