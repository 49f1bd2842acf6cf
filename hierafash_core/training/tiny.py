"""A tiny random diffusers base model and a toy dataset, for tests and the throughput benchmark.

Both are built from a seed in seconds on a CPU, offline: the model has a two-level UNet (32/64
channels), a two-layer CLIP text encoder over a word vocabulary of the caption taxonomy (its own
tokenizer files, so nothing comes from a hub or from ComfyUI), a small KL autoencoder (8x down)
and the Stable Diffusion noise schedule. The toy dataset draws a stick figure in a coloured
garment shape per image, with its OpenPose JSON and random caption fields. Neither says anything
about image quality; they exercise every code path of training.
"""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..dataset.records import Record, write_pose_json, write_records
from ..taxonomy import CATEGORIES, FIELDS

TINY_UNET = {
    "sample_size": 8,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "cross_attention_dim": 32,
    "attention_head_dim": 8,
    "norm_num_groups": 8,
}


def caption_words() -> list[str]:
    """Every lower-case word of the caption vocabulary (values, nouns, categories)."""
    text = " ".join([*(v for f in FIELDS for v in f.values), *CATEGORIES, "Sleeve Hem Collar"])
    return sorted(set(re.findall(r"[a-z]+", text.lower())))


def write_tiny_tokenizer(folder: str | os.PathLike) -> Path:
    """A CLIP BPE tokenizer whose merges spell each caption word as one token (unknown words as letters)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab: dict[str, int] = {}
    for code in range(33, 127):  # printable ASCII maps to itself in CLIP's byte alphabet
        for token in (chr(code), chr(code) + "</w>"):
            vocab.setdefault(token, len(vocab))
    merges: list[str] = []
    for word in caption_words():
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        left = pieces[0]
        for right in pieces[1:]:
            merged = left + right
            if merged not in vocab:
                merges.append(f"{left} {right}")
                vocab[merged] = len(vocab)
            left = merged
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "pad_token": "<|endoftext|>"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


@torch.no_grad()
def build_tiny_base(
    folder: str | os.PathLike, *, seed: int = 0, text_width: int = 32, unet: dict | None = None
) -> Path:
    """Write a tiny random diffusers model folder (unet, text_encoder, tokenizer, vae, scheduler).

    Args:
        text_width: the text encoder's width (the UNet's cross-attention width must match it).
        unet: a UNet config to use instead of :data:`TINY_UNET`.
    """
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    tok_dir = write_tiny_tokenizer(folder / "tokenizer")
    vocab_size = len(CLIPTokenizer.from_pretrained(str(tok_dir), local_files_only=True))
    torch.manual_seed(seed)
    UNet2DConditionModel(**(unet or TINY_UNET)).save_pretrained(folder / "unet")
    torch.manual_seed(seed + 1)
    text = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=text_width,
        intermediate_size=2 * text_width,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
    )
    CLIPTextModel(text).save_pretrained(folder / "text_encoder")
    torch.manual_seed(seed + 2)
    AutoencoderKL(
        block_out_channels=[8, 16, 16, 16],
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
        scaling_factor=0.18215,
    ).save_pretrained(folder / "vae")
    DDPMScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"
    ).save_pretrained(folder / "scheduler")
    index = {"_class_name": "StableDiffusionControlNetPipeline", "hierafash": "tiny random test model"}
    (folder / "model_index.json").write_text(json.dumps(index), encoding="utf-8")
    return folder


# A standing figure on a 64 x 96 canvas (x, y per OpenPose-18 point), scaled to the image.
_FIGURE = np.array(
    [[32, 12], [32, 22], [24, 23], [21, 36], [20, 48], [40, 23], [43, 36], [44, 48], [27, 50], [26, 68],
     [26, 88], [37, 50], [38, 68], [38, 88], [30, 10], [34, 10], [28, 11], [36, 11]], dtype=np.float64,
)  # fmt: skip


TOY_PARSE_LABELS = ("background", "garment", "face")


def write_toy_dataset(
    folder: str | os.PathLike,
    n: int = 8,
    *,
    width: int = 64,
    height: int = 96,
    seed: int = 0,
    test: int = 0,
    parse: bool = False,
) -> Path:
    """A dataset folder of ``n`` toy records (the last ``test`` of them in the test split).

    With ``parse``, each record also gets a parse map labelled as :data:`TOY_PARSE_LABELS`.
    """
    rng = random.Random(seed)  # noqa: S311 (toy data, not security)
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "poses").mkdir(parents=True, exist_ok=True)
    if parse:
        (folder / "parse").mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        rid = f"{i:06d}"
        kp = np.concatenate([_FIGURE * [width / 64, height / 96], np.ones((18, 1))], axis=1)
        kp[:, :2] += [rng.uniform(-4, 4) * width / 64, rng.uniform(-3, 3) * height / 96]
        bg = tuple(rng.randrange(150, 256) for _ in range(3))
        cloth = tuple(rng.randrange(0, 150) for _ in range(3))
        im = Image.new("RGB", (width, height), bg)
        draw = ImageDraw.Draw(im)
        top, hem = kp[1, 1], kp[rng.choice([9, 10]), 1]
        garment = [(kp[2, 0], top), (kp[5, 0], top), (kp[11, 0] + 6, hem), (kp[8, 0] - 6, hem)]
        head = [kp[0, 0] - 5, kp[0, 1] - 6, kp[0, 0] + 5, kp[0, 1] + 6]
        draw.polygon(garment, fill=cloth)
        draw.ellipse(head, fill=(230, 190, 160))
        im.save(folder / "images" / f"{rid}.png")
        if parse:
            labels = Image.new("L", (width, height), 0)
            ImageDraw.Draw(labels).polygon(garment, fill=1)
            ImageDraw.Draw(labels).ellipse(head, fill=2)
            labels.save(folder / "parse" / f"{rid}.png")
        write_pose_json(folder / "poses" / f"{rid}.json", kp, width, height)
        fields = {f.key: rng.choice(f.values) for f in FIELDS}
        split = "test" if i >= n - test else "train"
        records.append(
            Record(
                id=rid,
                image=f"images/{rid}.png",
                pose=f"poses/{rid}.json",
                fields=fields,
                split=split,
                parse=f"parse/{rid}.png" if parse else None,
            )
        )
    meta = {"name": "toy", "generator": "hierafash_core.training.tiny", "seed": seed}
    if parse:
        meta["parse_labels"] = {str(i): name for i, name in enumerate(TOY_PARSE_LABELS)}
    write_records(folder, records, meta)
    return folder
