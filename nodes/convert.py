"""The one place where ComfyUI's layouts meet the core's, and where inputs from outside are checked.

ComfyUI: IMAGE is (B, H, W, C) float in [0, 1]; MASK is (B, H, W), sometimes (H, W); LATENT is a
dict whose ``samples`` is (B, C, h, w); CONDITIONING is a list of ``[embedding, options]``.
Core:    images are (B, C, H, W) float in [0, 1]; masks are (B, 1, H, W) float in [0, 1].

ComfyUI 0.3.75 checks a widget's number range but lets NaN through (``nan < min`` is false), and it
does not check V3 menu (COMBO) values against their options at all; tensors from other nodes are
not checked by anyone. :func:`check_inputs` and the converters below refuse what would otherwise
become a NaN latent or a silently substituted setting.
"""

from __future__ import annotations

import difflib
import math
from typing import Any

import torch

# A value this far outside [0, 1] is a wrong scale (0..255 or -1..1), not rounding in another node.
RANGE_SLACK = 0.1
# ComfyUI's prepare_noise draws noise for every index up to the largest batch_index; its largest
# batch (EmptyLatentImage) is 4096, so an index beyond that is not a real batch position.
MAX_BATCH_INDEX = 4096


def _choices(options: list, value: Any) -> str:
    close = (
        difflib.get_close_matches(value, [o for o in options if isinstance(o, str)], n=3)
        if isinstance(value, str)
        else []
    )
    if close:
        return f"closest: {', '.join(repr(o) for o in close)}; {len(options)} choices in all"
    shown = ", ".join(repr(o) for o in options[:12])
    return shown + (f", ... ({len(options)} in all)" if len(options) > 12 else "")


# What an object arriving on a link of each type must look like. ComfyUI does not check values of
# link types: an API workflow with ``"model": 5`` reaches the node as the number 5.
_LINKED = {
    "MODEL": lambda v: hasattr(v, "get_model_object"),
    "CLIP": lambda v: hasattr(v, "tokenize"),
    "VAE": lambda v: hasattr(v, "decode"),
    "CONTROL_NET": lambda v: hasattr(v, "set_cond_hint"),
    "IMAGE": lambda v: isinstance(v, torch.Tensor),
    "MASK": lambda v: isinstance(v, torch.Tensor),
    "LATENT": lambda v: isinstance(v, dict),
    "POSE_KEYPOINT": lambda v: isinstance(v, (list, tuple, dict, str)),  # a JSON string is read as JSON
    "CONDITIONING": lambda v: isinstance(v, (list, tuple)),
    "HIERAFASH_DESIGN": lambda v: hasattr(v, "prompt") and hasattr(v, "schedule"),
}
_WIDGETS = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")


def check_inputs(node: type, values: dict[str, Any]) -> None:
    """Refuse input values that ComfyUI's validation lets through to ``execute``.

    Menu values must be one of the menu's options; numbers must be finite and inside the widget's
    min/max (a NaN passes ComfyUI's range check); a required widget may not be None; a linked input
    must hold its type's kind of object, not a number or text typed into an API workflow. Absent
    optional inputs and None on links are left to the node. Call it first in ``execute``, with the inputs.

    Raises:
        ValueError: naming the input, the value and what to give instead.
    """
    spec = node.INPUT_TYPES()
    for section in ("required", "optional"):
        for name, info in spec.get(section, {}).items():
            value = values.get(name)
            kind, opts = info[0], (info[1] if len(info) > 1 else {})
            if value is None:
                if section == "required" and (isinstance(kind, list) or kind in _WIDGETS):
                    raise ValueError(f"{name} is missing (None); set it in the node or the workflow")
                continue
            options = kind if isinstance(kind, list) else opts.get("options") if kind == "COMBO" else None
            if options is not None:
                if not isinstance(value, (str, int)) or isinstance(value, bool) or value not in options:
                    raise ValueError(
                        f"{name}={value!r} is not one of its choices ({_choices(options, value)}); pick one"
                    )
            elif kind in ("INT", "FLOAT"):
                lo, hi = opts.get("min"), opts.get("max")
                span = f"between {lo} and {hi}" if lo is not None and hi is not None else "finite"
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(f"{name}={value!r} is not a number; give a number {span}")
                if not math.isfinite(value):
                    raise ValueError(f"{name}={value}: not a finite number; give a number {span}")
                if (lo is not None and value < lo) or (hi is not None and value > hi):
                    raise ValueError(f"{name}={value} is out of range; give a number {span}")
            elif kind not in _WIDGETS:
                looks_right = _LINKED.get(kind, lambda v: not isinstance(v, (str, int, float, bool)))
                if not looks_right(value):
                    raise ValueError(
                        f"{name}: expected a {kind} from another node's output, got {type(value).__name__} "
                        f"{str(value)[:60]!r}; connect a {kind} output to it"
                    )


