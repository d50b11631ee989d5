"""The live loss plot of the Train widget: training loss (raw and smoothed) and validation loss."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from qtpy.QtWidgets import QWidget

from ._plot import PALETTE, LinePlot, Series

MAX_POINTS = 1500
"""Curves with more points are thinned (by averaging) before painting."""

GENERIC_CAPTION = (
    "Judge training by the validation loss (right axis, its own scale), measured on "
    "held-out patches."
)
"""Caption under the loss plot for every method."""

RAMP_CAPTION = (
    "Neighbor2Neighbor's training loss rises by design (the weight gamma of its regulariser "
    "ramps up over the run): judge training by the validation loss (right axis)."
)
"""Caption for methods whose training loss climbs on purpose (the N2N gamma ramp)."""


def loss_caption(method: str, regulariser_weight: float | str = "auto") -> str:
    """The one-line explanation shown under (and as the tooltip of) the loss plot.

    Neighbor2Neighbor's training loss climbs only while its regulariser has a weight (with
    ``'auto'`` it may: the weight is read from the data when training starts)."""
    ramps = method == "neighbor2neighbor" and (
        regulariser_weight == "auto" or float(regulariser_weight) > 0
    )
    return RAMP_CAPTION if ramps else GENERIC_CAPTION


def smooth(values: np.ndarray, span: int | None = None) -> np.ndarray:
    """Exponential moving average with a span of about 5 % of the curve (at least 5 points)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return values
    span = span or max(5, values.size // 20)
    alpha = 2.0 / (span + 1.0)
    out = np.empty_like(values)
    level = values[0]
    for index, value in enumerate(values):
        if math.isfinite(value):
            level = alpha * value + (1 - alpha) * level if math.isfinite(level) else value
        out[index] = level
    return out


def thin(x: np.ndarray, y: np.ndarray, limit: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Average consecutive points so that at most ``limit`` remain."""
    if x.size <= limit:
        return x, y
    factor = math.ceil(x.size / limit)
    usable = (x.size // factor) * factor
    return (
        x[:usable].reshape(-1, factor).mean(axis=1),
        np.nanmean(y[:usable].reshape(-1, factor), axis=1),
    )


class LossPlot(LinePlot):
    """Training loss (left axis) and validation loss (right axis) against steps, log-scaled.

    The two losses get their own scales so that a validation curve that moves little next to
    a climbing training loss (Neighbor2Neighbor's ramp) still shows its trend, and a lone
    validation point (a short 3D run) sits inside the frame. Feed it with :meth:`add_points`
    (live) or :meth:`set_curves` (a whole history).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(
            x_label="step",
            y_label="loss",
            log_y=True,
            placeholder="loss curves appear here during training",
            parent=parent,
        )
        self.train_steps: list[float] = []
        self.train_losses: list[float] = []
        self.val_steps: list[float] = []
        self.val_losses: list[float] = []
        self.setToolTip(GENERIC_CAPTION)

    def set_method(self, method: str, regulariser_weight: float | str = "auto") -> None:
        """Explain the curves of ``method`` in the tooltip."""
        self.setToolTip(loss_caption(method, regulariser_weight))

    def reset(self) -> None:
        """Forget every point."""
        self.train_steps, self.train_losses, self.val_steps, self.val_losses = [], [], [], []
        self.refresh()

    def add_points(self, rows: Iterable[dict]) -> None:
        """Append rows with ``step``, ``loss`` and optionally ``val_loss`` (when ``validated``)."""
        for row in rows:
            step = float(row["step"])
            loss = row.get("loss")
            if loss is not None and math.isfinite(loss):
                self.train_steps.append(step)
                self.train_losses.append(float(loss))
            val_loss = row.get("val_loss")
            if row.get("validated") and val_loss is not None and math.isfinite(val_loss):
                self.val_steps.append(step)
                self.val_losses.append(float(val_loss))
        self.refresh()

    def set_curves(self, history: Iterable[dict]) -> None:
        """Show a stored history (one row per validation) with both curves."""
        self.reset()
        self.add_points(dict(row, validated=True) for row in history)

    def refresh(self) -> None:
        """Rebuild the series from the stored points and repaint."""
        series = []
        train_x = np.asarray(self.train_steps)
        train_y = np.asarray(self.train_losses)
        if train_x.size:
            x, y = thin(train_x, train_y)
            dense = train_x.size > 20
            if dense:
                series.append(Series("", x, y, PALETTE[0], width=1.0, alpha=0.3))
            label = "training (smoothed)" if dense else "training"
            series.append(Series(label, x, smooth(y) if dense else y, PALETTE[0], width=2.0))
        if self.val_steps:
            series.append(
                Series(
                    "validation (right axis)" if train_x.size else "validation",
                    np.asarray(self.val_steps),
                    np.asarray(self.val_losses),
                    PALETTE[1],
                    width=2.0,
                    markers=True,
                    right_axis=bool(train_x.size),
                )
            )
        self.set_series(series)
