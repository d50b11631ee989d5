"""Stitching predicted tiles into the output, one row of tiles at a time.

Both writers keep only a slab of the output in memory (one row of tiles along the first
spatial axis, all other spatial axes full) and write finished slabs to the output array in
the user's axes order, so the output may be a memory-mapped TIFF or a zarr array larger
than RAM. Writing whole slabs also keeps zarr chunks from being rewritten once per tile.
"""

from __future__ import annotations

import numpy as np

from ..axes import Layout
from ._grid import Tile, TileGrid


def _to_dtype(block: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Cast, rounding and clipping to the range of integer dtypes."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        block = np.clip(np.rint(block), info.min, info.max)
    return block.astype(dtype, copy=False)


class _RowWriter:
    """Common part: restores intensities and writes slabs ``[start, stop)`` of the first axis."""

    def __init__(self, out, layout: Layout, grid: TileGrid, normaliser, n_channels: int):
        self.out = out
        self.layout = layout
        self.grid = grid
        self.normaliser = normaliser
        self.n_channels = n_channels
        self.dtype = np.dtype(out.dtype)
        self.sample: int | None = None
        self.row: int | None = None

    def add(self, tiles: list[Tile], predictions: np.ndarray) -> None:
        """Take predictions ``(B, C, *tile_shape)`` of ``tiles`` (given in grid order)."""
        for tile, prediction in zip(tiles, predictions, strict=True):
            if (tile.sample, tile.position[0]) != (self.sample, self.row):
                self._start_row(tile)
            self._put(tile, prediction)

    def finish(self) -> None:
        """Write what is still buffered."""
        if self.sample is not None:
            self._drain()
            self.sample = self.row = None

    def _write(self, values: np.ndarray, start: int) -> None:
        if values.shape[1] == 0:
            return
        if self.normaliser is not None:
            values = self.normaliser.inverse(values, self.sample)
        first = slice(start, start + values.shape[1])
        index = self.layout.block_index(self.sample, [first] + [slice(None)] * (values.ndim - 2))
        self.out[index] = self.layout.canonical_to_block(_to_dtype(values, self.dtype))

    def _slab(self, length: int) -> np.ndarray:
        rest = self.layout.spatial_shape[1:]
        return np.zeros((self.n_channels, length, *rest), np.float32)

    def _start_row(self, tile: Tile) -> None:
        raise NotImplementedError

    def _put(self, tile: Tile, prediction: np.ndarray) -> None:
        raise NotImplementedError

    def _drain(self) -> None:
        raise NotImplementedError


class CropWriter(_RowWriter):
    """Keeps each tile's core (``blend='crop'``): exact when the overlap covers the receptive field."""

    def _start_row(self, tile: Tile) -> None:
        self.finish()
        self.sample, self.row = tile.sample, tile.position[0]
        core = self.grid.axes[0].core(self.row)
        self.start = core.start
        self.slab = self._slab(core.stop - core.start)

    def _put(self, tile: Tile, prediction: np.ndarray) -> None:
        axes = self.grid.axes
        source = tuple(axis.core_in_tile(k) for axis, k in zip(axes, tile.position, strict=True))
        target = tuple(axis.core(k) for axis, k in zip(axes[1:], tile.position[1:], strict=True))
        self.slab[(slice(None), slice(None), *target)] = prediction[(slice(None), *source)]

    def _drain(self) -> None:
        self._write(self.slab, self.start)
        self.slab = None


class BlendWriter(_RowWriter):
    """Blends overlapping tiles with raised-cosine weights (``blend='hann'``).

    The slab spans one tile along the first axis; when a new row of tiles starts at ``o``,
    everything before ``o`` is final (no later tile reaches back), so it is normalised by
    the summed weights, written, and the slab rolls forward.
    """

    def _start_row(self, tile: Tile) -> None:
        axis = self.grid.axes[0]
        origin = axis.origins[tile.position[0]]
        if tile.sample != self.sample:
            self.finish()
            self.sample, self.start = tile.sample, origin
            self.slab = self._slab(axis.tile)
            self.weights = np.zeros((1, *self.slab.shape[1:]), np.float32)
        else:
            self._flush(origin - self.start)
        self.row = tile.position[0]

    def _flush(self, count: int) -> None:
        count = min(count, self.layout.spatial_shape[0] - self.start)
        if count <= 0:
            return
        weights = np.maximum(self.weights[:, :count], np.finfo(np.float32).tiny)
        self._write(self.slab[:, :count] / weights, self.start)
        for buffer in (self.slab, self.weights):
            buffer[:, :-count] = buffer[:, count:].copy()
            buffer[:, -count:] = 0.0
        self.start += count

    def _put(self, tile: Tile, prediction: np.ndarray) -> None:
        axes = self.grid.axes
        weights = None
        spans = []
        for axis, k in zip(axes, tile.position, strict=True):
            profile = axis.blend_weights(k)
            weights = profile if weights is None else np.multiply.outer(weights, profile)
            spans.append(axis.span(k))
        first = slice(spans[0].start - self.start, spans[0].stop - self.start)
        target = (slice(None), first, *spans[1:])
        source = (slice(None), *(slice(0, s.stop - s.start) for s in spans))
        self.slab[target] += prediction[source] * weights
        self.weights[target] += weights

    def _drain(self) -> None:
        self._flush(self.slab.shape[1])
        self.slab = self.weights = None
