"""OME formats in the format table: OME-Zarr through ome-zarr-py, OME-TIFF through tifffile.

The readers and writers here adapt :mod:`selfdenoise.ome` to the table's signatures. A zarr
store is read as OME-Zarr when it carries NGFF metadata (level 0, lazily, as a dask array),
else with the reader for stores that earlier versions wrote (our own attributes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import ome
from ..axes import guess_axes
from ._common import Read, normal_unit
from ._zarr import read_zarr


def spatial_unit(units: Any, axes: str | None) -> str | None:
    """The one unit an :class:`~selfdenoise.io.ImageFile` keeps: that of X, else Y or Z."""
    if not units or not axes:
        return None
    by_axis = dict(zip(axes, units, strict=False))
    for letter in "XYZ":
        if by_axis.get(letter):
            return normal_unit(by_axis[letter])
    return None


def read_any_zarr(path: Path, memmap: bool, series: int | None) -> Read:
    """OME-Zarr level 0 when ``path`` holds NGFF metadata, else our earlier zarr layout."""
    if not ome.is_ome_zarr(path):
        return read_zarr(path, memmap, series)
    data, axes, scale, units = ome.read_ome_zarr(path)
    if axes is None:
        return Read(data)
    has_scale = any(v != 1.0 for v in scale) or any(units)
    unit = spatial_unit(units, axes)
    return Read(data, axes, tuple(scale) if has_scale else None, unit)


def write_ome_zarr_file(
    path: Path, array: Any, axes: str | None, scale: tuple | None, unit: str | None
) -> None:
    """An OME-Zarr store with a pyramid (atomic: ome writes a sibling and renames it)."""
    axes = axes or guess_axes(tuple(array.shape))
    ome.write_ome_zarr(path, array, axes, scale=scale, units=unit)


def write_ome_tiff_file(
    path: Path, array: Any, axes: str | None, scale: tuple | None, unit: str | None
) -> None:
    """An OME-TIFF with PhysicalSize X/Y/Z and their unit."""
    axes = axes or guess_axes(tuple(array.shape))
    ome.write_ome_tiff(path, array, axes, scale=scale, units=unit)


def tiff_physical(tif: Any, axes: str | None) -> tuple[tuple | None, str | None]:
    """Pixel sizes (per ``axes``) and unit from OME-XML or ImageJ metadata, if the file has any."""
    try:
        found_axes, scale, units = ome.tiff_physical_metadata(tif)
    except Exception:  # metadata we cannot parse: no physical size rather than no image
        return None, None
    if scale is None or found_axes is None or axes is None:
        return None, None
    if found_axes != axes:
        if sorted(found_axes) != sorted(axes):
            return None, None
        sizes = dict(zip(found_axes, scale, strict=True))
        scale = tuple(sizes[a] for a in axes)
    return tuple(float(v) for v in scale), spatial_unit(units, found_axes)
