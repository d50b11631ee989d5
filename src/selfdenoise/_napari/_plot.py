"""A small line plot painted with QPainter (no plotting library needed).

Used for the live loss curve (log-scaled y) and the line profiles of the Compare widget.
Colours follow the widget's palette, so it reads on napari's dark and light themes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from qtpy.QtCore import QPointF, QRectF, QSize, Qt
from qtpy.QtGui import QColor, QPainter, QPainterPath, QPalette, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

PALETTE = ("#4fa3ff", "#ff9f40", "#6fd36f", "#ff6b8b", "#c78bff", "#f2d45c", "#5fd6d6")
"""Series colours, readable on dark and light backgrounds."""


@dataclass
class Series:
    """One curve.

    Attributes
    ----------
    label : str
        Legend text (empty: not in the legend).
    x, y : ndarray
        Coordinates; non-finite points (and non-positive ones on a log axis) are skipped.
    color : str
        Any colour Qt understands.
    width : float
        Line width in pixels.
    markers : bool
        Draw a dot at each point (for sparse curves such as validation loss).
    alpha : float
        Opacity, 0..1.
    right_axis : bool
        Scale this curve on its own y axis, drawn on the right in the curve's colour (for a
        curve whose level differs from the others, such as a validation loss).
    """

    label: str
    x: np.ndarray
    y: np.ndarray
    color: str = PALETTE[0]
    width: float = 1.6
    markers: bool = False
    alpha: float = 1.0
    right_axis: bool = False


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick positions (1, 2, 5 x 10^k steps) covering ``[low, high]``, at least 3."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low] if math.isfinite(low) else []
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    steps = [m * magnitude for m in (10, 5, 2, 1, 0.5, 0.2, 0.1)]
    usable = [step for step in steps if step >= raw] or steps[:1]
    ticks: list[float] = []
    for step in [usable[-1], *(s for s in steps if s < usable[-1])]:
        ticks = _ticks_with_step(low, high, step)
        if len(ticks) >= 3:
            break
    return ticks


def _ticks_with_step(low: float, high: float, step: float) -> list[float]:
    start = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = start
    while value <= high + 1e-9 * step:
        ticks.append(0.0 if abs(value) < step * 1e-9 else round(value, 12))
        value += step
    return ticks


def log_ticks(low: float, high: float) -> list[float]:
    """Tick positions for a log axis over ``[low, high]`` (both > 0): decades, or 1-2-5."""
    if low <= 0 or high <= low:
        return []
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    for mantissas in ((1.0,), (1.0, 2.0, 5.0), (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)):
        ticks = [
            m * 10.0**e
            for e in range(first, last + 1)
            for m in mantissas
            if low <= m * 10.0**e <= high
        ]
        if len(ticks) >= 3 or mantissas[-1] == 7.0:
            return ticks
    return []


def format_tick(value: float) -> str:
    """Compact tick label: ``0.001`` -> ``'1e-3'``, ``2500`` -> ``'2500'``, ``0.25``."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e5 or magnitude < 1e-2:
        mantissa, exponent = f"{value:.0e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3g}"


