"""The "Export…" button of the Train and Denoise widgets: BMZ package, ONNX or TorchScript.

:func:`export_button` makes the button; a click asks for a file and a format in a Qt save
dialog (one filter per format) and runs the export in a thread worker, with a notification
when it is done or failed. The export itself (:func:`export_job`) touches neither Qt nor
napari layers, so it is testable without a viewer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from qtpy.QtWidgets import QFileDialog, QPushButton, QWidget

from ._base import keep_alive
from ._feedback import Outcome, notify_error, notify_info, run_guarded

FILTERS = {
    "bmz": "BioImage Model Zoo package (*.zip)",
    "onnx": "ONNX, raw image in and out (*.onnx)",
    "torchscript": "TorchScript, raw image in and out (*.pt)",
}
"""Save-dialog filter per export format."""

SUFFIXES = {"bmz": ".zip", "onnx": ".onnx", "torchscript": ".pt"}

SampleGetter = Callable[[], "tuple[Any, str] | None"]


def export_job(denoiser: Any, path: str, fmt: str, sample: Any = None, axes: str | None = None):
    """Export ``denoiser`` (worker side); an :class:`Outcome` whose value is the path written."""
    from ..export import export_model

    options = {"sample": sample, "sample_axes": axes} if fmt == "bmz" and sample is not None else {}
    return run_guarded(export_model, denoiser, path, fmt, **options)


def format_for(path: str, chosen_filter: str) -> tuple[str, str]:
    """The format picked in the dialog (else guessed from the suffix) and the path with it."""
    by_suffix = {suffix: fmt for fmt, suffix in SUFFIXES.items()}
    fmt = next((f for f, text in FILTERS.items() if text == chosen_filter), None)
    fmt = fmt or by_suffix.get(Path(path).suffix.lower(), "bmz")
    if Path(path).suffix.lower() != SUFFIXES[fmt]:
        path = str(Path(path).with_suffix(SUFFIXES[fmt]))
    return path, fmt


def ask_export_target(parent: QWidget) -> tuple[str, str] | None:
    """Qt save dialog; ``(path, format)`` or None when cancelled."""
    path, chosen = QFileDialog.getSaveFileName(
        parent, "Export model", "denoiser.zip", ";;".join(FILTERS.values())
    )
    return format_for(path, chosen) if path else None


def start_export(denoiser: Any, path: str, fmt: str, sample: tuple[Any, str] | None = None) -> Any:
    """Run :func:`export_job` in a napari thread worker and notify the result; the worker."""
    from napari.qt.threading import create_worker

    data, axes = sample if sample is not None else (None, None)
    worker = create_worker(export_job, denoiser, path, fmt, data, axes, _start_thread=False)
    worker.returned.connect(_exported)
    worker.errored.connect(lambda exc: notify_error(f"export failed: {exc}"))
    keep_alive(worker).start()
    return worker


def _exported(outcome: Outcome) -> None:
    if outcome.ok:
        notify_info(f"Exported the model to {outcome.value}.")
    else:
        notify_error(outcome.error)


def export_button(widget: Any, sample: SampleGetter | None = None) -> QPushButton:
    """An "Export…" button for ``widget`` (which has a ``denoiser`` attribute).

    ``sample`` returns ``(image, axes)`` to cut the package's test image from (for example
    the selected layer's data), or None for a synthetic one.
    """
    button = QPushButton("Export…")
    button.setToolTip(
        "Export the model as a BioImage Model Zoo package (bioimageio.core, deepImageJ, "
        "ilastik, QuPath) or as ONNX / TorchScript (raw image in, denoised image out)."
    )

    def clicked() -> None:
        denoiser = getattr(widget, "denoiser", None)
        if denoiser is None:
            notify_error("there is no model to export yet: train or load one first.")
            return
        target = ask_export_target(widget)
        if target is not None:
            start_export(denoiser, *target, sample=sample() if sample is not None else None)

    button.clicked.connect(clicked)
    return button


def layer_sample(layer: Any, axes: str) -> tuple[Any, str] | None:
    """``(data, axes)`` of an image layer (its finest level when multiscale), or None."""
    if layer is None:
        return None
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return data, axes
