"""Trust matrix, widget rows (issue 11): the widgets' jobs never show a traceback, never
change a user's layer or model file, and keep working where the engine's rules say they must.

Each case is one row (ids ``rowNN-...``) or one bad input; it asserts a one-line napari
notification (no traceback) where the input is bad, and that the inputs are unchanged.
Runs against napari's ViewerModel (no canvas; QT_QPA_PLATFORM=offscreen works).
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("clean_session", "torch_single_thread")

TIMEOUT_MS = 60_000


def digest(data) -> str:
    return hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()


def file_digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def error_messages(notifications) -> list[str]:
    return [m for m, severity in notifications if severity.lower() == "error"]


def assert_one_line_error(notifications, fragment: str) -> None:
    messages = error_messages(notifications)
    assert messages, "expected an error notification"
    assert all("\n" not in m and "Traceback" not in m for m in messages), messages
    assert any(fragment.lower() in m.lower() for m in messages), messages


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A tiny trained 2D model saved to a file (a few steps on the CPU)."""
    from selfdenoise import Denoiser

    rng = np.random.default_rng(0)
    image = rng.random((64, 64)).astype(np.float32)
    model = Denoiser(
        "n2v", "YX", steps=2, batch_size=2, patch_shape=(32, 32), base_channels=8, depth=2,
        device="cpu", seed=0,
    )  # fmt: skip
    model.fit(image)
    return model.save(tmp_path_factory.mktemp("models") / "tiny.safetensors")


@pytest.fixture(scope="module")
def cuda_model_file(model_file, tmp_path_factory):
    """The same model with ``device: cuda`` in its settings, as saved on a GPU machine."""
    from selfdenoise.io import load_bundle, save_bundle

    state, metadata = load_bundle(model_file)
    metadata["config"]["training"]["device"] = "cuda"
    return save_bundle(
        tmp_path_factory.mktemp("gpu") / "trained-on-gpu.safetensors", state, metadata
    )


@pytest.fixture
def viewer():
    from napari.components import ViewerModel

    return ViewerModel()


@pytest.fixture
def predict_widget(viewer, qtbot):
    from selfdenoise._napari._predict_widget import PredictWidget

    widget = PredictWidget(viewer)
    qtbot.addWidget(widget)
    return widget


@pytest.fixture
def train_widget(viewer, qtbot, make_tiny):
    from selfdenoise._napari._train_widget import TrainWidget

    widget = TrainWidget(viewer)
    qtbot.addWidget(widget)
    make_tiny(widget, method="n2v", patch_size="16", epochs=1, steps_per_epoch=2)
    return widget


def load(widget, qtbot, path):
    widget.load_model(str(path))
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT_MS)


def denoise(widget, qtbot):
    widget.run()
    qtbot.waitUntil(lambda: not widget.is_running, timeout=TIMEOUT_MS)


def image(viewer, name="img", shape=(48, 48), seed=1):
    data = np.random.default_rng(seed).random(shape).astype(np.float32)
    return viewer.add_image(data, name=name)


