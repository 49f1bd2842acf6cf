"""``hierafash queue``: post a workflow to a ComfyUI server, follow it, download its outputs."""

from __future__ import annotations

import argparse
import math
import sys

from ..api_client import ComfyAPIError, PromptRejected
from . import CLIError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "queue",
        help="queue a workflow on a ComfyUI server and download its outputs",
        description="Post an API-format workflow (or a UI-format one, converted with the server's /object_info) "
        "to a ComfyUI server, follow its progress and save the output files.",
    )
    p.add_argument("workflow", help="workflow JSON file (API format, or UI format)")
    p.add_argument("--server", default="http://127.0.0.1:8188", help="ComfyUI URL (default: %(default)s)")
    p.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="NODE.INPUT=VALUE",
        help="override an input; NODE is a node id, title or class type; VALUE is JSON or text (repeatable)",
    )  # fmt: skip
    p.add_argument("--out", default="out/queue", help="folder for the downloaded outputs (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds for the whole run (default: %(default)s)")
    p.set_defaults(func=run)


def _progress_printer():
    state = {"node": None}

    def on_progress(event: dict) -> None:
        kind, data = event.get("type"), event.get("data", {})
        if kind == "executing" and data.get("node") is not None:
            state["node"] = data["node"]
            print(f"  running node {data['node']}", file=sys.stderr)
        elif kind == "progress":
            value, maximum = data.get("value", 0), max(1, data.get("max", 1))
            bar = "#" * int(30 * value / maximum)
            end = "\n" if value >= maximum else "\r"
            print(f"  node {data.get('node', state['node'])}: [{bar:<30}] {value}/{maximum}", end=end, file=sys.stderr)

    return on_progress


def run(args: argparse.Namespace) -> int:
    from ..queue import run_workflow

    if not math.isfinite(args.timeout) or args.timeout <= 0:
        raise CLIError(f"--timeout={args.timeout}: must be a positive number of seconds")
    try:
        result = run_workflow(args.server, args.workflow, args.sets, out_dir=args.out, timeout=args.timeout,
                              on_progress=_progress_printer())  # fmt: skip
    except PromptRejected as exc:
        raise CLIError(str(exc)) from None
    except ComfyAPIError as exc:
        raise CLIError(str(exc)) from None
    print(f"prompt {result.prompt_id} finished in {result.seconds:.1f} s")
    for path in result.files:
        print(f"  {path}")
    if not result.files:
        print("  (the workflow produced no output files)")
    return 0
