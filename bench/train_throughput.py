"""Training throughput (examples per second) and peak memory of the trainer on CPU.

Every configuration runs in its own child process (so peak RSS is its own), on a tiny random
base model and a toy dataset built here from a seed. Reported per configuration: the median
seconds per optimizer step over the measured steps, examples per second, the peak resident
memory and how much of it training added on top of the loaded models; ratios are against the
first row, measured side by side in one run.

    .venv/bin/python bench/train_throughput.py                 # tiny model, the modes and options
    .venv/bin/python bench/train_throughput.py --profile small [--threads 2]  # the small UNet, float32 and bf16

Machine load changes the absolute figures (the development machine is shared); compare ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# DESIGN.md section 7: channels 64/128/256, one block per level, cross-attention 384 wide in the
# two lower levels, latents 4 x 24 x 16 (192 x 128 pixels through the 8x autoencoder).
SMALL_UNET = {
    "sample_size": [24, 16],
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [64, 128, 256],
    "layers_per_block": 1,
    "cross_attention_dim": 384,
    "attention_head_dim": 8,
}

PROFILES = {
    # name: (configurations, base model options, dataset size, image height, width)
    "tiny": (
        [
            {"mode": "controlnet", "batch_size": 4},
            {"mode": "controlnet", "batch_size": 4, "gradient_checkpointing": True},
            {"mode": "controlnet", "batch_size": 4, "mixed_precision": "bf16"},
            {"mode": "lora", "batch_size": 4},
            {"mode": "unet", "batch_size": 4},
        ],
        {},
        32,
        64,
        64,
    ),
    "small": (
        [{"mode": "unet", "batch_size": 16}, {"mode": "unet", "batch_size": 16, "mixed_precision": "bf16"}],
        {"text_width": 384, "unet": SMALL_UNET},
        64,
        192,
        128,
    ),
}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def child(spec: dict) -> dict:
    from hierafash_core.training import TrainConfig, train
    from hierafash_core.training.models import load_base

    base = load_base(spec["base"])
    before = rss_mb()
    times: list[float] = []
    last = [time.perf_counter()]

    def tick(step, total, loss):
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    settings = dict(spec["settings"])
    config = TrainConfig(
        dataset=spec["data"], base=spec["base"], output_dir=spec["out"], cpu=True, progress=False,
        checkpoint_every=0, height=spec["height"], width=spec["width"], max_steps=spec["warmup"] + spec["steps"],
        learning_rate=1e-4, **settings,
    )  # fmt: skip
    last[0] = time.perf_counter()
    train(config, base=base, callback=tick)
    measured = times[spec["warmup"] :]
    step_s = statistics.median(measured)
    return {
        "step_s": step_s,
        "examples_per_s": config.batch_size * config.gradient_accumulation_steps / step_s,
        "peak_mb": rss_mb(),
        "training_mb": rss_mb() - before,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="tiny")
    parser.add_argument("--steps", type=int, default=8, help="measured optimizer steps per configuration")
    parser.add_argument("--warmup", type=int, default=2, help="steps run before measuring")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per child (0: torch's default)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import torch

        spec = json.loads(args.child)
        if spec["threads"]:
            torch.set_num_threads(spec["threads"])
        print(json.dumps(child(spec)))
        return 0

    from hierafash_core.training.tiny import build_tiny_base, write_toy_dataset

    configs, base_options, n, height, width = PROFILES[args.profile]
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = build_tiny_base(Path(tmp) / "base", **base_options)
        data = write_toy_dataset(Path(tmp) / "data", n, width=width, height=height)
        for i, settings in enumerate(configs):
            spec = {
                "base": str(base), "data": str(data), "out": str(Path(tmp) / f"run{i}"), "settings": settings,
                "steps": args.steps, "warmup": args.warmup, "height": height, "width": width, "threads": args.threads,
            }  # fmt: skip
            proc = subprocess.run(
                [sys.executable, __file__, "--child", json.dumps(spec)],
                env=env, capture_output=True, text=True, timeout=3600, check=False,
            )  # fmt: skip
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                return 1
            rows.append((settings, json.loads(proc.stdout.strip().splitlines()[-1])))
    print(f"profile {args.profile}: {height}x{width} pixels, {args.steps} measured steps after {args.warmup}")
    print(f"{'configuration':<58} {'s/step':>7} {'ex/s':>7} {'ratio':>6} {'peak MB':>8} {'train MB':>9}")
    first = rows[0][1]["examples_per_s"]
    for settings, r in rows:
        name = ", ".join(f"{k}={v}" for k, v in settings.items())
        print(
            f"{name:<58} {r['step_s']:>7.3f} {r['examples_per_s']:>7.2f} {r['examples_per_s'] / first:>6.2f} "
            f"{r['peak_mb']:>8.0f} {r['training_mb']:>9.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
