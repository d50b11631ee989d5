"""Every metric column, once: its name, label, definition, meaning and direction.

The table below is the one place these texts live; the dictionaries that the CLI tables, the
Compare widget, ``compare --explain`` and the docs read (:data:`COLUMN_DESCRIPTIONS`,
:data:`COLUMN_MEANINGS`, :data:`COLUMN_DIRECTIONS`, :data:`COLUMN_BETTER`,
:data:`COLUMN_LABELS`) and the reading order :data:`DISPLAY_ORDER` are derived from it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "COLUMNS",
    "COLUMN_BETTER",
    "COLUMN_DESCRIPTIONS",
    "COLUMN_DIRECTIONS",
    "COLUMN_LABELS",
    "COLUMN_MEANINGS",
    "DISPLAY_ORDER",
    "MetricColumn",
]


@dataclass(frozen=True)
class MetricColumn:
    """One metric column of a comparison table.

    Attributes
    ----------
    name : str
        Key in the table and in CSV/JSON output.
    label : str
        Short display name (the Compare widget's row header).
    description : str
        Technical definition (legends, CSV documentation).
    meaning : str
        What the number means, in one plain line (tooltips, ``compare --explain``).
    direction : str
        Which way the number should go, in words.
    better : str
        The direction in a word, for the ``better`` column of text tables (``*``: read with
        a footnote).
    """

    name: str
    label: str
    description: str
    meaning: str
    direction: str
    better: str


COLUMNS: tuple[MetricColumn, ...] = (
    MetricColumn(
        name="psnr",
        label="PSNR (dB)",
        description="PSNR vs reference, dB: 10 log10(L^2 / MSE)",
        meaning="How close to the clean reference, in decibels (+3 dB = half the squared error).",
        direction="higher is better",
        better="higher",
    ),
    MetricColumn(
        name="ssim",
        label="SSIM",
        description="mean SSIM vs reference (3D windows for volumes unless per slice)",
        meaning="Structural similarity to the reference (local means, contrasts, structure); 1 = identical.",
        direction="higher is better (at most 1)",
        better="higher",
    ),
    MetricColumn(
        name="epi",
        label="Edge preservation (EPI)",
        description="edge preservation index: correlation of Laplacians vs reference",
        meaning="Edge preservation: correlation of fine detail (Laplacian) with the reference's.",
        direction="higher is better (at most 1)",
        better="higher",
    ),
    MetricColumn(
        name="psnr_scale_invariant",
        label="PSNR, fitted (dB)",
        description="PSNR after least-squares fit a*D+b to the reference, dB",
        meaning="PSNR after the best brightness/contrast fit to the reference.",
        direction="higher is better",
        better="higher",
    ),
    MetricColumn(
        name="gradient_correlation",
        label="Gradient corr.",
        description="correlation of gradient magnitudes vs reference",
        meaning="Correlation of edge strength (gradient magnitude) with the reference's.",
        direction="higher is better (at most 1)",
        better="higher",
    ),
    MetricColumn(
        name="canny_f1",
        label="Canny F1",
        description="Canny edge F1 vs reference, edges matched within the tolerance",
        meaning="Edges found where the reference has them, and no extra ones (F1 of Canny edges).",
        direction="higher is better (at most 1)",
        better="higher",
    ),
    MetricColumn(
        name="canny_preservation",
        label="Canny recall",
        description="fraction of reference Canny edges found within the tolerance (recall)",
        meaning="Share of the reference's Canny edges found (recall only: noise adds edges, so the noisy image scores high; read it with Canny F1).",
        direction="higher is better, with a high Canny F1",
        better="higher*",
    ),
    MetricColumn(
        name="noise_sigma_noisy",
        label="\u03c3 noise (input)",
        description="estimated noise sigma of the noisy input (image units)",
        meaning="Estimated noise level of the noisy input (image units); a yardstick for the rows below.",
        direction="information (no better or worse)",
        better="info",
    ),
    MetricColumn(
        name="noise_sigma_output",
        label="\u03c3 noise (output)",
        description="estimated noise sigma left in the output (image units)",
        meaning="Estimated noise left in the result (image units); 0 may also mean over-smoothing.",
        direction="lower is better, unless the result looks blurred",
        better="lower",
    ),
    MetricColumn(
        name="residual_std",
        label="Residual std",
        description="std of the method noise r = noisy - output (image units)",
        meaning="Spread of what was removed (noisy - result); ideally about the input's noise level.",
        direction="closest to the input noise sigma is best",
        better="~sigma",
    ),
    MetricColumn(
        name="residual_std_ratio",
        label="Residual / noise",
        description="residual_std / noise_sigma_noisy: ~1 good, >1 signal removed",
        meaning="What was removed / the input's noise level: below 1 noise left, above 1 signal removed.",
        direction="closest to 1 is best",
        better="~1",
    ),
    MetricColumn(
        name="residual_output_correlation",
        label="Residual corr.",
        description="corr(r, output): ~0 good, >0 the output is blurred",
        meaning="Correlation of what was removed with the result: above 0 it resembles the result (blur, or noise only partly removed); below 0 the result has detail the input does not support (sharpening, gain, invented texture) or blind-spot neighbour noise.",
        direction="closest to 0 is best",
        better="~0",
    ),
    MetricColumn(
        name="residual_autocorrelation_spread",
        label="Residual autocorr.",
        description="RMS autocorrelation of r off lag 0: ~0 good",
        meaning="How structured what was removed is: 0 = pure pixel noise, higher = patterns or edges removed.",
        direction="lower is better (0 = only noise removed)",
        better="lower",
    ),
    MetricColumn(
        name="epi_vs_noisy",
        label="EPI vs noisy",
        description="EPI against the NOISY input (no clean image): agreement, not quality",
        meaning="Fine-detail agreement with the NOISY input (no clean image needed): agreement, not quality; below 0 the result's fine detail runs against the input's noise (typical of blind-spot methods, which see a pixel's neighbours but not its own noise).",
        direction="information (agreement, not quality)",
        better="info",
    ),
)
"""All columns in the order people read them: the three numbers they look for (PSNR, SSIM,
edge preservation) first, then the other reference scores, then the no-reference readouts."""

DISPLAY_ORDER = tuple(column.name for column in COLUMNS)
"""Column names in reading order."""

COLUMN_LABELS = {column.name: column.label for column in COLUMNS}
"""Short display name of each column."""

COLUMN_DESCRIPTIONS = {"name": "candidate name"} | {
    column.name: column.description for column in COLUMNS
}
"""One technical line per column (``'name'`` included), for legends and docs."""

COLUMN_MEANINGS = {column.name: column.meaning for column in COLUMNS}
"""What each number means, in one plain line (tooltips of the Compare widget, docs)."""

COLUMN_DIRECTIONS = {column.name: column.direction for column in COLUMNS}
"""Which way each number should go."""

COLUMN_BETTER = {column.name: column.better for column in COLUMNS}
"""The direction in a word, for the ``better`` column of text tables."""
