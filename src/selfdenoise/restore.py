"""Noise-aware detail restoration: a local Wiener step after a blind-spot denoiser.

A denoiser trained with masked pixels (Noise2Void, N2V2, Noise2Self) predicts each pixel from
its neighbours alone, and Noise2Same ends close to that. Where the neighbours cannot tell a
pixel's value (edges, fine texture) the output ``d`` is too smooth, and the pixel's own noisy
value ``x`` still holds information. If the error ``d - y`` is independent of the pixel's
noise (variance ``v``), the blend ``d + c (x - d)`` has the least expected error at

.. math:: c = \\frac{e}{e + v}, \\qquad e = E(d - y)^2 = E(x - d)^2 - v .

:func:`restore_detail` reads ``q = e / v`` locally: the squared method noise ``(x - d)^2 / v``
averaged with a Gaussian window of :data:`DETAIL_SMOOTHING` pixels, minus 1, clipped at 0, and
blends with ``c = q / (q + 1)``. In flat regions the method noise is pure noise, ``q`` is about
0 and the output stays ``d``; at an edge the network smoothed away, ``q`` is large and the
blend takes back what the noisy pixel shows. This is the empirical Wiener step of two-stage
filters (BM3D's second stage, Lee's local-statistics filter) with the network's output as the
pilot estimate. Reading the error in units of the local noise variance keeps photon noise,
whose variance changes from pixel to pixel, from passing for lost detail.

The noise variance comes from the noisy image itself
(:func:`~selfdenoise.metrics.estimate_noise_line`): a constant for Gaussian noise,
``a * signal + b`` for photon-limited noise. Whether the blend helps is decided per image by
Stein's unbiased risk estimate (:func:`estimated_error_change`): where it expects no gain
(an output that lost no detail, or noise the estimate misreads) the output is left as it is.

Neighbor2Neighbor and supervised models keep their own pixel's value in the output already,
so their method noise under-reads ``e``; the step does not help them (docs/benchmarks.md) and
is off for them by default. It is also off by default with structN2V masking, which declares
noise correlated between pixels.

Importing this module does not import torch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from ._errors import SelfDenoiseError
from ._prediction import map_samples_dask
from ._slabs import MAX_SLAB_ELEMENTS, slabs, write_finished
from .axes import Layout
from .metrics import NoiseLine, estimate_noise_line
from .tiling._cancel import raise_if_cancelled

__all__ = [
    "DETAIL_SMOOTHING",
    "estimated_error_change",
    "restore_detail",
    "restore_detail_dask",
    "restore_detail_samples",
]

DETAIL_SMOOTHING = 2.5
"""Standard deviation (pixels) of the Gaussian window that reads the local error."""


def _check_pair(noisy: ArrayLike, denoised: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(noisy, dtype=np.float32)
    d = np.asarray(denoised, dtype=np.float32)
    if x.shape != d.shape:
        raise SelfDenoiseError(f"noisy {x.shape} and denoised {d.shape} must have the same shape.")
    if x.ndim not in (2, 3):
        raise SelfDenoiseError(f"restore_detail takes a 2D or 3D image; got shape {x.shape}.")
    return x, d


def _variance(x: np.ndarray, d: np.ndarray, noise: NoiseLine | float | None) -> np.ndarray:
    """Per-pixel noise variance at the denoised signal, kept above a tiny floor."""
    noise = estimate_noise_line(x) if noise is None else noise
    variance = noise.variance(d) if isinstance(noise, NoiseLine) else np.full_like(d, noise)
    floor = 1e-6 * float(np.mean(np.square(x - d), dtype=np.float64)) + 1e-30
    return np.maximum(variance, floor).astype(np.float32)


def _centre_weight(smoothing: float, ndim: int) -> float:
    """Weight of a pixel in its own window (scipy's Gaussian kernel, truncated at 4 sigma)."""
    radius = int(4.0 * smoothing + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / smoothing) ** 2)
    return float((1.0 / taps.sum()) ** ndim)


