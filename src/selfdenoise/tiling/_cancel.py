"""Cancelling a prediction from another thread (torch-free)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor, TimeoutError
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


def raise_if_cancelled(cancel) -> None:
    """Raise :class:`PredictionCancelled` when ``cancel`` asks to stop (see :func:`is_cancelled`)."""
    if is_cancelled(cancel):
        raise PredictionCancelled("prediction cancelled")


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
            raise_if_cancelled(cancel)
            if on_wait is not None:
                on_wait()
    except BaseException:
        if not future.done():  # given up while running (not failed by itself): stop it
            abort.set()
        raise


class ForwardThreads:
    """One-thread executors for forward passes, kept and reused across predictions.

    cuDNN keeps the convolution algorithms it chose (``cudnn.benchmark``) per thread. A new
    thread for each prediction therefore searched them again every time: seconds per call
    for large tiles on a GPU (an 8192x8192 image on an H100-class GPU took 7 s where the
    forward pass itself takes 0.15 s). Finished predictions hand their thread back here, so
    the next one starts with the choices made. A prediction that is abandoned (cancelled, or
    failed) does not hand it back: its thread ends alone after the pass it is in.

    Parameters
    ----------
    keep : int
        Idle threads kept at most (several predictions may run at once, each on its own).
    """

    def __init__(self, keep: int = 4):
        self.keep = keep
        self._idle: list[ThreadPoolExecutor] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def borrow(self) -> Iterator[ThreadPoolExecutor]:
        """An idle executor (or a new one) for one prediction; handed back if it finished."""
        with self._lock:
            executor = self._idle.pop() if self._idle else None
        if executor is None:
            executor = ThreadPoolExecutor(1, thread_name_prefix="selfdenoise-forward")
        finished = False
        try:
            yield executor
            finished = True
        finally:
            with self._lock:
                kept = finished and len(self._idle) < self.keep
                if kept:
                    self._idle.append(executor)
            if not kept:
                # An abandoned pass ends alone at its next layer (see run_cancellable).
                executor.shutdown(wait=finished, cancel_futures=True)

    def clear(self) -> None:
        """End the idle threads (each is started again when next needed)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for executor in idle:
            executor.shutdown(wait=True)

    def idle(self) -> int:
        """Number of idle threads kept."""
        with self._lock:
            return len(self._idle)


FORWARD_THREADS = ForwardThreads()
"""The process's forward-pass threads (see :class:`ForwardThreads`)."""
