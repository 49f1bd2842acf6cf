"""The ``hierafash`` command line. Each topic module adds its subcommands through ``register``.

Errors a user can fix (a bad value, a missing file) are raised as ``CLIError`` or ``ValueError``
/ ``FileNotFoundError`` and printed as one line with exit code 2; nothing prints a bare
traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Topic modules, each with ``register(subparsers)``; a subcommand's handler is ``args.func(args)``.
COMMAND_MODULES: list[str] = ["queue", "synth", "dataset", "train", "parse", "design", "mini_designer", "evaluate"]


class CLIError(Exception):
    """A user-facing failure: the message says the cause and the fix."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hierafash", description="Hierarchical fashion design with ComfyUI.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("hierafash: interrupted; finished outputs were kept", file=sys.stderr)
        return 130
    except (CLIError, ValueError, OSError) as exc:  # OSError: missing files, permissions, names too long...
        if args.debug:
            raise
        print(f"hierafash {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """The error's message, a file name in it cut to ``limit`` characters (a 5,000-character name is no help)."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        name = str(exc.filename)
        shown = name if len(name) <= limit else f"{name[:limit]}... ({len(name)} characters)"
        return f"{exc.strerror}: {shown!r}"
    return str(exc)


if __name__ == "__main__":
    sys.exit(main())
