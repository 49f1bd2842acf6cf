"""How much the built mini designer's denoiser uses its caption, noise level by noise level.

For held-out designs (``hierafash_core.evaluation.cases``), each image is encoded, noised to a
level t, and denoised once (cfg 1, pose control on, the whole caption at every level) with:

- its own caption;
- another held-out design's caption (the batch rolled by one);
- its own caption with the evaluated attribute changed (the edit's caption);
- the empty caption.

The figure is the error of the predicted clean latent, mean squared over latent elements and
designs (the same noise for every caption). A model that reads its caption predicts better with
its own than with another's; one that ignores it shows equal errors. ``gap`` is
(other - own) / own: 0 means the text is unused.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/mini_text_use.py [--designs 32] [--timesteps 950,...,200] [--model DIR]

Needs the built files (``hierafash mini-designer build``); a minute or two on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from mini_common import add_model_options, load_designer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--designs", type=int, default=32, help="held-out designs (at least 2)")
    parser.add_argument("--timesteps", default="950,800,600,400,200", help="DDPM timesteps, comma separated")
    parser.add_argument("--seed", type=int, default=0)
    add_model_options(parser)
    args = parser.parse_args()
    if not 2 <= args.designs <= 300:
        parser.error(f"--designs {args.designs}: from 2 (a design's 'other' caption is its neighbour's) to 300")
    try:
        timesteps = [int(t) for t in args.timesteps.split(",")]
    except ValueError:
        parser.error(f"--timesteps {args.timesteps!r}: give whole numbers separated by commas, e.g. 950,600,200")
    if any(not 0 <= t <= 999 for t in timesteps):
        parser.error(f"--timesteps {args.timesteps}: each must be in 0..999")

    from hierafash_core.evaluation.cases import held_out_cases

    started = time.perf_counter()
    designer, files = load_designer(parser, args)
    cases = held_out_cases(args.designs)
    images = torch.stack([torch.from_numpy(c.image).permute(2, 0, 1).float() / 255 for c in cases])  # (B, 3, H, W)
    x0 = designer.encode_images(images)  # (B, 4, h, w)
    pose = designer.pose_image(torch.stack([torch.as_tensor(c.keypoints) for c in cases]))
    own = [c.prompt.caption() for c in cases]
    captions = {
        "own": own,
        "other": own[1:] + own[:1],
        "edited": [c.edited_prompt.caption() for c in cases],
        "empty": [""] * len(cases),
    }
    denoisers = {name: designer.denoiser(caps, pose, cfg=1.0, staged=False) for name, caps in captions.items()}
    table = designer.sigma_table
    generator = torch.Generator().manual_seed(args.seed)
    rows = []
    for t in timesteps:
        sigma = table[t].float()
        noisy = x0 + sigma * torch.randn(x0.shape, generator=generator)
        sigmas = sigma.expand(len(cases))
        errors = {name: float(((d(noisy, sigmas) - x0) ** 2).mean()) for name, d in denoisers.items()}
        rows.append(
            {"t": t, "sigma": round(float(sigma), 4), **{k: round(v, 4) for k, v in errors.items()}}
            | {"gap other": round((errors["other"] - errors["own"]) / errors["own"], 4)}
            | {"gap edited": round((errors["edited"] - errors["own"]) / errors["own"], 4)}
        )
    print("| t | sigma | own caption | another design's | edited attribute | empty | gap (other) | gap (edited) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['t']} | {r['sigma']:.3f} | {r['own']:.4f} | {r['other']:.4f} | {r['edited']:.4f} "
            f"| {r['empty']:.4f} | {100 * r['gap other']:+.1f}% | {100 * r['gap edited']:+.1f}% |"
        )
    print(json.dumps({"designs": len(cases), "seconds": round(time.perf_counter() - started, 1), "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
