"""``hierafash evaluate``: the paper's comparison on the mini designer (docs/mini-designer.md)."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from . import CLIError

SIZES = {
    # name: (cases, steps, diversity groups, diversity seeds, classifier images, classifier steps, held-out,
    #        contact sheet drafts, contact sheet edit chains)
    "default": (40, 20, 6, 4, 4000, 1200, 300, 6, 3),
    "small": (5, 3, 1, 2, 96, 30, 10, 2, 1),
}


def register(sub: argparse._SubParsersAction) -> None:
    from ..evaluation.run import METHODS

    p = sub.add_parser(
        "evaluate",
        help="compare the pack's edit modes, flat captions, SDEdit and the released code on held-out designs",
        description="Drafts and attribute edits of held-out synthetic designs by the mini designer, judged by an "
        "attribute classifier (trained on first use and cached next to the model): attribute accuracy, preservation "
        "outside the mask (PSNR, SSIM), concept adherence and diversity, as Markdown tables.",
    )
    p.add_argument("--size", choices=sorted(SIZES), default="default",
                   help="default: 40 designs, 20 steps (under 20 min on 2 cores); small: a quick check")  # fmt: skip
    p.add_argument("--cases", type=int, help="held-out designs (default by --size)")
    p.add_argument("--steps", type=int, help="sampler steps of drafts and edits (default by --size)")
    p.add_argument("--cfg", type=float, default=4.0, help="classifier-free guidance scale (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of noise and edit targets (default 0)")
    p.add_argument("--methods", nargs="+", choices=METHODS, metavar="METHOD",
                   help="edit methods to run (default: all): " + "; ".join(METHODS))  # fmt: skip
    p.add_argument("--model", default=None, help="mini designer folder (default: the built one)")
    p.add_argument("--out", default="out/evaluate", help="folder for table.md, results.json, sheet.png")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-sheet", action="store_true", help="skip the contact sheet")
    p.set_defaults(func=run)


def _command(args: argparse.Namespace) -> str:
    """The command line that reproduces this evaluation (the options that change its figures)."""
    parts = ["hierafash", "evaluate"]
    if args.size != "default":
        parts += ["--size", args.size]
    for name in ("cases", "steps"):
        if getattr(args, name):
            parts += [f"--{name}", str(getattr(args, name))]
    if args.cfg != 4.0:
        parts += ["--cfg", f"{args.cfg:g}"]
    if args.seed:
        parts += ["--seed", str(args.seed)]
    if args.methods:
        parts += ["--methods", *args.methods]
    return " ".join(shlex.quote(p) for p in parts)


def _check_args(args: argparse.Namespace) -> None:
    """Refuse bad options before the classifier's images are drawn (minutes of work)."""
    from .design_run import check_out_dir

    for name in ("cases", "steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise CLIError(f"--{name} {value}: must be at least 1 (or leave it out for the --size default)")
    held_out = SIZES[args.size][6]
    if args.cases is not None and args.cases > held_out:
        raise CLIError(
            f"--cases {args.cases}: at most {held_out} at --size {args.size}; the classifier trains on the "
            f"held-out records after the first {held_out}, so more cases would be judged by a classifier that saw them"
        )
    if args.threads < 0:
        raise CLIError(f"--threads {args.threads}: give a number of threads of at least 1, or 0 for torch's choice")
    check_out_dir(Path(args.out))


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    import torch

    from ..evaluation.classifier import ClassifierTrainConfig, ensure_classifier
    from ..evaluation.report import markdown, to_json
    from ..evaluation.run import METHODS, EvalConfig, evaluate
    from ..mini.files import MiniDesignerFiles
    from ..mini.pipeline import MiniDesigner

    if args.threads:
        torch.set_num_threads(args.threads)
    cases, steps, groups, seeds, cl_images, cl_steps, held_out, sheet_drafts, sheet_chains = SIZES[args.size]
    config = EvalConfig(
        cases=cases if args.cases is None else args.cases,
        steps=steps if args.steps is None else args.steps,
        cfg=args.cfg,
        seed=args.seed,
        diversity_groups=groups,
        diversity_seeds=seeds,
        methods=tuple(args.methods or METHODS),
    )
    files = MiniDesignerFiles.in_folder(args.model)
    if not files.exist():
        raise CLIError(f"no mini designer in {files.folder}; run `hierafash mini-designer build` first")
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    started = time.perf_counter()
    designer = MiniDesigner.load(files)
    classifier_path = files.folder / f"classifier-{args.size}.safetensors"
    classifier, accuracy = ensure_classifier(
        designer,
        classifier_path,
        images=cl_images,
        held_out=held_out,
        config=ClassifierTrainConfig(steps=cl_steps),
        progress=say,
    )
    result = evaluate(designer, classifier, config, progress=say)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(result, accuracy, _command(args))
    (out / "table.md").write_text(table, encoding="utf-8")
    (out / "results.json").write_text(to_json(result, accuracy), encoding="utf-8")
    if not args.no_sheet:
        from ..evaluation.sheet import design_sheet

        cases_ = result.examples["cases"]
        by_category = {}
        for c in cases_:
            by_category.setdefault(c.fields["category"], c)
        drafts = list(by_category.values())[:sheet_drafts]
        design_sheet(designer, drafts, cases_[:sheet_chains], config).save(out / "sheet.png")
    print(table)
    print(f"wrote {out / 'table.md'}, {out / 'results.json'}" + ("" if args.no_sheet else f", {out / 'sheet.png'}"))
    print(f"evaluation took {time.perf_counter() - started:.0f} s")
    return 0
