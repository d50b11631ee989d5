"""No-reference readouts: noise level and method-noise statistics."""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import fft
from scipy.special import ndtri

from .._errors import SelfDenoiseError
from ._checks import as_image, centred_sums, pearson, prepare_pair, to_float

_SQRT3 = math.sqrt(3.0)
DB2_HIGHPASS = np.array([-(1 + _SQRT3), 3 + _SQRT3, -(3 - _SQRT3), 1 - _SQRT3]) / (
    4 * math.sqrt(2.0)
)
"""Daubechies-2 decomposition high-pass filter (PyWavelets' ``Wavelet('db2').dec_hi``)."""

AUTOCORRELATION_BLOCK = 64
"""Side of the blocks the residual autocorrelation is estimated on."""

AUTOCORRELATION_MAX_ELEMENTS = 2**22
"""At most this many residual pixels (evenly spaced whole blocks) enter the autocorrelation."""


class MethodNoiseStats(NamedTuple):
    """Statistics of the method noise ``r = x - f(x)`` (see :func:`method_noise_stats`)."""

    noise_sigma_noisy: float
    residual_std: float
    residual_std_ratio: float
    residual_output_correlation: float
    residual_autocorrelation_spread: float


def _highpass_downsample(image: np.ndarray, axis: int) -> np.ndarray:
    """One DWT level along ``axis``: ``d[o] = sum_j h[j] x[2o + 1 - j]``, symmetric extension."""
    pad = DB2_HIGHPASS.size - 1
    widths = [(0, 0)] * image.ndim
    widths[axis] = (pad, pad)
    extended = np.pad(image, widths, mode="symmetric")
    n_out = (image.shape[axis] + pad) // 2
    shape = list(image.shape)
    shape[axis] = n_out
    detail = np.zeros(shape, dtype=image.dtype)
    for tap, weight in enumerate(DB2_HIGHPASS):
        start = 1 + pad - tap
        index = [slice(None)] * image.ndim
        index[axis] = slice(start, start + 2 * n_out - 1, 2)
        detail += weight * extended[tuple(index)]
    return detail


def _finest_details(values: np.ndarray) -> np.ndarray:
    """Finest-scale db2 detail coefficients that are high-pass along every axis (HH, HHH)."""
    for axis in range(values.ndim):
        values = _highpass_downsample(values, axis)
    return values


def estimate_noise_sigma(image: ArrayLike) -> float:
    """Gaussian noise standard deviation from the finest wavelet details (Donoho & Johnstone).

    ``sigma = median(|d|) / Phi^-1(0.75)``, ``Phi^-1(0.75) = 0.6745``, where ``d`` are the
    non-zero finest-scale db2 detail coefficients that are high-pass along every axis (HH in
    2D, HHH in 3D), symmetric boundary extension. This is the estimator of
    ``skimage.restoration.estimate_sigma`` (which needs PyWavelets), written with numpy; it
    uses the whole image (no sub-sampling: the one needed sub-band costs a few array passes).

    Parameters
    ----------
    image : array_like
        2D image or 3D volume, in its own intensity units.

    Returns
    -------
    float
        Estimated noise sigma in the image's units (0 for an image with no detail).
    """
    detail = _finest_details(to_float(as_image(image, "image")))
    magnitudes = np.abs(detail[detail != 0])
    if magnitudes.size == 0:
        return 0.0
    return float(np.median(magnitudes) / ndtri(0.75))


NOISE_LEVEL_BINS = 16
"""Intensity bins in which :func:`estimate_noise_rms` reads the noise variance."""


class NoiseLine(NamedTuple):
    """Noise variance as a line in the signal: ``var = slope * signal + offset``.

    ``slope`` is 0 for signal-independent (Gaussian) noise and positive for photon-limited
    (Poisson-Gaussian) noise; see :func:`estimate_noise_line`.
    """

    slope: float
    offset: float

    def variance(self, signal: ArrayLike) -> np.ndarray:
        """Noise variance at ``signal`` (in the image's units), clipped at 0."""
        return np.maximum(self.slope * np.asarray(signal) + self.offset, 0.0)


def estimate_noise_line(image: ArrayLike, bins: int = NOISE_LEVEL_BINS) -> NoiseLine:
    """Fit ``var = slope * signal + offset`` to the noise of one image or volume.

    The finest-scale wavelet details (as in :func:`estimate_noise_sigma`) are grouped by the
    local mean intensity (``2^n`` blocks) into ``bins`` quantile bins; each bin's variance is
    the squared MAD estimate, and a line with ``slope >= 0`` is fitted through them by
    weighted least squares. An image with one intensity level, or too few pixels per bin,
    gets the flat line ``(0, estimate_noise_sigma(image)**2)``.

    Parameters
    ----------
    image : array_like
        2D image or 3D volume, in its own intensity units.
    bins : int
        Number of intensity bins.

    Returns
    -------
    NoiseLine
        Slope and offset in the image's units (variance per unit of signal, variance).
    """
    return _fit_noise_line(to_float(as_image(image, "image")), bins)[0]


