"""Training with hierarchical (timestep-staged) captions: a pose ControlNet, a LoRA or a whole UNet.

Entry point: :func:`train` with a :class:`TrainConfig` (``hierafash train`` on the command line,
``accelerate launch`` / ``torchrun`` for several GPUs or machines). See docs/training.md.
"""

from .config import TrainConfig
from .export import controlnet_to_ldm, lora_to_comfy, save_controlnet_ldm, save_lora_comfy, save_unet_ldm
from .trainer import TrainResult, train, weights_digest

__all__ = [
    "TrainConfig",
    "TrainResult",
    "controlnet_to_ldm",
    "lora_to_comfy",
    "save_controlnet_ldm",
    "save_lora_comfy",
    "save_unet_ldm",
    "train",
    "weights_digest",
]
