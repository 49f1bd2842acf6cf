"""Draw the contact sheet of the synthetic data: docs/images/synth_samples.png.

    .venv/bin/python scripts/synth_samples.py [--out docs/images/synth_samples.png] [--seed 0]

Row 1: records of a data set (seed --seed), captioned with category and clothing length; row 2:
their parse maps. Then one design on one pose with a single attribute changed per cell: clothing
length and sleeve length, sleeve types, collars, hems (every value drawn distinctly), and the
clothing lengths of trousers and tops.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from hierafash_core.synth import Look, SynthConfig, distinct_values, make_sample, render  # noqa: E402
from hierafash_core.synth.pose_bank import POSES_BY_NAME, place  # noqa: E402
from hierafash_core.synth.sheet import colour_parse, contact_sheet  # noqa: E402

SIZE = (128, 192)
LOOK = Look(
    garment=(40, 118, 222), pattern_colour=(244, 244, 240), trim=(28, 84, 160), companion=(244, 244, 240),
    shoes=(30, 30, 34), skin=(198, 146, 104), hair=(64, 42, 30), background=(244, 242, 238),
    silhouette="a-line", hair_style="bun",
)  # fmt: skip
BASE = {"category": "Dress", "style": "Elegant", "occasion": "Party", "effect": "Tall", "feeling": "Crisp Feeling",
        "clothing_length": "Knee-length", "sleeve_length": "Elbow-length Sleeve", "sleeve_type": "Regular",
        "collar": "Round", "hem": "Flat"}  # fmt: skip
SHORT = {" Sleeve": "", "Elbow-length": "Elbow", "Mid-length": "Mid", "Knee-length": "Knee"}


def _short(text: str) -> str:
    for k, v in SHORT.items():
        text = text.replace(k, v)
    return text.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/images/synth_samples.png")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    images, captions = [], []
    config = SynthConfig(count=10, seed=args.seed)
    samples = [make_sample(config, i)[0] for i in range(10)]
    for s in samples:
        images.append(s.image)
        captions.append(f"{s.fields['category']}, {_short(s.fields['clothing_length'])}")
    for s in samples:
        images.append(colour_parse(s.parse))
        captions.append(f"{s.fields['style']}"[:18])
    kp = place(POSES_BY_NAME["front"].keypoints, SIZE)

    def cell(key: str, value: str, category: str = "Dress", **extra: str) -> None:
        images.append(render({**BASE, "category": category, **extra, key: value}, kp, LOOK, SIZE).image)
        captions.append(_short(value) + (f" {category}" if category != "Dress" else ""))

    for v in distinct_values("clothing_length"):
        cell("clothing_length", v)
    for v in distinct_values("sleeve_length"):
        cell("sleeve_length", v)
    for key in ("sleeve_type", "collar", "hem"):
        extra = {"sleeve_length": "Long Sleeve"} if key == "sleeve_type" else {}
        for v in distinct_values(key):
            cell(key, v, **extra)
    for v in distinct_values("clothing_length"):
        cell("clothing_length", v, "Pant")
    for v in ("Ultra-short", "Short"):
        cell("clothing_length", v, "Blouse")
    sheet = contact_sheet(images, captions, columns=10)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(args.out, optimize=True)
    print(f"wrote {args.out}: {sheet.shape[1]}x{sheet.shape[0]}, {len(images)} cells")


if __name__ == "__main__":
    main()
