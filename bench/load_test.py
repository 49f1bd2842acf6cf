"""Load: many design workflows queued at once on one headless ComfyUI, from several clients.

A headless ComfyUI with this pack runs the graph ``hierafash design`` queues (hierafash_core/design/
graph.py: pose on the canvas, ParseMask regions, a StagedKSampler draft with the pose ControlNet,
three chained GradientGuidedEdits) on the seeded test checkpoint and ControlNet, shrunk to a small
size and step count. Each prompt has its own seeds. Per round, every client thread queues its share
of the prompts at once, then waits for them (each wait bounded). The script reports:

- completed: every prompt finished with success;
- correct: each prompt's final latent equals the same prompt run again alone afterwards (its seed
  reproduces its own result: nothing leaked between queued prompts), and different seeds differ;
- peak memory (VmHWM) of the server process per round, and its resident memory (VmRSS) after the
  queue drained, against the baseline measured after a warm-up prompt: whether it returns there and
  does not grow from round to round.

    .venv/bin/python bench/load_test.py [--prompts 20] [--clients 4] [--rounds 3] [--alone 3]

Linux only (reads /proc/PID/status). Timings and memory on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the test fixtures: the tiny ControlNet, the hand-placed pose

from hierafash_core.api_client import ComfyClient  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
from edit_vs_ksampler import proc_status  # noqa: E402 - the same /proc reading as the edit benchmark

TINY_CN = "hierafash-tiny-cn.safetensors"
POSE_PHOTO = "hierafash_pose_reference.png"
MiB = 2**20


def prepare_inputs(base: Path, checkpoint: Path) -> None:
    """The pose reference photo and the tiny ControlNet in a ComfyUI base directory (once)."""
    import numpy as np
    import skimage.data
    from PIL import Image
    from tiny_controlnet import build_tiny_controlnet

    photo = base / "input" / POSE_PHOTO
    if not photo.is_file():
        image = np.full((704, 512, 3), 255, dtype=np.uint8)
        image[:512] = skimage.data.camera()[..., None]
        Image.fromarray(image).save(photo)
    build_tiny_controlnet(checkpoint, base / "models" / "controlnet" / TINY_CN)


def design_graph(seed: int, checkpoint_name: str, steps: int = 2, scale: int = 8, upto: int | None = None) -> dict:
    """The graph ``hierafash design`` runs (design/graph.py: pose, masks, a StagedKSampler draft with the
    pose ControlNet, three chained GradientGuidedEdits) at 1/``scale`` of 512x704 and ``steps`` steps.

    The draft takes seed ``seed * 10``, edit k ``seed * 10 + k``; the final latent is saved (SaveLatent)
    as ``final_latent`` under ``load/seed_<seed>``. The pose comes as OpenPose JSON (a hand-placed
    standing person), so the graph needs no photo. ``upto``: only stages 0..upto (1 = up to the draft).
    """
    from photos import standing_person

    from hierafash_core.design.graph import build_design_graph
    from hierafash_core.design.spec import EXAMPLE_CONCEPTS, EXAMPLE_EDITS, DesignSpec, Edit
    from hierafash_core.pose.openpose_json import tensor_to_pose_keypoint

    spec = DesignSpec(
        pose_json=json.dumps(tensor_to_pose_keypoint(standing_person(), (704, 512))),
        concepts=dict(EXAMPLE_CONCEPTS),
        edits=[Edit.parse(e, EXAMPLE_CONCEPTS["category"]) for e in EXAMPLE_EDITS],
        checkpoint=checkpoint_name,
        controlnet=TINY_CN,
        seed=seed * 10,
        steps=steps,
        width=512 // scale,
        height=704 // scale,
    )
    built = build_design_graph(spec)
    graph = built.api(upto)
    final = built.stages[-1 if upto is None else upto].progress_node
    graph["final_latent"] = {
        "class_type": "SaveLatent",
        "inputs": {"samples": [final, 0], "filename_prefix": f"load/seed_{seed}"},
    }
    return graph


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def wait_idle(client: ComfyClient, timeout: float = 600.0) -> None:
    """Until the server's queue is empty (bounded)."""
    deadline = time.monotonic() + timeout
    while client.queue_remaining():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the queue did not drain within {timeout:.0f} s")
        time.sleep(0.2)


