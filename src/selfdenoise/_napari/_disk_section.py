"""The Denoise widget's disk side: write a layer into a zarr store, denoise a folder of files.

A layer whose data is lazy (dask, zarr, a memory-mapped file) is denoised into a zarr store on
disk by default, a path the user picks or a temporary one the widget names, and shown again
lazily as a new layer with the source layer's scale and translate. Peak memory stays at tile
buffers plus one output slab (:data:`~._disk_jobs.MEMORY_BUDGET_TEXT`). Progress also goes to
napari's activity dock through :class:`napari.utils.progress`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox, LineEdit
from qtpy.QtWidgets import QFileDialog, QHBoxLayout, QPushButton, QWidget

from .._errors import SelfDenoiseError
from ._base import add_row, form_layout, hint_label
from ._denoised_layers import denoised_name
from ._disk_jobs import (
    FolderReport,
    StoreResult,
    denoise_folder,
    is_lazy,
    open_store,
    predict_to_store,
    temporary_store,
)
from ._feedback import Outcome, format_duration, notify_info, notify_warning, run_guarded
from ._jobs import use_device
from ._layers import add_derived_image, base_data
from ._session import SESSION_MODELS

if TYPE_CHECKING:
    from napari.layers import Layer

    from ..api import Denoiser


TILE_UNITS = 100
"""Activity-bar steps per tile (tiled prediction reports fractions of a tile)."""


class ActivityProgress:
    """A :class:`napari.utils.progress` bar in the activity dock, fed from the GUI thread."""

    def __init__(self, description: str) -> None:
        self.description = description
        self.bar: Any = None

    def update(self, done: float, total: int, eta: float | None) -> None:
        """Move the bar to ``done`` of ``total`` tiles (``done`` may be fractional: the bar
        counts hundredths of a tile, as Qt's bar takes integers); the ETA goes in the
        description."""
        from napari.utils import progress

        units, done_units = int(total) * TILE_UNITS, int(done * TILE_UNITS)
        bar = self.bar
        if bar is None:
            bar = self.bar = progress(total=units, desc=self.description)
        if bar.total != units:
            bar.total = units
        bar.set_description(f"{self.description} · ETA {format_duration(eta)}")
        if self.bar is not bar:  # closed meanwhile: the bar's widget can run queued Qt events
            return
        if done_units > bar.n:
            bar.update(done_units - bar.n)

    def close(self) -> None:
        """Remove the bar from the activity dock."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _layer_unit(layer: Layer) -> str | None:
    units = [str(u) for u in getattr(layer, "units", ()) or ()]
    spatial = [u for u in units[-2:] if u and u != "pixel"]
    return spatial[-1] if spatial else None


def _layer_source(layer: Layer) -> tuple[str, ...]:
    path = getattr(getattr(layer, "source", None), "path", None)
    return (str(path),) if path else ()


class DiskSection:
    """Mixin of :class:`~._predict_widget.PredictWidget`: the store and folder fields and jobs."""

    viewer: Any
    content_layout: Any
    status: Any
    run_button: Any
    progress_bar: Any
    last_layers: list
    last_store: StoreResult | None
    last_report: FolderReport | None
    _cancel: threading.Event
    _relay: Any
    device: Any
    activity: ActivityProgress | None

    def _build_disk_section(self) -> None:
        self.to_disk = CheckBox(value=False, text="Write to a zarr store (bigger than memory)")
        self.store_path = LineEdit(value="")
        self.store_path.native.setPlaceholderText("temporary folder (named when it starts)")
        browse = QPushButton("…")
        browse.setToolTip("Choose where the store goes (.zarr, or .ome.zarr for a pyramid).")
        browse.clicked.connect(self._ask_store_path)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.store_path.native, 1)
        row.addWidget(browse)
        holder = QWidget()
        holder.setLayout(row)
        form = form_layout()
        add_row(
            form,
            "On disk",
            self.to_disk,
            "Denoise tile by tile into a zarr store and show it lazily; on by default for "
            "dask/zarr layers. Memory: tile buffers plus one slab of at most 256 MiB.",
        )
        add_row(form, "Store", holder, "Where the store goes; empty: a temporary folder.")
        self.content_layout.addLayout(form)

    def _build_folder_section(self) -> None:
        self.folder = LineEdit(value="")
        self.folder.native.setPlaceholderText("folder or pattern, e.g. raw/*.tif")
        self.folder_out = LineEdit(value="")
        self.folder_out.native.setPlaceholderText("next to the inputs (name_denoised)")
        self.folder_button = QPushButton("Denoise folder")
        self.folder_button.setToolTip(
            "Denoise every file with the chosen model (loaded once); a bad file is reported "
            "and skipped."
        )
        self.folder_button.clicked.connect(self._folder_or_cancel)
        self.folder_info = hint_label("")
        form = form_layout()
        add_row(form, "Folder", self.folder, "Files to denoise: a folder or a glob pattern.")
        add_row(form, "Output folder", self.folder_out, "Empty: next to each input.")
        form.addRow(self.folder_button)
        form.addRow(self.folder_info)
        self.content_layout.addLayout(form)

    def _ask_store_path(self) -> None:
        path, _ = QFileDialog.getSaveFileName(None, "Zarr store", "", "Zarr (*.zarr)")
        if path:
            self.store_path.value = path if path.endswith(".zarr") else f"{path}.zarr"

    def follow_layer(self, layer: Layer | None) -> None:
        """Tick 'On disk' for layers whose data is not in memory."""
        if layer is not None:
            self.to_disk.value = is_lazy(base_data(layer))

    # ------------------------------------------------------------------ store
    def run_to_store(
        self, denoiser: Denoiser, layer: Layer, axes: str, options: dict, device: str
    ) -> Any:
        """Denoise ``layer`` into a store (the path field, or a temporary one) in a worker."""
        target = self.store_path.value.strip() or str(temporary_store(layer.name))
        data = base_data(layer)
        label = (tuple(float(v) for v in layer.scale), _layer_unit(layer))
        cancel, relay, sources = self._cancel, self._relay, _layer_source(layer)
        self.status.setText(f"Denoising {layer.name!r} into {target}…")

        def work() -> Outcome:
            moved = run_guarded(use_device, denoiser, device)
            if not moved.ok:
                return moved
            return predict_to_store(
                moved.value, data, axes, options, target, label, relay, cancel, sources
            )

        def done(outcome: Outcome) -> None:
            self._store_done(outcome, denoiser, layer, options)

        return self.start_job(work, on_done=done, on_warning=notify_warning)  # type: ignore[attr-defined]

    def _store_done(self, outcome: Outcome, denoiser: Denoiser, layer: Layer, options) -> None:
        result = outcome.value if isinstance(outcome.value, StoreResult) else None
        self.last_store = result
        if outcome.cancelled:
            where = f"; the partial store stays readable at {result.path}" if result else ""
            notify_info(f"Denoising cancelled{where} (tiles not reached are zero); no layer added.")
        if not outcome.ok or result is None:
            self._added([])  # type: ignore[attr-defined]
            return
        data, multiscale = open_store(result)
        entry = SESSION_MODELS.find(denoiser)
        provenance = {
            "method": denoiser.method,
            "source_layer": layer.name,
            "model": entry.name if entry else "",
            "store": str(result.path),
            **{k: v for k, v in options.items() if v is not None},
        }
        new = add_derived_image(
            self.viewer,
            layer,
            data,
            denoised_name(layer.name, denoiser.method),
            kind="denoised",
            selfdenoise_metadata=provenance,
            multiscale=multiscale,
        )
        self._added([new])  # type: ignore[attr-defined]
        self.status.setText(f"Added {new.name!r} (on disk: {result.path}).")

    # ------------------------------------------------------------------ folder
    def _folder_or_cancel(self) -> None:
        if self.is_running:  # type: ignore[attr-defined]
            self.cancel()  # type: ignore[attr-defined]
        else:
            self.run_folder()

    def run_folder(self) -> Any:
        """Denoise the files of the folder field with the chosen model; returns the worker."""
        if self.is_running:  # type: ignore[attr-defined]
            self.fail("denoising is already running; press Cancel first.")  # type: ignore[attr-defined]
            return None

        def check() -> tuple[Denoiser, dict]:
            denoiser = self.denoiser  # type: ignore[attr-defined]
            if denoiser is None:
                raise SelfDenoiseError("choose a model: train one, or load a file with 'Load…'.")
            if not self.folder.value.strip():
                raise SelfDenoiseError("give a folder or a pattern such as raw/*.tif.")
            return denoiser, self.prediction_options("")  # type: ignore[attr-defined]

        checked = self.guarded(check)  # type: ignore[attr-defined]
        if checked is None:
            return None
        denoiser, options = checked
        pattern, out_dir = self.folder.value, self.folder_out.value.strip() or None
        device, cancel, relay = self.device.value, threading.Event(), self._relay
        self._cancel = cancel
        self.last_report = None
        self.activity = ActivityProgress("Denoising a folder")
        self.progress_bar.setValue(0)
        self.status.setText(f"Denoising the files of {pattern}…")
        self.run_button.setText("Cancel")
        self.folder_button.setText("Cancel")

        def work() -> Outcome:
            moved = run_guarded(use_device, denoiser, device)
            if not moved.ok:
                return moved
            return denoise_folder(moved.value, pattern, out_dir, options, None, relay, cancel)

        return self.start_job(work, on_done=self._folder_done)  # type: ignore[attr-defined]

    def _folder_done(self, outcome: Outcome) -> None:
        report = outcome.value if isinstance(outcome.value, FolderReport) else None
        self.last_report = report
        if report is None:
            self.status.setText(
                "Cancelled." if outcome.cancelled else "Failed; see the notification."
            )
            return
        text = report.summary()
        if outcome.cancelled:
            text = f"cancelled after {len(report.written)} files; " + text
        self.folder_info.setText(text)
        self.status.setText(text[:1].upper() + text[1:] + ".")
        if report.failed:
            self.fail(text)  # type: ignore[attr-defined]
        else:
            notify_info(text[:1].upper() + text[1:] + ".")
