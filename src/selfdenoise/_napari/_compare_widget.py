"""Compare widget: metrics of denoised layers against a reference and the noisy input.

Shows one column per candidate (PSNR/SSIM with a reference; edge preservation; no-reference
noise readouts), over the whole image or the current slice; copies or exports the table as
CSV; optionally adds SSIM-map and residual layers; plots line profiles across an edge.

Scripted use::

    dock, widget = viewer.window.add_plugin_dock_widget("napari-selfdenoise", "Compare")
    widget.reference.value = viewer.layers["clean camera"]
    widget.noisy.value = viewer.layers["noisy camera"]
    widget.candidates.value = [viewer.layers["noisy camera denoised (Noise2Same)"]]
    widget.run()
    widget.wait()
    print(widget.to_csv())
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, LineEdit, Select, SpinBox
from qtpy.QtWidgets import (
    QApplication,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QWidget,
)

from .._errors import SelfDenoiseError
from ..metrics import BASELINE_NOT_APPLICABLE
from ._base import WorkerWidget, add_row, form_layout
from ._compare_profile import ProfileSection
from ._compare_table import (
    DATA_RANGE_HELP,
    fill_table,
    header_views,
    parse_data_range,
)
from ._feedback import Outcome
from ._jobs import CompareRequest, CompareResult, compare_job
from ._layers import (
    add_derived_image,
    base_data,
    check_same_shape,
    clean_partner,
    current_slice_index,
    image_layers,
    layer_choices,
    layer_kind,
    preferred_input,
    show_full_names,
    source_layer_name,
)

if TYPE_CHECKING:
    import napari.viewer
    from napari.layers import Layer

    from ..metrics import MetricsTable

WHOLE, CURRENT_SLICE = "whole image", "current slice"


class CompareWidget(ProfileSection, WorkerWidget):
    """Dock widget comparing denoised layers with a reference and the noisy input.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        Passed by napari when the widget is docked.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)
        self.result: CompareResult | None = None
        self.added_layers: list[Layer] = []
        self._baseline_name: str | None = None
        self._build_inputs()
        self._build_table()
        self._build_profile()
        self.content_layout.addStretch(1)
        self.reset_choices()

    # ------------------------------------------------------------------ layout
    def _build_inputs(self) -> None:
        self.reference = ComboBox(choices=lambda _: layer_choices(self.viewer, optional=True))
        self.noisy = ComboBox(choices=lambda _: layer_choices(self.viewer, optional=True))
        self.candidates = Select(choices=lambda _: layer_choices(self.viewer))
        self.candidates.native.setMaximumHeight(90)
        self.scope = ComboBox(choices=[WHOLE, CURRENT_SLICE], value=WHOLE)
        self.data_range = LineEdit(value="auto")
        self.edge_tolerance = SpinBox(value=1, min=0, max=10)
        self.baseline = CheckBox(value=True, text="score the noisy layer")
        self.ssim_maps = CheckBox(value=False, text="SSIM map layers")
        self.residuals = CheckBox(value=False, text="residual layers")
        self.run_button = QPushButton("Compare")
        self.run_button.clicked.connect(lambda: self.run())
        form = form_layout()
        add_row(
            form, "Reference", self.reference, "Optional clean ground truth; enables PSNR and SSIM."
        )
        add_row(
            form, "Noisy", self.noisy, "The noisy input; enables the noise readouts and residuals."
        )
        add_row(
            form,
            "Candidates",
            self.candidates,
            "Denoised layers to score (Ctrl-click for several); same shape as the others.",
        )
        add_row(
            form, "Region", self.scope, "Whole image/volume, or only the slice shown in the viewer."
        )
        add_row(form, "Data range", self.data_range, DATA_RANGE_HELP)
        add_row(
            form,
            "Edge tolerance (px)",
            self.edge_tolerance,
            "Canny edges closer than this count as matched (Canny F1).",
        )
        add_row(
            form,
            "Baseline",
            self.baseline,
            "Add the noisy layer as a column, to see what denoising gained.",
        )
        add_row(form, "Add", self.ssim_maps, "Add an SSIM map per candidate as a new layer.")
        add_row(form, "", self.residuals, "Add noisy - denoised per candidate as a new layer.")
        self.content_layout.addLayout(form)
        self.content_layout.addWidget(self.run_button)

    def _build_table(self) -> None:
        self.table = QTableWidget(0, 0)
        self.table.setMinimumHeight(150)
        header_views(self.table)[1].setDefaultSectionSize(22)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.copy_button = QPushButton("Copy CSV")
        self.copy_button.clicked.connect(self.copy_csv)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.clicked.connect(self._ask_csv_path)
        buttons = QHBoxLayout()
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.export_button)
        self.status = QLabel("Choose layers and press Compare.")
        self.status.setWordWrap(True)
        for widget in (self.status, self.table):
            self.content_layout.addWidget(widget)
        self.content_layout.addLayout(buttons)

    def reset_choices(self, event: Any = None) -> None:
        """Refresh all layer pickers and fill the empty ones from the layers' metadata.

        A newly added denoised layer fills all three: itself as the candidate, its source
        layer as the noisy input and that sample's clean layer (if any) as the reference.
        """
        for picker in (self.reference, self.noisy, self.candidates, self.profile_shapes):
            picker.reset_choices()
        added = getattr(event, "value", None) if getattr(event, "type", "") == "inserted" else None
        if added is not None and source_layer_name(added) and added in self._choices():
            self.fill_from(added)
        else:
            self._fill_empty()
        show_full_names(self.reference, self.noisy, self.candidates, self.profile_shapes)

    def _choices(self) -> list[Layer]:
        return image_layers(self.viewer)

    def fill_from(self, denoised: Layer) -> None:
        """Compare ``denoised`` with its source layer and the matching clean layer."""
        names = {layer.name: layer for layer in self._choices()}
        noisy = names.get(source_layer_name(denoised) or "")
        self.candidates.value = [denoised]
        if noisy is not None:
            self.noisy.value = noisy
        reference = clean_partner(self.viewer, noisy)
        if reference is not None:
            self.reference.value = reference

    def _fill_empty(self) -> None:
        layers = self._choices()
        if self.noisy.value is None:
            noisy = preferred_input(self.viewer)
            if noisy is not None and layer_kind(noisy) == "noisy":
                self.noisy.value = noisy
        if self.reference.value is None:
            reference = clean_partner(self.viewer, self.noisy.value)
            if reference is not None:
                self.reference.value = reference
        if not self.candidates.value:
            denoised = [layer for layer in layers if layer_kind(layer) == "denoised"]
            if denoised:
                self.candidates.value = denoised[-1:]

    # ------------------------------------------------------------------ metrics
    def build_request(self) -> CompareRequest:
        """Check the chosen layers and read (and slice) their data."""
        candidates = list(self.candidates.value)
        reference, noisy = self.reference.value, self.noisy.value
        if not candidates:
            raise SelfDenoiseError("choose at least one candidate (denoised) layer to compare.")
        if reference is None and noisy is None:
            raise SelfDenoiseError("choose a reference (clean) layer, a noisy layer, or both.")
        roles = {"reference": reference, "noisy": noisy}
        roles.update({f"candidate {i}": layer for i, layer in enumerate(candidates)})
        check_same_shape(roles)
        index = self._region_index(reference or noisy)

        def read(layer: Layer | None) -> np.ndarray | None:
            # Arrays keep their dtype: compare() then takes the data range from the
            # reference's dtype exactly as the CLI does on the same files.
            return None if layer is None else np.asarray(base_data(layer)[index])

        whole = self.scope.value == WHOLE
        arrays = {layer.name: read(layer) for layer in candidates}
        scored: dict[str, Any] = dict(arrays)
        self._baseline_name = None
        if self.baseline.value and noisy is not None and noisy.name not in arrays:
            scored = {noisy.name: read(noisy), **arrays}
            self._baseline_name = noisy.name
        options: dict[str, Any] = {
            "edge_tolerance": int(self.edge_tolerance.value),
            "data_range": parse_data_range(self.data_range.value),
        }
        return CompareRequest(
            candidates=scored,
            reference=read(reference),
            noisy=read(noisy),
            options=options,
            ssim_maps=bool(self.ssim_maps.value) and whole,
            residuals=bool(self.residuals.value) and whole,
            map_names=list(arrays),
        )

    def _region_index(self, layer: Layer) -> tuple:
        if self.scope.value == CURRENT_SLICE and layer.ndim > 2:
            return current_slice_index(self.viewer, layer)
        return (slice(None),) * layer.ndim

    def run(self) -> Any:
        """Compute the table in a worker; returns the worker (None on bad input)."""
        if self.is_running:
            self.fail("a comparison is already running.")
            return None
        request = self.guarded(self.build_request)
        if request is None:
            return None
        self._sources = {layer.name: layer for layer in self.candidates.value}
        self._reference_layer = self.reference.value or self.noisy.value
        self._scope = self.scope.value
        self.status.setText("Computing metrics…")
        self.run_button.setEnabled(False)
        return self.start_job(compare_job, request, on_done=self._compared)

    def job_finished(self) -> None:
        self.run_button.setEnabled(True)

    def _compared(self, outcome: Outcome) -> None:
        if not outcome.ok:
            self.status.setText("Comparison failed; see the notification.")
            return
        self.result = outcome.value
        if self._baseline_name is not None:
            self.result.table.mark_not_applicable(self._baseline_name, BASELINE_NOT_APPLICABLE)
        self.show_table(self.result.table)
        self.added_layers = self._add_result_layers(self.result)
        region = "current slice" if self._scope == CURRENT_SLICE else "whole image"
        note = ""
        if self._scope == CURRENT_SLICE and (self.ssim_maps.value or self.residuals.value):
            note = " Map layers are only added for the whole image."
        self.status.setText(f"Metrics over the {region}; hover a row name for its meaning.{note}")

    def show_table(self, table: MetricsTable) -> None:
        """Fill the Qt table (see :func:`~._compare_table.fill_table`) and lay the dock out
        at once, so the rows below are never drawn under the grown table."""
        fill_table(self.table, table)
        self.content_layout.invalidate()
        self.content_layout.activate()

    def table_value(self, candidate: str, metric: str) -> Any:
        """A value of the last table (for scripts and tests)."""
        if self.result is None:
            raise SelfDenoiseError("no comparison yet; press Compare first.")
        row = next(r for r in self.result.table.rows if r["name"] == candidate)
        return row.get(metric)

    def _add_result_layers(self, result: CompareResult) -> list[Layer]:
        """Add SSIM maps and residuals as new layers aligned with their candidates."""
        added = []
        for name, image in result.ssim_maps.items():
            source = self._sources.get(name) or self._reference_layer
            added.append(
                add_derived_image(
                    self.viewer,
                    source,
                    image,
                    f"SSIM map {name}",
                    kind="ssim map",
                    colormap="viridis",
                    contrast_limits=(0.0, 1.0),
                )
            )
        for name, image in result.residuals.items():
            source = self._sources.get(name) or self._reference_layer
            added.append(
                add_derived_image(
                    self.viewer, source, image, f"residual {name}", kind="residual", colormap="gray"
                )
            )
        return added

    # ------------------------------------------------------------------ CSV
    def to_csv(self) -> str:
        """The last table as CSV text (one row per candidate)."""
        if self.result is None:
            raise SelfDenoiseError("no comparison yet; press Compare first.")
        return self.result.table.to_csv()

    def copy_csv(self) -> None:
        """Put the table on the clipboard as CSV."""
        text = self.guarded(self.to_csv)
        clipboard = QApplication.clipboard()
        if text is not None and clipboard is not None:
            clipboard.setText(text)
            self.status.setText("Table copied to the clipboard as CSV.")

    def export_csv(self, path: str | Path) -> Path | None:
        """Write the table to a CSV file; returns the path."""
        text = self.guarded(self.to_csv)
        if text is None:
            return None
        path = Path(path)
        if self.guarded(lambda: path.write_text(text, encoding="utf-8")) is None:
            return None
        self.status.setText(f"Table saved to {path}.")
        return path

    def _ask_csv_path(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export metrics", "metrics.csv", "CSV (*.csv)")
        if path:
            self.export_csv(path)
