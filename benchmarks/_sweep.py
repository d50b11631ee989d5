"""Best-of-k strength sweeps for the classical baselines (the strongest classical anchor)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Sweep:
    """Outcome of :func:`sweep_strength`: the chosen factor and every factor tried."""

    factor: float
    output: np.ndarray
    start_output: np.ndarray
    tried: dict = field(default_factory=dict)  # factor -> (psnr, ssim, seconds)

    @property
    def seconds(self) -> float:
        """Run time of all the denoiser calls of the sweep."""
        return float(sum(t[2] for t in self.tried.values()))


def sweep_strength(
    denoise,
    score,
    start: float = 1.0,
    ratio: float = 1.2,
    refine: int = 1,
    limits: tuple = (0.05, 50.0),
    keep: float | None = None,
) -> Sweep:
    """Best-of-k strength on the grid ``start * ratio**(k / 2**refine)`` against a reference.

    ``denoise(factor)`` returns ``(output, seconds)``; ``score(output)`` returns
    ``(psnr, ssim)``. The walk starts at ``start`` and steps by ``ratio`` in the direction that
    raises PSNR until it falls (so the best is never at the edge of the walked grid, however
    far from ``start`` it lies), then, ``refine`` times, tries the half-steps around the best.
    The strength-PSNR curves of NL-means and BM3D are unimodal, so this finds the grid's best
    in 5-10 calls instead of a full sweep. ``keep`` (default ``start``) is also run and its
    output kept as ``Sweep.start_output`` (the estimated-sigma setting when the walk starts
    elsewhere).
    """
    start_key = round(start if keep is None else keep, 6)
    tried, outputs = {}, {}

    def psnr(factor: float) -> float:
        key = round(factor, 6)
        if key not in tried:
            out, seconds = denoise(key)
            tried[key] = (*score(out), seconds)
            outputs[key] = out
            leader = max(tried, key=lambda k: tried[k][0])
            for stale in [k for k in outputs if k not in (leader, start_key)]:
                del outputs[stale]
        return tried[key][0]

    psnr(start_key)
    best = start
    for step in (ratio, 1 / ratio):
        while limits[0] <= best * step <= limits[1] and psnr(best * step) > psnr(best):
            best *= step
        if best != start:
            break
    for level in range(1, refine + 1):
        half = ratio ** (0.5**level)
        for step in (half, 1 / half):
            if limits[0] <= best * step <= limits[1] and psnr(best * step) > psnr(best):
                best *= step
                break
    best = max(tried, key=lambda k: tried[k][0])
    return Sweep(best, outputs[best], outputs[start_key], dict(sorted(tried.items())))
