"""Noise-aware detail restoration (issue #13): the local Wiener step after a blind-spot output.

The unit tests use a synthetic pilot whose error is independent of the noise (a blurred clean
image, as a blind-spot network's smooth output is); the model tests train briefly on seeded
data and compare ``predict`` with and without the step.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from selfdenoise import SelfDenoiseError
from selfdenoise.metrics import NoiseLine, estimate_noise_line, estimate_noise_rms
from selfdenoise.restore import restore_detail

SIGMA = 0.1


def _psnr(clean: np.ndarray, image: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((clean - image) ** 2)))


def _edges_and_flats(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clean blocks with sharp edges, noisy copy, and an over-smoothed pilot estimate."""
    rng = np.random.default_rng(seed)
    clean = np.kron(rng.uniform(0.2, 0.8, (8, 8)), np.ones((16, 16)))
    noisy = clean + rng.normal(0.0, SIGMA, clean.shape)
    pilot = ndimage.gaussian_filter(clean, 2.0)  # smooth, error independent of the noise
    return clean, noisy, pilot


def test_restore_detail_takes_back_edges_and_keeps_flat_regions():
    clean, noisy, pilot = _edges_and_flats()
    restored = restore_detail(noisy, pilot)
    assert restored.dtype == np.float32 and restored.shape == clean.shape
    # Measured: pilot 24.9 dB, restored 27.4 dB (seed 0).
    assert _psnr(clean, restored) > _psnr(clean, pilot) + 2.0
    # Far from every edge the pilot is exact, and little of the noise comes back (where the
    # window's squared method noise exceeds the noise variance by chance: 0.15 sigma measured).
    edge = np.abs(ndimage.sobel(clean)) > 0.1
    flat = ~ndimage.binary_dilation(edge, iterations=6)
    change = np.abs(restored - pilot)
    assert change[flat].mean() < 0.2 * SIGMA
    # At the edges the blend moves towards the noisy image (3.6x measured).
    assert change[edge].mean() > 3 * change[flat].mean()


def test_restore_detail_blends_by_the_noise_it_is_given():
    clean, noisy, pilot = _edges_and_flats()
    # No noise: the noisy image is the truth wherever the pilot differs from it.
    assert np.allclose(restore_detail(noisy, pilot, noise=0.0), noisy, atol=1e-6)
    # Overstated noise keeps the pilot; the estimate from the image lands in between.
    huge = restore_detail(noisy, pilot, noise=100.0)
    assert np.abs(huge - pilot).max() < 1e-3
    estimated = restore_detail(noisy, pilot)
    given = restore_detail(noisy, pilot, noise=NoiseLine(0.0, SIGMA**2))
    assert _psnr(clean, estimated) == pytest.approx(_psnr(clean, given), abs=0.2)


def test_restore_detail_in_3d():
    rng = np.random.default_rng(1)
    clean = np.kron(rng.uniform(0.2, 0.8, (4, 4, 4)), np.ones((8, 8, 8)))
    noisy = clean + rng.normal(0.0, SIGMA, clean.shape)
    pilot = ndimage.gaussian_filter(clean, 1.5)
    assert _psnr(clean, restore_detail(noisy, pilot)) > _psnr(clean, pilot) + 1.0


@pytest.mark.parametrize(
    ("noisy", "denoised", "options", "message"),
    [
        (np.zeros((8, 8)), np.zeros((8, 9)), {}, "same shape"),
        (np.zeros(8), np.zeros(8), {}, "2D or 3D"),
        (np.zeros((8, 8)), np.zeros((8, 8)), {"smoothing": 0}, "smoothing"),
    ],
)
def test_restore_detail_errors_are_one_line(noisy, denoised, options, message):
    with pytest.raises(SelfDenoiseError, match=message) as info:
        restore_detail(noisy, denoised, **options)
    assert "\n" not in str(info.value)


def test_noise_line_reads_photon_noise():
    rng = np.random.default_rng(2)
    ramp = np.repeat(np.linspace(10.0, 200.0, 256)[None], 256, axis=0)
    gain, read = 0.5, 4.0  # var = gain * signal + read**2
    noisy = ramp + rng.normal(0.0, 1.0, ramp.shape) * np.sqrt(gain * ramp + read**2)
    line = estimate_noise_line(noisy)
    assert line.slope == pytest.approx(gain, rel=0.15)
    assert line.offset == pytest.approx(read**2, abs=8.0)
    assert estimate_noise_rms(noisy) == pytest.approx(
        np.sqrt(np.mean(gain * ramp + read**2)), rel=0.05
    )
    flat = estimate_noise_line(rng.normal(0.0, 2.0, (128, 128)))
    assert flat.slope == pytest.approx(0.0, abs=0.05)
    assert np.sqrt(flat.offset) == pytest.approx(2.0, rel=0.05)


