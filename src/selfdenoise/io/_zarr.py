"""Zarr stores: lazy reading, chunked writing and staged (all-or-nothing) output."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import SelfDenoiseError
from ._common import Read, normal_unit, valid_axes_or_none
from ._files import default_mode, one_line, swap_in


def read_zarr(path: Path, memmap: bool, series: int | None) -> Read:
    import zarr

    node = zarr.open(str(path), mode="r")
    attrs = dict(node.attrs)
    if not isinstance(node, zarr.Array):
        names = sorted(node.array_keys())
        if len(names) != 1:
            raise SelfDenoiseError(
                f"cannot read '{path}': the zarr group holds {len(names)} arrays, not one; "
                f"give the path of one array, e.g. '{path / (names[0] if names else '0')}'."
            )
        node = node[names[0]]
        attrs = {**attrs, **dict(node.attrs)}
    axes = attrs.get("axes")
    axes = valid_axes_or_none(axes, node.ndim) if isinstance(axes, str) else None
    scale = attrs.get("scale")
    if axes is None or not isinstance(scale, list) or len(scale) != node.ndim:
        return Read(node, axes)
    return Read(node, axes, tuple(float(v) for v in scale), normal_unit(attrs.get("unit")))


def write_zarr(
    path: Path, array: Any, axes: str | None, scale: tuple | None, unit: str | None
) -> None:
    output = open_zarr_output(path, tuple(array.shape), np.dtype(array.dtype))
    if axes:
        output.attrs["axes"] = axes
    if axes and scale:
        output.attrs["scale"] = list(scale)
        if unit:
            output.attrs["unit"] = unit
    if len(array.shape) == 0:
        output[...] = np.asarray(array)
        return
    step = output.chunks[0]
    for start in range(0, array.shape[0], step):
        output[start : start + step] = np.asarray(array[start : start + step])


def _default_chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    limits = [256, 256, 32]  # X, Y, then Z (or another third-last axis); 1 beyond
    chunks = [min(size, limits[i]) if i < len(limits) else 1 for i, size in enumerate(shape[::-1])]
    return tuple(max(c, 1) for c in chunks[::-1])


def open_zarr_output(
    path: str | os.PathLike,
    shape: tuple[int, ...],
    dtype: Any,
    chunks: tuple[int, ...] | None = None,
) -> Any:
    """Create (or replace) a writable zarr array for incremental, block-by-block output.

    Writes go straight into ``path``; :func:`staged_zarr_output` writes into a temporary
    sibling store that replaces ``path`` only when complete.

    Parameters
    ----------
    path : str or path-like
        Where the ``.zarr`` store goes.
    shape : tuple of int
        Array shape.
    dtype : dtype-like
        Array dtype.
    chunks : tuple of int, optional
        Chunk shape; default up to 256 x 256 in the last two axes, 32 in the third-last,
        1 elsewhere.

    Returns
    -------
    zarr.Array
    """
    import zarr

    shape = tuple(int(s) for s in shape)
    chunks = _default_chunks(shape) if chunks is None else tuple(int(c) for c in chunks)
    try:
        return zarr.open_array(
            str(path), mode="w", shape=shape, dtype=np.dtype(dtype), chunks=chunks
        )
    except Exception as exc:  # OSError and zarr's own errors
        raise SelfDenoiseError(f"cannot write '{path}': {one_line(exc)}.") from exc


@contextmanager
def staged_zarr_output(
    path: str | os.PathLike,
    shape: tuple[int, ...],
    dtype: Any,
    chunks: tuple[int, ...] | None = None,
) -> Iterator[Any]:
    """A new zarr array filled inside a ``with`` block, moved to ``path`` when it succeeds.

    The array lives in a temporary sibling store; leaving the block without an error
    replaces ``path`` with it, while an error or Ctrl-C removes it and leaves ``path`` as it
    was. An existing store at ``path`` is never opened for writing.

    Parameters
    ----------
    path, shape, dtype, chunks
        As for :func:`open_zarr_output`.

    Yields
    ------
    zarr.Array

    Examples
    --------
    >>> with staged_zarr_output("out.zarr", (64, 64), "float32") as out:  # doctest: +SKIP
    ...     out[:] = 1.0
    """
    path = Path(path)
    try:
        temporary = Path(
            tempfile.mkdtemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".partial.zarr")
        )
    except OSError as exc:
        raise SelfDenoiseError(f"cannot write '{path}': {one_line(exc)}.") from exc
    try:
        os.chmod(temporary, default_mode(directory=True))  # mkdtemp creates 0700
        yield open_zarr_output(temporary, shape, dtype, chunks)
        swap_in(temporary, path)
    except OSError as exc:
        raise SelfDenoiseError(f"cannot write '{path}': {one_line(exc)}.") from exc
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)
