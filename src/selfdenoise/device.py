"""Where models run: device choice, mixed precision, memory and out-of-memory detection.

``auto`` means the fastest device present: a CUDA GPU, then an Apple GPU (MPS), then the CPU.
Mixed precision (``amp``) is used on CUDA only unless asked for: bf16 where the GPU supports
it (Ampere and newer), fp16 otherwise.

On CUDA, :func:`training_sizes` chooses the training batch and patch from the free GPU memory
(the CPU keeps its measured recipe) and :func:`gpu_settings` turns on what pays on GPUs.
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

import numpy as np
import torch

from ._errors import SelfDenoiseError
from .config import AMP_MODES, DEVICES, cpu_batch

__all__ = [
    "GpuSettings",
    "TrainingSizes",
    "autocast_dtype",
    "configure_backends",
    "describe_device",
    "free_memory_bytes",
    "gpu_settings",
    "host_to_device",
    "is_out_of_memory",
    "select_device",
    "sized_for_device",
    "training_sizes",
]

_OOM_MESSAGES = (
    "out of memory",  # CUDA and MPS ("MPS backend out of memory")
    "CUBLAS_STATUS_ALLOC_FAILED",
    "can't allocate memory",  # CPU allocator
)


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def select_device(preference: str = "auto") -> torch.device:
    """Pick the device to train or predict on.

    Parameters
    ----------
    preference : {'auto', 'cpu', 'cuda', 'mps'} or 'cuda:N'
        ``auto`` picks CUDA if available, then MPS, else the CPU.

    Returns
    -------
    torch.device

    Raises
    ------
    SelfDenoiseError
        If the preference is unknown or names a device that is not present.
    """
    choice = str(preference).strip().lower()
    kind, _, index = choice.partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise SelfDenoiseError(
            f"device must be one of {', '.join(DEVICES)} (or cuda:N); got {preference!r}."
        )
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if kind == "cuda":
        return _cuda_device(int(index) if index else None)
    if kind == "mps" and not _mps_available():
        raise SelfDenoiseError(
            "MPS was requested but no Apple GPU is available; use --device cpu or auto."
        )
    return torch.device(kind)


def _cuda_device(index: int | None) -> torch.device:
    if not torch.cuda.is_available():
        raise SelfDenoiseError(
            "CUDA was requested but no CUDA GPU is available; use --device cpu or auto."
        )
    if index is None:
        return torch.device("cuda")
    count = torch.cuda.device_count()
    if index >= count:
        raise SelfDenoiseError(
            f"GPU cuda:{index} was requested but only {count} CUDA GPU(s) exist; "
            f"use cuda:0 to cuda:{count - 1}."
        )
    return torch.device("cuda", index)


def autocast_dtype(device: torch.device | str, mode: str) -> torch.dtype | None:
    """Reduced-precision dtype for :func:`torch.autocast`, or ``None`` for full precision.

    Parameters
    ----------
    device : torch.device or str
        Device the model runs on.
    mode : {'auto', 'off', 'bf16', 'fp16'}
        ``auto``: bf16 on CUDA GPUs that support it, else fp16 on CUDA, full precision on
        CPU and MPS. ``bf16`` is allowed everywhere except on CUDA GPUs without bf16; ``fp16``
        needs a GPU (CUDA or MPS).

    Returns
    -------
    torch.dtype or None

    Raises
    ------
    SelfDenoiseError
        If the mode is unknown or not supported on ``device``.
    """
    if mode not in AMP_MODES:
        raise SelfDenoiseError(f"amp must be one of {', '.join(AMP_MODES)}; got {mode!r}.")
    kind = torch.device(device).type
    if mode == "off":
        return None
    if mode == "auto":
        if kind != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if mode == "fp16":
        if kind == "cpu":
            raise SelfDenoiseError(
                "fp16 mixed precision needs a GPU and is slow or unsupported on the CPU; "
                "use --amp bf16 or off."
            )
        return torch.float16
    if kind == "cuda" and not torch.cuda.is_bf16_supported():
        raise SelfDenoiseError(
            "bf16 was requested but this GPU does not support it; use --amp fp16 or auto."
        )
    return torch.bfloat16


def _cuda_index(device: torch.device) -> int:
    return device.index if device.index is not None else torch.cuda.current_device()


def describe_device(device: torch.device | str) -> str:
    """Short human-readable name, e.g. ``'NVIDIA H100 80GB HBM3 (CUDA, 79 GiB)'``.

    Parameters
    ----------
    device : torch.device or str

    Returns
    -------
    str
        ``'<GPU name> (CUDA, <memory> GiB)'``, ``'Apple GPU (MPS)'`` or ``'CPU (<n> threads)'``.
    """
    device = torch.device(device)
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(_cuda_index(device))
        return f"{properties.name} (CUDA, {properties.total_memory / 2**30:.0f} GiB)"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    if device.type == "cpu":
        threads = torch.get_num_threads()
        return f"CPU ({threads} thread{'s' if threads != 1 else ''})"
    return str(device)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` means the device ran out of memory (so a smaller batch or tile may work).

    True for :class:`torch.cuda.OutOfMemoryError`, :class:`MemoryError`, and runtime errors
    whose message says so (CUDA, MPS, cuBLAS allocation and CPU allocator failures).
    """
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    if isinstance(exc, MemoryError):
        return True
    if isinstance(exc, RuntimeError):
        message = str(exc)
        return any(pattern in message for pattern in _OOM_MESSAGES)
    return False


