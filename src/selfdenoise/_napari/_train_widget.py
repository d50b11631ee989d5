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

import math
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from ._base import hint_label, keep_alive
from ._denoised_layers import denoise_into_new_layers
from ._export import export_button, layer_sample
from ._feedback import Outcome, format_duration, notify_info
from ._jobs import TrainUpdate, describe_device, load_job, train_job
from ._loss_plot import LossPlot, loss_caption
from ._session import SESSION_MODELS, method_label
from ._train_fields import TrainFields

if TYPE_CHECKING:
    import napari.viewer
    from napari.layers import Layer

    from ..api import Denoiser

_DEVICE_NAMES: dict[str, Outcome] = {}
"""Device descriptions already found, by preference (finding one imports torch)."""


class TrainWidget(TrainFields):
    """Dock widget that trains a self-supervised denoiser on image layers.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        Passed by napari when the widget is docked.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)
        self.denoiser: Denoiser | None = None
        self.model_name: str | None = None
        self._stop_event = threading.Event()
        self._training_model: Denoiser | None = None
        self._layer_names: list[str] = []
        self._budget: tuple[int, float | None] = (1, None)
        self.build_fields()
        self._build_run_section()
        self.content_layout.addStretch(1)
        self.connect_while_alive(SESSION_MODELS.changed, self._refresh_models)
        self.reset_choices()
        self._method_changed()
        self.refresh_device()

    # ------------------------------------------------------------------ layout
    def _build_run_section(self) -> None:
        self.device_label = QLabel("Device: detecting…")
        self.device_label.setWordWrap(True)
        self.sizes_label = hint_label()
        self.sizes_label.setVisible(False)
        self.start_button = QPushButton("Start training")
        self.start_button.clicked.connect(self._start_or_stop)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setValue(0)
        self.status = QLabel("Ready.")
        self.status.setWordWrap(True)
        self.loss_plot = LossPlot()
        self.loss_caption = hint_label(
            loss_caption(self.method.value, self.regulariser_weight_setting())
        )
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
        self.export_button = export_button(
            self,
            sample=lambda: layer_sample(
                next(iter(self.images.value), None), self.axes.value.strip()
            ),
        )
        after = QHBoxLayout()
        after.addWidget(self.denoise_button)
        after.addWidget(self.save_button)
        after.addWidget(self.export_button)
        for widget in (
            self.device_label,
            self.sizes_label,
            self.start_button,
            self.progress_bar,
            self.status,
            self.loss_plot,
            self.loss_caption,
        ):
            self.content_layout.addWidget(widget)
        self.content_layout.addLayout(after)
        self._set_trained(False)

    def show_model_history(self, model: Denoiser) -> None:
        """Show the loss history of the model that training continues from."""
        self.loss_plot.set_curves(model.history)

    def method_changed(self, method: str) -> None:
        """Explain the loss curves of ``method`` under the plot."""
        if hasattr(self, "loss_caption"):
            self._explain_losses(method, self.regulariser_weight_setting())

    def _explain_losses(self, method: str, weight: float | str, note: str = "") -> None:
        """The caption under the loss plot (after ``note``) and the plot's tooltip for
        ``method`` trained with the regulariser ``weight``."""
        self.loss_caption.setText(note + loss_caption(method, weight))
        self.loss_plot.set_method(method, weight)

    # ------------------------------------------------------------------ device
    def refresh_device(self) -> None:
        """Show which device training will use (found in a worker: it imports torch)."""
        from napari.qt.threading import create_worker

        preference = self.device.value
        if preference in _DEVICE_NAMES:
            self._device_found(preference, _DEVICE_NAMES[preference])
            return
        self.device_label.setText("Device: detecting…")
        worker = create_worker(describe_device, preference, _start_thread=False)
        worker.returned.connect(lambda outcome: self._device_found(preference, outcome))
        keep_alive(worker).start()

    def _device_found(self, preference: str, outcome: Outcome) -> None:
        if outcome.ok:
            _DEVICE_NAMES[preference] = outcome
        text = outcome.value if outcome.ok else f"not available ({outcome.error})"
        try:
            if preference != self.device.value:  # an older request answered late
                return
            self.device_label.setText(f"Device: {text}")
        except RuntimeError:  # the widget was closed while the worker ran
            pass

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
        self._budget = (int(self.epochs.value), request.settings.get("max_minutes"))
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
        if self._training_model is not None:
            self.show_training_sizes(self._training_model.training_sizes_note)
            weight = self._training_model.regulariser_weight  # 'auto' resolved at the start
            if weight is not None:
                auto = self.regulariser_weight_setting() == "auto"
                source = ", read from the noise" if auto else ""
                note = f"γ regulariser {weight:g}{source}. "  # noqa: RUF001
                self._explain_losses(self.method.value, weight, note)
        if update.rows:
            self.loss_plot.add_points(update.rows)
        if update.progress is not None:
            self._show_progress(update.progress)

    def show_training_sizes(self, note: str) -> None:
        """Show the batch and patch sizes training uses on this device and why (the engine's
        ``Denoiser.training_sizes_note``, set when training starts); hidden while empty."""
        if note and self.sizes_label.text() != f"Sizes: {note}":
            self.sizes_label.setText(f"Sizes: {note}")
            self.sizes_label.setToolTip("The batch and patch sizes this run trains with, and why.")
        self.sizes_label.setVisible(bool(note))

    def _show_progress(self, progress: Any) -> None:
        """Progress bar and status line against the budget the user set.

        With a time limit, the line shows the elapsed time of that limit (the step total
        is only an estimate there); otherwise the epoch and step of the chosen epochs. Losses
        that are not finite (the last record after Stop) are left out.
        """
        self.progress_bar.setValue(round(100 * budget_fraction(progress, self._budget)))
        self.status.setText(status_line(progress, self._budget, self.steps_per_epoch.value))
        if progress.message:  # e.g. a checkpoint that could not be written; training goes on
            notify_info(progress.message)

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
        best = min((r["val_loss"] for r in history if _finite(r.get("val_loss"))), default=None)
        steps = history[-1]["step"] if history else 0
        summary = f"Done: {steps} steps" + (
            f", best validation loss {best:.4g}" if best is not None else ""
        )
        self.status.setText(f"{summary}. Model '{self.model_name}' is ready.")
        self._set_trained(True)
        notify_info(f"Training finished after {steps} steps.")

    def _plot_final_validation(self, history: list[dict]) -> None:
        """Add the validation of the final weights (a stopped run) if it is not plotted yet."""
        if history and history[-1].get("step") not in self.loss_plot.val_steps:
            self.loss_plot.add_points([dict(history[-1], loss=None, validated=True)])

    def job_finished(self) -> None:
        self._set_running(False)

    def _set_running(self, running: bool) -> None:
        self.start_button.setText("Stop" if running else "Start training")
        self.start_button.setEnabled(True)
        for widget in (
            self.denoise_button,
            self.save_button,
            self.export_button,
            self.load_button,
        ):
            widget.setEnabled(
                not running and (widget is self.load_button or self.denoiser is not None)
            )

    def _set_trained(self, trained: bool) -> None:
        self.denoise_button.setEnabled(trained)
        self.save_button.setEnabled(trained)
        self.export_button.setEnabled(trained)

    # ------------------------------------------------------------------ after training
    def denoise(self, layers: list[Layer] | None = None) -> Any:
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

    def _denoised(self, new_layers: list[Layer]) -> None:
        if new_layers:
            self.status.setText(f"Added {', '.join(repr(layer.name) for layer in new_layers)}.")

    def save_model(self, path: str) -> str | None:
        """Save the trained model (weights, settings, history) to ``path``; return the path."""
        denoiser = self.denoiser
        if denoiser is None:
            self.fail("there is no trained model to save yet.")
            return None
        written = self.guarded(lambda: denoiser.save(path))
        if written is not None:
            SESSION_MODELS.add(denoiser, self.model_name or "model", path=str(written))
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
        """Load a model file (onto the chosen device) in a worker; select it under 'Start from'.

        With device 'auto' a model trained on a GPU also loads on a machine without one.
        """
        self.status.setText(f"Loading {path}…")
        return self.start_job(
            load_job,
            path,
            self.device.value,
            on_done=lambda outcome: self._loaded(outcome, path),
        )

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
        path, _ = QFileDialog.getOpenFileName(
            self, "Load model", "", "Models (*.safetensors *.zip)"
        )
        if path:
            self.load_model(path)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def budget_fraction(progress: Any, budget: tuple[int, float | None]) -> float:
    """Share of the run's budget used: elapsed / time limit, or run steps / step budget."""
    _, minutes = budget
    if minutes:
        return min(1.0, max(0.0, float(progress.elapsed_seconds) / (60.0 * minutes)))
    run_step = int(progress.run_step)
    return min(1.0, run_step / max(int(progress.total_steps), 1))


def status_line(progress: Any, budget: tuple[int, float | None], steps_per_epoch: int) -> str:
    """``'epoch 2/10 · step 40/200 · loss 0.31 · val 0.29 · ETA 0:12'`` for a step budget, or
    ``'1:05 of 5 min · step 40 · ...'`` with a time limit (the budget the user set)."""
    epochs, minutes = budget
    run_step = int(progress.run_step)
    if minutes:
        parts = [
            f"{format_duration(progress.elapsed_seconds)} of {minutes:g} min",
            f"step {run_step}",
        ]
    else:
        epoch = min(max(1, math.ceil(run_step / max(steps_per_epoch, 1))), epochs)
        parts = [f"epoch {epoch}/{epochs}", f"step {run_step}/{int(progress.total_steps)}"]
    if _finite(progress.loss):
        parts.append(f"loss {progress.loss:.4g}")
    if _finite(progress.val_loss):
        parts.append(f"val {progress.val_loss:.4g}")
    if not progress.done:
        parts.append(f"ETA {format_duration(progress.eta_seconds)}")
    return " · ".join(parts)
