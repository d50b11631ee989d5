"""Time the full metrics table (``selfdenoise.metrics.compare``) on a large 2D image and volume.

Protocol: a seeded synthetic phantom (overlapping disks / balls in [0, 1], float32), the
noisy input ``clean + N(0, 0.1^2)`` and one candidate (the noisy input smoothed with a
Gaussian, sigma 1 pixel, standing in for a denoiser). ``compare({'candidate': output},
reference=clean, noisy=noisy)`` computes every column (PSNR, scale-invariant PSNR, SSIM,
EPI, gradient correlation, Canny preservation and F1, noise sigmas, method-noise
statistics, EPI vs noisy). Wall-clock and process CPU time are reported; on a machine shared
with other jobs the wall time is inflated (the load average is printed alongside).

Run: ``python benchmarks/metrics_speed.py`` (add ``--small`` for a quick check); results go
to ``benchmarks/results/metrics_speed.json``, and ``--write-docs`` rebuilds the
``metrics-speed`` section of ``docs/benchmarks.md`` from them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _report import machine_line, markdown_table, write_section  # noqa: E402

from selfdenoise import metrics  # noqa: E402

DEFAULT_OUT = HERE / "results" / "metrics_speed.json"


def load_average() -> str:
    try:
        return " ".join(f"{value:.1f}" for value in os.getloadavg())
    except OSError:
        return "n/a"


def phantom(shape: tuple[int, ...], seed: int = 0, count: int = 60) -> np.ndarray:
    """Overlapping disks (2D) or balls (3D), each drawn in its bounding box only."""
    rng = np.random.default_rng(seed)
    image = np.zeros(shape, dtype=np.float32)
    for _ in range(count):
        centre = [int(rng.integers(0, n)) for n in shape]
        radius = int(rng.integers(8, max(9, min(shape[-2:]) // 12)))
        box = tuple(
            slice(max(0, c - radius), min(n, c + radius + 1))
            for c, n in zip(centre, shape, strict=True)
        )
        grids = np.ogrid[box]
        inside = sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True)) < radius**2
        image[box] += np.float32(rng.uniform(0.2, 1.0)) * inside
    return image / image.max()


def make_inputs(shape: tuple[int, ...], seed: int = 0):
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    clean = phantom(shape, seed)
    noisy = clean + rng.standard_normal(shape, dtype=np.float32) * np.float32(0.1)
    sigma = (0.0,) * (len(shape) - 2) + (1.0, 1.0)
    return clean, noisy, ndi.gaussian_filter(noisy, sigma)


def time_compare(clean, noisy, output, repeats: int, **options) -> tuple[float, float, object]:
    """Best wall time and its CPU time over ``repeats`` runs, and the last table."""
    best_wall, best_cpu, table = float("inf"), float("inf"), None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        table = metrics.compare({"candidate": output}, clean, noisy, **options)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if wall < best_wall:
            best_wall, best_cpu = wall, cpu
    return best_wall, best_cpu, table


def run(args: argparse.Namespace) -> dict:
    """Time every case; return the machine, the load and one record per case."""
    size_2d, shape_3d = (
        ((512, 512), (16, 256, 256)) if args.small else ((2048, 2048), (64, 1024, 1024))
    )
    print(f"machine: {machine_line()}")
    print(f"load average before: {load_average()}")
    print("protocol: 1 candidate, reference + noisy given (all columns), float32 inputs")
    records = []

    def record(shape, mode, wall, cpu) -> None:
        records.append(
            dict(
                shape="x".join(map(str, shape)), mode=mode, wall=wall, cpu=cpu, load=load_average()
            )
        )
        print(f"  {records[-1]}", flush=True)

    clean, noisy, output = make_inputs(size_2d)
    wall, cpu, _ = time_compare(clean, noisy, output, args.repeats)
    record(size_2d, f"2D, best of {args.repeats}", wall, cpu)
    del clean, noisy, output

    clean, noisy, output = make_inputs(shape_3d)
    for mode, options in [
        ("per slice (2D metrics on every slice, averaged)", {"per_slice": True}),
        ("3D (3D SSIM, 3D Laplacian and gradients, Canny per slice)", {}),
        (
            "current slice only (`slice_index`, as the napari widget does)",
            {"slice_index": shape_3d[0] // 2},
        ),
    ]:
        wall, cpu, _ = time_compare(clean, noisy, output, 1, **options)
        record(shape_3d, mode, wall, cpu)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "machine": machine_line(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "peak_rss_mb": peak,
        "records": records,
    }


def report(results: dict, notes: str) -> str:
    """The ``metrics-speed`` section of docs/benchmarks.md."""
    rows = [
        [r["shape"], r["mode"], f"{r['wall']:.1f}", f"{r['cpu']:.1f}", r["load"]]
        for r in results["records"]
    ]
    return "\n\n".join(
        [
            "## Metrics speed (issue #4) — `benchmarks/metrics_speed.py`",
            f"Machine: {results['machine']}. Run {results['date']}; peak memory of the whole "
            f"script {results['peak_rss_mb'] / 1024:.1f} GB.",
            notes.strip(),
            markdown_table(
                ["input", "mode", "wall s", "CPU s", "load average (1, 5, 15 min)"], rows
            ),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="512x512 and 16x256x256 only")
    parser.add_argument("--repeats", type=int, default=3, help="runs per 2D case (best kept)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results (JSON)")
    parser.add_argument("--write-docs", action="store_true", help="rebuild the docs section")
    parser.add_argument("--notes", type=Path, default=HERE / "notes" / "metrics_speed.md")
    args = parser.parse_args(argv)
    if args.write_docs:
        results = json.loads(args.out.read_text())
        write_section("metrics-speed", report(results, args.notes.read_text()))
        return
    results = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
