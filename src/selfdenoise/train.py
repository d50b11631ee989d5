"""The training loop: device, mixed precision, schedule, validation, early stop, cancel, resume.

:func:`train` is a generator of :class:`Progress` records, so a GUI can show progress and a
script can simply exhaust it. The best weights by validation loss are restored into the
network when training ends, whether by budget, early stopping or cancel.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .config import TrainingConfig
from .data import PatchSampler
from .device import autocast_dtype, configure_backends, training_memory_format

Cancel = threading.Event | Callable[[], bool] | None


@dataclass
class Progress:
    """One progress record, yielded after each step.

    Attributes
    ----------
    step, total_steps, epoch : int
        Steps done, the step budget (an estimate under a time budget) and the current epoch.
    loss : float
        Training loss of this step.
    val_loss : float or None
        Latest validation loss (masked-pixel self-supervised loss on held-out patches).
    best_val_loss : float or None
        Lowest validation loss so far.
    learning_rate, steps_per_second, eta_seconds, elapsed_seconds : float
        Optimiser and timing figures.
    validated : bool
        True when this step ran a validation.
    done : bool
        True on the last record.
    stop_reason : str
        ``'budget'``, ``'time'``, ``'early stopping'`` or ``'cancelled'`` on the last record.
    """

    step: int
    total_steps: int
    epoch: int
    loss: float
    val_loss: float | None
    best_val_loss: float | None
    learning_rate: float
    steps_per_second: float
    eta_seconds: float | None
    elapsed_seconds: float
    validated: bool = False
    done: bool = False
    stop_reason: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def is_cancelled(cancel: Cancel) -> bool:
    """True if ``cancel`` (an Event or a callable) asks to stop."""
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


def learning_rate_factor(schedule: str, fraction: float) -> float:
    """Multiplier of the base learning rate at ``fraction`` (0..1) of the budget.

    ``cosine``: 5 % linear warm-up then cosine decay to 1 %; ``onecycle``: 25 % warm-up from
    4 % then cosine to 0.1 %; ``step``: halved at 50 % and 75 %; ``constant`` and ``plateau``
    (reduced on validation plateaus by the loop): 1.
    """
    fraction = min(max(fraction, 0.0), 1.0)
    if schedule == "cosine":
        if fraction < 0.05:
            return 0.1 + 0.9 * fraction / 0.05
        t = (fraction - 0.05) / 0.95
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t))
    if schedule == "onecycle":
        if fraction < 0.25:
            return 0.04 + 0.96 * fraction / 0.25
        t = (fraction - 0.25) / 0.75
        return 0.001 + 0.999 * 0.5 * (1 + math.cos(math.pi * t))
    if schedule == "step":
        return 1.0 if fraction < 0.5 else (0.5 if fraction < 0.75 else 0.25)
    return 1.0


def make_optimizer(network: torch.nn.Module, config: TrainingConfig) -> torch.optim.Optimizer:
    """AdamW with the configured learning rate and weight decay."""
    return torch.optim.AdamW(
        network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )


def _to_device(batch, device: torch.device, memory_format=torch.contiguous_format):
    if isinstance(batch, tuple):
        return tuple(_to_device(b, device, memory_format) for b in batch)
    tensor = torch.from_numpy(batch).to(device, non_blocking=True)
    return tensor.contiguous(memory_format=memory_format)


def _spatial_ndim(network: torch.nn.Module) -> int:
    """Spatial dimensions of a network's first convolution (2 or 3; 0 if it has none)."""
    for parameter in network.parameters():
        if parameter.dim() in (4, 5):
            return parameter.dim() - 2
    return 0


