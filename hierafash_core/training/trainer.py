"""Staged-caption fine-tuning on diffusers + accelerate (HieraFashDiff, section 3 and DESIGN.md 2).

One training step, for a batch of images x0 with poses p and caption fields F:

    1. z0 = (VAE(x0) + offset) * scale                      latents as the UNet sees them
    2. t ~ U{0..T-1}, eps ~ N(0, I), z_t = sqrt(a_t) z0 + sqrt(1 - a_t) eps
    3. c = caption(F, fields_at(t)), or "" with probability caption_dropout
    4. eps_hat = UNet(z_t, t, text(c), ControlNet(z_t, t, text(c), render(p)))
    5. L = || eps_hat - eps ||^2   (or the velocity target for v-prediction models; with
       ``region_weights``, each latent pixel's error weighted by its parse region)

Only the trainable part gets gradients: the ControlNet (the paper's recipe; the base UNet stays
frozen), LoRA layers on the UNet, the whole UNet, or a UNet and its ControlNet together (a small
model trained from scratch). With ``snr_gamma`` the MSE of each example is weighted by
min(SNR_t, gamma) / SNR_t (min-SNR, Hang et al. 2023); with ``ema_decay`` a moving average of the
weights is kept and exported. ``accelerate launch`` or ``torchrun`` runs
the same function on several processes: each takes its own slice of every batch and DDP averages
the gradients, so every process ends each step with the same weights.

| symbol | here |
|---|---|
| a_t | ``scheduler.alphas_cumprod[t]`` |
| fields_at, caption | :meth:`PromptSchedule.caption_at` (shared with inference) |
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..models.caption_summary import summary_kwargs
from .checkpoint import (
    find_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
    step_dir,
)
from .config import TrainConfig, parse_region_weights
from .data import PoseCaptionDataset, StepBatches, collate
from .models import BaseModel, load_base, read_json
from .parts import LatentCache, TextCache, Trainable, WeightAverage, place
from .summary_whitening import attach_whitening, check_takes_summary, estimate_whitening

log = logging.getLogger(__name__)

LOSS_LOG = "loss.jsonl"
EMA_FILE = "ema.safetensors"


@dataclass
class TrainResult:
    """What a run produced (each process returns its own; files are written by the main process)."""

    output_dir: Path
    step: int
    loss: float | None
    exports: dict[str, Path] = field(default_factory=dict)
    checkpoint: Path | None = None
    rank: int = 0
    world_size: int = 1
    weights_sha256: str = ""


def _step_generator(seed: int, micro_step: int, rank: int) -> torch.Generator:
    # A generator per (seed, micro-step, process): noise, timesteps and caption dropout do not
    # depend on how many steps ran before in this process, so a resumed run repeats them exactly.
    mixed = (seed * 0x9E3779B1 + micro_step * 0x85EBCA77 + rank * 0xC2B2AE3D) % (2**63 - 1)
    return torch.Generator().manual_seed(mixed)


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the tensors (float32 bytes, sorted by name): equal digests mean equal weights."""
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def draw_timesteps(batch: int, num_t: int, focus_share: float, focus_t_min: int, g: torch.Generator) -> torch.Tensor:
    """(batch,) timesteps: uniform on 0..num_t-1, except a ``focus_share`` of them uniform on
    ``focus_t_min..num_t-1``. With no focus the draw is exactly the uniform one (same generator use)."""
    t = torch.randint(0, num_t, (batch,), generator=g)
    if focus_share > 0:
        focused = torch.rand(batch, generator=g) < focus_share
        high = torch.randint(min(focus_t_min, num_t - 1), num_t, (batch,), generator=g)
        t = torch.where(focused, high, t)
    return t


def region_map(pixel_weights: torch.Tensor, latent_hw: tuple[int, int]) -> torch.Tensor:
    """(B, 1, H, W) pixel weights -> (B, 1, h, w) on the latent grid, each example's mean 1.

    Area averaging: a latent pixel half sleeve, half background weighs between the two. The mean
    of 1 keeps the loss (and so the learning rate's meaning) the size an unweighted run has.
    """
    small = F.adaptive_avg_pool2d(pixel_weights.float(), tuple(latent_hw))
    return small / small.mean(dim=(1, 2, 3), keepdim=True)


