"""Noise2Same's CPU recipe (issue #13): lambda_inv from the noise level, a cheaper network.

The quality test trains on a 128x128 noisy crop of scikit-image's ``astronaut`` (gray,
Gaussian sigma 25/255, seed 0) with step budgets (not wall-clock budgets), on one thread.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from selfdenoise.config import make_config


def test_noise2same_recipe_defaults():
    config = make_config("noise2same", "YX")
    assert config.lambda_inv == "auto"
    assert config.network.base_channels == 16
    assert not config.network.residual_blocks
    assert (config.masking.mode, config.masking.fraction) == ("stratified", 0.005)
    assert config.masking.fill == "donut"
    assert (config.training.learning_rate, config.training.schedule) == (3e-3, "onecycle")
    assert make_config("noise2same", "YX", lambda_inv=0.9).lambda_inv == 0.9


def test_auto_lambda_inv_is_twice_the_normalised_noise_sigma(torch_single_thread):
    from selfdenoise import Denoiser
    from selfdenoise.metrics import estimate_noise_sigma

    rng = np.random.default_rng(0)
    clean = np.kron(rng.uniform(0, 1, (8, 8)), np.ones((8, 8)))
    noisy = (clean + rng.normal(0, 0.1, clean.shape)).astype(np.float32)
    model = Denoiser("noise2same", "YX", steps=1, batch_size=2, validation_fraction=0.0, seed=0)
    model.fit(noisy)
    expected = 2 * estimate_noise_sigma((noisy - noisy.mean()) / noisy.std())
    assert model.lambda_inv == pytest.approx(expected, rel=1e-3)
    assert 0.3 < model.lambda_inv < 0.9  # well below the official fixed 2
