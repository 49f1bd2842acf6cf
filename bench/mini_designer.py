"""The mini designer's cost per training step, part by part, and the choices they justify.

Measured side by side in one process, CPU seconds per call (median of ``--repeats``), batch 16,
192 x 128 images (latents 4 x 24 x 16):

- autoencoders: encoding a batch with TAESD (the smallest layout ComfyUI detects) and with the
  mini designer's own (pixel unshuffle first);
- the UNet of configs/mini-designer/unet.json, forward + backward, and its ControlNet: whole, its
  pose embedding alone, and with the pose embedding fixed (forward only through it);
- the frozen text encoder on 16 captions;
- one torch thread against two on the same UNet step (CPU seconds: on a shared machine two threads
  spin against other jobs).

    .venv/bin/python bench/mini_designer.py [--repeats 3]

Machine load changes the absolute figures; compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def cpu_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from diffusers import AutoencoderTiny, ControlNetModel, UNet2DConditionModel

    from hierafash_core.mini.autoencoder import MiniAutoencoder
    from hierafash_core.mini.paths import CONFIG_DIR
    from hierafash_core.mini.text import build_text_encoder, encode_captions
    from hierafash_core.training.models import load_tokenizer
    from hierafash_core.training.parts import freeze_pose_embedding

    torch.set_num_threads(1)
    torch.manual_seed(0)
    b = 16
    pixels = torch.rand(b, 3, 192, 128) * 2 - 1
    z = torch.randn(b, 4, 24, 16)
    t = torch.randint(0, 1000, (b,))
    ctx = torch.randn(b, 77, 384)
    hint = torch.rand(b, 3, 192, 128)
    config = {k: v for k, v in json.loads((CONFIG_DIR / "unet.json").read_text()).items() if not k.startswith("_")}
    unet = UNet2DConditionModel(**config)
    cn = ControlNetModel.from_unet(unet)
    fixed = ControlNetModel.from_unet(unet)
    freeze_pose_embedding(fixed)
    taesd, mini = AutoencoderTiny(), MiniAutoencoder()
    text, tok = build_text_encoder(0, token_scale=6.0), load_tokenizer(None, None)
    captions = [
        "Dress, Elegant, Party, Tall, Crisp Feeling, Long Dress, Short Sleeve, Puffed Sleeve, V-Neck, Ruffle Hem"
    ] * b

    def unet_step():
        unet(z, t, encoder_hidden_states=ctx).sample.pow(2).mean().backward()

    def controlnet_step(model):
        def run():
            down, mid = model(z, t, encoder_hidden_states=ctx, controlnet_cond=hint, return_dict=False)
            (sum(r.pow(2).mean() for r in down) + mid.pow(2).mean()).backward()

        return run

    def embedding_step():
        cn.controlnet_cond_embedding(hint).pow(2).mean().backward()

    rows = []
    with torch.no_grad():
        rows.append(("encode: TAESD", cpu_seconds(lambda: taesd.encoder(pixels), args.repeats)))
        rows.append(("encode: mini autoencoder", cpu_seconds(lambda: mini.encode_raw(pixels), args.repeats)))
        rows.append(
            ("text encoder, 16 captions", cpu_seconds(lambda: encode_captions(text, tok, captions), args.repeats))
        )
    rows.append(("UNet forward + backward", cpu_seconds(unet_step, args.repeats)))
    rows.append(("ControlNet forward + backward", cpu_seconds(controlnet_step(cn), args.repeats)))
    rows.append(("  of which its pose embedding", cpu_seconds(embedding_step, args.repeats)))
    rows.append(
        ("ControlNet, pose embedding fixed but its last conv", cpu_seconds(controlnet_step(fixed), args.repeats))
    )
    torch.set_num_threads(2)
    rows.append(("UNet forward + backward, 2 threads", cpu_seconds(unet_step, args.repeats)))
    torch.set_num_threads(1)

    base = dict(rows)["UNet forward + backward"]
    print(f"batch {b}, 192 x 128 pixels, 1 thread unless said, CPU seconds (median of {args.repeats})")
    print(f"{'part':<55} {'CPU s':>7} {'/ UNet step':>11}")
    for name, secs in rows:
        print(f"{name:<55} {secs:>7.3f} {secs / base:>11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
