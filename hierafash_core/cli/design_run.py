"""Running a design session for ``hierafash design`` / ``demo``: its models, its ComfyUI, its progress.

The models are resolved before a server starts (a file name, a path, the built-in mini designer,
or the seeded test model); the session then runs in a private headless ComfyUI on 127.0.0.1 or
on the server the user named, with one progress line per stage on stderr.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import tempfile
import time
from pathlib import Path

from . import CLIError

TEST_MODEL = "test-model"  # --checkpoint name of the seeded random test model
MINI_BUILD_NOTE = (
    "the built-in mini designer is not built yet: building it now from its recipe into {folder} (about an hour on "
    "2 CPU cores, once; a build cut short continues). For a one-minute run on the random test model instead: "
    "--checkpoint test-model"
)
TEST_MODEL_NOTE = (
    "These images are noise: the seeded random test model drew them "
    "(it proves every step runs, not what a design looks like)."
)
REAL_MODEL_HOWTO = (
    "For pictures on this machine: --checkpoint built-in (the pack's mini designer, 128x192). "
    "For real designs give an SD1.5, SD2.1 or SDXL checkpoint and, best, an OpenPose ControlNet made for it, "
    "as a path or a file name in ComfyUI/models/checkpoints and models/controlnet (or a folder of your "
    "extra_model_paths.yaml): hierafash design PHOTO --checkpoint v1-5-pruned-emaonly.safetensors "
    "--controlnet control_v11p_sd15_openpose.safetensors (SDXL: add --width 832 --height 1216). Nothing is downloaded."
)
NOTICES: list[str] = []  # said once the settings are known to be good (an error stays the only line)


def check_out_dir(out: Path) -> None:
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


def check_extra_model_paths(path: Path) -> None:
    """An --extra-model-paths file exists and is a YAML mapping (ComfyUI's extra_model_paths.yaml format)."""
    import yaml

    if path.is_dir():
        raise CLIError(f"--extra-model-paths {path}: is a folder; give an extra_model_paths.yaml file")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CLIError(f"--extra-model-paths {path}: no such file; give an existing extra_model_paths.yaml") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CLIError(f"--extra-model-paths {path}: cannot read it as YAML ({reason}); fix or leave out the file"
                       ) from None  # fmt: skip
    if not isinstance(config, dict):
        raise CLIError(f"--extra-model-paths {path}: not a mapping of named folders as in ComfyUI's "
                       "extra_model_paths.yaml (e.g. 'mine: {base_path: /models, checkpoints: ckpts}')")  # fmt: skip


# -- running --------------------------------------------------------------------------------------------
class Progress:
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
    from ..design.spec import MINI_DESIGNER
    from ..mini.paths import models_root
    from ..model_files import resolve_model
    from ..models.tiny import ensure_tiny_checkpoint

    configs = [Path(p) for p in extra]
    models: dict[str, Path] = {}
    if settings.get("checkpoint") == MINI_DESIGNER:
        return {}, {"checkpoint": MINI_DESIGNER, "mini_designer": str(_mini_designer_files()), "test_model": False,
                    "controlnet": None}, False  # fmt: skip
    test_model = _is_test_model(settings)
    if test_model:
        path = ensure_tiny_checkpoint(models_root() / "checkpoints")
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


def _is_test_model(settings: dict) -> bool:
    """No checkpoint, or ``test-model``: the seeded random test model."""
    return settings.get("checkpoint") in (None, "", TEST_MODEL)


def _mini_designer_files() -> Path:
    """The built mini designer's folder, building it first (with a notice) when it is missing."""
    from ..mini import MiniDesignerFiles, mini_designer_files

    files = MiniDesignerFiles.in_folder()
    if not files.exist():
        print(MINI_BUILD_NOTE.format(folder=files.folder), file=sys.stderr, flush=True)
        mini_designer_files(report=lambda line: print(f"  {line}", file=sys.stderr, flush=True))
    return files.folder


def _check_server_models(url: str, info: dict, settings: dict) -> tuple[dict, bool]:
    from ..design.host import server_choices
    from ..models.tiny import DEFAULT_NAME

    missing = [n for n in ("HieraFash_PoseToCanvas", "HieraFash_GradientGuidedEdit") if n not in info]
    if missing:
        raise CLIError(f"--server {url}: this ComfyUI lacks the HieraFash nodes ({', '.join(missing)}); install "
                       "the pack into its custom_nodes folder and restart it, or leave out --server")  # fmt: skip
    from ..design.spec import MINI_DESIGNER

    if settings.get("checkpoint") == MINI_DESIGNER:
        if "HieraFash_MiniDesignerLoader" not in info:
            raise CLIError(f"--checkpoint built-in: the server at {url} lacks MiniDesignerLoader; update the pack "
                           "there and restart it")  # fmt: skip
        return {"checkpoint": MINI_DESIGNER, "test_model": False, "controlnet": None}, False
    test_model = _is_test_model(settings)
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


def _check_server_samplers(url: str, info: dict, spec_kwargs: dict) -> None:
    """The draft's sampler and scheduler are among the server's own (an older ComfyUI may lack one)."""
    from ..design.host import server_choices
    from ..design.spec import DesignSpec

    for key, name in (("sampler", "sampler_name"), ("scheduler", "scheduler")):
        value = spec_kwargs.get(key) or getattr(DesignSpec, key)
        choices = server_choices(info, "HieraFash_StagedKSampler", name)
        if choices and value not in choices:
            raise CLIError(f"--{key} {value!r}: the ComfyUI at {url} has no such {key}; use one of "
                           f"{', '.join(choices)}")  # fmt: skip


def run_session_command(args: argparse.Namespace, settings: dict, photo: tuple[bytes, str] | None,
                        pose_json: str | None, concepts: dict, attributes: dict, edits: list,
                        pose_source: str | None = None, banner: str | None = None) -> int:  # fmt: skip
    from ..api_client import ComfyAPIError, ComfyClient
    from ..comfy_server import find_comfyui
    from ..design.host import accelerator, private_server, upload_photo
    from ..design.session import DesignError, DesignInterrupted, run_session
    from ..design.spec import DesignSpec

    if not math.isfinite(args.timeout) or args.timeout < 1:
        raise CLIError(f"--timeout {args.timeout}: must be at least 1 second per stage (default 1800)")
    for yaml_path in args.extra_model_paths:
        check_extra_model_paths(Path(yaml_path))
    file_out = settings.pop("out", None)
    out = Path(args.out or file_out or args.out_default)
    spec_kwargs = {k: v for k, v in settings.items() if k not in ("photo", "pose", "concepts", "attributes", "edits")}
    spec_kwargs.update(concepts=concepts, attributes=attributes, edits=edits)
    # Check every setting now, before a server starts (the photo's name is set once it is uploaded).
    # A file name stands in for a checkpoint not yet resolved; the built-in one keeps its name, so its
    # size and ControlNet limits are checked before anything is built or started.
    checkpoint = spec_kwargs.get("checkpoint") or "x"
    DesignSpec(photo="photo.png" if photo else None, pose_json=pose_json, **{**spec_kwargs, "checkpoint": checkpoint})
    check_out_dir(out)  # made only once the settings are known to be good: a refused run leaves nothing behind
    extra = {"argv": sys.argv[1:]}
    if banner:  # said once the settings are known to be good, so an error stays the only line
        print(banner, file=sys.stderr)

    def go(url: str, models_entry: dict, test_model: bool, log: Path | None = None, server_info=None) -> int:
        for notice in NOTICES:
            print(notice, file=sys.stderr)
        NOTICES.clear()
        client = ComfyClient(url, timeout=60)
        try:
            info = server_info if server_info is not None else client.object_info()
        except ComfyAPIError as exc:
            raise CLIError(f"ComfyUI at {url} did not list its nodes: {exc}") from None
        _check_server_samplers(url, info, spec_kwargs)
        name = upload_photo(client, photo[0], photo[1]) if photo else None
        spec = DesignSpec(photo=name, pose_json=pose_json, **spec_kwargs)
        note = TEST_MODEL_NOTE if test_model else ""
        try:
            result = run_session(spec, url, out, stage_timeout=args.timeout, on_event=Progress(),
                                 record_extra={**extra, "photo_source": photo[1] if photo else None,
                                               "pose_source": pose_source, "models": models_entry},
                                 sheet_note=note)  # fmt: skip
        except DesignInterrupted as stop:
            rec = stop.record
            done = [s["key"] for s in rec["stages"] if s["status"] == "done"]
            print(f"\nhierafash {args.command}: stopped during {rec['stopped_at']}; kept "
                  f"{', '.join(done) or 'nothing'}{'; record: ' + str(out / 'run.json') if done else ''}",
                  file=sys.stderr)  # fmt: skip
            return 130
        except DesignError as exc:
            where = f" at {log}" if log is not None else f" of the server at {url}"
            raise CLIError(str(exc).replace("see the ComfyUI log", "see the ComfyUI log" + where)) from None
        rec = result.record
        print(f"wrote {out}: {', '.join(s['key'] for s in rec['stages'])} in {rec['seconds']:.0f} s; "
              f"contact sheet {out / rec['contact_sheet']}, record {out / 'run.json'}")  # fmt: skip
        for stage in rec["stages"]:
            fig = stage.get("preservation")
            if fig:
                psnr = fig.get("pixel_psnr_outside_db")
                print(f"  {stage['title']}: outside its region the latent changed by at most "
                      f"{fig['latent_max_abs_diff_outside']:.2g}, image PSNR "
                      f"{'inf dB (unchanged)' if psnr is None else f'{psnr:.1f} dB'}")  # fmt: skip
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
            return go(args.server, entry, test_model, server_info=info)
        comfyui = find_comfyui(args.comfyui)
        models, entry, test_model = _resolve_models(settings, comfyui, args.extra_model_paths)
        spec_kwargs["checkpoint"] = settings["checkpoint"]
        spec_kwargs["controlnet"] = settings.get("controlnet")
        print(f"starting ComfyUI from {comfyui} (private, on 127.0.0.1)", file=sys.stderr, flush=True)
        device = "cpu" if args.cpu else (accelerator() or "cpu")
        entry["device"] = device
        try:
            log = out / "comfyui.log"
            with private_server(comfyui, models, keep_log=log, cpu=device == "cpu") as server:
                return go(server.url, entry, test_model, log)
        except (RuntimeError, TimeoutError) as exc:
            raise CLIError(f"ComfyUI did not start: {exc}") from None
    except KeyboardInterrupt:
        print(
            f"\nhierafash {args.command}: stopped before the first stage finished; nothing was written",
            file=sys.stderr,
        )
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
