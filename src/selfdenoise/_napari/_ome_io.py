"""npe2 reader and writer for OME-Zarr images (contributed through ``napari.yaml``).

napari alone cannot open an OME-Zarr multiscale image; the reader here opens the first image of
a store lazily as a multiscale layer (all levels, with scale, translate, units and axes), and
returns None for anything that is not OME-Zarr so that other readers can take it. The writer
saves an image layer as ``.ome.zarr`` with a pyramid, streaming dask/zarr-backed data.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from .. import ome
from ..axes import guess_axes, validate_axes

LayerData = tuple[Any, dict, str]


def ome_zarr_reader(path: str | list[str]) -> Callable[[Any], list[LayerData]] | None:
    """npe2 ``get_reader``: a reader function for one OME-Zarr store, else None."""
    if isinstance(path, list | tuple):
        if len(path) != 1:
            return None
        path = path[0]
    if not isinstance(path, str | os.PathLike) or not ome.is_ome_zarr(path):
        return None
    return read_ome_zarr_layers


def read_ome_zarr_layers(path: str | list[str]) -> list[LayerData]:
    """The image of an OME-Zarr store as one lazy (multiscale) image layer."""
    if isinstance(path, list | tuple):
        path = path[0]
    image = ome.open_ome_zarr(path)
    name = image.name or os.path.basename(os.fspath(path).rstrip("/\\")).split(".")[0]
    kwargs: dict[str, Any] = {
        "name": name,
        "multiscale": len(image.levels) > 1,
        "scale": image.scale,
        "translate": image.translate,
        "metadata": {
            "axes": image.axes,
            "units": image.units,
            "source": os.fspath(path),
            "ngff_version": image.version,
        },
    }
    if image.axes:
        kwargs["axis_labels"] = tuple(image.axes)
    if any(image.units):
        kwargs["units"] = tuple(unit or "pixel" for unit in image.units)
    data = image.levels if len(image.levels) > 1 else image.levels[0]
    return [(data, kwargs, "image")]


def _layer_axes(shape: tuple[int, ...], attributes: dict) -> str:
    candidates = [
        (attributes.get("metadata") or {}).get("axes"),
        "".join(str(label) for label in attributes.get("axis_labels") or ()).upper(),
    ]
    for axes in candidates:
        if isinstance(axes, str) and axes:
            try:
                return validate_axes(axes, len(shape))
            except ome.SelfDenoiseError:
                continue
    return guess_axes(shape, rgb=bool(attributes.get("rgb")))


def write_ome_zarr_layer(path: str, data: Any, attributes: dict) -> list[str]:
    """npe2 single-layer writer: an image layer to an OME-Zarr store with a pyramid.

    Multiscale layers are written from their level 0; axes come from the layer's metadata
    (``'axes'``), its axis labels, or a guess from the shape; scale and units from the layer.
    """
    if attributes.get("multiscale") or isinstance(data, list | tuple):
        data = data[0]  # level 0 of a list or of napari's MultiScaleData
    shape = tuple(data.shape)
    axes = _layer_axes(shape, attributes)
    scale = attributes.get("scale")
    units = attributes.get("units")
    if units is not None:
        units = [str(unit) for unit in units]
        if len(units) != len(shape):
            units = None
    ome.write_ome_zarr(path, data, axes, scale=scale, units=units)
    return [os.fspath(path)]
