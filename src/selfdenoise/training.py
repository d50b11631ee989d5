"""One training run: :class:`TrainingRun` owns its data, sampler, objective, network,
optimiser, schedule, mixed precision and state.

Numbering: :attr:`RunState.step` and the history's ``"step"`` are global (every step the
model has had, across :meth:`~selfdenoise.Denoiser.continue_training` and resume);
:attr:`RunState.run_step` counts the steps of this run, which the budget, the schedule and
the epochs refer to. :meth:`TrainingRun.state_dict` is the one resumable state; checkpoints
are written from it and :meth:`TrainingRun.load_state_dict` reads it back.

Whatever ends a run (budget, time, early stopping, ``stop()``, a cancel, an exception or
Ctrl-C), the network holds the best weights by validation loss when :meth:`TrainingRun.steps`
returns or raises.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Generator

import torch

from . import distributed
from ._errors import SelfDenoiseError
from ._run_parts import GradientGuard, LossWatch, RunState, spatial_ndim, state_copy
from .config import TrainingConfig, cpu_batch
from .device import autocast_dtype, gpu_settings, training_memory_format
from .patches import PatchSampler
from .prepare import make_sampler
from .train import (
    Cancel,
    Progress,
    autocast,
    budget_fraction,
    epoch_of,
    estimate_total,
    eta,
    is_cancelled,
    learning_rate_factor,
    make_optimizer,
    to_device,
    validation_loss,
)

__all__ = ["RunState", "TrainingRun", "make_sampler"]

LOSS_READ_EVERY = 8
"""Steps between reads of the training loss from the device. A read waits for the GPU to
finish its queued work, so the loss and its finiteness are kept on the device in between
(:class:`~selfdenoise._run_parts.LossWatch`); the loss is also read at the first step, at every validation and
checkpoint, and at the end. A diverging run is stopped within this many steps."""

CANCEL_VALIDATION_BATCHES = 1
"""Batches the final validation may use after a cancel when the run has not validated yet
(keeps ``stop()`` within about 2 s even in 3D)."""


class TrainingRun:
    """One training run of ``network`` with ``objective`` on patches from ``sampler``.

    Parameters
    ----------
    network : torch.nn.Module
        The model (unwrapped), already on ``device``. The run sets its memory format and wraps
        it for DistributedDataParallel under torchrun; it hands it back contiguous, in eval
        mode and holding the best weights.
    objective : Objective
        A :mod:`selfdenoise.methods` objective.
    sampler : PatchSampler
        Training batches and fixed validation patches.
    config : TrainingConfig
        Budget, optimiser and schedule; an unset batch is the CPU recipe's (size it for the
        device first with :func:`~selfdenoise.device.sized_for_device`).
    device : torch.device
        Where to train.
    start_step : int
        Steps the model has had before this run (global numbering).
    history : list of dict, optional
        The model's earlier validation records; this run appends to a copy.
    cancel : threading.Event or callable, optional
        Checked before every step.
    checkpoint : callable, optional
        Called with :meth:`state_dict` every ``config.checkpoint_every`` steps; an error in it
        is reported once (RuntimeWarning and :attr:`Progress.message`) and training goes on.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        objective,
        sampler: PatchSampler,
        config: TrainingConfig,
        device: torch.device,
        *,
        start_step: int = 0,
        history: list[dict] | None = None,
        cancel: Cancel = None,
        checkpoint: Callable[[dict], None] | None = None,
    ) -> None:
        self.gpu = gpu_settings(device, compile=config.compile)
        # An unset batch (not sized by sized_for_device) is the CPU recipe's.
        self.batch_size: int = config.batch_size or cpu_batch(spatial_ndim(network))
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        self.network, self.objective, self.sampler = network, objective, sampler
        self.config, self.device = config, device
        self.cancel, self.checkpoint = cancel, checkpoint
        self.amp_dtype = autocast_dtype(device, config.amp, spatial_ndim(network))
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.guard = GradientGuard(device.type == "cpu" and self.amp_dtype == torch.bfloat16)
        self.memory_format = training_memory_format(
            device, spatial_ndim(network), config.channels_last
        )
        # Weights take the batches' memory format before DistributedDataParallel fixes strides.
        network.to(memory_format=self.memory_format)
        self.model = distributed.wrap(network, device)
        if self.gpu.compile:
            self.model = torch.compile(self.model)
        compile_note = (
            f"torch.compile is used on CUDA only; ignored on {device.type}."
            if config.compile and not self.gpu.compile
            else ""
        )
        notes = (compile_note, self.guard.fault_note(network, sampler))
        self._start_note = " ".join(note for note in notes if note)
        self.optimizer = make_optimizer(self.model, config)
        self.generator = torch.Generator().manual_seed(config.seed + distributed.rank() * 1000)
        self.state = RunState(step=start_step, history=list(history or []))
        self.total_steps = config.total_steps
        self.time_budget = config.max_minutes * 60 if config.max_minutes else None
        self._checkpoint_failed = False
        self._loss = LossWatch(device)
        self._start_state: dict | None = None
        self._clock = (time.perf_counter(), 0.0)
        self._window = (time.perf_counter(), 0, 0.0)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Everything needed to continue this run exactly where it is now."""
        return {
            "network": state_copy(self.network),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "generator": self.generator.get_state(),
            "sampler_rng": self.sampler.rng.bit_generator.state,
            **self.state.to_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict` output (e.g. a checkpoint).

        Checkpoints written before ``run_step`` existed count their steps from the run's start.
        """
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if "generator" in state:
            self.generator.set_state(state["generator"])
        if "sampler_rng" in state:
            self.sampler.rng.bit_generator.state = state["sampler_rng"]
        self.state = RunState.from_dict(state)

    # ------------------------------------------------------------------ the loop
    def steps(self) -> Generator[Progress, None, None]:
        """Train, yielding a :class:`Progress` after each step and a final one (``done``).

        On any exit (the budget, a stop, an exception, Ctrl-C, or the consumer closing the
        generator) the network gets the best weights and is handed back in eval mode.
        """
        try:
            yield from self._loop()
            yield self._finish()
        finally:
            self._restore_best()

    def _tick(self) -> None:
        started, before = self._clock
        self.state.elapsed_seconds = before + time.perf_counter() - started

    def _loop(self) -> Generator[Progress, None, None]:
        self._clock = (time.perf_counter(), self.state.elapsed_seconds)
        self._window = (time.perf_counter(), 0, 0.0)
        self._loss.start(self.state.step)
        self.state.message, self._start_note = self._start_note, ""
        if self.state.best_state is None:  # what a divergence before any validation restores
            self._start_state = state_copy(self.network)
        self.model.train()
        while True:
            self._tick()
            reason = distributed.agree_stop(self._local_stop_reason(), self.device)
            if reason:
                self.state.stop_reason = reason
                return
            progress = self._train_step()
            self._maybe_checkpoint(progress)
            yield progress
            patience = self.config.early_stopping
            if progress.validated and patience and self.state.since_best >= patience:
                self.state.stop_reason = "early stopping"
                return

    def _local_stop_reason(self) -> str:
        s = self.state
        if self.total_steps is not None and s.run_step >= self.total_steps:
            return "budget"
        if self.time_budget is not None and s.elapsed_seconds >= self.time_budget:
            return "time"
        if is_cancelled(self.cancel):
            return "cancelled"
        return ""

    def _fraction(self) -> float:
        return budget_fraction(
            self.state.run_step, self.total_steps, self.state.elapsed_seconds, self.time_budget
        )

    def _train_step(self) -> Progress:
        config, s = self.config, self.state
        fraction = self._fraction()
        lr = config.learning_rate * learning_rate_factor(config.schedule, fraction)
        lr *= s.plateau_factor
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.objective.set_progress(fraction)
        batch = to_device(self.sampler.sample(self.batch_size), self.device, self.memory_format)
        with autocast(self.device, self.amp_dtype):
            loss, _ = self.objective.training_loss(self.model, batch, self.generator)
        self._loss.add(loss)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.guard.allows_step(self.model.parameters()):
            if config.grad_clip:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
            self.scaler.step(self.optimizer)
        else:
            self._skipped_step(lr)
        self.scaler.update()
        s.step += 1
        s.run_step += 1
        self._tick()
        validated = s.run_step % config.steps_per_epoch == 0 or s.run_step == self.total_steps
        every = config.checkpoint_every
        if (
            validated
            or s.run_step == 1
            or s.run_step % LOSS_READ_EVERY == 0
            or (every and s.run_step % every == 0)
        ):
            self._read_loss(lr)
        if validated:
            self._validate_and_record(self._loss.value, lr)
        return self._progress(self._loss.value, lr, validated)

    def _read_loss(self, lr: float) -> None:
        """Read the loss from the device; stop a diverged run with a one-line error."""
        first_bad = self._loss.read()
        if first_bad is not None:
            self._diverged(first_bad, "loss is not finite", lr)

    def _skipped_step(self, lr: float) -> None:
        """A step's gradients were not finite and it was not applied (see GradientGuard)."""
        guard, s = self.guard, self.state
        if guard.diverged:
            self._diverged(s.step + 2 - guard.in_a_row, "gradients not finite", lr)
        if guard.skipped == 1:
            note = (
                f"step {s.step + 1} was skipped: its bf16 gradients were not finite. "
                "Training goes on; amp='off' trains in float32."
            )
            # keep what the step already has to say (the start notes, on step 1)
            s.message = f"{s.message} {note}" if s.message else note

    def _diverged(self, first_bad: int, why: str, lr: float) -> None:
        s = self.state
        s.run_step -= s.step - first_bad + 1  # the steps from the bad one on are void
        s.step = first_bad - 1
        if s.best_state is None and self._start_state is not None:
            s.best_state = self._start_state  # the weights this run started from
        raise SelfDenoiseError(
            f"training diverged at step {first_bad} ({why}); lower the "
            f"learning rate, e.g. to {lr / 10:.0e}. The best weights so far are kept."
        )

    def _validate_and_record(self, loss_value: float, lr: float, batches: int | None = None):
        s = self.state
        val_loss = distributed.all_reduce_mean(self._validation_loss(batches), self.device)
        s.val_loss = val_loss
        if s.best_val_loss is None or val_loss < s.best_val_loss:
            s.best_val_loss, s.best_state, s.since_best = val_loss, state_copy(self.network), 0
        else:
            s.since_best += 1
            if self.config.schedule == "plateau" and s.since_best % 3 == 0:
                s.plateau_factor *= 0.5
        s.history.append(
            {
                "step": s.step,
                "epoch": epoch_of(s.run_step, self.config),
                "loss": loss_value,
                "val_loss": val_loss,
                "learning_rate": lr,
                "elapsed_seconds": s.elapsed_seconds,
            }
        )

    def _validation_loss(self, batches: int | None = None) -> float:
        patches = self.sampler.validation_patches
        if batches is not None:
            limit = batches * self.batch_size
            patches = (
                tuple(p[:limit] for p in patches) if isinstance(patches, tuple) else patches[:limit]
            )
        loss = validation_loss(
            self.model,
            self.objective,
            patches,
            self.device,
            self.batch_size,
            self.config.seed + 7,
            self.amp_dtype,
            self.memory_format,
        )
        self.model.train()
        return loss

    def _progress(self, loss_value: float, lr: float, validated: bool) -> Progress:
        s = self.state
        now = time.perf_counter()
        start, count, rate = self._window
        count += 1
        if now - start > 0.5:
            start, count, rate = now, 0, count / (now - start)
        self._window = (start, count, rate)
        total = self.total_steps
        if total is None:
            total = estimate_total(s.run_step, s.elapsed_seconds, self.time_budget)
        return Progress(
            step=s.step,
            total_steps=s.step - s.run_step + total,
            epoch=epoch_of(s.run_step, self.config),
            loss=loss_value,
            val_loss=s.val_loss,
            best_val_loss=s.best_val_loss,
            learning_rate=lr,
            steps_per_second=rate,
            eta_seconds=eta(
                s.run_step, self.total_steps, rate, s.elapsed_seconds, self.time_budget
            ),
            elapsed_seconds=s.elapsed_seconds,
            validated=validated,
            run_step=s.run_step,
            message=self._take_message(),
        )

    def _take_message(self) -> str:
        message, self.state.message = self.state.message, ""
        return message

    def _maybe_checkpoint(self, progress: Progress) -> None:
        every = self.config.checkpoint_every
        if self.checkpoint is None or not every or self.state.run_step % every:
            return
        try:
            self.checkpoint(self.state_dict())
        except Exception as exc:  # a full disk must not end the training
            if self._checkpoint_failed:
                return
            self._checkpoint_failed = True
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            message = f"could not write a checkpoint ({text}); training goes on without."
            warnings.warn(message, RuntimeWarning, stacklevel=2)
            progress.message = message

    # ------------------------------------------------------------------ the end
    def _finish(self) -> Progress:
        """The final record; validates the last weights when the history lacks them."""
        s = self.state
        if s.run_step > 0:
            self._read_loss(0.0)
        last_validated = bool(s.history) and s.history[-1]["step"] == s.step
        if s.run_step > 0 and not last_validated:
            if s.stop_reason != "cancelled":
                self._validate_and_record(float("nan"), 0.0)
            elif s.best_state is None:  # bounded: stop() answers within about 2 s
                self._validate_and_record(float("nan"), 0.0, CANCEL_VALIDATION_BATCHES)
        self._tick()
        total = s.step if self.total_steps is None else s.step - s.run_step + self.total_steps
        return Progress(
            step=s.step,
            total_steps=total,
            epoch=epoch_of(s.run_step, self.config),
            loss=s.history[-1]["loss"] if s.history else float("nan"),
            val_loss=s.val_loss,
            best_val_loss=s.best_val_loss,
            learning_rate=0.0,
            steps_per_second=self._window[2],
            eta_seconds=0.0,
            elapsed_seconds=s.elapsed_seconds,
            done=True,
            stop_reason=s.stop_reason,
            run_step=s.run_step,
            message=self._take_message(),
        )

    def _restore_best(self) -> None:
        if self.state.best_state is not None:
            self.network.load_state_dict(self.state.best_state)
        self.network.to(memory_format=torch.contiguous_format)
        self.network.eval()
