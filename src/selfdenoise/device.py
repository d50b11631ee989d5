"""Where models run: device choice, mixed precision, memory and out-of-memory detection.

``auto`` means the fastest device present: a CUDA GPU, then an Apple GPU (MPS), then the CPU.
Mixed precision (``amp``) is used on CUDA, bf16 where the GPU supports it (Ampere and newer),
fp16 otherwise, on CPUs with bf16 matrix units (Intel AMX), where bf16 makes a training
step 2-3x cheaper at the same quality (docs/benchmarks.md, "Training step cost on
the CPU"), and for 2D models on CPUs with AVX-512 BF16 (1.8-2.1x cheaper). Elsewhere it is
used only when asked for.

:func:`gpu_settings` turns on what pays on GPUs. The training batch and patch for a device
(:func:`training_sizes`, :func:`sized_for_device`) live in :mod:`selfdenoise.device_sizes`
and are importable from here too.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np
import torch

from ._errors import SelfDenoiseError
from .config import AMP_MODES, DEVICES

__all__ = [
    "GpuSettings",
    "autocast_dtype",
    "configure_backends",
    "cpu_bf16_3d_fault",
    "cpu_has_fast_bf16",
    "describe_device",
    "free_memory_bytes",
    "gpu_settings",
    "host_to_device",
    "is_out_of_memory",
    "precision_name",
    "select_device",
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


def autocast_dtype(
    device: torch.device | str, mode: str, spatial_dims: int | None = None
) -> torch.dtype | None:
    """Reduced-precision dtype for :func:`torch.autocast`, or ``None`` for full precision.

    Parameters
    ----------
    device : torch.device or str
        Device the model runs on.
    mode : {'auto', 'off', 'bf16', 'fp16'}
        ``auto``: bf16 on CUDA GPUs that support it, else fp16 on CUDA; on the CPU, bf16 where
        :func:`cpu_has_fast_bf16` says so for ``spatial_dims`` (AMX; AVX-512 BF16 in 2D), else
        full precision; full precision on MPS. ``bf16`` is allowed everywhere except on CUDA
        GPUs without bf16; ``fp16`` needs a GPU (CUDA or MPS).
    spatial_dims : int, optional
        2 or 3: the images' spatial dimensions, which decide ``auto`` on some CPUs. ``None``
        (unknown) takes bf16 only where it pays in both.

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
        if kind == "cpu":
            return torch.bfloat16 if cpu_has_fast_bf16(spatial_dims) else None
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


def precision_name(
    device: torch.device | str, mode: str = "auto", spatial_dims: int | None = None
) -> str:
    """What training computes in on ``device`` with ``amp=mode``: ``'float32'``, ``'bf16'``
    or ``'fp16'`` (mixed precision); see :func:`autocast_dtype`.

    With ``spatial_dims=None`` and an answer that depends on it, both are named:
    ``'bf16 in 2D, float32 in 3D'``.

    Raises
    ------
    SelfDenoiseError
        If the mode is unknown or not supported on ``device``.
    """
    dims = (spatial_dims,) if spatial_dims is not None else (2, 3)
    names = [_dtype_name(autocast_dtype(device, mode, ndim)) for ndim in dims]
    if len(set(names)) == 1:
        return names[0]
    return f"{names[0]} in 2D, {names[1]} in 3D"


def _dtype_name(dtype: torch.dtype | None) -> str:
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "float32")


def cpu_has_fast_bf16(spatial_dims: int | None = None) -> bool:
    """Whether ``amp='auto'`` trains ``spatial_dims``-D images in bf16 on this CPU.

    Intel AMX-BF16 units: yes, in 2D and 3D. There bf16 autocast was measured to pay: a
    training step costs 2-3x less, with the same PSNR after the same steps
    (docs/benchmarks.md). AVX-512 BF16 without AMX (AMD EPYC): in 2D only, where a step is
    1.8-2.1x cheaper at the same PSNR. In 3D there PyTorch's bf16 weight gradient of a
    convolution whose input is 2 voxels deep (a U-Net level of an 8-deep patch) is wrong: it
    differs from call to call, now and then NaN or some 1e17 times too large, while 2D
    convolutions and other depths are exact to bf16 rounding
    (``benchmarks/bf16_determinism.py``). So ``spatial_dims=None`` (unknown) answers as for
    3D. AVX2-only and Arm CPUs keep float32; so does any CPU where torch cannot tell
    (releases without ``torch.cpu.get_capabilities``).
    """
    units = _cpu_bf16_units()
    return units == "amx" or (units == "avx512" and spatial_dims == 2)


def _cpu_bf16_units() -> str:
    """``'amx'`` (AMX-BF16), ``'avx512'`` (AVX-512 BF16 without AMX: the CPUs with the 3D
    gradient fault) or ``''`` (no bf16 hardware, or torch cannot tell)."""
    capabilities = _cpu_capabilities()
    if capabilities.get("amx_bf16"):
        return "amx"
    return "avx512" if capabilities.get("avx512_bf16") else ""


def _cpu_capabilities() -> dict:
    """``torch.cpu.get_capabilities()``, or ``{}`` where torch cannot tell."""
    capabilities = getattr(torch.cpu, "get_capabilities", None)
    if capabilities is None:
        return {}
    try:
        return dict(capabilities())
    except Exception:
        return {}


def cpu_bf16_3d_fault(patch_shape: tuple[int, ...], levels: int) -> str:
    """A one-line warning when bf16 training on this CPU would get wrong 3D gradients, else ``''``.

    On CPUs with AVX-512 BF16 but no AMX, PyTorch's bf16 weight gradient of a 3D convolution
    whose input is 2 voxels deep is wrong (``benchmarks/bf16_determinism.py``). A U-Net with
    ``levels`` down-samplings meets that depth when the patch is ``2 * 2**level`` deep for
    some level (4, 8, ... voxels).
    """
    if len(patch_shape) != 3 or _cpu_bf16_units() != "avx512":
        return ""
    if not any(patch_shape[0] == 2 * 2**level for level in range(levels + 1)):
        return ""
    return (
        f"bf16 3D training on this CPU (AVX-512 BF16 without AMX) gets wrong gradients with "
        f"patches {patch_shape[0]} deep; use amp='off', or patches 16 or more deep."
    )


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


def __getattr__(name: str):
    """The training-size names of :mod:`selfdenoise.device_sizes`, imported on first use."""
    if not name.startswith("__"):
        from . import device_sizes

        if name in device_sizes.__all__:
            return getattr(device_sizes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
