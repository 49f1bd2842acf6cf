"""ParseMask speed on a 512x704 photo: detection, mask building and the whole node, side by side.

    .venv/bin/python bench/parse_mask.py [--repeats 30]

Goals (issue 3): masks under 10 ms, the whole node under 150 ms, on this 2-core CPU. Prints the
median wall time and the median CPU time of this process per call (CPU time depends less on
other jobs sharing the machine), and the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hierafash_core.masks import build_region, parse_image  # noqa: E402
from hierafash_core.pose.detect import detect_pose  # noqa: E402
from hierafash_core.pose.openpose_json import tensor_to_pose_keypoint  # noqa: E402
from hierafash_core.pose.render import preview  # noqa: E402


def photo_512x704() -> torch.Tensor:
    """The cameraman (512x512, full height) under 192 more rows of his sky: (1, 3, 704, 512)."""
    import skimage.data

    gray = torch.from_numpy(skimage.data.camera()).float()[None, None] / 255
    tall = F.pad(gray, (0, 0, 192, 0), mode="replicate")
    return tall.expand(-1, 3, -1, -1).contiguous()


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - w0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    load_before = os.getloadavg()
    image = photo_512x704()
    comfy_image = image.permute(0, 2, 3, 1).contiguous()  # what the node receives: IMAGE (B, H, W, C)
    keypoints, person, _ = detect_pose(image)
    pose_json = tensor_to_pose_keypoint(keypoints, (704, 512))
    region = build_region(keypoints, (704, 512), "sleeve_length", person_mask=person, feather=0.05)

    def node(pose_keypoint=None):
        # What HieraFash_ParseMask.execute does: IMAGE -> core layout, parse, outputs -> ComfyUI layouts.
        result = parse_image(comfy_image.permute(0, 3, 1, 2), "sleeve_length", pose_keypoint=pose_keypoint)
        result.mask[:, 0].contiguous(), result.preview.permute(0, 2, 3, 1).contiguous(), result.pose_keypoint()

    rows = [("detection (BlazePose: photo + mirror, 1 search for a 2nd person)", lambda: detect_pose(image))]
    for attribute in ("sleeve_length", "collar", "clothing_length", "garment"):
        rows.append(
            (
                f"mask: {attribute} (clipped to the silhouette, feathered)",
                lambda a=attribute: build_region(keypoints, (704, 512), a, person_mask=person, feather=0.05),
            )
        )
    rows += [
        ("preview (tint, outline, skeleton)", lambda: preview(image, region.mask, keypoints)),
        ("whole node, detecting", node),
        ("whole node, POSE_KEYPOINT given (no detection)", lambda: node(pose_json)),
    ]
    print(f"ParseMask on a 512x704 photo, median of {args.repeats}; torch threads {torch.get_num_threads()}")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in load_before)}")
    print(f"{'step':<72} {'wall ms':>8} {'cpu ms':>8}")
    results = {}
    for name, fn in rows:
        wall, cpu = timed(fn, args.repeats)
        results[name] = wall
        print(f"{name:<72} {wall:8.1f} {cpu:8.1f}")
    print(f"load average after:  {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    masks = [v for k, v in results.items() if k.startswith("mask:")]
    whole = results["whole node, detecting"]
    print(f"goal masks < 10 ms: slowest mask {max(masks):.1f} ms -> {'met' if max(masks) < 10 else 'NOT met'}")
    print(f"goal whole node < 150 ms: {whole:.1f} ms -> {'met' if whole < 150 else 'NOT met'}")


if __name__ == "__main__":
    main()
