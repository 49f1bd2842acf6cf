"""The mini designer as ComfyUI objects, built with ComfyUI's own classes.

ComfyUI's checkpoint loader detects models by their shape, and the mini designer's (a UNet of
64/128/256 channels with 384-wide cross-attention, a 384-wide CLIP text encoder, a small
autoencoder) matches none of its supported models. So the pieces are put together here the way
``comfy.sd.load_state_dict_guess_config`` puts a checkpoint together:

- MODEL: a supported-model config (:class:`MiniDesignerConfig`, a ``supported_models_base.BASE``
  whose UNet settings are read from the weights by ``model_detection.detect_unet_config``) gives
  a ``model_base.BaseModel`` (epsilon or v prediction as the file's metadata says, Stable
  Diffusion's noise schedule), in a
  ``ModelPatcher``;
- CLIP: ``comfy.sd.CLIP`` over a ``ClipTarget`` of ComfyUI's SD1 tokenizer (CLIP BPE, 77 tokens)
  and SD1 CLIP model with this text encoder's config;
- VAE: :class:`MiniVAE`, a ``comfy.sd.VAE`` around the mini autoencoder;
- CONTROL_NET: ``comfy.controlnet.load_controlnet_state_dict`` (the file is in the original layout).
"""

from __future__ import annotations

import functools
import logging

import comfy.controlnet
import comfy.latent_formats
import comfy.ldm.modules.attention
import comfy.model_base
import comfy.model_detection
import comfy.model_management
import comfy.model_patcher
import comfy.sd
import comfy.sd1_clip
import comfy.supported_models_base
import comfy.utils
import torch

from ..hierafash_core.mini.autoencoder import AutoencoderConfig, MiniAutoencoder
from ..hierafash_core.mini.files import AE_PREFIX, UNET_PREFIX, read_info
from ..hierafash_core.mini.text import TEXT_PREFIX
from ..hierafash_core.models.caption_summary import caption_summary

log = logging.getLogger(__name__)


class MiniLatentFormat(comfy.latent_formats.LatentFormat):
    """The autoencoder's latents are normalised already: no scale factor. Previews use the fitted RGB map."""

    scale_factor = 1.0
    latent_channels = 4

    def __init__(self, rgb_factors=None, rgb_bias=None):
        self.latent_rgb_factors = rgb_factors
        self.latent_rgb_factors_bias = rgb_bias


