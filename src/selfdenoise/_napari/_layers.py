"""Layer helpers shared by the widgets: choices, axes guesses, data access and new layers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from napari.layers import Image, Layer, Shapes

from .._errors import SelfDenoiseError
from ..axes import VALID_AXES, guess_axes, validate_axes

NO_LAYER = "(none)"
"""Label of the empty choice in optional layer pickers."""

_COPIED_STATE = (
    "scale",
    "translate",
    "rotate",
    "shear",
    "affine",
    "units",
    "axis_labels",
    "colormap",
    "blending",
    "gamma",
)
"""Display and geometry settings that a derived layer inherits from its source."""


KIND_KEY = "kind"
"""Layer-metadata key telling what a layer holds: 'noisy' / 'clean' (samples), 'denoised',
'ssim map' or 'residual' (layers the widgets add)."""

SOURCE_KEY = "selfdenoise"
"""Layer-metadata key of a denoised layer's provenance (method, source layer, model)."""


def unwrap_viewer(viewer: Any) -> Any:
    """The real viewer behind napari's ``PublicOnlyProxy`` (identity of layers then holds)."""
    return getattr(viewer, "__wrapped__", viewer)


def layer_choices(
    viewer: Any, kind: type[Layer] = Image, optional: bool = False
) -> list[tuple[str, Any]]:
    """``(name, layer)`` pairs of the viewer's layers of one kind, for magicgui pickers.

    Parameters
    ----------
    viewer : napari.Viewer or napari.components.ViewerModel
        Where the layers live.
    kind : type
        Layer class to list (Image by default).
    optional : bool
        Prepend ``('(none)', None)``.
    """
    choices: list[tuple[str, Any]] = [(NO_LAYER, None)] if optional else []
    choices += [(layer.name, layer) for layer in viewer.layers if isinstance(layer, kind)]
    return choices


def watch_layers(viewer: Any, callback: Callable[..., Any]) -> list[tuple[Any, Callable]]:
    """Call ``callback(event)`` whenever layers are added, removed, moved or renamed.

    Returns the ``(emitter, callback)`` pairs, to disconnect them later.
    """
    events = viewer.layers.events
    connected = []
    for name in ("inserted", "removed", "reordered", "moved", "renamed"):
        emitter = getattr(events, name, None)
        if emitter is not None:
            emitter.connect(callback)
            connected.append((emitter, callback))
    return connected


def layer_kind(layer: Layer) -> str:
    """What a layer holds, from its metadata: 'noisy', 'clean', 'denoised', ... or ''."""
    return str((layer.metadata or {}).get(KIND_KEY, ""))


def source_layer_name(layer: Layer) -> str | None:
    """Name of the layer a denoised layer was made from (from its metadata), if known."""
    provenance = (layer.metadata or {}).get(SOURCE_KEY) or {}
    name = provenance.get("source_layer") if isinstance(provenance, dict) else None
    return str(name) if name else None


def image_layers(viewer: Any) -> list[Image]:
    """The viewer's image layers, bottom to top."""
    return [layer for layer in viewer.layers if isinstance(layer, Image)]


def preferred_input(viewer: Any) -> Image | None:
    """The layer a newcomer means to train on or denoise: the sample's noisy layer, else the
    topmost visible image that is neither a hidden ground truth nor a result of the widgets."""
    images = image_layers(viewer)
    noisy = [layer for layer in images if layer_kind(layer) == "noisy"]
    if noisy:
        return noisy[-1]
    plain = [layer for layer in images if layer_kind(layer) == "" and layer.visible]
    if plain:
        return plain[-1]
    return next((layer for layer in reversed(images) if layer_kind(layer) != "clean"), None)


def clean_partner(viewer: Any, noisy: Layer | None) -> Image | None:
    """The ground-truth layer that belongs to ``noisy`` (same sample), if there is one."""
    cleans = [layer for layer in image_layers(viewer) if layer_kind(layer) == "clean"]
    if noisy is None or not cleans:
        return cleans[-1] if len(cleans) == 1 else None
    description = (noisy.metadata or {}).get("description")
    same = [c for c in cleans if (c.metadata or {}).get("description") == description]
    shape = np.shape(base_data(noisy))
    fitting = [c for c in (same or cleans) if np.shape(base_data(c)) == shape]
    return fitting[-1] if fitting else None


def show_full_names(*pickers: Any) -> None:
    """Long layer names: elide in the middle in lists and give each entry its full name as a
    tooltip (the picker's own tooltip shows the current choice in full)."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QComboBox, QListWidget

    for picker in pickers:
        native = getattr(picker, "native", picker)
        if isinstance(native, QListWidget):
            native.setTextElideMode(Qt.TextElideMode.ElideMiddle)
            native.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            for row in range(native.count()):
                item = native.item(row)
                if item is not None:
                    item.setToolTip(item.text())
            chosen = native.selectedItems()
            if chosen:
                native.scrollToItem(chosen[-1])
        elif isinstance(native, QComboBox):
            view = native.view()
            if view is not None:
                view.setTextElideMode(Qt.TextElideMode.ElideMiddle)
            for row in range(native.count()):
                native.setItemData(row, native.itemText(row), Qt.ItemDataRole.ToolTipRole)
            base = native.property("fieldTip") or native.toolTip()
            native.setProperty("fieldTip", base)
            current = native.currentText()
            native.setToolTip(f"{current}\n{base}" if current and base else current or base)


def base_data(layer: Layer) -> Any:
    """The full-resolution data of a layer (level 0 of a multiscale layer), not copied."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def guess_layer_axes(layer: Layer, spatial_ndim: int | None = None) -> str:
    """Axes string for a layer: its metadata, then its axis labels, then a shape-based guess.

    Parameters
    ----------
    layer : napari.layers.Image
        The layer.
    spatial_ndim : int, optional
        Spatial dimensions of the model that will see the data; with 2, a guessed ``Z``
        becomes ``T`` (a 2D model denoises a stack plane by plane).

    Returns
    -------
    str
        An axes string with one letter per dimension; the user may edit it.
    """
    shape = tuple(np.shape(base_data(layer)))
    rgb = bool(getattr(layer, "rgb", False))
    axes = _axes_from_metadata(layer, len(shape)) or _axes_from_labels(layer, len(shape))
    if axes is None:
        try:
            axes = guess_axes(shape, rgb=rgb)
        except SelfDenoiseError:
            axes = ""
    if spatial_ndim == 2 and "Z" in axes and "T" not in axes:
        axes = axes.replace("Z", "T")
    return axes


