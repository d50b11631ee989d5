"""Physical pixel sizes of OME/ImageJ TIFFs and OME-TIFF writing (private part of
:mod:`selfdenoise.ome`; see there)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ._errors import SelfDenoiseError
from ._ome_units import _OME_SYMBOLS, _checked, _one_line, _units_per_axis, normalize_unit
from .axes import validate_axes

# --- TIFF physical sizes -------------------------------------------------------------------

_TIFF_TO_AXES = {"T": "T", "Z": "Z", "C": "C", "S": "C", "Q": "S", "Y": "Y", "X": "X"}


def tiff_physical_metadata(source: Any) -> tuple[str | None, tuple | None, tuple | None]:
    """Axes, pixel sizes and units of a TIFF's first series (OME-XML, else ImageJ/tags).

    Parameters
    ----------
    source : str, path-like or tifffile.TiffFile

    Returns
    -------
    axes : str or None
        Our axes letters (None when tifffile's axes have no equivalent).
    scale : tuple of float or None
        Pixel size per axis (1.0 where unknown), None when the file gives no physical size.
    units : tuple of (str or None) or None
        Unit per axis (NGFF names), None alongside ``scale``.
    """
    import tifffile

    if isinstance(source, tifffile.TiffFile):
        return _tiff_physical(source)
    try:
        with tifffile.TiffFile(source) as tif:
            return _tiff_physical(tif)
    except (OSError, ValueError) as exc:  # tifffile's format errors are ValueErrors
        raise SelfDenoiseError(f"cannot read '{source}': {_one_line(exc)}.") from exc


def _tiff_physical(tif: Any) -> tuple[str | None, tuple | None, tuple | None]:
    series = tif.series[0]
    letters = "".join(_TIFF_TO_AXES.get(a, "?") for a in series.axes)
    try:
        axes = validate_axes(letters, len(series.shape))
    except SelfDenoiseError:
        return None, None, None
    sizes: dict[str, float] = {}
    units: dict[str, str | None] = {}
    if tif.is_ome and tif.ome_metadata:
        _ome_xml_sizes(tif.ome_metadata, sizes, units)
    if not sizes:
        _imagej_sizes(tif, series, sizes, units)
    if not sizes:
        return axes, None, None
    return axes, tuple(sizes.get(a, 1.0) for a in axes), tuple(units.get(a) for a in axes)


def _ome_xml_sizes(xml: str, sizes: dict, units: dict) -> None:
    import tifffile

    image = tifffile.xml2dict(xml).get("OME", {}).get("Image", {})
    pixels = (image[0] if isinstance(image, list) else image).get("Pixels", {})
    for letter in "XYZ":
        value = pixels.get(f"PhysicalSize{letter}")
        if value:
            sizes[letter] = float(value)
            units[letter] = normalize_unit(pixels.get(f"PhysicalSize{letter}Unit", "µm"))
    if pixels.get("TimeIncrement"):
        sizes["T"] = float(pixels["TimeIncrement"])
        units["T"] = normalize_unit(pixels.get("TimeIncrementUnit", "s"))


def _imagej_sizes(tif: Any, series: Any, sizes: dict, units: dict) -> None:
    tags = series.keyframe.tags
    imagej = tif.imagej_metadata or {}
    unit = normalize_unit(imagej.get("unit"))
    if unit is None and "ResolutionUnit" in tags:
        unit = {2: "inch", 3: "centimeter"}.get(int(tags["ResolutionUnit"].value))
    for letter, tag in (("X", "XResolution"), ("Y", "YResolution")):
        if tag in tags:
            numerator, denominator = tags[tag].value
            if numerator and (numerator, denominator) != (1, 1):
                sizes[letter], units[letter] = denominator / numerator, unit
    if imagej.get("spacing"):
        sizes["Z"], units["Z"] = float(imagej["spacing"]), unit
    if imagej.get("finterval"):
        sizes["T"] = float(imagej["finterval"])
        units["T"] = normalize_unit(imagej.get("tunit", "s")) or "second"


def write_ome_tiff(
    path: str | os.PathLike,
    array: Any,
    axes: str,
    scale: Sequence[float] | None = None,
    units: str | Sequence[str | None] | None = None,
) -> Path:
    """Write an OME-TIFF with PhysicalSizeX/Y/Z (and TimeIncrement) and their units.

    Axes other than Y and X are moved before them (OME keeps Y, X last); ``S`` is stored as
    tifffile's ``Q`` axis. NumPy arrays are written at once; dask, zarr and other arrays plane
    by plane, reading one chunk-deep slab of the first axis at a time. Written to a temporary
    sibling, then renamed into place. PhysicalSize units default to micrometres.
    """
    import numpy as np
    import tifffile

    path = Path(path)
    axes, scale, _ = _checked(array, axes, scale, None)
    unit_of = _units_per_axis(units, axes)
    order = [i for i, a in enumerate(axes) if a not in "YX"] + [axes.index("Y"), axes.index("X")]
    ordered = "".join(axes[i] for i in order)
    metadata: dict[str, Any] = {"axes": ordered.replace("S", "Q")}
    for letter in "XYZ":
        if letter in axes and scale[axes.index(letter)] != 1.0:
            metadata[f"PhysicalSize{letter}"] = scale[axes.index(letter)]
            unit = unit_of.get(letter) or "micrometer"
            metadata[f"PhysicalSize{letter}Unit"] = _OME_SYMBOLS.get(unit, unit)
    if "T" in axes and scale[axes.index("T")] != 1.0:
        metadata["TimeIncrement"] = scale[axes.index("T")]
        unit = unit_of.get("T") or "second"
        metadata["TimeIncrementUnit"] = _OME_SYMBOLS.get(unit, unit)
    if isinstance(array, np.ndarray):
        data: Any = np.transpose(array, order)
        shape, dtype = data.shape, data.dtype
    else:  # dask, zarr, memmap...: written plane by plane, one slab of the first axis at a time
        shape = tuple(array.shape[i] for i in order)
        dtype = np.dtype(array.dtype)
        data = _planes(array, order)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tifffile.imwrite(
            temporary,
            data,
            shape=shape,
            dtype=dtype,
            ome=True,
            photometric="minisblack",
            bigtiff=math.prod(shape) * dtype.itemsize > 2**32 - 2**25,
            metadata=metadata,
        )
        os.replace(temporary, path)
    except OSError as exc:
        raise SelfDenoiseError(f"cannot write '{path}': {_one_line(exc)}.") from exc
    finally:
        temporary.unlink(missing_ok=True)
    return path


def _planes(array: Any, order: list[int]) -> Iterator[Any]:
    """The YX planes of ``array`` transposed to ``order``, reading one slab at a time."""
    import dask.array as da
    import numpy as np

    data = (array if isinstance(array, da.Array) else da.from_array(array)).transpose(order)
    if data.ndim == 2:
        yield np.asarray(data)
        return
    step = max(1, data.chunks[0][0])
    for start in range(0, data.shape[0], step):
        slab = np.asarray(data[start : start + step])
        for index in np.ndindex(slab.shape[:-2]):
            yield slab[index]
