"""The one place where ComfyUI's layouts meet the core's.

ComfyUI: IMAGE is (B, H, W, C) float in [0, 1]; MASK is (B, H, W), sometimes (H, W).
Core:    images are (B, C, H, W) float in [0, 1]; masks are (B, 1, H, W) float in [0, 1].
"""

from __future__ import annotations

import torch


def image_to_core(image: torch.Tensor, name: str = "image") -> torch.Tensor:
    """IMAGE (B, H, W, C) -> (B, C, H, W) float32, checked."""
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"{name}: expected an IMAGE tensor, got {type(image).__name__}; connect an image output")
    if image.ndim == 3:  # a single (H, W, C) image that a custom node forgot to batch
        image = image.unsqueeze(0)
    if image.ndim != 4 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"{name}: expected IMAGE of shape (B, H, W, C) with C in 1, 3, 4, got {tuple(image.shape)}; "
            "connect an IMAGE output (LoadImage, VAEDecode)"
        )
    if image.shape[0] == 0 or image.shape[1] == 0 or image.shape[2] == 0:
        raise ValueError(f"{name}: the image is empty, shape {tuple(image.shape)}")
    return image.permute(0, 3, 1, 2).float()  # BHWC -> BCHW


def image_to_comfy(image: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> IMAGE (B, H, W, C) float32 in [0, 1]."""
    return image.clamp(0, 1).permute(0, 2, 3, 1).contiguous().float()  # BCHW -> BHWC


def mask_to_core(mask: torch.Tensor, name: str = "mask") -> torch.Tensor:
    """MASK (B, H, W) or (H, W) -> (B, 1, H, W) float32, checked."""
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"{name}: expected a MASK tensor, got {type(mask).__name__}; connect a mask output")
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    if mask.ndim == 4 and mask.shape[1] == 1:
        mask = mask[:, 0]
    if mask.ndim != 3:
        raise ValueError(f"{name}: expected MASK of shape (B, H, W) or (H, W), got {tuple(mask.shape)}")
    return mask.unsqueeze(1).float()  # BHW -> B1HW


def mask_to_comfy(mask: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) -> MASK (B, H, W) float32 in [0, 1]."""
    return mask[:, 0].clamp(0, 1).contiguous().float()
