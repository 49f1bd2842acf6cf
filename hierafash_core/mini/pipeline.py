"""The mini designer without ComfyUI: text, pose, a staged and pose-controlled denoiser, drafts.

The denoiser follows the k-diffusion contract the editing loop uses, ``D = denoise(x, sigma)``:
for a UNet trained on the DDPM schedule ``alpha_bar_t`` (so that sigma^2 = (1 - alpha_bar) / alpha_bar),

    z_t = x / sqrt(1 + sigma^2),  t = the whole timestep nearest sigma (as ComfyUI takes it),
    out = out_u + cfg * (out_c - out_u),
    D(x, sigma) = x - sigma * out                          (epsilon prediction), or
    D(x, sigma) = (z_t - sigma * out) / sqrt(1 + sigma^2)  (v prediction: x0 = sqrt(a) z_t - sqrt(1 - a) v),

where out_c sees the staged caption of t (the fields :meth:`PromptSchedule.fields_at` allows) and
out_u the empty caption, both with the pose ControlNet's residuals (as ComfyUI applies a ControlNet
to the positive and the negative). A flat caption (all ten fields at every step, the baseline of
the evaluation) is the same denoiser with ``staged=False``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..models.caption_summary import summary_kwargs
from ..prompt import HierarchicalPrompt
from ..schedule import PromptSchedule, timestep_sigmas
from .files import MiniDesignerFiles, load_controlnet, load_parts

log = logging.getLogger(__name__)


def normal_sigmas(steps: int, sigma_table: torch.Tensor) -> torch.Tensor:
    """``steps + 1`` sigmas, timesteps evenly spaced from 999 to 0 (ComfyUI's ``normal``), then 0."""
    if steps < 1:
        raise ValueError(f"steps={steps}: must be at least 1")
    t = torch.linspace(len(sigma_table) - 1, 0, steps, dtype=torch.float64)
    logs = sigma_table.double().log()
    lo = t.floor().long()
    hi = (lo + 1).clamp(max=len(sigma_table) - 1)
    w = t - lo
    sig = ((1 - w) * logs[lo] + w * logs[hi]).exp()
    return torch.cat([sig, sig.new_zeros(1)]).float()


@dataclass
class MiniDesigner:
    """The built model, loaded for headless use (float32, CPU by default).

    Build with :meth:`load`. ``unet``, ``controlnet``: diffusers modules; ``text_encoder`` and
    ``tokenizer``: CLIP text; ``autoencoder``: :class:`.autoencoder.MiniAutoencoder`.
    """

    unet: torch.nn.Module
    controlnet: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: object
    autoencoder: torch.nn.Module
    info: dict
    device: torch.device = torch.device("cpu")

    @classmethod
    def load(cls, files: MiniDesignerFiles | None = None, device: str | torch.device = "cpu") -> MiniDesigner:
        """Load the files (by default the built ones; see :func:`..mini.mini_designer_files`).

        Raises:
            FileNotFoundError: the files are not built (the message says how to build them).
        """
        from ..training.models import load_tokenizer

        files = files or MiniDesignerFiles.in_folder()
        if not files.checkpoint.is_file() or not files.controlnet.is_file():
            raise FileNotFoundError(
                f"the mini designer is not built in {files.folder}; run `hierafash mini-designer build` "
                "(about an hour on 2 CPU cores)"
            )
        unet, text, ae, info = load_parts(files.checkpoint)
        controlnet = load_controlnet(files.controlnet, unet)
        device = torch.device(device)
        model = cls(unet, controlnet, text, load_tokenizer(None, files.checkpoint), ae, info, device)
        for part in (unet, controlnet, text, ae):
            part.to(device)
        return model

    # -- parts -----------------------------------------------------------------------------------
    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels the model was trained at."""
        w, h = self.info.get("image_size", (128, 192))
        return int(w), int(h)

    @property
    def latent_shape(self) -> tuple[int, int]:
        """(h, w) of the latent grid (the image size / 8)."""
        w, h = self.size
        return h // 8, w // 8

    @property
    def schedule(self) -> PromptSchedule:
        return PromptSchedule.parse(self.info.get("prompt_schedule", "paper"))

    @property
    def prediction(self) -> str:
        """What the UNet predicts: ``epsilon`` or ``v_prediction`` (the recipe's choice, in the file's metadata)."""
        return str(self.info.get("scheduler", {}).get("prediction_type", "epsilon"))

    @property
    def sigma_table(self) -> torch.Tensor:
        s = self.info.get("scheduler", {})
        from ..schedule import sd_alphas_cumprod

        ac = sd_alphas_cumprod(
            s.get("beta_start", 0.00085), s.get("beta_end", 0.012), s.get("num_train_timesteps", 1000)
        )
        return timestep_sigmas(ac).float()

    @torch.no_grad()
    def encode_text(self, captions: Sequence[str]) -> torch.Tensor:
        """Captions -> (B, 77, width) text states (the same tokens ComfyUI's CLIPTextEncode gives it)."""
        from .text import encode_captions

        return encode_captions(self.text_encoder, self.tokenizer, list(captions)).to(self.device)

    def pose_image(self, keypoints: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(18, 3) or (B, 18, 3) OpenPose-18 keypoints in image pixels -> (B, 3, H, W) drawings in [0, 1]."""
        from ..pose.render import render_openpose  # the drawing the trainer and the pose nodes make

        kp = torch.as_tensor(np.asarray(keypoints.cpu() if isinstance(keypoints, torch.Tensor) else keypoints))
        if kp.ndim == 2:
            kp = kp[None]
        if kp.ndim != 3 or tuple(kp.shape[1:]) != (18, 3):
            raise ValueError(f"keypoints: expected (18, 3) or (B, 18, 3) OpenPose-18 points, got {tuple(kp.shape)}")
        w, h = self.size
        return render_openpose(kp.float(), (h, w)).to(self.device)  # (B, 3, H, W) in [0, 1]

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 4, H/8, W/8) latents."""
        return self.autoencoder.encode(images.to(self.device) * 2 - 1)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, 4, h, w) latents -> (B, 3, 8h, 8w) images in [0, 1]."""
        return ((self.autoencoder.decode(latents.to(self.device)) + 1) / 2).clamp(0, 1)

    # -- the denoiser ----------------------------------------------------------------------------
    def denoiser(
        self,
        prompts: Sequence[HierarchicalPrompt | str],
        pose: torch.Tensor | None,
        *,
        cfg: float = 4.0,
        staged: bool = True,
        control_strength: float = 1.0,
        negative: str | Sequence[HierarchicalPrompt | str] = "",
    ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``D = denoise(x, sigma)`` for a batch: one prompt and one pose drawing per latent.

        Args:
            prompts: a :class:`HierarchicalPrompt` per latent (staged as the model was trained),
                or a plain caption string (used at every step).
            pose: (B, 3, H, W) pose drawings in [0, 1] (see :meth:`pose_image`), or None for no control.
            cfg: classifier-free guidance scale (1 = no negative pass).
            staged: False shows every prompt's whole caption at every step (the flat baseline).
            negative: the caption guided away from: one string for all, or one prompt per latent,
                staged as ``prompts`` are (an edit's source design, so guidance amplifies only what
                the changed attribute adds).
        """
        if isinstance(negative, HierarchicalPrompt):
            negative = [negative]
        if not isinstance(negative, str) and (
            not isinstance(negative, Sequence)
            or not negative
            or not all(isinstance(p, (str, HierarchicalPrompt)) for p in negative)
        ):
            raise ValueError(
                f"negative={negative!r}: give a caption string, a HierarchicalPrompt, or a list with one per latent"
            )
        schedule = self.schedule
        log_sigmas = self.sigma_table.double().log()
        v_prediction = self.prediction == "v_prediction"
        cache: dict[str, torch.Tensor] = {}

        @torch.no_grad()
        def states(captions: list[str]) -> torch.Tensor:
            todo = sorted(set(captions) - set(cache))
            if todo:
                cache.update(zip(todo, self.encode_text(todo), strict=True))
            return torch.stack([cache[c] for c in captions])

        def caption_at(p, t: float) -> str:
            if isinstance(p, str):
                return p
            return schedule.caption_at(p, t) if staged else p.caption()

        # No no_grad here: the edit loop's guidance "through the model" differentiates this function
        # with respect to x (the weights never need gradients). Callers that sample run under no_grad.
        def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            b = x.shape[0]
            if len(prompts) not in (1, b):
                raise ValueError(f"{len(prompts)} prompts for a batch of {b} latents; give one, or one per latent")
            s = sigma.view(-1, 1, 1, 1).to(x)
            z = x / (1 + s**2).sqrt()
            # The nearest whole timestep, as ComfyUI's discrete model sampling takes it.
            t = (sigma.double().log().cpu().view(-1, 1) - log_sigmas.view(1, -1)).abs().argmin(dim=1).to(x.device)
            ps = list(prompts) * (b if len(prompts) == 1 else 1)
            cond = states([caption_at(p, float(tt)) for p, tt in zip(ps, t.tolist(), strict=True)])
            if cfg != 1.0:
                z_in, t_in = torch.cat([z, z]), torch.cat([t, t])
                if isinstance(negative, str):
                    uncond = states([negative] * b)
                else:
                    if len(negative) not in (1, b):
                        raise ValueError(
                            f"negative: {len(negative)} prompts for a batch of {b} latents; give one or one each"
                        )
                    ns = list(negative) * (b if len(negative) == 1 else 1)
                    uncond = states([caption_at(p, float(tt)) for p, tt in zip(ns, t.tolist(), strict=True)])
                ctx = torch.cat([uncond, cond])
            else:
                z_in, t_in, ctx = z, t, cond
            kwargs = summary_kwargs(self.unet, ctx)
            if pose is not None and control_strength != 0:
                hint = pose.to(x) if pose.shape[0] == b else pose.to(x).expand(b, -1, -1, -1)
                hint = torch.cat([hint, hint]) if cfg != 1.0 else hint
                down, mid = self.controlnet(z_in, t_in, encoder_hidden_states=ctx, controlnet_cond=hint,
                                            conditioning_scale=control_strength, return_dict=False,
                                            **kwargs)  # fmt: skip
                kwargs.update(down_block_additional_residuals=down, mid_block_additional_residual=mid)
            eps = self.unet(z_in, t_in, encoder_hidden_states=ctx, **kwargs).sample
            if cfg != 1.0:
                eps_u, eps_c = eps.chunk(2)
                eps = eps_u + cfg * (eps_c - eps_u)
            if v_prediction:  # here "eps" is the predicted velocity
                return (z - s * eps) / (1 + s**2).sqrt()
            return x - s * eps

        return denoise

    # -- drafts ----------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        denoise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        batch: int,
        *,
        steps: int = 20,
        seed: int = 0,
        noise: torch.Tensor | None = None,
        callback: Callable[[int, int], None] | None = None,
    ) -> torch.Tensor:
        """A draft from full noise with the Euler step (DDIM with eta 0): (B, 4, h, w) latents.

        ``noise`` (B, 4, h, w) standard Gaussian replaces the one drawn from ``seed``.
        """
        if noise is None:
            noise = torch.randn((batch, 4, *self.latent_shape), generator=torch.Generator().manual_seed(seed))
        if noise.shape != (batch, 4, *self.latent_shape):
            raise ValueError(f"noise of shape {tuple(noise.shape)}; expected {(batch, 4, *self.latent_shape)}")
        sigmas = normal_sigmas(steps, self.sigma_table).to(self.device)
        x = noise.to(self.device) * sigmas[0]
        s_in = x.new_ones(batch)
        for i in range(steps):
            d = denoise(x, sigmas[i] * s_in)
            x = x + (x - d) / sigmas[i] * (sigmas[i + 1] - sigmas[i])  # Euler in k-diffusion form
            if callback is not None:
                callback(i + 1, steps)
        return x
