"""A headless ComfyUI for the reliability tests, started under the network guard (tests/netguard).

Its own base directory (the seeded checkpoint and ControlNet, the pose reference photo), so the load
and fault tests measure and interrupt a server no other test is using, and every socket the server
process opens is logged: ``guarded_server.net_log`` lists them for tests/test_network.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from comfy_host import COMFY_DIR, REPO
from graphs import TINY_CKPT

from hierafash_core.comfy_server import ComfyServer, prepare_base_directory

NETGUARD = Path(__file__).parent / "netguard"


def guarded_env(log: Path) -> dict[str, str]:
    """Environment for a child process under the network guard, logging to ``log``."""
    path = os.pathsep.join(p for p in (str(NETGUARD), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "HIERAFASH_NET_LOG": str(log)}


@pytest.fixture(scope="session")
def guarded_server(tmp_path_factory, tiny_checkpoint):
    import sys

    sys.path.insert(0, str(REPO / "bench"))
    from load_test import prepare_inputs

    base = prepare_base_directory(
        tmp_path_factory.mktemp("guarded_base"), pack_dir=REPO, models={f"checkpoints/{TINY_CKPT}": tiny_checkpoint}
    )
    prepare_inputs(base, tiny_checkpoint)
    log = base / "net.log"
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "HIERAFASH_NET_LOG")}
    os.environ.update(guarded_env(log))  # the child inherits it at start; restored at once below
    try:
        server = ComfyServer(COMFY_DIR, base)
        server.start(timeout=180)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    server.net_log = log
    yield server
    server.stop()
