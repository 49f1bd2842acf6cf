"""Training examples from a dataset folder, and a batch order that survives resuming and sharding.

An example is the image (centre-cropped to the training aspect, resized, in [-1, 1]), the pose
rendered the way pose ControlNets see it (in [0, 1]), the record's caption fields and, when the
run weights regions of the loss, a weight per pixel read from the record's parse map. The caption
itself is chosen in the training step, because it depends on the sampled timestep.

The batch order is a pure function of (seed, step, process): every epoch is a seeded permutation,
each optimizer micro-step takes the next ``batch_size x processes`` indices and each process its
own slice. A resumed run therefore sees exactly the batches the uninterrupted run would have.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..dataset.records import META_FILE, Record, read_pose_json, read_records, resolve
from ..pose.render import render_openpose_hwc
from ..prompt import HierarchicalPrompt

log = logging.getLogger(__name__)
NEAREST = Image.Resampling.NEAREST

PoseRenderer = Callable[[np.ndarray, int, int], np.ndarray]


def _crop_box(size: tuple[int, int], aspect: float) -> tuple[int, int, int, int]:
    """The largest centred box of ``aspect`` (width / height) inside ``size``."""
    w, h = size
    if w / h > aspect:
        cw = round(h * aspect)
        left = (w - cw) // 2
        return left, 0, left + cw, h
    ch = round(w / aspect)
    top = (h - ch) // 2
    return 0, top, w, top + ch


class PoseCaptionDataset(torch.utils.data.Dataset):
    """The records of one split, as tensors.

    Args:
        root: dataset folder.
        height / width: output size in pixels.
        with_pose: load and render the pose (``False`` for LoRA/UNet training without control).
        pose_renderer: ``(keypoints (18, 3), width, height) -> (H, W, 3) uint8`` for JSON poses;
            the OpenPose-18 stick figure by default.
        region_weights: parse label name -> loss weight (labels not named weigh 1). Every record
            then needs a parse map, and ``dataset.json`` the ``parse_labels`` that name its values.

    Items are dicts: ``pixel_values`` (3, H, W) in [-1, 1], ``conditioning`` (3, H, W) in [0, 1]
    (zeros without pose), ``index`` and, with ``region_weights``, ``loss_weight`` (1, H, W).
    ``prompts[index]`` is the example's caption fields.

    Raises:
        ValueError: a record that does not read (run ``hierafash dataset check``), or no records;
            with ``region_weights``, a label the dataset does not name or a record without parse map.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        height: int,
        width: int,
        split: str = "train",
        with_pose: bool = True,
        allow_free_text: bool = False,
        pose_renderer: PoseRenderer | None = None,
        region_weights: Mapping[str, float] | None = None,
    ):
        self.root = Path(root)
        self.height, self.width = int(height), int(width)
        self.with_pose = with_pose
        self.pose_renderer = pose_renderer or render_openpose_hwc
        self.records: list[Record] = read_records(self.root, split=split)
        if not self.records:
            raise ValueError(f"dataset {self.root} has no '{split}' records; check the split or the records file")
        self.prompts: list[HierarchicalPrompt] = []
        for rec in self.records:
            try:
                self.prompts.append(rec.prompt(allow_free_text=allow_free_text))
            except ValueError as exc:
                raise ValueError(
                    f"record {rec.id!r} (line {rec.line}): {exc}; run `hierafash dataset check {self.root}`"
                ) from None
            if with_pose and rec.pose is None:
                raise ValueError(f"record {rec.id!r} (line {rec.line}) has no pose; a ControlNet needs one per image")
        self.weight_table = _weight_table(self.root, self.records, region_weights) if region_weights else None

    def __len__(self) -> int:
        return len(self.records)

    def _fit(self, im: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
        return im.crop(box).resize((self.width, self.height), Image.Resampling.BICUBIC)

    def __getitem__(self, index: int) -> dict:
        rec = self.records[index]
        with Image.open(resolve(self.root, rec.image, "image")) as im:
            rgb = im.convert("RGB")
        box = _crop_box(rgb.size, self.width / self.height)
        pixels = np.asarray(self._fit(rgb, box), dtype=np.float32) / 127.5 - 1.0
        if self.with_pose:
            path = resolve(self.root, rec.pose, "pose")
            if path.suffix.lower() == ".json":
                pose = read_pose_json(path)
                kp = pose.keypoints.copy()
                if pose.width and pose.height and (pose.width, pose.height) != rgb.size:
                    kp[:, 0] *= rgb.width / pose.width
                    kp[:, 1] *= rgb.height / pose.height
                drawn = Image.fromarray(self.pose_renderer(kp, rgb.width, rgb.height))
            else:
                with Image.open(path) as im:
                    drawn = im.convert("RGB").resize(rgb.size, Image.Resampling.BILINEAR)
            cond = np.asarray(self._fit(drawn, box), dtype=np.float32) / 255.0
        else:
            cond = np.zeros((self.height, self.width, 3), dtype=np.float32)
        item = {
            "pixel_values": torch.from_numpy(pixels).permute(2, 0, 1).contiguous(),  # HWC -> CHW
            "conditioning": torch.from_numpy(cond).permute(2, 0, 1).contiguous(),
            "index": index,
        }
        if self.weight_table is not None:
            with Image.open(resolve(self.root, rec.parse, "parse")) as im:
                values = np.asarray(im)  # the stored label values (a palette map's indices, not its colours)
            if values.max(initial=0) > 255:  # mode and size were checked before training; 16-bit values were not
                raise ValueError(f"record {rec.id!r}: parse map {rec.parse} holds values above 255; labels are 0-255")
            # Nearest, so a label never blends into a neighbour's value (the trainer averages later).
            small = Image.fromarray(values.astype(np.uint8)).crop(box).resize((self.width, self.height), NEAREST)
            item["loss_weight"] = torch.from_numpy(self.weight_table[np.asarray(small)]).unsqueeze(0)  # (1, H, W)
        return item


PARSE_MODES = ("L", "P", "I", "I;16")  # single-channel maps whose stored values are the labels


def _check_parse_maps(root: Path, records: list[Record]) -> None:
    """Every record's parse map exists, is single-channel and has its image's size (headers only:
    a bad map should stop the run before the models load, not when its record is first drawn)."""
    for rec in records:
        where = f"record {rec.id!r} (line {rec.line})"
        try:
            with Image.open(resolve(root, rec.parse, "parse")) as im:
                mode, size = im.mode, im.size
            with Image.open(resolve(root, rec.image, "image")) as im:
                image_size = im.size
        except (OSError, ValueError) as exc:
            raise ValueError(f"{where}: its parse map or image does not open ({exc}); region_weights needs both; "
                             f"run `hierafash dataset check {root}`") from None  # fmt: skip
        if mode not in PARSE_MODES:
            raise ValueError(f"{where}: parse map {rec.parse} has mode {mode}; region_weights reads single-channel "
                             f"label maps ({', '.join(PARSE_MODES)}); save it as 8-bit grey (L)")  # fmt: skip
        if size != image_size:
            raise ValueError(
                f"{where}: parse map {rec.parse} is {size[0]}x{size[1]}, its image {image_size[0]}x{image_size[1]}; "
                "a parse map labels each pixel of its image, so give it the same size"
            )


def _weight_table(root: Path, records: list[Record], weights: Mapping[str, float]) -> np.ndarray:
    """(256,) float32: the loss weight of each parse-map value (1 for values no weight names)."""
    meta_path = root / META_FILE
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        meta = {}
    except (OSError, ValueError) as exc:
        raise ValueError(f"region_weights is set but {meta_path} does not read ({exc}); fix the file") from None
    labels = meta.get("parse_labels") if isinstance(meta, dict) else None
    if not labels:
        raise ValueError(
            f"region_weights is set but {meta_path} names no parse_labels; weight regions only on a dataset with "
            "parse maps and their label names (e.g. one from `hierafash synth`), or leave region_weights empty"
        )
    try:
        by_name = {str(name): int(value) for value, name in labels.items()}
    except (AttributeError, TypeError, ValueError):
        by_name = {}
    if not all(0 <= v < 256 for v in by_name.values()) or not by_name:
        raise ValueError(
            f'{meta_path}: parse_labels should map 8-bit parse values to names, e.g. {{"0": "background"}}; '
            f"got {labels!r:.200}"
        )
    if len(by_name) != len(labels):
        raise ValueError(f"{meta_path}: parse_labels gives one name to several values; name each label once")
    unknown = sorted(set(weights) - set(by_name))
    if unknown:
        raise ValueError(f"region_weights names {unknown}, which {meta_path} does not; its labels: {sorted(by_name)}")
    missing = [r.id for r in records if not r.parse]
    if missing:
        raise ValueError(
            f"region_weights is set but {len(missing)} records have no parse map (first: {missing[0]!r}); "
            "give every record one, or leave region_weights empty"
        )
    _check_parse_maps(root, records)
    table = np.ones(256, dtype=np.float32)
    for name, weight in weights.items():
        table[by_name[name]] = float(weight)
    return table


def collate(items: list[dict]) -> dict:
    out = {
        "pixel_values": torch.stack([it["pixel_values"] for it in items]),
        "conditioning": torch.stack([it["conditioning"] for it in items]),
        "index": torch.tensor([it["index"] for it in items], dtype=torch.long),
    }
    if "loss_weight" in items[0]:
        out["loss_weight"] = torch.stack([it["loss_weight"] for it in items])
    return out


class StepBatches(torch.utils.data.Sampler[list[int]]):
    """Endless batches of indices for one process, starting at micro-step ``start``.

    Epoch ``e`` is ``randperm(n)`` seeded by ``(seed, e)``; micro-step ``m`` of the epoch takes
    indices ``[m*B*P, (m+1)*B*P)`` of it and process ``r`` the slice ``[r*B, (r+1)*B)`` of those
    (B = batch size, P = processes). The tail of an epoch that fills no whole step is skipped.
    """

    def __init__(self, n: int, batch_size: int, *, processes: int = 1, rank: int = 0, seed: int = 0, start: int = 0):
        per_step = batch_size * processes
        if n < per_step:
            raise ValueError(
                f"the dataset has {n} examples but one step takes batch_size x processes = {per_step}; "
                "lower batch_size or add examples"
            )
        self.n, self.batch_size, self.processes, self.rank = n, batch_size, processes, rank
        self.seed, self.start = seed, start
        self.steps_per_epoch = n // per_step

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start
        epoch, perm = -1, None
        while True:
            e, m = divmod(step, self.steps_per_epoch)
            if e != epoch:
                g = torch.Generator().manual_seed(self.seed * 1_000_003 + e)
                perm = torch.randperm(self.n, generator=g).tolist()
                epoch = e
            first = m * self.batch_size * self.processes + self.rank * self.batch_size
            yield perm[first : first + self.batch_size]
            step += 1

    def __len__(self) -> int:  # endless; DataLoader only asks for it when printed
        return 2**31 - 1
