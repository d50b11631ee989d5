"""Widget tests against napari's ViewerModel (no canvas): fields, guesses and error messages."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("clean_session", "torch_single_thread")


@pytest.fixture
def viewer():
    from napari.components import ViewerModel

    return ViewerModel()


@pytest.fixture
def train_widget(viewer, qtbot):
    from selfdenoise._napari._train_widget import TrainWidget

    widget = TrainWidget(viewer)
    qtbot.addWidget(widget)
    return widget


@pytest.fixture
def predict_widget(viewer, qtbot):
    from selfdenoise._napari._predict_widget import PredictWidget

    widget = PredictWidget(viewer)
    qtbot.addWidget(widget)
    return widget


@pytest.fixture
def compare_widget(viewer, qtbot):
    from selfdenoise._napari._compare_widget import CompareWidget

    widget = CompareWidget(viewer)
    qtbot.addWidget(widget)
    return widget


def errors(notifications):
    return [message for message, severity in notifications if severity.lower() == "error"]


def assert_one_line_error(notifications, fragment):
    messages = errors(notifications)
    assert messages, "expected an error notification"
    assert all("\n" not in m and "Traceback" not in m for m in messages)
    assert any(fragment.lower() in m.lower() for m in messages), messages


def test_importing_widgets_does_not_import_torch():
    code = (
        "import sys; import selfdenoise._napari._train_widget, selfdenoise._napari._predict_widget, "
        "selfdenoise._napari._compare_widget, selfdenoise._napari._sample_data; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_layer_pickers_follow_the_viewer(viewer, train_widget, compare_widget):
    viewer.add_image(np.zeros((16, 16), np.float32), name="a")
    viewer.add_image(np.zeros((4, 16, 16), np.float32), name="b")
    assert [c for c in train_widget.images.choices] == [viewer.layers["a"], viewer.layers["b"]]
    assert compare_widget.reference.choices[0] is None
    viewer.layers["a"].name = "renamed"
    names = [train_widget.images.native.item(i).text() for i in range(2)]
    assert "renamed" in names
    viewer.layers.remove("b")
    assert len(train_widget.images.choices) == 1


@pytest.mark.parametrize(
    ("shape", "metadata", "expected"),
    [
        ((32, 32), {}, "YX"),
        ((8, 32, 32), {}, "ZYX"),
        ((3, 8, 32, 32), {}, "CZYX"),
        ((10, 8, 32, 32), {}, "TZYX"),
        ((5, 32, 32), {"axes": "TYX"}, "TYX"),
    ],
)
def test_axes_are_guessed_from_the_layer(viewer, train_widget, shape, metadata, expected):
    layer = viewer.add_image(np.zeros(shape, np.float32), metadata=metadata)
    train_widget.images.value = [layer]
    assert train_widget.axes.value == expected


def test_method_choice_updates_explanation_and_fields(train_widget):
    from selfdenoise.config import make_config
    from selfdenoise.registry import get_method

    for method in ("neighbor2neighbor", "noise2same", "n2v", "n2v2", "noise2self"):
        train_widget.method.value = method
        assert train_widget.method_help.text() == get_method(method).summary
    train_widget.method.value = "n2v2"
    assert train_widget.masked_percent.value == pytest.approx(2.0)
    assert train_widget.lambda_inv.native.isHidden()
    assert train_widget.regulariser_weight.native.isHidden()
    train_widget.method.value = "noise2same"
    assert not train_widget.lambda_inv.native.isHidden()
    assert train_widget.regulariser_weight.native.isHidden()
    default = make_config("noise2same", "YX").masking.fraction
    assert train_widget.masked_percent.value == pytest.approx(100 * default)


def test_regulariser_weight_field_reaches_the_settings(train_widget):
    from selfdenoise.config import make_config

    train_widget.method.value = "neighbor2neighbor"
    assert not train_widget.regulariser_weight.native.isHidden()
    assert make_config("neighbor2neighbor").regulariser_weight == "auto"
    # the field's lowest value, below 0, reads 'auto' (read from the data when training starts)
    assert train_widget.regulariser_weight.native.text() == "auto"
    assert train_widget.collect_settings()["regulariser_weight"] == "auto"
    assert "by design" in train_widget.loss_caption.text()  # 'auto' may ramp
    train_widget.regulariser_weight.value = 0.0  # no regulariser: the loss does not climb
    assert train_widget.regulariser_weight.native.text() == "0.00"
    assert "by design" not in train_widget.loss_caption.text()
    train_widget.regulariser_weight.value = 0.5
    assert "by design" in train_widget.loss_caption.text()
    assert train_widget.collect_settings()["regulariser_weight"] == 0.5
    settings = train_widget.collect_settings()
    assert make_config("neighbor2neighbor", "YX", **settings).regulariser_weight == 0.5
    train_widget.method.value = "noise2same"
    assert "regulariser_weight" not in train_widget.collect_settings()


def test_pixel_pairs_field_reaches_the_settings(train_widget):
    from selfdenoise.config import make_config

    train_widget.method.value = "neighbor2neighbor"
    assert not train_widget.neighbour_pairs.native.isHidden()
    assert train_widget.collect_settings()["neighbour_pairs"] == "auto"
    train_widget.neighbour_pairs.value = "diagonal"
    settings = train_widget.collect_settings()
    assert make_config("neighbor2neighbor", "YX", **settings).neighbour_pairs == "diagonal"
    train_widget.method.value = "n2v2"
    assert train_widget.neighbour_pairs.native.isHidden()
    assert "neighbour_pairs" not in train_widget.collect_settings()


def test_settings_are_collected_flat(train_widget):
    from selfdenoise.config import make_config

    train_widget.method.value = "noise2same"
    train_widget.axes.value = "ZYX"
    train_widget.patch_size.value = "16,48,48"
    train_widget.max_minutes.value = 2.0
    settings = train_widget.collect_settings()
    assert settings["patch_shape"] == (16, 48, 48)
    assert settings["max_minutes"] == 2.0
    assert settings["fraction"] == pytest.approx(make_config("noise2same").masking.fraction)
    assert settings["batch_size"] is None  # "auto": chosen for the device
    assert train_widget.batch_size.value == 0 == train_widget.batch_size.min
    assert train_widget.batch_size.native.specialValueText() == "auto"
    config = make_config("noise2same", "ZYX", **settings)
    assert config.training.patch_shape == (16, 48, 48)
    assert config.training.batch_size is None
    train_widget.batch_size.value = 6
    assert train_widget.collect_settings()["batch_size"] == 6


def test_struct_axis_for_stripe_noise(train_widget):
    """structN2V is offered for masking methods only and reaches the config."""
    from selfdenoise.config import make_config

    train_widget.method.value = "neighbor2neighbor"
    assert train_widget.struct_axis.native.isHidden()  # N2N masks no pixels
    train_widget.method.value = "n2v2"
    assert not train_widget.struct_axis.native.isHidden()
    train_widget.axes.value = "YX"
    assert train_widget.collect_settings()["struct_axis"] is None  # off by default
    train_widget.struct_axis.value = -1
    settings = train_widget.collect_settings()
    assert settings["struct_axis"] == -1
    assert make_config("n2v2", "YX", **settings).masking.struct_axis == -1


def test_device_is_shown_before_training(train_widget, qtbot):
    qtbot.waitUntil(lambda: "detecting" not in train_widget.device_label.text(), timeout=60_000)
    assert train_widget.device_label.text().startswith("Device: ")
    assert "CPU" in train_widget.device_label.text() or "GPU" in train_widget.device_label.text()
    # and what training computes in there (the default amp setting on that device)
    from selfdenoise.api import describe_default_device

    label = train_widget.device_label.text()
    assert label.endswith((", float32", ", bf16", ", fp16", ", bf16 in 2D, float32 in 3D"))
    assert label == f"Device: {describe_default_device(train_widget.device.value, precision=True)}"


def test_training_sizes_note_is_shown_once_training_starts(train_widget):
    """The engine sets ``Denoiser.training_sizes_note`` when a fit starts; the widget shows it
    with the progress (hidden before: no sizes are chosen yet)."""
    from selfdenoise._napari._jobs import TrainUpdate

    class Model:
        training_sizes_note = ""
        regulariser_weight = None

    model = Model()
    assert train_widget.sizes_label.isHidden()
    train_widget._on_update(TrainUpdate(denoiser=model))  # the model is built, fit not started
    assert train_widget.sizes_label.isHidden()
    model.training_sizes_note = "batch 4 x 64x64 patches: the CPU recipe"
    train_widget._on_update(TrainUpdate(rows=[]))
    assert not train_widget.sizes_label.isHidden()
    assert train_widget.sizes_label.text() == "Sizes: batch 4 x 64x64 patches: the CPU recipe"


def test_loss_caption_follows_the_regulariser_weight_read_from_the_data(train_widget):
    """With γ 'auto' the caption warns that the loss may climb; once the fit has read the
    weight from the data (0 on photon-limited captures: no ramp), the caption says so."""
    from selfdenoise._napari._jobs import TrainUpdate

    class Model:
        training_sizes_note = "batch 4 x 64x64 patches: the CPU recipe"
        regulariser_weight = None

    train_widget.method.value = "neighbor2neighbor"
    assert "by design" in train_widget.loss_caption.text()
    model = Model()
    train_widget._on_update(TrainUpdate(denoiser=model))
    assert "by design" in train_widget.loss_caption.text()  # not read yet
    model.regulariser_weight = 0.0
    train_widget._on_update(TrainUpdate(rows=[]))
    assert "by design" not in train_widget.loss_caption.text()
    assert train_widget.loss_caption.text().startswith("γ regulariser 0, read from the noise.")  # noqa: RUF001
    assert "by design" not in train_widget.loss_plot.toolTip()  # the tooltip follows too


def test_train_without_layers_is_a_notification(train_widget, notifications):
    assert train_widget.run() is None
    assert_one_line_error(notifications, "choose at least one image layer")


def test_wrong_axes_is_a_notification(viewer, train_widget, notifications):
    layer = viewer.add_image(np.zeros((8, 32, 32), np.float32))
    train_widget.images.value = [layer]
    train_widget.axes.value = "YX"
    assert train_widget.run() is None
    assert_one_line_error(notifications, "do not fit layer")
    train_widget.axes.value = "QYX"
    train_widget.run()
    assert_one_line_error(notifications, "unknown letter")


def test_bad_patch_size_is_a_notification(viewer, train_widget, notifications):
    train_widget.images.value = [viewer.add_image(np.zeros((32, 32), np.float32))]
    train_widget.patch_size.value = "big"
    assert train_widget.run() is None
    assert_one_line_error(notifications, "patch size")


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (np.full((32, 32), np.nan, np.float32), "NaN"),
        (np.zeros((4, 4), np.float32), "too small"),
    ],
)
def test_bad_data_errors_reach_the_user(
    viewer, train_widget, qtbot, notifications, make_tiny, data, fragment
):
    make_tiny(train_widget)
    train_widget.images.value = [viewer.add_image(data)]
    train_widget.run()
    qtbot.waitUntil(lambda: not train_widget.is_running, timeout=60_000)
    assert_one_line_error(notifications, fragment)
    assert train_widget.denoiser is None
    assert train_widget.start_button.text() == "Start training"


def test_out_of_memory_becomes_a_hint(
    viewer, train_widget, qtbot, notifications, monkeypatch, make_tiny
):
    from selfdenoise.api import Denoiser

    class OutOfMemoryError(RuntimeError):
        pass

    def fail(*args, **kwargs):
        raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        yield  # pragma: no cover

    monkeypatch.setattr(Denoiser, "fit_iter", fail)
    make_tiny(train_widget)
    train_widget.images.value = [viewer.add_image(np.zeros((32, 32), np.float32))]
    train_widget.run()
    qtbot.waitUntil(lambda: not train_widget.is_running, timeout=60_000)
    assert_one_line_error(notifications, "out of GPU memory")


def test_predict_without_model_is_a_notification(viewer, predict_widget, notifications):
    viewer.add_image(np.zeros((32, 32), np.float32))
    assert predict_widget.run() is None
    assert_one_line_error(notifications, "choose a model")


def test_loading_a_missing_model_file_is_a_notification(
    predict_widget, qtbot, notifications, tmp_path
):
    predict_widget.load_model(tmp_path / "missing.safetensors")
    qtbot.waitUntil(lambda: not predict_widget.is_running, timeout=60_000)
    assert errors(notifications)
    assert predict_widget.model.value is None


def test_compare_checks_inputs(viewer, compare_widget, notifications):
    a = viewer.add_image(np.zeros((32, 32), np.float32), name="a")
    b = viewer.add_image(np.zeros((16, 32), np.float32), name="b")
    assert compare_widget.run() is None
    assert_one_line_error(notifications, "candidate")
    compare_widget.candidates.value = [b]
    compare_widget.run()
    assert_one_line_error(notifications, "reference")
    compare_widget.noisy.value = a
    compare_widget.run()
    assert_one_line_error(notifications, "same shape")
    compare_widget.plot_profile()
    assert_one_line_error(notifications, "shapes layer")


def test_line_profile_samples_each_layer(viewer, compare_widget):
    ramp = np.tile(np.arange(32, dtype=np.float32), (32, 1))
    noisy = viewer.add_image(ramp + 1, name="noisy")
    candidate = viewer.add_image(ramp, name="candidate")
    shapes = viewer.add_shapes([[[16, 0], [16, 31]]], shape_type="line", name="line")
    compare_widget.noisy.value = noisy
    compare_widget.candidates.value = [candidate]
    compare_widget.profile_shapes.value = shapes
    series = compare_widget.plot_profile()
    assert [s.label for s in series] == ["noisy", "candidate"]
    np.testing.assert_allclose(series[1].y, np.arange(32), atol=1e-4)
    np.testing.assert_allclose(series[0].y - series[1].y, 1.0, atol=1e-4)


def test_new_line_layer_is_ready_to_draw(viewer, compare_widget):
    viewer.add_image(np.zeros((8, 32, 32), np.float32))
    layer = compare_widget.add_line_layer()
    assert layer.mode == "add_line" and layer.ndim == 3
    assert compare_widget.profile_shapes.value is layer


class FakeModel:
    """Stands in for a trained Denoiser: predicts slowly and honours cancel."""

    def __init__(self, ndim=2, method="n2v"):
        from selfdenoise.config import make_config

        self.method = method
        self.config = make_config(method, "ZYX" if ndim == 3 else "YX")
        self.history = [{"step": 10, "loss": 1.0, "val_loss": 1.0}]
        self.calls = []

    def predict(self, image, axes=None, progress=None, cancel=None, **options):
        import time

        from selfdenoise.tiling import PredictionCancelled

        self.calls.append((axes, options))
        for tile in range(1, 51):
            if cancel is not None and cancel.is_set():
                raise PredictionCancelled("cancelled")
            time.sleep(0.02)
            if progress is not None:
                progress(tile, 50, 0.02 * (50 - tile))
        return np.asarray(image, dtype=np.float32) * 0.5


def test_predict_widget_guesses_time_series_and_reads_options(
    viewer, predict_widget, qtbot, clean_session
):
    clean_session.add(FakeModel(ndim=2, method="neighbor2neighbor"), "n2n")
    assert predict_widget.restore_detail.value is False  # the model's setting: off for N2N
    from selfdenoise.config import make_config

    n2n_filters = make_config("neighbor2neighbor").tiling.collaborative_filter
    assert predict_widget.collaborative_filter.value is n2n_filters  # the model's setting
    model = FakeModel(ndim=2)
    clean_session.add(model, "fake")
    predict_widget.model.value = "fake"
    assert predict_widget.restore_detail.value is True  # on for a masked method's model
    assert "YX" in predict_widget.model_info.text()
    layer = viewer.add_image(np.ones((3, 32, 32), np.float32), name="movie", scale=(1, 0.5, 0.5))
    predict_widget.image.value = layer
    assert predict_widget.axes.value == "TYX"
    predict_widget.tile_shape.value = "16"
    predict_widget.overlap.value = "4"
    predict_widget.tta.value = True
    predict_widget.restore_detail.value = False
    predict_widget.collaborative_filter.value = True
    predict_widget.run()
    qtbot.waitUntil(lambda: not predict_widget.is_running, timeout=20_000)
    options = {
        "tile_shape": (16, 16),
        "overlap": (4, 4),
        "tta": True,
        "restore_detail": False,
        "collaborative_filter": True,
    }
    assert model.calls == [("TYX", options)]
    (result,) = predict_widget.last_layers
    assert result.name == "movie denoised (Noise2Void (N2V))"
    np.testing.assert_allclose(result.scale, layer.scale)
    np.testing.assert_array_equal(layer.data, 1.0)
    assert predict_widget.progress_bar.value() == 100


def test_predict_can_be_cancelled(viewer, predict_widget, qtbot, clean_session, notifications):
    clean_session.add(FakeModel(), "fake")
    predict_widget.image.value = viewer.add_image(np.ones((32, 32), np.float32), name="img")
    predict_widget.run()
    qtbot.waitUntil(lambda: predict_widget.progress_bar.value() > 0, timeout=20_000)
    assert predict_widget.run_button.text() == "Cancel"
    predict_widget.run_button.click()
    qtbot.waitUntil(lambda: not predict_widget.is_running, timeout=20_000)
    assert predict_widget.last_layers == []
    assert [layer.name for layer in viewer.layers] == ["img"]
    assert not errors(notifications)
    assert predict_widget.status.text() == "Cancelled."


def test_metrics_table_copy_and_export(viewer, compare_widget, qtbot, tmp_path):
    from qtpy.QtWidgets import QApplication

    rng = np.random.default_rng(0)
    clean = rng.random((48, 48)).astype(np.float32)
    compare_widget.reset_choices()
    reference = viewer.add_image(clean, name="clean")
    noisy = viewer.add_image(
        clean + rng.normal(0, 0.2, clean.shape).astype(np.float32), name="noisy"
    )
    better = viewer.add_image(
        clean + rng.normal(0, 0.05, clean.shape).astype(np.float32), name="better"
    )
    compare_widget.reference.value = reference
    compare_widget.noisy.value = noisy
    compare_widget.candidates.value = [better]
    compare_widget.run()
    qtbot.waitUntil(lambda: not compare_widget.is_running, timeout=30_000)
    assert compare_widget.table_value("better", "psnr") > compare_widget.table_value(
        "noisy", "psnr"
    )
    assert compare_widget.table.columnCount() == 2
    compare_widget.copy_csv()
    assert QApplication.clipboard().text().startswith("name,")
    path = compare_widget.export_csv(tmp_path / "metrics.csv")
    lines = path.read_text().splitlines()
    assert lines[0].startswith("name,psnr") and len(lines) == 3


def test_method_change_loads_that_methods_defaults(train_widget):
    from selfdenoise.config import DEFAULT_METHOD, make_config

    assert train_widget.method.value == DEFAULT_METHOD
    train_widget.method.value = "n2v2"
    train_widget.method.value = "neighbor2neighbor"
    defaults = make_config("neighbor2neighbor")
    settings = train_widget.collect_settings()
    assert settings["learning_rate"] == pytest.approx(defaults.training.learning_rate)
    assert settings["schedule"] == defaults.training.schedule == "onecycle"
    assert settings["base_channels"] == defaults.network.base_channels == 24
    assert train_widget.masked_percent.native.isHidden()
    train_widget.method.value = "n2v2"
    assert not train_widget.masked_percent.native.isHidden()
    assert train_widget.collect_settings()["learning_rate"] == pytest.approx(1e-3)


def test_continuing_a_model_shows_its_own_settings(train_widget, clean_session):
    """'Start from' a session model fills the method's fields with that model's settings
    (continuing keeps them unless changed); 'new model' brings the defaults back."""
    from selfdenoise import Denoiser
    from selfdenoise.config import make_config

    model = Denoiser("neighbor2neighbor", "YX", regulariser_weight=0.5, learning_rate=1e-3, depth=3)
    name = clean_session.add(model, "tuned model")
    train_widget.reset_choices()
    train_widget.start_from.value = name
    assert train_widget.regulariser_weight.value == 0.5
    assert float(train_widget.learning_rate.value) == 1e-3
    assert train_widget.unet_depth.value == 3 and not train_widget.unet_depth.enabled
    assert train_widget.collect_settings()["regulariser_weight"] == 0.5
    defaults = make_config("neighbor2neighbor")
    train_widget.start_from.value = train_widget.start_from.choices[0]  # new model
    assert defaults.regulariser_weight == "auto"
    assert train_widget.collect_settings()["regulariser_weight"] == "auto"
    assert float(train_widget.learning_rate.value) == defaults.training.learning_rate
    assert train_widget.unet_depth.value == defaults.network.depth
