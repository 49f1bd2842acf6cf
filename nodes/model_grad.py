"""Make a ComfyUI model usable by autograd inside ComfyUI's executor (which runs under inference mode).

The weights ComfyUI's loaders create under ``torch.inference_mode()`` are inference tensors, and
autograd refuses to save them for a backward pass ("Inference tensors cannot be saved for
backward"). Guidance whose gradient runs through the model needs ordinary tensors in the forward
pass. Rather than keeping a second copy of every weight, this uses ComfyUI's own extension point,
``ModelPatcher.add_weight_wrapper``: a layer with a weight wrapper casts (copies) its weight on each
call, and a copy made with inference mode off is an ordinary tensor. The cost is one transient
copy of each layer's weights per model pass (layer by layer, never the whole model at once); the
memory cost is one layer's weights at a time. LoRA and other weight patches still apply (the copy
is taken of the patched weight).

ControlNets in the conditioning have their own weights; :func:`grad_ready_conditioning` gives them
the same treatment on copies, leaving the caller's conditioning untouched.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


def _keep(weight):
    """The weight wrapper: the copy ComfyUI makes for wrapped layers is all that is needed."""
    return weight


def _wrap_all_weights(patcher, prefix: str = "") -> int:
    """Add the copy-on-use wrapper to every parameter under ``prefix`` of ``patcher.model``; return the count."""
    count = 0
    for name, _ in patcher.model.named_parameters():
        if name.startswith(prefix) and name.rsplit(".", 1)[-1] in ("weight", "bias"):
            patcher.add_weight_wrapper(name, _keep)
            count += 1
    return count


def _fresh_skip(h, transformer_options):
    """Hand the next UNet block a copy of the skip tensor when autograd records the pass.

    ComfyUI adds a ControlNet's output residuals to the stored skip tensors in place; the next
    input block has already saved that tensor for backward, so the in-place add would break the
    gradient. With the copy, the block saves a tensor that nothing modifies later.
    """
    return h.clone() if torch.is_grad_enabled() and h.requires_grad else h


def grad_ready_model(model):
    """A clone of ``model`` whose diffusion model can be differentiated through under inference mode.

    Args:
        model: a ComfyUI ``ModelPatcher`` (MODEL); it is not modified.
    """
    clone = model.clone()
    clone.set_model_input_block_patch_after_skip(_fresh_skip)
    count = _wrap_all_weights(clone, "diffusion_model.")
    log.info(
        "gradient through the model: %d diffusion-model weights are copied layer by layer on each pass "
        "(no second copy of the model is kept)",
        count,
    )
    return clone


def _grad_ready_control(control, done: dict):
    """A copy of a ControlNet chain whose every ControlNet copies its weights on use."""
    if control is None:
        return None
    if id(control) in done:
        return done[id(control)]
    wrapped = getattr(control, "control_model_wrapped", None)
    if wrapped is None:
        raise ValueError(
            f"gradient path 'through the model' does not support a {type(control).__name__} in the conditioning "
            "(only ControlNet); choose the 'clean estimate' gradient path, or remove that control"
        )
    twin = control.copy()
    twin.control_model_wrapped = wrapped.clone()
    _wrap_all_weights(twin.control_model_wrapped)
    twin.set_previous_controlnet(_grad_ready_control(control.previous_controlnet, done))
    done[id(control)] = twin
    return twin


def grad_ready_conditioning(conditioning: list) -> list:
    """The conditioning with each ControlNet replaced by a copy whose weights autograd can use."""
    done: dict = {}
    out = []
    for embedding, options in conditioning:
        options = dict(options)
        if options.get("control") is not None:
            options["control"] = _grad_ready_control(options["control"], done)
        out.append([embedding, options])
    return out
