"""mask_and_fill, the training step's masking: fixed shapes, no host sync, the same laws.

CUDA's sync debug mode cannot run here, so the tests check the code (no call that reads a
device value on the host) and the sampling laws on the CPU.
"""

from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from selfdenoise import _mask_neighbours, _mask_picks, masking  # noqa: E402
from selfdenoise.config import MaskingConfig  # noqa: E402
from selfdenoise.masking import apply_fill, make_masks, mask_and_fill  # noqa: E402

SYNCING_CALLS = {"nonzero", "nonzero_static", "argwhere", "item", "tolist", "cpu", "numpy"}
SYNCING_CALLS |= {"masked_select", "unique", "unique_consecutive", "masked_scatter"}


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_masking_modules_never_read_device_values_on_the_host():
    called = {
        node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        for module in (masking, _mask_picks, _mask_neighbours)
        for node in ast.walk(ast.parse(inspect.getsource(module)))
        if isinstance(node, ast.Call)
    }
    assert not called & SYNCING_CALLS
    assert {"scatter_", "index_select", "where"} <= called  # the check sees method calls


@pytest.mark.parametrize(
    "config",
    [
        MaskingConfig(fraction=0.02, fill="uniform"),
        MaskingConfig(fraction=0.02, fill="median"),
        MaskingConfig(fraction=0.05, fill="donut"),
        MaskingConfig(mode="bernoulli", fraction=0.05, fill="donut"),
        MaskingConfig(mode="grid", grid_period=3, fill="zero"),
        MaskingConfig(fraction=0.02, fill="uniform", struct_axis=-1),
    ],
)
@pytest.mark.parametrize("shape", [(3, 2, 20, 24), (2, 1, 6, 12, 10)])
def test_masks_match_make_masks_and_only_hidden_pixels_change(config, shape):
    x = torch.rand(shape, generator=_generator(1), dtype=torch.float64) + 1.0
    filled, centres, hidden = mask_and_fill(x, config, _generator(2))
    expected_centres, expected_hidden = make_masks(config, shape, _generator(2))
    assert torch.equal(centres, expected_centres) and torch.equal(hidden, expected_hidden)
    assert filled.shape == x.shape and filled.dtype == x.dtype
    visible = ~hidden.expand_as(x)
    assert torch.equal(filled[visible], x[visible])
    assert (filled[~visible] != x[~visible]).all()  # no fill copies the pixel itself


@pytest.mark.parametrize("fill", ["zero", "donut", "median"])
@pytest.mark.parametrize("struct_axis", [None, -2])
def test_deterministic_fills_equal_apply_fill(fill, struct_axis):
    config = MaskingConfig(fraction=0.05, fill=fill, window=5, struct_axis=struct_axis)
    x = torch.randn((4, 2, 7, 30, 26), generator=_generator(3), dtype=torch.float64)
    filled, _, hidden = mask_and_fill(x, config, _generator(4))
    torch.testing.assert_close(filled, apply_fill(x, hidden, config, _generator()))


@pytest.mark.parametrize("spatial", [(64, 64), (12, 32, 32)])
def test_stratified_fraction(spatial):
    config = MaskingConfig(fraction=0.02, fill="median")
    x = torch.zeros((64, 1, *spatial))
    fractions = [mask_and_fill(x, config, _generator(seed))[1].double().mean() for seed in range(4)]
    assert float(np.mean(fractions)) == pytest.approx(0.02, rel=0.03)


def _offsets_of_uniform_fill(config, spatial, count, seed):
    """Offsets (n, ndim) from each masked pixel to the neighbour its uniform fill copied,
    and whether the pixel is at least a window radius from the border."""
    size = int(np.prod(spatial))
    x = torch.arange(count * size, dtype=torch.float64).reshape(count, 1, *spatial)
    filled, centres, _ = mask_and_fill(x, config, _generator(seed))
    where = torch.nonzero(centres[:, 0])  # (n, 1 + ndim), in the test only
    source = filled[:, 0][tuple(where.T)].long() % size
    coordinates = np.stack(np.unravel_index(source.numpy(), spatial), axis=1)
    centres_at = where[:, 1:].numpy()
    radius = config.window // 2
    interior = ((centres_at >= radius) & (centres_at < np.array(spatial) - radius)).all(axis=1)
    return coordinates - centres_at, interior


def test_uniform_fill_is_uniform_over_the_window_without_centre():
    window = 5
    config = MaskingConfig(fraction=0.02, fill="uniform", window=window)
    offsets, interior = _offsets_of_uniform_fill(config, (64, 64), 64, seed=5)
    assert not (offsets == 0).all(axis=1).any()  # not even where reflection folds back
    offsets = offsets[interior]  # the law in offsets holds away from the border
    assert np.abs(offsets).max() <= window // 2
    assert not (offsets == 0).all(axis=1).any()
    keys = (offsets[:, 0] + 2) * window + offsets[:, 1] + 2
    observed = np.bincount(keys, minlength=window**2).astype(float)
    assert observed[12] == 0
    observed = np.delete(observed, 12)
    expected = observed.sum() / (window**2 - 1)
    assert observed.sum() > 4000
    chi_square = float((((observed - expected) ** 2) / expected).sum())
    assert chi_square < 60.0  # 23 degrees of freedom: p < 1e-4 above 60


def test_uniform_fill_with_struct_lines_skips_the_line():
    config = MaskingConfig(fraction=0.02, fill="uniform", struct_axis=-1, struct_span=5)
    offsets, _ = _offsets_of_uniform_fill(config, (40, 40), 16, seed=6)
    assert (offsets[:, 0] != 0).all()  # never a pixel of the same row (the X line)


def test_gaussian_fill_law():
    config = MaskingConfig(fraction=0.05, fill="gaussian", fill_sigma=0.2)
    x = torch.full((64, 2, 64, 64), 5.0)
    filled, _, hidden = mask_and_fill(x, config, _generator(7))
    values = filled[hidden.expand_as(x)].double()
    assert values.mean().abs() < 0.01
    assert float(values.std()) == pytest.approx(0.2, rel=0.03)


def test_fill_reflects_axes_shorter_than_the_window():
    # Two rows and a window of 5: neighbours reflect twice across the short axis.
    image = np.arange(18, dtype=float).reshape(2, 9) ** 1.5
    x = torch.from_numpy(image)[None, None]
    mask = torch.zeros((1, 1, 2, 9), dtype=torch.bool)
    mask[0, 0, 1, 4] = True
    filled = apply_fill(x, mask, MaskingConfig(fill="median", window=5), _generator())
    padded = np.pad(image, 2, mode="reflect")  # rows 0 1 0 1 0 1
    block = padded[1:6, 4:9].ravel()
    assert filled[0, 0, 1, 4].item() == pytest.approx(np.median(np.delete(block, 12)))
