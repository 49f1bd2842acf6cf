"""The mini designer's text encoder: a small CLIP text transformer over CLIP's BPE tokenizer, frozen.

No pretrained text encoder exists offline. A closed caption vocabulary does not need one: a
seeded random transformer (384 wide, two layers, CLIP's own layout and tokenizer, 77 tokens
padded with the end token as ComfyUI's SD1 tokenizer does) gives every caption a distinct
sequence of states, and the UNet's cross-attention learns to read them. Its weights never train,
so the same seed gives the same encoder; they are stored with the model all the same, so the
model file is complete on its own.

Causal attention carries each field's words into the tokens after it ("Long" in "Long Sleeve"
reaches the "Sleeve" token), which is how a value shared by two fields ("Long Dress", "Long
Sleeve") stays apart.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .paths import CONFIG_DIR

TEXT_PREFIX = "cond_stage_model.transformer."


def text_config(path: str | Path | None = None) -> dict:
    """The CLIPTextConfig settings (``configs/mini-designer/text_encoder.json`` by default)."""
    data = json.loads(Path(path or CONFIG_DIR / "text_encoder.json").read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if not k.startswith("_")}


@torch.no_grad()
def build_text_encoder(seed: int, config: dict | None = None, token_scale: float = 1.0):
    """A seeded random ``CLIPTextModel`` (float32, eval mode, no gradients).

    Args:
        token_scale: multiplies the token embeddings after initialisation. CLIP initialises token
            and position embeddings with the same spread, so in a random encoder a word's identity
            is only part of its state; scaled up, a caption that differs in one word differs at
            that word almost completely (measured with 6: 0.6-0.95 of the state's size at the most
            changed token, against 0.24-0.66 with 1), which the UNet then reads more easily.
    """
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    model = CLIPTextModel(CLIPTextConfig(**(config or text_config())))
    model.get_input_embeddings().weight.mul_(float(token_scale))
    model.requires_grad_(False)
    return model.eval()


def _sd1_name(key: str) -> str:
    # transformers 5 names the CLIPTextModel's tensors without the "text_model." level that
    # transformers 4, SD1 checkpoints and ComfyUI use; files always carry it.
    return key if key.startswith(("text_model.", "text_projection")) else "text_model." + key


def text_state_for_file(model) -> dict[str, torch.Tensor]:
    """The encoder's tensors under ComfyUI's SD1 names (``cond_stage_model.transformer.*``).

    ComfyUI's CLIP text model also has a ``text_projection`` (used only for the pooled output,
    which this model's UNet never reads); the identity is stored for it.
    """
    out = {TEXT_PREFIX + _sd1_name(k): v for k, v in model.state_dict().items() if not k.endswith("position_ids")}
    width = model.config.hidden_size
    out[TEXT_PREFIX + "text_projection.weight"] = torch.eye(width)
    return out


def text_encoder_from_state(state: dict[str, torch.Tensor], config: dict):
    """Rebuild the ``CLIPTextModel`` from :func:`text_state_for_file` tensors (float32).

    Raises:
        ValueError: tensors missing for this config.
    """
    from transformers import CLIPTextConfig, CLIPTextModel

    model = CLIPTextModel(CLIPTextConfig(**config))
    own = [k for k in model.state_dict() if not k.endswith("position_ids")]
    missing = sorted(k for k in own if TEXT_PREFIX + _sd1_name(k) not in state)
    if missing:
        raise ValueError(f"the text encoder lacks {len(missing)} tensors (e.g. {missing[0]})")
    model.load_state_dict({k: state[TEXT_PREFIX + _sd1_name(k)].float() for k in own}, strict=False)
    model.requires_grad_(False)
    return model.eval()


@torch.no_grad()
def encode_captions(model, tokenizer, captions: list[str]) -> torch.Tensor:
    """Captions -> (B, 77, width) last hidden states (final layer norm applied), padded with the end token."""
    max_length = int(model.config.max_position_embeddings)
    ids = tokenizer(captions, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")
    device = next(model.parameters()).device
    return model(ids.input_ids.to(device))[0].float()


def separation(states_a: torch.Tensor, states_b: torch.Tensor) -> torch.Tensor:
    """Relative distance ||a - b|| / ||a|| per caption pair, over the whole (tokens, width) sequence; (B,)."""
    a, b = states_a.flatten(1), states_b.flatten(1)
    return (a - b).norm(dim=1) / a.norm(dim=1).clamp_min(1e-8)