def _fit_noise_line(values: np.ndarray, bins: int) -> tuple[NoiseLine, np.ndarray]:
    """:func:`estimate_noise_line` of float ``values``, and the block means it binned by."""
    detail = _finest_details(values)
    level = _block_means(values)
    detail = detail[tuple(slice(0, n) for n in level.shape)].ravel()
    level = level.ravel()
    edges = np.unique(np.quantile(level, np.linspace(0.0, 1.0, bins + 1)))
    if edges.size < 3:  # (nearly) constant intensity: one level, nothing to fit
        return NoiseLine(0.0, estimate_noise_sigma(values) ** 2), level
    which = np.clip(np.searchsorted(edges, level, side="right") - 1, 0, len(edges) - 2)
    counts = np.bincount(which, minlength=len(edges) - 1)
    usable = [k for k in range(len(edges) - 1) if counts[k] >= 64]
    if len(usable) < 2:
        return NoiseLine(0.0, estimate_noise_sigma(values) ** 2), level
    means = np.array([level[which == k].mean() for k in usable])
    variances = np.array(
        [(np.median(np.abs(detail[which == k])) / ndtri(0.75)) ** 2 for k in usable]
    )
    weights = counts[usable].astype(np.float64)
    return NoiseLine(*_nonnegative_line(means, variances, weights)), level


def estimate_noise_rms(image: ArrayLike, bins: int = NOISE_LEVEL_BINS) -> float:
    """Root-mean-square noise standard deviation, for noise whose variance grows with the signal.

    Photon-limited (Poisson-Gaussian) noise has ``var = a * signal + b``: the median-based
    :func:`estimate_noise_sigma` then reads the noise of the typical pixel, which in a
    fluorescence image is the dark background, and under-reads the noise of the bright
    structures several-fold. Here the line is fitted by :func:`estimate_noise_line` and the
    result is ``sqrt(mean(a * mean + b))`` over the image's ``2^n`` block means. For
    signal-independent noise the line is flat and the result matches
    :func:`estimate_noise_sigma`.

    Parameters
    ----------
    image : array_like
        2D image or 3D volume, in its own intensity units.
    bins : int
        Number of intensity bins.

    Returns
    -------
    float
        Estimated RMS noise sigma in the image's units (:func:`estimate_noise_sigma` when the
        image has too few pixels per bin for a fit).
    """
    line, level = _fit_noise_line(to_float(as_image(image, "image")), bins)
    if line.slope == 0.0:
        return float(np.sqrt(line.offset))
    return float(np.sqrt(np.mean(line.variance(level))))


PHOTON_PERCENTILE = 90.0
"""Intensity percentile (of the image's own values) at which :func:`photon_noise_fraction`
reads the noise line: the bright structures, where photon noise is strongest."""


def photon_noise_fraction(image: ArrayLike, bins: int = NOISE_LEVEL_BINS) -> float:
    """Share of the noise variance that grows with the signal, read at the bright structures.

    With the noise line ``var = a * signal + b`` of :func:`estimate_noise_line` and ``p`` the
    image's :data:`PHOTON_PERCENTILE` percentile, the result is ``a p / (a p + max(b, 0))``:
    about 1 for photon-limited (Poisson-Gaussian) captures, including those with a camera
    offset (which makes ``b`` negative), and about 0 for signal-independent noise. It is
    read in the image's own units: an affine rescaling that moves 0 (e.g. a percentile
    normalisation) changes it.

    Parameters
    ----------
    image : array_like
        2D image or 3D volume, in its own intensity units.
    bins : int
        Number of intensity bins of the line fit.

    Returns
    -------
    float
        The fraction, in ``[0, 1]`` (0 when the signal at the percentile is not positive).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> clean = np.tile(np.linspace(0.0, 1.0, 256), (256, 1))
    >>> photons = rng.poisson(50 * clean) / 50.0
    >>> round(photon_noise_fraction(photons), 1), round(photon_noise_fraction(clean + 0.1 * rng.standard_normal(clean.shape)), 1)
    (1.0, 0.0)
    """
    values = to_float(as_image(image, "image"))
    line = _fit_noise_line(values, bins)[0]
    signal_part = line.slope * float(np.percentile(values, PHOTON_PERCENTILE))
    if signal_part <= 0:
        return 0.0
    return float(signal_part / (signal_part + max(line.offset, 0.0)))


