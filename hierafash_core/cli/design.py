"""``hierafash design`` and ``hierafash demo``: a whole design session, run by the pack's nodes in ComfyUI.

A photo (or a pose file), design concepts, attribute edits in order -> the pose, a draft, one image
per edit, every edit region, a contact sheet and ``run.json``. Everything runs inside a real ComfyUI:
by default a private headless one started here on 127.0.0.1 (``--comfyui DIR``, or found), or one
already running (``--server URL``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path
from typing import Any

from . import CLIError
from .design_run import NOTICES, run_session_command

DEMO_OUT = "out/demo"
DEMO_SIZE = (192, 264)  # 3/8 of the paper's 512x704: the demo's time budget on 2 CPU cores
DEMO_STEPS = 8
# The demo on the built-in mini designer: its one size, the step count and guidance its evaluation
# used (docs/mini-designer.md), and a draft whose attributes the edits then change one at a time.
# Edits guide away from the design before them (the evaluation's best masked method on this model:
# sleeve-length edits 38% -> 50%, docs/mini-designer.md) along the clean estimate (guidance through
# the model reached 18% of edits against 28%, at a backward pass per step).
# One pass, not five resampling passes: with four seeds on 60 edits per length (bench/mini_edit_variants.py
# --cases 300 --seeds 4) one pass read 64% of sleeve and 91% of length edits as asked, five 65% / 89%, at
# three times the time and with less of the region's colour kept (docs/mini-designer.md).
# Sleeve-length edits start from the asked sleeve painted on from the pose (--sleeve-hint), lower down: on
# 60 edits x 4 seeds 74% read as asked against 64% without (bench/mini_edit_variants.py,
# docs/mini-designer.md).
MINI_DEMO = {"steps": 20, "cfg": 4.0, "edit_negative": "source", "edit_resample": 1, "edit_paste": True,
             "sleeve_hint": True}  # fmt: skip
MINI_DEMO_ATTRIBUTES = {"clothing_length": "Knee-length", "sleeve_length": "Short Sleeve", "collar": "Round",
                        "hem": "Flat"}  # fmt: skip
MINI_DEMO_EDITS = ("sleeve length=Long Sleeve", "clothing length=Long", "collar=V-Neck", "hem=Ruffle")
MINI_DEMO_POSE = "photo_camera"  # the pose bank's pose from the cameraman photo; held out of training
FILE_KEYS = {
    "photo", "pose", "concepts", "attributes", "edits", "checkpoint", "controlnet", "seed", "steps", "cfg", "sampler",
    "scheduler", "edit_sampler", "edit_mode", "edit_negative", "edit_resample", "edit_paste", "sleeve_hint", "width",
    "height", "fit", "start_denoise", "negative", "schedule", "pose_strength", "allow_free_text", "out",
}  # fmt: skip


def _whole_number(text: str) -> int:
    """argparse type: a whole number, with the fix in the message (the range is the spec's to check)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of passes per step, 1 (off) to 20") from None


def _add_run_options(p: argparse.ArgumentParser, out_default: str) -> None:
    from ..design.canvas import FITS
    from ..design.spec import EDIT_MODES, EDIT_NEGATIVES, EDIT_SAMPLERS

    m = p.add_argument_group("model and host")
    m.add_argument(
        "--checkpoint",
        metavar="NAME|PATH",
        help="SD1.5/SD2.1/SDXL checkpoint (.safetensors): a path, or a name in ComfyUI's "
        "models/checkpoints or extra_model_paths.yaml; 'built-in': the pack's mini designer (128x192, "
        "built on first use); 'test-model': the seeded random test model, which draws noise "
        "(default: design test-model, demo built-in)",
    )
    m.add_argument(
        "--controlnet",
        metavar="NAME|PATH",
        help="optional OpenPose ControlNet (.safetensors) that holds the pose: a path or a name in models/controlnet",
    )
    m.add_argument(
        "--extra-model-paths",
        action="append",
        default=[],
        metavar="YAML",
        help="another extra_model_paths.yaml to search for model names (repeatable)",
    )
    m.add_argument(
        "--comfyui",
        metavar="DIR",
        help="ComfyUI folder to run (default: $HIERAFASH_COMFYUI, the "
        "ComfyUI this pack is installed in, or the test host)",
    )
    m.add_argument(
        "--server",
        metavar="URL",
        help="use this running ComfyUI instead of starting one (it needs this pack; model names are its own)",
    )
    m.add_argument("--cpu", action="store_true", help="run the private ComfyUI on the CPU even when a GPU is seen")
    # No argparse default: a design file's `out` applies unless --out is typed (the command line wins).
    m.add_argument("--out", help=f"output folder (default: {out_default})")
    p.set_defaults(out_default=out_default)
    m.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per stage (default: %(default)s)")
    s = p.add_argument_group("sampling")
    s.add_argument("--seed", type=int, help="seed of the draft; edit k uses seed + k (default: 20240114)")
    s.add_argument(
        "--steps",
        type=int,
        help=f"steps of the whole schedule; an edit runs the steps below its start (default: 30; demo: {DEMO_STEPS})",
    )
    s.add_argument("--cfg", type=float, help="classifier-free guidance (default: 9, the paper's)")
    s.add_argument("--sampler", help="draft sampler, as KSampler's (default: ddim)")
    s.add_argument("--scheduler", help="sigma schedule, as KSampler's (default: normal)")
    s.add_argument("--edit-sampler", choices=EDIT_SAMPLERS, help="edit step rule (default: euler = DDIM eta 0)")
    s.add_argument(
        "--edit-negative",
        choices=EDIT_NEGATIVES,
        help="what each edit's guidance pushes away from: text (the negative prompt; the default) or source "
        "(the design before the edit, so only the changed attribute is pushed; the default on the built-in mini "
        "designer)",
    )
    s.add_argument(
        "--edit-resample",
        type=_whole_number,
        metavar="PASSES",
        help="passes per step in the first half of each edit, noised back up between them, so the redrawn "
        "region agrees with the rest (1 = off, the default, also on the built-in mini designer)",
    )
    s.add_argument(
        "--edit-paste",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="free every latent cell an edit's region touches and paste the decoded edit into the image before "
        "it inside the region, so every pixel outside stays (default: off; on for the built-in mini designer)",
    )
    s.add_argument(
        "--sleeve-hint",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="start each sleeve-length edit from the image with the asked sleeve painted on from the pose, at a "
        "lower noise level, so the model redraws a sleeve whose end is already placed (default: off; on for the "
        "built-in mini designer)",
    )
    s.add_argument(
        "--edit-mode",
        choices=EDIT_MODES,
        help="how an edit keeps the rest: blend (exact outside the region), guide (gradient guidance), both (default)",
    )
    s.add_argument(
        "--width", type=int, help=f"design width in pixels, a multiple of 8 (default: 512; demo: {DEMO_SIZE[0]})"
    )
    s.add_argument("--height", type=int, help=f"design height (default: 704; demo: {DEMO_SIZE[1]})")
    s.add_argument(
        "--fit",
        choices=FITS,
        help="how the photo goes onto the canvas: contain (pad), cover (crop), stretch (default: contain)",
    )
    s.add_argument(
        "--start-from-photo",
        dest="start_denoise",
        type=float,
        metavar="DENOISE",
        help="start the draft from the photo with this denoise (0-1; lower keeps more of the photo) "
        "instead of from noise",
    )
    s.add_argument("--negative", help="negative prompt")
    s.add_argument(
        "--schedule", help="prompt schedule: paper (default), two-stage:500, or windows '999-900:5, 899-0:10'"
    )
    s.add_argument("--pose-strength", type=float, help="strength of the pose ControlNet (default: 1)")
    s.add_argument("--allow-free-text", action="store_true", default=None,
                   help="keep concept and attribute values that are not in the vocabulary as typed")  # fmt: skip


def register(sub: argparse._SubParsersAction) -> None:
    from ..taxonomy import CONCEPT_FIELDS

    p = sub.add_parser(
        "design",
        help="a whole design session: pose from a photo, a draft from concepts, attribute edits in order",
        description="Run a design session through the pack's nodes inside ComfyUI: the pose from PHOTO (or --pose), "
        "a draft from the design concepts, then each --edit in order, each only inside its body region. Writes every "
        "stage's image, every region mask, the pose, a contact sheet and run.json to --out.",
        epilog='Example: hierafash design person.jpg --category Dress --style Elegant --edit "sleeve length=Long '
        'Sleeve" --edit "collar=V-Neck" --edit "hem=Draped" --checkpoint v1-5-pruned-emaonly.safetensors',
    )
    p.add_argument("photo", nargs="?", help="photo of a person (the pose comes from it; PNG, JPEG, WebP)")
    d = p.add_argument_group("design")
    d.add_argument("--pose", metavar="FILE.json", help="OpenPose JSON keypoints instead of a photo")
    d.add_argument("--design", metavar="FILE", help="a JSON or YAML design file (options given here win)")
    d.add_argument("--concepts", metavar="CAPTION", help="concepts as a comma caption: 'Dress, Elegant, Party'")
    for f in CONCEPT_FIELDS:
        d.add_argument(f"--{f.key}", metavar="VALUE", help=f"concept {f.index}, e.g. {f.values[0]!r}")
    d.add_argument(
        "--attribute",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an attribute of the draft itself, e.g. 'clothing length=Long' (repeatable)",
    )
    d.add_argument("--edit", action="append", default=[], metavar="NAME=VALUE",
                   help="an edit, in order: 'sleeve length=Long Sleeve', 'collar=V-Neck' (repeatable; replaces the "
                        "design file's edits)")  # fmt: skip
    _add_run_options(p, "out/design")
    p.set_defaults(func=run_design)

    demo = sub.add_parser(
        "demo",
        help="the main job: a design session on the built-in mini designer (built on first use)",
        description="A design session on the pack's built-in mini designer (128x192; built on first use, about "
        "an hour on 2 CPU cores): the pose measured on scikit-image's cameraman photo, the paper's example "
        f"concepts, then four edits ({', '.join(MINI_DEMO_EDITS)}), into {DEMO_OUT}. With --checkpoint test-model: "
        f"the cameraman photo itself on the random test model at {DEMO_SIZE[0]}x{DEMO_SIZE[1]} and {DEMO_STEPS} "
        "steps (noise, in a minute); with any other --checkpoint: that model on the cameraman photo.",
    )
    _add_run_options(demo, DEMO_OUT)
    demo.set_defaults(func=run_demo)


# -- gathering the settings ---------------------------------------------------------------------------
def _settings(args: argparse.Namespace) -> tuple[dict[str, Any], Path | None, set[str]]:
    """File settings overlaid with the command line's; returns (settings, design file folder, the keys
    whose values came from the file)."""
    from ..design.spec import load_design_file

    settings: dict[str, Any] = {}
    base = None
    if getattr(args, "design", None):
        settings = load_design_file(args.design)
        unknown = sorted(set(settings) - FILE_KEYS)
        if unknown:
            raise CLIError(f"design file {args.design}: unknown setting(s) {', '.join(unknown)}; known: "
                           f"{', '.join(sorted(FILE_KEYS))}")  # fmt: skip
        base = Path(args.design).resolve().parent
    from_file = set(settings)
    for key in ("checkpoint", "controlnet", "seed", "steps", "cfg", "sampler", "scheduler", "edit_sampler",
                "edit_mode", "edit_negative", "edit_resample", "edit_paste", "sleeve_hint", "width", "height", "fit",
                "start_denoise", "negative", "schedule", "pose_strength", "allow_free_text"):  # fmt: skip
        value = getattr(args, key, None)
        if value is not None:
            settings[key] = value
            from_file.discard(key)
    for key, option in (("photo", "photo"), ("pose", "pose"), ("edits", "edit"), ("attributes", "attribute"),
                        ("concepts", "concepts")):  # fmt: skip
        if getattr(args, option, None):
            from_file.discard(key)
    from ..taxonomy import CONCEPT_FIELDS

    if any(getattr(args, f.key, None) for f in CONCEPT_FIELDS):
        from_file.discard("concepts")
    return settings, base, from_file


# the first word of an error about a setting, as the spec and the parsers write it, and that setting
_MESSAGE_KEYS = {"edit": "edits", "attribute": "attributes", "pose": "pose", "concepts": "concepts"}


def _named_file(exc: Exception, design: str, from_file: set[str]) -> Exception | None:
    """The same error naming the design file, when the setting it is about came from that file."""
    message = str(exc)
    word = re.match(r"([a-z_]+)", message)  # a message about a typed option starts with "--"
    if not word or "design file" in message:
        return None
    key = _MESSAGE_KEYS.get(word.group(1), word.group(1))
    if key not in from_file:
        return None
    try:
        return type(exc)(f"design file {design}: {message}")
    except TypeError:  # an error type that needs more than a message: leave it as it is
        return None


def _concepts(args: argparse.Namespace, settings: dict, allow_free_text: bool) -> dict[str, str]:
    from ..design.spec import EXAMPLE_CONCEPTS, normalize_fields
    from ..taxonomy import CONCEPT_FIELDS, Level

    concepts = normalize_fields(settings.get("concepts"), Level.CONCEPT, "concepts", allow_free_text)
    if getattr(args, "concepts", None):
        concepts.update(normalize_fields(args.concepts, Level.CONCEPT, "--concepts", allow_free_text))
    for f in CONCEPT_FIELDS:
        value = getattr(args, f.key, None)
        if value:
            concepts.update(normalize_fields({f.key: value}, Level.CONCEPT, f"--{f.key}", allow_free_text))
    if not concepts:
        NOTICES.append("no concepts given: using the paper's example, " + ", ".join(EXAMPLE_CONCEPTS.values()))
        concepts = dict(EXAMPLE_CONCEPTS)
    return concepts


def _attributes(items: list, allow_free_text: bool, category: str | None) -> dict[str, str]:
    from ..design.spec import Edit

    out = {}
    for item in items:
        try:
            edit = Edit.parse(item, category, allow_free_text)
        except ValueError as exc:
            raise CLIError(str(exc).replace("edit ", "attribute ", 1)) from None
        out[edit.key] = edit.value
    return out


def _pose_text(path: Path, label: str = "--pose") -> str:
    from ..pose.openpose_json import people_from_pose_keypoint

    if path.is_dir():
        raise CLIError(f"{label} {path}: is a folder; give an OpenPose JSON file")
    if not path.is_file():
        raise FileNotFoundError(f"{label} {path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CLIError(f"{label} {path}: not valid JSON ({exc}); give OpenPose JSON keypoints") from None
    try:
        people = people_from_pose_keypoint(data, name=f"{label} {path}")
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    frames = data if isinstance(data, list) else [data]
    if not people or people[0].shape[0] == 0:
        raise CLIError(f"{label} {path}: the keypoints list no person; give the keypoints of one person")
    if not frames[0].get("canvas_width") or not frames[0].get("canvas_height"):
        raise CLIError(f"{label} {path}: no canvas_width/canvas_height, so the points cannot be placed; add the size "
                       "of the image they were found on")  # fmt: skip
    return json.dumps(frames[:1])


def _mini_defaults(settings: dict) -> None:
    """The built-in mini designer's one size and the settings it was evaluated with, unless given."""
    from ..design.spec import MINI_SIZE

    for key, value in {**MINI_DEMO, "width": MINI_SIZE[0], "height": MINI_SIZE[1]}.items():
        settings.setdefault(key, value)


def run_design(args: argparse.Namespace) -> int:
    NOTICES.clear()
    settings, base, from_file = _settings(args)
    try:
        return _run_design(args, settings, base)
    except (CLIError, ValueError, OSError) as exc:
        named = _named_file(exc, args.design, from_file) if from_file else None
        if named is None:
            raise
        raise named.with_traceback(exc.__traceback__) from None


def _run_design(args: argparse.Namespace, settings: dict[str, Any], base: Path | None) -> int:
    from ..design.host import photo_png
    from ..design.spec import MINI_DESIGNER, Edit

    if settings.get("checkpoint") == MINI_DESIGNER:
        _mini_defaults(settings)
    allow = bool(settings.get("allow_free_text"))
    photo_path = args.photo or settings.get("photo")
    pose_path = args.pose or settings.get("pose")
    if photo_path and pose_path:
        raise CLIError("give the pose as a photo or as --pose FILE.json, not both")
    if not photo_path and not pose_path:
        raise CLIError("give a photo of a person (hierafash design PHOTO ...) or --pose FILE.json")
    concepts = _concepts(args, settings, allow)
    category = concepts.get("category")
    file_attributes = settings.get("attributes") or {}
    if not isinstance(file_attributes, dict):
        raise CLIError(f"design file {args.design}: 'attributes' must be a mapping, e.g. {{collar: V-Neck}}")
    try:
        attributes = _attributes([f"{k}={v}" for k, v in file_attributes.items()], allow, category)
    except CLIError as exc:
        # name the file even when --attribute is typed too (which takes 'attributes' off the file's settings)
        raise CLIError(f"design file {args.design}: {exc}") from None
    attributes.update(_attributes(list(args.attribute), allow, category))  # typed ones win
    file_edits = settings.get("edits") or []
    if not isinstance(file_edits, list):
        raise CLIError(f"design file {args.design}: 'edits' must be a list, e.g. "
                       '["sleeve length=Long Sleeve", "collar=V-Neck"]')  # fmt: skip
    raw_edits = list(args.edit) if args.edit else list(file_edits)
    try:
        edits = [Edit.parse(item, category, allow) for item in raw_edits]
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if not edits:
        NOTICES.append("no --edit given: the session makes the draft only")
    photo = pose_json = None
    if photo_path:
        path = Path(photo_path)
        if base is not None and not path.is_absolute() and not path.exists():
            path = base / path
        if path.is_dir():
            raise CLIError(f"photo {str(path)!r}: is a folder; give an image file (PNG, JPEG, WebP)")
        if not path.is_file():
            raise FileNotFoundError(f"photo {str(path)!r}: no such file")
        try:
            photo = (photo_png(path=path), path.name)
        except ValueError as exc:
            raise CLIError(f"photo {str(path)!r}: {exc}") from None
    else:
        path = Path(pose_path)
        if base is not None and not path.is_absolute() and not path.exists():
            path = base / path
        pose_json = _pose_text(path, "--pose" if args.pose else "pose")
    source = None if photo else path.name
    return run_session_command(args, settings, photo, pose_json, concepts, attributes, edits, pose_source=source)


def run_demo(args: argparse.Namespace) -> int:
    import skimage.data

    from ..design.host import photo_png
    from ..design.spec import EXAMPLE_CONCEPTS, EXAMPLE_EDITS, MINI_DESIGNER, MINI_SIZE, Edit

    settings, _, _ = _settings(args)
    settings.setdefault("checkpoint", MINI_DESIGNER)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # The demo's graphs are small: one torch thread per process beats a pool that spins on a busy CPU
    # (measured on 2 shared cores: 53 s instead of 121 s for the whole demo). The server inherits it.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    category = EXAMPLE_CONCEPTS["category"]
    if settings["checkpoint"] == MINI_DESIGNER:
        from ..synth.pose_bank import POSES_BY_NAME, openpose_json, place

        _mini_defaults(settings)
        keypoints = place(POSES_BY_NAME[MINI_DEMO_POSE].keypoints, MINI_SIZE)
        pose_json = json.dumps(openpose_json(keypoints, MINI_SIZE))
        edits = [Edit.parse(e, category) for e in MINI_DEMO_EDITS]
        banner = ("demo: the built-in mini designer; the pose measured on scikit-image's cameraman photo (held out "
                  "of its training) -> draft -> edits: " + ", ".join(MINI_DEMO_EDITS))  # fmt: skip
        source = "the cameraman photo (pose bank, held out)"
        return run_session_command(args, settings, None, pose_json, dict(EXAMPLE_CONCEPTS),
                                   dict(MINI_DEMO_ATTRIBUTES), edits, pose_source=source, banner=banner)  # fmt: skip
    settings.setdefault("width", DEMO_SIZE[0])
    settings.setdefault("height", DEMO_SIZE[1])
    settings.setdefault("steps", DEMO_STEPS)
    banner = "demo: scikit-image's cameraman photo -> pose -> draft -> edits: " + ", ".join(EXAMPLE_EDITS)
    edits = [Edit.parse(e, category) for e in EXAMPLE_EDITS]
    photo = (photo_png(array=skimage.data.camera()), "skimage.data.camera()")
    return run_session_command(args, settings, photo, None, dict(EXAMPLE_CONCEPTS), {}, edits, banner=banner)
