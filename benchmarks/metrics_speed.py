"""Time the full metrics table (``selfdenoise.metrics.compare``) on a large 2D image and volume.

Protocol: a seeded synthetic phantom (overlapping disks / balls in [0, 1], float32), the
noisy input ``clean + N(0, 0.1^2)`` and one candidate (the noisy input smoothed with a
Gaussian, sigma 1 pixel, standing in for a denoiser). ``compare({'candidate': output},
reference=clean, noisy=noisy)`` computes every column (PSNR, scale-invariant PSNR, SSIM,
EPI, gradient correlation, Canny preservation and F1, noise sigmas, method-noise
statistics, EPI vs noisy). Wall-clock and process CPU time are reported; on a machine shared
with other jobs the wall time is inflated (the load average is printed alongside).

Run: ``python benchmarks/metrics_speed.py`` (add ``--small`` for a quick check).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from selfdenoise import metrics


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="512x512 and 16x256x256 only")
    parser.add_argument("--repeats", type=int, default=3, help="runs per 2D case (best kept)")
    args = parser.parse_args()
    size_2d, shape_3d = (
        ((512, 512), (16, 256, 256)) if args.small else ((2048, 2048), (64, 1024, 1024))
    )

    print(f"machine: {cpu_model()}, {os.cpu_count()} logical cores, {platform.system()}")
    print(f"python {platform.python_version()}, numpy {np.__version__}")
    print(f"load average before: {load_average()}")
    print("protocol: 1 candidate, reference + noisy given (all columns), float32 inputs\n")
    print("| input | mode | wall s | CPU s | load avg |")
    print("|---|---|---|---|---|")

    clean, noisy, output = make_inputs(size_2d)
    wall, cpu, table = time_compare(clean, noisy, output, args.repeats)
    print(
        f"| {'x'.join(map(str, size_2d))} | 2D, best of {args.repeats} | {wall:.1f} | {cpu:.1f} | {load_average()} |"
    )
    del clean, noisy, output

    clean, noisy, output = make_inputs(shape_3d)
    name = "x".join(map(str, shape_3d))
    for mode, options in [
        ("per slice (2D metrics on every slice)", {"per_slice": True}),
        ("3D (3D SSIM, Canny per slice)", {}),
        ("current slice only (slice_index)", {"slice_index": shape_3d[0] // 2}),
    ]:
        wall, cpu, table = time_compare(clean, noisy, output, 1, **options)
        print(f"| {name} | {mode} | {wall:.1f} | {cpu:.1f} | {load_average()} |", flush=True)
    print("\nlast table (current slice):")
    print(table)


if __name__ == "__main__":
    main()
