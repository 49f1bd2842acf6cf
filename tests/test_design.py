"""`hierafash design` without a ComfyUI: canvas fitting, the design spec, preservation figures, the UI
writer, and bad input refused before any server starts (one line, exit code 2, earlier files kept)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hierafash_core.cli import main
from hierafash_core.design.canvas import canvas_fit, check_canvas, fit_image, fit_pose
from hierafash_core.design.metrics import outside_cells, preservation
from hierafash_core.design.spec import DesignSpec, Edit
from hierafash_core.workflow import api_to_ui, ui_to_api

REPO = Path(__file__).resolve().parents[1]


# -- canvas ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fit", ["contain", "cover", "stretch"])
def test_photo_pixels_and_keypoints_move_together(fit):
    """A bright dot at a keypoint lands where the fitted keypoint says, for every fit."""
    h, w = 300, 500
    photo = torch.zeros(1, 3, h, w)
    x, y = 310.0, 120.0
    photo[:, :, int(y) - 3 : int(y) + 4, int(x) - 3 : int(x) + 4] = 1.0
    kp = torch.zeros(1, 18, 3)
    kp[0, 1] = torch.tensor([x + 0.5, y + 0.5, 0.9])  # the neck, at the dot's centre (pixel centres at +0.5)
    frame = [{"people": [{"pose_keypoints_2d": kp[0].flatten().tolist()}], "canvas_width": w, "canvas_height": h}]
    moved, as_json, f = fit_pose(frame, (176, 128), fit)
    canvas = fit_image(photo, f, pad=0.0)
    assert canvas.shape == (1, 3, 176, 128)
    cx, cy = moved[0, 1, 0].item(), moved[0, 1, 1].item()
    ys, xs = torch.nonzero(canvas[0, 0] > 0.2, as_tuple=True)
    assert abs(xs.float().mean().item() + 0.5 - cx) < 1.0 and abs(ys.float().mean().item() + 0.5 - cy) < 1.0
    assert as_json[0]["canvas_width"] == 128 and as_json[0]["canvas_height"] == 176
    assert moved[0, 0].tolist() == [0.0, 0.0, 0.0], "missing points stay missing"


def test_contain_pads_white_and_keeps_the_whole_photo():
    f = canvas_fit((512, 512), (352, 256), "contain")
    assert f.resized == (256, 256) and (f.offset_x, f.offset_y) == (0, 48)
    out = fit_image(torch.zeros(1, 3, 512, 512), f)
    assert out[0, :, :48].min() == 1.0 and out[0, :, 48:304].max() == 0.0 and out[0, :, 304:].min() == 1.0
    f = canvas_fit((512, 512), (352, 256), "cover")
    assert f.resized == (352, 352) and f.offset_x == -48


def test_canvas_sizes_are_checked_with_the_fix():
    with pytest.raises(ValueError, match=r"width=250: must be a multiple of 8 .* use 248 or 256"):
        check_canvas(250, 352)
    with pytest.raises(ValueError, match="height=32: must be between 64"):
        check_canvas(256, 32)
    with pytest.raises(ValueError, match="no canvas_width/canvas_height"):
        fit_pose([{"people": [{"pose_keypoints_2d": [1.0, 2.0, 1.0] * 18}]}], (352, 256))


# -- the spec -----------------------------------------------------------------------------------------
def test_edits_parse_names_values_and_refuse_concepts():
    e = Edit.parse("Sleeve Length = long sleeves", "Dress")
    assert (e.key, e.value, e.field.code) == ("sleeve_length", "Long Sleeve", "A2")
    assert Edit.parse({"A4": "v neck"}).value == "V-Neck"
    assert Edit.parse("hem: draped hem").value == "Draped"
    with pytest.raises(ValueError, match=r"edit sleve lenght=Long: .*Did you mean 'sleeve length'"):
        Edit.parse("sleve lenght=Long")
    with pytest.raises(ValueError, match="style is a design concept.*edits change one attribute"):
        Edit.parse("style=Punk")
    with pytest.raises(ValueError, match=r"collar='Turtle' is not in the vocabulary"):
        Edit.parse("collar=Turtle")
    with pytest.raises(ValueError, match="write ATTRIBUTE=VALUE"):
        Edit.parse("collar")


def test_spec_checks_and_cumulative_attributes():
    edits = [Edit.parse("sleeve length=Short Sleeve"), Edit.parse("collar=V-Neck"), Edit.parse("sleeve length=Long")]
    spec = DesignSpec(photo="p.png", attributes={"hem": "Flat"}, edits=edits)
    assert spec.attributes_after(0) == {"hem": "Flat"}
    assert spec.attributes_after(2) == {"hem": "Flat", "sleeve_length": "Short Sleeve", "collar": "V-Neck"}
    assert spec.attributes_after(3)["sleeve_length"] == "Long Sleeve", "a later edit of the same field wins"
    assert spec.edit_prompt(2).caption().endswith("Short Sleeve, V-Neck, Flat Hem")
    with pytest.raises(ValueError, match="a photo or as a pose file"):
        DesignSpec()
    with pytest.raises(ValueError, match=r"start_denoise=0.5: starting from the photo needs a photo"):
        DesignSpec(pose_json="[]", start_denoise=0.5)
    with pytest.raises(ValueError, match="steps=0: must be a whole number, at least 1"):
        DesignSpec(photo="p.png", steps=0)


def test_edits_can_guide_away_from_the_design_before_them():
    from hierafash_core.design.graph import build_design_graph

    edits = [Edit.parse("sleeve length=Long Sleeve"), Edit.parse("collar=V-Neck")]
    with pytest.raises(ValueError, match=r"edit_negative='old': use text .* or source"):
        DesignSpec(photo="p.png", edits=edits, edit_negative="old")
    by_text = build_design_graph(DesignSpec(photo="p.png", edits=edits)).api()
    api = build_design_graph(DesignSpec(photo="p.png", edits=edits, edit_negative="source")).api()

    def of(graph, kind):
        return [k for k, n in graph.items() if n["class_type"] == kind]

    (text_neg,) = of(by_text, "CLIPTextEncode")
    assert {tuple(by_text[e]["inputs"]["negative"]) for e in of(by_text, "HieraFash_GradientGuidedEdit")} == {
        (text_neg, 0)}  # fmt: skip
    (concepts,) = of(api, "HieraFash_ConceptEncode")
    encodes = of(api, "HieraFash_AttributeEncode")  # the draft's, then one per edit
    for k, edit in enumerate(of(api, "HieraFash_GradientGuidedEdit")):
        negative = api[api[edit]["inputs"]["negative"][0]]
        assert negative["class_type"] == "ConditioningCombine"
        # the design before edit k: the concepts and the attributes of the draft (k = 0) or of edit k - 1
        assert negative["inputs"] == {"conditioning_1": [concepts, 0], "conditioning_2": [encodes[k], 0]}
        positive = api[api[edit]["inputs"]["positive"][0]]
        assert positive["inputs"]["conditioning_2"] == [encodes[k + 1], 0]
    assert api[encodes[1]]["inputs"]["sleeve_length"] == "Long Sleeve"
    assert api[encodes[0]]["inputs"]["sleeve_length"] != "Long Sleeve"


def test_refused_settings_leave_no_output_folder_behind(tmp_path, capsys):
    pose = tmp_path / "pose.json"
    pose.write_text('{"people": [{"pose_keypoints_2d": [' + ", ".join(["10, 10, 1"] * 18) + "]}], "
                    '"canvas_width": 128, "canvas_height": 192}')  # fmt: skip
    for bad in (["--edit-resample", "0"], ["--steps", "0"]):
        out = tmp_path / f"out{bad[1]}"
        assert main(["design", "--pose", str(pose), "--checkpoint", "test-model", "--out", str(out), *bad]) == 2
        assert not out.exists(), bad
    assert "edit_resample=0: give a whole number of passes per step from 1" in capsys.readouterr().err


def test_pasted_edits_composite_each_edit_into_the_image_before_it():
    from hierafash_core.design.graph import build_design_graph

    edits = [Edit.parse("clothing length=Long"), Edit.parse("sleeve length=Long Sleeve"), Edit.parse("hem=Ruffle")]
    spec = DesignSpec(photo="p.png", concepts={"category": "Blouse"}, attributes={"clothing_length": "Short"},
                      edits=edits, edit_resample=5, edit_paste=True)  # fmt: skip
    api = build_design_graph(spec).api()

    def of(kind):
        return [k for k, n in api.items() if n["class_type"] == kind]

    edit_nodes, masks, pastes = (
        of("HieraFash_GradientGuidedEdit"),
        of("HieraFash_ParseMask"),
        of("ImageCompositeMasked"),
    )
    assert [api[e]["inputs"]["latent_mask"] for e in edit_nodes] == ["cover"] * 3
    assert {api[e]["inputs"]["resample"] for e in edit_nodes} == {5}
    # a length edit reaches as far as the longer length (a long blouse ends at the ankles); the hem
    # edit after it as far as the blouse now is; a sleeve edit keeps the category's range
    assert [api[m]["inputs"]["reach"] for m in masks] == ["Long", "category", "Long"]
    (draft_decode,) = [k for k in of("VAEDecode") if api[k]["inputs"]["samples"][0] in of("HieraFash_StagedKSampler")]
    destinations = [api[p]["inputs"]["destination"][0] for p in pastes]
    assert destinations == [draft_decode, pastes[0], pastes[1]]  # each onto the image before it
    assert [api[p]["inputs"]["mask"][0] for p in pastes] == masks
    saved = {api[s]["inputs"]["images"][0] for s in of("SaveImage")}
    assert set(pastes) <= saved
    plain = build_design_graph(DesignSpec(photo="p.png", edits=edits)).api()
    assert not [k for k, n in plain.items() if n["class_type"] == "ImageCompositeMasked"]
    edits_plain = [n for n in plain.values() if n["class_type"] == "HieraFash_GradientGuidedEdit"]
    assert {n["inputs"]["latent_mask"] for n in edits_plain} == {"average"}
    free = DesignSpec(photo="p.png", attributes={"clothing_length": "ankle grazing"}, allow_free_text=True,
                      edits=[Edit.parse("hem=Ruffle")])  # fmt: skip
    assert free.edit_reach(1) == "category"  # free text says nothing about where the garment ends
    assert build_design_graph(free).api()
    with pytest.raises(ValueError, match=r"edit_resample=0: give a whole number of passes per step from 1"):
        DesignSpec(photo="p.png", edits=edits, edit_resample=0)
    with pytest.raises(ValueError, match=r"edit_paste='yes': give true or false"):
        DesignSpec(photo="p.png", edits=edits, edit_paste="yes")


# -- preservation figures -------------------------------------------------------------------------------
def test_a_sleeve_hint_starts_sleeve_edits_from_the_painted_image_below_the_papers_start():
    from hierafash_core.design.graph import build_design_graph
    from hierafash_core.editing import SLEEVE_HINT_START_T

    edits = [
        Edit.parse("sleeve length=Long Sleeve"),
        Edit.parse("collar=V-Neck"),
        Edit.parse("sleeve length=Sleeveless"),
    ]
    spec = DesignSpec(photo="p.png", edits=edits, edit_paste=True, sleeve_hint=True)
    api = build_design_graph(spec).api()
    kinds = ("HieraFash_GradientGuidedEdit", "HieraFash_SleeveHint", "ImageCompositeMasked", "HieraFash_PoseToCanvas")
    of = {kind: [k for k, n in api.items() if n["class_type"] == kind] for kind in kinds}
    edit_nodes, hints, pastes = (
        of["HieraFash_GradientGuidedEdit"],
        of["HieraFash_SleeveHint"],
        of["ImageCompositeMasked"],
    )
    assert [api[h]["inputs"]["sleeve_length"] for h in hints] == ["Long Sleeve", "Sleeveless"]
    # the second sleeve edit paints the image after the collar edit, on the canvas' keypoints
    assert api[hints[1]]["inputs"]["image"] == [pastes[1], 0]
    assert {api[h]["inputs"]["pose_keypoint"][0] for h in hints} == set(of["HieraFash_PoseToCanvas"])
    for e, hinted in zip(edit_nodes, (True, False, True), strict=True):
        inputs = api[e]["inputs"]
        if hinted:
            encoder = api[inputs["init"][0]]
            assert encoder["class_type"] == "VAEEncode" and encoder["inputs"]["pixels"][0] in hints
            assert (inputs["attribute"], inputs["start_timestep"]) == ("custom timestep", SLEEVE_HINT_START_T)
        else:
            assert "init" not in inputs and inputs["attribute"].startswith("A4 collar")
    plain = build_design_graph(DesignSpec(photo="p.png", edits=edits)).api()
    assert not any(n["class_type"] == "HieraFash_SleeveHint" for n in plain.values())
    free = [Edit.parse("sleeve length=cap sleeves", allow_free_text=True)]
    with pytest.raises(ValueError, match=r"edit 1: sleeve length 'cap sleeves' is free text.*--no-sleeve-hint"):
        DesignSpec(photo="p.png", edits=free, sleeve_hint=True, allow_free_text=True)
    with pytest.raises(ValueError, match=r"sleeve_hint='on': give true or false"):
        DesignSpec(photo="p.png", edits=edits, sleeve_hint="on")


def test_outside_cells_leave_a_margin_around_faint_mask_edges():
    mask = np.zeros((64, 48), dtype=np.float32)
    mask[20:30, 10:20] = 1.0  # cells rows 2-3, cols 1-2
    mask[31, 21] = 0.5 / 255  # a faint edge pixel that an 8-bit save reads as 0 is still next to the region
    out = outside_cells(np.floor(mask * 255) / 255, (8, 6))
    inside = ~out
    assert inside[1:5, 0:4].all() and inside.sum() == 16, "the region's cells grown by one cell"
    assert out[6:, :].all() and out[:, 5].all()


def test_preservation_figures_from_latents_and_images():
    torch.manual_seed(0)
    src = torch.randn(1, 4, 8, 6)
    edited = src.clone()
    edited[:, :, 2:4, 1:3] += 1.0  # the edit changed its region only
    mask = np.zeros((64, 48), dtype=np.float32)
    mask[16:32, 8:24] = 1.0
    img = np.random.default_rng(0).uniform(0, 255, (64, 48, 3))
    img2 = img.copy()
    img2[16:32, 8:24] = 0
    fig = preservation(src, edited, mask, img, img2)
    assert fig["latent_max_abs_diff_outside"] == 0.0 and fig["latent_mean_abs_diff_inside"] > 0.2
    assert fig["pixel_psnr_outside_db"] is None and fig["pixel_max_abs_diff_outside"] == 0.0  # identical: inf
    edited[0, 0, 7, 5] += 0.25
    assert preservation(src, edited, mask)["latent_max_abs_diff_outside"] == pytest.approx(0.25)


# -- the UI writer ---------------------------------------------------------------------------------------
INFO = {
    "Loader": {"input": {"required": {"name": [["a.safetensors"], {}]}}, "output": ["MODEL", "CLIP"],
               "output_name": ["MODEL", "CLIP"]},
    "Sampler": {
        "input": {"required": {"model": ["MODEL", {}], "seed": ["INT", {"control_after_generate": True}],
                               "cfg": ["FLOAT", {"default": 7.0}]},
                  "optional": {"extra": ["MODEL", {}], "mode": ["COMBO", {"options": ["x", "y"]}]}},
        "input_order": {"required": ["model", "seed", "cfg"], "optional": ["extra", "mode"]},
        "output": ["LATENT"], "output_name": ["latent"],
    },
    "Load": {"input": {"required": {"image": [["p.png"], {"image_upload": True}]}}, "output": ["IMAGE"],
             "output_name": ["IMAGE"]},
}  # fmt: skip


def test_api_to_ui_round_trips_through_ui_to_api():
    graph = {
        "1": {"class_type": "Loader", "inputs": {"name": "a.safetensors"}, "_meta": {"title": "L"}},
        "2": {"class_type": "Sampler", "inputs": {"model": ["1", 0], "seed": 5, "cfg": 2.0, "mode": "y"},
              "_meta": {"title": "S"}},
        "3": {"class_type": "Load", "inputs": {"image": "p.png"}, "_meta": {"title": "Load"}},
    }  # fmt: skip
    ui = api_to_ui(graph, INFO, notes=[{"text": "hello"}])
    sampler = next(n for n in ui["nodes"] if n["id"] == 2)
    assert sampler["widgets_values"] == [5, "fixed", 2.0, "y"]
    assert [s["name"] for s in sampler["inputs"]] == ["model", "extra"] and sampler["inputs"][1]["link"] is None
    assert next(n for n in ui["nodes"] if n["id"] == 3)["widgets_values"] == ["p.png", "image"]
    assert ui["links"] == [[1, 1, 0, 2, 0, "MODEL"]]
    assert ui_to_api(ui, INFO) == graph


# -- bad input, refused before a server starts -----------------------------------------------------------
def _earlier(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    earlier = out / "draft.png"
    earlier.write_bytes(b"an earlier run's image")
    return earlier


def _fails(args: list[str], capsys, pattern: str) -> str:
    rc = main(["design", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, err
    assert len(err) == 1, f"expected one line, got: {err}"
    assert "Traceback" not in err[0]
    assert re.search(pattern, err[0]), err[0]
    return err[0]


def test_bad_photos_and_edits_are_one_line_errors(tmp_path, capsys):
    out = tmp_path / "out"
    earlier = _earlier(out)
    not_image = tmp_path / "notes.png"
    not_image.write_text("this is not a photo")
    _fails([str(not_image), "--out", str(out)], capsys, r"photo '.*notes.png': cannot read it as an image.*PNG, JPEG")
    truncated = tmp_path / "cut.png"
    Image.new("RGB", (200, 200), "white").save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:60])
    _fails([str(truncated), "--out", str(out)], capsys, r"cannot read it as an image")
    _fails([str(tmp_path / "nope.jpg"), "--out", str(out)], capsys, r"photo '.*nope.jpg': no such file")
    photo = tmp_path / "p.png"
    Image.new("RGB", (128, 128), "gray").save(photo)
    _fails([str(photo), "--edit", "sleve length=Long Sleeve", "--out", str(out)], capsys,
           r"edit sleve length=Long Sleeve: .*Did you mean 'sleeve length'")  # fmt: skip
    _fails([str(photo), "--edit", "neckline=Turtle", "--out", str(out)], capsys, r"collar='Turtle' is not in")
    _fails([str(photo), "--width", "250", "--out", str(out)], capsys, r"width=250: must be a multiple of 8")
    _fails(
        [
            str(photo),
            "--checkpoint",
            "missing.safetensors",
            "--comfyui",
            str(REPO / ".cache" / "comfyui"),
            "--out",
            str(out),
        ],
        capsys,
        r"checkpoints 'missing.safetensors' not found; looked in: .*models/checkpoints.*Put the .safetensors file",
    )
    _fails([str(photo), "--checkpoint", str(photo), "--out", str(out)], capsys, r"is not a .safetensors file")
    assert earlier.read_bytes() == b"an earlier run's image" and sorted(os.listdir(out)) == ["draft.png"]


def test_design_file_and_pose_file_errors(tmp_path, capsys):
    design = tmp_path / "d.yaml"
    design.write_text("photo: p.png\nedits: [collar=V-Neck]\ncolour: red\n")
    _fails(["--design", str(design)], capsys, r"unknown setting\(s\) colour; known: ")
    design.write_text("photo: [unclosed\n")
    _fails(["--design", str(design)], capsys, r"is not valid YAML")
    pose = tmp_path / "pose.json"
    pose.write_text(json.dumps([{"people": [], "canvas_width": 64, "canvas_height": 64}]))
    _fails(["--pose", str(pose)], capsys, r"--pose .*pose.json: the keypoints list no person")
    _fails([], capsys, r"give a photo of a person .* or --pose FILE.json")


def test_output_folder_that_is_a_file(tmp_path, capsys):
    photo = tmp_path / "p.png"
    Image.new("RGB", (128, 128), "gray").save(photo)
    out = tmp_path / "out.png"
    out.write_bytes(b"keep me")
    _fails([str(photo), "--out", str(out)], capsys, r"--out .*out.png: is a file, not a folder; give a folder path")
    assert out.read_bytes() == b"keep me"


def test_read_only_output_folder_and_unreadable_photo(tmp_path):
    """Permission bits (root ignores them: the CLI then runs without capabilities, under setpriv)."""
    out = tmp_path / "out"
    earlier = _earlier(out)
    photo = tmp_path / "p.png"
    Image.new("RGB", (128, 128), "gray").save(photo)
    secret = tmp_path / "secret.png"
    Image.new("RGB", (128, 128), "gray").save(secret)
    prefix = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: permission bits cannot be enforced")
        prefix = ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1")

    def run(*args: str) -> list[str]:
        cmd = [*prefix, sys.executable, "-m", "hierafash_core.cli", "design", *args, "--out", str(out)]
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        return proc.stderr.strip().splitlines()

    out.chmod(0o555)
    secret.chmod(0o000)
    try:
        (line,) = run(str(photo))
        assert "cannot write there (Permission denied); choose a folder you can write to" in line
        (line,) = run(str(secret))
        assert "secret.png': cannot open it (permission denied); make the file readable" in line
    finally:
        out.chmod(0o755)
        secret.chmod(0o644)
    assert earlier.read_bytes() == b"an earlier run's image" and sorted(os.listdir(out)) == ["draft.png"]


def test_a_server_without_the_pack_or_the_model_is_named():
    from hierafash_core.cli import CLIError
    from hierafash_core.cli.design_run import _check_server_models

    with pytest.raises(CLIError, match=r"lacks the HieraFash nodes \(HieraFash_PoseToCanvas, .*install the pack"):
        _check_server_models("http://127.0.0.1:9", {"KSampler": {}}, {})
    info = {n: {} for n in ("HieraFash_PoseToCanvas", "HieraFash_GradientGuidedEdit")}
    info["CheckpointLoaderSimple"] = {"input": {"required": {"ckpt_name": [["a.safetensors", "b.safetensors"]]}}}
    with pytest.raises(CLIError, match=r"--checkpoint 'c.safetensors': .*\(it has: a.safetensors, b.safetensors\)"):
        _check_server_models("http://127.0.0.1:9", info, {"checkpoint": "c.safetensors"})


def test_queue_downloads_saved_latents_and_keeps_names_inside_the_folder(tmp_path):
    """`hierafash queue` fetches SaveLatent outputs too (the design workflow saves every stage's latent)."""
    from hierafash_core.queue import download_outputs

    class Client:
        def view(self, filename, subfolder, folder_type):
            return f"{subfolder}/{filename}:{folder_type}".encode()

    entry = {"outputs": {
        "15": {"latents": [{"filename": "draft_00001_.latent", "subfolder": "hierafash/design", "type": "output"}]},
        "14": {"images": [{"filename": "../../evil.png", "subfolder": "", "type": "output"}]},
    }}  # fmt: skip
    files = download_outputs(Client(), entry, tmp_path)
    assert sorted(p.name for p in files) == ["14_evil.png", "15_draft_00001_.latent"]
    assert (tmp_path / "15_draft_00001_.latent").read_bytes() == b"hierafash/design/draft_00001_.latent:output"


def test_design_on_the_built_in_model_takes_its_size_and_settings(tmp_path, monkeypatch):
    """`design --checkpoint built-in` needs no --width/--height: the mini designer's 128x192 and its
    evaluated settings become the defaults; what the user gives still wins."""
    import hierafash_core.cli.design as design

    seen = {}

    def fake_run(args, settings, *rest, **kwargs):
        seen.update(settings)
        return 0

    monkeypatch.setattr(design, "run_session_command", fake_run)
    pose = tmp_path / "pose.json"
    pose.write_text('{"people": [{"pose_keypoints_2d": [' + ", ".join(["10, 10, 1"] * 18) + "]}], "
                    '"canvas_width": 128, "canvas_height": 192}')  # fmt: skip
    assert main(["design", "--pose", str(pose), "--checkpoint", "built-in", "--steps", "7"]) == 0
    assert (seen["width"], seen["height"], seen["steps"], seen["cfg"]) == (128, 192, 7, 4.0)
    assert seen["edit_negative"] == "source" and "gradient_path" not in seen  # the clean estimate, the default
    assert (seen["edit_resample"], seen["edit_paste"], seen["sleeve_hint"]) == (1, True, True)
    assert main(["design", "--pose", str(pose), "--checkpoint", "built-in", "--edit-negative", "text",
                 "--edit-resample", "2", "--no-edit-paste", "--no-sleeve-hint"]) == 0  # fmt: skip
    assert seen["edit_negative"] == "text"  # the command line wins over the model's default
    assert (seen["edit_resample"], seen["edit_paste"], seen["sleeve_hint"]) == (2, False, False)


def _design_beside_a_photo(tmp_path: Path) -> Path:
    """Where a test writes its design file (look.yaml), next to the photo it names (p.png)."""
    Image.new("RGB", (128, 128), "gray").save(tmp_path / "p.png")
    return tmp_path / "look.yaml"


def _design_file_fails(design: Path, text: str, capsys, pattern: str, *options: str) -> str:
    """Write ``text`` into the design file and check the one-line error of a run with it."""
    design.write_text(text)
    return _fails(["--design", str(design), *options, "--out", str(design.parent / "out")], capsys, pattern)


def test_errors_about_a_design_files_settings_name_the_file(tmp_path, capsys):
    """A bad value from a design file says which file it is in; the same value typed on the command line
    does not claim to come from the file."""
    design = _design_beside_a_photo(tmp_path)
    named = r"design file .*look.yaml: "
    for text, pattern in [
        ("photo: p.png\ncfg: 500\n", named + r"cfg=500(\.0)?: must be between"),
        ("photo: p.png\nedits: [neckline=Turtle]\n", named + r"edit .*'Turtle' is not in"),
        ("photo: missing.png\n", named + r"photo .*missing.png.*no such file"),
        ("concepts: {category: Spacesuit}\nphoto: p.png\n", named + r"concepts: .*Spacesuit"),
        ("pose: missing.json\n", named + r"pose .*missing.json"),
        # wrong shapes of edits and attributes are one-line errors that name the file
        ("photo: p.png\nedits: collar=V-Neck\n", named + r"'edits' must be a list"),
        ("photo: p.png\nattributes: [collar=V-Neck]\n", named + r"'attributes' must be a mapping"),
    ]:
        _design_file_fails(design, text, capsys, pattern)
    # typed on the command line, the value is not blamed on the file
    _design_file_fails(design, "photo: p.png\ncfg: 500\n", capsys, r"error: cfg=700(\.0)?: must be between",
                       "--cfg", "700")  # fmt: skip
    line = _design_file_fails(design, "photo: p.png\nconcepts: {category: Dress}\n", capsys, r"Spacesuit",
                              "--concepts", "Spacesuit")  # fmt: skip
    assert "design file" not in line
    # a bad attribute in the file is the file's, even with a good one typed beside it; a typed bad one is not
    _design_file_fails(design, "photo: p.png\nattributes: {collar: Turtle}\n", capsys,
                       named + r"attribute .*'Turtle' is not in", "--attribute", "hem=Flat")  # fmt: skip
    line = _design_file_fails(design, "photo: p.png\nattributes: {hem: Flat}\n", capsys, r"'Turtle' is not in",
                              "--attribute", "collar=Turtle")  # fmt: skip
    assert "design file" not in line
    assert not (tmp_path / "out").exists()


def test_out_typed_on_the_command_line_wins_over_the_design_files(tmp_path, monkeypatch, capsys):
    import hierafash_core.cli.design_run as design_run

    chosen = []

    def stop_at_out(out):  # the real settings checks ran; record the folder and stop before a server starts
        chosen.append(Path(out))
        raise ValueError("stopped by the test")

    monkeypatch.setattr(design_run, "check_out_dir", stop_at_out)
    design = _design_beside_a_photo(tmp_path)
    design.write_text(f"photo: p.png\nout: {tmp_path / 'from-file'}\n")
    _fails(["--design", str(design), "--out", str(tmp_path / "typed")], capsys, "stopped by the test")
    _fails(["--design", str(design)], capsys, "stopped by the test")
    design.write_text("photo: p.png\n")
    _fails(["--design", str(design)], capsys, "stopped by the test")
    assert chosen == [tmp_path / "typed", tmp_path / "from-file", Path("out/design")]
