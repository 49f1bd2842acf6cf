"""`hierafash design` end to end in the real ComfyUI host: a real photo -> pose -> draft -> three chained
edits -> contact sheet and run record; the shipped workflow is the command's graph; failures on real
input (no person, a region outside the photo) and Ctrl-C stop cleanly and keep what is done."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from comfy_host import COMFY_DIR, MODELS_CACHE, REPO
from graphs import TINY_CKPT
from PIL import Image

from hierafash_core.api_client import ComfyClient
from hierafash_core.cli import main
from hierafash_core.design.graph import EXAMPLE_WORKFLOW, build_design_graph, example_spec, example_workflow
from hierafash_core.design.sheet import OUTLINE
from hierafash_core.workflow import ui_to_api

pytestmark = pytest.mark.comfy

EDITS = ["--edit", "sleeve length=Long Sleeve", "--edit", "collar=V-Neck", "--edit", "hem=Draped"]
SMALL = ["--width", "128", "--height", "176", "--steps", "4"]


def _photo(tmp_path: Path, name: str) -> Path:
    import skimage.data

    path = tmp_path / f"{name}.png"
    Image.fromarray(getattr(skimage.data, name)()).save(path)
    return path


@pytest.fixture(scope="module")
def object_info(comfy_server) -> dict:
    return ComfyClient(comfy_server.url, timeout=60).object_info()


@pytest.fixture(scope="module")
def tiny_controlnet(tiny_checkpoint) -> Path:
    from tiny_controlnet import build_tiny_controlnet

    return build_tiny_controlnet(
        tiny_checkpoint, MODELS_CACHE / "controlnet" / "hierafash-tiny-controlnet.safetensors"
    )


def test_design_end_to_end_on_a_real_photo(tmp_path, tiny_controlnet, object_info, capsys):
    """The main job: the cameraman photo, the paper's concepts, three edits, a pose ControlNet, in a
    private headless ComfyUI that the command starts and stops."""
    out = tmp_path / "out"
    rc = main(["design", str(_photo(tmp_path, "camera")), *EDITS, *SMALL, "--controlnet", str(tiny_controlnet),
               "--comfyui", str(COMFY_DIR), "--out", str(out)])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0, captured.err[-2000:]
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "finished" and record["stopped_at"] is None
    assert [s["key"] for s in record["stages"]] == ["pose", "draft", "edit1", "edit2", "edit3"]
    assert all(s["status"] == "done" and s["seconds"] > 0 for s in record["stages"])
    assert record["models"]["test_model"] is True and record["models"]["controlnet"].endswith("controlnet.safetensors")
    assert "hierafash-tiny-sd15.safetensors" in record["models"]["checkpoint"]

    # every stage's files, written under their session names
    names = {"pose.png", "photo.png", "mask1_sleeve_length.png", "mask2_collar.png", "mask3_hem.png", "draft.png",
             "edit1_sleeve_length.png", "edit2_collar.png", "edit3_hem.png", "contact_sheet.png", "run.json",
             "workflow.json", "workflow_api.json", "draft_plan.txt"}  # fmt: skip
    assert names <= {p.name for p in out.iterdir()}
    assert sorted(p.name for p in (out / "latents").iterdir()) == [
        "draft.latent", "edit1_sleeve_length.latent", "edit2_collar.latent", "edit3_hem.latent"]  # fmt: skip
    for name in ("draft.png", "edit3_hem.png", "mask2_collar.png", "pose.png"):
        assert Image.open(out / name).size == (128, 176), name

    # staged captions: the draft runs every window; edit k shows the attributes so far, from its start down
    draft, edits = record["stages"][1], record["stages"][2:]
    assert draft["seed"] == 20240114 and len(draft["captions"]) == 7
    assert draft["captions"][0] == {"t": [999, 900], "fields": 5, "caption":
                                    "Dress, Elegant, Party, Elongate Neck, Sense of Agility and Elegance"}  # fmt: skip
    assert [e["edit"]["start_timestep"] for e in edits] == [831, 671, 591]
    assert [e["seed"] for e in edits] == [20240115, 20240116, 20240117]
    assert edits[0]["captions"][0]["t"][1] <= 831 and edits[2]["captions"][-1]["caption"].endswith(
        "Long Sleeve, V-Neck, Draped Hem")  # fmt: skip
    assert "schedule: windows from the conditioning" in record["schedule"]["draft_plan"]

    # preservation: with blending the latent outside each region is the source's (the editing bound, 1e-4)
    for e in edits:
        fig = e["preservation"]
        assert fig["latent_cells_outside"] > fig["latent_cells"] // 3, fig
        assert fig["latent_max_abs_diff_outside"] < 1e-4 and fig["meets_blend_bound"] is True, fig
        assert fig["latent_mean_abs_diff_inside"] > 1e-3, f"{e['key']} changed nothing inside its region"
        assert fig["pixel_psnr_outside_db"] is None or fig["pixel_psnr_outside_db"] > 20
    assert record["draft_to_final_max_abs_latent_diff_outside_all_regions"] < 1e-4

    # the contact sheet: pose, draft and three edits side by side, the edits' regions outlined
    sheet = np.asarray(Image.open(out / "contact_sheet.png").convert("RGB"))
    panel, pad = 176, 12
    assert sheet.shape[1] == pad + 5 * (panel + pad) and sheet.shape[0] > 176 * panel // 128
    outlined = [bool((sheet[:, pad + i * (panel + pad) : (i + 1) * (panel + pad)] == OUTLINE).all(-1).any())
                for i in range(5)]  # fmt: skip
    assert outlined == [False, False, True, True, True]

    # the run's own workflow: the same graph as workflow_api.json, as ComfyUI's UI format
    ui = json.loads((out / "workflow.json").read_text())
    assert ui_to_api(ui, object_info) == json.loads((out / "workflow_api.json").read_text())
    assert "These images are noise" in captured.out and "--checkpoint v1-5-pruned-emaonly" in captured.out


def test_shipped_workflow_is_the_commands_graph(object_info):
    """workflows/hierafash_design.json is the builder's output; converted back it is what the command queues."""
    shipped = json.loads((REPO / EXAMPLE_WORKFLOW).read_text())
    assert shipped == json.loads(json.dumps(example_workflow(object_info))), (
        "the shipped workflow is stale: run scripts/build_design_workflow.py"
    )
    graph = build_design_graph(example_spec())
    assert ui_to_api(shipped, object_info) == graph.api()
    kinds = [n["type"] for n in shipped["nodes"]]
    assert kinds.count("HieraFash_GradientGuidedEdit") == 3 and kinds.count("HieraFash_ParseMask") == 3
    assert {"HieraFash_PoseDetect", "HieraFash_PoseToCanvas", "HieraFash_StagedKSampler", "ControlNetLoader"} <= set(
        kinds
    )
    # each edit works on the previous one's latent, inside its own ParseMask region
    edits = [nid for nid, n in graph.api().items() if n["class_type"] == "HieraFash_GradientGuidedEdit"]
    api = graph.api()
    assert api[edits[1]]["inputs"]["source"] == [edits[0], 0] and api[edits[2]]["inputs"]["source"] == [edits[1], 0]
    assert [api[api[e]["inputs"]["mask"][0]]["inputs"]["attribute"] for e in edits] == [
        "sleeve_length", "collar", "hem"]  # fmt: skip
    assert [g["title"] for g in shipped["groups"]][:2] == ["Pose from the photo", "Draft from design concepts"]
    by_id = {n["id"]: n for n in shipped["nodes"]}
    for node in shipped["nodes"]:  # the file's sockets are the server's
        if node["type"] == "Note":
            continue
        info = object_info[node["type"]]
        assert [o["name"] for o in node["outputs"]] == info["output_name"], node["type"]
        assert [o["type"] for o in node["outputs"]] == info["output"], node["type"]
        specs = {**info["input"]["required"], **info["input"].get("optional", {})}
        assert all(specs[s["name"]][0] == s["type"] for s in node["inputs"]), node["type"]
    for _, origin, slot, target, target_slot, kind in shipped["links"]:
        assert by_id[origin]["outputs"][slot]["type"] == kind
        assert by_id[target]["inputs"][target_slot]["type"] in (kind, "*")  # PreviewAny takes any type


