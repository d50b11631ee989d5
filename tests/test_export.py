"""Models that leave the tool: BMZ packages, ONNX and TorchScript files (issue 16).

Tiny networks trained a few steps: the tests check that every exported form computes what
``Denoiser.predict`` computes, not that the model denoises well.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile

import numpy as np
import pytest

from _synthetic import synthetic_2d, synthetic_3d
from selfdenoise import Denoiser, SelfDenoiseError
from selfdenoise.cli import main
from selfdenoise.config import METHODS
from selfdenoise.export import CITATIONS, export_bmz, export_onnx, export_torchscript

TINY = {"base_channels": 8, "depth": 1, "batch_size": 2, "steps": 3, "device": "cpu", "seed": 0}
TOLERANCE = 1e-4
"""Largest difference allowed, relative to the largest output value (float32 arithmetic
in another order)."""


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One torch thread: on a small shared machine more threads spin against each other."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def assert_close(actual, expected) -> None:
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    error = float(np.abs(actual - expected).max())
    assert error <= TOLERANCE * float(np.abs(expected).max()), f"max difference {error}"


@pytest.fixture(scope="module")
def image_2d():
    noisy, _ = synthetic_2d(shape=(64, 64))
    return 1000.0 * noisy + 200.0  # camera-like counts: the normalisation matters


@pytest.fixture(scope="module")
def model_2d(image_2d):
    model = Denoiser("n2v", "YX", patch_shape=(32, 32), **TINY)
    model.fit(image_2d)
    return model


@pytest.fixture(scope="module")
def model_3d():
    noisy, _ = synthetic_3d(shape=(8, 32, 32))
    model = Denoiser(
        "noise2self", "ZYX", patch_shape=(8, 16, 16), normalisation={"kind": "percentile"}, **TINY
    )
    model.fit(50.0 * noisy)
    return model


@pytest.fixture(scope="module")
def model_channels():
    """Two channels denoised one by one, percentile statistics per channel."""
    noisy, _ = synthetic_2d(shape=(64, 64))
    image = np.stack([100.0 * noisy + 10.0, 3000.0 * noisy[::-1] + 500.0])
    model = Denoiser(
        "n2v2",
        "CYX",
        patch_shape=(32, 32),
        channels_jointly=False,
        normalisation={"kind": "percentile"},
        **TINY,
    )
    model.fit(image)
    return model


@pytest.fixture(scope="module")
def package_2d(model_2d, image_2d, tmp_path_factory):
    pytest.importorskip("bioimageio.spec")
    path = tmp_path_factory.mktemp("bmz") / "model2d.zip"
    return export_bmz(model_2d, path, sample=image_2d, authors=["Test Author"])


@pytest.fixture(scope="module")
def package_3d(model_3d, tmp_path_factory):
    pytest.importorskip("bioimageio.spec")
    return export_bmz(model_3d, tmp_path_factory.mktemp("bmz") / "model3d")  # synthetic sample


@pytest.fixture(scope="module")
def package_channels(model_channels, tmp_path_factory):
    """Per-channel percentile statistics as BMZ processing along the channel axis."""
    pytest.importorskip("bioimageio.spec")
    return export_bmz(model_channels, tmp_path_factory.mktemp("bmz") / "channels.zip")


def package_tensor(path, name) -> np.ndarray:
    with zipfile.ZipFile(path) as archive, archive.open(name) as handle:
        return np.load(handle)


def test_importing_the_export_module_imports_neither_torch_nor_bioimageio():
    code = (
        "import sys\n"
        "import selfdenoise.export, selfdenoise.cli\n"
        "assert 'torch' not in sys.modules and 'bioimageio.spec' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_method_has_a_citation():
    assert set(CITATIONS) == set(METHODS)
    assert all(entry["text"] and entry["doi"].startswith("10.") for entry in CITATIONS.values())


@pytest.mark.parametrize("fixture", ["model_2d", "model_channels"])
def test_onnx_export_matches_predict(fixture, request, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = request.getfixturevalue(fixture)
    path = export_onnx(model, tmp_path / "model")
    assert path.suffix == ".onnx"
    channels = 2 if fixture == "model_channels" else 1
    raw = np.random.default_rng(1).normal(500, 100, (3, channels, 40, 56)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (denoised,) = session.run(None, {"raw": raw})
    if channels == 1:
        expected = model.predict(
            raw[:, 0], "SYX", tta=False, restore_detail=False, collaborative_filter=False
        )[:, None]
    else:
        expected = model.predict(
            raw, "SCYX", tta=False, restore_detail=False, collaborative_filter=False
        )
    assert_close(denoised, expected)


def test_torchscript_export_matches_predict(model_3d, tmp_path):
    import torch

    path = export_torchscript(model_3d, tmp_path / "model.pt")
    graph = torch.jit.load(str(path))
    raw = np.random.default_rng(2).normal(20, 5, (2, 1, 6, 20, 14)).astype(np.float32)
    with torch.no_grad():
        denoised = graph(torch.from_numpy(raw)).numpy()
    assert_close(
        denoised,
        model_3d.predict(
            raw[:, 0], "SZYX", tta=False, restore_detail=False, collaborative_filter=False
        )[:, None],
    )


@pytest.mark.parametrize("package", ["package_2d", "package_3d"])
def test_bmz_package_passes_bioimageio_test_model(package, request):
    core = pytest.importorskip("bioimageio.core")
    summary = core.test_model(request.getfixturevalue(package))
    failed = [d.name for d in summary.details if d.status == "failed"]
    assert summary.status == "passed", failed


def test_bmz_package_contents(package_2d, model_2d):
    from bioimageio.spec import load_model_description

    descr = load_model_description(package_2d)
    assert {"pytorch_state_dict", "torchscript", "onnx"} <= {k for k, v in descr.weights if v}
    assert [str(a.id) for a in descr.inputs[0].axes] == ["batch", "channel", "y", "x"]
    assert descr.outputs[0].axes[-1].halo >= 11  # the receptive radius of a depth-1 U-Net
    pre = {step.id: step.kwargs for step in descr.inputs[0].preprocessing}
    assert pre["fixed_zero_mean_unit_variance"].mean == pytest.approx(model_2d.normaliser.offset[0])
    assert pre["fixed_zero_mean_unit_variance"].std == pytest.approx(model_2d.normaliser.scale[0])
    post = {step.id: step.kwargs for step in descr.outputs[0].postprocessing}
    assert post["scale_linear"].gain == pytest.approx(model_2d.normaliser.scale[0])
    assert "Noise2Void" in descr.cite[0].text
    assert descr.config.model_extra["selfdenoise"]["config"]["method"] == "n2v"
    with zipfile.ZipFile(package_2d) as archive:
        assert {"cover.png", "test_input.npy", "test_output.npy"} <= set(archive.namelist())


@pytest.mark.parametrize("package", ["package_2d", "package_3d", "package_channels"])
def test_bioimageio_prediction_matches_denoiser_predict(package, request):
    core = pytest.importorskip("bioimageio.core")
    from bioimageio.core.digest_spec import get_test_input_sample
    from bioimageio.spec import load_model_description

    path = request.getfixturevalue(package)
    model = Denoiser.load(path)
    test_input = package_tensor(path, "test_input.npy")
    spatial = "YX" if test_input.ndim == 4 else "ZYX"
    if test_input.shape[1] == 1:
        expected = model.predict(
            test_input[:, 0],
            "S" + spatial,
            tta=False,
            restore_detail=False,
            collaborative_filter=False,
        )[:, None]
    else:
        expected = model.predict(
            test_input, "SC" + spatial, tta=False, restore_detail=False, collaborative_filter=False
        )
    np.testing.assert_array_equal(package_tensor(path, "test_output.npy"), expected)
    descr = load_model_description(path)
    with core.create_prediction_pipeline(descr, weight_format="pytorch_state_dict") as pipeline:
        sample = get_test_input_sample(descr)
        whole = pipeline.predict_sample_without_blocking(
            sample, skip_input_padding=True, skip_output_cropping=True
        )
    assert_close(whole.members["denoised"].data.values, expected)
    # The default prediction pads by the halo (mirroring) and crops it: the image's border
    # pixels see mirrored context instead of zero padding, the rest is the same.
    padded = core.predict(model=descr, inputs=test_input).members["denoised"].data.values
    halo = descr.outputs[0].axes[-1].halo
    inner = (slice(None), slice(None)) + (slice(halo, -halo),) * (test_input.ndim - 2)
    assert_close(padded[inner], expected[inner])


def test_own_package_loads_back_with_identical_predictions(package_2d, model_2d, image_2d):
    loaded = Denoiser.load(package_2d)
    assert loaded.config.to_dict() == model_2d.config.to_dict()
    assert loaded.normaliser == model_2d.normaliser
    assert loaded.history == model_2d.history
    np.testing.assert_array_equal(loaded.predict(image_2d), model_2d.predict(image_2d))


def test_tampered_package_fails_with_one_line_error(package_2d, tmp_path):
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(package_2d) as source, zipfile.ZipFile(tampered, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "weights.pt":
                data = data[:-64] + bytes(64)
            target.writestr(item, data)
    with pytest.raises(SelfDenoiseError) as error:
        Denoiser.load(tampered)
    message = str(error.value)
    assert "\n" not in message
    assert "weights.pt" in message and "checksum" in message


def test_loading_a_zip_that_is_not_a_package_fails_clearly(tmp_path):
    pytest.importorskip("bioimageio.spec")
    path = tmp_path / "notes.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(SelfDenoiseError, match="not a valid model package"):
        Denoiser.load(path)
    path.write_bytes(b"not a zip at all")
    with pytest.raises(SelfDenoiseError, match="not a valid model package"):
        Denoiser.load(path)


def test_cli_exports_torchscript_and_rejects_bmz_options(model_2d, tmp_path, capsys):
    saved = model_2d.save(tmp_path / "model.safetensors")
    out = tmp_path / "model.pt"
    assert main(["export", str(saved), "--format", "torchscript", "--out", str(out)]) == 0
    assert out.is_file() and "multiples of 2" in capsys.readouterr().out
    code = main(["export", str(saved), "--format", "onnx", "--out", "x.onnx", "--name", "n"])
    assert code == 2
    assert capsys.readouterr().err.strip() == "error: --name only apply to --format bmz."
    assert main(["export", str(tmp_path / "missing.safetensors"), "--out", "x.zip"]) == 2


def test_napari_export_job_reports_success_and_failure(model_2d, tmp_path):
    pytest.importorskip("qtpy")
    from selfdenoise._napari._export import export_job, format_for

    done = export_job(model_2d, str(tmp_path / "m.onnx"), "onnx")
    assert done.ok and str(done.value).endswith("m.onnx")
    failed = export_job(model_2d, str(tmp_path / "missing" / "m.pt"), "torchscript")
    assert not failed.ok and "does not exist" in failed.error
    assert format_for("/a/model", "ONNX, raw image in and out (*.onnx)") == (
        "/a/model.onnx",
        "onnx",
    )
    assert format_for("/a/model.pt", "") == ("/a/model.pt", "torchscript")


def test_napari_export_button_writes_the_chosen_format(
    model_2d, tmp_path, qtbot, monkeypatch, notifications
):
    pytest.importorskip("napari")
    from types import SimpleNamespace

    from selfdenoise._napari import _export

    target = tmp_path / "from_dialog"
    monkeypatch.setattr(
        _export.QFileDialog,
        "getSaveFileName",
        lambda *args: (str(target), _export.FILTERS["torchscript"]),
    )
    owner = SimpleNamespace(denoiser=None)
    button = _export.export_button(owner)
    qtbot.addWidget(button)
    button.click()  # no model yet: a notification, no dialog, no file
    assert any("no model to export" in message for message, _ in notifications)
    owner.denoiser = model_2d
    button.click()
    qtbot.waitUntil(lambda: (tmp_path / "from_dialog.pt").is_file(), timeout=60_000)
    qtbot.waitUntil(lambda: any("Exported" in m for m, _ in notifications), timeout=10_000)
