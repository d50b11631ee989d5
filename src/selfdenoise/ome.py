"""OME formats: OME-Zarr (NGFF 0.4 and 0.5) and the physical pixel sizes of OME/ImageJ TIFFs.

OME-Zarr goes through ome-zarr-py (the ``ome`` extra): level 0 of a multiscale image is read
lazily with its axes, scale, translation and units; writing streams a NumPy, zarr or dask array
into level 0 plus a pyramid (2x in YX per level, and in Z while that keeps the voxels no more
anisotropic), so napari and other viewers open it lazily. TIFF physical sizes come from
tifffile's OME-XML and ImageJ parsing.

Axes follow :mod:`selfdenoise.axes`: NGFF's ``t``/``c``/``z``/``y``/``x`` become ``T``/``C``/
``Z``/``Y``/``X``; our sample axis ``S`` is written as a custom NGFF axis ``s``. NGFF requires
the order ``t, (s), c, z, y, x``, so other orders are transposed on writing and come back in
that order. Units are NGFF (UDUNITS) names such as ``"micrometer"``.

Nothing here imports torch; the third-party imports happen inside the functions.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import SelfDenoiseError
from .axes import validate_axes

__all__ = [
    "OmeZarrImage",
    "is_ome_zarr",
    "normalize_unit",
    "open_ome_zarr",
    "pyramid_factors",
    "read_ome_zarr",
    "tiff_physical_metadata",
    "write_ome_tiff",
    "write_ome_zarr",
]

_INSTALL_HINT = "install it (Python 3.11+) with: pip install 'napari-selfdenoise[ome]'"
_NGFF_ORDER = "TSCZYX"  # our letters in the order NGFF wants them
_NGFF_TO_AXES = {"t": "T", "s": "S", "c": "C", "z": "Z", "y": "Y", "x": "X"}
_MIN_LEVEL_SIDE = 16  # no pyramid level smaller than this in Y or X
_MIN_LEVEL_DEPTH = 16  # Z is downsampled only while at least this many planes remain
_UNIT_ALIASES = {
    "µm": "micrometer",  # micro sign
    "μm": "micrometer",  # Greek mu
    "um": "micrometer",
    "micron": "micrometer",
    "microns": "micrometer",
    "\\u00b5m": "micrometer",  # how ImageJ sometimes stores µm
    "nm": "nanometer",
    "mm": "millimeter",
    "cm": "centimeter",
    "m": "meter",
    "å": "angstrom",
    "pm": "picometer",
    "in": "inch",
    "s": "second",
    "sec": "second",
    "ms": "millisecond",
    "µs": "microsecond",
    "min": "minute",
    "h": "hour",
}
_OME_SYMBOLS = {
    "micrometer": "µm",
    "nanometer": "nm",
    "millimeter": "mm",
    "centimeter": "cm",
    "meter": "m",
    "angstrom": "Å",
    "picometer": "pm",
    "inch": "in",
    "second": "s",
    "millisecond": "ms",
    "microsecond": "µs",
    "minute": "min",
    "hour": "h",
}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def normalize_unit(unit: Any) -> str | None:
    """NGFF name of a length or time unit (``'µm'`` -> ``'micrometer'``); None for no unit.

    Unknown names are returned lower-cased; ``'pixel'`` and empty strings mean no unit.
    """
    if unit is None:
        return None
    text = str(unit).strip()
    if not text or text.lower() in ("pixel", "pixels", "none", "1"):
        return None
    return _UNIT_ALIASES.get(text, _UNIT_ALIASES.get(text.lower(), text.lower()))


# --- OME-Zarr: finding and reading ---------------------------------------------------------


def _json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _ome_attributes(path: Path) -> tuple[dict, str | None]:
    """The OME attributes of a zarr group and the NGFF version they declare."""
    v3 = _json(path / "zarr.json")
    if v3:
        ome = v3.get("attributes", {}).get("ome", {})
        return (ome, str(ome.get("version", "0.5"))) if isinstance(ome, dict) else ({}, None)
    attrs = _json(path / ".zattrs")
    multiscales = attrs.get("multiscales")
    if isinstance(multiscales, list) and multiscales and isinstance(multiscales[0], dict):
        return attrs, str(multiscales[0].get("version", "0.4"))
    return attrs, None


def _image_group(path: str | os.PathLike) -> tuple[Path, str] | None:
    """The group holding the multiscale image (the store, or its ``0`` for bioformats2raw)."""
    path = Path(path)
    if not path.is_dir():
        return None
    attrs, version = _ome_attributes(path)
    if attrs.get("multiscales"):
        return path, version or "0.5"
    if "bioformats2raw.layout" in attrs and (path / "0").is_dir():
        inner, version = _ome_attributes(path / "0")
        if inner.get("multiscales"):
            return path / "0", version or "0.5"
    return None


def is_ome_zarr(path: str | os.PathLike) -> bool:
    """True if ``path`` is an OME-Zarr multiscale image (NGFF metadata; plain JSON, no library).

    Stores written by earlier versions of this package (a zarr array or group with our own
    ``axes``/``scale`` attributes) are not OME-Zarr.
    """
    return _image_group(path) is not None


@dataclass(frozen=True)
class OmeZarrImage:
    """A multiscale OME-Zarr image, opened lazily.

    Attributes
    ----------
    levels : list of dask.array.Array
        Resolution levels, largest (level 0) first.
    axes : str or None
        Our axes letters, or None when an NGFF axis has no equivalent.
    scale, translate : tuple of float
        Pixel size and offset of level 0, per axis.
    units : tuple of (str or None)
        Unit per axis (NGFF names), None where the file gives none.
    name : str or None
        The multiscale's name.
    version : str
        NGFF version of the store.
    """

    levels: list
    axes: str | None
    scale: tuple[float, ...]
    translate: tuple[float, ...]
    units: tuple[str | None, ...]
    name: str | None
    version: str


def _ome_zarr_modules() -> tuple[Any, Any, Any, Any]:
    """ome-zarr's format, io, reader and writer modules (imported on first use)."""
    try:
        with warnings.catch_warnings():  # ome-zarr warns about its own deprecations on import
            warnings.simplefilter("ignore", DeprecationWarning)
            from ome_zarr import format, io, reader, writer
    except ImportError as exc:
        raise SelfDenoiseError(f"OME-Zarr needs the ome-zarr package; {_INSTALL_HINT}.") from exc
    return format, io, reader, writer


