"""Denoise widget: apply a model of this session (or a file) to a layer, tile by tile.

The result is always a NEW layer, named after the input and the method, with the input's
scale, translate and metadata; the input layer is never modified.

Scripted use::

    dock, widget = viewer.window.add_plugin_dock_widget("napari-selfdenoise", "Denoise")
    widget.load_model("denoiser.safetensors")
    widget.wait()
    widget.image.value = viewer.layers["noisy nuclei 3D"]
    widget.run()
    widget.wait()
    denoised = widget.last_layers[0]
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox, ComboBox, LineEdit
from qtpy.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from .._errors import SelfDenoiseError
from ..axes import validate_axes
from ..config import DEVICES
from ._base import (
    ProgressRelay,
    WorkerWidget,
    add_row,
    form_layout,
    hint_label,
    parse_shape,
    shrinkable,
)
from ._denoised_layers import denoise_into_new_layers
from ._disk_section import ActivityProgress, DiskSection
from ._export import export_button, layer_sample
from ._feedback import Outcome, format_duration
from ._jobs import load_job
from ._layers import (
    base_data,
    guess_layer_axes,
    layer_choices,
    preferred_input,
    show_full_names,
)
from ._session import SESSION_MODELS, method_label

if TYPE_CHECKING:
    import napari.viewer
    from napari.layers import Image, Layer

    from ..api import Denoiser

DEVICE_HELP = (
    "Where to run the model: 'auto' keeps a model on its device when that is present here "
    "(else the best one present); 'cpu' runs a GPU-trained model on a machine without a GPU."
)


class PredictWidget(DiskSection, WorkerWidget):
    """Dock widget that denoises an image layer with a trained model.

    A layer whose data is not in memory (dask, zarr) is denoised into a zarr store on disk
    and shown lazily ('On disk', see :mod:`._disk_section`); 'Denoise folder' applies the
    model to every file of a folder or pattern.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        Passed by napari when the widget is docked.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)
        self.last_layers: list[Image] = []
        self.last_store = None
        self.last_report = None
        self.activity: ActivityProgress | None = None
        self._cancel = threading.Event()
        self._relay = ProgressRelay(self)
        self._relay.progressed.connect(self._show_progress)
        self._build_model_section()
        self._build_image_section()
        self._build_disk_section()
        self._build_run_section()
        self._build_folder_section()
        self.content_layout.addStretch(1)
        self.connect_while_alive(SESSION_MODELS.changed, self._refresh_models)
        self.reset_choices()
        self._model_changed()

    # ------------------------------------------------------------------ layout
    def _build_model_section(self) -> None:
        self.model = ComboBox(choices=lambda _: SESSION_MODELS.names())
        self.model.changed.connect(self._model_changed)
        self.load_button = QPushButton("Load…")
        self.load_button.setToolTip(
            "Load a model saved with 'Save model…' (.safetensors) or exported as a package (.zip)."
        )
        self.load_button.clicked.connect(self._ask_model_file)
        shrinkable(self.model.native)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.model.native, 1)
        row.addWidget(self.load_button)
        row.addWidget(
            export_button(
                self, sample=lambda: layer_sample(self.image.value, self.axes.value.strip())
            )
        )
        holder = QWidget()
        holder.setLayout(row)
        self.model_info = hint_label("Train a model or load one from a file.")
        form = form_layout()
        add_row(
            form, "Model", holder, "A model trained in this session, or one loaded from a file."
        )
        form.addRow(self.model_info)
        self.content_layout.addLayout(form)

    def _build_image_section(self) -> None:
        self.image = ComboBox(choices=lambda _: layer_choices(self.viewer))
        self.image.changed.connect(self._image_changed)
        self.image.changed.connect(self._image_picked)
        self._image_chosen = False  # True once a person or a script picked the image
        self._resetting = False
        self.axes = LineEdit(value="YX")
        self.tile_shape = LineEdit(value="auto")
        self.overlap = LineEdit(value="auto")
        self.tta = CheckBox(value=False, text="8 flips/rotations (8x slower)")
        self.restore_detail = CheckBox(value=False, text="blend back lost edges")
        self.collaborative_filter = CheckBox(value=False, text="group similar patches")
        self.device = ComboBox(choices=list(DEVICES), value="auto")
        form = form_layout()
        add_row(form, "Image", self.image, "Layer to denoise; it is never modified.")
        add_row(
            form,
            "Axes",
            self.axes,
            "One letter per dimension (Y, X, Z, T/S, C). A 2D model denoises stacks plane by plane.",
        )
        add_row(
            form,
            "Tile size",
            self.tile_shape,
            "'auto' chooses from memory; or e.g. 256 or 32,256,256.",
        )
        add_row(
            form,
            "Overlap",
            self.overlap,
            "Halo around each tile; 'auto' = the network's receptive field (seamless).",
        )
        add_row(form, "TTA", self.tta, "Test-time augmentation: a little better, 8x slower.")
        add_row(
            form,
            "Restore detail",
            self.restore_detail,
            "Blend each pixel with its noisy value where the model smoothed detail away (a "
            "local Wiener step; needs noise independent from pixel to pixel). The model's own "
            "setting by default: on for Noise2Same and the masked methods.",
        )
        add_row(
            form,
            "Collaborative filter",
            self.collaborative_filter,
            "Filter the image again with the model's output as a guide: similar patches are "
            "stacked and denoised together (a collaborative Wiener step, plane by plane; a few "
            "seconds per megapixel). The model's own setting by default.",
        )
        add_row(form, "Device", self.device, DEVICE_HELP)
        self.content_layout.addLayout(form)

    def _build_run_section(self) -> None:
        self.run_button = QPushButton("Denoise")
        self.run_button.clicked.connect(self._run_or_cancel)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 100)
        self.status = QLabel("Ready.")
        self.status.setWordWrap(True)
        for widget in (self.run_button, self.progress_bar, self.status):
            self.content_layout.addWidget(widget)

    # ------------------------------------------------------------------ reactions
    def reset_choices(self, *_: Any) -> None:
        """Refresh the layer and model pickers.

        Until someone picks the image, it follows the layer a newcomer means (the sample's
        noisy layer, else the topmost visible image); it never rests on a hidden ground truth
        or a result by itself.
        """
        self._resetting = True
        try:
            self.image.reset_choices()
            self.model.reset_choices()
            current = self.image.value
            if current is None or not self._image_chosen:
                preferred = preferred_input(self.viewer)
                if preferred is not None and preferred is not current:
                    self.image.value = preferred
        finally:
            self._resetting = False
        show_full_names(self.image, self.model)

    def _image_picked(self, *_: Any) -> None:
        if not self._resetting:
            self._image_chosen = True

    def _refresh_models(self) -> None:
        self.model.reset_choices()
        names = SESSION_MODELS.names()
        if names and self.model.value is None:
            self.model.value = names[-1]
        self._model_changed()

    @property
    def denoiser(self) -> Denoiser | None:
        """The selected model (None when there is none)."""
        name = self.model.value
        return SESSION_MODELS.get(name).denoiser if name in SESSION_MODELS.names() else None

    def _model_changed(self, *_: Any) -> None:
        name = self.model.value
        if name in SESSION_MODELS.names():
            entry = SESSION_MODELS.get(name)
            self.model_info.setText(entry.describe())
            self.restore_detail.value = entry.denoiser.config.tiling.restore_detail
            self.collaborative_filter.value = entry.denoiser.config.tiling.collaborative_filter
        else:
            self.model_info.setText("Train a model or load one from a file.")
        self._image_changed()

    def _image_changed(self, *_: Any) -> None:
        layer = self.image.value
        if layer is not None:
            model = self.denoiser
            self.axes.value = guess_layer_axes(layer, model.config.ndim if model else None)
        self.follow_layer(layer)

    # ------------------------------------------------------------------ running
    def prediction_options(self, axes: str) -> dict[str, Any]:
        """``tile_shape``, ``overlap``, ``tta``, ``restore_detail`` and ``collaborative_filter``
        from the fields (raises on bad text)."""
        if self.denoiser is None:
            raise SelfDenoiseError("choose a model: train one, or load a file with 'Load…'.")
        ndim = self.denoiser.config.ndim
        return {
            "tile_shape": parse_shape(self.tile_shape.value, ndim, "tile size"),
            "overlap": parse_shape(self.overlap.value, ndim, "overlap"),
            "tta": bool(self.tta.value),
            "restore_detail": bool(self.restore_detail.value),
            "collaborative_filter": bool(self.collaborative_filter.value),
        }

    def _check_inputs(self) -> tuple[Denoiser, Layer, str, dict]:
        denoiser = self.denoiser
        if denoiser is None:
            raise SelfDenoiseError("choose a model: train one, or load a file with 'Load…'.")
        layer = self.image.value
        if layer is None:
            raise SelfDenoiseError("choose the image layer to denoise.")
        axes = validate_axes(self.axes.value.strip())
        if len(axes) != len(base_data(layer).shape):
            raise SelfDenoiseError(
                f"axes {axes!r} do not fit layer {layer.name!r} ({len(base_data(layer).shape)}D); "
                "give one letter per dimension."
            )
        return denoiser, layer, axes, self.prediction_options(axes)

    def _run_or_cancel(self) -> None:
        if self.is_running:
            self.cancel()
        else:
            self.run()

    def run(self) -> Any:
        """Denoise the chosen layer into a new layer; returns the worker (None on bad input)."""
        if self.is_running:
            self.fail("denoising is already running; press Cancel first.")
            return None
        checked = self.guarded(self._check_inputs)
        if checked is None:
            return None
        denoiser, layer, axes, options = checked
        self._cancel = threading.Event()
        self.last_layers = []
        self.last_store = None
        self.activity = ActivityProgress(f"Denoising {layer.name}")
        self.progress_bar.setValue(0)
        self.status.setText(f"Denoising {layer.name!r}…")
        self.run_button.setText("Cancel")
        if self.to_disk.value:
            return self.run_to_store(denoiser, layer, axes, options, self.device.value)
        return denoise_into_new_layers(
            self,
            denoiser,
            [layer],
            self._added,
            axes=axes,
            options=options,
            progress=self._relay,
            cancel=self._cancel,
            device=self.device.value,
        )

    def cancel(self) -> None:
        """Stop the running prediction (within about 50 ms, even inside a tile); no layer is added."""
        self._cancel.set()
        self.status.setText("Cancelling…")

    def _show_progress(self, done: float, total: int, eta: float | None) -> None:
        self.progress_bar.setValue(round(100 * done / max(total, 1)))
        tiles = f"{done:.1f}" if done % 1 else f"{int(done)}"
        self.status.setText(f"tile {tiles}/{total} · ETA {format_duration(eta)}")
        if self.activity is not None:
            self.activity.update(done, total, eta)

    def _added(self, layers: list[Image]) -> None:
        self.last_layers = layers
        if layers:
            self.progress_bar.setValue(100)
            self.status.setText(f"Added {layers[0].name!r}.")
        elif self._cancel.is_set():
            self.status.setText("Cancelled.")
        else:
            self.status.setText("Failed; see the notification.")

    def job_finished(self) -> None:
        self.run_button.setText("Denoise")
        self.folder_button.setText("Denoise folder")
        if self.activity is not None:
            self.activity.close()
            self.activity = None

    # ------------------------------------------------------------------ models
    def load_model(self, path: str) -> Any:
        """Load a model file onto the chosen device in a worker; add it to the session.

        With device 'auto' a model trained on a GPU loads on the CPU of a machine without one.
        """
        self.status.setText(f"Loading {Path(path).name}…")
        return self.start_job(
            load_job,
            str(path),
            self.device.value,
            on_done=lambda outcome: self._loaded(outcome, str(path)),
        )

    def _loaded(self, outcome: Outcome, path: str) -> None:
        if not outcome.ok:
            self.status.setText("Loading failed; see the notification.")
            return
        label = f"{method_label(outcome.value.method)} from {Path(path).name}"
        name = SESSION_MODELS.add(outcome.value, label, source=path, path=path)
        self.model.value = name
        self.status.setText(f"Loaded '{name}'.")

    def _ask_model_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Load model", "", "Models (*.safetensors *.zip)"
        )
        if path:
            self.load_model(path)
