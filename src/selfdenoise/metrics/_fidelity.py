"""Full-reference fidelity: PSNR (plain and scale-invariant) and SSIM (2D and 3D)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.typing import ArrayLike
from skimage.metrics import structural_similarity

from .._errors import SelfDenoiseError
from ._checks import (
    as_image,
    centred_sums,
    mean64,
    mean_squared_difference,
    prepare_pair,
    resolve_data_range,
)

SSIM_CHUNK_ELEMENTS = 2**25
"""3D SSIM is computed in z-chunks of about this many voxels (plus a halo) to bound memory."""


def _psnr_from_mse(mse: float, data_range: float) -> float:
    if mse <= 0:
        return float("inf")
    return float(10.0 * np.log10(data_range**2 / mse))


def psnr(
    reference: ArrayLike,
    image: ArrayLike,
    *,
    data_range: float | None = None,
    mask: ArrayLike | None = None,
) -> float:
    """Peak signal-to-noise ratio of ``image`` against ``reference``, in dB.

    ``PSNR = 10 log10(L^2 / MSE)``, ``MSE = mean_R (S - D)^2`` over the region ``R``
    (``mask``, default all pixels). Equal to ``skimage.metrics.peak_signal_noise_ratio``
    with the same ``data_range`` when there is no mask.

    Parameters
    ----------
    reference : array_like
        Clean image ``S`` (2D or 3D).
    image : array_like
        Denoised image ``D``, same shape, in the same intensity units.
    data_range : float, optional
        ``L``. Default: see :func:`resolve_data_range` (dtype range for integer references,
        ``max - min`` for float references).
    mask : array_like of bool, optional
        Region ``R`` where the error is measured.

    Returns
    -------
    float
        PSNR in dB; ``inf`` when the images are identical on ``R``.
    """
    data_range = resolve_data_range(as_image(reference, "reference"), data_range)
    ref, img, region = prepare_pair(reference, image, mask)
    return _psnr_from_mse(mean_squared_difference(ref, img, region), data_range)


def affine_fit(
    ref: np.ndarray, img: np.ndarray, mask: np.ndarray | None = None
) -> tuple[float, float]:
    """Least-squares ``(a, b)`` minimising ``sum_R (S - (a D + b))^2``.

    ``a = sum (D - mean D)(S - mean S) / sum (D - mean D)^2``, ``b = mean S - a mean D``;
    a constant ``D`` gives ``a = 0``.
    """
    s_dd, _, s_ds, _ = centred_sums(img, ref, mask)
    scale = s_ds / s_dd if s_dd > 0 else 0.0
    return scale, mean64(ref, mask) - scale * mean64(img, mask)


def psnr_scale_invariant(
    reference: ArrayLike,
    image: ArrayLike,
    *,
    data_range: float | None = None,
    mask: ArrayLike | None = None,
) -> float:
    """PSNR after fitting ``image``'s intensity scale and offset to ``reference``.

    ``PSNR_si = 10 log10(L^2 / mean_R (S - (a D + b))^2)`` with ``(a, b)`` the least-squares
    fit ``argmin sum_R (S - (a D + b))^2``. For self-supervised outputs whose intensity scale
    may differ from the reference; always ``>= psnr`` on the same region.

    Parameters
    ----------
    reference, image : array_like
        Clean image ``S`` and denoised image ``D`` (2D or 3D, same shape).
    data_range : float, optional
        ``L``; default as in :func:`psnr`.
    mask : array_like of bool, optional
        Region ``R`` for the fit and the error.

    Returns
    -------
    float
        Scale-invariant PSNR in dB.
    """
    data_range = resolve_data_range(as_image(reference, "reference"), data_range)
    ref, img, region = prepare_pair(reference, image, mask)
    return _psnr_scale_invariant(ref, img, data_range, region)


def _psnr_scale_invariant(
    ref: np.ndarray, img: np.ndarray, data_range: float, mask: np.ndarray | None
) -> float:
    scale, offset = affine_fit(ref, img, mask)
    mse = mean_squared_difference(ref, img, mask, scale=scale, offset=offset)
    return _psnr_from_mse(mse, data_range)


def _check_win_size(shape: tuple[int, ...], win_size: int) -> None:
    if win_size < 3 or win_size % 2 == 0:
        raise SelfDenoiseError(f"win_size must be an odd integer >= 3, got {win_size}.")
    if min(shape) < win_size:
        raise SelfDenoiseError(
            f"SSIM needs at least {win_size} pixels along every axis but the images have "
            f"shape {shape}; use per-slice metrics or a smaller win_size."
        )


def _ssim_blocks(
    ref: np.ndarray, img: np.ndarray, data_range: float, win_size: int
) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``(z_range, S)``: exact SSIM map values for consecutive z ranges.

    Each chunk is computed with a halo of ``(win_size - 1) // 2`` slices so that the map
    values inside the chunk equal those of one call on the whole volume.
    """
    if ref.ndim == 2 or ref.size <= SSIM_CHUNK_ELEMENTS:
        yield slice(0, ref.shape[0]), _skimage_ssim_map(ref, img, data_range, win_size)
        return
    halo = (win_size - 1) // 2
    depth = max(win_size, SSIM_CHUNK_ELEMENTS // (ref[0].size) - 2 * halo)
    n_slices = ref.shape[0]
    for start in range(0, n_slices, depth):
        stop = min(n_slices, start + depth)
        high = min(n_slices, stop + halo)
        low = max(0, min(start - halo, high - win_size))
        block = _skimage_ssim_map(ref[low:high], img[low:high], data_range, win_size)
        yield slice(start, stop), block[start - low : stop - low]


def _skimage_ssim_map(
    ref: np.ndarray, img: np.ndarray, data_range: float, win_size: int
) -> np.ndarray:
    _, s_map = structural_similarity(ref, img, win_size=win_size, data_range=data_range, full=True)
    return s_map


def _interior(shape: tuple[int, ...], win_size: int, mask: np.ndarray | None) -> np.ndarray:
    """Pixels at least ``(win_size - 1) // 2`` from every border (and inside ``mask``)."""
    pad = (win_size - 1) // 2
    region = np.zeros(shape, dtype=bool)
    region[tuple(slice(pad, n - pad) for n in shape)] = True
    return region if mask is None else region & mask


def _mean_ssim(
    ref: np.ndarray,
    img: np.ndarray,
    data_range: float,
    mask: np.ndarray | None,
    win_size: int,
) -> float:
    _check_win_size(ref.shape, win_size)
    if mask is None and (ref.ndim == 2 or ref.size <= SSIM_CHUNK_ELEMENTS):
        return float(structural_similarity(ref, img, win_size=win_size, data_range=data_range))
    region = _interior(ref.shape, win_size, mask)
    total, count = 0.0, 0
    for z_range, s_map in _ssim_blocks(ref, img, data_range, win_size):
        inside = region[z_range]
        total += float(np.sum(s_map[inside], dtype=np.float64))
        count += int(np.count_nonzero(inside))
    return total / count if count else float("nan")


def ssim(
    reference: ArrayLike,
    image: ArrayLike,
    *,
    data_range: float | None = None,
    mask: ArrayLike | None = None,
    win_size: int = 7,
) -> float:
    """Mean structural similarity (2D, or true 3D for volumes), via scikit-image.

    ``SSIM(x, y) = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)
    (sigma_x^2 + sigma_y^2 + C2))`` over ``win_size``-wide windows (``win_size^3`` in 3D),
    ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``, averaged over pixels at least
    ``(win_size - 1) // 2`` from the border (and inside ``mask``). Without a mask this is
    ``skimage.metrics.structural_similarity(S, D, data_range=L, win_size=win_size)``.
    Large volumes are processed in z-chunks with a halo, which gives the same map values.

    Parameters
    ----------
    reference, image : array_like
        Clean image ``S`` and denoised image ``D`` (2D or 3D, same shape).
    data_range : float, optional
        ``L``; default as in :func:`psnr`.
    mask : array_like of bool, optional
        Region over which the SSIM map is averaged.
    win_size : int
        Odd window side; every axis needs at least this many pixels.

    Returns
    -------
    float
        Mean SSIM in ``[-1, 1]``; NaN if the mask has no pixel away from the border.
    """
    data_range = resolve_data_range(as_image(reference, "reference"), data_range)
    ref, img, region = prepare_pair(reference, image, mask)
    return _mean_ssim(ref, img, data_range, region, win_size)


def ssim_map(
    reference: ArrayLike,
    image: ArrayLike,
    data_range: float | None = None,
    *,
    win_size: int = 7,
) -> np.ndarray:
    """Local SSIM map, e.g. to show as an image layer next to the denoised result.

    ``SSIM(p) = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)
    (sigma_x^2 + sigma_y^2 + C2))`` for the window centred on each pixel ``p``, as in
    :func:`ssim` (whose value is the mean of this map away from the border).

    Parameters
    ----------
    reference, image : array_like
        Clean image and denoised image (2D or 3D, same shape).
    data_range : float, optional
        ``L``; default as in :func:`psnr`.
    win_size : int
        Odd window side.

    Returns
    -------
    numpy.ndarray
        float32 map of the images' shape.
    """
    data_range = resolve_data_range(as_image(reference, "reference"), data_range)
    ref, img, _ = prepare_pair(reference, image)
    _check_win_size(ref.shape, win_size)
    out = np.empty(ref.shape, dtype=np.float32)
    for z_range, block in _ssim_blocks(ref, img, data_range, win_size):
        out[z_range] = block
    return out
