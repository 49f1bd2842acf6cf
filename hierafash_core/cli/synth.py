"""``hierafash synth``: draw a synthetic fashion data set with exact labels."""

from __future__ import annotations

import argparse
import os
import re
import sys

from . import CLIError

_SIZE = re.compile(r"^\s*(\d+)\s*[xX*]\s*(\d+)\s*$")


def parse_size(text: str) -> tuple[int, int]:
    """'128x192' -> (128, 192): width by height."""
    m = _SIZE.match(text)
    if not m:
        raise CLIError(f"--size {text!r}: write WIDTHxHEIGHT in pixels, e.g. 128x192")
    return int(m.group(1)), int(m.group(2))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="draw a synthetic fashion data set (croquis, exact parse maps, poses, captions)",
        description="Draw full-body fashion croquis from the ten caption fields, with OpenPose poses and exact "
        "parse maps, in the HieraFash dataset format (docs/dataset-format.md; details in docs/synth.md).",
    )
    p.add_argument("--out", required=True, help="output folder (new or empty, or use --force)")
    p.add_argument("--count", type=int, required=True, help="number of records (1 to 1,000,000)")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives byte-identical files (default 0)")
    p.add_argument("--size", default="128x192", help="image WIDTHxHEIGHT in pixels (default 128x192)")
    p.add_argument(
        "--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes drawing records (default 2)"
    )
    p.add_argument("--test-fraction", type=float, default=0.1, help="share of records in the test split, drawn "
                   "on held-out poses (default 0.1)")  # fmt: skip
    p.add_argument("--supersample", type=int, default=2, help="draw this many times larger for smooth edges; "
                   "1 is fastest (default 2)")  # fmt: skip
    p.add_argument("--all-values", action="store_true", help="also caption attribute values drawn as another "
                   "value's shape (default: only values with a shape of their own)")  # fmt: skip
    p.add_argument("--force", action="store_true", help="replace a data set already in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..synth.writer import SynthConfig, write_dataset

    config = SynthConfig(
        count=args.count,
        seed=args.seed,
        size=parse_size(args.size),
        test_fraction=args.test_fraction,
        supersample=args.supersample,
        distinct_only=not args.all_values,
    )
    config.check()
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if args.no_progress:
            return
        if bar is None:  # opened on the first record, so a refused folder prints only its error
            from tqdm import tqdm

            bar = tqdm(total=total, unit="img", desc="synth", file=sys.stderr, dynamic_ncols=True)
        bar.update(done - bar.n)

    try:
        meta = write_dataset(args.out, config, workers=args.workers, force=args.force, callback=progress)
    finally:
        if bar is not None:
            bar.close()
    rate = config.count / max(meta["seconds"], 1e-9)
    splits = meta["splits"]
    print(
        f"wrote {config.count} records (train {splits['train']}, test {splits['test']}) to {args.out} "
        f"in {meta['seconds']:.1f} s ({rate:.0f} images/s)"
    )
    return 0
