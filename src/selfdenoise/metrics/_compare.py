"""``compare``: the full metrics table for several denoised candidates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .._errors import SelfDenoiseError
from ._checks import (
    as_image,
    as_mask,
    check_same_shape,
    map_slices,
    mean_squared_difference,
    pearson,
    resolve_data_range,
    to_float,
)
from ._edges import (
    canny_edges,
    canny_thresholds,
    check_tolerance,
    dilate_edges,
    edge_scores,
    gradient_magnitude,
    laplacian,
)
from ._fidelity import _mean_ssim, _psnr_from_mse, _psnr_scale_invariant
from ._noise import _method_noise, estimate_noise_sigma
from ._table import (
    BASELINE_NOT_APPLICABLE,
    NOISY_COLUMNS,
    OUTPUT_COLUMNS,
    REFERENCE_COLUMNS,
    MetricsTable,
    display_order,
)

SSIM_WIN_SIZE = 7
RESIDUAL_MAX_LAG = 3


@dataclass(frozen=True)
class _Settings:
    data_range: float | None
    canny_sigma: float
    edge_tolerance: int
    thresholds: tuple[float, float] | None
    scale_invariant: bool
    workers: int | None


@dataclass
class _View:
    """Reference, noisy input and mask for one table computation (whole arrays or a slice).

    Everything derived from them alone is computed once and shared by all candidates.
    """

    reference: np.ndarray | None
    noisy: np.ndarray | None
    mask: np.ndarray | None
    settings: _Settings

    @cached_property
    def reference_laplacian(self) -> np.ndarray:
        return laplacian(self.reference)

    @cached_property
    def reference_gradient(self) -> np.ndarray:
        return gradient_magnitude(self.reference)

    @cached_property
    def reference_edges(self) -> tuple[np.ndarray, np.ndarray]:
        edges = _edges(self.reference, self.settings)
        return edges, dilate_edges(edges, self.settings.edge_tolerance)

    @cached_property
    def noisy_laplacian(self) -> np.ndarray:
        return laplacian(self.noisy)

    @cached_property
    def noisy_sigma(self) -> float:
        return estimate_noise_sigma(self.noisy)


def _edges(image: np.ndarray, settings: _Settings) -> np.ndarray:
    return canny_edges(
        image, sigma=settings.canny_sigma, thresholds=settings.thresholds, workers=settings.workers
    )


def _reference_metrics(
    view: _View, output: np.ndarray, output_laplacian: np.ndarray
) -> dict[str, float]:
    ref, mask, settings = view.reference, view.mask, view.settings
    data_range = settings.data_range
    values = {"psnr": _psnr_from_mse(mean_squared_difference(ref, output, mask), data_range)}
    if settings.scale_invariant:
        values["psnr_scale_invariant"] = _psnr_scale_invariant(ref, output, data_range, mask)
    values["ssim"] = _mean_ssim(ref, output, data_range, mask, SSIM_WIN_SIZE)
    values["epi"] = pearson(view.reference_laplacian, output_laplacian, mask)
    values["gradient_correlation"] = pearson(
        view.reference_gradient, gradient_magnitude(output), mask
    )
    scores = edge_scores(
        *view.reference_edges, _edges(output, settings), settings.edge_tolerance, mask
    )
    values["canny_preservation"], values["canny_f1"] = scores
    return values


def _noisy_metrics(
    view: _View, output: np.ndarray, output_laplacian: np.ndarray
) -> dict[str, float]:
    stats = _method_noise(
        view.noisy - output, output, view.mask, view.noisy_sigma, RESIDUAL_MAX_LAG
    )
    values = stats._asdict()
    values["epi_vs_noisy"] = pearson(view.noisy_laplacian, output_laplacian, view.mask)
    return values


def _row_values(view: _View, candidate: np.ndarray) -> dict[str, float]:
    """All metrics of one candidate (as floats) on one view."""
    output = to_float(candidate)
    has_reference, has_noisy = view.reference is not None, view.noisy is not None
    output_laplacian = laplacian(output) if has_reference or has_noisy else None
    values: dict[str, float] = {}
    if has_reference:
        values.update(_reference_metrics(view, output, output_laplacian))
    values["noise_sigma_output"] = estimate_noise_sigma(output)
    if has_noisy:
        values.update(_noisy_metrics(view, output, output_laplacian))
    return values


def _named_candidates(candidates: Any) -> dict[str, np.ndarray]:
    if isinstance(candidates, Mapping):
        items = [(str(name), array) for name, array in candidates.items()]
    elif isinstance(candidates, np.ndarray) or not isinstance(candidates, Sequence):
        items = [("candidate 1", candidates)]
    else:
        items = [(f"candidate {i}", array) for i, array in enumerate(candidates, start=1)]
    if not items:
        raise SelfDenoiseError("no candidates given; pass at least one denoised image.")
    return {name: as_image(array, _label(name)) for name, array in items}


def _label(name: str) -> str:
    return f"candidate {name!r}"


def _check_shapes(named: dict[str, np.ndarray | None]) -> tuple[int, ...]:
    """Common shape of all given images (the first given one sets it)."""
    given = {name: image for name, image in named.items() if image is not None}
    first_name, first = next(iter(given.items()))
    for name, image in given.items():
        check_same_shape(image, name, first.shape, first_name)
    return first.shape


def _columns(has_reference: bool, has_noisy: bool, scale_invariant: bool) -> list[str]:
    """``'name'``, then the columns the inputs allow in :data:`DISPLAY_ORDER` (PSNR, SSIM and
    edge preservation first)."""
    columns = list(OUTPUT_COLUMNS)
    if has_reference:
        columns += [c for c in REFERENCE_COLUMNS if scale_invariant or c != "psnr_scale_invariant"]
    if has_noisy:
        columns += list(NOISY_COLUMNS)
    return ["name", *display_order(columns)]


def _noisy_baselines(named: dict[str, np.ndarray], noisy: np.ndarray | None) -> list[str]:
    """Candidates that are the noisy input itself (scored as a baseline)."""
    if noisy is None:
        return []
    return [name for name, image in named.items() if np.array_equal(image, noisy)]


def _mark_baselines(values: dict[str, dict[str, float]], baselines: list[str]) -> None:
    """NaN (shown as n/a) for the readouts that compare a result with the noisy input: for
    the noisy input itself its residual is 0, which would read as "perfect"."""
    for name in baselines:
        for column in BASELINE_NOT_APPLICABLE:
            if column in values[name]:
                values[name][column] = float("nan")


def _mode(ndim: int, per_slice: bool, slice_index: int | None, n_slices: int) -> str:
    if slice_index is None:
        return "per_slice" if per_slice and ndim == 3 else f"{ndim}d"
    if ndim != 3:
        raise SelfDenoiseError("slice_index needs 3D (ZYX) images; leave it None for 2D images.")
    if not -n_slices <= slice_index < n_slices:
        raise SelfDenoiseError(
            f"slice_index {slice_index} is out of range for a volume with {n_slices} slices."
        )
    return "slice"


def _take(array: np.ndarray | None, index: int | None) -> np.ndarray | None:
    if array is None or index is None:
        return array
    return array[index]


def _view(reference, noisy, mask, settings: _Settings, index: int | None = None) -> _View:
    ref = _take(reference, index)
    noisy_view = _take(noisy, index)
    return _View(
        reference=None if ref is None else to_float(ref),
        noisy=None if noisy_view is None else to_float(noisy_view),
        mask=_take(mask, index),
        settings=settings,
    )


def _slices_in_mask(mask: np.ndarray | None, n_slices: int) -> list[int]:
    """Slices with at least one masked pixel (all slices without a mask)."""
    if mask is None:
        return list(range(n_slices))
    return [int(index) for index in np.flatnonzero(mask.any(axis=(1, 2)))]


def _view_values(named, reference, noisy, mask, settings: _Settings, slice_index):
    """Rows of every candidate on the whole arrays, or on slice ``slice_index``."""
    if slice_index is not None and mask is not None and not mask[slice_index].any():
        raise SelfDenoiseError(
            f"the mask selects no pixel on slice {slice_index}; pick another slice or mask."
        )
    view = _view(reference, noisy, mask, settings, slice_index)
    return {name: _row_values(view, _take(image, slice_index)) for name, image in named.items()}


def _per_slice_values(named, reference, noisy, mask, settings: _Settings):
    """Rows of every candidate computed on each z-slice (threads over slices), averaged."""
    indices = _slices_in_mask(mask, next(iter(named.values())).shape[0])
    serial = replace(settings, workers=1)  # the threads go over slices here

    def slice_rows(position: int) -> dict[str, dict[str, float]]:
        index = indices[position]
        view = _view(reference, noisy, mask, serial, index)
        return {name: _row_values(view, image[index]) for name, image in named.items()}

    per_slice = map_slices(slice_rows, len(indices), settings.workers)
    return {name: _average([rows[name] for rows in per_slice]) for name in named}


def _average(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean over slices of each metric, ignoring NaN (all NaN stays NaN)."""
    averaged = {}
    for key in rows[0]:
        values = np.array([row[key] for row in rows], dtype=np.float64)
        finite = values[~np.isnan(values)]
        averaged[key] = float(finite.mean()) if finite.size else float("nan")
    return averaged


