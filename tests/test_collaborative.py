"""Collaborative Wiener step (issue #13 item 2): similar patches shrunk together, the
network's output as the pilot.

The unit tests use seeded images with repeated structure and a synthetic pilot; the model
tests train briefly and compare ``predict`` with and without the step.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from selfdenoise import SelfDenoiseError
from selfdenoise.collaborative import BLEND, collaborative_wiener
from selfdenoise.metrics import NoiseLine

SIGMA = 0.1


def _psnr(clean: np.ndarray, image: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((clean - image) ** 2)))


def _stripes_and_blobs(seed: int = 0, shape=(96, 96)) -> tuple[np.ndarray, np.ndarray]:
    """A clean image that repeats itself (stripes, a grid of blobs) and its noisy copy."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    stripes = 0.5 + 0.25 * np.sin(xx / 1.7 + yy / 5.0)
    blobs = np.cos(yy / 3.0) ** 8 * np.cos(xx / 3.0) ** 8
    clean = np.where(xx < shape[1] // 2, stripes, 0.2 + 0.6 * blobs).astype(np.float32)
    noisy = clean + rng.normal(0.0, SIGMA, shape).astype(np.float32)
    return clean, noisy


def _pilot(noisy: np.ndarray) -> np.ndarray:
    """A mediocre first estimate whose error is partly the noise (as a network's is)."""
    return ndimage.gaussian_filter(noisy, 1.0).astype(np.float32)


def test_filter_is_the_identity_without_noise():
    rng = np.random.default_rng(1)
    image = rng.normal(size=(40, 52)).astype(np.float32)
    for group_size in (1, 2, 8, 32):
        out = collaborative_wiener(image, image, noise=1e-12, blend=1.0, group_size=group_size)
        np.testing.assert_allclose(out, image, atol=1e-5)
    # A search window with fewer candidates than the group size keeps what there is.
    out = collaborative_wiener(image, image, noise=1e-12, blend=1.0, search_radius=1)
    np.testing.assert_allclose(out, image, atol=1e-5)


def test_filter_matches_the_most_similar_patches():
    import torch

    from selfdenoise._block_matching import _match

    rng = np.random.default_rng(2)
    image = rng.normal(size=(40, 50)).astype(np.float32)
    rows, cols = torch.tensor([0, 5, 20, 32]), torch.tensor([0, 7, 30, 42])
    settings = {"patch": 8, "radius": 4, "group": 5}
    index, distance = _match(torch.from_numpy(image), rows, cols, settings, torch)
    n_cols = 50 - 8 + 1
    for ref, (found, found_distance) in enumerate(zip(index, distance, strict=True)):
        top, left = int(rows[ref // 4]), int(cols[ref % 4])
        patch = image[top : top + 8, left : left + 8]
        brute = sorted(
            (float(np.mean((image[y : y + 8, x : x + 8] - patch) ** 2)), y * n_cols + x)
            for y in range(max(0, top - 4), min(40 - 8, top + 4) + 1)
            for x in range(max(0, left - 4), min(n_cols - 1, left + 4) + 1)
        )[:5]
        assert found.tolist() == [i for _, i in brute]
        np.testing.assert_allclose(found_distance.numpy(), [d for d, _ in brute], atol=1e-4)


def test_filter_improves_a_pilot_on_repeated_structure():
    clean, noisy = _stripes_and_blobs()
    pilot = _pilot(noisy)
    out = collaborative_wiener(noisy, pilot)
    assert out.dtype == np.float32 and out.shape == clean.shape
    # Measured: pilot 25.79 dB, filtered 28.26 dB (seed 0); given the true noise 28.26.
    assert _psnr(clean, out) > _psnr(clean, pilot) + 1.5
    given = collaborative_wiener(noisy, pilot, noise=SIGMA**2)
    assert _psnr(clean, given) == pytest.approx(_psnr(clean, out), abs=0.3)
    # blend 0 is the pilot; the default blend lies between the pilot and the filter alone.
    np.testing.assert_array_equal(collaborative_wiener(noisy, pilot, blend=0.0), pilot)
    alone = collaborative_wiener(noisy, pilot, blend=1.0)
    assert np.allclose(out, pilot + BLEND * (alone - pilot), atol=1e-5)


def test_filter_reads_photon_noise_by_its_line():
    rng = np.random.default_rng(3)
    clean, _ = _stripes_and_blobs()
    photons = 40.0 * clean
    noisy = (rng.poisson(photons) + rng.normal(0, 1.0, clean.shape)).astype(np.float32)
    pilot = _pilot(noisy)
    scale = photons.max()

    def score(**options) -> float:
        return _psnr(photons / scale, collaborative_wiener(noisy, pilot, **options) / scale)

    read = score()  # the noise line read from the image (slope 0.89, offset 3.6)
    # Measured: pilot 23.88 dB; the line read 26.59, the true line (var = signal + 1) 26.65,
    # one variance for every pixel (the true mean) 26.32.
    assert read > _psnr(photons / scale, pilot / scale) + 1.5
    assert read == pytest.approx(score(noise=NoiseLine(1.0, 1.0)), abs=0.3)
    assert read > score(noise=float(photons.mean() + 1.0)) + 0.1


def test_filter_works_plane_by_plane_in_3d():
    _, noisy = _stripes_and_blobs(shape=(64, 64))
    volume = np.stack([noisy, noisy[::-1], noisy[:, ::-1]])
    pilot = np.stack([_pilot(plane) for plane in volume])
    out = collaborative_wiener(volume, pilot, noise=SIGMA**2)
    for plane in range(3):
        np.testing.assert_array_equal(
            out[plane], collaborative_wiener(volume[plane], pilot[plane], noise=SIGMA**2)
        )


def _correlated_noise(clean: np.ndarray, seed: int = 7) -> np.ndarray:
    """``clean`` plus noise shared by X-neighbours ([1, 2, 1] smoothing, std ``SIGMA``)."""
    white = np.random.default_rng(seed).standard_normal(clean.shape)
    smeared = ndimage.correlate1d(white, [1.0, 2.0, 1.0], axis=-1)
    return (clean + smeared / smeared.std() * SIGMA).astype(np.float32)


def test_filter_keeps_the_pilot_when_the_noise_is_correlated():
    from selfdenoise.collaborative import CORRELATION_LIMIT
    from selfdenoise.metrics import shared_noise_correlation

    clean, white_noisy = _stripes_and_blobs()
    noisy = _correlated_noise(clean)
    rng = np.random.default_rng(8)
    pilot = (clean + rng.normal(0.0, 0.03, clean.shape)).astype(np.float32)
    assert shared_noise_correlation(noisy, pilot) > CORRELATION_LIMIT
    # Measured: pilot 30.47 dB; the step regardless 27.97 (it adds the shared noise back).
    forced = collaborative_wiener(noisy, pilot, correlation_limit=None)
    assert _psnr(clean, forced) < _psnr(clean, pilot) - 1.5
    np.testing.assert_array_equal(collaborative_wiener(noisy, pilot), pilot)
    # Independent noise, even with a blurred pilot, still gets the step (25.79 -> 28.26 dB).
    white_pilot = _pilot(white_noisy)
    assert shared_noise_correlation(white_noisy, white_pilot) < CORRELATION_LIMIT
    filtered = collaborative_wiener(white_noisy, white_pilot)
    assert _psnr(clean, filtered) > _psnr(clean, white_pilot) + 1.5
    # So does an untrained network's output, a scaled copy of the input: its residual holds
    # the image itself (neighbour correlation 0.5 and more), which varies slowly.
    untrained = (0.8 * white_noisy + 0.1).astype(np.float32)
    assert shared_noise_correlation(white_noisy, untrained) < CORRELATION_LIMIT
    assert _psnr(clean, collaborative_wiener(white_noisy, untrained)) > _psnr(clean, untrained) + 1


def test_prediction_checks_the_noise_channel_by_channel():
    from selfdenoise.axes import Layout
    from selfdenoise.collaborative import collaborative_wiener_samples

    clean, white_noisy = _stripes_and_blobs()
    rng = np.random.default_rng(9)
    near = (clean + rng.normal(0.0, 0.03, clean.shape)).astype(np.float32)
    noisy = np.stack([_correlated_noise(clean), white_noisy])
    pilot = np.stack([near, _pilot(white_noisy)])
    out = collaborative_wiener_samples(noisy, pilot.copy(), Layout("CYX", noisy.shape))
    np.testing.assert_array_equal(out[0], near)
    np.testing.assert_allclose(out[1], collaborative_wiener(noisy[1], pilot[1]), atol=1e-6)


def test_filter_leaves_tiny_images_to_the_pilot():
    noisy = np.random.default_rng(0).normal(size=(5, 40)).astype(np.float32)
    np.testing.assert_array_equal(collaborative_wiener(noisy, noisy * 0.5), noisy * 0.5)


@pytest.mark.parametrize(
    ("noisy", "pilot", "message"),
    [
        (np.zeros((16, 16)), np.zeros((16, 17)), "must have the same shape"),
        (np.zeros(16), np.zeros(16), "takes a 2D or 3D image"),
        (np.zeros((16, 16)), np.zeros((16, 16)), "group_size must be a positive integer"),
    ],
)
def test_filter_errors_are_one_line(noisy, pilot, message):
    options = {"group_size": 0} if "group_size" in message else {}
    with pytest.raises(SelfDenoiseError, match=message) as info:
        collaborative_wiener(noisy, pilot, **options)
    assert "\n" not in str(info.value)


def test_collaborative_filter_setting():
    from selfdenoise.config import DenoiserConfig, make_config
    from selfdenoise.registry import method_names

    on = {name for name in method_names() if make_config(name).tiling.collaborative_filter}
    assert on == EXPECTED_ON
    assert make_config("n2v2", collaborative_filter=True).tiling.collaborative_filter
    assert not make_config(
        "neighbor2neighbor", collaborative_filter=False
    ).tiling.collaborative_filter
    # structN2V declares correlated noise: off unless asked for.
    assert not make_config("n2v2", struct_axis=-1).tiling.collaborative_filter
    # A model file written before the setting existed keeps its old behaviour (off).
    old = make_config("neighbor2neighbor").to_dict()
    del old["tiling"]["collaborative_filter"]
    assert DenoiserConfig.from_dict(old).tiling.collaborative_filter is False
    with pytest.raises(SelfDenoiseError, match="collaborative_filter must be True or False"):
        make_config("n2v2", collaborative_filter=1)


def _trained_n2n(torch_single_thread):
    from selfdenoise import Denoiser

    clean, noisy = _stripes_and_blobs(seed=5)
    model = Denoiser(
        "neighbor2neighbor", "YX", steps=60, batch_size=4, validation_fraction=0.0, seed=0
    )
    model.fit(noisy)
    return model, clean, noisy


def test_predict_runs_the_filter_by_the_model_setting(torch_single_thread):
    from selfdenoise.axes import Layout
    from selfdenoise.collaborative import collaborative_wiener_samples

    model, clean, noisy = _trained_n2n(torch_single_thread)
    plain = model.predict(noisy, collaborative_filter=False)
    filtered = model.predict(noisy, collaborative_filter=True)
    assert np.array_equal(filtered, collaborative_wiener(noisy, plain))
    assert np.array_equal(model.predict(noisy), filtered if EXPECTED_ON else plain)
    assert _psnr(clean, filtered) > _psnr(clean, plain) + 0.5
    # A stack: each plane filtered with its own noise line, also into a separate `out`.
    stack = np.stack([noisy, noisy[::-1]])
    out = np.zeros_like(stack)
    model.predict(stack, out=out, collaborative_filter=True)
    # The stack's network output differs from the single image's in the last bits (tiles
    # batched differently), which can swap equally similar patches in a group.
    assert np.abs(out[0] - filtered).mean() < 1e-4 and np.abs(out[0] - filtered).max() < 2e-3
    plain_stack = model.predict(stack, collaborative_filter=False)
    again = collaborative_wiener_samples(stack, plain_stack.copy(), Layout("SYX", stack.shape))
    np.testing.assert_allclose(again, out, atol=1e-5)


def test_predict_dask_runs_the_filter_block_by_block(torch_single_thread):
    da = pytest.importorskip("dask.array")
    model, clean, noisy = _trained_n2n(torch_single_thread)
    in_memory = model.predict(noisy, collaborative_filter=True)
    for chunks in (noisy.shape, (48, 48)):
        lazy = model.predict_dask(da.from_array(noisy, chunks=chunks), collaborative_filter=True)
        lazy = lazy.compute()
        # Each block, with its reflected halo, reads its own noise line and finds its own
        # groups: close to the in-memory result.
        assert abs(_psnr(clean, lazy) - _psnr(clean, in_memory)) < 0.3
        assert np.abs(lazy - in_memory).mean() < 0.1 * SIGMA
    plain = model.predict_dask(da.from_array(noisy, chunks=(48, 48)), collaborative_filter=False)
    np.testing.assert_allclose(
        plain.compute(), model.predict(noisy, collaborative_filter=False), atol=1e-5
    )


EXPECTED_ON = {"neighbor2neighbor", "noise2same", "n2v", "n2v2", "noise2self"}


def test_slabs_of_rows_give_the_one_piece_result(monkeypatch):
    from selfdenoise import collaborative
    from selfdenoise.axes import Layout

    clean, noisy = _stripes_and_blobs(seed=6, shape=(200, 64))
    pilot = _pilot(noisy)
    layout = Layout("YX", noisy.shape)
    whole = collaborative.collaborative_wiener(noisy, pilot)
    for rows in (100, 150):  # slabs of 60 and 105 rows, each read with 40 rows of halo
        assert len(list(collaborative._row_slabs(200, 64, 64 * rows))) > 1
        slabbed = collaborative.collaborative_wiener_samples(
            noisy, pilot.copy(), layout, max_elements=64 * rows
        )
        # The noise line is read from the plane's middle rows only: close to the whole plane's.
        assert abs(_psnr(clean, slabbed) - _psnr(clean, whole)) < 0.05
    # Given the same noise line, the slabs reproduce the one-piece result.
    line = NoiseLine(0.0, SIGMA**2)
    monkeypatch.setattr(collaborative, "estimate_noise_line", lambda image: line)
    slabbed = collaborative.collaborative_wiener_samples(
        noisy, pilot.copy(), layout, max_elements=64 * 100
    )
    np.testing.assert_allclose(slabbed, collaborative_wiener(noisy, pilot, noise=line), atol=1e-5)


def test_the_steps_after_the_network_can_be_cancelled():
    import threading

    from selfdenoise.axes import Layout
    from selfdenoise.collaborative import collaborative_wiener_samples
    from selfdenoise.restore import restore_detail_samples
    from selfdenoise.tiling import PredictionCancelled

    _, noisy = _stripes_and_blobs()
    pilot = _pilot(noisy)
    stop = threading.Event()
    stop.set()
    with pytest.raises(PredictionCancelled):
        collaborative_wiener(noisy, pilot, cancel=stop)
    for step in (collaborative_wiener_samples, restore_detail_samples):
        output = pilot.copy()
        with pytest.raises(PredictionCancelled):
            step(noisy, output, Layout("YX", noisy.shape), cancel=lambda: True)
        np.testing.assert_array_equal(output, pilot)  # nothing written


def test_a_read_only_input_is_filtered_without_a_warning():
    import warnings

    _, noisy = _stripes_and_blobs(shape=(48, 48))
    pilot = _pilot(noisy)
    noisy.flags.writeable = False  # as a memory-mapped file is
    pilot.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns about non-writable arrays
        out = collaborative_wiener(noisy, pilot)
    assert out.shape == noisy.shape