def _state_copy(network: torch.nn.Module) -> dict[str, torch.Tensor]:
    module = network.module if hasattr(network, "module") else network
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def _validate(
    network, objective, validation_batch, device, batch_size, seed, dtype, memory_format
) -> float:
    """Mean validation loss over the fixed validation patches (same masks every time)."""
    network.eval()
    generator = torch.Generator().manual_seed(seed)
    total, count = 0.0, 0
    paired = isinstance(validation_batch, tuple)
    n_patches = len(validation_batch[0] if paired else validation_batch)
    with torch.no_grad(), _autocast(device, dtype):
        for start in range(0, n_patches, batch_size):
            if paired:
                chunk = tuple(v[start : start + batch_size] for v in validation_batch)
            else:
                chunk = validation_batch[start : start + batch_size]
            batch = _to_device(chunk, device, memory_format)
            loss = objective.validation_loss(network, batch, generator)
            n = len(chunk[0] if paired else chunk)
            total += float(loss) * n
            count += n
    network.train()
    return total / max(count, 1)


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=dtype)


def train(
    network: torch.nn.Module,
    objective,
    sampler: PatchSampler,
    config: TrainingConfig,
    device: torch.device,
    *,
    cancel: Cancel = None,
    resume: dict | None = None,
    checkpoint: Callable[[dict], None] | None = None,
) -> Generator[Progress, None, dict]:
    """Train ``network`` with ``objective`` on patches from ``sampler``; yield progress.

    Parameters
    ----------
    network : torch.nn.Module
        Already on ``device`` (possibly wrapped in DistributedDataParallel).
    objective
        A :mod:`selfdenoise.methods` objective.
    sampler : PatchSampler
        Training and validation patches (normalised).
    config : TrainingConfig
        Budget, optimiser and schedule.
    device : torch.device
        Where to train.
    cancel : threading.Event or callable, optional
        Checked before every step; when set, training stops and the best weights are kept.
    resume : dict, optional
        State from a checkpoint (``network``, ``optimizer``, ``step``, ``elapsed_seconds``,
        ``best_val_loss``, ``history``, RNG states) to continue from.
    checkpoint : callable, optional
        Called with the resumable state every ``config.checkpoint_every`` steps.

    Yields
    ------
    Progress
        One record per step; the last has ``done=True``.

    Returns
    -------
    dict
        ``history`` (validation records), ``best_state`` (weights), ``state`` (resumable).
    """
    configure_backends(device)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    amp_dtype = autocast_dtype(device, config.amp)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    # The caller puts the weights in this format (before any DistributedDataParallel wrap);
    # the batches follow it.
    memory_format = training_memory_format(device, _spatial_ndim(network), config.channels_last)
    optimizer = make_optimizer(network, config)
    generator = torch.Generator().manual_seed(config.seed + _rank() * 1000)
    step, elapsed_before, best_val, history, best_state = 0, 0.0, None, [], None
    plateau_factor, since_best = 1.0, 0
    if resume is not None:
        step = int(resume["step"])
        elapsed_before = float(resume.get("elapsed_seconds", 0.0))
        best_val = resume.get("best_val_loss")
        history = list(resume.get("history", []))
        optimizer.load_state_dict(resume["optimizer"])
        plateau_factor = float(resume.get("plateau_factor", 1.0))
        if "generator" in resume:
            generator.set_state(resume["generator"])
        if "sampler_rng" in resume:
            sampler.rng.bit_generator.state = resume["sampler_rng"]
        best_state = resume.get("best_state")

    def validate() -> float:
        """Validation loss of the current weights on the fixed held-out patches."""
        return _validate(
            network,
            objective,
            sampler.validation_patches,
            device,
            config.batch_size,
            config.seed + 7,
            amp_dtype,
            memory_format,
        )

    def resumable() -> dict:
        """Everything needed to continue this run exactly where it is now."""
        return _resumable(
            network,
            optimizer,
            generator,
            sampler,
            step,
            elapsed,
            best_val,
            best_state,
            history,
            plateau_factor,
        )

    total_steps = config.total_steps if (config.steps or not config.max_minutes) else None
    time_budget = config.max_minutes * 60 if config.max_minutes else None
    started = time.perf_counter()
    network.train()
    val_loss = best_val
    stop_reason = "budget"
    window_start, window_steps, rate = time.perf_counter(), 0, 0.0
    while True:
        elapsed = elapsed_before + time.perf_counter() - started
        local_reason = ""
        if total_steps is not None and step >= total_steps:
            local_reason = "budget"
        elif time_budget is not None and elapsed >= time_budget:
            local_reason = "time"
        elif is_cancelled(cancel):
            local_reason = "cancelled"
        reason = _agree_stop(local_reason, device)
        if reason:
            stop_reason = reason
            break
        fraction = _budget_fraction(step, total_steps, elapsed, time_budget)
        lr = config.learning_rate * learning_rate_factor(config.schedule, fraction) * plateau_factor
        for group in optimizer.param_groups:
            group["lr"] = lr
        if hasattr(objective, "set_progress"):
            objective.set_progress(fraction)
        batch = _to_device(sampler.sample(config.batch_size), device, memory_format)
        with _autocast(device, amp_dtype):
            loss, _ = objective.training_loss(network, batch, generator)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                "training diverged (loss is not finite); lower the learning rate."
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if config.grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(network.parameters(), config.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        step += 1
        window_steps += 1
        loss_value = float(loss.detach())
        now = time.perf_counter()
        if now - window_start > 0.5:
            rate = window_steps / (now - window_start)
            window_start, window_steps = now, 0
        elapsed = elapsed_before + now - started
        validated = step % config.steps_per_epoch == 0 or step == total_steps
        if validated:
            val_loss = validate()
            val_loss = _all_reduce_mean(val_loss, device)
            improved = best_val is None or val_loss < best_val
            if improved:
                best_val, best_state, since_best = val_loss, _state_copy(network), 0
            else:
                since_best += 1
                if config.schedule == "plateau" and since_best % 3 == 0:
                    plateau_factor *= 0.5
            history.append(
                {
                    "step": step,
                    "epoch": _epoch(step, config),
                    "loss": loss_value,
                    "val_loss": val_loss,
                    "learning_rate": lr,
                    "elapsed_seconds": elapsed,
                }
            )
        progress = Progress(
            step=step,
            total_steps=total_steps or _estimate_total(step, elapsed, time_budget),
            epoch=_epoch(step, config),
            loss=loss_value,
            val_loss=val_loss,
            best_val_loss=best_val,
            learning_rate=lr,
            steps_per_second=rate,
            eta_seconds=_eta(step, total_steps, rate, elapsed, time_budget),
            elapsed_seconds=elapsed,
            validated=validated,
        )
        if (
            checkpoint is not None
            and config.checkpoint_every
            and step % config.checkpoint_every == 0
        ):
            checkpoint(resumable())
        if validated and config.early_stopping and since_best >= config.early_stopping:
            stop_reason = "early stopping"
            yield progress
            break
        yield progress

    elapsed = elapsed_before + time.perf_counter() - started
    if best_state is None or not history or history[-1]["step"] != step:
        # Validate the final weights too, so a cancelled run keeps the better of the two.
        if step > 0:
            val_loss = validate()
            if best_val is None or val_loss < best_val:
                best_val, best_state = val_loss, _state_copy(network)
            history.append(
                {
                    "step": step,
                    "epoch": _epoch(step, config),
                    "loss": float("nan"),
                    "val_loss": val_loss,
                    "learning_rate": 0.0,
                    "elapsed_seconds": elapsed,
                }
            )
    if best_state is not None:
        module = network.module if hasattr(network, "module") else network
        module.load_state_dict(best_state)
    state = resumable()
    yield Progress(
        step=step,
        total_steps=total_steps or step,
        epoch=_epoch(step, config),
        loss=history[-1]["loss"] if history else float("nan"),
        val_loss=val_loss,
        best_val_loss=best_val,
        learning_rate=0.0,
        steps_per_second=rate,
        eta_seconds=0.0,
        elapsed_seconds=elapsed,
        validated=False,
        done=True,
        stop_reason=stop_reason,
    )
    network.eval()
    return {
        "history": history,
        "best_state": best_state,
        "state": state,
        "stop_reason": stop_reason,
    }


def _epoch(step: int, config: TrainingConfig) -> int:
    return (step - 1) // config.steps_per_epoch + 1 if step else 0


def _budget_fraction(step, total_steps, elapsed, time_budget) -> float:
    fractions = []
    if total_steps:
        fractions.append(step / total_steps)
    if time_budget:
        fractions.append(elapsed / time_budget)
    return max(fractions) if fractions else 0.0


def _estimate_total(step: int, elapsed: float, time_budget: float | None) -> int:
    if not time_budget or elapsed <= 0:
        return step
    return max(step, int(step * time_budget / elapsed))


def _eta(step, total_steps, rate, elapsed, time_budget) -> float | None:
    candidates = []
    if total_steps and rate > 0:
        candidates.append((total_steps - step) / rate)
    if time_budget:
        candidates.append(max(0.0, time_budget - elapsed))
    return min(candidates) if candidates else None


def _resumable(
    network,
    optimizer,
    generator,
    sampler,
    step,
    elapsed,
    best_val,
    best_state,
    history,
    plateau_factor,
) -> dict:
    return {
        "network": _state_copy(network),
        "optimizer": optimizer.state_dict(),
        "generator": generator.get_state(),
        "sampler_rng": sampler.rng.bit_generator.state,
        "step": step,
        "elapsed_seconds": elapsed,
        "best_val_loss": best_val,
        "best_state": best_state,
        "history": history,
        "plateau_factor": plateau_factor,
    }


# ---------------------------------------------------------------------------------------------
# Distributed (torchrun) support
# ---------------------------------------------------------------------------------------------


def _rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _all_reduce_mean(value: float, device: torch.device) -> float:
    """Mean of ``value`` over all processes (every rank then takes the same decisions)."""
    if not _distributed():
        return value
    tensor = torch.tensor([value], dtype=torch.float32, device=device)
    torch.distributed.all_reduce(tensor)
    return float(tensor.item() / torch.distributed.get_world_size())


_STOP_REASONS = ("", "budget", "time", "cancelled")


def _agree_stop(reason: str, device: torch.device) -> str:
    """Under DDP every rank stops at the same step: the strongest reason of any rank wins."""
    if not _distributed():
        return reason
    code = torch.tensor([_STOP_REASONS.index(reason)], dtype=torch.int32, device=device)
    torch.distributed.all_reduce(code, op=torch.distributed.ReduceOp.MAX)
    return _STOP_REASONS[int(code.item())]


def distributed_teardown() -> None:
    """Leave the process group at the end of a torchrun job."""
    if _distributed():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def distributed_setup(device: torch.device) -> tuple[int, int, torch.device]:
    """Join the process group when launched by ``torchrun``; return (rank, world, device).

    Uses NCCL with one GPU per process on CUDA, gloo otherwise. Outside torchrun
    (``WORLD_SIZE`` unset or 1) nothing happens.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    if not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
    rank = torch.distributed.get_rank()
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    return rank, world, device


def wrap_distributed(network: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Wrap in DistributedDataParallel when a process group is active (SyncBatchNorm on CUDA)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return network
    if device.type == "cuda":
        network = torch.nn.SyncBatchNorm.convert_sync_batchnorm(network)
        return torch.nn.parallel.DistributedDataParallel(network, device_ids=[device.index])
    return torch.nn.parallel.DistributedDataParallel(network)


def save_resumable(path: str | Path, state: dict, extra: dict) -> None:
    """Write a resumable checkpoint (``torch.save``; read back with ``weights_only=True``)."""
    from .io import save_checkpoint

    payload = dict(state)
    payload["sampler_rng"] = _json_safe(payload.get("sampler_rng"))
    payload["extra"] = extra
    save_checkpoint(path, payload)


def _json_safe(value):
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, np.integer):
        return int(value)
    return value
