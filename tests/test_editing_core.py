"""The editing core alone (no ComfyUI): start mapping, masks, step rules, guidance, inversion, the loop.

The loop is exercised with an analytic denoiser: data that is Gaussian per latent value,
N(mu, 1), has the exact clean estimate D(x, sigma) = (x + sigma^2 mu) / (1 + sigma^2). Its noise
prediction depends strongly on x, so inversion and guidance are tested where they are not trivial.
The same properties on the real test model inside ComfyUI are in test_editing_node.py.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import torch

from hierafash_core.editing import (
    ATTRIBUTE_START_T,
    EditConfig,
    GradientPath,
    GuidanceConfig,
    blend,
    ddim_invert,
    guided_denoise,
    keep_loss,
    latent_mask,
    make_stepper,
    paste_back,
    resolve_start,
    run_edit,
)
from hierafash_core.schedule import sigma_at, timestep_sigmas

TABLE = timestep_sigmas().float()  # SD's sigma per DDPM timestep, (1000,)


def released_ddim_sigmas() -> torch.Tensor:
    """The released code's schedule: 100 DDIM steps at t = 991, 981, ..., 1, then sigma 0."""
    return torch.tensor([sigma_at(t, TABLE) for t in range(991, 0, -10)] + [0.0])


def normal_sigmas(steps: int) -> torch.Tensor:
    """Evenly spaced timesteps from 999 to 0 (ComfyUI's 'normal' for SD), then sigma 0."""
    ts = torch.linspace(999, 0, steps)
    return torch.tensor([sigma_at(float(t), TABLE) for t in ts] + [0.0])


class GaussianData:
    """Exact denoiser for data N(mu, 1) per value: D(x, sigma) = (x + sigma^2 mu) / (1 + sigma^2)."""

    def __init__(self, mu: torch.Tensor):
        self.mu = mu
        self.calls = 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        s2 = sigma.view(-1, 1, 1, 1) ** 2
        return (x + s2 * self.mu) / (1 + s2)


@pytest.fixture
def scene():
    """A source latent (1, 4, 16, 16), a model whose data mean differs from it, a square mask."""
    g = torch.Generator().manual_seed(0)
    source = torch.randn(1, 4, 16, 16, generator=g)
    mu = torch.full_like(source, 1.5)
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1.0
    noise = torch.randn(source.shape, generator=g)
    sigmas = normal_sigmas(20)
    start = resolve_start(sigmas, TABLE, attribute="sleeve_length")
    return source, GaussianData(mu), mask, noise, sigmas[start.step :]


# -- where an edit starts ---------------------------------------------------------------------------
def test_paper_starts_land_on_the_released_steps():
    sigmas = released_ddim_sigmas()
    assert ATTRIBUTE_START_T == {
        "clothing_length": 911,
        "sleeve_length": 831,
        "sleeve_type": 751,
        "collar": 671,
        "hem": 591,
    }
    for j, key in enumerate(ATTRIBUTE_START_T, start=1):
        start = resolve_start(sigmas, TABLE, attribute=key)
        assert start.step == 8 * j  # t = 991 - 80 j is the (8 j)-th DDIM step
        assert start.timestep == pytest.approx(991 - 80 * j, abs=1e-3)
    assert resolve_start(sigmas, TABLE, attribute="A3").step == 24


@pytest.mark.parametrize("steps", [7, 20, 33])
def test_start_is_the_first_step_at_or_below_the_level(steps):
    sigmas = normal_sigmas(steps)
    level = sigma_at(831, TABLE)
    start = resolve_start(sigmas, TABLE, attribute="A2")
    assert start.sigma <= level * (1 + 1e-4)
    assert start.step == 0 or float(sigmas[start.step - 1]) > level
    assert start.timestep <= 831.01


def test_explicit_starts_and_their_errors():
    sigmas = normal_sigmas(10)
    assert resolve_start(sigmas, TABLE, step=3).step == 3
    assert resolve_start(sigmas, TABLE, timestep=999).step == 0
    with pytest.raises(ValueError, match=r"start step=10 is outside the run of 10 steps; use 0\.\.9"):
        resolve_start(sigmas, TABLE, step=10)
    with pytest.raises(ValueError, match=r"start timestep=1200 is outside 0\.\.999"):
        resolve_start(sigmas, TABLE, timestep=1200)
    coarse = torch.tensor([sigma_at(t, TABLE) for t in (999, 700, 400, 100)] + [0.0])  # stops short of t=0
    with pytest.raises(ValueError, match="lies after the last step of this 4-step schedule"):
        resolve_start(coarse, TABLE, timestep=50)
    with pytest.raises(ValueError, match="give exactly one of attribute, timestep or step"):
        resolve_start(sigmas, TABLE, step=1, timestep=500)
    with pytest.raises(ValueError, match="is a concept, not an attribute"):
        resolve_start(sigmas, TABLE, attribute="style")


