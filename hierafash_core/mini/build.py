"""Build the mini designer from its recipe: data, autoencoder, text encoder, UNet + pose ControlNet.

Stages (each skipped when a finished result of the same recipe is already in the work folder):

    1. data          ``hierafash synth``: the synthetic croquis, deterministic from the data seed
    2. autoencoder   trained on the training split's images (:mod:`.autoencoder_train`)
    3. text encoder  a seeded random CLIP text transformer (:mod:`.text`), frozen
    4. diffusion     the pack's trainer, mode ``unet+controlnet``: the UNet of
                     ``configs/mini-designer/unet.json`` and a pose ControlNet made from it, trained
                     together with staged captions on the autoencoder's latents
    5. files         the checkpoint and the ControlNet file (:mod:`.files`), their SHA-256 and the
                     manifest

Every random choice comes from the recipe's seeds (data, initial weights, batch order, noise,
timesteps, caption dropout), and the number of CPU threads is part of the recipe, so the same
recipe on the same software gives the same files; a run cut short resumes from the trainer's last
checkpoint without changing the result.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch

from .paths import CONFIG_DIR
from .recipe import Recipe

log = logging.getLogger(__name__)

Report = Callable[[str], None]


STAGES = ("data", "autoencoder", "diffusion", "files")


def _stage_done(folder: Path, key: str) -> dict | None:
    """The stage's record when ``folder`` holds a finished result made with the settings ``key``."""
    marker = folder / "stage.json"
    if not marker.is_file():
        return None
    data = json.loads(marker.read_text(encoding="utf-8"))
    return data if data.get("settings_sha256") == key else None


