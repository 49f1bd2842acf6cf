"""A diffusers UNet as a denoiser in k-diffusion form, so the edit loop runs without ComfyUI.

For an epsilon-prediction UNet trained on the DDPM schedule ``alpha_bar_t``, the k-diffusion
latent at level sigma is ``x = z_t / sqrt(alpha_bar_t)`` with ``sigma = sqrt((1 - a) / a)``, so

    z_t = x / sqrt(1 + sigma^2),   t = timestep_of(sigma),   D(x, sigma) = x - sigma * eps(z_t, t)

Classifier-free guidance combines the conditional and unconditional noise predictions with
``cfg`` in one batched call, as ComfyUI does.
"""

from __future__ import annotations

import torch

from ..schedule import timestep_sigmas


class DiffusersDenoiser:
    """``D = denoiser(x, sigma)`` from a diffusers ``UNet2DConditionModel`` (epsilon prediction).

    Args:
        unet: the UNet; called as ``unet(z, t, encoder_hidden_states=...).sample``.
        cond: (B or 1, L, C) text embeddings of the prompt.
        uncond: (B or 1, L, C) embeddings of the negative prompt; None with ``cfg == 1``.
        cfg: classifier-free guidance scale.
        alphas_cumprod: (1000,) the UNet's training schedule; SD's scaled-linear one by default.
    """

    def __init__(
        self,
        unet: torch.nn.Module,
        cond: torch.Tensor,
        uncond: torch.Tensor | None = None,
        cfg: float = 1.0,
        alphas_cumprod: torch.Tensor | None = None,
    ):
        if cfg != 1.0 and uncond is None:
            raise ValueError(f"cfg={cfg} needs the negative embeddings (uncond); give them or use cfg=1")
        self.unet = unet
        self.cond, self.uncond, self.cfg = cond, uncond, float(cfg)
        self.log_sigmas = timestep_sigmas(alphas_cumprod).log().float()  # (1000,), increasing

    @property
    def sigma_table(self) -> torch.Tensor:
        """The sigma of each DDPM timestep, (1000,), for :func:`..starts.resolve_start`."""
        return self.log_sigmas.exp()

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """Continuous timestep of each sigma, (B,), by interpolation in log sigma."""
        logs = self.log_sigmas.to(sigma.device)
        ls = sigma.float().clamp_min(1e-10).log().clamp(logs[0], logs[-1])
        hi = torch.searchsorted(logs, ls).clamp(1, len(logs) - 1)
        lo = hi - 1
        w = (ls - logs[lo]) / (logs[hi] - logs[lo])
        return lo.float() + w

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        s = sigma.view(-1, *([1] * (x.ndim - 1)))  # (B,) -> (B, 1, 1, 1)
        z = x / (1 + s**2).sqrt()
        t = self.timestep(sigma)
        dtype = next(self.unet.parameters()).dtype
        if self.cfg == 1.0:
            eps = self.unet(z.to(dtype), t, encoder_hidden_states=self.cond.expand(b, -1, -1).to(dtype)).sample
        else:
            context = torch.cat([self.uncond.expand(b, -1, -1), self.cond.expand(b, -1, -1)]).to(dtype)
            out = self.unet(torch.cat([z, z]).to(dtype), torch.cat([t, t]), encoder_hidden_states=context).sample
            eps_uncond, eps_cond = out.chunk(2)
            eps = eps_uncond + self.cfg * (eps_cond - eps_uncond)
        return x - s * eps.to(x.dtype)
