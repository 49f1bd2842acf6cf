"""``hierafash train [CONFIG] [--setting value ...]``: staged-caption training (docs/training.md).

Every field of :class:`hierafash_core.training.TrainConfig` is an option (``--max-steps 500``);
options override the values of a JSON/YAML config file. Under ``torchrun`` or ``accelerate
launch`` every process runs this same command.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing


def _option_type(tp) -> tuple[type | None, bool]:
    """(element type, is list) for a dataclass field annotation."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _option_type(args[0])
    if origin is list:
        return typing.get_args(tp)[0], True
    return tp, False


def register(sub: argparse._SubParsersAction) -> None:
    from ..training.config import HELP, TrainConfig

    p = sub.add_parser(
        "train",
        help="train a pose ControlNet (default), a LoRA or a UNet with staged captions",
        description="Settings come from CONFIG (JSON/YAML) and the options below (which win). "
        "Run on several GPUs with `accelerate launch -m hierafash_core.cli train ...` "
        "or `torchrun --nproc_per_node N -m hierafash_core.cli train ...`.",
    )
    p.add_argument("config", nargs="?", help="a training config file (JSON or YAML), e.g. a run's config.json")
    hints = typing.get_type_hints(TrainConfig)
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        tp, is_list = _option_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        text = HELP.get(f.name, "") + (f" (default: {default})" if default not in (None, "", []) else "")
        if tp is bool:
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif is_list:
            p.add_argument(flag, dest=f.name, nargs="+", type=tp, default=None, metavar="VALUE", help=text)
        else:
            metavar = f.name.split("_")[-1].upper()
            p.add_argument(flag, dest=f.name, type=tp, default=None, metavar=metavar, help=text)
    p.set_defaults(func=_train)


def _check_paths(config) -> None:
    """Files and folders the run needs, checked before any model is loaded (which takes a while)."""
    from pathlib import Path

    from ..training.checkpoint import find_checkpoint
    from . import CLIError

    out = Path(config.output_dir)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--output-dir {out}: is a file, not a folder; give a folder path (it is created if missing)")
    if config.layout is not None:
        from ..training.models import shipped_layouts

        if config.layout not in shipped_layouts():
            raise CLIError(f"--layout {config.layout!r}: use one of {', '.join(shipped_layouts())}, or leave it out "
                           "to detect the layout from the checkpoint")  # fmt: skip
    if config.resume:
        find_checkpoint(out, config.resume)  # 'latest' with none saved, or a folder without state.json


def _train(args: argparse.Namespace) -> int:
    from ..training import TrainConfig, train

    config = TrainConfig.load(args.config) if args.config else TrainConfig()
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    _check_paths(config.validate())
    result = train(config)
    if result.rank == 0:
        loss = "n/a" if result.loss is None else f"{result.loss:.5f}"
        print(f"trained to step {result.step} (loss {loss}) in {result.output_dir}")
        for kind, path in result.exports.items():
            print(f"{kind}: {path}")
        if result.checkpoint is not None:
            print(f"checkpoint: {result.checkpoint}")
    return 0