def test_pose_file_on_a_running_server(comfy_server, tmp_path, capsys):
    """`--server`: a ComfyUI already running (model names are its own); the pose from an OpenPose file."""
    from photos import standing_person

    from hierafash_core.pose.openpose_json import tensor_to_pose_keypoint

    pose = tmp_path / "pose.json"
    pose.write_text(json.dumps(tensor_to_pose_keypoint(standing_person(), (704, 512))))
    out = tmp_path / "out"
    rc = main(["design", "--pose", str(pose), "--category", "Coat", "--edit", "A4=Lapel", "--width", "64",
               "--height", "88", "--steps", "3", "--server", comfy_server.url, "--checkpoint", TINY_CKPT,
               "--out", str(out)])  # fmt: skip
    assert rc == 0, capsys.readouterr().err[-2000:]
    record = json.loads((out / "run.json").read_text())
    assert [s["key"] for s in record["stages"]] == ["pose", "draft", "edit1"]
    assert record["settings"]["concepts"] == {"category": "Coat"} and record["server"] == comfy_server.url
    assert record["stages"][2]["preservation"]["latent_max_abs_diff_outside"] < 1e-4
    assert not (out / "photo.png").exists() and Image.open(out / "pose.png").size == (64, 88)
    assert "pose file" in json.dumps(record["stages"][0]) or record["stages"][0]["files"]["pose.png"] == "pose.png"


