"""The mini designer's recipe: every setting of a build, in one JSON file with a content hash.

``configs/mini-designer/recipe.json`` is the 2-core CPU recipe (about an hour); ``recipe-gpu.json``
the same recipe scaled for one GPU. A build records the recipe's hash in its manifest, and a
finished stage is reused only by a build of the same recipe.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .autoencoder import AutoencoderConfig
from .autoencoder_train import AutoencoderTrainConfig
from .paths import CONFIG_DIR

RECIPES = {"cpu": "recipe.json", "gpu": "recipe-gpu.json"}
PREDICTIONS = ("epsilon", "v_prediction")
# Raised when a change of the code (not of the recipe) changes what a stage produces, e.g. the pose
# drawing the ControlNet is trained on; older finished stages are then rebuilt.
CODE_VERSION = 2


MAX_THREADS = 256  # far above any CPU this recipe is for; a typo of 1e12 should not reach torch


def _count(path: Path, key: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_THREADS:
        raise ValueError(
            f"recipe {path}: {key}={value!r}: use a whole number of CPU threads up to {MAX_THREADS} (at most the "
            "machine's cores), or 0 for torch's default"
            + (" (train_threads 0: the same as threads)" if key == "train_threads" else "")
        )
    return value


def _config_text(name: str) -> str:
    return (CONFIG_DIR / name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class DataRecipe:
    count: int = 10_000
    seed: int = 0
    size: tuple[int, int] = (128, 192)  # width, height
    test_fraction: float = 0.1
    workers: int = 2


@dataclass(frozen=True)
class Recipe:
    """A build of the mini designer (see ``docs/mini-designer.md``)."""

    name: str
    seed: int
    threads: int
    data: DataRecipe
    autoencoder: AutoencoderConfig
    autoencoder_training: AutoencoderTrainConfig
    autoencoder_images: int
    text_seed: int
    text_token_scale: float
    prediction: str  # what the UNet predicts: "epsilon" or "v_prediction" (overrides scheduler.json)
    unet_config: str  # file name in configs/mini-designer (or a path)
    train: dict  # TrainConfig settings (dataset, base and output_dir are filled in by the build)
    source: str = ""
    # Threads of the diffusion stage when it differs from ``threads`` (0: the same). Kept apart so
    # that a recipe can train its UNet on every core while the data and autoencoder stages, and
    # their cached results, stay those of ``threads``.
    train_threads: int = 0
    sha256: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def unet_path(self) -> Path:
        path = Path(self.unet_config)
        return path if path.is_absolute() else CONFIG_DIR / path

    def stage_key(self, stage: str) -> str:
        """SHA-256 of the settings a stage's result depends on (its own and those of the stages before it)."""
        parts: dict = {"data": asdict(self.data)}
        if stage in ("autoencoder", "diffusion"):
            parts["autoencoder"] = [
                asdict(self.autoencoder),
                asdict(self.autoencoder_training),
                self.autoencoder_images,
            ]
            parts["threads"] = self.threads
        if stage == "diffusion":
            parts.update(
                seed=self.seed,
                text_seed=self.text_seed,
                token_scale=self.text_token_scale,
                train=self.train,
                unet=self.unet_path.read_text(),
                text=_config_text("text_encoder.json"),
                scheduler=_config_text("scheduler.json"),
                code=CODE_VERSION,
                **({"train_threads": self.train_threads} if self.train_threads else {}),
                **({"prediction": self.prediction} if self.prediction != "epsilon" else {}),
            )
        elif stage != "data" and stage != "autoencoder":
            raise ValueError(f"stage={stage!r}: use data, autoencoder or diffusion")
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=list).encode()).hexdigest()

    @classmethod
    def load(cls, name_or_path: str | Path = "cpu") -> Recipe:
        """``cpu``, ``gpu`` or the path of a recipe JSON file.

        Raises:
            FileNotFoundError / ValueError: no such recipe, or a file that does not read as one.
        """
        text_name = str(name_or_path)
        path = CONFIG_DIR / RECIPES[text_name] if text_name in RECIPES else Path(name_or_path)
        if not path.is_file():
            raise FileNotFoundError(f"recipe={text_name}: no such file; use cpu, gpu or a recipe JSON path")
        raw = path.read_bytes()
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"recipe {path}: not JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(data, dict):
            raise ValueError(
                f"recipe {path}: a JSON {type(data).__name__}; a recipe is a JSON object of settings "
                "(name, seed, data, autoencoder, train, ...), like configs/mini-designer/recipe.json"
            )
        known = {
            "name", "seed", "threads", "train_threads", "data", "autoencoder", "autoencoder_training",
            "autoencoder_images", "text_seed", "text_token_scale", "prediction", "unet_config", "train", "notes",
            "_comment",
        }  # fmt: skip
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"recipe {path}: unknown keys {unknown}; known: {sorted(known)}")
        try:
            data_recipe = DataRecipe(
                **{**data.get("data", {}), "size": tuple(data.get("data", {}).get("size", (128, 192)))}
            )
            recipe = cls(
                name=data["name"],
                seed=int(data["seed"]),
                threads=_count(path, "threads", data.get("threads", 0)),
                train_threads=_count(path, "train_threads", data.get("train_threads", 0)),
                data=data_recipe,
                autoencoder=AutoencoderConfig(**data.get("autoencoder", {})),
                autoencoder_training=AutoencoderTrainConfig(**data.get("autoencoder_training", {})),
                autoencoder_images=int(data.get("autoencoder_images", 4000)),
                text_seed=int(data.get("text_seed", data["seed"] + 1)),
                text_token_scale=float(data.get("text_token_scale", 1.0)),
                prediction=str(data.get("prediction", "epsilon")),
                unet_config=str(data.get("unet_config", "unet.json")),
                train=dict(data["train"]),
                source=str(path),
                sha256=hashlib.sha256(raw).hexdigest(),
                notes=list(data.get("notes", [])),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"recipe {path}: {exc}") from None
        if recipe.prediction not in PREDICTIONS:
            raise ValueError(f"recipe {path}: prediction={recipe.prediction!r}; use one of {', '.join(PREDICTIONS)}")
        for key in ("dataset", "base", "output_dir"):
            if key in recipe.train:
                raise ValueError(f"recipe {path}: train.{key} is set by the build; remove it")
        return recipe
