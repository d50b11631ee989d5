"""Issue 17, the widgets on first contact: pickers start right, Compare fills itself after a
denoise, the data range is a field and shown, the widget's numbers equal the library's (and so
the CLI's), and every readout says what it means and which way is better.

Run against napari's ViewerModel (no canvas needed; QT_QPA_PLATFORM=offscreen works).
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("clean_session")


@pytest.fixture
def viewer():
    from napari.components import ViewerModel

    return ViewerModel()


def add_sample(viewer):
    from selfdenoise._napari._sample_data import sample_2d

    for data, kwargs, _ in sample_2d():
        viewer.add_image(data, **kwargs)
    return viewer.layers["noisy camera"], viewer.layers["clean camera"]


def make_widgets(viewer, qtbot):
    from selfdenoise._napari._compare_widget import CompareWidget
    from selfdenoise._napari._predict_widget import PredictWidget
    from selfdenoise._napari._train_widget import TrainWidget

    widgets = TrainWidget(viewer), PredictWidget(viewer), CompareWidget(viewer)
    for widget in widgets:
        qtbot.addWidget(widget)
    return widgets


@pytest.mark.parametrize(
    "sample_first", [True, False], ids=["sample-then-dock", "dock-then-sample"]
)
def test_the_noisy_sample_is_preselected_never_the_clean_one(viewer, qtbot, sample_first):
    if sample_first:
        noisy, clean = add_sample(viewer)
        train, predict, compare = make_widgets(viewer, qtbot)
    else:
        train, predict, compare = make_widgets(viewer, qtbot)
        noisy, clean = add_sample(viewer)
    assert viewer.layers[0] is clean  # the hidden ground truth is the first layer
    assert list(train.images.value) == [noisy]
    assert predict.image.value is noisy
    assert compare.noisy.value is noisy
    assert compare.reference.value is clean
    assert list(compare.candidates.value) == []


def test_compare_is_filled_after_a_denoise(viewer, qtbot):
    from selfdenoise._napari._denoised_layers import add_denoised_layer

    noisy, clean = add_sample(viewer)
    _, _, compare = make_widgets(viewer, qtbot)
    compare.noisy.value = None
    compare.reference.value = None
    other = viewer.add_image(np.zeros((8, 8), np.float32), name="unrelated")
    denoised = add_denoised_layer(viewer, noisy, noisy.data * 0.5, _Model(), {"tta": False})
    assert denoised.metadata["kind"] == "denoised"
    assert denoised.metadata["selfdenoise"]["source_layer"] == noisy.name
    assert list(compare.candidates.value) == [denoised]
    assert compare.noisy.value is noisy
    assert compare.reference.value is clean
    assert other not in compare.candidates.value


class _Model:
    method = "n2v"


def _uint8_pair():
    rng = np.random.default_rng(3)
    clean = (40 + 150 * rng.random((64, 64)) ** 2).astype(np.uint8)  # range well below 255
    noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
    denoised = np.clip(clean + rng.normal(0, 6, clean.shape), 0, 255).astype(np.uint8)
    return clean, noisy, denoised


def _run_compare(compare, qtbot):
    compare.run()
    qtbot.waitUntil(lambda: not compare.is_running, timeout=30_000)
    assert compare.last_error == ""


@pytest.mark.parametrize("field", ["auto", "200"])
def test_widget_and_library_agree_on_psnr_and_ssim(viewer, qtbot, field):
    """Same pair, same data range, same numbers as ``selfdenoise.metrics.compare`` (which the
    CLI's ``compare`` prints): integer data use the dtype range (255), as the CLI does."""
    from selfdenoise.metrics import compare as library_compare

    clean, noisy, denoised = _uint8_pair()
    _, _, compare = make_widgets(viewer, qtbot)
    compare.reference.value = viewer.add_image(clean, name="clean")
    compare.noisy.value = viewer.add_image(noisy, name="noisy")
    compare.candidates.value = [viewer.add_image(denoised, name="denoised")]
    compare.data_range.value = field
    _run_compare(compare, qtbot)
    expected_range = 255.0 if field == "auto" else 200.0
    expected = library_compare(
        {"denoised": denoised}, clean, noisy, data_range=None if field == "auto" else 200.0
    )
    assert compare.result.table.settings["data_range"] == expected_range
    for metric in ("psnr", "ssim"):
        assert compare.table_value("denoised", metric) == pytest.approx(
            expected.column(metric)[0], rel=1e-6
        )
    header = compare.table.verticalHeaderItem(0)
    assert header.text() == "Data range L" and "dtype range" in header.toolTip()
    assert compare.table.item(0, 0).text() == f"{expected_range:.4g}"


def test_bad_data_range_is_a_notification(viewer, qtbot, notifications):
    clean, _noisy, denoised = _uint8_pair()
    _, _, compare = make_widgets(viewer, qtbot)
    compare.reference.value = viewer.add_image(clean, name="clean")
    compare.candidates.value = [viewer.add_image(denoised, name="denoised")]
    compare.data_range.value = "-3"
    assert compare.run() is None
    assert any("data range" in m and "\n" not in m for m, _ in notifications)


def test_readouts_are_ordered_explained_and_na_for_the_baseline(viewer, qtbot):
    from selfdenoise.metrics._table import BASELINE_NOT_APPLICABLE, COLUMN_DIRECTIONS

    clean, noisy, denoised = _uint8_pair()
    _, _, compare = make_widgets(viewer, qtbot)
    compare.reference.value = viewer.add_image(clean, name="clean")
    compare.noisy.value = viewer.add_image(noisy, name="noisy")
    compare.candidates.value = [viewer.add_image(denoised, name="denoised")]
    _run_compare(compare, qtbot)
    table = compare.table
    rows = [table.verticalHeaderItem(r).text() for r in range(table.rowCount())]
    assert rows[1:4] == ["PSNR (dB)", "SSIM", "Edge preservation (EPI)"]
    for r in range(1, table.rowCount()):
        tip = table.verticalHeaderItem(r).toolTip()
        assert "Direction: " in tip and "\n" not in tip, (rows[r], tip)
    assert len(COLUMN_DIRECTIONS) == 14
    columns = [table.horizontalHeaderItem(c).toolTip() for c in range(table.columnCount())]
    baseline, candidate = columns.index("noisy"), columns.index("denoised")
    from selfdenoise.metrics import COLUMN_LABELS

    for metric in BASELINE_NOT_APPLICABLE:
        r = rows.index(COLUMN_LABELS[metric])
        assert table.item(r, baseline).text() == "n/a", metric
        assert table.item(r, candidate).text() != "n/a", metric


def test_denoise_picker_follows_new_layers_until_someone_picks(viewer, qtbot):
    _, predict, _ = make_widgets(viewer, qtbot)
    first = viewer.add_image(np.zeros((16, 16), np.float32), name="first")
    assert predict.image.value is first
    second = viewer.add_image(np.zeros((16, 16), np.float32), name="second")
    assert predict.image.value is second  # the topmost visible image
    predict.image.value = first  # a person (or a script) chooses
    viewer.add_image(np.zeros((16, 16), np.float32), name="third")
    assert predict.image.value is first
