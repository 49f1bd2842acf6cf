"""GradientGuidedEdit against the core masked KSampler on the same inputs: time and peak memory ratios.

A headless ComfyUI (this pack loaded) runs one graph per measurement over HTTP. The shared part
(checkpoint, prompts, the draft, the mask) is cached by ComfyUI after the first prompt, so each
measurement runs only the sampler under test, with a new seed:

- ``ksampler``: SetLatentNoiseMask + KSamplerAdvanced from the same start step (the baseline);
- ``edit blend``: GradientGuidedEdit, mode blend (the released code's method);
- ``edit clean``: mode both, guidance through the clean estimate on every step;
- ``edit model``: mode both, guidance through the model on every step;
- ``edit model 1/2``: the same with guidance in the first half of the steps only.

Figures per measurement: wall time of the prompt (ComfyUI's execution_start to execution_success
timestamps), CPU seconds of the server process, and the server's peak resident memory during the
prompt (VmHWM after resetting it through /proc/PID/clear_refs), also as the rise above the
resident memory before the prompt. Medians of --repeats, variants interleaved; ratios against
``ksampler`` of the same run.

    .venv/bin/python bench/edit_vs_ksampler.py [--size 256] [--steps 20] [--start-step 4] [--repeats 3]

Timings on a shared machine are noisy: compare the rows of one run, not runs of different days.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
from pathlib import Path

from hierafash_core.api_client import ComfyClient
from hierafash_core.comfy_server import ComfyServer, find_comfyui, prepare_base_directory
from hierafash_core.models.tiny import DEFAULT_NAME, ensure_tiny_checkpoint

REPO = Path(__file__).resolve().parents[1]


def shared_graph(size: int) -> dict:
    """Checkpoint, prompts, a 10-step draft and a feathered square mask over the middle half."""
    return {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": DEFAULT_NAME}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["ckpt", 1], "text": "Dress, Elegant, Party"}},
        "attr": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["ckpt", 1], "text": "Dress, Long Sleeve"}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["ckpt", 1], "text": ""}},
        "empty": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
        "draft": {"class_type": "KSampler", "inputs": {
            "model": ["ckpt", 0], "positive": ["pos", 0], "negative": ["neg", 0], "latent_image": ["empty", 0],
            "seed": 1, "steps": 10, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "canvas": {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": size, "height": size}},
        "square": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": size // 2, "height": size // 2}},
        "placed": {"class_type": "MaskComposite", "inputs": {
            "destination": ["canvas", 0], "source": ["square", 0], "x": size // 4, "y": size // 4,
            "operation": "add"}},
        "mask": {"class_type": "FeatherMask", "inputs": {
            "mask": ["placed", 0], "left": 8, "top": 8, "right": 8, "bottom": 8}},
    }  # fmt: skip


def variant_nodes(name: str, seed: int, steps: int, start_step: int) -> dict:
    if name == "ksampler":
        return {
            "noisemask": {"class_type": "SetLatentNoiseMask", "inputs": {
                "samples": ["draft", 0], "mask": ["mask", 0]}},
            "sampler": {"class_type": "KSamplerAdvanced", "inputs": {
                "model": ["ckpt", 0], "add_noise": "enable", "noise_seed": seed, "steps": steps, "cfg": 7.0,
                "sampler_name": "euler", "scheduler": "normal", "positive": ["attr", 0], "negative": ["neg", 0],
                "latent_image": ["noisemask", 0], "start_at_step": start_step, "end_at_step": 10000,
                "return_with_leftover_noise": "disable"}},
        }  # fmt: skip
    mode, path, end = {
        "edit blend": ("blend", "clean estimate", 1.0),
        "edit clean": ("both", "clean estimate", 1.0),
        "edit model": ("both", "through the model", 1.0),
        "edit model 1/2": ("both", "through the model", 0.5),
    }[name]
    return {
        "sampler": {"class_type": "HieraFash_GradientGuidedEdit", "inputs": {
            "model": ["ckpt", 0], "positive": ["attr", 0], "negative": ["neg", 0], "source": ["draft", 0],
            "mask": ["mask", 0], "attribute": "custom step", "start_timestep": 751, "start_step": start_step,
            "steps": steps, "cfg": 7.0, "sampler": "euler", "scheduler": "normal", "seed": seed, "mode": mode,
            "guidance_weight": 1.0, "guidance_start": 0.0, "guidance_end": end, "gradient_path": path,
            "guidance_iterations": 1, "start_method": "noise", "inversion_refinements": 0}},
    }  # fmt: skip


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(client: ComfyClient, pid: int, graph: dict) -> dict:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak RSS of the server process
    before, cpu = proc_status(pid)["VmRSS"], proc_cpu(pid)
    entry = client.run(graph, timeout=1800)
    stamps = {event: data.get("timestamp") for event, data in entry["status"]["messages"]}
    ran = [event for event, _ in entry["status"]["messages"]]
    if "execution_success" not in ran:
        raise RuntimeError(f"prompt did not succeed: {entry['status']}")
    peak = proc_status(pid)["VmHWM"]
    return {
        "seconds": (stamps["execution_success"] - stamps["execution_start"]) / 1000,
        "cpu_seconds": proc_cpu(pid) - cpu,
        "peak_rss": peak,
        "rise": peak - before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (latent is size/8)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--start-step", type=int, default=4, help="first step of the edit (A2 is step 4 of 20)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads of the server (1 keeps CPU time meaningful under load)"
    )
    parser.add_argument("--variants", default="ksampler,edit blend,edit clean,edit model,edit model 1/2")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "edit_vs_ksampler.json")
    args = parser.parse_args()
    variants = [v.strip() for v in args.variants.split(",")]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind, so the server below is stopped too

    checkpoint = ensure_tiny_checkpoint(REPO / ".cache" / "models" / "checkpoints")
    # The server inherits these: on a shared machine, spinning thread pools inflate both wall and CPU time.
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        base = prepare_base_directory(Path(tmp), pack_dir=REPO, models={f"checkpoints/{DEFAULT_NAME}": checkpoint})
        with ComfyServer(find_comfyui(), base).start(timeout=300) as server:
            client = ComfyClient(server.url, timeout=60)
            pid = server.process.pid
            shared = shared_graph(args.size)
            results: dict[str, list[dict]] = {v: [] for v in variants}
            for repeat in range(-1, args.repeats):  # repeat -1 warms up every variant
                for name in variants:
                    graph = dict(shared)
                    graph.update(variant_nodes(name, 1000 + repeat, args.steps, args.start_step))
                    graph["save"] = {"class_type": "SaveLatent", "inputs": {
                        "samples": ["sampler", 0], "filename_prefix": "bench/edit"}}  # fmt: skip
                    figures = measure(client, pid, graph)
                    if repeat >= 0:
                        results[name].append(figures)
                    print(f"repeat {repeat:2d} {name:15s} {figures['seconds']:7.2f} s  "
                          f"cpu {figures['cpu_seconds']:7.2f} s  peak {figures['peak_rss'] / 2**20:7.0f} MiB  "
                          f"rise {figures['rise'] / 2**20:6.0f} MiB", flush=True)  # fmt: skip

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    base_name = variants[0]
    load = os.getloadavg()
    print(f"\n{args.size}x{args.size} px, {args.steps} steps from step {args.start_step}, median of {args.repeats}, "
          f"{args.threads} thread(s); load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")  # fmt: skip
    print("| variant | wall s | x time | CPU s | x CPU | peak RSS MiB | x peak | rise MiB | x rise |")
    print("|---|---|---|---|---|---|---|---|---|")
    summary = {}
    for name in variants:
        row = {key: median(name, key) for key in ("seconds", "cpu_seconds", "peak_rss", "rise")}
        ratios = {key: row[key] / median(base_name, key) for key in row if key != "rise"}
        base_rise = median(base_name, "rise")  # under 1 MiB resident memory shows nothing: no ratio
        ratios["rise"] = row["rise"] / base_rise if base_rise > 2**20 else float("nan")
        summary[name] = {"median": row, "ratio": ratios}
        print(f"| {name} | {row['seconds']:.2f} | {ratios['seconds']:.2f} | {row['cpu_seconds']:.2f} | "
              f"{ratios['cpu_seconds']:.2f} | {row['peak_rss'] / 2**20:.0f} | {ratios['peak_rss']:.2f} | "
              f"{row['rise'] / 2**20:.0f} | {ratios['rise']:.2f} |")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "load": load,
                                    "results": results, "summary": summary}, indent=1))  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
