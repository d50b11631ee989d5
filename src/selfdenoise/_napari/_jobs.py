"""The work the widgets run in thread workers: train, predict, load, compare.

Nothing here touches Qt or napari layers: inputs are plain arrays and settings, so each job
can be tested without a viewer. Every job returns an :class:`~._feedback.Outcome` instead of
raising. The engine (and with it torch) is imported inside the jobs, never at module import.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._feedback import Outcome, outcome_from_exception, run_guarded

YIELD_INTERVAL = 0.1
"""Seconds between progress updates sent to the GUI (validation steps always are)."""

NETWORK_SETTINGS = ("depth", "base_channels")
"""Settings that shape the network; ignored when training continues from a model."""


@dataclass
class TrainRequest:
    """Everything a training run needs, gathered in the GUI thread.

    Attributes
    ----------
    data : list of ndarray
        Training images (all with ``axes``).
    validation : ndarray or None
        Optional validation image.
    axes : str
        Axes of the images.
    method : str
        Training objective (ignored when ``model`` is given).
    settings : dict
        Flat :func:`selfdenoise.config.make_config` settings.
    model : Denoiser or None
        A trained model to continue from.
    """

    data: list[np.ndarray]
    validation: np.ndarray | None
    axes: str
    method: str
    settings: dict = field(default_factory=dict)
    model: Any = None


@dataclass
class TrainUpdate:
    """A message from the training job: the model it built, or progress with new loss rows."""

    denoiser: Any = None
    progress: Any = None
    rows: list[dict] = field(default_factory=list)


def describe_device(preference: str) -> Outcome:
    """Name of the device training would use (imports torch: run it in a worker)."""
    from ..api import describe_default_device

    return run_guarded(describe_default_device, preference)


def build_or_update_model(request: TrainRequest) -> Any:
    """A new :class:`~selfdenoise.Denoiser`, or ``request.model`` with the new budget."""
    from ..api import Denoiser

    if request.model is None:
        return Denoiser(request.method, request.axes, **request.settings)
    model = request.model
    settings = {k: v for k, v in request.settings.items() if k not in NETWORK_SETTINGS}
    model.continue_training(**settings)
    return model


def merge_history(previous: list[dict], new: list[dict]) -> list[dict]:
    """History of a continued run: the earlier rows, then the new ones after them.

    The engine may restart step numbers at 1 (the new rows are shifted past the earlier
    ones), continue them (appended as they are), or keep the earlier rows itself (the new
    history is returned unchanged).
    """
    if not previous or not new:
        return list(previous) + list(new)
    if len(new) >= len(previous) and all(
        _same_row(a, b) for a, b in zip(previous, new, strict=False)
    ):
        return list(new)
    last = int(previous[-1].get("step") or 0)
    if int(new[0].get("step", 0)) > last:
        return list(previous) + list(new)
    return list(previous) + [dict(row, step=int(row.get("step", 0)) + last) for row in new]


def _same_row(a: dict, b: dict) -> bool:
    """Rows are equal in step and losses (NaN equals NaN)."""

    def same(x: Any, y: Any) -> bool:
        if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
            return True
        return x == y

    return all(same(a.get(key), b.get(key)) for key in ("step", "loss", "val_loss"))


def progress_row(progress: Any, offset: int = 0) -> dict:
    """The plot-relevant fields of a :class:`~selfdenoise.train.Progress` record."""
    return {
        "step": int(progress.step) + offset,
        "loss": _finite_or_none(progress.loss),
        "val_loss": _finite_or_none(progress.val_loss),
        "validated": bool(getattr(progress, "validated", False)),
    }


def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def train_job(
    request: TrainRequest, stop: threading.Event
) -> Generator[TrainUpdate, None, Outcome]:
    """Build (or continue) a model and train it, yielding :class:`TrainUpdate` messages.

    The first message carries the model; then progress comes about every
    :data:`YIELD_INTERVAL` seconds. Setting ``stop`` ends training within a step, keeping the
    best weights. Returns an :class:`Outcome` whose value is the trained model.
    """
    try:
        denoiser = build_or_update_model(request)
        previous = list(getattr(denoiser, "history", []) or [])
        last_step = int(previous[-1].get("step", 0)) if previous else 0
        yield TrainUpdate(denoiser=denoiser)
        steps, rows, last_sent, offset = 0, [], 0.0, None
        for progress in denoiser.fit_iter(
            request.data, request.validation, axes=request.axes, cancel=stop
        ):
            steps = int(progress.step)
            if offset is None:  # restarted step numbers are shifted past the earlier run
                offset = last_step if steps <= last_step else 0
            if not progress.done:
                rows.append(progress_row(progress, offset))
            now = time.monotonic()
            if (
                progress.done
                or getattr(progress, "validated", False)
                or now - last_sent > YIELD_INTERVAL
            ):
                yield TrainUpdate(progress=progress, rows=rows)
                rows, last_sent = [], now
        denoiser.history = merge_history(previous, list(denoiser.history))
        if steps == 0 and not previous:
            return Outcome(cancelled=True)
        return Outcome(value=denoiser)
    except Exception as exc:
        return outcome_from_exception(exc)


def predict_job(
    denoiser: Any,
    image: Any,
    axes: str,
    options: dict,
    progress: Callable[[int, int, float | None], None] | None,
    cancel: threading.Event,
) -> Outcome:
    """Denoise ``image`` with tiled prediction; the value is the new float32 array."""
    return run_guarded(
        denoiser.predict, image, axes=axes, progress=progress, cancel=cancel, **options
    )


def load_job(path: str) -> Outcome:
    """Load a model file; the value is the :class:`~selfdenoise.Denoiser`."""
    from ..api import Denoiser

    return run_guarded(Denoiser.load, path)


@dataclass
class CompareRequest:
    """Arrays to compare (already sliced to the chosen region), and the extras wanted."""

    candidates: dict[str, np.ndarray]
    reference: np.ndarray | None = None
    noisy: np.ndarray | None = None
    options: dict = field(default_factory=dict)
    ssim_maps: bool = False
    residuals: bool = False
    map_names: list[str] | None = None


@dataclass
class CompareResult:
    """The metrics table and optional per-candidate images (SSIM maps, residuals)."""

    table: Any
    ssim_maps: dict[str, np.ndarray] = field(default_factory=dict)
    residuals: dict[str, np.ndarray] = field(default_factory=dict)


def compare_job(request: CompareRequest) -> Outcome:
    """Compute the metrics table (and maps); the value is a :class:`CompareResult`."""
    return run_guarded(_compare, request)


def _compare(request: CompareRequest) -> CompareResult:
    from ..metrics import compare, ssim_map

    table = compare(
        request.candidates, reference=request.reference, noisy=request.noisy, **request.options
    )
    result = CompareResult(table)
    names = request.map_names if request.map_names is not None else list(request.candidates)
    if request.ssim_maps and request.reference is not None:
        data_range = table.settings.get("data_range")
        for name in names:
            result.ssim_maps[name] = ssim_map(
                request.reference, request.candidates[name], data_range
            )
    if request.residuals and request.noisy is not None:
        noisy = np.asarray(request.noisy, dtype=np.float32)
        for name in names:
            result.residuals[name] = noisy - np.asarray(request.candidates[name], dtype=np.float32)
    return result
