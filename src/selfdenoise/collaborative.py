"""Collaborative Wiener filtering with the network's output as the pilot estimate.

A network trained on one image sees a limited neighbourhood; where an image repeats itself
(textures, stripes, periodic structures, cells alike) the repetition holds information the
network could not use. Two-stage filters use it in their second stage: similar patches are
stacked into a group, and the group is shrunk coefficient by coefficient in a 3D transform
with the empirical Wiener gain ``P^2 / (P^2 + s^2 v)``, where ``P`` is the pilot's coefficient
and ``v`` the noise variance. :func:`collaborative_wiener` runs that stage with the network's
output as the pilot:

1. **Grouping.** For reference patches on a grid (:data:`REFERENCE_STEP` pixels apart), the
   :data:`GROUP_SIZE` most similar patches of the pilot within :data:`SEARCH_RADIUS` pixels
   are found (squared distance of the pilot's patches, computed for every offset at once with
   box sums).
2. **Shrinkage.** The noisy image's and the pilot's groups go through an orthonormal DCT
   (2D over each patch, 1D across the group); the noisy coefficients are multiplied by the
   Wiener gain, with the noise variance read at the reference patch's mean pilot signal (a
   constant for Gaussian noise, a line in the signal for photon noise,
   :func:`~selfdenoise.metrics.estimate_noise_line`). A group holds the largest power of two
   of patches that are closer to the reference than :data:`MATCH_THRESHOLD` noise variances
   (mean squared difference of the pilot's patches), at most :data:`GROUP_SIZE`.
3. **Aggregation.** Every filtered patch is added back where it came from, weighted by
   ``1 / (v * sum(gain^2))``, and the sums are normalised.

The step assumes noise that is independent between pixels. Where the pilot's residual
(noisy minus pilot) shows noise shared by neighbouring pixels, more than
:data:`CORRELATION_LIMIT` (:func:`~selfdenoise.metrics.shared_noise_correlation`), the step
would add that noise back (it lowered the output 0.5-2.6 dB on such data), so it returns
the pilot unchanged.

The result is blended with the pilot, ``pilot + BLEND * (filtered - pilot)``: the pilot's
coefficients carry its own error, so its Wiener gains are a little too high, and the blend
takes back part of that. :data:`BLEND`, :data:`NOISE_SCALE` (``s``) and
:data:`MATCH_THRESHOLD` were chosen on images outside the benchmarks' targets (six
scikit-image crops with Gaussian noise, for three methods); see docs/benchmarks.md,
"Collaborative Wiener step".

Works on 2D images; a volume is filtered plane by plane. Importing this module does not import
torch; the filter itself runs in torch on the CPU, in blocks of 64 x 64 reference patches
(its working memory does not grow with the plane); planes larger than
:data:`MAX_SLAB_ELEMENTS` are read in slabs of rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._block_matching import filter_plane
from ._errors import SelfDenoiseError
from ._prediction import map_samples_dask
from ._slabs import MAX_SLAB_ELEMENTS, slabs, write_finished
from .axes import Layout
from .metrics import NoiseLine, estimate_noise_line, shared_noise_correlation

__all__ = [
    "BLEND",
    "CORRELATION_LIMIT",
    "GROUP_SIZE",
    "MATCH_THRESHOLD",
    "MAX_SLAB_ELEMENTS",
    "NOISE_SCALE",
    "PATCH_SIZE",
    "REFERENCE_STEP",
    "SEARCH_RADIUS",
    "collaborative_wiener",
    "collaborative_wiener_dask",
    "collaborative_wiener_samples",
]

PATCH_SIZE = 8
"""Side of the square patches (pixels)."""
GROUP_SIZE = 32
"""Patches stacked per group (the reference and its most similar neighbours)."""
SEARCH_RADIUS = 16
"""How far (pixels) from a reference patch similar patches are looked for."""
REFERENCE_STEP = 3
"""Distance (pixels) between reference patches."""
NOISE_SCALE = 1.0
"""Factor on the noise standard deviation in the Wiener gain."""
BLEND = 0.85
"""Weight of the filtered image against the pilot."""
MATCH_THRESHOLD = 0.64
"""Largest mean squared pilot difference, in noise variances, of a patch joining a group."""
CORRELATION_LIMIT = 0.1
"""Largest shared-noise readout of the pilot's residual
(:func:`~selfdenoise.metrics.shared_noise_correlation`) with which the step runs. It read
at most -0.003 on images with independent noise (networks of three methods, 100 to 3273
steps), 0.01-0.06 for barely trained networks (2-100 steps, where the step gains 2.6-3.5
dB), and 0.18-0.46 on images with noise shared by neighbours, where the step cost 0.5-2.6
dB (docs/benchmarks.md, "The collaborative step checks the noise")."""


def collaborative_wiener(
    noisy: ArrayLike,
    pilot: ArrayLike,
    *,
    noise: NoiseLine | float | None = None,
    noise_scale: float = NOISE_SCALE,
    blend: float = BLEND,
    patch_size: int = PATCH_SIZE,
    group_size: int = GROUP_SIZE,
    search_radius: int = SEARCH_RADIUS,
    reference_step: int = REFERENCE_STEP,
    match_threshold: float = MATCH_THRESHOLD,
    correlation_limit: float | None = CORRELATION_LIMIT,
    cancel: Any = None,
) -> np.ndarray:
    """Filter ``noisy`` with the collaborative Wiener stage, ``pilot`` as the estimate.

    Parameters
    ----------
    noisy : array_like
        The noisy 2D image, or a 3D volume (filtered plane by plane along its first axis).
    pilot : array_like
        A denoised estimate of the same shape, e.g. a network's prediction.
    noise : NoiseLine or float, optional
        Noise variance: a line in the signal, or a constant; estimated from ``noisy`` with
        :func:`~selfdenoise.metrics.estimate_noise_line` when omitted.
    noise_scale : float
        Factor on the noise standard deviation in the Wiener gain.
    blend : float
        Weight of the filtered image against the pilot (0 returns the pilot, 1 the filter).
    patch_size, group_size, search_radius, reference_step : int
        Patch side, patches per group, search distance and reference spacing (pixels).
    match_threshold : float
        Largest mean squared difference of the pilot's patches, in noise variances, of a
        patch that joins a group.
    correlation_limit : float or None
        When the residual ``noisy - pilot`` shows noise shared by neighbouring pixels above
        this (:func:`~selfdenoise.metrics.shared_noise_correlation`), the pilot is returned
        unchanged; ``None`` filters regardless.
    cancel : threading.Event or callable, optional
        Checked between blocks of reference patches (a fraction of a second apart); when set,
        :class:`~selfdenoise.tiling.PredictionCancelled` is raised.

    Returns
    -------
    numpy.ndarray
        ``pilot + blend * (filtered - pilot)``, float32, the shape of ``noisy`` (a copy of
        the pilot when the noise is correlated between pixels).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> clean = np.tile(np.sin(np.arange(64) / 2.0), (64, 1)).astype(np.float32)
    >>> noisy = clean + rng.normal(0, 0.3, clean.shape).astype(np.float32)
    >>> pilot = (noisy + np.roll(noisy, 1, 0) + np.roll(noisy, -1, 0)) / 3
    >>> out = collaborative_wiener(noisy, pilot, noise=0.09)
    >>> bool(np.mean((out - clean) ** 2) < np.mean((pilot - clean) ** 2))
    True
    """
    x = np.asarray(noisy, dtype=np.float32)
    d = np.asarray(pilot, dtype=np.float32)
    if x.shape != d.shape:
        raise SelfDenoiseError(f"noisy {x.shape} and pilot {d.shape} must have the same shape.")
    if x.ndim not in (2, 3):
        raise SelfDenoiseError(f"collaborative_wiener takes a 2D or 3D image; got {x.shape}.")
    sizes = {"patch_size": patch_size, "group_size": group_size, "reference_step": reference_step}
    for name, value in sizes.items():
        if int(value) != value or value < 1:
            raise SelfDenoiseError(f"{name} must be a positive integer; got {value!r}.")
    if int(search_radius) != search_radius or search_radius < 0:
        raise SelfDenoiseError(f"search_radius must be 0 or more; got {search_radius!r}.")
    if min(x.shape[-2:]) < patch_size or _correlated(x, d, correlation_limit):
        return d.copy()
    if noise is None:
        noise = estimate_noise_line(x)
    line = noise if isinstance(noise, NoiseLine) else NoiseLine(0.0, float(noise))
    floor = 1e-6 * float(np.mean(np.square(x - d), dtype=np.float64)) + 1e-30
    settings = {
        "patch": patch_size,
        "group": group_size,
        "radius": search_radius,
        "step": reference_step,
        "scale": noise_scale,
        "floor": floor,
        "threshold": match_threshold,
        "cancel": cancel,
    }
    planes = [
        filter_plane(xp, dp, line, settings)
        for xp, dp in zip(x.reshape(-1, *x.shape[-2:]), d.reshape(-1, *d.shape[-2:]), strict=True)
    ]
    filtered = np.stack(planes).reshape(x.shape)
    return (d + blend * (filtered - d)).astype(np.float32)


def _correlated(noisy: np.ndarray, pilot: np.ndarray, limit: float | None) -> bool:
    """Whether the residual's shared-noise readout exceeds ``limit`` (never when ``None``)."""
    return limit is not None and shared_noise_correlation(noisy, pilot) > limit


