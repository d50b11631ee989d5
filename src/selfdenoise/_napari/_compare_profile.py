"""The Compare widget's line-profile section: a Shapes line across an edge, and the noisy,
reference and candidate intensities along it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from magicgui.widgets import ComboBox, Select
from napari.layers import Shapes
from qtpy.QtWidgets import QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from .._errors import SelfDenoiseError
from ._base import add_row, form_layout, shrinkable
from ._layers import layer_choices
from ._plot import PALETTE, LinePlot, Series
from ._profile import line_profile, line_world_endpoints

if TYPE_CHECKING:
    import napari.viewer
    from napari.layers import Layer


class ProfileSection:
    """Mixin of :class:`~selfdenoise._napari._compare_widget.CompareWidget`: builds the profile
    rows and plot (``_build_profile``) and draws profiles of the widget's chosen layers
    (``noisy``, ``reference``, ``candidates``) in its ``viewer``."""

    # What the widget that mixes this in provides:
    viewer: napari.viewer.Viewer
    content_layout: QVBoxLayout
    noisy: ComboBox
    reference: ComboBox
    candidates: Select
    guarded: Callable[..., Any]

    def _build_profile(self) -> None:
        self.profile_shapes = ComboBox(
            choices=lambda _: layer_choices(self.viewer, Shapes, optional=True)
        )
        self.new_line_button = QPushButton("New line")
        self.new_line_button.setToolTip(
            "Add a Shapes layer and switch to the line tool; draw across an edge."
        )
        self.new_line_button.clicked.connect(self.add_line_layer)
        self.profile_button = QPushButton("Plot profile")
        self.profile_button.clicked.connect(lambda: self.plot_profile())
        shrinkable(self.profile_shapes.native)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.profile_shapes.native, 1)
        row.addWidget(self.new_line_button)
        holder = QWidget()
        holder.setLayout(row)
        form = form_layout()
        add_row(form, "Profile line", holder, "Shapes layer whose first line gives the profile.")
        self.content_layout.addLayout(form)
        self.content_layout.addWidget(self.profile_button)
        self.profile_plot = LinePlot(
            x_label="distance along the line (pixels)",
            y_label="intensity",
            placeholder="draw a line across an edge, then 'Plot profile'",
        )
        self.content_layout.addWidget(self.profile_plot)

    def add_line_layer(self) -> Layer:
        """Add an empty Shapes layer in line-drawing mode and select it for profiles."""
        ndim = max(2, self.viewer.dims.ndim)
        layer = self.viewer.add_shapes(
            ndim=ndim, name="profile line", edge_color="yellow", edge_width=1.5
        )
        layer.mode = "add_line"
        self.profile_shapes.value = layer
        return layer

    def plot_profile(self) -> list[Series] | None:
        """Plot noisy, reference and candidates along the first line of the chosen Shapes layer."""
        return self.guarded(self._plot_profile)

    def _plot_profile(self) -> list[Series]:
        shapes = self.profile_shapes.value
        if shapes is None:
            raise SelfDenoiseError("choose a Shapes layer with a line ('New line' adds one).")
        layers = [("noisy", self.noisy.value), ("reference", self.reference.value)]
        layers += [(layer.name, layer) for layer in self.candidates.value]
        layers = [(label, layer) for label, layer in layers if layer is not None]
        if not layers:
            raise SelfDenoiseError("choose a noisy, reference or candidate layer to profile.")
        start, end = line_world_endpoints(self.viewer, shapes)
        colours = {"noisy": "#9a9a9a", "reference": "#f2f2f2"}
        series = []
        for index, (label, layer) in enumerate(layers):
            distance, values = line_profile(layer, start, end)
            colour = colours.get(label, PALETTE[index % len(PALETTE)])
            width = 1.0 if label == "noisy" else 1.8
            series.append(Series(label, distance, values, colour, width=width))
        self.profile_plot.set_series(series)
        return series
