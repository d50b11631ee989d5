"""End-to-end widget tests in a real napari viewer (needs an X screen: pytest-xvfb or xvfb-run)."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytestmark = [pytest.mark.viewer, pytest.mark.usefixtures("clean_session", "torch_single_thread")]

PLUGIN = "napari-selfdenoise"
TRAIN_TIMEOUT_MS = 60_000


def dock(viewer, name):
    """Dock one of the plugin's widgets the way a user (or script) does."""
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
    return widget


def open_2d(viewer):
    layers = viewer.open_sample(PLUGIN, "camera_2d")
    return viewer.layers["noisy camera"], viewer.layers["clean camera"], layers


def train(qtbot, widget):
    widget.run()
    assert widget.is_running
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TRAIN_TIMEOUT_MS)
    assert widget.last_error == ""


def test_full_flow_train_denoise_compare(make_napari_viewer, qtbot, make_tiny):
    viewer = make_napari_viewer()
    noisy, clean, _ = open_2d(viewer)
    before = np.array(noisy.data, copy=True)
    trainer = dock(viewer, "Train denoiser")
    make_tiny(trainer)
    trainer.images.value = [noisy]
    assert trainer.axes.value == "YX"

    train(qtbot, trainer)
    assert trainer.denoiser is not None and trainer.denoiser.history
    assert trainer.loss_plot.train_losses and trainer.loss_plot.val_losses
    note = trainer.denoiser.training_sizes_note  # issue 14: the sizes chosen for the device
    assert note and trainer.sizes_label.text() == f"Sizes: {note}"
    assert not trainer.sizes_label.isHidden()
    assert trainer.denoise_button.isEnabled() and trainer.save_button.isEnabled()

    predictor = dock(viewer, "Denoise")
    assert predictor.model.value == trainer.model_name
    predictor.image.value = noisy
    predictor.run()
    qtbot.waitUntil(lambda: not predictor.is_running, timeout=TRAIN_TIMEOUT_MS)
    (denoised,) = predictor.last_layers
    assert denoised.name == "noisy camera denoised (Neighbor2Neighbor)"
    assert denoised.data.shape == noisy.data.shape
    assert np.allclose(denoised.scale, noisy.scale)
    assert denoised.metadata["selfdenoise"]["method"] == "neighbor2neighbor"
    np.testing.assert_array_equal(noisy.data, before)

    comparer = dock(viewer, "Compare")
    comparer.reference.value = clean
    comparer.noisy.value = noisy
    comparer.candidates.value = [denoised]
    comparer.ssim_maps.value = True
    comparer.residuals.value = True
    comparer.run()
    qtbot.waitUntil(lambda: not comparer.is_running, timeout=TRAIN_TIMEOUT_MS)
    assert comparer.last_error == ""
    psnr = comparer.table_value(denoised.name, "psnr")
    assert np.isfinite(psnr)
    assert comparer.table.rowCount() >= 2 and comparer.table.item(0, 0).text()
    assert "psnr" in comparer.to_csv()
    assert {layer.name for layer in comparer.added_layers} == {
        f"SSIM map {denoised.name}",
        f"residual {denoised.name}",
    }
    np.testing.assert_array_equal(noisy.data, before)


def test_denoise_widget_shows_the_engine_s_warning(make_napari_viewer, qtbot):
    """A step the engine skips reaches the user as a notification (napari does not relay a
    worker's warnings itself): here the collaborative step on noise shared by neighbours."""
    from napari.utils.notifications import notification_manager

    from _synthetic import x_correlated_2d
    from selfdenoise import Denoiser
    from selfdenoise._napari._session import SESSION_MODELS

    noisy, _ = x_correlated_2d()
    model = Denoiser(
        "neighbor2neighbor", "YX", neighbour_pairs="adjacent", regulariser_weight=0.0,
        base_channels=16, steps=300, batch_size=8, device="cpu", seed=0,
    )  # fmt: skip
    model.fit(noisy)
    viewer = make_napari_viewer()
    layer = viewer.add_image(noisy, name="shared noise")
    name = SESSION_MODELS.add(model, "adjacent pairs")
    predictor = dock(viewer, "Denoise")
    predictor.model.value = name
    predictor.image.value = layer
    seen = len(notification_manager.records)
    predictor.run()
    qtbot.waitUntil(lambda: not predictor.is_running, timeout=TRAIN_TIMEOUT_MS)
    assert predictor.last_error == "" and len(predictor.last_layers) == 1
    shown = [str(record.message) for record in notification_manager.records[seen:]]
    assert any(text.startswith("noise shared by neighbouring pixels: train with") for text in shown)


