"""The comparison table shown by the compare widget, the CLI and the benchmarks."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, TextIO

from .._errors import SelfDenoiseError

REFERENCE_COLUMNS = (
    "psnr",
    "psnr_scale_invariant",
    "ssim",
    "epi",
    "gradient_correlation",
    "canny_preservation",
    "canny_f1",
)
"""Columns that need a clean reference (absent from the table without one)."""

OUTPUT_COLUMNS = ("noise_sigma_output",)
"""Columns computed from the candidate alone (always present)."""

NOISY_COLUMNS = (
    "noise_sigma_noisy",
    "residual_std",
    "residual_std_ratio",
    "residual_output_correlation",
    "residual_autocorrelation_spread",
    "epi_vs_noisy",
)
"""Columns that need the noisy input (absent from the table without one)."""

COLUMN_DESCRIPTIONS = {
    "name": "candidate name",
    "psnr": "PSNR vs reference, dB: 10 log10(L^2 / MSE)",
    "psnr_scale_invariant": "PSNR after least-squares fit a*D+b to the reference, dB",
    "ssim": "mean SSIM vs reference (3D windows for volumes unless per slice)",
    "epi": "edge preservation index: correlation of Laplacians vs reference",
    "gradient_correlation": "correlation of gradient magnitudes vs reference",
    "canny_preservation": "fraction of reference Canny edges found within the tolerance (recall)",
    "canny_f1": "Canny edge F1 vs reference, edges matched within the tolerance",
    "noise_sigma_output": "estimated noise sigma left in the output (image units)",
    "noise_sigma_noisy": "estimated noise sigma of the noisy input (image units)",
    "residual_std": "std of the method noise r = noisy - output (image units)",
    "residual_std_ratio": "residual_std / noise_sigma_noisy: ~1 good, >1 signal removed",
    "residual_output_correlation": "corr(r, output): ~0 good, >0 the output is blurred",
    "residual_autocorrelation_spread": "RMS autocorrelation of r off lag 0: ~0 good",
    "epi_vs_noisy": "EPI against the NOISY input (no clean image): agreement, not quality",
}
"""One line per column, for tooltips, legends and docs."""

DISPLAY_ORDER = (
    "psnr",
    "ssim",
    "epi",
    "psnr_scale_invariant",
    "gradient_correlation",
    "canny_f1",
    "canny_preservation",
    "noise_sigma_noisy",
    "noise_sigma_output",
    "residual_std",
    "residual_std_ratio",
    "residual_output_correlation",
    "residual_autocorrelation_spread",
    "epi_vs_noisy",
)
"""Order in which people read the metrics: the three numbers they look for (PSNR, SSIM,
edge preservation) first, then the other reference scores, then the no-reference readouts."""

HEADLINE_COLUMNS = DISPLAY_ORDER[:3]
"""The three numbers people look for first: PSNR, SSIM and edge preservation (EPI)."""

COLUMN_MEANINGS = {
    "psnr": "How close to the clean reference, in decibels (+3 dB = half the squared error).",
    "psnr_scale_invariant": "PSNR after the best brightness/contrast fit to the reference.",
    "ssim": "Structural similarity to the reference (local means, contrasts, structure); 1 = identical.",
    "epi": "Edge preservation: correlation of fine detail (Laplacian) with the reference's.",
    "gradient_correlation": "Correlation of edge strength (gradient magnitude) with the reference's.",
    "canny_f1": "Edges found where the reference has them, and no extra ones (F1 of Canny edges).",
    "canny_preservation": "Share of the reference's Canny edges found (recall only: noise adds edges, so the noisy image scores high; read it with Canny F1).",
    "noise_sigma_noisy": "Estimated noise level of the noisy input (image units); a yardstick for the rows below.",
    "noise_sigma_output": "Estimated noise left in the result (image units); 0 may also mean over-smoothing.",
    "residual_std": "Spread of what was removed (noisy - result); ideally about the input's noise level.",
    "residual_std_ratio": "What was removed / the input's noise level: below 1 noise left, above 1 signal removed.",
    "residual_output_correlation": "Correlation of what was removed with the result: above 0 it resembles the result (blur, or noise only partly removed); below 0 the result has detail the input does not support (sharpening, gain, invented texture) or blind-spot neighbour noise.",
    "residual_autocorrelation_spread": "How structured what was removed is: 0 = pure pixel noise, higher = patterns or edges removed.",
    "epi_vs_noisy": "Fine-detail agreement with the NOISY input (no clean image needed): agreement, not quality; below 0 the result's fine detail runs against the input's noise (typical of blind-spot methods, which see a pixel's neighbours but not its own noise).",
}
"""What each number means, in one plain line (tooltips of the Compare widget, docs)."""

COLUMN_DIRECTIONS = {
    "psnr": "higher is better",
    "psnr_scale_invariant": "higher is better",
    "ssim": "higher is better (at most 1)",
    "epi": "higher is better (at most 1)",
    "gradient_correlation": "higher is better (at most 1)",
    "canny_f1": "higher is better (at most 1)",
    "canny_preservation": "higher is better, with a high Canny F1",
    "noise_sigma_noisy": "information (no better or worse)",
    "noise_sigma_output": "lower is better, unless the result looks blurred",
    "residual_std": "closest to the input noise sigma is best",
    "residual_std_ratio": "closest to 1 is best",
    "residual_output_correlation": "closest to 0 is best",
    "residual_autocorrelation_spread": "lower is better (0 = only noise removed)",
    "epi_vs_noisy": "information (agreement, not quality)",
}
"""Which way each number should go."""

BASELINE_NOT_APPLICABLE = (
    "residual_std",
    "residual_std_ratio",
    "residual_output_correlation",
    "residual_autocorrelation_spread",
    "epi_vs_noisy",
)
"""Readouts that compare a result with the noisy input: meaningless for the noisy input
itself (its residual is 0, which would read as "perfect"); shown as n/a there."""


COLUMN_BETTER = {
    "psnr": "higher",
    "psnr_scale_invariant": "higher",
    "ssim": "higher",
    "epi": "higher",
    "gradient_correlation": "higher",
    "canny_f1": "higher",
    "canny_preservation": "higher*",
    "noise_sigma_noisy": "info",
    "noise_sigma_output": "lower",
    "residual_std": "~sigma",
    "residual_std_ratio": "~1",
    "residual_output_correlation": "~0",
    "residual_autocorrelation_spread": "lower",
    "epi_vs_noisy": "info",
}
"""The direction of :data:`COLUMN_DIRECTIONS` in a word, for the ``better`` column of text
tables (``*``: read with a footnote, see :data:`TEXT_FOOTNOTES`)."""

TEXT_FOOTNOTES = {
    "canny_preservation": (
        "* canny_preservation counts reference edges found (recall only): noise adds edges, "
        "so the noisy image scores high; judge edges by canny_f1."
    ),
}
"""Notes printed under a text table that has the column."""

DATA_RANGE_ROW = "data_range"
"""Name of the text table's first row: the data range ``L`` used for PSNR and SSIM."""

