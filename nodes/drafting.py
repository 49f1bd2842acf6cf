"""Drafting nodes: concepts and attributes to staged CONDITIONING (the sampler is in staged_sampler.py).

ConceptEncode and AttributeEncode give ordinary CONDITIONING whose entries carry each stage's
timestep window as ``start_percent``/``end_percent`` (any sampler honours them) and a stage
description (``hierafash_core.conditioning.STAGE_KEY``). StagedKSampler moves those windows onto
exact step boundaries of its own sigma schedule and then samples exactly as the core KSampler does.
"""

from __future__ import annotations

import logging

from comfy_api.latest import io

from ..hierafash_core.conditioning import (
    stage_entries,
)
from ..hierafash_core.prompt import HierarchicalPrompt, StagedDesign
from ..hierafash_core.schedule import PromptSchedule
from ..hierafash_core.taxonomy import ATTRIBUTE_FIELDS, CONCEPT_FIELDS, Level
from .convert import check_inputs

log = logging.getLogger(__name__)

UNSET = "(unset)"
CATEGORY = "HieraFash/drafting"
Design = io.Custom("HIERAFASH_DESIGN")

_FIELD_TIPS = {
    "category": "Garment category (concept 1). The first word of the caption.",
    "style": "Design style (concept 2).",
    "occasion": "Where the outfit is worn (concept 3).",
    "effect": "The effect on the wearer's figure (concept 4).",
    "feeling": "The overall feeling of the design (concept 5).",
    "clothing_length": "A1, clothing length; written with the category noun ('Long Dress').",
    "sleeve_length": "A2, sleeve length.",
    "sleeve_type": "A3, sleeve type ('Puffed' is written 'Puffed Sleeve').",
    "collar": "A4, collar or neckline.",
    "hem": "A5, hem ('Draped' is written 'Draped Hem').",
}


def _field_inputs(fields, default_first: str | None = None) -> list:
    # ComfyUI 0.3.75 does not check V3 menu values against their options (seen: 'Elegnt' posted over
    # the API reached execute); check_inputs refuses them there, naming the closest labels.
    out = []
    for i, f in enumerate(fields):
        default = default_first if (i == 0 and default_first) else UNSET
        tip = f"{_FIELD_TIPS[f.key]} '{UNSET}' leaves it out of the caption."
        out.append(io.Combo.Input(f.key, options=[UNSET, *f.values], default=default, tooltip=tip))
    return out


def _menu_prompt(values: dict[str, str]) -> HierarchicalPrompt:
    return HierarchicalPrompt.from_mapping({k: v for k, v in values.items() if v and v != UNSET})


def _free_prompt(text: str, allow_free_text: bool, first_field: int) -> HierarchicalPrompt:
    if not text or not text.strip():
        return HierarchicalPrompt({})
    try:
        return HierarchicalPrompt.parse(text, allow_free_text=allow_free_text, first_field=first_field)
    except ValueError as exc:
        raise ValueError(f"free_text: {exc}") from None


def _encode_stages(clip, stage_captions, node: str) -> list:
    if clip is None:
        raise ValueError(f"{node}: clip is None; the checkpoint has no text encoder, load one with a CLIP loader")
    cache: dict[str, list] = {}
    out: list = []
    for stage, caption in stage_captions:
        if not caption:
            raise ValueError(
                f"{node}: the stage t={stage.t_high}-{stage.t_low} shows the first {stage.n_fields} fields, "
                "and none of them is set; set the category, or change the schedule"
            )
        if caption not in cache:  # stages with the same caption share one encoding
            cache[caption] = clip.encode_from_tokens_scheduled(clip.tokenize(caption))
        out += stage_entries(cache[caption], stage, caption)
    return out


class ConceptEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HieraFash_ConceptEncode",
            display_name="ConceptEncode (HieraFash)",
            category=CATEGORY,
            description=(
                "Ideation: encodes the design concepts (category, style, occasion, effect, feeling) for the "
                "high-noise stage of the prompt schedule, where the outfit's overall shape is decided. The "
                "conditioning is limited to that window (start/end percent), so any sampler honours it; pass "
                "'design' on to AttributeEncode for the later stages."
            ),
            inputs=[
                io.Clip.Input("clip", tooltip="The text encoder (CLIP) of the checkpoint."),
                *_field_inputs(CONCEPT_FIELDS, default_first="Dress"),
                io.String.Input(
                    "free_text",
                    multiline=True,
                    default="",
                    placeholder='Dress, Elegant, Party  or  {"style": "Vintage"}',
                    tooltip=(
                        "Fields as text: the paper's comma caption in field order (a full ten-field caption is "
                        "fine; its attributes go on to AttributeEncode) or a JSON object of fields. Combined with "
                        "the menus; a field set in both to different values is an error."
                    ),
                ),
                io.Boolean.Input(
                    "allow_free_text",
                    default=False,
                    tooltip="Keep values from free_text that are not in the vocabulary as typed (off: unknown "
                    "values are an error that lists the closest labels).",
                ),
                io.String.Input(
                    "schedule",
                    default="paper",
                    tooltip=(
                        "The prompt schedule, in noise levels (timesteps 999..0): 'paper' (the training windows), "
                        "'two-stage:500' (concepts above t=500, every field below) or windows "
                        "'999-900:5, 899-0:10' (HIGH-LOW:FIELDS, no gaps). The concept stages (5 fields or "
                        "fewer) are encoded here."
                    ),
                ),
            ],
            outputs=[
                io.Conditioning.Output(
                    "concept_conditioning",
                    display_name="concepts",
                    tooltip="CONDITIONING of the concept stage(s), each limited to its noise window.",
                ),
                Design.Output(
                    "design", display_name="design", tooltip="The design's fields and schedule, for AttributeEncode."
                ),
                io.String.Output(
                    "concept_caption", display_name="caption", tooltip="The caption the concept stage shows the model."
                ),
            ],
        )

    @classmethod
    def execute(
        cls, clip, category, style, occasion, effect, feeling, free_text, allow_free_text, schedule
    ) -> io.NodeOutput:
        check_inputs(cls, locals())
        menu = _menu_prompt(
            {"category": category, "style": style, "occasion": occasion, "effect": effect, "feeling": feeling}
        )
        prompt = menu.merged(_free_prompt(free_text, allow_free_text, 1), strict=True, name="free_text")
        if not prompt.has_concepts:
            raise ValueError(
                "ConceptEncode: the concept prompt is empty (category, style, occasion, effect and feeling are "
                f"'{UNSET}' and free_text sets none of them); pick at least a category"
            )
        try:
            sched = PromptSchedule.parse(schedule)
        except ValueError as exc:
            raise ValueError(f"schedule={schedule!r}: {exc}") from None
        design = StagedDesign(prompt, sched)
        stages = design.stage_captions(Level.CONCEPT)
        if not stages:
            raise ValueError(
                f"schedule={schedule!r} has no concept stage (a window showing 5 fields or fewer); "
                "start it with one, e.g. '999-900:5, 899-0:10'"
            )
        conditioning = _encode_stages(clip, stages, "ConceptEncode")
        return io.NodeOutput(conditioning, design, prompt.caption(len(CONCEPT_FIELDS)))


class AttributeEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HieraFash_AttributeEncode",
            display_name="AttributeEncode (HieraFash)",
            category=CATEGORY,
            description=(
                "Iteration: encodes the attribute stages of the design's schedule (clothing length, sleeve length, "
                "sleeve type, collar, hem), one conditioning entry per stage, each limited to its noise window. "
                "As in training, each stage's caption is cumulative: the concepts plus the first k attributes. "
                "Together with ConceptEncode's output it covers the whole run."
            ),
            inputs=[
                io.Clip.Input("clip", tooltip="The text encoder (CLIP) of the checkpoint."),
                Design.Input("design", tooltip="The design from ConceptEncode (its concepts and schedule)."),
                *_field_inputs(ATTRIBUTE_FIELDS),
                io.String.Input(
                    "free_text",
                    multiline=True,
                    default="",
                    placeholder='Long, Short Sleeve, Regular, V-Neck, Draped  or  {"hem": "Pleated"}',
                    tooltip=(
                        "Attributes as text: comma values in the order A1..A5 (leave a part empty to skip one) "
                        "or a JSON object of fields. Combined with the menus; a field set twice to different "
                        "values is an error."
                    ),
                ),
                io.Boolean.Input(
                    "allow_free_text",
                    default=False,
                    tooltip="Keep values from free_text that are not in the vocabulary as typed.",
                ),
            ],
            outputs=[
                io.Conditioning.Output(
                    "attribute_conditioning",
                    display_name="attributes",
                    tooltip="CONDITIONING of the attribute stages, one entry per stage with its own window.",
                ),
                Design.Output(
                    "full_design", display_name="design", tooltip="The design with its attributes (for later edits)."
                ),
                io.String.Output(
                    "caption", display_name="caption", tooltip="The full ten-field caption of the design."
                ),
            ],
        )

    @classmethod
    def execute(
        cls, clip, design, clothing_length, sleeve_length, sleeve_type, collar, hem, free_text, allow_free_text
    ) -> io.NodeOutput:
        check_inputs(cls, locals())
        if not hasattr(design, "prompt") or not hasattr(design, "schedule"):
            raise ValueError(f"design: expected ConceptEncode's design output, got {type(design).__name__}")
        menu = _menu_prompt(
            {
                "clothing_length": clothing_length,
                "sleeve_length": sleeve_length,
                "sleeve_type": sleeve_type,
                "collar": collar,
                "hem": hem,
            }
        )
        free = _free_prompt(free_text, allow_free_text, first_field=len(CONCEPT_FIELDS) + 1)
        concepts_in_free = [k for k in free.values if k in {f.key for f in CONCEPT_FIELDS}]
        if concepts_in_free:
            raise ValueError(
                f"free_text: {', '.join(concepts_in_free)} is a concept field; set it in ConceptEncode, "
                "AttributeEncode takes the attributes A1..A5"
            )
        attrs = menu.merged(free, strict=True, name="free_text")
        prompt = design.prompt.merged(attrs, strict=True, name="AttributeEncode")
        full = StagedDesign(prompt, design.schedule)
        stages = full.stage_captions(Level.ATTRIBUTE)
        if not stages:
            log.warning("AttributeEncode: the schedule %s has no attribute stage; output is empty", design.schedule)
        conditioning = _encode_stages(clip, stages, "AttributeEncode") if stages else []
        return io.NodeOutput(conditioning, full, prompt.caption())


NODES = [ConceptEncode, AttributeEncode]