def _check_values(t: torch.Tensor, name: str, kind: str, lo: float, hi: float) -> torch.Tensor:
    """Finite values within [lo, hi] (a little slack is clamped); float32 out."""
    if t.is_complex() or not (t.is_floating_point() or t.dtype == torch.bool or t.dtype == torch.uint8):
        raise ValueError(f"{name}: a {kind} of dtype {t.dtype}; a {kind} holds real float values in [0, 1]")
    t = t.float()
    if not torch.isfinite(t).all():
        raise ValueError(f"{name}: the {kind} holds NaN or infinite values; check the node that made it")
    low, high = float(t.min()), float(t.max())
    if low < lo - RANGE_SLACK or high > hi + RANGE_SLACK:
        raise ValueError(
            f"{name}: {kind} values run from {low:.4g} to {high:.4g}; a {kind} holds values in [0, 1] "
            f"(8-bit data must be divided by 255)"
        )
    return t.clamp(lo, hi)


def image_to_core(image: torch.Tensor, name: str = "image") -> torch.Tensor:
    """IMAGE (B, H, W, C) -> (B, C, H, W) float32 in [0, 1], checked."""
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"{name}: expected an IMAGE tensor, got {type(image).__name__}; connect an image output")
    if image.ndim == 3:  # a single (H, W, C) image that a custom node forgot to batch
        image = image.unsqueeze(0)
    if image.ndim != 4 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"{name}: expected IMAGE of shape (B, H, W, C) with C in 1, 3, 4, got {tuple(image.shape)}; "
            "connect an IMAGE output (LoadImage, VAEDecode)"
        )
    if image.shape[0] == 0 or image.shape[1] == 0 or image.shape[2] == 0:
        raise ValueError(f"{name}: the image is empty, shape {tuple(image.shape)}")
    return _check_values(image, name, "IMAGE", 0.0, 1.0).permute(0, 3, 1, 2)  # BHWC -> BCHW


