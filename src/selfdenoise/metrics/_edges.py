"""Edge preservation: EPI, gradient-magnitude correlation, Canny preservation and F1."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage as ndi
from skimage.feature import canny

from .._errors import SelfDenoiseError
from ._checks import as_image, map_slices, pearson, prepare_pair, to_float

CANNY_PERCENTILE = 99.9
"""Percentile of the reference's smoothed gradient magnitude that scales the thresholds."""

CANNY_MAX_THRESHOLD_SLICES = 8
"""Volumes: the threshold percentile is taken over at most this many evenly spaced slices."""


class EdgeScores(NamedTuple):
    """Canny edge agreement: ``preservation`` (tolerant recall) and ``f1``; NaN if undefined."""

    preservation: float
    f1: float


def laplacian(image: np.ndarray) -> np.ndarray:
    """Discrete Laplacian: 3x3 (5-point) stencil in 2D, 7-point stencil in 3D."""
    return ndi.laplace(image, mode="reflect")


def epi(
    reference: ArrayLike,
    image: ArrayLike,
    *,
    mask: ArrayLike | None = None,
) -> float:
    """Edge preservation index (Sattar et al. 1997): correlation of high-pass images.

    ``EPI = sum_R (dS - mean dS)(dD - mean dD) / sqrt(sum_R (dS - mean dS)^2
    sum_R (dD - mean dD)^2)`` with ``d`` the discrete Laplacian (3x3 in 2D, 7-point in 3D)
    and ``R`` the region (``mask``, default all pixels). 1 for identical images, about 0 for
    unrelated ones. With no clean image the noisy input may serve as ``S`` (then it measures
    agreement with the noisy input, not edge preservation).

    Parameters
    ----------
    reference, image : array_like
        Reference ``S`` and denoised image ``D`` (2D or 3D, same shape).
    mask : array_like of bool, optional
        Region ``R``.

    Returns
    -------
    float
        EPI in ``[-1, 1]``; NaN if either high-pass image is constant on ``R``.
    """
    ref, img, region = prepare_pair(reference, image, mask)
    return pearson(laplacian(ref), laplacian(img), region)


def gradient_magnitude(image: np.ndarray) -> np.ndarray:
    """``|grad I| = sqrt(sum_axes (dI/dx_k)^2)`` with central differences (``np.gradient``)."""
    magnitude = np.zeros_like(image)
    for axis in range(image.ndim):
        derivative = np.gradient(image, axis=axis)
        magnitude += derivative * derivative
    return np.sqrt(magnitude, out=magnitude)


def gradient_correlation(
    reference: ArrayLike,
    image: ArrayLike,
    *,
    threshold: float | None = None,
    mask: ArrayLike | None = None,
) -> float:
    """Pearson correlation of gradient magnitudes, optionally only on strong edges.

    ``GC = corr_R(|grad S|, |grad D|)`` over ``R = mask & (|grad S| > tau)``, gradients by
    central differences along every axis.

    Parameters
    ----------
    reference, image : array_like
        Reference ``S`` and denoised image ``D`` (2D or 3D, same shape).
    threshold : float, optional
        ``tau``, in intensity units per pixel; default: no threshold.
    mask : array_like of bool, optional
        Region to restrict to.

    Returns
    -------
    float
        Correlation in ``[-1, 1]``; NaN if no pixel passes or a magnitude is constant.
    """
    ref, img, region = prepare_pair(reference, image, mask)
    ref_gradient = gradient_magnitude(ref)
    region = _strong_gradient_region(ref_gradient, threshold, region)
    if region is not None and not region.any():
        return float("nan")
    return pearson(ref_gradient, gradient_magnitude(img), region)


def _strong_gradient_region(
    ref_gradient: np.ndarray, threshold: float | None, mask: np.ndarray | None
) -> np.ndarray | None:
    if threshold is None:
        return mask
    strong = ref_gradient > threshold
    return strong if mask is None else strong & mask


