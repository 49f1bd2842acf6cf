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


def held_out_drafts(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """What the edit benches start from: the model (``--model``), the evaluation's judge, ``args.cases``
    held-out cases (of the data set ``args.data_seed`` where a bench has that option, else the
    evaluation's) and their staged drafts, as ``hierafash evaluate`` draws them.

    Returns a namespace: designer, files, judge, config (EvalConfig), cases, drafts (N, 4, h, w),
    images (N, 3, H, W) decoded drafts, keypoints (N, 18, 3) in pixels, drawings (N, 3, H, W) pose
    drawings for a pose-reading judge, else None.
    """
    from types import SimpleNamespace

    import numpy as np
    import torch

    from hierafash_core.evaluation.cases import held_out_cases
    from hierafash_core.evaluation.classifier import ensure_classifier, pose_drawings
    from hierafash_core.evaluation.run import EvalConfig, draft_latents

    designer, files = load_designer(parser, args)
    judge, _ = ensure_classifier(designer, files.folder / "classifier-default.safetensors")
    config = EvalConfig(cases=args.cases)
    cases = held_out_cases(args.cases, data_seed=getattr(args, "data_seed", 0))
    with torch.no_grad():
        drafts = draft_latents(designer, cases, config, staged=True)
        images = designer.decode(drafts)
    keypoints = torch.from_numpy(np.stack([c.keypoints for c in cases])).float()
    drawings = pose_drawings(keypoints, designer.size) if judge.pose else None
    return SimpleNamespace(designer=designer, files=files, judge=judge, config=config, cases=cases, drafts=drafts,
                           images=images, keypoints=keypoints, drawings=drawings)  # fmt: skip
