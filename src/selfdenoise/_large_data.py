"""A bounded tiling for images bigger than memory, shared by the CLI and the Denoise widget.

The automatic tiling (:func:`selfdenoise.tiling.choose_tiling`) lets one forward pass use up
to 4 GiB on the CPU, which is fastest for images that fit in memory. When the output streams
into a zarr store, the point is a small, stated footprint instead: :func:`bounded_tiling`
picks the largest tile (and batch) whose activations fit :data:`ACTIVATION_BUDGET` bytes, so
the peak is that budget, two tile buffers and one output slab (at most 256 MiB). Options the
user gave (tile, batch) are kept as they are. Torch-free.
"""

from __future__ import annotations

import math
from typing import Any

ACTIVATION_BUDGET = 96 * 1024**2
"""Bytes of activations one forward pass may take when streaming to disk."""

BYTES_PER_VOXEL_PER_CHANNEL = 32
"""The tiling planner's estimate of activation bytes per voxel and top-level channel."""


def bounded_tiling(
    denoiser: Any,
    image: Any,
    axes: str | None,
    options: dict,
    budget: int = ACTIVATION_BUDGET,
) -> dict:
    """``options`` with ``tile_shape`` and ``batch_size`` bounded by ``budget`` (when not given).

    Parameters
    ----------
    denoiser : selfdenoise.Denoiser
        The trained model (its network's size multiple and receptive radius are used).
    image : array-like
        The image (only its shape is read).
    axes : str or None
        Axes of ``image``, as for :meth:`~selfdenoise.Denoiser.predict`.
    options : dict
        Prediction options; ``tile_shape``/``batch_size`` already set are kept.
    budget : int
        Activation bytes per forward pass.
    """
    options = dict(options)
    if options.get("tile_shape") is not None and options.get("batch_size") is not None:
        return options
    layout = denoiser.prediction_layout(image, axes)
    network = denoiser.network
    multiple = int(network.size_multiple)
    channels = max(int(denoiser.config.network.base_channels), int(layout.n_channels))
    voxels = max(1, budget // (BYTES_PER_VOXEL_PER_CHANNEL * channels))
    spatial = tuple(layout.spatial_shape)
    if options.get("tile_shape") is None:
        side = max(multiple, int(voxels ** (1 / len(spatial))) // multiple * multiple)
        options["tile_shape"] = tuple(min(side, _round_up(size, multiple)) for size in spatial)
    if options.get("batch_size") is None:
        options["batch_size"] = max(1, min(4, voxels // math.prod(options["tile_shape"])))
    return options


def _round_up(value: int, multiple: int) -> int:
    return -(-int(value) // multiple) * multiple


def write_pyramid(target: Any, level0: Any, axes: str | None, scale: Any, unit: str | None) -> Any:
    """Write an OME-Zarr (level 0 plus its pyramid) from a finished level-0 zarr array.

    Runs dask's synchronous scheduler: with the threaded one, ome-zarr's graph for all levels
    at once kept about 2 GiB of blocks in memory for a 1 GiB level 0 (64x2048x2048 float32);
    synchronously it stayed at about 0.13 GiB, and was no slower on two cores.
    """
    import dask
    import dask.array as da

    from .io import write_image

    with dask.config.set(scheduler="synchronous"):
        return write_image(target, da.from_zarr(level0), axes=axes, scale=scale, unit=unit)
