"""How the widgets talk to people: one-line error messages, notifications, time formats.

Workers never raise: they catch every exception and hand back a :class:`Outcome` with a
one-line message, so expected problems (wrong dimensions, NaN, image smaller than the patch,
GPU out of memory) reach the user as a napari notification instead of a traceback dialog.
Unexpected exceptions are logged with their traceback and still shown as one line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._errors import SelfDenoiseError

logger = logging.getLogger("selfdenoise.napari")

OUT_OF_MEMORY_HINT = (
    "out of GPU memory: lower the batch size or patch size (or the tile size when denoising), "
    "or choose device 'cpu' under Advanced."
)


@dataclass
class Outcome:
    """What a worker hands back to the GUI thread.

    Attributes
    ----------
    value : Any
        The result when the job succeeded (``None`` otherwise).
    error : str
        One-line message when the job failed, else ``''``.
    cancelled : bool
        True when the user cancelled (not an error).
    """

    value: Any = None
    error: str = ""
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        """True when there is neither an error nor a cancellation."""
        return not self.error and not self.cancelled


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA/MPS out-of-memory errors, recognised without importing torch."""
    name = type(exc).__name__
    text = str(exc).lower()
    return name == "OutOfMemoryError" or "out of memory" in text


def is_cancellation(exc: BaseException) -> bool:
    """True for the engine's "cancelled by the user" exceptions."""
    return type(exc).__name__ in {"PredictionCancelled", "TrainingCancelled"}


def user_message(exc: BaseException) -> str:
    """Turn any exception into one line for a notification: the cause and what to do.

    Parameters
    ----------
    exc : BaseException
        The exception caught in a worker or a button handler.

    Returns
    -------
    str
        A single line without a traceback.
    """
    if isinstance(exc, SelfDenoiseError):
        text = str(exc)
    elif is_out_of_memory(exc):
        text = OUT_OF_MEMORY_HINT
    elif isinstance(exc, MemoryError):
        text = "not enough memory: use a smaller image, batch, patch or tile size."
    elif isinstance(exc, FloatingPointError):
        text = str(exc) or "training diverged; lower the learning rate."
    elif isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
        text = f"cannot access '{getattr(exc, 'filename', '') or exc}': check the path."
    else:
        text = f"unexpected {type(exc).__name__}: {exc} (please report this)."
    return " ".join(text.split())


def run_guarded(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Outcome:
    """Call ``function`` and wrap its result or its exception into an :class:`Outcome`."""
    try:
        return Outcome(value=function(*args, **kwargs))
    except Exception as exc:  # every failure must reach the user as one line
        return outcome_from_exception(exc)


def outcome_from_exception(exc: BaseException) -> Outcome:
    """An :class:`Outcome` for ``exc``; unexpected errors are logged with their traceback."""
    if is_cancellation(exc):
        return Outcome(cancelled=True)
    expected = isinstance(exc, SelfDenoiseError | MemoryError | FloatingPointError | OSError)
    if not expected and not is_out_of_memory(exc):
        logger.error("napari-selfdenoise worker failed", exc_info=exc)
    return Outcome(error=user_message(exc))


def notify_error(message: str) -> None:
    """Show a one-line error notification in napari."""
    from napari.utils.notifications import show_error

    show_error(message)


def notify_warning(message: str) -> None:
    """Show a one-line warning notification in napari (e.g. a step the engine skipped)."""
    from napari.utils.notifications import show_warning

    show_warning(message)


def notify_info(message: str) -> None:
    """Show a one-line information notification in napari."""
    from napari.utils.notifications import show_info

    show_info(message)


def format_duration(seconds: float | None) -> str:
    """``75.2`` -> ``'1:15'``; ``3700`` -> ``'1:01:40'``; ``None`` -> ``'--'``."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "--"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def wait_until(predicate: Callable[[], bool], timeout: float | None = None) -> bool:
    """Process Qt events until ``predicate()`` is true (for scripts driving the widgets).

    Parameters
    ----------
    predicate : callable
        Checked after each round of event processing.
    timeout : float, optional
        Seconds to wait at most; ``None`` waits for ever.

    Returns
    -------
    bool
        True if the predicate became true, False on timeout.
    """
    from qtpy.QtWidgets import QApplication

    deadline = None if timeout is None else time.monotonic() + timeout
    while not predicate():
        if deadline is not None and time.monotonic() > deadline:
            return False
        QApplication.processEvents()
        time.sleep(0.01)
    return True
