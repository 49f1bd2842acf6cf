"""The mini designer without ComfyUI: autoencoder, text encoder, joint training, the build, the headless pipeline."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from mini_fixtures import build_test_designer, write_test_recipe

from hierafash_core.cli import main as cli_main
from hierafash_core.mini import mini_designer_files
from hierafash_core.mini.autoencoder import AutoencoderConfig, MiniAutoencoder, load_autoencoder, save_autoencoder
from hierafash_core.mini.build import check_expected
from hierafash_core.mini.files import MiniDesignerFiles, read_info
from hierafash_core.mini.pipeline import MiniDesigner, normal_sigmas
from hierafash_core.mini.recipe import Recipe
from hierafash_core.mini.text import build_text_encoder, encode_captions, separation
from hierafash_core.prompt import HierarchicalPrompt
from hierafash_core.schedule import PromptSchedule
from hierafash_core.synth.pose_bank import POSES_BY_NAME, place
from hierafash_core.taxonomy import FIELDS
from hierafash_core.training import TrainConfig, train
from hierafash_core.training.models import BaseModel, load_base, load_tokenizer
from hierafash_core.training.tiny import TINY_UNET, build_tiny_base, write_toy_dataset

PROMPT = HierarchicalPrompt.from_caption(
    "Dress, Elegant, Party, Tall, Crisp Feeling, Long Dress, Short Sleeve, Puffed Sleeve, V-Neck, Ruffle Hem"
)


@pytest.fixture(scope="module")
def built(mini_test_designer):
    return mini_test_designer


# -- autoencoder ---------------------------------------------------------------------------------------
def test_autoencoder_is_8x_with_normalised_latents(tmp_path):
    torch.manual_seed(0)
    ae = MiniAutoencoder()
    x = torch.rand(3, 3, 192, 128) * 2 - 1
    with torch.no_grad():
        raw = ae.encode_raw(x)
        ae.set_latent_stats(raw)
        z = ae.encode(x)
        y = ae.decode(z)
    assert raw.shape == z.shape == (3, 4, 24, 16) and y.shape == x.shape
    assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(4), atol=1e-5)
    assert torch.allclose(z.std(dim=(0, 2, 3)), torch.ones(4), atol=1e-4)
    with pytest.raises(ValueError, match=r"multiples of 8, got \(190, 128\)"):
        ae.encode(torch.zeros(1, 3, 190, 128))
    with pytest.raises(ValueError, match=r"expected \(B, 4, h, w\)"):
        ae.decode(torch.zeros(1, 3, 24, 16))
    path = save_autoencoder(ae, tmp_path / "ae.safetensors")
    again = load_autoencoder(path)
    assert all(torch.equal(a, b) for a, b in zip(ae.state_dict().values(), again.state_dict().values(), strict=True))
    with pytest.raises(ValueError, match="channels=.*three widths"):
        AutoencoderConfig(channels=(32, 64))


def test_autoencoder_loader_refuses_other_files(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a mini designer autoencoder"):
        load_autoencoder(tmp_path / "other.safetensors")


# -- text encoder ---------------------------------------------------------------------------------------
def test_frozen_text_encoder_separates_captions_that_differ_in_one_field():
    """Every field changed alone moves the caption's states clearly: the most-changed token by a fifth
    of its size or more (0.25-0.63 seen), the whole 77-token sequence by at least 4% (the last field,
    hem, moves fewest tokens); the same seed gives the same encoder."""
    encoder, tokenizer = build_text_encoder(11), load_tokenizer(None, None)
    captions = [PROMPT.caption()]
    for f in FIELDS:
        other = next(v for v in f.values if v != PROMPT.values[f.key])
        captions.append(HierarchicalPrompt({**PROMPT.values, f.key: other}).caption())
    states = encode_captions(encoder, tokenizer, captions)  # (11, 77, 384)
    base, changed = states[:1].expand(len(FIELDS), -1, -1), states[1:]
    whole = separation(base, changed)
    per_token = ((base - changed).norm(dim=-1) / base.norm(dim=-1)).amax(dim=1)
    assert whole.min() > 0.04, whole
    assert per_token.min() > 0.2, per_token
    assert separation(states[:1], encode_captions(build_text_encoder(11), tokenizer, captions[:1])).item() == 0.0


# -- the trainer's joint mode -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    unet_json = root / "unet.json"
    unet_json.write_text(json.dumps(TINY_UNET))
    return {"base": build_tiny_base(root / "base"), "data": write_toy_dataset(root / "data", 8), "unet": unet_json}


def _mini_base(tiny) -> BaseModel:
    """The tiny base with a deterministic mini autoencoder in place of its sampling VAE."""
    base = load_base(tiny["base"])
    torch.manual_seed(1)
    base.vae, base.latent_scale, base.latent_offset = MiniAutoencoder(), 1.0, 0.0
    base.unet = None
    return base


def _joint(tiny, out, **kw) -> TrainConfig:
    settings = dict(
        dataset=str(tiny["data"]), base=str(tiny["base"]), output_dir=str(out), cpu=True, height=64, width=64,
        batch_size=2, learning_rate=1e-3, checkpoint_every=0, progress=False, mode="unet+controlnet",
        unet_config=str(tiny["unet"]), export_dtype="fp32",
    )  # fmt: skip
    settings.update(kw)
    return TrainConfig(**settings)


def _losses(out) -> list[float]:
    return [e["loss"] for e in map(json.loads, (Path(out) / "loss.jsonl").read_text().splitlines())]


def test_joint_mode_trains_unet_and_controlnet_and_exports_both(tiny, tmp_path):
    from safetensors.torch import load_file

    result = train(_joint(tiny, tmp_path / "a", max_steps=3, freeze_pose_embedding=True), base=_mini_base(tiny))
    assert set(result.exports) == {"unet", "controlnet"}
    unet, cn = load_file(str(result.exports["unet"])), load_file(str(result.exports["controlnet"]))
    assert all(k.startswith("model.diffusion_model.") for k in unet)
    assert all(k.startswith("control_model.") for k in cn)
    assert cn["control_model.zero_convs.0.0.weight"].abs().sum() > 0  # the zero convolutions learned
    # The frozen pose embedding keeps its seeded values: a second run from the same seed has the same ones.
    again = train(_joint(tiny, tmp_path / "b", max_steps=1, freeze_pose_embedding=True), base=_mini_base(tiny))
    first_layer = "control_model.input_hint_block.0.weight"
    assert torch.equal(cn[first_layer], load_file(str(again.exports["controlnet"]))[first_layer])
    last = "control_model.input_hint_block.14.weight"
    assert not torch.equal(cn[last], load_file(str(again.exports["controlnet"]))[last])  # the last one trains


def test_latent_cache_changes_nothing_but_the_work(tiny, tmp_path):
    plain = train(_joint(tiny, tmp_path / "plain", max_steps=6), base=_mini_base(tiny))
    cached = train(_joint(tiny, tmp_path / "cached", max_steps=6, latent_cache=100), base=_mini_base(tiny))
    assert _losses(tmp_path / "plain") == _losses(tmp_path / "cached")
    assert plain.weights_sha256 == cached.weights_sha256
    with pytest.raises(ValueError, match="latent_cache is set but the base's VAE samples"):
        train(_joint(tiny, tmp_path / "kl", max_steps=1, latent_cache=10, mode="unet"), base=load_base(tiny["base"]))


def test_resume_with_weight_average_repeats_the_run(tiny, tmp_path):
    common = dict(max_steps=2, checkpoint_every=1, ema_decay=0.9, snr_gamma=5.0)
    whole = train(_joint(tiny, tmp_path / "whole", **common), base=_mini_base(tiny))

    def stop(step, total, loss):
        if step == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_joint(tiny, tmp_path / "cut", **common), base=_mini_base(tiny), callback=stop)
    assert (tmp_path / "cut" / "checkpoints" / "step-0000001" / "ema.safetensors").is_file()
    resumed = train(_joint(tiny, tmp_path / "cut", resume="latest", **common), base=_mini_base(tiny))
    assert _losses(tmp_path / "cut") == _losses(tmp_path / "whole")
    report = [json.loads((p / "ranks" / "rank-0.json").read_text()) for p in (tmp_path / "whole", tmp_path / "cut")]
    assert report[0]["ema_sha256"] == report[1]["ema_sha256"] is not None
    assert whole.weights_sha256 == resumed.weights_sha256


def test_new_training_settings_are_checked():
    ok = dict(dataset="d", base="b", output_dir="o")
    with pytest.raises(ValueError, match="ema_decay=1.0: use 0"):
        TrainConfig(**ok, ema_decay=1.0).validate()
    with pytest.raises(ValueError, match="snr_gamma=-1.0"):
        TrainConfig(**ok, snr_gamma=-1.0).validate()
    with pytest.raises(ValueError, match="freeze_pose_embedding is set but mode='lora'"):
        TrainConfig(**ok, mode="lora", freeze_pose_embedding=True).validate()
    with pytest.raises(ValueError, match="latent_cache=-1"):
        TrainConfig(**ok, latent_cache=-1).validate()


# -- the build ----------------------------------------------------------------------------------------
def test_build_writes_the_files_and_a_manifest(built):
    root, files, manifest = built
    assert files.exist()
    info = read_info(files.checkpoint)
    assert info["unet"]["block_out_channels"] == [64, 128, 256] and info["unet"]["cross_attention_dim"] == 384
    assert info["text_encoder"]["hidden_size"] == 384 and info["image_size"] == [128, 192]
    assert len(info["latent_rgb"]["factors"]) == 4 and len(info["latent_rgb"]["bias"]) == 3
    assert set(manifest["stages"]) == {"data", "autoencoder", "diffusion"}
    assert manifest["stages"]["diffusion"]["steps"] == 2
    saved = json.loads(files.manifest.read_text())
    assert saved["files"] == manifest["files"]
    assert cli_main(["mini-designer", "info", "--out", str(files.folder)]) == 0


def test_a_rebuild_gives_the_same_bytes_and_a_changed_file_is_reported(built, tmp_path, capsys):
    _, files, manifest = built
    again, manifest_again = build_test_designer(tmp_path)
    assert manifest_again["files"] == manifest["files"]  # names, sizes and SHA-256 of both files
    copy = tmp_path / "copy"
    shutil.copytree(files.folder, copy)
    with (copy / files.controlnet.name).open("r+b") as fh:
        fh.seek(-4, 2)
        fh.write(b"\0\0\0\1")
    assert cli_main(["mini-designer", "info", "--out", str(copy)]) == 1
    assert "DIFFERS FROM THE MANIFEST" in capsys.readouterr().out


def test_build_resumes_and_reuses_finished_stages(built):
    root, files, manifest = built
    lines = []
    from hierafash_core.mini.build import build_mini_designer

    again = build_mini_designer(root / "out", root / "recipe.json", report=lines.append)
    assert "1/5 data" not in " ".join(lines) and not any(line.startswith("2/5") for line in lines)
    assert again["files"] == manifest["files"]


def test_expected_hashes_are_compared_only_for_the_same_setup(built):
    _, _, manifest = built
    from hierafash_core.mini import build as build_module

    record = {manifest["recipe_sha256"]: {"threads": manifest["threads"], "torch": manifest["software"]["torch"],
                                         "files": {k: v["sha256"] for k, v in manifest["files"].items()}}}  # fmt: skip
    original = build_module.EXPECTED_FILE
    try:
        build_module.EXPECTED_FILE = Path(manifest["stages"]["data"].get("x", "/nonexistent"))
        assert check_expected(manifest)[0] is None
        path = Path(original).parent / "_test_expected.json"
        build_module.EXPECTED_FILE = path
        path.write_text(json.dumps(record))
        assert check_expected(manifest) == (True, "the files equal the recorded build bit for bit")
        other = json.loads(json.dumps(manifest))
        next(iter(other["files"].values()))["sha256"] = "0" * 64
        assert check_expected(other)[0] is False
        other["threads"] = 7
        assert check_expected(other)[0] is None
    finally:
        build_module.EXPECTED_FILE = original
        (Path(original).parent / "_test_expected.json").unlink(missing_ok=True)


def test_recipe_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="recipe=nope: no such file; use cpu, gpu"):
        Recipe.load("nope")
    for text, kind in (("null", "NoneType"), ('["name"]', "list"), ("5", "int")):
        (tmp_path / "x.json").write_text(text)
        with pytest.raises(ValueError, match=rf"a JSON {kind}; a recipe is a JSON object of settings"):
            Recipe.load(tmp_path / "x.json")
    bad = write_test_recipe(tmp_path / "a", colour="red")
    with pytest.raises(ValueError, match=r"unknown keys \['colour'\]"):
        Recipe.load(bad)
    bad = write_test_recipe(tmp_path / "b", train={"dataset": "x"})
    with pytest.raises(ValueError, match="train.dataset is set by the build"):
        Recipe.load(bad)
    bad = write_test_recipe(tmp_path / "c", prediction="sample")
    with pytest.raises(ValueError, match="prediction='sample'; use one of epsilon, v_prediction"):
        Recipe.load(bad)
    cpu, gpu = Recipe.load("cpu"), Recipe.load("gpu")
    assert cpu.stage_key("data") != gpu.stage_key("data") and cpu.train["max_steps"] < gpu.train["max_steps"]


def test_train_threads_change_only_the_diffusion_stage(tmp_path, built, monkeypatch):
    plain = Recipe.load(write_test_recipe(tmp_path / "plain"))
    two = Recipe.load(write_test_recipe(tmp_path / "two", train_threads=2))
    assert plain.train_threads == 0 and two.train_threads == 2
    # the data and autoencoder stages (and their cached results) are shared; the diffusion stage is not
    assert [plain.stage_key(s) for s in ("data", "autoencoder")] == [two.stage_key(s) for s in ("data", "autoencoder")]
    assert plain.stage_key("diffusion") != two.stage_key("diffusion")
    for bad in (-1, 1.5, "two", None, True, 10**12):
        with pytest.raises(ValueError, match=rf"train_threads={bad!r}: .*a whole number"):
            Recipe.load(write_test_recipe(tmp_path / "bad", train_threads=bad))

    # the build trains with them and gives the threads back; the manifest names both counts
    before = torch.get_num_threads()
    _, two_manifest = build_test_designer(tmp_path / "built", train_threads=2)
    assert (two_manifest["threads"], two_manifest["train_threads"]) == (1, 2)
    assert torch.get_num_threads() == 1  # the recipe's own count (the build sets it), not the diffusion one
    torch.set_num_threads(before)
    _, _, manifest = built
    assert manifest["threads"] == 1 and "train_threads" not in manifest
    from hierafash_core.mini import build as build_module

    monkeypatch.setattr(build_module, "EXPECTED_FILE", tmp_path / "expected.json")
    build_module.record_expected(manifest)
    other = json.loads(json.dumps(manifest))
    next(iter(other["files"].values()))["sha256"] = "0" * 64
    assert check_expected(other)[0] is False
    other["train_threads"] = 2
    ok, message = check_expected(other)
    assert ok is None and "this build used 1 thread(s) (2 for the diffusion stage)" in message


def test_files_built_from_an_older_recipe_load_with_a_warning(built, tmp_path, caplog):
    _, files, manifest = built
    folder = tmp_path / "model"
    shutil.copytree(files.folder, folder)
    recipe = tmp_path / "recipe.json"
    shutil.copyfile(manifest["recipe"], recipe)
    record = json.loads((folder / "manifest.json").read_text())
    record["recipe"] = str(recipe)
    (folder / "manifest.json").write_text(json.dumps(record))
    with caplog.at_level("WARNING", logger="hierafash_core.mini"):
        assert mini_designer_files(folder, build=False).folder == folder
    assert "older version" not in caplog.text
    recipe.write_text(recipe.read_text().replace('"seed": 3', '"seed": 4'))
    with caplog.at_level("WARNING", logger="hierafash_core.mini"):
        assert mini_designer_files(folder, build=False).folder == folder  # still loads
    assert f"was built from an older version of {recipe}; run `hierafash mini-designer build`" in caplog.text


def test_missing_files_are_not_built_when_asked_not_to(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `hierafash mini-designer build`"):
        mini_designer_files(tmp_path / "none", build=False)
    with pytest.raises(FileNotFoundError, match="not built"):
        MiniDesigner.load(MiniDesignerFiles.in_folder(tmp_path / "none"))


# -- the headless pipeline ---------------------------------------------------------------------------
def test_denoiser_shows_the_staged_caption_of_each_noise_level(built):
    _, files, _ = built
    model = MiniDesigner.load(files)
    pose = model.pose_image(place(POSES_BY_NAME["front"].keypoints, (128, 192)))
    assert pose.shape == (1, 3, 192, 128)
    x = torch.randn(1, 4, 24, 16, generator=torch.Generator().manual_seed(0)) * 10
    table = model.sigma_table
    schedule = PromptSchedule.paper()
    for t in (950, 850, 600, 100):
        sigma = table[t].view(1)
        staged = model.denoiser([PROMPT], pose, cfg=3.0)(x, sigma)
        direct = model.denoiser([schedule.caption_at(PROMPT, t)], pose, cfg=3.0)(x, sigma)
        flat = model.denoiser([PROMPT], pose, cfg=3.0, staged=False)(x, sigma)
        assert torch.equal(staged, direct), t
        assert torch.equal(flat, model.denoiser([PROMPT.caption()], pose, cfg=3.0)(x, sigma))
        assert (flat - staged).abs().max() > 0 if t >= 560 else torch.equal(flat, staged)
    no_pose = model.denoiser([PROMPT], None, cfg=3.0)(x, table[500].view(1))
    assert (no_pose - model.denoiser([PROMPT], pose, cfg=3.0)(x, table[500].view(1))).abs().max() > 0


def test_drafts_sample_and_decode(built):
    _, files, _ = built
    model = MiniDesigner.load(files)
    sigmas = normal_sigmas(4, model.sigma_table)
    assert sigmas.shape == (5,) and sigmas[-1] == 0 and bool((sigmas[:-1] > sigmas[1:]).all())
    pose = model.pose_image(place(POSES_BY_NAME["front"].keypoints, (128, 192)))
    z = model.sample(model.denoiser([PROMPT, PROMPT], pose, cfg=4.0), 2, steps=3, seed=1)
    assert z.shape == (2, 4, 24, 16) and torch.isfinite(z).all()
    images = model.decode(z)
    assert images.shape == (2, 3, 192, 128) and 0 <= float(images.min()) and float(images.max()) <= 1
    assert torch.equal(z, model.sample(model.denoiser([PROMPT, PROMPT], pose, cfg=4.0), 2, steps=3, seed=1))
    with pytest.raises(ValueError, match="3 prompts for a batch of 2"):
        model.denoiser([PROMPT] * 3, pose)(z, torch.ones(2))
    with pytest.raises(ValueError, match=r"expected \(18, 3\) or \(B, 18, 3\)"):
        model.pose_image(torch.zeros(17, 3))
    assert dataclasses.is_dataclass(model)


def test_a_source_prompt_as_the_negative_is_guidance_away_from_it(built):
    # cfg w with the source design as the negative = old + w * (new - old), both staged per noise level
    _, files, _ = built
    model = MiniDesigner.load(files)
    old = HierarchicalPrompt({**PROMPT.values, "sleeve_length": "Short Sleeve"})
    new = HierarchicalPrompt({**PROMPT.values, "sleeve_length": "Long Sleeve"})
    pose = model.pose_image(place(POSES_BY_NAME["front"].keypoints, (128, 192)))
    x = torch.randn(2, 4, 24, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for sigma in (torch.full((2,), 20.0), torch.full((2,), 1.0)):  # above and inside the sleeve window
            guided = model.denoiser([new, new], pose, cfg=3.0, negative=[old, old])(x, sigma)
            d_old = model.denoiser([old, old], pose, cfg=1.0)(x, sigma)
            d_new = model.denoiser([new, new], pose, cfg=1.0)(x, sigma)
            torch.testing.assert_close(guided, d_old + 3.0 * (d_new - d_old), rtol=1e-4, atol=1e-4)
        plain = model.denoiser([new, new], pose, cfg=3.0)(x, torch.full((2,), 1.0))
        assert not torch.allclose(plain, guided), "the empty negative must differ from the source one"
        one = model.denoiser([new, new], pose, cfg=3.0, negative=old)(x, torch.full((2,), 1.0))
        torch.testing.assert_close(one, guided)  # one negative prompt serves the whole batch
        # one prompt for the batch with one negative per latent
        each = model.denoiser([new], pose, cfg=3.0, negative=[old, old])(x, torch.full((2,), 1.0))
        torch.testing.assert_close(each, guided)
        with pytest.raises(ValueError, match="negative: 3 prompts for a batch of 2 latents"):
            model.denoiser([new, new], pose, negative=[old] * 3)(x, torch.full((2,), 1.0))
    for bad in (None, 5, []):
        with pytest.raises(ValueError, match=re.escape(f"negative={bad!r}: give a caption string")):
            model.denoiser([new, new], pose, negative=bad)


def test_caption_summary_is_the_token_mean_and_reaches_the_unet(built):
    from hierafash_core.models.caption_summary import caption_summary, summary_kwargs, takes_caption_summary

    states = torch.randn(2, 77, 384, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(caption_summary(states), states.mean(1))
    with pytest.raises(ValueError, match=r"expected \(batch, tokens, width\)"):
        caption_summary(states[0])
    model = MiniDesigner.load(built[1])
    assert takes_caption_summary(model.unet) == (model.info["unet"].get("class_embed_type") == "projection")
    if takes_caption_summary(model.unet):
        # The summary changes the prediction: another caption's summary with the same token states differs.
        x, t = torch.randn(2, 4, 24, 16), torch.tensor([500, 500])
        with torch.no_grad():
            a = model.unet(x, t, encoder_hidden_states=states, **summary_kwargs(model.unet, states)).sample
            b = model.unet(x, t, encoder_hidden_states=states, class_labels=caption_summary(states.flip(0))).sample
        assert (a - b).abs().max() > 0
