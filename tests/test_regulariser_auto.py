"""Neighbor2Neighbor's regulariser weight and pixel pairs read from the noise (issue #13 item 2).

``regulariser_weight='auto'`` (the default) trains without the regulariser on photon-limited
data and with the paper's weight otherwise; the decision is
:func:`selfdenoise.metrics.photon_noise_fraction` on the raw training data.
"""

from __future__ import annotations

import numpy as np
import pytest

from selfdenoise import Denoiser, SelfDenoiseError
from selfdenoise.methods.neighbor2neighbor import (
    PAPER_REGULARISER_WEIGHT,
    PHOTON_LIMITED,
    regulariser_weight_from_noise,
)
from selfdenoise.metrics import photon_noise_fraction

TINY = {"base_channels": 4, "depth": 1, "batch_size": 2, "patch_shape": (16, 16), "steps": 2}


def _structure(shape=(96, 96), seed: int = 0) -> np.ndarray:
    """A smooth clean image in [0.05, 1]: a ramp with blobs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]] / shape[0]
    blobs = sum(
        np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.01) for cy, cx in rng.uniform(0, 1, (8, 2))
    )
    return (0.05 + 0.5 * xx + 0.45 * np.clip(blobs, 0, 1)).astype(np.float64)


def _photon_capture(seed: int = 0, offset: float = 100.0) -> np.ndarray:
    """Poisson counts (up to 60 photons) on a camera offset, with read noise, as a camera
    writes them."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(60 * _structure(seed=seed)) + rng.normal(0, 1.5, (96, 96))
    return (offset + counts).astype(np.float32)


def _gaussian_capture(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (_structure(seed=seed) + rng.normal(0, 0.1, (96, 96))).astype(np.float32)


def test_photon_noise_fraction_tells_photon_noise_from_gaussian_noise():
    for seed in range(3):
        # Measured: 1.00 with the camera offset (the line's offset is negative), 0.87-0.96
        # without; 0.01-0.08 for Gaussian noise.
        assert photon_noise_fraction(_photon_capture(seed)) > 0.9
        assert photon_noise_fraction(_photon_capture(seed, offset=0.0)) > 0.8
        assert photon_noise_fraction(_gaussian_capture(seed)) < 0.2
    # Rescaling does not change it; a signal that is not positive reads 0.
    capture = _photon_capture()
    assert photon_noise_fraction(capture / 1000) == pytest.approx(photon_noise_fraction(capture))
    assert photon_noise_fraction(-np.abs(_gaussian_capture())) == 0.0


def test_rule_trains_without_the_regulariser_on_photon_limited_data():
    assert regulariser_weight_from_noise(1.0) == 0.0
    assert regulariser_weight_from_noise(PHOTON_LIMITED) == 0.0
    assert regulariser_weight_from_noise(PHOTON_LIMITED - 0.01) == PAPER_REGULARISER_WEIGHT
    assert regulariser_weight_from_noise(0.0) == PAPER_REGULARISER_WEIGHT
    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(SelfDenoiseError, match="photon_fraction must be in"):
            regulariser_weight_from_noise(bad)


def test_fit_reads_the_weight_from_the_raw_data_and_the_file_keeps_it(tmp_path):
    photon = Denoiser("neighbor2neighbor", "YX", seed=0, device="cpu", **TINY)
    assert photon.config.regulariser_weight == "auto" and photon.regulariser_weight is None
    photon.fit(_photon_capture())  # read in the raw units, before the normalisation
    assert photon.regulariser_weight == 0.0
    gaussian = Denoiser("neighbor2neighbor", "YX", seed=0, device="cpu", **TINY)
    gaussian.fit(_gaussian_capture())
    assert gaussian.regulariser_weight == PAPER_REGULARISER_WEIGHT
    chosen = Denoiser("neighbor2neighbor", "YX", seed=0, device="cpu", regulariser_weight=1.0)
    chosen.continue_training(**TINY)
    chosen.fit(_photon_capture())
    assert chosen.regulariser_weight == 1.0  # a number is kept as given
    path = photon.save(tmp_path / "photon.safetensors")
    loaded = Denoiser.load(path, device="cpu")
    assert loaded.regulariser_weight == 0.0 and loaded.config.regulariser_weight == "auto"
    other = Denoiser("n2v", "YX", seed=0, device="cpu", **TINY)
    other.fit(_gaussian_capture())
    assert other.regulariser_weight is None  # not a Neighbor2Neighbor setting
    # The pixel pairs follow the same reading: diagonal ones for photon-limited captures.
    assert photon.neighbour_pairs == "diagonal" and gaussian.neighbour_pairs == "adjacent"
    assert loaded.neighbour_pairs == "diagonal" and loaded.config.neighbour_pairs == "auto"
    assert chosen.neighbour_pairs == "diagonal"  # 'auto' pairs beside a chosen weight
    assert other.neighbour_pairs is None
    given = Denoiser("neighbor2neighbor", "YX", seed=0, neighbour_pairs="adjacent", **TINY)
    given.continue_training(device="cpu")
    given.fit(_photon_capture())
    assert given.neighbour_pairs == "adjacent" and given.regulariser_weight == 0.0


def test_pairs_rule_and_a_corrupt_file_entry(tmp_path):
    import json

    from selfdenoise.io import save_bundle
    from selfdenoise.methods.neighbor2neighbor import neighbour_pairs_from_noise

    assert neighbour_pairs_from_noise(1.0) == neighbour_pairs_from_noise(PHOTON_LIMITED)
    assert neighbour_pairs_from_noise(PHOTON_LIMITED) == "diagonal"
    assert neighbour_pairs_from_noise(PHOTON_LIMITED - 0.01) == "adjacent"
    with pytest.raises(SelfDenoiseError, match="photon_fraction must be in"):
        neighbour_pairs_from_noise(2.0)
    model = Denoiser("neighbor2neighbor", "YX", seed=0, device="cpu", **TINY)
    model.fit(_photon_capture())
    metadata = json.loads(json.dumps(model._metadata()))
    metadata["neighbour_pairs"] = "anti-diagonal"
    path = save_bundle(tmp_path / "bad.safetensors", model.network.state_dict(), metadata)
    with pytest.raises(SelfDenoiseError, match="neighbour_pairs in the model file must be one"):
        Denoiser.load(path, device="cpu")


def test_auto_left_unresolved_is_a_one_line_error():
    from selfdenoise.config import make_config
    from selfdenoise.methods import get_objective

    with pytest.raises(SelfDenoiseError, match="regulariser_weight='auto' must be resolved"):
        get_objective(make_config("neighbor2neighbor", "YX"))
    with pytest.raises(SelfDenoiseError, match="neighbour_pairs='auto' must be resolved"):
        get_objective(make_config("neighbor2neighbor", "YX", regulariser_weight=2.0))
    with pytest.raises(SelfDenoiseError, match="regulariser_weight must be a number >= 0 or"):
        make_config("neighbor2neighbor", "YX", regulariser_weight="high")