def test_draft_from_the_photo_with_a_design_file(comfy_server, tmp_path, capsys):
    """A YAML design file; the draft starts from the photo on the canvas (VAEEncode, denoise below 1)."""
    photo = _photo(tmp_path, "astronaut")
    design = tmp_path / "look.yaml"
    design.write_text(
        f"photo: {photo.name}\nconcepts: Blouse, Office Lady, Office\nedits: [collar=Stand]\n"
        f"start_denoise: 0.5\nwidth: 64\nheight: 88\nsteps: 4\ncheckpoint: {TINY_CKPT}\n"
    )
    out = tmp_path / "out"
    rc = main(["design", "--design", str(design), "--server", comfy_server.url, "--out", str(out)])
    assert rc == 0, capsys.readouterr().err[-2000:]
    record = json.loads((out / "run.json").read_text())
    api = json.loads((out / "workflow_api.json").read_text())
    sampler = next(n for n in api.values() if n["class_type"] == "HieraFash_StagedKSampler")
    assert api[sampler["inputs"]["latent_image"][0]]["class_type"] == "VAEEncode"
    assert sampler["inputs"]["denoise"] == 0.5
    assert record["settings"]["concepts"] == {"category": "Blouse", "style": "Office Lady", "occasion": "Office"}
    assert record["stages"][2]["edit"] == {"attribute": "collar", "code": "A4", "value": "Stand",
                                           "start_timestep": 671, "mask": "mask1_collar.png"}  # fmt: skip
    # denoise 0.5 starts half way down: the sampler's own plan shows no step in the high-noise windows
    steps = record["schedule"]["draft_plan"].splitlines()[1:]
    assert steps and all("t 999-900" not in line and "t 899-800" not in line for line in steps), steps
    assert any("t 499-0" in line for line in steps)


@pytest.mark.parametrize(
    ("photo", "edit", "message"),
    [
        ("coffee", "collar=V-Neck", r"photo 'coffee.png': no person found in image 0 .*use a photo where a person is "
                                    r"clearly visible"),
        ("astronaut", "hem=Draped", r"edit 3 \(hem = Draped\): the hem region .* lies outside the photo .*Use a "
                                    r"photo that shows the body down to the knees"),
    ],
)  # fmt: skip
def test_no_person_and_a_region_outside_the_photo(comfy_server, tmp_path, capsys, photo, edit, message):
    """Real photos that cannot give what is asked fail in the pose stage, before any sampling: one line."""
    import re

    out = tmp_path / "out"
    out.mkdir()
    (out / "draft.png").write_bytes(b"an earlier run's image")
    edits = ["--edit", "sleeve length=Long Sleeve", "--edit", "collar=Round", "--edit", edit]
    start = time.monotonic()
    rc = main(["design", str(_photo(tmp_path, photo)), *edits, *SMALL, "--server", comfy_server.url,
               "--checkpoint", TINY_CKPT, "--out", str(out)])  # fmt: skip
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("hierafash design: error")]
    assert rc == 2 and len(err) == 1 and re.search(message, err[0]), err
    assert time.monotonic() - start < 60
    assert sorted(p.name for p in out.iterdir()) == ["draft.png"], "nothing finished: nothing written"
    assert (out / "draft.png").read_bytes() == b"an earlier run's image"


def test_ctrl_c_stops_the_server_prompt_and_keeps_finished_stages(comfy_server, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "hierafash_core.cli", "design", str(_photo(tmp_path, "camera")), *EDITS,
           "--width", "128", "--height", "176", "--steps", "16", "--server", comfy_server.url,
           "--checkpoint", TINY_CKPT, "--out", str(out)]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    # Ctrl-C as at a terminal: a shell that starts jobs in the background (nohup, `&` without job
    # control) passes SIGINT on ignored, and Python then never raises KeyboardInterrupt.
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not (out / "latents" / "draft.latent").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(1.0)  # into edit 1
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "stopped during edit1; kept pose, draft" in err and "Traceback" not in err
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "interrupted" and record["stopped_at"] == "edit1"
    assert [s["status"] for s in record["stages"]] == ["done", "done", "interrupted"]
    assert (out / "draft.png").is_file() and (out / "contact_sheet.png").is_file()
    client = ComfyClient(comfy_server.url, timeout=10)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the interrupted prompt leaves the server's queue
        queue = client._request("/queue")
        if not queue["queue_running"] and not queue["queue_pending"]:
            break
        time.sleep(0.5)
    assert not queue["queue_running"] and not queue["queue_pending"], "the server is still running the edit"


