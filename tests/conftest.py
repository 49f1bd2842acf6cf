"""Shared fixtures: the seeded test checkpoint and the real ComfyUI host (in-process and HTTP)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One torch thread per process: the suite runs many small graphs, where a thread pool costs more than
# it gains, and on a busy 2-core machine its spinning threads made graphs 10-15x slower (measured).
# Set before torch is imported here; the ComfyUI servers the tests start inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from comfy_host import COMFY_DIR, MODELS_CACHE, REPO, InProcessComfy  # noqa: E402
from graphs import TINY_CKPT  # noqa: E402
from servers import guarded_server  # noqa: E402, F401 - the reliability tests' server, defined here once

from hierafash_core.comfy_server import ComfyServer, prepare_base_directory  # noqa: E402
from hierafash_core.models.tiny import ensure_tiny_checkpoint  # noqa: E402

log = logging.getLogger(__name__)


def _require_host() -> Path:
    if not (COMFY_DIR / "main.py").is_file():
        pytest.fail(
            f"the test host is missing at {COMFY_DIR}: run `make test` (it installs it) or `make setup`",
            pytrace=False,
        )
    return COMFY_DIR


@pytest.fixture(scope="session")
def tiny_checkpoint() -> Path:
    """Path of the seeded SD1.5-layout checkpoint (built once, cached in .cache/models)."""
    return ensure_tiny_checkpoint(MODELS_CACHE / "checkpoints")


@pytest.fixture(scope="session")
def comfy_base(tmp_path_factory, tiny_checkpoint) -> Path:
    """A ComfyUI base directory with this pack linked into custom_nodes and the test model."""
    base = tmp_path_factory.mktemp("comfy_base")
    return prepare_base_directory(base, pack_dir=REPO, models={f"checkpoints/{TINY_CKPT}": tiny_checkpoint})


@pytest.fixture(scope="session")
def comfy(comfy_base) -> InProcessComfy:
    """The real ComfyUI, loaded in this process with this pack (graphs run through its executor)."""
    return InProcessComfy(_require_host(), comfy_base).load()


@pytest.fixture(scope="session")
def comfy_server(comfy_base):
    """The real ComfyUI as a headless server on 127.0.0.1 with this pack loaded."""
    server = ComfyServer(_require_host(), comfy_base)
    server.start(timeout=180)
    yield server
    server.stop()


def pytest_terminal_summary(terminalreporter) -> None:
    """The hostile-input tally (tests/hostile.py): how many cases were tried and how each ended."""
    from hostile import summary_lines

    lines = summary_lines()
    if lines:
        terminalreporter.section("hostile input")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def mini_test_designer(tmp_path_factory):
    """(root, MiniDesignerFiles, manifest) of a mini designer built by the real recipe code in seconds."""
    from mini_fixtures import build_test_designer

    root = tmp_path_factory.mktemp("mini")
    files, manifest = build_test_designer(root)
    return root, files, manifest
