"""Two edit-side suspects for the mini designer's missed edits, measured on held-out designs.

For the held-out designs whose evaluated edit is clothing or sleeve length (``hierafash
evaluate``'s cases), the pack's ``both`` edit with a noise start, varied one way at a time:

- ``cfg 4``: as ``hierafash evaluate`` runs it (negative: the empty caption);
- ``source as negative, w``: guidance away from the design's own caption instead of the empty
  one, ``D_old + w (D_new - D_old)``, which scales only what the changed attribute adds;
- ``covering latent mask``: every latent cell the region touches is fully editable (max-pooled),
  instead of the area-averaged mask, for arms about one latent cell wide;
- ``start at pure noise``: the whole schedule from t = 999 instead of the attribute's start
  (t = 911 for clothing length, 831 for sleeve length), so nothing of the old region survives.

Figures: the share of edits the attribute classifier reads as the asked value, the share it reads
as the draft's old value, and PSNR outside the region. A second table checks the judge: the
classifier on the same designs' own records (through the autoencoder), as shown, with the region
greyed out, and with everything but the region greyed out; if it read the attribute from outside
the region, no edit inside it could change its answer.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/mini_edit_probe.py [--cases 80] [--model DIR]

About four minutes on 2 cores at 80 cases (needs the built model; trains the evaluation's
classifier first if it is not cached).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from mini_common import add_model_options, held_out_drafts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=80, help="held-out designs (a fifth edit each length)")
    add_model_options(parser)
    args = parser.parse_args()
    if not 10 <= args.cases <= 300:
        parser.error(f"--cases {args.cases}: from 10 to 300 (the classifier trains on the records after 300)")

    from hierafash_core.editing import EditConfig, latent_mask, resolve_start, run_edit
    from hierafash_core.evaluation.metrics import psnr_outside
    from hierafash_core.masks import region_mask
    from hierafash_core.mini.pipeline import normal_sigmas

    started = time.perf_counter()
    run = held_out_drafts(parser, args)
    designer, classifier, config, cases = run.designer, run.judge, run.config, run.cases
    drafts, images, keypoints, drawings = run.drafts, run.images, run.keypoints, run.drawings  # see held_out_drafts
    width, height = designer.size

    def judge_poses(idx):
        return None if drawings is None else drawings[idx]

    full = normal_sigmas(config.steps, designer.sigma_table)
    rows = []
    for attribute in ("clothing_length", "sleeve_length"):
        idx = [i for i, c in enumerate(cases) if c.attribute == attribute]
        group = [cases[i] for i in idx]
        src = drafts[idx]
        masks = torch.cat([
            region_mask(keypoints[i : i + 1], (height, width), attribute, cases[i].fields["category"],
                        reach=cases[i].reach)
            for i in idx
        ])  # fmt: skip
        pose = designer.pose_image(np.stack([c.keypoints for c in group]))
        sigmas = full[resolve_start(full, designer.sigma_table, attribute=attribute).step :]
        averaged = latent_mask(masks, src.shape)
        covering = F.max_pool2d(masks.float(), 8)
        plain = designer.denoiser([c.edited_prompt for c in group], pose, cfg=4.0)
        new = designer.denoiser([c.edited_prompt for c in group], pose, cfg=1.0)
        old = designer.denoiser([c.prompt for c in group], pose, cfg=1.0)

        def away_from_source(w, old=old, new=new):
            return lambda x, s: old(x, s) + w * (new(x, s) - old(x, s))

        variants = {
            "cfg 4": (plain, averaged),
            "source as negative, w 4": (away_from_source(4.0), averaged),
            "source as negative, w 8": (away_from_source(8.0), averaged),
            "covering latent mask, cfg 4": (plain, covering),
            "start at pure noise (t = 999), cfg 4": (plain, averaged),
        }
        before = classifier.predict(images[idx], judge_poses(idx), keypoints[idx])[attribute]
        for name, (denoise, lmask) in variants.items():
            noise = torch.randn(src.shape, generator=torch.Generator().manual_seed(idx[0]))
            with torch.no_grad():
                run = full if name.startswith("start at pure noise") else sigmas
                out = run_edit(denoise, run, src, lmask, noise, EditConfig(mode="both", start_method="noise"))
                edited = designer.decode(out.latent)
            read = classifier.predict(edited, judge_poses(idx), keypoints[idx])[attribute]
            rows.append({
                "attribute": attribute, "variant": name, "n": len(group),
                "asked": float(np.mean([r == c.target for r, c in zip(read, group, strict=True)])),
                "old": float(np.mean([r == b for r, b in zip(read, before, strict=True)])),
                "psnr": float(np.mean(psnr_outside(images[idx], edited, masks))),
            })  # fmt: skip
    print("| edited | variant | n | read as asked | read as before | PSNR outside (dB) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['attribute']} | {r['variant']} | {r['n']} | {100 * r['asked']:.0f}% | {100 * r['old']:.0f}% "
            f"| {r['psnr']:.1f} |"
        )
    # The judge: does the classifier read the attribute inside the region?
    from hierafash_core.synth.labels import drawn_as

    judge = []
    with torch.no_grad():
        real = torch.from_numpy(np.stack([c.image for c in cases])).permute(0, 3, 1, 2).float() / 255
        shown = designer.decode(designer.encode_images(real))  # (N, 3, H, W)
    for attribute in ("clothing_length", "sleeve_length"):
        region = torch.cat([
            region_mask(keypoints[i : i + 1], (height, width), attribute, c.fields["category"],
                        reach=c.fields["clothing_length"])
            for i, c in enumerate(cases)
        ])  # fmt: skip
        truth = [drawn_as(attribute, c.fields[attribute]) for c in cases]
        row = {"attribute": attribute}
        for name, image in (
            ("as shown", shown),
            ("region greyed", shown * (1 - region) + 0.5 * region),
            ("outside greyed", shown * region + 0.5 * (1 - region)),
        ):
            read = classifier.predict(image, drawings, keypoints)[attribute]
            row[name] = float(np.mean([r == t for r, t in zip(read, truth, strict=True)]))
        judge.append(row)
    print()
    print(f"| classifier on the {len(cases)} designs' records | as shown | region greyed | outside greyed |")
    print("|---|---|---|---|")
    for r in judge:
        print(
            f"| {r['attribute']} | {100 * r['as shown']:.0f}% | {100 * r['region greyed']:.0f}% "
            f"| {100 * r['outside greyed']:.0f}% |"
        )
    seconds = round(time.perf_counter() - started, 1)
    print(json.dumps({"cases": args.cases, "rows": rows, "judge": judge, "seconds": seconds}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
