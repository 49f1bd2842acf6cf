"""Where the mini designer's configs, built files and build work live."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
REPO = PACKAGE.parent
CONFIG_DIR = PACKAGE / "configs" / "mini-designer"
# Built files go to the pack's git-ignored cache unless HIERAFASH_MODELS says otherwise.
MODELS_ENV = "HIERAFASH_MODELS"
CHECKPOINT_NAME = "hierafash-mini-designer.safetensors"
CONTROLNET_NAME = "hierafash-mini-designer-pose.safetensors"
MANIFEST_NAME = "manifest.json"


def models_root() -> Path:
    """``$HIERAFASH_MODELS`` or ``<pack>/.cache/models``."""
    env = os.environ.get(MODELS_ENV)
    return Path(env) if env else REPO / ".cache" / "models"


def default_folder() -> Path:
    """The folder of the built mini designer: ``<models root>/mini-designer``."""
    return models_root() / "mini-designer"
