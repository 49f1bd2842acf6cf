"""Run a design session on a ComfyUI server, stage by stage, and keep everything it makes.

:func:`run_session` queues the graph of :func:`~.graph.build_design_graph` one stage at a time
(each prompt holds the earlier stages unchanged, so ComfyUI's cache answers them), saves each
stage's files into the output folder as soon as the stage finishes, measures how each edit kept
the design outside its region, and writes the run record ``run.json`` and the contact sheet.

A failure or an interrupt (Ctrl-C) stops the session: the server's prompt is interrupted, the
finished stages' files stay, and ``run.json`` says where it stopped and why.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..api_client import ComfyAPIError, ComfyClient, PromptFailed, PromptRejected
from ..queue import run_workflow
from ..schedule import PromptSchedule
from .graph import DesignGraph, Stage, build_design_graph, edit_start_t
from .metrics import BOUND_BLEND, load_latent, load_mask, load_rgb, preservation, union_outside
from .sheet import Panel, contact_sheet
from .spec import DesignSpec

log = logging.getLogger(__name__)

RECORD = "run.json"
SHEET = "contact_sheet.png"
EventFn = Callable[[str, dict], None]


class DesignError(RuntimeError):
    """A stage failed; the message is one line with the cause and the fix (the record says more)."""

    def __init__(self, message: str, record: dict | None = None):
        super().__init__(message)
        self.record = record


class DesignInterrupted(KeyboardInterrupt):
    """The user stopped the session; ``record`` is what was written to run.json."""

    def __init__(self, record: dict):
        super().__init__("interrupted")
        self.record = record


@dataclass
class SessionResult:
    record: dict
    out_dir: Path
    files: list[Path] = field(default_factory=list)


def stage_captions(spec: DesignSpec, stage: Stage) -> list[dict[str, Any]]:
    """What each window of the prompt schedule shows the model in ``stage`` (the staged captions).

    The draft runs through every window; an edit only through the windows at or below its start.
    """
    # TODO(evidence: GradientGuidedEdit logs its start step but has no output that says it): list only
    # the windows of the steps the edit ran, once the node gives a plan string as StagedKSampler does.
    from ..prompt import StagedDesign

    schedule = PromptSchedule.parse(spec.schedule)
    k = int(stage.key[4:]) if stage.edit is not None else 0
    design = StagedDesign(spec.edit_prompt(k), schedule)
    start = edit_start_t(spec, stage.edit) if stage.edit is not None else None
    out = []
    for window, caption in design.stage_captions():
        if start is not None and window.t_low > start:
            continue
        out.append({"t": [window.t_high, window.t_low], "fields": window.n_fields, "caption": caption})
    return out


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _failure_message(graph: DesignGraph, stage: Stage, exc: Exception, photo: str | None = None) -> str:
    """The failing node's own message, said in terms of what the user gave (the photo, an edit)."""
    if isinstance(exc, PromptFailed):
        status = exc.history.get("status", {})
        for event, data in status.get("messages", []):
            if event == "execution_error":
                node_id = str(data.get("node_id"))
                node = graph.nodes.get(node_id, {})
                kind = node.get("class_type", data.get("node_type"))
                text = _one_line(data.get("exception_message", ""))
                if kind == "HieraFash_PoseDetect":
                    return f"photo {photo or graph.spec.photo!r}: {text}"
                if kind == "HieraFash_ParseMask":
                    edit_stage = next((s for s in graph.stages if s.mask_node == node_id), stage)
                    return f"edit {edit_stage.index - 1} ({edit_stage.edit.describe()}): {text}"
                if kind in ("HieraFash_PoseKeypointFromJSON", "HieraFash_PoseToCanvas"):
                    return f"pose: {text}"
                title = node.get("_meta", {}).get("title", kind)
                return f"{stage.title}: node {node_id} ({title}, {kind}) failed: {data.get('exception_type')}: {text}"
        return f"{stage.title}: {_one_line(exc)}"
    if isinstance(exc, DesignError):  # already says its stage
        return _one_line(exc)
    if isinstance(exc, PromptRejected):
        return f"{stage.title}: ComfyUI refused the graph: {_one_line(exc)}"
    return f"{stage.title}: {_one_line(exc)}"


def _download(client: ComfyClient, entry: dict, stage: Stage, out_dir: Path) -> dict[str, str]:
    """Write the stage's saved files into ``out_dir`` under their session names; returns {name: path}."""
    written = {}
    outputs = entry.get("outputs", {})
    for name, (node_id, kind) in stage.saves.items():
        items = (outputs.get(node_id) or {}).get(kind) or []
        if not items:
            raise DesignError(f"{stage.title}: node {node_id} saved no {kind}; see the ComfyUI log")
        target = out_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if kind == "text":
            target.write_text(str(items[0]) + "\n", encoding="utf-8")
        else:
            item = items[0]
            target.write_bytes(client.view(item["filename"], item.get("subfolder", ""), item.get("type", "output")))
        written[name] = str(target.relative_to(out_dir))
    return written


