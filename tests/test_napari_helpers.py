"""Pieces behind the widgets: parsing, messages, history merging, session models, plots."""

from __future__ import annotations

import numpy as np
import pytest

from selfdenoise import SelfDenoiseError
from selfdenoise._napari._base import parse_shape
from selfdenoise._napari._feedback import (
    OUT_OF_MEMORY_HINT,
    format_duration,
    outcome_from_exception,
    run_guarded,
    user_message,
)
from selfdenoise._napari._jobs import merge_history
from selfdenoise._napari._loss_plot import LossPlot, smooth, thin
from selfdenoise._napari._plot import LinePlot, Series, format_tick, log_ticks, nice_ticks


@pytest.mark.parametrize(
    ("text", "ndim", "expected"),
    [
        ("auto", 2, None),
        ("", 3, None),
        ("64", 2, (64, 64)),
        ("16,64,64", 3, (16, 64, 64)),
        ("32x48", 2, (32, 48)),
    ],
)
def test_parse_shape(text, ndim, expected):
    assert parse_shape(text, ndim, "patch size") == expected


@pytest.mark.parametrize("text", ["big", "16,64", "-4"])
def test_parse_shape_rejects_bad_text(text):
    with pytest.raises(SelfDenoiseError, match="patch size"):
        parse_shape(text, 3, "patch size")


def test_messages_are_one_line():
    class OutOfMemoryError(RuntimeError):
        pass

    assert user_message(SelfDenoiseError("bad axes;\n use YX")) == "bad axes; use YX"
    assert user_message(OutOfMemoryError("CUDA out of memory")) == OUT_OF_MEMORY_HINT
    assert "learning rate" in user_message(
        FloatingPointError("training diverged; lower the learning rate.")
    )
    assert "please report" in user_message(KeyError("x"))


def test_outcomes_wrap_results_errors_and_cancellation():
    assert run_guarded(lambda: 3).value == 3
    failed = run_guarded(lambda: 1 / 0)
    assert not failed.ok and "ZeroDivisionError" in failed.error

    class PredictionCancelled(RuntimeError):
        pass

    cancelled = outcome_from_exception(PredictionCancelled())
    assert cancelled.cancelled and not cancelled.error


def test_format_duration():
    assert format_duration(75.2) == "1:15"
    assert format_duration(3700) == "1:01:40"
    assert format_duration(None) == "--"


def rows(*steps, run=1.0):
    return [{"step": s, "loss": run / s, "val_loss": 2.0 * run / s} for s in steps]


def test_merge_history_shifts_restarted_steps():
    restarted = rows(5, 10, run=0.5)
    assert [r["step"] for r in merge_history(rows(5, 10), restarted)] == [5, 10, 15, 20]
    assert [r["step"] for r in merge_history(rows(5, 10), rows(15, 20))] == [5, 10, 15, 20]
    kept = rows(5, 10) + rows(15)
    assert merge_history(rows(5, 10), kept) == kept
    assert merge_history([], rows(5)) == rows(5)


def test_session_registry_names_are_unique(clean_session):
    calls = []
    clean_session.changed.connect(lambda: calls.append(1))
    first, second = object(), object()
    assert clean_session.add(first, "model") == "model"
    assert clean_session.add(second, "model") == "model [2]"
    assert clean_session.add(first, "ignored", path="m.safetensors") == "model"
    assert clean_session.get("model").path == "m.safetensors"
    assert clean_session.find(second).name == "model [2]"
    assert len(calls) == 3


def test_ticks():
    assert nice_ticks(0, 10, 5) == [0, 2, 4, 6, 8, 10]
    assert log_ticks(0.01, 10) == [0.01, 0.1, 1.0, 10.0]
    assert len(log_ticks(0.3, 0.9)) >= 2
    assert (
        format_tick(0.001) == "1e-3"
        and format_tick(2500.0) == "2500"
        and format_tick(0.25) == "0.25"
    )


def test_smooth_and_thin():
    values = np.r_[np.ones(50), np.full(50, 3.0)]
    smoothed = smooth(values)
    assert smoothed[0] == 1 and 1 < smoothed[60] < 3
    x, y = thin(np.arange(5000.0), np.ones(5000), limit=1000)
    assert len(x) <= 1000 and np.allclose(y, 1)


def painted(widget, qtbot):
    qtbot.addWidget(widget)
    widget.resize(360, 220)
    image = widget.grab().toImage()
    colours = {image.pixel(x, y) for x in range(0, 360, 4) for y in range(0, 220, 4)}
    return len(colours)


def test_loss_plot_paints_curves(qtbot):
    plot = LossPlot()
    empty = painted(plot, qtbot)
    steps = np.arange(1, 101)
    plot.add_points(
        {"step": s, "loss": 1 / s + 0.1, "val_loss": 1 / s, "validated": s % 10 == 0} for s in steps
    )
    assert len(plot.val_steps) == 10 and len(plot.train_steps) == 100
    assert painted(plot, qtbot) > empty
    assert plot.series[-1].label == "validation"


def test_line_plot_skips_bad_values(qtbot):
    plot = LinePlot(log_y=True)
    plot.set_series([Series("a", [0, 1, 2, 3], [1.0, np.nan, -1.0, 2.0])])
    assert plot.data_limits() is not None
    painted(plot, qtbot)
    plot.set_series([Series("b", [0, 1], [np.nan, -2.0])])
    assert plot.data_limits() is None