def read_latent(entry: dict, output_dir: Path):
    from safetensors.torch import load_file

    item = entry["outputs"]["final_latent"]["latents"][0]
    return load_file(str(output_dir / item["subfolder"] / item["filename"]))["latent_tensor"]


def cached_nodes(entry: dict) -> list[str]:
    for event, data in entry["status"]["messages"]:
        if event == "execution_cached":
            return list(data.get("nodes", []))
    return []


def run_round(url: str, seeds: list[int], clients: int, checkpoint_name: str, steps: int, timeout: float) -> dict:
    """Each client thread queues its seeds at once, then waits for them; {seed: history entry}."""
    shares = [seeds[i::clients] for i in range(clients)]
    barrier = threading.Barrier(clients)

    def client_work(share: list[int]) -> dict[int, dict]:
        client = ComfyClient(url, timeout=60)
        barrier.wait(timeout=60)  # every client starts queueing at the same moment
        ids = {seed: client.queue_prompt(design_graph(seed, checkpoint_name, steps)) for seed in share}
        return {seed: client.wait(pid, timeout=timeout) for seed, pid in ids.items()}

    results: dict[int, dict] = {}
    with ThreadPoolExecutor(clients) as pool:
        for part in pool.map(client_work, shares):
            results.update(part)
    return results


def run_load(
    url: str,
    pid: int,
    output_dir: Path,
    checkpoint_name: str,
    prompts: int = 20,
    clients: int = 4,
    rounds: int = 3,
    alone: int = 3,
    steps: int = 2,
    timeout: float = 1800.0,
    log=print,
) -> dict:
    """Rounds of ``prompts`` design workflows from ``clients`` threads, then ``alone`` reruns; the report."""
    client = ComfyClient(url, timeout=60)
    warm = client.run(design_graph(1, checkpoint_name, steps), timeout=timeout)  # loads the models
    if warm["status"].get("status_str") != "success":
        raise RuntimeError(f"the warm-up prompt failed: {warm['status']}")
    wait_idle(client)
    time.sleep(1.0)
    baseline = proc_status(pid)["VmRSS"]
    log(f"baseline after a warm-up prompt: {baseline / MiB:.0f} MiB resident")
    report: dict = {"prompts": prompts, "clients": clients, "rounds": [], "baseline_rss": baseline, "steps": steps}
    latents: dict[int, object] = {}
    for r in range(rounds):
        seeds = [1000 * (r + 1) + i for i in range(prompts)]
        reset_peak(pid)
        start = time.monotonic()
        entries = run_round(url, seeds, clients, checkpoint_name, steps, timeout)
        seconds = time.monotonic() - start
        wait_idle(client)
        peak = proc_status(pid)["VmHWM"]
        time.sleep(1.0)
        after = proc_status(pid)["VmRSS"]
        ok = [s for s, e in entries.items() if e["status"].get("status_str") == "success"]
        for seed in ok:
            latents[seed] = read_latent(entries[seed], output_dir)
        finished_last = max(entries, key=lambda s: entries[s]["status"]["messages"][-1][1].get("timestamp", 0))
        row = {"round": r + 1, "completed": len(ok), "seconds": seconds, "peak_rss": peak, "rss_after": after,
               "last_seed": finished_last}  # fmt: skip
        report["rounds"].append(row)
        log(f"round {r + 1}: {len(ok)}/{prompts} completed in {seconds:.1f} s ({seconds / prompts:.2f} s/prompt); "
            f"peak {peak / MiB:.0f} MiB, after {after / MiB:.0f} MiB (baseline {baseline / MiB:.0f} MiB)")  # fmt: skip
    # correctness: distinct seeds give distinct results; a seed run alone gives exactly its queued result
    values = list(latents.values())
    report["distinct"] = all(not a.equal(b) for i, a in enumerate(values) for b in values[i + 1 :])
    last = report["rounds"][-1]["last_seed"]
    candidates = [s for s in latents if s != last]  # the last prompt's outputs may still be in the cache
    chosen = random.Random(0).sample(candidates, min(alone, len(candidates)))
    report["alone"] = []
    for seed in chosen:
        entry = client.run(design_graph(seed, checkpoint_name, steps), timeout=timeout)
        sampler = next(n for n, node in design_graph(seed, checkpoint_name, steps).items()
                       if node["class_type"] == "HieraFash_StagedKSampler")  # fmt: skip
        recomputed = sampler not in cached_nodes(entry)
        same = read_latent(entry, output_dir).equal(latents[seed])
        report["alone"].append({"seed": seed, "recomputed": recomputed, "equal": same})
        log(
            f"seed {seed} alone: {'recomputed' if recomputed else 'FROM CACHE'}, "
            f"{'identical to its queued result' if same else 'DIFFERENT from its queued result'}"
        )
    rss = [row["rss_after"] for row in report["rounds"]]
    report["max_drift"] = max(abs(x - baseline) for x in rss)
    # TODO(evidence): resident memory grows 1-2 MiB per 20 prompts (bench/README.md); likely ComfyUI's history
    # entries (kept up to 10,000 prompts): POST /history {"clear": true} between rounds to confirm.
    report["growth"] = rss[-1] - rss[0]
    report["all_completed"] = all(row["completed"] == prompts for row in report["rounds"])
    report["all_reproduced"] = all(a["recomputed"] and a["equal"] for a in report["alone"])
    return report