def _level_transforms(transforms: Any, ndim: int) -> tuple[list[float], list[float]]:
    scale, translate = [1.0] * ndim, [0.0] * ndim
    for item in transforms or []:
        values = item.get("scale") or item.get("translation")
        if not isinstance(values, list) or len(values) != ndim:
            continue
        if item.get("type") == "scale":
            scale = [a * float(b) for a, b in zip(scale, values, strict=True)]
            translate = [a * float(b) for a, b in zip(translate, values, strict=True)]
        elif item.get("type") == "translation":
            translate = [a + float(b) for a, b in zip(translate, values, strict=True)]
    return scale, translate


def _our_axes(ngff_axes: Sequence[Any]) -> tuple[str | None, tuple[str | None, ...]]:
    names = [a.get("name", "") if isinstance(a, dict) else str(a) for a in ngff_axes]
    units = tuple(normalize_unit(a.get("unit")) if isinstance(a, dict) else None for a in ngff_axes)
    letters = "".join(_NGFF_TO_AXES.get(str(n).lower(), "?") for n in names)
    try:
        return validate_axes(letters, len(names)), units
    except SelfDenoiseError:
        return None, units


def open_ome_zarr(path: str | os.PathLike) -> OmeZarrImage:
    """Open the first multiscale image of an OME-Zarr store (NGFF 0.4 or 0.5) lazily.

    Raises
    ------
    SelfDenoiseError
        If ``path`` is not an OME-Zarr image, ome-zarr is missing or the store is unreadable.
    """
    found = _image_group(path)
    if found is None:
        raise SelfDenoiseError(f"'{path}' is not an OME-Zarr image (no NGFF 'multiscales').")
    group, version = found
    fmt, io, reader, _ = _ome_zarr_modules()
    try:
        location = io.parse_url(str(group), mode="r", fmt=fmt.format_from_version(version))
        node = next(iter(reader.Reader(location)()))
        levels = list(node.data)
        meta = node.metadata
        ndim = len(levels[0].shape)
        scale, translate = _level_transforms(meta.get("coordinateTransformations", [[]])[0], ndim)
        axes, units = _our_axes(meta.get("axes") or "tczyx"[-ndim:])
    except SelfDenoiseError:
        raise
    except Exception as exc:
        raise SelfDenoiseError(f"cannot read OME-Zarr '{path}': {_one_line(exc)}.") from exc
    return OmeZarrImage(
        levels, axes, tuple(scale), tuple(translate), units, meta.get("name"), version
    )


