"""Training step cost on the CPU: A/B of the up-sampling gradient, or of float32 against bf16.

The U-Net's decoder concatenates each up-sampled map with its skip connection. On the CPU the
gradient then reaches the bilinear up-sampling backward as a channel slice of a channels-last
tensor, which PyTorch takes through its slow NCHW path; in 2D ``nets.unet.Upsample`` now hands
it a channels-last copy instead (same values, bit for bit). In 3D the two variants run the
same code since the 3D runs measured no gain (``--ndim 3`` then times noise). This script trains each
method's default recipe for a fixed number of steps with and without that hand-over
("before": ``Upsample.forward`` as it was), interleaving the two so that both see the same
load, and prints milliseconds per step (validation and set-up included, as in the calibrated
CPU-minute budgets) and the ratio of the medians.

``--compare bf16`` times float32 (``amp="off"``, "before") against bf16 autocast
(``amp="bf16"``, "now"), what ``amp="auto"`` picks on CPUs with AMX.

Examples
--------
python benchmarks/train_step.py --threads 1 --reps 5
python benchmarks/train_step.py --methods neighbor2neighbor --ndim 3 --steps 6
python benchmarks/train_step.py --compare bf16 --threads 2 --reps 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import _baselines as base
import numpy as np
from _calibration import calibration_image
from _report import machine_line


def before_forward(self, x):
    """``Upsample.forward`` before 2026-11-29: no channels-last hand-over of the gradient."""
    import torch.nn.functional as F

    mode = "bilinear" if x.ndim == 4 else "trilinear"
    return F.interpolate(self.reduce(x), scale_factor=2, mode=mode, align_corners=False)


def noisy_input(ndim: int) -> np.ndarray:
    """Set12 05 at sigma 25 (2D) or a 32x128x128 Poisson-Gaussian volume (3D)."""
    if ndim == 2:
        return calibration_image()
    noisy, _ = base.poisson_gaussian_volume((32, 128, 128), seed=0)
    return noisy


def ms_per_step(method: str, noisy: np.ndarray, steps: int, amp: str = "off") -> float:
    """Wall-clock milliseconds per step of a fresh default-recipe model trained ``steps``."""
    from selfdenoise import Denoiser

    axes = "ZYX" if noisy.ndim == 3 else "YX"
    model = Denoiser(method, axes, steps=steps, device="cpu", seed=0, amp=amp)
    started = time.perf_counter()
    model.fit(noisy)
    return (time.perf_counter() - started) / steps * 1e3


def compare(
    method: str, noisy: np.ndarray, steps: int, reps: int, variants: str = "upsample"
) -> dict[str, list[float]]:
    """``{"before": [...], "now": [...]}`` milliseconds per step, the variants interleaved.

    ``variants``: ``"upsample"`` (the up-sampling gradient before and now, both float32) or
    ``"bf16"`` (float32 before, bf16 autocast now).
    """
    from selfdenoise.nets import unet

    now_forward = unet.Upsample.forward
    if variants == "bf16":
        runs = (("before", now_forward, "off"), ("now", now_forward, "bf16"))
    else:
        runs = (("before", before_forward, "off"), ("now", now_forward, "off"))
    times: dict[str, list[float]] = {"before": [], "now": []}
    try:
        for _ in range(reps):
            for name, forward, amp in runs:
                unet.Upsample.forward = forward
                times[name].append(ms_per_step(method, noisy, steps, amp))
    finally:
        unet.Upsample.forward = now_forward
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="neighbor2neighbor,noise2same,n2v2")
    parser.add_argument("--ndim", default="2", help="2, 3 or 2,3")
    parser.add_argument("--steps", type=int, default=20, help="steps per timed run")
    parser.add_argument("--reps", type=int, default=3, help="timed runs per variant")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--compare",
        choices=("upsample", "bf16"),
        default="upsample",
        help="before/now: the up-sampling gradient (float32), or float32 against bf16",
    )
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    print(f"machine: {machine_line()}")
    variants = {
        "upsample": "before = Upsample without the channels-last gradient, float32 both",
        "bf16": 'before = amp="off" (float32), now = amp="bf16"',
    }[args.compare]
    print(
        f"protocol: default recipe, CPU, {args.threads} torch thread(s), {args.steps} steps per "
        f"run, {args.reps} runs per variant, interleaved; {variants}"
    )
    print("| method | input | before (ms/step) | now (ms/step) | now / before |")
    print("|---|---|---|---|---|")
    for ndim in (int(n) for n in args.ndim.split(",")):
        noisy = noisy_input(ndim)
        ms_per_step(args.methods.split(",")[0], noisy, 2)  # warm-up: imports, allocator
        for method in args.methods.split(","):
            times = compare(method, noisy, args.steps, args.reps, args.compare)
            before, now = statistics.median(times["before"]), statistics.median(times["now"])
            shape = "x".join(map(str, noisy.shape))
            print(f"| {method} | {shape} | {before:.0f} | {now:.0f} | {now / before:.3f} |")
            print(
                f"  runs: before {[round(t) for t in times['before']]}, now {[round(t) for t in times['now']]}",
                flush=True,
            )


if __name__ == "__main__":
    main()
