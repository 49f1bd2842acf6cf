"""What makes a masked length or sleeve edit land on the mini designer, one change at a time.

For the held-out designs whose evaluated edit is clothing length or sleeve length (``hierafash
evaluate``'s cases, 32 of each at the default 160 cases), the pack's ``both`` edit with a noise
start, cfg 4 unless named, built up step by step:

- ``category range``: the length region covers only the category's usual range (no ``reach``);
- ``average mask``: the pixel mask averaged onto the latent grid (GradientGuidedEdit's default);
- ``source negative``: guidance away from the design's own caption instead of the empty one;
- ``cover``: every latent cell the region touches free from the first step (``latent_mask`` cover);
- ``pasted``: the decoded edit pasted into the draft inside the pixel mask (``paste_back``);
- ``resample r``: r passes per step over the first half of the edit.

Figures: the share of edits the evaluation's judge reads as the asked value, the share it reads as
the draft's old value, the share whose palette family and pattern it reads as on the draft (a
length edit redraws much of the garment, so its colour can drift though nothing outside changes),
PSNR outside the region (100 = not one pixel changed) and seconds per edit.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/mini_edit_variants.py [--cases 160] [--model DIR]

About 21 minutes on 2 cores at 160 cases; ``--only NAME ...`` runs some of the variants (needs
the built model; trains the evaluation's judge first if it is not cached).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from mini_common import add_model_options, held_out_drafts

# name -> (reach, source negative, cover, paste, resample passes, cfg[, share of the edit before resampling])
VARIANTS = {
    "category range, average mask": (False, False, False, False, 1, 4.0),
    "average mask": (True, False, False, False, 1, 4.0),
    "average mask, source negative": (True, True, False, False, 1, 4.0),
    "average mask, source negative, resample 5": (True, True, False, False, 5, 4.0),
    "cover": (True, False, True, False, 1, 4.0),
    "cover, pasted": (True, False, True, True, 1, 4.0),
    "cover, pasted, source negative": (True, True, True, True, 1, 4.0),
    "cover, pasted, source negative, resample 3": (True, True, True, True, 3, 4.0),
    "cover, pasted, source negative, resample 5": (True, True, True, True, 5, 4.0),
    "cover, pasted, source negative, resample 10": (True, True, True, True, 10, 4.0),
    "cover, pasted, source negative, resample 5, cfg 7": (True, True, True, True, 5, 7.0),
    # colour: which of the two drifts it, and does resampling after the first quarter keep it
    "cover, pasted, resample 5": (True, False, True, True, 5, 4.0),
    "cover, pasted, source negative, resample 5 from a quarter in": (True, True, True, True, 5, 4.0, 0.25),
}


def late_resampling(start: float):
    """An EditConfig whose resampled steps begin ``start`` of the way into the edit (bench only)."""
    from hierafash_core.editing import EditConfig

    @dataclass(frozen=True)
    class LateResample(EditConfig):
        def passes(self, i: int, n: int) -> int:
            first = math.floor(start * n + 0.5)
            return self.resample if first <= i < first + math.floor(self.resample_share * n + 0.5) else 1

    return LateResample


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=160, help="held-out designs (a fifth edit each length)")
    parser.add_argument("--only", nargs="+", metavar="VARIANT", help="run only these variants (names as printed)")
    add_model_options(parser)
    args = parser.parse_args()
    if not 10 <= args.cases <= 300:
        parser.error(f"--cases {args.cases}: from 10 to 300 (the judge trains on the records after 300)")
    unknown = sorted(set(args.only or ()) - set(VARIANTS))
    if unknown:
        parser.error(f"--only {', '.join(unknown)}: not a variant; choose from: {'; '.join(VARIANTS)}")
    variants = {k: v for k, v in VARIANTS.items() if not args.only or k in args.only}

    from hierafash_core.editing import EditConfig, latent_mask, paste_back, resolve_start, run_edit
    from hierafash_core.evaluation.metrics import mean, psnr_outside
    from hierafash_core.masks import region_mask
    from hierafash_core.mini.pipeline import normal_sigmas

    started = time.perf_counter()
    run = held_out_drafts(parser, args)
    designer, judge, config, cases = run.designer, run.judge, run.config, run.cases
    drafts, images, keypoints, drawings = run.drafts, run.images, run.keypoints, run.drawings  # see held_out_drafts
    width, height = designer.size
    full = normal_sigmas(config.steps, designer.sigma_table)
    rows = []
    for attribute in ("clothing_length", "sleeve_length"):
        idx = [i for i, c in enumerate(cases) if c.attribute == attribute]
        group = [cases[i] for i in idx]
        src, shown = drafts[idx], images[idx]
        poses = None if drawings is None else drawings[idx]
        seen = judge.predict(shown, poses, keypoints[idx])
        before = seen[attribute]
        sigmas = full[resolve_start(full, designer.sigma_table, attribute=attribute).step :]
        pose = designer.pose_image(np.stack([c.keypoints for c in group]))
        masks = {}
        for reach in (False, True):
            masks[reach] = torch.cat([
                region_mask(keypoints[i : i + 1], (height, width), attribute, cases[i].fields["category"],
                            reach=cases[i].reach if reach else None)
                for i in idx
            ])  # fmt: skip

        def denoiser(source_negative: bool, cfg: float, group=group, pose=pose):
            negative = [c.prompt for c in group] if source_negative else ""
            return designer.denoiser([c.edited_prompt for c in group], pose, cfg=cfg, negative=negative)

        for name, (reach, source_negative, cover, paste, passes, cfg, *late) in variants.items():
            mask = masks[reach]
            noise = torch.randn(src.shape, generator=torch.Generator().manual_seed(idx[0]))
            kind = late_resampling(late[0]) if late else EditConfig
            edit = kind(mode="both", start_method="noise", resample=passes)
            t0 = time.perf_counter()
            with torch.no_grad():
                lmask = latent_mask(mask, tuple(src.shape), cover=cover)
                out = run_edit(denoiser(source_negative, cfg), sigmas, src, lmask, noise, edit, seed=idx[0])
                edited = designer.decode(out.latent)
            if paste:
                edited = paste_back(shown, edited, mask)
            seconds = (time.perf_counter() - t0) / len(group)
            reads = judge.predict(edited, poses, keypoints[idx])
            read = reads[attribute]
            colour = [reads["palette"][j] == seen["palette"][j] and reads["pattern"][j] == seen["pattern"][j]
                      for j in range(len(group))]  # fmt: skip
            # PSNR outside the region the evaluation uses (with reach), whichever mask the edit had
            rows.append({
                "attribute": attribute, "variant": name, "n": len(group),
                "asked": float(np.mean([r == c.target for r, c in zip(read, group, strict=True)])),
                "old": float(np.mean([r == b for r, b in zip(read, before, strict=True)])),
                "colour kept": float(np.mean(colour)),
                "psnr": mean(psnr_outside(shown, edited, masks[True])), "seconds": seconds,
            })  # fmt: skip
    print("| edited | variant | n | read as asked | read as before | colour kept | PSNR outside (dB) | s/edit |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['attribute']} | {r['variant']} | {r['n']} | {100 * r['asked']:.0f}% | {100 * r['old']:.0f}% "
            f"| {100 * r['colour kept']:.0f}% | {r['psnr']:.1f} | {r['seconds']:.2f} |"
        )
    seconds = round(time.perf_counter() - started, 1)
    print(json.dumps({"cases": args.cases, "rows": rows, "seconds": seconds}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