def _mark(folder: Path, key: str, **info) -> dict:
    data = {"settings_sha256": key, **info}
    (folder / "stage.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return data


class _Clock:
    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> dict:
        return {
            "wall_s": round(time.perf_counter() - self.wall, 1),
            "cpu_s": round(time.process_time() - self.cpu, 1),
        }


def build_data(recipe: Recipe, work: Path, report: Report) -> tuple[Path, dict]:
    from ..synth.writer import SynthConfig, write_dataset

    folder = work / "synth"
    key = recipe.stage_key("data")
    done = _stage_done(folder, key)
    if done:
        return folder, done
    clock = _Clock()
    d = recipe.data
    meta_file = folder / "dataset.json"
    if meta_file.is_file():  # drawn by `hierafash synth` with the same settings: the same files
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        same = (meta.get("seed"), meta.get("count"), meta.get("size"), meta.get("test_fraction")) == (
            d.seed, d.count, list(d.size), d.test_fraction)  # fmt: skip
        if same and meta.get("attribute_values") == "distinct" and (folder / "records.jsonl").is_file():
            report(f"1/5 data: reusing {folder} (drawn with the same settings)")
            return folder, _mark(folder, key, splits=meta["splits"], reused=True)
    config = SynthConfig(count=d.count, seed=d.seed, size=tuple(d.size), test_fraction=d.test_fraction)
    report(f"1/5 data: drawing {d.count} croquis into {folder}")
    meta = write_dataset(folder, config, workers=d.workers, force=True)
    return folder, _mark(folder, key, splits=meta["splits"], **clock.read())


def build_autoencoder(recipe: Recipe, data: Path, work: Path, report: Report) -> tuple[Path, dict]:
    from .autoencoder import save_autoencoder
    from .autoencoder_train import load_images, reconstruction_psnr, train_autoencoder

    folder = work / "autoencoder"
    path = folder / "autoencoder.safetensors"
    key = recipe.stage_key("autoencoder")
    done = _stage_done(folder, key)
    if done and path.is_file():
        return path, done
    folder.mkdir(parents=True, exist_ok=True)
    clock = _Clock()
    report(f"2/5 autoencoder: {recipe.autoencoder_training.steps} steps on {recipe.autoencoder_images} images")
    images = load_images(data, "train", limit=recipe.autoencoder_images)
    last = [time.perf_counter()]

    def progress(step: int, total: int, loss: float) -> None:
        if step % 100 == 0 or step == total:
            report(f"   autoencoder step {step}/{total} loss {loss:.4f} ({time.perf_counter() - last[0]:.0f} s)")

    model, logbook = train_autoencoder(images, recipe.autoencoder_training, recipe.autoencoder, callback=progress)
    del images
    held_out = load_images(data, "test", limit=256)
    psnr = reconstruction_psnr(model, held_out)
    save_autoencoder(model, path, metadata={"settings_sha256": key})
    (folder / "loss.jsonl").write_text("".join(json.dumps(e) + "\n" for e in logbook), encoding="utf-8")
    report(f"   autoencoder: held-out reconstruction PSNR {psnr:.2f} dB")
    return path, _mark(folder, key, test_psnr_db=round(psnr, 3), final_loss=logbook[-1]["loss"], **clock.read())


def make_base(recipe: Recipe, autoencoder_path: Path):
    """The frozen parts the trainer needs: text encoder, tokenizer, autoencoder, noise schedule (no UNet)."""
    from diffusers import DDPMScheduler

    from ..training.models import BaseModel, load_tokenizer
    from .autoencoder import load_autoencoder
    from .text import build_text_encoder

    scheduler = DDPMScheduler.from_config(scheduler_settings(recipe))
    return BaseModel(
        unet=None,
        text_encoder=build_text_encoder(recipe.text_seed, token_scale=recipe.text_token_scale),
        tokenizer=load_tokenizer(None, None),
        vae=load_autoencoder(autoencoder_path),
        scheduler=scheduler,
        unet_config=json.loads(recipe.unet_path.read_text(encoding="utf-8")),
        latent_scale=1.0,
        latent_offset=0.0,
        source="mini-designer recipe",
    )


def train_config(recipe: Recipe, data: Path, run: Path, base_dir: Path):
    from ..training import TrainConfig

    settings = {
        "dataset": str(data),
        "base": str(base_dir),
        "output_dir": str(run),
        "mode": "unet+controlnet",
        "unet_config": str(recipe.unet_path),
        "seed": recipe.seed,
        "progress": False,
        "output_name": "mini",
        **recipe.train,
    }
    return TrainConfig.from_dict(settings).validate()


def build_diffusion(recipe: Recipe, data: Path, ae_path: Path, work: Path, report: Report) -> tuple[dict, dict]:
    from ..training import train
    from ..training.checkpoint import list_checkpoints

    run = work / "diffusion"
    key = recipe.stage_key("diffusion")
    done = _stage_done(run, key)
    exports = {"unet": run / "mini-unet.safetensors", "controlnet": run / "mini-controlnet.safetensors"}
    if done and all(p.is_file() for p in exports.values()):
        return exports, done
    clock = _Clock()
    config = train_config(recipe, data, run, ae_path.parent)
    if list_checkpoints(run):
        import dataclasses

        config = dataclasses.replace(config, resume="latest")
        report(f"4/5 diffusion: resuming {run} from its last checkpoint")
    else:
        report(f"4/5 diffusion: {config.max_steps} steps of batch {config.batch_size} (UNet + pose ControlNet)")
    base = make_base(recipe, ae_path)
    started = time.perf_counter()

    def progress(step: int, total: int, loss: float) -> None:
        if step % 50 == 0 or step == total:
            rate = (time.perf_counter() - started) / max(1, step)
            report(f"   step {step}/{total} loss {loss:.4f} ({rate:.2f} s/step this session)")

    result = train(config, base=base, callback=progress)
    info = _mark(run, key, steps=result.step, final_loss=result.loss, weights_sha256=result.weights_sha256,
                 **clock.read())  # fmt: skip
    return {k: Path(v) for k, v in result.exports.items()}, info


def scheduler_settings(recipe: Recipe) -> dict:
    """``scheduler.json`` with the recipe's prediction type (the one noise schedule every recipe shares)."""
    scheduler = json.loads((CONFIG_DIR / "scheduler.json").read_text(encoding="utf-8"))
    return {**{k: v for k, v in scheduler.items() if not k.startswith("_")}, "prediction_type": recipe.prediction}


def model_info(recipe: Recipe) -> dict:
    """What a loader needs besides the tensors: noise schedule, prompt schedule, image size, provenance."""
    return {
        "name": recipe.name,
        "scheduler": scheduler_settings(recipe),
        "prompt_schedule": recipe.train.get("schedule", "paper"),
        "image_size": [recipe.train.get("width", 128), recipe.train.get("height", 192)],
        "recipe_sha256": recipe.sha256,
    }


def build_mini_designer(
    out: str | Path,
    recipe: Recipe | str | Path = "cpu",
    *,
    work: str | Path | None = None,
    report: Report | None = None,
    keep_work: bool = True,
    stop_after: str = "files",
) -> dict:
    """Run every stage of ``recipe`` and write the mini designer's files into ``out``; return the manifest.

    Args:
        work: folder of the stages' intermediate results (default ``<out>-build`` beside ``out``); a
            build that was cut short continues from what is there.
        report: gets one line per stage and progress lines (the CLI prints them).
        keep_work: keep the work folder (data, checkpoints) after the files are written.
        stop_after: the last stage to run (one of :data:`STAGES`); the manifest then lists the
            finished stages only and no model files are written.
    """
    from .files import MiniDesignerFiles, sha256_file, write_checkpoint
    from .text import build_text_encoder

    recipe = recipe if isinstance(recipe, Recipe) else Recipe.load(recipe)
    report = report or (lambda line: log.info("%s", line))
    out = Path(out)
    work = Path(work) if work is not None else out.parent / f"{out.name}-build"
    work.mkdir(parents=True, exist_ok=True)
    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    if stop_after not in STAGES:
        raise ValueError(f"stop_after={stop_after!r}: use one of {', '.join(STAGES)}")
    clock = _Clock()
    data, data_info = build_data(recipe, work, report)
    if stop_after == "data":
        return {"stages": {"data": data_info}}
    ae_path, ae_info = build_autoencoder(recipe, data, work, report)
    if stop_after == "autoencoder":
        return {"stages": {"data": data_info, "autoencoder": ae_info}}
    report("3/5 text encoder: seeded, frozen")
    text_encoder = build_text_encoder(recipe.text_seed, token_scale=recipe.text_token_scale)
    stage_threads = torch.get_num_threads()
    if recipe.train_threads:
        torch.set_num_threads(recipe.train_threads)
    try:
        exports, diffusion_info = build_diffusion(recipe, data, ae_path, work, report)
    finally:
        train_threads = torch.get_num_threads()
        torch.set_num_threads(stage_threads)
    if stop_after == "diffusion":
        return {"stages": {"data": data_info, "autoencoder": ae_info, "diffusion": diffusion_info}}

    report(f"5/5 files: writing {out}")
    from .autoencoder import load_autoencoder
    from .autoencoder_train import fit_latent_rgb, load_images

    files = MiniDesignerFiles.in_folder(out)
    autoencoder = load_autoencoder(ae_path)
    info = model_info(recipe)
    info["latent_rgb"] = fit_latent_rgb(autoencoder, load_images(data, "train", limit=256))
    write_checkpoint(
        files.checkpoint, unet_file=exports["unet"], text_encoder=text_encoder, autoencoder=autoencoder, info=info
    )
    shutil.copyfile(exports["controlnet"], files.controlnet)
    manifest = {
        "name": recipe.name,
        "recipe": recipe.source,
        "recipe_sha256": recipe.sha256,
        "threads": stage_threads,
        **({"train_threads": train_threads} if recipe.train_threads else {}),
        "software": {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine()},
        "stages": {"data": data_info, "autoencoder": ae_info, "diffusion": diffusion_info},
        "files": {
            files.checkpoint.name: {"sha256": sha256_file(files.checkpoint), "bytes": files.checkpoint.stat().st_size},
            files.controlnet.name: {"sha256": sha256_file(files.controlnet), "bytes": files.controlnet.stat().st_size},
        },
        "this_session": clock.read(),
    }
    files.manifest.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    if not keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return manifest


EXPECTED_FILE = CONFIG_DIR / "expected.json"


def check_expected(manifest: dict) -> tuple[bool | None, str]:
    """Compare a build's file hashes with the ones recorded for its recipe in ``expected.json``.

    Returns ``(True/False, message)``, or ``(None, message)`` when nothing is recorded for the recipe
    or the build ran with other threads or software (exactness is promised only for the same ones).
    """
    if not EXPECTED_FILE.is_file():
        return None, "no recorded hashes to compare with (configs/mini-designer/expected.json is missing)"
    expected = json.loads(EXPECTED_FILE.read_text(encoding="utf-8")).get(manifest["recipe_sha256"])
    if expected is None:
        return None, "no recorded hashes for this recipe; the files cannot be checked for exactness"
    same_setup = (
        expected["threads"] == manifest["threads"]
        and expected.get("train_threads") == manifest.get("train_threads")
        and expected["torch"] == manifest["software"]["torch"]
    )
    got = {name: entry["sha256"] for name, entry in manifest["files"].items()}
    if got == expected["files"]:
        return True, "the files equal the recorded build bit for bit"
    if not same_setup:
        return None, (
            f"the files differ from the recorded build, which used {_threads(expected)} and torch "
            f"{expected['torch']}; this build used {_threads(manifest)} and {manifest['software']['torch']}"
        )
    return False, "the files differ from the recorded build of this recipe with the same threads and torch"


def _threads(entry: dict) -> str:
    train = entry.get("train_threads")
    return f"{entry['threads']} thread(s)" + (f" ({train} for the diffusion stage)" if train else "")


def record_expected(manifest: dict) -> Path:
    """Record a build's file hashes (with its threads and torch version) as the expected ones for its recipe."""
    data = json.loads(EXPECTED_FILE.read_text(encoding="utf-8")) if EXPECTED_FILE.is_file() else {}
    data[manifest["recipe_sha256"]] = {
        "recipe": Path(manifest["recipe"]).name,
        "threads": manifest["threads"],
        **({"train_threads": manifest["train_threads"]} if manifest.get("train_threads") else {}),
        "torch": manifest["software"]["torch"],
        "files": {name: entry["sha256"] for name, entry in manifest["files"].items()},
    }
    EXPECTED_FILE.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return EXPECTED_FILE
