import numpy as np
import pytest

from selfdenoise import SelfDenoiseError
from selfdenoise.axes import (
    Layout,
    ModelAxesErrors,
    axes_for_model,
    from_canonical,
    guess_axes,
    to_canonical,
    validate_axes,
)


@pytest.mark.parametrize(
    ("axes", "shape", "jointly", "canonical"),
    [
        ("YX", (5, 6), True, (1, 1, 5, 6)),
        ("ZYX", (4, 5, 6), True, (1, 1, 4, 5, 6)),
        ("TYX", (3, 5, 6), True, (3, 1, 5, 6)),
        ("CYX", (2, 5, 6), True, (1, 2, 5, 6)),
        ("YXC", (5, 6, 3), True, (1, 3, 5, 6)),
        ("SZYX", (2, 4, 5, 6), True, (2, 1, 4, 5, 6)),
        ("TCZYX", (3, 2, 4, 5, 6), True, (3, 2, 4, 5, 6)),
        ("TCZYX", (3, 2, 4, 5, 6), False, (6, 1, 4, 5, 6)),
        ("XY", (6, 5), True, (1, 1, 5, 6)),
    ],
)
def test_canonical_round_trip(axes, shape, jointly, canonical):
    array = np.random.default_rng(0).random(shape)
    moved, layout = to_canonical(array, axes, jointly)
    assert moved.shape == canonical == layout.canonical_shape
    np.testing.assert_array_equal(from_canonical(moved, layout), array)


@pytest.mark.parametrize("jointly", [True, False])
def test_block_reads_match_canonical_view(jointly):
    array = np.random.default_rng(1).random((3, 2, 7, 9, 11))
    canonical, layout = to_canonical(array, "TCZYX", jointly)
    spatial = (slice(1, 4), slice(2, 9), slice(0, 5))
    for sample in layout.samples():
        block = layout.block_to_canonical(array[layout.block_index(sample, spatial)])
        np.testing.assert_array_equal(block, canonical[sample][(slice(None), *spatial)])
        back = layout.canonical_to_block(block)
        np.testing.assert_array_equal(back, array[layout.block_index(sample, spatial)])


def test_validate_axes_checks_length_and_letters():
    assert validate_axes("zyx", 3) == "ZYX"
    with pytest.raises(SelfDenoiseError, match="3 dimensions"):
        validate_axes("YX", 3)
    with pytest.raises(SelfDenoiseError, match="unknown letter"):
        validate_axes("QYX")
    with pytest.raises(SelfDenoiseError):
        Layout("YX", (4, 5, 6))


def test_guess_axes():
    assert guess_axes((64, 64)) == "YX"
    assert guess_axes((10, 64, 64)) == "ZYX"
    assert guess_axes((64, 64, 3), rgb=True) == "YXC"
    assert guess_axes((2, 10, 64, 64)) == "CZYX"
    assert guess_axes((20, 10, 64, 64)) == "TZYX"


_ERRORS = ModelAxesErrors(
    dimensions="{ndim} dims for {model_axes!r}", all_sample_axes="no free axis", needs_z="no Z"
)


@pytest.mark.parametrize(
    ("axes", "ndim", "model_axes", "model_ndim", "expected"),
    [
        (None, 2, "YX", 2, "YX"),
        (None, 3, "YX", 2, "SYX"),
        (None, 4, "ZYX", 3, "SZYX"),
        ("zyx", 3, "YX", 2, "SYX"),
        ("SZYX", 4, "YX", 2, "STYX"),
        ("TZYX", 4, "ZYX", 3, "TZYX"),
    ],
)
def test_axes_for_model(axes, ndim, model_axes, model_ndim, expected):
    assert axes_for_model(axes, ndim, model_axes, model_ndim, _ERRORS) == expected


@pytest.mark.parametrize(
    ("axes", "ndim", "model_axes", "model_ndim", "message"),
    [
        (None, 4, "YX", 2, "4 dims for 'YX'"),
        (None, 4, "SYX", 2, "4 dims for 'SYX'"),
        ("STZYX", 5, "YX", 2, "no free axis"),
        ("TYX", 3, "ZYX", 3, "no Z"),
    ],
)
def test_axes_for_model_says_the_callers_message(axes, ndim, model_axes, model_ndim, message):
    with pytest.raises(SelfDenoiseError, match=f"^{message}$"):
        axes_for_model(axes, ndim, model_axes, model_ndim, _ERRORS)