def compare(
    candidates: Mapping[str, ArrayLike] | Sequence[ArrayLike] | ArrayLike,
    reference: ArrayLike | None = None,
    noisy: ArrayLike | None = None,
    *,
    data_range: float | None = None,
    mask: ArrayLike | None = None,
    per_slice: bool = False,
    slice_index: int | None = None,
    canny_sigma: float = 1.0,
    edge_tolerance: int = 1,
    scale_invariant: bool = True,
    workers: int | None = None,
) -> MetricsTable:
    """Metrics table of denoised candidates, with or without a clean reference.

    One row per candidate. Columns, present when their inputs are given:

    - with ``reference`` ``S``: ``psnr`` (``10 log10(L^2 / MSE)``), ``psnr_scale_invariant``
      (after the least-squares fit ``a D + b``; only if ``scale_invariant``), ``ssim``,
      ``epi`` (correlation of Laplacians), ``gradient_correlation``, ``canny_preservation``
      (``R = |E_r & dil_t(E_d)| / |E_r|``, reference edges found within ``t`` pixels) and
      ``canny_f1`` (``2PR / (P + R)``, ``P = |E_d & dil_t(E_r)| / |E_d|``);
    - with ``noisy`` ``x``: ``noise_sigma_noisy`` (``median|HH| / 0.6745`` of ``x``);
    - always: ``noise_sigma_output`` (same estimator on the candidate);
    - with ``noisy``: ``residual_std`` (std of ``r = x - D``), ``residual_std_ratio``
      (``residual_std / noise_sigma_noisy``), ``residual_output_correlation``
      (``corr(r, D)``), ``residual_autocorrelation_spread``
      (``sqrt(mean_{0<|k|<=3} rho_r(k)^2)``), ``epi_vs_noisy`` (EPI with ``x`` as reference:
      agreement with the noisy input, not edge quality).

    The columns come in :data:`DISPLAY_ORDER` (PSNR, SSIM and edge preservation first), the
    same in the text table, the JSON and the CSV. Columns whose inputs are missing are absent,
    not NaN; NaN (shown as n/a) marks a value that is undefined for a row (e.g. no reference
    edge). A candidate identical to ``noisy`` (the noisy input scored as a baseline) gets NaN
    in the :data:`BASELINE_NOT_APPLICABLE` readouts, whose 0 would read as "perfect"; its name
    is listed in ``settings['noisy_baselines']``. See :data:`COLUMN_MEANINGS`.

    Values are compared as numbers in the images' units, whatever their dtypes (uint8,
    uint16 and float mix freely; no rescaling). Data range ``L``: ``data_range`` if given,
    else the reference's dtype range for integer dtypes (255, 65535, ...) and
    ``max(S) - min(S)`` for float references (pass e.g. 4095 for 12-bit data in uint16).

    Parameters
    ----------
    candidates : mapping of str to array_like, sequence of array_like, or array_like
        Denoised images; a sequence is named ``'candidate 1'``, ``'candidate 2'``, ...
    reference : array_like, optional
        Clean image ``S`` (2D YX or 3D ZYX), same shape as the candidates.
    noisy : array_like, optional
        Noisy input ``x``, same shape.
    data_range : float, optional
        ``L`` for PSNR and SSIM (see above).
    mask : array_like of bool, optional
        Region of interest for PSNR, SSIM, EPI, correlations and edge counts (noise sigma
        and the residual autocorrelation use the whole image).
    per_slice : bool
        Volumes: compute every metric on each z-slice as a 2D image and report the mean
        over slices (for stacks whose first axis is not spatial, or for 2D SSIM); slices
        where the mask selects nothing are left out. Ignored for 2D images. Default:
        true 3D metrics (3D SSIM windows, 3D Laplacian and gradients); Canny edges are
        always detected per slice and averaged.
    slice_index : int, optional
        Volumes: compute the table on this z-slice only (e.g. the viewer's current slice).
    canny_sigma : float
        Canny Gaussian smoothing for both images, pixels; thresholds come from the
        reference (:func:`canny_thresholds`), the same for every candidate and slice.
    edge_tolerance : int
        Pixels within which Canny edges count as matched for the F1.
    scale_invariant : bool
        Add the ``psnr_scale_invariant`` column.
    workers : int, optional
        Threads for slice-by-slice work (Canny on volumes, ``per_slice``); default: the CPU
        count, at most 8. Results do not depend on it.

    Returns
    -------
    MetricsTable
        ``columns``, ``rows`` and the ``settings`` used (data range, mode, thresholds).
    """
    named = _named_candidates(candidates)
    ref = None if reference is None else as_image(reference, "reference")
    noisy_image = None if noisy is None else as_image(noisy, "noisy")
    labelled = {_label(name): image for name, image in named.items()}
    shape = _check_shapes({"the reference": ref, "the noisy input": noisy_image, **labelled})
    region = as_mask(mask, shape)
    mode = _mode(len(shape), per_slice, slice_index, shape[0])
    settings = _Settings(
        data_range=None if ref is None else resolve_data_range(ref, data_range),
        canny_sigma=float(canny_sigma),
        edge_tolerance=check_tolerance(edge_tolerance),
        thresholds=None if ref is None else canny_thresholds(ref, sigma=canny_sigma),
        scale_invariant=bool(scale_invariant),
        workers=workers,
    )
    if mode == "per_slice":
        values = _per_slice_values(named, ref, noisy_image, region, settings)
    else:
        values = _view_values(named, ref, noisy_image, region, settings, slice_index)
    baselines = _noisy_baselines(named, noisy_image)
    _mark_baselines(values, baselines)
    columns = _columns(ref is not None, noisy_image is not None, settings.scale_invariant)
    rows = [{"name": name, **{c: v[c] for c in columns[1:]}} for name, v in values.items()]
    table_settings = _table_settings(settings, mode, shape, slice_index, baselines)
    return MetricsTable(columns, rows, table_settings)


def _table_settings(
    settings: _Settings, mode: str, shape, slice_index, baselines: list[str]
) -> dict[str, Any]:
    thresholds = settings.thresholds or (None, None)
    return {
        "mode": mode,
        "shape": list(shape),
        "slice_index": slice_index,
        "data_range": settings.data_range,
        "ssim_win_size": SSIM_WIN_SIZE,
        "canny_sigma": settings.canny_sigma,
        "canny_low_threshold": thresholds[0],
        "canny_high_threshold": thresholds[1],
        "edge_tolerance": settings.edge_tolerance,
        "residual_max_lag": RESIDUAL_MAX_LAG,
        "noisy_baselines": baselines,
    }