def _row_slabs(height: int, width: int, max_elements: int):
    """``(read, core_in_read, core)`` row slices of a plane, filtered slab by slab.

    Slabs start on the reference grid and read ``2 * SEARCH_RADIUS + PATCH_SIZE`` rows of
    halo on each side: every group that touches a core row then finds the same patches as in
    the whole plane, so the slabs give the one-piece result.
    """
    halo = 2 * SEARCH_RADIUS + PATCH_SIZE
    return slabs(height, width, halo, max_elements, align=REFERENCE_STEP)


def _noise_lines(
    image: Any, denoised: Any, layout: Layout, sample: int, max_elements: int
) -> tuple[list[NoiseLine | None], list[float]]:
    """Each channel's noise line and shared-noise readout, read from the sample's middle (at
    most 8 planes of a volume, and at most ``max_elements`` pixels per channel); the line is
    ``None`` where the readout exceeds :data:`CORRELATION_LIMIT`."""
    spatial = [slice(None)] * layout.ndim
    shape = layout.spatial_shape
    planes = 1
    if layout.ndim == 3:
        middle = shape[0] // 2
        spatial[0] = slice(max(0, middle - 4), middle + 4)
        planes = spatial[0].stop - spatial[0].start
    rows = max(PATCH_SIZE, max_elements // max(1, planes * shape[-1]))
    if rows < shape[-2]:
        top = (shape[-2] - rows) // 2
        spatial[-2] = slice(top, top + rows)
    block = layout.read_block(image, sample, spatial)
    pilot = layout.read_block(denoised, sample, spatial)
    readouts = [shared_noise_correlation(x, d) for x, d in zip(block, pilot, strict=True)]
    lines = [
        None if readout > CORRELATION_LIMIT else estimate_noise_line(channel)
        for channel, readout in zip(block, readouts, strict=True)
    ]
    return lines, readouts


def _filter_block(
    noisy: np.ndarray, pilot: np.ndarray, lines: list[NoiseLine | None], cancel: Any = None
) -> np.ndarray:
    """:func:`collaborative_wiener` of each channel of a ``(C, Y, X)`` block; the pilot where
    the channel's line is ``None`` (correlated noise)."""
    return np.stack(
        [
            np.asarray(channel_pilot, np.float32)
            if line is None
            else collaborative_wiener(
                channel_noisy, channel_pilot, noise=line, correlation_limit=None, cancel=cancel
            )
            for channel_noisy, channel_pilot, line in zip(noisy, pilot, lines, strict=True)
        ]
    )


def collaborative_wiener_samples(
    image: Any,
    denoised: Any,
    layout: Layout,
    *,
    max_elements: int = MAX_SLAB_ELEMENTS,
    cancel: Any = None,
    on_shared_noise: Callable[[float], None] | None = None,
) -> Any:
    """:func:`collaborative_wiener` on every sample, channel and plane of a prediction, in place.

    Parameters
    ----------
    image : array-like
        The noisy input (numpy, memory-mapped, zarr or dask), laid out as ``layout``.
    denoised : array-like
        The prediction of ``image`` (the pilot), same shape; written plane by plane.
    layout : Layout
        How the arrays map to ``(N, C, *spatial)`` (:meth:`selfdenoise.Denoiser.prediction_layout`).
    max_elements : int
        Largest slab of a plane held in memory (per channel); larger planes are filtered in
        slabs of rows with a halo that makes the result the same as in one piece.
    cancel : threading.Event or callable, optional
        Stops within a fraction of a second (:class:`~selfdenoise.tiling.PredictionCancelled`);
        the planes already filtered stay written.
    on_shared_noise : callable, optional
        Called once, with the largest readout, when a channel keeps the pilot because its
        residual shows noise shared by neighbouring pixels (:data:`CORRELATION_LIMIT`).

    Returns
    -------
    array-like
        ``denoised``. Each sample and channel reads its noise line once (from its middle),
        and there checks that the residual is not correlated between neighbours
        (:data:`CORRELATION_LIMIT`; where it is, that channel keeps the pilot); volumes are
        filtered plane by plane.
    """
    shape = layout.spatial_shape
    planes = shape[0] if layout.ndim == 3 else 1
    pieces = list(_row_slabs(shape[-2], shape[-1], max_elements))
    shared: list[float] = []
    for sample in layout.samples():
        lines, readouts = _noise_lines(image, denoised, layout, sample, max_elements)
        shared += [r for r, line in zip(readouts, lines, strict=True) if line is None]
        for plane in range(planes):
            outer = [slice(plane, plane + 1)] if layout.ndim == 3 else []

            def place(core: slice, outer: list[slice] = outer) -> list[slice]:
                return [*outer, core, slice(None)]

            pending: list[tuple[slice, np.ndarray]] = []  # written once no slab reads them
            for read, core_in_read, core in pieces:
                pending = write_finished(denoised, layout, sample, pending, read.start, place)
                spatial = [*outer, read, slice(None)]
                noisy = layout.read_block(image, sample, spatial)
                pilot = layout.read_block(denoised, sample, spatial)
                filtered = _filter_block(noisy, pilot, lines, cancel)
                pending.append((core, filtered[..., core_in_read, :]))
            write_finished(denoised, layout, sample, pending, shape[-2], place)
    if shared and on_shared_noise is not None:
        on_shared_noise(max(shared))
    return denoised


def collaborative_wiener_dask(image: Any, denoised: Any, layout: Layout) -> Any:
    """Lazy :func:`collaborative_wiener_samples` of a dask prediction, block by block.

    Blocks overlap by twice the search radius plus a patch in Y and X, so a block filters as
    the whole image would, except that it reads its own noise line and its reference grid
    starts at its own corner.
    """
    halo = 2 * SEARCH_RADIUS + PATCH_SIZE
    return map_samples_dask(
        collaborative_wiener_samples, image, denoised, layout, halo, layout.spatial_axes[-2:]
    )
