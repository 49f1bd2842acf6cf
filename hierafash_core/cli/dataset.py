"""``hierafash dataset``: check, preview and import datasets (docs/dataset-format.md, docs/training.md)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("dataset", help="check, preview and import training datasets")
    cmds = parser.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)

    p = cmds.add_parser("check", help="validate every record; one line per problem, then a summary")
    p.add_argument("dir", help="dataset folder (holds records.jsonl)")
    p.add_argument("--min-size", type=int, default=64, help="smallest image side accepted, in pixels (default 64)")
    p.add_argument("--quiet", action="store_true", help="print only the problems, no summary")
    p.set_defaults(func=_check)

    p = cmds.add_parser("preview", help="write a grid of images with pose and caption")
    p.add_argument("dir", help="dataset folder")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--count", type=int, default=16, help="records shown (default 16)")
    p.add_argument("--columns", type=int, default=4, help="cells per row (default 4)")
    p.add_argument("--cell", type=int, default=192, help="cell width in pixels (default 192)")
    p.add_argument("--split", choices=["train", "test"], help="only this split")
    p.add_argument("--seed", type=int, help="pick records at random with this seed (default: the first ones)")
    p.set_defaults(func=_preview)

    for name, helptext in (
        ("import-paper", "import the HieraFashion release layout (train.json/test.json)"),
        ("import-csv", "import a folder of images and a CSV of caption fields"),
    ):
        p = cmds.add_parser(name, help=helptext)
        if name == "import-paper":
            p.add_argument("src", help="release folder holding train.json (and test.json)")
        else:
            p.add_argument("images", help="folder of images (the CSV's image names are inside it)")
            p.add_argument("csv", help="CSV with an 'image' column and one column per caption field")
        p.add_argument("out", help="new dataset folder")
        p.add_argument(
            "--no-detect",
            action="store_true",
            help="skip images without a pose instead of detecting it with the pack's pose detector",
        )
        p.add_argument("--overwrite", action="store_true", help="replace a dataset already in OUT")
        p.set_defaults(func=_import, importer=name)


def _check(args: argparse.Namespace) -> int:
    from ..dataset import check_dataset
    from . import CLIError

    if args.min_size < 1:
        raise CLIError(f"--min-size {args.min_size}: must be at least 1 pixel (default 64)")
    report = check_dataset(args.dir, min_size=args.min_size)
    for problem in report.problems:
        print(problem)
    if not args.quiet:
        for line in report.summary_lines():
            print(line)
    return 0 if report.ok else 1


def _preview(args: argparse.Namespace) -> int:
    from ..dataset import preview_grid

    out = preview_grid(
        args.dir, args.out, count=args.count, columns=args.columns, cell=args.cell, split=args.split, seed=args.seed
    )
    print(f"wrote {out}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from ..dataset import import_csv, import_paper_layout, pack_pose_detector

    detector = None
    if not args.no_detect:
        # Loaded lazily and only when an item lacks a pose: a dataset with every pose needs no detector.
        loaded = []

        def detector(image):
            if not loaded:
                loaded.append(pack_pose_detector())
            return loaded[0](image)

    if args.importer == "import-paper":
        report = import_paper_layout(args.src, args.out, detector=detector, overwrite=args.overwrite)
    else:
        report = import_csv(args.images, args.csv, args.out, detector=detector, overwrite=args.overwrite)
    for line in report.lines():
        print(line)
    return 1 if report.skipped else 0