DATA_RANGE_MEANING = (
    "L in PSNR and SSIM: the reference's dtype range for integer data (255 for 8-bit, "
    "65535 for 16-bit), else its max - min, unless --data-range/data_range is given."
)
"""What the data range row means (same rule in the CLI, the widget and the library)."""


def column_help(name: str) -> str:
    """One line for a tooltip: what the number means and which way is better."""
    meaning = COLUMN_MEANINGS.get(name) or COLUMN_DESCRIPTIONS.get(name, name)
    direction = COLUMN_DIRECTIONS.get(name)
    return f"{meaning} Direction: {direction}." if direction else meaning


def display_order(columns: list[str]) -> list[str]:
    """The metric columns of a table (not ``'name'``) in :data:`DISPLAY_ORDER`."""
    known = [c for c in DISPLAY_ORDER if c in columns]
    return known + [c for c in columns if c not in known and c != "name"]


def _plain(value: Any) -> Any:
    """JSON/CSV-friendly value: NaN -> None, numpy scalars -> Python numbers."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _format(value: Any) -> str:
    if isinstance(value, str):
        return value
    value = _plain(value)
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.1f}" if abs(value) >= 1000 else f"{value:.4f}"
    return str(value)


@dataclass
class MetricsTable:
    """Metrics per candidate: one row per candidate, ``'name'`` first, stable column names.

    Parameters
    ----------
    columns : list of str
        Column names, ``'name'`` first; see :data:`COLUMN_DESCRIPTIONS`.
    rows : list of dict
        One dict per candidate, keyed by column (NaN where a value is undefined).
    settings : dict
        How the table was computed (data range, mode, Canny settings, ...).
    """

    columns: list[str]
    rows: list[dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=dict)

    def column(self, name: str) -> list[Any]:
        """Values of column ``name``, one per row."""
        if name not in self.columns:
            raise SelfDenoiseError(
                f"no column {name!r} in this table; available: {', '.join(self.columns)}."
            )
        return [row[name] for row in self.rows]

    def mark_not_applicable(self, name: str, columns: tuple[str, ...]) -> None:
        """Set ``columns`` of row ``name`` to NaN (shown as n/a), e.g. the residual readouts
        of the noisy input scored as a baseline (:data:`BASELINE_NOT_APPLICABLE`)."""
        for row in self.rows:
            if row["name"] == name:
                for column in columns:
                    if column in row:
                        row[column] = float("nan")

    def select(self, columns: list[str] | tuple[str, ...]) -> MetricsTable:
        """A copy with ``'name'`` and those of ``columns`` the table has, in that order."""
        kept = ["name", *(c for c in columns if c in self.columns and c != "name")]
        rows = [{key: row[key] for key in kept} for row in self.rows]
        return MetricsTable(kept, rows, dict(self.settings))

    def legend(self) -> str:
        """One line per row of :meth:`to_text`: what it means and which way is better."""
        rows = [(DATA_RANGE_ROW, DATA_RANGE_MEANING)] if self._shows_data_range() else []
        rows += [(name, column_help(name)) for name in display_order(self.columns)]
        width = max((len(name) for name, _ in rows), default=0)
        return "\n".join(f"{name.ljust(width)}  {text}" for name, text in rows)

    def _shows_data_range(self) -> bool:
        has_fidelity = any(c in self.columns for c in ("psnr", "ssim", "psnr_scale_invariant"))
        return has_fidelity and self.settings.get("data_range") is not None

    def to_dict(self) -> dict[str, Any]:
        """``{'columns': [...], 'rows': [...], 'settings': {...}}`` with NaN as None."""
        return {
            "columns": list(self.columns),
            "rows": [{key: _plain(row[key]) for key in self.columns} for row in self.rows],
            "settings": {key: _plain(value) for key, value in self.settings.items()},
        }

    def to_json(self, indent: int | None = 2) -> str:
        """Strict JSON of :meth:`to_dict` (NaN becomes ``null``; ``inf`` becomes ``"inf"``)."""

        def finite(value: Any) -> Any:
            if isinstance(value, float) and math.isinf(value):
                return "inf" if value > 0 else "-inf"
            return value

        data = self.to_dict()
        data["rows"] = [{key: finite(value) for key, value in row.items()} for row in data["rows"]]
        return json.dumps(data, indent=indent, allow_nan=False)

    def to_csv(self, path_or_buffer: str | os.PathLike | TextIO | None = None) -> str:
        """CSV text (header = columns, empty cell for NaN); also written if a target is given."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self.rows:
            cells = [_plain(row[key]) for key in self.columns]
            writer.writerow(["" if cell is None else cell for cell in cells])
        text = buffer.getvalue()
        if path_or_buffer is None:
            return text
        if not isinstance(path_or_buffer, str | os.PathLike):
            path_or_buffer.write(text)
        else:
            with open(path_or_buffer, "w", newline="", encoding="utf-8") as handle:
                handle.write(text)
        return text

    def to_text(self, transpose: bool = True) -> str:
        """Aligned text table (for the CLI and ``print``).

        By default one line per metric and one text column per candidate, which stays
        readable with many metrics: the data range ``L`` used for PSNR and SSIM first (when
        the table has them), the metrics in :data:`DISPLAY_ORDER`, a last ``better`` column
        with the direction of each row (:data:`COLUMN_BETTER`) and the footnotes of
        :data:`TEXT_FOOTNOTES` underneath. ``transpose=False`` gives one plain line per
        candidate, in the table's column order (as the CSV).
        """
        if not transpose:
            cells = [list(self.columns)]
            cells += [[_format(row[key]) for key in self.columns] for row in self.rows]
            return _align(cells)
        lines = [["name", *(_format(row["name"]) for row in self.rows), "better"]]
        if self._shows_data_range():
            data_range = _format(float(self.settings["data_range"]))
            lines.append([DATA_RANGE_ROW, *([data_range] * len(self.rows)), ""])
        for name in display_order(self.columns):
            values = [_format(row[name]) for row in self.rows]
            lines.append([name, *values, COLUMN_BETTER.get(name, "")])
        notes = [note for name, note in TEXT_FOOTNOTES.items() if name in self.columns]
        return "\n".join([_align(lines), *notes])

    def __str__(self) -> str:
        """:meth:`to_text`: one line per metric, one column per candidate."""
        return self.to_text()


def _align(cells: list[list[str]]) -> str:
    """First text column left-aligned, the others right-aligned, two spaces apart."""
    widths = [max(len(line[i]) for line in cells) for i in range(len(cells[0]))]
    lines = []
    for line in cells:
        padded = [line[0].ljust(widths[0])]
        padded += [value.rjust(width) for value, width in zip(line[1:], widths[1:], strict=True)]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)