def free_memory_bytes(device: torch.device | str) -> int | None:
    """Memory, in bytes, that new tensors on ``device`` could use, or ``None`` if unknown.

    On CUDA: free device memory plus what torch's caching allocator holds but does not use.
    On MPS: torch's recommended working-set limit minus what the driver already allocated.
    On the CPU: available RAM (``psutil``, else ``/proc/meminfo``).
    """
    device = torch.device(device)
    if device.type == "cuda":
        index = _cuda_index(device)
        free, _total = torch.cuda.mem_get_info(index)
        cached = torch.cuda.memory_reserved(index) - torch.cuda.memory_allocated(index)
        return int(free + max(cached, 0))
    if device.type == "mps":
        return _mps_free_memory()
    if device.type == "cpu":
        return _cpu_available_memory()
    return None


def _mps_free_memory() -> int | None:
    mps = getattr(torch, "mps", None)
    try:
        limit = mps.recommended_max_memory()
        used = mps.driver_allocated_memory()
    except (AttributeError, RuntimeError):
        return None
    return max(int(limit - used), 0)


def _cpu_available_memory() -> int | None:
    try:
        import psutil
    except ImportError:
        return _meminfo_available()
    return int(psutil.virtual_memory().available)


def _meminfo_available(path: str = "/proc/meminfo") -> int | None:
    if not os.path.exists(path):
        return None
    with open(path, encoding="ascii", errors="replace") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # reported in kB
    return None