# -- masks ------------------------------------------------------------------------------------------
def test_mask_checks_say_what_is_wrong(caplog):
    shape = (2, 4, 8, 8)
    with pytest.raises(ValueError, match=r"the mask is empty \(all zeros\), so there is nothing to edit"):
        latent_mask(torch.zeros(1, 1, 64, 64), shape)
    half = torch.zeros(2, 1, 64, 64)
    half[0, :, :8, :8] = 1
    with pytest.raises(ValueError, match="mask 1 of the batch is empty"):
        latent_mask(half, shape)
    with pytest.raises(ValueError, match="3 masks for a batch of 2 latents; give one mask"):
        latent_mask(torch.ones(3, 1, 64, 64), shape)
    with caplog.at_level(logging.WARNING):
        full = latent_mask(torch.ones(1, 1, 64, 64), shape)
    assert full.shape == (2, 1, 8, 8)
    assert "covers the whole latent: this edit is a regeneration" in caplog.text


def test_mask_of_another_size_is_resized_and_logged(caplog):
    mask = torch.zeros(1, 1, 20, 20)
    mask[..., 5:15, 5:15] = 1
    with caplog.at_level(logging.INFO):
        out = latent_mask(mask, (1, 4, 8, 8))
    assert out.shape == (1, 1, 8, 8)
    assert "mask of 20x20 resized to the 8x8 latent grid" in caplog.text
    assert 0 < float(out.mean()) < 1
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        latent_mask(torch.ones(1, 1, 16, 64), (1, 4, 8, 8))
    assert "aspect ratio" in caplog.text


def test_image_size_mask_is_area_averaged():
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., :, :20] = 1  # 20 px = 2.5 latent cells
    out = latent_mask(mask, (1, 4, 8, 8))[0, 0, 0]
    assert out[:2].tolist() == [1.0, 1.0]
    assert out[2].item() == pytest.approx(0.5)
    assert out[3:].abs().max().item() == 0


def test_blend_is_exact_outside_the_mask():
    g = torch.Generator().manual_seed(1)
    x, ref = torch.randn(2, 1, 4, 8, 8, generator=g)
    m = torch.rand(1, 1, 8, 8, generator=g)
    m[..., :4] = 0
    out = blend(x, ref, m)
    assert torch.equal(out[..., :4], ref[..., :4])
    assert torch.allclose(out, ref + m * (x - ref), atol=1e-6)


# -- step rules -------------------------------------------------------------------------------------
def test_step_rules():
    x = torch.randn(1, 4, 4, 4)
    d = torch.randn(1, 4, 4, 4)
    assert torch.equal(make_stepper("euler").step(x, d, 2.0, 0.0), d)
    a, b = make_stepper("euler_ancestral", seed=5), make_stepper("euler_ancestral", seed=5)
    assert torch.equal(a.step(x, d, 2.0, 1.0), b.step(x, d, 2.0, 1.0))
    assert not torch.equal(a.step(x, d, 2.0, 1.0), make_stepper("euler").step(x, d, 2.0, 1.0))
    with pytest.raises(ValueError, match="sampler='heun' is not supported by the edit loop; use one of euler"):
        make_stepper("heun")


# -- guidance ---------------------------------------------------------------------------------------
def test_guidance_config_refuses_bad_values():
    with pytest.raises(ValueError, match=r"guidance weight=2.0: use 0 <= weight < 2 \(1 is a full correction"):
        GuidanceConfig(weight=2.0)
    with pytest.raises(ValueError, match=r"guidance iterations=9: use 1\.\.8"):
        GuidanceConfig(iterations=9)
    with pytest.raises(ValueError, match="is reversed"):
        GuidanceConfig(start=0.6, end=0.2)
    with pytest.raises(ValueError, match="mode='paint' is not one of 'blend', 'guide', 'both'"):
        EditConfig(mode="paint")
    assert GuidanceConfig(weight=1.5, path="through the model").path is GradientPath.THROUGH_MODEL