def test_stop_keeps_a_usable_model_and_viewer_stays_responsive(
    make_napari_viewer, qtbot, make_tiny
):
    from qtpy.QtCore import QTimer

    viewer = make_napari_viewer()
    noisy, _, _ = open_2d(viewer)
    trainer = dock(viewer, "Train denoiser")
    make_tiny(trainer, epochs=10_000)
    trainer.images.value = [noisy]
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(trainer.is_running))
    timer.start(20)
    trainer.run()
    # the event loop keeps running while the worker trains: the timer fires, progress arrives
    qtbot.waitUntil(lambda: len(trainer.loss_plot.train_steps) >= 3, timeout=TRAIN_TIMEOUT_MS)
    qtbot.waitUntil(lambda: sum(ticks) >= 10, timeout=TRAIN_TIMEOUT_MS)
    assert trainer.start_button.text() == "Stop"
    pressed = time.monotonic()
    trainer.start_button.click()  # Stop
    qtbot.waitUntil(lambda: not trainer.is_running, timeout=15_000)
    assert time.monotonic() - pressed < 5.0  # ends within a step (plus a last validation)
    timer.stop()
    assert trainer.denoiser is not None and trainer.denoiser.history
    assert trainer.denoiser.history[-1]["step"] < 10_000 * 3
    trainer.denoise()
    qtbot.waitUntil(lambda: not trainer.is_running, timeout=TRAIN_TIMEOUT_MS)
    assert viewer.layers[-1].name == "noisy camera denoised (Neighbor2Neighbor)"
    assert np.isfinite(viewer.layers[-1].data).all()


def test_save_load_and_continue_training(make_napari_viewer, qtbot, make_tiny, tmp_path):
    viewer = make_napari_viewer()
    noisy, _, _ = open_2d(viewer)
    trainer = dock(viewer, "Train denoiser")
    make_tiny(trainer)
    trainer.method.value = "n2v2"
    trainer.images.value = [noisy]
    train(qtbot, trainer)
    first_steps = trainer.denoiser.history[-1]["step"]
    path = trainer.save_model(tmp_path / "model")
    assert path and path.endswith(".safetensors")

    predictor = dock(viewer, "Denoise")
    predictor.load_model(path)
    qtbot.waitUntil(lambda: not predictor.is_running, timeout=TRAIN_TIMEOUT_MS)
    loaded = predictor.denoiser
    assert loaded is not None and loaded.method == "n2v2"
    assert loaded.history[-1]["step"] == first_steps
    predictor.image.value = noisy
    predictor.run()
    qtbot.waitUntil(lambda: not predictor.is_running, timeout=TRAIN_TIMEOUT_MS)
    assert predictor.last_layers[0].name == "noisy camera denoised (N2V2)"

    trainer.start_from.value = predictor.model.value  # continue the loaded model
    assert not trainer.method.enabled
    train(qtbot, trainer)
    assert trainer.denoiser is loaded
    steps = [row["step"] for row in loaded.history]
    assert steps == sorted(steps) and steps[-1] > first_steps


def test_3d_sample_current_slice_and_profile(make_napari_viewer, qtbot):
    from scipy import ndimage

    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "nuclei_3d")
    noisy, clean = viewer.layers["noisy nuclei 3D"], viewer.layers["clean nuclei 3D"]
    assert noisy.data.shape == (32, 128, 128)
    trainer = dock(viewer, "Train denoiser")
    trainer.images.value = [noisy]
    assert trainer.axes.value == "ZYX"
    smoothed = viewer.add_image(ndimage.gaussian_filter(noisy.data, 1.0), name="smoothed")
    comparer = dock(viewer, "Compare")
    comparer.reference.value = clean
    comparer.noisy.value = noisy
    comparer.candidates.value = [smoothed]
    comparer.scope.value = "current slice"
    viewer.dims.set_current_step(0, 5)
    comparer.run()
    qtbot.waitUntil(lambda: not comparer.is_running, timeout=TRAIN_TIMEOUT_MS)
    assert comparer.last_error == ""
    assert [row["name"] for row in comparer.result.table.rows] == ["noisy nuclei 3D", "smoothed"]
    assert comparer.table_value("smoothed", "psnr") > comparer.table_value(
        "noisy nuclei 3D", "psnr"
    )
    line = comparer.add_line_layer()
    line.add_lines(np.array([[5, 64, 10], [5, 64, 110]]))
    series = comparer.plot_profile()
    assert len(series) == 3 and all(len(s.y) > 90 for s in series)
