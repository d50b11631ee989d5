"""Tests of selfdenoise.diagnostics: self-sensitivity and detail correlation."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from scipy import ndimage  # noqa: E402
from torch import nn  # noqa: E402

from selfdenoise._errors import SelfDenoiseError  # noqa: E402
from selfdenoise.diagnostics import detail_correlation, self_sensitivity  # noqa: E402


def _fixed_conv(centre: float) -> nn.Conv2d:
    """3x3 convolution: ``centre`` at the middle, 0.1 on the 8 neighbours."""
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(0.1)
        conv.weight[0, 0, 1, 1] = centre
    return conv


@pytest.mark.parametrize("centre", [0.0, 0.3, 1.0])
def test_self_sensitivity_reads_the_centre_weight_of_a_convolution(centre):
    image = np.random.default_rng(0).normal(size=(40, 50)).astype(np.float32)
    result = self_sensitivity(_fixed_conv(centre), image, n_pixels=20, patch=16, batch_size=7)
    assert result.values.shape == (20, 1)
    np.testing.assert_allclose(result.values, centre, atol=1e-6)
    assert result.mean == pytest.approx(centre, abs=1e-6)
    assert result.std == pytest.approx(0.0, abs=1e-6)


def test_self_sensitivity_of_a_nonlinear_map_is_its_local_derivative():
    class Square(nn.Module):
        def forward(self, x):
            return x**2

    image = np.random.default_rng(1).normal(size=(2, 16, 16)).astype(np.float32)
    result = self_sensitivity(Square(), image, n_pixels=5, patch=8, seed=3, ndim=2)
    rng = np.random.default_rng(3)
    rows, cols = rng.integers(0, 9, 5), rng.integers(0, 9, 5)
    expected = np.stack([2 * image[c, rows + 4, cols + 4] for c in range(2)], axis=1)
    np.testing.assert_allclose(result.values, expected, rtol=1e-5)


def test_self_sensitivity_restores_training_mode_and_rejects_bad_input():
    conv = _fixed_conv(0.5).train()
    self_sensitivity(conv, np.zeros((8, 8), np.float32), n_pixels=2, patch=8)
    assert conv.training
    with pytest.raises(SelfDenoiseError):
        self_sensitivity(conv, np.zeros((8, 8), np.float32), n_pixels=0)


def test_detail_correlation_separates_wiener_like_from_blind_spot_filters():
    noisy = np.random.default_rng(0).normal(size=(128, 128))
    ring = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]) / 4
    blind_spot = ndimage.correlate(noisy, ring, mode="reflect")
    smooth = ndimage.gaussian_filter(noisy, 1.0)
    assert detail_correlation(noisy, noisy) == pytest.approx(1.0)
    assert detail_correlation(noisy, blind_spot) < -0.5
    assert detail_correlation(noisy, smooth) > 0.2


@pytest.mark.parametrize("shape", [(40, 48), (10, 24, 20)])
def test_detail_correlation_is_epi_with_the_shared_laplacian(shape):
    # One Laplacian (metrics/_edges.laplacian) serves EPI and this readout.
    from selfdenoise.metrics import epi

    rng = np.random.default_rng(2)
    noisy = rng.normal(size=shape)
    denoised = ndimage.gaussian_filter(noisy, 1.0)
    mask = rng.random(shape) < 0.5
    value = detail_correlation(noisy, denoised, mask=mask)
    assert value == epi(noisy, denoised, mask=mask)
    high_noisy, high_denoised = ndimage.laplace(noisy)[mask], ndimage.laplace(denoised)[mask]
    assert value == pytest.approx(np.corrcoef(high_noisy, high_denoised)[0, 1])


# --- after training: the readouts tell a blind-spot-like Noise2Same from a Wiener-like one ---

TRAIN_STEPS = 120


def _noisy_crop(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from skimage.color import rgb2gray
    from skimage.data import astronaut

    clean = rgb2gray(astronaut())[40:168, 180:308].astype(np.float64)
    noisy = clean + np.random.default_rng(seed).normal(0.0, 25 / 255, clean.shape)
    return noisy.astype(np.float32), clean


def _trained(noisy: np.ndarray, **settings):
    from selfdenoise import Denoiser

    model = Denoiser(
        "noise2same",
        "YX",
        steps=TRAIN_STEPS,
        batch_size=4,
        validation_fraction=0.0,
        device="cpu",
        seed=0,
        **settings,
    )
    model.fit(noisy)
    return model


@pytest.mark.slow
def test_diagnostics_after_training_tell_the_blind_spot_recipe_from_the_fixed_one(
    torch_single_thread,
):
    """The old Noise2Same recipe (Gaussian fill, fixed lambda_inv = 2, about 5x the paper's
    2 sigma here) trains to a near blind spot whose output detail anti-correlates with the
    input's; the recipe (donut fill, lambda_inv = 2 sigma) leans on its own pixel with a
    moderate weight and keeps the input's detail, as an MMSE-like denoiser does."""
    pytest.importorskip("skimage")
    noisy, _ = _noisy_crop()
    readouts = {}
    for name, settings in (
        ("old", {"fill": "gaussian", "lambda_inv": 2.0}),
        ("recipe", {}),
    ):
        model = _trained(noisy, **settings)
        sensitivity = self_sensitivity(model, noisy, n_pixels=32)
        readouts[name] = (
            sensitivity.mean,
            detail_correlation(
                noisy, model.predict(noisy, restore_detail=False, collaborative_filter=False)
            ),
        )
    (old_sens, old_detail), (new_sens, new_detail) = readouts.values()
    assert 0.0 <= old_sens < 0.05, readouts
    assert 0.05 < new_sens < 0.6, readouts
    assert new_detail > 0.0 > old_detail, readouts
