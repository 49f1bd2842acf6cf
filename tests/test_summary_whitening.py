"""Training-time whitening of the caption summary and the focused timestep draw (hierafash_core.training)."""

from __future__ import annotations

import json

import pytest
import torch

from hierafash_core.prompt import HierarchicalPrompt
from hierafash_core.schedule import PromptSchedule
from hierafash_core.training import TrainConfig, train
from hierafash_core.training.summary_whitening import (
    EIGEN_FLOOR,
    WhitenedLinear,
    attach_whitening,
    folded,
    training_captions,
    whitening_from_summaries,
)
from hierafash_core.training.tiny import TINY_UNET, build_tiny_base, write_toy_dataset
from hierafash_core.training.trainer import draw_timesteps

WIDTH = 32  # the tiny base's text width
SUMMARY_UNET = {**TINY_UNET, "class_embed_type": "projection", "projection_class_embeddings_input_dim": WIDTH}


def _skewed(n: int = 400, seed: int = 0) -> torch.Tensor:
    """Summaries like the real ones: a large common part, one strong direction, weak others."""
    g = torch.Generator().manual_seed(seed)
    scales = torch.cat([torch.tensor([5.0]), torch.full((7,), 0.2), torch.zeros(WIDTH - 8)])
    basis = torch.linalg.qr(torch.randn(WIDTH, WIDTH, generator=g))[0]
    return 10.0 + (torch.randn(n, WIDTH, generator=g) * scales) @ basis.T


def test_whitened_summaries_are_centred_with_unit_variance_in_every_direction_they_vary():
    x = _skewed()
    stats = whitening_from_summaries(x, torch.ones(len(x)))
    white = (x - stats.mean) @ stats.whiten
    assert white.mean(0).abs().max() < 1e-4
    evals = torch.linalg.eigvalsh(white.T @ white / len(x))
    centred = (x - x.mean(0)).double()
    raw = torch.linalg.eigvalsh(centred.T @ centred / len(x)).float()
    # Each direction comes out at variance lambda / (lambda + floor * lambda_max): near 1 for the
    # strong one, shrunk by the floor for weak ones, near 0 for those nothing moves.
    expected = raw.clamp_min(0) / (raw.clamp_min(0) + EIGEN_FLOOR * raw.max())
    assert torch.allclose(evals, expected, atol=1e-3), (evals[-8:], expected[-8:])
    assert evals[-1] > 0.99 and evals[-8:-1].min() > 0.55  # weak directions: 1/600 of the top's variance before
    assert evals[:-8].abs().max() < 1e-3
    assert raw[-1] / raw[-2] > 100  # the raw input was badly conditioned


def test_whitening_rejects_bad_statistics():
    with pytest.raises(ValueError, match="expected \\(N, width\\) and \\(N,\\)"):
        whitening_from_summaries(torch.zeros(4, WIDTH), torch.ones(3))
    with pytest.raises(ValueError, match="weights sum to zero"):
        whitening_from_summaries(torch.randn(4, WIDTH), torch.zeros(4))
    with pytest.raises(ValueError, match="same summary"):
        whitening_from_summaries(torch.ones(4, WIDTH), torch.ones(4))


def test_the_folded_layer_computes_what_the_training_layer_computes():
    x = _skewed(64, seed=1)
    stats = whitening_from_summaries(x, torch.ones(len(x)))
    torch.manual_seed(0)
    inner = torch.nn.Linear(WIDTH, 16)
    layer = WhitenedLinear(inner, stats)
    plain = layer.folded()
    assert isinstance(plain, torch.nn.Linear) and not isinstance(plain, WhitenedLinear)
    assert torch.allclose(layer(x), plain(x), atol=1e-4, rtol=1e-5)
    assert not torch.allclose(layer(x), inner(x), atol=1e-2)  # the whitening does change what the layer reads
    assert layer.inner.weight is inner.weight  # the same parameters: an optimiser made before wrapping trains them
    with pytest.raises(ValueError, match="projection_class_embeddings_input_dim must agree"):
        WhitenedLinear(torch.nn.Linear(WIDTH + 1, 16), stats)


def test_captions_are_weighted_as_the_trainer_draws_them():
    prompt = HierarchicalPrompt.from_caption(
        "Dress, Elegant, Party, Tall, Crisp Feeling, Long Dress, Short Sleeve, Puffed Sleeve, V-Neck, Ruffle Hem"
    )
    schedule = PromptSchedule.paper()
    captions, weights = training_captions([prompt, prompt], schedule, caption_dropout=0.1)
    assert len(captions) == 2 * len(schedule.stages) + 1 and captions[-1] == ""
    assert sum(weights[:-1]) == pytest.approx(2 * 0.9) and weights[-1] == pytest.approx(2 * 0.1)
    # the first stage (t 900-999, concepts only) holds 10% of the timesteps
    assert captions[0] == schedule.caption_at(prompt, 950) and weights[0] == pytest.approx(0.9 * 100 / 1000)


def test_focused_timesteps_reweight_the_captions():
    prompt = HierarchicalPrompt.from_caption(
        "Dress, Elegant, Party, Tall, Crisp Feeling, Long Dress, Short Sleeve, Puffed Sleeve, V-Neck, Ruffle Hem"
    )
    schedule = PromptSchedule.paper()
    captions, weights = training_captions([prompt], schedule, caption_dropout=0.0, focus=(0.5, 500))
    assert sum(weights) == pytest.approx(1.0)
    # t 0-499 (the last stage): drawn only by the uniform half, 0.5 * 500 / 1000
    assert weights[-2] == pytest.approx(0.25) and captions[-2] == schedule.caption_at(prompt, 100)
    # t 900-999: 0.5 * 100 / 1000 + 0.5 * 100 / 500
    assert weights[0] == pytest.approx(0.15)


