"""Tile geometry: where tiles sit, which part of each is kept, and how tiles are read.

Coordinates follow one rule that makes tiled prediction equal to whole-image prediction:
the image is (virtually) reflect-padded at the end of each spatial axis to the next multiple
of the network's size multiple ``m`` (``2**depth``), tiles are windows of that padded image
whose origins are multiples of ``m`` (so pooling grids line up with the whole-image call),
and tiles touching the image border see the border, never an artificial halo. Each tile
keeps a core that lies at least ``halo`` voxels away from its inner edges; the cores
partition the image.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..axes import Layout


def round_up(value: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``value``."""
    return -(-int(value) // multiple) * multiple


def min_tile(size: int, halo: int, multiple: int) -> int:
    """Smallest tile side that advances by at least ``multiple`` after cutting two halos."""
    return min(round_up(size, multiple), round_up(2 * halo + multiple, multiple))


@dataclass(frozen=True)
class AxisTiles:
    """Tiles along one spatial axis.

    Attributes
    ----------
    size : int
        Image extent.
    tile : int
        Tile side (a multiple of the size multiple, at most the padded extent).
    halo : int
        Context on each inner side of a tile.
    origins : tuple of int
        Tile starts, multiples of the size multiple; the last tile ends at the padded extent.
    cuts : tuple of int
        Core boundaries in image coordinates: tile ``k`` keeps ``[cuts[k], cuts[k + 1])``.
    """

    size: int
    tile: int
    halo: int
    origins: tuple[int, ...]
    cuts: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.origins)

    def core(self, k: int) -> slice:
        """Kept part of tile ``k`` in image coordinates."""
        return slice(self.cuts[k], self.cuts[k + 1])

    def core_in_tile(self, k: int) -> slice:
        """Kept part of tile ``k`` in tile coordinates."""
        return slice(self.cuts[k] - self.origins[k], self.cuts[k + 1] - self.origins[k])

    def span(self, k: int) -> slice:
        """Part of tile ``k`` inside the image, in image coordinates."""
        return slice(self.origins[k], min(self.origins[k] + self.tile, self.size))

    def blend_weights(self, k: int) -> np.ndarray:
        """Weights of tile ``k`` over its span, for ``blend='hann'``.

        Across each overlap with a neighbour, the outer half of the halo is dropped (weight
        0) and the rest is a cross-fade: ``sin**2`` rising in one tile, ``cos**2`` falling in
        the other, so the weights of the two add up to one. Sides on the image border keep
        weight 1.
        """
        centres = np.arange(self.origins[k], self.span(k).stop) + 0.5
        weights = np.ones(len(centres))
        if k > 0:
            weights *= self._fade_in(k, centres)
        if k < len(self) - 1:
            weights *= 1.0 - self._fade_in(k + 1, centres)
        return weights.astype(np.float32)

    def _fade_in(self, k: int, centres: np.ndarray) -> np.ndarray:
        """Weight of tile ``k`` rising from 0 to 1 across its overlap with tile ``k - 1``."""
        start = self.origins[k] + self.halo // 2
        stop = self.origins[k - 1] + self.tile - self.halo // 2
        inside = np.clip((centres - start) / max(stop - start, 1), 0.0, 1.0)
        return np.sin(0.5 * np.pi * inside) ** 2


