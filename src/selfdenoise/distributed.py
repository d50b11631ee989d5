"""Multi-process (``torchrun``) training: joining, leaving and agreeing across processes.

The engine owns the process group: :meth:`selfdenoise.Denoiser.fit` joins it when launched by
``torchrun`` and leaves it when training ends, so front ends only ask
:func:`is_main_process` (rank 0 writes files and prints). This module does not import torch
at import time; every function that needs it imports it inside.
"""

from __future__ import annotations

import os
import sys

__all__ = [
    "agree_stop",
    "all_reduce_mean",
    "is_active",
    "is_main_process",
    "rank",
    "setup",
    "teardown",
    "world_size",
    "wrap",
]

STOP_REASONS = ("", "budget", "time", "cancelled")
"""Stop reasons in increasing strength; under DDP the strongest of any rank wins."""


def is_active() -> bool:
    """True while this process belongs to an initialised process group."""
    torch = sys.modules.get("torch")  # a group cannot exist before torch is imported
    if torch is None:
        return False
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def rank() -> int:
    """Rank of this process (0 outside a process group; ``RANK`` under torchrun)."""
    if is_active():
        import torch

        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """Number of processes (``WORLD_SIZE`` under torchrun, else 1)."""
    if is_active():
        import torch

        return torch.distributed.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True on rank 0, the process that writes files and prints (always True without DDP)."""
    return rank() == 0


def setup(device):
    """Join the process group when launched by ``torchrun``; return ``(rank, world, device)``.

    Uses NCCL with one GPU per process on CUDA, gloo otherwise. Outside torchrun
    (``WORLD_SIZE`` unset or 1) nothing happens and ``(0, 1, device)`` is returned.

    Returns
    -------
    tuple
        ``(rank, world_size, device)``; on CUDA the device is this process's GPU.
    """
    import torch

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    if not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    return torch.distributed.get_rank(), world, device


def teardown() -> None:
    """Leave the process group (after a barrier); nothing happens outside one."""
    if is_active():
        import torch

        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def wrap(network, device):
    """Wrap in DistributedDataParallel when a process group is active (SyncBatchNorm on CUDA)."""
    if not is_active():
        return network
    import torch

    if device.type == "cuda":
        network = torch.nn.SyncBatchNorm.convert_sync_batchnorm(network)
        return torch.nn.parallel.DistributedDataParallel(network, device_ids=[device.index])
    return torch.nn.parallel.DistributedDataParallel(network)


def all_reduce_mean(value: float, device) -> float:
    """Mean of ``value`` over all processes (every rank then takes the same decisions)."""
    if not is_active():
        return value
    import torch

    tensor = torch.tensor([value], dtype=torch.float32, device=device)
    torch.distributed.all_reduce(tensor)
    return float(tensor.item() / torch.distributed.get_world_size())


def agree_stop(reason: str, device) -> str:
    """Under DDP every rank stops at the same step: the strongest reason of any rank wins."""
    if not is_active():
        return reason
    import torch

    code = torch.tensor([STOP_REASONS.index(reason)], dtype=torch.int32, device=device)
    torch.distributed.all_reduce(code, op=torch.distributed.ReduceOp.MAX)
    return STOP_REASONS[int(code.item())]