def _axes_from_metadata(layer: Layer, ndim: int) -> str | None:
    value = (layer.metadata or {}).get("axes")
    return _valid_or_none(value, ndim)


def _axes_from_labels(layer: Layer, ndim: int) -> str | None:
    labels = getattr(layer, "axis_labels", None)
    if not labels or not all(isinstance(label, str) and len(label) == 1 for label in labels):
        return None
    return _valid_or_none("".join(labels), ndim)


def _valid_or_none(value: Any, ndim: int) -> str | None:
    if not isinstance(value, str) or not set(value.upper()) <= set(VALID_AXES):
        return None
    try:
        return validate_axes(value, ndim)
    except SelfDenoiseError:
        return None


def derived_layer_kwargs(source: Layer, name: str, extra_metadata: dict | None = None) -> dict:
    """Keyword arguments for a new Image layer that sits exactly on top of ``source``.

    Copies scale, translate, rotation/shear/affine, units, axis labels, colormap, blending and
    gamma, and a copy of the metadata (plus ``extra_metadata`` under ``'selfdenoise'``).
    """
    _, state, _ = source.as_layer_data_tuple()
    kwargs = {key: state[key] for key in _COPIED_STATE if key in state}
    if "colormap" in kwargs and not isinstance(kwargs["colormap"], str):
        kwargs["colormap"] = getattr(source.colormap, "name", "gray")
    metadata = dict(source.metadata or {})
    if extra_metadata:
        metadata["selfdenoise"] = dict(extra_metadata)
    kwargs.update(name=name, metadata=metadata)
    return kwargs


def add_derived_image(
    viewer: Any,
    source: Layer,
    data: np.ndarray,
    name: str,
    kind: str = "",
    **overrides: Any,
) -> Image:
    """Add ``data`` as a NEW image layer aligned with ``source``; never reuses a layer.

    napari adds a numbered suffix when ``name`` is taken, so no user layer is replaced.
    ``kind`` ('denoised', 'ssim map', 'residual') replaces the source's kind in the metadata,
    so a result is never mistaken for the noisy input or the ground truth.
    """
    metadata = overrides.pop("selfdenoise_metadata", None)
    kwargs = derived_layer_kwargs(source, name, metadata)
    kwargs["metadata"][KIND_KEY] = kind
    if not metadata:
        kwargs["metadata"].pop(SOURCE_KEY, None)
    kwargs.update(overrides)
    if getattr(source, "rgb", False) and np.ndim(data) == source.ndim + 1:
        kwargs["rgb"] = True
    return viewer.add_image(data, **kwargs)


def check_same_shape(layers: dict[str, Layer | None]) -> None:
    """Raise a one-line error unless all given layers have the same data shape."""
    present = {role: layer for role, layer in layers.items() if layer is not None}
    shapes = {role: tuple(np.shape(base_data(layer))) for role, layer in present.items()}
    if len(set(shapes.values())) > 1:
        detail = ", ".join(
            f"{present[role].name!r} {'x'.join(map(str, shape))}" for role, shape in shapes.items()
        )
        raise SelfDenoiseError(f"layers must have the same shape to compare; got {detail}.")


def current_slice_index(viewer: Any, layer: Layer) -> tuple[int | slice, ...]:
    """Index into ``layer.data`` selecting the plane the viewer currently shows.

    Displayed dimensions keep ``slice(None)``; the others get the viewer's current position
    converted to the layer's data coordinates.
    """
    world_ndim = viewer.dims.ndim
    offset = world_ndim - layer.ndim
    displayed = set(viewer.dims.displayed)
    point = np.asarray(viewer.dims.point, dtype=float)
    data_point = np.asarray(layer.world_to_data(point[offset:]), dtype=float)
    shape = np.shape(base_data(layer))
    index: list[int | slice] = []
    for axis in range(layer.ndim):
        if axis + offset in displayed:
            index.append(slice(None))
        else:
            position = int(np.clip(np.round(data_point[axis]), 0, shape[axis] - 1))
            index.append(position)
    return tuple(index)


def first_line(shapes: Shapes) -> np.ndarray:
    """Vertices (2 x ndim, data coordinates) of the first line/path in a Shapes layer."""
    for shape_type, vertices in zip(shapes.shape_type, shapes.data, strict=True):
        if shape_type in ("line", "path") and len(vertices) >= 2:
            return np.asarray(vertices, dtype=float)
    raise SelfDenoiseError(
        f"shapes layer {shapes.name!r} has no line; draw one with the line tool first."
    )
