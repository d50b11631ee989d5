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
from ._columns import (
    COLUMN_BETTER,
    COLUMN_DESCRIPTIONS,
    COLUMN_DIRECTIONS,
    COLUMN_MEANINGS,
    DISPLAY_ORDER,
)

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

HEADLINE_COLUMNS = DISPLAY_ORDER[:3]
"""The three numbers people look for first: PSNR, SSIM and edge preservation (EPI)."""

BASELINE_NOT_APPLICABLE = (
    "residual_std",
    "residual_std_ratio",
    "residual_output_correlation",
    "residual_autocorrelation_spread",
    "epi_vs_noisy",
)
"""Readouts that compare a result with the noisy input: meaningless for the noisy input
itself (its residual is 0, which would read as "perfect"); shown as n/a there."""


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
