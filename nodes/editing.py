"""GradientGuidedEdit: change one attribute inside a mask, keep the rest of the design, chain edits.

The node adapts ComfyUI's MODEL to the core's denoiser contract: a custom sampler function,
wrapped by ``comfy.samplers.KSAMPLER`` and run by ``comfy.sample.sample_custom``, receives the
CFG-applied model as ``model(x, sigma * s_in, **extra_args)`` and hands it to
:func:`hierafash_core.editing.run_edit`. The conditioning stays ordinary CONDITIONING: stage
windows set by AttributeEncode (start/end percents) are honoured by ComfyUI as with any sampler.
"""

from __future__ import annotations

import logging

import torch
from comfy_api.latest import io

from ..hierafash_core.conditioning import captions_by_fields, stage_for_run, steps_without_entry
from ..hierafash_core.editing import (
    ATTRIBUTE_START_T,
    MAX_GUIDANCE_ITERS,
    MAX_INVERSION_REFINE,
    EditConfig,
    GradientPath,
    GuidanceConfig,
    Mode,
    SamplerName,
    StartMethod,
    release_mask,
    resolve_start,
)
from ..hierafash_core.editing import latent_mask as to_latent_grid  # the widget of that name wins
from ..hierafash_core.editing.layout import SLEEVE_HINT_START_T
from ..hierafash_core.stage_plan import describe
from ..hierafash_core.taxonomy import ATTRIBUTE_FIELDS
from .convert import (
    check_conditioning,
    check_inputs,
    check_latent,
    mask_to_core,
    model_expects,
)
from .edit_sampling import apply_pose_control, check_model_sampling, edit_sampler_function
from .model_grad import grad_ready_conditioning, grad_ready_model

log = logging.getLogger(__name__)

LATENT_MASKS = ("average", "cover")  # how the pixel mask meets the latent grid (see the widget's tooltip)
CUSTOM_TIMESTEP = "custom timestep"
CUSTOM_STEP = "custom step"
# "A1 clothing length (t=911)" ... "A5 hem (t=591)" -> field key; the strings are saved in workflows.
ATTRIBUTE_CHOICES = {f"{f.code} {f.label} (t={ATTRIBUTE_START_T[f.key]})": f.key for f in ATTRIBUTE_FIELDS}


