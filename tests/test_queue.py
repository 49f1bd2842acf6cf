"""`hierafash queue` and run_workflow against the real headless ComfyUI on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time

import pytest
from comfy_host import COMFY_DIR
from graphs import tiny_graph

from hierafash_core.api_client import ComfyAPIError, PromptRejected
from hierafash_core.cli import main
from hierafash_core.comfy_server import ComfyServer, free_port
from hierafash_core.queue import apply_overrides, run_workflow

pytestmark = pytest.mark.comfy


def test_overrides_name_node_input_and_fix():
    graph = tiny_graph()
    out = apply_overrides(graph, ["ks.seed=7", "KSampler.cfg=2.5", "pos.text=Coat, Punk", 'lat.width=["x", 0]'])
    assert out["ks"]["inputs"]["seed"] == 7 and out["ks"]["inputs"]["cfg"] == 2.5
    assert out["pos"]["inputs"]["text"] == "Coat, Punk"
    assert out["lat"]["inputs"]["width"] == ["x", 0]
    assert graph["ks"]["inputs"]["seed"] == 1, "the input graph must not be mutated"
    with pytest.raises(ValueError, match=r"no node 'nope' in the workflow; nodes: ckpt \(CheckpointLoaderSimple\)"):
        apply_overrides(graph, ["nope.seed=1"])
    with pytest.raises(ValueError, match=r"has no input 'sead'; inputs: .*seed"):
        apply_overrides(graph, ["ks.sead=1"])
    with pytest.raises(ValueError, match="CLIPTextEncode' names 2 nodes"):
        apply_overrides(graph, ["CLIPTextEncode.text=x"])
    with pytest.raises(ValueError, match="write NODE.INPUT=VALUE"):
        apply_overrides(graph, ["seed=1"])


def test_queue_cli_runs_and_downloads(comfy_server, tmp_path, capsys):
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps(tiny_graph(save=True)))
    out = tmp_path / "out"
    rc = main(["queue", str(wf), "--server", comfy_server.url, "--set", "ks.seed=7", "--set", "ks.steps=3",
               "--out", str(out), "--timeout", "300"])  # fmt: skip
    assert rc == 0
    files = sorted(out.glob("*.png"))
    assert len(files) == 1 and files[0].read_bytes()[:4] == b"\x89PNG"
    captured = capsys.readouterr()
    assert "finished in" in captured.out
    assert "3/3" in captured.err, "the step progress of the sampler should be shown"


def test_python_api_reports_progress(comfy_server, tmp_path):
    events = []
    result = run_workflow(comfy_server.url, tiny_graph(save=True), ["ks.steps=4"], out_dir=tmp_path,
                          timeout=300, on_progress=events.append)  # fmt: skip
    steps = [e["data"]["value"] for e in events if e["type"] == "progress" and e["data"].get("node") == "ks"]
    assert steps[-1] == 4 and steps == sorted(steps)
    assert result.files and result.outputs["save"]["images"]


def test_server_refusing_the_graph_shows_node_errors(comfy_server, tmp_path, capsys):
    graph = apply_overrides(tiny_graph(save=True), ['ckpt.ckpt_name="missing.safetensors"', "ks.steps=0"])
    with pytest.raises(PromptRejected) as info:
        run_workflow(comfy_server.url, graph, timeout=60)
    assert set(info.value.node_errors) == {"ckpt", "ks"}
    assert "missing.safetensors" in str(info.value)
    wf = tmp_path / "bad.json"
    wf.write_text(json.dumps(graph))
    assert main(["queue", str(wf), "--server", comfy_server.url, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "refused the graph" in err and "node ckpt (CheckpointLoaderSimple)" in err and "Traceback" not in err


def test_graph_with_one_bad_output_branch_is_refused_not_half_run(comfy_server, tmp_path, capsys):
    """ComfyUI answers 200 and runs the valid outputs when only some fail validation; the client
    must not report that as a success."""
    graph = tiny_graph(save=True)
    graph["ks2"] = {"class_type": "KSampler", "inputs": {**graph["ks"]["inputs"], "steps": 0}}  # invalid
    graph["save2"] = {"class_type": "SaveLatent", "inputs": {"samples": ["ks2", 0], "filename_prefix": "x"}}
    with pytest.raises(PromptRejected, match=r"refused part of the graph.*taken off the queue") as info:
        run_workflow(comfy_server.url, graph, timeout=60)
    assert set(info.value.node_errors) == {"ks2"}
    wf = tmp_path / "half.json"
    wf.write_text(json.dumps(graph))
    assert main(["queue", str(wf), "--server", comfy_server.url, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "node ks2 (KSampler)" in err and "Traceback" not in err
    assert not list(tmp_path.glob("o/*.png"))  # nothing downloaded as if it had succeeded


def test_unknown_node_and_bad_files_are_clear(comfy_server, tmp_path, capsys):
    graph = tiny_graph(save=True)
    graph["x"] = {"class_type": "NoSuchNode", "inputs": {}}
    with pytest.raises(PromptRejected, match="NoSuchNode"):
        run_workflow(comfy_server.url, graph, timeout=60)
    notjson = tmp_path / "w.json"
    notjson.write_text("{nope")
    assert main(["queue", str(notjson), "--server", comfy_server.url]) == 2
    assert "is not JSON" in capsys.readouterr().err
    assert main(["queue", str(tmp_path / "missing.json"), "--server", comfy_server.url]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_no_server_fails_fast(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    with pytest.raises(ComfyAPIError, match="did not"):
        run_workflow(url, tiny_graph(save=True), timeout=30, request_timeout=5)
    assert time.monotonic() - start < 15


def test_server_that_dies_mid_run_gives_a_clear_error_quickly(comfy_base):
    server = ComfyServer(COMFY_DIR, comfy_base).start(timeout=180)
    try:
        killed = threading.Event()

        def kill_on_first_step(event):
            if event["type"] == "progress" and not killed.is_set():
                killed.set()
                server.process.kill()

        start = time.monotonic()
        with pytest.raises(ComfyAPIError, match="closed the connection|did not answer") as info:
            run_workflow(server.url, tiny_graph(steps=200, size=128, save=True), timeout=120, idle=5,
                         on_progress=kill_on_first_step, request_timeout=5)  # fmt: skip
        assert killed.is_set(), f"the run ended before any progress: {info.value}"
        assert time.monotonic() - start < 60
    finally:
        server.stop()


def test_queue_converts_a_ui_workflow_with_the_servers_object_info(comfy_server, tmp_path):
    """The shipped UI-format draft workflow runs through `hierafash queue` as users save it."""
    from comfy_host import REPO
    from graphs import TINY_CKPT

    ui = REPO / "workflows" / "hierafash_draft.json"
    out = tmp_path / "out"
    sets = [f'1.ckpt_name="{TINY_CKPT}"', "5.width=64", "5.height=64", "6.steps=2"]
    rc = main(["queue", str(ui), "--server", comfy_server.url, *sum([["--set", s] for s in sets], []),
               "--out", str(out), "--timeout", "300"])  # fmt: skip
    assert rc == 0
    assert [p.suffix for p in out.iterdir()] == [".png"]
