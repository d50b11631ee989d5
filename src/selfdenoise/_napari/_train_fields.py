"""The fields of the Train widget: data, method, budget and advanced settings.

:class:`TrainFields` lays them out and turns them into a :class:`~._jobs.TrainRequest`;
:class:`~._train_widget.TrainWidget` adds running, progress and the model actions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, LineEdit, Select, SpinBox
from qtpy.QtWidgets import QHBoxLayout, QPushButton, QWidget
from superqt import QCollapsible

from .._errors import SelfDenoiseError
from ..axes import validate_axes
from ..config import (
    DEVICES,
    SCHEDULES,
    NetworkConfig,
    TrainingConfig,
    make_config,
)
from ..registry import get_method
from ._base import WorkerWidget, add_row, form_layout, hint_label, parse_shape, shrinkable
from ._jobs import TrainRequest
from ._layers import (
    base_data,
    guess_layer_axes,
    layer_choices,
    preferred_input,
    show_full_names,
)
from ._session import SELF_SUPERVISED, SESSION_MODELS, method_label

if TYPE_CHECKING:
    from napari.layers import Layer

    from ..api import Denoiser
    from ..config import DenoiserConfig

PAIR_CHOICES = [
    ("auto", "auto"),
    ("adjacent", "adjacent"),
    ("diagonal (shared noise)", "diagonal"),
]
"""Choices of Neighbor2Neighbor's pixel pairs (the config's ``neighbour_pairs``)."""

STRUCT_AXIS_CHOICES = [("off", 0), ("X (along rows)", -1), ("Y (along columns)", -2), ("Z", -3)]
"""Choices of the structN2V line axis: 0 = off, else the masking ``struct_axis``."""

NEW_MODEL = "new model"
"""Choice of the "Start from" picker that trains from scratch."""

_DEFAULTS = TrainingConfig()

AUTO_WEIGHT = -0.5
"""Value of the γ regulariser field that reads 'auto' (its minimum; 0 means no regulariser)."""  # noqa: RUF001


class TrainFields(WorkerWidget):
    """Fields of the Train widget and their reactions (method help, axes guesses)."""

    def build_fields(self) -> None:
        """Create the data, method, settings and advanced sections."""
        self._build_data_section()
        self._build_method_section()
        self._build_settings_section()
        self._build_advanced_section()
        self.axes.changed.connect(self._axes_changed)

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
        shrinkable(self.start_from.native)
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
        self.batch_size = SpinBox(value=_DEFAULTS.batch_size or 0, min=0, max=1024)
        self.batch_size.native.setSpecialValueText("auto")  # 0: chosen for the device
        self.epochs = SpinBox(value=_DEFAULTS.epochs or 10, min=1, max=100_000)
        self.max_minutes = FloatSpinBox(value=0.0, min=0.0, max=10_000.0, step=1.0)
        self.max_minutes.native.setSpecialValueText("off (use epochs)")
        self.lambda_inv = FloatSpinBox(value=0.0, min=0.0, max=100.0, step=0.5)
        self.lambda_inv.native.setSpecialValueText("auto (2σ)")  # noqa: RUF001
        # the lowest value, below 0, reads 'auto' (0 itself means no regulariser)
        self.regulariser_weight = FloatSpinBox(
            value=AUTO_WEIGHT, min=AUTO_WEIGHT, max=100.0, step=0.5
        )
        self.regulariser_weight.native.setSpecialValueText("auto")
        self.regulariser_weight.changed.connect(lambda *_: self.method_changed(self.method.value))
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
            "Patches per step; 'auto' = chosen for the device (16 in 2D, 4 in 3D on the CPU, "
            "filling the free memory on a GPU). Lower it if the GPU runs out of memory.",
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
            "Noise2Same: weight of the invariance term. 'auto' (the lowest value) uses twice "
            "the noise level estimated from the image, the paper's rule.",
        )
        add_row(
            form,
            "γ regulariser",  # noqa: RUF001
            self.regulariser_weight,
            "Neighbor2Neighbor: final weight of the regulariser that keeps edges and fine "
            "texture. 'auto' (the lowest value) reads the noise of the training images: 0 for "
            "photon-limited captures (it scored higher on real widefield and confocal data, "
            "and a step costs less), else 2, the paper's, for natural images.",
        )
        self.neighbour_pairs = ComboBox(choices=PAIR_CHOICES, value="auto")
        add_row(
            form,
            "Pixel pairs",
            self.neighbour_pairs,
            "Neighbor2Neighbor trains on pairs of neighbouring pixels. 'adjacent' (the paper's) "
            "suits noise that is independent from pixel to pixel. 'diagonal' suits noise that "
            "neighbouring pixels share (camera captures, demosaicing or binning, images "
            "smoothed or resized before saving): adjacent pairs would teach the network to "
            "keep it. 'auto' reads the training images: diagonal for photon-limited captures, "
            "else adjacent.",
        )
        add_row(
            form,
            "Masked pixels (%)",
            self.masked_percent,
            "Share of pixels hidden from the network per step.",
        )
        self.struct_axis = ComboBox(choices=STRUCT_AXIS_CHOICES, value=0)
        add_row(
            form,
            "Stripe noise axis",
            self.struct_axis,
            "structN2V, for noise correlated along a line (stripes, scan lines): also hide a "
            "short line of pixels through each masked one along this axis. Off for noise that "
            "is independent from pixel to pixel.",
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
        self.unet_depth = SpinBox(value=NetworkConfig().depth, min=1, max=6)
        self.base_channels = SpinBox(value=NetworkConfig().base_channels, min=4, max=256)
        self.augment = CheckBox(value=_DEFAULTS.augment, text="flips and 90° rotations")
        self.seed = SpinBox(value=_DEFAULTS.seed, min=0, max=2**31 - 1)
        self.device = ComboBox(choices=list(DEVICES), value=_DEFAULTS.device)
        self.device.changed.connect(lambda *_: self.refresh_device())
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
        add_row(form, "U-Net depth", self.unet_depth, "Down-sampling levels (new models only).")
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

    def refresh_device(self) -> None:
        """Hook: the device preference changed."""

    def _ask_model_file(self) -> None:
        """Hook: the 'Load…' button was pressed (the Train widget asks for a file)."""

    # ------------------------------------------------------------------ reactions
    def reset_choices(self, *_: Any) -> None:
        """Refresh the layer and model pickers; with nothing chosen, pick the noisy input."""
        for picker in (self.images, self.validation, self.start_from):
            picker.reset_choices()
        if not self.images.value:
            preferred = preferred_input(self.viewer)
            if preferred is not None:
                self.images.value = [preferred]
        show_full_names(self.images, self.validation)

    def _refresh_models(self) -> None:
        self.start_from.reset_choices()

    def show_model_history(self, model: Denoiser) -> None:
        """Hook: a model to continue from was chosen."""

    def _images_changed(self, *_: Any) -> None:
        layers = self.images.value
        if layers:
            model = self._start_model()
            spatial = model.config.ndim if model is not None else None
            self.axes.value = guess_layer_axes(layers[0], spatial)

    def _method_changed(self, *_: Any) -> None:
        """Show the method's help and load into the fields it has its own for: the settings
        of the model that training continues from, else the method's defaults."""
        method = self.method.value
        self.method_help.setText(get_method(method).summary)
        defaults = self._field_values()
        self.masked_percent.value = round(100 * defaults.masking.fraction, 2)
        self.learning_rate.value = f"{defaults.training.learning_rate:g}"
        self.schedule.value = defaults.training.schedule
        self.batch_size.value = defaults.training.batch_size or 0
        self.unet_depth.value = defaults.network.depth
        self.base_channels.value = defaults.network.base_channels
        self._set_row_visible(self.lambda_inv, method == "noise2same")
        lambda_inv = defaults.lambda_inv
        self.lambda_inv.value = 0.0 if lambda_inv == "auto" else float(lambda_inv)
        self._set_row_visible(self.regulariser_weight, method == "neighbor2neighbor")
        weight = defaults.regulariser_weight
        self.regulariser_weight.value = AUTO_WEIGHT if weight == "auto" else float(weight)
        self._set_row_visible(self.neighbour_pairs, method == "neighbor2neighbor")
        self.neighbour_pairs.value = defaults.neighbour_pairs
        masks = get_method(method).uses_masking
        self._set_row_visible(self.masked_percent, masks)
        self._set_row_visible(self.struct_axis, masks)
        self.method_changed(method)

    def method_changed(self, method: str) -> None:
        """Hook: the method changed (its defaults are in the fields already)."""

    def _method_defaults(self) -> DenoiserConfig:
        """The method's settings for the axes in the field (2D ones while they are invalid)."""
        try:
            return make_config(self.method.value, validate_axes(self.axes.value.strip()))
        except SelfDenoiseError:
            return make_config(self.method.value)

    def _field_values(self) -> DenoiserConfig:
        """The settings the fields start from: the chosen start model's own (continuing it
        keeps them unless the user changes a field), else the method's defaults."""
        model = self._start_model()
        if model is not None and model.method == self.method.value:
            return model.config
        return self._method_defaults()

    def _axes_changed(self, *_: Any) -> None:
        self.batch_size.value = self._method_defaults().training.batch_size or 0

    def _set_row_visible(self, field: Any, visible: bool) -> None:
        field.native.setVisible(visible)
        label = self.settings_form.labelForField(field.native)
        if label is not None:
            label.setVisible(visible)

    def _start_model(self) -> Denoiser | None:
        name = self.start_from.value
        if not name or name == NEW_MODEL or name not in SESSION_MODELS.names():
            return None
        return SESSION_MODELS.get(name).denoiser

    def _start_from_changed(self, *_: Any) -> None:
        model = self._start_model()
        fixed = model is not None
        if model is not None:
            self.method.value = model.method
            self.show_model_history(model)
        self.method.enabled = not fixed
        self.unet_depth.enabled = self.base_channels.enabled = not fixed
        self._method_changed()  # the model's own settings, or the defaults again
        self._images_changed()

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
            "batch_size": self.batch_size.value or None,  # 0 = auto
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
            "struct_axis": self.struct_axis.value or None,
            "depth": self.unet_depth.value,
            "base_channels": self.base_channels.value,
        }
        if self.method.value == "noise2same":
            settings["lambda_inv"] = self.lambda_inv.value or "auto"
        if self.method.value == "neighbor2neighbor":
            settings["regulariser_weight"] = self.regulariser_weight_setting()
            settings["neighbour_pairs"] = self.neighbour_pairs.value
        return settings

    def regulariser_weight_setting(self) -> float | str:
        """The γ regulariser field as a setting: ``'auto'`` or a number >= 0."""
        value = self.regulariser_weight.value
        return "auto" if value < 0 else value

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


def _axes_mismatch(layer: Layer, axes: str) -> None:
    shape = "x".join(str(s) for s in base_data(layer).shape)
    raise SelfDenoiseError(
        f"axes {axes!r} do not fit layer {layer.name!r} ({len(base_data(layer).shape)}D, {shape}); "
        "give one letter per dimension, e.g. 'ZYX' or 'TYX'."
    )
