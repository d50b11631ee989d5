"""Pieces behind the widgets: parsing, messages, session models, plots, status lines."""

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


class _StubModel:
    """Enough of a Denoiser for widgets that list session models."""

    method = "n2v"

    def __init__(self):
        from selfdenoise.config import make_config

        self.config = make_config("n2v", "YX")
        self.history: list = []


def test_session_registry_names_are_unique(clean_session):
    calls = []
    clean_session.changed.connect(lambda: calls.append(1))
    first, second = _StubModel(), _StubModel()
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
    assert plot.series[-1].label.startswith("validation")
    assert plot.series[-1].right_axis  # its own scale: a flat-looking curve shows its trend


def test_line_plot_skips_bad_values(qtbot):
    plot = LinePlot(log_y=True)
    plot.set_series([Series("a", [0, 1, 2, 3], [1.0, np.nan, -1.0, 2.0])])
    assert plot.data_limits() is not None
    painted(plot, qtbot)
    plot.set_series([Series("b", [0, 1], [np.nan, -2.0])])
    assert plot.data_limits() is None


def test_single_validation_point_sits_inside_the_frame(qtbot):
    """A short 3D run has one validation point at the last step: it must not sit on the
    frame (clipped) and gets its own axis, so it is not squeezed against the training loss."""
    plot = LossPlot()
    plot.add_points({"step": s, "loss": 0.3 + 0.004 * s, "validated": False} for s in range(1, 60))
    plot.add_points([{"step": 60, "loss": 0.55, "val_loss": 0.02, "validated": True}])
    x_min, x_max, _, _ = plot.data_limits()
    assert x_min < 1 and x_max > 60
    _, _, y_min, y_max = plot.data_limits(right_axis=True)
    assert y_min < np.log10(0.02) < y_max
    assert painted(plot, qtbot) > 0


def test_loss_caption_explains_the_n2n_ramp():
    from selfdenoise._napari._loss_plot import loss_caption

    assert "by design" in loss_caption("neighbor2neighbor")
    assert "gamma" in loss_caption("neighbor2neighbor")
    assert "by design" not in loss_caption("n2v")
    assert "by design" not in loss_caption("neighbor2neighbor", regulariser_weight=0.0)
    plot = LossPlot()
    plot.set_method("neighbor2neighbor")
    assert "ramps up" in plot.toolTip()


class _Progress:
    def __init__(self, **values):
        defaults = dict(
            step=40, run_step=40, total_steps=100, epoch=2, loss=0.31, val_loss=None,
            elapsed_seconds=65.0, eta_seconds=12.0, done=False, validated=False,
        )  # fmt: skip
        self.__dict__.update({**defaults, **values})


def test_status_line_shows_the_users_budget_and_no_nan():
    from selfdenoise._napari._train_widget import budget_fraction, status_line

    line = status_line(_Progress(), (5, None), steps_per_epoch=20)
    assert line.startswith("epoch 2/5 · step 40/100 · loss 0.31")
    # a time limit: the minutes the user set, not an estimated epoch total
    timed = status_line(_Progress(total_steps=333), (10, 5.0), steps_per_epoch=20)
    assert timed.startswith("1:05 of 5 min · step 40") and "epoch" not in timed
    assert budget_fraction(_Progress(), (10, 5.0)) == pytest.approx(65 / 300)
    # the last record after Stop has no finite loss: no "loss nan"
    stopped = status_line(_Progress(loss=float("nan"), done=True), (5, None), 20)
    assert "nan" not in stopped and "ETA" not in stopped
    # a continued run: the epoch and bar follow this run's steps, not the global count
    continued = _Progress(step=540, run_step=40)
    assert status_line(continued, (5, None), 20).startswith("epoch 2/5 · step 40/100")
    assert budget_fraction(continued, (5, None)) == pytest.approx(0.4)


def test_progress_rows_use_the_global_step():
    from selfdenoise._napari._jobs import progress_row

    row = progress_row(_Progress(step=540, run_step=40, loss=float("inf")))
    assert row == {"step": 540, "loss": None, "val_loss": None, "validated": False}


def test_long_names_are_elided_not_cut(qtbot):
    from qtpy.QtWidgets import QComboBox

    from selfdenoise._napari._base import shrinkable
    from selfdenoise._napari._compare_table import column_title

    title = column_title("noisy camera denoised (Neighbor2Neighbor)")
    assert title.splitlines() == ["noisy camera", "denoised", "(Neighbor2Neighbor)"]
    long = column_title("a very long layer name that goes on and on (N2V)")
    assert len(long.splitlines()) == 3 and "…" in long and long.endswith("(N2V)")
    combo = QComboBox()
    qtbot.addWidget(combo)
    shrinkable(combo)
    combo.addItem("noisy camera denoised (Neighbor2Neighbor) with a long tail")
    combo.resize(120, 30)
    assert not combo.grab().isNull()  # painted through the eliding filter without error
