"""The evaluation as Markdown tables (README, docs/mini-designer.md) and JSON."""

from __future__ import annotations

import json
import math

from .cases import ATTRIBUTES
from .classifier import HEADS

SHORT = {"clothing_length": "length", "sleeve_length": "sleeve len.", "sleeve_type": "sleeve type",
         "collar": "collar", "hem": "hem"}  # fmt: skip


def _pct(v: float) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.0f}%"


def _num(v: float, digits: int = 1) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:.{digits}f}"


def drafts_table(result) -> str:
    cols = [SHORT[a] for a in ATTRIBUTES]
    lines = [
        "| drafts | " + " | ".join(cols) + " | attributes | category | palette | diversity | s/draft |",
        "|---" * (len(cols) + 6) + "|",
    ]
    rows = [("held-out records through the autoencoder (reference)", result.reference, None)]
    rows += [(name, row, result.seconds.get(f"draft: {name}")) for name, row in result.drafts.items()]
    for name, row, secs in rows:
        cells = [_pct(row[a]) for a in ATTRIBUTES]
        cells += [_pct(row["attributes"]), _pct(row["category"]), _pct(row["palette"])]
        cells += [_num(row.get("diversity", float("nan")), 3), _num(secs if secs is not None else float("nan"))]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def edits_table(result) -> str:
    counts = next(iter(result.edits.values()))["counts"] if result.edits else {}
    cols = [f"{SHORT[a]} (n={counts.get(a, 0)})" for a in ATTRIBUTES]
    lines = [
        "| edit method | edited attribute | "
        + " | ".join(cols)
        + " | others kept | PSNR outside (dB) | SSIM outside | s/edit |",
        "|---" * (len(cols) + 6) + "|",
    ]
    for name, row in result.edits.items():
        cells = [_pct(row["edited"])] + [_pct(row[a]) for a in ATTRIBUTES]
        cells += [_pct(row["others kept"]), _num(row["psnr"]), _num(row["ssim"], 3),
                  _num(result.seconds.get(f"edit: {name}", float("nan")))]  # fmt: skip
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def classifier_table(accuracy: dict) -> str:
    heads = list(HEADS)
    lines = ["| classifier, held-out | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    for name, key in (("through the autoencoder", "through_autoencoder"), ("original images", "original_images")):
        lines.append(f"| {name} | " + " | ".join(_pct(accuracy[key].get(h, float("nan"))) for h in heads) + " |")
    return "\n".join(lines)


def findings(result) -> list[str]:
    """Plain statements the numbers support, including where the pack's way does not win."""
    out = []
    staged = result.drafts.get("staged captions (pack)")
    flat = result.drafts.get("one flat caption, no staging")
    if staged and flat:
        for key, label in (("attributes", "attribute accuracy"), ("category", "category accuracy"),
                           ("palette", "palette adherence")):  # fmt: skip
            if _pct(flat[key]) == _pct(staged[key]):  # a reading or two apart: no winner to name
                out.append(f"Drafts: staged and flat captions are level on {label} ({_pct(staged[key])} each).")
            elif flat[key] > staged[key]:
                out.append(f"Drafts: the flat caption is better than the staged one on {label} "
                           f"({_pct(flat[key])} against {_pct(staged[key])}).")  # fmt: skip
            else:
                out.append(f"Drafts: staged captions beat the flat caption on {label} "
                           f"({_pct(staged[key])} against {_pct(flat[key])}).")  # fmt: skip
    for name, row in result.edits.items():
        goals = [row["sleeve_length"] >= 0.8, row["clothing_length"] >= 0.8, row["psnr"] >= 35]
        if all(goals):
            out.append(f"{name}: meets the goals (sleeve and clothing length edits >= 80%, PSNR outside >= 35 dB).")
    return out


def markdown(result, classifier_accuracy: dict, command: str) -> str:
    parts = [
        f"Made by `{command}` ({result.config.cases} held-out designs, {result.config.steps} steps, "
        f"cfg {result.config.cfg:g}).",
        "",
        drafts_table(result),
        "",
        edits_table(result),
        "",
        classifier_table(classifier_accuracy),
        "",
        *[f"- {line}" for line in findings(result)],
    ]
    return "\n".join(parts) + "\n"


def to_json(result, classifier_accuracy: dict) -> str:
    data = {
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in result.config.__dict__.items()},
        "reference": result.reference,
        "drafts": result.drafts,
        "edits": result.edits,
        "seconds": result.seconds,
        "classifier": classifier_accuracy,
    }
    return json.dumps(data, indent=1, default=float)
