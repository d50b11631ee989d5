"""Neighbor2Neighbor's pixel pairs (issue #13): adjacent (the paper's) or diagonal, for noise
shared by neighbouring pixels.

The quality test trains both pair sets on a seeded image whose noise is smoothed along X and
asserts the measured gain of diagonal pairs; the others check the pairs drawn, the setting's
checks and its way through the CLI and the saved model.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from _synthetic import psnr, x_correlated_2d
from selfdenoise import Denoiser, SelfDenoiseError


def _pairs(kind: str):
    import torch

    from selfdenoise.methods.neighbor2neighbor import neighbour_pair_indices, neighbour_subsample

    rows, cols = torch.meshgrid(torch.arange(8.0), torch.arange(12.0), indexing="ij")
    coords = torch.stack([rows, cols])[None].repeat(3, 1, 1, 1)  # (B=3, C=2, 8, 12)
    shape = tuple(coords.shape)
    first, second = neighbour_pair_indices(shape, torch.Generator().manual_seed(0), pairs=kind)
    return neighbour_subsample(coords, first), neighbour_subsample(coords, second)


def test_diagonal_pairs_are_the_cells_diagonal_neighbours():
    first, second = _pairs("diagonal")
    offset = (first - second).abs()
    assert bool((offset == 1).all())  # one row and one column apart: across the diagonal
    assert bool((first // 2 == second // 2).all())  # within the same 2x2 cell
    # Both diagonals and both orders are drawn.
    slope = (first[:, 0] - second[:, 0]) * (first[:, 1] - second[:, 1])
    assert set(slope.unique().tolist()) == {-1.0, 1.0}
    adjacent_first, adjacent_second = _pairs("adjacent")
    assert bool(((adjacent_first - adjacent_second).abs().sum(dim=1) == 1).all())


def test_pairs_setting_is_checked_and_kept():
    from selfdenoise.config import NEIGHBOUR_PAIRS, make_config
    from selfdenoise.methods import get_objective, neighbor2neighbor

    assert neighbor2neighbor.NEIGHBOUR_PAIRS == NEIGHBOUR_PAIRS
    assert make_config("neighbor2neighbor").neighbour_pairs == "auto"  # read from the noise
    config = make_config(
        "neighbor2neighbor", "YX", neighbour_pairs="diagonal", regulariser_weight=2
    )
    assert get_objective(config).neighbour_pairs == "diagonal"
    with pytest.raises(SelfDenoiseError, match="neighbour_pairs must be 'auto' or one of adj"):
        make_config("neighbor2neighbor", "YX", neighbour_pairs="anti-diagonal")


def test_diagonal_pairs_remove_noise_shared_by_neighbours(torch_single_thread):
    noisy, clean = x_correlated_2d()
    scores = {}
    for kind in ("adjacent", "diagonal"):
        model = Denoiser(
            "neighbor2neighbor",
            "YX",
            neighbour_pairs=kind,
            regulariser_weight=0.0,
            base_channels=16,
            steps=300,
            batch_size=8,
            device="cpu",
            seed=0,
        )
        model.fit(noisy)
        # The collaborative step reads the shared noise in the residual and keeps the
        # network's output; the note says so, and names diagonal pairs to a model without.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scores[kind] = psnr(clean, model.predict(noisy))
        notes = [str(w.message) for w in caught if "noise shared by neighbouring" in str(w.message)]
        assert len(notes) == 1, notes
        assert ("neighbour_pairs='diagonal'" in notes[0]) == (kind == "adjacent"), notes
    # Measured (300 steps; images of seeds 0, 1, 2): noisy 16.47-16.48 dB, adjacent
    # 23.02-23.53, diagonal 26.68-27.48 (+3.6 to +4.0 dB).
    assert psnr(clean, noisy) < 17.0
    assert scores["diagonal"] > scores["adjacent"] + 2.0, scores
    assert scores["diagonal"] > psnr(clean, noisy) + 8.0, scores


def test_cli_neighbour_pairs_reach_the_saved_model(tmp_path):
    from selfdenoise.cli import main

    noisy, _ = x_correlated_2d()
    np.save(tmp_path / "noisy.npy", noisy)
    model = tmp_path / "model.safetensors"
    argv = ["train", str(tmp_path / "noisy.npy"), "--axes", "YX", "--out", str(model)]
    fast = ["--steps", "2", "--patch", "32,32", "--batch", "2", "--quiet"]
    assert main([*argv, *fast, "--neighbour-pairs", "diagonal"]) == 0
    assert Denoiser.load(model).config.neighbour_pairs == "diagonal"


def test_shared_noise_note_names_what_trains_on_such_noise():
    from selfdenoise._denoiser_prediction import shared_noise_note
    from selfdenoise.config import make_config

    def note(method: str, **settings) -> str:
        return shared_noise_note(make_config(method, "YX", **settings), 0.42)

    assert "(shared-noise readout 0.42)" in note("neighbor2neighbor")
    assert "\n" not in note("neighbor2neighbor")
    assert "neighbour_pairs='diagonal'" in note("neighbor2neighbor")  # pairs not recorded
    diagonal = shared_noise_note(make_config("neighbor2neighbor", "YX"), 0.42, "diagonal")
    assert "neighbour_pairs" not in diagonal
    assert "struct_axis" in note("n2v2")
    assert "struct_axis" not in note("n2v2", struct_axis=-1)
    assert note("noise2same").startswith("noise shared by neighbouring pixels: ")
