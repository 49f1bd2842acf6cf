"""GradientGuidedEdit's ComfyUI plumbing: the model's sampling check, the pose ControlNet, and the
custom sampler function that runs :func:`hierafash_core.editing.run_edit` on ComfyUI's denoiser."""

from __future__ import annotations

from ..hierafash_core.editing import run_edit
from .convert import image_to_comfy, pose_hint


def check_model_sampling(model):
    import comfy.model_sampling

    sampling = model.get_model_object("model_sampling")
    if not isinstance(sampling, comfy.model_sampling.EPS) or not hasattr(sampling, "sigmas"):
        raise ValueError(
            f"model: its sampling ({type(sampling).__name__}) is not an epsilon/v-prediction diffusion model; "
            "GradientGuidedEdit supports SD1.x, SD2.x and SDXL-type models, not flow-matching ones"
        )
    return sampling


def apply_pose_control(positive, negative, control_net, pose_image, strength):
    if (control_net is None) != (pose_image is None):
        missing = "pose_image" if pose_image is None else "control_net"
        raise ValueError(
            f"{missing}: the pose ControlNet needs both control_net and pose_image; connect {missing} or "
            "disconnect the other"
        )
    if control_net is None or strength == 0:
        return positive, negative
    import nodes as comfy_nodes  # ComfyUI's built-in nodes (this pack's own package is imported relatively)

    hint = image_to_comfy(pose_hint(pose_image, "pose_image"))  # checked, 3 channels, back to BHWC
    return comfy_nodes.ControlNetApplyAdvanced().apply_controlnet(
        positive, negative, control_net, hint, strength, 0.0, 1.0
    )


def edit_sampler_function(config, source_in, edit_mask, noise, seed, model, steps, init_in=None):
    """A k-diffusion style sampler function that runs :func:`run_edit` on ComfyUI's denoiser."""
    import comfy.model_management
    import comfy.utils
    import latent_preview

    total = config.model_calls(steps)
    pbar = comfy.utils.ProgressBar(total)
    previewer = latent_preview.get_previewer(model.load_device, model.model.latent_format)
    pending = {}

    def on_preview(i, x, denoised):
        if previewer is not None:
            pending["image"] = previewer.decode_latent_to_preview_image("JPEG", denoised)

    def on_progress(done, total_):
        comfy.model_management.throw_exception_if_processing_interrupted()
        pbar.update_absolute(done, total_, pending.pop("image", None))

    def sample(model_k, x, sigmas, extra_args=None, callback=None, disable=None):
        extra = extra_args or {}

        def denoise(latent, sigma):
            return model_k(latent, sigma, **extra)

        result = run_edit(
            denoise,
            sigmas,
            source_in.to(x.device, x.dtype),
            edit_mask.to(x.device, x.dtype),
            noise.to(x.device, x.dtype),
            config,
            seed=seed,
            init=None if init_in is None else init_in.to(x.device, x.dtype),
            callback=on_progress,
            preview=on_preview,
        )
        return result.latent

    return sample
