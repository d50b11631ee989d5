import numpy as np
import pytest

from selfdenoise import SelfDenoiseError
from selfdenoise.axes import Layout, to_canonical
from selfdenoise.config import NormalisationConfig
from selfdenoise.data import Normaliser, check_finite, check_image
from selfdenoise.patches import PatchSampler, fit_patch_shape


def test_check_image_rejects_bad_input_with_one_line():
    with pytest.raises(SelfDenoiseError, match="data type bool"):
        check_image(np.zeros((16, 16), bool), "YX")
    with pytest.raises(SelfDenoiseError, match="too small"):
        check_image(np.zeros((4, 16)), "YX")
    with pytest.raises(SelfDenoiseError, match="empty"):
        check_image(np.zeros((0, 16, 16)), "ZYX")
    with pytest.raises(SelfDenoiseError, match="3 dimensions"):
        check_image(np.zeros((2, 16, 16)), "YX")
    image = np.ones((16, 16))
    image[3, 3] = np.nan
    with pytest.raises(SelfDenoiseError, match="NaN"):
        check_finite(image)


class _Unreadable:
    """A lazy array that knows its shape and dtype but fails if its values are read whole."""

    shape = (64, 32, 32)
    dtype = np.dtype("float32")
    ndim = 3

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole array was read")


def test_check_image_reads_no_values_of_a_lazy_array():
    """Issue 15: checking a dask/zarr stack must not load it (it did, to learn its dtype)."""
    layout = check_image(_Unreadable(), "ZYX")
    assert layout.shape == (64, 32, 32)


@pytest.mark.parametrize("kind", ["meanstd", "percentile"])
def test_normaliser_inverts_and_standardises(kind):
    rng = np.random.default_rng(0)
    image = rng.normal(100, 7, (2, 32, 32)).astype(np.float32)
    image[1] += 50
    layout = Layout("CYX", image.shape)
    normaliser = Normaliser.fit([image], [layout], NormalisationConfig(kind=kind))
    canonical, _ = to_canonical(image, "CYX")
    forward = normaliser.forward(canonical[0])
    if kind == "meanstd":
        np.testing.assert_allclose(forward.mean(axis=(1, 2)), 0, atol=1e-4)
        np.testing.assert_allclose(forward.std(axis=(1, 2)), 1, atol=1e-3)
    np.testing.assert_allclose(normaliser.inverse(forward), canonical[0], rtol=1e-5)
    assert Normaliser.from_dict(normaliser.to_dict()).offset == normaliser.offset


def test_normaliser_uses_each_channels_statistics_when_channels_are_samples():
    image = np.stack([np.full((16, 16), 10.0), np.full((16, 16), 1000.0)])
    image += np.random.default_rng(0).normal(0, 1, image.shape)
    layout = Layout("CYX", image.shape, channels_jointly=False)
    normaliser = Normaliser.fit([image], [layout], NormalisationConfig()).bind(layout)
    canonical, _ = to_canonical(image, "CYX", channels_jointly=False)
    for sample in range(2):
        assert abs(normaliser.forward(canonical[sample], sample).mean()) < 1e-3


def test_constant_image_cannot_be_normalised():
    layout = Layout("YX", (16, 16))
    with pytest.raises(SelfDenoiseError, match="constant"):
        Normaliser.fit([np.ones((16, 16))], [layout], NormalisationConfig())


def test_fit_patch_shape():
    assert fit_patch_shape(None, [(100, 200)], 4) == (64, 64)
    assert fit_patch_shape(None, [(50, 200), (300, 40)], 4) == (48, 40)
    assert fit_patch_shape(None, [(10, 100, 100)], 4) == (8, 64, 64)
    with pytest.raises(SelfDenoiseError, match="too small for the patch"):
        fit_patch_shape((64, 64), [(32, 100)], 4)
    with pytest.raises(SelfDenoiseError, match="multiples of 4"):
        fit_patch_shape((30, 30), [(32, 100)], 4)


def test_sampler_holds_out_a_slab_and_augments():
    rng = np.random.default_rng(0)
    array = rng.random((1, 1, 200, 64)).astype(np.float32)
    sampler = PatchSampler([array], (32, 32), validation_fraction=0.2, seed=0)
    assert sampler.validation_is_held_out
    (region,) = sampler.train_regions
    (held,) = sampler.validation_regions
    assert region.stop[0] == held.start[0] == 160
    batch = sampler.sample(8)
    assert batch.shape == (8, 1, 32, 32) and batch.dtype == np.float32
    assert sampler.validation_patches.shape[1:] == (1, 32, 32)
    again = PatchSampler([array], (32, 32), validation_fraction=0.2, seed=0).sample(8)
    np.testing.assert_array_equal(batch, again)


def test_sampler_splits_samples_when_images_are_small_and_skips_background():
    array = np.zeros((4, 1, 24, 24), np.float32)
    array[:, :, 12:, :] = np.random.default_rng(0).random((4, 1, 12, 24))
    sampler = PatchSampler([array], (16, 16), validation_fraction=0.25, skip_background=0.5, seed=1)
    assert {r.sample for r in sampler.validation_regions} == {3}
    assert all(patch.std() > 0 for patch in sampler.sample(16))


def test_sampler_handles_several_3d_stacks_of_different_shapes():
    rng = np.random.default_rng(0)
    stacks = [
        rng.random((1, 1, 16, 40, 40)).astype(np.float32),
        rng.random((2, 1, 20, 33, 50)).astype(np.float32),
    ]
    sampler = PatchSampler(stacks, (8, 16, 16), seed=0)
    assert sampler.sample(5).shape == (5, 1, 8, 16, 16)
