"""The work the widgets run in thread workers: train, predict, load, compare.

Nothing here touches Qt or napari layers: inputs are plain arrays and settings, so each job
can be tested without a viewer. Every job returns an :class:`~._feedback.Outcome` instead of
raising. The engine (and with it torch) is imported inside the jobs, never at module import.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import SelfDenoiseError
from ._feedback import Outcome, outcome_from_exception, run_guarded
from ._torch_import import ensure_engine, ensure_metrics, import_lock

if TYPE_CHECKING:
    from ..api import Denoiser

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
    model: Denoiser | None = None


@dataclass
class TrainUpdate:
    """A message from the training job: the model it built, or progress with new loss rows."""

    denoiser: Denoiser | None = None
    progress: Any = None
    rows: list[dict] = field(default_factory=list)


def describe_device(preference: str) -> Outcome:
    """Name of the device training would use and the precision it trains in there, e.g.
    ``'CPU (2 threads), float32'`` (imports torch: run it in a worker)."""

    def describe() -> str:
        ensure_engine()
        from ..api import describe_default_device

        return describe_default_device(preference, precision=True)

    return run_guarded(describe)


def build_or_update_model(request: TrainRequest) -> Denoiser:
    """A new :class:`~selfdenoise.Denoiser`, or ``request.model`` with the new budget."""
    ensure_engine()
    from ..api import Denoiser

    if request.model is None:
        return Denoiser(request.method, request.axes, **request.settings)
    model = request.model
    settings = {k: v for k, v in request.settings.items() if k not in NETWORK_SETTINGS}
    model.continue_training(**settings)
    return model


def progress_row(progress: Any) -> dict:
    """The plot-relevant fields of a training progress record.

    ``progress.step`` counts every step the model was ever trained (continued runs go on
    from the earlier steps), so rows of several runs line up on one axis as they are.
    """
    return {
        "step": int(progress.step),
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
        was_trained = denoiser.is_trained
        yield TrainUpdate(denoiser=denoiser)
        run_steps, rows, last_sent = 0, [], 0.0
        records = denoiser.fit_iter(
            request.data, request.validation, axes=request.axes, cancel=stop
        )
        for progress in _first_step_locked(records):
            if not progress.done:
                run_steps += 1
                rows.append(progress_row(progress))
            now = time.monotonic()
            if (
                progress.done
                or progress.validated
                or progress.message
                or now - last_sent > YIELD_INTERVAL
            ):
                yield TrainUpdate(progress=progress, rows=rows)
                rows, last_sent = [], now
        if run_steps == 0 and not was_trained:
            return Outcome(cancelled=True)
        return Outcome(value=denoiser)
    except Exception as exc:
        return outcome_from_exception(exc)


def _first_step_locked(records: Iterator[Any]) -> Iterator[Any]:
    """Yield from ``records``; the first step (which imports the training modules) runs
    under the process-wide import lock."""
    with import_lock():
        first = next(records, None)
    if first is None:
        return
    yield first
    yield from records


def use_device(denoiser: Denoiser, device: str) -> Denoiser:
    """``denoiser`` on ``device`` (``'auto'`` keeps the device it is on), via ``Denoiser.to``."""
    ensure_engine()
    if device == "auto" or device == _current_device(denoiser):
        return denoiser
    return denoiser.to(device)


def _current_device(denoiser: Denoiser) -> str | None:
    """``'cpu'``, ``'cuda'``, ... or None when the model's device is not present here."""
    try:
        return str(denoiser.device.type)
    except SelfDenoiseError:
        return None


def predict_job(
    denoiser: Denoiser,
    image: Any,
    axes: str,
    options: dict,
    progress: Callable[[int, int, float | None], None] | None,
    cancel: threading.Event,
) -> Outcome:
    """Denoise ``image`` with tiled prediction; the value is the new float32 array."""
    ensure_engine()
    return run_guarded(
        denoiser.predict, image, axes=axes, progress=progress, cancel=cancel, **options
    )


def load_job(path: str, device: str = "auto") -> Outcome:
    """Load a model file onto ``device``; the value is the :class:`~selfdenoise.Denoiser`.

    ``'auto'`` picks the best device present here, so a model trained on a GPU also loads on
    a machine without one.
    """

    def load() -> Denoiser:
        ensure_engine()
        from ..api import Denoiser

        return Denoiser.load(path, device=device)

    return run_guarded(load)


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
    ensure_metrics()
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