def comfy_attention_heads(unet: dict) -> dict:
    """ComfyUI's head settings (``num_heads``, ``num_head_channels``) for a diffusers UNet config.

    Weights do not say how attention splits into heads, so ComfyUI assumes 64 channels per head
    for a model it does not know, and so does its ControlNet loader for the pose file. Diffusers'
    ``attention_head_dim`` is the number of heads, one for all blocks or one per block: the mini
    designer's recipes give 64 channels per head in every block, which ComfyUI's assumption
    matches; files made with a fixed head count (8, before) get that count.

    Raises:
        ValueError: heads per block that are neither one count nor a fixed width per head.
    """
    heads = unet.get("num_attention_heads") or unet.get("attention_head_dim") or 8  # diffusers' default: 8
    channels = list(unet.get("block_out_channels", []))
    if isinstance(heads, (list, tuple)) and len(set(heads)) == 1:
        heads = heads[0]
    if isinstance(heads, int):
        return {"num_heads": heads, "num_head_channels": -1}
    if len(heads) != len(channels) or any(h < 1 or c % h for c, h in zip(channels, heads, strict=False)):
        raise ValueError(
            f"UNet attention heads {list(heads)} for block channels {channels}: give one head count per block "
            "that divides its channels; rebuild the mini designer with such a UNet config"
        )
    widths = {c // h for c, h in zip(channels, heads, strict=True)}
    if len(widths) != 1:
        raise ValueError(
            f"UNet attention heads {list(heads)} for block channels {channels}: ComfyUI needs one head count "
            f"for all blocks or one width per head (channels / heads), here {sorted(widths)}; rebuild the "
            "mini designer with such a UNet config"
        )
    return {"num_heads": -1, "num_head_channels": widths.pop()}


class MiniDesignerConfig(comfy.supported_models_base.BASE):
    """Supported-model config of the mini designer's UNet (matched only by this pack's loader)."""

    latent_format = MiniLatentFormat
    memory_usage_factor = 1.0
    text_encoder_key_prefix = ["cond_stage_model."]

    def __init__(self, unet_config: dict, info: dict):
        self.unet_extra_config = comfy_attention_heads(info["unet"])  # read by BASE.__init__
        super().__init__(unet_config)
        preview = info.get("latent_rgb", {})
        self.latent_format = MiniLatentFormat(preview.get("factors"), preview.get("bias"))
        self.info = info

    def get_model(self, state_dict, prefix="", device=None):
        return MiniModel(self, model_type=self.model_type(state_dict, prefix), device=device)

    def model_type(self, state_dict, prefix=""):
        # ComfyUI guesses v-prediction from tensors a checkpoint may carry; the mini file says it instead.
        prediction = self.info.get("scheduler", {}).get("prediction_type", "epsilon")
        return (
            comfy.model_base.ModelType.V_PREDICTION if prediction == "v_prediction" else comfy.model_base.ModelType.EPS
        )

    def clip_target(self, state_dict=None):
        width = int(self.info["text_encoder"]["hidden_size"])
        target = comfy.supported_models_base.ClipTarget(
            functools.partial(comfy.sd1_clip.SD1Tokenizer, tokenizer=functools.partial(_Tokenizer, width=width)),
            comfy.sd1_clip.SD1ClipModel,
        )
        config = {k: v for k, v in self.info["text_encoder"].items() if not k.startswith("_")}
        target.params = {
            "clip_model": comfy.sd1_clip.SDClipModel,
            "textmodel_json_config": config,
            "layer": "last",  # the final layer norm's output, what the UNet was trained on
            "return_projected_pooled": False,
        }
        return target


class MiniModel(comfy.model_base.BaseModel):
    """``BaseModel`` whose ``y`` input (for a UNet with a ``label_emb``) is the caption summary.

    The mini designer's UNet adds the mean of its text states to the timestep embedding
    (``hierafash_core/models/caption_summary.py``); ComfyUI hands ``encode_adm`` the conditioning's
    ``cross_attn``, so every CLIPTextEncode, ConceptEncode or staged conditioning, and the empty
    negative, gets its own summary here, as in training. ControlNets receive the same ``y``.
    """

    def encode_adm(self, **kwargs):
        if not self.adm_channels:
            return None
        cross_attn = kwargs.get("cross_attn")
        if cross_attn is None:
            return None
        if cross_attn.shape[-1] != self.adm_channels:  # stock samplers would fail deep in a matmul
            raise ValueError(
                f"conditioning: text embeddings {cross_attn.shape[-1]} wide, but the mini designer takes "
                f"{self.adm_channels}; encode the text with the CLIP output of MiniDesignerLoader"
            )
        return caption_summary(cross_attn)


class _Tokenizer(comfy.sd1_clip.SDTokenizer):
    """ComfyUI's SD1 tokenizer (CLIP BPE, 77 tokens padded with the end token) for a narrower encoder."""

    def __init__(self, embedding_directory=None, tokenizer_data=None, width: int = 384):
        super().__init__(
            embedding_directory=embedding_directory,
            embedding_size=width,
            embedding_key="clip_l",
            tokenizer_data=tokenizer_data or {},
        )


class MiniVAE(comfy.sd.VAE):
    """``comfy.sd.VAE`` around :class:`MiniAutoencoder` (8x down, 4 normalised latent channels).

    ``comfy.sd.VAE.__init__`` picks the autoencoder class from key names and knows no small
    custom one, so this sets the attributes that ``__init__`` sets, with the values of an SD-style
    8x image autoencoder; the encode/decode (tiled or not) and memory logic are ComfyUI's own.
    ``tests/test_mini_designer_comfy.py`` checks that a VAE built by ComfyUI has no attribute this
    one lacks, so a ComfyUI update that adds one is caught.
    """

    def __init__(self, autoencoder: MiniAutoencoder):  # comfy.sd.VAE.__init__ is not called (see above)
        self.memory_used_encode = lambda shape, dtype: (
            600 * shape[2] * shape[3] * comfy.model_management.dtype_size(dtype)
        )
        self.memory_used_decode = lambda shape, dtype: (
            600 * shape[2] * shape[3] * 64 * comfy.model_management.dtype_size(dtype)
        )
        self.downscale_ratio = self.upscale_ratio = 8
        self.latent_channels = autoencoder.config.latent_channels
        self.latent_dim = 2
        self.output_channels = 3
        self.process_input = lambda image: image * 2.0 - 1.0
        self.process_output = lambda image: torch.clamp((image + 1.0) / 2.0, min=0.0, max=1.0)
        self.working_dtypes = [torch.float32]
        self.disable_offload = False
        self.not_video = False
        self.size = None
        self.downscale_index_formula = None
        self.upscale_index_formula = None
        self.extra_1d_channel = None
        self.crop_input = True
        self.first_stage_model = autoencoder.eval().requires_grad_(False)
        self.device = comfy.model_management.vae_device()
        self.vae_dtype = comfy.model_management.vae_dtype(self.device, self.working_dtypes)
        self.first_stage_model.to(self.vae_dtype)
        self.output_device = comfy.model_management.intermediate_device()
        self.patcher = comfy.model_patcher.ModelPatcher(
            self.first_stage_model, load_device=self.device, offload_device=comfy.model_management.vae_offload_device()
        )
        self.model_size()


def load_checkpoint(path: str):
    """(MODEL patcher, CLIP, VAE) from a mini designer checkpoint file.

    Raises:
        ValueError: the file is not a mini designer checkpoint, or its parts do not load.
    """
    info = read_info(path)  # refuses other files with a message naming the build command
    sd = comfy.utils.load_torch_file(path, safe_load=True)
    unet_config = comfy.model_detection.detect_unet_config(sd, UNET_PREFIX)
    if unet_config is None:
        raise ValueError(f"{path}: no UNet under {UNET_PREFIX}")
    model_config = MiniDesignerConfig(unet_config, info)

    load_device = comfy.model_management.get_torch_device()
    parameters = comfy.utils.calculate_parameters(sd, UNET_PREFIX)
    unet_dtype = comfy.model_management.unet_dtype(
        model_params=parameters, supported_dtypes=list(model_config.supported_inference_dtypes)
    )
    manual_cast = comfy.model_management.unet_manual_cast(
        unet_dtype, load_device, model_config.supported_inference_dtypes
    )
    model_config.set_inference_dtype(unet_dtype, manual_cast)
    model = model_config.get_model(
        sd, UNET_PREFIX, device=comfy.model_management.unet_inital_load_device(parameters, unet_dtype)
    )
    model.load_model_weights(sd, UNET_PREFIX)
    patcher = comfy.model_patcher.ModelPatcher(
        model, load_device=load_device, offload_device=comfy.model_management.unet_offload_device()
    )

    clip_sd = {"clip_l.transformer." + k[len(TEXT_PREFIX) :]: v for k, v in sd.items() if k.startswith(TEXT_PREFIX)}
    clip = comfy.sd.CLIP(
        model_config.clip_target(), tokenizer_data={}, parameters=comfy.utils.calculate_parameters(clip_sd)
    )
    missing, _ = clip.load_sd(clip_sd, full_model=True)
    missing = [k for k in missing if not k.endswith(("logit_scale", "position_ids"))]
    if missing:
        raise ValueError(f"{path}: the text encoder lacks {len(missing)} tensors (e.g. {missing[0]})")

    ae = MiniAutoencoder(AutoencoderConfig(**info["autoencoder"]))
    ae.load_state_dict({k[len(AE_PREFIX) :]: v.float() for k, v in sd.items() if k.startswith(AE_PREFIX)}, strict=True)
    return patcher, clip, MiniVAE(ae)


class _DropNoMatch(logging.Filter):
    """Drops ComfyUI's "no match {config}" error, logged when a ControlNet fits none of its known models.

    The mini designer's never does, and ComfyUI then builds it from the detected config as it
    should; the ERROR line would read as a failed load.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("no match {")


def load_pose_controlnet(path: str, heads: dict | None = None):
    """The pose ControlNet file as a ComfyUI CONTROL_NET (``comfy.controlnet.ControlNet``).

    ``heads`` (from :func:`comfy_attention_heads` of the checkpoint's UNet config) sets how its
    attention splits into heads: ComfyUI's loader assumes 64 channels per head, which files made
    with another split (8 heads, before) do not have.

    Raises:
        ValueError: the file holds no ControlNet.
    """
    quiet = _DropNoMatch()
    logging.getLogger().addFilter(quiet)
    try:
        control = comfy.controlnet.load_controlnet(path)
    finally:
        logging.getLogger().removeFilter(quiet)
    if control is None:
        raise ValueError(f"{path}: no ControlNet weights (control_model.*) in the file")
    if heads is not None:
        for module in control.control_model.modules():
            if isinstance(module, comfy.ldm.modules.attention.CrossAttention):
                width = module.to_q.weight.shape[0]  # heads x channels per head
                module.heads = heads["num_heads"] if heads["num_heads"] > 0 else width // heads["num_head_channels"]
    return control
