"""Hostile inputs for every HieraFash node, run through the real ComfyUI executor, and the tally of cases.

The nodes are found, not listed: every ``HieraFash_*`` class the host registered, with the inputs its
``INPUT_TYPES`` declares. Each node gets a baseline graph that runs (widget defaults, small step
counts, every linked input fed by a provider node of its type) and then one input at a time is
replaced by a hostile value drawn for its declared type:

- numbers: NaN and infinities (as numbers and as text), values past min/max, text, lists, None;
- menus: values not among the options, near misses, other types;
- text: empty, 100,000 characters, control characters, lone surrogates, bidi overrides, JSON junk;
- links: a provider of the wrong type, a missing node, a bad output slot, malformed links, a JSON
  literal where a link belongs, and (through test-only source nodes) tensors and objects of every
  wrong shape, dtype and value for IMAGE, MASK, LATENT, CONDITIONING and POSE_KEYPOINT.

Each case must end in one of: ComfyUI's validation refusing it; a ValueError from the pack whose
message names the input; or a run whose outputs are sound (finite, images and masks in [0, 1]).
Values that can only be wrong (NaN, out of range, a menu value not offered, a NaN tensor) must not
run. A case that raises anything else, or escapes the executor, or runs for too long, fails.
"""

from __future__ import annotations

import asyncio
import builtins
import math
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch

NAN, INF = float("nan"), float("inf")
CASE_SECONDS = 60.0  # no single case may run longer (a hang, or a size that was not refused)
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")

# -- the tally printed at the end of the run ------------------------------------------------------------
TALLY: Counter = Counter()


def record(suite: str, outcome: str) -> None:
    TALLY[(suite, outcome)] += 1


def summary_lines() -> list[str]:
    suites = sorted({s for s, _ in TALLY})
    lines = []
    for suite in suites:
        outcomes = {o: n for (s, o), n in TALLY.items() if s == suite}
        tried = sum(outcomes.values())
        passed = tried - outcomes.get("failed", 0)
        detail = ", ".join(f"{o} {n}" for o, n in sorted(outcomes.items()) if o != "failed")
        lines.append(f"{suite}: {tried} cases tried, {passed} passed ({detail})")
    return lines


# -- source nodes: hand the executor any Python object on a typed link (tests only) ----------------------
VALUES: dict[str, Any] = {}


def put(value: Any) -> str:
    """Store ``value`` under a fresh key (fresh, so ComfyUI's cache never serves an older value)."""
    key = uuid.uuid4().hex
    VALUES[key] = value
    return key


def _source_class(io_type: str) -> type:
    class Source:
        @classmethod
        def INPUT_TYPES(cls):  # noqa: N802 - ComfyUI's name
            return {"required": {"key": ("STRING", {})}}

        RETURN_TYPES = (io_type,)
        FUNCTION = "get"
        CATEGORY = "testing"

        def get(self, key):
            return (VALUES[key],)

    Source.__name__ = f"Source_{io_type}"
    return Source


SOURCE_TYPES = ("IMAGE", "MASK", "LATENT", "CONDITIONING", "POSE_KEYPOINT")


def source_id(io_type: str) -> str:
    return f"HostileSource_{io_type}"


def install_sources(node_classes: dict) -> None:
    for io_type in SOURCE_TYPES:
        node_classes[source_id(io_type)] = _source_class(io_type)


def remove_sources(node_classes: dict) -> None:
    for io_type in SOURCE_TYPES:
        node_classes.pop(source_id(io_type), None)


# -- running one case --------------------------------------------------------------------------------------
@dataclass
class Outcome:
    kind: str  # "refused" (validation), "error" (the node raised), "ran"
    message: str = ""
    exception: type | None = None
    outputs: list = field(default_factory=list)
    seconds: float = 0.0


class _Stub:
    def __init__(self) -> None:
        self.client_id = None
        self.last_node_id = None
        self.last_prompt_id = None

    def send_sync(self, event, data, sid=None) -> None:
        pass


