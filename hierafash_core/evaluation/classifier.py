"""A small attribute classifier for the synthetic croquis: image -> each field's value, palette, pattern.

It is the evaluation's judge: an edit "reached" its attribute when the classifier reads the new
value off the edited image. It is trained on the synthetic training split as the mini
designer's autoencoder shows it (each image encoded and decoded), so it reads the blur and the
artefacts of generated images the way it read its training images, and its own accuracy on the
held-out split (reported with every evaluation) bounds what any generated image can score.

Heads (classes in vocabulary order; attribute values only among those the generator draws):
category, clothing length, sleeve length, sleeve type, collar, hem, palette family, pattern.

    (B, 3, 192, 128) in [0, 1] -> 5 strided 3x3 conv blocks (16..128 channels) -> (B, 128, 6, 4) -> heads
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..synth.concepts import PALETTES, PATTERNS
from ..synth.labels import distinct_values
from ..taxonomy import CATEGORIES

log = logging.getLogger(__name__)

HEADS: dict[str, tuple[str, ...]] = {
    "category": CATEGORIES,
    "clothing_length": distinct_values("clothing_length"),
    "sleeve_length": distinct_values("sleeve_length"),
    "sleeve_type": distinct_values("sleeve_type"),
    "collar": distinct_values("collar"),
    "hem": distinct_values("hem"),
    "palette": tuple(PALETTES),
    "pattern": PATTERNS,
}
FORMAT = "hierafash-attribute-classifier"


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
    )


class AttributeClassifier(nn.Module):
    """Multi-head CNN; :meth:`forward` gives ``{head: (B, classes) logits}``."""

    def __init__(self, size: tuple[int, int] = (128, 192)):
        super().__init__()
        w, h = size
        if w % 32 or h % 32:
            raise ValueError(f"size={w}x{h}: width and height must be multiples of 32")
        self.size = (w, h)
        self.body = nn.Sequential(
            _block(3, 16, 2), _block(16, 32, 2), _block(32, 64, 2), _block(64, 64, 1), _block(64, 128, 2),
            _block(128, 128, 2), nn.Dropout(0.2),
        )  # fmt: skip
        features = 128 * (h // 32) * (w // 32)
        self.heads = nn.ModuleDict({name: nn.Linear(features, len(values)) for name, values in HEADS.items()})

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.body(images * 2 - 1).flatten(1)  # (B, 128, h/32, w/32) -> (B, features)
        return {name: head(x) for name, head in self.heads.items()}

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch: int = 64) -> dict[str, list[str]]:
        """(B, 3, H, W) in [0, 1] -> ``{head: [value per image]}``."""
        self.eval()
        out: dict[str, list[str]] = {name: [] for name in HEADS}
        for i in range(0, len(images), batch):
            logits = self(images[i : i + batch].float())
            for name, values in HEADS.items():
                out[name] += [values[j] for j in logits[name].argmax(1).tolist()]
        return out


def labels_of(fields: dict, meta: dict) -> dict[str, int]:
    """Class indices of one record (fields and the generator's meta: palette, pattern); -1 where unknown."""
    from ..synth.labels import drawn_as

    out = {}
    for name, values in HEADS.items():
        if name in ("palette", "pattern"):
            value = meta.get(name)
        elif name == "category":
            value = fields.get(name)
        else:
            value = drawn_as(name, fields[name]) if fields.get(name) else None
        out[name] = values.index(value) if value in values else -1
    return out


@dataclass(frozen=True)
class ClassifierTrainConfig:
    steps: int = 1200
    batch_size: int = 64
    learning_rate: float = 2e-3
    seed: int = 0


def train_classifier(
    images: torch.Tensor,
    labels: dict[str, torch.Tensor],
    config: ClassifierTrainConfig,
    *,
    callback: Callable[[int, int, float], None] | None = None,
) -> AttributeClassifier:
    """Train on ``images`` (uint8 (N, 3, H, W)) and ``labels`` (``{head: (N,) class index, -1 = none}``).

    Batches, flips (none: the garments are not symmetric in every pose, but the poses are
    mirrored in the data) and dropout come from ``config.seed``; one-pixel shifts augment.
    """
    n, _, h, w = images.shape
    torch.manual_seed(config.seed)
    model = AttributeClassifier((w, h))
    opt = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.learning_rate, total_steps=config.steps)
    model.train()
    started = time.perf_counter()
    for step in range(config.steps):
        g = torch.Generator().manual_seed(config.seed * 7919 + step)
        idx = torch.randint(0, n, (config.batch_size,), generator=g)
        dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=g))
        x = torch.roll(images[idx].float() / 255.0, shifts=(dy, dx), dims=(2, 3))
        logits = model(x)
        loss = sum(F.cross_entropy(logits[name], labels[name][idx], ignore_index=-1) for name in HEADS)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if callback is not None:
            callback(step + 1, config.steps, float(loss.detach()))
    log.info("classifier: %d steps in %.0f s", config.steps, time.perf_counter() - started)
    return model.eval()


