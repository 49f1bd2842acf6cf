"""The frozen parts of a Stable Diffusion base, loaded from local files only.

Two sources:

- a diffusers folder (``unet/``, ``text_encoder/``, ``tokenizer/``, ``vae/``, ``scheduler/``);
- a single-file LDM checkpoint (``.safetensors``). Its UNet layout is recognised by comparing the
  file's tensor names and shapes with the layouts shipped in ``hierafash_core/configs/`` (SD1.5,
  SD2.1-base and the seeded tiny test model); the UNet keys are mapped with
  :mod:`hierafash_core.models.ldm_keys`; the text encoder and VAE go through diffusers' own key
  converters. A single file carries no tokenizer, so one is looked for in a ComfyUI install.

Nothing is ever fetched from a hub.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..model_files import check_safetensors, check_weights_folder
from ..models.ldm_keys import unet_from_ldm, unet_to_ldm

log = logging.getLogger(__name__)

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
UNET_PREFIX = "model.diffusion_model."
TOKENIZER_FILES = ("vocab.json", "merges.txt")


@dataclass
class BaseModel:
    """A base model ready for training: every part on CPU in float32 until the trainer moves it.

    ``latent_scale``/``latent_offset``: the UNet sees ``(vae latent + offset) * scale`` (the same
    latent ComfyUI hands the model, so weights trained here behave the same there).
    """

    unet: torch.nn.Module | None  # None: a UNet is trained from scratch (``unet_config``)
    text_encoder: torch.nn.Module
    tokenizer: object
    vae: torch.nn.Module
    scheduler: object
    unet_config: dict
    latent_scale: float
    latent_offset: float = 0.0
    source: str = ""
    layout: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def max_length(self) -> int:
        return int(self.text_encoder.config.max_position_embeddings)

    @torch.no_grad()
    def encode_pixels(self, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, 4, H/8, W/8) latents as the UNet sees them."""
        from diffusers import AutoencoderTiny

        from ..mini.autoencoder import MiniAutoencoder

        weight = next(self.vae.parameters())
        pixels = pixels.to(device=weight.device, dtype=weight.dtype)
        if isinstance(self.vae, MiniAutoencoder):  # normalised already: latent_scale 1, offset 0
            z = self.vae.encode(pixels)
        elif isinstance(self.vae, AutoencoderTiny):
            z = self.vae.encode(pixels).latents
        else:
            z = self.vae.encode(pixels).latent_dist.sample(generator=generator)
        return ((z.float() + self.latent_offset) * self.latent_scale).contiguous()

    @torch.no_grad()
    def encode_text(self, captions: list[str]) -> torch.Tensor:
        """Captions -> (B, tokens, width) text encoder states (padded to the encoder's length)."""
        ids = self.tokenizer(
            captions, padding="max_length", max_length=self.max_length, truncation=True, return_tensors="pt"
        ).input_ids
        return self.text_encoder(ids.to(self.text_encoder.device))[0]


def _clean_config(data: dict) -> dict:
    return {k: v for k, v in data.items() if not k.startswith("_")}


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


# -- tokenizer --------------------------------------------------------------------------------------
def tokenizer_candidates(base: Path | None) -> list[Path]:
    """Where a CLIP tokenizer is looked for when none is given, in order."""
    out: list[Path] = []
    if base is not None:
        if base.is_dir():
            out.append(base / "tokenizer")
        else:
            out.append(base.parent / "tokenizer")
            # ComfyUI/models/checkpoints/x.safetensors -> ComfyUI/comfy/sd1_tokenizer
            out += [p / "comfy" / "sd1_tokenizer" for p in base.resolve().parents[:4]]
    spec = importlib.util.find_spec("comfy")
    if spec is not None and spec.submodule_search_locations:
        out += [Path(p) / "sd1_tokenizer" for p in spec.submodule_search_locations]
    here = Path(__file__).resolve()
    out.append(here.parents[4] / "comfy" / "sd1_tokenizer")  # this pack inside ComfyUI/custom_nodes/
    out.append(here.parents[2] / ".cache" / "comfyui" / "comfy" / "sd1_tokenizer")  # a development checkout
    seen, unique = set(), []
    for p in out:
        if p not in seen:
            seen.add(p)
            unique.append(p)
    return unique


def load_tokenizer(explicit: str | os.PathLike | None, base: Path | None, pad_token: str | None = None):
    """A CLIP tokenizer from ``explicit`` or the first candidate folder that holds one.

    Raises:
        FileNotFoundError: no folder with vocab.json and merges.txt; the message lists where it looked.
    """
    from transformers import CLIPTokenizer

    def usable(folder: Path) -> bool:
        return folder.is_dir() and all((folder / f).is_file() for f in TOKENIZER_FILES)

    if explicit is not None:
        folder = Path(explicit)
        if not usable(folder):
            raise FileNotFoundError(
                f"tokenizer={folder}: needs {' and '.join(TOKENIZER_FILES)} (a CLIP tokenizer folder, such as "
                "ComfyUI/comfy/sd1_tokenizer or the tokenizer/ folder of a diffusers model)"
            )
    else:
        tried = tokenizer_candidates(base)
        folder = next((p for p in tried if usable(p)), None)
        if folder is None:
            raise FileNotFoundError(
                "no CLIP tokenizer found (looked in " + ", ".join(str(p) for p in tried) + "); give --tokenizer DIR "
                "with vocab.json and merges.txt, e.g. ComfyUI/comfy/sd1_tokenizer"
            )
    tok = CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
    if pad_token is not None:
        tok.pad_token = pad_token
    log.info("tokenizer from %s", folder)
    return tok


