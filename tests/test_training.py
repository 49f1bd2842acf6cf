"""Training: staged captions, the loss falls, resume, LoRA/UNet modes, two CPU processes (no ComfyUI)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from hierafash_core.prompt import HierarchicalPrompt
from hierafash_core.schedule import PromptSchedule
from hierafash_core.training import TrainConfig, models, train
from hierafash_core.training.checkpoint import list_checkpoints
from hierafash_core.training.models import load_tokenizer
from hierafash_core.training.tiny import TINY_UNET, build_tiny_base, write_toy_dataset

REPO = Path(__file__).resolve().parents[1]
PAPER_EXAMPLE = HierarchicalPrompt.from_caption(
    "Dress, Elegant, Party, Elongate Neck, Sense of Agility and Elegance, Long Dress, Short Sleeve, "
    "Regular Sleeve, V-Neck, Draped Hem"
)
CONCEPTS = "Dress, Elegant, Party, Elongate Neck, Sense of Agility and Elegance"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {
        "base": build_tiny_base(root / "base"),
        "data": write_toy_dataset(root / "data", 8),
        "pair": write_toy_dataset(root / "pair", 2, seed=5),
    }


def config(tiny, out, data="data", **kw) -> TrainConfig:
    settings = dict(
        dataset=str(tiny[data]), base=str(tiny["base"]), output_dir=str(out), cpu=True, height=64, width=64,
        batch_size=2, learning_rate=3e-3, checkpoint_every=0, progress=False,
    )  # fmt: skip
    settings.update(kw)
    return TrainConfig(**settings)


def losses(out) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in map(json.loads, (Path(out) / "loss.jsonl").read_text().splitlines())}


# -- the staged caption ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("t", "tail"),
    [(999, ""), (900, ""), (899, ", Long Dress"), (800, ", Long Dress"), (799, ", Long Dress, Short Sleeve"),
     (710, ", Long Dress, Short Sleeve"), (709, ", Long Dress, Short Sleeve, Regular Sleeve"),
     (630, ", Long Dress, Short Sleeve, Regular Sleeve"), (629, ", Long Dress, Short Sleeve, Regular Sleeve, V-Neck"),
     (560, ", Long Dress, Short Sleeve, Regular Sleeve, V-Neck"),
     (559, ", Long Dress, Short Sleeve, Regular Sleeve, V-Neck, Draped Hem"),
     (500, ", Long Dress, Short Sleeve, Regular Sleeve, V-Neck, Draped Hem"),
     (499, ", Long Dress, Short Sleeve, Regular Sleeve, V-Neck, Draped Hem"),
     (0, ", Long Dress, Short Sleeve, Regular Sleeve, V-Neck, Draped Hem")],
)  # fmt: skip
def test_staged_caption_matches_the_papers_table_at_every_boundary(t, tail):
    """t >= 900: concepts only; 800-899: +A1; 710-799: +A2; 630-709: +A3; 560-629: +A4; below 560: all ten."""
    assert PromptSchedule.paper().caption_at(PAPER_EXAMPLE, t) == CONCEPTS + tail
    assert TrainConfig().prompt_schedule == PromptSchedule.paper()  # the trainer's default


def test_staged_caption_windows_are_configurable_and_batched():
    two = PromptSchedule.parse(TrainConfig(schedule="999-500:5, 499-0:10").schedule)
    assert two.captions_at([PAPER_EXAMPLE] * 3, torch.tensor([500, 499, 0])) == [
        CONCEPTS,
        PAPER_EXAMPLE.caption(),
        PAPER_EXAMPLE.caption(),
    ]
    with pytest.raises(ValueError, match="got 2 prompts and 1 timesteps"):
        two.captions_at([PAPER_EXAMPLE] * 2, [3])
    with pytest.raises(ValueError, match="gap between windows"):
        TrainConfig(dataset="d", base="b", output_dir="o", schedule="999-600:5, 499-0:10").validate()


# -- training ----------------------------------------------------------------------------------------
def test_loss_falls_when_overfitting_a_fixed_batch(tiny, tmp_path):
    """Two examples, batch 2: every step sees the same images (with fresh noise and timesteps).
    The whole UNet learns them: the mean loss of the last quarter is well below the first's."""
    result = train(config(tiny, tmp_path, data="pair", mode="unet", learning_rate=1e-3, max_steps=16))
    seen = losses(tmp_path)
    assert sorted(seen) == list(range(1, 17)) and result.step == 16
    first = sum(seen[s] for s in range(1, 5)) / 4
    last = sum(seen[s] for s in range(13, 17)) / 4
    assert last < 0.75 * first, (first, last)


