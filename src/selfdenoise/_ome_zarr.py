"""OME-Zarr reading and writing (private part of :mod:`selfdenoise.ome`; see there)."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import SelfDenoiseError
from ._ome_units import _checked, _one_line, _units_per_axis, normalize_unit
from .axes import validate_axes

_INSTALL_HINT = "install it (Python 3.11+) with: pip install 'napari-selfdenoise[ome]'"
_NGFF_ORDER = "TSCZYX"  # our letters in the order NGFF wants them
_NGFF_TO_AXES = {"t": "T", "s": "S", "c": "C", "z": "Z", "y": "Y", "x": "X"}
_MIN_LEVEL_SIDE = 16  # no pyramid level smaller than this in Y or X
_MIN_LEVEL_DEPTH = 16  # Z is downsampled only while at least this many planes remain


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