# -- layouts ----------------------------------------------------------------------------------------
def shipped_layouts() -> list[str]:
    return sorted(p.parent.parent.name for p in CONFIGS.glob("*/unet/config.json"))


def layout_info(name: str) -> dict:
    path = CONFIGS / name / "layout.json"
    info = {"text_encoder": "clip", "pad_token": None, "latent_scale": 0.18215}
    if path.is_file():
        info.update(read_json(path))
    return info


def _expected_unet_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**_clean_config(config))
    return {k: tuple(v.shape) for k, v in unet_to_ldm(unet.state_dict(), config).items()}


def detect_layout(shapes: dict[str, tuple[int, ...]]) -> str | None:
    """The shipped layout whose UNet has exactly these LDM tensor names and shapes."""
    for name in shipped_layouts():
        config = read_json(CONFIGS / name / "unet" / "config.json")
        if _expected_unet_shapes(config) == shapes:
            return name
    return None


# -- loading ----------------------------------------------------------------------------------------
def load_base(
    path: str | os.PathLike, *, tokenizer: str | os.PathLike | None = None, layout: str | None = None
) -> BaseModel:
    """Load a base model from a local diffusers folder or single-file checkpoint.

    Raises:
        FileNotFoundError: the path does not exist, or no tokenizer was found.
        ValueError: a file that is not safetensors, or a UNet that matches no shipped layout.
    """
    path = Path(path)
    if path.is_dir():
        return _load_diffusers_folder(path, tokenizer)
    if not path.is_file():
        raise FileNotFoundError(
            f"base={path} does not exist; give a local .safetensors checkpoint or a diffusers folder "
            "(models are never downloaded)"
        )
    if path.suffix.lower() != ".safetensors":
        raise ValueError(
            f"base={path.name}: only .safetensors checkpoints are read (a pickled .ckpt/.bin file can run code "
            "when loaded); convert it once in a trusted environment (load it and save it with "
            "safetensors.torch.save_file) or use the model's .safetensors release"
        )
    check_safetensors(path, "base")  # a truncated or corrupt file is named as such
    return _load_single_file(path, tokenizer, layout)


def _load_diffusers_folder(path: Path, tokenizer: str | os.PathLike | None) -> BaseModel:
    import diffusers
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    for sub in ("unet", "text_encoder", "vae", "scheduler"):
        if not (path / sub).is_dir():
            raise FileNotFoundError(f"base={path} is not a diffusers model folder: {sub}/ is missing")
    for sub in ("unet", "text_encoder", "vae"):
        check_weights_folder(path / sub, f"base {sub}")
    unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet", local_files_only=True, use_safetensors=True)
    text_encoder = CLIPTextModel.from_pretrained(path / "text_encoder", local_files_only=True, use_safetensors=True)
    vae_class = read_json(path / "vae" / "config.json").get("_class_name", "AutoencoderKL")
    if vae_class not in ("AutoencoderKL", "AutoencoderTiny"):
        raise ValueError(f"base={path}: VAE class {vae_class} is not supported; use AutoencoderKL or AutoencoderTiny")
    vae = getattr(diffusers, vae_class).from_pretrained(
        path, subfolder="vae", local_files_only=True, use_safetensors=True
    )
    scheduler = DDPMScheduler.from_pretrained(path, subfolder="scheduler", local_files_only=True)
    tok = load_tokenizer(tokenizer, path)
    scale = float(getattr(vae.config, "scaling_factor", 1.0) or 1.0)
    shift = float(getattr(vae.config, "shift_factor", 0.0) or 0.0)
    return BaseModel(
        unet=unet.float(),
        text_encoder=text_encoder.float(),
        tokenizer=tok,
        vae=vae.float(),
        scheduler=scheduler,
        unet_config=dict(unet.config),
        latent_scale=scale,
        latent_offset=-shift,
        source=str(path),
    )


