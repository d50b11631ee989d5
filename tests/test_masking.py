"""Tests of blind-spot masks and fills (selfdenoise.masking)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from selfdenoise._errors import SelfDenoiseError  # noqa: E402
from selfdenoise.config import MaskingConfig  # noqa: E402
from selfdenoise.masking import (  # noqa: E402
    apply_fill,
    extend_struct_mask,
    make_mask,
    make_masks,
)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _position_image(shape: tuple[int, ...]) -> torch.Tensor:
    """Image whose values are the flat indices of its pixels (recover a copied position)."""
    return torch.arange(int(np.prod(shape)), dtype=torch.float64).reshape(shape)


def _single_pixel_mask(shape: tuple[int, ...], position: tuple[int, ...]) -> torch.Tensor:
    mask = torch.zeros((shape[0], 1, *shape[2:]), dtype=torch.bool)
    mask[(slice(None), 0, *position)] = True
    return mask


# --- stratified -------------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.005, 0.02, 0.1])
@pytest.mark.parametrize("shape", [(16, 1, 101, 97), (4, 2, 33, 47, 45)])
def test_stratified_fraction_2d_and_3d(fraction, shape):
    mask = make_mask(MaskingConfig(fraction=fraction), shape, _generator(1))
    assert mask.shape == (shape[0], 1, *shape[2:])
    assert mask.dtype == torch.bool
    achieved = mask.double().mean().item()
    assert achieved == pytest.approx(fraction, rel=0.05)


def test_stratified_fraction_is_exact_on_average_for_tiny_patches():
    # 10 x 10 pixels is smaller than one cell at 0.5 %: still 0.5 % in expectation.
    mask = make_mask(MaskingConfig(fraction=0.005), (4000, 1, 10, 10), _generator(2))
    assert mask.double().mean().item() == pytest.approx(0.005, rel=0.1)


@pytest.mark.parametrize(
    ("spatial", "fraction", "side"),
    [((21, 22), 1 / 16, 4), ((10, 13, 11), 1 / 27, 3)],
)
def test_stratified_exactly_one_pixel_per_box(spatial, fraction, side):
    # Integer cell side: cells are side^d boxes on a grid with a random phase.
    masks = make_mask(MaskingConfig(fraction=fraction), (6, 1, *spatial), _generator(3)).numpy()
    for mask in masks[:, 0]:
        assert any(
            _one_per_box(mask, phase, side)
            for phase in itertools.product(range(side), repeat=len(spatial))
        )


def _one_per_box(mask: np.ndarray, phase: tuple[int, ...], side: int) -> bool:
    """Every full box of the grid starting at ``phase`` holds exactly one masked pixel."""
    full = tuple((n - p) // side for n, p in zip(mask.shape, phase, strict=True))
    crop = mask[tuple(slice(p, p + k * side) for p, k in zip(phase, full, strict=True))]
    boxes = crop.reshape([v for k in full for v in (k, side)])
    counts = boxes.sum(axis=tuple(range(1, 2 * len(full), 2)))
    return bool((counts == 1).all())


def test_stratified_leaves_no_large_gaps():
    # Non-integer side t = sqrt(50) ~ 7.07: cells are 7 or 8 rows high, so any 15 rows
    # contain a full cell along Y, hence masked pixels.
    mask = make_mask(MaskingConfig(fraction=0.02), (8, 1, 64, 64), _generator(4))[:, 0]
    rows = mask.any(dim=2)  # (B, Y)
    for start in range(64 - 15):
        assert rows[:, start : start + 15].any(dim=1).all()


def test_masks_are_reproducible_and_vary_between_draws():
    config = MaskingConfig(fraction=0.02)
    first = make_mask(config, (2, 1, 32, 32), _generator(5))
    again = make_mask(config, (2, 1, 32, 32), _generator(5))
    assert torch.equal(first, again)
    assert not torch.equal(first[0], first[1])


# --- bernoulli and grid ---------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(8, 1, 64, 64), (2, 1, 16, 32, 32)])
def test_bernoulli_fraction(shape):
    mask = make_mask(MaskingConfig(mode="bernoulli", fraction=0.05), shape, _generator(6))
    assert mask.double().mean().item() == pytest.approx(0.05, rel=0.1)


@pytest.mark.parametrize(("spatial", "period"), [((9, 10), 4), ((5, 7, 6), 3)])
def test_grid_phases_cover_each_pixel_once(spatial, period):
    config = MaskingConfig(mode="grid", grid_period=period)
    shape = (2, 1, *spatial)
    n_phases = period ** len(spatial)
    total = sum(
        make_mask(config, shape, _generator(), grid_phase=phase).long() for phase in range(n_phases)
    )
    assert torch.equal(total, torch.ones_like(total))
    random_phase = make_mask(config, (64, 1, *spatial), _generator(7))
    counts = random_phase.flatten(1).sum(dim=1).double()
    expected = np.prod(spatial) / n_phases
    assert counts.mean().item() == pytest.approx(expected, rel=0.2)
    with pytest.raises(SelfDenoiseError):
        make_mask(config, shape, _generator(), grid_phase=n_phases)


# --- structN2V ------------------------------------------------------------------------------


@pytest.mark.parametrize(("axis", "span"), [(-1, 5), (-2, 3), (-3, 5), (-1, 4)])
def test_struct_line_length_and_axis(axis, span):
    mask = _single_pixel_mask((1, 1, 9, 9, 9), (4, 4, 4))
    line = extend_struct_mask(mask, axis, span)[0, 0]
    assert line.sum().item() == span
    positions = torch.nonzero(line)
    varying = [d for d in range(3) if positions[:, d].unique().numel() > 1]
    assert varying == [3 + axis]
    along = positions[:, 3 + axis]
    assert along.min().item() == 4 - span // 2
    assert along.max().item() == 4 + span - 1 - span // 2


def test_struct_line_is_clipped_at_the_border_and_needs_the_axis():
    mask = _single_pixel_mask((1, 1, 6, 6), (2, 0))
    line = extend_struct_mask(mask, -1, 5)[0, 0]
    assert line[2].tolist() == [True, True, True, False, False, False]
    with pytest.raises(SelfDenoiseError):
        extend_struct_mask(mask, -3, 5)


def test_make_masks_returns_centres_and_lines():
    config = MaskingConfig(fraction=0.01, struct_axis=-2, struct_span=5)
    centres, hidden = make_masks(config, (4, 1, 40, 40), _generator(8))
    assert torch.equal(hidden, extend_struct_mask(centres, -2, 5))
    assert torch.equal(make_mask(config, (4, 1, 40, 40), _generator(8)), hidden)
    plain_centres, plain_hidden = make_masks(MaskingConfig(), (1, 1, 16, 16), _generator())
    assert plain_centres is plain_hidden


# --- fills --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fill", ["gaussian", "donut", "uniform", "median", "zero"])
@pytest.mark.parametrize("shape", [(3, 2, 20, 24), (2, 1, 6, 12, 10)])
def test_fill_changes_only_masked_pixels(fill, shape):
    config = MaskingConfig(fraction=0.1, fill=fill)
    x = torch.rand(shape, generator=_generator(9)) + 1.0
    mask = make_mask(config, shape, _generator(10))
    filled = apply_fill(x, mask, config, _generator(11))
    assert filled.shape == x.shape and filled.dtype == x.dtype
    unmasked = ~mask.expand_as(x)
    assert torch.equal(filled[unmasked], x[unmasked])
    assert not torch.equal(filled, x)
    if fill == "zero":
        assert (filled[~unmasked] == 0).all()


def test_gaussian_fill_statistics():
    config = MaskingConfig(mode="bernoulli", fraction=0.5, fill="gaussian", fill_sigma=0.2)
    x = torch.full((4, 2, 64, 64), 5.0)
    mask = make_mask(config, x.shape, _generator(12))
    values = apply_fill(x, mask, config, _generator(13))[mask.expand_as(x)]
    assert values.mean().item() == pytest.approx(0.0, abs=0.01)
    assert values.std().item() == pytest.approx(0.2, rel=0.03)


@pytest.mark.parametrize("fill", ["uniform", "median"])
@pytest.mark.parametrize("spatial", [(12, 12), (7, 8, 9)])
def test_centre_never_replaces_itself(fill, spatial):
    config = MaskingConfig(mode="bernoulli", fraction=0.3, fill=fill, window=3)
    x = torch.rand((2, 1, *spatial), generator=_generator(19), dtype=torch.float64)
    mask = make_mask(config, x.shape, _generator(14))
    filled = apply_fill(x, mask, config, _generator(15))
    hidden = mask.expand_as(x)
    assert (filled[hidden] != x[hidden]).all()


def test_uniform_offsets_are_uniform_over_window_without_centre():
    window, count = 5, 4800
    config = MaskingConfig(fill="uniform", window=window)
    x = _position_image((count, 1, 9, 9))
    mask = _single_pixel_mask(x.shape, (4, 4))
    values = apply_fill(x, mask, config, _generator(16))[:, 0, 4, 4]
    local = values.long() - torch.arange(count) * 81
    offsets = torch.stack([local // 9 - 4, local % 9 - 4], dim=1)
    assert offsets.abs().max().item() <= window // 2
    assert not (offsets == 0).all(dim=1).any()
    keys = (offsets[:, 0] + 2) * window + offsets[:, 1] + 2
    observed = torch.bincount(keys, minlength=window**2).double()
    observed = torch.cat([observed[:12], observed[13:]])  # drop the (never drawn) centre
    expected = count / (window**2 - 1)
    chi_square = (((observed - expected) ** 2) / expected).sum().item()
    assert chi_square < 60.0  # 23 degrees of freedom: p < 1e-4 above 60


def test_uniform_fill_with_struct_skips_the_line():
    config = MaskingConfig(fill="uniform", window=5, struct_axis=-1, struct_span=5)
    x = _position_image((300, 1, 9, 9))
    mask = extend_struct_mask(_single_pixel_mask(x.shape, (4, 4)), -1, 5)
    filled = apply_fill(x, mask, config, _generator(17))
    hidden = mask.expand_as(x)
    source_rows = (filled[hidden].long() % 81) // 9
    assert (source_rows != 4).all()


def test_median_fill_hand_case():
    image = np.array(
        [
            [9.0, 1.0, 4.0, 7.0, 3.0],
            [2.0, 8.0, 6.0, 0.0, 5.0],
            [7.0, 3.0, 100.0, 1.0, 2.0],
            [4.0, 4.0, 9.0, 6.0, 8.0],
            [1.0, 0.0, 2.0, 5.0, 3.0],
        ]
    )
    neighbours = np.delete(image.ravel(), 12)
    x = torch.from_numpy(image)[None, None]
    mask = _single_pixel_mask(x.shape, (2, 2))
    config = MaskingConfig(fill="median", window=5)
    filled = apply_fill(x, mask, config, _generator())
    assert filled[0, 0, 2, 2].item() == pytest.approx(np.median(neighbours))
    window3 = np.delete(image[1:4, 1:4].ravel(), 4)
    filled3 = apply_fill(x, mask, MaskingConfig(fill="median", window=3), _generator())
    assert filled3[0, 0, 2, 2].item() == pytest.approx(np.median(window3))


def test_median_fill_matches_numpy_with_reflection_3d():
    rng = np.random.default_rng(0)
    volume = rng.normal(size=(5, 6, 7))
    x = torch.from_numpy(volume)[None, None]
    padded = np.pad(volume, 1, mode="reflect")
    config = MaskingConfig(fill="median", window=3)
    for position in [(0, 0, 0), (2, 3, 4), (4, 5, 6)]:
        filled = apply_fill(x, _single_pixel_mask(x.shape, position), config, _generator())
        block = padded[tuple(slice(p, p + 3) for p in position)].ravel()
        expected = np.median(np.delete(block, 13))
        assert filled[(0, 0, *position)].item() == pytest.approx(expected)


def test_donut_fill_hand_values():
    image = np.arange(16, dtype=float).reshape(4, 4) ** 2
    x = torch.from_numpy(image)[None, None]
    config = MaskingConfig(fill="donut")
    kernel = np.array([[0.5, 1.0, 0.5], [1.0, 0.0, 1.0], [0.5, 1.0, 0.5]]) / 6
    inner = apply_fill(x, _single_pixel_mask(x.shape, (1, 2)), config, _generator())
    assert inner[0, 0, 1, 2].item() == pytest.approx((kernel * image[0:3, 1:4]).sum())
    corner = apply_fill(x, _single_pixel_mask(x.shape, (0, 0)), config, _generator())
    reflected = np.pad(image, 1, mode="reflect")[0:3, 0:3]  # rows/columns 1, 0, 1
    assert corner[0, 0, 0, 0].item() == pytest.approx((kernel * reflected).sum())


def test_donut_fill_3d_weights_inverse_squared_distance():
    x = torch.zeros((1, 1, 3, 3, 3), dtype=torch.float64)
    x[0, 0, 0, 1, 1] = 1.0  # face neighbour, distance^2 = 1
    x[0, 0, 0, 0, 1] = 10.0  # edge neighbour, distance^2 = 2
    x[0, 0, 0, 0, 0] = 100.0  # corner neighbour, distance^2 = 3
    filled = apply_fill(
        x, _single_pixel_mask(x.shape, (1, 1, 1)), MaskingConfig(fill="donut"), _generator()
    )
    total = 6 * 1 + 12 / 2 + 8 / 3
    expected = (1.0 + 10.0 / 2 + 100.0 / 3) / total
    assert filled[0, 0, 1, 1, 1].item() == pytest.approx(expected)


def test_fill_uses_the_same_neighbour_for_all_channels():
    config = MaskingConfig(fill="uniform")
    base = _position_image((50, 1, 9, 9))
    x = torch.cat([base, base + 1000.0], dim=1)
    filled = apply_fill(x, _single_pixel_mask(x.shape, (4, 4)), config, _generator(18))
    assert torch.equal(filled[:, 1, 4, 4] - 1000.0, filled[:, 0, 4, 4])


def test_mask_shape_must_fit_batch():
    x = torch.zeros((2, 1, 8, 8))
    with pytest.raises(SelfDenoiseError):
        apply_fill(x, torch.zeros((2, 1, 8, 9), dtype=torch.bool), MaskingConfig(), _generator())
    with pytest.raises(SelfDenoiseError):
        make_mask(MaskingConfig(), (8, 8), _generator())