def _figures(out_dir: Path, previous: Stage, stage: Stage) -> dict[str, Any]:
    src_latent = next(n for n in previous.saves if n.endswith(".latent"))
    new_latent = next(n for n in stage.saves if n.endswith(".latent"))
    src_image = next(n for n in previous.saves if n.endswith(".png"))
    new_image = next(n for n in stage.saves if n.endswith(".png"))
    figures = preservation(
        load_latent(out_dir / src_latent),
        load_latent(out_dir / new_latent),
        load_mask(out_dir / stage.mask_file),
        load_rgb(out_dir / src_image),
        load_rgb(out_dir / new_image),
    )
    figures["source"] = previous.key
    return figures


def _sheet(out_dir: Path, graph: DesignGraph, record: dict, note: str) -> str | None:
    """The contact sheet of the finished stages: pose, draft, each edit with its region outlined."""
    from PIL import Image

    panels = []
    done = {s["key"]: s for s in record["stages"] if s["status"] == "done"}
    if "draft" not in done:
        return None
    spec = graph.spec
    pose = Image.open(out_dir / "pose.png").convert("RGB")
    if spec.photo is not None and (out_dir / "photo.png").is_file():
        photo = Image.open(out_dir / "photo.png").convert("RGB")
        skeleton_mask = pose.convert("L").point(lambda v: 255 if v > 16 else 0)
        photo.paste(pose, (0, 0), skeleton_mask)
        pose = photo
    source = record.get("photo_source") or spec.photo
    pose_label = f"from {source}" if spec.photo else f"from {record.get('pose_source') or 'the pose file'}"
    panels.append(Panel(pose, "Pose", pose_label))
    draft_caption = spec.prompt().caption()
    panels.append(Panel(Image.open(out_dir / "draft.png"), "Draft", draft_caption))
    for stage in graph.stages[2:]:
        entry = done.get(stage.key)
        if entry is None:
            break
        image = next(n for n in stage.saves if n.endswith(".png"))
        fig = entry.get("preservation", {})
        kept = fig.get("latent_max_abs_diff_outside")
        psnr = fig.get("pixel_psnr_outside_db")
        kept_text = "" if kept is None else f"; outside the region: latent max change {kept:.2g}"
        if psnr is not None:
            kept_text += f", image PSNR {psnr:.0f} dB"
        elif fig.get("pixel_max_abs_diff_outside") == 0:  # pasted back: not one pixel changed
            kept_text += ", image unchanged"
        panels.append(
            Panel(
                Image.open(out_dir / image),
                f"Edit {stage.index - 1}: {stage.edit.field.label}",
                f"{stage.edit.field.code} {stage.edit.value}{kept_text}",
                Image.open(out_dir / stage.mask_file),
            )
        )
    width = min(256, max(176, spec.width))
    sheet = contact_sheet(panels, panel_width=width, caption_chars=width // 7, note=note)
    sheet.save(out_dir / SHEET)
    return SHEET


def _write_record(out_dir: Path, record: dict) -> None:
    tmp = out_dir / (RECORD + ".partial")
    tmp.write_text(json.dumps(record, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    tmp.replace(out_dir / RECORD)


def _start_stage(spec: DesignSpec, stage: Stage, record: dict) -> dict[str, Any]:
    """The stage's entry in run.json, before it runs: seed, staged captions, the edit."""
    entry: dict[str, Any] = {"key": stage.key, "title": stage.title, "status": "running"}
    if stage.key != "pose":
        entry["seed"] = spec.seed + (stage.index - 1)
        entry["captions"] = stage_captions(spec, stage)
    if stage.edit is not None:
        entry["edit"] = {"attribute": stage.edit.field.label, "code": stage.edit.field.code,
                         "value": stage.edit.value, "start_timestep": edit_start_t(spec, stage.edit),
                         "mask": stage.mask_file}  # fmt: skip
    record["stages"].append(entry)
    return entry


def _finish_files(out_dir: Path, graph: DesignGraph, client: ComfyClient, record: dict) -> None:
    """After the last stage: the draft-to-final figure and the session's workflow files."""
    if len(graph.stages) > 2:  # the draft against the last edit, outside every region
        masks = [load_mask(out_dir / s.mask_file) for s in graph.stages[2:]]
        last_latent = next(n for n in graph.stages[-1].saves if n.endswith(".latent"))
        first, last = load_latent(out_dir / "latents/draft.latent"), load_latent(out_dir / last_latent)
        outside = union_outside(masks, tuple(first.shape[-2:]))
        change = float((last - first).abs()[..., outside].max()) if outside.any() else math.nan
        record["draft_to_final_max_abs_latent_diff_outside_all_regions"] = None if math.isnan(change) else change
    try:
        info = client.object_info()
        (out_dir / "workflow.json").write_text(json.dumps(graph.ui(info), indent=1) + "\n", encoding="utf-8")
        record["workflow"] = "workflow.json"
    except ComfyAPIError as exc:
        log.warning("workflow.json not written: %s", exc)
    (out_dir / "workflow_api.json").write_text(json.dumps(graph.api(), indent=1) + "\n", encoding="utf-8")
    record["workflow_api"] = "workflow_api.json"


def run_session(
    spec: DesignSpec,
    server: str,
    out_dir: str | Path,
    *,
    stage_timeout: float = 1800.0,
    on_event: EventFn | None = None,
    record_extra: dict | None = None,
    sheet_note: str = "",
) -> SessionResult:
    """Run ``spec`` on the ComfyUI at ``server`` and write every stage's files into ``out_dir``.

    Args:
        spec: the session (its ``photo`` must already be in the server's input folder).
        stage_timeout: seconds allowed per stage.
        on_event: called with ``("stage", {...})`` when a stage starts, ``("progress", {"value",
            "max"})`` for each sampler step and ``("done", {...})`` when a stage's files are saved.
        record_extra: more entries for run.json (the model files used, the command line).
        sheet_note: a line under the contact sheet (e.g. that a test model draws noise).

    Raises:
        DesignError: a stage failed (one-line message; ``run.json`` written if a stage had finished).
        DesignInterrupted: Ctrl-C; the running prompt was interrupted, ``run.json`` written.
    """
    out_dir = Path(out_dir)
    graph = build_design_graph(spec)
    client = ComfyClient(server, timeout=30)
    emit = on_event or (lambda kind, data: None)
    record: dict[str, Any] = {
        "hierafash_design": 1,
        "status": "running",
        "stopped_at": None,
        "error": None,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": None,
        "server": server,
        "settings": spec.settings(),
        **(record_extra or {}),
        "schedule": {"spec": PromptSchedule.parse(spec.schedule).spec(), "draft_plan": None},
        "stages": [],
        "contact_sheet": None,
        "workflow": None,
    }
    files: list[Path] = []
    t0 = time.monotonic()

    def finish(status: str, stopped_at: str | None, error: str | None) -> None:
        record.update(status=status, stopped_at=stopped_at, error=error, seconds=round(time.monotonic() - t0, 2))
        if any(s["status"] == "done" for s in record["stages"]):
            try:
                record["contact_sheet"] = _sheet(out_dir, graph, record, sheet_note)
            except (OSError, ValueError) as exc:  # a sheet must not hide the session's own outcome
                log.warning("contact sheet not written: %s", exc)
            _write_record(out_dir, record)

    current: dict[str, Any] = {}
    try:
        for stage in graph.stages:
            current = _start_stage(spec, stage, record)
            emit("stage", {"index": stage.index, "count": len(graph.stages), "key": stage.key,
                           "title": stage.title, "steps": spec.steps if stage.progress_node else 0})  # fmt: skip

            def progress(event: dict, node=stage.progress_node) -> None:
                data = event.get("data", {})
                if event.get("type") == "progress" and node is not None and str(data.get("node")) == node:
                    emit("progress", {"value": data.get("value", 0), "max": data.get("max", 1)})

            start = time.monotonic()
            try:
                result = run_workflow(server, graph.api(stage.index), timeout=stage_timeout, on_progress=progress)
                current["files"] = _download(client, result.history, stage, out_dir)
                if stage.edit is not None:
                    fig = _figures(out_dir, graph.stages[stage.index - 1], stage)
                    if spec.edit_mode in ("both", "blend"):
                        kept = fig["latent_max_abs_diff_outside"]
                        fig["meets_blend_bound"] = kept is None or kept < BOUND_BLEND
                    current["preservation"] = fig
            except (ComfyAPIError, DesignError, OSError) as exc:
                message = _failure_message(graph, stage, exc, record.get("photo_source"))
                current.update(status="failed", seconds=round(time.monotonic() - start, 2), error=message)
                finish("failed", stage.key, message)
                raise DesignError(message, record) from None
            current.update(status="done", seconds=round(time.monotonic() - start, 2), prompt_id=result.prompt_id)
            files += [out_dir / p for p in current["files"].values()]
            if stage.key == "draft":
                record["schedule"]["draft_plan"] = (out_dir / "draft_plan.txt").read_text(encoding="utf-8").strip()
            emit("done", {"key": stage.key, "title": stage.title, "seconds": current["seconds"],
                          "files": list(current["files"].values())})  # fmt: skip
        _finish_files(out_dir, graph, client, record)
    except KeyboardInterrupt:
        if current and current.get("status") != "done":
            current["status"] = "interrupted"
        try:
            client.interrupt()
        except ComfyAPIError as exc:
            log.info("could not interrupt the server: %s", exc)
        # stopped_at: the stage that was running (its status says whether it had finished)
        finish("interrupted", current.get("key"), "stopped by the user (Ctrl-C)")
        raise DesignInterrupted(record) from None
    finish("finished", None, None)
    return SessionResult(record, out_dir, files)
