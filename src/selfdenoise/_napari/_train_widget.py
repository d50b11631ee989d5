"""Train widget: pick noisy layers, a method and a budget; train in a thread; watch the loss.

Scripted use::

    dock, widget = viewer.window.add_plugin_dock_widget("napari-selfdenoise", "Train denoiser")
    widget.images.value = [viewer.layers["noisy camera"]]
    widget.method.value = "n2v2"
    widget.epochs.value = 5
    widget.run()
    widget.wait()  # process events until training ends
    widget.denoise()  # new layer "noisy camera denoised (N2V2)"
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, LineEdit, Select, SpinBox
from qtpy.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget
from superqt import QCollapsible

from .._errors import SelfDenoiseError
from ..axes import validate_axes
from ..config import DEVICES, METHOD_DEFAULTS, METHOD_SUMMARIES, SCHEDULES, TrainingConfig
from ._base import WorkerWidget, add_row, form_layout, hint_label, parse_shape
from ._feedback import Outcome, format_duration, notify_info
from ._jobs import TrainRequest, TrainUpdate, describe_device, load_job, train_job
from ._layers import base_data, guess_layer_axes, layer_choices
from ._loss_plot import LossPlot
from ._predict_widget import denoise_into_new_layers
from ._session import SELF_SUPERVISED, SESSION_MODELS, method_label

NEW_MODEL = "new model"
"""Choice of the "Start from" picker that trains from scratch."""

_DEFAULTS = TrainingConfig()


class TrainWidget(WorkerWidget):
    """Dock widget that trains a self-supervised denoiser on image layers.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        Passed by napari when the widget is docked.
    """

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)
        self.denoiser: Any = None
        self.model_name: str | None = None
        self._stop_event = threading.Event()
        self._training_model: Any = None
        self._build_data_section()
        self._build_method_section()
        self._build_settings_section()
        self._build_advanced_section()
        self._build_run_section()
        self.content_layout.addStretch(1)
        self.connect_while_alive(SESSION_MODELS.changed, self._refresh_models)
        self.reset_choices()
        self._method_changed()
        self.refresh_device()

    # ------------------------------------------------------------------ layout
    def _build_data_section(self) -> None:
        self.images = Select(choices=lambda _: layer_choices(self.viewer), label="Train on")
        self.images.native.setMaximumHeight(90)
        self.images.changed.connect(self._images_changed)
        self.validation = ComboBox(choices=lambda _: layer_choices(self.viewer, optional=True))
        self.axes = LineEdit(value="YX")
        form = form_layout()
        add_row(
            form,
            "Train on",
            self.images,
            "Noisy image layer(s) to learn from (Ctrl-click for several).",
        )
        add_row(
            form,
            "Validation",
            self.validation,
            "Optional separate noisy layer for the validation loss; by default a part of the training data is held out.",
        )
        add_row(
            form,
            "Axes",
            self.axes,
            "One letter per dimension: Y, X, Z (3D), T or S (time points / samples), C (channels). Guessed from the layer.",
        )
        self.content_layout.addLayout(form)

    def _build_method_section(self) -> None:
        self.method = ComboBox(choices=[(method_label(m), m) for m in SELF_SUPERVISED])
        self.method.changed.connect(self._method_changed)
        self.method_help = hint_label()
        self.start_from = ComboBox(choices=lambda _: [NEW_MODEL, *SESSION_MODELS.names()])
        self.start_from.changed.connect(self._start_from_changed)
        self.load_button = QPushButton("Load…")
        self.load_button.setToolTip("Load a saved model to continue training it.")
        self.load_button.clicked.connect(self._ask_model_file)
        start_row = QHBoxLayout()
        start_row.addWidget(self.start_from.native, 1)
        start_row.addWidget(self.load_button)
        start_widget = QWidget()
        start_widget.setLayout(start_row)
        start_row.setContentsMargins(0, 0, 0, 0)
        form = form_layout()
        add_row(form, "Method", self.method, "Self-supervised training objective.")
        form.addRow(self.method_help)
        add_row(
            form,
            "Start from",
            start_widget,
            "Train a new model, or continue training a model of this session / a saved file.",
        )
        self.content_layout.addLayout(form)

    def _build_settings_section(self) -> None:
        self.patch_size = LineEdit(value="auto")
        self.batch_size = SpinBox(value=_DEFAULTS.batch_size, min=1, max=1024)
        self.epochs = SpinBox(value=_DEFAULTS.epochs, min=1, max=100_000)
        self.max_minutes = FloatSpinBox(value=0.0, min=0.0, max=10_000.0, step=1.0)
        self.max_minutes.native.setSpecialValueText("off (use epochs)")
        self.lambda_inv = FloatSpinBox(value=2.0, min=0.0, max=100.0, step=0.5)
        self.masked_percent = FloatSpinBox(value=0.5, min=0.05, max=50.0, step=0.1)
        self.masked_percent.native.setDecimals(2)
        form = form_layout()
        add_row(
            form,
            "Patch size",
            self.patch_size,
            "'auto' (64x64 in 2D, 16x64x64 in 3D), one number for all sides, or e.g. 16,64,64.",
        )
        add_row(
            form,
            "Batch size",
            self.batch_size,
            "Patches per step; lower it if the GPU runs out of memory.",
        )
        add_row(
            form,
            "Epochs",
            self.epochs,
            "Training length; an epoch is 'steps per epoch' steps (Advanced) and ends with a validation.",
        )
        add_row(
            form,
            "Time limit (min)",
            self.max_minutes,
            "Train for this many minutes instead of a number of epochs.",
        )
        add_row(
            form,
            "λ invariance",
            self.lambda_inv,
            "Noise2Same: weight of the invariance term (2 works for most data).",
        )
        add_row(
            form,
            "Masked pixels (%)",
            self.masked_percent,
            "Share of pixels hidden from the network per step.",
        )
        self.settings_form = form
        self.content_layout.addLayout(form)

    def _build_advanced_section(self) -> None:
        self.steps_per_epoch = SpinBox(value=_DEFAULTS.steps_per_epoch, min=1, max=100_000)
        self.learning_rate = LineEdit(value=f"{_DEFAULTS.learning_rate:g}")
        self.schedule = ComboBox(choices=list(SCHEDULES), value=_DEFAULTS.schedule)
        self.validation_percent = FloatSpinBox(
            value=100 * _DEFAULTS.validation_fraction, min=0.0, max=50.0
        )
        self.depth = SpinBox(value=2, min=1, max=6)
        self.base_channels = SpinBox(value=32, min=4, max=256)
        self.augment = CheckBox(value=_DEFAULTS.augment, text="flips and 90° rotations")
        self.seed = SpinBox(value=_DEFAULTS.seed, min=0, max=2**31 - 1)
        self.device = ComboBox(choices=list(DEVICES), value=_DEFAULTS.device)
        self.device.changed.connect(self.refresh_device)
        inner = QWidget()
        form = form_layout()
        inner.setLayout(form)
        add_row(form, "Steps per epoch", self.steps_per_epoch, "Steps between two validations.")
        add_row(form, "Learning rate", self.learning_rate, "AdamW learning rate.")
        add_row(form, "Schedule", self.schedule, "Learning-rate schedule over the budget.")
        add_row(
            form,
            "Validation (%)",
            self.validation_percent,
            "Share of patches held out when no validation layer is given.",
        )
        add_row(form, "U-Net depth", self.depth, "Down-sampling levels (new models only).")
        add_row(
            form,
            "Base channels",
            self.base_channels,
            "Feature channels at the top level (new models only).",
        )
        add_row(form, "Augment", self.augment, "Random flips and rotations in YX.")
        add_row(form, "Seed", self.seed, "Same seed, same result on the CPU.")
        add_row(form, "Device", self.device, "'auto' uses the GPU when there is one.")
        self.advanced = QCollapsible("Advanced")
        self.advanced.addWidget(inner)
        self.content_layout.addWidget(self.advanced)

    def _build_run_section(self) -> None:
        self.device_label = QLabel("Device: detecting…")
        self.device_label.setWordWrap(True)
        self.start_button = QPushButton("Start training")
        self.start_button.clicked.connect(self._start_or_stop)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setValue(0)
        self.status = QLabel("Ready.")
        self.status.setWordWrap(True)
        self.loss_plot = LossPlot()
        self.denoise_button = QPushButton("Denoise layer")
        self.denoise_button.setToolTip(
            "Denoise the 'Train on' layer(s) with this model; results are new layers."
        )
        self.denoise_button.clicked.connect(lambda: self.denoise())
        self.save_button = QPushButton("Save model…")
        self.save_button.setToolTip(
            "Save weights, settings and training history to one .safetensors file."
        )
        self.save_button.clicked.connect(self._ask_save_path)
        after = QHBoxLayout()
        after.addWidget(self.denoise_button)
        after.addWidget(self.save_button)
        for widget in (
            self.device_label,
            self.start_button,
            self.progress_bar,
            self.status,
            self.loss_plot,
        ):
            self.content_layout.addWidget(widget)
        self.content_layout.addLayout(after)
        self._set_trained(False)

    # ------------------------------------------------------------------ reactions
    def reset_choices(self, *_: Any) -> None:
        """Refresh the layer and model pickers."""
        for picker in (self.images, self.validation, self.start_from):
            picker.reset_choices()

    def _refresh_models(self) -> None:
        self.start_from.reset_choices()

    def _images_changed(self, *_: Any) -> None:
        layers = self.images.value
        if layers:
            model = self._start_model()
            spatial = model.config.ndim if model is not None else None
            self.axes.value = guess_layer_axes(layers[0], spatial)

    def _method_changed(self, *_: Any) -> None:
        method = self.method.value
        self.method_help.setText(METHOD_SUMMARIES[method])
        fraction = METHOD_DEFAULTS[method]["masking"].get("fraction", 0.005)
        self.masked_percent.value = round(100 * fraction, 2)
        is_noise2same = method == "noise2same"
        self.lambda_inv.native.setVisible(is_noise2same)
        self.settings_form.labelForField(self.lambda_inv.native).setVisible(is_noise2same)

    def _start_model(self) -> Any:
        name = self.start_from.value
        if not name or name == NEW_MODEL or name not in SESSION_MODELS.names():
            return None
        return SESSION_MODELS.get(name).denoiser

    def _start_from_changed(self, *_: Any) -> None:
        model = self._start_model()
        fixed = model is not None
        if fixed:
            self.method.value = model.method
            self.loss_plot.set_curves(model.history)
        self.method.enabled = not fixed
        self.depth.enabled = self.base_channels.enabled = not fixed
        self._images_changed()

    def refresh_device(self, *_: Any) -> None:
        """Show which device training will use (found in a worker: it imports torch)."""
        from napari.qt.threading import create_worker

        self.device_label.setText("Device: detecting…")
        worker = create_worker(describe_device, self.device.value, _start_thread=False)
        worker.returned.connect(self._device_found)
        worker.start()
        self._device_worker = worker

    def _device_found(self, outcome: Outcome) -> None:
        text = outcome.value if outcome.ok else f"not available ({outcome.error})"
        try:
            self.device_label.setText(f"Device: {text}")
        except RuntimeError:  # the widget was closed while the worker ran
            pass

    # ------------------------------------------------------------------ settings
    def collect_settings(self) -> dict[str, Any]:
        """Flat :func:`~selfdenoise.config.make_config` settings from the fields."""
        axes = validate_axes(self.axes.value.strip())
        ndim = 3 if "Z" in axes else 2
        try:
            learning_rate = float(self.learning_rate.value)
        except ValueError:
            raise SelfDenoiseError(
                f"learning rate must be a number such as 1e-3; got {self.learning_rate.value!r}."
            ) from None
        settings: dict[str, Any] = {
            "patch_shape": parse_shape(self.patch_size.value, ndim, "patch size"),
            "batch_size": self.batch_size.value,
            "epochs": self.epochs.value,
            "steps_per_epoch": self.steps_per_epoch.value,
            "max_minutes": self.max_minutes.value or None,
            "learning_rate": learning_rate,
            "schedule": self.schedule.value,
            "validation_fraction": self.validation_percent.value / 100,
            "augment": self.augment.value,
            "seed": self.seed.value,
            "device": self.device.value,
            "fraction": self.masked_percent.value / 100,
            "depth": self.depth.value,
            "base_channels": self.base_channels.value,
        }
        if self.method.value == "noise2same":
            settings["lambda_inv"] = self.lambda_inv.value
        return settings

    def build_request(self) -> TrainRequest:
        """Read the layers and fields into a :class:`TrainRequest` (raises on bad input)."""
        layers = list(self.images.value)
        if not layers:
            raise SelfDenoiseError("choose at least one image layer under 'Train on'.")
        axes = validate_axes(self.axes.value.strip())
        data = []
        for layer in layers:
            array = base_data(layer)
            if len(array.shape) != len(axes):
                _axes_mismatch(layer, axes)
            data.append(array)
        validation = self.validation.value
        if validation is not None and len(base_data(validation).shape) != len(axes):
            _axes_mismatch(validation, axes)
        return TrainRequest(
            data=data,
            validation=None if validation is None else base_data(validation),
            axes=axes,
            method=self.method.value,
            settings=self.collect_settings(),
            model=self._start_model(),
        )

    # ------------------------------------------------------------------ training
    def _start_or_stop(self) -> None:
        if self.is_running:
            self.stop()
        else:
            self.run()

    def run(self) -> Any:
        """Start training with the current fields; returns the worker (None on bad input)."""
        if self.is_running:
            self.fail("training is already running; press Stop first.")
            return None
        request = self.guarded(self.build_request)
        if request is None:
            return None
        self._stop_event = threading.Event()
        self._layer_names = [layer.name for layer in self.images.value]
        if request.model is None:
            self.loss_plot.reset()
        self.progress_bar.setValue(0)
        self.status.setText("Starting… (the first run loads PyTorch)")
        self._set_running(True)
        return self.start_job(
            train_job, request, self._stop_event, on_yield=self._on_update, on_done=self._on_trained
        )

    def stop(self) -> None:
        """Stop training; it ends within a step and keeps the best model so far."""
        self._stop_event.set()
        if self._training_model is not None:
            self._training_model.stop()
        if self.is_running:
            self.status.setText("Stopping… (keeping the best model)")
            self.start_button.setEnabled(False)

    def _on_update(self, update: TrainUpdate) -> None:
        if update.denoiser is not None:
            self._training_model = update.denoiser
        if update.rows:
            self.loss_plot.add_points(update.rows)
        if update.progress is not None:
            self._show_progress(update.progress)

    def _show_progress(self, progress: Any) -> None:
        total = max(int(progress.total_steps), 1)
        self.progress_bar.setValue(min(100, round(100 * progress.step / total)))
        epochs = max(1, -(-total // max(self.steps_per_epoch.value, 1)))
        parts = [f"epoch {progress.epoch}/{epochs}", f"step {progress.step}/{total}"]
        if progress.loss is not None:
            parts.append(f"loss {progress.loss:.4g}")
        if progress.val_loss is not None:
            parts.append(f"val {progress.val_loss:.4g}")
        parts.append(f"ETA {format_duration(progress.eta_seconds)}")
        self.status.setText(" · ".join(parts))

    def _on_trained(self, outcome: Outcome) -> None:
        self._training_model = None
        if outcome.cancelled:
            self.status.setText("Stopped before the first step; no model was kept.")
            return
        if not outcome.ok:
            self.status.setText(f"Failed: {outcome.error}")
            return
        self.denoiser = outcome.value
        self._plot_final_validation(self.denoiser.history)
        label = f"{method_label(self.denoiser.method)} on {', '.join(self._layer_names)}"
        self.model_name = SESSION_MODELS.add(
            self.denoiser, label, source=", ".join(self._layer_names)
        )
        self.progress_bar.setValue(100)
        history = self.denoiser.history
        best = min((r["val_loss"] for r in history if r.get("val_loss") is not None), default=None)
        steps = history[-1]["step"] if history else 0
        summary = f"Done: {steps} steps" + (
            f", best validation loss {best:.4g}" if best is not None else ""
        )
        self.status.setText(f"{summary}. Model '{self.model_name}' is ready.")
        self._set_trained(True)
        notify_info(f"Training finished: {summary.removeprefix('Done: ')}.")

    def _plot_final_validation(self, history: list[dict]) -> None:
        """Add the validation of the final weights (a stopped run) if it is not plotted yet."""
        if history and history[-1].get("step") not in self.loss_plot.val_steps:
            self.loss_plot.add_points([dict(history[-1], loss=None, validated=True)])

    def job_finished(self) -> None:
        self._set_running(False)

    def _set_running(self, running: bool) -> None:
        self.start_button.setText("Stop" if running else "Start training")
        self.start_button.setEnabled(True)
        for widget in (self.denoise_button, self.save_button, self.load_button):
            widget.setEnabled(
                not running and (widget is self.load_button or self.denoiser is not None)
            )

    def _set_trained(self, trained: bool) -> None:
        self.denoise_button.setEnabled(trained)
        self.save_button.setEnabled(trained)

    # ------------------------------------------------------------------ after training
    def denoise(self, layers: list | None = None) -> Any:
        """Denoise ``layers`` (default: the 'Train on' layers) into new layers."""
        if self.denoiser is None:
            self.fail("train a model first (or use the Denoise widget with a saved model).")
            return None
        layers = list(layers if layers is not None else self.images.value)
        if not layers:
            self.fail("choose the layer(s) to denoise under 'Train on'.")
            return None
        self.status.setText("Denoising…")
        axes = self.axes.value.strip() if layers == list(self.images.value) else None
        return denoise_into_new_layers(self, self.denoiser, layers, self._denoised, axes=axes)

    def _denoised(self, new_layers: list) -> None:
        if new_layers:
            self.status.setText(f"Added {', '.join(repr(layer.name) for layer in new_layers)}.")

    def save_model(self, path: str) -> str | None:
        """Save the trained model (weights, settings, history) to ``path``; return the path."""
        if self.denoiser is None:
            self.fail("there is no trained model to save yet.")
            return None
        written = self.guarded(lambda: self.denoiser.save(path))
        if written is not None:
            SESSION_MODELS.add(self.denoiser, self.model_name or "model", path=str(written))
            self.status.setText(f"Saved to {written}.")
            return str(written)
        return None

    def _ask_save_path(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save model", "denoiser.safetensors", "Models (*.safetensors)"
        )
        if path:
            self.save_model(path)

    def load_model(self, path: str) -> Any:
        """Load a model file in a worker and select it under 'Start from'."""
        self.status.setText(f"Loading {path}…")
        return self.start_job(load_job, path, on_done=lambda outcome: self._loaded(outcome, path))

    def _loaded(self, outcome: Outcome, path: str) -> None:
        if not outcome.ok:
            self.status.setText("Loading failed.")
            return
        name = SESSION_MODELS.add(
            outcome.value,
            f"{method_label(outcome.value.method)} from {Path(path).name}",
            source=path,
            path=path,
        )
        self.start_from.value = name
        self.status.setText(f"Loaded '{name}'; training continues from it.")

    def _ask_model_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load model", "", "Models (*.safetensors)")
        if path:
            self.load_model(path)


def _axes_mismatch(layer: Any, axes: str) -> None:
    shape = "x".join(str(s) for s in base_data(layer).shape)
    raise SelfDenoiseError(
        f"axes {axes!r} do not fit layer {layer.name!r} ({len(base_data(layer).shape)}D, {shape}); "
        "give one letter per dimension, e.g. 'ZYX' or 'TYX'."
    )