def _check_resume_config(saved: dict, config: TrainConfig, folder: Path) -> None:
    """Refuse a checkpoint whose weights cannot fit this run; warn where they fit but may differ."""
    # summary_whitening changes the checkpoint's tensors (the wrapper's names and statistics), and
    # the statistics are restored from the checkpoint, so a different record count would not apply.
    unset = {"summary_whitening": 0}  # checkpoints written before the setting existed
    for key in ("mode", "lora_rank", "lora_targets", "unet_config", "summary_whitening"):
        if key not in saved and key not in unset:
            continue
        before = saved.get(key, unset.get(key))
        if before != getattr(config, key):
            raise ValueError(
                f"resume={folder}: the checkpoint was trained with {key}={before!r}, this run has "
                f"{getattr(config, key)!r}; use the same {key} or start a new output_dir"
            )
    for key in ("base", "dataset", "schedule", "batch_size", "gradient_accumulation_steps", "seed", "focus_share",
                "focus_t_min", "region_weights"):  # fmt: skip
        if key == "region_weights" and key in saved:  # the same weights, however written, are the same run
            with contextlib.suppress(ValueError):
                if parse_region_weights(saved[key]) == config.region_weight_map:
                    continue
        if key in saved and saved[key] != getattr(config, key):
            log.warning(
                "resume: %s was %r, now %r; the run will not repeat the interrupted one",
                key,
                saved[key],
                getattr(config, key),
            )


