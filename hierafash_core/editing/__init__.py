"""Local attribute edits: where an edit starts, how it starts, and how the rest of the design is kept.

- :mod:`.starts`: the paper's per-attribute start timesteps mapped onto any schedule.
- :mod:`.masks`: edit masks on the latent grid; the per-step blend.
- :mod:`.steppers`: step rules in sigma space (euler = DDIM eta 0, euler_ancestral, dpmpp_2m).
- :mod:`.guidance`: the keep-the-rest gradient guidance.
- :mod:`.inversion`: deterministic DDIM inversion.
- :mod:`.loop`: :func:`run_edit`, the edit itself.
- :mod:`.layout`: a sleeve-length edit's starting image, the asked sleeve painted from the pose.
- :mod:`.diffusers_unet`: a diffusers UNet as a denoiser (headless runs).

Pure torch; never imports ComfyUI.
"""

from .diffusers_unet import DiffusersDenoiser
from .guidance import (
    MAX_GUIDANCE_ITERS,
    MAX_GUIDANCE_WEIGHT,
    Denoiser,
    GradientPath,
    GuidanceConfig,
    guidance_update,
    guided_denoise,
    keep_loss,
)
from .inversion import MAX_INVERSION_REFINE, ddim_invert
from .layout import SLEEVE_HINT_START_T, paint_sleeves, sleeve_end_level
from .loop import EditConfig, EditResult, Mode, StartMethod, run_edit
from .masks import blend, latent_mask, paste_back, release_mask
from .starts import ATTRIBUTE_START_T, EditStart, attribute_start_timestep, first_step_at_or_below, resolve_start
from .steppers import SamplerName, make_stepper

__all__ = [
    "ATTRIBUTE_START_T",
    "MAX_GUIDANCE_ITERS",
    "MAX_GUIDANCE_WEIGHT",
    "MAX_INVERSION_REFINE",
    "SLEEVE_HINT_START_T",
    "Denoiser",
    "DiffusersDenoiser",
    "EditConfig",
    "EditResult",
    "EditStart",
    "GradientPath",
    "GuidanceConfig",
    "Mode",
    "SamplerName",
    "StartMethod",
    "attribute_start_timestep",
    "blend",
    "ddim_invert",
    "first_step_at_or_below",
    "guidance_update",
    "guided_denoise",
    "keep_loss",
    "latent_mask",
    "paint_sleeves",
    "paste_back",
    "make_stepper",
    "release_mask",
    "resolve_start",
    "run_edit",
    "sleeve_end_level",
]