def read_ome_zarr(path: str | os.PathLike) -> tuple[Any, str | None, tuple, tuple]:
    """Level 0 of an OME-Zarr image, lazily, with its axes, scale and units.

    Returns
    -------
    array : dask.array.Array
    axes : str or None
    scale : tuple of float
        Pixel size per axis (1.0 where the file gives none).
    units : tuple of (str or None)
        Unit per axis, e.g. ``(None, 'micrometer', 'micrometer', 'micrometer')`` for CZYX.
    """
    image = open_ome_zarr(path)
    return image.levels[0], image.axes, image.scale, image.units


# --- OME-Zarr: writing ---------------------------------------------------------------------


def pyramid_factors(
    shape: Sequence[int], axes: str, levels: int, scale: Sequence[float] | None = None
) -> list[dict[str, int]]:
    """Downsampling factors of pyramid levels 1.. (level 0 is the full image).

    Y and X halve at each level; Z halves too while at least 16 planes remain and its pixel
    size stays within the new YX pixel size. Levels smaller than 16 pixels in Y or X are
    left out.
    """
    sizes = dict(zip(axes, shape, strict=True))
    pixel = dict(zip(axes, scale or [1.0] * len(axes), strict=True))
    factors: list[dict[str, int]] = []
    z_factor = 1
    for level in range(1, max(int(levels), 1)):
        xy = 2**level
        if min(sizes["Y"], sizes["X"]) // xy < _MIN_LEVEL_SIDE:
            break
        if "Z" in sizes:
            deeper = z_factor * 2
            xy_size = min(pixel["Y"], pixel["X"]) * xy
            if sizes["Z"] // deeper >= _MIN_LEVEL_DEPTH and pixel["Z"] * deeper <= xy_size:
                z_factor = deeper
        step = {"y": xy, "x": xy}
        if z_factor > 1:
            step["z"] = z_factor
        factors.append(step)
    return factors


def _units_per_axis(units: Any, axes: str) -> dict[str, str | None]:
    if units is None:
        return {}
    if isinstance(units, str):  # one spatial unit
        return {a: normalize_unit(units) for a in axes if a in "ZYX"}
    units = list(units)
    if len(units) != len(axes):
        raise SelfDenoiseError(f"units has {len(units)} values but the axes are {axes!r}.")
    return {a: normalize_unit(u) for a, u in zip(axes, units, strict=True)}


def _default_chunks(shape: Sequence[int], axes: str) -> tuple[int, ...]:
    limits = {"X": 256, "Y": 256, "Z": 32}
    return tuple(max(1, min(size, limits.get(a, 1))) for a, size in zip(axes, shape, strict=True))


def _checked(array: Any, axes: str, scale: Any, chunks: Any) -> tuple[str, tuple, tuple]:
    ndim = len(array.shape)
    axes = validate_axes(axes, ndim)
    scale = tuple(float(v) for v in scale) if scale is not None else (1.0,) * ndim
    if len(scale) != ndim:
        raise SelfDenoiseError(f"scale has {len(scale)} values but the image has {ndim} axes.")
    if any(not v > 0 for v in scale):
        raise SelfDenoiseError(f"scale {scale} must be positive pixel sizes.")
    chunks = tuple(int(c) for c in chunks) if chunks is not None else None
    if chunks is not None and len(chunks) != ndim:
        raise SelfDenoiseError(f"chunks has {len(chunks)} values but the image has {ndim} axes.")
    return axes, scale, chunks or _default_chunks(array.shape, axes)