# ---------------------------------------------------------------------------- bad input
BAD_INPUTS = {
    "bad-tile-size": ("tile_shape", "big", "tile size"),
    "bad-overlap": ("overlap", "1,2,3", "overlap"),
    "wrong-axes": ("axes", "ZYX", "axes"),
    "unknown-axes": ("axes", "QX", "ax"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_denoise_fields_are_one_line_notifications(
    viewer, predict_widget, qtbot, model_file, notifications, case
):
    field, value, fragment = BAD_INPUTS[case]
    load(predict_widget, qtbot, model_file)
    layer = image(viewer)
    before = digest(layer.data)
    predict_widget.image.value = layer
    getattr(predict_widget, field).value = value
    assert predict_widget.run() is None
    assert_one_line_error(notifications, fragment)
    assert [layer.name for layer in viewer.layers] == ["img"] and digest(layer.data) == before


@pytest.mark.parametrize(
    ("case", "content", "fragment"),
    [
        ("missing-model-file", None, "check the path"),
        ("not-a-model-file", b"hello", "model"),
        ("pickle-model-file", b"\x80\x04\x95\x00\x00\x00\x00", "model"),
    ],
    ids=["missing-model-file", "not-a-model-file", "pickle-model-file"],
)
def test_bad_model_files_are_one_line_notifications(
    predict_widget, qtbot, tmp_path, notifications, case, content, fragment
):
    path = tmp_path / f"{case}.safetensors"
    if content is not None:
        path.write_bytes(content)
    load(predict_widget, qtbot, path)
    assert_one_line_error(notifications, fragment)
    assert predict_widget.denoiser is None
    if content is not None:
        assert path.read_bytes() == content


def test_nan_layer_is_a_notification(viewer, predict_widget, qtbot, model_file, notifications):
    load(predict_widget, qtbot, model_file)
    layer = image(viewer)
    layer.data[3, 4] = np.nan
    before = digest(layer.data)
    predict_widget.image.value = layer
    denoise(predict_widget, qtbot)
    assert_one_line_error(notifications, "nan")
    assert predict_widget.last_layers == [] and digest(layer.data) == before


def test_denoise_never_overwrites_a_user_layer(viewer, predict_widget, qtbot, model_file):
    """A user layer that already has the output's name stays as it is; the result is new."""
    load(predict_widget, qtbot, model_file)
    source = image(viewer, "img")
    mine = image(viewer, "img denoised (Noise2Void (N2V))", seed=2)
    before_source, before_mine = digest(source.data), digest(mine.data)
    predict_widget.image.value = source
    denoise(predict_widget, qtbot)
    (result,) = predict_widget.last_layers
    assert result is not mine and result.name != mine.name
    assert len(viewer.layers) == 3
    assert digest(source.data) == before_source and digest(mine.data) == before_mine
    assert file_digest(model_file) == file_digest(model_file)


# ---------------------------------------------------------------------------- issue 11 rows
def test_row01_two_widgets_denoise_with_one_model_at_once(
    viewer, predict_widget, train_widget, qtbot, model_file
):
    """The Train and Denoise widgets may predict with the same model at the same time: both
    results equal a prediction made alone, and the model is unchanged afterwards."""
    load(predict_widget, qtbot, model_file)
    model = predict_widget.denoiser
    layer = image(viewer, shape=(96, 96))
    alone = model.predict(np.asarray(layer.data), axes="YX")
    train_widget.denoiser = model
    predict_widget.image.value = layer
    predict_widget.tile_shape.value = "32"
    train_widget.denoise([layer])
    predict_widget.run()
    qtbot.waitUntil(
        lambda: not predict_widget.is_running and not train_widget.is_running, timeout=TIMEOUT_MS
    )
    results = [viewer.layers[-1].data, viewer.layers[-2].data]
    for result in results:
        # Tiles of another size change the network's output in its last bits, which can swap
        # equally similar patches in the collaborative filter's groups: a few pixels differ
        # by up to about 1e-3 (a corrupted prediction differs everywhere).
        assert np.abs(result - alone).mean() < 1e-4
        np.testing.assert_allclose(result, alone, atol=5e-3)
    np.testing.assert_allclose(model.predict(np.asarray(layer.data), axes="YX"), alone, atol=1e-5)


def test_row03_validation_layer_trains(viewer, train_widget, qtbot, notifications):
    train_widget.images.value = [image(viewer, "train", shape=(64, 64))]
    train_widget.validation.value = image(viewer, "validation", shape=(64, 64), seed=5)
    train_widget.run()
    qtbot.waitUntil(lambda: not train_widget.is_running, timeout=TIMEOUT_MS)
    assert error_messages(notifications) == []
    assert train_widget.denoiser is not None and train_widget.denoiser.is_trained


def test_row08_stop_before_the_first_step_keeps_no_model(
    viewer, train_widget, qtbot, notifications, clean_session
):
    from selfdenoise._napari._jobs import train_job

    train_widget.images.value = [image(viewer, "train", shape=(64, 64))]
    request = train_widget.build_request()
    stop = threading.Event()
    stop.set()
    job = train_job(request, stop)
    with pytest.raises(StopIteration) as ended:
        while True:
            next(job)
    outcome = ended.value.value
    assert outcome.cancelled and outcome.value is None
    assert len(clean_session) == 0 and error_messages(notifications) == []


def test_row11_every_job_imports_the_engine_through_the_lock(
    viewer, predict_widget, qtbot, model_file, monkeypatch, notifications
):
    """Each job goes through the serialised import; if that import fails, the user sees a
    one-line notification, not a traceback dialog."""
    from selfdenoise._napari import _jobs

    load(predict_widget, qtbot, model_file)
    calls = []

    def failing_import():
        calls.append(threading.current_thread().name)
        raise RuntimeError("operator debug_mode_ops::annotate does not exist")

    monkeypatch.setattr(_jobs, "ensure_engine", failing_import)
    predict_widget.image.value = image(viewer)
    denoise(predict_widget, qtbot)
    load(predict_widget, qtbot, model_file)
    outcome = _jobs.describe_device("cpu")
    assert len(calls) == 3 and threading.main_thread().name in calls[-1:]
    assert "debug_mode_ops" in outcome.error and "\n" not in outcome.error
    assert_one_line_error(notifications, "debug_mode_ops")


def test_row14_gpu_trained_model_denoises_on_a_cpu_machine(
    viewer, predict_widget, qtbot, cuda_model_file, notifications
):
    """A model saved with ``device: cuda`` loads with device 'auto' (the best device here)
    and denoises; 'cpu' runs it on the CPU even where a GPU exists."""
    import torch

    if not torch.cuda.is_available():
        from selfdenoise import Denoiser

        # The stored training device is a preference: the engine loads onto 'auto'.
        assert Denoiser.load(cuda_model_file).device.type == "cpu"
    before = file_digest(cuda_model_file)
    load(predict_widget, qtbot, cuda_model_file)
    assert error_messages(notifications) == []
    assert predict_widget.denoiser is not None
    predict_widget.image.value = layer = image(viewer)
    predict_widget.device.value = "cpu"
    denoise(predict_widget, qtbot)
    assert error_messages(notifications) == []
    (result,) = predict_widget.last_layers
    assert result.data.shape == layer.data.shape and np.isfinite(result.data).all()
    assert file_digest(cuda_model_file) == before


def test_row14_device_change_uses_the_public_to(monkeypatch):
    """The Denoise widget's device goes through ``Denoiser.to`` when the engine has it."""
    from selfdenoise._napari._jobs import use_device

    class Movable:
        def __init__(self):
            self.moves = []

        @property
        def device(self):
            import torch

            return torch.device("cpu")

        def to(self, device):
            self.moves.append(device)
            return self

    model = Movable()
    assert use_device(model, "auto") is model and model.moves == []
    assert use_device(model, "cpu") is model and model.moves == []  # already there
    assert use_device(model, "mps") is model and model.moves == ["mps"]
