"""The Compare widget's metrics table: row order, labels, tooltips, data range, sizing."""

from __future__ import annotations

import math
import textwrap
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QHeaderView, QTableWidget, QTableWidgetItem

from .._errors import SelfDenoiseError
from ..metrics import COLUMN_LABELS, column_help, display_order

if TYPE_CHECKING:
    from ..metrics import MetricsTable

MAX_COLUMN = 72
"""Widest candidate column (pixels): two fit next to the row names in a narrow dock."""

DATA_RANGE_ROW = "Data range L"
"""First table row: the data range used for PSNR and SSIM (as the docs ask to state it)."""

DATA_RANGE_HELP = (
    "L in PSNR and SSIM. 'auto': the reference's dtype range for integer data (255 for "
    "8-bit, 65535 for 16-bit), else its max - min; the same rule as 'selfdenoise compare'. "
    "Type e.g. 4095 for 12-bit data stored as 16-bit."
)


def parse_data_range(text: str) -> float | None:
    """``'auto'`` -> None; ``'4095'`` -> 4095.0 (raises a one-line error on bad text)."""
    cleaned = text.strip().lower()
    if cleaned in ("", "auto"):
        return None
    try:
        value = float(cleaned)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        raise SelfDenoiseError(
            f"data range must be 'auto' or a positive number such as 255; got {text!r}."
        )
    return value


def format_value(value: Any) -> str:
    """Four significant digits for numbers, 'n/a' for missing values."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float | int | np.floating | np.integer):
        return f"{float(value):.4g}"
    return str(value)


def header_views(table: QTableWidget) -> tuple[QHeaderView, QHeaderView]:
    """The horizontal and vertical header views of ``table`` (Qt always has both)."""
    horizontal, vertical = table.horizontalHeader(), table.verticalHeader()
    assert horizontal is not None and vertical is not None
    return horizontal, vertical


def column_title(name: str, width: int = 14, lines: int = 3) -> str:
    """A layer name on at most ``lines`` short lines (words kept whole, the middle elided
    when longer), so table columns stay narrow; the header's tooltip has the full name."""
    wrapped = textwrap.wrap(str(name), width, break_long_words=False) or [str(name)]
    if len(wrapped) > lines:
        wrapped = [*wrapped[: lines - 2], "…", wrapped[-1]]
    return "\n".join(wrapped)


def fill_table(widget: QTableWidget, table: MetricsTable) -> None:
    """One row per metric (PSNR, SSIM and edge preservation first), the data range above
    them, one column per candidate; each row name and value has a tooltip with its meaning
    and which way is better."""
    metrics = display_order(table.columns)
    data_range = table.settings.get("data_range")
    show_range = data_range is not None and any(c in table.columns for c in ("psnr", "ssim"))
    first = 1 if show_range else 0
    widget.clear()
    widget.setRowCount(len(metrics) + first)
    widget.setColumnCount(len(table.rows))
    widget.setHorizontalHeaderLabels([column_title(row["name"]) for row in table.rows])
    for column, row in enumerate(table.rows):
        title = widget.horizontalHeaderItem(column)
        if title is not None:
            title.setToolTip(str(row["name"]))
    if show_range:
        _set_row(widget, 0, DATA_RANGE_ROW, DATA_RANGE_HELP, [data_range] * len(table.rows))
    for r, metric in enumerate(metrics, start=first):
        values = [row.get(metric) for row in table.rows]
        _set_row(widget, r, COLUMN_LABELS.get(metric, metric), column_help(metric), values)
    fit_table_height(widget)


def _set_row(widget: QTableWidget, row: int, label: str, tip: str, values: list[Any]) -> None:
    header = QTableWidgetItem(label)
    header.setToolTip(tip)
    widget.setVerticalHeaderItem(row, header)
    for column, value in enumerate(values):
        item = QTableWidgetItem(format_value(value))
        item.setToolTip(tip)
        widget.setItem(row, column, item)


def fit_table_height(widget: QTableWidget) -> None:
    """Narrow columns (full names in the tooltips) and a height that shows every row."""
    widget.resizeColumnsToContents()
    widget.resizeRowsToContents()
    horizontal, vertical = header_views(widget)
    horizontal.setTextElideMode(Qt.TextElideMode.ElideMiddle)
    horizontal.setMinimumSectionSize(40)  # themes may set a larger one than MAX_COLUMN
    for column in range(widget.columnCount()):
        widget.setColumnWidth(column, min(widget.columnWidth(column), MAX_COLUMN))
    height = horizontal.sizeHint().height() + vertical.length() + 2 * widget.frameWidth()
    widget.setMinimumHeight(min(height + 6, 520))
    widget.updateGeometry()