def configure_backends(device: torch.device | str) -> None:
    """Set fast backend options for ``device``.

    On CUDA: cuDNN picks the fastest convolution algorithms for the shapes it sees
    (``cudnn.benchmark``) and float32 matrix products and convolutions may use TF32.
    Nothing changes on other devices.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return
    torch.backends.cudnn.benchmark = True
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):  # torch >= 2.9 API
        matmul.fp32_precision = "tf32"
        torch.backends.cudnn.conv.fp32_precision = "tf32"
    else:
        matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def training_memory_format(
    device: torch.device | str, ndim: int, setting: bool | None = None
) -> torch.memory_format:
    """Memory format for training tensors and weights.

    Parameters
    ----------
    device : torch.device or str
        Where training runs.
    ndim : int
        Spatial dimensions of the network (2 or 3).
    setting : bool or None
        :attr:`TrainingConfig.channels_last`; ``None`` = channels-last on CPU and CUDA
        (oneDNN and cuDNN convolutions are faster in it), the default format on MPS.

    Returns
    -------
    torch.memory_format
        ``channels_last`` / ``channels_last_3d`` or ``contiguous_format``.
    """
    device_type = torch.device(device).type
    use = setting if setting is not None else device_type in ("cpu", "cuda")
    if not use or ndim not in (2, 3):
        return torch.contiguous_format
    return torch.channels_last if ndim == 2 else torch.channels_last_3d


# ---------------------------------------------------------------------------------------------
# Device-aware training sizes and GPU settings
# ---------------------------------------------------------------------------------------------

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
) -> TrainingSizes:
    """Batch size and patch shape that keep ``device`` busy; the user's settings win.

    On the CPU and MPS this is the measured CPU recipe (:func:`cpu_recipe`). On CUDA the
    activation budget is ``GPU_TRAINING_FRACTION`` x the free memory (:func:`free_memory_bytes`)
    divided by :func:`training_bytes_per_voxel`, in voxels per step. The patch is the largest
    of :data:`GPU_PATCH_STEPS` (at most 128x128 in 2D, 32x128x128 in 3D) that fits the budget
    with the CPU batch, clipped to ``image_shape``; the batch then fills the budget, at most
    :data:`GPU_MAX_BATCH` (256 in 2D, 32 in 3D). Nothing goes below the CPU recipe: with too
    little memory the CPU recipe is returned (out-of-memory errors then tell the user).

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

    Returns
    -------
    TrainingSizes
        ``(batch_size, patch_shape, reason)``.
    """
    cpu_batch, cpu_patch = cpu_recipe(ndim)
    device = torch.device(device)
    free = free_memory_bytes(device) if device.type == "cuda" else None
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
    if least * math.prod(patch) > budget:
        reason += " (little free memory: CPU recipe)"
    return _with_user(batch, patch, user_batch, user_patch, reason)


def sized_for_device(training, network, device, n_channels: int, spatial_shapes) -> tuple:
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


class GpuSettings(NamedTuple):
    """What :func:`gpu_settings` turned on for a device."""

    cudnn_benchmark: bool
    tf32: bool
    amp_dtype: torch.dtype | None
    pin_memory: bool
    non_blocking: bool
    compile: bool

    def describe(self) -> str:
        """One line, e.g. ``'cudnn.benchmark, TF32, bf16 autocast, pinned non-blocking copies'``."""
        parts = [
            name
            for name, on in (
                ("cudnn.benchmark", self.cudnn_benchmark),
                ("TF32", self.tf32),
                (f"{str(self.amp_dtype).removeprefix('torch.')} autocast", self.amp_dtype),
                ("pinned non-blocking copies", self.pin_memory and self.non_blocking),
                ("torch.compile", self.compile),
            )
            if on
        ]
        return ", ".join(parts) or "defaults"


def gpu_settings(device: torch.device | str, *, compile: bool = False) -> GpuSettings:
    """Turn on the backend settings that pay on GPUs and say which ones apply.

    On CUDA: ``cudnn.benchmark`` (training patches and prediction tiles have fixed shapes, so
    cuDNN's search is paid once), TF32 float32 matrix products and convolutions
    (:func:`configure_backends`), bf16 autocast where ``torch.cuda.is_bf16_supported()``
    (else fp16 with a gradient scaler, :func:`autocast_dtype`), and batches copied from
    pinned host memory without blocking (:func:`host_to_device`). ``compile`` asks for
    ``torch.compile`` of the network: off by default because its benefit for this U-Net has
    not been measured (and its first step takes tens of seconds). On other devices nothing
    changes and everything is off.

    Parameters
    ----------
    device : torch.device or str
        Where training or prediction runs.
    compile : bool
        :attr:`~selfdenoise.config.TrainingConfig.compile`, which asks for ``torch.compile``;
        honoured on CUDA only.

    Returns
    -------
    GpuSettings
    """
    device = torch.device(device)
    if device.type != "cuda":
        return GpuSettings(False, False, None, False, False, False)
    configure_backends(device)
    return GpuSettings(True, True, autocast_dtype(device, "auto"), True, True, bool(compile))


def host_to_device(
    array: np.ndarray,
    device: torch.device,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """Copy a numpy batch to ``device``: through pinned memory and without blocking on CUDA.

    A non-blocking copy from ordinary (pageable) host memory is synchronous in CUDA; from a
    pinned buffer it overlaps with the GPU work already queued. torch's caching host allocator
    reuses the pinned buffers and keeps each alive until its copy has finished.
    """
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if device.type == "cuda":
        tensor = tensor.pin_memory().to(device, non_blocking=True)
    else:
        tensor = tensor.to(device)
    return tensor.contiguous(memory_format=memory_format)
