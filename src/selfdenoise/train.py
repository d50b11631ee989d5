"""Training building blocks: progress records, the schedule, validation and checkpoints.

The run itself is :class:`selfdenoise.training.TrainingRun`; :func:`train` is a generator
over one, kept for scripts. Multi-process support lives in :mod:`selfdenoise.distributed`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from . import distributed
from .config import TrainingConfig
from .device import host_to_device

Cancel = threading.Event | Callable[[], bool] | None

__all__ = [
    "Progress",
    "distributed_setup",
    "distributed_teardown",
    "is_cancelled",
    "learning_rate_factor",
    "make_optimizer",
    "save_resumable",
    "train",
    "wrap_distributed",
]


@dataclass
class Progress:
    """One progress record, yielded after each step.

    Attributes
    ----------
    step : int
        Steps the model has been trained in all (global: continued and resumed runs count on).
    total_steps : int
        The global step this run ends at (an estimate under a time budget).
    epoch : int
        The current epoch of this run.
    loss : float
        Latest training loss read from the device: read at the first step, every
        :data:`~selfdenoise.training.LOSS_READ_EVERY` steps and at each validation (where it
        is that step's loss), so that a GPU step never waits; NaN before the first read.
    val_loss : float or None
        Latest validation loss (masked-pixel self-supervised loss on held-out patches).
    best_val_loss : float or None
        Lowest validation loss so far.
    learning_rate, steps_per_second, eta_seconds, elapsed_seconds : float
        Optimiser and timing figures (elapsed: of this run).
    validated : bool
        True when this step ran a validation.
    done : bool
        True on the last record.
    stop_reason : str
        ``'budget'``, ``'time'``, ``'early stopping'`` or ``'cancelled'`` on the last record.
    run_step : int
        Steps of this run (``step`` minus the steps the model had before it).
    message : str
        A one-off notice for the user (e.g. a checkpoint that could not be written).
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
    run_step: int = 0
    message: str = ""

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


def to_device(batch, device: torch.device, memory_format=torch.contiguous_format):
    """A numpy batch (or a tuple of them) as tensors on ``device`` in ``memory_format``
    (through pinned memory, without blocking, on CUDA)."""
    if isinstance(batch, tuple):
        return tuple(to_device(b, device, memory_format) for b in batch)
    return host_to_device(batch, device, memory_format)


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Autocast context for ``dtype`` on ``device`` (disabled when ``dtype`` is None)."""
    if dtype is None:
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=dtype)


def validation_loss(
    network, objective, patches, device, batch_size, seed, dtype, memory_format
) -> float:
    """Mean validation loss over fixed patches (same masks every time); leaves eval mode."""
    network.eval()
    generator = torch.Generator().manual_seed(seed)
    total, count = 0.0, 0
    paired = isinstance(patches, tuple)
    n_patches = len(patches[0] if paired else patches)
    with torch.no_grad(), autocast(device, dtype):
        for start in range(0, n_patches, batch_size):
            if paired:
                chunk = tuple(v[start : start + batch_size] for v in patches)
            else:
                chunk = patches[start : start + batch_size]
            batch = to_device(chunk, device, memory_format)
            loss = objective.validation_loss(network, batch, generator)
            n = len(chunk[0] if paired else chunk)
            total += float(loss) * n
            count += n
    return total / max(count, 1)


def epoch_of(run_step: int, config: TrainingConfig) -> int:
    """Epoch (from 1) that step ``run_step`` of a run falls in; 0 before the first step."""
    return (run_step - 1) // config.steps_per_epoch + 1 if run_step else 0


def budget_fraction(step, total_steps, elapsed, time_budget) -> float:
    """Share of the budget spent (the larger of the step and the time share)."""
    fractions = []
    if total_steps:
        fractions.append(step / total_steps)
    if time_budget:
        fractions.append(elapsed / time_budget)
    return max(fractions) if fractions else 0.0


def estimate_total(step: int, elapsed: float, time_budget: float | None) -> int:
    """Steps a time budget will allow at the rate so far."""
    if not time_budget or elapsed <= 0:
        return step
    return max(step, int(step * time_budget / elapsed))


def eta(step, total_steps, rate, elapsed, time_budget) -> float | None:
    """Seconds left: the sooner of the step and the time budget."""
    candidates = []
    if total_steps and rate > 0:
        candidates.append((total_steps - step) / rate)
    if time_budget:
        candidates.append(max(0.0, time_budget - elapsed))
    return min(candidates) if candidates else None


def train(
    network: torch.nn.Module,
    objective,
    sampler,
    config: TrainingConfig,
    device: torch.device,
    *,
    cancel: Cancel = None,
    resume: dict | None = None,
    checkpoint: Callable[[dict], None] | None = None,
) -> Generator[Progress, None, dict]:
    """Train ``network`` with ``objective`` on patches from ``sampler``; yield progress.

    A generator over one :class:`~selfdenoise.training.TrainingRun` (see there for the
    parameters); ``resume`` is a :meth:`~selfdenoise.training.TrainingRun.state_dict`.

    Returns
    -------
    dict
        ``history``, ``best_state``, ``state`` (resumable) and ``stop_reason``.
    """
    from .training import TrainingRun

    run = TrainingRun(
        network, objective, sampler, config, device, cancel=cancel, checkpoint=checkpoint
    )
    if resume is not None:
        run.load_state_dict(resume)
    yield from run.steps()
    return {
        "history": run.state.history,
        "best_state": run.state.best_state,
        "state": run.state_dict(),
        "stop_reason": run.state.stop_reason,
    }


distributed_setup = distributed.setup
distributed_teardown = distributed.teardown
wrap_distributed = distributed.wrap


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
