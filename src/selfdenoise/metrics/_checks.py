"""Input checks, dtype handling and float64-accurate sums shared by the metrics.

Dtype rule: every array is compared as the numbers it holds (no ``img_as_float``-style
rescaling), so a float32 denoiser output in the units of a uint16 reference compares
directly with it. Arrays with at most ``FLOAT64_MAX_ELEMENTS`` elements are converted to
float64; larger ones to float32 to bound memory, with every sum accumulated in float64.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from .._errors import SelfDenoiseError

FLOAT64_MAX_ELEMENTS = 2**24
"""Arrays with more elements than this are processed in float32 (sums stay float64)."""

_CHUNK = 2**20
"""Elements per chunk when summing products in float64."""

MAX_WORKERS = 8
"""Default cap on the threads used for slice-by-slice work."""

_T = TypeVar("_T")


def map_slices(function: Callable[[int], _T], count: int, workers: int | None = None) -> list[_T]:
    """``[function(i) for i in range(count)]``, on threads when ``workers`` > 1.

    scipy.ndimage and scikit-image release the GIL in their filters, so slices run in
    parallel. ``workers=None`` uses the CPU count, at most ``MAX_WORKERS``.
    """
    if workers is None:
        workers = min(MAX_WORKERS, os.cpu_count() or 1)
    if workers <= 1 or count <= 1:
        return [function(index) for index in range(count)]
    with ThreadPoolExecutor(max_workers=min(workers, count)) as pool:
        return list(pool.map(function, range(count)))


def working_dtype(size: int) -> type[np.floating]:
    """Float type used for an array of ``size`` elements (float64 unless very large)."""
    return np.float64 if size <= FLOAT64_MAX_ELEMENTS else np.float32


def as_image(array: Any, name: str) -> np.ndarray:
    """Return ``array`` as a 2D or 3D real-valued ndarray, unconverted, or raise.

    Integer, unsigned, boolean and floating dtypes are accepted; NaN or infinite values,
    complex values and other dimensionalities raise :class:`SelfDenoiseError`.
    """
    image = np.asarray(array)
    if image.dtype.kind not in "biuf":
        raise SelfDenoiseError(
            f"{name} has dtype {image.dtype}; pass a real-valued (integer or float) image."
        )
    if image.ndim not in (2, 3):
        raise SelfDenoiseError(
            f"{name} has {image.ndim} dimension(s) {image.shape}; metrics take 2D (YX) or "
            "3D (ZYX) images, so select one channel/time point first."
        )
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise SelfDenoiseError(
            f"{name} contains NaN or infinite values; replace them (e.g. numpy.nan_to_num) "
            "before comparing."
        )
    return image


def to_float(image: np.ndarray) -> np.ndarray:
    """Convert to the working float type without rescaling (True -> 1.0, 1000 -> 1000.0)."""
    return np.asarray(image, dtype=working_dtype(image.size))


def check_same_shape(image: np.ndarray, name: str, shape: tuple[int, ...], what: str) -> None:
    """Raise if ``image.shape`` differs from ``shape`` (the shape of ``what``)."""
    if image.shape != tuple(shape):
        raise SelfDenoiseError(
            f"{name} has shape {image.shape} but {what} has shape {tuple(shape)}; "
            "compare images of the same shape."
        )


def as_mask(mask: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    """Return ``mask`` as a boolean array of ``shape`` (None stays None), or raise."""
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != tuple(shape):
        raise SelfDenoiseError(
            f"mask has shape {mask.shape} but the images have shape {tuple(shape)}; "
            "pass a mask of the same shape."
        )
    mask = mask.astype(bool, copy=False)
    if not mask.any():
        raise SelfDenoiseError("mask selects no pixel; pass a mask with at least one True pixel.")
    return mask


def resolve_data_range(reference: Any, data_range: float | None = None) -> float:
    """Data range ``L`` used by PSNR and SSIM.

    Rule: an explicit ``data_range`` wins; otherwise a boolean reference gives ``L = 1``,
    an integer reference its dtype range ``L = iinfo.max - iinfo.min`` (255 for uint8,
    65535 for uint16), and a float reference ``L = max(S) - min(S)``.

    Parameters
    ----------
    reference : array_like
        The reference (clean) image, in its original dtype.
    data_range : float, optional
        Explicit range, e.g. 4095 for 12-bit data stored as uint16.

    Returns
    -------
    float
        The positive data range.

    Raises
    ------
    SelfDenoiseError
        If ``data_range`` is not positive, or a float reference is constant.
    """
    if data_range is not None:
        value = float(data_range)
        if not np.isfinite(value) or value <= 0:
            raise SelfDenoiseError(f"data_range must be a positive number, got {data_range!r}.")
        return value
    reference = np.asarray(reference)
    if reference.dtype.kind == "b":
        return 1.0
    if reference.dtype.kind in "iu":
        info = np.iinfo(reference.dtype)
        return float(info.max) - float(info.min)
    value = float(reference.max()) - float(reference.min())
    if value <= 0:
        raise SelfDenoiseError(
            "the reference is constant, so its data range is 0; pass data_range explicitly."
        )
    return value


def mean64(x: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean of ``x`` (over ``mask``) accumulated in float64."""
    values = x if mask is None else x[mask]
    return float(np.mean(values, dtype=np.float64))