def _no_build(*args, **kwargs):
    raise AssertionError("a test must never start the hour-long build of the real mini designer")


def test_demo_runs_on_the_built_in_mini_designer(tmp_path, mini_test_designer, capsys, monkeypatch):
    """`hierafash demo`'s default model: MiniDesignerLoader in the graph, its 128x192 size, the held-out
    camera pose, four edits (sleeves, length, collar, hem), each only inside its region."""
    root, files, _ = mini_test_designer
    models = tmp_path / "models"
    models.mkdir()
    (models / "mini-designer").symlink_to(files.folder, target_is_directory=True)
    monkeypatch.setenv("HIERAFASH_MODELS", str(models))  # the private server inherits it
    monkeypatch.setattr("hierafash_core.mini.build.build_mini_designer", _no_build)
    out = tmp_path / "demo"
    rc = main(["demo", "--steps", "6", "--comfyui", str(COMFY_DIR), "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err[-2000:]
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "finished" and record["models"]["checkpoint"] == "built-in"
    assert record["models"]["mini_designer"] == str(models / "mini-designer")
    assert "cameraman" in record["pose_source"] and record["photo_source"] is None
    assert [s["key"] for s in record["stages"]] == ["pose", "draft", "edit1", "edit2", "edit3", "edit4"]
    assert [s["edit"]["attribute"] for s in record["stages"][2:]] == [
        "sleeve length", "clothing length", "collar", "hem"]  # fmt: skip
    api = json.loads((out / "workflow_api.json").read_text())
    loaders = [n for n in api.values() if n["class_type"] == "HieraFash_MiniDesignerLoader"]
    assert len(loaders) == 1 and not any(n["class_type"] == "CheckpointLoaderSimple" for n in api.values())
    edits = [n for n in api.values() if n["class_type"] == "HieraFash_GradientGuidedEdit"]
    assert {e["inputs"]["gradient_path"] for e in edits} == {"clean estimate"}
    # each edit guides away from the design before it (the built-in model's default edit negative)
    for e in edits:
        negative = api[e["inputs"]["negative"][0]]
        assert negative["class_type"] == "ConditioningCombine"
        assert api[negative["inputs"]["conditioning_1"][0]]["class_type"] == "HieraFash_ConceptEncode"
    assert all(e["inputs"]["control_net"][0] == next(k for k, v in api.items() if v is loaders[0]) for e in edits)
    # the sleeve edit starts from the painted sleeve (SleeveHint -> VAEEncode -> init), the others from the source
    encoder = api[edits[0]["inputs"]["init"][0]]
    assert api[encoder["inputs"]["pixels"][0]]["class_type"] == "HieraFash_SleeveHint"
    assert [("init" in e["inputs"]) for e in edits] == [True, False, False, False]
    # run.json says where each edit started: the hinted sleeve lower than the paper's A2 (t = 831)
    assert [s["edit"]["start_timestep"] for s in record["stages"][2:]] == [341, 911, 671, 591]
    assert edits[0]["inputs"]["start_timestep"] == 341
    for name in ("draft.png", "edit4_hem.png"):
        assert Image.open(out / name).size == (128, 192), name
    for stage in record["stages"][2:]:
        assert stage["preservation"]["latent_max_abs_diff_outside"] < 1e-4, stage["key"]
    assert "These images are noise" not in captured.out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--width", "256"], r"the built-in mini designer draws 128 x 192 only"),
        (["--controlnet", "x.safetensors"], r"brings its own pose ControlNet"),
    ],
)
def test_the_mini_designer_refuses_settings_it_cannot_honour(tmp_path, argv, message, capsys, monkeypatch):
    monkeypatch.setattr("hierafash_core.mini.build.build_mini_designer", _no_build)
    monkeypatch.setenv("HIERAFASH_MODELS", str(tmp_path / "models"))  # never the real build's folder
    rc = main(["demo", *argv, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc != 0 and re.search(message, err), err
