"""How well the sleeve painter's pictures read: SleeveHint's painting judged alone and through the autoencoder.

A hinted sleeve edit starts from the painting encoded by the autoencoder and redraws it from t = 341
(``SLEEVE_HINT_START_T``), so what the painting still says after one encode and decode bounds what
the edit can keep of it.
For ``--cases`` held-out designs of the data set ``--data-seed`` (seed 0 holds the evaluation's own
cases; seed 1 is a data set nothing was tuned on), the staged draft of each is painted with another
sleeve length (cycling through the values its design does not have) and the evaluation's judge
reads the painting, and the painting encoded and decoded. Rows: the first painter (its constants
and its bodice colour, passed in), then each change that made today's painter, one at a time, and
two other outline shades.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/mini_paint_reading.py [--cases 300] [--data-seed 0|1] [--model DIR]

About 4 minutes on 2 cores at 300 cases (drafting them is most of it); needs the built model and
trains the judge first if it is not cached.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from contextlib import contextmanager

import numpy as np
import torch
from mini_common import add_model_options, held_out_drafts

FIRST = {"SLEEVE_MARGIN": 0.03, "SKIN_MARGIN": 0.012, "SKIN_HUE": (-1e9, 1e9), "SKIN_SATURATION": 0.0, "outline": 1.0}
# Module constants of hierafash_core.editing.layout that a row sets (the rest as they are); "chest"
# swaps in the first painter's bodice colour (below).
ROWS = {
    "the first painter (97a9a83): sleeve +0.03 u, bare arm +0.012 u, any warm hue is skin, no outline, "
    "the sleeve's colour from a disc at the chest": {**FIRST, "chest": True},
    "+ the sleeve's colour: the torso's most common": FIRST,
    "+ the outline (0.7) and the skin hue": {"SLEEVE_MARGIN": 0.03, "SKIN_MARGIN": 0.012},
    "+ today's widths: sleeve +0.045 u, bare arm +0 u (as it is)": {},
    "as it is, the outline at 0.6": {"outline": 0.6},
    "as it is, the outline at 0.8": {"outline": 0.8},
}  # fmt: skip


def chest_colour(image, body, band, skin):
    """The first painter's bodice colour (97a9a83): the median of a disc at the chest, 0.35 u below
    the neck, free of the arms and skin, widened x2 and x4 when those cover it (bench only)."""
    from hierafash_core.editing import layout

    u, size = body.unit, image.shape[1:]
    chest = body.neck + body.down * 0.35 * u
    free = 1.0 - band
    if skin is not None:
        free = free * (np.linalg.norm(image - skin[:, None, None], axis=0) > layout.NOT_SKIN)
    discs = [layout._coverage([layout._disc(chest, k * 0.08 * u)], size) for k in (1, 2, 4)]
    for disc in discs:
        if ((disc * free) > 0.5).sum() >= 12:
            return layout._median(image, disc * free)
    return layout._median(image, discs[0])


@contextmanager
def constants(module, values: dict):
    saved = {k: getattr(module, k) for k in values}
    try:
        for k, v in values.items():
            setattr(module, k, v)
        yield
    finally:
        for k, v in saved.items():
            setattr(module, k, v)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300, help="held-out designs (at most 300)")
    parser.add_argument("--data-seed", type=int, default=0, help="data set seed (0: the evaluation's)")
    add_model_options(parser)
    args = parser.parse_args()
    if not 10 <= args.cases <= 300:
        parser.error(f"--cases {args.cases}: from 10 to 300 (the judge trains on the records after 300)")

    from hierafash_core.editing import layout

    started = time.perf_counter()
    run = held_out_drafts(parser, args)
    designer, judge, cases, images, keypoints, drawings = (
        run.designer,
        run.judge,
        run.cases,
        run.images,
        run.keypoints,
        run.drawings,
    )
    values = list(layout.SLEEVE_END)
    targets = []
    for i, case in enumerate(cases):
        others = [v for v in values if v != case.fields["sleeve_length"]]
        targets.append(others[i % len(others)])

    def read(pictures: torch.Tensor) -> list[str]:
        return judge.predict(pictures, drawings, keypoints)["sleeve_length"]

    rows = []
    for name, settings in ROWS.items():
        settings = dict(settings)
        outline = settings.pop("outline", layout.OUTLINE_SHADE)
        if settings.pop("chest", False):
            settings["_bodice_colour"] = chest_colour
        with constants(layout, settings), torch.no_grad():
            painted = layout.paint_sleeves(images, keypoints, targets, outline=outline)
            through = designer.decode(designer.encode_images(painted))
        alone, coded = read(painted), read(through)
        misses = Counter(f"{t} -> {r}" for r, t in zip(coded, targets, strict=True) if r != t)
        rows.append({
            "row": name,
            "painted": float(np.mean([r == t for r, t in zip(alone, targets, strict=True)])),
            "through autoencoder": float(np.mean([r == t for r, t in zip(coded, targets, strict=True)])),
            "misses through autoencoder": dict(misses.most_common(4)),
        })  # fmt: skip
    print(f"{len(cases)} held-out designs of data seed {args.data_seed}, each painted with another sleeve length")
    print("| painter | painting read as asked | through the autoencoder |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r['row']} | {100 * r['painted']:.0f}% | {100 * r['through autoencoder']:.0f}% |")
    print(json.dumps({"cases": len(cases), "data_seed": args.data_seed, "rows": rows,
                      "seconds": round(time.perf_counter() - started, 1)}))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
