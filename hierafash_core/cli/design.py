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
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import CLIError

DEMO_OUT = "out/demo"
DEMO_SIZE = (192, 264)  # 3/8 of the paper's 512x704: the demo's time budget on 2 CPU cores
DEMO_STEPS = 8
TEST_MODEL_NOTE = (
    "These images are noise: no --checkpoint was given, so the seeded random test model drew them "
    "(it proves every step runs, not what a design looks like)."
)
REAL_MODEL_HOWTO = (
    "For real designs give an SD1.5, SD2.1 or SDXL checkpoint and, best, an OpenPose ControlNet made for it, "
    "as a path or a file name in ComfyUI/models/checkpoints and models/controlnet (or a folder of your "
    "extra_model_paths.yaml): hierafash design PHOTO --checkpoint v1-5-pruned-emaonly.safetensors "
    "--controlnet control_v11p_sd15_openpose.safetensors (SDXL: add --width 832 --height 1216). Nothing is downloaded."
)
NOTICES: list[str] = []  # said once the settings are known to be good (an error stays the only line)
FILE_KEYS = {
    "photo", "pose", "concepts", "attributes", "edits", "checkpoint", "controlnet", "seed", "steps", "cfg", "sampler",
    "scheduler", "edit_sampler", "edit_mode", "width", "height", "fit", "start_denoise", "negative", "schedule",
    "pose_strength", "allow_free_text", "out",
}  # fmt: skip


def _add_run_options(p: argparse.ArgumentParser, out_default: str) -> None:
    from ..design.canvas import FITS
    from ..design.spec import EDIT_MODES, EDIT_SAMPLERS

    m = p.add_argument_group("model and host")
    m.add_argument(
        "--checkpoint",
        metavar="NAME|PATH",
        help="SD1.5/SD2.1/SDXL checkpoint (.safetensors): a path, or a name in ComfyUI's "
        "models/checkpoints or extra_model_paths.yaml (default: the seeded random test model, "
        "which draws noise)",
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
    m.add_argument("--out", default=out_default, help="output folder (default: %(default)s)")
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
        help="the design session on a real photo (scikit-image's cameraman), with the default model",
        description="hierafash design on skimage.data.camera() with the paper's example concepts and three edits "
        f"(sleeve length, collar, hem), at {DEMO_SIZE[0]}x{DEMO_SIZE[1]} and {DEMO_STEPS} steps, into {DEMO_OUT}.",
    )
    _add_run_options(demo, DEMO_OUT)
    demo.set_defaults(func=run_demo)


# -- gathering the settings ---------------------------------------------------------------------------
def _check_out_dir(out: Path) -> None:
    """The output folder exists (made if missing) and takes files; else a one-line cause and fix."""
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out}: is a file, not a folder; give a folder path (it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".hierafash-write-test-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise CLIError(
            f"--out {out}: cannot write there ({reason}); choose a folder you can write to, or fix its permissions"
        ) from None


def _settings(args: argparse.Namespace) -> tuple[dict[str, Any], Path | None]:
    """File settings overlaid with the command line's; returns (settings, design file folder)."""
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
    for key in ("checkpoint", "controlnet", "seed", "steps", "cfg", "sampler", "scheduler", "edit_sampler",
                "edit_mode", "width", "height", "fit", "start_denoise", "negative", "schedule", "pose_strength",
                "allow_free_text"):  # fmt: skip
        value = getattr(args, key, None)
        if value is not None:
            settings[key] = value
    return settings, base


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