def test_attach_needs_a_unet_that_reads_a_summary():
    from diffusers import UNet2DConditionModel

    with pytest.raises(ValueError, match="set class_embed_type 'projection'"):
        attach_whitening(UNet2DConditionModel(**TINY_UNET), whitening_from_summaries(_skewed(), torch.ones(400)))
    unet = UNet2DConditionModel(**SUMMARY_UNET)
    stats = whitening_from_summaries(_skewed(), torch.ones(400))
    assert attach_whitening(unet, stats) == 1
    assert isinstance(unet.class_embedding.linear_1, WhitenedLinear)
    with folded(unet):
        assert type(unet.class_embedding.linear_1) is torch.nn.Linear
        assert not any(".inner." in k or k.endswith((".whiten", ".mean")) for k in unet.state_dict())
    assert isinstance(unet.class_embedding.linear_1, WhitenedLinear)  # back for the next training step


def test_focused_timesteps():
    def draw(share, seed=0, n=4000):
        return draw_timesteps(n, 1000, share, 500, torch.Generator().manual_seed(seed))

    assert torch.equal(draw(0.0), torch.randint(0, 1000, (4000,), generator=torch.Generator().manual_seed(0)))
    assert draw(1.0).min() >= 500
    high = (draw(0.5) >= 500).float().mean().item()
    assert 0.72 < high < 0.78, high  # half focused + half of the uniform rest


def test_settings_are_checked():
    ok = dict(dataset="d", base="b", output_dir="o")
    with pytest.raises(ValueError, match="focus_share=1.5"):
        TrainConfig(**ok, focus_share=1.5).validate()
    with pytest.raises(ValueError, match="focus_t_min=999"):
        TrainConfig(**ok, focus_t_min=999).validate()
    with pytest.raises(ValueError, match="summary_whitening=-1"):
        TrainConfig(**ok, summary_whitening=-1).validate()
    with pytest.raises(ValueError, match="summary_whitening is set but no unet_config"):
        TrainConfig(**ok, summary_whitening=10).validate()
    with pytest.raises(ValueError, match="summary_whitening=True"):
        TrainConfig(**ok, summary_whitening=True).validate()
    with pytest.raises(ValueError, match="focus_t_min=500 has no effect with focus_share=0"):
        TrainConfig(**ok, focus_t_min=500).validate()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("whiten")
    unet_json = root / "unet.json"
    unet_json.write_text(json.dumps(SUMMARY_UNET))
    return {"base": build_tiny_base(root / "base"), "data": write_toy_dataset(root / "data", 8), "unet": unet_json}


def _config(tiny, out, **kw) -> TrainConfig:
    settings = dict(
        dataset=str(tiny["data"]), base=str(tiny["base"]), output_dir=str(out), cpu=True, height=64, width=64,
        batch_size=2, learning_rate=1e-3, checkpoint_every=1, progress=False, mode="unet", max_steps=2,
        unet_config=str(tiny["unet"]), export_dtype="fp32", summary_whitening=8, focus_share=0.5, focus_t_min=500,
    )  # fmt: skip
    settings.update(kw)
    return TrainConfig(**settings)


def test_training_exports_the_plain_layer_and_resumes_exactly(tiny, tmp_path):
    from safetensors.torch import load_file

    from hierafash_core.training.models import load_base

    whole = train(_config(tiny, tmp_path / "whole"), base=load_base(tiny["base"]))
    exported = load_file(str(whole.exports["unet"]))
    assert "model.diffusion_model.label_emb.0.0.weight" in exported
    assert not any("inner" in k or k.endswith(("whiten", ".mean")) for k in exported)
    # The file holds W P and b - W P m of the trained layer and its statistics (kept in the checkpoint).
    ckpt = load_file(str(tmp_path / "whole" / "checkpoints" / "step-0000002" / "trainable.safetensors"))
    w, b = ckpt["class_embedding.linear_1.inner.weight"], ckpt["class_embedding.linear_1.inner.bias"]
    p, m = ckpt["class_embedding.linear_1.whiten"], ckpt["class_embedding.linear_1.mean"]
    assert torch.allclose(exported["model.diffusion_model.label_emb.0.0.weight"], w @ p, atol=1e-5)
    assert torch.allclose(exported["model.diffusion_model.label_emb.0.0.bias"], b - w @ p @ m, atol=1e-4)

    def stop(step, total, loss):
        if step == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_config(tiny, tmp_path / "cut"), base=load_base(tiny["base"]), callback=stop)
    for other in (0, 6):  # off, or another record count: the checkpoint's tensors and statistics would not apply
        with pytest.raises(ValueError, match=f"summary_whitening=8, this run has {other}; use the same"):
            train(
                _config(tiny, tmp_path / "cut", resume="latest", summary_whitening=other), base=load_base(tiny["base"])
            )
    resumed = train(_config(tiny, tmp_path / "cut", resume="latest"), base=load_base(tiny["base"]))
    assert resumed.weights_sha256 == whole.weights_sha256


def test_a_unet_without_a_summary_is_refused_before_any_caption_is_encoded(tiny, tmp_path, monkeypatch):
    from hierafash_core.training import summary_whitening
    from hierafash_core.training.models import load_base

    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(TINY_UNET))

    def never(*args, **kwargs):
        raise AssertionError("captions were encoded before the UNet was checked")

    monkeypatch.setattr(summary_whitening, "estimate_whitening", never)
    monkeypatch.setattr("hierafash_core.training.trainer.estimate_whitening", never)
    with pytest.raises(ValueError, match="takes no caption summary; set class_embed_type 'projection'"):
        train(_config(tiny, tmp_path / "run", unet_config=str(plain)), base=load_base(tiny["base"]))
