"""Faults over HTTP on a real headless ComfyUI: Cancel in the middle of a node, a server that dies mid-wait.

Cancel (``POST /interrupt``) lands while a long StagedKSampler draft, GradientGuidedEdit or PoseDetect
is running (the history says it was interrupted in that node); the server must then answer, have
an empty queue, and give the next prompt exactly the result of an uninterrupted run, recomputed
rather than served from the cache. Ctrl-C of ``hierafash design`` is tested end to end in
tests/test_design_session.py (test_ctrl_c_stops_the_server_prompt_and_keeps_finished_stages), and a
server dying under ``run_workflow`` (websocket) in tests/test_queue.py; here the polling client.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
from comfy_host import COMFY_DIR, REPO
from graphs import TINY_CKPT, tiny_graph

from hierafash_core.api_client import ComfyAPIError, ComfyClient, PromptFailed
from hierafash_core.comfy_server import ComfyServer

pytestmark = pytest.mark.comfy

sys.path.insert(0, str(REPO / "bench"))
from load_test import POSE_PHOTO, cached_nodes, design_graph  # noqa: E402

LONG = 400  # steps of the run that gets cancelled: far more than the second it runs
LONG_BATCH = 64  # images of the pose detection that gets cancelled (~0.3 s each; a batch is converted at once first)
CANCEL_AFTER = 1.5  # seconds after the prompt starts running


def node_id(graph: dict, class_type: str, nth: int = 0) -> str:
    return [n for n, node in graph.items() if node["class_type"] == class_type][nth]


def saved_latent(entry: dict, graph: dict, source: str, output_dir: Path):
    """The latent the graph's SaveLatent of ``source`` wrote in this run."""
    from safetensors.torch import load_file

    save = next(
        n for n, node in graph.items() if node["class_type"] == "SaveLatent" and node["inputs"]["samples"][0] == source
    )
    item = entry["outputs"][save]["latents"][0]
    return load_file(str(output_dir / item["subfolder"] / item["filename"]))["latent_tensor"]


def pose_graph(images: int) -> dict:
    return {
        "photo": {"class_type": "LoadImage", "inputs": {"image": POSE_PHOTO}},
        "batch": {"class_type": "RepeatImageBatch", "inputs": {"image": ["photo", 0], "amount": images}},
        "pose": {"class_type": "HieraFash_PoseDetect",
                 "inputs": {"image": ["batch", 0], "max_people": 2, "model": "full"}},
        "show": {"class_type": "PreviewAny", "inputs": {"source": ["pose", 0]}},
    }  # fmt: skip


def cancel_mid_run(client: ComfyClient, graph: dict) -> tuple[dict, float]:
    """Queue ``graph``, Cancel it CANCEL_AFTER s after it starts running; (its history entry, seconds to stop)."""
    prompt_id = client.queue_prompt(graph)
    deadline = time.monotonic() + 120
    while not any(item[1] == prompt_id for item in client._request("/queue")["queue_running"]):
        assert time.monotonic() < deadline, "the prompt never started running"
        time.sleep(0.05)
    time.sleep(CANCEL_AFTER)
    cancelled = time.monotonic()
    client.interrupt()
    with pytest.raises(PromptFailed, match="was interrupted in node") as info:
        client.wait(prompt_id, timeout=120)
    return info.value.history, time.monotonic() - cancelled


def interrupted_node(entry: dict) -> str | None:
    for event, data in entry["status"]["messages"]:
        if event == "execution_interrupted":
            return data["node_id"]
    return None


def assert_healthy(client: ComfyClient) -> None:
    assert client._request("/system_stats")["system"]["comfyui_version"]
    deadline = time.monotonic() + 30
    while client.queue_remaining() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert client.queue_remaining() == 0, "the cancelled prompt is still on the server"


@pytest.mark.parametrize("target", ["HieraFash_StagedKSampler", "HieraFash_GradientGuidedEdit"])
def test_cancel_mid_node_leaves_the_server_healthy_and_the_next_run_exact(guarded_server, target):
    client = ComfyClient(guarded_server.url, timeout=30)
    output = Path(guarded_server.base_directory) / "output"
    seed = 77 if target == "HieraFash_StagedKSampler" else 78
    graph = design_graph(seed, TINY_CKPT)
    sampler, final = node_id(graph, "HieraFash_StagedKSampler"), node_id(graph, "HieraFash_GradientGuidedEdit", 2)
    reference = client.run(graph, timeout=300)
    long = design_graph(seed, TINY_CKPT)
    long[node_id(long, target)]["inputs"]["steps"] = LONG  # everything upstream is served from the cache
    entry, stop_seconds = cancel_mid_run(client, long)
    assert interrupted_node(entry) == node_id(long, target), entry["status"]["messages"]
    assert stop_seconds < 15, f"Cancel took {stop_seconds:.1f} s to stop the {target}"
    assert_healthy(client)
    again = client.run(graph, timeout=300)
    assert node_id(graph, target) not in cached_nodes(again), "the rerun came from the cache; nothing was checked"
    for source in (sampler, final):
        assert saved_latent(again, graph, source, output).equal(saved_latent(reference, graph, source, output))


def test_cancel_mid_pose_detection_leaves_the_server_healthy_and_the_next_run_exact(guarded_server):
    client = ComfyClient(guarded_server.url, timeout=30)
    reference = client.run(pose_graph(2), timeout=300)["outputs"]["show"]["text"]
    assert '"people"' in reference[0] and '"pose_keypoints_2d"' in reference[0]
    entry, stop_seconds = cancel_mid_run(client, pose_graph(LONG_BATCH))
    assert interrupted_node(entry) == "pose", entry["status"]["messages"]
    assert stop_seconds < 15, f"Cancel took {stop_seconds:.1f} s to stop PoseDetect"
    assert_healthy(client)
    again = client.run(pose_graph(2), timeout=300)
    assert "pose" not in cached_nodes(again)
    assert again["outputs"]["show"]["text"] == reference


def test_polling_client_whose_server_dies_mid_run_gets_a_clear_error_in_time(comfy_base):
    """``ComfyClient.wait`` (the client without a websocket) while the server is killed under a running prompt."""
    server = ComfyServer(COMFY_DIR, comfy_base).start(timeout=180)
    try:
        client = ComfyClient(server.url, timeout=5)
        prompt_id = client.queue_prompt(tiny_graph(steps=200, size=128, save=True))
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            server.process.kill()

        killer = threading.Timer(3.0, kill)  # mid-run: the 200 steps take far longer
        killer.start()
        start = time.monotonic()
        with pytest.raises(ComfyAPIError, match=rf"ComfyUI at {server.url} did not answer /history/{prompt_id}"):
            client.wait(prompt_id, timeout=120)
        assert killed.is_set(), "the client gave up before the server was killed"
        assert time.monotonic() - start < 20, "the client noticed the dead server only at its timeout"
        assert server.process.wait(timeout=30) is not None
    finally:
        killer.cancel()
        server.stop()
