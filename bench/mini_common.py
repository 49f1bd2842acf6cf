"""What the mini designer benches share: the --model/--threads options and loading the built model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="folder of the built files (default: the built-in one)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")


def load_designer(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """(MiniDesigner, MiniDesignerFiles) of ``--model``; exits with the fix when it is not built."""
    import torch

    from hierafash_core.mini import MiniDesigner, mini_designer_files

    if args.threads < 1:
        parser.error(f"--threads {args.threads}: give at least 1")
    torch.set_num_threads(args.threads)
    build = "hierafash mini-designer build" + (f" --out {args.model}" if args.model else "")
    try:
        files = mini_designer_files(args.model, build=False)
    except FileNotFoundError:
        where = args.model or "the built-in folder"
        parser.exit(2, f"--model: no mini designer in {where}; build it first: {build}\n")
    try:
        return MiniDesigner.load(files), files
    except (ValueError, OSError) as error:
        parser.exit(2, f"--model: the mini designer in {files.folder} does not load: {error}\nrebuild it: {build}\n")