@pytest.mark.parametrize("path", list(GradientPath))
def test_guidance_runs_under_inference_mode_and_lowers_the_loss(scene, path):
    source, model, mask, noise, sigmas = scene
    with torch.inference_mode():  # the host's mode: every input is an inference tensor
        x = source + 3.0 * noise
        sigma = torch.full((1,), 3.0)
        config = GuidanceConfig(weight=0.8, path=path, iterations=2)
        step = guided_denoise(model, x, sigma, source, 1 - mask, config)
        moved = float(keep_loss(model(step.x, sigma), source, 1 - mask).sum())  # the model's own verdict
    if path is GradientPath.CLEAN_ESTIMATE:
        # two updates, each removing 80% of the error under the held eps; the true model moves less
        assert step.loss_after < 0.1 * step.loss_before
        assert moved < step.loss_before
    else:
        # this model's Jacobian is 0.1 I at sigma 3: the full step would move x by 10x the error, so
        # the cap (one sigma RMS per update) binds; the loss still falls by more than half
        assert moved < 0.5 * step.loss_before
    assert step.x.shape == x.shape
    inside = mask.bool().expand_as(x)
    if path is GradientPath.CLEAN_ESTIMATE:  # dD/dx = I with eps held: nothing moves inside the mask
        assert torch.equal(step.x[inside], x[inside])


# -- the loop ---------------------------------------------------------------------------------------
def test_blend_keeps_the_outside_exactly_and_changes_the_inside(scene):
    source, model, mask, noise, sigmas = scene
    result = run_edit(model, sigmas, source, mask, noise, EditConfig(mode="blend"))
    outside = (1 - mask).bool().expand_as(source)
    assert torch.equal(result.latent[outside], source[outside])
    assert (result.latent - source)[~outside].abs().mean() > 0.3


@pytest.mark.parametrize("path", list(GradientPath))
def test_guidance_alone_halves_the_distance_outside(scene, path):
    source, model, mask, noise, sigmas = scene
    keep = 1 - mask
    plain = run_edit(model, sigmas, source, mask, noise, EditConfig(mode="guide", guidance=GuidanceConfig(weight=0)))
    guided = run_edit(
        model, sigmas, source, mask, noise, EditConfig(mode="guide", guidance=GuidanceConfig(weight=1.0, path=path))
    )
    before = (keep * (plain.latent - source)).norm()
    after = (keep * (guided.latent - source)).norm()
    assert after <= 0.5 * before, f"{path.value}: outside distance {before:.4g} -> {after:.4g}"
    first, last = guided.guidance_losses[0], guided.guidance_losses[-1]
    assert last[1] < 0.01 * first[1]  # the loss seen at each guided step falls as guidance works


def test_feathered_mask_leaves_no_seam(scene):
    _, model, mask, noise, sigmas = scene
    source = torch.full_like(noise, 0.1)  # a flat source and no start noise: any jump in the change is a seam
    noise = torch.zeros_like(noise)
    hard = run_edit(model, sigmas, source, mask, noise, EditConfig(mode="blend")).latent - source
    ramp = torch.tensor([0.0, 0.25, 0.5, 0.75] + [1.0] * 8 + [0.75, 0.5, 0.25, 0.0])
    soft_mask = (ramp[:, None] * ramp[None, :]).view(1, 1, 16, 16)
    soft = run_edit(model, sigmas, source, soft_mask, noise, EditConfig(mode="blend")).latent - source

    def largest_jump(change):  # biggest difference between neighbouring cells of the change
        return max(change.diff(dim=-1).abs().max().item(), change.diff(dim=-2).abs().max().item())

    print(f"largest jump: hard mask {largest_jump(hard):.3f}, feathered {largest_jump(soft):.3f}")
    assert largest_jump(soft) < 0.6 * largest_jump(hard)
    assert soft[..., 0, :].abs().max() == 0  # the mask's zero border is kept exactly


def test_ddim_inversion_round_trip(scene):
    """Inversion then Euler sampling returns to the source; refinement makes it tighter.

    Measured on this denoiser (16 steps from t=831): relative error 0.32 plain, 1.4e-3 with 3
    refinements, 3e-7 with 8.
    """
    source, model, mask, noise, sigmas = scene
    errors = {}
    for refine in (0, 3, 8):
        trajectory = ddim_invert(model, sigmas, source, refine=refine)
        x, euler = trajectory[0], make_stepper("euler")
        for i in range(len(sigmas) - 1):
            x = euler.step(x, model(x, sigmas[i : i + 1]), float(sigmas[i]), float(sigmas[i + 1]))
        errors[refine] = float((x - source).norm() / source.norm())
    print(f"DDIM inversion round trip, relative error by refinements: {errors}")
    assert errors[3] < 0.01 and errors[8] < 1e-5
    assert errors[8] < errors[3] < errors[0]