def _exception_class(name: str) -> type | None:
    """The class ComfyUI reported by its full name (``module.Class``, or a builtin's name), or None."""
    module, _, cls = name.rpartition(".")
    return getattr(sys.modules.get(module) if module else builtins, cls, None)


class Runner:
    """Runs API graphs through one cached ComfyUI executor (providers load once, the node re-runs)."""

    def __init__(self, comfy) -> None:
        self.comfy = comfy
        self.executor = comfy.execution.PromptExecutor(_Stub(), cache_type=False, cache_args={"ram": 0, "lru": 0})

    def validate(self, graph: dict, target: str) -> tuple[bool, str]:
        """ComfyUI's validation of ``target`` and everything it depends on, exceptions caught as the server does."""
        validated: dict = {}
        try:
            ok, reasons, _ = asyncio.run(
                self.comfy.execution.validate_inputs(uuid.uuid4().hex, graph, target, validated)
            )
        except Exception as exc:  # the server turns these into "exception_during_validation"
            return False, f"exception during validation: {type(exc).__name__}: {exc}"
        texts = [
            f"{node_id}: {r.get('message')}: {r.get('details')}"
            for node_id, (good, rs, _) in validated.items()
            if not good
            for r in rs
        ]
        return ok, "; ".join(texts)

    def run(self, graph: dict, target: str) -> Outcome:
        start = time.monotonic()
        ok, text = self.validate(graph, target)
        if not ok:
            return Outcome("refused", text, seconds=time.monotonic() - start)
        self.executor.execute(graph, uuid.uuid4().hex, {}, [target])
        seconds = time.monotonic() - start
        for event, data in self.executor.status_messages:
            if event in ("execution_error", "execution_interrupted"):
                exc = _exception_class(data.get("exception_type", ""))
                return Outcome("error", str(data.get("exception_message", "")), exc, seconds=seconds)
        entry = self.executor.caches.outputs.get(target)
        outputs = [o[0] if isinstance(o, list) and len(o) == 1 else o for o in entry.outputs] if entry else []
        return Outcome("ran", outputs=outputs, seconds=seconds)


def unsound_outputs(outputs: list, types: tuple) -> str | None:
    """Why the outputs of a run are not sound (NaN, values outside [0, 1] for IMAGE/MASK), or None."""
    for value, io_type in zip(outputs, types, strict=False):
        tensors = []
        if isinstance(value, torch.Tensor):
            tensors = [value]
        elif isinstance(value, dict) and isinstance(value.get("samples"), torch.Tensor):
            tensors = [value["samples"]]
        elif io_type == "CONDITIONING" and isinstance(value, list):
            tensors = [e[0] for e in value if isinstance(e, (list, tuple)) and isinstance(e[0], torch.Tensor)]
        for t in tensors:
            if t.is_floating_point() and not torch.isfinite(t).all():
                return f"{io_type} output holds NaN or infinite values"
            if io_type in ("IMAGE", "MASK") and t.numel() and (t.min() < 0 or t.max() > 1):
                return f"{io_type} output outside [0, 1]: {float(t.min())}..{float(t.max())}"
    return None


def judge(outcome: Outcome, input_name: str, must_refuse: bool, output_types: tuple) -> str | None:
    """Why this outcome breaks the rules, or None when it is acceptable."""
    if outcome.seconds > CASE_SECONDS:
        return f"took {outcome.seconds:.0f} s"
    if outcome.kind == "refused":
        return None
    if outcome.kind == "error":
        if outcome.exception is None or not issubclass(outcome.exception, ValueError):
            name = outcome.exception.__name__ if outcome.exception else "unknown exception"
            return f"raised {name}, not a clear ValueError: {outcome.message[:300]}"
        if must_refuse and input_name not in outcome.message:
            return f"the message does not name the input {input_name!r}: {outcome.message[:300]}"
        return None
    if must_refuse:
        return "ran with a value that can only be wrong (silently accepted)"
    return unsound_outputs(outcome.outputs, output_types)


def is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
