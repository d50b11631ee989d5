"""Built-in samples: shapes, ranges, determinism, speed, and no downloads or torch."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from selfdenoise import samples


def psnr(noisy, clean):
    return 10 * np.log10(1.0 / np.mean((noisy.astype(np.float64) - clean) ** 2))


def test_noisy_2d_is_camera_with_poisson_gaussian_noise():
    noisy, clean = samples.noisy_2d(seed=0)
    assert noisy.shape == clean.shape == (512, 512)
    assert noisy.dtype == clean.dtype == np.float32
    assert clean.min() >= 0 and clean.max() <= 1
    assert 12 < psnr(noisy, clean) < 25
    bright, dark = clean > 0.7, clean < 0.2
    # shot noise: brighter pixels are noisier
    assert np.std((noisy - clean)[bright]) > np.std((noisy - clean)[dark])


def test_noisy_3d_has_structures_and_noise():
    noisy, clean = samples.noisy_3d(seed=0)
    assert noisy.shape == clean.shape == (32, 128, 128)
    assert noisy.dtype == clean.dtype == np.float32
    assert 0.03 < (clean > 0.3).mean() < 0.5  # nuclei occupy part of the volume
    assert 12 < psnr(noisy, clean) < 30


def test_samples_are_deterministic_per_seed():
    a, _ = samples.noisy_3d(seed=3, shape=(8, 32, 32))
    b, _ = samples.noisy_3d(seed=3, shape=(8, 32, 32))
    c, _ = samples.noisy_3d(seed=4, shape=(8, 32, 32))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(samples.noisy_2d(seed=1)[0], samples.noisy_2d(seed=1)[0])


def test_samples_are_fast():
    start = time.perf_counter()
    samples.noisy_2d()
    samples.noisy_3d()
    assert time.perf_counter() - start < 3.0  # < 1 s on an idle core; slack for shared CI


def test_noise_level_parameters():
    quiet, clean = samples.noisy_2d(photons=1000, read_noise=0.0)
    loud, _ = samples.noisy_2d(photons=5, read_noise=0.1)
    assert psnr(quiet, clean) > psnr(loud, clean) + 10


@pytest.mark.parametrize("shape", [(4, 64, 64), (16, 64)])
def test_bad_3d_shapes_are_rejected(shape):
    from selfdenoise import SelfDenoiseError

    with pytest.raises(SelfDenoiseError, match="3D sample shape"):
        samples.noisy_3d(shape=shape)


def test_samples_need_neither_torch_nor_network():
    code = (
        "import sys, socket\n"
        "def refuse(*a, **k): raise OSError('network access')\n"
        "socket.socket.connect = refuse\n"
        "from selfdenoise import samples\n"
        "samples.noisy_2d(); samples.noisy_3d()\n"
        "assert 'torch' not in sys.modules and 'napari' not in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
