"""Finding and vetting model files the way ComfyUI users expect.

A model is given as a path, or as a name looked up in ComfyUI's model folders
(``models/<kind>/``) and in the folders its ``extra_model_paths.yaml`` adds. Only safetensors
files are accepted: pickle-based formats (``.ckpt``, ``.pt``, ``.pth``, ``.bin``) can run code
when loaded, so they are refused with a message saying how to convert them. Nothing is
downloaded: a missing file gives the folders that were searched and where to put it.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from pathlib import Path

import yaml

log = logging.getLogger(__name__)

PICKLE_SUFFIXES = {".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle"}
SAFE_SUFFIXES = {".safetensors", ".sft"}
# Legacy folder names ComfyUI also searches for a kind.
_KIND_ALIASES = {"controlnet": ["controlnet", "t2i_adapter"], "text_encoders": ["text_encoders", "clip"],
                 "diffusion_models": ["diffusion_models", "unet"]}  # fmt: skip


def _extra_paths(yaml_path: Path, kind: str) -> list[Path]:
    """Folders for ``kind`` listed in one ``extra_model_paths.yaml`` (ComfyUI's format)."""
    try:
        config = yaml.safe_load(yaml_path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        log.warning("ignoring %s: %s", yaml_path, exc)
        return []
    out: list[Path] = []
    if not isinstance(config, dict):
        return out
    for conf in config.values():
        if not isinstance(conf, dict):
            continue
        base = conf.get("base_path")
        base_path = None
        if base:
            base_path = Path(os.path.expandvars(os.path.expanduser(str(base))))
            if not base_path.is_absolute():
                base_path = (yaml_path.parent / base_path).resolve()
        for key in _KIND_ALIASES.get(kind, [kind]):
            for line in str(conf.get(key) or "").splitlines():
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                p = Path(line)
                if base_path is not None:
                    p = base_path / p
                elif not p.is_absolute():
                    p = yaml_path.parent / p
                out.append(p)
    return out


def model_folders(kind: str, comfyui: Path | None = None, extra_configs: list[Path] | None = None) -> list[Path]:
    """Folders ComfyUI would search for models of ``kind`` (``checkpoints``, ``controlnet``, ``loras``...)."""
    folders: list[Path] = []
    if comfyui is not None:
        for name in _KIND_ALIASES.get(kind, [kind]):
            folders.append(Path(comfyui) / "models" / name)
        default_yaml = Path(comfyui) / "extra_model_paths.yaml"
        if default_yaml.is_file():
            folders += _extra_paths(default_yaml, kind)
    for cfg in extra_configs or []:
        folders += _extra_paths(Path(cfg), kind)
    seen, unique = set(), []
    for f in folders:
        key = str(f)
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def check_safetensors(path: Path, what: str = "model") -> Path:
    """Refuse pickle formats and unreadable safetensors files with a message that says what to do."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise ValueError(
            f"{what} {str(path)!r} is a pickle-based file ({suffix}), which can run code when loaded; "
            "HieraFash loads safetensors only. Convert it once in a trusted environment "
            "(e.g. load it and save with safetensors.torch.save_file) or download the .safetensors release"
        )
    if suffix not in SAFE_SUFFIXES:
        raise ValueError(f"{what} {str(path)!r} is not a .safetensors file; HieraFash loads safetensors only")
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    size = path.stat().st_size
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ValueError("shorter than a safetensors header")
            (n,) = struct.unpack("<Q", head)
            if n <= 0 or 8 + n > size:
                raise ValueError(f"header claims {n} bytes but the file has {size}")
            header = json.loads(fh.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        if 8 + n + end > size:
            raise ValueError(f"tensors need {8 + n + end} bytes but the file has {size} (truncated download?)")
    except (ValueError, KeyError, TypeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"{what} {str(path)!r} is not a readable safetensors file ({exc}); download or copy it again"
        ) from None
    return path


def check_weights_folder(folder: Path, what: str = "model") -> Path:
    """Refuse a diffusers/transformers model folder whose weights exist only as pickles (``*.bin``...).

    Loaders given such a folder are then called with ``use_safetensors=True``, so a folder holding
    both formats loads its safetensors files and never unpickles the others. Its safetensors files
    are checked as :func:`check_safetensors` does.
    """
    folder = Path(folder)
    files = [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
    pickles = [p.name for p in files if p.suffix.lower() in PICKLE_SUFFIXES]
    if pickles and not any(p.suffix.lower() in SAFE_SUFFIXES for p in files):
        raise ValueError(
            f"{what} {str(folder)!r} holds its weights only as pickle-based files ({', '.join(sorted(pickles))}), "
            "which can run code when loaded; HieraFash loads safetensors only. Convert them once in a trusted "
            "environment (load the model and save_pretrained(..., safe_serialization=True))"
        )
    for path in files:  # a truncated download gets its own message, not the loader's OSError
        if path.suffix.lower() in SAFE_SUFFIXES:
            check_safetensors(path, what)
    return folder


def resolve_model(
    name: str | os.PathLike, kind: str, comfyui: Path | None = None, extra_configs: list[Path] | None = None
) -> Path:
    """A model path: ``name`` as a path if it exists, else looked up by name in the model folders.

    Raises:
        FileNotFoundError: with the folders searched and where to put the file.
        ValueError: a pickle-based or unreadable file, or a name that climbs out of the folders.
    """
    given = Path(name)
    if given.is_file():
        return check_safetensors(given.resolve(), kind)
    if given.is_dir():
        raise ValueError(f"{kind} {str(name)!r} is a folder; give a .safetensors file (a path or a file name)")
    text = str(name)
    if given.is_absolute() or ".." in given.parts:
        raise FileNotFoundError(f"{kind} {text!r} does not exist")
    folders = model_folders(kind, comfyui, extra_configs)
    for folder in folders:
        candidate = folder / text
        if candidate.is_file():
            return check_safetensors(candidate.resolve(), kind)
    looked = ", ".join(str(f) for f in folders) or "(no ComfyUI folder known: pass --comfyui DIR)"
    where = folders[0] if folders else "ComfyUI/models/" + kind
    raise FileNotFoundError(
        f"{kind} {text!r} not found; looked in: {looked}. Put the .safetensors file in {where} or pass its path"
    )


def save_safetensors(tensors: dict, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> Path:
    """Write a safetensors file whose bytes depend only on its contents, atomically.

    The safetensors library writes the metadata (and may write the tensor table) in hash-map
    order, so two saves of the same tensors can differ byte for byte. Here the header is written
    again as JSON with sorted keys (padded to 8 bytes as the format asks); the tensor data and
    its offsets stay as they are. Equal contents therefore give equal SHA-256 digests, which is
    what rebuilds are checked against. The file appears under its name only when complete.
    """
    from safetensors.torch import save

    blob = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=metadata)
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with tmp.open("wb") as fh:
        fh.write(struct.pack("<Q", len(text)))
        fh.write(text)
        fh.write(blob[8 + n :])
    os.replace(tmp, path)
    return path
