"""Choosing tile shape, overlap and batch size from the receptive field and free memory."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from .._errors import SelfDenoiseError
from ._grid import min_tile, round_up, tile_axis

BYTES_PER_VOXEL_PER_CHANNEL = 32
"""Peak activation memory of one U-Net forward pass in float32, per input voxel and per
base channel (measured on the default U-Net: about 0.6 KiB per voxel in 2D and 0.9 KiB in 3D
with 32 base channels)."""

CPU_BUDGET_BYTES = 4 * 1024**3
"""Most activation memory a forward pass may take on the CPU (also capped at a quarter of
the available RAM); larger tiles barely speed the CPU up."""

GPU_MEMORY_FRACTION = 0.5
"""Fraction of the free GPU memory that one forward pass may take."""

MAX_BATCH = 16
TILE_OVERHEAD_VOXELS = 16_384
"""Per-tile cost (reading, dispatch) counted as this many voxels of network work."""


@dataclass(frozen=True)
class TilePlan:
    """How an image is cut into tiles for prediction.

    Attributes
    ----------
    tile_shape : tuple of int
        Spatial tile side per axis (ZYX order), including the overlap; multiples of the
        network's size multiple.
    overlap : tuple of int
        Context (halo) on each inner side of a tile; nothing within it is kept.
    batch_size : int
        Tiles per forward pass.
    description : str
        One line for logs and the napari widget.
    """

    tile_shape: tuple[int, ...]
    overlap: tuple[int, ...]
    batch_size: int
    description: str


def choose_tiling(
    spatial_shape: Sequence[int],
    *,
    n_channels: int,
    receptive_radius: int,
    size_multiple: int,
    device=None,
    base_channels: int = 32,
    tile_shape: Sequence[int] | None = None,
    overlap: int | Sequence[int] | None = None,
    batch_size: int | None = None,
    n_samples: int = 1,
) -> TilePlan:
    """Pick tile shape, overlap and batch size for an image.

    The overlap defaults to the receptive radius, which makes tiled prediction equal to
    whole-image prediction. The tile is the shape within the memory budget that computes
    the fewest voxels in total (halos included); the batch fills the rest of the budget.

    Parameters
    ----------
    spatial_shape : sequence of int
        Image extent in ZYX order.
    n_channels : int
        Channels the network sees.
    receptive_radius : int
        Network halo (:func:`selfdenoise.nets.receptive_radius`).
    size_multiple : int
        Tile sides must be multiples of this (``2**depth``).
    device : str or torch.device, optional
        Where the network runs; decides the memory budget (CPU when None).
    base_channels : int
        Top-level feature channels of the U-Net, for the memory estimate.
    tile_shape, overlap, batch_size : optional
        Overrides. Tile sides are rounded up to multiples of ``size_multiple``, grown to
        leave a core after the overlap, and shrunk to the (padded) image.
    n_samples : int
        Images (canonical samples) predicted together; batches may span them.

    Returns
    -------
    TilePlan
    """
    ndim = len(spatial_shape)
    halos = _per_axis("overlap", receptive_radius if overlap is None else overlap, ndim)
    if any(h < 0 for h in halos):
        raise SelfDenoiseError(f"overlap must be non-negative; got {overlap!r}.")
    bytes_per_voxel = BYTES_PER_VOXEL_PER_CHANNEL * max(base_channels, n_channels)
    budget = max(1, memory_budget(device) // bytes_per_voxel)
    if tile_shape is None:
        tiles = _best_tile(spatial_shape, halos, size_multiple, budget)
    else:
        tiles = _fit_tile(
            _per_axis("tile_shape", tile_shape, ndim), spatial_shape, halos, size_multiple
        )
    voxels = math.prod(tiles)
    n_tiles = math.prod(
        len(tile_axis(size, tile, halo, size_multiple))
        for size, tile, halo in zip(spatial_shape, tiles, halos, strict=True)
    )
    if batch_size is None:
        batch_size = int(min(MAX_BATCH, n_tiles * n_samples, max(1, budget // voxels)))
    elif batch_size < 1:
        raise SelfDenoiseError(f"batch size must be a positive integer; got {batch_size}.")
    computed = n_tiles * voxels / max(1, math.prod(spatial_shape))
    description = (
        f"{n_tiles} tile(s) of {'x'.join(map(str, tiles))} per image with "
        f"{'x'.join(map(str, halos))} overlap, {batch_size} per batch "
        f"({computed:.2f}x the image's voxels computed)"
    )
    return TilePlan(tuple(tiles), tuple(halos), int(batch_size), description)


def halve_tile(plan: TilePlan, spatial_shape: Sequence[int], size_multiple: int) -> TilePlan | None:
    """The plan with every tile side halved (not below the smallest useful tile), or None."""
    smallest = [
        min_tile(size, halo, size_multiple)
        for size, halo in zip(spatial_shape, plan.overlap, strict=True)
    ]
    tiles = tuple(
        max(low, round_up(tile // 2, size_multiple))
        for tile, low in zip(plan.tile_shape, smallest, strict=True)
    )
    if tiles == plan.tile_shape:
        return None
    description = f"{plan.description}; tile reduced to {'x'.join(map(str, tiles))}"
    return TilePlan(tiles, plan.overlap, plan.batch_size, description)


def memory_budget(device=None) -> int:
    """Bytes one forward pass may use on ``device`` (the CPU when None)."""
    import torch

    from ..device import free_memory_bytes

    device = torch.device(device if device is not None else "cpu")
    free = free_memory_bytes(device)
    if device.type == "cpu":
        return min(CPU_BUDGET_BYTES, (free or CPU_BUDGET_BYTES) // 4)
    if free is None:
        return CPU_BUDGET_BYTES // 2
    return int(free * GPU_MEMORY_FRACTION)


def _per_axis(name: str, value, ndim: int) -> tuple[int, ...]:
    values = (
        (int(value),) * ndim if isinstance(value, (int, float)) else tuple(int(v) for v in value)
    )
    if len(values) != ndim:
        raise SelfDenoiseError(f"{name} needs {ndim} values (one per spatial axis); got {value!r}.")
    return values


def _fit_tile(
    requested: Sequence[int], shape: Sequence[int], halos: Sequence[int], multiple: int
) -> tuple[int, ...]:
    if any(t < 1 for t in requested):
        raise SelfDenoiseError(f"tile shape must be positive; got {tuple(requested)!r}.")
    return tuple(
        min(round_up(size, multiple), max(round_up(tile, multiple), min_tile(size, halo, multiple)))
        for tile, size, halo in zip(requested, shape, halos, strict=True)
    )


def _axis_options(size: int, halo: int, multiple: int) -> dict[int, int]:
    """Tile sides worth trying along one axis, with the number of tiles each needs.

    The candidates are the smallest sides that cover the axis with 1 to 32 tiles (the end
    tiles need a halo on one side only), powers of two, and the smallest useful side.
    """
    padded = round_up(size, multiple)
    smallest = min_tile(size, halo, multiple)
    sides = {padded, smallest}
    for count in range(2, 33):
        side = max(smallest, round_up(-(-(padded + 2 * halo * (count - 1)) // count), multiple))
        while side < padded and len(tile_axis(size, side, halo, multiple)) > count:
            side += multiple
        sides.add(side)
    sides.update(multiple * 2**j for j in range(16))
    sides = {min(padded, max(smallest, side)) for side in sides}
    return {side: len(tile_axis(size, side, halo, multiple)) for side in sorted(sides)}


def _best_tile(
    shape: Sequence[int], halos: Sequence[int], multiple: int, budget: int
) -> tuple[int, ...]:
    """Tile within ``budget`` voxels that minimises the voxels computed over the image."""
    options = [_axis_options(s, h, multiple) for s, h in zip(shape, halos, strict=True)]
    best = tuple(min(opts) for opts in options)
    best_cost = math.inf
    for tiles in itertools.product(*options):
        voxels = math.prod(tiles)
        if voxels > budget:
            continue
        count = math.prod(opts[t] for opts, t in zip(options, tiles, strict=True))
        cost = count * (voxels + TILE_OVERHEAD_VOXELS)
        if cost < best_cost:
            best, best_cost = tiles, cost
    return best