def test_restore_detail_is_on_for_the_blind_spot_methods_only():
    from selfdenoise.config import DenoiserConfig, make_config
    from selfdenoise.registry import method_names

    on = {name for name in method_names() if make_config(name).tiling.restore_detail}
    assert on == {"noise2same", "n2v", "n2v2", "noise2self"}
    assert not make_config("n2v2", restore_detail=False).tiling.restore_detail
    # structN2V declares correlated noise: off unless asked for.
    assert not make_config("n2v2", struct_axis=-1).tiling.restore_detail
    assert make_config("n2v2", struct_axis=-1, restore_detail=True).tiling.restore_detail
    # A model file written before the setting existed keeps its old behaviour (off).
    old = make_config("n2v2").to_dict()
    del old["tiling"]["restore_detail"]
    assert DenoiserConfig.from_dict(old).tiling.restore_detail is False
    with pytest.raises(SelfDenoiseError, match="restore_detail must be True or False"):
        make_config("n2v2", restore_detail="yes")


def _trained_n2v2(torch_single_thread):
    from selfdenoise import Denoiser

    clean, noisy, _ = _edges_and_flats(seed=3)
    model = Denoiser("n2v2", "YX", steps=40, batch_size=4, validation_fraction=0.0, seed=0)
    model.fit(noisy.astype(np.float32))
    return model, clean, noisy.astype(np.float32)


def test_predict_restores_detail_by_the_model_setting(torch_single_thread):
    from selfdenoise.axes import Layout
    from selfdenoise.restore import restore_detail_samples

    model, clean, noisy = _trained_n2v2(torch_single_thread)
    plain = model.predict(noisy, restore_detail=False, collaborative_filter=False)
    default = model.predict(noisy, collaborative_filter=False)
    assert np.array_equal(
        default, model.predict(noisy, restore_detail=True, collaborative_filter=False)
    )
    assert np.array_equal(default, restore_detail(noisy, plain))
    assert _psnr(clean, default) > _psnr(clean, plain)
    # A stack: each plane restored on its own, also through a zarr-like `out` and in slabs.
    stack = np.stack([noisy, noisy[::-1]])
    out = np.zeros_like(stack)
    model.predict(stack, out=out, collaborative_filter=False)
    assert np.allclose(out[0], default, atol=1e-5)
    plain_stack = model.predict(stack, restore_detail=False, collaborative_filter=False)
    slabbed = restore_detail_samples(
        stack, plain_stack.copy(), Layout("SYX", stack.shape), max_elements=128 * 40
    )
    whole = restore_detail_samples(stack, plain_stack.copy(), Layout("SYX", stack.shape))
    # In slabs the noise level is read on the middle slab (and its halo), not the whole plane.
    assert slabbed.shape == whole.shape
    assert abs(_psnr(clean, slabbed[0]) - _psnr(clean, whole[0])) < 0.2


def test_predict_dask_restores_detail_block_by_block(torch_single_thread):
    da = pytest.importorskip("dask.array")
    model, clean, noisy = _trained_n2v2(torch_single_thread)
    in_memory = model.predict(noisy, collaborative_filter=False)
    for chunks in (noisy.shape, (64, 64)):
        lazy = model.predict_dask(
            da.from_array(noisy, chunks=chunks), collaborative_filter=False
        ).compute()
        # Each block (with its halo) reads its own noise level: close to the in-memory result.
        assert abs(_psnr(clean, lazy) - _psnr(clean, in_memory)) < 0.3
        assert np.abs(lazy - in_memory).mean() < 0.1 * SIGMA
    plain = model.predict_dask(
        da.from_array(noisy, chunks=(64, 64)), restore_detail=False, collaborative_filter=False
    )
    assert np.allclose(
        plain.compute(),
        model.predict(noisy, restore_detail=False, collaborative_filter=False),
        atol=1e-5,
    )


def test_slabs_with_a_halo_give_the_one_piece_result():
    from selfdenoise._slabs import slabs as make_slabs
    from selfdenoise.axes import Layout
    from selfdenoise.restore import restore_detail_samples

    rng = np.random.default_rng(4)
    clean = np.kron(rng.uniform(0.2, 0.8, (4, 4, 4)), np.ones((16, 16, 16)))
    noisy = (clean + rng.normal(0.0, SIGMA, clean.shape)).astype(np.float32)
    pilot = ndimage.gaussian_filter(clean, 1.5).astype(np.float32)
    plane = 64 * 64
    for planes in (20, 40):  # 7 and 4 slabs of the 64 planes, each read with a 10-plane halo
        slabs = list(make_slabs(64, plane, 10, plane * planes))
        assert len(slabs) > 1 and max(s[0].stop - s[0].start for s in slabs) <= max(planes, 30)
        middle = slabs[len(slabs) // 2][0]  # where the noise level is read
        whole = restore_detail(noisy, pilot, noise=estimate_noise_line(noisy[middle]))
        slabbed = restore_detail_samples(
            noisy, pilot.copy(), Layout("ZYX", noisy.shape), max_elements=plane * planes
        )
        np.testing.assert_array_equal(slabbed, whole)
