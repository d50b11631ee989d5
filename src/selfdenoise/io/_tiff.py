"""TIFF files through tifffile: ImageJ hyperstacks, OME-XML, TIFF tags and our own metadata."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import SelfDenoiseError
from ._common import Read, normal_unit, valid_axes_or_none
from ._ome import tiff_physical

_TIFF_TO_AXES = {"T": "T", "Z": "Z", "C": "C", "S": "C", "Y": "Y", "X": "X"}
_IMAGEJ_ORDER = "TZCYX"
_IMAGEJ_DTYPES = (np.uint8, np.uint16, np.float32)
_BIGTIFF_BYTES = 2**32 - 2**25  # leave room for tags and offsets


def _pick_series(path: Path, tif: Any, series: int | None) -> int:
    count = len(tif.series)
    if series is not None:
        if not 0 <= series < count:
            raise SelfDenoiseError(
                f"'{path}' holds {count} image series (0 to {count - 1}); series {series} "
                "does not exist."
            )
        return series
    if count > 1:
        first = tif.series[0]
        shape = "x".join(str(s) for s in first.shape)
        warnings.warn(
            f"'{path.name}' holds {count} image series; reading series 0 ({shape}, "
            f"{first.axes}); choose another with --series N (series=N in Python).",
            UserWarning,
            stacklevel=4,
        )
    return 0


def read_tiff(path: Path, memmap: bool, series: int | None) -> Read:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        index = _pick_series(path, tif, series)
        chosen = tif.series[index]
        axes = _tiff_axes(tif, chosen.axes)
        scale, unit = _physical(tif, chosen, index, axes)
        data = None if memmap else chosen.asarray()
    if memmap:
        try:
            data = tifffile.memmap(path, series=index, mode="r")
        except ValueError:  # compressed, tiled or scattered: read into memory instead
            data = tifffile.imread(path, series=index)
    return Read(data, axes, scale, unit)


def _shaped_metadata(tif: Any) -> dict[str, Any]:
    shaped = tif.shaped_metadata
    return dict(shaped[0]) if shaped else {}


def _tiff_axes(tif: Any, tiff_axes: str) -> str | None:
    """Our axes for a TIFF: as we wrote them, else mapped from tifffile's letters."""
    written = _shaped_metadata(tif).get("selfdenoise_axes")
    letters = {**_TIFF_TO_AXES, "Q": "S"} if tif.is_ome else _TIFF_TO_AXES  # OME: S is Q
    axes = written if written else "".join(letters.get(a, "?") for a in tiff_axes)
    return valid_axes_or_none(axes, len(tiff_axes))


def _physical(
    tif: Any, series: Any, index: int, axes: str | None
) -> tuple[tuple[float, ...] | None, str | None]:
    """Pixel sizes and unit: ours as we wrote them, else OME-XML/ImageJ, else TIFF tags."""
    if not axes:
        return None, None
    written = _shaped_metadata(tif).get("selfdenoise_scale")
    if written and len(written) == len(axes):
        return tuple(float(v) for v in written), _tiff_unit(tif)
    if index == 0:
        scale, unit = tiff_physical(tif, axes)
        if scale is not None:
            return scale, unit
    scale = _tiff_scale(tif, series, axes)
    return scale, _tiff_unit(tif) if scale else None


def _tiff_scale(tif: Any, series: Any, axes: str) -> tuple[float, ...] | None:
    sizes: dict[str, float] = {}
    tags = series.keyframe.tags
    for letter, tag in (("X", "XResolution"), ("Y", "YResolution")):
        if tag in tags:
            numerator, denominator = tags[tag].value
            if numerator and (numerator, denominator) != (1, 1):
                sizes[letter] = denominator / numerator  # pixels per unit -> unit per pixel
    imagej = tif.imagej_metadata or {}
    for letter, key in (("Z", "spacing"), ("T", "finterval")):
        if imagej.get(key):
            sizes[letter] = float(imagej[key])
    if not sizes:
        return None
    return tuple(float(sizes.get(letter, 1.0)) for letter in axes)


def _tiff_unit(tif: Any) -> str | None:
    written = _shaped_metadata(tif).get("selfdenoise_unit")
    return normal_unit(written or (tif.imagej_metadata or {}).get("unit"))


def write_tiff(
    path: Path, array: Any, axes: str | None, scale: tuple | None, unit: str | None
) -> None:
    import tifffile

    array = np.asarray(array)
    sizes = dict(zip(axes, scale, strict=True)) if axes and scale else {}
    resolution = (1.0 / sizes["X"], 1.0 / sizes["Y"]) if "X" in sizes and "Y" in sizes else None
    unit = unit if sizes else None
    bigtiff = array.nbytes > _BIGTIFF_BYTES
    if axes and _is_imagej_order(axes) and array.dtype in _IMAGEJ_DTYPES and not bigtiff:
        metadata: dict[str, Any] = {"axes": axes}
        if sizes.get("Z", 1.0) != 1.0:
            metadata["spacing"] = sizes["Z"]
        if sizes.get("T", 1.0) != 1.0:
            metadata["finterval"] = sizes["T"]
        if unit:
            metadata["unit"] = unit
        tifffile.imwrite(path, array, imagej=True, metadata=metadata, resolution=resolution)
        return
    metadata = {}
    if axes:
        metadata = {"axes": axes.replace("S", "Q"), "selfdenoise_axes": axes}
        if scale:
            metadata["selfdenoise_scale"] = list(scale)
        if unit:
            metadata["selfdenoise_unit"] = unit
    tifffile.imwrite(
        path,
        array,
        bigtiff=bigtiff,
        photometric="minisblack",
        metadata=metadata,
        resolution=resolution,
    )


def _is_imagej_order(axes: str) -> bool:
    positions = [_IMAGEJ_ORDER.find(letter) for letter in axes]
    return -1 not in positions and positions == sorted(positions)