def _pose_text(path: Path) -> str:
    from ..pose.openpose_json import people_from_pose_keypoint

    if not path.is_file():
        raise FileNotFoundError(f"--pose {path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CLIError(f"--pose {path}: not valid JSON ({exc}); give OpenPose JSON keypoints") from None
    try:
        people = people_from_pose_keypoint(data, name=f"--pose {path}")
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    frames = data if isinstance(data, list) else [data]
    if not people or people[0].shape[0] == 0:
        raise CLIError(f"--pose {path}: the keypoints list no person; give the keypoints of one person")
    if not frames[0].get("canvas_width") or not frames[0].get("canvas_height"):
        raise CLIError(f"--pose {path}: no canvas_width/canvas_height, so the points cannot be placed; add the size "
                       "of the image they were found on")  # fmt: skip
    return json.dumps(frames[:1])


# -- running --------------------------------------------------------------------------------------------
class _Progress:
    """One line per stage with a bar that follows the sampler's steps (stderr)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = -1
        self.first: tuple[float, int] | None = None  # (time, step) of the first step seen: the rate leaves out loading

    def __call__(self, kind: str, data: dict) -> None:
        if kind == "stage":
            self.first, self.last = None, -1
            print(f"[{data['index'] + 1}/{data['count']}] {data['title']}", file=sys.stderr, flush=True)
        elif kind == "progress":
            value, total = int(data["value"]), max(1, int(data["max"]))
            quarter = 4 * value // total
            if not self.tty and quarter == self.last and value < total:
                return
            self.last = quarter
            bar = "#" * (24 * value // total)
            now = time.monotonic()
            if self.first is None:
                self.first = (now, value)
            rate = (now - self.first[0]) / (value - self.first[1]) if value > self.first[1] else None
            speed = f", {rate:.1f} s/step" if rate else ""
            end = "\n" if value >= total else ("\r" if self.tty else "\n")
            print(f"      [{bar:<24}] {value}/{total} steps{speed}", end=end, file=sys.stderr, flush=True)
        elif kind == "done":
            print(f"      done in {data['seconds']:.1f} s: {', '.join(data['files'])}", file=sys.stderr, flush=True)


def _resolve_models(settings: dict, comfyui: Path | None, extra: list[str]) -> tuple[dict[str, Path], dict, bool]:
    """Model files for a private server: ({"checkpoints/name": path}, record entry, is the test model)."""
    from ..design.host import default_models_dir
    from ..model_files import resolve_model
    from ..models.tiny import ensure_tiny_checkpoint

    configs = [Path(p) for p in extra]
    models: dict[str, Path] = {}
    test_model = not settings.get("checkpoint")
    if test_model:
        path = ensure_tiny_checkpoint(default_models_dir() / "checkpoints")
    else:
        path = resolve_model(settings["checkpoint"], "checkpoints", comfyui, configs)
    models[f"checkpoints/{path.name}"] = path
    settings["checkpoint"] = path.name
    entry = {"checkpoint": str(path), "test_model": test_model, "controlnet": None}
    if settings.get("controlnet"):
        cn = resolve_model(settings["controlnet"], "controlnet", comfyui, configs)
        models[f"controlnet/{cn.name}"] = cn
        settings["controlnet"] = cn.name
        entry["controlnet"] = str(cn)
    return models, entry, test_model


def _check_server_models(url: str, info: dict, settings: dict) -> tuple[dict, bool]:
    from ..design.host import server_choices
    from ..models.tiny import DEFAULT_NAME

    missing = [n for n in ("HieraFash_PoseToCanvas", "HieraFash_GradientGuidedEdit") if n not in info]
    if missing:
        raise CLIError(f"--server {url}: this ComfyUI lacks the HieraFash nodes ({', '.join(missing)}); install "
                       "the pack into its custom_nodes folder and restart it, or leave out --server")  # fmt: skip
    test_model = not settings.get("checkpoint")
    if test_model:
        settings["checkpoint"] = DEFAULT_NAME
    for key, node, name, folder in (("checkpoint", "CheckpointLoaderSimple", "ckpt_name", "checkpoints"),
                                    ("controlnet", "ControlNetLoader", "control_net_name", "controlnet")):  # fmt: skip
        wanted = settings.get(key)
        if not wanted:
            continue
        choices = server_choices(info, node, name)
        if wanted not in choices:
            shown = ", ".join(choices[:8]) + (" ..." if len(choices) > 8 else "") if choices else "none"
            raise CLIError(f"--{key} {wanted!r}: the server at {url} has no such file (it has: {shown}); "
                           f"put it in that ComfyUI's models/{folder} folder and restart it, or name one it "
                           "has")  # fmt: skip
    entry = {"checkpoint": settings["checkpoint"], "test_model": test_model, "controlnet": settings.get("controlnet")}
    return entry, test_model


def _session(args: argparse.Namespace, settings: dict, photo: tuple[bytes, str] | None, pose_json: str | None,
             concepts: dict, attributes: dict, edits: list) -> int:  # fmt: skip
    from ..api_client import ComfyAPIError, ComfyClient
    from ..comfy_server import find_comfyui
    from ..design.host import accelerator, private_server, upload_photo
    from ..design.session import DesignError, DesignInterrupted, run_session
    from ..design.spec import DesignSpec

    out = Path(settings.pop("out", None) or args.out)
    _check_out_dir(out)
    spec_kwargs = {k: v for k, v in settings.items() if k not in ("photo", "pose", "concepts", "attributes", "edits")}
    spec_kwargs.update(concepts=concepts, attributes=attributes, edits=edits)
    # Check every setting now, before a server starts (the photo's name is set once it is uploaded).
    DesignSpec(photo="photo.png" if photo else None, pose_json=pose_json, **{**spec_kwargs, "checkpoint": "x"})
    extra = {"argv": sys.argv[1:]}

    def go(url: str, models_entry: dict, test_model: bool) -> int:
        for notice in NOTICES:
            print(notice, file=sys.stderr)
        NOTICES.clear()
        client = ComfyClient(url, timeout=60)
        name = upload_photo(client, photo[0], photo[1]) if photo else None
        spec = DesignSpec(photo=name, pose_json=pose_json, **spec_kwargs)
        note = TEST_MODEL_NOTE if test_model else ""
        try:
            result = run_session(spec, url, out, stage_timeout=args.timeout, on_event=_Progress(),
                                 record_extra={**extra, "photo_source": photo[1] if photo else None,
                                               "models": models_entry}, sheet_note=note)  # fmt: skip
        except DesignInterrupted as stop:
            rec = stop.record
            done = [s["key"] for s in rec["stages"] if s["status"] == "done"]
            print(f"\nhierafash design: stopped during {rec['stopped_at']}; kept {', '.join(done) or 'nothing'}"
                  f"{'; record: ' + str(out / 'run.json') if done else ''}", file=sys.stderr)  # fmt: skip
            return 130
        except DesignError as exc:
            raise CLIError(str(exc)) from None
        rec = result.record
        print(f"wrote {out}: {', '.join(s['key'] for s in rec['stages'])} in {rec['seconds']:.0f} s; "
              f"contact sheet {out / rec['contact_sheet']}, record {out / 'run.json'}")  # fmt: skip
        for stage in rec["stages"]:
            fig = stage.get("preservation")
            if fig:
                psnr = fig.get("pixel_psnr_outside_db")
                print(f"  {stage['title']}: outside its region the latent changed by at most "
                      f"{fig['latent_max_abs_diff_outside']:.2g}, image PSNR "
                      f"{'inf' if psnr is None else f'{psnr:.1f}'} dB")  # fmt: skip
        if test_model:
            print(TEST_MODEL_NOTE)
            print(REAL_MODEL_HOWTO)
        return 0

    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):  # stop like Ctrl-C: interrupt, stop the server, keep the record
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        if args.server:
            client = ComfyClient(args.server, timeout=60)
            try:
                info = client.object_info()
            except (ComfyAPIError, ValueError) as exc:
                raise CLIError(f"--server {args.server}: no ComfyUI answers there ({exc}); start it, or leave out "
                               "--server to start a private one") from None  # fmt: skip
            entry, test_model = _check_server_models(args.server, info, settings)
            spec_kwargs["checkpoint"] = settings["checkpoint"]
            if settings.get("controlnet"):
                spec_kwargs["controlnet"] = settings["controlnet"]
            return go(args.server, entry, test_model)
        comfyui = find_comfyui(args.comfyui)
        models, entry, test_model = _resolve_models(settings, comfyui, args.extra_model_paths)
        spec_kwargs["checkpoint"] = settings["checkpoint"]
        spec_kwargs["controlnet"] = settings.get("controlnet")
        print(f"starting ComfyUI from {comfyui} (private, on 127.0.0.1)", file=sys.stderr, flush=True)
        device = "cpu" if args.cpu else (accelerator() or "cpu")
        entry["device"] = device
        try:
            with private_server(comfyui, models, keep_log=out / "comfyui.log", cpu=device == "cpu") as server:
                return go(server.url, entry, test_model)
        except (RuntimeError, TimeoutError) as exc:
            raise CLIError(f"ComfyUI did not start: {exc}") from None
    except KeyboardInterrupt:
        print("\nhierafash design: stopped before the first stage finished; nothing was written", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_design(args: argparse.Namespace) -> int:
    from ..design.host import photo_png
    from ..design.spec import Edit

    NOTICES.clear()
    settings, base = _settings(args)
    allow = bool(settings.get("allow_free_text"))
    photo_path = args.photo or settings.get("photo")
    pose_path = args.pose or settings.get("pose")
    if photo_path and pose_path:
        raise CLIError("give the pose as a photo or as --pose FILE.json, not both")
    if not photo_path and not pose_path:
        raise CLIError("give a photo of a person (hierafash design PHOTO ...) or --pose FILE.json")
    concepts = _concepts(args, settings, allow)
    category = concepts.get("category")
    attributes = _attributes(
        [f"{k}={v}" for k, v in (settings.get("attributes") or {}).items()] + list(args.attribute), allow, category
    )
    raw_edits = list(args.edit) if args.edit else list(settings.get("edits") or [])
    if not isinstance(raw_edits, list):
        raise CLIError('design file: \'edits\' must be a list, e.g. ["sleeve length=Long Sleeve", "collar=V-Neck"]')
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
        pose_json = _pose_text(path)
    return _session(args, settings, photo, pose_json, concepts, attributes, edits)


def run_demo(args: argparse.Namespace) -> int:
    import skimage.data

    from ..design.host import photo_png
    from ..design.spec import EXAMPLE_CONCEPTS, EXAMPLE_EDITS, Edit

    settings, _ = _settings(args)
    settings.setdefault("width", DEMO_SIZE[0])
    settings.setdefault("height", DEMO_SIZE[1])
    settings.setdefault("steps", DEMO_STEPS)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # The demo's graphs are small: one torch thread per process beats a pool that spins on a busy CPU
    # (measured on 2 shared cores: 53 s instead of 121 s for the whole demo). The server inherits it.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print("demo: scikit-image's cameraman photo -> pose -> draft -> edits: "
          + ", ".join(EXAMPLE_EDITS), file=sys.stderr)  # fmt: skip
    edits = [Edit.parse(e, EXAMPLE_CONCEPTS["category"]) for e in EXAMPLE_EDITS]
    photo = (photo_png(array=skimage.data.camera()), "skimage.data.camera()")
    return _session(args, settings, photo, None, dict(EXAMPLE_CONCEPTS), {}, edits)
