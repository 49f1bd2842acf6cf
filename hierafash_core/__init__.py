"""Headless core of HieraFash: taxonomy, hierarchical prompts, prompt schedules, samplers,
editing, pose, masks, training and metrics. It never imports ComfyUI; it speaks BCHW tensors.
"""

__version__ = "0.1.0"
