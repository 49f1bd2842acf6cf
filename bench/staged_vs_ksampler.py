"""StagedKSampler against the core KSampler on the same inputs, in-process ComfyUI, the tiny checkpoint.

Both samplers get the same model, the same positive conditioning (ConceptEncode + AttributeEncode
with the paper's seven windows; the core KSampler gets them combined), the same negative, seed,
steps, sampler and scheduler. Runs come in pairs after one warm-up of each, the order swapped
every pair; the script prints the medians and the median of the per-pair ratios.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/staged_vs_ksampler.py --runs 15 --steps 8 --size 128 --threads 1

Goal: ratio at most 1.03 (the staging is planning and dict copies; sampling is ComfyUI's own).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the test host lives beside the tests
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs of each sampler (alternating)")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (latent is size/8)")
    parser.add_argument("--sampler", default="euler_ancestral")
    parser.add_argument("--scheduler", default="karras")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from comfy_host import COMFY_DIR, MODELS_CACHE, InProcessComfy

    from hierafash_core.comfy_server import prepare_base_directory
    from hierafash_core.models.tiny import DEFAULT_NAME, ensure_tiny_checkpoint

    ckpt = ensure_tiny_checkpoint(MODELS_CACHE / "checkpoints")
    base = prepare_base_directory(
        Path(tempfile.mkdtemp(prefix="hierafash-bench-")), pack_dir=REPO, models={f"checkpoints/{DEFAULT_NAME}": ckpt}
    )
    comfy = InProcessComfy(COMFY_DIR, base).load()
    nodes = comfy.node_classes
    model, clip, _ = comfy.run(
        {"ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": DEFAULT_NAME}}}, ["ckpt"]
    )["ckpt"]
    unset = "(unset)"
    concepts, design, _ = (
        nodes["HieraFash_ConceptEncode"]
        .execute(clip, "Dress", "Elegant", "Party", "Elongate Neck", unset, "", False, "paper")
        .args
    )
    attributes = (
        nodes["HieraFash_AttributeEncode"]
        .execute(clip, design, "Long", "Short Sleeve", "Regular", "V-Neck", "Draped", "", False)
        .args[0]
    )
    combined = nodes["ConditioningCombine"]().combine(concepts, attributes)[0]
    negative = nodes["CLIPTextEncode"]().encode(clip, "lowres")[0]
    latent = {"samples": torch.zeros(1, 4, args.size // 8, args.size // 8)}
    common = dict(seed=1, steps=args.steps, cfg=7.0, sampler_name=args.sampler, scheduler=args.scheduler, denoise=1.0)

    def core() -> None:
        nodes["KSampler"]().sample(model, positive=combined, negative=negative, latent_image=latent, **common)

    def staged() -> None:
        nodes["HieraFash_StagedKSampler"].execute(
            model, concepts, negative, latent, schedule="from conditioning", schedule_spec="", pose_strength=1.0,
            pose_stages="all stages", attributes=attributes, **common,
        )  # fmt: skip

    def timed(fn) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    timed(core), timed(staged)  # warm-up: model load, caches
    t_core, t_staged = [], []
    for i in range(args.runs):  # ABBA order: neither sampler always runs second in its pair
        if i % 2 == 0:
            t_core.append(timed(core))
            t_staged.append(timed(staged))
        else:
            t_staged.append(timed(staged))
            t_core.append(timed(core))
    ratios = [s / c for s, c in zip(t_staged, t_core, strict=True)]
    print("KSampler runs (s):      ", " ".join(f"{t:.3f}" for t in t_core))
    print("StagedKSampler runs (s):", " ".join(f"{t:.3f}" for t in t_staged))
    print(f"torch threads {torch.get_num_threads()}, {args.size}x{args.size}, {args.steps} steps, "
          f"{args.sampler}/{args.scheduler}, {args.runs} alternating runs each")  # fmt: skip
    print(f"KSampler        median {statistics.median(t_core):.3f} s  (min {min(t_core):.3f})")
    print(f"StagedKSampler  median {statistics.median(t_staged):.3f} s  (min {min(t_staged):.3f})")
    print(f"ratio of medians {statistics.median(t_staged) / statistics.median(t_core):.3f}; "
          f"median of pair ratios {statistics.median(ratios):.3f} (goal <= 1.03)")  # fmt: skip


if __name__ == "__main__":
    main()