def _replace_directory(temporary: Path, path: Path) -> None:
    """Move a finished store into place; an existing one is removed only once that worked."""
    if not (path.exists() or path.is_symlink()):
        os.replace(temporary, path)
        return
    old = path.with_name(f".{path.name}.{os.getpid()}.old")
    os.replace(path, old)
    try:
        os.replace(temporary, path)
    except OSError:
        os.replace(old, path)
        raise
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)


def write_ome_zarr(
    path: str | os.PathLike,
    array: Any,
    axes: str,
    scale: Sequence[float] | None = None,
    units: str | Sequence[str | None] | None = None,
    levels: int = 3,
    chunks: Sequence[int] | None = None,
    version: str = "0.5",
) -> Path:
    """Write an OME-Zarr multiscale image, streaming block by block.

    Parameters
    ----------
    path : str or path-like
        The store to create (``.ome.zarr`` by convention). It is written into a temporary
        sibling and renamed into place, so an existing store is replaced only by a whole one.
    array : array-like
        NumPy, zarr or dask array; dask and zarr input is never loaded whole.
    axes : str
        Our axes letters, one per dimension (written in NGFF order ``T S C Z Y X``).
    scale : sequence of float, optional
        Pixel size per axis of ``array`` (1.0 by default).
    units : str or sequence, optional
        One unit for Z/Y/X (e.g. ``'micrometer'``, ``'µm'``) or one per axis (None for none).
    levels : int
        Number of resolution levels, level 0 included (fewer for small images, see
        :func:`pyramid_factors`).
    chunks : sequence of int, optional
        Chunk shape of level 0 in ``array``'s axis order; default up to 256 in Y and X, 32 in Z,
        1 elsewhere.
    version : {'0.5', '0.4'}
        NGFF version: 0.5 is zarr format 3; 0.4 (zarr format 2) suits older readers.

    Returns
    -------
    Path
    """
    import dask.array as da

    path = Path(path)
    if str(version) not in ("0.4", "0.5"):
        raise SelfDenoiseError(f"NGFF version {version!r} is not written; use '0.5' or '0.4'.")
    axes, scale, chunks = _checked(array, axes, scale, chunks)
    unit_of = _units_per_axis(units, axes)
    order = [axes.index(a) for a in _NGFF_ORDER if a in axes]
    ngff = "".join(axes[i] for i in order)
    data = array if isinstance(array, da.Array) else da.from_array(array, chunks=chunks)
    data = data.rechunk(chunks).transpose(order)
    chunks = tuple(chunks[i] for i in order)
    factors = pyramid_factors(data.shape, ngff, levels, [scale[i] for i in order])
    names = [a.lower() for a in ngff]
    options = []
    for step in [{}, *factors]:
        shape = [max(1, s // step.get(n, 1)) for s, n in zip(data.shape, names, strict=True)]
        options.append({"chunks": tuple(min(c, s) for c, s in zip(chunks, shape, strict=True))})
    fmt, _, _, writer = _ome_zarr_modules()

    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        writer.write_image(
            data,
            str(temporary),
            scale_factors=factors,
            method=writer.Methods.LOCAL_MEAN,  # block means: keep the mean intensity
            fmt=fmt.format_from_version(str(version)),
            axes=names,
            scale={n: scale[i] for n, i in zip(names, order, strict=True)},
            axes_units={n: unit_of[a] for n, a in zip(names, ngff, strict=True) if unit_of.get(a)},
            storage_options=options,
            name=path.name.split(".")[0] or "image",
        )
        _replace_directory(temporary, path)
    except OSError as exc:
        raise SelfDenoiseError(f"cannot write '{path}': {_one_line(exc)}.") from exc
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return path


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