def _blend(
    x: np.ndarray, d: np.ndarray, variance: np.ndarray, smoothing: float
) -> tuple[np.ndarray, float]:
    """The restored image and SURE's estimate of the change in mean squared error it makes."""
    method_noise = x - d
    excess = ndimage.gaussian_filter(method_noise * method_noise / variance, smoothing) - 1.0
    restoring = excess > 0
    excess = np.where(restoring, excess, 0.0)
    weight = excess / (excess + 1.0)
    # d weight / d x_i through the pixel's own term of its window (the output d is taken as
    # independent of x_i, as a blind spot's is)
    slope = 2.0 * _centre_weight(smoothing, x.ndim) * method_noise / variance
    slope = np.where(restoring, slope / (excess + 1.0) ** 2, 0.0)
    divergence = weight + method_noise * slope
    shrink = (1.0 - weight) ** 2 - 1.0
    change = np.mean(method_noise**2 * shrink + 2.0 * variance * divergence, dtype=np.float64)
    return (d + weight * method_noise).astype(np.float32), float(change)


def estimated_error_change(
    noisy: ArrayLike,
    denoised: ArrayLike,
    *,
    noise: NoiseLine | float | None = None,
    smoothing: float = DETAIL_SMOOTHING,
) -> float:
    """SURE's estimate of the change in mean squared error that :func:`restore_detail` makes.

    Stein's unbiased risk estimate needs no clean image: for Gaussian noise of variance ``v``
    and an output ``h(x)``, ``E|h - y|^2 = E|h - x|^2 + 2 v div h - v`` per pixel. The
    divergence of the blend is computed in closed form, with the denoised image taken as
    independent of each pixel's own noise. That holds for a blind spot; Noise2Same's output
    leans a little on its own pixel, and then the estimate is pessimistic (it under-states
    the gain), so a blend it accepts is a safe one.

    Returns
    -------
    float
        Estimated mean squared error after the blend minus before it, in the image's units
        squared (negative: the blend helps).
    """
    x, d = _check_pair(noisy, denoised)
    return _blend(x, d, _variance(x, d, noise), smoothing)[1]


def restore_detail(
    noisy: ArrayLike,
    denoised: ArrayLike,
    *,
    noise: NoiseLine | float | None = None,
    smoothing: float = DETAIL_SMOOTHING,
    only_if_better: bool = True,
) -> np.ndarray:
    """Blend each pixel of ``denoised`` with its noisy value where the denoiser lost detail.

    Parameters
    ----------
    noisy : array_like
        The noisy image ``x`` (2D or 3D, one channel).
    denoised : array_like
        The denoiser's output ``d``, same shape and intensity units.
    noise : NoiseLine or float, optional
        The noise variance: a :class:`~selfdenoise.metrics.NoiseLine` (variance as a function
        of the signal), or one variance for every pixel. Default: estimated from ``noisy``.
    smoothing : float
        Gaussian window (standard deviation, pixels along every axis) of the local error.
    only_if_better : bool
        Return ``denoised`` unchanged when :func:`estimated_error_change` does not expect the
        blend to lower the error (a denoiser that lost no detail, or noise that the wavelet
        estimate misreads).

    Returns
    -------
    numpy.ndarray
        ``d + c * (x - d)`` with ``c = q / (q + 1)`` per pixel, float32.
    """
    x, d = _check_pair(noisy, denoised)
    if not smoothing > 0:
        raise SelfDenoiseError(f"smoothing must be a number > 0; got {smoothing!r}.")
    restored, change = _blend(x, d, _variance(x, d, noise), smoothing)
    return d.copy() if only_if_better and change >= 0 else restored