def _load_single_file(path: Path, tokenizer: str | os.PathLike | None, layout: str | None) -> BaseModel:
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        keys = list(fh.keys())
        unet_shapes = {
            k[len(UNET_PREFIX) :]: tuple(fh.get_slice(k).get_shape()) for k in keys if k.startswith(UNET_PREFIX)
        }
    if not unet_shapes:
        raise ValueError(f"base={path.name}: no UNet weights ({UNET_PREFIX}*); is this an SD1.x/SD2.x checkpoint?")
    if layout is None:
        layout = detect_layout(unet_shapes)
        if layout is None:
            raise ValueError(
                f"base={path.name}: its UNet matches none of the shipped layouts ({', '.join(shipped_layouts())}); "
                "convert it to a diffusers folder and pass that folder instead"
            )
    elif layout not in shipped_layouts():
        raise ValueError(f"layout={layout!r} is not one of {', '.join(shipped_layouts())}")
    info = layout_info(layout)
    folder = CONFIGS / layout
    log.info("%s: %s layout", path.name, layout)
    notes = []
    if info["text_encoder"] == "open_clip":
        notes.append("SD2.x layout read as 2.1-base (epsilon prediction); a 768-v model needs a diffusers folder")
        log.warning(notes[-1])

    from safetensors.torch import load_file

    sd = load_file(str(path))
    unet_config = read_json(folder / "unet" / "config.json")
    with torch.device("meta"):
        unet = UNet2DConditionModel(**_clean_config(unet_config))
    unet_sd = unet_from_ldm(
        {k[len(UNET_PREFIX) :]: v.float() for k, v in sd.items() if k.startswith(UNET_PREFIX)}, unet_config
    )
    unet.load_state_dict(unet_sd, strict=True, assign=True)
    if any(t.is_meta for t in [*unet.parameters(), *unet.buffers()]):
        raise ValueError(f"base={path.name}: the UNet was not fully loaded; the {layout} layout does not fit it")

    text_encoder = _single_file_text_encoder(sd, folder, info, path.name)
    vae, scale, offset = _single_file_vae(sd, folder, info, path.name)
    scheduler = DDPMScheduler.from_pretrained(folder, subfolder="scheduler")
    tok = load_tokenizer(tokenizer, path, pad_token=info.get("pad_token"))
    return BaseModel(
        unet=unet,
        text_encoder=text_encoder,
        tokenizer=tok,
        vae=vae,
        scheduler=scheduler,
        unet_config=dict(unet.config),
        latent_scale=scale,
        latent_offset=offset,
        source=str(path),
        layout=layout,
        notes=notes,
    )


def _single_file_text_encoder(sd: dict, folder: Path, info: dict, name: str):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(**_clean_config(read_json(folder / "text_encoder" / "config.json")))
    model = CLIPTextModel(config)  # not on meta: its non-persistent position ids must be real
    if info["text_encoder"] == "open_clip":
        from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint

        # TODO(evidence: no SD2.x weights exist offline on this machine to test with): verify this
        # path against a real 2.1-base file and ComfyUI's penultimate-layer encoding.
        weights = convert_open_clip_checkpoint(model, sd)
    else:
        prefix = "cond_stage_model.transformer."
        weights = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
    if not weights:
        raise ValueError(f"base={name}: no text encoder weights (cond_stage_model.*) in the file")
    weights = {k: v.float() for k, v in weights.items()}
    expected = set(model.state_dict())
    missing = sorted(expected - set(weights) - {"text_model.embeddings.position_ids"})
    if missing:
        raise ValueError(f"base={name}: the text encoder lacks {len(missing)} tensors (e.g. {missing[0]})")
    model.load_state_dict({k: v for k, v in weights.items() if k in expected}, strict=False)
    return model


def _single_file_vae(sd: dict, folder: Path, info: dict, name: str):
    from diffusers import AutoencoderKL, AutoencoderTiny

    scale = float(info["latent_scale"])
    if any(k.startswith("first_stage_model.taesd_encoder.") for k in sd):
        # A TAESD stored the way ComfyUI reads it: its latent is taesd(x) / vae_scale + vae_shift.
        vae = AutoencoderTiny()
        weights = {}
        for key, value in sd.items():
            if key.startswith("first_stage_model.taesd_encoder."):
                weights["encoder.layers." + key[len("first_stage_model.taesd_encoder.") :]] = value.float()
            elif key.startswith("first_stage_model.taesd_decoder."):
                index, _, rest = key[len("first_stage_model.taesd_decoder.") :].partition(".")
                weights[f"decoder.layers.{int(index) - 1}.{rest}"] = value.float()
        vae.load_state_dict(weights, strict=True)
        vae_scale = float(sd.get("first_stage_model.vae_scale", torch.tensor(1.0)))
        vae_shift = float(sd.get("first_stage_model.vae_shift", torch.tensor(0.0)))
        return vae, scale / vae_scale, vae_shift * vae_scale
    if not any(k.startswith("first_stage_model.encoder.") for k in sd):
        raise ValueError(f"base={name}: no VAE weights (first_stage_model.*) in the file")
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    config = _clean_config(read_json(folder / "vae" / "config.json"))
    vae = AutoencoderKL(**config)
    weights = convert_ldm_vae_checkpoint(
        {k: v.float() for k, v in sd.items() if k.startswith("first_stage_model.")}, config
    )
    vae.load_state_dict(weights, strict=True)
    return vae, scale, 0.0
