"""The load check of bench/load_test.py at test size: design workflows queued at once from two clients.

The full run (20 prompts from 4 clients, 3 rounds) is the benchmark's; here 4 prompts from 2 clients
in one round, one seed re-run alone, on the guarded test server.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from graphs import TINY_CKPT

pytestmark = pytest.mark.comfy

REPO = Path(__file__).resolve().parents[1]
MiB = 2**20
# Resident memory may settle a little above the warm baseline (history entries, allocator pools); a
# leak of the design workflow's tensors (a 64x88 run holds ~1 MiB of latents, images and masks per
# prompt, but models and activations are hundreds) would not fit under this.
DRIFT_LIMIT = 128 * MiB


def test_queued_design_workflows_all_complete_correctly_and_memory_settles(guarded_server):
    sys.path.insert(0, str(REPO / "bench"))
    from load_test import run_load

    lines: list[str] = []
    report = run_load(guarded_server.url, guarded_server.process.pid, Path(guarded_server.base_directory) / "output",
                      TINY_CKPT, prompts=4, clients=2, rounds=1, alone=1, log=lines.append)  # fmt: skip
    print("\n".join(lines))
    assert report["all_completed"], report["rounds"]
    assert report["distinct"], "two seeds gave the same latent"
    assert report["alone"] and report["all_reproduced"], report["alone"]
    row = report["rounds"][0]
    assert row["peak_rss"] >= row["rss_after"] > 0
    assert report["max_drift"] < DRIFT_LIMIT, f"resident memory moved {report['max_drift'] / MiB:.0f} MiB"
