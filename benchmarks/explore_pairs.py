"""Exploration for issue 13: Neighbor2Neighbor's pixel pairs (session 32).

The paper pairs pixels that are neighbours in Y or X (``neighbour_pairs='adjacent'``); noise
shared by such neighbours is shared by the pairs too, and the network learns to keep it.
``'diagonal'`` pairs the diagonal pixels of each 2x2 cell. This script trains one model per
image with a pair set and scores it with TTA, without (``plain``) and with the collaborative
step (``user``: the default pipeline; the step keeps the network's output where the
residual shows shared noise, ``collaborative.CORRELATION_LIMIT``). One torch thread,
seed 0, the default recipe (bf16 where the CPU has it).

Image sets: those of ``explore_restore.py`` (``heldout``, ``fmd``, ``fmd-heldout``), plus

- ``heldout-corr``: the ``heldout`` crops with Gaussian noise smoothed along X
  (``real_data.correlated_noise``, sigma 25/255, seed = the crop's index);
- ``photon``: ``explore_regulariser.py``'s natural images with photon noise (``camera``,
  the demo sample, and ``astronaut``).

Usage::

    python benchmarks/explore_pairs.py diagonal 3273 fmd confocal,widefield \\
        '{"regulariser_weight": 0}'
    python benchmarks/explore_pairs.py score-existing neighbor2neighbor_g0 fmd confocal

Models go to ``_work/restore/neighbor2neighbor_pairs-<set>[_g0][_corr]_<image>.safetensors``
(loaded when there); rows to ``_work/exp_pairs.jsonl``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _explore import save_row
from explore_restore import MODELS, SETS, _psnr

from selfdenoise import Denoiser


def heldout_correlated(names: list[str]):
    """The ``heldout`` crops with Gaussian noise correlated along X (``[1, 2, 1]``
    smoothing, neighbour correlation 0.67), sigma 25/255."""
    from explore_restore import heldout
    from real_data import correlated_noise

    for index, (name, clean, _) in enumerate(heldout(names)):
        yield name, clean, correlated_noise(clean, 25 / 255, index)


def photon(names: list[str]):
    """``explore_regulariser.py``'s natural images with photon noise."""
    from explore_regulariser import _photon_case

    for name in names:
        noisy, clean = _photon_case(name)
        yield name, np.asarray(clean, np.float64), np.asarray(noisy, np.float64)


SETS = {**SETS, "heldout-corr": heldout_correlated, "photon": photon}


def _score(model: Denoiser, label: str, image_set: str, name: str, clean, noisy) -> None:
    row = {"model": label, "set": image_set, "image": name, "steps": model.steps_trained}
    plain = model.predict(noisy, tta=False, restore_detail=False, collaborative_filter=False)
    row["plain"] = _psnr(image_set, clean, plain)
    user = model.predict(noisy, tta=True, restore_detail=False, collaborative_filter=True)
    row["user"] = _psnr(image_set, clean, user)
    save_row(row, "exp_pairs.jsonl")


def _stem(pairs: str, options: dict, image_set: str) -> str:
    no_regulariser = "_g0" if options.get("regulariser_weight") == 0 else ""
    correlated = "_corr" if image_set == "heldout-corr" else ""
    return f"neighbor2neighbor_pairs-{pairs}{no_regulariser}{correlated}"


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    if argv[0] == "score-existing":
        stem, image_set, names = argv[1], argv[2], argv[3].split(",")
        for name, clean, noisy in SETS[image_set](names):
            model = Denoiser.load(MODELS / f"{stem}_{name}.safetensors", device="cpu")
            _score(model, stem, image_set, name, clean, noisy)
        return
    pairs, steps, image_set, names = argv[0], int(argv[1]), argv[2], argv[3].split(",")
    options = json.loads(argv[4]) if len(argv) > 4 else {}
    stem = _stem(pairs, options, image_set)
    for name, clean, noisy in SETS[image_set](names):
        path = MODELS / f"{stem}_{name}.safetensors"
        if path.exists():
            model = Denoiser.load(path, device="cpu")
        else:
            model = Denoiser(
                "neighbor2neighbor", "YX", steps=steps, device="cpu", seed=0,
                neighbour_pairs=pairs, **options,
            )  # fmt: skip
            started = time.perf_counter()
            model.fit(noisy)
            model.save(path)
            print(f"{name}: {steps} steps in {time.perf_counter() - started:.0f} s", flush=True)
        _score(model, stem, image_set, name, clean, noisy)


if __name__ == "__main__":
    main(sys.argv[1:])
