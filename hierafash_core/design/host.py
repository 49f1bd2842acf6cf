"""Where a design session runs: a private headless ComfyUI started for it, or a ComfyUI already running.

The private server is a child process on 127.0.0.1 with its own base directory (a temporary
folder): this pack linked into ``custom_nodes``, the chosen model files linked into ``models``.
It loads no other custom nodes and sees no other models, and it is stopped when the session ends.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..api_client import ComfyAPIError, ComfyClient
from ..comfy_server import ComfyServer, prepare_base_directory

log = logging.getLogger(__name__)

PACK_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 180.0


def accelerator() -> str | None:
    """The accelerator torch sees here (``cuda``, ``mps``), or None for CPU only."""
    # TODO(evidence: no GPU on the development machine; every session so far ran with --cpu): run
    # `hierafash design --checkpoint <real SD1.5>` on a GPU and check the device ComfyUI reports.
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    return "mps" if mps is not None and mps.is_available() else None


def server_args(cpu: bool) -> list[str]:
    """ComfyUI options for a private server: on CPU the text encoder in float32 (ComfyUI's float16
    default for it runs about 2x slower on CPUs: measured 1.4 vs 2.7 s per caption on 2 busy cores)."""
    return ["--fp32-text-enc"] if cpu else []


@contextlib.contextmanager
def private_server(
    comfyui: Path, models: dict[str, Path], keep_log: Path | None = None, cpu: bool | None = None
) -> Iterator[ComfyServer]:
    """A headless ComfyUI on 127.0.0.1 with this pack and ``models`` (``{"checkpoints/x.safetensors": path}``).

    ``cpu``: None runs on the GPU when torch sees one, else on the CPU. The server's log is copied to
    ``keep_log`` when it fails to start or the work inside fails, so the message can point at it.

    Raises:
        RuntimeError, TimeoutError: the server exited or did not answer while starting.
    """
    with tempfile.TemporaryDirectory(prefix="hierafash-comfyui-") as tmp:
        base = prepare_base_directory(Path(tmp), pack_dir=PACK_ROOT, models=models)
        on_cpu = accelerator() is None if cpu is None else cpu
        server = ComfyServer(Path(comfyui), base, new_session=True, cpu=on_cpu, extra_args=server_args(on_cpu))
        try:
            try:
                server.start(timeout=START_TIMEOUT)
            except (RuntimeError, TimeoutError) as exc:
                if keep_log is not None and server.log_path and Path(server.log_path).is_file():
                    shutil.copyfile(server.log_path, keep_log)
                    raise RuntimeError(f"{str(exc).splitlines()[0]} (log copied to {keep_log})") from None
                raise
            try:
                yield server
            except BaseException:
                if keep_log is not None and server.log_path and Path(server.log_path).is_file():
                    shutil.copyfile(server.log_path, keep_log)
                raise
        finally:
            server.stop()


def photo_png(data: bytes | None = None, path: Path | None = None, array=None) -> bytes:
    """A photo as PNG bytes, from a file, encoded bytes or an (H, W[, C]) uint8 array.

    Raises:
        ValueError: not an image (one line: the cause and what to give instead).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        if array is not None:
            im = Image.fromarray(array)
        else:
            im = Image.open(path if path is not None else io.BytesIO(data))
            im = ImageOps.exif_transpose(im)
        im.load()
        if im.width < 64 or im.height < 64:
            raise ValueError(f"the image is {im.width}x{im.height} px; give a photo of at least 64x64 px")
        if im.mode not in ("RGB", "RGBA", "L"):
            im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        return buf.getvalue()
    except UnidentifiedImageError:
        raise ValueError("cannot read it as an image (not an image format); give a PNG, JPEG or WebP photo") from None
    except PermissionError:
        raise ValueError("cannot open it (permission denied); make the file readable") from None
    except (Image.DecompressionBombError, OSError, SyntaxError) as exc:
        reason = str(exc).split(" (")[0] or type(exc).__name__
        raise ValueError(
            f"cannot read it as an image (damaged or cut short: {reason}); give a PNG, JPEG or WebP photo"
        ) from None


def upload_photo(client: ComfyClient, png: bytes, stem: str) -> str:
    """Put the photo into the server's input folder under a name made from its content; returns the name."""
    digest = hashlib.sha256(png).hexdigest()[:12]
    safe = "".join(ch for ch in Path(stem).stem if ch.isalnum() or ch in "-_")[:40] or "photo"
    try:
        return client.upload_image(f"hierafash_{safe}_{digest}.png", png)
    except ComfyAPIError as exc:
        raise RuntimeError(f"could not hand the photo to ComfyUI: {exc}") from None


def server_choices(object_info: dict, node: str, name: str) -> list[str]:
    """The values a server offers for a combo input (e.g. checkpoint names of CheckpointLoaderSimple)."""
    info = object_info.get(node, {})
    spec = info.get("input", {}).get("required", {}).get(name)
    if not spec:
        return []
    if isinstance(spec[0], list):
        return list(spec[0])
    return list((spec[1] if len(spec) > 1 else {}).get("options", []))
