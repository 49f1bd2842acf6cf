"""``hierafash mini-designer build|info``: the built-in mini designer (docs/mini-designer.md)."""

from __future__ import annotations

import argparse
import json
import sys

from . import CLIError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mini-designer",
        help="build or inspect the built-in mini designer (a small model trained on synthetic croquis)",
        description="The mini designer is trained here from a recipe with the pack's own trainer: synthetic data, "
        "an autoencoder, a frozen text encoder, a UNet and a pose ControlNet (about an hour on 2 CPU cores).",
    )
    verbs = p.add_subparsers(dest="verb", metavar="VERB")
    b = verbs.add_parser("build", help="build the mini designer from its recipe (resumes a build cut short)")
    b.add_argument("--recipe", default="cpu", help="cpu (default, about an hour on 2 cores), gpu, or a recipe JSON")
    b.add_argument("--out", default=None, help="folder of the files (default: .cache/models/mini-designer)")
    b.add_argument("--work", default=None, help="folder of the intermediate results (default: OUT-build)")
    b.add_argument("--stop-after", default="files", choices=("data", "autoencoder", "diffusion", "files"),
                   help="last stage to run (default: files)")  # fmt: skip
    b.add_argument("--no-keep-work", action="store_true", help="delete the intermediate results afterwards")
    b.add_argument("--record-hashes", action="store_true",
                   help="record the files' SHA-256 as the expected ones for this recipe (maintainers)")  # fmt: skip
    b.set_defaults(func=_build)
    i = verbs.add_parser("info", help="print the manifest of a built mini designer and check its files' hashes")
    i.add_argument("--out", default=None, help="folder of the files (default: .cache/models/mini-designer)")
    i.set_defaults(func=_info)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _build(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..mini.build import build_mini_designer, check_expected, record_expected
    from ..mini.files import MiniDesignerFiles
    from ..mini.recipe import Recipe

    # Checked before the build starts (about an hour with the default recipe).
    files = MiniDesignerFiles.in_folder(args.out)
    work = Path(args.work) if args.work else files.folder.parent / f"{files.folder.name}-build"
    for flag, folder in (("--out", files.folder), ("--work", work)):
        if folder.exists() and not folder.is_dir():
            raise CLIError(f"{flag} {folder}: is a file, not a folder; give a folder path (it is created if missing)")
    recipe = Recipe.load(args.recipe)
    manifest = build_mini_designer(
        files.folder,
        recipe,
        work=args.work,
        report=lambda line: print(line, flush=True),
        keep_work=not args.no_keep_work,
        stop_after=args.stop_after,
    )
    if args.stop_after != "files":
        print(json.dumps(manifest["stages"], indent=1))
        return 0
    for name, entry in manifest["files"].items():
        print(f"{name}: {entry['bytes'] / 1e6:.1f} MB sha256 {entry['sha256']}")
    if args.record_hashes:
        print(f"recorded the hashes in {record_expected(manifest)}")
        return 0
    same, note = check_expected(manifest)
    print(note)
    return 0 if same is not False else 1


def _info(args: argparse.Namespace) -> int:
    from ..mini.files import MiniDesignerFiles, sha256_file

    files = MiniDesignerFiles.in_folder(args.out)
    if not files.manifest.is_file():
        raise CLIError(f"no mini designer in {files.folder}; run `hierafash mini-designer build`")
    manifest = json.loads(files.manifest.read_text(encoding="utf-8"))
    print(json.dumps({k: v for k, v in manifest.items() if k != "files"}, indent=1))
    bad = 0
    for name, entry in manifest["files"].items():
        path = files.folder / name
        ok = path.is_file() and sha256_file(path) == entry["sha256"]
        bad += not ok
        print(f"{name}: {'ok' if ok else 'DIFFERS FROM THE MANIFEST'} ({entry['sha256'][:16]}...)", file=sys.stdout)
    return 1 if bad else 0
