"""What makes a masked length or sleeve edit land on the mini designer, one change at a time.

For the held-out designs whose evaluated edit is clothing length or sleeve length (``hierafash
evaluate``'s cases, 32 of each at the default 160 cases), the pack's ``both`` edit with a noise
start, cfg 4 unless named, built up step by step:

- ``category range``: the length region covers only the category's usual range (no ``reach``);
- ``average mask``: the pixel mask averaged onto the latent grid (GradientGuidedEdit's default);
- ``source negative``: guidance away from the design's own caption instead of the empty one;
- ``cover``: every latent cell the region touches free from the first step (``latent_mask`` cover);
- ``pasted``: the decoded edit pasted into the draft inside the pixel mask (``paste_back``);
- ``resample r``: r passes per step over the first half of the edit;
- ``start t``: the edit starts at timestep t instead of the attribute's own (t = 991 - 80 j);
- ``painted``: sleeve edits only: the region starts from the draft with the asked sleeve painted on
  from the pose (``editing.layout.paint_sleeves`` as ``run_edit``'s init); ``painted sleeve alone``
  judges that painting itself, no model;
- ``ramp r``: the latent mask scaled from r at the region's top row to 1 at its bottom, so the
  garment at the waist is held to the draft for longer than where the hem moves (colour).

Figures: the share of edits the evaluation's judge reads as the asked value, the share it reads as
the draft's old value, the share whose palette family and pattern it reads as on the draft (a
length edit redraws much of the garment, so its colour can drift though nothing outside changes),
PSNR outside the region (100 = not one pixel changed) and seconds per edit; the misses that
came up most often.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/mini_edit_variants.py [--cases 160] [--seeds 1] [--model DIR]

About 21 minutes on 2 cores at 160 cases and one seed before the painted rows, which add seven rows of
32 sleeve edits at about 0.4 s each; ``--only NAME ...`` runs some of the
variants, ``--attributes`` one of the two lengths (needs the built model; trains the evaluation's
judge first if it is not cached). One seed of 32 edits is noisy: the same edit with four start
noises read 55-73% of 60 sleeve edits as asked (5 passes; one pass 58-72%), so compare variants
at ``--cases 300 --seeds 4``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
from mini_common import add_model_options, held_out_drafts


@dataclass(frozen=True)
class Variant:
    reach: bool = True
    source_negative: bool = True
    cover: bool = True
    paste: bool = True
    passes: int = 1
    cfg: float = 4.0
    late: float | None = None  # resampling begins this share of the way in (None: at the start)
    start_t: int | None = None  # start timestep instead of the attribute's own (t = 991 - 80 j)
    layout: bool = False  # start from the draft with the asked sleeve painted on (sleeve length only)
    hint_only: bool = False  # judge the painted draft itself, no model (how good the hint is)
    ramp: float | None = None  # latent mask from this value at the region's top row to 1 at its bottom


SEED_STRIDE = 7919  # seeds of one edit's repeats: idx[0] + SEED_STRIDE * k
ATTRIBUTES = ("clothing_length", "sleeve_length")
PLAIN = Variant(source_negative=False, cover=False, paste=False)
VARIANTS = {
    "category range, average mask": Variant(reach=False, source_negative=False, cover=False, paste=False),
    "average mask": PLAIN,
    "average mask, source negative": Variant(cover=False, paste=False),
    "average mask, source negative, resample 5": Variant(cover=False, paste=False, passes=5),
    "cover": Variant(source_negative=False, paste=False),
    "cover, pasted": Variant(source_negative=False),
    "cover, pasted, source negative": Variant(),
    "cover, pasted, source negative, resample 3": Variant(passes=3),
    "cover, pasted, source negative, resample 5": Variant(passes=5),
    "cover, pasted, source negative, resample 10": Variant(passes=10),
    "cover, pasted, source negative, resample 5, cfg 7": Variant(passes=5, cfg=7.0),
    # colour: which of the two drifts it, and does resampling after the first quarter keep it
    "cover, pasted, resample 5": Variant(source_negative=False, passes=5),
    "cover, pasted, source negative, resample 5 from a quarter in": Variant(passes=5, late=0.25),
    # an earlier start than the attribute's own: more noise to redraw a thin region from
    "cover, pasted, source negative, resample 5, start 911": Variant(passes=5, start_t=911),
    "cover, pasted, source negative, resample 5, start 991": Variant(passes=5, start_t=991),
    "cover, pasted, source negative, resample 10, start 911": Variant(passes=10, start_t=911),
    # the asked sleeve painted onto the arms first (editing.layout), then redrawn from lower noise
    "painted sleeve alone, no model": Variant(layout=True, hint_only=True),
    "cover, pasted, source negative, painted": Variant(layout=True),
    "cover, pasted, source negative, painted, start 751": Variant(layout=True, start_t=751),
    "cover, pasted, source negative, painted, start 671": Variant(layout=True, start_t=671),
    "cover, pasted, source negative, painted, start 591": Variant(layout=True, start_t=591),
    "cover, pasted, source negative, painted, start 501": Variant(layout=True, start_t=501),
    "cover, pasted, source negative, painted, start 421": Variant(layout=True, start_t=421),
    "cover, pasted, source negative, painted, start 341": Variant(layout=True, start_t=341),
    "cover, pasted, source negative, painted, start 261": Variant(layout=True, start_t=261),
    "cover, pasted, source negative, painted, start 181": Variant(layout=True, start_t=181),
    # colour: the region's top (the garment at the waist) released later than its bottom (where the hem moves)
    "cover, pasted, source negative, ramp 0.5": Variant(ramp=0.5),
    "cover, pasted, source negative, ramp 0.3": Variant(ramp=0.3),
    "cover, pasted, ramp 0.5": Variant(source_negative=False, ramp=0.5),
}


def ramped(mask: torch.Tensor, top: float) -> torch.Tensor:
    """``mask`` (B, 1, h, w) scaled by a vertical ramp from ``top`` at each mask's first row to 1 at its last:
    run_edit releases a cell with value m for the last fraction m of the steps, so the top is held longer."""
    rows = torch.arange(mask.shape[2], dtype=mask.dtype)
    out = mask.clone()
    for i in range(mask.shape[0]):
        used = (mask[i, 0] > 0).any(dim=1).nonzero().flatten()
        if used.numel() < 2:
            continue
        r0, r1 = float(used[0]), float(used[-1])
        out[i, 0] *= (top + (1 - top) * ((rows - r0) / (r1 - r0)).clamp(0, 1))[:, None]
    return out


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
    parser.add_argument(
        "--seeds", type=int, default=1, help="start-noise seeds per edit (the figures pool them; the range is by seed)"
    )
    parser.add_argument(
        "--attributes",
        nargs="+",
        choices=ATTRIBUTES,
        default=list(ATTRIBUTES),
        help="which edits to run (default both)",
    )
    parser.add_argument(
        "--data-seed",
        type=int,
        default=0,
        help="data set of the designs (0: the evaluation's, on which the painter was tuned; 1, 2: ones not tuned on)",
    )
    add_model_options(parser)
    args = parser.parse_args()
    if not 10 <= args.cases <= 300:
        parser.error(f"--cases {args.cases}: from 10 to 300 (the judge trains on the records after 300)")
    if not 1 <= args.seeds <= 8:
        parser.error(f"--seeds {args.seeds}: from 1 to 8")
    unknown = sorted(set(args.only or ()) - set(VARIANTS))
    if unknown:
        parser.error(f"--only {', '.join(unknown)}: not a variant; choose from: {'; '.join(VARIANTS)}")
    variants = {k: v for k, v in VARIANTS.items() if not args.only or k in args.only}

    from hierafash_core.editing import EditConfig, latent_mask, paste_back, resolve_start, run_edit
    from hierafash_core.editing.layout import paint_sleeves
    from hierafash_core.evaluation.metrics import mean, psnr_outside
    from hierafash_core.masks import region_mask
    from hierafash_core.mini.pipeline import normal_sigmas

    started = time.perf_counter()
    run = held_out_drafts(parser, args)
    designer, judge, config, cases = run.designer, run.judge, run.config, run.cases
    drafts, images, keypoints, drawings = run.drafts, run.images, run.keypoints, run.drawings  # see held_out_drafts
    width, height = designer.size
    full = normal_sigmas(config.steps, designer.sigma_table)
    rows, drafted = [], {}
    for attribute in args.attributes:
        idx = [i for i, c in enumerate(cases) if c.attribute == attribute]
        group = [cases[i] for i in idx]
        src, shown = drafts[idx], images[idx]
        poses = None if drawings is None else drawings[idx]
        seen = judge.predict(shown, poses, keypoints[idx])
        before = seen[attribute]
        # how often the model's own drafts show the designed value: the edit can hardly beat it
        drafted[attribute] = float(np.mean([b == c.fields[attribute] for b, c in zip(before, group, strict=True)]))
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

        painted = init = None
        if attribute == "sleeve_length" and any(v.layout for v in variants.values()):
            painted = paint_sleeves(shown, keypoints[idx], [c.target for c in group])
            init = designer.encode_images(painted)
        for name, v in variants.items():
            if v.layout and painted is None:
                continue  # the painted hint is for sleeves
            mask = masks[v.reach]
            kind = late_resampling(v.late) if v.late is not None else EditConfig
            edit = kind(mode="both", start_method="noise", resample=v.passes)
            start = None if v.start_t is None else resolve_start(full, designer.sigma_table, timestep=v.start_t)
            run_sigmas = sigmas if start is None else full[start.step :]
            lmask = latent_mask(mask, tuple(src.shape), cover=v.cover)
            if v.ramp is not None:
                lmask = ramped(lmask, v.ramp)
            asked, old, colour, psnrs, misses, seconds = [], [], [], [], Counter(), 0.0
            for k in range(args.seeds):
                seed = idx[0] + SEED_STRIDE * k  # k = 0 is the seed of the single-seed runs before --seeds
                noise = torch.randn(src.shape, generator=torch.Generator().manual_seed(seed))
                t0 = time.perf_counter()
                with torch.no_grad():
                    if v.hint_only:
                        edited = painted
                    else:
                        out = run_edit(denoiser(v.source_negative, v.cfg), run_sigmas, src, lmask, noise, edit,
                                       seed=seed, init=init if v.layout else None)  # fmt: skip
                        edited = designer.decode(out.latent)
                if v.paste:
                    edited = paste_back(shown, edited, mask)
                seconds += time.perf_counter() - t0
                reads = judge.predict(edited, poses, keypoints[idx])
                read = reads[attribute]
                asked.append([r == c.target for r, c in zip(read, group, strict=True)])
                old += [r == b for r, b in zip(read, before, strict=True)]
                colour += [reads["palette"][j] == seen["palette"][j] and reads["pattern"][j] == seen["pattern"][j]
                           for j in range(len(group))]  # fmt: skip
                # PSNR outside the region the evaluation uses (with reach), whichever mask the edit had
                psnrs.append(mean(psnr_outside(shown, edited, masks[True])))
                misses.update(f"{c.target} -> {r}" for r, c in zip(read, group, strict=True) if r != c.target)
            rows.append({
                "attribute": attribute, "variant": name, "n": len(group), "seeds": args.seeds,
                "asked": float(np.mean(asked)), "asked by seed": [float(np.mean(a)) for a in asked],
                "old": float(np.mean(old)), "colour kept": float(np.mean(colour)),
                "psnr": float(np.mean(psnrs)), "seconds": seconds / (len(group) * args.seeds),
                "misses": dict(misses),
            })  # fmt: skip
    print("| edited | variant | n | read as asked | read as before | colour kept | PSNR outside (dB) | s/edit |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        spread = r["asked by seed"]
        asked = f"{100 * r['asked']:.0f}%" + (
            f" ({100 * min(spread):.0f}-{100 * max(spread):.0f}%)" if len(spread) > 1 else ""
        )
        n = f"{r['n']} x {r['seeds']} seeds" if r["seeds"] > 1 else f"{r['n']}"
        print(
            f"| {r['attribute']} | {r['variant']} | {n} | {asked} | {100 * r['old']:.0f}% "
            f"| {100 * r['colour kept']:.0f}% | {r['psnr']:.1f} | {r['seconds']:.2f} |"
        )
    for attribute, share in drafted.items():
        n = sum(c.attribute == attribute for c in cases)
        print(f"drafts read as designed, {attribute}: {100 * share:.0f}% of {n}")
    for r in rows:
        top = sorted(r["misses"].items(), key=lambda kv: -kv[1])[:4]
        if top:
            print(f"missed, {r['attribute']}, {r['variant']}: " + "; ".join(f"{k} x{n}" for k, n in top))
    seconds = round(time.perf_counter() - started, 1)
    print(json.dumps({"cases": args.cases, "drafts": drafted, "rows": rows, "seconds": seconds}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