def test_inversion_start_blends_with_the_trajectory(scene):
    source, model, mask, noise, sigmas = scene
    config = EditConfig(mode="blend", start_method="ddim inversion", inversion_refine=1)
    seen = []
    result = run_edit(model, sigmas, source, mask, noise, config, callback=lambda *progress: seen.append(progress))
    outside = (1 - mask).bool().expand_as(source)
    assert torch.equal(result.latent[outside], source[outside])
    n = len(sigmas) - 1
    # inversion: n steps of 2 model calls each (1 refinement), then n edit steps; every step reported once
    assert seen == [(2 * k, 3 * n) for k in range(1, n + 1)] + [(2 * n + k, 3 * n) for k in range(1, n + 1)]
    assert not torch.equal(result.start_latent, source + float(sigmas[0]) * noise)


def test_loop_refuses_mismatched_inputs(scene):
    source, model, mask, noise, sigmas = scene
    with pytest.raises(ValueError, match=r"mask of shape \(1, 1, 8, 8\) does not match the source grid"):
        run_edit(model, sigmas, source, mask[..., :8, :8], noise)
    with pytest.raises(ValueError, match="must end at sigma 0"):
        run_edit(model, sigmas[:-1], source, mask, noise)


class UNetLike(torch.nn.Module):
    """A small module with a diffusers UNet's call signature: ``unet(z, t, encoder_hidden_states=c).sample``."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.time = torch.nn.Linear(1, 4)
        self.text = torch.nn.Linear(32, 4)

    def forward(self, z, t, encoder_hidden_states):
        bias = self.time(t.view(-1, 1) / 1000) + self.text(encoder_hidden_states.mean(dim=1))  # (B, 4)
        return SimpleNamespace(sample=torch.tanh(self.conv(z)) + bias[:, :, None, None])


def test_diffusers_denoiser_runs_the_edit_headless():
    """The loop on a UNet called the diffusers way: blend exact, gradient through it, the sigma-to-t map."""
    from hierafash_core.editing import DiffusersDenoiser

    torch.manual_seed(0)
    unet = UNetLike().eval().requires_grad_(False)
    cond, uncond = torch.randn(2, 1, 7, 32)
    denoise = DiffusersDenoiser(unet, cond, uncond, cfg=5.0)
    assert denoise.timestep(torch.tensor([sigma_at(591.5, TABLE)])).item() == pytest.approx(591.5, abs=1e-3)
    source = torch.randn(1, 4, 8, 8)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1
    sigmas = normal_sigmas(6)
    start = resolve_start(sigmas, denoise.sigma_table, attribute="hem")
    config = EditConfig(mode="both", guidance=GuidanceConfig(weight=1.0, path="through the model"))
    with torch.inference_mode():
        result = run_edit(denoise, sigmas[start.step :], source, mask, torch.randn_like(source), config)
    outside = (1 - mask).bool().expand_as(source)
    assert torch.equal(result.latent[outside], source[outside])
    assert len(result.guidance_losses) == len(sigmas) - 1 - start.step
    assert all(after < before for _, before, after in result.guidance_losses)
    with pytest.raises(ValueError, match="cfg=5.0 needs the negative embeddings"):
        DiffusersDenoiser(unet, cond, None, cfg=5.0)


# -- resampling, covering masks, pasting back ---------------------------------------------------------
class SharedLevel:
    """Exact denoiser for data x0 = c * 1 + tau * e (c, e standard normal): every cell shares the level c,
    so the region of an edit should come out at the level of the kept rest."""

    def __init__(self, tau: float = 0.3):
        self.t2 = tau**2
        self.calls = 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        n, s2 = x[0].numel(), sigma.view(-1, 1, 1, 1) ** 2
        level = x.flatten(1).mean(1).view(-1, 1, 1, 1)
        return level * (n + self.t2) / (n + self.t2 + s2) + (x - level) * self.t2 / (self.t2 + s2)


def test_resampling_brings_the_region_into_agreement_with_the_kept_rest(scene):
    _, _, mask, _, sigmas = scene
    source = torch.full((1, 4, 16, 16), 2.0)
    errors = {1: [], 5: []}
    for seed in range(16):  # the effect is on average (32 seeds: 0.050 -> 0.013), not in every draw
        noise = torch.randn(source.shape, generator=torch.Generator().manual_seed(seed))
        for passes in errors:
            config = EditConfig(mode="blend", resample=passes, resample_share=1.0)
            out = run_edit(SharedLevel(), sigmas, source, mask, noise, config, seed=seed)
            assert torch.equal(out.latent[..., :4, :], source[..., :4, :])  # still exact outside
            errors[passes].append(float((out.latent[..., 4:12, 4:12].mean() - 2).abs()))
    assert sum(errors[5]) < 0.5 * sum(errors[1]), errors


@pytest.mark.parametrize("sampler", ["euler", "euler_ancestral", "dpmpp_2m"])
def test_resampling_counts_its_passes_and_repeats_exactly(scene, sampler):
    source, _, mask, noise, sigmas = scene
    n = len(sigmas) - 1
    seen = []
    model = SharedLevel()
    config = EditConfig(mode="blend", sampler=sampler, resample=3, resample_share=0.5)
    out = run_edit(model, sigmas, source, mask, noise, config, seed=5, callback=lambda d, t: seen.append((d, t)))
    extra = 2 * round(0.5 * n)
    assert model.calls == n + extra
    assert seen[-1] == (n + extra, n + extra) and [d for d, _ in seen] == list(range(1, n + extra + 1))
    assert torch.isfinite(out.latent).all()  # a multistep rule does not take its own repeat as its past
    again = run_edit(SharedLevel(), sigmas, source, mask, noise, config, seed=5)
    assert torch.equal(out.latent, again.latent)
    assert config.passes(0, n) == 3 and config.passes(n - 1, n) == 1


def test_previews_come_before_the_progress_call_and_the_largest_seed_works(scene):
    source, model, mask, noise, sigmas = scene
    events = []
    config = EditConfig(mode="blend", resample=2, resample_share=1.0)
    run_edit(model, sigmas, source, mask, noise, config, seed=2**64 - 1,  # ComfyUI's largest seed
             callback=lambda d, t: events.append(("progress", d)),
             preview=lambda i, x, d: events.append(("preview", i)))  # fmt: skip
    n = len(sigmas) - 1
    assert [e for e in events if e[0] == "preview"] == [("preview", i) for i in range(n)]  # once per step
    for i in range(n):  # the preview of step i just before the progress call that ends it
        at = events.index(("preview", i))
        assert events[at + 1] == ("progress", 2 * (i + 1))


def test_resample_settings_are_checked():
    with pytest.raises(ValueError, match=r"resample=0: give a whole number of passes per step, 1 \(off\) to 20"):
        EditConfig(resample=0)
    with pytest.raises(ValueError, match=r"resample=2.5"):
        EditConfig(resample=2.5)
    with pytest.raises(
        ValueError, match=r"resample_share=1.5: give the share of the steps resampled, a number from 0 to 1"
    ):
        EditConfig(resample_share=1.5)
    assert EditConfig(resample=4, resample_share=0).passes(0, 10) == 1
    half = EditConfig(resample=2, resample_share=0.5)
    assert [half.passes(i, 5) for i in range(5)] == [2, 2, 2, 1, 1]  # halves round up, not to even
    with pytest.raises(ValueError, match=r"resample_share='0.5': give the share of the steps resampled, a number"):
        EditConfig(resample_share="0.5")


def test_covering_latent_mask_frees_every_cell_a_thin_region_touches():
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 10:50, 21:25] = 1  # a 4 px wide arm across two latent columns (3 px in one, 1 px in the next)
    area = latent_mask(mask, (1, 4, 8, 8))
    cover = latent_mask(mask, (1, 4, 8, 8), cover=True)
    assert area[0, 0, 3, 2].item() == pytest.approx(0.375) and area[0, 0, 3, 3].item() == pytest.approx(0.125)
    assert cover[0, 0, 3, 2].item() == 1.0 and cover[0, 0, 3, 3].item() == 1.0
    assert cover[0, 0, 3, 4].item() == 0.0 and cover[0, 0, 0, 2].item() == 0.0  # untouched cells stay 0
    assert bool(((cover > 0) == (area > 0)).all())  # the same cells, each fully free


def test_paste_back_keeps_every_pixel_outside_the_mask():
    g = torch.Generator().manual_seed(3)
    source, edited = torch.rand(2, 2, 3, 24, 16, generator=g)
    mask = torch.zeros(1, 1, 24, 16)
    mask[..., 5:15, 4:10] = 1
    mask[..., 15, 4:10] = 0.5  # a feathered edge blends
    out = paste_back(source, edited, mask)
    assert torch.equal(out[..., :5, :], source[..., :5, :]) and torch.equal(
        out[..., 5:15, 4:10], edited[..., 5:15, 4:10]
    )
    assert torch.allclose(out[..., 15, 4:10], (source + edited)[..., 15, 4:10] / 2)
    with pytest.raises(ValueError, match=r"paste_back: mask of shape \(1, 1, 12, 8\)"):
        paste_back(source, edited, mask[..., ::2, ::2])
    with pytest.raises(ValueError, match="differ in shape"):
        paste_back(source, edited[:1], mask)