def main() -> None:
    from hierafash_core.comfy_server import ComfyServer, find_comfyui, prepare_base_directory
    from hierafash_core.models.tiny import DEFAULT_NAME, ensure_tiny_checkpoint

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=20, help="design workflows queued per round")
    parser.add_argument("--clients", type=int, default=4, help="client threads queueing at once")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--alone", type=int, default=3, help="seeds re-run alone to check their results")
    parser.add_argument("--steps", type=int, default=2, help="steps of the draft and of each edit")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the server")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "load_test.json")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    checkpoint = ensure_tiny_checkpoint(REPO / ".cache" / "models" / "checkpoints")
    with tempfile.TemporaryDirectory() as tmp:
        base = prepare_base_directory(Path(tmp), pack_dir=REPO, models={f"checkpoints/{DEFAULT_NAME}": checkpoint})
        prepare_inputs(base, checkpoint)
        with ComfyServer(find_comfyui(), base).start(timeout=300) as server:
            report = run_load(server.url, server.process.pid, base / "output", DEFAULT_NAME, args.prompts,
                              args.clients, args.rounds, args.alone, args.steps)  # fmt: skip
    load = os.getloadavg()
    report["load_average"] = load
    print(f"\n{args.prompts} design workflows x {args.rounds} rounds from {args.clients} clients, {args.steps} steps, "
          f"64x88 px; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")  # fmt: skip
    print(
        f"all completed: {report['all_completed']}; distinct seeds distinct: {report['distinct']}; "
        f"seeds re-run alone identical: {report['all_reproduced']} ({len(report['alone'])} checked)"
    )
    print("| round | completed | s/prompt | peak RSS MiB | RSS after MiB | vs baseline MiB |")
    print("|---|---|---|---|---|---|")
    for row in report["rounds"]:
        print(f"| {row['round']} | {row['completed']}/{args.prompts} | {row['seconds'] / args.prompts:.2f} | "
              f"{row['peak_rss'] / MiB:.0f} | {row['rss_after'] / MiB:.0f} | "
              f"{(row['rss_after'] - report['baseline_rss']) / MiB:+.0f} |")  # fmt: skip
    print(
        f"baseline {report['baseline_rss'] / MiB:.0f} MiB; growth from round 1 to {args.rounds}: "
        f"{report['growth'] / MiB:+.0f} MiB"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str))
    print(f"wrote {args.out}")
    sys.exit(0 if report["all_completed"] and report["all_reproduced"] and report["distinct"] else 1)


if __name__ == "__main__":
    main()
