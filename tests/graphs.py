"""Small API-format graphs on the seeded test checkpoint, shared by the host tests."""

from __future__ import annotations

TINY_CKPT = "hierafash-tiny-sd15.safetensors"


def tiny_graph(seed: int = 1, steps: int = 2, size: int = 64, save: bool = False) -> dict:
    """Checkpoint -> prompts -> KSampler -> VAEDecode (-> SaveImage), core nodes only."""
    graph = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": TINY_CKPT}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["ckpt", 1], "text": "Dress, Elegant"}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["ckpt", 1], "text": ""}},
        "lat": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
        "ks": {"class_type": "KSampler", "inputs": {
            "model": ["ckpt", 0], "positive": ["pos", 0], "negative": ["neg", 0], "latent_image": ["lat", 0],
            "seed": seed, "steps": steps, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal",
            "denoise": 1.0}},
        "dec": {"class_type": "VAEDecode", "inputs": {"samples": ["ks", 0], "vae": ["ckpt", 2]}},
    }  # fmt: skip
    if save:
        graph["save"] = {"class_type": "SaveImage", "inputs": {"images": ["dec", 0], "filename_prefix": "host"}}
    return graph
