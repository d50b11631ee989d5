"""Time the steps after the network: detail restoration and the collaborative Wiener step.

Protocol: a seeded synthetic phantom (``metrics_speed.phantom``, disks in [0, 1]) with
Gaussian noise sigma 0.1 and a pilot (the noisy image smoothed with a Gaussian of 1 pixel,
standing in for a network's output), float32. Each step runs at its defaults
(``restore_detail(noisy, pilot)``, ``collaborative_wiener(noisy, pilot)``), noise level read
from the image, with 1 and 2 torch threads; the best wall time of ``--repeats`` runs is
printed with the process CPU time and the load average (on a shared machine the wall time is
inflated). Sizes: 256x256, 512x512, 1024x1024 and a 16x256x256 volume (plane by plane).

Run: ``python benchmarks/post_steps.py``; figures are printed (and kept in
``benchmarks/results/post_steps.json``) and quoted in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _report import machine_line  # noqa: E402
from metrics_speed import load_average, make_inputs  # noqa: E402

SHAPES = ((256, 256), (512, 512), (1024, 1024), (16, 256, 256))


def _best(step, noisy, pilot, repeats: int) -> tuple[float, float]:
    best_wall, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        step(noisy, pilot)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if wall < best_wall:
            best_wall, best_cpu = wall, cpu
    return best_wall, best_cpu


def main(argv: list[str] | None = None) -> None:
    import torch

    from selfdenoise.collaborative import collaborative_wiener
    from selfdenoise.restore import restore_detail

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "post_steps.json")
    args = parser.parse_args(argv)
    print(f"machine: {machine_line()}")
    records = []
    for shape in SHAPES:
        _, noisy, pilot = make_inputs(shape)
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for name, step in (
                ("restore_detail", lambda x, d: restore_detail(x, d, only_if_better=False)),
                ("collaborative_wiener", collaborative_wiener),
            ):
                if name == "restore_detail" and threads == 2:
                    continue  # numpy/scipy: one thread either way
                wall, cpu = _best(step, noisy, pilot, args.repeats)
                megapixels = noisy.size / 1e6
                record = {
                    "shape": "x".join(map(str, shape)),
                    "step": name,
                    "threads": threads,
                    "wall_s": round(wall, 3),
                    "cpu_s": round(cpu, 3),
                    "s_per_megapixel": round(wall / megapixels, 3),
                    "load": load_average(),
                }
                records.append(record)
                print(json.dumps(record), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = {"machine": machine_line(), "date": time.strftime("%Y-%m-%d %H:%M")}
    args.out.write_text(json.dumps({**results, "records": records}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
