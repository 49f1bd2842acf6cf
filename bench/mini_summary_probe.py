"""What the mini designer's caption summary carries, and how whitening changes what its first layer sees.

Two measurements on the built model's frozen text encoder (no UNet involved):

1. Linear readability: a logistic-regression probe per caption field, trained on the summaries
   (mean text state over the tokens) of training-split captions, scored on test-split ones. A
   field the probe reads near 100% is in the summary; if the UNet still ignores it, it is learning
   to read it too slowly, not missing it.
2. Conditioning: for held-out designs whose evaluated edit is clothing or sleeve length, the
   distance an edit of that one attribute moves the summary, against the distance to another
   design's summary, raw and whitened as ``summary_whitening`` does (statistics from training
   captions at every stage of the prompt schedule).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/mini_summary_probe.py [--records 3000] [--model DIR]

About a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from mini_common import add_model_options, load_designer

FIELDS = ("category", "style", "clothing_length", "sleeve_length", "sleeve_type", "collar", "hem")


def _probe(x: torch.Tensor, labels: list[str], train: torch.Tensor, steps: int = 300) -> float:
    """Held-out accuracy of a linear softmax probe on standardised features."""
    names = sorted(set(labels))
    y = torch.tensor([names.index(v) for v in labels])
    x = (x - x[train].mean(0)) / (x[train].std(0) + 1e-6)
    w = torch.zeros(x.shape[1], len(names), requires_grad=True)
    b = torch.zeros(len(names), requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x[train] @ w + b, y[train]) + 1e-4 * w.pow(2).sum()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float(((x[~train] @ w + b).argmax(1) == y[~train]).float().mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=3000, help="synthetic records for the probe (both splits)")
    parser.add_argument("--designs", type=int, default=200, help="held-out designs for the conditioning figures")
    add_model_options(parser)
    args = parser.parse_args()
    if not 200 <= args.records <= 10_000:
        parser.error(f"--records {args.records}: from 200 to 10000 (the build's data set)")
    if not 10 <= args.designs <= 300:
        parser.error(f"--designs {args.designs}: from 10 to 300")

    from hierafash_core.evaluation.cases import held_out_cases
    from hierafash_core.models.caption_summary import caption_summary
    from hierafash_core.prompt import HierarchicalPrompt
    from hierafash_core.synth.writer import SynthConfig, make_sample
    from hierafash_core.training.summary_whitening import estimate_whitening

    started = time.perf_counter()
    designer, files = load_designer(parser, args)
    schedule = designer.schedule

    def summaries(captions: list[str]) -> torch.Tensor:
        parts = [captions[i : i + 256] for i in range(0, len(captions), 256)]
        return torch.cat([caption_summary(designer.encode_text(part)) for part in parts])

    records = [make_sample(SynthConfig(count=10_000, seed=0), i)[:2] for i in range(args.records)]
    train = torch.tensor([split == "train" for _, split in records])
    prompts = [HierarchicalPrompt(dict(sample.fields)) for sample, _ in records]
    x = summaries([p.caption() for p in prompts])
    readable = {f: round(_probe(x, [s.fields[f] for s, _ in records], train), 3) for f in FIELDS}

    train_prompts = [p for p, t in zip(prompts, train.tolist(), strict=True) if t][:1000]
    stats = estimate_whitening(designer.encode_text, train_prompts, schedule, caption_dropout=0.1)
    cases = [c for c in held_out_cases(args.designs) if c.attribute in ("clothing_length", "sleeve_length")]
    rows = []
    for t in (850, 750, 400):
        own = summaries([schedule.caption_at(c.prompt, t) for c in cases])
        edited = summaries([schedule.caption_at(c.edited_prompt, t) for c in cases])
        other = own.roll(1, 0)
        row = {"t": t}
        for name, f in (("raw", lambda s: s), ("whitened", lambda s: (s - stats.mean) @ stats.whiten)):
            edit_move = (f(own) - f(edited)).norm(dim=1).mean()
            other_move = (f(own) - f(other)).norm(dim=1).mean()
            row[name] = {
                "norm": round(float(f(own).norm(dim=1).mean()), 2),
                "edit": round(float(edit_move), 3),
                "other": round(float(other_move), 3),
                "ratio": round(float(edit_move / other_move), 3),
            }
        rows.append(row)

    print("| field | " + " | ".join(FIELDS) + " |")
    print("|---|" + "---|" * len(FIELDS))
    print("| summary, linear probe (held out) | " + " | ".join(f"{100 * readable[f]:.0f}%" for f in FIELDS) + " |")
    print()
    print("| t | summary | norm | one attribute moves it | another design moves it | ratio |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        for name in ("raw", "whitened"):
            v = r[name]
            print(f"| {r['t']} | {name} | {v['norm']:.2f} | {v['edit']:.3f} | {v['other']:.3f} | {v['ratio']:.2f} |")
    out = {"records": args.records, "designs": len(cases), "readable": readable, "rows": rows,
           "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
