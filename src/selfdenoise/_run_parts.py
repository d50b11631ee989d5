"""Parts of a :class:`~selfdenoise.training.TrainingRun`: its state record, the loss kept on
the device between reads, the check of bf16 gradients, and small helpers on networks
(torch)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["GradientGuard", "LossWatch", "RunState", "spatial_ndim", "state_copy"]


@dataclass
class RunState:
    """The mutable state of a run (everything a checkpoint needs besides tensors' owners)."""

    step: int = 0
    run_step: int = 0
    elapsed_seconds: float = 0.0
    best_val_loss: float | None = None
    best_state: dict | None = None
    val_loss: float | None = None
    history: list[dict] = field(default_factory=list)
    plateau_factor: float = 1.0
    since_best: int = 0
    stop_reason: str = ""
    message: str = ""

    def to_dict(self) -> dict:
        """The fields a checkpoint keeps (see :meth:`from_dict`)."""
        return {
            "step": self.step,
            "run_step": self.run_step,
            "elapsed_seconds": self.elapsed_seconds,
            "best_val_loss": self.best_val_loss,
            "best_state": self.best_state,
            "history": list(self.history),
            "plateau_factor": self.plateau_factor,
            "since_best": self.since_best,
        }

    @classmethod
    def from_dict(cls, state: dict) -> RunState:
        """The state :meth:`to_dict` wrote; checkpoints written before ``run_step`` existed
        count their steps from the run's start."""
        step = int(state["step"])
        return cls(
            step=step,
            run_step=int(state.get("run_step", step)),
            elapsed_seconds=float(state.get("elapsed_seconds", 0.0)),
            best_val_loss=state.get("best_val_loss"),
            best_state=state.get("best_state"),
            val_loss=state.get("best_val_loss"),
            history=list(state.get("history", [])),
            plateau_factor=float(state.get("plateau_factor", 1.0)),
            since_best=int(state.get("since_best", 0)),
        )


class LossWatch:
    """The training loss, kept on the device between reads so that a step never waits.

    Each step adds its loss with device-side operations only: the latest value, and the
    global number of the first step whose loss was not finite (0 while all were finite).
    :meth:`read` copies both to the host (one wait for the GPU) every few steps.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.value = float("nan")
        self._last = torch.zeros((), device=device)
        self._step = torch.zeros((), dtype=torch.int64, device=device)
        self._first_bad = torch.zeros((), dtype=torch.int64, device=device)

    def start(self, step: int) -> None:
        """Count from global step ``step`` (the steps done before the loop starts)."""
        self._step.fill_(step)
        self._first_bad.zero_()

    def add(self, loss: torch.Tensor) -> None:
        """Record one step's loss (no host sync)."""
        loss = loss.detach().float()
        self._step += 1
        bad = ~torch.isfinite(loss) & (self._first_bad == 0)
        self._first_bad = torch.where(bad, self._step, self._first_bad)
        self._last = loss

    def read(self) -> int | None:
        """Update :attr:`value`; the first non-finite step's number, or ``None``."""
        first_bad = int(self._first_bad.item())  # waits for the device's queued work
        if first_bad:
            return first_bad
        self.value = float(self._last.item())
        return None


class GradientGuard:
    """Skips optimiser steps whose gradients are not all finite (bf16 training on the CPU).

    On CPUs with AVX-512 BF16 but no AMX, a bf16 convolution's backward pass now and then
    returns NaN gradients from a finite loss (about 1 step in 200 of a small 3D Noise2Void
    run; a kernel fault, not divergence: the same step in float32 is fine, and the same seed
    does not repeat it). One such step would turn every weight into NaN. The guard drops that
    step's gradients instead, as the fp16 gradient scaler does for overflows. ``limit``
    skipped steps in a row are taken as real divergence. Wrong but finite gradients pass
    (that fault also gives those, which is why ``amp='auto'`` keeps 3D models in float32 on
    such CPUs: :func:`~selfdenoise.device.cpu_has_fast_bf16`).

    Parameters
    ----------
    enabled : bool
        Check at all (the check reads every gradient: a host sync on a GPU, so it is on only
        where it is needed and free, bf16 on the CPU).
    limit : int
        Consecutive skipped steps that count as divergence.
    """

    def __init__(self, enabled: bool, limit: int = 20) -> None:
        self.enabled, self.limit = enabled, limit
        self.skipped = 0
        self.in_a_row = 0

    def allows_step(self, parameters) -> bool:
        """Whether the gradients now in ``parameters`` are all finite (always with the guard
        off); counts the steps it refuses."""
        if not self.enabled:
            return True
        grads = [p.grad for p in parameters if p.grad is not None]
        if all(bool(torch.isfinite(g).all()) for g in grads):
            self.in_a_row = 0
            return True
        self.skipped += 1
        self.in_a_row += 1
        return False

    def fault_note(self, network: torch.nn.Module, sampler) -> str:
        """With the guard on, :func:`~selfdenoise.device.cpu_bf16_3d_fault` for this (unwrapped)
        network's depth and the sampler's patch, also sent as a RuntimeWarning; else ``''``."""
        import warnings

        from .device import cpu_bf16_3d_fault

        if not self.enabled:
            return ""
        levels = getattr(getattr(network, "config", None), "depth", 0)
        note = cpu_bf16_3d_fault(tuple(getattr(sampler, "patch_shape", ())), int(levels))
        if note:
            warnings.warn(note, RuntimeWarning, stacklevel=3)
        return note

    @property
    def diverged(self) -> bool:
        """``limit`` steps in a row were refused."""
        return self.in_a_row >= self.limit


def spatial_ndim(network: torch.nn.Module) -> int:
    """Spatial dimensions of a network's first convolution (2 or 3; 0 if it has none)."""
    for parameter in network.parameters():
        if parameter.dim() in (4, 5):
            return parameter.dim() - 2
    return 0


def state_copy(network: torch.nn.Module) -> dict[str, torch.Tensor]:
    module = network.module if hasattr(network, "module") else network
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
