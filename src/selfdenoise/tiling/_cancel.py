"""Cancelling a prediction from another thread (torch-free)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, TimeoutError
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
    executor: Executor | None,
    cancel,
    abort: threading.Event,
    on_wait: Callable[[], None] | None = None,
) -> T:
    """Run ``work`` on ``executor``'s thread and wait for it, watching ``cancel`` meanwhile.

    One forward pass of a large tile can take tens of seconds on a CPU, and torch cannot be
    interrupted from outside. So the pass runs on a helper thread while the caller polls
    ``cancel`` every :data:`POLL_SECONDS` (and calls ``on_wait``, e.g. to report progress).
    When ``cancel`` is set, the caller raises :class:`PredictionCancelled` at once and sets
    ``abort``; the helper thread, which only touches the prediction's private network copy
    and buffers, stops at its next layer (see ``ForwardMonitor``) and is left to end alone.
    ``cancel`` itself is only ever called on the caller's thread.

    Parameters
    ----------
    work : callable
        The computation; its result is returned, its exception re-raised.
    executor : Executor or None
        One-thread executor that runs ``work``; None runs it on the caller's thread.
    cancel : threading.Event, callable or None
        The user's stop request.
    abort : threading.Event
        Set when the caller gives up on ``work``.
    on_wait : callable, optional
        Called after each poll while ``work`` runs.
    """
    if executor is None:
        return work()
    future = executor.submit(work)
    try:
        while True:
            try:
                return future.result(timeout=POLL_SECONDS)
            except TimeoutError:
                pass
            if is_cancelled(cancel):
                raise PredictionCancelled("prediction cancelled")
            if on_wait is not None:
                on_wait()
    except BaseException:
        if not future.done():  # given up while running (not failed by itself): stop it
            abort.set()
        raise