def _smoothed_gradient_magnitude(image: np.ndarray, sigma: float) -> np.ndarray:
    """The magnitude Canny thresholds: ``|sobel(G_sigma * I)|`` in the YX plane."""
    sigmas = (0.0,) * (image.ndim - 2) + (sigma, sigma)
    smoothed = ndi.gaussian_filter(image, sigmas, mode="nearest")
    along_y = ndi.sobel(smoothed, axis=-2)
    along_x = ndi.sobel(smoothed, axis=-1)
    return np.hypot(along_y, along_x)


def canny_thresholds(
    reference: ArrayLike,
    *,
    sigma: float = 1.0,
    low_fraction: float = 0.1,
    high_fraction: float = 0.2,
) -> tuple[float, float]:
    """Absolute hysteresis thresholds for Canny, set by the reference.

    ``T_low = low_fraction * P``, ``T_high = high_fraction * P`` with ``P`` the
    ``CANNY_PERCENTILE`` (99.9th) percentile of the reference's smoothed gradient magnitude
    ``|sobel(G_sigma * S)|`` (for volumes, over at most ``CANNY_MAX_THRESHOLD_SLICES``
    evenly spaced slices). Both images are then thresholded with the same values.

    Parameters
    ----------
    reference : array_like
        Reference image ``S`` (2D or 3D).
    sigma : float
        Gaussian smoothing of the Canny detector, in pixels.
    low_fraction, high_fraction : float
        Fractions of ``P``, ``0 <= low_fraction <= high_fraction``.

    Returns
    -------
    (float, float)
        ``(T_low, T_high)``.
    """
    if not 0 <= low_fraction <= high_fraction:
        raise SelfDenoiseError(
            f"Canny fractions must satisfy 0 <= low <= high, got {low_fraction}, {high_fraction}."
        )
    ref = as_image(reference, "reference")
    if ref.ndim == 3:
        count = min(ref.shape[0], CANNY_MAX_THRESHOLD_SLICES)
        ref = ref[np.linspace(0, ref.shape[0] - 1, count).round().astype(int)]
    magnitude = _smoothed_gradient_magnitude(to_float(ref), _check_sigma(sigma))
    scale = float(np.percentile(magnitude, CANNY_PERCENTILE))
    return low_fraction * scale, high_fraction * scale


def _check_sigma(sigma: float) -> float:
    if not sigma >= 0:
        raise SelfDenoiseError(f"canny sigma must be >= 0 pixels, got {sigma}.")
    return float(sigma)


def canny_edges(
    image: ArrayLike,
    *,
    sigma: float = 1.0,
    thresholds: tuple[float, float],
    workers: int | None = None,
) -> np.ndarray:
    """Canny edges (scikit-image) with absolute thresholds; volumes slice by slice.

    ``E = hysteresis(nonmax(|sobel(G_sigma * I)|), T_low, T_high)`` per YX plane.

    Parameters
    ----------
    image : array_like
        2D image or 3D volume (edges per z-slice).
    sigma : float
        Gaussian smoothing in pixels.
    thresholds : (float, float)
        ``(T_low, T_high)`` in gradient-magnitude units, e.g. from :func:`canny_thresholds`.
    workers : int, optional
        Threads for the slices of a volume; default: the CPU count, at most 8.

    Returns
    -------
    numpy.ndarray of bool
        Edge map of the image's shape.
    """
    planes = to_float(as_image(image, "image"))
    low, high = thresholds
    sigma = _check_sigma(sigma)
    if planes.ndim == 2:
        return canny(planes, sigma, low, high, mode="nearest")

    def plane_edges(index: int) -> np.ndarray:
        return canny(planes[index], sigma, low, high, mode="nearest")

    return np.stack(map_slices(plane_edges, planes.shape[0], workers))


def dilate_edges(edges: np.ndarray, tolerance: int) -> np.ndarray:
    """Edges grown by ``tolerance`` pixels in the YX plane (square neighbourhood)."""
    if tolerance == 0:
        return edges
    size = (1,) * (edges.ndim - 2) + (2 * tolerance + 1,) * 2
    return ndi.maximum_filter(edges, size=size)


