"""Cancelling a prediction from another thread (torch-free)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

POLL_SECONDS = 0.05
"""How often a waiting prediction looks at its ``cancel`` flag and reports progress."""


class PredictionCancelled(RuntimeError):
    """Raised by tiled prediction when its ``cancel`` event is set or callable returns True."""


def is_cancelled(cancel) -> bool:
    """True when ``cancel`` (None, a ``threading.Event`` or a callable) asks to stop."""
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel())


def run_cancellable(
    work: Callable[[], T],
    cancel,
    abort: threading.Event,
    on_wait: Callable[[], None] | None = None,
) -> T:
    """Run ``work`` on a helper thread and wait for it, watching ``cancel`` meanwhile.

    One forward pass of a large tile can take tens of seconds on a CPU, and torch cannot be
    interrupted from outside. So the pass runs on a daemon thread while the caller polls
    ``cancel`` every :data:`POLL_SECONDS` (and calls ``on_wait``, e.g. to report progress).
    When ``cancel`` is set, the caller raises :class:`PredictionCancelled` at once and sets
    ``abort``; the helper thread, which only touches the prediction's private network copy
    and buffers, stops at its next layer (see ``ForwardMonitor``) and is left to end alone.
    ``cancel`` itself is only ever called on the caller's thread.

    Parameters
    ----------
    work : callable
        The computation; its result is returned, its exception re-raised.
    cancel : threading.Event, callable or None
        The user's stop request. None: ``work`` runs on the caller's thread.
    abort : threading.Event
        Set when the caller gives up on ``work``.
    on_wait : callable, optional
        Called after each poll while ``work`` runs.
    """
    if cancel is None and on_wait is None:
        return work()
    outcome: dict[str, object] = {}
    finished = threading.Event()

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # handed to the waiting thread
            outcome["error"] = exc
        finally:
            finished.set()

    threading.Thread(target=target, name="selfdenoise-forward", daemon=True).start()
    try:
        while not finished.wait(POLL_SECONDS):
            if is_cancelled(cancel):
                raise PredictionCancelled("prediction cancelled")
            if on_wait is not None:
                on_wait()
    except BaseException:
        abort.set()
        raise
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
