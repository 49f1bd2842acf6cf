"""Start and stop a headless ComfyUI server on 127.0.0.1, with bounded waits.

Used by the CLI (which runs the pack's own nodes inside a real ComfyUI) and by the tests. The
server is a child process: ``main.py --cpu? --listen 127.0.0.1 --port N --base-directory DIR
--disable-api-nodes``. Nothing here imports ComfyUI; it is found on disk and run with the same
Python interpreter unless told otherwise.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """Ask the OS for a free TCP port on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def find_comfyui(explicit: str | os.PathLike | None = None) -> Path:
    """Locate a ComfyUI folder (one holding ``main.py`` and ``comfy/``).

    Looks, in order, at ``explicit``, ``$HIERAFASH_COMFYUI``, the ComfyUI this pack is installed
    in (``ComfyUI/custom_nodes/<pack>``), and the test host that ``scripts/bootstrap.sh``
    installs in ``.cache/comfyui``.
    """
    pack_root = Path(__file__).resolve().parent.parent
    candidates: list[tuple[str, Path]] = []
    if explicit:
        candidates.append(("--comfyui", Path(explicit)))
    if os.environ.get("HIERAFASH_COMFYUI"):
        candidates.append(("$HIERAFASH_COMFYUI", Path(os.environ["HIERAFASH_COMFYUI"])))
    candidates.append(("the ComfyUI this pack is installed in", pack_root.parent.parent))
    candidates.append(("the test host", pack_root / ".cache" / "comfyui"))
    for label, path in candidates:
        if (path / "main.py").is_file() and (path / "comfy").is_dir():
            return path.resolve()
        if label in ("--comfyui", "$HIERAFASH_COMFYUI"):
            raise FileNotFoundError(
                f"{label}={str(path)!r} is not a ComfyUI folder (no main.py and comfy/ there); "
                "point it at the folder that holds ComfyUI's main.py"
            )
    raise FileNotFoundError(
        "no ComfyUI found: pass --comfyui DIR or set HIERAFASH_COMFYUI, or run `make setup` to "
        f"install the test host into {pack_root / '.cache' / 'comfyui'}"
    )


def prepare_base_directory(base: Path, pack_dir: Path | None = None, models: dict[str, Path] | None = None) -> Path:
    """Lay out a ComfyUI base directory: the pack linked into ``custom_nodes``, model files linked.

    Args:
        base: folder to create (``custom_nodes``, ``models``, ``input``, ``output``, ``user``).
        pack_dir: this pack's root, linked as ``custom_nodes/hierafash``.
        models: ``{"checkpoints/name.safetensors": source path, ...}`` linked under ``models``.
    """
    base = Path(base)
    for sub in ("custom_nodes", "models", "input", "output", "user", "temp"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    if pack_dir is not None:
        link = base / "custom_nodes" / "hierafash"
        if not link.exists():
            link.symlink_to(Path(pack_dir).resolve(), target_is_directory=True)
    for rel, src in (models or {}).items():
        dst = base / "models" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            dst.symlink_to(Path(src).resolve())
    return base


@dataclass
class ComfyServer:
    """A headless ComfyUI child process bound to 127.0.0.1 (see :meth:`start`)."""

    comfyui: Path
    base_directory: Path
    port: int = 0
    python: str = sys.executable
    extra_args: list[str] = field(default_factory=list)
    log_path: Path | None = None
    process: subprocess.Popen | None = None
    # In its own session the server does not get the terminal's Ctrl-C: the caller interrupts and stops it.
    new_session: bool = False
    cpu: bool = True  # False: ComfyUI picks the device (a GPU when torch sees one)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, timeout: float = 120.0) -> ComfyServer:
        """Start the server and wait until it answers, at most ``timeout`` seconds."""
        if not self.port:
            self.port = free_port()
        self.log_path = self.log_path or Path(self.base_directory) / "comfyui.log"
        cmd = [
            self.python,
            str(Path(self.comfyui) / "main.py"),
            *(["--cpu"] if self.cpu else []),
            "--listen",
            LOOPBACK,
            "--port",
            str(self.port),
            "--base-directory",
            str(self.base_directory),
            "--disable-api-nodes",
            "--disable-auto-launch",
            *self.extra_args,
        ]
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
        log.info("starting ComfyUI at %s (log: %s)", self.url, self.log_path)
        logfile = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed in stop()
        self.process = subprocess.Popen(
            cmd,
            cwd=str(self.comfyui),
            stdout=logfile,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=self.new_session,
        )
        logfile.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"ComfyUI exited with code {self.process.returncode} while starting; "
                    f"see {self.log_path}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.url + "/system_stats", timeout=2) as resp:  # noqa: S310
                    json.load(resp)
                return self
            except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
                time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"ComfyUI did not answer at {self.url} within {timeout:.0f} s; see {self.log_path}")

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path or not Path(self.log_path).is_file():
            return ""
        return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 15.0) -> None:
        """Terminate the server, then kill it if it has not exited within ``timeout`` seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)

    def __enter__(self) -> ComfyServer:
        return self.start() if self.process is None else self

    def __exit__(self, *exc) -> None:
        self.stop()