def edge_scores(
    ref_edges: np.ndarray,
    ref_dilated: np.ndarray,
    edges: np.ndarray,
    tolerance: int,
    mask: np.ndarray | None = None,
) -> EdgeScores:
    """Edge preservation (tolerant recall) and F1 from edge maps, per-slice mean for volumes.

    ``preservation = R = |E_r & dil_t(E_d)| / |E_r|``, ``P = |E_d & dil_t(E_r)| / |E_d|``,
    ``F1 = 2PR / (P + R)``. Slices without reference edges are left out of the
    preservation; slices with no edge in either map are left out of the F1.
    """
    dilated = dilate_edges(edges, tolerance)
    if mask is not None:
        ref_edges, ref_dilated = ref_edges & mask, ref_dilated & mask
        edges, dilated = edges & mask, dilated & mask
    plane_axes = (-2, -1)
    n_ref = np.count_nonzero(ref_edges, axis=plane_axes)
    n_out = np.count_nonzero(edges, axis=plane_axes)
    matched_ref = np.count_nonzero(ref_edges & dilated, axis=plane_axes)
    matched_out = np.count_nonzero(edges & ref_dilated, axis=plane_axes)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(n_ref > 0, matched_ref / n_ref, np.nan)
        precision = np.where(n_out > 0, matched_out / n_out, 0.0)
        found = np.nan_to_num(recall)
        f1 = np.where(precision + found > 0, 2 * precision * found / (precision + found), 0.0)
    f1 = np.where(n_ref + n_out > 0, f1, np.nan)
    return EdgeScores(_nanmean(recall), _nanmean(f1))


def _nanmean(values: np.ndarray) -> float:
    values = np.atleast_1d(values)
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


def canny_edges_f1(
    reference: ArrayLike,
    image: ArrayLike,
    *,
    sigma: float = 1.0,
    tolerance: int = 1,
    low_fraction: float = 0.1,
    high_fraction: float = 0.2,
    mask: ArrayLike | None = None,
) -> EdgeScores:
    """Canny edge preservation ratio and F1 with a pixel tolerance.

    ``E_r = canny(S)``, ``E_d = canny(D)`` with the same ``sigma`` and the same absolute
    thresholds (:func:`canny_thresholds` of ``S``); volumes per z-slice, averaged.
    ``preservation = R = |E_r & dil_t(E_d)| / |E_r|`` (with ``t = 0``: ``|E_r & E_d| / |E_r|``),
    ``F1 = 2PR / (P + R)`` with ``P = |E_d & dil_t(E_r)| / |E_d|``; ``dil_t`` is a dilation
    by a ``(2t+1) x (2t+1)`` square (edges match within ``t`` pixels, diagonals included).

    Parameters
    ----------
    reference, image : array_like
        Reference ``S`` and denoised image ``D`` (2D or 3D, same shape, same units).
    sigma : float
        Canny Gaussian smoothing, in pixels, for both images.
    tolerance : int
        ``t``, in pixels (0: exact positions).
    low_fraction, high_fraction : float
        Hysteresis thresholds as fractions of the reference's gradient scale.
    mask : array_like of bool, optional
        Only edge pixels inside the mask are counted.

    Returns
    -------
    EdgeScores
        ``(preservation, f1)``; NaN where the reference (and image) have no edge.
    """
    ref, img, region = prepare_pair(reference, image, mask)
    tolerance = check_tolerance(tolerance)
    thresholds = canny_thresholds(
        ref, sigma=sigma, low_fraction=low_fraction, high_fraction=high_fraction
    )
    ref_edges = canny_edges(ref, sigma=sigma, thresholds=thresholds)
    edges = canny_edges(img, sigma=sigma, thresholds=thresholds)
    return edge_scores(ref_edges, dilate_edges(ref_edges, tolerance), edges, tolerance, region)


def check_tolerance(tolerance: int) -> int:
    """Return ``tolerance`` as a non-negative int, or raise."""
    if int(tolerance) != tolerance or tolerance < 0:
        raise SelfDenoiseError(
            f"edge tolerance must be a whole number of pixels >= 0, got {tolerance}."
        )
    return int(tolerance)
