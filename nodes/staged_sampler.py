"""StagedKSampler: samples exactly as the core KSampler does, switching captions at exact steps.

It moves the noise windows of ConceptEncode/AttributeEncode conditioning (or a schedule given on
the node) onto step boundaries of its own sigma schedule, then runs ComfyUI's own ``sample()``.
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
    stage_for_run,
    steps_without_entry,
)
from ..hierafash_core.schedule import PromptSchedule
from ..hierafash_core.stage_plan import StepSchedule, describe, span_percents
from .convert import check_conditioning, check_inputs, check_latent, model_expects, pose_hint
from .drafting import CATEGORY

log = logging.getLogger(__name__)

SCHEDULE_FORMS = ("from conditioning", "paper", "two-stage", "custom windows", "switch steps")
POSE_STAGES = {"all stages": "all", "concept stages": "concept", "attribute stages": "attribute"}


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


NODES = [StagedKSampler]
