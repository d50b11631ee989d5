"""Parts of a :class:`~selfdenoise.training.TrainingRun`: its state record, the loss kept on
the device between reads, and small helpers on networks (torch)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["LossWatch", "RunState", "spatial_ndim", "state_copy"]


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


def spatial_ndim(network: torch.nn.Module) -> int:
    """Spatial dimensions of a network's first convolution (2 or 3; 0 if it has none)."""
    for parameter in network.parameters():
        if parameter.dim() in (4, 5):
            return parameter.dim() - 2
    return 0


def state_copy(network: torch.nn.Module) -> dict[str, torch.Tensor]:
    module = network.module if hasattr(network, "module") else network
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
