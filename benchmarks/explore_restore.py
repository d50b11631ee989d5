"""Exploration for issue 13: detail restoration after prediction (session 29).

Trains one model per image at a step budget (one torch thread, seed 0, the method's default
recipe, ``amp='auto'``), saves it under ``benchmarks/_work/restore/``, then scores the saved
models: the network's output alone, and :func:`selfdenoise.restore.restore_detail` with and
without its risk check (``only_if_better``), plain and with 8-fold TTA. Rows are appended to
``benchmarks/_work/exp_restore.jsonl``.

Image sets (none of them Set12, which the quality benchmark covers):

- ``heldout``: 256x256 centre crops of scikit-image's bundled ``astronaut`` (grey), ``coins``,
  ``chelsea``, ``coffee``, ``clock`` and ``brick``, Gaussian sigma 25/255
  (``default_rng([1, index])``), not clipped; PSNR with data range 1.
- ``fmd``: the FMD pairs of ``../shared/data/fmd_pairs`` (``confocal``: confocal FISH;
  ``widefield``: widefield BPAE; ``imageR1``), PSNR after a linear fit to the reference, as in
  ``real_data.py``.
- ``fmd-heldout``: real widefield FMD images that are not benchmark targets (session 31):
  ``stackG`` and ``stackB``, channels 1 and 2 of ``BPAE_3ch_stack`` (channel 0 is
  ``image_R_1``), and ``rgbR``, ``rgbG``, ``rgbB``, the channels of ``widefield_BPAE_rgb``;
  scored as ``fmd``.

Usage::

    python benchmarks/explore_restore.py train noise2same 2231 heldout astronaut,coins
    python benchmarks/explore_restore.py score noise2same heldout astronaut,coins
    python benchmarks/explore_restore.py train neighbor2neighbor 3273 fmd confocal \\
        '{"regulariser_weight": 0}' _g0
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _baselines as base
from _explore import WORK

MODELS = WORK / "restore"
ROWS = WORK / "exp_restore.jsonl"
HELDOUT = ("astronaut", "coins", "chelsea", "coffee", "clock", "brick")
FMD = {
    "confocal": ("confocal_FISH_3_noisy.png", "confocal_FISH_3_gt.png"),
    "widefield": ("BPAE_R_noisy.png", "BPAE_R_gt.png"),
    "imageR1": ("image_R_1_raw001.png", "image_R_1_avg50_gt.png"),
}


def heldout(names: list[str]) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, clean, noisy)`` for scikit-image crops with Gaussian sigma 25/255."""
    import skimage.data
    from skimage.color import rgb2gray

    for index, name in enumerate(HELDOUT):
        if name not in names:
            continue
        image = getattr(skimage.data, name)()
        image = rgb2gray(image) if image.ndim == 3 else image / 255.0
        top, left = (image.shape[0] - 256) // 2, (image.shape[1] - 256) // 2
        clean = np.ascontiguousarray(image[top : top + 256, left : left + 256], np.float64)
        noise = np.random.default_rng([1, index]).normal(0, 25 / 255, clean.shape)
        yield name, clean, clean + noise


def fmd(names: list[str]) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, reference, noisy)`` for the FMD pairs, scaled to [0, 1]."""
    from skimage.io import imread

    folder = base.SHARED_DATA / "fmd_pairs"
    for name in names:
        noisy_file, clean_file = FMD[name]
        clean = imread(folder / clean_file).astype(np.float64) / 255
        yield name, clean, imread(folder / noisy_file).astype(np.float64) / 255


FMD_HELDOUT = {
    "stackG": ("BPAE_3ch_stack", 1),
    "stackB": ("BPAE_3ch_stack", 2),
    "rgbR": ("widefield_BPAE_rgb", 0),
    "rgbG": ("widefield_BPAE_rgb", 1),
    "rgbB": ("widefield_BPAE_rgb", 2),
}


def fmd_heldout(names: list[str]) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, reference, noisy)`` for the held-out FMD channels, scaled to [0, 1]."""
    import tifffile
    from skimage.io import imread

    folder = base.SHARED_DATA / "fmd_pairs"
    for name in names:
        stem, channel = FMD_HELDOUT[name]
        if stem.endswith("stack"):
            noisy = tifffile.imread(folder / f"{stem}_noisy.tif")[channel]
            clean = tifffile.imread(folder / f"{stem}_gt.tif")[channel]
        else:
            noisy = imread(folder / f"{stem}_noisy.png")[..., channel]
            clean = imread(folder / f"{stem}_gt.png")[..., channel]
        yield name, clean.astype(np.float64) / 255, noisy.astype(np.float64) / 255


def _psnr(image_set: str, clean: np.ndarray, image: np.ndarray) -> float:
    image = np.asarray(image, np.float64)
    if image_set.startswith("fmd"):  # linear fit to the reference, as real_data.py scores FMD
        design = np.stack([image.ravel(), np.ones(image.size)], axis=1)
        (scale, offset), *_ = np.linalg.lstsq(design, clean.ravel(), rcond=None)
        image = scale * image + offset
    return float(10 * np.log10(1.0 / np.mean((clean - image) ** 2)))


def train(
    method: str, steps: int, image_set: str, names: list[str], options=None, suffix=""
) -> None:
    """Train and save one model per image; ``options`` go to ``Denoiser`` and ``suffix`` to
    the file name (``<method><suffix>_<image>.safetensors``)."""
    from selfdenoise import Denoiser

    MODELS.mkdir(parents=True, exist_ok=True)
    for name, _, noisy in SETS[image_set](names):
        model = Denoiser(method, "YX", steps=steps, device="cpu", seed=0, **(options or {}))
        started = time.perf_counter()
        model.fit(noisy)
        model.save(MODELS / f"{method}{suffix}_{name}.safetensors")
        print(
            f"{method} {name}: {steps} steps in {time.perf_counter() - started:.0f} s", flush=True
        )


def score(method: str, image_set: str, names: list[str]) -> None:
    from selfdenoise import Denoiser
    from selfdenoise.restore import estimated_error_change, restore_detail

    for name, clean, noisy in SETS[image_set](names):
        model = Denoiser.load(MODELS / f"{method}_{name}.safetensors", device="cpu")
        row = {"method": method, "set": image_set, "image": name, "steps": model.steps_trained}
        for label, tta in (("", False), ("_tta", True)):
            plain = model.predict(noisy, tta=tta, restore_detail=False, collaborative_filter=False)
            row["plain" + label] = _psnr(image_set, clean, plain)
            row["restored" + label] = _psnr(image_set, clean, restore_detail(noisy, plain))
            ungated = restore_detail(noisy, plain, only_if_better=False)
            row["ungated" + label] = _psnr(image_set, clean, ungated)
            row["sure_change" + label] = estimated_error_change(noisy, plain)
        with ROWS.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(" ".join(f"{k} {v:.2f}" if isinstance(v, float) else str(v) for k, v in row.items()))


SETS = {"heldout": heldout, "fmd": fmd, "fmd-heldout": fmd_heldout}

if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    command, method = sys.argv[1], sys.argv[2]
    if command == "train":
        options = json.loads(sys.argv[6]) if len(sys.argv) > 6 else None
        suffix = sys.argv[7] if len(sys.argv) > 7 else ""
        train(method, int(sys.argv[3]), sys.argv[4], sys.argv[5].split(","), options, suffix)
    else:
        score(method, sys.argv[3], sys.argv[4].split(","))
