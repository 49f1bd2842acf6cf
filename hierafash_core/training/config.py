"""The training configuration: one dataclass, checked up front, saved as JSON beside every checkpoint.

Defaults follow the paper's recipe (DESIGN.md section 2): a pose ControlNet trained with staged
captions over a frozen Stable Diffusion base, AdamW at learning rate 1e-5, batch 4, plain epsilon
MSE, images 512 wide by 704 high; captions are dropped now and then so the model also learns the
unconditional prediction that classifier-free guidance needs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..schedule import PromptSchedule

MODES = ("controlnet", "lora", "unet", "unet+controlnet")
MIXED_PRECISION = ("no", "fp16", "bf16")
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine")
CONFIG_FILE = "config.json"

# One line per setting, for `hierafash train --help` (docs/training.md has the long form).
HELP = {
    "dataset": "dataset folder (docs/dataset-format.md)",
    "base": "base model: a local .safetensors checkpoint or a diffusers folder",
    "output_dir": "where checkpoints, exports, config.json and loss.jsonl go",
    "mode": "controlnet (the paper), lora (LoRA on the base UNet), unet (the whole UNet) or unet+controlnet (both)",
    "tokenizer": "CLIP tokenizer folder (vocab.json, merges.txt); found by itself for diffusers folders and ComfyUI",
    "layout": "force a shipped single-file layout: sd15, sd21-base, tiny-sd15",
    "split": "records used: train or test",
    "allow_free_text": "accept field values outside the vocabulary",
    "height": "training height in pixels, a multiple of 8",
    "width": "training width in pixels, a multiple of 8",
    "schedule": "prompt schedule: paper, two-stage:500 or windows '999-900:5, 899-0:10'",
    "caption_dropout": "share of captions replaced by the empty one (for classifier-free guidance)",
    "controlnet_init": "start from this diffusers ControlNet folder instead of the base UNet",
    "freeze_pose_embedding": "keep the ControlNet's pose-image convolutions (all but the last) at seeded values",
    "lora_rank": "LoRA rank",
    "lora_alpha": "LoRA alpha (default: the rank)",
    "lora_targets": "module names that get LoRA layers",
    "unet_config": "modes unet, unet+controlnet: a diffusers UNet config JSON to train from scratch",
    "learning_rate": "AdamW learning rate",
    "batch_size": "examples per process and micro-step",
    "gradient_accumulation_steps": "micro-steps per optimizer step",
    "max_steps": "optimizer steps to train to",
    "lr_scheduler": "constant, constant_with_warmup, linear or cosine",
    "lr_warmup_steps": "warm-up steps of the learning rate",
    "mixed_precision": "no, fp16 (GPU) or bf16",
    "gradient_checkpointing": "recompute activations in the backward pass (less memory, slower)",
    "snr_gamma": "min-SNR loss weighting with this gamma (0: plain MSE, 5 is common)",
    "focus_share": "share of examples whose timestep is drawn from focus_t_min..T-1 instead of 0..T-1 (0: uniform)",
    "focus_t_min": "lowest timestep of the focus range (e.g. 500: the noise levels where layout and attributes form)",
    "region_weights": "loss weight per parse label, e.g. sleeves=4 skin=3 (others weigh 1; needs parse maps)",
    "summary_whitening": "records whose captions estimate a whitening of the caption summary while training (0: off)",
    "ema_decay": "keep an exponential moving average of the weights and export it (0: off, e.g. 0.999)",
    "latent_cache": "examples whose latents are kept after the first encode (0: off; deterministic autoencoders)",
    "output_name": "file name prefix of the exports",
    "checkpoint_every": "optimizer steps between checkpoints (0: only at the end)",
    "checkpoints_total_limit": "keep only the newest N checkpoints",
    "export_dtype": "precision of the ComfyUI files: fp16, bf16 or fp32",
    "resume": "latest, or a checkpoint folder",
    "seed": "seed of data order, noise, timesteps and caption dropout",
    "cpu": "train on the CPU even where a GPU exists",
    "num_workers": "data loader worker processes",
    "text_cache": "text encoder states kept per caption (0: off)",
    "log_every": "steps between loss.jsonl lines",
    "progress": "show a progress bar",
}


def parse_region_weights(items: object) -> dict[str, float]:
    """``region_weights`` items (``["sleeves=4", "skin=3"]``) as {label: weight}.

    Raises:
        ValueError: not a list, or an item that is not ``label=weight`` with a weight in 0.001-1000
            (the bound keeps float32 pooling from overflowing to a NaN loss).
    """
    if isinstance(items, str) or not isinstance(items, (list, tuple)):
        raise ValueError(f"region_weights={items!r}: a list of label=weight items, e.g. sleeves=4")
    out: dict[str, float] = {}
    for item in items:
        label, sep, value = str(item).partition("=")
        label = label.strip()
        try:
            weight = float(value)
        except ValueError:
            weight = float("nan")
        if not sep or not label or not math.isfinite(weight) or not 1e-3 <= weight <= 1e3:
            raise ValueError(
                f"region_weights item {item!r}: use label=weight with a weight from 0.001 to 1000, e.g. sleeves=4"
            )
        if label in out:
            raise ValueError(f"region_weights names {label!r} twice; give each label one weight")
        out[label] = weight
    return out


@dataclass
class TrainConfig:
    """Everything a training run needs; :func:`hierafash_core.training.train` takes one.

    Data and model:
        dataset: dataset folder (docs/dataset-format.md). split: the records used.
        base: the base model, a local single-file ``.safetensors`` checkpoint (SD1.x/SD2.x layouts
            shipped in ``hierafash_core/configs``) or a diffusers folder. Never fetched from a hub.
        tokenizer: folder with the CLIP tokenizer (vocab.json, merges.txt); found by itself for a
            diffusers folder (``tokenizer/``) or a ComfyUI install (``comfy/sd1_tokenizer``).
        layout: force a shipped single-file layout (``sd15``, ``sd21-base``, ``tiny-sd15``).
        mode: ``controlnet`` (the paper: a pose ControlNet over a frozen base), ``lora`` (LoRA on
            the base UNet, no control), ``unet`` (the whole UNet trains: fine-tune, or from
            scratch with ``unet_config``) or ``unet+controlnet`` (the whole UNet and a pose
            ControlNet made from it train together: a small model from scratch with pose control).
        height / width: training size in pixels (multiples of 8; images are centre-cropped to the
            aspect and resized).
        schedule: the prompt schedule (``paper``, ``two-stage:500`` or windows such as
            ``"999-900:5, 899-0:10"``); the caption of an example is the schedule's caption at its
            sampled timestep.
        caption_dropout: probability that an example's caption is replaced by the empty one.
        freeze_pose_embedding: the ControlNet's pose-image embedding (eight convolutions at up to
            full image size, most of a small ControlNet's work) keeps its first seven layers at
            seeded He-initialised values and trains only the last; a third less work per step for
            a small model trained from scratch. Off by default (the paper trains them all).

    Optimisation (per process; the effective batch is batch_size x processes x accumulation):
        learning_rate, batch_size, gradient_accumulation_steps, max_steps (optimizer steps),
        lr_scheduler, lr_warmup_steps, adam_beta1/2, adam_epsilon, weight_decay, max_grad_norm.
        mixed_precision: ``no``, ``fp16`` (GPUs) or ``bf16``; frozen parts are stored in that type.
        gradient_checkpointing: recompute activations in the backward pass (less memory, slower).
        snr_gamma: min-SNR-gamma loss weights (Hang et al. 2023): each example's MSE times
            min(SNR_t, gamma) / SNR_t (epsilon) or / (SNR_t + 1) (v-prediction); 0 is plain MSE.
        focus_share / focus_t_min: that share of examples draws its timestep from
            ``focus_t_min..T-1``, the rest from ``0..T-1`` (more of the steps where layout and
            attributes form; 0 keeps the uniform draw).
        region_weights: ``label=weight`` items, e.g. ``["sleeves=4", "skin=3"]``: each pixel's
            squared error is weighted by its parse label's weight (1 for labels not named), the
            map averaged down to the latent grid and scaled to a mean of 1 per example, so the
            loss keeps its size and only its spread over the image changes. Small regions that
            carry the attributes (a sleeve is a few latent pixels) then count for more. Needs a
            parse map per record and ``parse_labels`` in ``dataset.json``; empty is off.
        summary_whitening: for a UNet from scratch that takes a caption summary: the captions of
            this many records estimate a whitening of the summary, which the class embedding reads
            while training and which is folded into its weights on export
            (:mod:`.summary_whitening`); 0 is off.
        ema_decay: an exponential moving average of the trained weights (decay warmed up as
            min(decay, (1 + k) / (10 + k)) at update k) is kept, checkpointed and exported.
        latent_cache: keep the latents of up to this many examples after their first encode;
            only for autoencoders that encode deterministically (no sampling).

    Run:
        output_dir: checkpoints, exports, ``config.json`` and ``loss.jsonl`` go here.
        checkpoint_every: optimizer steps between checkpoints (0: only at the end).
        checkpoints_total_limit: keep only the newest N checkpoints (``None``: keep all).
        resume: ``latest`` or a checkpoint folder; the run continues where that one stopped.
        seed: seeds data order, noise, timesteps and caption dropout (same on resume).
    """

    dataset: str = ""
    base: str = ""
    output_dir: str = ""
    mode: str = "controlnet"
    tokenizer: str | None = None
    layout: str | None = None
    split: str = "train"
    allow_free_text: bool = False
    height: int = 704
    width: int = 512
    schedule: str = "paper"
    caption_dropout: float = 0.05
    # models
    controlnet_init: str | None = None
    freeze_pose_embedding: bool = False
    lora_rank: int = 16
    lora_alpha: float | None = None
    lora_targets: list[str] = field(default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0"])
    unet_config: str | None = None
    # optimisation
    learning_rate: float = 1e-5
    batch_size: int = 4
    gradient_accumulation_steps: int = 1
    max_steps: int = 10_000
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    mixed_precision: str = "no"
    gradient_checkpointing: bool = False
    snr_gamma: float = 0.0
    focus_share: float = 0.0
    focus_t_min: int = 0
    region_weights: list[str] = field(default_factory=list)
    summary_whitening: int = 0
    ema_decay: float = 0.0
    latent_cache: int = 0
    # run
    output_name: str = "hierafash"
    checkpoint_every: int = 500
    checkpoints_total_limit: int | None = None
    export_dtype: str = "fp16"
    resume: str | None = None
    seed: int = 0
    cpu: bool = False
    num_workers: int = 0
    text_cache: int = 1024
    log_every: int = 1
    progress: bool = True

    # -- checks --------------------------------------------------------------------------------
    def validate(self) -> TrainConfig:
        """Check every value; return ``self``.

        Raises:
            ValueError: naming the setting, the value and the fix.
        """
        for name in ("dataset", "base", "output_dir"):
            if not str(getattr(self, name) or "").strip():
                raise ValueError(
                    f"{name} is not set; give --{name.replace('_', '-')} PATH (or '{name}' in the config)"
                )
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r} is not one of {', '.join(MODES)}")
        if self.split not in ("train", "test"):
            raise ValueError(f"split={self.split!r}: use train or test")
        for name in ("height", "width"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 8 or value % 8:
                raise ValueError(f"{name}={value!r}: must be a multiple of 8 of at least 8 pixels (e.g. 512, 704)")
        PromptSchedule.parse(self.schedule)  # raises with its own message
        if not 0.0 <= self.caption_dropout < 1.0:
            raise ValueError(f"caption_dropout={self.caption_dropout}: use 0 (never) up to below 1 (e.g. 0.05)")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate={self.learning_rate}: must be positive (the paper uses 1e-5)")
        for name in ("batch_size", "gradient_accumulation_steps", "max_steps", "lora_rank", "log_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r}: must be a whole number of at least 1")
        for name in ("checkpoint_every", "lr_warmup_steps", "num_workers", "text_cache", "latent_cache"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}={value!r}: must be a whole number of at least 0")
        if self.checkpoints_total_limit is not None and self.checkpoints_total_limit < 1:
            raise ValueError(
                f"checkpoints_total_limit={self.checkpoints_total_limit}: at least 1, or unset to keep all"
            )
        if self.lr_scheduler not in LR_SCHEDULERS:
            raise ValueError(f"lr_scheduler={self.lr_scheduler!r} is not one of {', '.join(LR_SCHEDULERS)}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"mixed_precision={self.mixed_precision!r} is not one of {', '.join(MIXED_PRECISION)}")
        if self.export_dtype not in ("fp16", "bf16", "fp32"):
            raise ValueError(f"export_dtype={self.export_dtype!r}: use fp16, bf16 or fp32")
        if not 0 <= self.adam_beta1 < 1 or not 0 <= self.adam_beta2 < 1:
            raise ValueError(f"adam betas ({self.adam_beta1}, {self.adam_beta2}) must lie in [0, 1)")
        if self.max_grad_norm < 0:
            raise ValueError(f"max_grad_norm={self.max_grad_norm}: use 0 to turn clipping off, or a positive norm")
        if self.lora_alpha is not None and self.lora_alpha <= 0:
            raise ValueError(f"lora_alpha={self.lora_alpha}: must be positive, or unset to use the rank")
        if self.mode == "lora" and not self.lora_targets:
            raise ValueError("lora_targets is empty; name the attention layers to adapt, e.g. to_q to_k to_v to_out.0")
        if self.unet_config is not None and self.mode not in ("unet", "unet+controlnet"):
            raise ValueError(
                f"unet_config is set but mode={self.mode!r}; a UNet from scratch needs mode 'unet' "
                "or 'unet+controlnet'"
            )
        if self.snr_gamma < 0:
            raise ValueError(f"snr_gamma={self.snr_gamma}: use 0 (plain MSE) or a positive gamma such as 5")
        if not 0.0 <= self.focus_share <= 1.0:
            raise ValueError(
                f"focus_share={self.focus_share}: use 0 (uniform timesteps) up to 1 (only the focus range)"
            )
        if (
            isinstance(self.focus_t_min, bool)
            or not isinstance(self.focus_t_min, int)
            or not 0 <= self.focus_t_min <= 998
        ):
            raise ValueError(f"focus_t_min={self.focus_t_min!r}: a timestep from 0 to 998 (e.g. 500)")
        if self.focus_t_min and not self.focus_share:
            raise ValueError(
                f"focus_t_min={self.focus_t_min} has no effect with focus_share=0; set focus_share (e.g. 0.5) "
                "or leave focus_t_min at 0"
            )
        self.region_weight_map  # noqa: B018 (parses, raising on a bad item)
        if (
            isinstance(self.summary_whitening, bool)
            or not isinstance(self.summary_whitening, int)
            or self.summary_whitening < 0
        ):
            raise ValueError(
                f"summary_whitening={self.summary_whitening!r}: a number of records (e.g. 2000), or 0 for off"
            )
        if self.summary_whitening and self.unet_config is None:
            raise ValueError(
                "summary_whitening is set but no unet_config: it is for a UNet trained from scratch with a "
                "caption summary; set it to 0 for a pretrained base"
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay={self.ema_decay}: use 0 (off) or a decay below 1 such as 0.999")
        if self.freeze_pose_embedding and self.mode not in ("controlnet", "unet+controlnet"):
            raise ValueError(f"freeze_pose_embedding is set but mode={self.mode!r} trains no ControlNet")
        if self.controlnet_init is not None and self.mode != "controlnet":
            raise ValueError(f"controlnet_init is set but mode={self.mode!r}; use mode 'controlnet'")
        if not self.output_name or any(c in self.output_name for c in "/\\:"):
            raise ValueError(f"output_name={self.output_name!r}: a plain file name prefix such as 'hierafash'")
        return self

    @property
    def region_weight_map(self) -> dict[str, float]:
        return parse_region_weights(self.region_weights)

    @property
    def prompt_schedule(self) -> PromptSchedule:
        return PromptSchedule.parse(self.schedule)

    # -- files ---------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``config.json`` into ``folder``."""
        path = Path(folder) / CONFIG_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Build from a mapping; unknown keys are refused with the closest known names."""
        import difflib

        names = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in names:
                close = difflib.get_close_matches(key, sorted(names), n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise ValueError(f"unknown training setting {key!r}{hint}; see docs/training.md for the settings")
        return cls(**data)

    @classmethod
    def load(cls, path: str | os.PathLike) -> TrainConfig:
        """Read a JSON (or YAML) config file; a folder means its ``config.json``."""
        path = Path(path)
        if path.is_dir():
            path = path / CONFIG_FILE
        if not path.is_file():
            raise FileNotFoundError(f"training config {path} does not exist")
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a training config is an object of settings")
        return cls.from_dict(data)
