"""Issue 15: the Denoise widget on data bigger than memory (a zarr store on disk, shown
lazily), cancel leaving a readable partial store, progress in the activity dock, and the
folder mode. Widget tests run against napari's ViewerModel (no canvas needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from _synthetic import synthetic_2d

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(scope="module")
def tiny_denoiser():
    """A small 2D model trained for 2 steps (prediction needs trained weights)."""
    from selfdenoise._napari._torch_import import ensure_engine

    ensure_engine()
    from selfdenoise.api import Denoiser

    noisy, _ = synthetic_2d((64, 64))
    model = Denoiser(
        "n2v2",
        "YX",
        steps=2,
        steps_per_epoch=2,
        patch_shape=(32, 32),
        batch_size=2,
        depth=2,
        base_channels=8,
    )
    model.continue_training(device="cpu")
    model.fit(noisy)
    return model


@pytest.fixture
def viewer():
    from napari.components import ViewerModel

    return ViewerModel()


@pytest.fixture
def widget(viewer, qtbot, clean_session, tiny_denoiser):
    from selfdenoise._napari._predict_widget import PredictWidget

    clean_session.add(tiny_denoiser, "tiny")
    widget = PredictWidget(viewer)
    qtbot.addWidget(widget)
    widget.model.value = "tiny"
    return widget


def _zarr_stack(path: Path, planes: int = 3, size: int = 96) -> zarr.Array:
    stack = np.stack([synthetic_2d((size, size), seed=s)[0] for s in range(planes)])
    array = zarr.open_array(str(path), mode="w", shape=stack.shape, chunks=(1, 64, 64), dtype="f4")
    array[:] = stack
    return zarr.open_array(str(path), mode="r")


def _record_activity(monkeypatch) -> list[tuple]:
    from selfdenoise._napari import _disk_section

    calls: list[tuple] = []
    original = _disk_section.ActivityProgress.update

    def update(self, done, total, eta):
        original(self, done, total, eta)
        calls.append((done, total, self.bar.desc if self.bar is not None else ""))

    monkeypatch.setattr(_disk_section.ActivityProgress, "update", update)
    return calls


def test_a_zarr_layer_is_denoised_into_a_store_and_shown_lazily(
    viewer, widget, qtbot, tmp_path, tiny_denoiser, monkeypatch
):
    calls = _record_activity(monkeypatch)
    source = _zarr_stack(tmp_path / "raw.zarr")
    layer = viewer.add_image(source, name="raw", scale=(2.0, 0.5, 0.5), translate=(1, 2, 3))
    widget.image.value = layer
    assert widget.to_disk.value  # zarr-backed: written to disk by default
    widget.axes.value = "ZYX"
    widget.tile_shape.value = "32"
    widget.run()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=60_000)
    (result,) = widget.last_layers
    import dask.array as da

    assert isinstance(result.data, da.Array) and not isinstance(result.data, np.ndarray)
    np.testing.assert_allclose(result.scale, layer.scale)
    np.testing.assert_allclose(result.translate, layer.translate)
    store = widget.last_store.path
    assert store.exists() and str(store) in widget.status.text()
    assert zarr.open_array(str(store), mode="r").attrs["selfdenoise_complete"] is True
    expected = tiny_denoiser.predict(np.asarray(source), "ZYX", tile_shape=(32, 32))
    np.testing.assert_allclose(np.asarray(result.data), expected, atol=1e-5)
    assert calls and calls[-1][0] == calls[-1][1] >= 9  # 3 planes of 3x3 tiles
    assert "ETA" in calls[-1][2]
    assert widget.activity is None  # the activity bar is closed at the end
    assert [layer.name for layer in viewer.layers] == ["raw", result.name]


def test_cancel_leaves_a_readable_partial_store_and_says_where(
    viewer, widget, qtbot, tmp_path, notifications
):
    from selfdenoise.io import read_image

    layer = viewer.add_image(_zarr_stack(tmp_path / "raw.zarr", planes=6), name="raw")
    widget.image.value = layer
    widget.axes.value = "ZYX"
    widget.tile_shape.value = "32"
    widget.store_path.value = str(tmp_path / "den.zarr")
    relay = widget._relay

    def cancel_at_first_report(done, total, eta=None):
        relay(done, total, eta)
        widget._cancel.set()

    widget._relay = cancel_at_first_report
    widget.run()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=60_000)
    assert widget.last_layers == [] and [layer.name for layer in viewer.layers] == ["raw"]
    assert widget.last_store is not None and not widget.last_store.complete
    partial = read_image(tmp_path / "den.zarr")
    assert partial.data.shape == (6, 96, 96) and partial.axes == "ZYX"
    assert zarr.open_array(str(tmp_path / "den.zarr")).attrs["selfdenoise_complete"] is False
    messages = [m for m, _ in notifications]
    assert any("partial store stays readable at" in m and "den.zarr" in m for m in messages)
    assert all("\n" not in m for m in messages)
    assert widget.status.text() == "Cancelled."


def test_folder_mode_skips_a_corrupt_file(widget, qtbot, tmp_path, notifications):
    from selfdenoise.io import read_image, write_image

    raw = tmp_path / "raw"
    raw.mkdir()
    noisy, _ = synthetic_2d((48, 48))
    write_image(raw / "a.tif", noisy, axes="YX", scale=(0.5, 0.25), unit="um")
    np.save(raw / "b.npy", noisy)
    (raw / "c.tif").write_bytes(b"not a tiff")
    widget.folder.value = str(raw)
    widget.folder_out.value = str(tmp_path / "den")
    widget.run_folder()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=60_000)
    report = widget.last_report
    assert [p.name for p in report.written] == ["a.tif", "b.npy"]
    assert [p.name for p, _ in report.failed] == ["c.tif"]
    out = read_image(tmp_path / "den" / "a.tif")
    assert (out.axes, out.scale, out.unit) == ("YX", (0.5, 0.25), "um")
    errors = [m for m, severity in notifications if severity.lower() == "error"]
    assert len(errors) == 1 and "c.tif" in errors[0] and "denoised 2 of 3 files" in errors[0]
    widget.folder_out.value = ""  # next to the inputs, with _denoised
    widget.folder.value = str(raw / "*.npy")
    widget.run_folder()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=60_000)
    assert [p.name for p in widget.last_report.written] == ["b_denoised.npy"]


def test_store_job_builds_an_ome_zarr_pyramid(tmp_path, tiny_denoiser):
    """The job without a GUI: an .ome.zarr target gets a multiscale pyramid from level 0."""
    pytest.importorskip("ome_zarr")
    from selfdenoise import ome
    from selfdenoise._napari._disk_jobs import open_store, predict_to_store

    data = _zarr_stack(tmp_path / "raw.zarr", planes=2, size=128)
    target = tmp_path / "den.ome.zarr"
    outcome = predict_to_store(
        tiny_denoiser, data, "ZYX", {}, target, label=((2.0, 0.5, 0.5), "um")
    )
    assert outcome.ok, outcome.error
    levels, multiscale = open_store(outcome.value)
    assert multiscale and len(levels) == 3 and levels[0].shape == (2, 128, 128)
    image = ome.open_ome_zarr(target)
    assert image.axes == "ZYX" and image.scale == pytest.approx((2.0, 0.5, 0.5))
    assert not (tmp_path / "den.level0.zarr").exists()


def _traced_peak(job) -> int:
    """Peak bytes traced by tracemalloc (numpy buffers included) while ``job()`` runs."""
    import tracemalloc

    tracemalloc.start()
    try:
        job()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_store_job_memory_does_not_grow_with_the_stack(tmp_path, tiny_denoiser):
    """Issue 15's memory target at a small scale: the store job's traced peak on a dask stack
    of 32 planes is not much above that on 4 planes (it once read the whole stack, twice, to
    learn its dtype: 4.8 MB against 0.6 MB, where it is now 1.0 MB)."""
    import dask.array as da

    from selfdenoise._napari._disk_jobs import predict_to_store

    peaks = {}
    for planes in (2, 4, 32):  # 2: a first run pays for imports and caches
        stack = da.from_zarr(_zarr_stack(tmp_path / f"raw{planes}.zarr", planes, 128))
        target = tmp_path / f"den{planes}.zarr"

        def job(stack=stack, target=target):
            outcome = predict_to_store(tiny_denoiser, stack, "ZYX", {}, target)
            assert outcome.ok, outcome.error

        peaks[planes] = _traced_peak(job)
    deeper = 32 * 128 * 128 * 4  # bytes of the 32-plane stack (2 MiB)
    assert peaks[32] < deeper, peaks
    assert peaks[32] - peaks[4] < deeper / 2, peaks


def test_an_activity_bar_closed_during_its_update_is_left_closed(monkeypatch):
    """The job's end can close the bar while an update is in napari's progress widget (it
    runs queued Qt events): the update stops there, with no AttributeError in the event loop."""
    import napari.utils

    from selfdenoise._napari._disk_section import ActivityProgress

    activity = ActivityProgress("Denoising")
    made: list = []

    class ClosingBar:
        def __init__(self, total, desc):
            self.total, self.n, self.closed = total, 0, False
            made.append(self)

        def set_description(self, text):
            activity.close()  # the finished signal, handled inside this call

        def update(self, steps):
            self.n += steps

        def close(self):
            self.closed = True

    monkeypatch.setattr(napari.utils, "progress", ClosingBar)
    activity.update(1.5, 4, None)
    assert activity.bar is None and made[0].closed and made[0].n == 0
