"""Exploration for issue 13 item 2: Neighbor2Neighbor's regulariser weight and the noise
(session 31).

The real-data runs (FMD pairs and held-out channels, scikit-image crops with Gaussian noise)
train with ``explore_restore.py train ... '{"regulariser_weight": 0}' _g0`` and are scored
with ``explore_collaborative.py models``. This script covers the rest, one torch thread,
seed 0, the default recipe in bf16 where the CPU has it (``amp='auto'``):

- ``photon``: natural images with photon noise, which tell the noise from the content:
  ``samples.noisy_2d`` (the demo's ``camera``, 20 photons at full intensity, read noise
  0.04) and a 256x256 crop of scikit-image's ``astronaut`` (grey) with the same noise
  (``default_rng(5)``); 3273 steps per weight, TTA, the network alone and its default
  pipeline (with the collaborative step).
- ``cells3d``: real_data.py's cells3d volume (real nuclei, added Poisson-Gaussian noise) in
  3D, 260 steps per weight, no TTA.

Rows (``{"case", "regulariser_weight", "steps", "train_seconds", "network", "pipeline",
"photon_fraction"}``) are appended to ``benchmarks/_work/exp_regulariser.jsonl``.

Usage::

    python benchmarks/explore_regulariser.py photon camera 0,2
    python benchmarks/explore_regulariser.py cells3d cells3d 0,2
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _explore import WORK

ROWS = WORK / "exp_regulariser.jsonl"


def _photon_case(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(noisy, clean)`` of a natural image with photon noise."""
    from selfdenoise.samples import noisy_2d

    if name == "camera":
        return noisy_2d(seed=0)
    import skimage.data
    from skimage.color import rgb2gray

    clean = rgb2gray(skimage.data.astronaut())[100:356, 100:356].astype(np.float32)
    rng = np.random.default_rng(5)
    noisy = rng.poisson(clean * 20) / 20 + rng.normal(0, 0.04, clean.shape)
    return noisy.astype(np.float32), clean


def _psnr(reference: np.ndarray, image: np.ndarray, data_range: float = 1.0) -> float:
    error = np.mean((np.asarray(reference, np.float64) - image) ** 2)
    return float(10 * np.log10(data_range**2 / error))


def run(case: str, name: str, weights: list[float]) -> None:
    from selfdenoise import Denoiser
    from selfdenoise.metrics import photon_noise_fraction

    if case == "cells3d":
        from real_data import cells3d_pair

        noisy, clean = cells3d_pair()
        axes, steps, tta, data_range = "ZYX", 260, False, float(np.ptp(clean))
    else:
        noisy, clean = _photon_case(name)
        axes, steps, tta, data_range = "YX", 3273, True, 1.0
    middle = noisy[len(noisy) // 2] if noisy.ndim == 3 else noisy
    for weight in weights:
        model = Denoiser(
            "neighbor2neighbor", axes, steps=steps, device="cpu", seed=0, regulariser_weight=weight
        )
        started = time.perf_counter()
        model.fit(noisy)
        row = {
            "case": name,
            "regulariser_weight": weight,
            "steps": steps,
            "train_seconds": round(time.perf_counter() - started, 1),
            "photon_fraction": round(photon_noise_fraction(middle), 3),
        }
        alone = model.predict(noisy, tta=tta, collaborative_filter=False, restore_detail=False)
        row["network"] = _psnr(clean, alone, data_range)
        row["pipeline"] = _psnr(clean, model.predict(noisy, tta=tta), data_range)
        with ROWS.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    run(sys.argv[1], sys.argv[2], [float(w) for w in sys.argv[3].split(",")])