class GradientGuidedEdit(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="HieraFash_GradientGuidedEdit",
            display_name="GradientGuidedEdit (HieraFash)",
            category="HieraFash/editing",
            description=(
                "Edit one attribute of a design inside a mask and keep everything else: the source is brought "
                "to the attribute's noise level (the paper's start, or your own) and denoised with the attribute "
                "conditioning, while blending and/or gradient guidance hold the region outside the mask to the "
                "source. The output carries no mask, so it feeds the next edit directly (draft -> A1 -> A2 ...)."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model (the same one that made the draft)."),
                io.Conditioning.Input(
                    "positive",
                    tooltip="Attribute conditioning: AttributeEncode's, or any CONDITIONING (its stage windows "
                    "are honoured).",
                ),
                io.Conditioning.Input("negative", tooltip="Negative conditioning."),
                io.Latent.Input(
                    "source",
                    tooltip="The latent to edit: the draft or the previous edit's output. Any noise_mask on it is "
                    "ignored (the mask input decides).",
                ),
                io.Mask.Input(
                    "mask",
                    tooltip="Where the edit may change the design (1 = change). Image-size masks are averaged onto "
                    "the latent grid; feathered masks give seamless edges. One mask, or one per latent.",
                ),
                io.Combo.Input(
                    "attribute",
                    options=[*ATTRIBUTE_CHOICES, CUSTOM_TIMESTEP, CUSTOM_STEP],
                    default=next(iter(ATTRIBUTE_CHOICES)),
                    tooltip="Which attribute this edit changes; sets where it starts, as in the paper's released "
                    "code (Aj at t = 991 - 80j on the 0-999 scale, mapped to this schedule's sigmas). "
                    "'custom timestep' uses start_timestep, 'custom step' uses start_step.",
                ),
                io.Int.Input(
                    "start_timestep",
                    default=751,
                    min=0,
                    max=999,
                    step=1,
                    tooltip="Used when attribute is 'custom timestep': the noise level to start from (0-999; "
                    "higher changes more). The edit starts at the first step at or below it.",
                ),
                io.Int.Input(
                    "start_step",
                    default=8,
                    min=0,
                    max=10000,
                    step=1,
                    tooltip="Used when attribute is 'custom step': the step of the schedule to start at "
                    "(0 = regenerate the masked region from full noise).",
                ),
                io.Int.Input(
                    "steps",
                    default=30,
                    min=1,
                    max=1000,
                    tooltip="Steps of the whole schedule; the edit runs the steps from its start to the end "
                    "(the paper: 100 DDIM steps).",
                ),
                io.Float.Input(
                    "cfg", default=7.0, min=0.0, max=100.0, step=0.1, round=0.01, tooltip="Classifier-free guidance."
                ),
                io.Combo.Input(
                    "sampler",
                    options=SamplerName,
                    default=SamplerName.EULER,
                    tooltip="Step rule: euler (DDIM eta 0, the released code's), euler_ancestral (fresh noise "
                    "each step), dpmpp_2m (second order). DDIM inversion is the exact reverse of euler.",
                ),
                io.Combo.Input(
                    "scheduler",
                    options=_scheduler_names(),
                    default="normal",
                    tooltip="Sigma schedule (as KSampler's). The start is a noise level, so its step depends on it.",
                ),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=0xFFFFFFFFFFFFFFFF,
                    control_after_generate=True,
                    tooltip="Seed of the start noise (and of the ancestral sampler's noise).",
                ),
                io.Combo.Input(
                    "mode",
                    options=Mode,
                    default=Mode.BOTH,
                    tooltip="How the rest is kept. blend: each step, outside the mask is replaced by the source "
                    "at the current noise level (exact outside the mask). guide: gradient guidance pulls the "
                    "model's clean estimate toward the source outside the mask (no hard replacement). both: "
                    "guidance, then blending.",
                ),
                io.Float.Input(
                    "guidance_weight",
                    default=1.0,
                    min=0.0,
                    max=1.99,
                    step=0.01,
                    tooltip="How much of the kept region's error one guidance update removes: 1 = all of it "
                    "(to first order), 0.5 = half, 0 = off; from 2 on it would diverge. The step length adapts to "
                    "the noise level and the model, so the same weight works on every step.",
                ),
                io.Float.Input(
                    "guidance_start",
                    default=0.0,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="Guidance acts from this fraction of the edit's steps...",
                ),
                io.Float.Input(
                    "guidance_end",
                    default=1.0,
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    tooltip="...to this fraction. Through the model, shortening the range saves most of the cost.",
                ),
                io.Combo.Input(
                    "gradient_path",
                    options=GradientPath,
                    default=GradientPath.CLEAN_ESTIMATE,
                    tooltip="clean estimate: the noise prediction is held fixed, so the gradient is closed form "
                    "(almost free). through the model: autograd through the UNet (and ControlNet), about 3x the "
                    "cost of a step where it acts; weights are copied layer by layer on each pass, no second "
                    "copy of the model is kept.",
                ),
                io.Int.Input(
                    "guidance_iterations",
                    default=1,
                    min=1,
                    max=MAX_GUIDANCE_ITERS,
                    tooltip="Gradient updates per guided step (through the model, each is a forward and a "
                    "backward pass).",
                ),
                io.Combo.Input(
                    "start_method",
                    options=StartMethod,
                    default=StartMethod.NOISE,
                    tooltip="noise: the source plus fresh noise at the start level (SDEdit, the released code). "
                    "ddim inversion: the model's own deterministic path from the source up to the start level "
                    "(keeps more of the source's layout; costs one extra model pass per step, same conditioning "
                    "and cfg).",
                ),
                io.Int.Input(
                    "inversion_refinements",
                    default=0,
                    min=0,
                    max=MAX_INVERSION_REFINE,
                    tooltip="ddim inversion only: fixed-point refinements per step (each one more model pass per "
                    "step); they make inversion followed by sampling return closer to the source.",
                ),
                io.ControlNet.Input(
                    "control_net",
                    optional=True,
                    tooltip="Optional pose ControlNet (with pose_image) to hold the body pose during the edit.",
                ),
                io.Image.Input(
                    "pose_image", optional=True, tooltip="Rendered pose (OpenPose skeleton) for control_net."
                ),
                io.Float.Input(
                    "control_strength",
                    default=1.0,
                    min=0.0,
                    max=10.0,
                    step=0.01,
                    optional=True,
                    tooltip="Strength of the pose ControlNet.",
                ),
                io.Int.Input(
                    "resample",
                    default=1,
                    min=1,
                    max=20,
                    step=1,
                    optional=True,  # optional: graphs and API prompts saved before it existed keep working
                    tooltip=(
                        "Passes per step in the first resample_share of the edit: after each pass the latent is "
                        "noised back up and the step taken again, so the redrawn region agrees with the kept rest "
                        "(RePaint's resampling), at about r times the model calls over that share. 1 = off; on the "
                        "mini designer 5 passes gained nothing measurable over one (docs/editing.md)."
                    ),
                ),
                io.Float.Input(
                    "resample_share",
                    default=0.5,
                    min=0.0,
                    max=1.0,
                    step=0.05,
                    optional=True,
                    tooltip="The share of the edit's steps, from its start, that are resampled.",
                ),
                io.Combo.Input(
                    "latent_mask",
                    options=list(LATENT_MASKS),
                    default="average",
                    optional=True,
                    tooltip=(
                        "How the pixel mask meets the latent grid (8 px per cell). average: a cell is as free as "
                        "the share of it the mask covers, late for thin regions. cover: every cell the mask "
                        "touches is free from the start (thin regions such as arms change their shape), and the "
                        "cells around the region change too: decode, then paste into the source image with "
                        "ImageCompositeMasked and this mask to keep every pixel outside it."
                    ),
                ),
                io.Latent.Input(
                    "init",
                    optional=True,
                    tooltip=(
                        "Optional: what the region starts from instead of the source, same size as the source "
                        "(e.g. VAEEncode of SleeveHint's image, with a custom timestep of about "
                        f"{SLEEVE_HINT_START_T}). The rest is still kept from the source. Noise start only."
                    ),
                ),
            ],
            outputs=[
                io.Latent.Output(
                    "edited",
                    display_name="edited",
                    tooltip="The edited latent, same size and batch as the source, with no noise_mask: feed it to "
                    "the next edit, a KSampler or VAEDecode.",
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        model,
        positive,
        negative,
        source,
        mask,
        attribute,
        start_timestep,
        start_step,
        steps,
        cfg,
        sampler,
        scheduler,
        seed,
        mode,
        guidance_weight,
        guidance_start,
        guidance_end,
        gradient_path,
        guidance_iterations,
        start_method,
        inversion_refinements,
        control_net=None,
        pose_image=None,
        control_strength=1.0,
        resample=1,
        resample_share=0.5,
        latent_mask="average",
        init=None,
    ) -> io.NodeOutput:
        check_inputs(cls, locals())
        import comfy.sample
        import comfy.samplers

        # 1. check and convert the inputs (nothing the caller passed is modified)
        channels, width = model_expects(model)
        samples = check_latent(source, "source", channels)
        # The edit runs in float32 whatever the source's dtype: in float16 the guidance step of a mask
        # that covers the whole latent divided 0 by 0 (seen: a NaN latent); the result gets the source's dtype.
        source_dtype, samples = samples.dtype, samples.float()
        positive, negative = (
            check_conditioning(positive, "positive", width),
            check_conditioning(negative, "negative", width),
        )
        init_samples = None
        if init is not None:
            init_samples = check_latent(init, "init", channels).float()
            if init_samples.shape != samples.shape:
                raise ValueError(
                    f"init: a latent of shape {tuple(init_samples.shape)}, the source's is {tuple(samples.shape)}; "
                    "encode an image of the source's size and batch (SleeveHint keeps the image's size)"
                )
            if start_method != "noise":
                raise ValueError(
                    f"init: given with start_method={start_method!r}; an init is noised to the start level, so "
                    "use start_method 'noise', or disconnect init to invert the source"
                )
            if "noise_mask" in init:
                log.info("init: its noise_mask is ignored; the mask input decides where init is used")
            if not torch.count_nonzero(init_samples):
                log.warning("init: the latent is all zeros (an empty latent?); the region starts from noise only")
        if "noise_mask" in source:
            log.info("source: its noise_mask is ignored; the mask input decides where the edit acts")
        config = EditConfig(
            mode=mode,
            start_method=start_method,
            sampler=sampler,
            inversion_refine=inversion_refinements,
            resample=resample,
            resample_share=resample_share,
            guidance=GuidanceConfig(
                weight=guidance_weight,
                start=guidance_start,
                end=guidance_end,
                path=gradient_path,
                iterations=guidance_iterations,
            ),
        )
        if latent_mask not in LATENT_MASKS:
            raise ValueError(f"latent_mask={latent_mask!r}: use one of {', '.join(LATENT_MASKS)}")
        edit_mask = to_latent_grid(
            mask_to_core(mask, "mask"), tuple(samples.shape), cover=latent_mask == "cover"
        )  # (B, 1, h, w)
        if not torch.count_nonzero(samples):
            log.warning("source: the latent is all zeros (an empty latent?); the edit fills the mask from noise only")
        sampling = check_model_sampling(model)
        if scheduler not in comfy.samplers.SCHEDULER_NAMES:
            names = ", ".join(comfy.samplers.SCHEDULER_NAMES)
            raise ValueError(f"scheduler={scheduler!r} is unknown; use one of {names}")

        # 2. where the edit starts on this schedule
        full = comfy.samplers.calculate_sigmas(sampling, scheduler, steps).cpu().float()
        table = sampling.sigmas.detach().cpu().double()
        if attribute == CUSTOM_STEP:
            start = resolve_start(full, table, step=start_step)
        elif attribute == CUSTOM_TIMESTEP:
            start = resolve_start(full, table, timestep=start_timestep)
        elif attribute in ATTRIBUTE_CHOICES:
            start = resolve_start(full, table, attribute=ATTRIBUTE_CHOICES[attribute])
        else:
            choices = ", ".join([*ATTRIBUTE_CHOICES, CUSTOM_TIMESTEP, CUSTOM_STEP])
            raise ValueError(f"attribute={attribute!r} is not one of: {choices}")
        sigmas = full[start.step :]
        log.info(
            "GradientGuidedEdit: %s -> step %d of %d (sigma %.4g, t=%.0f); %d steps, mode %s, start %s",
            start.reason,
            start.step,
            steps,
            start.sigma,
            start.timestep,
            len(sigmas) - 1,
            config.mode.value,
            config.start_method.value,
        )

        # 3. the model and conditioning to sample with: staged captions switch at exact steps of this run
        # (as StagedKSampler does), and every step must see a positive caption
        try:
            positive, spans = stage_for_run(positive, sigmas, table, sampling.percent_to_sigma, None, "positive")
        except ValueError as exc:
            # An edit runs only the low-noise part of the schedule, so windows that do not reach t=999
            # (AttributeEncode's alone) can still cover it: keep ComfyUI's own percent windows then.
            log.info("positive: stage windows kept as they are (%s)", exc)
            spans = None
        if spans is not None:
            log.info("GradientGuidedEdit stages:\n%s", describe(spans, captions_by_fields(positive)))
        empty = steps_without_entry(positive, sigmas, sampling.percent_to_sigma)
        if empty:
            raise ValueError(
                f"positive: steps {empty} of this edit (it starts at {start.reason}) have no active conditioning, "
                "so the model would predict almost nothing there; AttributeEncode's windows begin below t=900: "
                "combine ConceptEncode's concepts with the attributes (ConditioningCombine), or start lower"
            )
        positive, negative = apply_pose_control(positive, negative, control_net, pose_image, control_strength)
        work_model = model
        if config.mode.guides and config.guidance.path is GradientPath.THROUGH_MODEL and config.guidance.weight > 0:
            work_model = grad_ready_model(model)
            positive, negative = grad_ready_conditioning(positive), grad_ready_conditioning(negative)

        # 4. run the edit as a ComfyUI custom sampler
        batch_index = source.get("batch_index")
        noise = comfy.sample.prepare_noise(samples, seed, batch_index)
        source_in = model.model.process_latent_in(samples.float())
        init_in = None if init_samples is None else model.model.process_latent_in(init_samples)
        sampler_obj = comfy.samplers.KSAMPLER(
            edit_sampler_function(config, source_in, edit_mask, noise, seed, work_model, len(sigmas) - 1, init_in)
        )
        edited = comfy.sample.sample_custom(
            work_model, noise, cfg, sampler_obj, sigmas, positive, negative, samples, disable_pbar=True, seed=seed
        )

        # 5. exact outside the mask when blending (the sampler's last blend, again in the caller's latent
        # scale: the model's scaling in and out is not bit-exact)
        edited = edited.to(samples.device, samples.dtype)
        if config.mode.blends:
            edited = torch.lerp(samples, edited, release_mask(edit_mask, 1.0).to(samples.device, samples.dtype))
        out = {k: v for k, v in source.items() if k != "noise_mask"}
        out["samples"] = edited.to(source_dtype)
        return io.NodeOutput(out)


def _scheduler_names() -> list[str]:
    import comfy.samplers

    return list(comfy.samplers.SCHEDULER_NAMES)


NODES = [GradientGuidedEdit]
