"""Comparison metrics: fidelity, edge preservation and no-reference readouts.

:func:`compare` builds the table that the compare widget, the CLI ``compare`` command
(``--json`` prints :meth:`MetricsTable.to_json`) and the benchmarks show. The functions it
uses are public too, and so is what explains the table: :data:`DISPLAY_ORDER` (PSNR, SSIM and
edge preservation first), :data:`COLUMN_MEANINGS` and :data:`COLUMN_DIRECTIONS` (one line per
readout, joined by :func:`column_help`) and :meth:`MetricsTable.legend`.

Inputs
------
2D (YX) or 3D (ZYX) arrays of any real dtype (bool, uint8, uint16, int, float). Values are
compared as the numbers they hold, with no dtype rescaling: a float32 output in the units of
a uint16 reference compares directly. Shape mismatches, NaN/inf values and other
dimensionalities raise :class:`selfdenoise.SelfDenoiseError`. Arrays of up to 2**24
elements are processed in float64, larger ones in float32 with sums accumulated in float64.

Data range ``L`` (PSNR, SSIM): ``data_range`` if given; otherwise the reference's dtype
range for integer dtypes (``iinfo.max - iinfo.min``: 255 for uint8, 65535 for uint16), 1 for
bool and ``max(S) - min(S)`` for float references (:func:`resolve_data_range`). For 12-bit
data stored as uint16 pass ``data_range=4095``.

This module uses numpy, scipy and scikit-image only (no torch, no napari).
"""

from ._checks import resolve_data_range
from ._columns import COLUMN_LABELS, COLUMNS, MetricColumn
from ._compare import compare
from ._edges import (
    EdgeScores,
    canny_edges,
    canny_edges_f1,
    canny_thresholds,
    epi,
    gradient_correlation,
)
from ._fidelity import psnr, psnr_scale_invariant, ssim, ssim_map
from ._noise import (
    MethodNoiseStats,
    NoiseLine,
    estimate_noise_line,
    estimate_noise_rms,
    estimate_noise_sigma,
    method_noise_stats,
    photon_noise_fraction,
    residual,
    shared_noise_correlation,
)
from ._table import (
    BASELINE_NOT_APPLICABLE,
    COLUMN_BETTER,
    COLUMN_DESCRIPTIONS,
    COLUMN_DIRECTIONS,
    COLUMN_MEANINGS,
    DISPLAY_ORDER,
    HEADLINE_COLUMNS,
    NOISY_COLUMNS,
    OUTPUT_COLUMNS,
    REFERENCE_COLUMNS,
    MetricsTable,
    column_help,
    display_order,
)

__all__ = [
    "BASELINE_NOT_APPLICABLE",
    "COLUMNS",
    "COLUMN_BETTER",
    "COLUMN_DESCRIPTIONS",
    "COLUMN_DIRECTIONS",
    "COLUMN_LABELS",
    "COLUMN_MEANINGS",
    "DISPLAY_ORDER",
    "HEADLINE_COLUMNS",
    "NOISY_COLUMNS",
    "OUTPUT_COLUMNS",
    "REFERENCE_COLUMNS",
    "EdgeScores",
    "MethodNoiseStats",
    "MetricColumn",
    "MetricsTable",
    "NoiseLine",
    "canny_edges",
    "canny_edges_f1",
    "canny_thresholds",
    "column_help",
    "compare",
    "display_order",
    "epi",
    "estimate_noise_line",
    "estimate_noise_rms",
    "estimate_noise_sigma",
    "gradient_correlation",
    "method_noise_stats",
    "photon_noise_fraction",
    "psnr",
    "psnr_scale_invariant",
    "residual",
    "resolve_data_range",
    "shared_noise_correlation",
    "ssim",
    "ssim_map",
]