def image_to_comfy(image: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> IMAGE (B, H, W, C) float32 in [0, 1]."""
    return image.clamp(0, 1).permute(0, 2, 3, 1).contiguous().float()  # BCHW -> BHWC


def pose_hint(image: torch.Tensor, name: str = "pose_image") -> torch.Tensor:
    """A pose image as a ControlNet hint: (B, 3, H, W); gray is repeated, RGBA composited over black."""
    hint = image_to_core(image, name)
    if hint.shape[1] == 1:
        return hint.expand(-1, 3, -1, -1)
    if hint.shape[1] == 4:  # skeletons are drawn on black
        return hint[:, :3] * hint[:, 3:]
    return hint


def mask_to_core(mask: torch.Tensor, name: str = "mask") -> torch.Tensor:
    """MASK (B, H, W) or (H, W) -> (B, 1, H, W) float32 in [0, 1], checked."""
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"{name}: expected a MASK tensor, got {type(mask).__name__}; connect a mask output")
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    if mask.ndim == 4 and mask.shape[1] == 1:
        mask = mask[:, 0]
    if mask.ndim != 3:
        raise ValueError(f"{name}: expected MASK of shape (B, H, W) or (H, W), got {tuple(mask.shape)}")
    if mask.numel() == 0:
        raise ValueError(f"{name}: the mask is empty, shape {tuple(mask.shape)}")
    return _check_values(mask, name, "MASK", 0.0, 1.0).unsqueeze(1)  # BHW -> B1HW


def mask_to_comfy(mask: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) -> MASK (B, H, W) float32 in [0, 1]."""
    return mask[:, 0].clamp(0, 1).contiguous().float()


def model_expects(model: Any) -> tuple[int | None, int | None]:
    """(latent channels, text-embedding width) a ComfyUI MODEL takes; None where it does not say."""
    base = getattr(model, "model", None)
    latent_format = getattr(base, "latent_format", None)
    unet_config = getattr(getattr(base, "model_config", None), "unet_config", None) or {}
    return getattr(latent_format, "latent_channels", None), unet_config.get("context_dim")


def check_latent(latent: Any, name: str = "latent", channels: int | None = None) -> torch.Tensor:
    """A LATENT's ``samples`` (B, C, h, w), checked with its ``noise_mask`` and ``batch_index``.

    With ``channels`` (the model's, see :func:`model_expects`), a latent with other channels is refused
    unless it is all zeros (an empty latent, which ComfyUI widens to the model's channels).
    """
    if not isinstance(latent, dict) or not isinstance(latent.get("samples"), torch.Tensor):
        raise ValueError(f"{name}: expected a LATENT (a dict with 'samples'); connect a KSampler or VAEEncode output")
    samples = latent["samples"]
    if samples.ndim != 4 or 0 in samples.shape:
        raise ValueError(
            f"{name}: expected latent samples of shape (B, C, h, w), got {tuple(samples.shape)}; "
            "connect an image latent (SD1.x, SD2.x, SDXL)"
        )
    if not samples.is_floating_point():
        raise ValueError(f"{name}: latent samples of dtype {samples.dtype}; a LATENT holds float values")
    if not torch.isfinite(samples).all():
        raise ValueError(f"{name}: the latent holds NaN or infinite values; check the node that made it")
    if channels and samples.shape[1] != channels and torch.count_nonzero(samples):
        raise ValueError(
            f"{name}: the latent has {samples.shape[1]} channels but the model works on {channels}; "
            "make it with this model's VAE (VAEEncode) or sampler"
        )
    noise_mask = latent.get("noise_mask")
    if noise_mask is not None:
        mask_to_core(noise_mask, f"{name}.noise_mask")
    index = latent.get("batch_index")
    if index is not None:
        ok = isinstance(index, (list, tuple)) and len(index) == samples.shape[0]
        ok = ok and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < MAX_BATCH_INDEX for i in index)
        if not ok:
            raise ValueError(
                f"{name}: batch_index={str(index)[:80]} must list one position in 0..{MAX_BATCH_INDEX - 1} per latent "
                f"({samples.shape[0]}); connect the latent straight from its batch node"
            )
    return samples


def check_conditioning(conditioning: Any, name: str, width: int | None = None) -> list:
    """CONDITIONING as a list of ``[embedding (B, T, D), options dict]`` with finite embeddings.

    With ``width`` (the model's text-embedding width, see :func:`model_expects`), D must equal it.
    """
    if not isinstance(conditioning, (list, tuple)):
        raise ValueError(f"{name}: expected CONDITIONING (a list), got {type(conditioning).__name__}")
    for i, entry in enumerate(conditioning):
        if (
            not isinstance(entry, (list, tuple))
            or len(entry) != 2
            or not isinstance(entry[0], torch.Tensor)
            or not isinstance(entry[1], dict)
        ):
            raise ValueError(
                f"{name}[{i}]: expected [embedding tensor, options dict], got {str(entry)[:80]!r}; "
                "connect a text encoder's CONDITIONING"
            )
        embedding = entry[0]
        if embedding.ndim != 3 or 0 in embedding.shape or not embedding.is_floating_point():
            raise ValueError(f"{name}[{i}]: expected a float embedding (B, T, D), got {tuple(embedding.shape)}")
        if not torch.isfinite(embedding).all():
            raise ValueError(f"{name}[{i}]: the embedding holds NaN or infinite values; check its text encoder")
        if width and embedding.shape[-1] != width:
            raise ValueError(
                f"{name}[{i}]: embeddings {embedding.shape[-1]} wide but the model takes {width}; "
                "encode the text with this checkpoint's CLIP"
            )
        for key in ("start_percent", "end_percent", "strength"):
            v = entry[1].get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                raise ValueError(f"{name}[{i}]: {key}={v!r} must be a finite number")
    return list(conditioning)


def host_progress(total: int):
    """``callback(done, total)`` for a core loop over images: ComfyUI's progress bar, and Cancel stops
    between images."""
    import comfy.model_management
    import comfy.utils

    bar = comfy.utils.ProgressBar(total)

    def callback(done: int, total_: int) -> None:
        bar.update_absolute(done, total_)
        comfy.model_management.throw_exception_if_processing_interrupted()

    return callback