def _blend_channels(
    noisy: np.ndarray, output: np.ndarray, lines: list[NoiseLine], helps: list[bool] | None = None
) -> tuple[np.ndarray, list[bool]]:
    """Blend each channel of a ``(C, *spatial)`` block with its noise line.

    ``helps`` says which channels to blend; None decides each by its estimated error change
    (as :func:`restore_detail` does). Returns the block and the channels blended.
    """
    blocks, blended = [], []
    for index, (channel_noisy, channel_output, line) in enumerate(
        zip(noisy, output, lines, strict=True)
    ):
        if helps is not None and not helps[index]:
            blocks.append(channel_output)
            blended.append(False)
            continue
        variance = _variance(channel_noisy, channel_output, line)
        restored, change = _blend(channel_noisy, channel_output, variance, DETAIL_SMOOTHING)
        keep = helps is not None or change < 0
        blocks.append(restored if keep else channel_output)
        blended.append(keep)
    return np.stack(blocks), blended


def restore_detail_samples(
    image: Any,
    denoised: Any,
    layout: Layout,
    *,
    max_elements: int = MAX_SLAB_ELEMENTS,
    cancel: Any = None,
) -> Any:
    """:func:`restore_detail` on every sample and channel of a prediction, in place.

    Parameters
    ----------
    image : array-like
        The noisy input (numpy, memory-mapped, zarr or dask), laid out as ``layout``.
    denoised : array-like
        The prediction of ``image``, same shape; written slab by slab.
    layout : Layout
        How the arrays map to ``(N, C, *spatial)`` (:meth:`selfdenoise.Denoiser.prediction_layout`).
    max_elements : int
        Largest slab held in memory (per channel); larger samples are cut along their first
        spatial axis, with a halo that makes the result the same as in one piece.
    cancel : threading.Event or callable, optional
        Checked before each sample and slab (:class:`~selfdenoise.tiling.PredictionCancelled`).

    Returns
    -------
    array-like
        ``denoised``. Each sample and channel reads its own noise level and decides whether
        the blend helps (:func:`estimated_error_change`) on its middle slab and that slab's
        halo; a sample left as it was is not written.
    """
    spatial_shape = layout.spatial_shape
    plane = math.prod(spatial_shape[1:]) * layout.n_channels
    halo = int(np.ceil(4 * DETAIL_SMOOTHING))
    pieces = list(slabs(spatial_shape[0], plane, halo, max_elements))
    rest = [slice(None)] * (len(spatial_shape) - 1)

    def place(core: slice) -> list[slice]:
        return [core, *rest]

    for sample in layout.samples():
        raise_if_cancelled(cancel)
        middle = pieces[len(pieces) // 2][0]  # with its halo: never a single plane of a volume
        noisy = layout.read_block(image, sample, [middle, *rest])
        output = layout.read_block(denoised, sample, [middle, *rest])
        lines = [estimate_noise_line(channel) for channel in noisy]
        middle_restored, helps = _blend_channels(noisy, output, lines)
        if not any(helps):
            continue
        pending: list[tuple[slice, np.ndarray]] = []  # written once no later slab reads them
        for read, core_in_read, core in pieces:
            raise_if_cancelled(cancel)
            pending = write_finished(denoised, layout, sample, pending, read.start, place)
            if read == middle:  # read and blended above, before anything was written
                restored = middle_restored
            else:
                noisy = layout.read_block(image, sample, [read, *rest])
                output = layout.read_block(denoised, sample, [read, *rest])
                restored, _ = _blend_channels(noisy, output, lines, helps)
            pending.append((core, restored[:, core_in_read]))
        write_finished(denoised, layout, sample, pending, spatial_shape[0], place)
    return denoised


def restore_detail_dask(image: Any, denoised: Any, layout: Layout) -> Any:
    """Lazy :func:`restore_detail` of a dask prediction (block by block, with a halo).

    Each dask block reads the noise level of its own samples and channels and decides for
    itself whether the blend helps (blocks are large enough for stable estimates: the
    wavelet estimator needs a few thousand pixels).
    """
    halo = int(np.ceil(4 * DETAIL_SMOOTHING))
    return map_samples_dask(
        restore_detail_samples, image, denoised, layout, halo, layout.spatial_axes
    )
