"""Speed of the synthetic data generator (``hierafash synth``): images per second, time for 10,000.

Measures, side by side in one run (median of --repeats), wall-clock images per second and CPU
milliseconds per image (this process and its worker processes together):
- render only (draw one record in memory), supersample 2 (default) and 1;
- the whole writer (render + PNG + JSON to disk) with 1 and with 2 worker processes.

On a shared machine the wall figures depend on what else runs; CPU ms per image does much less,
and ``10,000 / (2 cores)`` projects the time on two idle cores: count * cpu_ms / 2.

    .venv/bin/python bench/synth_speed.py [--count 400] [--repeats 3]

Timings on a shared machine are noisy: compare the rows of one run, not runs of different days.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time

from hierafash_core.synth.writer import SynthConfig, make_sample, write_dataset  # noqa: E402


def _cpu() -> float:
    """CPU seconds of this process plus its finished children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def render_rate(count: int, supersample: int) -> tuple[float, float]:
    config = SynthConfig(count=count, supersample=supersample)
    start, cpu = time.perf_counter(), _cpu()
    for i in range(count):
        make_sample(config, i)
    return count / (time.perf_counter() - start), (_cpu() - cpu) / count * 1000


def writer_rate(count: int, workers: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cpu = _cpu()
        meta = write_dataset(os.path.join(tmp, "ds"), SynthConfig(count=count), workers=workers)
        return count / meta["seconds"], (_cpu() - cpu) / count * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=400, help="images per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = [
        ("render only, supersample 2", lambda: render_rate(args.count, 2)),
        ("render only, supersample 1", lambda: render_rate(args.count, 1)),
        ("writer, 1 worker", lambda: writer_rate(args.count, 1)),
        ("writer, 2 workers", lambda: writer_rate(args.count, 2)),
    ]
    results = {name: [] for name, _ in rows}
    for _ in range(args.repeats):  # interleaved, so load changes hit every row alike
        for name, fn in rows:
            results[name].append(fn())
    print(f"synth speed, 128x192, {args.count} images each, median of {args.repeats}, {os.cpu_count()} CPUs")
    print(f"{'setting':28s} {'images/s':>9s} {'wall 10k':>9s} {'CPU ms/img':>11s} {'10k on 2 idle cores':>20s}")
    for name, _ in rows:
        rate = statistics.median(r for r, _ in results[name])
        cpu_ms = statistics.median(c for _, c in results[name])
        print(f"{name:28s} {rate:9.1f} {10000 / rate / 60:7.1f} m {cpu_ms:11.2f} {10000 * cpu_ms / 2000 / 60:18.1f} m")
    one, two = (statistics.median(r for r, _ in results[k]) for k in ("writer, 1 worker", "writer, 2 workers"))
    print(f"wall rate, 2 workers / 1 worker: {two / one:.2f}x")
    print(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
