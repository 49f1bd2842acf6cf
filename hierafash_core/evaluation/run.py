"""``hierafash evaluate``: the paper's comparison, measured on the mini designer and held-out designs.

For each held-out case (a test-split pose and caption, :mod:`.cases`):

    1. Drafts: the staged caption (the pack's way: the fields each noise level was trained with)
       and one flat caption (all ten fields at every step), same pose, same seed.
    2. One attribute edit of the staged draft, inside the attribute's body region (the pack's
       keypoint masks, :func:`..masks.region_mask`), starting at the attribute's level, by every
       method: the pack's edit loop (blend / guide / both x noise / DDIM-inverted start), SDEdit
       without a mask, and the released code's procedure (noise once, then blend with freshly
       noised source at each step).
    3. Judged by the attribute classifier (:mod:`.classifier`): drafts against their caption,
       edits against the new value, the untouched attributes against the draft; preservation by
       PSNR and SSIM outside the mask against the decoded draft; concepts by category accuracy and
       palette adherence; diversity as the spread of drafts of one caption over seeds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..editing import paste_back
from ..masks import region_mask
from .cases import ATTRIBUTES, Case, held_out_cases
from .classifier import AttributeClassifier, pose_drawings
from .metrics import hit_rate, mean, pairwise_distance, palette_adherence, psnr_outside, ssim_outside

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PackMethod:
    """One way of running the pack's edit loop (:func:`..editing.run_edit`).

    Attributes:
        mode, start, path: the loop's mode, start method and gradient path (None: no guidance).
        negative: ``"text"`` (the empty caption) or ``"source"``: the source design's own staged
            caption, so that classifier-free guidance pushes only along what the new value adds.
        resample: passes per step in the first half of the edit (1 = none; see ``EditConfig``).
        paste: a covering latent mask (``latent_mask(cover=True)``), the decoded edit pasted back
            into the draft inside the pixel mask (``paste_back``).
        hint: sleeve-length edits start from the decoded source with the asked sleeve painted on
            (``editing.layout.paint_sleeves``, encoded as ``run_edit``'s init) at ``SLEEVE_HINT_START_T``.
    """

    mode: str
    start: str
    path: str | None
    negative: str = "text"
    resample: int = 1
    paste: bool = False
    hint: bool = False


# Guidance through the model acts in the first half of the edit, as docs/editing.md advises for outlines.
SOURCE_NEGATIVE = "pack: both, noise start, source caption as negative"
PASTED = "pack: both, noise start, source negative, covering mask, pasted"
HINTED = "pack: both, noise start, source negative, covering mask, pasted, sleeves painted first (mini designer)"
RESAMPLED = "pack: both, noise start, source negative, resampled x5"
PASTED_RESAMPLED = "pack: both, noise start, source negative, resampled x5, covering mask, pasted"
PACK_METHODS = {
    "pack: blend, noise start": PackMethod("blend", "noise", None),
    "pack: blend, inverted start": PackMethod("blend", "ddim inversion", None),
    "pack: guide, noise start": PackMethod("guide", "noise", "clean estimate"),
    "pack: guide, inverted start": PackMethod("guide", "ddim inversion", "clean estimate"),
    "pack: both, noise start": PackMethod("both", "noise", "clean estimate"),
    "pack: both, inverted start": PackMethod("both", "ddim inversion", "clean estimate"),
    "pack: both, noise start, guided through the model": PackMethod("both", "noise", "through the model"),
    # the source's caption differs from the edit's only in the edited attribute (bench/mini_edit_probe.py)
    SOURCE_NEGATIVE: PackMethod("both", "noise", "clean estimate", negative="source"),
    # a covering mask frees thin regions (arms) from the first step, and pasting keeps every pixel
    # outside (one pass). Resampling (RePaint) lets the redrawn region
    # and the kept rest agree before each next step; on 240 edits per length it gained nothing
    # (bench/mini_edit_variants.py --cases 300 --seeds 4: one pass 64% / 91%, five 65% / 89% on sleeve /
    # clothing length), so it stays here as the comparison.
    PASTED: PackMethod("both", "noise", "clean estimate", negative="source", paste=True),
    # the asked sleeve painted on from the pose first, then redrawn from a lower start (editing.layout):
    # the mini designer's default edit; the other attributes run as PASTED
    HINTED: PackMethod("both", "noise", "clean estimate", negative="source", paste=True, hint=True),
    RESAMPLED: PackMethod("both", "noise", "clean estimate", negative="source", resample=5),
    PASTED_RESAMPLED: PackMethod("both", "noise", "clean estimate", negative="source", resample=5, paste=True),
}
SDEDIT = "SDEdit, no mask"
RELEASED = "released code: noise once, then blend"
METHODS = (*PACK_METHODS, SDEDIT, RELEASED)


@dataclass(frozen=True)
class EvalConfig:
    """Size and settings of an evaluation (the CLI's options)."""

    cases: int = 40
    steps: int = 20
    cfg: float = 4.0
    seed: int = 0
    batch: int = 8
    diversity_groups: int = 6
    diversity_seeds: int = 4
    methods: tuple[str, ...] = METHODS
    data_count: int = 10_000
    data_seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", tuple(self.methods))
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"methods: {unknown} unknown; choose from {', '.join(METHODS)}")
        for name in ("cases", "steps", "batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be at least 1")
        if self.diversity_groups and self.diversity_seeds < 2:
            raise ValueError(f"diversity_seeds={self.diversity_seeds}: at least 2 (or diversity_groups=0)")


@dataclass
class EvalResult:
    """What :func:`evaluate` measured (``drafts``/``edits``: one row per method, see :mod:`.report`)."""

    config: EvalConfig
    drafts: dict[str, dict] = field(default_factory=dict)
    edits: dict[str, dict] = field(default_factory=dict)
    reference: dict = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    examples: dict = field(default_factory=dict)  # images kept for the contact sheet


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _draft_scores(pred: dict, cases: list[Case]) -> dict:
    from ..synth.labels import drawn_as

    row = {a: hit_rate(pred[a], [drawn_as(a, c.fields[a]) for c in cases]) for a in ATTRIBUTES}
    row["attributes"] = float(np.mean([row[a] for a in ATTRIBUTES]))
    row["category"] = hit_rate(pred["category"], [c.fields["category"] for c in cases])
    row["palette"] = palette_adherence(pred["palette"], [c.fields for c in cases])
    return row


def draft_latents(designer, cases: list[Case], config: EvalConfig, staged: bool, seed_offset: int = 0) -> torch.Tensor:
    """The drafts of ``cases``: (N, 4, h, w) latents, one seed per case (``config.seed + index``)."""
    out = []
    for group in _chunks(cases, config.batch):
        pose = designer.pose_image(np.stack([c.keypoints for c in group]))
        denoise = designer.denoiser([c.prompt for c in group], pose, cfg=config.cfg, staged=staged)
        # One generator per case, so a case's draft does not depend on the batch it falls in.
        noise = torch.stack(
            [
                torch.randn(
                    (4, *designer.latent_shape),
                    generator=torch.Generator().manual_seed(config.seed + seed_offset + c.index),
                )
                for c in group
            ]
        )
        out.append(designer.sample(denoise, len(group), steps=config.steps, noise=noise))
    return torch.cat(out)


def _released_edit(denoise, sigmas: torch.Tensor, source: torch.Tensor, mask: torch.Tensor, noise, g):
    """The released code's edit: noise the source once to the start, then after every step put back
    the source noised afresh to the current level wherever the (binary) mask is 0."""
    known = (mask <= 0).float()  # the released code pastes the known region back in full
    x = source + sigmas[0] * noise
    s_in = source.new_ones(source.shape[0])
    for i in range(len(sigmas) - 1):
        d = denoise(x, sigmas[i] * s_in)
        x = x + (x - d) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
        fresh = torch.randn(source.shape, generator=g).to(source)
        ref = source + sigmas[i + 1] * fresh if sigmas[i + 1] > 0 else source
        x = known * ref + (1 - known) * x
    return x


def edit_latents(
    designer, cases: list[Case], sources: torch.Tensor, masks: torch.Tensor, method: str, config: EvalConfig
):
    """Edited latents (N, 4, h, w) of ``cases`` by ``method`` (see :data:`METHODS`)."""
    from ..editing import (
        SLEEVE_HINT_START_T,
        EditConfig,
        GuidanceConfig,
        latent_mask,
        paint_sleeves,
        resolve_start,
        run_edit,
    )
    from ..mini.pipeline import normal_sigmas

    full = normal_sigmas(config.steps, designer.sigma_table).to(designer.device)
    out = torch.empty_like(sources)
    # Cases that edit the same attribute start at the same step: batch them together.
    for attribute in ATTRIBUTES:
        idx = [i for i, c in enumerate(cases) if c.attribute == attribute]
        for part in _chunks(idx, config.batch):
            group = [cases[i] for i in part]
            src = sources[part]
            pose = designer.pose_image(np.stack([c.keypoints for c in group]))
            pack = PACK_METHODS.get(method)
            negative = [c.prompt for c in group] if pack is not None and pack.negative == "source" else ""
            denoise = designer.denoiser([c.edited_prompt for c in group], pose, cfg=config.cfg, negative=negative)
            init = None
            if pack is not None and pack.hint and attribute == "sleeve_length":
                keypoints = torch.from_numpy(np.stack([c.keypoints for c in group])).float()
                painted = paint_sleeves(designer.decode(src), keypoints, [c.target for c in group])
                init = designer.encode_images(painted)
                start = resolve_start(full, designer.sigma_table, timestep=SLEEVE_HINT_START_T)
            else:
                start = resolve_start(full, designer.sigma_table, attribute=attribute)
            sigmas = full[start.step :]
            g = torch.Generator().manual_seed(config.seed * 7 + part[0])
            noise = torch.randn(src.shape, generator=g).to(src)
            lmask = latent_mask(masks[part], src.shape, cover=pack is not None and pack.paste)
            if method == RELEASED:
                result = _released_edit(denoise, sigmas, src, lmask, noise, g)
            else:
                if method == SDEDIT:
                    pack, lmask = PackMethod("blend", "noise", None), torch.ones_like(lmask)
                guidance = GuidanceConfig()
                if pack.path == "through the model":
                    guidance = GuidanceConfig(path=pack.path, end=0.5)
                edit = EditConfig(mode=pack.mode, start_method=pack.start, guidance=guidance, resample=pack.resample)
                result = run_edit(denoise, sigmas, src, lmask, noise, edit, seed=config.seed, init=init).latent
            out[part] = result
    return out


def evaluate(
    designer, classifier: AttributeClassifier, config: EvalConfig, progress: Progress | None = None
) -> EvalResult:
    """Run the comparison (module docstring); ``progress`` gets one line per phase."""
    say = progress or (lambda line: log.info("%s", line))
    result = EvalResult(config)
    cases = held_out_cases(config.cases, data_count=config.data_count, data_seed=config.data_seed, seed=config.seed)
    w, h = designer.size
    # every image judged below was drawn to its case's pose; a pose-reading judge gets the drawings
    poses = pose_drawings([c.keypoints for c in cases], (w, h)) if classifier.pose else None
    keypoints = torch.from_numpy(np.stack([c.keypoints for c in cases])).float()  # (N, 18, 3) pixels

    def judge(images: torch.Tensor) -> dict[str, list[str]]:
        return classifier.predict(images, poses, keypoints)

    with torch.no_grad():
        # 0. the reference: the held-out records themselves, as the autoencoder shows them
        real = torch.from_numpy(np.stack([c.image for c in cases])).permute(0, 3, 1, 2).float() / 255
        shown = designer.decode(designer.encode_images(real))
        result.reference = _draft_scores(judge(shown), cases)

        # 1. drafts, staged and flat
        sources = {}
        for name, staged in (("staged captions (pack)", True), ("one flat caption, no staging", False)):
            started = time.perf_counter()
            say(f"drafts: {name}, {len(cases)} designs")
            latents = draft_latents(designer, cases, config, staged)
            images = designer.decode(latents)
            row = _draft_scores(judge(images), cases)
            result.seconds[f"draft: {name}"] = (time.perf_counter() - started) / len(cases)
            result.drafts[name] = row
            sources[name] = (latents, images)
        # diversity: a few captions, several seeds each
        if config.diversity_groups:
            groups = cases[: config.diversity_groups]
            for name, staged in (("staged captions (pack)", True), ("one flat caption, no staging", False)):
                spreads = []
                for g in groups:
                    lat = [
                        draft_latents(designer, [g], config, staged, seed_offset=1000 * (k + 1))
                        for k in range(config.diversity_seeds)
                    ]
                    spreads.append(pairwise_distance(designer.decode(torch.cat(lat))))
                result.drafts[name]["diversity"] = float(np.mean(spreads))

        # 2. edits of the staged drafts
        src_latents, src_images = sources["staged captions (pack)"]
        masks = torch.cat([
            region_mask(keypoints[i : i + 1], (h, w), c.attribute, c.fields["category"], reach=c.reach)
            for i, c in enumerate(cases)
        ])  # fmt: skip
        src_pred = judge(src_images)
        result.examples = {"cases": cases, "drafts": src_images, "flat": sources["one flat caption, no staging"][1],
                           "masks": masks, "edits": {}}  # fmt: skip
        for method in config.methods:
            started = time.perf_counter()
            say(f"edits: {method}")
            edited = designer.decode(edit_latents(designer, cases, src_latents, masks, method, config))
            if method in PACK_METHODS and PACK_METHODS[method].paste:
                edited = paste_back(src_images, edited, masks)
            pred = judge(edited)
            row = {}
            for a in ATTRIBUTES:
                idx = [i for i, c in enumerate(cases) if c.attribute == a]
                row[a] = hit_rate([pred[a][i] for i in idx], [cases[i].target for i in idx]) if idx else float("nan")
            row["edited"] = hit_rate([pred[c.attribute][i] for i, c in enumerate(cases)], [c.target for c in cases])
            kept = [pred[a][i] == src_pred[a][i] for i, c in enumerate(cases) for a in ATTRIBUTES if a != c.attribute]
            row["others kept"] = sum(kept) / len(kept)
            row["psnr"] = mean(psnr_outside(src_images, edited, masks))
            row["ssim"] = mean(ssim_outside(src_images, edited, masks))
            row["counts"] = {a: sum(c.attribute == a for c in cases) for a in ATTRIBUTES}
            result.seconds[f"edit: {method}"] = (time.perf_counter() - started) / len(cases)
            result.edits[method] = row
            result.examples["edits"][method] = edited
    return result
