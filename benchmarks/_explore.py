"""What the exploration scripts share (``explore_n2s.py``, ``explore_default.py``, issue 13).

Both take ``VARIANT STEPS IMAGES [JSON settings]``, train on one thread, noise Set12 images
with the quality protocol and append one JSON row per image to ``benchmarks/_work/``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import _baselines as base
import numpy as np
import torch

WORK = Path(__file__).resolve().parent / "_work"


def explore_args(argv: list[str] | None = None) -> tuple[str, int, list[str], dict]:
    """``variant, steps, image names, settings`` from the command line; one torch thread."""
    argv = sys.argv[1:] if argv is None else argv
    torch.set_num_threads(1)
    settings = json.loads(argv[3]) if len(argv) > 3 else {}
    return argv[0], int(argv[1]), argv[2].split(","), settings


def noisy_set12(
    names: list[str], sigma: float = 25
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, clean, noisy)`` per Set12 image: the quality protocol (seed 0, noise index =
    the image number); ``$SET12`` overrides the folder (a worktree's ../shared may be absent)."""
    folder = Path(os.environ.get("SET12", base.SET12))
    for name in names:
        clean = base.load_set12([name], folder=folder)[name]
        yield name, clean, base.add_gaussian_noise(clean, sigma, 0, int(name))


def save_row(row: dict, filename: str) -> None:
    """Round the floats to 3 decimals, print the row and append it to ``_work/filename``."""
    row = {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
    print(json.dumps(row), flush=True)
    with open(WORK / filename, "a") as fh:
        fh.write(json.dumps(row) + "\n")
