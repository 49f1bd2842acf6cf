"""Resumable checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint folder ``OUTPUT/checkpoints/step-0000500/`` holds

    trainable.safetensors   the weights being trained (diffusers names)
    optimizer.safetensors   the optimizer's per-parameter tensors (AdamW moments, step counts)
    state.json              step, optimizer hyper-parameters, learning-rate schedule state
    config.json             the TrainConfig of the run
    <name>-<mode>.safetensors  the same weights in the format ComfyUI loads

It is written under a temporary name and renamed when complete, so ``resume="latest"`` never
picks up a half-written one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

import torch

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def step_dir(output_dir: str | os.PathLike, step: int) -> Path:
    return Path(output_dir) / CHECKPOINTS / f"step-{step:07d}"


def list_checkpoints(output_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoints in ``output_dir``, oldest first."""
    root = Path(output_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _STEP_DIR.match(p.name)
        if m and p.is_dir() and (p / "state.json").is_file():
            found.append((int(m[1]), p))
    return sorted(found)


def find_checkpoint(output_dir: str | os.PathLike, resume: str) -> Path:
    """The folder ``resume`` names: ``latest`` (in ``output_dir``) or a checkpoint path.

    Raises:
        FileNotFoundError: no such checkpoint; the message says what exists.
    """
    if resume == "latest":
        found = list_checkpoints(output_dir)
        if not found:
            raise FileNotFoundError(
                f"resume=latest but {Path(output_dir) / CHECKPOINTS} holds no checkpoint; start without --resume"
            )
        return found[-1][1]
    path = Path(resume)
    if not (path / "state.json").is_file():
        raise FileNotFoundError(f"resume={resume}: not a checkpoint folder (no state.json); give one or 'latest'")
    return path


def _optimizer_flat(state: Mapping) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for pid, entries in state["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{pid}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _optimizer_unflat(tensors: Mapping[str, torch.Tensor], meta: Mapping) -> dict:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    for pid, entries in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(entries)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    folder: Path,
    *,
    trainable: Mapping[str, torch.Tensor],
    optimizer_state: Mapping,
    scheduler_state: Mapping,
    step: int,
    config_json: Mapping,
    extra_files: Mapping[str, object] | None = None,
) -> Path:
    """Write one checkpoint folder atomically; ``extra_files`` maps a file name to a writer ``fn(path)``."""
    from safetensors.torch import save_file

    tmp = folder.with_name(folder.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in trainable.items()}, str(tmp / "trainable.safetensors"))
    tensors, meta = _optimizer_flat(optimizer_state)
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    state = {"step": step, "optimizer": meta, "lr_scheduler": dict(scheduler_state)}
    (tmp / "state.json").write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
    (tmp / "config.json").write_text(json.dumps(dict(config_json), indent=2) + "\n", encoding="utf-8")
    for name, writer in (extra_files or {}).items():
        writer(tmp / name)
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def load_checkpoint(folder: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict, dict, int]:
    """Read a checkpoint: ``(trainable weights, optimizer state dict, scheduler state dict, step)``."""
    from safetensors.torch import load_file

    from ..model_files import check_safetensors

    folder = Path(folder)
    state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    trainable = load_file(str(check_safetensors(folder / "trainable.safetensors", "checkpoint")))
    optimizer = load_file(str(check_safetensors(folder / "optimizer.safetensors", "checkpoint")))
    optimizer = _optimizer_unflat(optimizer, state["optimizer"])
    return trainable, optimizer, state["lr_scheduler"], int(state["step"])


def prune_checkpoints(output_dir: str | os.PathLike, keep: int | None) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints; return the folders removed."""
    if keep is None:
        return []
    found = list_checkpoints(output_dir)
    removed = []
    for _, path in found[: max(0, len(found) - keep)]:
        shutil.rmtree(path)
        removed.append(path)
    return removed
