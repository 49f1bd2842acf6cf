"""Drafting nodes: concepts and attributes to staged CONDITIONING, and the sampler that stages them.

ConceptEncode and AttributeEncode give ordinary CONDITIONING whose entries carry each stage's
timestep window as ``start_percent``/``end_percent`` (any sampler honours them) and a stage
description (``hierafash_core.conditioning.STAGE_KEY``). StagedKSampler moves those windows onto
exact step boundaries of its own sigma schedule and then samples exactly as the core KSampler does.
"""

from __future__ import annotations

import logging

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview
from comfy_api.latest import io

from ..hierafash_core.conditioning import (
    captions_by_fields,
    schedule_of,
    stage_entries,
    stage_for_run,
    steps_without_entry,
)
from ..hierafash_core.prompt import HierarchicalPrompt, StagedDesign
from ..hierafash_core.schedule import PromptSchedule
from ..hierafash_core.stage_plan import StepSchedule, describe, span_percents
from ..hierafash_core.taxonomy import ATTRIBUTE_FIELDS, CONCEPT_FIELDS, Level
from .convert import check_conditioning, check_inputs, check_latent, model_expects, pose_hint

log = logging.getLogger(__name__)

UNSET = "(unset)"
CATEGORY = "HieraFash/drafting"
Design = io.Custom("HIERAFASH_DESIGN")

SCHEDULE_FORMS = ("from conditioning", "paper", "two-stage", "custom windows", "switch steps")
POSE_STAGES = {"all stages": "all", "concept stages": "concept", "attribute stages": "attribute"}

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


def _schedule_choice(form: str, spec: str) -> tuple[PromptSchedule | StepSchedule | None, str]:
    """The schedule the sampler's ``schedule``/``schedule_spec`` widgets ask for, and how to say it."""
    spec = (spec or "").strip()
    if form == "from conditioning":
        return None, "windows from the conditioning"
    if form == "switch steps":
        if not spec:
            raise ValueError("schedule_spec is empty; for 'switch steps' write e.g. '12' or '0:5, 8:7, 12:10'")
        steps_sched = StepSchedule.parse(spec)
        return steps_sched, f"switch steps {steps_sched.spec()}"
    if form == "paper":
        sched = PromptSchedule.paper()
    elif form == "two-stage":
        if spec and not spec.isdigit():
            raise ValueError(f"schedule_spec={spec!r}: for 'two-stage' give the split timestep, e.g. '500'")
        sched = PromptSchedule.two_stage(int(spec) if spec else 500)
    elif form == "custom windows":
        if not spec:
            raise ValueError("schedule_spec is empty; for 'custom windows' write e.g. '999-900:5, 899-0:10'")
        sched = PromptSchedule.parse(spec)
    else:
        raise ValueError(f"schedule={form!r}: use one of {', '.join(SCHEDULE_FORMS)}")
    return sched, f"{form} windows"


def _attach_control(conditioning, control_net, hint, strength, percents, cache: dict) -> list:
    """Copies of the entries with the pose ControlNet chained after any control they already carry."""
    out = []
    for cond, options in conditioning:
        opts = dict(options)
        previous = opts.get("control")
        if previous not in cache:
            c_net = control_net.copy().set_cond_hint(hint, strength, percents)
            c_net.set_previous_controlnet(previous)
            cache[previous] = c_net
        opts["control"] = cache[previous]
        opts["control_apply_to_uncond"] = False
        out.append([cond, opts])
    return out


class StagedKSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HieraFash_StagedKSampler",
            display_name="StagedKSampler (HieraFash)",
            category=CATEGORY,
            description=(
                "Samples like KSampler, switching the caption stage by stage at exact steps of the real sigma "
                "schedule. 'from conditioning' (default) uses the noise windows ConceptEncode set: a stage starts "
                "at the first step whose noise is below its window, which depends on the scheduler. 'switch "
                "steps' switches at the steps you give. The 'plan' output says which steps show which caption. "
                "Optional pose ControlNet, acting in the stages you pick."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model."),
                io.Conditioning.Input("concepts", tooltip="ConceptEncode's conditioning (or any positive)."),
                io.Conditioning.Input(
                    "attributes", optional=True, tooltip="AttributeEncode's conditioning (the later stages)."
                ),
                io.Conditioning.Input("negative", tooltip="The negative prompt, used at every step."),
                io.Latent.Input("latent_image", tooltip="The latent to denoise (EmptyLatentImage for a draft)."),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFFFFFFFFFF,
                    control_after_generate=True,
                    tooltip="Seed of the initial noise (same seed and settings as KSampler give the same noise).",
                ),
                io.Int.Input("steps", default=20, min=1, max=10000, tooltip="Number of sampling steps."),
                io.Float.Input(
                    "cfg", default=8.0, min=0.0, max=100.0, step=0.1, round=0.01, tooltip="Classifier-free guidance."
                ),
                io.Combo.Input(
                    "sampler_name", options=comfy.samplers.KSampler.SAMPLERS, tooltip="The sampling algorithm."
                ),
                io.Combo.Input(
                    "scheduler",
                    options=comfy.samplers.KSampler.SCHEDULERS,
                    tooltip="How noise levels are spaced over the steps; decides where noise-window switches land.",
                ),
                io.Float.Input(
                    "denoise",
                    default=1.0,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="How much noise is added (1 = pure noise); below 1 the high-noise stages are skipped.",
                ),
                io.Combo.Input(
                    "schedule",
                    options=list(SCHEDULE_FORMS),
                    default="from conditioning",
                    tooltip=(
                        "Where the caption switches: 'from conditioning' (ConceptEncode's noise windows), 'paper', "
                        "'two-stage' or 'custom windows' (noise windows given here), or 'switch steps' (step "
                        "numbers given here). Noise windows land on steps through the scheduler's sigmas."
                    ),
                ),
                io.String.Input(
                    "schedule_spec",
                    default="",
                    tooltip=(
                        "For 'two-stage': the split timestep (default 500). For 'custom windows': "
                        "'999-900:5, 899-0:10'. For 'switch steps': '12' (concepts, then every field from step 12) "
                        "or '0:5, 8:7, 12:10' (fields shown from each step; steps count from the first step run)."
                    ),
                ),
                io.ControlNet.Input(
                    "control_net", optional=True, tooltip="A pose ControlNet (OpenPose), loaded by ControlNetLoader."
                ),
                io.Image.Input("pose_image", optional=True, tooltip="The pose skeleton image the ControlNet follows."),
                io.Float.Input(
                    "pose_strength",
                    default=1.0,
                    min=0.0,
                    max=10.0,
                    step=0.01,
                    tooltip="Strength of the pose ControlNet (0 turns it off).",
                ),
                io.Combo.Input(
                    "pose_stages",
                    options=list(POSE_STAGES),
                    default="all stages",
                    tooltip="Stages the pose ControlNet acts in (the paper holds the pose at every step).",
                ),
            ],
            outputs=[
                io.Latent.Output("latent", display_name="latent", tooltip="The denoised latent."),
                io.String.Output(
                    "plan",
                    display_name="plan",
                    tooltip="Which steps showed which caption, and the schedule form used.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        model,
        concepts,
        negative,
        latent_image,
        seed,
        steps,
        cfg,
        sampler_name,
        scheduler,
        denoise,
        schedule,
        schedule_spec,
        pose_strength,
        pose_stages,
        attributes=None,
        control_net=None,
        pose_image=None,
    ) -> io.NodeOutput:
        check_inputs(cls, locals())
        channels, width = model_expects(model)
        positive = check_conditioning(concepts, "concepts", width)
        positive += check_conditioning(attributes, "attributes", width) if attributes is not None else []
        negative = check_conditioning(negative, "negative", width)
        check_latent(latent_image, "latent_image", channels)
        if not positive:
            raise ValueError("concepts: the positive conditioning is empty; connect ConceptEncode's output")
        ksampler = comfy.samplers.KSampler(
            model,
            steps=steps,
            device=model.load_device,
            sampler=sampler_name,
            scheduler=scheduler,
            denoise=denoise,
            model_options=model.model_options,
        )
        sigmas = ksampler.sigmas
        model_sampling = model.get_model_object("model_sampling")
        chosen, form_text = _schedule_choice(schedule, schedule_spec)
        spans = None
        if len(sigmas) < 2:
            form_text = "denoise 0: no step runs, the latent is returned as it is"
        else:
            given = positive
            to_sigma = model_sampling.percent_to_sigma
            positive, spans = stage_for_run(
                given, sigmas, model_sampling.sigmas, to_sigma, chosen, "concepts + attributes"
            )
            if spans is None:
                form_text = "no staged conditioning in the positive: sampled like KSampler"
            else:
                form_text += f" ({(chosen or schedule_of(given)).spec()})"
            empty = steps_without_entry(positive, sigmas, model_sampling.percent_to_sigma)
            if empty:
                raise ValueError(
                    f"steps {empty} have no active positive conditioning (a gap between windows); connect "
                    "AttributeEncode's output to 'attributes' or remove the timestep range that leaves the gap"
                )
        positive, negative = cls._pose(positive, negative, control_net, pose_image, pose_strength, pose_stages, spans)
        plan = f"schedule: {form_text}; {sampler_name}/{scheduler}, {len(sigmas) - 1 if len(sigmas) else 0} steps"
        if spans is not None:
            plan += "\n" + describe(spans, captions_by_fields(positive))
        log.info("StagedKSampler plan:\n%s", plan)

        latent = latent_image.copy()
        image = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
        noise = comfy.sample.prepare_noise(image, seed, latent.get("batch_index"))
        preview = latent_preview.prepare_callback(model, steps)

        def callback(step, x0, x, total_steps):
            comfy.model_management.throw_exception_if_processing_interrupted()
            preview(step, x0, x, total_steps)

        samples = comfy.sample.sample(
            model,
            noise,
            steps,
            cfg,
            sampler_name,
            scheduler,
            positive,
            negative,
            image,
            denoise=denoise,
            noise_mask=latent.get("noise_mask"),
            sigmas=sigmas if len(sigmas) else None,
            callback=callback,
            disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED,
            seed=seed,
        )
        latent["samples"] = samples
        return io.NodeOutput(latent, plan)

    @staticmethod
    def _pose(positive, negative, control_net, pose_image, strength, stages, spans):
        if control_net is None:
            if pose_image is not None:
                raise ValueError(
                    "control_net: a pose_image is connected but no ControlNet; connect ControlNetLoader's output "
                    "to control_net, or disconnect pose_image"
                )
            return positive, negative
        if pose_image is None:
            raise ValueError(
                "pose_image: a ControlNet is connected but no pose image; connect a pose skeleton image "
                "(e.g. from an OpenPose preprocessor), or disconnect control_net"
            )
        if strength == 0:
            return positive, negative
        which = POSE_STAGES.get(stages)
        if which is None:
            raise ValueError(f"pose_stages={stages!r}: use one of {', '.join(POSE_STAGES)}")
        if spans is None:
            if which != "all":
                raise ValueError(
                    f"pose_stages={stages!r} needs staged conditioning (ConceptEncode/AttributeEncode); "
                    "use 'all stages' with plain conditioning"
                )
            percents = (0.0, 1.0)
        else:
            percents = span_percents(spans, which)
            if percents is None:
                log.warning("pose ControlNet: no step of this run is in the %s; it does not act", stages)
                return positive, negative
        # TODO(evidence): no vae input, so ControlNets that encode their hint with the VAE (SD3, Flux
        # union types) get none; SD1.5/2.1 OpenPose ControlNets, the paper's, need no VAE.
        hint = pose_hint(pose_image, "pose_image")  # BHWC -> BCHW with 3 channels, what ControlNet hints are
        cache: dict = {}
        return (
            _attach_control(positive, control_net, hint, strength, percents, cache),
            _attach_control(negative, control_net, hint, strength, percents, cache),
        )


NODES = [ConceptEncode, AttributeEncode, StagedKSampler]