def _dot(x: np.ndarray, y: np.ndarray) -> float:
    """``sum x*y`` without BLAS (whose threads stall on a busy machine)."""
    return float(np.einsum("i,i->", x, y))


def centred_sums(
    a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None
) -> tuple[float, float, float, int]:
    """Centred sums ``(S_aa, S_bb, S_ab, n)`` over ``mask``, accumulated in float64.

    ``S_ab = sum (a - mean a)(b - mean b)``; two passes and chunks of ``_CHUNK`` elements
    keep it accurate (no ``sum a^2 - n mean^2`` cancellation) and light on memory.
    """
    if mask is not None:
        a, b = a[mask], b[mask]
    a, b = a.reshape(-1), b.reshape(-1)
    a_mean = float(np.mean(a, dtype=np.float64))
    b_mean = float(np.mean(b, dtype=np.float64))
    s_aa = s_bb = s_ab = 0.0
    for start in range(0, a.size, _CHUNK):
        x = a[start : start + _CHUNK].astype(np.float64) - a_mean
        y = b[start : start + _CHUNK].astype(np.float64) - b_mean
        s_aa += _dot(x, x)
        s_bb += _dot(y, y)
        s_ab += _dot(x, y)
    return s_aa, s_bb, s_ab, a.size


def pearson(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Pearson correlation ``S_ab / sqrt(S_aa S_bb)`` over ``mask``; NaN if either is flat."""
    s_aa, s_bb, s_ab, _ = centred_sums(a, b, mask)
    if s_aa <= 0 or s_bb <= 0:
        return float("nan")
    return float(np.clip(s_ab / np.sqrt(s_aa * s_bb), -1.0, 1.0))


def mean_squared_difference(
    a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, scale: float = 1.0, offset=0.0
) -> float:
    """``mean((a - (scale * b + offset))^2)`` over ``mask``, accumulated in float64."""
    if mask is not None:
        a, b = a[mask], b[mask]
    a, b = a.reshape(-1), b.reshape(-1)
    total = 0.0
    for start in range(0, a.size, _CHUNK):
        diff = a[start : start + _CHUNK].astype(np.float64)
        diff -= scale * b[start : start + _CHUNK].astype(np.float64) + offset
        total += _dot(diff, diff)
    return total / a.size


def prepare_pair(
    reference: Any,
    image: Any,
    mask: Any = None,
    names: tuple[str, str] = ("reference", "image"),
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Check two images (2D/3D, finite, same shape) and a mask; return them as floats."""
    first = as_image(reference, names[0])
    second = as_image(image, names[1])
    check_same_shape(second, names[1], first.shape, f"the {names[0]}")
    return to_float(first), to_float(second), as_mask(mask, first.shape)
