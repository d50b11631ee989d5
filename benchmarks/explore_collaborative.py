"""Exploration for issue 13 item 2: the collaborative Wiener step (session 30).

Scores :func:`selfdenoise.collaborative.collaborative_wiener` on models trained by
``explore_restore.py train`` (``benchmarks/_work/restore/<method>_<image>.safetensors``) or on
saved Set12 predictions (``_work/pred_<steps>_s<seed>.npz`` of ``explore_ensemble.py``):
the network's output (TTA; with the model's own detail restoration) as the pilot, then the step for each setting of a grid of
``noise_scale`` x ``match_threshold`` and blends 0.5 / 0.7 / 0.85 / 1.0. Rows are appended
to ``benchmarks/_work/exp_collab.jsonl``.

Usage::

    python benchmarks/explore_collaborative.py models neighbor2neighbor heldout astronaut,coins
    python benchmarks/explore_collaborative.py models neighbor2neighbor fmd confocal
    python benchmarks/explore_collaborative.py set12 _work/pred_19638_s0.npz 01,02
    python benchmarks/explore_collaborative.py set12-default _work/pred_39276_s1.npz 01,02
    python benchmarks/explore_collaborative.py cells3d neighbor2neighbor 260

``cells3d`` trains a 3D model (``ZYX``, seed 0) on real_data.py's cells3d volume (real
confocal nuclei with added Poisson-Gaussian noise) for the given steps, saves it under
``_work/restore/<method>_cells3d.safetensors`` (loaded if there) and scores the step plane by
plane against the reference (no TTA; the match threshold at its default).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _explore import WORK, noisy_set12
from explore_restore import MODELS, SETS, _psnr

ROWS = WORK / "exp_collab.jsonl"
GRID = [
    {"noise_scale": scale, "match_threshold": threshold}
    for scale in (0.75, 1.0, 1.25, 1.5)
    for threshold in (0.64, 1.5, 4.0)
]
BLENDS = (0.5, 0.7, 0.85, 1.0)


def _cells3d(method: str, steps: int):
    from real_data import cells3d_pair

    from selfdenoise import Denoiser

    noisy, reference = cells3d_pair()
    path = MODELS / f"{method}_cells3d.safetensors"
    if path.exists():
        model = Denoiser.load(path, device="cpu")
    else:
        model = Denoiser(method, "ZYX", steps=steps, device="cpu", seed=0)
        model.fit(noisy)
        model.save(path)
    yield "cells3d", "cells3d", reference, noisy, model.predict(noisy, collaborative_filter=False)


def _pilots(command: str, source: str, image_set: str, names: list[str]):
    """``(image_set, name, clean, noisy, pilot)`` per image."""
    if command == "cells3d":
        yield from _cells3d(source, int(names[0]))
        return
    if command == "set12":
        predictions = np.load(source)
        for name, clean, noisy in noisy_set12(names):
            yield "set12", name, clean, noisy, predictions[f"{name}_tta"]
        return
    from selfdenoise import Denoiser

    for name, clean, noisy in SETS[image_set](names):
        model = Denoiser.load(MODELS / f"{source}_{name}.safetensors", device="cpu")
        yield (
            image_set,
            name,
            clean,
            noisy,
            model.predict(noisy, tta=True, collaborative_filter=False),
        )  # own restore


def score_default(source: str, names: list[str]) -> None:
    """The step at its defaults on saved Set12 predictions, plain and TTA (``set12-default``)."""
    import _baselines as base

    from selfdenoise.collaborative import collaborative_wiener

    predictions = np.load(source)
    for name, clean, noisy in noisy_set12(names):
        row = {"source": source, "set": "set12-default", "image": name}
        for key in ("plain", "tta"):
            pilot = predictions[f"{name}_{key}"]
            row[key] = base.scores(clean, pilot)[0]
            filtered = collaborative_wiener(noisy.astype(np.float32), pilot)
            row[f"{key}_collab"], row[f"{key}_collab_ssim"] = base.scores(clean, filtered)
        with ROWS.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)


def score(command: str, source: str, image_set: str, names: list[str]) -> None:
    from selfdenoise.collaborative import collaborative_wiener

    for set_name, name, clean, noisy, pilot in _pilots(command, source, image_set, names):
        row = {"source": source, "set": set_name, "image": name}
        row["pilot"] = _psnr(set_name, clean, pilot)
        grid = GRID if set_name != "cells3d" else [g for g in GRID if g["match_threshold"] == 0.64]
        for settings in grid:
            started = time.perf_counter()
            noisy32 = noisy.astype(np.float32)
            filtered = collaborative_wiener(noisy32, pilot, blend=1.0, **settings)
            tag = ",".join(f"{key}={value}" for key, value in settings.items())
            row[f"{tag};seconds"] = time.perf_counter() - started
            for blend in BLENDS:
                mixed = pilot + blend * (filtered - pilot)
                row[f"{tag};a{blend}"] = _psnr(
                    image_set if image_set.startswith("fmd") else "", clean, mixed
                )
        with ROWS.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(name, f"pilot {row['pilot']:.2f}", flush=True)


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    if sys.argv[1] == "set12-default":
        score_default(sys.argv[2], sys.argv[3].split(","))
    elif sys.argv[1] == "set12":
        score("set12", sys.argv[2], "set12", sys.argv[3].split(","))
    elif sys.argv[1] == "cells3d":
        score("cells3d", sys.argv[2], "cells3d", [sys.argv[3]])
    else:
        score("models", sys.argv[2], sys.argv[3], sys.argv[4].split(","))
