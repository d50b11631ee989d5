"""Image files: read and write (OME-)TIFF, ``.npy`` and (OME-)Zarr; read PNG, JPEG, BMP, GIF.

Each format is one row of a table (:data:`FORMATS`): its suffixes, a reader and, where we
write it, a writer. Axes, pixel sizes and the unit are kept where the format can hold them
(OME-Zarr and OME-TIFF metadata through :mod:`selfdenoise.ome`, ImageJ hyperstacks, TIFF
tags, zarr attributes of earlier versions; ``.npy`` and the picture formats hold neither).
OME-Zarr input is read lazily (level 0 as a dask array); ``.ome.zarr`` output gets a pyramid. Writes are atomic: a temporary sibling is renamed over the target when complete.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import SelfDenoiseError
from ..axes import validate_axes
from ._common import Read, normal_unit
from ._files import one_line, replace_atomically, replace_tree
from ._ome import read_any_zarr, write_ome_tiff_file, write_ome_zarr_file
from ._tiff import read_tiff, write_tiff
from ._zarr import open_zarr_output, staged_zarr_output, write_zarr

__all__ = [
    "FORMATS",
    "ImageFile",
    "ImageFormat",
    "open_zarr_output",
    "output_format",
    "read_image",
    "staged_zarr_output",
    "write_image",
]


@dataclass
class ImageFile:
    """An image read from disk.

    Attributes
    ----------
    data : array-like
        A NumPy array, a read-only ``numpy.memmap`` or a zarr array (read lazily).
    axes : str or None
        Axes letters from ``STCZYX``, or ``None`` when the file does not say.
    scale : tuple of float or None
        Pixel size per axis (1.0 where unknown), or ``None`` when the file has none.
    path : Path
        Where the image was read from.
    unit : str or None
        Unit of ``scale`` (``'um'`` for micrometres), or ``None`` when the file does not say.
    """

    data: Any
    axes: str | None
    scale: tuple[float, ...] | None
    path: Path
    unit: str | None = None


Reader = Callable[[Path, bool, "int | None"], Read]
Writer = Callable[[Path, Any, "str | None", "tuple | None", "str | None"], None]


@dataclass(frozen=True)
class ImageFormat:
    """One row of the format table.

    Attributes
    ----------
    name : str
        Name shown in messages.
    suffixes : tuple of str
        Lower-case file name endings.
    read : callable
        ``read(path, memmap, series)`` returning the data, axes, scale and unit.
    write : callable or None
        ``write(path, array, axes, scale, unit)``; ``None`` for formats we only read.
    folder : bool
        The format is a folder (written through a temporary sibling folder).
    series : bool
        The format can hold several image series (``series=`` chooses one).
    atomic : bool
        The writer replaces the target atomically by itself (no temporary sibling here).
    """

    name: str
    suffixes: tuple[str, ...]
    read: Reader
    write: Writer | None = None
    folder: bool = False
    series: bool = False
    atomic: bool = False


# --- npy -----------------------------------------------------------------------------------


def _read_npy(path: Path, memmap: bool, series: int | None) -> Read:
    return Read(np.load(path, mmap_mode="r", allow_pickle=False))


def _write_npy(path: Path, array: Any, axes: Any, scale: Any, unit: Any) -> None:
    np.save(path, np.asarray(array), allow_pickle=False)


# --- pictures (PNG, JPEG, ...) through imageio ---------------------------------------------


def _read_picture(path: Path, memmap: bool, series: int | None) -> Read:
    import imageio.v3 as iio

    data = np.asarray(iio.imread(path, plugin="pillow"))
    if data.ndim == 2:
        axes: str | None = "YX"
    elif data.ndim == 3 and data.shape[-1] in (3, 4):
        axes = "YXC"  # RGB(A): the channels are denoised jointly
    else:
        axes = None  # e.g. an animated GIF: the user says what the first axis is
    return Read(data, axes)


# --- the table -----------------------------------------------------------------------------

FORMATS: tuple[ImageFormat, ...] = (
    ImageFormat(
        "OME-TIFF",
        (".ome.tif", ".ome.tiff"),
        read_tiff,
        write_ome_tiff_file,
        series=True,
        atomic=True,
    ),
    ImageFormat("TIFF", (".tif", ".tiff"), read_tiff, write_tiff, series=True),
    ImageFormat(".npy", (".npy",), _read_npy, _write_npy),
    ImageFormat(
        "OME-Zarr", (".ome.zarr",), read_any_zarr, write_ome_zarr_file, folder=True, atomic=True
    ),
    ImageFormat(".zarr", (".zarr",), read_any_zarr, write_zarr, folder=True),
    ImageFormat("PNG", (".png",), _read_picture),
    ImageFormat("JPEG", (".jpg", ".jpeg"), _read_picture),
    ImageFormat("BMP", (".bmp",), _read_picture),
    ImageFormat("GIF", (".gif",), _read_picture),
)
"""Every image format: read by :func:`read_image`, written by :func:`write_image` if it has a
writer. Add a row to support another format."""

_READABLE = ", ".join(f.name for f in FORMATS)
_WRITABLE = ", ".join(s for f in FORMATS if f.write for s in f.suffixes[:1])
_SUPPORTED = f"supported: {_READABLE}"


def _format_of(path: Path) -> ImageFormat | None:
    name = path.name.lower()
    for entry in FORMATS:
        if name.endswith(entry.suffixes):
            return entry
    if (path / "zarr.json").exists() or (path / ".zarray").exists() or (path / ".zgroup").exists():
        return next(f for f in FORMATS if f.name == ".zarr")
    return None


# --- public functions ----------------------------------------------------------------------


def read_image(
    path: str | os.PathLike, memmap: bool = False, series: int | None = None
) -> ImageFile:
    """Read an image file.

    Parameters
    ----------
    path : str or path-like
        A TIFF (OME-TIFF physical sizes are read), ``.npy`` or ``.zarr`` path (an OME-Zarr
        multiscale image gives its level 0 lazily; another zarr group must hold one array),
        or a PNG, JPEG, BMP or GIF picture (2D grey as ``YX``, RGB/RGBA as ``YXC``).
    memmap : bool
        Memory-map TIFF pixel data when the file allows it (uncompressed, contiguous);
        otherwise the data is read into memory. ``.npy`` files are always memory-mapped and
        zarr arrays are always read lazily.
    series : int, optional
        Which image series of a multi-series TIFF to read; by default the first, with a
        warning when there are several.

    Returns
    -------
    ImageFile

    Raises
    ------
    SelfDenoiseError
        If the file is missing, of an unsupported type or unreadable.
    """
    path = Path(path)
    if not path.exists():
        raise SelfDenoiseError(f"cannot read '{path}': no such file; {_SUPPORTED}.")
    entry = _format_of(path)
    if entry is None:
        raise SelfDenoiseError(f"cannot read '{path}': unsupported file type; {_SUPPORTED}.")
    if series is not None and not entry.series:
        raise SelfDenoiseError(
            f"cannot read '{path}': a {entry.name} file holds one image; series applies to TIFF."
        )
    try:
        read = entry.read(path, memmap, series)
    except SelfDenoiseError:
        raise
    except Exception as exc:
        raise SelfDenoiseError(f"cannot read '{path}': {one_line(exc)}; {_SUPPORTED}.") from exc
    scale = read.scale if read.axes is not None else None
    return ImageFile(read.data, read.axes, scale, path, read.unit if scale else None)


def output_format(path: str | os.PathLike) -> ImageFormat:
    """The format :func:`write_image` would write ``path`` in (to check a path early).

    Raises
    ------
    SelfDenoiseError
        If no writable format has this suffix.
    """
    path = Path(path)
    entry = _format_of(path)
    if entry is None or entry.write is None:
        kind = "unsupported file type" if entry is None else f"{entry.name} is read-only here"
        raise SelfDenoiseError(f"cannot write '{path}': {kind}; use {_WRITABLE}.")
    return entry


def write_image(
    path: str | os.PathLike,
    array: Any,
    axes: str | None = None,
    scale: tuple[float, ...] | None = None,
    unit: str | None = None,
) -> Path:
    """Write an image atomically; the format follows the suffix.

    Parameters
    ----------
    path : str or path-like
        ``.tif``/``.tiff`` (ImageJ hyperstack when the axes are in ImageJ order ``TZCYX`` and
        the dtype is uint8, uint16 or float32; otherwise a plain TIFF that keeps the axes in
        its metadata; BigTIFF above 4 GB), ``.npy`` (axes and scale are not kept) or
        ``.zarr`` (chunked, axes and scale in the attributes), ``.ome.zarr`` (OME-Zarr with a
        3-level pyramid; needs the ``ome`` extra) or ``.ome.tif`` (OME-TIFF with physical
        sizes). An existing file is replaced
        only once the new one is complete; a failed write leaves it as it was.
    array : array-like
        NumPy, dask or zarr array. Zarr output is written slab by slab along the first axis.
    axes : str, optional
        Axes letters, one per dimension.
    scale : tuple of float, optional
        Pixel size per axis.
    unit : str, optional
        Unit of ``scale``, e.g. ``'um'`` (kept in TIFF and zarr files that have a scale).

    Returns
    -------
    Path
        The written path.

    Raises
    ------
    SelfDenoiseError
        For an unsupported suffix, axes or scale that do not fit, or a failed write.
    """
    path = Path(path)
    entry = output_format(path)
    ndim = len(array.shape)
    if axes is not None:
        axes = validate_axes(axes, ndim)
    if scale is not None:
        scale = tuple(float(v) for v in scale)
        if len(scale) != ndim:
            raise SelfDenoiseError(f"scale has {len(scale)} values but the image has {ndim} axes.")
    unit = normal_unit(unit)
    write = entry.write
    if write is None:
        raise SelfDenoiseError(f"cannot write {entry.name} files.")

    def write_to(target: Path) -> None:
        write(target, array, axes, scale, unit)

    if entry.atomic:
        try:
            write_to(path)
        except SelfDenoiseError:
            raise
        except Exception as exc:
            raise SelfDenoiseError(f"cannot write '{path}': {one_line(exc)}.") from exc
        return path
    (replace_tree if entry.folder else replace_atomically)(path, write_to)
    return path
