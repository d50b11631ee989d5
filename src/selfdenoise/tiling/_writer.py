"""Stitching predicted tiles into the output, one slab of tiles at a time.

Tiles arrive slab by slab (:class:`TileGrid` orders them along its slab axis, the axis cut
into the most tiles). The writers keep one slab of the output in memory and write it to
the output array in the user's axes order when it is finished, so the output may be a
memory-mapped TIFF or a zarr array larger than RAM, and zarr chunks are not rewritten once
per tile. When even a slab would be large, :class:`CropWriter` writes each tile's core
directly instead.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ..axes import Layout
from ._grid import Tile, TileGrid
from ._parallel import bands, is_in_memory, run_bands

SLAB_BYTES = 256 * 1024**2
"""Largest slab :class:`CropWriter` buffers; above it, cores are written tile by tile."""


def _to_dtype(block: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Cast, rounding and clipping to the range of integer dtypes."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        block = np.clip(np.rint(block), info.min, info.max)
    return block.astype(dtype, copy=False)


class _SlabWriter:
    """Common part: slab bookkeeping, restoring intensities and writing regions."""

    def __init__(self, out, layout: Layout, grid: TileGrid, normaliser, n_channels: int):
        self.out = out
        self.layout = layout
        self.grid = grid
        self.normaliser = normaliser
        self.n_channels = n_channels
        self.dtype = np.dtype(out.dtype)
        self.axis = grid.slab_axis
        self.sample: int | None = None
        self.slab_index: int | None = None
        self.start = 0

    def add(self, tiles: list[Tile], predictions: np.ndarray) -> None:
        """Take predictions ``(B, C, *tile_shape)`` of ``tiles`` (given in grid order)."""
        for tile, prediction in zip(tiles, predictions, strict=True):
            if (tile.sample, tile.position[self.axis]) != (self.sample, self.slab_index):
                self._start_slab(tile)
                self.sample, self.slab_index = tile.sample, tile.position[self.axis]
            self._put(tile, prediction)

    def finish(self) -> None:
        """Write what is still buffered."""
        if self.sample is not None:
            self._drain()
            self.sample = self.slab_index = None

    def _write(self, values: np.ndarray, region: tuple[slice, ...]) -> None:
        """Write ``(C, *spatial)`` normalised ``values`` to ``region`` (image coordinates);
        in bands on several threads when the output is in memory and the block large."""
        if values.size == 0:
            return
        parts = bands(values.shape[1:]) if is_in_memory(self.out) else [slice(None)]
        run_bands(functools.partial(self._write_band, values, region), parts)

    def _write_band(self, values: np.ndarray, region: tuple[slice, ...], rows: slice) -> None:
        if rows != slice(None):  # a band: rows of the first spatial axis
            offset = region[0].start or 0
            values = values[:, rows]
            region = (slice(offset + rows.start, offset + rows.stop), *region[1:])
        if self.normaliser is not None:  # in place: values are always the writer's own
            values = self.normaliser.inverse(values, self.sample, out=values)
        index = self.layout.block_index(self.sample, region)
        self.out[index] = self.layout.canonical_to_block(_to_dtype(values, self.dtype))

    def _along(self, part: slice) -> tuple[slice, ...]:
        """Spatial region covering everything, except ``part`` along the slab axis."""
        region = [slice(None)] * len(self.grid.axes)
        region[self.axis] = part
        return tuple(region)

    def _in_slab(self, region: tuple[slice, ...]) -> tuple[slice, ...]:
        """Index into the ``(C, *spatial)`` slab for an image region."""
        part = region[self.axis]
        shifted = list(region)
        shifted[self.axis] = slice(part.start - self.start, part.stop - self.start)
        return (slice(None), *shifted)

    def _slab(self, length: int, channels: int) -> np.ndarray:
        shape = list(self.layout.spatial_shape)
        shape[self.axis] = length
        return np.zeros((channels, *shape), np.float32)

    def _start_slab(self, tile: Tile) -> None:
        raise NotImplementedError

    def _put(self, tile: Tile, prediction: np.ndarray) -> None:
        raise NotImplementedError

    def _drain(self) -> None:
        raise NotImplementedError


class CropWriter(_SlabWriter):
    """Keeps each tile's core (``blend='crop'``): exact when the overlap covers the
    receptive field."""

    slab: np.ndarray | None = None

    def _start_slab(self, tile: Tile) -> None:
        self.finish()
        core = self.grid.axes[self.axis].core(tile.position[self.axis])
        self.start, self.length = core.start, core.stop - core.start
        shape = list(self.layout.spatial_shape)
        shape[self.axis] = self.length
        # A NumPy output (memory-mapped files included) takes each core directly; a slab only
        # saves rewriting the chunks of chunked outputs (zarr) once per tile.
        small = self.n_channels * math.prod(shape) * 4 <= SLAB_BYTES
        buffered = small and not is_in_memory(self.out)
        self.slab = self._slab(self.length, self.n_channels) if buffered else None

    def _put(self, tile: Tile, prediction: np.ndarray) -> None:
        axes = self.grid.axes
        source = tuple(axis.core_in_tile(k) for axis, k in zip(axes, tile.position, strict=True))
        region = tuple(axis.core(k) for axis, k in zip(axes, tile.position, strict=True))
        core = prediction[(slice(None), *source)]
        if self.slab is None:
            self._write(core, region)
        else:
            self.slab[self._in_slab(region)] = core

    def _drain(self) -> None:
        if self.slab is not None:
            self._write(self.slab, self._along(slice(self.start, self.start + self.length)))
            self.slab = None


class BlendWriter(_SlabWriter):
    """Blends overlapping tiles with raised-cosine weights (``blend='hann'``).

    The slab spans one tile along the slab axis. When the next slab of tiles starts at
    ``o``, everything before ``o`` is final (no later tile reaches back), so it is divided
    by the summed weights, written, and the slab rolls forward.
    """

    def _start_slab(self, tile: Tile) -> None:
        axis = self.grid.axes[self.axis]
        origin = axis.origins[tile.position[self.axis]]
        if tile.sample != self.sample:
            self.finish()
            self.sample, self.start = tile.sample, origin
            self.slab = self._slab(axis.tile, self.n_channels)
            self.weights = self._slab(axis.tile, 1)
        else:
            self._flush(origin - self.start)

    def _flush(self, count: int) -> None:
        count = min(count, self.layout.spatial_shape[self.axis] - self.start)
        if count <= 0:
            return
        done = (slice(None), *self._along(slice(0, count)))
        weights = np.maximum(self.weights[done], np.finfo(np.float32).tiny)
        self._write(self.slab[done] / weights, self._along(slice(self.start, self.start + count)))
        length = self.slab.shape[self.axis + 1]
        kept = (slice(None), *self._along(slice(count, length)))
        moved = (slice(None), *self._along(slice(0, length - count)))
        cleared = (slice(None), *self._along(slice(length - count, length)))
        for buffer in (self.slab, self.weights):
            buffer[moved] = buffer[kept].copy()
            buffer[cleared] = 0.0
        self.start += count

    def _put(self, tile: Tile, prediction: np.ndarray) -> None:
        weights = None
        spans = []
        for axis, k in zip(self.grid.axes, tile.position, strict=True):
            profile = axis.blend_weights(k)
            weights = profile if weights is None else np.multiply.outer(weights, profile)
            spans.append(axis.span(k))
        target = self._in_slab(tuple(spans))
        source = (slice(None), *(slice(0, s.stop - s.start) for s in spans))
        self.slab[target] += prediction[source] * weights
        self.weights[target] += weights

    def _drain(self) -> None:
        self._flush(self.slab.shape[self.axis + 1])
        self.slab = self.weights = None