def test_resume_continues_the_same_run(tiny, tmp_path):
    """Interrupted after the step-1 checkpoint and resumed, a run logs the same losses and ends with
    the same weights as one that was never interrupted (accumulation, dropout, warm-up included)."""
    common = dict(
        max_steps=2, checkpoint_every=1, gradient_accumulation_steps=2, caption_dropout=0.5,
        lr_scheduler="cosine", lr_warmup_steps=1,
    )  # fmt: skip
    whole = train(config(tiny, tmp_path / "whole", **common))

    def stop_after_one(step, total, loss):
        if step == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config(tiny, tmp_path / "cut", **common), callback=stop_after_one)
    assert [s for s, _ in list_checkpoints(tmp_path / "cut")] == [1]
    saved = json.loads((tmp_path / "cut" / "checkpoints" / "step-0000001" / "config.json").read_text())
    assert saved == config(tiny, tmp_path / "cut", **common).to_dict()  # the config beside every checkpoint
    assert (tmp_path / "cut" / "checkpoints" / "step-0000001" / "hierafash-controlnet.safetensors").is_file()
    resumed = train(config(tiny, tmp_path / "cut", resume="latest", checkpoints_total_limit=1, **common))

    assert resumed.step == whole.step == 2
    assert losses(tmp_path / "cut") == losses(tmp_path / "whole")
    assert resumed.weights_sha256 == whole.weights_sha256
    ranks = json.loads((tmp_path / "cut" / "ranks" / "rank-0.json").read_text())
    assert ranks["start_step"] == 1 and ranks["steps_run"] == 1
    assert [s for s, _ in list_checkpoints(tmp_path / "cut")] == [2]  # checkpoints_total_limit=1

    with pytest.raises(ValueError, match="holds checkpoints of an earlier run; pass --resume latest"):
        train(config(tiny, tmp_path / "cut", **common))
    with pytest.raises(ValueError, match="trained with mode='controlnet', this run has 'lora'"):
        train(config(tiny, tmp_path / "cut", resume="latest", mode="lora", max_steps=6))


def test_lora_mode_writes_comfyui_lora_keys(tiny, tmp_path):
    """LoRA on the base UNet (bf16 autocast and gradient checkpointing on): the file uses ComfyUI's
    ``lora_unet_<LDM path>`` names with down/up/alpha, and training moved the up weights off zero."""
    result = train(
        config(
            tiny, tmp_path, mode="lora", max_steps=2, lora_rank=4, mixed_precision="bf16", gradient_checkpointing=True
        )
    )
    path = result.exports["lora"]
    with safe_open(str(path), "pt") as fh:
        keys = set(fh.keys())
        up = fh.get_tensor("lora_unet_input_blocks_1_1_transformer_blocks_0_attn2_to_k.lora_up.weight")
        assert fh.metadata()["hierafash"] == "lora"
    modules = {k.rsplit(".", 2)[0] if k.endswith(".weight") else k.rsplit(".", 1)[0] for k in keys}
    assert all(m.startswith("lora_unet_") for m in modules)
    # one attention per level-0 down block, mid block and level-1 up blocks (2), 2 attentions x 4 projections
    assert len(modules) == 4 * 2 * 4
    assert "lora_unet_output_blocks_2_1_transformer_blocks_0_attn1_to_out_0" in modules
    assert all({f"{m}.lora_down.weight", f"{m}.lora_up.weight", f"{m}.alpha"} <= keys for m in modules)
    assert up.shape == (32, 4) and up.float().abs().sum() > 0


