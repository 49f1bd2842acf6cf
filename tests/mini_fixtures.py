"""A mini designer built by the real recipe code in seconds: tiny data, two training steps.

Its weights are nearly random (two steps), but every stage runs, and the files have the real
layout and sizes, so loaders, samplers and the evaluation can be tested against them.
"""

from __future__ import annotations

import json
from pathlib import Path

TEST_RECIPE = {
    "name": "mini-test",
    "seed": 3,
    "text_seed": 4,
    "prediction": "v_prediction",  # as the real recipe; tests/test_mini_designer_comfy.py also builds an epsilon one
    "threads": 1,
    "data": {"count": 12, "seed": 1, "size": [128, 192], "test_fraction": 0.25, "workers": 1},
    "autoencoder": {"channels": [32, 64, 128], "latent_channels": 4, "decoder_blocks": [1, 1, 2]},
    "autoencoder_images": 8,
    "autoencoder_training": {"steps": 2, "batch_size": 2, "crop": [32, 32], "learning_rate": 0.001, "stats_images": 8},
    "train": {
        "height": 192, "width": 128, "batch_size": 2, "learning_rate": 0.0005, "max_steps": 2, "snr_gamma": 0.0,
        "ema_decay": 0.9, "latent_cache": 100, "text_cache": 0, "freeze_pose_embedding": True,
        "summary_whitening": 6,  # off in the shipped recipe; on here so the ComfyUI tests cover a folded layer
        "checkpoint_every": 1, "checkpoints_total_limit": 1,
    },
}  # fmt: skip


def write_test_recipe(folder: Path, **changes) -> Path:
    recipe = json.loads(json.dumps(TEST_RECIPE))
    for key, value in changes.items():
        recipe[key] = value
    path = Path(folder) / "recipe.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(recipe), encoding="utf-8")
    return path


def build_test_designer(root: Path, **changes):
    """(MiniDesignerFiles, manifest) of a mini designer from :data:`TEST_RECIPE` with ``changes``, under ``root``."""
    from hierafash_core.mini.build import build_mini_designer
    from hierafash_core.mini.files import MiniDesignerFiles

    manifest = build_mini_designer(root / "out", write_test_recipe(root, **changes), report=lambda line: None)
    return MiniDesignerFiles.in_folder(root / "out"), manifest