def _block_means(values: np.ndarray) -> np.ndarray:
    """Means of the ``2 x ... x 2`` blocks of ``values`` (trailing odd rows dropped)."""
    trimmed = values[tuple(slice(0, n - n % 2) for n in values.shape)]
    shape = [size for n in trimmed.shape for size in (n // 2, 2)]
    return trimmed.reshape(shape).mean(axis=tuple(range(1, 2 * values.ndim, 2)))


def _nonnegative_line(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """Weighted least-squares ``y = a x + b`` with ``a >= 0`` (a flat line when ``a < 0``)."""
    slope, offset = np.polyfit(x, y, 1, w=np.sqrt(weights))
    if slope < 0:
        return 0.0, float(np.average(y, weights=weights))
    return float(slope), float(offset)


def residual(noisy: ArrayLike, denoised: ArrayLike) -> np.ndarray:
    """Method noise ``r = x - f(x)``: what the denoiser removed.

    Parameters
    ----------
    noisy : array_like
        Noisy input ``x`` (2D or 3D).
    denoised : array_like
        Denoiser output ``f(x)``, same shape and intensity units.

    Returns
    -------
    numpy.ndarray
        ``x - f(x)`` as floats (float64, float32 for very large arrays).
    """
    noisy_float, denoised_float, _ = prepare_pair(noisy, denoised, names=("noisy", "denoised"))
    return noisy_float - denoised_float


def shared_noise_correlation(noisy: ArrayLike, denoised: ArrayLike) -> float:
    """How much noise neighbouring pixels share, read from a denoiser's residual.

    With ``rho`` the autocorrelation of the method noise ``r = x - f(x)``
    (:func:`autocorrelation`) along X, and likewise along Y (in 3D, within the Z planes),
    the readout is ``rho(1) - max(2 rho(2) - rho(3), 0)``: the neighbour correlation above
    the straight line through lags 2 and 3. Signal that the denoiser removed (an
    under-trained or blurring network) varies slowly, so its correlation falls slowly with
    distance and the line accounts for it; noise shared by neighbours (a camera's
    demosaicing or binning, smoothing before saving) is correlated over a pixel or two and
    stands above it. Noise independent between pixels reads about 0.

    Parameters
    ----------
    noisy : array_like
        Noisy input ``x`` (2D or 3D).
    denoised : array_like
        Output ``f(x)``, same shape and intensity units.

    Returns
    -------
    float
        The larger of the two axes' readouts; NaN for a zero residual.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage
    >>> rng = np.random.default_rng(0)
    >>> white = rng.standard_normal((128, 128))
    >>> smeared = ndimage.correlate1d(white, [1.0, 2.0, 1.0], axis=-1)  # rho 2/3, 1/6, 0
    >>> zero = np.zeros_like(white)
    >>> abs(shared_noise_correlation(white, zero)) < 0.05
    True
    >>> round(shared_noise_correlation(smeared, zero), 1)
    0.3
    """
    rho = autocorrelation(residual(noisy, denoised), 3)  # lags -3..3 on every axis
    within_plane = (3,) * (rho.ndim - 2)  # lag 0 along Z
    along_x = rho[(*within_plane, 3, slice(4, 7))]  # lags 1, 2, 3
    along_y = rho[(*within_plane, slice(4, 7), 3)]
    readouts = [float(r1 - max(2 * r2 - r3, 0.0)) for r1, r2, r3 in (along_x, along_y)]
    return max(readouts)


def _sample_blocks(values: np.ndarray, block: int, max_elements: int) -> np.ndarray:
    """Evenly spaced whole blocks of ``values`` (side ``block``), at most ``max_elements``."""
    sizes = [min(n, block) for n in values.shape]
    grid = list(
        itertools.product(*(range(n // b) for n, b in zip(values.shape, sizes, strict=True)))
    )
    count = max(1, min(len(grid), max_elements // math.prod(sizes)))
    chosen = np.unique(np.linspace(0, len(grid) - 1, count).round().astype(int))
    return np.stack(
        [
            values[tuple(slice(i * b, (i + 1) * b) for i, b in zip(grid[k], sizes, strict=True))]
            for k in chosen
        ]
    )


def autocorrelation(values: np.ndarray, max_lag: int) -> np.ndarray:
    """Normalised autocorrelation ``rho(k)`` for lags ``|k_i| <= max_lag`` (centre: ``k = 0``).

    ``rho(k) = sum_p r(p) r(p + k) / sum_p r(p)^2`` with ``r`` centred, summed within blocks
    of ``AUTOCORRELATION_BLOCK`` pixels per axis (evenly spaced blocks when the array holds
    more than ``AUTOCORRELATION_MAX_ELEMENTS`` pixels), computed by zero-padded FFTs.
    """
    centred = values - np.mean(values, dtype=np.float64)
    blocks = _sample_blocks(centred, AUTOCORRELATION_BLOCK, AUTOCORRELATION_MAX_ELEMENTS)
    axes = tuple(range(1, blocks.ndim))
    padded = [fft.next_fast_len(n + max_lag) for n in blocks.shape[1:]]
    spectrum = fft.rfftn(blocks, s=padded, axes=axes)
    power = np.sum(spectrum.real**2 + spectrum.imag**2, axis=0)
    correlation = fft.irfftn(power, s=padded)
    lags = np.arange(-max_lag, max_lag + 1)
    window = correlation[np.ix_(*[lags % n for n in padded])]
    centre = window[(max_lag,) * window.ndim]
    return window / centre if centre > 0 else np.full_like(window, np.nan)


def autocorrelation_spread(values: np.ndarray, max_lag: int = 3) -> float:
    """RMS autocorrelation off the zero lag: ``sqrt(mean_{0 < |k|_inf <= K} rho(k)^2)``.

    0 for white residuals (the autocorrelation is a spike); towards 1 when the residual
    holds structure, i.e. the denoiser removed signal.
    """
    if int(max_lag) != max_lag or max_lag < 1:
        raise SelfDenoiseError(f"max_lag must be a whole number >= 1, got {max_lag}.")
    rho = autocorrelation(values, int(max_lag))
    off_centre = np.ones(rho.shape, dtype=bool)
    off_centre[(int(max_lag),) * rho.ndim] = False
    return float(np.sqrt(np.mean(rho[off_centre] ** 2)))


def method_noise_stats(
    noisy: ArrayLike,
    denoised: ArrayLike,
    *,
    mask: ArrayLike | None = None,
    noise_sigma: float | None = None,
    max_lag: int = 3,
) -> MethodNoiseStats:
    """Method-noise readouts that need no clean image.

    With ``r = x - f(x)``:

    - ``residual_std = sqrt(mean_R (r - mean_R r)^2)``, which should match the input noise
      ``sigma_x`` (``noise_sigma_noisy``, :func:`estimate_noise_sigma` of ``x``);
    - ``residual_std_ratio = residual_std / sigma_x``: below 1 noise was left, above 1
      signal was removed too;
    - ``residual_output_correlation = corr_R(r, f(x))``: about 0 for a good denoiser,
      positive when ``f`` blurs (its residual holds the image's high frequencies);
    - ``residual_autocorrelation_spread = sqrt(mean_{0 < |k|_inf <= K} rho_r(k)^2)``: 0 when
      the autocorrelation of ``r`` is a spike (white residual), larger when structure is
      left in ``r`` (see :func:`autocorrelation`; whole image, the mask is not used).

    Parameters
    ----------
    noisy : array_like
        Noisy input ``x`` (2D or 3D).
    denoised : array_like
        Output ``f(x)``, same shape and intensity units.
    mask : array_like of bool, optional
        Region ``R`` for the std and the correlation.
    noise_sigma : float, optional
        ``sigma_x`` if already known; default: estimated from ``x``.
    max_lag : int
        ``K``, largest lag (pixels) of the autocorrelation window.

    Returns
    -------
    MethodNoiseStats
        The readouts; NaN where undefined (e.g. a zero residual).
    """
    noisy_float, output, region = prepare_pair(noisy, denoised, mask, ("noisy", "denoised"))
    if noise_sigma is None:
        noise_sigma = estimate_noise_sigma(noisy_float)
    return _method_noise(noisy_float - output, output, region, float(noise_sigma), max_lag)


def _method_noise(
    method_noise: np.ndarray,
    output: np.ndarray,
    mask: np.ndarray | None,
    noise_sigma: float,
    max_lag: int,
) -> MethodNoiseStats:
    s_rr, _, _, count = centred_sums(method_noise, method_noise, mask)
    residual_std = math.sqrt(s_rr / count)
    ratio = residual_std / noise_sigma if noise_sigma > 0 else float("nan")
    return MethodNoiseStats(
        noise_sigma_noisy=noise_sigma,
        residual_std=residual_std,
        residual_std_ratio=ratio,
        residual_output_correlation=pearson(method_noise, output, mask),
        residual_autocorrelation_spread=autocorrelation_spread(method_noise, max_lag),
    )