def test_unet_mode_trains_a_unet_from_a_config(tiny, tmp_path):
    """mode=unet with unet_config: a new UNet (here 16/32 channels) trains over the base's text
    encoder and VAE and is written under LDM names with its config in the metadata."""
    small = dict(TINY_UNET, block_out_channels=[16, 32], norm_num_groups=8)
    (tmp_path / "unet.json").write_text(json.dumps(small))
    result = train(config(tiny, tmp_path / "out", mode="unet", unet_config=str(tmp_path / "unet.json"), max_steps=1))
    with safe_open(str(result.exports["unet"]), "pt") as fh:
        assert "model.diffusion_model.input_blocks.1.1.proj_in.weight" in fh.keys()
        assert all(k.startswith("model.diffusion_model.") for k in fh.keys())
        assert json.loads(fh.metadata()["hierafash_unet_config"])["block_out_channels"] == [16, 32]
    (tmp_path / "wide.json").write_text(json.dumps(dict(small, cross_attention_dim=64)))
    with pytest.raises(ValueError, match="cross_attention_dim=64 but the text encoder gives 32"):
        train(config(tiny, tmp_path / "o2", mode="unet", unet_config=str(tmp_path / "wide.json"), max_steps=1))


def test_settings_are_checked_up_front(tiny, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"unknown training setting 'learning_rte' \(did you mean learning_rate"):
        TrainConfig.from_dict({"learning_rte": 1e-5})
    with pytest.raises(ValueError, match="height=70: must be a multiple of 8"):
        config(tiny, tmp_path, height=70).validate()
    with pytest.raises(ValueError, match="mixed_precision=fp16 needs a GPU; use bf16"):
        train(config(tiny, tmp_path, mixed_precision="fp16"))
    with pytest.raises(ValueError, match="one step takes batch_size x processes = 4"):
        train(config(tiny, tmp_path, data="pair", batch_size=4, max_steps=1))
    with pytest.raises(FileNotFoundError, match="tokenizer=.*needs vocab.json and merges.txt"):
        load_tokenizer(tmp_path, None)
    monkeypatch.setattr(models, "tokenizer_candidates", lambda base: [tmp_path / "nothing"])
    with pytest.raises(
        FileNotFoundError, match=r"no CLIP tokenizer found \(looked in .*nothing\); give --tokenizer DIR"
    ):
        load_tokenizer(None, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match=r"base=x.ckpt: only \.safetensors"):
        (tmp_path / "x.ckpt").write_bytes(b"")
        train(config(tiny, tmp_path / "o", base=str(tmp_path / "x.ckpt")))


# -- two processes -------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_cpu_processes_step_together_and_write_one_checkpoint(tiny, tmp_path):
    """torchrun starts the CLI twice (MULTI_CPU over gloo on 127.0.0.1): each rank trains on its own
    slice of every batch, DDP averages the gradients, so both end with identical weights; only the
    main process writes the checkpoint, the loss log and the export."""
    cfg = config(tiny, tmp_path / "out", max_steps=3, checkpoint_every=0, num_workers=0)
    cfg.save(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        "-m", "hierafash_core.cli", "train", str(tmp_path / "config.json"),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"torchrun did not finish in 300 s:\n{out[-3000:]}")
    assert proc.returncode == 0, out[-4000:]
    ranks = [json.loads((tmp_path / "out" / "ranks" / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert [r["steps_run"] for r in ranks] == [3, 3]
    assert ranks[0]["indices_sha256"] != ranks[1]["indices_sha256"]  # each rank saw its own examples
    assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]  # ... and the gradients were averaged
    assert [r["checkpoints_written"] for r in ranks] == [1, 0]
    assert [s for s, _ in list_checkpoints(tmp_path / "out")] == [3]
    assert sorted(losses(tmp_path / "out")) == [1, 2, 3]  # one log line per step, not one per rank
    assert out.count("trained to step 3") == 1
