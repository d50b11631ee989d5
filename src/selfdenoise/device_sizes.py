"""Training batch and patch sizes for a device: the CPU recipe, or a rule on free GPU memory.

:func:`sized_for_device` is the engine's hook: it fills in the batch and patch the settings
leave unset. Every name here is also importable from :mod:`selfdenoise.device`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from . import device as device_module
from .config import cpu_batch

__all__ = [
    "CPU_BATCH",
    "GPU_DATA_PASSES",
    "GPU_MAX_BATCH",
    "GPU_PATCH_STEPS",
    "GPU_TRAINING_FRACTION",
    "SAVED_TENSORS_PER_CHANNEL",
    "TrainingSizes",
    "cpu_recipe",
    "sized_for_device",
    "training_bytes_per_voxel",
    "training_sizes",
]

SAVED_TENSORS_PER_CHANNEL = 16
"""``K`` of :func:`training_bytes_per_voxel`: float32 values kept for the backward pass, per
input voxel, per base channel and per unit of level weight. Measured on the CPU with
``torch.autograd.graph.saved_tensors_hooks`` for every method's default network: Noise2Same
14.3 (3D) and 13.2 (2D), N2V2 10.6 / 9.4, N2V and Noise2Self 8.1 / 7.1, Neighbor2Neighbor
3.0 / 2.2 (it trains on half-resolution sub-images). 16 covers the worst with some room."""

GPU_TRAINING_FRACTION = 0.5
"""Fraction of the free GPU memory the saved activations of one training step may take; the
rest is for gradients during the backward pass, cuDNN workspaces and the optimiser."""

GPU_PATCH_STEPS = {2: ((64, 64), (128, 128)), 3: ((16, 64, 64), (16, 128, 128), (32, 128, 128))}
"""Patch shapes tried on CUDA, smallest (the CPU recipe) first; the largest is the cap."""

GPU_MAX_BATCH = {2: 256, 3: 32}
"""Largest batch the rule picks on CUDA."""

GPU_DATA_PASSES = 4
"""On CUDA one step holds at most this many times the training data's voxels (never less than
the CPU recipe's batch). Without it one 256x256 image was trained with 256 patches of 128x128
per step, 64 times the image: on an H200 that made 200 steps in 12 s and 27.94 dB on Set12,
below the 28.63 dB of 496 CPU-recipe steps in one CPU-minute. For a single image, steps
matter more than voxels per step; large data still fills the memory budget."""


class TrainingSizes(NamedTuple):
    """Batch size and patch shape for training, and why (one line for logs and widgets)."""

    batch_size: int
    patch_shape: tuple[int, ...]
    reason: str


CPU_BATCH = {2: cpu_batch(2), 3: cpu_batch(3)}
"""Batch of the measured CPU recipe (what an unset batch becomes on the CPU and MPS)."""


def cpu_recipe(ndim: int) -> tuple[int, tuple[int, ...]]:
    """The measured CPU recipe: 16 patches of 64x64 in 2D, 4 of 16x64x64 in 3D."""
    return CPU_BATCH[ndim], GPU_PATCH_STEPS[ndim][0]


def training_bytes_per_voxel(ndim: int, n_channels: int, base_channels: int, depth: int) -> float:
    """Estimated activation memory of one training step, in bytes per patch voxel.

    ``4 * (K * c * S + 4 * n_channels)`` with ``c`` the base channels, ``K`` =
    :data:`SAVED_TENSORS_PER_CHANNEL` and ``S = sum_{l=0}^{depth} 2**(l * (1 - ndim))`` (level
    ``l`` has ``2**l * c`` channels on ``2**(-l * ndim)`` of the voxels): the float32 tensors the
    U-Net keeps for its backward pass, plus the input, masks and targets. bf16 autocast keeps
    about half of that, so the estimate is conservative there.
    """
    levels = sum(2.0 ** (level * (1 - ndim)) for level in range(depth + 1))
    return 4.0 * (SAVED_TENSORS_PER_CHANNEL * base_channels * levels + 4 * n_channels)


def training_sizes(
    device: torch.device | str,
    ndim: int,
    n_channels: int,
    base_channels: int,
    depth: int,
    user_batch: int | None = None,
    user_patch: tuple[int, ...] | None = None,
    image_shape: tuple[int, ...] | None = None,
    data_voxels: int | None = None,
) -> TrainingSizes:
    """Batch size and patch shape that keep ``device`` busy; the user's settings win.

    On the CPU and MPS this is the measured CPU recipe (:func:`cpu_recipe`). On CUDA the
    activation budget is ``GPU_TRAINING_FRACTION`` x the free memory
    (:func:`~selfdenoise.device.free_memory_bytes`)
    divided by :func:`training_bytes_per_voxel`, in voxels per step. The patch is the largest
    of :data:`GPU_PATCH_STEPS` (at most 128x128 in 2D, 32x128x128 in 3D) that fits the budget
    with the CPU batch, clipped to ``image_shape``; the batch then fills the budget, at most
    :data:`GPU_MAX_BATCH` (256 in 2D, 32 in 3D) and at most :data:`GPU_DATA_PASSES` times
    ``data_voxels`` per step. Nothing goes below the CPU recipe: with too little memory the
    CPU recipe is returned (out-of-memory errors then tell the user).

    Parameters
    ----------
    device : torch.device or str
        Where training runs.
    ndim : int
        Spatial dimensions, 2 or 3.
    n_channels : int
        Channels of the training data.
    base_channels, depth : int
        The U-Net's width and depth (:class:`~selfdenoise.config.NetworkConfig`).
    user_batch, user_patch : optional
        Values the user set; they are kept as they are.
    image_shape : tuple of int, optional
        Spatial shape of the smallest training image; the chosen patch is clipped to it
        (rounded down to a multiple of ``2**depth``).
    data_voxels : int, optional
        Voxels of all training data (every sample of every image), for the cap above.

    Returns
    -------
    TrainingSizes
        ``(batch_size, patch_shape, reason)``.
    """
    cpu_batch, cpu_patch = cpu_recipe(ndim)
    device = torch.device(device)
    free = device_module.free_memory_bytes(device) if device.type == "cuda" else None
    if device.type != "cuda" or not free:
        reason = "the CPU recipe" + (
            " (free GPU memory unknown)" if device.type == "cuda" else f" on {device.type}"
        )
        return _with_user(cpu_batch, cpu_patch, user_batch, user_patch, reason)
    per_voxel = training_bytes_per_voxel(ndim, n_channels, base_channels, depth)
    budget = int(GPU_TRAINING_FRACTION * free / per_voxel)
    multiple = 2**depth
    if user_patch is not None:
        patches = [tuple(user_patch)]
    else:
        patches = [_clip_patch(p, image_shape, multiple) for p in GPU_PATCH_STEPS[ndim]]
    least = user_batch or cpu_batch
    fitting = [p for p in patches if least * math.prod(p) <= budget] or patches[:1]
    patch = fitting[-1]
    batch = user_batch or min(GPU_MAX_BATCH[ndim], max(cpu_batch, budget // math.prod(patch)))
    reason = (
        f"CUDA: {free / 2**30:.1f} GiB free, about {per_voxel / 1024:.1f} KiB per voxel "
        f"-> up to {budget / 1e6:.1f} M voxels per step"
    )
    if data_voxels and user_batch is None:
        data_cap = max(cpu_batch, GPU_DATA_PASSES * data_voxels // math.prod(patch))
        if batch > data_cap:
            batch = data_cap
            reason += f", {GPU_DATA_PASSES}x the {data_voxels:,} training voxels"
    if least * math.prod(patch) > budget:
        reason += " (little free memory: CPU recipe)"
    return _with_user(batch, patch, user_batch, user_patch, reason)


def sized_for_device(
    training, network, device, n_channels: int, spatial_shapes, data_voxels: int | None = None
) -> tuple:
    """A copy of the training settings with the batch and patch the device calls for.

    :func:`training_sizes` fills in what the settings leave unset (``None``, the defaults):
    on CUDA the batch and the patch (clipped to the smallest of ``spatial_shapes``); on the
    CPU and MPS the batch of the measured CPU recipe (16 in 2D, 4 in 3D), while an unset
    patch stays unset (the sampler's 64x64 / 16x64x64, fitted to the images). Values the
    user set are kept. The given settings are never modified.

    Parameters
    ----------
    training : TrainingConfig
        The model's training settings.
    network : NetworkConfig
        Its network settings (width and depth decide the memory per voxel).
    device : torch.device or str
        Where the run trains.
    n_channels : int
        Channels of the training data.
    spatial_shapes : sequence of tuple of int
        Spatial shapes of every training (and validation) image.
    data_voxels : int, optional
        Voxels of all training data; on CUDA a step holds at most :data:`GPU_DATA_PASSES`
        times as many.

    Returns
    -------
    tuple
        ``(TrainingConfig, reason)``: the settings for this run and one line saying what was
        chosen and why.
    """
    import dataclasses

    device = torch.device(device)
    ndim = len(spatial_shapes[0])
    smallest = tuple(min(shape[axis] for shape in spatial_shapes) for axis in range(ndim))
    sizes = training_sizes(
        device,
        ndim,
        n_channels,
        network.base_channels,
        network.depth,
        user_batch=training.batch_size,
        user_patch=training.patch_shape,
        image_shape=smallest,
        data_voxels=data_voxels,
    )
    if device.type != "cuda":
        if training.batch_size is not None:
            return training, sizes.reason
        return dataclasses.replace(training, batch_size=sizes.batch_size), sizes.reason
    changed = dataclasses.replace(
        training, batch_size=sizes.batch_size, patch_shape=sizes.patch_shape
    )
    return changed, sizes.reason


def _clip_patch(patch, image_shape, multiple: int) -> tuple[int, ...]:
    if image_shape is None:
        return tuple(patch)
    return tuple(
        max(multiple, min(side, have // multiple * multiple))
        for side, have in zip(patch, image_shape, strict=True)
    )


def _with_user(batch, patch, user_batch, user_patch, reason: str) -> TrainingSizes:
    batch = int(user_batch) if user_batch is not None else int(batch)
    patch = tuple(int(p) for p in (user_patch if user_patch is not None else patch))
    chosen = f"{batch} x {'x'.join(map(str, patch))} patches"
    mine = [n for n, v in (("batch", user_batch), ("patch", user_patch)) if v is not None]
    if mine:
        chosen += f" ({' and '.join(mine)} as set)"
    return TrainingSizes(batch, patch, f"{chosen}; {reason}")