def tile_axis(size: int, tile: int, halo: int, multiple: int) -> AxisTiles:
    """Place tiles of side ``tile`` with ``halo`` context along an axis of ``size`` voxels.

    Parameters
    ----------
    size : int
        Image extent.
    tile : int
        Requested tile side; clamped to the padded extent ``round_up(size, multiple)``.
    halo : int
        Context kept on each inner side of a tile.
    multiple : int
        Size multiple of the network; tile sides and origins are multiples of it.

    Returns
    -------
    AxisTiles
    """
    padded = round_up(size, multiple)
    tile = min(round_up(tile, multiple), padded)
    if tile == padded:
        return AxisTiles(size, tile, halo, (0,), (0, size))
    stride = (tile - 2 * halo) // multiple * multiple
    if stride < multiple:
        raise ValueError(f"tile {tile} leaves no core after a halo of {halo} on both sides")
    origins = [*range(0, padded - tile, stride), padded - tile]
    cuts = [0]
    for k in range(1, len(origins)):
        first_valid = origins[k] + halo
        last_valid = origins[k - 1] + tile - halo
        cuts.append(min((first_valid + last_valid) // 2, size))
    cuts.append(size)
    # A last tile that only covers padding keeps nothing: drop it.
    while len(origins) > 1 and cuts[-2] >= size:
        origins.pop()
        cuts.pop(-2)
    return AxisTiles(size, tile, halo, tuple(origins), tuple(cuts))


@dataclass(frozen=True)
class Tile:
    """One tile of one canonical sample: its position in the grid of each spatial axis."""

    sample: int
    position: tuple[int, ...]


@dataclass(frozen=True)
class TileGrid:
    """Tiles over every canonical sample of an image.

    Tiles are ordered sample by sample, then by their position along the *slab axis* (the
    spatial axis cut into the most tiles), then in raster order over the other axes. All
    tiles of one slab come together, and a slab is the thinnest cut of the image.
    """

    axes: tuple[AxisTiles, ...]
    n_samples: int

    @classmethod
    def build(
        cls,
        spatial_shape: Sequence[int],
        tile_shape: Sequence[int],
        overlap: Sequence[int],
        multiple: int,
        n_samples: int,
    ) -> TileGrid:
        axes = tuple(
            tile_axis(size, tile, halo, multiple)
            for size, tile, halo in zip(spatial_shape, tile_shape, overlap, strict=True)
        )
        return cls(axes, n_samples)

    @property
    def tile_shape(self) -> tuple[int, ...]:
        return tuple(axis.tile for axis in self.axes)

    @property
    def tiles_per_sample(self) -> int:
        return math.prod(len(axis) for axis in self.axes)

    @property
    def slab_axis(self) -> int:
        """Spatial axis with the most tiles (the first one on ties)."""
        counts = [len(axis) for axis in self.axes]
        return counts.index(max(counts))

    def __len__(self) -> int:
        return self.n_samples * self.tiles_per_sample

    def __iter__(self) -> Iterator[Tile]:
        order = [self.slab_axis] + [a for a in range(len(self.axes)) if a != self.slab_axis]
        ranges = [range(len(self.axes[a])) for a in order]
        positions = []
        for ordered in itertools.product(*ranges):
            position = [0] * len(order)
            for axis, k in zip(order, ordered, strict=True):
                position[axis] = k
            positions.append(tuple(position))
        for sample in range(self.n_samples):
            for position in positions:
                yield Tile(sample, position)

    def origins(self, tile: Tile) -> tuple[int, ...]:
        return tuple(axis.origins[k] for axis, k in zip(self.axes, tile.position, strict=True))


def reflect_indices(start: int, stop: int, size: int) -> np.ndarray:
    """Indices of ``range(start, stop)`` mirrored into ``[0, size)`` like ``np.pad(mode='reflect')``."""
    indices = np.arange(start, stop)
    if size == 1:
        return np.zeros_like(indices)
    period = 2 * (size - 1)
    indices = np.mod(indices, period)
    return np.where(indices >= size, period - indices, indices)


def read_tile(
    source, layout: Layout, sample: int, origins: Sequence[int], tile_shape: Sequence[int]
) -> np.ndarray:
    """Read one tile as a ``(C, *tile_shape)`` float32 array, reflect-padded past the image end.

    Only the voxels the tile needs are read from ``source`` (numpy, memmap, zarr or dask).
    """
    out = np.empty((layout.n_channels, *tile_shape), np.float32)
    return read_tile_into(source, layout, sample, origins, out)


def read_tile_into(
    source, layout: Layout, sample: int, origins: Sequence[int], out: np.ndarray
) -> np.ndarray:
    """:func:`read_tile` into ``out``, a ``(C, *tile_shape)`` array, in one pass.

    The voxels inside the image are copied (and cast) straight into ``out``; the
    reflect-padded margins are copied as reversed runs of the same block, so no padded
    intermediate array is made (prediction reads every voxel of large images this way).
    """
    slices, runs = [], []
    for origin, tile, size in zip(origins, out.shape[1:], layout.spatial_shape, strict=True):
        indices = reflect_indices(origin, origin + tile, size)
        low = int(indices.min())
        slices.append(slice(low, int(indices.max()) + 1))
        runs.append(_runs(indices - low))
    block = layout.block_to_canonical(np.asarray(source[layout.block_index(sample, slices)]))
    for parts in itertools.product(*runs):
        target = (slice(None), *(part[0] for part in parts))
        np.copyto(out[target], block[(slice(None), *(part[1] for part in parts))], "unsafe")
    return out


def _runs(indices: np.ndarray) -> list[tuple[slice, slice]]:
    """Split a map from tile positions to block positions into runs of step +1, -1 or 0:
    ``(tile slice, block slice)`` pairs that copy with plain (possibly reversed) slicing."""
    steps = np.diff(indices)
    runs, start, count = [], 0, len(indices)
    while start < count:
        step = int(steps[start]) if start < count - 1 else 1
        changes = np.flatnonzero(steps[start:] != step)
        stop = start + 1 + (int(changes[0]) if len(changes) else count - 1 - start)
        first, length = int(indices[start]), stop - start
        if step == 1:
            source = slice(first, first + length)
        elif step == -1:
            source = slice(first, first - length if first >= length else None, -1)
        else:  # an image side of 1: the one voxel, broadcast
            source = slice(first, first + 1)
        runs.append((slice(start, stop), source))
        start = stop
    return runs