def _trim_loss_log(path: Path, step: int) -> None:
    """Keep the log lines of steps up to ``step`` (a resumed run rewrites what came after)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                kept.append(line)
        except json.JSONDecodeError:
            continue  # a line cut short when the interrupted run was killed
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def train(
    config: TrainConfig,
    *,
    base: BaseModel | None = None,
    pose_renderer: Callable | None = None,
    callback: Callable[[int, int, float], None] | None = None,
) -> TrainResult:
    """Train as ``config`` says; return the final step, loss and exported files.

    Args:
        base: an already loaded base model (the tests and benchmarks reuse one); loaded from
            ``config.base`` when ``None``.
        pose_renderer: draws JSON poses for the ControlNet (see :class:`PoseCaptionDataset`).
        callback: ``callback(step, max_steps, loss)`` after every optimizer step.

    Raises:
        ValueError / FileNotFoundError: a bad setting, dataset, base model or checkpoint.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import set_seed
    from diffusers.optimization import get_scheduler
    from tqdm.auto import tqdm

    config.validate()
    if config.mixed_precision == "fp16" and (config.cpu or not torch.cuda.is_available()):
        raise ValueError("mixed_precision=fp16 needs a GPU; use bf16 (or no) on CPU")
    # accelerate keeps one process-wide state; a second run in the same process (tests, a notebook)
    # may ask for another precision, so the per-run part is rebuilt (the process group is kept).
    AcceleratorState._reset_state(reset_partial_state=False)
    accelerator = Accelerator(
        cpu=config.cpu,
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
    )
    rank, world = accelerator.process_index, accelerator.num_processes
    device, is_main = accelerator.device, accelerator.is_main_process
    output_dir = Path(config.output_dir)
    weight_dtype = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[config.mixed_precision]
    schedule = config.prompt_schedule
    if not config.resume and list_checkpoints(output_dir):
        raise ValueError(
            f"output_dir={output_dir} holds checkpoints of an earlier run; pass --resume latest to continue it, "
            "or choose a new output_dir"
        )

    # -- 1. data (first: a bad dataset should fail before minutes of model loading) ---------------
    dataset = PoseCaptionDataset(
        config.dataset,
        height=config.height,
        width=config.width,
        split=config.split,
        with_pose=config.mode in ("controlnet", "unet+controlnet"),
        allow_free_text=config.allow_free_text,
        pose_renderer=pose_renderer,
        region_weights=config.region_weight_map,
    )

    # -- 2. models ----------------------------------------------------------------------------------
    set_seed(config.seed)
    if base is None:
        base = load_base(config.base, tokenizer=config.tokenizer, layout=config.layout)
    if base.unet is None and config.unet_config is None:
        raise ValueError("the base model has no UNet; give unet_config to train one from scratch")
    for part in (base.unet, base.text_encoder, base.vae):
        if part is not None:
            part.requires_grad_(False)
            part.eval()
    trainable = Trainable(config, base)
    whole_unet = config.mode in ("unet", "unet+controlnet")
    if whole_unet:
        base.unet.requires_grad_(True)
    place(base.text_encoder, device, weight_dtype)
    if config.summary_whitening:
        # Before placing the trainable part, so the wrapper's buffers move with it (a resume then
        # loads the checkpoint's own statistics over these). The UNet is checked first: encoding
        # thousands of captions for a UNet that takes no summary would waste minutes.
        check_takes_summary(trainable.module)
        stats = estimate_whitening(
            base.encode_text,
            dataset.prompts[: config.summary_whitening],
            schedule,
            config.caption_dropout,
            focus=(config.focus_share, config.focus_t_min),
            num_t=int(base.scheduler.config.num_train_timesteps),  # the same count the loop draws from
        )
        attach_whitening(trainable.module, stats)
    place(base.vae, device, torch.float32)  # the VAE stays in float32: fp16 SD VAEs overflow
    # The frozen UNet (ControlNet mode) and the frozen UNet weights under LoRA layers are stored in
    # the mixed-precision type; whatever trains stays in float32 (the optimizer's master weights).
    place(base.unet, device, torch.float32 if whole_unet else weight_dtype)
    if config.mode in ("controlnet", "unet+controlnet"):
        place(trainable.module, device, torch.float32)
    for p in trainable.parameters():
        p.data = p.data.float()
    trainable.module.train()
    if config.gradient_checkpointing:
        base.unet.enable_gradient_checkpointing()
        if config.mode == "controlnet":
            trainable.module.enable_gradient_checkpointing()
        elif config.mode == "unet+controlnet":
            trainable.module.controlnet.enable_gradient_checkpointing()
    params = trainable.parameters()
    if not params:
        raise ValueError(f"mode={config.mode}: nothing to train (no parameter requires a gradient)")

    # -- 3. optimiser, schedule, resume -------------------------------------------------------------
    optimizer = torch.optim.AdamW(
        params,
        lr=config.learning_rate,
        betas=(config.adam_beta1, config.adam_beta2),
        eps=config.adam_epsilon,
        weight_decay=config.weight_decay,
    )
    lr_scheduler = get_scheduler(
        config.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=config.lr_warmup_steps,
        num_training_steps=config.max_steps,
    )
    average = WeightAverage(trainable.module, config.ema_decay) if config.ema_decay > 0 else None
    step = 0
    if config.resume:
        folder = find_checkpoint(output_dir, config.resume)
        _check_resume_config(read_json(folder / "config.json"), config, folder)
        weights, opt_state, sched_state, step = load_checkpoint(folder)
        trainable.load(weights)
        optimizer.load_state_dict(opt_state)
        lr_scheduler.load_state_dict(sched_state)
        if average is not None:
            from safetensors.torch import load_file

            if not (folder / EMA_FILE).is_file():
                raise ValueError(f"resume={folder}: no {EMA_FILE} in the checkpoint; it was trained without ema_decay")
            average.load(load_file(str(folder / EMA_FILE)))
        log.info("resumed from %s at step %d", folder, step)
        if step >= config.max_steps:
            log.warning("the checkpoint is at step %d, max_steps=%d: nothing left to train", step, config.max_steps)
    model, optimizer = accelerator.prepare(trainable.module, optimizer)

    accum = config.gradient_accumulation_steps
    sampler = StepBatches(
        len(dataset), config.batch_size, processes=world, rank=rank, seed=config.seed, start=step * accum
    )
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, collate_fn=collate, num_workers=config.num_workers
    )
    batches = iter(loader)
    text = TextCache(base, config.text_cache, weight_dtype)
    latents = LatentCache(base, config.latent_cache)
    sched = base.scheduler
    alphas = sched.alphas_cumprod.to(device)
    num_t = int(sched.config.num_train_timesteps)
    prediction = sched.config.prediction_type
    if prediction not in ("epsilon", "v_prediction"):
        raise ValueError(f"the base's scheduler predicts {prediction!r}; training supports epsilon and v_prediction")

    if is_main:
        output_dir.mkdir(parents=True, exist_ok=True)
        config.save(output_dir)
        if config.resume:
            _trim_loss_log(output_dir / LOSS_LOG, step)
        log_file = (output_dir / LOSS_LOG).open("a" if config.resume else "w", encoding="utf-8")
    indices_hash = hashlib.sha256()
    checkpoints_written = 0
    last_checkpoint: Path | None = None
    last_loss: float | None = None
    start_step, started = step, time.perf_counter()
    bar = tqdm(total=config.max_steps, initial=step, disable=not (is_main and config.progress), desc="train")

    def write_checkpoint(at: int) -> Path | None:
        nonlocal checkpoints_written
        accelerator.wait_for_everyone()
        folder = None
        if is_main:
            unwrapped = accelerator.unwrap_model(model)

            def export_into(p: Path, kind: str) -> None:
                with average.applied(unwrapped) if average is not None else contextlib.nullcontext():
                    trainable.export(unwrapped, p, at, kind)

            extra = {name: (lambda p, k=kind: export_into(p, k)) for kind, name in trainable.export_names().items()}
            if average is not None:
                from safetensors.torch import save_file

                extra[EMA_FILE] = lambda p: save_file(average.state(), str(p))
            folder = save_checkpoint(
                step_dir(output_dir, at),
                trainable=trainable.state(unwrapped),
                optimizer_state=optimizer.state_dict(),
                scheduler_state=lr_scheduler.state_dict(),
                step=at,
                config_json=config.to_dict(),
                extra_files=extra,
            )
            checkpoints_written += 1
            prune_checkpoints(output_dir, config.checkpoints_total_limit)
            log.info("checkpoint %s", folder)
        accelerator.wait_for_everyone()
        return folder

    # -- 4. the loop ------------------------------------------------------------------------------
    try:
        while step < config.max_steps:
            loss_sum = 0.0
            for _ in range(accum):
                micro = step * accum + _
                batch = next(batches)
                idx = batch["index"].tolist()
                indices_hash.update(json.dumps(idx).encode())
                g = _step_generator(config.seed, micro, rank)
                bsz = len(idx)
                # Steps 1-3: latents, noise level, staged caption (or the empty one, for CFG).
                z0 = latents(idx, batch["pixel_values"], g)
                noise = torch.randn(z0.shape, generator=g).to(device)
                t = draw_timesteps(bsz, num_t, config.focus_share, config.focus_t_min, g)
                drop = (torch.rand(bsz, generator=g) < config.caption_dropout).tolist()
                captions = schedule.captions_at([dataset.prompts[i] for i in idx], t)
                captions = ["" if d else c for c, d in zip(captions, drop, strict=True)]
                t = t.to(device)
                a = alphas[t].float().view(-1, 1, 1, 1)
                zt = a.sqrt() * z0 + (1 - a).sqrt() * noise
                target = noise if prediction == "epsilon" else a.sqrt() * noise - (1 - a).sqrt() * z0
                states = text(captions)
                with accelerator.accumulate(model):
                    # Step 4: the prediction, through the trainable part.
                    with accelerator.autocast():
                        if config.mode == "unet+controlnet":
                            pred = model(zt, t, states, batch["conditioning"].to(device))
                        elif config.mode == "controlnet":
                            cond = batch["conditioning"].to(device)
                            extra = summary_kwargs(base.unet, states)
                            down, mid = model(
                                zt, t, encoder_hidden_states=states, controlnet_cond=cond, return_dict=False, **extra
                            )
                            pred = base.unet(
                                zt.to(weight_dtype),
                                t,
                                encoder_hidden_states=states,
                                down_block_additional_residuals=[r.to(weight_dtype) for r in down],
                                mid_block_additional_residual=mid.to(weight_dtype),
                                return_dict=False,
                                **extra,
                            )[0]
                        else:
                            extra = summary_kwargs(accelerator.unwrap_model(model), states)
                            pred = model(zt, t, encoder_hidden_states=states, return_dict=False, **extra)[0]
                    # Step 5: MSE on the noise (or velocity) target, per example weighted by min-SNR if asked,
                    # per latent pixel by the parse regions if asked.
                    err = (pred.float() - target.float()).pow(2)  # (B, C, h, w)
                    if "loss_weight" in batch:
                        err = err * region_map(batch["loss_weight"], err.shape[-2:]).to(err.device)
                    if config.snr_gamma > 0:
                        snr = (a / (1 - a)).view(-1)
                        weight = snr.clamp(max=config.snr_gamma) / (snr if prediction == "epsilon" else snr + 1)
                        loss = (weight * err.mean(dim=(1, 2, 3))).mean()
                    else:
                        loss = err.mean()
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and config.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(params, config.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                    if average is not None and accelerator.sync_gradients:
                        average.update(accelerator.unwrap_model(model))
                loss_sum += float(loss.detach())
            if not accelerator.sync_gradients:
                raise RuntimeError("gradient accumulation is out of step; this is a bug, please report it")
            lr_scheduler.step()
            step += 1
            mean = accelerator.reduce(torch.tensor(loss_sum / accum, device=device), reduction="mean")
            last_loss = float(mean)
            if is_main and (step % config.log_every == 0 or step == config.max_steps):
                entry = {
                    "step": step,
                    "loss": last_loss,
                    "lr": lr_scheduler.get_last_lr()[0],
                    "examples": step * accum * config.batch_size * world,
                    "seconds": round(time.perf_counter() - started, 3),
                }
                log_file.write(json.dumps(entry) + "\n")
                log_file.flush()
            bar.update(1)
            bar.set_postfix(loss=f"{last_loss:.4f}")
            if config.checkpoint_every and step % config.checkpoint_every == 0 and step < config.max_steps:
                last_checkpoint = write_checkpoint(step)
            if callback is not None:
                callback(step, config.max_steps, last_loss)
        if step > start_step or last_checkpoint is None:
            last_checkpoint = write_checkpoint(step)
    finally:
        bar.close()
        if is_main:
            log_file.close()

    # -- 5. exports and the per-process report ------------------------------------------------------
    unwrapped = accelerator.unwrap_model(model)
    digest = weights_digest(trainable.state(unwrapped))
    exports: dict[str, Path] = {}
    if is_main:
        with average.applied(unwrapped) if average is not None else contextlib.nullcontext():
            exports.update(trainable.export_all(unwrapped, output_dir, step))
    ranks = output_dir / "ranks"
    ranks.mkdir(parents=True, exist_ok=True)
    report = {
        "rank": rank,
        "world_size": world,
        "start_step": start_step,
        "step": step,
        "steps_run": step - start_step,
        "indices_sha256": indices_hash.hexdigest(),
        "weights_sha256": digest,
        "ema_sha256": weights_digest(average.shadow) if average is not None else None,
        "checkpoints_written": checkpoints_written,
        "loss": last_loss,
    }
    (ranks / f"rank-{rank}.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    accelerator.wait_for_everyone()
    return TrainResult(
        output_dir=output_dir,
        step=step,
        loss=last_loss,
        exports=exports,
        checkpoint=last_checkpoint,
        rank=rank,
        world_size=world,
        weights_sha256=digest,
    )
