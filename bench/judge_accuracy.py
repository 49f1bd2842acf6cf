"""How well the evaluation's judge reads each field, for a few training settings side by side.

The attribute classifier's held-out accuracy bounds every accuracy ``hierafash evaluate``
reports: an edit that drew the asked sleeve perfectly still scores only as often as the judge
reads that sleeve right. This trains the judge with each setting given (training images, steps)
on the same data and prints its held-out accuracy per head (through the model's autoencoder, as
the evaluation shows images) and the sleeve-length and clothing-length confusions of the last one.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/judge_accuracy.py [--settings 4000:1200 4000:1200:pose:d2] [--model DIR]

About five minutes per 4000:1200 on 2 cores (needs the built model for its autoencoder).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from mini_common import add_model_options, load_designer


def _setting(text: str) -> tuple[int, int, bool | None, int | None, bool | None]:
    images, _, rest = text.partition(":")
    steps, *options = rest.split(":")
    try:
        count, n_steps = int(images), int(steps)
        pose = True if "pose" in options else (False if "plain" in options else None)
        arms = True if "arms" in options else (False if "noarms" in options else None)
        depths = [int(o[1:]) for o in options if o.startswith("d")]
        known = {"pose", "plain", "arms", "noarms"} | {f"d{d}" for d in depths}
        both = {"pose", "plain"} <= set(options) or {"arms", "noarms"} <= set(options)
        if set(options) - known or len(options) != len(set(options)) or len(depths) > 1 or both:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: use IMAGES:STEPS with optional :pose or :plain, :arms or :noarms and :dN, "
            "e.g. 4000:1200:pose:noarms:d2"
        ) from None
    if not (100 <= count <= 9000 and 10 <= n_steps <= 20000) or (depths and not 1 <= depths[0] <= 4):
        raise argparse.ArgumentTypeError(f"{text!r}: images from 100 to 9000, steps from 10 to 20000, depth 1 to 4")
    return count, n_steps, pose, depths[0] if depths else None, arms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--settings", nargs="+", type=_setting, default=[(4000, 1200, None, None, None)],
        metavar="IMAGES:STEPS[:pose|:plain][:arms|:noarms][:dN]",
        help="training images and steps of each judge, optionally :pose (reads the pose drawing) or :plain "
        "(does not), :arms (reads strips along the arms) or :noarms, and :dN (N convolutions per scale); "
        "the default is the evaluation's judge",
    )  # fmt: skip
    add_model_options(parser)
    args = parser.parse_args()

    from hierafash_core.evaluation.cases import held_out_cases
    from hierafash_core.evaluation.classifier import (
        HEADS,
        ClassifierTrainConfig,
        _as_batch,
        ensure_classifier,
        labels_of,
        pose_drawings,
        through_autoencoder,
    )

    designer, _ = load_designer(parser, args)
    cases = held_out_cases(300)
    shown = through_autoencoder(designer, _as_batch([c.image for c in cases])).float() / 255
    rows, model = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for images, steps, pose, depth, arms in args.settings:
            started = time.perf_counter()
            default = ClassifierTrainConfig()
            config = ClassifierTrainConfig(
                steps=steps,
                pose=default.pose if pose is None else pose,
                depth=depth or default.depth,
                arms=default.arms if arms is None else arms,
            )
            name = f"judge-{images}-{steps}-{config.pose}-{config.depth}-{config.arms}.safetensors"
            model, report = ensure_classifier(designer, Path(tmp) / name, images=images, config=config)
            label = (
                f"{images}:{steps}" + (":pose" if config.pose else "") + (":arms" if config.arms else "")
                + f":d{config.depth}"
            )  # fmt: skip
            rows.append((label, report["through_autoencoder"], time.perf_counter() - started))
    heads = list(HEADS)
    print(f"| judge | {' | '.join(heads)} | minutes |")
    print("|---|" + "---|" * len(heads) + "---|")
    for label, acc, seconds in rows:
        cells = " | ".join(f"{acc[h] * 100:.0f}%" if h in acc else "-" for h in heads)
        print(f"| {label} | {cells} | {seconds / 60:.1f} |")
    w, h = designer.size
    points = torch.from_numpy(np.stack([c.keypoints for c in cases])).float()
    pred = model.predict(shown, pose_drawings(points, (w, h)) if model.pose else None, points)
    for head in ("sleeve_length", "clothing_length"):
        values = HEADS[head]
        counts = torch.zeros(len(values), len(values), dtype=torch.long)
        for case, said in zip(cases, pred[head], strict=True):
            truth = labels_of(case.fields, case.meta)[head]
            if truth >= 0:
                counts[truth, values.index(said)] += 1
        print(f"\n{head} (last judge; rows: drawn, columns: read)\n")
        print("| drawn \\ read | " + " | ".join(values) + " |")
        print("|---|" + "---|" * len(values))
        for value, row in zip(values, counts.tolist(), strict=True):
            print(f"| {value} | " + " | ".join(str(n) for n in row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