class LinePlot(QWidget):
    """A QWidget that paints line series with axes, ticks, labels and a legend.

    Parameters
    ----------
    x_label, y_label : str
        Axis titles.
    log_y : bool
        Log-scaled y axis.
    placeholder : str
        Text shown when there is nothing to plot.
    parent : QWidget, optional
        Parent widget.
    """

    def __init__(
        self,
        x_label: str = "",
        y_label: str = "",
        log_y: bool = False,
        placeholder: str = "nothing to show yet",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.x_label, self.y_label, self.log_y = x_label, y_label, log_y
        self.placeholder = placeholder
        self.series: list[Series] = []
        self.setMinimumSize(240, 170)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def sizeHint(self) -> QSize:
        return QSize(320, 210)

    def set_series(self, series: list[Series]) -> None:
        """Replace the curves and repaint."""
        self.series = list(series)
        self.update()

    def clear(self) -> None:
        """Remove all curves."""
        self.set_series([])

    # ------------------------------------------------------------------ geometry
    def _finite_points(self, series: Series) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(series.x, dtype=float).ravel()
        y = np.asarray(series.y, dtype=float).ravel()
        keep = np.isfinite(x) & np.isfinite(y)
        if self.log_y:
            keep &= y > 0
        return x[keep], y[keep]

    def data_limits(
        self, right_axis: bool | None = None
    ) -> tuple[float, float, float, float] | None:
        """``(x_min, x_max, y_min, y_max)`` of the drawable points, padded; None if empty.

        The x range covers every curve (a lone point sits inside, not on the frame); the y
        range covers the curves of one axis (``right_axis`` True/False) or all (None).
        """
        points = [self._finite_points(s) for s in self.series]
        xs = np.concatenate([p[0] for p in points]) if points else np.empty(0)
        chosen = [
            p[1]
            for p, s in zip(points, self.series, strict=True)
            if right_axis is None or s.right_axis == right_axis
        ]
        ys = np.concatenate(chosen) if chosen else np.empty(0)
        if xs.size == 0 or ys.size == 0:
            return None
        x_min, x_max = float(xs.min()), float(xs.max())
        if x_max <= x_min:
            x_min, x_max = x_min - 0.5, x_max + 0.5
        x_pad = 0.03 * (x_max - x_min)
        y_min, y_max = float(ys.min()), float(ys.max())
        if self.log_y:
            y_min, y_max = math.log10(y_min), math.log10(y_max)
        pad = 0.06 * (y_max - y_min) if y_max > y_min else 0.5
        return x_min - x_pad, x_max + x_pad, y_min - pad, y_max + pad

    # ------------------------------------------------------------------ painting
    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        foreground = palette.color(QPalette.ColorRole.WindowText)
        painter.fillRect(self.rect(), palette.color(QPalette.ColorRole.Base))
        limits = self.data_limits(right_axis=False) or self.data_limits()
        if limits is None:
            painter.setPen(foreground)
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.placeholder)
            painter.end()
            return
        right = self.data_limits(right_axis=True) if self._has_left_series() else None
        area = self._plot_area(painter, limits, right)
        limits = self._with_legend_headroom(painter, area, limits)
        self._draw_axes(painter, area, limits, foreground)
        if right is not None:
            right = self._with_legend_headroom(painter, area, right)
            self._draw_right_axis(painter, area, right)
        painter.save()
        painter.setClipRect(area)
        for series in self.series:
            own = right if series.right_axis and right is not None else limits
            self._draw_series(painter, area, own, series)
        painter.restore()
        self._draw_legend(painter, area, foreground)
        painter.end()

    def _with_legend_headroom(self, painter: QPainter, area: QRectF, limits):
        """Raise the top of the y range so that the curves pass below the legend."""
        rows = sum(1 for s in self.series if s.label)
        if not rows:
            return limits
        legend = painter.fontMetrics().height() * rows + 14
        fraction = min(legend / max(area.height(), 1.0), 0.6)
        x_min, x_max, y_min, y_max = limits
        return x_min, x_max, y_min, y_max + fraction / (1 - fraction) * (y_max - y_min)

    def _has_left_series(self) -> bool:
        return any(not s.right_axis for s in self.series)

    def _right_series(self) -> Series | None:
        return next((s for s in self.series if s.right_axis), None)

    def _plot_area(self, painter: QPainter, limits, right=None) -> QRectF:
        metrics = painter.fontMetrics()
        height = metrics.height()
        labels = [format_tick(tick) for tick in self._y_ticks(limits)] or ["0"]
        left = max(metrics.horizontalAdvance(label) for label in labels) + height + 10
        margin = 12
        if right is not None:
            labels = [format_tick(tick) for tick in self._y_ticks(right)] or ["0"]
            margin = max(metrics.horizontalAdvance(label) for label in labels) + 10
        bottom = 2 * height + 10
        return QRectF(
            left, 8, max(self.width() - left - margin, 10), max(self.height() - bottom - 8, 10)
        )

    def _draw_right_axis(self, painter: QPainter, area: QRectF, limits) -> None:
        """Ticks of the right-hand y axis, in the colour of its curve."""
        series = self._right_series()
        colour = QColor(series.color if series else PALETTE[1])
        metrics = painter.fontMetrics()
        x_min = limits[0]
        painter.setPen(colour)
        for tick in self._y_ticks(limits):
            point = self._to_pixel(area, limits, x_min, tick)
            painter.drawLine(QPointF(area.right() - 4, point.y()), QPointF(area.right(), point.y()))
            painter.drawText(
                QPointF(area.right() + 3, point.y() + metrics.ascent() / 2 - 1), format_tick(tick)
            )

    def _to_pixel(self, area: QRectF, limits, x: float, y: float) -> QPointF:
        x_min, x_max, y_min, y_max = limits
        if self.log_y:
            y = math.log10(y)
        px = area.left() + (x - x_min) / (x_max - x_min) * area.width()
        py = area.bottom() - (y - y_min) / (y_max - y_min) * area.height()
        return QPointF(px, py)

    def _y_ticks(self, limits) -> list[float]:
        _, _, y_min, y_max = limits
        if self.log_y:
            ticks = log_ticks(10**y_min, 10**y_max)
            if len(ticks) < 3:  # less than a decade: evenly spaced round values instead
                ticks = [t for t in nice_ticks(10**y_min, 10**y_max, count=4) if t > 0]
            return ticks
        return nice_ticks(y_min, y_max, count=4)

    def _draw_axes(self, painter: QPainter, area: QRectF, limits, foreground: QColor) -> None:
        grid = QColor(foreground)
        grid.setAlpha(45)
        metrics = painter.fontMetrics()
        x_min, x_max, y_min, _ = limits
        for tick in nice_ticks(x_min, x_max, count=max(2, int(area.width() // 70))):
            point = self._to_pixel(area, limits, tick, 10**y_min if self.log_y else y_min)
            painter.setPen(QPen(grid, 1))
            painter.drawLine(QPointF(point.x(), area.top()), QPointF(point.x(), area.bottom()))
            painter.setPen(foreground)
            text = format_tick(tick)
            width = metrics.horizontalAdvance(text)
            painter.drawText(QPointF(point.x() - width / 2, area.bottom() + metrics.height()), text)
        for tick in self._y_ticks(limits):
            point = self._to_pixel(area, limits, x_min, tick)
            painter.setPen(QPen(grid, 1))
            painter.drawLine(QPointF(area.left(), point.y()), QPointF(area.right(), point.y()))
            painter.setPen(foreground)
            text = format_tick(tick)
            width = metrics.horizontalAdvance(text)
            painter.drawText(
                QPointF(area.left() - width - 4, point.y() + metrics.ascent() / 2 - 1), text
            )
        painter.setPen(QPen(foreground, 1))
        painter.drawRect(area)
        self._draw_axis_titles(painter, area)

    def _draw_axis_titles(self, painter: QPainter, area: QRectF) -> None:
        metrics = painter.fontMetrics()
        x_title = self.x_label
        painter.drawText(
            QPointF(area.center().x() - metrics.horizontalAdvance(x_title) / 2, self.height() - 4),
            x_title,
        )
        y_title = self.y_label + (" (log)" if self.log_y and self.y_label else "")
        painter.save()
        painter.translate(
            metrics.ascent() + 1, area.center().y() + metrics.horizontalAdvance(y_title) / 2
        )
        painter.rotate(-90)
        painter.drawText(QPointF(0, 0), y_title)
        painter.restore()

    def _draw_series(self, painter: QPainter, area: QRectF, limits, series: Series) -> None:
        x, y = self._finite_points(series)
        if x.size == 0:
            return
        color = QColor(series.color)
        color.setAlphaF(series.alpha)
        points = [
            self._to_pixel(area, limits, float(a), float(b)) for a, b in zip(x, y, strict=True)
        ]
        path = QPainterPath(points[0])
        for point in points[1:]:
            path.lineTo(point)
        painter.setPen(QPen(color, series.width))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(path)
        if series.markers or len(points) == 1:
            painter.setBrush(color)
            for point in points:
                painter.drawEllipse(point, 2.8, 2.8)

    def _draw_legend(self, painter: QPainter, area: QRectF, foreground: QColor) -> None:
        labelled = [s for s in self.series if s.label]
        if not labelled:
            return
        metrics = painter.fontMetrics()
        line_height = metrics.height()
        width = max(metrics.horizontalAdvance(s.label) for s in labelled) + 30
        box = QRectF(
            area.right() - width - 6, area.top() + 6, width, line_height * len(labelled) + 6
        )
        background = QColor(self.palette().color(QPalette.ColorRole.Base))
        background.setAlpha(210)
        painter.fillRect(box, background)
        for row, series in enumerate(labelled):
            y = box.top() + 3 + line_height * row + line_height / 2
            color = QColor(series.color)
            painter.setPen(QPen(color, 2.5))
            painter.drawLine(QPointF(box.left() + 5, y), QPointF(box.left() + 21, y))
            painter.setPen(foreground)
            painter.drawText(QPointF(box.left() + 26, y + metrics.ascent() / 2 - 1), series.label)