def accuracy(model: AttributeClassifier, images: torch.Tensor, labels: dict[str, torch.Tensor]) -> dict[str, float]:
    """Share of correct predictions per head (images uint8 (N, 3, H, W)); heads without labels are left out."""
    pred = model.predict(images.float() / 255.0)
    out = {}
    for name, values in HEADS.items():
        known = labels[name] >= 0
        if known.any():
            hits = [values.index(p) == int(t) for p, t, k in zip(pred[name], labels[name], known, strict=True) if k]
            out[name] = sum(hits) / len(hits)
    return out


def save_classifier(model: AttributeClassifier, path: str | Path, metadata: dict | None = None) -> Path:
    from ..model_files import save_safetensors

    meta = {"format": FORMAT, "size": json.dumps(model.size), "heads": json.dumps(HEADS), **(metadata or {})}
    return save_safetensors(model.state_dict(), path, meta)


def load_classifier(path: str | Path) -> tuple[AttributeClassifier, dict]:
    """(classifier, metadata); raises ValueError for another file or other heads."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from ..model_files import check_safetensors

    check_safetensors(Path(path), "attribute classifier")
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not an attribute classifier (format={meta.get('format')!r})")
    if json.loads(meta["heads"]) != {k: list(v) for k, v in HEADS.items()}:
        raise ValueError(f"{path}: its classes differ from this version's; delete it to train a new one")
    model = AttributeClassifier(tuple(json.loads(meta["size"])))
    model.load_state_dict(load_file(str(path)), strict=True)
    return model.eval(), meta


def _as_batch(images) -> torch.Tensor:
    import numpy as np

    return torch.from_numpy(np.asarray(images)).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW uint8


@torch.no_grad()
def through_autoencoder(designer, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> the same images encoded and decoded by the designer's autoencoder, uint8."""
    out = []
    for i in range(0, len(images), batch):
        shown = designer.decode(designer.encode_images(images[i : i + batch].float() / 255))
        out.append((shown * 255).round().to(torch.uint8))
    return torch.cat(out)


def ensure_classifier(
    designer,
    path: str | Path,
    *,
    images: int = 4000,
    held_out: int = 300,
    config: ClassifierTrainConfig | None = None,
    data_count: int = 10_000,
    data_seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> tuple[AttributeClassifier, dict]:
    """The classifier cached at ``path``, or a new one trained on ``images`` training records as the
    designer's autoencoder shows them; returns it with its held-out accuracy per head."""
    from .cases import held_out_cases, training_images

    say = progress or (lambda line: log.info("%s", line))
    config = config or ClassifierTrainConfig()
    path = Path(path)
    wanted = {
        # v2: held-out-pose records the evaluation never uses join the training images (the held-out
        # check fell from 93% to 64% on sleeve length without them: poses it had never seen).
        "version": 2,
        "images": images,
        "config": json.dumps(config.__dict__, sort_keys=True),
        "data": f"{data_count}:{data_seed}",
    }
    if path.is_file():
        model, meta = load_classifier(path)
        if all(meta.get(k) == str(v) for k, v in wanted.items()):
            return model, json.loads(meta["held_out_accuracy"])
        say(f"classifier {path.name} was trained with other settings; training a new one")
    started = time.perf_counter()
    say(
        f"classifier: drawing {images} training images (and the unused held-out-pose records), through the autoencoder"
    )
    raw, fields, metas = training_images(images, data_count=data_count, data_seed=data_seed, test_after=held_out)
    x = through_autoencoder(designer, _as_batch(raw))
    labels = {
        name: torch.tensor([labels_of(f, m)[name] for f, m in zip(fields, metas, strict=True)]) for name in HEADS
    }
    say(f"classifier: {config.steps} steps of batch {config.batch_size}")
    model = train_classifier(x, labels, config)
    cases = held_out_cases(held_out, data_count=data_count, data_seed=data_seed)
    test = through_autoencoder(designer, _as_batch([c.image for c in cases]))
    test_labels = {name: torch.tensor([labels_of(c.fields, c.meta)[name] for c in cases]) for name in HEADS}
    acc = accuracy(model, test, test_labels)
    acc_raw = accuracy(model, _as_batch([c.image for c in cases]), test_labels)
    report = {"through_autoencoder": acc, "original_images": acc_raw, "held_out": held_out,
              "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
    save_classifier(model, path, {**{k: str(v) for k, v in wanted.items()}, "held_out_accuracy": json.dumps(report)})
    return model, report
